"""luigi.cfg sections shared by every task: where the data lives and when the pipeline starts."""
from __future__ import annotations

import datetime as dt
import functools
import os

import luigi
import luigi.configuration

from pipeline.storage import Storage, resolve_root


class storage(luigi.Config):  # noqa: N801 - luigi maps the class name to the [storage] section
    root = luigi.Parameter(
        default="",
        description="Storage root for every output; $MLPIPE_ROOT overrides it; empty means the project's var/")
    landing = luigi.Parameter(
        default="",
        description="Landing zone the upstream system drops files into; $MLPIPE_LANDING overrides it; "
                    "empty means {root}/landing")


def dataset_path() -> str:
    """The dataset description (TOML) the pipeline runs: `mlpipe --dataset` (which sets
    $MLPIPE_DATASET), else $MLPIPE_DATASET, else [dataset] path in luigi.cfg, else the flights
    data (pipeline/flights.toml). Read straight from the configuration, not through a
    luigi.Config class: the stages ask for it at every use, and resolving a luigi.Config costs
    ~0.1 ms each time (it made building a task's output path 3x slower)."""
    from pipeline.dataset import BUILTIN

    return (os.environ.get("MLPIPE_DATASET") or luigi.configuration.get_config().get("dataset", "path", "")
            or BUILTIN)


class pipeline(luigi.Config):  # noqa: N801 - [pipeline] section
    start_date = luigi.DateParameter(
        default=dt.date(2013, 1, 1),
        description="First day of data the pipeline uses; nothing earlier is required")
    warmup_days = luigi.IntParameter(
        default=14,
        description="Days of data collected before the first model is trained and deployed")

    @property
    def first_deploy_date(self) -> dt.date:
        return self.start_date + dt.timedelta(days=self.warmup_days)


def get_storage() -> Storage:
    """The Storage for the configured root and landing zone. One per process and configuration,
    so S3/WebHDFS clients (and their connection pools) are reused across tasks and checks."""
    cfg = storage()
    root = resolve_root(cfg.root)
    landing = os.environ.get("MLPIPE_LANDING") or cfg.landing
    s3_options = tuple(sorted(_section("s3").items()))
    hdfs_options = tuple(sorted(_section("hdfs").items())) + tuple(sorted(_section("webhdfs").items()))
    return _storage(root, landing, s3_options, hdfs_options, os.getpid())


def _section(name: str) -> dict[str, str]:
    config = luigi.configuration.get_config()
    return dict(config.items(name)) if config.has_section(name) else {}


@functools.lru_cache(maxsize=8)
def _storage(root: str, landing: str, s3_options: tuple, hdfs_options: tuple, pid: int) -> Storage:
    return Storage(root, landing=landing)


class compute(luigi.Config):  # noqa: N801 - [compute] section
    threads = luigi.IntParameter(
        default=1,
        description="Native threads per task (OpenMP, BLAS; pyarrow too while tasks run in parallel worker "
                    "processes). Keep threads x luigi workers <= cores: gradient boosting slows down by orders "
                    "of magnitude when its threads compete for cores")


def in_worker_process() -> bool:
    """Whether this task runs in a process of its own beside others: luigi runs each task in a
    forked child (a multiprocessing process) when it has more than one worker."""
    import multiprocessing

    return multiprocessing.parent_process() is not None


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
        threads = compute().threads
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
