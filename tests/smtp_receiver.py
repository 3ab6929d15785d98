"""An SMTP server for the notification tests, run as a separate process on a free localhost port
(`python -m tests.smtp_receiver PORT DIRECTORY`): aiosmtpd's Controller saving each message it
receives as a file in DIRECTORY."""
from __future__ import annotations

import email
import email.message
import email.policy
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from tests.servers import ChildServer, free_port

PROJECT = Path(__file__).resolve().parents[1]


class SaveToDirectory:
    def __init__(self, directory: Path):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.time():.6f}-{uuid.uuid4().hex}"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(self.directory / f"{name}.eml")
        return "250 Message accepted for delivery"


class SmtpReceiver(ChildServer):
    """This module as a child process: `messages()` are the emails it received, oldest first."""

    def __init__(self, directory: Path):
        self.port, self.directory = free_port(), Path(directory)

    def start(self) -> "SmtpReceiver":
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([sys.executable, "-m", "tests.smtp_receiver", str(self.port),
                                         str(self.directory)], cwd=PROJECT,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(3) == b"220":
                        return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the SMTP receiver on port {self.port} did not start")
            time.sleep(0.1)

    def messages(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                for p in sorted(self.directory.glob("*.eml"))]


if __name__ == "__main__":
    from aiosmtpd.controller import Controller

    controller = Controller(SaveToDirectory(Path(sys.argv[2])), hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    controller.stop()
