"""Separate "hosts" for tests, made of Linux network namespaces: a scheduler host and worker hosts
that reach the scheduler's one address only (not each other, nor this host), the way machines on a
network reach a shared scheduler and object store. The filesystem is shared, as it is for every
network namespace: only the network is separate.

    with Hosts(["hostA", "hostB"]) as hosts:
        luigid = hosts.popen("sched", ["luigid", "--address", "0.0.0.0", ...])
        hosts.run("hostA", ["mlpipe", "backfill", ...], env)   # reaches hosts.address only

Each worker host is joined to the scheduler host by a veth pair of its own /30 subnet; the
scheduler's address (SCHED_ADDRESS) sits on its loopback device and every worker host routes to it
through its veth peer. The scheduler host does not forward packets (ip_forward is 0 in a new
namespace), so the worker hosts cannot reach one another.

Without the privileges for namespaces (not root, no `ip`, or `ip netns add` refused), every
"host" is this host and the scheduler's address is 127.0.0.1: `hosts.namespaces` is False and a
warning says so.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import warnings
from pathlib import Path

from tests.servers import Started

PROJECT = Path(__file__).resolve().parents[1]
SCHED_ADDRESS = "10.77.255.1"   # on the scheduler host's loopback, inside the namespaces only
SCHEDULER = "sched"


class Hosts(Started):
    """A scheduler host ("sched") and the named worker hosts; `run`/`popen` a command on one."""

    def __init__(self, workers: list[str]):
        self.workers = list(workers)
        tag = f"{os.getpid() % 100000}-{secrets.token_hex(2)}"
        self.names = {host: f"mlp-{host}-{tag}" for host in [SCHEDULER, *self.workers]}
        self.created: list[str] = []
        self.namespaces = False
        self.address = "127.0.0.1"
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        problem = None
        if os.geteuid() != 0 or shutil.which("ip") is None:
            problem = "not root or no `ip` command"
        else:
            try:
                self._make_namespaces()
                self.namespaces, self.address = True, SCHED_ADDRESS
            except subprocess.CalledProcessError as exc:
                problem = f"`{' '.join(exc.cmd)}` failed: {(exc.stderr or '').strip()}"
                self._remove_namespaces()
        if problem:
            warnings.warn(f"no network namespaces ({problem}): every host of the test is this host's loopback, "
                          "127.0.0.1", stacklevel=3)

    def stop(self) -> None:
        """Kill what `popen` started and is still running, then remove the namespaces."""
        try:
            for process in self.processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=30)
        finally:
            self.processes.clear()
            self._remove_namespaces()

    def _make_namespaces(self) -> None:
        def ip(*args):
            subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

        sched = self.names[SCHEDULER]
        for ns in self.names.values():
            ip("netns", "add", ns)
            self.created.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", sched, "addr", "add", f"{SCHED_ADDRESS}/32", "dev", "lo")
        for i, host in enumerate(self.workers):
            ns = self.names[host]
            near, far = f"10.77.{i}.1", f"10.77.{i}.2"   # the scheduler's end, the worker host's end
            ip("link", "add", f"mlps{i}", "netns", sched, "type", "veth", "peer", "name", "mlpw0", "netns", ns)
            ip("-n", sched, "addr", "add", f"{near}/30", "dev", f"mlps{i}")
            ip("-n", ns, "addr", "add", f"{far}/30", "dev", "mlpw0")
            ip("-n", sched, "link", "set", f"mlps{i}", "up")
            ip("-n", ns, "link", "set", "mlpw0", "up")
            ip("-n", ns, "route", "add", f"{SCHED_ADDRESS}/32", "via", near)

    def _remove_namespaces(self) -> None:
        for ns in reversed(self.created):   # removing a namespace removes its veth ends too
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        self.created.clear()

    def command(self, host: str, args) -> list[str]:
        """`args` as run on `host` (ip netns exec ...; as is without namespaces)."""
        prefix = ["ip", "netns", "exec", self.names[host]] if self.namespaces else []
        return [*prefix, *(str(a) for a in args)]

    def run(self, host: str, args, env=None, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(host, args), env=env, cwd=kwargs.pop("cwd", PROJECT), capture_output=True,
                              text=True, timeout=timeout, **kwargs)

    def popen(self, host: str, args, env=None, **kwargs) -> subprocess.Popen:
        """A process on `host`, killed by `stop()` if still running then."""
        kwargs.setdefault("cwd", PROJECT)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        process = subprocess.Popen(self.command(host, args), env=env, **kwargs)
        self.processes.append(process)
        return process
