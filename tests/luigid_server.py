"""luigid for tests: a real, separate scheduler process on a free localhost port, with its own
state file, log directory and SQLite task history, configured the way scripts/luigid.sh does it
(an overlay config named in LUIGI_CONFIG_PATH).

Use it from a test module through a module- (or session-) scoped fixture::

    from tests.luigid_server import LuigidServer

    @pytest.fixture(scope="module")
    def luigid(tmp_path_factory):
        with LuigidServer(tmp_path_factory.mktemp("luigid")) as server:
            yield server

    def test_something(luigid):
        run([BIN / "luigi", "--module", "tasks", ..., *luigid.worker_args()], env)
        done = luigid.api("task_list", status="DONE")

Tests that share one server share its task graph and history: when a test counts task runs,
give it its own `LuigidServer(tmp_path / "luigid")` instead.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.servers import ChildServer, free_port, wait_until_up

PROJECT = Path(__file__).resolve().parents[1]
LUIGID = Path(sys.executable).parent / "luigid"


class LuigidServer(ChildServer):
    """`luigid` started in the foreground as a child process; `stop()` sends SIGTERM, which
    makes luigid write its state file; `kill()` sends SIGKILL (a crash: no state is saved);
    `restart()` does either and starts it again on the same port, with the same state file."""

    def __init__(self, directory: Path, port: int | None = None, cwd: Path = PROJECT,
                 scheduler: dict[str, object] | None = None):
        self.directory = Path(directory).resolve()
        self.scheduler = scheduler or {}  # more [scheduler] settings for its config
        self.port = port or free_port()
        self.cwd = cwd  # luigid reads luigi.cfg from here, then the overlay
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_path = self.directory / "state.pickle"
        self.history_db = self.directory / "history.db"
        self.log_dir = self.directory / "log"
        self.config = self.directory / "luigid.cfg"
        self.process: subprocess.Popen | None = None

    def start(self) -> "LuigidServer":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        settings = {"record_task_history": True, "state_path": self.state_path, **self.scheduler}
        self.config.write_text(
            "[scheduler]\n" + "".join(f"{key} = {value}\n" for key, value in settings.items())
            + f"[task_history]\ndb_connection = sqlite:///{self.history_db}\n")
        env = {**os.environ, "LUIGI_CONFIG_PATH": str(self.config)}
        with open(self.log_dir / "luigid.out", "ab") as out:  # kept across restarts
            self.process = subprocess.Popen(
                [LUIGID, "--address", "127.0.0.1", "--port", str(self.port), "--state-path", str(self.state_path),
                 "--logdir", str(self.log_dir)],
                cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_up(self.url + "/", self.process)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}; luigid's output:\n{self.logs()[-3000:]}") from None
        return self

    def restart(self, crash: bool = False) -> "LuigidServer":
        """Stop (SIGTERM; with `crash`, SIGKILL) and start again on the same port; luigid reloads
        its state file, which only a SIGTERM brings up to date."""
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start()

    def __enter__(self) -> "LuigidServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def worker_args(self) -> list[str]:
        """The `luigi` command-line flags that send a worker to this scheduler."""
        return ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(self.port)]

    def get(self, path: str) -> tuple[int, str]:
        """GET a page: (HTTP status, body)."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def api(self, method: str, **data):
        """Call luigid's JSON API (`/api/<method>?data=<json>`, as the visualiser does) and return
        the `response` member of its answer."""
        query = urllib.parse.urlencode({"data": json.dumps(data)})
        status, body = self.get(f"/api/{method}?{query}")
        if status != 200:
            raise RuntimeError(f"luigid /api/{method} answered HTTP {status}: {body[:500]}")
        return json.loads(body)["response"]

    def history(self, query: str, *args) -> list[tuple]:
        """Rows of a SQL query on the task history DB (tables tasks, task_events, task_parameters)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.history_db}?mode=ro", uri=True)) as db:
            return db.execute(query, args).fetchall()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*")) if p.is_file())

