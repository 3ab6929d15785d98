"""Outages as a user meets them in a real run: the S3 endpoint crashing in the middle of
`mlpipe run` and coming back (luigi.cfg's retry policy carries the run through), staying down, or
down before the run starts; and a local storage root that cannot be written."""
from __future__ import annotations

import io
import json
import os
import re
import resource
import signal
import subprocess
import time
from configparser import ConfigParser
from pathlib import Path

import pandas as pd
import pytest

from pipeline import layout
from pipeline import storage as st
from tests.conftest import S3_CREDENTIALS
from tests.servers import MotoServer
from tests.test_commands import BIN, PROJECT, SHORT_PIPELINE

BUCKET = "nightly-outage"
# SHORT_PIPELINE leaves the retry policy ([scheduler], [worker]) to luigi.cfg.
DATE = "2013-01-06"  # the second deployment day: scored by the model deployed on 2013-01-05
FAILED = re.compile(r"Worker Worker\(.*?\) failed    (.+)$", re.M)
DONE = re.compile(r"Worker Worker\(.*?\) done      (.+)$", re.M)


def mlpipe(*args: str, env: dict, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "mlpipe"), *args], env=env, cwd=PROJECT, capture_output=True, text=True,
                          timeout=300, **kwargs)


def wait_for(condition, what: str, timeout: float, process: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.2)
    tail = log.read_text()[-4000:] if log is not None else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def keys(s3, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_luigi_cfg_retries_a_failed_task_within_a_bounded_time():
    """The retry policy only works as a whole: without keep_alive the worker exits after the first
    failure, and one that idles for less than retry_delay exits before the retry is due."""
    from luigi.parameter import TimeDeltaParameter

    cfg = ConfigParser()
    cfg.read(PROJECT / "luigi.cfg")
    retry_count, retry_delay = cfg.getint("scheduler", "retry_count"), cfg.getfloat("scheduler", "retry_delay")
    idle = TimeDeltaParameter().parse(cfg.get("worker", "max_keep_alive_idle_duration")).total_seconds()
    assert cfg.getboolean("worker", "keep_alive")
    assert retry_count >= 2 and 60 <= retry_delay <= 900, "a few retries, minutes apart"
    assert idle >= retry_delay + 60 + 6, "idles through a retry_delay, luigid's 60 s pruning and the polling jitter"
    assert idle <= 2 * retry_delay, "a run with a missing landing file still ends soon"
    assert (retry_count - 1) * retry_delay <= min(cfg.getint("scheduler", "disable_window"), 3600), \
        "every failure counts towards retry_count, and a failing task gives up within the hour"


def s3_overlay(tmp_path: Path, server: MotoServer, retry_delay: float) -> dict:
    """The environment of a run whose storage root and landing zone are on `server`, set in an
    overlay that keeps luigi.cfg's retry policy but with a short retry_delay."""
    overlay = tmp_path / "overlay.cfg"
    overlay.write_text(SHORT_PIPELINE + f"""
[storage]
root = s3://{BUCKET}/pipeline
landing = s3://{BUCKET}/landing
[s3]
endpoint_url = {server.endpoint}
region_name = us-east-1
[scheduler]
retry_delay = {retry_delay}
""")
    env = {**os.environ, **S3_CREDENTIALS, "LUIGI_CONFIG_PATH": str(overlay)}
    for name in ("MLPIPE_ROOT", "MLPIPE_LANDING", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    return env


@pytest.fixture
def moto(tmp_path):
    """A moto server of this test's own (it is crashed and restarted) with an empty bucket."""
    server = MotoServer().start()
    try:
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        server.stop()


def land_on_s3(env: dict, end: str = DATE) -> None:
    landed = mlpipe("land-demo", "--start", "2013-01-01", "--end", end, env=env)
    assert landed.returncode == 0, landed.stderr


def start_run(env: dict, log: Path, *extra: str) -> subprocess.Popen:
    with open(log, "w") as err:
        return subprocess.Popen([str(BIN / "mlpipe"), "run", "--date", DATE, *extra], env=env, cwd=PROJECT,
                                stdout=subprocess.DEVNULL, stderr=err, text=True)


def unreachable(server: MotoServer, prefix: str = "StorageError: ") -> re.Pattern:
    """The message of a task that found the endpoint down (one line of the log)."""
    return re.compile(rf"{prefix}cannot reach the S3 endpoint {re.escape(server.endpoint)} for "
                      rf"s3://{BUCKET}/\S+: .*; check that the endpoint is up and that \[s3\] endpoint_url and "
                      r"region_name in luigi.cfg point at it; a task that fails this way while running is retried "
                      r"as set in luigi.cfg \[scheduler\] retry_count / retry_delay, otherwise rerun once the "
                      r"endpoint is back$", re.M)


@pytest.mark.slow
def test_s3_endpoint_crash_mid_run_is_retried_and_the_run_completes(moto, tmp_path):
    """The S3 endpoint (moto, its own process) is SIGKILLed once the raw partitions exist and
    restarted on the same port: the running task fails with a message naming the endpoint and
    saying what to do, luigi's retry policy runs it again once the endpoint is back, and the same
    `mlpipe run` ends with exit code 0 and complete, consistent outputs.

    moto keeps its objects in memory (and its request recorder cannot replay multipart uploads),
    so a restarted moto is empty. To simulate an outage of the endpoint rather than a loss of
    data, the test pauses the run (SIGSTOP), takes a snapshot of every object the server
    acknowledged, crashes the server, lets the run continue against the dead endpoint (SIGCONT),
    and once a task has failed restarts the server and puts the snapshot back: the store comes
    back exactly as it was at the crash, as a durable store would. Objects whose upload was cut
    off by the crash are not in it, so a partially written output can only be complete if the
    retry writes it again."""
    server = moto
    env = s3_overlay(tmp_path, server, retry_delay=10)  # 4 attempts (luigi.cfg), 10 s apart instead of 5 min
    land_on_s3(env)
    s3 = server.client()
    log = tmp_path / "run.log"
    summary = tmp_path / "summary.json"

    started = time.monotonic()
    run = start_run(env, log, "--summary", str(summary))
    try:
        wait_for(lambda: len([k for k in keys(s3, "pipeline/raw/") if k.endswith("/_SUCCESS")]) >= 3, "raw partitions on S3", 120, run, log)
        os.kill(run.pid, signal.SIGSTOP)  # no request from the run in flight while the state is copied
        time.sleep(0.5)
        before_crash = server.snapshot()[BUCKET]
        server.kill()
        os.kill(run.pid, signal.SIGCONT)
        crashed_at = time.monotonic()

        wait_for(lambda: unreachable(server).search(log.read_text()), "a task failing on the dead endpoint", 60,
                 run, log)
        wait_for(lambda: FAILED.search(log.read_text()), "luigi to record the failure", 30, run, log)
        assert run.poll() is None, "the run must wait for its retries instead of exiting"
        server.restart()
        server.restore({BUCKET: before_crash})
        down_for = time.monotonic() - crashed_at
        code = run.wait(timeout=240)
    finally:
        if run.poll() is None:
            os.kill(run.pid, signal.SIGCONT)
            run.kill()
            run.wait()
    elapsed = time.monotonic() - started
    stderr = log.read_text()
    assert code == 0, stderr[-5000:]

    # What the user saw: which tasks failed on the endpoint, then succeeded when retried.
    failed = set(FAILED.findall(stderr))
    done = DONE.findall(stderr)
    assert failed, "a task failed during the outage"
    assert failed <= set(done), f"every failed task succeeded on a retry: failed {failed}, done {done}"
    for task in failed:  # ... and its success came after its failure
        assert stderr.rindex(f"done      {task}") > stderr.index(f"failed    {task}")
    assert "This progress looks :) because there were failed tasks but they all succeeded in a retry" in stderr
    assert json.loads(summary.read_text())["exit_code"] == 0

    # What is stored: whole, consistent outputs, read back with a plain S3 client.
    def get(key: str) -> bytes:
        return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    stored = keys(s3)
    assert not [k for k in stored if st.is_temp(k.rsplit("/", 1)[-1])], "no temporary object is left behind"
    lease = f"pipeline/{layout.LEASE_FILE}"  # held by the run while it ran, released at its end
    assert lease in before_crash and lease not in stored
    assert set(before_crash) - {lease} < set(stored), "the run wrote the rest of its outputs after the endpoint came back"
    for key in (k for k in stored if k.endswith(".parquet")):
        pd.read_parquet(io.BytesIO(get(key)))  # every Parquet object is whole
    landing_rows = {day: len(pd.read_csv(io.BytesIO(get(f"landing/flights/flights_{day}.csv"))))
                    for day in ("2013-01-01", "2013-01-02", "2013-01-03", "2013-01-04", "2013-01-05", DATE)}
    for day, rows in landing_rows.items():
        raw = pd.read_parquet(io.BytesIO(get(f"pipeline/raw/flights/date={day}/part-0.parquet")))
        base = f"pipeline/%s/flights/date={day}/"
        assert base % "clean" + "_SUCCESS" in stored
        clean = pd.read_parquet(io.BytesIO(get(base % "clean" + "part-0.parquet")))
        quarantine = pd.read_parquet(io.BytesIO(get(base % "quarantine" + "part-0.parquet")))
        report = json.loads(get(base % "validation" + "report.json"))
        assert len(raw) == rows == len(clean) + len(quarantine) == report["rows_in"] > 500
    for flag in (k for k in stored if k.endswith("/_SUCCESS") and "/clean/" in k):
        assert flag.replace("_SUCCESS", "part-0.parquet") in stored, f"{flag} marks an incomplete output"
    decisions = {day: json.loads(get(next(k for k in stored if k.startswith("pipeline/deployments/")
                                          and f"date={day}/decision.json" in k)))
                 for day in ("2013-01-05", DATE)}
    serving = decisions["2013-01-05"]["production_version"]
    assert serving and decisions[DATE]["production_version_before"] == serving
    assert f"pipeline/registry/versions/{serving}/_SUCCESS" in stored
    assert json.loads(get(f"pipeline/registry/versions/{serving}/manifest.json"))["version"] == serving
    predictions_key = next(k for k in stored if k.startswith("pipeline/predictions/") and k.endswith(f"date={DATE}/part-0.parquet"))
    predictions = pd.read_parquet(io.BytesIO(get(predictions_key)))
    assert len(predictions) == landing_rows[DATE] and predictions["score"].between(0, 1).all()
    assert predictions["model_version"].unique().tolist() == [serving]
    print(f"outage: endpoint down {down_for:.1f} s, tasks failed and retried: {sorted(failed)}, "
          f"run {elapsed:.1f} s")


@pytest.mark.slow
def test_s3_endpoint_down_for_good_fails_the_run_after_the_retries_with_exit_30(moto, tmp_path):
    """The endpoint crashes mid-run and does not come back: every task that needs it fails with
    the endpoint's message on each of its retry_count (luigi.cfg: 4) attempts, then the run gives
    up with exit code 30 and nothing downstream of the failures runs."""
    server = moto
    env = s3_overlay(tmp_path, server, retry_delay=1)
    land_on_s3(env)
    log = tmp_path / "run.log"
    run = start_run(env, log)
    try:
        wait_for(lambda: len([k for k in keys(server.client(), "pipeline/raw/") if k.endswith("/_SUCCESS")]) >= 3, "raw partitions on S3", 120, run, log)
        server.kill()
        code = run.wait(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    stderr = log.read_text()
    assert code == 30, stderr[-5000:]  # [retcode] task_failed
    assert unreachable(server).search(stderr), stderr[-5000:]
    attempts = {task: FAILED.findall(stderr).count(task) for task in set(FAILED.findall(stderr))}
    assert attempts and set(attempts.values()) == {4}, attempts
    assert not set(attempts) & set(DONE.findall(stderr)), "no failed task succeeded"
    assert f"mlpipe: could not store the run summary at s3://{BUCKET}/pipeline/runs/nightly/date={DATE}/" in stderr
    assert "This progress looks :( because there were failed tasks" in stderr


def test_s3_endpoint_down_when_the_run_starts_is_a_scheduling_error_with_exit_35(moto, tmp_path):
    """A run takes the storage root's lease before luigi checks anything; if the endpoint is down
    then, taking it fails (luigi's retry policy does not cover it): exit code 35, one message
    naming the lease and the endpoint, and nothing written."""
    server = moto
    env = s3_overlay(tmp_path, server, retry_delay=1)
    land_on_s3(env, end="2013-01-01")
    server.kill()
    proc = subprocess.run([str(BIN / "mlpipe"), "run", "--date", "2013-01-01"], env=env, cwd=PROJECT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 35, proc.stderr[-3000:]  # [retcode] scheduling_error
    lease = f"mlpipe: cannot take the lease of the storage root s3://{BUCKET}/pipeline: "
    assert unreachable(server, prefix=re.escape(lease)).search(proc.stderr), proc.stderr[-3000:]
    assert "cannot take the lease of the storage root" in proc.stderr and not FAILED.search(proc.stderr)
    assert "Traceback" not in proc.stderr
    server.restart()
    assert server.snapshot() == {}  # nothing could be written (and moto forgot the landing files)


@pytest.fixture
def local_env(tmp_path):
    """A local storage root with the landing files of 2013-01-01..02, and an overlay whose retry
    policy is luigi.cfg's with retries a second apart."""
    overlay = tmp_path / "overlay.cfg"
    overlay.write_text(SHORT_PIPELINE + "\n[scheduler]\nretry_delay = 1\n[worker]\nwait_jitter = 0.5\n")
    env = {**os.environ, "MLPIPE_ROOT": str(tmp_path / "root"), "LUIGI_CONFIG_PATH": str(overlay)}
    env.pop("MLPIPE_LANDING", None)
    landed = mlpipe("land-demo", "--start", "2013-01-01", "--end", "2013-01-02", env=env)
    assert landed.returncode == 0, landed.stderr
    return env


def test_a_file_where_the_raw_zone_should_be_fails_the_task_with_the_path_and_exit_30(local_env):
    """A file where a directory is expected: unwritable even for root (tests run as root, where
    chmod does not stop writes)."""
    root = Path(local_env["MLPIPE_ROOT"])
    (root / "raw").write_text("not a directory")
    proc = mlpipe("run", "--date", "2013-01-02", env=local_env)
    assert proc.returncode == 30, proc.stderr[-3000:]  # [retcode] task_failed
    match = re.search(rf"StorageError: cannot create directory '{re.escape(str(root))}/raw/\w+(/date=2013-01-0\d)?': "
                      rf"{re.escape(str(root))}/raw is a file, not a directory; check that the storage root "
                      r"\(\[storage\] root in luigi.cfg or MLPIPE_ROOT\) is writable", proc.stderr)
    assert match, proc.stderr[-3000:]
    failed = FAILED.findall(proc.stderr)
    assert failed and all(task.startswith(("RawPartition(", "RawReference(")) for task in failed), failed
    assert all(failed.count(task) == 4 for task in failed), "luigi.cfg's retry_count: 4 attempts, then it gives up"
    assert (root / "raw").read_text() == "not a directory"
    assert not list(root.glob("clean/**/*")) and not list(root.glob("features/**/*"))


def test_a_full_disk_fails_the_task_with_the_path_and_exit_30(local_env):
    """Writes beyond a file-size limit (RLIMIT_FSIZE, set for the run's process only: the way to
    fill a 'disk' without mount privileges) fail like a full disk: the task fails naming the file,
    and no partial file is left under its final name or a temporary one."""
    root = Path(local_env["MLPIPE_ROOT"])

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    proc = mlpipe("run", "--date", "2013-01-02", env=local_env, preexec_fn=small_files)
    assert proc.returncode == 30, proc.stderr[-3000:]
    match = re.search(r"StorageError: cannot write (\S+/raw/\w+/date=2013-01-0\d/part-0\.parquet): \[Errno 27\] "
                      r"File too large; the file is larger than the file-size limit of the process \(ulimit -f\)",
                      proc.stderr)
    assert match, proc.stderr[-3000:]
    assert match.group(1).startswith(f"{root}/raw/")
    assert not Path(match.group(1)).exists(), "no partial file under the final name"
    assert not list(root.glob("**/*-luigi-tmp-*")), "no temporary file left behind"
    assert FAILED.findall(proc.stderr)
