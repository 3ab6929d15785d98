"""Shared builders for the pipeline unit tests: hand-made flights-shaped rows and a storage root
under pytest's tmp_path."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sklearn.ensemble  # noqa: F401 - loads the OpenMP runtime so threadpool_limits below can cap it
from threadpoolctl import threadpool_limits

from pipeline import storage as st
from pipeline.flights.features import FLIGHTS

DAY = dt.date(2013, 1, 10)


def flight(**overrides) -> dict:
    """One valid flights row of DAY (clean under the FLIGHTS contract); override any column."""
    row = {
        "year": DAY.year, "month": DAY.month, "day": DAY.day,
        "dep_time": 602.0, "sched_dep_time": 600, "dep_delay": 2.0,
        "arr_time": 830.0, "sched_arr_time": 825, "arr_delay": 5.0,
        "carrier": "UA", "flight": 100, "tailnum": "N100UA", "origin": "EWR", "dest": "ORD",
        "air_time": 120.0, "distance": 719.0, "hour": 6, "minute": 0,
        "time_hour": f"{DAY.isoformat()}T11:00:00Z",
    }
    row.update(overrides)
    if "sched_dep_time" in overrides and "hour" not in overrides and "minute" not in overrides:
        row["hour"], row["minute"] = divmod(int(overrides["sched_dep_time"]), 100)
    return row


def flights_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows typed the way ingest.parse_landing_file types them (Int64, float64, string)."""
    df = pd.DataFrame(rows, columns=FLIGHTS.names)
    kinds = {"int": "Int64", "float": "float64", "string": "string"}
    return df.astype({c.name: kinds[c.kind] for c in FLIGHTS.columns})


def many_flights(n: int, date: dt.date = DAY, seed: int = 0) -> pd.DataFrame:
    """`n` distinct valid flights on `date` (unique contract keys)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        hour = 5 + i % 18
        minute = (i * 7) % 60
        rows.append(flight(year=date.year, month=date.month, day=date.day,
                           flight=1 + i, sched_dep_time=hour * 100 + minute, hour=hour, minute=minute,
                           arr_delay=float(rng.integers(-20, 60)),
                           origin=["EWR", "JFK", "LGA"][i % 3], tailnum=f"N{i:03d}XX"))
    return flights_frame(rows)


@pytest.fixture(scope="session", autouse=True)
def one_native_thread():
    """Gradient boosting slows down by orders of magnitude when its OpenMP threads compete for
    cores (see [compute] threads); cap native pools the way tasks.config.limit_threads does."""
    with threadpool_limits(limits=1):
        yield


# Exposed as fixtures (not imported) so that no test module imports a module named `conftest`.
@pytest.fixture
def make_flight():
    return flight


@pytest.fixture
def make_flights():
    return flights_frame


@pytest.fixture
def make_many_flights():
    return many_flights


@pytest.fixture(scope="module")
def data():
    """1500 rows of the synthetic binary problem (tests.pipeline.builders.synthetic)."""
    from tests.pipeline.builders import synthetic

    return synthetic(1500)


@pytest.fixture(scope="module")
def fitted(data):
    """(model, metadata) of the configured estimator fitted on the first 1000 rows of `data`."""
    from tests.pipeline.builders import fit

    return fit(data.iloc[:1000])


@pytest.fixture
def storage(tmp_path) -> st.Storage:
    return st.Storage(str(tmp_path / "root"))
