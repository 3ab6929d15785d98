"""Shared fixtures: a fresh luigi task registry per test, a temporary storage root, and
luigi.cfg overrides that are undone after each test."""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Tests run side by side in pytest-xdist workers (scripts/test.sh). luigi's pid lock refuses a
    # command line that is already running, and keeps its pid files in the temporary directory
    # ([core] lock_pid_dir defaults to $TMPDIR/luigi): give each worker, and the pipeline processes
    # its tests start, a temporary directory of its own, so that the same command in two workers
    # is not mistaken for a second copy of one run.
    _worker_tmp = os.path.join(tempfile.gettempdir(), f"mlpipe-tests-{os.environ['PYTEST_XDIST_WORKER']}")
    os.makedirs(_worker_tmp, exist_ok=True)
    os.environ["TMPDIR"] = _worker_tmp
    tempfile.tempdir = None  # read TMPDIR again

# Models are signed (pipeline.signing): the tests' pipelines share one fixed key through the
# environment, as a deployment's workers would, instead of making one in ~/.config.
TEST_SIGNING_KEY = "mlpipe-tests-signing-key-0123456789abcdef"
os.environ.setdefault("MLPIPE_SIGNING_KEY", TEST_SIGNING_KEY)

import luigi
import luigi.configuration
import pytest

from luigi.task_register import Register

import tasks  # noqa: F401 - the project's tasks are registered before any test's snapshot of the registry


@pytest.fixture(autouse=True)
def fresh_luigi_registry():
    """The task registry as it was before the test (a task class a test defines does not leak into
    the next), and no cached task or config instances (luigi caches them by parameters): what
    luigi's own test/conftest.py does around every test."""
    original = Register._get_reg()
    Register.clear_instance_cache()
    yield
    Register._set_reg(original)
    Register.clear_instance_cache()


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A temporary storage root for every output, through MLPIPE_ROOT as a user would set it."""
    path = tmp_path / "root"
    monkeypatch.setenv("MLPIPE_ROOT", str(path))
    monkeypatch.delenv("MLPIPE_LANDING", raising=False)
    return path


class ConfigOverrides:
    """luigi.cfg values set on top of the project's, undone by restore(): `apply({"section": {"key": value}})`."""

    def __init__(self):
        self.cfg = luigi.configuration.get_config()
        self.saved: list[tuple[str, str, str | None]] = []

    def apply(self, values: dict[str, dict[str, object]]) -> None:
        for section, options in values.items():
            if not self.cfg.has_section(section):
                self.cfg.add_section(section)
            for key, value in options.items():
                self.saved.append((section, key, self.cfg.get(section, key, None)))
                self.cfg.set(section, key, str(value))
        Register.clear_instance_cache()

    def restore(self) -> None:
        for section, key, old in reversed(self.saved):
            if old is None:
                self.cfg.remove_option(section, key)
            else:
                self.cfg.set(section, key, old)
        self.saved.clear()
        Register.clear_instance_cache()


@pytest.fixture
def luigi_config():
    """Set luigi.cfg values for one test: `luigi_config({"section": {"key": value}})`."""
    overrides = ConfigOverrides()
    yield overrides.apply
    overrides.restore()


@pytest.fixture(autouse=True)
def no_waiting_for_retries(luigi_config):
    """luigi.cfg keeps workers alive to retry failed tasks minutes later (the production retry
    policy); in-process tests want a failure reported at once. tests/test_outages.py runs the
    real policy in a subprocess. Nor does `mlpipe run` wait for landing files not delivered
    ([landing] wait; tests/tasks/test_waiting.py sets its own)."""
    luigi_config({"worker": {"keep_alive": "false"}, "landing": {"wait": 0}})


SMALL = {
    "pipeline": {"start_date": "2013-01-01", "warmup_days": 4},
    "FeaturePartition": {"trailing_days": 3},
    "CandidateModel": {"window_days": 6, "holdout_days": 1, "max_iter": 30, "importance_repeats": 1},
    "gate": {"min_roc_auc": 0.5, "tolerance": 0.01},
    "compute": {"threads": 1},
}


@pytest.fixture
def small_pipeline(root, luigi_config):
    """A short pipeline (deployments from 2013-01-05, tiny models) over landed demo data
    for 2013-01-01..2013-01-08."""
    from pipeline.flights.landing import land_demo
    from tasks.config import get_storage

    luigi_config(SMALL)
    land_demo(get_storage().landing, dt.date(2013, 1, 1), dt.date(2013, 1, 8))
    return root


S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                  "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def moto_server():
    """moto's S3 server as a separate process on a free localhost port, for the whole session."""
    from tests.servers import MotoServer

    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(moto_server, monkeypatch, request):
    """A new, empty bucket on the moto server; credentials and endpoint set the way a user sets
    them (environment for credentials, luigi.cfg [s3] for the endpoint)."""
    import boto3

    for key, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    name = "test-" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:40].strip("-")
    client = boto3.client("s3", endpoint_url=moto_server.endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def webhdfs_double(tmp_path_factory):
    """The WebHDFS test double (tests/webhdfs_double.py) as a separate process on a free port."""
    from types import SimpleNamespace

    from tests.webhdfs_double import start_webhdfs_double, stop

    process, port = start_webhdfs_double(tmp_path_factory.mktemp("hdfs"))
    yield SimpleNamespace(port=port, url=f"hdfs://127.0.0.1:{port}")
    stop(process)


@contextlib.contextmanager
def failures():
    """(task, exception) of every task that fails while the block runs (workers=1 runs them in this process)."""
    seen: list = []

    def on_failure(task, exc):
        seen.append((task, exc))

    luigi.Task.event_handler(luigi.Event.FAILURE)(on_failure)
    try:
        yield seen
    finally:
        luigi.Task._event_callbacks[luigi.Task][luigi.Event.FAILURE].discard(on_failure)
