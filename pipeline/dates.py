"""Date ranges cut into the pieces a backfill submits one after the other."""
from __future__ import annotations

import datetime as dt


def month_spans(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    """[start, end] cut at calendar month boundaries: (first, last) day of each piece, in order;
    the first and last pieces may be partial months."""
    spans = []
    first = start
    while first <= end:
        following = (first.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        last = min(end, following - dt.timedelta(days=1))
        spans.append((first, last))
        first = following
    return spans
