"""Crashes, with the pipeline as real processes: the worker SIGKILLed during every kind of write of
a multi-day run, luigid restarted in the middle of a run, and a cron nightly overlapping a manual
backfill through one luigid. Each ends with outputs identical to those of an uninterrupted run.

tests/faults.py, loaded into the pipeline processes through tests/fault_site/sitecustomize.py
(on PYTHONPATH), logs every write and kills or pauses the process at a chosen one."""
from __future__ import annotations

import collections
import concurrent.futures
import configparser
import datetime as dt
import fnmatch
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow
import pytest

from tests.faults import TMP_MARK, read_log
from tests.luigid_server import LuigidServer
from tests.test_commands import BIN, OVERLAY, PROJECT

FAULT_SITE = PROJECT / "tests" / "fault_site"
NIGHTLY = PROJECT / "scripts" / "nightly.sh"
FIRST, DATE = "2013-01-01", "2013-01-06"  # OVERLAY: deployments from 2013-01-05, 6-day model windows
# The fields that differ between two runs of the same code on the same data: wall-clock times, and
# the hash of the working tree's code (only so that edits made while these tests run do not count).
UNCOMPARED = {"trained_at", "training_seconds", "moved_at", "source_sha256"}
RUNNING = re.compile(r"Worker Worker\(.*?\) running   (.+)$", re.M)


# ---- one storage root, and `mlpipe` runs against it ---------------------------------------------

@dataclass
class Run:
    returncode: int
    output: str  # stdout and stderr
    events: list[dict]

    @property
    def written(self) -> list[str]:
        return [e["path"] for e in self.events if e["event"] == "write"]

    @property
    def kill(self) -> dict:
        kills = [e for e in self.events if e["event"] == "kill"]
        assert len(kills) == 1, f"expected one injected kill, got {kills}; output:\n{self.output[-3000:]}"
        return kills[0]


class Pipeline:
    """A storage root with the landed days and an overlay config; every run gets its own write log."""

    def __init__(self, base: Path, landing: Path, **core: object):
        self.base, self.root = base, base / "root"
        shutil.copytree(landing, self.root / "landing")
        overlay = base / "overlay.cfg"
        # luigi's pid lock (one process per command line) in a directory of this test's own, not
        # the machine-wide /tmp/luigi, so that other runs of the same command elsewhere do not
        # count; and luigi.cfg's [worker] keep_alive, as in production (OVERLAY turns it off).
        core = {"lock_pid_dir": base / "luigi-lock", **core}
        overlay.write_text(merged(OVERLAY, {"core": core, "worker": {"keep_alive": None}}))
        self.env = dict(os.environ, MLPIPE_ROOT=str(self.root), LUIGI_CONFIG_PATH=str(overlay),
                        OMP_NUM_THREADS="1",
                        PYTHONPATH=os.pathsep.join(filter(None, [str(FAULT_SITE), os.environ.get("PYTHONPATH")])))
        self.env.pop("MLPIPE_LANDING", None)
        self.runs = 0

    def fault_env(self, at: str = "", action: str = "", config: dict | None = None) -> dict[str, str]:
        """The environment of the next run: its write log, the fault, and `config` added to the overlay."""
        self.runs += 1
        env = dict(self.env, MLPIPE_FAULT_LOG=str(self.base / f"writes-{self.runs}.jsonl"),
                   MLPIPE_FAULT_PAUSE=str(self.base / f"pause-{self.runs}"))
        if config:
            overlay = self.base / f"overlay-{self.runs}.cfg"
            overlay.write_text(merged(Path(self.env["LUIGI_CONFIG_PATH"]).read_text(), config))
            env["LUIGI_CONFIG_PATH"] = str(overlay)
        if at:
            env.update(MLPIPE_FAULT_AT=at, MLPIPE_FAULT_ACTION=action)
        return env

    def start(self, *args: str, **fault) -> tuple[subprocess.Popen, dict[str, str]]:
        """`mlpipe *args` in the background, its output to a file (a pipe nobody reads while the
        process is paused could fill up and block it)."""
        env = self.fault_env(**fault)
        with open(env["MLPIPE_FAULT_LOG"] + ".out", "w") as out:
            proc = subprocess.Popen([str(BIN / "mlpipe"), *args], env=env, cwd=PROJECT,
                                    stdout=out, stderr=subprocess.STDOUT)
        return proc, env

    def finish(self, proc: subprocess.Popen, env: dict[str, str]) -> Run:
        communicate(proc)
        output = Path(env["MLPIPE_FAULT_LOG"] + ".out").read_text()
        return Run(proc.returncode, output, read_log(env["MLPIPE_FAULT_LOG"]))

    def run(self, *args: str, **fault) -> Run:
        return self.finish(*self.start(*args, **fault))

    def run_paused(self, at: str, while_paused, *args: str) -> Run:
        """Run until the first write matching `at`, call `while_paused()`, then let the write go on."""
        proc, env = self.start(*args, at=at, action="pause")
        wait_for(Path(env["MLPIPE_FAULT_PAUSE"] + ".paused"), proc)
        while_paused()
        Path(env["MLPIPE_FAULT_PAUSE"] + ".resume").touch()
        return self.finish(proc, env)


def merged(overlay: str, settings: dict[str, dict[str, object]]) -> str:
    """`overlay` (luigi.cfg syntax) with `settings` set in it; a value None removes the option."""
    config = configparser.ConfigParser(interpolation=None)
    config.read_string(overlay)
    for section, options in settings.items():
        if not config.has_section(section):
            config.add_section(section)
        for key, value in options.items():
            if value is None:
                config.remove_option(section, key)
            else:
                config.set(section, key, str(value))
    text = io.StringIO()
    config.write(text)
    return text.getvalue()


def communicate(proc: subprocess.Popen, timeout: float = 600) -> str | None:
    """The process's stderr (if piped) once it exits; after `timeout` s it is killed and the test fails."""
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert proc.poll() is None, f"the process exited with {proc.returncode} before {marker.name}"
        assert time.monotonic() < deadline, f"no {marker.name} within {timeout} s"
        time.sleep(0.05)


def outputs(root: Path) -> dict[str, object]:
    """Every output under `root` by relative path (not the landing zone, run summaries or temporary
    files): JSON parsed, with the root and the UNCOMPARED fields taken out; anything else as bytes."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() or rel.startswith(("landing/", "runs/")) or TMP_MARK in rel:
            continue
        data = path.read_bytes()
        found[rel] = comparable(json.loads(data), str(root)) if rel.endswith(".json") else data
    return found


def comparable(value, root: str):
    if isinstance(value, dict):
        return {k.replace(root, "<root>"): comparable(v, root) for k, v in value.items() if k not in UNCOMPARED}
    if isinstance(value, list):
        return [comparable(v, root) for v in value]
    return value.replace(root, "<root>") if isinstance(value, str) else value


def temporaries(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob(f"*{TMP_MARK}*")}


def differences(found: dict, expected: dict) -> list[str]:
    """Outputs in `found` that the uninterrupted run does not have, or has with other content."""
    return [rel for rel, content in found.items() if expected.get(rel, KeyError) != content]


def kind(rel: str) -> str:
    parts = rel.split("/")
    return "/".join(parts[:2]) if parts[0] == "registry" else parts[0]


def unreadable(path: Path) -> bool:
    """Whether the file fails to parse as what its final name says it is."""
    name = path.name.split(TMP_MARK)[0]
    data = path.read_bytes()
    try:
        if name.endswith(".parquet"):
            pd.read_parquet(path)
        elif name.endswith(".json"):
            json.loads(data)
        elif name.endswith(".skops"):
            zipfile.ZipFile(path).testzip()
        elif name.endswith(".html"):
            return not data.rstrip().endswith(b"</html>")
        else:
            return False
    except (ValueError, OSError, zipfile.BadZipFile, pyarrow.ArrowException):
        return True
    return False


# ---- the uninterrupted run everything is compared with ------------------------------------------

@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    """The upstream drop of 2013-01-01..2013-01-06, copied into each test's storage root."""
    from pipeline.flights.landing import land_demo

    path = tmp_path_factory.mktemp("landed") / "landing"
    land_demo(str(path), dt.date.fromisoformat(FIRST), dt.date.fromisoformat(DATE))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, landing):
    """`mlpipe run --date 2013-01-06` without faults: its outputs and the order of its writes."""
    pipeline = Pipeline(tmp_path_factory.mktemp("reference"), landing)
    run = pipeline.run("run", "--date", DATE)
    assert run.returncode == 0, run.output[-3000:]
    found = outputs(pipeline.root)
    assert not [rel for rel in found if unreadable(pipeline.root / rel)]
    assert not temporaries(pipeline.root)
    decisions = {rel: v for rel, v in found.items() if rel.startswith("deployments/")}
    assert [v["date"] for v in decisions.values()] == ["2013-01-05", "2013-01-06"]
    assert any(v["blessed"] for v in decisions.values()), "a version must be published for the registry writes"
    return pipeline.root, found, run.written


# ---- the worker SIGKILLed during writes ---------------------------------------------------------

@dataclass(frozen=True)
class Kill:
    """SIGKILL at the first write matching `at` (relative to the root): "partial" after half its
    bytes went to luigi's temporary file, "after" once it is complete. `unwritten` (a glob;
    {dir} is the killed file's directory) must then be missing; the next run must write `redo`
    again, or, with redo None, must not write the killed file again (it was complete).
    With `workers` > 1 luigi runs the task in a child process: only that one is killed."""
    at: str
    action: str = "partial"
    unwritten: str = ""
    redo: str | None = "{path}"
    workers: int = 1


# Two sequences of runs, each on its own root and both at the same time: each run is killed at
# the next point of its sequence, and the next run resumes from what the kill left.
DATA_KILLS = [
    Kill("raw/flights/*/part-0.parquet"),
    # A raw partition is complete with the record of the landing file it was parsed from, written last.
    Kill("raw/*/date=*/part-0.parquet", "after", unwritten="{dir}/landing.json", redo="{dir}/landing.json"),
    Kill("quarantine/*/date=*/part-0.parquet"),
    Kill("validation/*/date=*/report.json"),
    Kill("clean/*/part-0.parquet", "after", unwritten="{dir}/_SUCCESS", redo="{dir}/_SUCCESS"),
    Kill("features/*"),
    Kill("models/candidates/*/model.skops"),
    Kill("models/candidates/*/metadata.json", "after", unwritten="{dir}/_SUCCESS", redo="{dir}/_SUCCESS"),
]
MODEL_KILLS = [
    Kill("evaluations/*/evaluation.json", "after", unwritten="{dir}/_SUCCESS", redo="{dir}/_SUCCESS"),
    Kill("registry/versions/*/model.skops"),
    Kill("registry/versions/*/manifest.json", "after", unwritten="{dir}/_SUCCESS", redo="{dir}/_SUCCESS"),
    Kill("registry/history/*", "after", unwritten="registry/production.json", redo="registry/production.json"),
    Kill("registry/production.json", "after", unwritten="deployments/*/date=2013-01-05/decision.json",
         redo="deployments/*/date=2013-01-05/decision.json"),
    Kill("deployments/*"),
    Kill("predictions/*", "after", redo=None),
    Kill("monitoring/*"),
    Kill("models/candidates/*/date=2013-01-06/model.skops", workers=2, redo=None),
    Kill("runs/*", redo="runs/nightly/date=2013-01-06/run-*.json"),
]
# The worker of the two-worker run retries the killed task in the same run (luigi.cfg's [worker]
# keep_alive and [scheduler] retry policy), here after 1 s instead of retry_delay's 5 minutes.
RETRY_SOON = {"worker": {"keep_alive": "true"}, "scheduler": {"retry_count": 2, "retry_delay": 1}}


def expand(pattern: str, killed: str) -> str:
    return pattern.format(path=killed, dir=killed.rsplit("/", 1)[0])


def kill_one_after_another(pipeline: Pipeline, kills: list[Kill], expected: dict, decided) -> Run:
    """`mlpipe run --date 2013-01-06` killed at each point of `kills` in turn, checking what each kill
    left and what the next run redid; then a run without faults, which it returns."""
    left_behind: set[str] = set()  # luigi's temporary files of the killed writes
    previous: tuple[Kill, str] | None = None

    def redone_by(run: Run) -> None:
        kill, killed = previous
        started = run.written + [e["path"] for e in run.events if e["event"] == "kill"]
        if kill.redo is None:
            assert killed not in started, f"{killed} was complete, yet the rerun wrote it again"
        else:
            assert [p for p in started if fnmatch.fnmatch(p, expand(kill.redo, killed))], \
                f"after the kill at {killed} ({kill.action}) the rerun did not write {kill.redo}: it took " \
                f"a partial output as complete; it wrote {run.written}"

    for kill in kills:
        retried = kill.workers > 1
        run = pipeline.run("run", "--date", DATE, "--workers", str(kill.workers), at=kill.at, action=kill.action,
                           config=RETRY_SOON if retried else None)
        if retried:  # the worker saw its task process die, and ran the task again
            assert run.returncode == 0, run.output[-3000:]
            assert re.search(r"Task CandidateModel_2013_01_06_\w+ died unexpectedly with exit code -9", run.output)
            assert "there were failed tasks but they all succeeded in a retry" in run.output
        else:
            assert run.returncode == -signal.SIGKILL, run.output[-3000:]
        if previous:
            redone_by(run)
        event = run.kill
        killed = event["path"]
        assert fnmatch.fnmatch(killed, kill.at) and event["action"] == kill.action
        if kill.action == "partial":
            tmp = pipeline.root / event["tmp"]
            assert tmp.parent == (pipeline.root / killed).parent
            assert tmp.stat().st_size == event["size"] // 2
            assert event["size"] == 0 or unreadable(tmp), f"{tmp} parses although it holds half of the file"
            assert (pipeline.root / killed).exists() == retried
            assert run.written.count(killed) == retried
            left_behind.add(event["tmp"])
        else:
            assert (pipeline.root / killed).is_file()
            if kill.unwritten:
                assert not list(pipeline.root.glob(expand(kill.unwritten, killed)))
        if killed.startswith("deployments/") and kill.action == "partial":
            assert decided(pipeline.root) is None  # a half-written decision is no decision
        # Under a final name there is only ever complete content: every output present equals the
        # uninterrupted run's; the half-written bytes are only in luigi's temporary files.
        assert differences(outputs(pipeline.root), expected) == []
        assert temporaries(pipeline.root) == left_behind
        previous = (kill, killed)

    final = pipeline.run("run", "--date", DATE)
    assert final.returncode == 0, final.output[-3000:]
    redone_by(final)
    assert outputs(pipeline.root) == expected
    assert temporaries(pipeline.root) == left_behind
    summaries = sorted(pipeline.root.glob("runs/nightly/date=2013-01-06/run-*.json"))
    assert json.loads(summaries[-1].read_text())["exit_code"] == 0
    return final


@pytest.mark.slow
def test_worker_killed_during_every_kind_of_write_then_reruns_end_as_an_uninterrupted_run(
        tmp_path, landing, reference, luigi_config, monkeypatch):
    _, expected, ref_writes = reference
    data, model = Pipeline(tmp_path / "data", landing), Pipeline(tmp_path / "model", landing)
    overlay = configparser.ConfigParser()
    overlay.read_string(OVERLAY)
    luigi_config({section: dict(overlay[section]) for section in overlay.sections()})

    def decided(root: Path) -> dt.date | None:
        """tasks.model.last_decided on `root` (what `mlpipe models promote` goes by)."""
        from tasks.config import get_storage
        from tasks.model import last_decided

        monkeypatch.setenv("MLPIPE_ROOT", str(root))
        return last_decided(get_storage())

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        chains = [pool.submit(kill_one_after_another, data, DATA_KILLS, expected, decided),
                  pool.submit(kill_one_after_another, model, MODEL_KILLS, expected, decided)]
        after_data, after_model = [chain.result() for chain in chains]
    assert "- 2 Deployment(date=2013-01-05,2013-01-06)" in after_data.output  # it did the deploy chain
    assert "Did not run any tasks" in after_model.output  # the last kill came after every task had finished
    # Every kind of output the uninterrupted run's tasks write had a kill during one of its writes
    # (dataset.json, the root's dataset record, is written by mlpipe before luigi runs any task).
    assert {kind(k.at) for k in DATA_KILLS + MODEL_KILLS} == {kind(path) for path in ref_writes
                                                              if path != "dataset.json"}


# ---- luigid restarted in the middle of a run ----------------------------------------------------

def task_events(server: LuigidServer) -> list[tuple[str, str, str]]:
    """(task name, task id, event) of luigid's task history, oldest first."""
    return server.history("SELECT t.name, t.task_id, e.event_name FROM tasks t JOIN task_events e "
                          "ON e.task_id = t.id ORDER BY e.id")


@pytest.mark.slow
def test_luigid_restarted_mid_run_the_run_stops_or_goes_on_and_reruns_complete_it(tmp_path, landing, reference):
    _, expected, _ = reference
    # luigid treats a worker it has not heard from for worker_disconnect_delay seconds (default 60)
    # as gone, and fails the tasks it was running; 3 s here, so that step 3 does not wait a minute.
    with LuigidServer(tmp_path / "luigid", scheduler={"worker_disconnect_delay": 3}) as server:
        # rpc-retry-wait: seconds between a worker's 3 attempts at each scheduler call (default 30,
        # so a worker rides out an outage of about a minute); none here, so step 2 gives up at once.
        pipeline = Pipeline(tmp_path, landing, **{"default-scheduler-port": server.port, "rpc-retry-wait": 0})
        central = ("run", "--date", DATE, "--central")

        # 1. luigid crashes (SIGKILL: it saves no state) while a task writes, and is started again.
        # The worker finishes the task, but the new luigid knows none of the run's pending tasks.
        crash = pipeline.run_paused("models/candidates/*/date=2013-01-05/model.skops",
                                    lambda: server.restart(crash=True), *central)
        assert crash.returncode == 25, crash.output[-3000:]  # [retcode] not_run
        assert "were left pending" in crash.output
        assert "was not granted run permission by the scheduler" in crash.output
        assert "mlpipe: 2013-01-06 finished with exit code 25 (not_run)" in crash.output
        candidate = [p for p in crash.written if p.startswith("models/candidates/")]
        assert [p.rsplit("/", 1)[1] for p in candidate] == ["model.skops", "metadata.json", "_SUCCESS"]
        assert not [p for p in crash.written if p.startswith(("evaluations/", "deployments/", "registry/"))]
        assert differences(outputs(pipeline.root), expected) == []

        # 2. luigid is stopped (SIGTERM) while a task writes and stays down: the worker finishes the
        # task, fails to report it after its retries and gives up.
        down = pipeline.run_paused("evaluations/*/date=2013-01-05/report.html", server.stop, *central)
        assert down.returncode == 45, down.output[-3000:]  # luigi's unhandled_exception (40), told apart
        assert "luigi.rpc.RPCError: Errors (3 attempts) when connecting to remote scheduler" in down.output
        assert "mlpipe: lost the central scheduler (luigid) at " in down.output
        assert not [p for p in down.written if p.startswith("models/")]  # done in run 1, not redone
        assert [p.rsplit("/", 1)[1] for p in down.written if p.startswith("evaluations/")] == [
            "report.html", "evaluation.json", "_SUCCESS"]
        assert not [p for p in down.written if p.startswith(("deployments/", "registry/"))]
        assert differences(outputs(pipeline.root), expected) == []

        # luigid comes back with the state it saved at the stop, in which the dead worker still runs
        # the evaluation: until luigid gives up on that worker, a rerun could not run anything that
        # needs the evaluation (luigid ignores "done" from any other worker for a running task).
        server.start()
        stale = "Task 'ModelEvaluation_2013_01_05_.*' is marked as running by disconnected worker"
        deadline = time.monotonic() + 60
        while not re.search(stale, server.logs()):
            assert time.monotonic() < deadline, "luigid never released the dead worker's task"
            server.api("task_list", status="RUNNING")  # makes luigid prune, as the UI does
            time.sleep(0.5)

        # 3. luigid is restarted cleanly (SIGTERM saves its state, the new one loads it) while a
        # task writes: the worker carries on and the run completes.
        restart = pipeline.run_paused("predictions/*", server.restart, *central)
        assert restart.returncode == 0, restart.output[-3000:]
        assert "mlpipe: 2013-01-06 finished with exit code 0 (success)" in restart.output
        assert [p for p in restart.written if p.startswith("predictions/")]
        assert not [p for p in restart.written  # done in runs 1 and 2, not redone
                    if re.match(r"(models|evaluations)/.*/date=2013-01-05/", p)]
        events = task_events(server)
        logs = server.logs()

    assert outputs(pipeline.root) == expected
    assert temporaries(pipeline.root) == set()

    def luigids(message: str) -> set[str]:
        return set(re.findall(r"\[(\d+)\] INFO: " + message, logs))

    # Four luigid processes: crashed; stopped (saving its state); loaded it and was stopped for the
    # restart (saving it again); loaded it.
    assert len(luigids("Scheduler starting up")) == 4
    assert len(luigids("Saved state in")) == 2
    assert len(luigids("Attempting to load state from")) == 2
    predictions = [e for name, _, e in events if name == "Predictions"]
    assert predictions[-2:] == ["RUNNING", "DONE"]  # reported to the old luigid, then to the new one
    assert ("NightlyPipeline", "DONE") in {(name, e) for name, _, e in events}


# ---- a cron nightly and a manual backfill over overlapping dates, through one luigid ------------

@pytest.mark.slow
def test_cron_nightly_and_a_backfill_of_overlapping_dates_run_each_task_once(tmp_path, landing, reference):
    _, expected, _ = reference
    backfill_args = ("backfill", "--start", "2013-01-03", "--end", DATE, "--central")
    with LuigidServer(tmp_path / "luigid") as server:
        pipeline = Pipeline(tmp_path, landing, **{"default-scheduler-port": server.port})
        # The backfill holds its first task until the nightly has written something: both run
        # tasks at the same time, whatever the machine's speed.
        backfill, backfill_env = pipeline.start(*backfill_args, at="*", action="pause")
        wait_for(Path(backfill_env["MLPIPE_FAULT_PAUSE"] + ".paused"), backfill)
        cron = {k: v for k, v in pipeline.fault_env().items()
                if k in ("MLPIPE_ROOT", "LUIGI_CONFIG_PATH", "PYTHONPATH", "MLPIPE_FAULT_LOG", "OMP_NUM_THREADS")}
        cron.update(HOME=str(tmp_path), PATH="/usr/bin:/bin", MLPIPE_LOG_DIR=str(tmp_path / "log"))
        nightly = subprocess.Popen(["env", "-i", *[f"{k}={v}" for k, v in cron.items()], str(NIGHTLY), DATE],
                                   cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while not [e for e in read_log(cron["MLPIPE_FAULT_LOG"]) if e["event"] == "write"]:
            assert nightly.poll() is None and time.monotonic() < deadline, communicate(nightly)
            time.sleep(0.05)
        Path(backfill_env["MLPIPE_FAULT_PAUSE"] + ".resume").touch()
        manual = pipeline.finish(backfill, backfill_env)
        nightly_stderr = communicate(nightly)
        events = task_events(server)
        rerun = pipeline.run(*backfill_args)

    cron_log = (tmp_path / "log" / f"nightly-{DATE}.log").read_text()
    # Each worker counts the tasks the other ran as "already running" (10) or "not run" (25): luigi
    # has no "done by another worker" (README, "Running luigid"); the rerun finds everything done.
    assert {nightly.returncode, manual.returncode} <= {0, 10, 25}, \
        nightly_stderr + cron_log[-3000:] + manual.output[-3000:]
    assert json.loads((tmp_path / "log" / f"nightly-{DATE}.json").read_text())["exit_code"] == nightly.returncode
    assert rerun.returncode == 0 and "Did not run any tasks" in rerun.output, rerun.output[-3000:]

    # Both ran tasks, at the same time.
    writes = {"nightly": [e for e in read_log(cron["MLPIPE_FAULT_LOG"]) if e["event"] == "write"],
              "backfill": [e for e in manual.events if e["event"] == "write"]}
    assert all(writes.values())
    assert max(w[0]["time"] for w in writes.values()) < min(w[-1]["time"] for w in writes.values())
    # Each task ran once: in luigid's history, in the workers' logs, and no output was written twice.
    ran = collections.Counter(task_id for _, task_id, event in events if event == "RUNNING")
    assert max(ran.values()) == 1, [task for task, n in ran.items() if n > 1]
    per_worker = [collections.Counter(RUNNING.findall(cron_log)), collections.Counter(RUNNING.findall(manual.output))]
    assert all(per_worker) and max((per_worker[0] + per_worker[1]).values()) == 1
    assert sum(per_worker[0].values()) + sum(per_worker[1].values()) == sum(ran.values())
    # Task outputs only: the run summaries (runs/) and the root's dataset record are each command's own.
    written = collections.Counter(e["path"] for w in writes.values() for e in w
                                  if not e["path"].startswith("runs/") and e["path"] != "dataset.json")
    assert max(written.values()) == 1, [path for path, n in written.items() if n > 1]

    # The outputs are the uninterrupted nightly run's, plus the backfill's own NightlyPipeline(2013-01-05):
    # predictions and monitoring of 2013-01-05, with no model in production before that day.
    found = outputs(pipeline.root)
    extra = sorted(rel for rel in found if rel not in expected)
    assert [rel.split("/")[0] + " " + rel.split("/date=")[1].split("/")[0] for rel in extra] == [
        "monitoring 2013-01-05", "predictions 2013-01-05"]
    assert {rel: found[rel] for rel in expected} == expected
    assert found[extra[0]]["model_version"] is None
    assert pd.read_parquet(pipeline.root / extra[1])["model_version"].isna().all()
    assert temporaries(pipeline.root) == set()
