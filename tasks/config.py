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
        description="OpenMP/BLAS threads per task. Keep threads x luigi workers <= cores: gradient "
                    "boosting slows down by orders of magnitude when its threads compete for cores")


def limit_threads(run):
    """Decorate a task's run() to cap native thread pools (OpenMP, BLAS) at [compute] threads."""
    @functools.wraps(run)
    def wrapper(self):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=compute().threads):
            return run(self)
    return wrapper
