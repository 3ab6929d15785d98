"""The storage root's lease from the command line: `mlpipe invalidate --yes` and `mlpipe models
promote|rollback` refuse while another process holds the root, `mlpipe run` waits for it, and two
runs of one date started at once run each task once. Every command is a real process."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import S3_CREDENTIALS
from tests.test_commands import BIN, PROJECT, env, land, run  # noqa: F401 - env is a fixture

HOLDER = textwrap.dedent("""
    import sys, time
    from pipeline import lease, storage
    with lease.holding(storage.Storage(sys.argv[1]), "mlpipe backfill --start 2013-01-01 --end 2013-01-31",
                       ttl=float(sys.argv[2]), wait=0):
        print("held", flush=True)
        time.sleep(float(sys.argv[3]))
""")


@pytest.fixture
def holder(env):
    """Start a second process that holds the root's lease: `holder(ttl=30, seconds=60)` returns it
    once it holds the lease; it is killed at the end of the test."""
    started = []

    def start(ttl: float = 30, seconds: float = 120) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, env["MLPIPE_ROOT"], str(ttl), str(seconds)],
                                env=env, cwd=PROJECT, stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def refused_naming(proc: subprocess.CompletedProcess, holder: subprocess.Popen, setting: str) -> None:
    assert proc.returncode == 10, proc.stderr[-3000:]  # [retcode] already_running
    lines = [line for line in proc.stderr.splitlines() if line.startswith("mlpipe:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert (f"mlpipe: the storage root is in use: `mlpipe backfill --start 2013-01-01 --end 2013-01-31` "
            f"(pid {holder.pid} on {socket.gethostname()}, user ") in lines[0]
    assert "Wait for it to finish and run this again" in lines[0]
    assert f"[lease] {setting} in luigi.cfg sets how long a command waits for it" in lines[0]


def lease_record(env) -> dict | None:
    path = Path(env["MLPIPE_ROOT"]) / "_lease.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_invalidate_is_refused_while_another_process_holds_the_root(env, holder):
    land(env, "2013-01-01", "2013-01-01")
    clean = Path(env["MLPIPE_ROOT"]) / "clean" / "flights" / "date=2013-01-01"
    clean.mkdir(parents=True)
    (clean / "_SUCCESS").write_text("")
    held = holder()
    before = lease_record(env)
    args = [BIN / "mlpipe", "invalidate", "--start", "2013-01-01", "--end", "2013-01-01", "--stage", "validate"]
    proc = run([*args, "--yes"], env)
    refused_naming(proc, held, "manual_wait")
    assert (clean / "_SUCCESS").exists(), "nothing was removed"
    assert lease_record(env) == before, "the holder's lease is untouched"
    listing = run(args, env)  # without --yes it only lists: no lease needed
    assert listing.returncode == 0 and "nothing removed" in listing.stdout, listing.stderr


def test_promote_and_rollback_are_refused_while_another_process_holds_the_root(env, holder):
    held = holder()
    promote = run([BIN / "mlpipe", "models", "promote", "20130105-abc", "--reason", "validated"], env)
    refused_naming(promote, held, "manual_wait")
    rollback = run([BIN / "mlpipe", "models", "rollback", "--reason", "bad scores"], env)
    refused_naming(rollback, held, "manual_wait")
    assert "production is now" not in promote.stdout + rollback.stdout


def test_a_killed_holder_on_this_host_frees_the_root_at_once(env, holder):
    held = holder(ttl=600)
    held.kill()
    held.wait()
    assert lease_record(env)["pid"] == held.pid, "a killed holder leaves its lease behind"
    promote = run([BIN / "mlpipe", "models", "promote", "20130105-abc", "--reason", "validated"], env)
    assert promote.returncode == 2, promote.stderr  # it ran (no waiting for the ttl): the version is not published
    assert "model version 20130105-abc is not published" in promote.stderr
    assert lease_record(env) is None, "released at the end"


def test_a_holder_on_another_host_frees_the_root_only_after_its_ttl(env, holder):
    held = holder(ttl=15)
    held.kill()
    held.wait()
    path = Path(env["MLPIPE_ROOT"]) / "_lease.json"
    path.write_text(json.dumps({**lease_record(env), "host": "etl-2"}))  # a holder this host cannot check
    promote = run([BIN / "mlpipe", "models", "promote", "20130105-abc", "--reason", "validated"], env)
    assert promote.returncode == 10, promote.stderr
    assert "on etl-2" in promote.stderr
    overlay = Path(env["LUIGI_CONFIG_PATH"])
    overlay.write_text(overlay.read_text() + "[lease]\nmanual_wait = 60\n")
    promote = run([BIN / "mlpipe", "models", "promote", "20130105-abc", "--reason", "validated"], env)
    assert "holds the storage root" in promote.stderr and "waiting up to 60 s ([lease] manual_wait)" in promote.stderr
    assert promote.returncode == 2, promote.stderr  # it ran once the lease expired: the version is not published
    assert "model version 20130105-abc is not published" in promote.stderr
    assert lease_record(env) is None, "released at the end"


def two_runs_at_once(env: dict, tmp_path: Path, date: str) -> list[dict]:
    """`mlpipe run --date DATE` twice, started at once (different flags, so luigi's own process lock
    does not tell them apart); both must succeed. Returns each run's summary's "stages"."""
    procs = []
    for n in (1, 2):
        summary = tmp_path / f"summary-{n}.json"
        args = [BIN / "mlpipe", "run", "--date", date, "--summary", str(summary)]
        procs.append((subprocess.Popen(args + (["--workers", "1"] if n == 2 else []), env=env, cwd=PROJECT,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), summary))
    outputs = [(proc.communicate(timeout=900), proc.returncode, summary) for proc, summary in procs]
    for (_, err), code, _ in outputs:
        assert code == 0, err[-3000:]
    waited = [err for (_, err), _, _ in outputs if "holds the storage root" in err]
    assert len(waited) == 1 and "waiting up to 600 s ([lease] run_wait)" in waited[0]
    assert "Did not run any tasks" in waited[0]
    stages = [json.loads(summary.read_text())["stages"] for _, _, summary in outputs]
    assert [bool(s) for s in stages].count(True) == 1, "one run did the work, the other found it done"
    return stages


def tasks_run(stages: list[dict], names: tuple[str, ...]) -> dict[str, int]:
    return {name: sum(s.get(name, {}).get("tasks", 0) for s in stages) for name in names}


@pytest.mark.slow
def test_two_runs_of_one_date_started_at_once_run_each_task_once(env, tmp_path):
    land(env, "2013-01-01", "2013-01-06")
    stages = two_runs_at_once(env, tmp_path, "2013-01-06")
    assert tasks_run(stages, ("train", "evaluate", "deploy", "features")) == {
        "train": 2, "evaluate": 2, "deploy": 2, "features": 6}, stages
    assert lease_record(env) is None


@pytest.mark.slow
def test_two_runs_of_one_date_on_s3_from_two_processes_run_each_task_once(env, tmp_path, moto_server, s3_bucket):
    """The same on an S3 root: the lease is taken by S3's conditional writes (If-None-Match)."""
    env = {**env, **S3_CREDENTIALS, "MLPIPE_ROOT": f"s3://{s3_bucket}/pipeline"}
    overlay = Path(env["LUIGI_CONFIG_PATH"])
    overlay.write_text(overlay.read_text() + f"[s3]\nendpoint_url = {moto_server.endpoint}\nregion_name = us-east-1\n")
    landed = run([BIN / "mlpipe", "land-demo", "--start", "2013-01-01", "--end", "2013-01-05"], env)
    assert landed.returncode == 0, landed.stderr
    stages = two_runs_at_once(env, tmp_path, "2013-01-05")
    assert tasks_run(stages, ("ingest", "validate", "features", "train", "deploy")) == {  # + the planes table
        "ingest": 11, "validate": 11, "features": 5, "train": 1, "deploy": 1}, stages
    s3 = moto_server.client()
    assert "Contents" not in s3.list_objects_v2(Bucket=s3_bucket, Prefix="pipeline/_lease.json"), "released"


def test_a_root_where_the_lease_cannot_be_taken_fails_naming_the_path(env, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    env = dict(env, MLPIPE_ROOT=str(blocker / "root"))
    proc = run([BIN / "mlpipe", "models", "promote", "20130105-abc", "--reason", "validated"], env)
    assert proc.returncode == 35, proc.stderr  # [retcode] scheduling_error
    assert proc.stderr.startswith(f"mlpipe: cannot take the lease of the storage root {blocker / 'root'}: cannot "
                                  f"read {blocker / 'root' / '_lease.json'}: "), proc.stderr
    assert f"{blocker} is a file where a directory is expected" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_invalidate_and_promote_during_a_paused_run_are_refused_and_the_run_ends_complete(env, tmp_path):
    """A run paused while it writes a day's features (tests/faults.py's "pause"): an invalidate of
    that day's clean data and a promote are refused naming the run, nothing is removed or moved,
    and the run, resumed, ends with every output complete and consistent."""
    land(env, "2013-01-01", "2013-01-06")
    pause = tmp_path / "pause"
    faulty = dict(env, PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT / "tests" / "fault_site"),
                                                                   env.get("PYTHONPATH")])),
                  MLPIPE_FAULT_LOG=str(tmp_path / "writes.jsonl"), MLPIPE_FAULT_PAUSE=str(pause),
                  MLPIPE_FAULT_AT="features/*/date=2013-01-04/part-0.parquet", MLPIPE_FAULT_ACTION="pause")
    nightly = subprocess.Popen([BIN / "mlpipe", "run", "--date", "2013-01-06"], env=faulty, cwd=PROJECT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not Path(f"{pause}.paused").exists():
            assert nightly.poll() is None and time.monotonic() < deadline, nightly.communicate()[1][-3000:]
            time.sleep(0.1)
        root = Path(env["MLPIPE_ROOT"])
        clean = root / "clean/flights/date=2013-01-04/_SUCCESS"
        assert clean.exists()
        invalidate = run([BIN / "mlpipe", "invalidate", "--stage", "validate", "--start", "2013-01-04",
                          "--end", "2013-01-04", "--yes"], env)
        promote = run([BIN / "mlpipe", "models", "promote", "20130105-abc", "--reason", "validated"], env)
        for refused in (invalidate, promote):
            assert refused.returncode == 10, refused.stderr
            assert f"`mlpipe run --date 2013-01-06` (pid {nightly.pid} on {socket.gethostname()}" in refused.stderr
        assert clean.exists() and not (root / "registry/production.json").exists()
    finally:
        Path(f"{pause}.resume").touch()
    _, err = nightly.communicate(timeout=900)
    assert nightly.returncode == 0, err[-3000:]
    plan = run([BIN / "mlpipe", "plan", "--start", "2013-01-06", "--end", "2013-01-06"], env)
    assert "0 task(s) would run" in plan.stdout, plan.stdout
    assert run([BIN / "mlpipe", "verify"], env).returncode == 0
