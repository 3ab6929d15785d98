"""One backfill shared by worker processes on two hosts: luigid and the S3 store (moto) on a
scheduler host, `mlpipe backfill --central` on host A and a long-lived `mlpipe worker` on host B,
each host a network namespace of its own that reaches the scheduler host's address only
(tests/netns_hosts.py)."""
from __future__ import annotations

import collections
import contextlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import S3_CREDENTIALS
from tests.netns_hosts import Hosts
from tests.servers import free_port
from tests.test_commands import BIN, PROJECT, SHORT_PIPELINE
from tests.test_luigid import RUNNING

START, END = "2013-01-01", "2013-01-30"
BUCKET, PREFIX = "shared", "pipeline"

# Run on a worker host: wait until every URL answers (any HTTP status), then create the bucket.
_READY = textwrap.dedent("""
    import sys, time, urllib.error, urllib.request
    import boto3
    bucket, endpoint, urls = sys.argv[1], sys.argv[2], sys.argv[3:]
    deadline = time.monotonic() + 60
    for url in urls:
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    sys.exit(f"{url} does not answer: {exc}")
                time.sleep(0.2)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
""")

# Run on a worker host: copy every object under a prefix into a local directory.
_DOWNLOAD = textwrap.dedent("""
    import pathlib, sys
    import boto3
    endpoint, bucket, prefix, target = sys.argv[1:5]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            path = pathlib.Path(target) / item["Key"][len(prefix):].lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(path))
            count += 1
    print(count)
""")


def _luigid_config(directory: Path) -> Path:
    """luigid's overlay (as tests/luigid_server.py writes it): its state file and task history."""
    (directory / "log").mkdir(parents=True, exist_ok=True)
    config = directory / "luigid.cfg"
    config.write_text(f"[scheduler]\nrecord_task_history = True\nstate_path = {directory / 'state.pickle'}\n"
                      f"[task_history]\ndb_connection = sqlite:///{directory / 'history.db'}\n")
    return config


def _tail(text: str, n: int = 3000) -> str:
    return text[-n:]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


@pytest.mark.slow
def test_a_backfill_shared_by_workers_on_two_hosts_runs_every_task_once(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "luigid"
    local_root, s3_copy = tmp_path / "local", tmp_path / "s3-copy"
    with contextlib.ExitStack() as stack:
        hosts = stack.enter_context(Hosts(["hostA", "hostB"]))   # its end kills what it started
        if not hosts.namespaces:
            print("test_hosts: no network namespaces; every host is this host's loopback (127.0.0.1)")
        listen = "0.0.0.0" if hosts.namespaces else "127.0.0.1"
        moto_port, luigid_port = free_port(), free_port()   # any port is free in a new namespace
        endpoint = f"http://{hosts.address}:{moto_port}"
        scheduler_url = f"http://{hosts.address}:{luigid_port}/"

        # One configuration for every host, as a deployment's hosts share one luigi.cfg overlay.
        overlay = tmp_path / "overlay.cfg"
        overlay.write_text(SHORT_PIPELINE + f"[core]\ndefault-scheduler-host = {hosts.address}\n"
                           f"default-scheduler-port = {luigid_port}\n"
                           f"[s3]\nendpoint_url = {endpoint}\nregion_name = us-east-1\n")
        env = {**os.environ, **S3_CREDENTIALS, "MLPIPE_ROOT": f"s3://{BUCKET}/{PREFIX}",
               "LUIGI_CONFIG_PATH": str(overlay)}
        env.pop("MLPIPE_LANDING", None)

        # The scheduler host: moto's S3 server and luigid (reading the project's luigi.cfg: cwd).
        hosts.popen("sched", [BIN / "moto_server", "-H", listen, "-p", moto_port], env={**os.environ, **S3_CREDENTIALS},
                    stdout=stack.enter_context(open(logs / "moto.log", "wb")), stderr=subprocess.STDOUT)
        luigid = hosts.popen("sched", [BIN / "luigid", "--address", listen, "--port", luigid_port,
                                       "--state-path", state / "state.pickle", "--logdir", state / "log"],
                             env={**os.environ, "LUIGI_CONFIG_PATH": str(_luigid_config(state))}, cwd=PROJECT,
                             stdout=stack.enter_context(open(logs / "luigid.out", "wb")), stderr=subprocess.STDOUT)
        ready = hosts.run("hostA", [sys.executable, "-c", _READY, BUCKET, endpoint, endpoint + "/moto-api/",
                                    scheduler_url], env=env, timeout=120)
        assert ready.returncode == 0, ready.stderr + (logs / "luigid.out").read_text(errors="replace")

        # 1. 30 days of demo data onto the shared S3 root, from host A; the same into a local root.
        landed = hosts.run("hostA", [BIN / "mlpipe", "land-demo", "--start", START, "--end", END], env=env)
        assert landed.returncode == 0, _tail(landed.stderr)
        local_overlay = tmp_path / "local.cfg"
        local_overlay.write_text(SHORT_PIPELINE)
        local = {**os.environ, "MLPIPE_ROOT": str(local_root), "LUIGI_CONFIG_PATH": str(local_overlay)}
        local.pop("MLPIPE_LANDING", None)
        landed = subprocess.run([str(BIN / "mlpipe"), "land-demo", "--start", START, "--end", END], env=local,
                                cwd=PROJECT, capture_output=True, text=True, timeout=300)
        assert landed.returncode == 0, _tail(landed.stderr)

        # 2. A long-lived worker on host B, taking whatever luigid holds.
        worker_err = stack.enter_context(open(logs / "hostB.err", "w+"))
        worker = hosts.popen("hostB", [BIN / "mlpipe", "worker", "--processes", "1", "--idle", "8",
                                       "--scheduler-url", scheduler_url],
                             env=env, stdout=subprocess.DEVNULL, stderr=worker_err, text=True)

        # 3. The backfill, submitted from host A to the central scheduler.
        started = time.monotonic()
        backfill = hosts.run("hostA", [BIN / "mlpipe", "backfill", "--start", START, "--end", END,
                                       "--stage", "features", "--central", "--processes", "1"], env=env)
        backfill_seconds = time.monotonic() - started
        (logs / "hostA.err").write_text(backfill.stderr)
        worker_err.seek(0)
        assert backfill.returncode == 0, (f"host A's backfill exited {backfill.returncode}:\n{_tail(backfill.stderr)}"
                                          f"\n--- host B's worker:\n{_tail(worker_err.read())}")

        # The same backfill alone (one process, a local scheduler, the local root), on this host
        # while host B's worker sits out its idle time.
        alone_err = stack.enter_context(open(logs / "alone.err", "w+"))
        alone = subprocess.Popen([str(BIN / "mlpipe"), "backfill", "--start", START, "--end", END, "--stage",
                                  "features"], env=local, cwd=PROJECT, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=alone_err, text=True)
        stack.callback(_stop, alone)

        # 4. Host B's worker leaves by itself once luigid has had no work for 8 s.
        try:
            code = worker.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("host B's worker did not leave within 120 s of the backfill's end")
        worker_seconds = time.monotonic() - started - backfill_seconds
        worker_err.seek(0)
        worker_log = worker_err.read()
        assert code == 0, _tail(worker_log)
        assert luigid.poll() is None, f"luigid exited ({luigid.returncode})"

        with contextlib.closing(sqlite3.connect(f"file:{state / 'history.db'}?mode=ro", uri=True)) as db:
            history = db.execute("SELECT t.name, t.task_id FROM tasks t JOIN task_events e ON e.task_id = t.id "
                                 "WHERE e.event_name = 'RUNNING'").fetchall()

        # The S3 root's features, copied out through host A (this host cannot reach the store).
        copied = hosts.run("hostA", [sys.executable, "-c", _DOWNLOAD, endpoint, BUCKET, PREFIX + "/features/",
                                     s3_copy / "features"], env=env)
        assert copied.returncode == 0, copied.stderr

        alone.wait(timeout=300)
        alone_err.seek(0)
        alone_log = alone_err.read()
        assert alone.returncode == 0, _tail(alone_log)

    # 5. Each host ran tasks, no task ran twice or on both, luigid saw each task run once, and
    # together the hosts ran exactly what the backfill alone runs.
    per_host = {"hostA": collections.Counter(RUNNING.findall(backfill.stderr)),
                "hostB": collections.Counter(RUNNING.findall(worker_log))}
    runs = per_host["hostA"] + per_host["hostB"]
    print(f"test_hosts: {'namespaces' if hosts.namespaces else 'loopback'}; host A ran "
          f"{sum(per_host['hostA'].values())} tasks, host B {sum(per_host['hostB'].values())}; the backfill took "
          f"{backfill_seconds:.0f} s, host B's worker left {worker_seconds:.0f} s after it")
    assert all(per_host.values()), {host: sum(c.values()) for host, c in per_host.items()}
    assert max(runs.values()) == 1, [task for task, n in runs.items() if n > 1]
    by_task_id = collections.Counter(task_id for _, task_id in history)
    assert max(by_task_id.values()) == 1, [task for task, n in by_task_id.items() if n > 1]
    assert collections.Counter(name for name, _ in history) == collections.Counter(t.split("(")[0] for t in runs)
    assert collections.Counter(RUNNING.findall(alone_log)) == runs

    # ...and wrote the same features as the backfill alone.
    expected = sorted(p.relative_to(local_root) for p in local_root.glob("features/**/part-*.parquet"))
    got = sorted(p.relative_to(s3_copy) for p in s3_copy.glob("features/**/part-*.parquet"))
    assert len(expected) == 30 and got == expected
    for path in expected:
        pd.testing.assert_frame_equal(pd.read_parquet(s3_copy / path), pd.read_parquet(local_root / path))
