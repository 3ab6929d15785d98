"""Operations around a run: per-task timings, the machine-readable run summary, and the
central scheduler preflight check."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import tempfile
import time

import luigi
import luigi.interface
import luigi.retcodes

from pipeline import storage as st
from tasks.base import dataset
from tasks.config import get_storage

SCHEDULER_UNREACHABLE = 45


def exit_class(code: int) -> str:
    """The [retcode] name of an exit code ('success' for 0)."""
    if code == 0:
        return "success"
    if code == SCHEDULER_UNREACHABLE:
        return "scheduler_unreachable"
    codes = luigi.retcodes.retcode()
    for name in ("already_running", "missing_data", "not_run", "task_failed", "scheduling_error",
                 "unhandled_exception"):
        if getattr(codes, name) == code:
            return name
    return "unknown"


@contextlib.contextmanager
def recorded_timings():
    """Collect (task family, task id, seconds) of every task run, from whichever worker process
    runs it: luigi fires PROCESSING_TIME in the process that ran the task, so each appends a line
    to a shared file."""
    fd, path = tempfile.mkstemp(prefix="mlpipe-timings-", suffix=".jsonl")
    os.close(fd)

    def record(task, seconds):
        with open(path, "a") as out:
            out.write(json.dumps({"task": task.get_task_family(), "task_id": task.task_id,
                                  "seconds": round(float(seconds), 3)}) + "\n")

    luigi.Task.event_handler(luigi.Event.PROCESSING_TIME)(record)
    timings: list[dict] = []
    try:
        yield timings
    finally:
        luigi.Task._event_callbacks[luigi.Task][luigi.Event.PROCESSING_TIME].discard(record)
        with open(path) as src:
            timings.extend(json.loads(line) for line in src if line.strip())
        os.remove(path)


def stage_timings(timings: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for t in timings:
        stage = out.setdefault(t["task"], {"tasks": 0, "seconds": 0.0})
        stage["tasks"] += 1
        stage["seconds"] = round(stage["seconds"] + t["seconds"], 3)
    return out


def run_summary(date: dt.date, code: int, started: float, timings: list[dict]) -> dict:
    """What a run of NightlyPipeline(date) did, read back from the stored outputs: for alerting."""
    from tasks import CleanPartition, Deployment, FeaturePartition, ModelEvaluation, ModelMonitoring

    def read(target):
        try:
            return st.read_json(target) if target.exists() else None
        except (FileNotFoundError, st.StorageError, ValueError):
            return None

    validation = {}
    for table in dataset.DAILY_TABLES:
        report = read(CleanPartition(table=table, date=date).outputs(date)["report"])
        if report:
            validation[table] = {k: report[k] for k in ("rows_in", "rows_clean", "rows_quarantined",
                                                         "quarantined_by_rule", "warnings")}
    evaluation = read(ModelEvaluation(date=date).record())
    decision = read(Deployment(date=date).output())
    monitoring = read(ModelMonitoring(date=date).output())
    return {
        "date": date.isoformat(),
        "exit_code": code,
        "exit_class": exit_class(code),
        "started_at": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(time.time() - started, 3),
        "storage_root": get_storage().root,
        "stages": stage_timings(timings),
        "rows": {"validation": validation,
                 "features": _rows(FeaturePartition(date=date).output())},
        "metrics": {"challenger": (evaluation or {}).get("challenger"),
                    "production": (evaluation or {}).get("production"),
                    "realized": (monitoring or {}).get("realized")},
        "deployment": None if decision is None else {
            k: decision.get(k) for k in ("action", "blessed", "production_version",
                                         "production_version_before", "reasons")},
        "alerts": (monitoring or {}).get("alerts", []),
    }


def _rows(target) -> int | None:
    try:
        return int(len(st.read_parquet(target, columns=[dataset.TARGET]))) if target.exists() else None
    except (FileNotFoundError, st.StorageError):
        return None


def scheduler_address() -> tuple[str, int]:
    """luigid's host and port as luigi's own [core] settings give them."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # luigi warns about [core] options its Config class does not declare
        core = luigi.interface.core()
    return core.scheduler_host, int(core.scheduler_port)


def scheduler_reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
