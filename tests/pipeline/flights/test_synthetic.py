"""Synthetic scale data: realistic (resampled from the real day, contract-clean, same label
relation), deterministic per (seed, date), and with drift where asked."""
from __future__ import annotations

import datetime as dt
import io
import os

import numpy as np
import pandas as pd
import pytest

from pipeline import ingest, validate
from pipeline.description import builtin
from pipeline.flights import features as flights
from pipeline.flights import synthetic
from pipeline.flights.landing import landing_file, ready_file
from tasks.cli import main

DAY = dt.date(2022, 7, 14)


@pytest.fixture(scope="module")
def source():
    return synthetic.Source()


def day_files(source, date, rows, seed=3, drift=None):
    rng = np.random.default_rng([seed, date.toordinal()])
    base = source.flights[synthetic.real_day(date)]
    flights_csv = synthetic.csv_bytes(synthetic.synthetic_flights(base, date, rows, rng, drift))
    weather_csv = synthetic.synthetic_weather(source.weather[synthetic.real_day(date)], date).to_csv(index=False).encode()
    return flights_csv, weather_csv


def clean(data: bytes, contract, date):
    parsed = ingest.parse_landing_file(data, "synthetic.csv", contract)
    return validate.validate_table(parsed, contract, "synthetic.csv", date)


def test_a_synthetic_day_meets_the_contracts_with_unique_keys(source):
    flights_csv, weather_csv = day_files(source, DAY, 30_000)
    result = clean(flights_csv, flights.FLIGHTS, DAY)
    assert result.report["rows_in"] == 30_000
    assert result.report["rows_quarantined"] == 0, result.report["quarantined_by_rule"]
    frame = result.clean
    assert not frame.duplicated(list(flights.FLIGHTS.key)).any()
    assert (frame["year"] == 2022).all() and (frame["month"] == 7).all() and (frame["day"] == 14).all()
    assert (frame["hour"] * 100 + frame["minute"] == frame["sched_dep_time"]).all()
    assert frame["time_hour"].str.startswith("2022-07-1").all()
    weather = clean(weather_csv, flights.WEATHER, DAY)
    assert weather.report["rows_in"] > 60 and weather.report["rows_quarantined"] <= 2


def test_the_label_depends_on_the_features_as_in_the_real_day(source):
    flights_csv, _ = day_files(source, DAY, 50_000)
    synth = pd.read_csv(io.BytesIO(flights_csv))
    real = source.flights[synthetic.real_day(DAY)]
    def late(frame):  # the flights target (dataset.toml) of each row
        return pd.Series(builtin().label(frame), index=frame.index)
    assert abs(late(synth).mean() - late(real).mean()) < 0.02
    # the late rate by carrier and by origin follows the real day's (resampled jointly)
    for key in ("carrier", "origin"):
        by_real = late(real).groupby(real[key]).mean()
        by_synth = late(synth).groupby(synth[key]).mean()
        big = real[key].value_counts()[lambda c: c >= 40].index
        assert np.allclose(by_synth[big].to_numpy(float), by_real[big].to_numpy(float), atol=0.06), key
    assert set(synth["tailnum"].dropna()) <= set(real["tailnum"].dropna())


def test_a_day_depends_only_on_seed_and_date(source):
    a = day_files(source, DAY, 2_000, seed=3)
    assert a == day_files(source, DAY, 2_000, seed=3)
    assert a[0] != day_files(source, DAY, 2_000, seed=4)[0]
    assert a[0] != day_files(source, DAY + dt.timedelta(days=1), 2_000, seed=3)[0]


def test_drift_moves_departures_later_and_delays_up_from_its_start(source):
    drift = synthetic.Drift(DAY, shift_minutes=90, delay_minutes=20)
    plain = pd.read_csv(io.BytesIO(day_files(source, DAY, 20_000)[0]))
    drifted = pd.read_csv(io.BytesIO(day_files(source, DAY, 20_000, drift=drift)[0]))
    before = pd.read_csv(io.BytesIO(day_files(source, DAY - dt.timedelta(days=1), 20_000, drift=drift)[0]))
    minutes = lambda f: f["sched_dep_time"] // 100 * 60 + f["sched_dep_time"] % 100  # noqa: E731
    assert minutes(drifted).mean() - minutes(plain).mean() > 60
    assert drifted["arr_delay"].mean() - plain["arr_delay"].mean() == pytest.approx(20, abs=3)
    assert before.equals(pd.read_csv(io.BytesIO(day_files(source, DAY - dt.timedelta(days=1), 20_000)[0])))


def test_mlpipe_land_synthetic_writes_the_landing_zone(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLPIPE_ROOT", str(tmp_path))
    assert main(["land-synthetic", "--start", "2022-07-13", "--end", "2022-07-14", "--rows-per-day", "1500",
                 "--seed", "3", "--drift-start", "2022-07-14"]) == 0
    assert "5 file(s) written" in capsys.readouterr().out
    landing = str(tmp_path / "landing")
    day = pd.read_csv(landing_file(landing, "flights", DAY))
    assert len(day) == 1500
    assert pd.read_csv(landing_file(landing, "planes")).shape[0] > 3000
    for table, day in [("flights", DAY), ("weather", DAY), ("weather", DAY - dt.timedelta(days=1)), ("planes", None)]:
        marker = ready_file(landing, table, day)  # written after each file: it counts as delivered
        assert os.stat(marker).st_mtime_ns >= os.stat(landing_file(landing, table, day)).st_mtime_ns
    # a second run leaves the files alone
    assert main(["land-synthetic", "--start", "2022-07-13", "--end", "2022-07-14", "--rows-per-day", "1500"]) == 0
    assert "0 file(s) written, 5 already there" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="2"):  # argparse: exit 2 naming the option
        main(["land-synthetic", "--start", "2022-07-13", "--end", "2022-07-14", "--rows-per-day", "0"])
    assert "argument --rows-per-day: must be a whole number of at least 1, not '0'" in capsys.readouterr().err
    assert main(["land-synthetic", "--start", "2022-07-13", "--end", "2022-07-14", "--rows-per-day", "10",
                 "--drift-delay-minutes", "5"]) == 2
    assert "need --drift-start" in capsys.readouterr().err
