"""Crashes, with the pipeline as real processes: the worker SIGKILLed during every kind of write of
a multi-day run and at every step of a write (into the temporary file, before its fsync, before
the rename, before the seal), luigid restarted in the middle of a run, and a cron nightly started
while a manual backfill of overlapping dates holds the storage root. Each ends with outputs
identical to those of an uninterrupted run.

tests/faults.py, loaded into the pipeline processes through tests/fault_site/sitecustomize.py
(on PYTHONPATH), logs every write and kills or pauses the process at a chosen one.

What a SIGKILL can show: the process dies, the kernel keeps every byte it was given. A kill
"before the fsync" therefore leaves what a crashed process leaves, not what a power loss leaves
(unsynced data lost, a rename without its data): this suite simulates no power loss."""
from __future__ import annotations

import collections
import concurrent.futures
import configparser
import datetime as dt
import fnmatch
import io
import json
import os
import posixpath
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

from pipeline import signing
from pipeline.layout import DATASET_MARKER, DECISION_FILE, LEASE_FILE, SIGNATURE_SUFFIX, SUCCESS
from pipeline.storage import TEMP_MARK, file_info, is_temp
from tests.faults import read_log
from tests.luigid_server import LuigidServer
from tests.pipeline.builders import TEST_KEYS
from tests.test_commands import BIN, OVERLAY, PROJECT

FAULT_SITE = PROJECT / "tests" / "fault_site"
NIGHTLY = PROJECT / "scripts" / "nightly.sh"
FIRST, DATE = "2013-01-01", "2013-01-06"  # OVERLAY: deployments from 2013-01-05, 6-day model windows
# The fields that differ between two runs of the same code on the same data: wall-clock times, and
# the hash of the working tree's code (only so that edits made while these tests run do not count).
UNCOMPARED = {"trained_at", "training_seconds", "moved_at", "source_sha256"}
# What `mlpipe` writes itself, not a task: the root's dataset record (before any task) and its lease.
COMMAND_RECORDS = {DATASET_MARKER, LEASE_FILE}
# A command SIGKILLed here leaves its lease behind; the next run, on the same host, finds its
# process gone and takes the lease over at once. A short ttl all the same, so that a miss of that
# check costs 5 s here, not luigi.cfg's 2 minutes.
LEASE_TTL = 5
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
        overlay.write_text(merged(OVERLAY, {"core": core, "worker": {"keep_alive": None},
                                            "lease": {"ttl": LEASE_TTL}}))
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
    """Every output under `root` by relative path (not the landing zone, run summaries, the root's
    lease or temporary files), as content() reads it."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() or rel.startswith(("landing/", "runs/")) or rel == LEASE_FILE or is_temp(path.name):
            continue
        found[rel] = content(path, root)
    return found


def content(path: Path, root: Path):
    """A file as outputs() compares it, by its final name (a temporary file's too): JSON parsed,
    with the root and the UNCOMPARED fields taken out; a seal as sealed(); anything else as bytes."""
    name = final_name(path.name)
    if name == SUCCESS:
        return sealed(path)
    data = path.read_bytes()
    if name.endswith(SIGNATURE_SUFFIX):
        return signature(path, data)
    return comparable(json.loads(data), str(root)) if name.endswith(".json") else data


def signature(path: Path, data: bytes) -> dict:
    """A signature as outputs() compares it: its key and signer, and whether it is valid for the
    record beside it (the HMAC itself covers that record's UNCOMPARED fields)."""
    record = json.loads(data)
    signed = path.with_name(final_name(path.name)[:-len(SIGNATURE_SUFFIX)])
    try:
        signing.check(signed.read_bytes(), data, TEST_KEYS, str(signed))
        valid = True
    except (signing.SignatureError, FileNotFoundError):
        valid = False
    return {"key_id": record["key_id"], "signed_by": record["signed_by"], "valid": valid}


def sealed(flag: Path) -> dict[str, str]:
    """Each file a seal records (by its path relative to the seal's directory): "ok" when the file
    there has the recorded size and sha256, else "missing" or "differs". Not the checksums
    themselves: those of files with UNCOMPARED fields differ between two runs."""
    checks = {}
    for relative, recorded in json.loads(flag.read_bytes())["files"].items():
        beside = flag.parent / relative
        checks[relative] = ("missing" if not beside.is_file() else
                            "ok" if file_info(beside.read_bytes()) == recorded else "differs")
    return checks


def final_name(name: str) -> str:
    """The name a temporary file of the writer (`.{name}.tmp-{random}`) was to be renamed to."""
    return name[1:].rsplit(TEMP_MARK, 1)[0] if name.startswith(".") and is_temp(name) else name


def comparable(value, root: str):
    if isinstance(value, dict):
        return {k.replace(root, "<root>"): comparable(v, root) for k, v in value.items() if k not in UNCOMPARED}
    if isinstance(value, list):
        return [comparable(v, root) for v in value]
    return value.replace(root, "<root>") if isinstance(value, str) else value


def temporaries(root: Path) -> set[str]:
    """Every temporary file of a write under `root` (storage.is_temp)."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if is_temp(p.name) and p.is_file()}


def differences(found: dict, expected: dict) -> list[str]:
    """Outputs in `found` that the uninterrupted run does not have, or has with other content."""
    return [rel for rel, value in found.items() if expected.get(rel, KeyError) != value]


def kind(rel: str) -> str:
    parts = rel.split("/")
    return "/".join(parts[:2]) if parts[0] == "registry" else parts[0]


def unreadable(path: Path) -> bool:
    """Whether the file fails to parse as what its final name says it is."""
    name = final_name(path.name)
    data = path.read_bytes()
    try:
        if name.endswith(".parquet"):
            pd.read_parquet(path)
        elif name.endswith(".json") or name == SUCCESS:
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
    decisions = {rel: v for rel, v in found.items() if rel.startswith("deployments/") and rel.endswith(DECISION_FILE)}
    assert [v["date"] for v in decisions.values()] == ["2013-01-05", "2013-01-06"]
    assert any(v["blessed"] for v in decisions.values()), "a version must be published for the registry writes"
    return pipeline.root, found, run.written


# ---- the worker SIGKILLed during writes ---------------------------------------------------------

@dataclass(frozen=True)
class Kill:
    """SIGKILL at the first write matching `at` (relative to the root), at one step of that write
    (tests/faults.py): "partial" after half its bytes went to the writer's temporary file,
    "unsynced" with every byte in the temporary file, before its fsync, "unrenamed" after the
    fsync, before the rename, "unsealed" (a seal only) once the seal's sweep of temporary files is
    done, before any byte of the seal, "after" once the write is complete. `unwritten` (a glob;
    {dir} is the killed file's directory, {under} that directory below its layer) must then be
    missing; the next run must write `redo` again, or, with redo None, must not write the killed
    file again (it was complete). With `workers` > 1 luigi runs the task in a child process: only
    that one is killed."""
    at: str
    action: str = "partial"
    unwritten: str = ""
    redo: str | None = "{path}"
    workers: int = 1


# Two sequences of runs, each on its own root and both at the same time: each run is killed at
# the next point of its sequence, and the next run resumes from what the kill left. Every output
# is a directory made complete by its `_SUCCESS` seal, written last: a kill before it leaves an
# output that is not complete, and the next run writes it again.
DATA_KILLS = [
    Kill("raw/flights/*/part-0.parquet"),
    # A raw partition: the Parquet file, the record of the landing file it was parsed from, the seal.
    Kill("raw/*/date=*/part-0.parquet", "after", unwritten="{dir}/landing.json", redo="{dir}/landing.json"),
    Kill("raw/*/date=*/landing.json", "unsynced", unwritten="{dir}/_SUCCESS"),
    Kill("raw/*/date=*/_SUCCESS", "unrenamed"),
    # A day's validation writes quarantine, report and clean rows; the seal beside the clean rows.
    Kill("quarantine/*/date=*/part-0.parquet", unwritten="clean/{under}/_SUCCESS"),
    Kill("validation/*/date=*/report.json", unwritten="clean/{under}/_SUCCESS"),
    Kill("clean/*/part-0.parquet", "after", unwritten="{dir}/_SUCCESS", redo="{dir}/_SUCCESS"),
    Kill("clean/*/_SUCCESS", "unsealed"),
    Kill("features/*/part-0.parquet", "unrenamed", unwritten="{dir}/_SUCCESS"),
    Kill("features/*/_SUCCESS", "unsynced"),
    Kill("models/candidates/*/model.skops", unwritten="{dir}/_SUCCESS"),
    Kill("models/candidates/*/metadata.json", "after", unwritten="{dir}/_SUCCESS", redo="{dir}/_SUCCESS"),
]
MODEL_KILLS = [
    Kill("evaluations/*/evaluation.json", "after", unwritten="{dir}/_SUCCESS", redo="{dir}/_SUCCESS"),
    # A registry version: model, evaluation and report, the manifest, the seal; then the alias moves
    # (production.json), the move is kept in the history, and the day's decision is written and sealed.
    Kill("registry/versions/*/model.skops", unwritten="{dir}/_SUCCESS"),
    Kill("registry/versions/*/manifest.json", "after", unwritten="{dir}/_SUCCESS", redo="{dir}/_SUCCESS"),
    Kill("registry/versions/*/_SUCCESS", "unsealed", unwritten="registry/production.json"),
    Kill("registry/production.json", unwritten="registry/history/*"),
    Kill("registry/production.json", "after", unwritten="registry/history/*", redo="registry/history/*"),
    Kill("registry/history/*", "after", unwritten="deployments/*/date=2013-01-05/decision.json",
         redo="deployments/*/date=2013-01-05/decision.json"),
    Kill("deployments/*/decision.json", "unsynced", unwritten="{dir}/_SUCCESS"),
    Kill("deployments/*/_SUCCESS", "unrenamed"),
    Kill("predictions/*/part-0.parquet", "after", unwritten="{dir}/_SUCCESS", redo="{dir}/_SUCCESS"),
    Kill("predictions/*/_SUCCESS", "unsealed"),
    Kill("monitoring/*", unwritten="{dir}/_SUCCESS"),
    Kill("monitoring/*/_SUCCESS", "after", redo=None),
    Kill("models/candidates/*/date=2013-01-06/model.skops", workers=2, redo=None),
    Kill("runs/*", redo="runs/nightly/date=2013-01-06/run-*.json"),
]
# The worker of the two-worker run retries the killed task in the same run (luigi.cfg's [worker]
# keep_alive and [scheduler] retry policy), here after 1 s instead of retry_delay's 5 minutes.
RETRY_SOON = {"worker": {"keep_alive": "true"}, "scheduler": {"retry_count": 2, "retry_delay": 1}}


def expand(pattern: str, killed: str) -> str:
    directory = killed.rsplit("/", 1)[0]
    return pattern.format(path=killed, dir=directory, under=directory.partition("/")[2])


def directory_of(rel: str) -> str:
    return rel.rsplit("/", 1)[0]


def left_after(run: Run, before: set[str], expected: dict) -> set[str]:
    """The temporary files there are after `run`, given those there were before it: a kill leaves
    the one of its write (if it made one), and a seal removes those in every directory its output
    wrote to (its own and those of the files it records, as the uninterrupted run's seal at the
    same path lists them) before its write starts (storage.seal), so a seal written, or killed
    while being written, has swept those directories."""
    left = set(before)
    for event in run.events:
        if event["event"] in ("write", "kill") and event["path"].rsplit("/", 1)[-1] == SUCCESS:
            here = directory_of(event["path"])
            swept = {here} | {directory_of(posixpath.normpath(f"{here}/{rel}")) for rel in expected[event["path"]]}
            left = {tmp for tmp in left if directory_of(tmp) not in swept}
        if event["event"] == "kill" and "tmp" in event:
            left.add(event["tmp"])
    return left


def kill_one_after_another(pipeline: Pipeline, kills: list[Kill], expected: dict, decided) -> tuple[Run, set[str]]:
    """`mlpipe run --date 2013-01-06` killed at each point of `kills` in turn, checking what each kill
    left and what the next run redid; then a run without faults. Returns that run and the
    temporary files left at the end."""
    root = pipeline.root
    left_behind: set[str] = set()  # temporary files of the killed writes that no seal has swept yet
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
        if previous:
            redone_by(run)
        fired = [e for e in run.events if e["event"] == "kill"]
        assert len(fired) == 1, (f"the fault {kill.action} at {kill.at} fired {len(fired)} times, not once "
                                 "(unsynced and unrenamed fire from the writer's fsync and rename); output:\n"
                                 + run.output[-3000:])
        event = fired[0]
        if retried:  # the worker saw its task process die, and ran the task again
            assert run.returncode == 0, run.output[-3000:]
            assert re.search(r"Task CandidateModel_2013_01_06_\w+ died unexpectedly with exit code -9", run.output)
            assert "there were failed tasks but they all succeeded in a retry" in run.output
        else:
            assert run.returncode == -signal.SIGKILL, run.output[-3000:]
            # The killed command's lease stays behind; the next run takes it over once it expires.
            assert json.loads((root / LEASE_FILE).read_text())["pid"] == event["pid"]
        killed = event["path"]
        assert fnmatch.fnmatch(killed, kill.at) and event["action"] == kill.action
        target = root / killed
        complete = (target.parent / SUCCESS).exists()
        if kill.action == "after":
            assert target.is_file()
        else:  # nothing under the final name, and the output is not complete (unless luigi ran it again)
            assert target.exists() == retried and run.written.count(killed) == retried
            assert complete == retried
        if "tmp" in event:  # "partial", "unsynced", "unrenamed": the writer's temporary file
            tmp = root / event["tmp"]
            assert tmp.parent == target.parent and is_temp(tmp.name) and final_name(tmp.name) == target.name
            if retried:
                assert not tmp.exists(), "the seal of the task's retry did not remove the temporary file"
            elif kill.action == "partial":
                assert tmp.stat().st_size == event["size"] // 2
                assert event["size"] == 0 or unreadable(tmp), f"{tmp} parses although it holds half of the file"
            else:  # the whole content, which never got its final name
                assert tmp.stat().st_size == event["size"]
                assert content(tmp, root) == expected[killed]
        else:
            assert kill.action in ("after", "unsealed")
        if kill.action == "unsealed":  # the seal's sweep came before its write
            assert killed.endswith("/" + SUCCESS)
            assert not [p.name for p in target.parent.iterdir() if is_temp(p.name)]
        if kill.unwritten:
            assert not list(root.glob(expand(kill.unwritten, killed)))
        if killed.startswith("deployments/") and not complete:
            last = decided(root)  # a decision without its seal is no decision
            assert last is None or last < dt.date.fromisoformat(killed.split("/date=")[1][:10])
        # Under a final name there is only ever complete content: every output present equals the
        # uninterrupted run's; what a killed write had written is only in its temporary file.
        assert differences(outputs(root), expected) == []
        left_behind = left_after(run, left_behind, expected)
        assert temporaries(root) == left_behind
        previous = (kill, killed)

    final = pipeline.run("run", "--date", DATE)
    assert final.returncode == 0, final.output[-3000:]
    redone_by(final)
    assert outputs(root) == expected
    left_behind = left_after(final, left_behind, expected)
    assert temporaries(root) == left_behind
    sealed_directories = {p.parent for p in root.rglob(SUCCESS)}
    assert not [tmp for tmp in left_behind if (root / tmp).parent in sealed_directories]
    summaries = sorted(root.glob("runs/nightly/date=2013-01-06/run-*.json"))
    assert json.loads(summaries[-1].read_text())["exit_code"] == 0
    return final, left_behind


@pytest.mark.slow
def test_worker_killed_during_every_kind_of_write_then_reruns_end_as_an_uninterrupted_run(
        tmp_path, landing, reference, luigi_config, monkeypatch):
    """The kills "unsynced" and "unrenamed" leave what a crashed process leaves: the kernel has the
    bytes, so the temporary file holds all of them whether or not it was fsynced. What a power
    loss leaves (unsynced data gone, a rename whose data is not on disk) is not simulated."""
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
        (after_data, data_left), (after_model, model_left) = [chain.result() for chain in chains]
    assert "- 2 Deployment(date=2013-01-05,2013-01-06)" in after_data.output  # it did the deploy chain
    assert "Did not run any tasks" in after_model.output  # the last kill came after every task had finished
    # The temporary files no seal swept: those of kills beside files that no seal records. A day's
    # seal sweeps the quarantine and report directories too; the registry's alias and history,
    # and the run summaries, are plain files.
    assert data_left == set()
    assert {tmp.split("/")[0] for tmp in model_left} == {"registry", "runs"}
    # Every kind of output the uninterrupted run's tasks write had a kill during one of its writes.
    assert {kind(k.at) for k in DATA_KILLS + MODEL_KILLS} == {kind(path) for path in ref_writes
                                                              if path not in COMMAND_RECORDS}
    # Each step of a write was killed on a data file and on a seal ("unsealed" is for seals only).
    steps = {(k.action, "seal" if k.at.endswith("/" + SUCCESS) else "data") for k in DATA_KILLS + MODEL_KILLS}
    assert steps >= {("partial", "data"), ("unsynced", "data"), ("unsynced", "seal"), ("unrenamed", "data"),
                     ("unrenamed", "seal"), ("unsealed", "seal"), ("after", "data"), ("after", "seal")}


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
        assert [p.rsplit("/", 1)[1] for p in candidate] == ["model.skops", "metadata.json", "metadata.json.sig", "_SUCCESS"]
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
    """The root's lease lets one command at a time change a storage root: the cron nightly, started
    while the backfill holds it, waits for the backfill to finish ([lease] run_wait), then finds
    its date complete. Every task runs once, and both commands succeed."""
    _, expected, _ = reference
    backfill_args = ("backfill", "--start", "2013-01-03", "--end", DATE, "--central")
    lease = {"lease": {"ttl": None}}  # luigi.cfg's: both commands stay alive, neither lease expires
    with LuigidServer(tmp_path / "luigid") as server:
        pipeline = Pipeline(tmp_path, landing, **{"default-scheduler-port": server.port})
        # The backfill holds its first task's first write (and the lease, taken before any task)
        # until the nightly has started and is waiting for the lease.
        backfill, backfill_env = pipeline.start(*backfill_args, at="raw/*", action="pause", config=lease)
        wait_for(Path(backfill_env["MLPIPE_FAULT_PAUSE"] + ".paused"), backfill)
        cron = {k: v for k, v in pipeline.fault_env(config=lease).items()
                if k in ("MLPIPE_ROOT", "LUIGI_CONFIG_PATH", "PYTHONPATH", "MLPIPE_FAULT_LOG", "OMP_NUM_THREADS")}
        cron.update(HOME=str(tmp_path), PATH="/usr/bin:/bin", MLPIPE_LOG_DIR=str(tmp_path / "log"))
        started = time.time()
        nightly = subprocess.Popen(["env", "-i", *[f"{k}={v}" for k, v in cron.items()], str(NIGHTLY), DATE],
                                   cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # It writes nothing while it waits (the lease is read, not written, until it is free): give
        # it the time to start Python and get there.
        cron_log_path = tmp_path / "log" / f"nightly-{DATE}.log"
        deadline = time.monotonic() + 300
        while not (cron_log_path.exists() and "=== nightly" in cron_log_path.read_text()):
            assert nightly.poll() is None and time.monotonic() < deadline, communicate(nightly)
            time.sleep(0.05)
        time.sleep(10)
        assert nightly.poll() is None, communicate(nightly)
        assert not read_log(cron["MLPIPE_FAULT_LOG"])
        resumed = time.time()
        Path(backfill_env["MLPIPE_FAULT_PAUSE"] + ".resume").touch()
        manual = pipeline.finish(backfill, backfill_env)
        nightly_stderr = communicate(nightly)
        events = task_events(server)
        rerun = pipeline.run(*backfill_args)

    cron_log = cron_log_path.read_text()
    assert manual.returncode == 0, manual.output[-3000:]
    assert nightly.returncode == 0, nightly_stderr + cron_log[-3000:]
    assert json.loads((tmp_path / "log" / f"nightly-{DATE}.json").read_text())["exit_code"] == 0
    assert rerun.returncode == 0 and "Did not run any tasks" in rerun.output, rerun.output[-3000:]

    def task_outputs(writes: list[dict]) -> list[dict]:
        """Task outputs only: the run summaries (runs/), the root's dataset record and the lease are
        each command's own."""
        return [e for e in writes if not e["path"].startswith("runs/") and e["path"] not in COMMAND_RECORDS]

    writes = {"nightly": [e for e in read_log(cron["MLPIPE_FAULT_LOG"]) if e["event"] == "write"],
              "backfill": [e for e in manual.events if e["event"] == "write"]}
    # The nightly ran while the backfill held the root, and took the lease only after the backfill's
    # last write; then it found its date complete: it ran no task and wrote no task output.
    took_lease = min(e["time"] for e in writes["nightly"] if e["path"] == LEASE_FILE)
    assert started < resumed < took_lease
    assert max(e["time"] for e in writes["backfill"]) < took_lease
    assert "Did not run any tasks" in cron_log and not RUNNING.findall(cron_log)
    assert not task_outputs(writes["nightly"])
    # Each task ran once: in luigid's history, in the backfill's log, and no output was written twice.
    ran = collections.Counter(task_id for _, task_id, event in events if event == "RUNNING")
    assert max(ran.values()) == 1, [task for task, n in ran.items() if n > 1]
    per_worker = collections.Counter(RUNNING.findall(manual.output))
    assert max(per_worker.values()) == 1 and sum(per_worker.values()) == sum(ran.values())
    written = collections.Counter(e["path"] for w in writes.values() for e in task_outputs(w))
    assert max(written.values()) == 1, [path for path, n in written.items() if n > 1]

    # The outputs are the uninterrupted nightly run's, plus the backfill's own NightlyPipeline(2013-01-05):
    # predictions and monitoring of 2013-01-05, with no model in production before that day.
    found = outputs(pipeline.root)
    extra = sorted(rel for rel in found if rel not in expected)
    assert [rel.split("/")[0] + " " + rel.split("/date=")[1].split("/")[0] for rel in extra] == [
        "monitoring 2013-01-05", "monitoring 2013-01-05", "predictions 2013-01-05", "predictions 2013-01-05"]
    assert {rel: found[rel] for rel in expected} == expected
    data = [rel for rel in extra if not rel.endswith("/" + SUCCESS)]
    assert found[data[0]]["model_version"] is None
    assert pd.read_parquet(pipeline.root / data[1])["model_version"].isna().all()
    assert temporaries(pipeline.root) == set()
