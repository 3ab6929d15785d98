"""The rides dataset's feature function (rides.toml beside it): a test dataset's own small
feature module, imported from the description's directory as a user's would be."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.dataset import DayData


def build_features(day: DayData) -> pd.DataFrame:
    """One row per ride: its start hour, distance, temperature, the station's elevation (from the
    stations table), the station's mean ride minutes over the earlier days of `day.history`, and
    the mean minutes of every ride of those days (a day-level feature: one value for the day)."""
    rides = day.rows
    started = pd.to_datetime(rides["started_at"].astype("object"), format="%Y-%m-%d %H:%M:%S")
    stations = day.references["stations"].drop_duplicates("station").set_index("station")
    known = day.history[day.history["duration_min"].notna()]  # no rows on the first day
    by_station = known.groupby("station")["duration_min"].mean()
    station = rides["station"].astype("string")
    return pd.DataFrame({
        "start_hour": started.dt.hour.astype("float64").to_numpy(),
        "distance_km": rides["distance_km"].to_numpy(dtype="float64"),
        "temperature_c": rides["temperature_c"].to_numpy(dtype="float64", na_value=np.nan),
        "elevation_m": station.map(stations["elevation_m"]).to_numpy(dtype="float64", na_value=np.nan),
        "station_minutes_3d": station.map(by_station).to_numpy(dtype="float64", na_value=np.nan),
        "day_minutes_3d": np.full(len(rides), known["duration_min"].mean() if len(known) else np.nan),
        "station": station,
        "rider_type": rides["rider_type"].astype("string"),
    })
