"""The central scheduler as operated: scripts/luigid.sh, and pipeline runs through a real luigid
(its JSON API, the history pages, two workers sharing one backfill)."""
from __future__ import annotations

import collections
import datetime as dt
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.luigid_server import LuigidServer
from tests.servers import free_port
from tests.test_commands import BIN, OVERLAY, PROJECT

SCRIPT = PROJECT / "scripts" / "luigid.sh"
RUNNING = re.compile(r"Worker Worker\(.*?\) running   (.+)$", re.M)


@pytest.fixture(scope="module")
def luigid(tmp_path_factory):
    """One luigid for the module's read-only checks (see tests/luigid_server.py)."""
    with LuigidServer(tmp_path_factory.mktemp("luigid")) as server:
        yield server


def pipeline_env(tmp_path: Path, root: str = "root") -> dict[str, str]:
    overlay = tmp_path / "overlay.cfg"
    overlay.write_text(OVERLAY)
    environ = dict(os.environ, MLPIPE_ROOT=str(tmp_path / root), LUIGI_CONFIG_PATH=str(overlay))
    environ.pop("MLPIPE_LANDING", None)
    return environ


def run(args, env, cwd=PROJECT, timeout=600):
    return subprocess.run([str(a) for a in args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def land(env, start="2013-01-01", end="2013-01-06"):
    proc = run([BIN / "mlpipe", "land-demo", "--start", start, "--end", end], env)
    assert proc.returncode == 0, proc.stderr


def luigi_args(tmp_path: Path, *task_args: str, lock: str = "lock") -> list:
    """`luigi --module tasks ...` with its pid lock under tmp_path (luigi's default is /tmp/luigi)."""
    return [BIN / "luigi", "--module", "tasks", *task_args, "--lock-pid-dir", tmp_path / lock]


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (luigid daemonizes: it is nobody's child here)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def processes_with(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline and alive(int(entry.name)):
                pids.append(int(entry.name))
    return pids


# --- scripts/luigid.sh ----------------------------------------------------------------------

def test_luigid_script_starts_once_reports_status_and_stops_cleanly(tmp_path):
    state = tmp_path / "luigid"
    port = free_port()
    # As cron runs it: an empty environment, from an unrelated working directory.
    env = {"HOME": os.environ.get("HOME", str(tmp_path)), "PATH": "/usr/bin:/bin",
           "MLPIPE_LUIGID_DIR": str(state), "MLPIPE_LUIGID_PORT": str(port)}

    def script(command, environ=env):
        return run([SCRIPT, command], environ, cwd=tmp_path, timeout=900)

    pidfile = state / "luigid.pid"
    try:
        started = script("start")
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"http://127.0.0.1:{port}/static/visualiser/index.html" in started.stdout
        pid = int(pidfile.read_text())
        assert alive(pid)
        assert processes_with(str(pidfile)) == [pid]
        ui = LuigidServer(state, port=port)  # only to read its pages
        assert ui.get("/static/visualiser/index.html")[0] == 200
        assert ui.api("task_list", status="DONE") == {}
        assert ui.get("/history")[0] == 200  # the history DB is configured and readable

        status = script("status")
        assert status.returncode == 0
        assert f"running (pid {pid}, port {port})" in status.stdout

        again = script("start")
        assert again.returncode == 0, again.stderr
        assert f"already running (pid {pid}, port {port})" in again.stdout
        assert int(pidfile.read_text()) == pid
        assert processes_with(str(pidfile)) == [pid]

        elsewhere = script("start", dict(env, MLPIPE_LUIGID_DIR=str(tmp_path / "other")))
        assert elsewhere.returncode == 1
        assert f"something else already listens on 127.0.0.1:{port}" in elsewhere.stderr

        stopped = script("stop")
        assert stopped.returncode == 0, stopped.stderr
        assert f"stopped (pid {pid})" in stopped.stdout
        assert not alive(pid)
        assert not pidfile.exists()

        status = script("status")
        assert status.returncode == 3
        assert "not running" in status.stdout
        assert script("stop").returncode == 0  # idempotent

        assert (state / "state.pickle").is_file()  # written by luigid on SIGTERM
        assert (state / "history.db").is_file()
        assert (state / "log" / "luigi-server.log").is_file()
        assert "Saved state in" in (state / "log" / "luigi-server.log").read_text()
        config = (state / "luigid.cfg").read_text()
        assert "record_task_history = True" in config
        assert f"db_connection = sqlite:///{state / 'history.db'}" in config

        restarted = script("start")  # picks the saved state up again
        assert restarted.returncode == 0, restarted.stderr
        assert f"Attempting to load state from {state / 'state.pickle'}" in (state / "log" / "luigi-server.log").read_text()
        assert script("stop").returncode == 0
    finally:
        if pidfile.exists():
            script("stop")


def test_luigid_script_refuses_a_bad_port(tmp_path):
    proc = run([SCRIPT, "start"], dict(os.environ, MLPIPE_LUIGID_DIR=str(tmp_path / "luigid"),
                                               MLPIPE_LUIGID_PORT="80x"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "MLPIPE_LUIGID_PORT must be a port number, not '80x'" in proc.stderr


# --- a pipeline run through luigid ------------------------------------------------------------

@pytest.mark.slow
def test_pipeline_through_luigid_shows_tasks_status_messages_graph_and_history(luigid, tmp_path):
    from tasks import CleanPartition, Deployment, ModelEvaluation, ModelMonitoring, NightlyPipeline

    env = pipeline_env(tmp_path)
    land(env)
    proc = run(luigi_args(tmp_path, "NightlyPipeline", "--date", "2013-01-06", *luigid.worker_args()), env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    day = dt.date(2013, 1, 6)
    ids = {name: task.task_id for name, task in {
        "pipeline": NightlyPipeline(date=day), "deployment": Deployment(date=day),
        "monitoring": ModelMonitoring(date=day), "evaluation": ModelEvaluation(date=day),
        "clean": CleanPartition(date=day, table="flights")}.items()}

    # /api/task_list: {"response": {task_id: {"name", "params", "status", "status_message", ...}}}
    done = luigid.api("task_list", status="DONE")
    assert set(ids.values()) <= set(done)
    assert done[ids["deployment"]]["name"] == "Deployment"
    assert done[ids["deployment"]]["params"] == {"date": "2013-01-06"}
    rows = len(pd.read_csv(Path(env["MLPIPE_ROOT"]) / "landing" / "flights" / "flights_2013-01-06.csv"))
    assert done[ids["clean"]]["status_message"].startswith(f"{rows} rows in, ")
    assert re.match(r"challenger AUC 0\.\d{4}, production AUC 0\.\d{4}; gate: (BLESSED|REJECTED)",
                    done[ids["evaluation"]]["status_message"])
    assert luigid.api("task_list", status="FAILED") == {}

    # /api/dep_graph: the same serialization, each node with its "deps"
    graph = luigid.api("dep_graph", task_id=ids["pipeline"])
    assert set(graph[ids["pipeline"]]["deps"]) == {ids["deployment"], ids["monitoring"]}
    assert {node["status"] for node in graph.values()} == {"DONE"}
    assert set(graph) <= set(done)
    assert {node["name"] for node in graph.values()} >= {"LandingFile", "RawPartition", "CleanPartition",
                                                         "FeaturePartition", "CandidateModel", "Predictions"}

    status, page = luigid.get("/history")
    assert status == 200 and "NightlyPipeline" in page and "CandidateModel" in page
    status, page = luigid.get("/history/by_name/NightlyPipeline")
    assert status == 200 and "2013-01-06" in page
    events = luigid.history(
        "SELECT e.event_name FROM tasks t JOIN task_events e ON e.task_id = t.id WHERE t.task_id = ? ORDER BY e.id",
        ids["deployment"])
    assert [e for (e,) in events] == ["PENDING", "RUNNING", "DONE"]


# --- two machines, one backfill ---------------------------------------------------------------

def wall_clock_free(record):
    if isinstance(record, dict):
        return {k: wall_clock_free(v) for k, v in record.items() if not k.endswith("_at")}
    if isinstance(record, list):
        return [wall_clock_free(v) for v in record]
    return record


@pytest.mark.slow
def test_two_workers_share_a_backfill_through_luigid_running_every_task_once(tmp_path):
    shared, alone = pipeline_env(tmp_path, "shared"), pipeline_env(tmp_path, "alone")
    land(shared)
    shutil.copytree(Path(shared["MLPIPE_ROOT"]) / "landing", Path(alone["MLPIPE_ROOT"]) / "landing")
    backfill = ["NightlyRange", "--start", "2013-01-01", "--end", "2013-01-06", "--workers", "1"]

    with LuigidServer(tmp_path / "luigid") as server:
        # Two machines: each its own process and pid-lock directory, started at the same time.
        workers = [subprocess.Popen([str(a) for a in luigi_args(tmp_path, *backfill, *server.worker_args(),
                                                                 lock=f"machine{i}")],
                                    env=shared, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for i in range(2)]
        logs = [worker.communicate(timeout=600)[1] for worker in workers]
        codes = [worker.returncode for worker in workers]
        history = server.history("SELECT t.name, t.task_id FROM tasks t JOIN task_events e ON e.task_id = t.id "
                                 "WHERE e.event_name = 'RUNNING'")
        rerun = run(luigi_args(tmp_path, *backfill, *server.worker_args()), shared)

    # A worker's summary counts what the other one ran as "being run by another worker" (exit code
    # 10, already_running) or "not granted run permission" (25, not_run); luigi has no "done by
    # another worker" category. Neither failed, and a rerun finds the whole range done.
    assert set(codes) <= {0, 10, 25}, "\n".join(log[-3000:] for log in logs)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Did not run any tasks" in rerun.stderr

    per_worker = [collections.Counter(RUNNING.findall(log)) for log in logs]
    runs = per_worker[0] + per_worker[1]
    assert all(per_worker), "both workers ran tasks"
    assert max(runs.values()) == 1, [task for task, n in runs.items() if n > 1]
    by_task_id = collections.Counter(task_id for _, task_id in history)
    assert max(by_task_id.values()) == 1
    assert collections.Counter(name for name, _ in history) == collections.Counter(t.split("(")[0] for t in runs)

    single = run(luigi_args(tmp_path, *backfill, "--local-scheduler"), alone)
    assert single.returncode == 0, single.stderr[-3000:]
    assert collections.Counter(RUNNING.findall(single.stderr)) == runs

    shared_root, alone_root = Path(shared["MLPIPE_ROOT"]), Path(alone["MLPIPE_ROOT"])
    predictions = sorted(p.relative_to(shared_root) for p in shared_root.glob("predictions/**/part-0.parquet"))
    decisions = sorted(p.relative_to(shared_root) for p in shared_root.glob("deployments/**/decision.json"))
    assert [p.parent.name for p in decisions] == ["date=2013-01-05", "date=2013-01-06"]
    assert [p.parent.name for p in predictions] == ["date=2013-01-05", "date=2013-01-06"]
    for path in predictions:
        pd.testing.assert_frame_equal(pd.read_parquet(shared_root / path), pd.read_parquet(alone_root / path))
    for path in decisions:
        assert (wall_clock_free(json.loads((shared_root / path).read_text()))
                == wall_clock_free(json.loads((alone_root / path).read_text())))
