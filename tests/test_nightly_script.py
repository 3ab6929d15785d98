"""scripts/nightly.sh as cron runs it: `env -i`, another working directory, exit codes, a dated
log file and a JSON run summary."""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.landing import deliver
from tests.servers import free_port
from tests.test_commands import BIN, OVERLAY, PROJECT

NIGHTLY = PROJECT / "scripts" / "nightly.sh"


@pytest.fixture
def cron_env(tmp_path):
    overlay = tmp_path / "overlay.cfg"
    overlay.write_text(OVERLAY)
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "MLPIPE_ROOT": str(tmp_path / "root"),
           "LUIGI_CONFIG_PATH": str(overlay), "MLPIPE_LOG_DIR": str(tmp_path / "log"),
           "MLPIPE_LOCAL_SCHEDULER": "1"}
    landed = subprocess.run([BIN / "mlpipe", "land-demo", "--start", "2013-01-01", "--end", "2013-01-07"],
                            env=env, cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert landed.returncode == 0, landed.stderr
    return env


def nightly(env, cwd, *args):
    return subprocess.run(["env", "-i", *[f"{k}={v}" for k, v in env.items()], str(NIGHTLY), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_nightly_under_cron_environment_then_a_forced_failure(cron_env, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = nightly(cron_env, elsewhere, "2013-01-06")
    assert proc.returncode == 0, proc.stderr + Path(cron_env["MLPIPE_LOG_DIR"], "nightly-2013-01-06.log").read_text()[-3000:]
    log = Path(cron_env["MLPIPE_LOG_DIR"]) / "nightly-2013-01-06.log"
    text = log.read_text()
    assert "=== nightly 2013-01-06 started" in text and "finished" in text and "with exit code 0" in text
    assert "This progress looks :)" in text
    summary = json.loads((Path(cron_env["MLPIPE_LOG_DIR"]) / "nightly-2013-01-06.json").read_text())
    assert summary["date"] == "2013-01-06" and summary["exit_code"] == 0 and summary["exit_class"] == "success"
    assert summary["deployment"]["action"] in ("deployed", "kept")
    assert summary["rows"]["validation"]["flights"]["rows_in"] == len(
        pd.read_csv(Path(cron_env["MLPIPE_ROOT"]) / "landing" / "flights" / "flights_2013-01-06.csv"))
    assert summary["stages"]["train"]["tasks"] >= 1 and summary["metrics"]["challenger"]["roc_auc"]
    stored = list(Path(cron_env["MLPIPE_ROOT"]).glob("runs/nightly/date=2013-01-06/run-*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text()) == summary

    landing = str(Path(cron_env["MLPIPE_ROOT"]) / "landing")
    deliver(landing, "weather", dt.date(2013, 1, 7), b"origin,year\nEWR,2013\n")  # missing most of its columns
    proc = nightly(cron_env, elsewhere, "2013-01-07")
    assert proc.returncode == 30, proc.stderr  # [retcode] task_failed
    assert "nightly: 2013-01-07 failed with exit code 30" in proc.stderr
    failed = json.loads((Path(cron_env["MLPIPE_LOG_DIR"]) / "nightly-2013-01-07.json").read_text())
    assert failed["exit_class"] == "task_failed" and failed["deployment"] is None
    assert "missing required column(s)" in (Path(cron_env["MLPIPE_LOG_DIR"]) / "nightly-2013-01-07.log").read_text()


def test_nightly_refuses_a_second_copy_for_the_same_date(cron_env, tmp_path):
    log_dir = Path(cron_env["MLPIPE_LOG_DIR"])
    log_dir.mkdir(parents=True)
    with open(log_dir / "nightly-2013-01-03.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running copy holds it
        proc = nightly(cron_env, tmp_path, "2013-01-03")
    assert proc.returncode == 10, proc.stderr  # [retcode] already_running
    assert "a run for 2013-01-03 is already in progress" in proc.stderr
    assert not list(Path(cron_env["MLPIPE_ROOT"]).glob("raw/*/date=2013-01-03"))


def test_nightly_without_a_reachable_luigid_fails_clearly(cron_env, tmp_path):
    env = dict(cron_env)
    del env["MLPIPE_LOCAL_SCHEDULER"]
    overlay = Path(env["LUIGI_CONFIG_PATH"])
    overlay.write_text(overlay.read_text() + f"\n[core]\ndefault-scheduler-port = {free_port()}\n")
    proc = nightly(env, tmp_path, "2013-01-03")
    assert proc.returncode == 45, proc.stderr
    log = (Path(env["MLPIPE_LOG_DIR"]) / "nightly-2013-01-03.log").read_text()
    assert "the central scheduler (luigid) at" in log and "is unreachable" in log


def test_nightly_rejects_a_malformed_date(cron_env, tmp_path):
    proc = nightly(cron_env, tmp_path, "03/01/2013")
    assert proc.returncode == 2 and "DATE must be YYYY-MM-DD" in proc.stderr
