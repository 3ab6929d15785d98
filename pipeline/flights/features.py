"""The flights dataset's code that dataset.toml names: its multi-column row checks, the per-day
history summary and the feature function (its tables, contracts and feature names are in the TOML)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from pipeline.contracts import RowCheck
from pipeline.dataset import DayData

TARGET = "late"  # [target] name in dataset.toml: what the history rows' label column is called


def _valid_hhmm(series: pd.Series) -> pd.Series:
    """True where an hhmm clock time is real (0..2359, minutes < 60); null counts as valid."""
    s = series.astype("float64")
    return s.isna() | ((s >= 0) & (s <= 2400) & (s % 100 < 60))


# [tables.flights] row_checks: rules over several columns of a flight.
FLIGHT_CHECKS = (
    RowCheck("clock_time:sched_dep_time", lambda df: _valid_hhmm(df["sched_dep_time"])),
    RowCheck("clock_time:sched_arr_time", lambda df: _valid_hhmm(df["sched_arr_time"])),
    RowCheck("clock_time:dep_time", lambda df: _valid_hhmm(df["dep_time"])),
    RowCheck("clock_time:arr_time", lambda df: _valid_hhmm(df["arr_time"])),
    RowCheck("consistent:hour_minute",
             lambda df: (df["hour"] * 100 + df["minute"] == df["sched_dep_time"]).fillna(False)),
)

HISTORY_SUMMARY_COLUMNS = ["year", "month", "day", "carrier", "origin", "dest", "late_sum", "late_count"]
WEATHER_FEATURES = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip",
                    "pressure", "visib"]
TRAILING_FEATURES = ["late_rate_carrier_7d", "late_rate_route_7d", "late_rate_origin_7d",
                     "late_rate_origin_1d", "late_rate_carrier_1d", "late_rate_all_1d"]

# Prior strength (in flights) that shrinks a group's late rate towards the overall rate.
_PRIOR_FLIGHTS = 20.0


def summarize_history(rows: pd.DataFrame) -> pd.DataFrame:
    """Per day, carrier and route of an earlier day's flights (with their `late` label): the number
    of labelled flights and how many arrived late (HISTORY_SUMMARY_COLUMNS). Sums and counts add
    up, so trailing rates over any set of days computed from summaries equal those computed from
    the flights themselves. [features] history_summary in dataset.toml."""
    keys = ["year", "month", "day", "carrier", "origin", "dest"]
    labelled = rows.loc[rows[TARGET].notna(), keys + [TARGET]]
    out = (labelled.groupby(keys, observed=True, sort=True)[TARGET].agg(late_sum="sum", late_count="count")
           .reset_index())
    return pd.DataFrame({
        **{k: out[k].astype("int64") for k in ("year", "month", "day")},
        **{k: out[k].astype("string") for k in ("carrier", "origin", "dest")},
        "late_sum": out["late_sum"].astype("float64"), "late_count": out["late_count"].astype("int64"),
    }, columns=HISTORY_SUMMARY_COLUMNS)


def build_features(day: DayData) -> pd.DataFrame:
    """The features of each flight of `day` (one row per flight, in order): [features] function
    in dataset.toml. Reads the day's flights and weather, the planes reference table and the
    trailing history summaries (summarize_history of earlier days only: rows of the day or later
    raise); the trailing aggregates use the last `day.history_days` days. Lookups go through
    integer codes and small tables (no row-by-row merges): linear in the rows, small constant."""
    flights, weather, planes, history, date = (day.rows, day.tables["weather"], day.references["planes"],
                                               day.history, day.date)
    missing = [c for c in HISTORY_SUMMARY_COLUMNS if c not in history.columns]
    if len(history.columns) and missing:
        raise ValueError(f"history must be summarize_history() output; it lacks {missing}")
    hist_dates = _dates(history)
    if len(history) and (hist_dates >= pd.Timestamp(date)).any():
        raise ValueError(f"history for features of {date} contains rows of {date} or later: "
                         "trailing aggregates may only use earlier days")
    out = pd.DataFrame({
        "carrier": flights["carrier"].astype("string"),
        "origin": flights["origin"].astype("string"),
        "dest": flights["dest"].astype("string"),
        "sched_dep_time": flights["sched_dep_time"].astype("int64"),
        "tailnum": flights["tailnum"].astype("string"),
        "hour": flights["hour"].astype("int64"),
    }).reset_index(drop=True)
    out["sched_dep_minutes"] = (out["sched_dep_time"] // 100 * 60 + out["sched_dep_time"] % 100).astype(float)
    arr = flights["sched_arr_time"].astype("float64").to_numpy()
    out["sched_arr_minutes"] = arr // 100 * 60 + arr % 100
    out["distance"] = flights["distance"].astype("float64").to_numpy()
    ts = pd.Timestamp(date)
    out["day_of_week"] = float(ts.day_of_week)
    out["day_of_year"] = float(ts.day_of_year)
    origin = _Codes(out["origin"])
    hours = out["hour"].to_numpy()
    out["origin_flights_day"] = _group_sizes(origin.codes, origin.n)
    out["origin_flights_hour"] = _group_sizes(origin.codes * 24 + np.clip(hours, 0, 23), origin.n * 24)

    _join_planes(out, planes, date)
    _join_weather(out, weather, origin)
    _join_trailing(out, history, hist_dates, date, day.history_days, origin)
    return out.drop(columns=["sched_dep_time", "tailnum", "hour"])


class _Codes:
    """Integer codes of a key column of the day's flights (nulls: -1), to look values up by."""

    def __init__(self, values: pd.Series):
        self.codes, uniques = pd.factorize(values)
        self.uniques = pd.Index(uniques)
        self.n = len(self.uniques)

    def of(self, other) -> np.ndarray:
        """Codes of `other`'s values in this column's (-1 where the day has no such value)."""
        other_codes, other_uniques = pd.factorize(other)
        lookup = np.append(self.uniques.get_indexer(other_uniques), -1)
        return lookup[other_codes]


def _group_sizes(codes: np.ndarray, n: int) -> np.ndarray:
    counts = np.bincount(codes[codes >= 0], minlength=n).astype(float)
    return np.where(codes >= 0, counts[codes], np.nan)


def _take(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """values[positions], NaN where a position is -1."""
    values = np.append(values.astype("float64"), np.nan)
    return values[positions]


def _dates(df: pd.DataFrame) -> pd.Series:
    if not len(df):
        return pd.Series([], dtype="datetime64[ns]")
    number = (df["year"].astype("int64") * 10000 + df["month"].astype("int64") * 100
              + df["day"].astype("int64")).to_numpy()
    codes, uniques = pd.factorize(number)
    days = pd.to_datetime(pd.Series(uniques).astype(str), format="%Y%m%d").to_numpy()
    return pd.Series(days[codes], index=df.index)


def _join_planes(out: pd.DataFrame, planes: pd.DataFrame, date: dt.date) -> None:
    ref = planes.drop_duplicates("tailnum")
    tail = _Codes(ref["tailnum"].astype("string"))
    position = tail.of(out["tailnum"])
    out["plane_age"] = _take(date.year - ref["year"].astype("float64").to_numpy(), position)
    out["plane_seats"] = _take(ref["seats"].astype("float64").to_numpy(), position)
    out["plane_engines"] = _take(ref["engines"].astype("float64").to_numpy(), position)
    engine = ref["engine"].astype("string").to_numpy()
    out["plane_engine"] = pd.Series(np.append(engine, pd.NA)[position], dtype="string")


def _join_weather(out: pd.DataFrame, weather: pd.DataFrame, origin: _Codes) -> None:
    """Weather at the origin at the scheduled hour, or the nearest observed hour within 2 hours:
    looked up in an (origin x hour) grid filled by merge_asof."""
    wx = weather[["origin", "hour"] + WEATHER_FEATURES].copy()
    wx["origin"] = wx["origin"].astype("string")
    wx["hour"] = wx["hour"].astype("int64")
    wx = wx.astype({c: "float64" for c in WEATHER_FEATURES}).sort_values("hour")
    grid = pd.DataFrame({"origin": pd.Series(np.repeat(origin.uniques.to_numpy(), 24), dtype="string"),
                         "hour": np.tile(np.arange(24, dtype="int64"), origin.n)})
    grid["_cell"] = np.arange(len(grid))
    filled = pd.merge_asof(grid.sort_values("hour", kind="stable"), wx, on="hour", by="origin", direction="nearest", tolerance=2)
    filled = filled.sort_values("_cell")
    hours = out["hour"].to_numpy()
    cell = np.where((origin.codes >= 0) & (hours >= 0) & (hours <= 23), origin.codes * 24 + np.clip(hours, 0, 23), -1)
    for col in WEATHER_FEATURES:
        out[col] = _take(filled[col].to_numpy(), cell)


def _join_trailing(out: pd.DataFrame, history: pd.DataFrame, hist_dates: pd.Series,
                   date: dt.date, trailing_days: int, origin: _Codes) -> None:
    if not len(history):
        for col in TRAILING_FEATURES:
            out[col] = np.nan
        return
    start = pd.Timestamp(date) - pd.Timedelta(days=trailing_days)
    yesterday = pd.Timestamp(date) - pd.Timedelta(days=1)
    late = history["late_sum"].to_numpy(np.float64)
    count = history["late_count"].to_numpy(np.float64)
    when = hist_dates.to_numpy()
    keep = when >= start
    last = keep & (when == yesterday)
    prior = late[keep].sum() / count[keep].sum() if count[keep].sum() else np.nan
    carrier, dest = _Codes(out["carrier"]), _Codes(out["dest"])
    h_carrier, h_origin, h_dest = carrier.of(history["carrier"]), origin.of(history["origin"]), dest.of(history["dest"])
    route = np.where((h_origin >= 0) & (h_dest >= 0), h_origin * max(dest.n, 1) + h_dest, -1)
    out_route = origin.codes * max(dest.n, 1) + dest.codes
    for name, rows, h_codes, codes, n in (
            ("late_rate_carrier_7d", keep, h_carrier, carrier.codes, carrier.n),
            ("late_rate_route_7d", keep, route, out_route, origin.n * max(dest.n, 1)),
            ("late_rate_origin_7d", keep, h_origin, origin.codes, origin.n),
            ("late_rate_origin_1d", last, h_origin, origin.codes, origin.n),
            ("late_rate_carrier_1d", last, h_carrier, carrier.codes, carrier.n)):
        out[name] = _smoothed_rate(late, count, rows, h_codes, codes, n, prior)
    out["late_rate_all_1d"] = late[last].sum() / count[last].sum() if count[last].sum() else np.nan


def _smoothed_rate(late: np.ndarray, count: np.ndarray, rows: np.ndarray, h_codes: np.ndarray,
                   codes: np.ndarray, n: int, prior: float) -> np.ndarray:
    """Each flight's group late rate over the history `rows`, shrunk towards `prior` by
    _PRIOR_FLIGHTS; the prior itself for a group without history; NaN when `rows` is empty."""
    if not count[rows].sum():
        return np.full(len(codes), np.nan)
    use = rows & (h_codes >= 0)
    sums = np.bincount(h_codes[use], weights=late[use], minlength=n)
    counts = np.bincount(h_codes[use], weights=count[use], minlength=n)
    rate = (sums + _PRIOR_FLIGHTS * prior) / (counts + _PRIOR_FLIGHTS)
    return _take(rate, np.where(codes >= 0, codes, -1))


def __getattr__(name: str):
    """FLIGHTS, WEATHER, PLANES: the tables' contracts as dataset.toml declares them."""
    if name in ("FLIGHTS", "WEATHER", "PLANES"):
        from pipeline.description import builtin

        return builtin().contract(name.lower())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
