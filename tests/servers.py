"""Real servers for tests, each started as a separate process on a free localhost port:
moto's standalone S3 server and the WebHDFS test double (tests/webhdfs_double.py)."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with code {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server for {url} did not answer within {timeout} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_down(host: str, port: int, timeout: float = 10.0) -> None:
    """Until nothing accepts connections on host:port any more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
        except OSError:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{host}:{port} still accepts connections after {timeout} s")


class Started:
    """A context manager of things a test starts: `start()` on entry (and `stop()` should it fail
    half-way), `stop()` on exit."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class ChildServer:
    """A server run as a child process (`self.process`): `stop()` sends SIGTERM and waits,
    `kill()` sends SIGKILL (a crash: no clean shutdown)."""
    process: subprocess.Popen | None = None

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class MotoServer(ChildServer):
    """moto's standalone server (`python -m moto.server`), a real S3 HTTP endpoint.

    `kill()` crashes it (SIGKILL) and `restart()` starts a new process on the same port. moto keeps
    its state in memory only (its request recorder cannot replay multipart uploads), so a restart
    starts empty: `snapshot()` before the crash and `restore()` after it put the buckets and objects
    back, which is what a durable store would still hold after an outage."""

    def __init__(self, port: int | None = None, env: dict[str, str] | None = None):
        self.port = port or free_port()
        self.env = env
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "MotoServer":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=None if self.env is None else {**os.environ, **self.env})
        wait_until_up(self.endpoint + "/moto-api/", self.process)
        return self

    def kill(self) -> None:
        """Crash the server: SIGKILL, no clean shutdown; returns once the port refuses connections."""
        super().kill()
        wait_until_down("127.0.0.1", self.port)

    def restart(self) -> "MotoServer":
        """A new, empty server process on the same port (after `kill()` or `stop()`)."""
        self.stop()
        return self.start()

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def snapshot(self) -> dict[str, dict[str, bytes]]:
        """Every bucket and object the server holds: {bucket: {key: bytes}}."""
        s3 = self.client()
        state = {}
        for bucket in (b["Name"] for b in s3.list_buckets()["Buckets"]):
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
            state[bucket] = {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}
        return state

    def restore(self, state: dict[str, dict[str, bytes]]) -> None:
        """Put a `snapshot()` back (into a fresh server after a restart)."""
        s3 = self.client()
        for bucket, objects in state.items():
            s3.create_bucket(Bucket=bucket)
            for key, body in objects.items():
                s3.put_object(Bucket=bucket, Key=key, Body=body)
