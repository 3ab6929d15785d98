"""Long-lived luigi workers: processes that each run one task at a time in themselves (luigi's
`--workers 1`, so nothing is forked per task and what a task imports stays loaded for the next)
and take work from a central scheduler until none is left.

A submitting process (`mlpipe backfill`) puts its tasks into luigid and runs them too; the others
are luigi assistants: they run any task luigid holds, loading its class from the module luigid
names, so a worker host needs the project and the same luigi.cfg (storage root, dataset), nothing
of the submitted command. luigi's own assistant never leaves; this one leaves once luigid has had
no pending or running task for `idle` seconds, or at SIGUSR1 (luigi's "stop asking for work")
after the task at hand."""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import warnings

import luigi.configuration
import luigi.interface
import luigi.parameter
import luigi.rpc
import luigi.worker

from tasks import notify, ops
from tasks.threads import PARALLEL_ENV


class LongLivedWorker(luigi.worker.Worker):
    """A luigi assistant with one process that leaves when the scheduler has been idle for
    `idle` seconds (0: never; it then runs until stopped)."""

    def __init__(self, *, idle: float, **kwargs):
        super().__init__(assistant=True, worker_processes=1, **kwargs)
        self._config.keep_alive = True  # whatever [worker] says: it leaves by the rule below or SIGUSR1
        self._idle_limit = idle
        self._quiet_since: float | None = None

    def _sleeper(self):
        """luigi's pause between requests for work, cut short by SIGUSR1: a pool told to stop leaves
        at once instead of after its sleep."""
        while True:
            until = time.monotonic() + self._config.wait_interval + random.uniform(0, self._config.wait_jitter)
            while time.monotonic() < until and not self._stop_requesting_work:
                time.sleep(0.02)
            yield

    def _get_work(self):
        response = super()._get_work()
        if response.task_id is not None:  # busy: the idle time starts again after this task
            self._quiet_since = None
        return response

    def _keep_alive(self, get_work_response) -> bool:
        if not self._config.keep_alive:  # SIGUSR1, or luigid disabled this worker
            return False
        if self._idle_limit <= 0 or work_left(self._scheduler):
            self._quiet_since = None
            return True
        self._quiet_since = self._quiet_since or time.monotonic()
        return time.monotonic() - self._quiet_since < self._idle_limit


def work_left(scheduler) -> bool:
    """Whether any worker of the scheduler still has a task pending or running (luigid's worker
    list: a few numbers per worker, not the task graph)."""
    return any(w.get("num_pending", 0) or w.get("num_running", 0) for w in scheduler.worker_list())


def done_count(url: str) -> int:
    """How many tasks luigid at `url` holds as done."""
    return len(luigi.rpc.RemoteScheduler(url).task_list("DONE", ""))


def wait_quiet(url: str, timeout: float) -> None:
    """Wait (at most `timeout` seconds) until no worker of luigid at `url` runs a task."""
    scheduler = luigi.rpc.RemoteScheduler(url)
    deadline = time.monotonic() + timeout
    while any(w.get("num_running", 0) for w in scheduler.worker_list()) and time.monotonic() < deadline:
        time.sleep(0.2)


def run_assistant(url: str, idle: float) -> bool:
    """One long-lived worker against luigid at `url` until it leaves; True when every task it ran
    succeeded. Failures go to the run's failure record when a submitting command keeps one."""
    with warnings.catch_warnings():  # luigi takes default-scheduler-host/-port from [core] for a
        # parameter of another name, and warns that they are unused
        warnings.simplefilter("ignore", luigi.parameter.UnconsumedParameterWarning)
        core = luigi.interface.core()
    luigi.interface.InterfaceLogging.setup(core)
    notify.record_failures_from_environment()
    os.environ[PARALLEL_ENV] = "1"
    scheduler = luigi.rpc.RemoteScheduler(url)
    with LongLivedWorker(scheduler=scheduler, idle=idle) as worker:
        return worker.run()


def worker_command(url: str, idle: float) -> list[str]:
    """The command line of one more long-lived worker process of this installation."""
    return [sys.executable, "-m", "tasks.cli", "worker", "--processes", "1", "--scheduler-url", url,
            "--idle", f"{idle:g}", "--wait-for-luigid", "30"]


@contextlib.contextmanager
def pool(url: str, processes: int, idle: float):
    """`processes` long-lived worker processes against `url` for the block; at its end each is
    asked to leave after its task at hand (SIGUSR1) and waited for. Yields their Popen objects."""
    children = [subprocess.Popen(worker_command(url, idle), stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
                for _ in range(processes)]
    try:
        yield children
    finally:
        stop_all(children)


def stop_all(children: list[subprocess.Popen], grace: float | None = None) -> None:
    """SIGUSR1 to each child (luigi's worker finishes its task, then exits), then wait; after
    `grace` seconds (None: as long as it takes) SIGTERM."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGUSR1)
    for child in children:
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            child.terminate()
            child.wait()


def die_with_parent() -> None:
    """In a child process before it runs (Popen's preexec_fn): SIGTERM when the parent dies, so
    a killed backfill leaves no worker or luigid of its own behind (Linux's PR_SET_PDEATHSIG)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(url: str, timeout: float, process: subprocess.Popen | None = None) -> bool:
    """Wait until something accepts connections at `url`'s host and port; False after `timeout`
    seconds or once `process` (the server, when it is ours) has exited."""
    where = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout
    while process is None or process.poll() is None:
        if ops.scheduler_reachable(where.hostname, where.port or 80, timeout=1):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def own_scheduler(timeout: float = 30.0, beside=None):
    """A luigid of this command's own on a free loopback port, reading the same configuration
    files as this process ([scheduler] retry policy, [resources]); its state is thrown away at the
    end. Yields its URL. `beside(url)`: a context manager entered while luigid starts (the worker
    processes, which wait for it) and left before luigid stops."""
    from pipeline.storage import PROJECT_DIR

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    state = tempfile.mkdtemp(prefix="mlpipe-luigid-")
    paths = [p for p in luigi.configuration.LuigiConfigParser._config_paths if os.path.exists(p)]
    env = {**os.environ}
    env.pop("LUIGI_CONFIG_PATH", None)  # the paths are passed in order instead
    code = ("import json, sys, luigi.configuration as c, luigi.cmdline as m\n"
            "[c.add_config_path(p) for p in json.loads(sys.argv[1])]\n"
            "c.get_config().set('scheduler', 'record_task_history', 'false')\n"
            "import logging; logging.getLogger('tornado.access').setLevel(logging.WARNING)\n"
            "m.luigid(sys.argv[2:])\n")
    log_path = os.path.join(state, "luigid.log")
    log = open(log_path, "ab")
    process = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(paths), "--address", "127.0.0.1", "--port", str(port),
         "--state-path", os.path.join(state, "state.pickle"), "--logdir", state],
        cwd=str(PROJECT_DIR), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent)
    started = False
    try:
        with contextlib.ExitStack() as alongside:
            if beside is not None:
                alongside.enter_context(beside(url))
            if not listening(url, timeout, process):
                raise OSError(f"the backfill's own luigid did not start on 127.0.0.1:{port} within {timeout:.0f} s"
                              + (f" (exit code {process.returncode})" if process.poll() is not None else "")
                              + f"; its log: {log_path}")
            started = True
            yield url
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait()
        log.close()
        if started:  # a luigid that failed to start keeps its log for the error message
            shutil.rmtree(state, ignore_errors=True)
