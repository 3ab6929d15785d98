"""Native thread pools of a task (OpenMP, BLAS, pyarrow), capped at [compute] threads, and what is
imported once before luigi forks its worker processes."""
from __future__ import annotations

import functools

from tasks.config import ComputeConfig

PARALLEL_ENV = "MLPIPE_PARALLEL_PROCESSES"  # "1" in each process of a pool of long-lived workers


def in_worker_process() -> bool:
    """Whether this task runs in a process of its own beside others: luigi runs each task in a
    forked child (a multiprocessing process) when it has more than one worker; a long-lived worker
    of a pool (tasks.workers) is one of several processes."""
    import multiprocessing
    import os

    return multiprocessing.parent_process() is not None or os.environ.get(PARALLEL_ENV) == "1"


def limit_threads(run=None, *, openmp: bool = True):
    """Decorate a task's run() to cap native thread pools at [compute] threads: OpenMP and BLAS
    always; pyarrow's CPU pool (CSV parsing, Parquet decoding, conversions) when the task runs in a
    worker process beside others -- alone (one worker) it keeps every core, in parallel workers
    each task's threads would otherwise compete for the same cores.

    threadpoolctl caps only the libraries already loaded, and scikit-learn (with its OpenMP
    runtime) is imported lazily inside run(): with `openmp` (for tasks that fit or predict) the
    runtime is loaded first, or the cap would silently not apply to it. Data tasks pass
    openmp=False and do not pay for importing scikit-learn."""
    if run is None:
        return functools.partial(limit_threads, openmp=openmp)

    @functools.wraps(run)
    def wrapper(self):
        import pyarrow as pa
        from threadpoolctl import threadpool_limits

        if openmp:
            import sklearn.utils._openmp_helpers  # noqa: F401 - loads the OpenMP runtime to be capped
        threads = ComputeConfig().threads
        previous = pa.cpu_count()
        if in_worker_process():
            pa.set_cpu_count(max(1, min(threads, previous)))
        try:
            with threadpool_limits(limits=threads):
                return run(self)
        finally:
            pa.set_cpu_count(previous)
    return wrapper


def preload_for_workers(models: bool) -> None:
    """Import, once and in this process, what the tasks import lazily inside run(). With more
    than one worker luigi forks a process per task, and each child would import them again:
    pyarrow.parquet and friends cost ~0.1 s a task, scikit-learn, skops and matplotlib ~2 s a
    model task. `models`: the run includes model stages."""
    import luigi.contrib.hdfs.target  # noqa: F401
    import pyarrow.pandas_compat  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import threadpoolctl  # noqa: F401

    if models:
        import matplotlib  # noqa: F401

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
        import skops.io  # noqa: F401
        import sklearn.ensemble  # noqa: F401
        import sklearn.inspection  # noqa: F401
        import sklearn.metrics  # noqa: F401
        import sklearn.utils._openmp_helpers  # noqa: F401
