"""Long-lived worker processes (tasks/workers.py): `mlpipe backfill --processes N` and
`mlpipe worker`, through a real luigid, each task run once and the outputs those of one process."""
from __future__ import annotations

import collections
import datetime as dt
import re
import shutil
import subprocess
import time
from pathlib import Path

import luigi
import luigi.scheduler
import luigi.worker
import pandas as pd
import pytest

from pipeline.dates import month_spans
from tasks.workers import LongLivedWorker, work_left
from tests.luigid_server import LuigidServer
from tests.test_commands import BIN, PROJECT
from tests.test_luigid import land, pipeline_env, run

# "[pid N] Worker Worker(...) running   Task(...)": which process ran which task.
RAN = re.compile(r"\[pid (\d+)\] Worker Worker\(.*?\) running   (.+)$", re.M)


def ran_by_process(*logs: str) -> dict[str, collections.Counter]:
    by_pid: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for log in logs:
        for pid, task in RAN.findall(log):
            by_pid[pid][task] += 1
    return by_pid


def assert_each_task_once_and_shared(by_pid: dict[str, collections.Counter], processes: int) -> collections.Counter:
    runs = sum(by_pid.values(), collections.Counter())
    assert len(by_pid) == processes and all(by_pid.values()), {p: sum(c.values()) for p, c in by_pid.items()}
    assert max(runs.values()) == 1, [task for task, n in runs.items() if n > 1]
    return runs


def same_parquets(a: Path, b: Path, pattern: str) -> int:
    found = sorted(p.relative_to(a) for p in a.glob(pattern))
    assert found == sorted(p.relative_to(b) for p in b.glob(pattern))
    for path in found:
        pd.testing.assert_frame_equal(pd.read_parquet(a / path), pd.read_parquet(b / path))
    return len(found)


@pytest.mark.slow
def test_backfill_in_two_long_lived_processes_runs_each_task_once_with_the_outputs_of_one(tmp_path):
    pooled, alone = pipeline_env(tmp_path, "pooled"), pipeline_env(tmp_path, "alone")
    land(pooled)
    shutil.copytree(Path(pooled["MLPIPE_ROOT"]) / "landing", Path(alone["MLPIPE_ROOT"]) / "landing")
    backfill = [BIN / "mlpipe", "backfill", "--start", "2013-01-01", "--end", "2013-01-06"]

    proc = run([*backfill, "--processes", "2"], pooled)
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = assert_each_task_once_and_shared(ran_by_process(proc.stderr), 2)
    single = run(backfill, alone)
    assert single.returncode == 0, single.stderr[-3000:]
    assert collections.Counter(t for _, t in RAN.findall(single.stderr)) == runs
    rerun = run([*backfill, "--processes", "2"], pooled)
    assert rerun.returncode == 0 and not RAN.findall(rerun.stderr), rerun.stderr[-3000:]

    a, b = Path(pooled["MLPIPE_ROOT"]), Path(alone["MLPIPE_ROOT"])
    assert same_parquets(a, b, "predictions/**/part-0.parquet") == 2
    assert same_parquets(a, b, "features/**/*.parquet") >= 6


@pytest.mark.slow
def test_mlpipe_worker_joins_a_central_backfill_and_leaves_when_luigid_has_no_work(tmp_path):
    env = pipeline_env(tmp_path)
    land(env)
    with LuigidServer(tmp_path / "luigid") as server:
        overlay = Path(env["LUIGI_CONFIG_PATH"])
        # The submitting backfill keeps polling while the worker host runs its tasks (luigi.cfg's
        # keep_alive, which the tests' overlay turns off).
        overlay.write_text(overlay.read_text().replace("keep_alive = false", "keep_alive = true")
                           + f"\n[core]\ndefault-scheduler-port = {server.port}\n")
        worker = subprocess.Popen([str(BIN / "mlpipe"), "worker", "--processes", "2", "--idle", "3",
                                   "--scheduler-url", server.url + "/"],
                                  env=env, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        backfill = run([BIN / "mlpipe", "backfill", "--start", "2013-01-01", "--end", "2013-01-06", "--stage",
                        "features", "--central"], env)
        started = time.monotonic()
        _, worker_log = worker.communicate(timeout=120)
        left_after = time.monotonic() - started
    assert backfill.returncode == 0, backfill.stderr[-4000:]
    assert worker.returncode == 0, worker_log[-4000:]
    assert "2 worker processes taking work from luigid" in worker_log
    by_pid = ran_by_process(backfill.stderr, worker_log)
    assert_each_task_once_and_shared(by_pid, len(by_pid))
    assert len(by_pid) >= 2, "the worker host ran tasks"
    assert left_after < 60  # it left by itself, --idle 3 s after the last task (plus its polling)


class _Runnable(luigi.Task):
    def complete(self):
        return False

    def run(self):
        pass


class _Missing(luigi.ExternalTask):  # a landing file not delivered: nobody can run it
    def complete(self):
        return False


def test_a_long_lived_worker_stays_while_luigid_has_work_and_leaves_after_its_idle_time():
    busy = luigi.scheduler.Scheduler()
    assert not work_left(busy)
    with luigi.worker.Worker(scheduler=busy, worker_id="submitter") as submitter:
        submitter.add(_Runnable())
        assert work_left(busy)
        with LongLivedWorker(scheduler=busy, idle=1e-6, worker_id="helper") as helper:
            helper._keep_alive(None)
            time.sleep(0.01)
            assert helper._keep_alive(None)  # a task pending for another worker: it stays, idle time or not

        with LongLivedWorker(scheduler=busy, idle=5, worker_id="helper2") as helper:
            helper._quiet_since = time.monotonic() - 4  # idle for a while before the work came
            assert helper._get_work().task_id is not None
            assert helper._quiet_since is None  # taking a task starts its idle time anew

    waiting = luigi.scheduler.Scheduler()
    with luigi.worker.Worker(scheduler=waiting, worker_id="submitter") as submitter:
        submitter.add(_Missing())
        assert not work_left(waiting)  # what waits for data nobody can run keeps no worker
        with LongLivedWorker(scheduler=waiting, idle=0.5, worker_id="helper") as helper:
            started = time.monotonic()
            assert helper.run()  # nothing to run anywhere: it leaves once idle for 0.5 s
            assert 0.4 < time.monotonic() - started < 10


def test_month_spans_cut_a_range_at_calendar_months():
    d = dt.date
    assert month_spans(d(2013, 1, 30), d(2013, 3, 2)) == [(d(2013, 1, 30), d(2013, 1, 31)),
                                                          (d(2013, 2, 1), d(2013, 2, 28)),
                                                          (d(2013, 3, 1), d(2013, 3, 2))]
    assert month_spans(d(2013, 12, 5), d(2013, 12, 5)) == [(d(2013, 12, 5), d(2013, 12, 5))]
    assert month_spans(d(2012, 12, 31), d(2013, 1, 1)) == [(d(2012, 12, 31), d(2012, 12, 31)),
                                                           (d(2013, 1, 1), d(2013, 1, 1))]


@pytest.mark.slow
def test_a_backfill_across_months_submits_one_month_at_a_time(tmp_path):
    env = pipeline_env(tmp_path)
    land(env, "2013-01-01", "2013-02-02")
    proc = run([BIN / "mlpipe", "backfill", "--start", "2013-01-30", "--end", "2013-02-02", "--stage", "features"],
               env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "backfill 2013-01-30..2013-01-31 (month 1 of 2)" in proc.stderr
    first, second = proc.stderr.split("(month 2 of 2)")
    features = re.compile(r"running   FeaturePartition\(date=(\d{4}-\d\d-\d\d)")
    assert sorted(features.findall(first)) == ["2013-01-30", "2013-01-31"]
    assert sorted(features.findall(second)) == ["2013-02-01", "2013-02-02"]
    assert proc.stderr.count("===== Luigi Execution Summary =====") == 4  # each luigi run prints it twice


def test_a_worker_with_no_luigid_to_reach_says_so_in_one_line_with_exit_45(tmp_path):
    from tests.servers import free_port

    env = pipeline_env(tmp_path)
    url = f"http://127.0.0.1:{free_port()}/"
    proc = run([BIN / "mlpipe", "worker", "--scheduler-url", url], env, timeout=60)
    assert proc.returncode == 45, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"mlpipe: the central scheduler (luigid) at {url} does not accept "
                                                "connections; start it with `scripts/luigid.sh start`, or give its "
                                                "address with --scheduler-url or [core] default-scheduler-host/-port "
                                                "in luigi.cfg"]


@pytest.mark.slow
def test_a_pooled_backfill_missing_a_landing_day_runs_all_else_and_exits_20_at_once(tmp_path):
    env = pipeline_env(tmp_path)
    land(env, "2013-01-01", "2013-01-08")
    root = Path(env["MLPIPE_ROOT"])
    for path in root.glob("landing/flights/flights_2013-01-04.csv*"):
        path.unlink()
    started = time.monotonic()
    proc = run([BIN / "mlpipe", "backfill", "--start", "2013-01-01", "--end", "2013-01-08", "--stage", "features",
                "--processes", "2"], env)
    assert proc.returncode == 20, proc.stderr[-3000:]
    assert time.monotonic() - started < 120  # not luigi's 420 s keep-alive idle
    # A day's features need the 3 days before it (the tests' trailing_days): every day but those
    # that need the 4th is built, whichever process ran what.
    built = sorted(p.parent.name for p in root.glob("features/**/_SUCCESS"))
    assert built == [f"date=2013-01-0{d}" for d in (1, 2, 3, 8)], built
    assert not sorted(root.glob("clean/flights/date=2013-01-04/_SUCCESS"))
    assert len(list(root.glob("clean/*/date=2013-01-08/_SUCCESS"))) >= 2


def test_trainings_run_at_most_the_configured_number_at_once_across_all_workers():
    from tasks import CandidateModel
    from tasks.cli import use_project_config

    use_project_config()
    limits = luigi.configuration.get_config().getintdict("resources")
    assert CandidateModel.resources.keys() <= limits.keys()  # named in luigi.cfg, or luigi would allow 1
    scheduler = luigi.scheduler.Scheduler(resources={"training": 1})
    for worker, day in (("host-a", "d1"), ("host-b", "d2")):
        scheduler.add_task(worker=worker, task_id=f"CandidateModel_{day}", status="PENDING", runnable=True,
                           resources=CandidateModel.resources)
    assert scheduler.get_work(worker="host-a")["task_id"] == "CandidateModel_d1"
    assert scheduler.get_work(worker="host-b")["task_id"] is None  # the one training unit is in use
