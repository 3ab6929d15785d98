"""Flights landing files the tests write by hand, delivered as the upstream system delivers them:
the file, then the done-marker beside it that its table's readiness rule waits for."""
from __future__ import annotations

import datetime as dt

from pipeline import storage
from pipeline.flights.landing import deliver as deliver_file
from pipeline.flights.landing import landing_file


def deliver(landing_root: str, table: str, day: dt.date | None, data: bytes) -> str:
    """Write `table`'s landing file of `day` (None: a reference table) with content `data` under
    the local landing zone `landing_root`, then its done-marker; returns the file's path."""
    deliver_file(storage.Storage(landing_root).target, landing_root, table, day, data)
    return landing_file(landing_root, table, day)
