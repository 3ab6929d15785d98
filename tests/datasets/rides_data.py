"""Generated rides data for rides.toml: daily Parquet files of rides and a CSV of stations, as an
upstream system would deliver them. A ride's duration is 4 + 3.5 min/km + 6 min for casual riders
+ the station's own offset (which the trailing station mean picks up) + noise, so a model can
learn it well and a constant cannot."""
from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

STATIONS = [f"S{i:02d}" for i in range(1, 13)]
STATION_OFFSET = {s: 1.5 * (i % 5) for i, s in enumerate(STATIONS)}
ELEVATION = {s: 10.0 * i for i, s in enumerate(STATIONS)}


def rides(date: dt.date, n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng([seed, date.toordinal()])
    station = rng.choice(STATIONS, size=n)
    rider = rng.choice(["member", "casual"], size=n, p=[0.7, 0.3])
    distance = rng.gamma(2.0, 1.5, size=n).round(2)
    seconds = rng.integers(0, 24 * 3600, size=n)
    start = pd.Timestamp(date) + pd.to_timedelta(seconds, unit="s")
    offset = np.array([STATION_OFFSET[s] for s in station])
    duration = 4 + 3.5 * distance + 6.0 * (rider == "casual") + offset + rng.normal(0, 1.5, size=n)
    temperature = rng.normal(12, 6, size=n).round(1)
    temperature[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({
        "ride_id": date.toordinal() * 100_000 + np.arange(1, n + 1),
        "station": station,
        "started_at": start,  # a Parquet timestamp; the description reads it as text by its format
        "rider_type": rider,
        "distance_km": distance,
        "temperature_c": temperature,
        "duration_min": np.clip(duration, 0.5, None).round(2),
        "rating": rng.integers(1, 6, size=n),
        "bike_colour": rng.choice(["red", "blue"], size=n),  # not in the description: dropped at ingest
    })


def stations() -> pd.DataFrame:
    return pd.DataFrame({"station": STATIONS, "elevation_m": [ELEVATION[s] for s in STATIONS]})


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return sink.getvalue().to_pybytes()


def land(landing: str, start: dt.date, end: dt.date, n: int = 300, seed: int = 0) -> list[str]:
    """Write the rides of every day of [start, end] and the stations table where rides.toml says
    (a local landing zone). Returns the rides files written."""
    written = []
    day = start
    while day <= end:
        path = os.path.join(landing, "rides", f"{day:%Y/%m/%d}", "rides.parquet")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(parquet_bytes(rides(day, n, seed)))
        written.append(path)
        day += dt.timedelta(days=1)
    os.makedirs(os.path.join(landing, "stations"), exist_ok=True)
    stations().to_csv(os.path.join(landing, "stations", "stations.csv"), index=False)
    return written
