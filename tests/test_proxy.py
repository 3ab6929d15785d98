"""A scheduler only workers reach: scripts/luigid.sh's proxy (nginx with basic auth in front of
luigid), workers and `mlpipe --central` authenticating through a netrc file, and status messages
that reach luigi's UI escaped. See docs/security.md."""
from __future__ import annotations

import ast
import base64
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.luigid_server import LuigidServer
from tests.nginx_proxy import SCHEDULER_ADDRESS, SCRIPT, WORKER_ADDRESS, ProxiedScheduler
from tests.servers import free_port
from tests.test_commands import BIN, OVERLAY, PROJECT

PAYLOAD = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def new_password() -> str:
    return "pw-" + secrets.token_urlsafe(18)


def worker_env(tmp_path: Path, root: Path, overlay: str = "", **extra: str) -> dict[str, str]:
    """The environment of a worker: its own HOME (no ~/.netrc of the machine), the short pipeline's
    overlay plus `overlay`, and no NETRC unless given in `extra`."""
    config = tmp_path / f"overlay-{secrets.token_hex(3)}.cfg"
    config.write_text(OVERLAY + overlay)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    environ = dict(os.environ, HOME=str(home), MLPIPE_ROOT=str(root), LUIGI_CONFIG_PATH=str(config), **extra)
    environ.pop("MLPIPE_LANDING", None)
    if "NETRC" not in extra:
        environ.pop("NETRC", None)
    return environ


def land(env, start: str, end: str) -> None:
    proc = subprocess.run([BIN / "mlpipe", "land-demo", "--start", start, "--end", end], env=env, cwd=PROJECT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def leaks(secret_texts: list[str], directory: Path, outputs: list[str], skip: tuple[Path, ...] = ()) -> list[str]:
    """Where any of `secret_texts` appears: files under `directory` (but `skip`) and `outputs`."""
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p not in skip):
        data = path.read_bytes()
        found.extend(f"{path}: {s}" for s in secret_texts if s.encode() in data)
    for i, text in enumerate(outputs):
        found.extend(f"command output #{i}: {s}" for s in secret_texts if s in text)
    return found


# --- status messages ------------------------------------------------------------------------------

def test_set_status_escapes_html_and_sets_progress():
    from tasks.base import set_status

    class Task:
        def set_status_message(self, message):
            self.message = message

        def set_progress_percentage(self, percent):
            self.percent = percent

    task = Task()
    set_status(task, f"rows from /landing/{PAYLOAD} & 'others'", 40)
    assert task.message == f"rows from /landing/{ESCAPED} &amp; 'others'"
    assert task.percent == 40


def test_every_status_message_goes_through_set_status():
    """No task module sets a status message but tasks.base.set_status, the one place that escapes it."""
    callers = []
    for path in sorted((PROJECT / "tasks").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Attribute) and node.attr == "set_status_message":
                    callers.append(f"{path.relative_to(PROJECT)}:{node.lineno} in {function.name}()")
    assert callers and all(c.startswith("tasks/base.py:") and c.endswith(" in set_status()") for c in callers), callers


def test_a_status_message_naming_a_file_with_html_reaches_luigid_escaped(tmp_path):
    """A landing file's path with HTML in it, as a RawPartition's status message names it, is stored in
    luigid escaped, so luigi's UI (which inserts status messages as HTML) shows it as text."""
    env = worker_env(tmp_path, tmp_path / PAYLOAD / "root")
    land(env, "2013-01-01", "2013-01-01")
    with LuigidServer(tmp_path / "luigid") as luigid:
        proc = subprocess.run([BIN / "luigi", "--module", "tasks", "RawPartition", "--table", "flights", "--date",
                               "2013-01-01", "--lock-pid-dir", tmp_path / "lock", *luigid.worker_args()],
                              env=env, cwd=PROJECT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        done = luigid.api("task_list", status="DONE")
        (task_id,) = [task_id for task_id, task in done.items() if task["name"] == "RawPartition"]
        message = luigid.api("get_task_status_message", task_id=task_id)["statusMessage"]
        assert done[task_id]["status_message"] == message
    assert re.match(r"\d+ rows ingested from /", message), message
    assert f"/{ESCAPED}/root/landing/flights/" in message
    assert "<" not in message and ">" not in message


# --- scripts/luigid.sh: users and refusals --------------------------------------------------------

def script(args, env, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *args], env=env, cwd=PROJECT, capture_output=True, text=True, timeout=120,
                          **kwargs)


def test_add_user_reads_the_password_from_stdin_and_stores_only_its_hash(tmp_path):
    # openssl as a wrapper that records its command lines: the password must not be on one.
    spy = tmp_path / "bin"
    spy.mkdir()
    (spy / "openssl").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "argv.log"}\n'
                                 f'exec {shutil.which("openssl")} "$@"\n')
    (spy / "openssl").chmod(0o755)
    env = dict(os.environ, MLPIPE_LUIGID_DIR=str(tmp_path / "luigid"), PATH=f"{spy}:{os.environ['PATH']}")
    first, second = new_password(), new_password()
    added = script(["add-user", "worker"], env, input=first + "\n")
    assert added.returncode == 0, added.stderr
    assert f"added user worker in {tmp_path / 'luigid' / 'htpasswd'}" in added.stdout
    assert script(["add-user", "ops"], env, input=new_password() + "\n").returncode == 0
    changed = script(["add-user", "worker"], env, input=second + "\n")
    assert "changed the password of user worker" in changed.stdout

    users = tmp_path / "luigid" / "htpasswd"
    lines = users.read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["ops", "worker"]
    assert all(line.split(":", 1)[1].startswith("$6$") for line in lines)
    assert first not in users.read_text() and second not in users.read_text()
    assert users.stat().st_mode & 0o777 == 0o600
    argv = (tmp_path / "argv.log").read_text()
    assert argv.count("passwd -6 -stdin") == 3 and first not in argv and second not in argv
    assert (tmp_path / "luigid").stat().st_mode & 0o777 == 0o700
    # The hash is what nginx checks, through crypt(3): the same check, made by openssl.
    salt = lines[1].split("$")[2]
    rehashed = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=second + "\n",
                              capture_output=True, text=True, check=True).stdout.strip()
    assert lines[1] == f"worker:{rehashed}"

    empty = script(["add-user", "nobody"], env, input="\n")
    assert empty.returncode == 1 and "empty password" in empty.stderr
    bad = script(["add-user", "a:b"], env, input="x\n")
    assert bad.returncode == 2 and "without ':'" in bad.stderr
    assert script(["add-user"], env).returncode == 2  # usage


def test_luigid_script_refuses_a_proxy_without_users_or_with_luigid_exposed(tmp_path):
    state = tmp_path / "luigid"
    env = dict(os.environ, MLPIPE_LUIGID_DIR=str(state), MLPIPE_LUIGID_PORT=str(free_port()),
               MLPIPE_LUIGID_PROXY=f"127.0.0.1:{free_port()}")
    try:
        refusals(state, env)
    finally:
        script(["stop"], env)  # should the script have started anything


def refusals(state: Path, env: dict[str, str]) -> None:
    for users in (None, ""):
        if users is not None:
            state.mkdir(exist_ok=True)
            (state / "htpasswd").write_text(users)
        refused = script(["start"], env)
        assert refused.returncode == 1
        assert refused.stderr.splitlines() == [
            f"luigid: the proxy has no users: {state / 'htpasswd'} is missing or empty; add one with "
            "`scripts/luigid.sh add-user NAME` (or set MLPIPE_LUIGID_HTPASSWD)"]
        assert not (state / "luigid.pid").exists()  # nothing was started

    assert script(["add-user", "worker"], env, input=new_password() + "\n").returncode == 0
    exposed = script(["start"], dict(env, MLPIPE_LUIGID_ADDRESS="0.0.0.0"))
    assert exposed.returncode == 1
    assert "luigid must bind a loopback address, not MLPIPE_LUIGID_ADDRESS=0.0.0.0" in exposed.stderr
    assert not (state / "luigid.pid").exists()

    malformed = script(["start"], dict(env, MLPIPE_LUIGID_PROXY="8443"))
    assert malformed.returncode == 2 and "MLPIPE_LUIGID_PROXY must be ADDRESS:PORT" in malformed.stderr

    status = script(["status"], env)
    assert status.returncode == 3
    assert "proxy not running" in status.stdout


# --- through the proxy -----------------------------------------------------------------------------

@pytest.mark.slow
def test_workers_run_a_backfill_through_the_proxy_and_nothing_gets_through_without_credentials(tmp_path):
    password = new_password()
    credentials = base64.b64encode(f"worker:{password}".encode()).decode()  # an Authorization header's
    root = tmp_path / PAYLOAD / "root"   # every status message naming a landing file carries HTML
    with ProxiedScheduler(tmp_path / "scheduler", password) as site:
        assert site.namespaces == (os.geteuid() == 0), "as root, the test runs in network namespaces"
        netrc = site.netrc(tmp_path / "worker.netrc")
        backfill_env = worker_env(tmp_path, root, site.overlay(), NETRC=str(netrc))
        run_env = worker_env(tmp_path, root, site.overlay() + f"[scheduler_auth]\nnetrc = {netrc}\n")
        land(backfill_env, "2013-01-01", "2013-01-02")
        summary = tmp_path / "summary.json"

        backfill = site.in_worker([BIN / "mlpipe", "backfill", "--start", "2013-01-01", "--end", "2013-01-02",
                                   "--stage", "validate", "--central"], backfill_env)
        assert backfill.returncode == 0, backfill.stderr[-3000:]
        run = site.in_worker([BIN / "mlpipe", "run", "--date", "2013-01-02", "--central", "--summary", summary],
                             run_env)
        assert run.returncode == 0, run.stderr[-3000:]

        # luigid (asked on its own host) ran the tasks of both commands, all DONE.
        done = site.api("task_list", status="DONE")
        ran = {(task["name"], task["params"].get("table"), task["params"].get("date")) for task in done.values()}
        tables = ("flights", "weather")
        assert {("CleanPartition", t, d) for t in tables for d in ("2013-01-01", "2013-01-02")} <= ran
        assert {("FeaturePartition", None, "2013-01-02"), ("NightlyPipeline", None, "2013-01-02")} <= ran
        assert site.api("task_list", status="FAILED") == {}
        raw = [task["status_message"] for task in done.values() if task["name"] == "RawPartition"]
        assert raw and all(f"/{ESCAPED}/root/landing/" in m for m in raw), raw
        assert not [task for task in done.values() if "<" in (task["status_message"] or "")]

        # Every request came through the proxy as the worker's user (from the worker's namespace).
        access = (site.state / "proxy" / "access.log").read_text().splitlines()
        assert any(" - worker [" in line and '"POST /api/add_task ' in line for line in access)
        assert any('"POST /api/get_work ' in line and '" 200 ' in line for line in access)
        if site.namespaces:
            assert all(line.startswith(WORKER_ADDRESS + " ") for line in access), access[:3]
            # luigid itself listens on its namespace's loopback only: nothing reaches it around the proxy.
            assert site.from_worker(SCHEDULER_ADDRESS, site.luigid_port)[0] is None
            assert site.from_worker("127.0.0.1", site.luigid_port)[0] is None

        # Without credentials, or with a wrong password, luigid's API is closed.
        clean = next(task_id for task_id, task in done.items() if task["name"] == "CleanPartition")
        before = site.api("get_task_status_message", task_id=clean)["statusMessage"]
        assert before and "rows in" in before
        steal = {"worker": "intruder", "host": "elsewhere", "assistant": False, "current_tasks": []}
        inject = {"task_id": clean, "status_message": PAYLOAD}
        for auth in (None, ("worker", new_password()), ("intruder", password)):
            assert site.post("get_work", steal, auth)[0] == 401, auth
            assert site.post("set_task_status_message", inject, auth)[0] == 401, auth
        assert site.from_worker(site.proxy_host, site.proxy_port, "/static/visualiser/index.html")[0] == 401
        assert site.api("get_task_status_message", task_id=clean)["statusMessage"] == before
        assert "intruder" not in str(site.api("worker_list"))
        # ...and open with them (so the 401s above are the proxy's doing, not a broken request).
        assert site.post("set_task_status_message", {"task_id": clean, "status_message": "checked"},
                         ("worker", password))[0] == 200
        assert site.api("get_task_status_message", task_id=clean)["statusMessage"] == "checked"
        outputs = site.outputs

    # luigid has saved its state (at stop): no file written and no command's output holds the password.
    assert summary.is_file() and (site.state / "state.pickle").is_file()
    assert (site.state / "proxy" / "error.log").is_file() and list((site.state / "log").iterdir())
    found = leaks([password, credentials], tmp_path, outputs, skip=(netrc,))
    assert found == []


def test_a_central_run_without_valid_credentials_exits_45_at_once_with_one_line(tmp_path):
    password = new_password()
    with ProxiedScheduler(tmp_path / "scheduler", password) as site:
        status, again = site.script("status"), site.script("start")
        assert status.returncode == 0 and again.returncode == 0, status.stdout + again.stdout + again.stderr
        assert f"proxy running (nginx pid {(site.state / 'proxy' / 'nginx.pid').read_text().strip()}) on " \
               f"http://{site.proxy_host}:{site.proxy_port}/ with basic auth" in status.stdout
        assert "luigid: proxy already running (nginx pid " in again.stdout
        where = f"the central scheduler (luigid) at {site.proxy_host}:{site.proxy_port}"
        wrong = new_password()
        cases = {
            "none": ({}, f"mlpipe: {where} asks for credentials (HTTP 401): put `machine {site.proxy_host} login "
                         "NAME password ...` in a netrc file (chmod 600) named by [scheduler_auth] netrc in "
                         "luigi.cfg or by $NETRC (docs/security.md)"),
            "wrong": ({"overlay": f"{site.overlay()}[scheduler_auth]\n"
                                  f"netrc = {site.netrc(tmp_path / 'wrong.netrc', wrong)}\n"},
                      f"mlpipe: {where} refused the credentials of user worker from {tmp_path / 'wrong.netrc'} "
                      "([scheduler_auth] netrc) (HTTP 401): check them (`scripts/luigid.sh add-user worker` "
                      "on the scheduler's host sets the password)"),
            "readable": ({"NETRC": str(site.netrc(tmp_path / "shared.netrc", mode=0o644))},
                         f"mlpipe: {where}: the netrc file {tmp_path / 'shared.netrc'} ($NETRC) holds its "
                         f"password but is not private to you (mode 644, owner uid {os.getuid()}): "
                         f"`chmod 600 {tmp_path / 'shared.netrc'}` as its owner"),
            "url": ({"overlay": f"[core]\ndefault-scheduler-url = http://worker:{password}@{site.proxy_host}:"
                                f"{site.proxy_port}/\n"},
                    f"mlpipe: {where}: [core] default-scheduler-url holds a password, which luigi writes to its "
                    "log: remove the credentials from the URL and put them in a netrc file named by "
                    "[scheduler_auth] netrc (docs/security.md)"),
        }
        for case, (settings, line) in cases.items():
            overlay = settings.pop("overlay", site.overlay())   # luigi.cfg lines: the scheduler and its credentials
            env = worker_env(tmp_path, tmp_path / "root", overlay, **settings)
            started = time.monotonic()
            proc = site.in_worker([BIN / "mlpipe", "run", "--date", "2013-01-02", "--central"], env, timeout=60)
            seconds = time.monotonic() - started
            assert proc.returncode == 45, (case, proc.stderr[-3000:])
            assert proc.stderr.splitlines() == [line], case
            assert proc.stdout == ""
            assert seconds < 10, (case, seconds)   # no retry loop (luigi's: 3 x 30 s)
            assert wrong not in proc.stderr and password not in proc.stderr
