"""A webhook receiver for the notification tests, run as a separate process on a free localhost
port (`python -m tests.webhook_receiver PORT`): it records every POST (path, headers, JSON body)
and serves the records back on `GET /_records`. What it answers is chosen by the path: one
with the segments `status/CODE` answers CODE, one with a segment `hang` never answers, any other
answers 200."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.servers import ChildServer, free_port, wait_until_up

RECORDS = "/_records"
PROJECT = Path(__file__).resolve().parents[1]


class Handler(BaseHTTPRequestHandler):
    records: list[dict] = []
    lock = threading.Lock()

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        with self.lock:
            body = json.dumps(self.records).encode()
        self.send_response(200 if self.path == RECORDS else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        with self.lock:
            self.records.append({"path": self.path, "headers": dict(self.headers.items()), "body": body,
                                 "received_at": time.time()})
        parts = self.path.split("?")[0].strip("/").split("/")
        if "hang" in parts:
            time.sleep(3600)  # never answer
            return
        at = parts.index("status") + 1 if "status" in parts else None
        status = int(parts[at]) if at and at < len(parts) else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


class WebhookReceiver(ChildServer):
    """This module as a child process: `url(path)` to post to, `records()` of what it got."""

    def __init__(self):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> "WebhookReceiver":
        self.process = subprocess.Popen([sys.executable, "-m", "tests.webhook_receiver", str(self.port)],
                                        cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_up(self.base + RECORDS, self.process)
        return self

    def url(self, path: str) -> str:
        return self.base + path

    def records(self, path_prefix: str = "/") -> list[dict]:
        with urllib.request.urlopen(self.base + RECORDS, timeout=5) as response:
            return [r for r in json.load(response) if r["path"].startswith(path_prefix)]


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
