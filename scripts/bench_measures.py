"""The measurements of scripts/bench.py, each run in a fresh Python process (`bench.py _measure NAME
ARGS`): luigi builds of one day's stages, of a task, a training step against a bare fit of the same
rows, and a no-op check; and their references (the same work without luigi)."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

def remove_day(root: Path, date: dt.date) -> None:
    """Every output of `date` (raw zone included; not the landing files): the day runs again."""
    for directory in sorted(root.glob(f"**/date={date.isoformat()}")):
        if "landing" not in directory.relative_to(root).parts:
            shutil.rmtree(directory)


def _build(task) -> float:
    import luigi

    started = time.perf_counter()
    ok = luigi.build([task], local_scheduler=True, workers=1, log_level="WARNING")
    seconds = time.perf_counter() - started
    if not ok:
        raise SystemExit(f"luigi failed to build {task}")
    return seconds


def m_stages(date: str, repeats: int) -> dict:
    """Ingest + validate + features of one day through luigi: FeaturePartition(date) with only
    the day's raw and clean partitions missing (its history and the aircraft table present).
    Run `repeats` times in this process (the day's outputs removed before each), like the
    references: the best run is the figure, the first (cold: lazy imports, caches) is reported."""
    from tasks import FeaturePartition
    from tasks.config import get_storage

    d = dt.date.fromisoformat(date)
    times = []
    for _ in range(repeats):
        remove_day(Path(get_storage().root), d)
        times.append(_build(FeaturePartition(date=d)))
    return {"seconds": min(times), "first_run_seconds": times[0]}


def m_floor(date: str, repeats: int) -> dict:
    """The I/O floor: pyarrow reading the day's flights CSV and writing the features Parquet."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from pipeline.flights.landing import landing_file
    from tasks import FeaturePartition
    from tasks.config import get_storage

    d = dt.date.fromisoformat(date)
    table = pq.read_table(FeaturePartition(date=d).data().path)
    source = landing_file(get_storage().landing, "flights", d)
    scratch = os.path.join(tempfile.mkdtemp(), "features.parquet")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        pacsv.read_csv(source)
        pq.write_table(table, scratch)
        times.append(time.perf_counter() - started)
    return {"seconds": min(times), "rows": table.num_rows}


def m_inprocess(date: str, repeats: int) -> dict:
    """The same transformations in one process, without luigi or intermediate files: parse and
    validate the day's landing files, summarise its flights for later days, build the features
    from them (and the stored history summaries and aircraft table the luigi run reads too),
    write the features Parquet."""
    from pipeline import ingest, validate
    from pipeline import storage as st
    from pipeline.sampling import concat_parts
    from tasks import CleanPartition, CleanReference, FeaturePartition
    from tasks.config import current_dataset, get_storage

    d, dataset = dt.date.fromisoformat(date), current_dataset()
    store = get_storage()
    task = FeaturePartition(date=d)
    scratch = store.target(os.path.join(tempfile.mkdtemp(), "features.parquet"))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        clean = {}
        for table, contract in dataset.daily_tables.items():
            target = store.target(store.landing_path(dataset.landing_path(table, d)))
            parsed = ingest.parse_landing(st.read_bytes(target), target.path, contract, dataset.formats[table])
            clean[table] = validate.validate_table(parsed, contract, target.path, d).clean
        dataset.history_rows(clean[dataset.target.table], d)  # what later days' features read
        planes = st.read_parquet(CleanReference(table="planes").clean_target())
        history = concat_parts([CleanPartition(table=dataset.target.table, date=h).history_summary()
                                 for h in task.history_days()])
        frame = dataset.feature_frame(clean, {"planes": planes}, history, d, task.history_window)
        st.write_parquet(scratch, frame)
        times.append(time.perf_counter() - started)
    return {"seconds": min(times), "rows": len(frame)}


def _fresh(task):
    """`task` with its stored outputs removed (a rerun of the benchmark measures it again)."""
    from tasks import ops
    from tasks.config import get_storage

    for path in ops.removable_paths(task):
        get_storage().remove(path)
    return task


def m_task(task: str, date: str) -> dict:
    """One task of the nightly chain whose inputs all exist."""
    import tasks

    return {"seconds": _build(_fresh(getattr(tasks, task)(date=dt.date.fromisoformat(date))))}


def m_training(date: str) -> dict:
    """CandidateModel(date) through luigi, then a bare scikit-learn fit of the same estimator on
    the very rows the task trained on, under the same thread limit. The scikit-learn stack is
    imported first, as in a long-lived worker process (`mlpipe backfill --processes`, `mlpipe
    worker`), which imports it once for all the tasks it runs; the bare fit, run after the task
    in the same process, has it imported too."""
    from threadpoolctl import threadpool_limits

    from tasks.threads import preload_for_workers

    preload_for_workers(models=True)

    from pipeline import storage as st
    from pipeline.estimators import make_estimator, model_inputs
    from pipeline.partitions import read_partitions
    from pipeline.sampling import sample_rows
    from tasks import CandidateModel
    from tasks.config import ComputeConfig, current_dataset
    from tasks.model import feature_targets, model_columns

    d = dt.date.fromisoformat(date)
    task = _fresh(CandidateModel(date=d))
    seconds = _build(task)
    meta = st.read_json(task.files()["metadata"])
    train_days, _ = task.windows()
    data = current_dataset()
    rows, _ = sample_rows(read_partitions(feature_targets(train_days), model_columns()), data.target.name,
                          task.max_train_rows, task.random_state)  # exactly the rows the task fits on
    X, y = model_inputs(rows, data.numeric_features, data.categorical_features, data.target.name, data.problem)
    estimator = make_estimator(data.numeric_features, data.categorical_features, task.hyperparameters, data.problem)
    with threadpool_limits(limits=ComputeConfig().threads):
        started = time.perf_counter()
        estimator.fit(X, y)
        bare = time.perf_counter() - started
    return {"seconds": seconds, "bare_fit_seconds": bare, "rows_trained": meta["rows_trained"],
            "rows_available": meta["rows_available"], "bare_rows": int(len(y))}


def m_noop(start: str, end: str, s3_endpoint: str | None = None) -> dict:
    """A no-op check of [start, end] (every output present): NightlyRange through luigi; with
    an S3 endpoint, every request the check sends is counted (botocore's before-send event)."""
    import luigi

    from tasks import NightlyRange
    from tasks.config import get_storage

    requests: list = []
    if s3_endpoint:
        client = get_storage().s3_client.s3.meta.client
        client.meta.events.register("before-send.s3", lambda request, **_: requests.append(request.method))
    task = NightlyRange(start=dt.date.fromisoformat(start), end=dt.date.fromisoformat(end))
    started = time.perf_counter()
    ok = luigi.build([task], local_scheduler=True, workers=1, log_level="WARNING")
    seconds = time.perf_counter() - started
    if not ok or task.requires():
        raise SystemExit(f"the no-op check of {start}..{end} found work to do: {task.requires()[:3]}")
    return {"seconds": seconds, "requests": len(requests),
            "by_method": {m: requests.count(m) for m in sorted(set(requests))}}


def _memory_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith(field + ":")).split()[1])


def _listening_pid(port: int) -> int:
    """The pid of the process whose command line names `port` (the luigid of tasks.workers)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    argv = fh.read().split(b"\0")
            except OSError:
                continue
            if b"--port" in argv and argv[argv.index(b"--port") + 1] == str(port).encode():
                return int(entry)
    raise SystemExit(f"no luigid found on port {port}")


def m_scheduler(start: str, end: str, monthly: bool) -> dict:
    """What luigid holds for a backfill of [start, end] of the whole nightly pipeline with nothing
    stored yet (every task missing): submitted as one graph, or (`monthly`) as the backfill does it,
    one calendar month at a time: here the range's first month (a later month's graph reaches back
    only to the previous month's stored decision, so it holds as many tasks).
    The tasks are put into a fresh luigid (tasks.workers.own_scheduler) without running them; then
    its memory (peak and current RSS) and the time of the task-list requests luigi's UI makes on
    every refresh, one per status, 5 rounds: their p95."""
    import statistics
    import urllib.parse

    import luigi.rpc
    import luigi.worker

    from pipeline.dates import month_spans
    from tasks import NightlyRange
    from tasks.workers import own_scheduler

    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    if monthly:
        first, last = month_spans(first, last)[0]
    with own_scheduler() as url:
        pid = _listening_pid(urllib.parse.urlsplit(url).port)
        scheduler = luigi.rpc.RemoteScheduler(url)
        started = time.perf_counter()
        with luigi.worker.Worker(scheduler=scheduler) as worker:
            if not worker.add(NightlyRange(start=first, end=last)):
                raise SystemExit(f"scheduling {first}..{last} failed")
        submit_seconds = time.perf_counter() - started
        tasks = len(scheduler.task_list("", ""))
        times = []
        for _ in range(5):
            for status in ("RUNNING", "FAILED", "DISABLED", "PENDING", "DONE"):
                t = time.perf_counter()
                scheduler.task_list(status, "")
                times.append(time.perf_counter() - t)
        return {"days": (last - first).days + 1, "tasks": tasks, "submit_seconds": submit_seconds,
                "task_list_p95_ms": 1000 * statistics.quantiles(times, n=20)[18],
                "luigid_peak_rss_mb": _memory_kb(pid, "VmHWM") / 1024,
                "luigid_rss_mb": _memory_kb(pid, "VmRSS") / 1024}


MEASURES = {"stages": m_stages, "floor": m_floor, "inprocess": m_inprocess, "task": m_task,
            "training": m_training, "noop": m_noop, "scheduler": m_scheduler}


# ---- scenarios -------------------------------------------------------------------------------
