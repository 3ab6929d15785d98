"""A second dataset through the whole nightly chain: tests/datasets/rides.toml (bike-share
rides in daily Parquet files, a CSV stations table, a regression target, its own feature module),
with data generated here. Nothing in the stages was written for it; `mlpipe --dataset` points
the same commands at it."""
from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pandas as pd
import pytest

from pipeline import storage as st
from tests.datasets import rides_data

RIDES = os.path.join(os.path.dirname(__file__), "datasets", "rides.toml")
START, END = dt.date(2024, 3, 1), dt.date(2024, 3, 10)
SHORT = {
    "pipeline": {"start_date": START.isoformat(), "warmup_days": 5},
    "CandidateModel": {"window_days": 5, "holdout_days": 1, "max_iter": 60, "importance_repeats": 1,
                       "tuning_trials": 2, "tuning_families": '["hgb", "linear"]', "tuning_folds": 2},
    "gate": {"tolerance": 0.5},
    "compute": {"threads": 1},
}


@pytest.fixture
def rides_root(root, luigi_config, monkeypatch):
    from tasks.config import get_storage

    monkeypatch.setenv("MLPIPE_DATASET", RIDES)
    luigi_config(SHORT)
    rides_data.land(get_storage().landing, START, END)
    return root


def _mlpipe(*args: str) -> int:
    from tasks.cli import main

    return main(["--dataset", RIDES, *args])


@pytest.mark.slow
def test_the_rides_dataset_runs_the_whole_nightly_chain(rides_root, tmp_path, capsys):
    from tasks import (CandidateModel, CleanPartition, Deployment, FeaturePartition, ModelEvaluation,
                       ModelMonitoring, Predictions)
    from tasks.config import get_storage, model_registry

    # a bad ride on one day: an unknown rider type and a start on another day are quarantined
    day3 = START + dt.timedelta(days=2)
    path = os.path.join(get_storage().landing, "rides", f"{day3:%Y/%m/%d}", "rides.parquet")
    frame = rides_data.rides(day3, 300)
    frame.loc[0, "rider_type"] = "robot"
    frame.loc[1, "started_at"] = pd.Timestamp("2024-02-01 10:00:00")
    with open(path, "wb") as out:
        out.write(rides_data.parquet_bytes(frame))
    landed = open(path, "rb").read()

    assert _mlpipe("backfill", "--start", START.isoformat(), "--end", END.isoformat()) == 0

    report = st.read_json(CleanPartition(table="rides", date=day3).outputs(day3)["report"])
    assert report["rows_in"] == 300 and report["rows_quarantined"] == 2
    assert report["quarantined_by_rule"] == {"allowed:rider_type": 1, "partition_date": 1}
    assert open(path, "rb").read() == landed, "the landing file is never modified"

    features = st.read_parquet(FeaturePartition(date=END).data())
    expected = rides_data.rides(END, 300)
    assert list(features.columns) == ["date", "ride_id", "station", "start_hour", "distance_km", "temperature_c",
                                      "elevation_m", "station_minutes_3d", "day_minutes_3d", "rider_type",
                                      "duration_min"]
    assert features["ride_id"].tolist() == expected["ride_id"].tolist()
    np.testing.assert_allclose(features["duration_min"], expected["duration_min"])
    assert features["station_minutes_3d"].notna().all()  # three earlier days of every station
    first_day = st.read_parquet(FeaturePartition(date=START).data())
    assert len(first_day) == 300 and first_day["station_minutes_3d"].isna().all()  # no earlier day
    assert "rating" not in features.columns and "bike_colour" not in features.columns

    first = START + dt.timedelta(days=5)
    meta = st.read_json(CandidateModel(date=first).files()["metadata"])
    assert meta["task"] == "regression" and meta["target"] == "duration_min"
    assert [t["score_name"] for t in meta["tuning"]["trials"]] == ["rmse", "rmse"]
    assert meta["family"] == meta["tuning"]["best"]["family"] in ("hgb", "linear")
    assert meta["target_mean"] == pytest.approx(
        np.mean(np.concatenate([rides_data.rides(START + dt.timedelta(days=i), 300)["duration_min"]
                                for i in range(4)])), rel=0.02)
    record = st.read_json(ModelEvaluation(date=first).record())
    challenger = record["challenger"]
    assert challenger["rmse"] < 0.5 * challenger["baseline_rmse"] and challenger["r2_vs_baseline"] > 0.7
    assert record["decision"]["blessed"] and any("r2_vs_baseline" in r for r in record["decision"]["reasons"])
    decisions = [st.read_json(Deployment(date=first + dt.timedelta(days=i)).data()) for i in range(5)]
    assert decisions[0]["action"] == "deployed"

    scored = st.read_parquet(Predictions(date=END).data())
    truth = rides_data.rides(END, 300)
    assert scored["ride_id"].tolist() == truth["ride_id"].tolist()
    errors = scored["score"].to_numpy() - truth["duration_min"].to_numpy()
    assert np.sqrt(np.mean(errors ** 2)) < 3.0, "predictions are ride minutes, close to the real ones"
    monitoring = st.read_json(ModelMonitoring(date=END).data())
    assert monitoring["realized"]["r2_vs_baseline"] > 0.7 and monitoring["alerts"] == []
    assert set(monitoring["feature_psi"]) == {"start_hour", "distance_km", "temperature_c", "elevation_m",
                                              "station_minutes_3d", "station", "rider_type"}
    # the day-level feature is judged against the training days' values, not binned: no PSI, no alert
    day_level = monitoring["day_level"]["day_minutes_3d"]
    assert day_level["reference_days"] == 4 and day_level["varies_today"] is False
    assert day_level["value"] == pytest.approx(features["day_minutes_3d"].iloc[0])
    # quality and monitoring measure r2_vs_baseline against the same baseline: the model's training mean
    capsys.readouterr()
    assert _mlpipe("quality", "--start", END.isoformat(), "--end", END.isoformat()) == 0
    one_day = json.loads(capsys.readouterr().out)
    assert one_day["r2_vs_baseline"] == pytest.approx(monitoring["realized"]["r2_vs_baseline"], rel=1e-9)
    assert one_day["baseline"] == pytest.approx(model_registry().manifest(monitoring["model_version"])["target_mean"])

    capsys.readouterr()
    assert _mlpipe("quality", "--start", first.isoformat(), "--end", END.isoformat()) == 0
    quality = json.loads(capsys.readouterr().out)
    assert quality["rows_total"] == 5 * 300 and quality["rmse"] < 3.0
    assert _mlpipe("models", "list") == 0
    assert "holdout rmse" in capsys.readouterr().out
    page = tmp_path / "report.html"
    assert _mlpipe("report", "--start", first.isoformat(), "--end", END.isoformat(), "--output", str(page)) == 0
    html = page.read_text()
    assert "RMSE" in html and "rides" in html and "ROC AUC" not in html

    # a second run finds everything done
    assert _mlpipe("plan", "--start", START.isoformat(), "--end", END.isoformat()) == 0
    assert "0 task(s) would run, 0 blocked by 0 landing file(s) not delivered yet" in capsys.readouterr().out
    # the root belongs to rides now: the flights dataset is refused there
    assert main_flights("run", "--date", END.isoformat()) == 2
    assert "holds dataset 'rides'" in capsys.readouterr().err


def main_flights(*args: str) -> int:
    from pipeline.description import BUILTIN
    from tasks.cli import main

    return main(["--dataset", BUILTIN, *args])


@pytest.mark.slow
def test_the_cron_script_runs_the_rides_night_and_reports_a_leaking_feature_function(tmp_path):
    """scripts/nightly.sh under cron's environment with MLPIPE_DATASET: the night's own log and
    summary, regression metrics in the summary; then a feature function that returns the target
    fails the night (exit 30) with the function and the column named in the log."""
    from tests.test_nightly_script import nightly

    overlay = tmp_path / "overlay.cfg"
    overlay.write_text("[pipeline]\nstart_date = 2024-03-01\nwarmup_days = 5\n[CandidateModel]\nwindow_days = 5\n"
                       "holdout_days = 1\nmax_iter = 60\n[worker]\nkeep_alive = false\n")
    landing = tmp_path / "root" / "landing"
    rides_data.land(str(landing), START, START + dt.timedelta(days=6))
    datasets = tmp_path / "datasets"  # the user's own copy, beside its feature module
    datasets.mkdir()
    for name in ("rides.toml", "rides_features.py"):
        (datasets / name).write_text(open(os.path.join(os.path.dirname(RIDES), name)).read())
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "MLPIPE_ROOT": str(tmp_path / "root"),
           "LUIGI_CONFIG_PATH": str(overlay), "MLPIPE_LOG_DIR": str(tmp_path / "log"),
           "MLPIPE_LOCAL_SCHEDULER": "1", "MLPIPE_DATASET": str(datasets / "rides.toml")}
    day = START + dt.timedelta(days=5)
    proc = nightly(env, tmp_path, day.isoformat())
    log = tmp_path / "log" / f"nightly-rides-{day}.log"
    assert proc.returncode == 0, proc.stderr + log.read_text()[-3000:]
    summary = json.loads((tmp_path / "log" / f"nightly-rides-{day}.json").read_text())
    assert summary["exit_class"] == "success" and summary["deployment"]["action"] == "deployed"
    assert summary["rows"]["validation"]["rides"]["rows_in"] == 300 and summary["rows"]["features"] == 300
    assert summary["metrics"]["challenger"]["r2_vs_baseline"] > 0.7

    leaky = (datasets / "rides_features.py").read_text().replace(
        '        "rider_type": rides["rider_type"].astype("string"),',
        '        "rider_type": rides["rider_type"].astype("string"),\n        "rating": 1.0,')
    assert leaky != (datasets / "rides_features.py").read_text()
    (datasets / "rides_features.py").write_text(leaky)
    later = day + dt.timedelta(days=1)
    proc = nightly(env, tmp_path, later.isoformat())
    assert proc.returncode == 30, proc.stderr
    text = (tmp_path / "log" / f"nightly-rides-{later}.log").read_text()
    assert ("feature function rides_features:build_features (from " + str(datasets / "rides.toml")
            + ") returned the target or outcome column(s) ['rating']") in text
    features = tmp_path / "root" / "features" / "rides"
    assert list(features.glob(f"*/date={day}/part-0.parquet"))
    assert not list(features.glob(f"*/date={later}/*")), "nothing is written for the failed day"


@pytest.mark.slow
def test_rides_parquet_landing_files_on_s3(moto_server, s3_bucket, monkeypatch, luigi_config, caplog):
    """The rides data stages with the landing zone and the root on S3 (moto's server over HTTP):
    Parquet and CSV files put there as an upstream system would, the features read back with a
    plain client; a truncated Parquet file fails its day naming the object."""
    import io

    import boto3

    monkeypatch.setenv("MLPIPE_ROOT", f"s3://{s3_bucket}/pipeline")
    monkeypatch.setenv("MLPIPE_LANDING", f"s3://{s3_bucket}/landing")
    luigi_config({**SHORT, "s3": {"endpoint_url": moto_server.endpoint, "region_name": "us-east-1"},
                  "core": {"no_lock": "true"}})  # two mlpipe runs in this process: luigi's pid lock would refuse the second
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint, region_name="us-east-1")
    days = [START + dt.timedelta(days=i) for i in range(5)]
    for day in days:
        data = rides_data.parquet_bytes(rides_data.rides(day, 200))
        if day == days[-1]:
            data = data[: len(data) // 2]  # cut off mid-delivery
        s3.put_object(Bucket=s3_bucket, Key=f"landing/rides/{day:%Y/%m/%d}/rides.parquet", Body=data)
    s3.put_object(Bucket=s3_bucket, Key="landing/stations/stations.csv",
                  Body=rides_data.stations().to_csv(index=False).encode())

    assert _mlpipe("backfill", "--stage", "features", "--start", str(days[0]), "--end", str(days[3])) == 0
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="pipeline/features/rides/")["Contents"]]
    key = next(k for k in keys if f"date={days[3]}/part-0.parquet" in k)
    features = pd.read_parquet(io.BytesIO(s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()))
    expected = rides_data.rides(days[3], 200)
    assert features["ride_id"].tolist() == expected["ride_id"].tolist()
    np.testing.assert_allclose(features["duration_min"], expected["duration_min"])
    assert features["station_minutes_3d"].notna().all() and features["elevation_m"].notna().all()

    caplog.clear()
    assert _mlpipe("backfill", "--stage", "features", "--start", str(days[4]), "--end", str(days[4])) == 30
    assert (f"landing file s3://{s3_bucket}/landing/rides/{days[4]:%Y/%m/%d}/rides.parquet cannot be read as "
            "Parquet (rule: parseable)") in caplog.text
    raw = s3.list_objects_v2(Bucket=s3_bucket, Prefix=f"pipeline/raw/rides/date={days[4]}/")
    assert raw.get("KeyCount", 0) == 0, "nothing of the failed day is stored"
