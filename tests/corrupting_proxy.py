"""An HTTP proxy in front of an S3 endpoint (moto's server in the tests) that damages the bodies of
object uploads the way a faulty network or S3-compatible store does, so that the tests can check
the pipeline never counts a corrupt object as written. Stdlib only; run it as a process:

    python tests/corrupting_proxy.py --listen PORT --upstream http://127.0.0.1:MOTOPORT --mode MODE

Every request is forwarded to the upstream endpoint over a keep-alive connection and its response
relayed back whole (with its Content-Length). Only object uploads are touched: PUT requests with
a bucket and a key in the path (path-style addressing: PutObject, UploadPart) and a body; copies
(`x-amz-copy-source`) and PUTs of sub-resources (`?acl`, `?tagging`, ...) pass unchanged, as does
every other method. What MODE does to an upload's body:

- `pass`: nothing.
- `flip`: one bit of the byte in the middle is flipped, every header kept (a bit error in
  transit; the store does not check Content-MD5 and stores the damaged bytes).
- `truncate`: the second half is dropped, Content-Length fixed, Content-MD5 and the checksum
  headers (`x-amz-checksum-*`, `x-amz-sdk-checksum-algorithm`, `x-amz-content-sha256`) removed
  (a cut upload relayed by a store that checks nothing).
- `frame`: the body is stored with its aws-chunked framing, `<hex length>\\r\\n<body>\\r\\n0\\r\\n`
  + the checksum trailer (`x-amz-checksum-<algorithm>:<value>\\r\\n`, when the request carried a
  checksum header) + `\\r\\n`; Content-Length fixed and Content-MD5, the checksum headers and the
  aws-chunked ones (`Content-Encoding`, `x-amz-decoded-content-length`, `x-amz-trailer`)
  removed, so the upstream stores the framed bytes as the object (what some S3-compatible stores
  do with the AWS SDKs' default `aws-chunked` uploads).

The proxy answers one path itself, `/__mode__`: `GET /__mode__/<mode>` (or PUT) switches the mode
while it runs, `GET /__mode__` reports it; both answer JSON `{"mode": ..., "damaged": N}`, N being
the number of uploads damaged since the start.
"""
from __future__ import annotations

import argparse
import http.client
import http.server
import json
import sys
import threading
from urllib.parse import urlsplit

MODES = ("pass", "flip", "truncate", "frame")
CONTROL = "/__mode__"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "expect"}
CHECKSUM_HEADERS = ("content-md5", "x-amz-sdk-checksum-algorithm", "x-amz-content-sha256")
CHUNKED_HEADERS = ("x-amz-decoded-content-length", "x-amz-trailer")
UPLOAD_QUERIES = {"partNumber", "uploadId", "x-id"}  # PutObject (x-id=PutObject) and UploadPart


def is_object_upload(method: str, target: str, headers) -> bool:
    if method != "PUT" or headers.get("x-amz-copy-source"):
        return False
    parts = urlsplit(target)
    bucket, _, key = parts.path.lstrip("/").partition("/")
    params = {p.split("=", 1)[0] for p in parts.query.split("&") if p}
    return bool(bucket and key) and params <= UPLOAD_QUERIES


def damage(mode: str, body: bytes, headers: list[tuple[str, str]]) -> tuple[bytes, list[tuple[str, str]]]:
    """The body and headers an upload reaches the upstream with under `mode`."""
    if mode == "pass" or not body:
        return body, headers
    if mode == "flip":
        middle = len(body) // 2
        return body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1:], headers

    def without_checksums(extra: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        drop = {*CHECKSUM_HEADERS, *extra, "content-length"}
        return [(k, v) for k, v in headers if k.lower() not in drop and not k.lower().startswith("x-amz-checksum-")]

    if mode == "truncate":
        body = body[: len(body) // 2]
        return body, without_checksums() + [("Content-Length", str(len(body)))]
    if mode == "frame":
        trailer = b"".join(f"{k.lower()}:{v}\r\n".encode() for k, v in headers
                           if k.lower().startswith("x-amz-checksum-"))
        framed = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n" + trailer + b"\r\n"
        kept = [(k, v) for k, v in without_checksums(CHUNKED_HEADERS)
                if not (k.lower() == "content-encoding" and v.strip().lower() == "aws-chunked")]
        return framed, kept + [("Content-Length", str(len(framed)))]
    raise ValueError(f"unknown mode {mode!r}; one of {MODES}")


class State:
    def __init__(self, mode: str, upstream: str):
        self.mode = mode
        self.damaged = 0
        self.lock = threading.Lock()
        split = urlsplit(upstream)
        self.host, self.port = split.hostname, split.port or 80

    def report(self) -> bytes:
        return json.dumps({"mode": self.mode, "damaged": self.damaged}).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive towards the client; every response has a Content-Length
    state: State
    upstream: http.client.HTTPConnection | None = None

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    def do_request(self) -> None:
        body = self._read_body()
        if self.path == CONTROL or self.path.startswith(CONTROL + "/"):
            return self._control()
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        if is_object_upload(self.command, self.path, self.headers):
            with self.state.lock:
                mode = self.state.mode
            damaged_body, headers = damage(mode, body, headers)
            if damaged_body != body:
                with self.state.lock:
                    self.state.damaged += 1
            body = damaged_body
        try:
            status, reason, response_headers, content = self._forward(body, headers)
        except OSError as exc:
            return self._answer(502, f"upstream {self.state.host}:{self.state.port}: {exc}".encode(),
                                [("Content-Type", "text/plain")])
        self._answer(status, content, response_headers, reason)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_request

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailer fields of the transfer encoding
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self, body: bytes, headers: list[tuple[str, str]]):
        for attempt in (1, 2):  # a kept-alive upstream connection may have been closed meanwhile
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(self.state.host, self.state.port, timeout=60)
            try:
                self.upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for key, value in headers:
                    self.upstream.putheader(key, value)
                if not any(k.lower() == "content-length" for k, _ in headers) and (body or self.command in ("PUT", "POST")):
                    self.upstream.putheader("Content-Length", str(len(body)))
                self.upstream.endheaders(body)
                response = self.upstream.getresponse()
                content = response.read()
            except (http.client.HTTPException, OSError):
                self.upstream.close()
                self.upstream = None
                if attempt == 2:
                    raise
                continue
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            if response.will_close:
                self.upstream.close()
                self.upstream = None
            return response.status, response.reason, kept, content
        raise AssertionError("unreachable")

    def _control(self) -> None:
        wanted = self.path[len(CONTROL):].strip("/")
        if wanted:
            if wanted not in MODES:
                return self._answer(400, f"unknown mode {wanted!r}; one of {', '.join(MODES)}".encode(),
                                    [("Content-Type", "text/plain")])
            with self.state.lock:
                self.state.mode = wanted
        self._answer(200, self.state.report(), [("Content-Type", "application/json")])

    def _answer(self, status: int, content: bytes, headers: list[tuple[str, str]], reason: str | None = None) -> None:
        self.send_response_only(status, reason)  # the upstream's own Date and Server headers are relayed
        for key, value in headers:
            if key.lower() != "content-length":
                self.send_header(key, value)
        if self.command == "HEAD":  # no body; the upstream's Content-Length says what a GET would send
            length = next((v for k, v in headers if k.lower() == "content-length"), "0")
        else:
            length = str(len(content))
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD" and content:
            self.wfile.write(content)
        self.wfile.flush()


class ProxyProcess:
    """The proxy as a child process of the tests, on a free localhost port in front of `upstream`;
    `endpoint` is its URL, `set_mode()` switches the mode while it runs."""

    def __init__(self, upstream: str, mode: str = "pass"):
        self.upstream, self.initial_mode = upstream, mode
        self.process = None
        self.endpoint = ""

    def start(self) -> "ProxyProcess":
        import subprocess

        from tests.servers import free_port, wait_until_up

        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--listen", str(port), "--upstream", self.upstream, "--mode", self.initial_mode],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_up(self.endpoint + CONTROL, self.process)
        return self

    def set_mode(self, mode: str) -> dict:
        return self._control(f"{CONTROL}/{mode}")

    def status(self) -> dict:
        """{"mode": the current mode, "damaged": uploads damaged so far}."""
        return self._control(CONTROL)

    def _control(self, path: str) -> dict:
        import urllib.request

        with urllib.request.urlopen(self.endpoint + path, timeout=10) as answer:
            return json.loads(answer.read())

    def stop(self) -> None:
        from tests.servers import stop

        if self.process is not None:
            stop(self.process)
            self.process = None


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=int, required=True, help="port to listen on (127.0.0.1)")
    parser.add_argument("--upstream", required=True, help="the S3 endpoint, e.g. http://127.0.0.1:5000")
    parser.add_argument("--mode", choices=MODES, default="pass", help="what to do to upload bodies")
    args = parser.parse_args(argv)
    Handler.state = State(args.mode, args.upstream)
    server = Server(("127.0.0.1", args.listen), Handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
