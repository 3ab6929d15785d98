"""The commands users type: `luigi --module tasks ...` and `mlpipe ...`, as real processes,
with exit codes from luigi.cfg's [retcode] section."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.landing import deliver


PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# The short pipeline of the command tests: deployments from 2013-01-05, tiny models.
SHORT_PIPELINE = """
[pipeline]
start_date = 2013-01-01
warmup_days = 4
[FeaturePartition]
trailing_days = 3
[CandidateModel]
window_days = 6
holdout_days = 1
max_iter = 30
importance_repeats = 1
[gate]
min_roc_auc = 0.5
"""
# ...with failures reported at once, not after luigi.cfg's retry policy (tests/test_outages.py
# runs that).
OVERLAY = SHORT_PIPELINE + """[worker]
keep_alive = false
"""


@pytest.fixture
def env(tmp_path):
    overlay = tmp_path / "overlay.cfg"
    overlay.write_text(OVERLAY)
    environ = dict(os.environ, MLPIPE_ROOT=str(tmp_path / "root"), LUIGI_CONFIG_PATH=str(overlay))
    environ.pop("MLPIPE_LANDING", None)
    return environ


def run(args, env, cwd=PROJECT):
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def land(env, start, end):
    proc = run([BIN / "mlpipe", "land-demo", "--start", start, "--end", end], env)
    assert proc.returncode == 0, proc.stderr
    return Path(env["MLPIPE_ROOT"]) / "landing"


@pytest.mark.slow
def test_luigi_command_runs_the_nightly_pipeline_and_a_rerun_does_nothing(env):
    land(env, "2013-01-01", "2013-01-07")
    args = [BIN / "luigi", "--module", "tasks", "NightlyPipeline", "--date", "2013-01-06", "--local-scheduler"]
    proc = run(args, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = Path(env["MLPIPE_ROOT"])
    decisions = sorted(root.glob("deployments/flights/h=*/date=*/decision.json"))
    assert [p.parent.name for p in decisions] == ["date=2013-01-05", "date=2013-01-06"]
    assert json.loads(decisions[-1].read_text())["production_version"]

    again = run(args, env)
    assert again.returncode == 0
    assert "Did not run any tasks" in again.stderr
    assert "1 complete ones were encountered" in again.stderr


@pytest.mark.slow
def test_failed_validation_exits_with_task_failed_code(env):
    landing = land(env, "2013-01-01", "2013-01-03")
    bad = landing / "flights" / "flights_2013-01-02.csv"
    frame = pd.read_csv(bad).drop(columns=["arr_delay"])
    deliver(str(landing), "flights", dt.date(2013, 1, 2), frame.to_csv(index=False).encode())
    proc = run([BIN / "luigi", "--module", "tasks", "NightlyPipeline", "--date", "2013-01-03",
                "--local-scheduler"], env)
    assert proc.returncode == 30, proc.stderr[-3000:]  # [retcode] task_failed
    assert f"landing file {bad} is missing required column(s) ['arr_delay']" in proc.stderr


def test_missing_landing_day_is_waited_for_visibly_then_exits_with_missing_data_from_any_directory(env, tmp_path):
    land(env, "2013-01-01", "2013-01-01")
    with open(env["LUIGI_CONFIG_PATH"], "a") as cfg:
        cfg.write("[landing]\nwait = 3\nwait_poll = 0.5\nwait_report = 1\n")
    proc = run([BIN / "mlpipe", "run", "--date", "2013-01-02"], env, cwd=tmp_path)  # no luigi.cfg here
    assert proc.returncode == 20, proc.stderr[-3000:]  # [retcode] missing_data, from the project's luigi.cfg
    files = "flights/flights_2013-01-02.csv (missing), weather/weather_2013-01-02.csv (missing)"
    waiting = [line for line in proc.stderr.splitlines() if "mlpipe: waiting for 2 landing file(s) of 2013-01-02" in line]
    assert len(waiting) >= 2 and all(line.endswith(files) and "([landing] wait = 3 s)" in line for line in waiting)
    assert proc.stderr.splitlines()[-1] == (
        "mlpipe: 2013-01-02 finished with exit code 20 (missing_data): gave up waiting for landing files of "
        f"2013-01-02 after 3 s ([landing] wait in luigi.cfg): {files}; rerun when they land")
    # the day's file is past its freshness rule (04:00 New York time on 2013-01-03): late data, once per file
    assert proc.stderr.count("mlpipe: late data: flights/flights_2013-01-02.csv (flights of 2013-01-02) was "
                             "expected by 2013-01-03T04:00:00-05:00") == 1


def test_land_demo_writes_daily_files_once(env):
    landing = land(env, "2013-01-01", "2013-01-02")
    files = sorted(p.relative_to(landing).as_posix() for p in landing.rglob("*.csv"))
    assert files == ["flights/flights_2013-01-01.csv", "flights/flights_2013-01-02.csv",
                     "planes/planes.csv", "weather/weather_2013-01-01.csv", "weather/weather_2013-01-02.csv"]
    assert len(pd.read_csv(landing / "flights" / "flights_2013-01-01.csv")) == 842
    proc = run([BIN / "mlpipe", "land-demo", "--start", "2013-01-01", "--end", "2013-01-02"], env)
    assert "0 file(s) written, 5 already there" in proc.stdout


def test_land_demo_outside_the_embedded_year_is_refused(env):
    proc = run([BIN / "mlpipe", "land-demo", "--start", "2012-12-31", "--end", "2013-01-01"], env)
    assert proc.returncode != 0
    assert "covers 2013-01-01..2013-12-31" in proc.stderr


@pytest.mark.slow
def test_mlpipe_run_summary_and_quality_read_the_stored_outputs(env):
    land(env, "2013-01-01", "2013-01-08")
    proc = run([BIN / "mlpipe", "backfill", "--start", "2013-01-05", "--end", "2013-01-08", "--workers", "2"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    summary = run([BIN / "mlpipe", "summary", "--date", "2013-01-08"], env)
    assert summary.returncode == 0, summary.stderr
    lines = summary.stdout.splitlines()
    assert lines[1].startswith("in production:        ")  # the model in production leads
    model_line = next(line for line in lines if line.strip().startswith("production model:"))
    assert Path(model_line.split()[2]).is_file()
    assert any(line.startswith("decision of 2013-01-08: ") for line in lines) and "challenger holdout:" in summary.stdout

    quality = run([BIN / "mlpipe", "quality", "--start", "2013-01-06", "--end", "2013-01-08"], env)
    assert quality.returncode == 0, quality.stderr
    figures = json.loads(quality.stdout)
    root = Path(env["MLPIPE_ROOT"])
    predictions = pd.concat(pd.read_parquet(p) for p in root.glob("predictions/flights/h=*/date=*/part-0.parquet")
                            if p.parent.name >= "date=2013-01-06")
    assert figures["days"] == 3 and figures["rows_total"] == len(predictions)
    assert 0.5 < figures["roc_auc"] < 1
