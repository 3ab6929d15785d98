"""The central scheduler behind its proxy, for tests: scripts/luigid.sh with MLPIPE_LUIGID_PROXY
starts luigid (on the loopback address only) and nginx with basic auth in a network namespace of
their own, reached over a veth pair from a second namespace, the way a worker on another machine
reaches them. Without the privileges for namespaces (not root), every process runs on this host's
loopback instead, and luigid's own port is then reachable around the proxy.

    with ProxiedScheduler(tmp_path / "scheduler", password) as site:
        site.in_worker([BIN / "mlpipe", "backfill", ...], env)   # env: NETRC, LUIGI_CONFIG_PATH, ...
        site.api("task_list", status="DONE")                      # luigid's API, not through the proxy
        site.post("get_work", {...})                              # through the proxy: HTTP status
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.parse
import warnings
from pathlib import Path

from tests.servers import Started, free_port

PROJECT = Path(__file__).resolve().parents[1]
SCRIPT = PROJECT / "scripts" / "luigid.sh"
SCHEDULER_ADDRESS, WORKER_ADDRESS = "10.213.0.1", "10.213.0.2"   # inside the namespaces only
PROXY_PORT = 8443

# Run inside a namespace: an HTTP request, printed as {"status": ..., "body": ...}.
_REQUEST = """
import json, sys, urllib.error, urllib.request
url, method, body, auth = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
request = urllib.request.Request(url, data=body.encode() if method == "POST" else None, method=method)
if auth:
    request.add_header("Authorization", "Basic " + auth)
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(json.dumps({"status": response.status, "body": response.read().decode()}))
except urllib.error.HTTPError as exc:
    print(json.dumps({"status": exc.code, "body": exc.read().decode(errors="replace")}))
except OSError as exc:
    print(json.dumps({"status": None, "body": str(exc)}))
"""


def namespaces_possible() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


class ProxiedScheduler(Started):
    """luigid and its proxy (scripts/luigid.sh start with MLPIPE_LUIGID_PROXY) with one user,
    `user`:`password`; `in_worker` runs a command where workers run."""

    def __init__(self, directory: Path, password: str, user: str = "worker"):
        self.directory = Path(directory).resolve()
        self.state = self.directory / "luigid"
        self.user, self.password = user, password
        self.namespaces = namespaces_possible()
        tag = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.scheduler_ns, self.worker_ns = f"mlp-sched-{tag}", f"mlp-worker-{tag}"
        self.created: list[str] = []
        self.luigid_port = free_port()
        if self.namespaces:
            self.proxy_host, self.proxy_port = SCHEDULER_ADDRESS, PROXY_PORT
        else:
            self.proxy_host, self.proxy_port = "127.0.0.1", free_port()
        self.outputs: list[str] = []   # stdout and stderr of every command run, for leak checks

    # ---- setup and teardown ---------------------------------------------------------------------
    def start(self) -> None:
        if self.namespaces:
            self._make_namespaces()
        else:
            warnings.warn("not root: no network namespaces; luigid and its proxy run on this host's loopback, "
                          "where luigid's own port is reachable around the proxy", stacklevel=2)
        added = self.script("add-user", self.user, input=self.password + "\n")
        if added.returncode != 0:
            raise RuntimeError(f"luigid.sh add-user failed: {added.stdout}{added.stderr}")
        started = self.script("start")
        if started.returncode != 0:
            raise RuntimeError(f"luigid.sh start failed: {started.stdout}{started.stderr}")

    def stop(self) -> None:
        """`luigid.sh stop` (luigid saves its state), then the namespaces are removed; should the
        script fail, what it started is killed by its pid files and the failure raised."""
        stopped = None
        try:
            if self.state.exists():
                stopped = self.script("stop")
                if stopped.returncode != 0:
                    for pidfile in (self.state / "proxy" / "nginx.pid", self.state / "luigid.pid"):
                        if pidfile.exists():
                            subprocess.run(["kill", "-KILL", pidfile.read_text().strip()], check=False)
        finally:
            for ns in reversed(self.created):
                subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
            self.created.clear()
        if stopped is not None and stopped.returncode != 0:
            raise RuntimeError(f"luigid.sh stop failed ({stopped.returncode}): {stopped.stdout}{stopped.stderr}")

    def _make_namespaces(self) -> None:
        def ip(*args):
            subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

        for ns in (self.scheduler_ns, self.worker_ns):
            ip("netns", "add", ns)
            self.created.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("link", "add", "mlp0", "netns", self.scheduler_ns, "type", "veth", "peer", "name", "mlp1",
           "netns", self.worker_ns)
        ip("-n", self.scheduler_ns, "addr", "add", f"{SCHEDULER_ADDRESS}/30", "dev", "mlp0")
        ip("-n", self.worker_ns, "addr", "add", f"{WORKER_ADDRESS}/30", "dev", "mlp1")
        ip("-n", self.scheduler_ns, "link", "set", "mlp0", "up")
        ip("-n", self.worker_ns, "link", "set", "mlp1", "up")

    # ---- running things -------------------------------------------------------------------------
    def _in(self, ns: str, args, env=None, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
        prefix = ["ip", "netns", "exec", ns] if self.namespaces else []
        proc = subprocess.run([*prefix, *(str(a) for a in args)], env=env, cwd=PROJECT, capture_output=True,
                              text=True, timeout=timeout, **kwargs)
        self.outputs.extend([proc.stdout, proc.stderr])
        return proc

    def in_scheduler(self, args, env=None, **kwargs) -> subprocess.CompletedProcess:
        return self._in(self.scheduler_ns, args, env, **kwargs)

    def in_worker(self, args, env=None, **kwargs) -> subprocess.CompletedProcess:
        return self._in(self.worker_ns, args, env, **kwargs)

    def script_env(self) -> dict[str, str]:
        return dict(os.environ, MLPIPE_LUIGID_DIR=str(self.state), MLPIPE_LUIGID_PORT=str(self.luigid_port),
                    MLPIPE_LUIGID_PROXY=f"{self.proxy_host}:{self.proxy_port}")

    def script(self, *args: str, input: str | None = None, env=None) -> subprocess.CompletedProcess:
        return self.in_scheduler([SCRIPT, *args], env or self.script_env(), input=input)

    def _request(self, ns: str, url: str, method: str = "GET", body: str = "", auth: tuple[str, str] | None = None):
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode() if auth else ""
        proc = self._in(ns, [sys.executable, "-c", _REQUEST, url, method, body, token], timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"request to {url} failed: {proc.stderr}")
        answer = json.loads(proc.stdout)
        return answer["status"], answer["body"]

    def api(self, method: str, **data):
        """luigid's JSON API from its own host (127.0.0.1, not through the proxy): the `response`."""
        query = json.dumps(data)
        status, body = self._request(self.scheduler_ns, f"http://127.0.0.1:{self.luigid_port}/api/{method}",
                                     "POST", "data=" + _quote(query))
        if status != 200:
            raise RuntimeError(f"luigid /api/{method} answered {status}: {body[:500]}")
        return json.loads(body)["response"]

    def post(self, method: str, data: dict, auth: tuple[str, str] | None = None) -> tuple[int | None, str]:
        """POST /api/<method> through the proxy from where workers run, as luigi's client does:
        (HTTP status, body)."""
        return self._request(self.worker_ns, f"http://{self.proxy_host}:{self.proxy_port}/api/{method}", "POST",
                             "data=" + _quote(json.dumps(data)), auth)

    def from_worker(self, host: str, port: int, path: str = "/") -> tuple[int | None, str]:
        """GET http://host:port/path from where workers run, without credentials."""
        return self._request(self.worker_ns, f"http://{host}:{port}{path}")

    def overlay(self) -> str:
        """luigi.cfg lines that point workers at the proxy."""
        return f"[core]\ndefault-scheduler-host = {self.proxy_host}\ndefault-scheduler-port = {self.proxy_port}\n"

    def netrc(self, path: Path, password: str | None = None, mode: int = 0o600) -> Path:
        """A netrc file with the user's credentials for the proxy's host (another password if given)."""
        path.write_text(f"machine {self.proxy_host}\n  login {self.user}\n  password {password or self.password}\n")
        path.chmod(mode)
        return path


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")
