"""Reproducible row samples: the training and holdout rows of a window, read day by day and cut to
a cap with seeded keys, so a rerun samples the same rows; and plain seeded subsamples."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd



# A part is one day's rows: a pandas DataFrame or a pyarrow Table.
Part = Any

# The rows kept of the days read so far are pruned when they exceed the cap by this factor (so
# memory stays bounded by about twice the cap plus one day, with few prunes).
_PRUNE_SLACK = 1.5


def sample_keys(seed: int, day: dt.date | str, n: int) -> np.ndarray:
    """The sampling keys of a day's `n` labelled rows, in row order: a day keeps the rows with its
    smallest keys. They depend only on (seed, day, n), so a rerun keys the same rows the same way."""
    day = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day))
    return np.random.default_rng([seed, day.toordinal()]).random(n)


def day_quotas(labelled_by_day: dict[str, int], max_rows: int) -> dict[str, int]:
    """Rows each day contributes to a sample of `max_rows` (> 0): its share of the labelled rows,
    rounded by largest remainder (ties to the earlier day), so they add up to the cap exactly; every
    row of every day when there are no more than `max_rows`."""
    total = sum(labelled_by_day.values())
    if total <= max_rows:
        return dict(labelled_by_day)
    quotas = {day: max_rows * n // total for day, n in labelled_by_day.items()}
    by_remainder = sorted(labelled_by_day, key=lambda day: (-(max_rows * labelled_by_day[day] % total), day))
    for day in by_remainder[:max_rows - sum(quotas.values())]:
        quotas[day] += 1
    return quotas


def sample_rows(parts: Iterable[tuple[dt.date, Part]], target: str, max_rows: int, seed: int,
                labelled_by_day: dict[str, int] | None = None) -> tuple[pd.DataFrame, dict]:
    """The labelled rows (`target` known) of `parts`, (day, rows of that day) pairs consumed one at a
    time, or, when there are more than `max_rows` > 0 of them, a sample of exactly `max_rows`: each
    day contributes its day_quotas(...) share, its rows with the smallest sample_keys(seed, day, ...)
    -- a uniform sample of the day's labelled rows. Only the rows of the days read so far that can
    still be in the sample are held (a day's final quota is at most its share of the rows read so
    far), so memory is bounded by about twice the cap plus one day, whatever the number of days.
    Rows come back in the order of the parts, and of the rows within a part, as a DataFrame with a
    fresh index. Returns (rows, counts: rows_available, rows_labelled, rows_sampled,
    rows_sampled_by_day).

    `labelled_by_day` ({str(day): labelled rows} of every part, e.g. from the Parquet footers'
    null counts) is the same sample found faster: each day's final quota is known before its rows
    are read, so each day is cut once to it, instead of early days being kept whole and cut again
    as later days arrive. A day whose labelled rows differ from it is an error."""
    if max_rows < 0:
        raise ValueError(f"max_rows must be >= 0 (0 = no cap), got {max_rows}")
    pieces: list[dict] = []  # per day: its rows kept (in row order), their keys, its labelled rows
    available = labelled_rows = kept = 0
    part = labels = None
    known = day_quotas(labelled_by_day, max_rows) if max_rows and labelled_by_day is not None else None
    for day, part in parts:
        if any(p["day"] == str(day) for p in pieces):
            raise ValueError(f"day {day} appears twice in the parts to sample: each day is one part")
        labels = np.asarray(part[target], dtype=float)
        positions = np.flatnonzero(~np.isnan(labels))
        available, labelled_rows = available + len(labels), labelled_rows + len(positions)
        piece = {"day": str(day), "labelled": len(positions), "keys": None}
        if known is not None and labelled_by_day.get(str(day)) != len(positions):
            raise ValueError(f"day {day} has {len(positions)} labelled rows, but {labelled_by_day.get(str(day))} "
                             f"were announced for it (labelled_by_day)")
        if max_rows:
            keys = sample_keys(seed, day, len(positions))
            bound = known[str(day)] if known is not None else _bound(max_rows, len(positions), labelled_rows)
            keep = _smallest(keys, bound)
            if keep is not None:
                positions, keys = positions[keep], keys[keep]
            piece["keys"] = keys
        piece["rows"] = part if len(positions) == len(labels) else _select(part, positions)
        pieces.append(piece)
        kept += len(positions)
        if max_rows and known is None and kept > _PRUNE_SLACK * max_rows:
            kept = _prune(pieces, max_rows, labelled_rows, kept)
    if known is not None and set(known) != {p["day"] for p in pieces}:
        raise ValueError(f"labelled_by_day announces the days {sorted(known)}, the parts hold "
                         f"{[p['day'] for p in pieces]}")
    if max_rows:
        quotas = day_quotas({p["day"]: p["labelled"] for p in pieces}, max_rows)
        for piece in pieces:
            _shrink(piece, quotas[piece["day"]])
    by_day = {p["day"]: len(p["rows"]) for p in pieces}
    rows = concat_parts([p.pop("rows") for p in pieces])
    if not isinstance(part, pd.DataFrame):  # the days were read with pyarrow
        import pyarrow as pa

        part = labels = None
        pa.default_memory_pool().release_unused()  # hand what was read back to the OS before fitting
    return rows, {"rows_available": int(available), "rows_labelled": int(labelled_rows),
                  "rows_sampled": int(len(rows)), "rows_sampled_by_day": by_day}


def _prune(pieces: list[dict], max_rows: int, labelled_so_far: int, kept: int) -> int:
    """Cut the days read so far to what can still be in the sample, only where at least half of a
    day is no longer needed (little copying); returns the rows kept."""
    for earlier in pieces:
        bound = _bound(max_rows, earlier["labelled"], labelled_so_far)
        if len(earlier["keys"]) > 2 * bound:
            kept -= len(earlier["keys"]) - _shrink(earlier, bound)
    return kept


def _bound(max_rows: int, labelled: int, labelled_so_far: int) -> int:
    """The most rows a day with `labelled` rows can contribute, when at least `labelled_so_far`
    rows are labelled in all: its share of the cap, rounded up."""
    return min(labelled, -(-max_rows * labelled // max(labelled_so_far, 1)))


def _smallest(keys: np.ndarray, k: int) -> np.ndarray | None:
    """Sorted indices of the `k` smallest keys, or None when that is all of them."""
    if k >= len(keys):
        return None
    return np.sort(np.argpartition(keys, k - 1)[:k]) if k else np.array([], dtype=np.int64)


def _shrink(piece: dict, k: int) -> int:
    keep = _smallest(piece["keys"], k)
    if keep is not None:
        piece["rows"], piece["keys"] = _select(piece["rows"], keep), piece["keys"][keep]
    return len(piece["keys"])


def _select(part: Part, positions: np.ndarray) -> Part:
    """The rows of `part` at the sorted `positions`."""
    if isinstance(part, pd.DataFrame):
        return part.take(positions)
    import pyarrow as pa

    mask = np.zeros(len(part), dtype=bool)
    mask[positions] = True
    return part.filter(pa.array(mask))  # chunk by chunk; take() would first concatenate the chunks



def concat_parts(parts: list[Part]) -> pd.DataFrame:
    """One DataFrame of the parts, DataFrames or pyarrow Tables, in order, with a fresh index (empty
    ones left out unless all are empty: they then lend their columns)."""
    parts = [p for p in parts if len(p)] or parts[:1]
    if not parts:
        return pd.DataFrame()
    if isinstance(parts[0], pd.DataFrame):
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    import pyarrow as pa

    table = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
    return table.to_pandas()



def subsample(n: int, max_rows: int, seed: int) -> np.ndarray | None:
    """Sorted positions of a seeded sample of `max_rows` of `n` rows, or None when all are kept."""
    if not max_rows or n <= max_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


