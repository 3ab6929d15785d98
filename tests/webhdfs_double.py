"""WebHDFS REST API v1 TEST DOUBLE -- not an HDFS implementation.

This is a small standalone HTTP server (stdlib only) that speaks just enough of the
WebHDFS REST API v1 for the test suite to exercise HDFS code paths on a machine where
no Hadoop distribution can be installed. It covers exactly the WebHDFS calls that
luigi's ``luigi.contrib.hdfs.webhdfs_client.WebHdfsClient`` makes through the ``hdfs``
PyPI package (HdfsCLI, ``hdfs.InsecureClient``), and nothing more:

    GET    op=GETFILESTATUS       -> 200 {"FileStatus": {...}}
    GET    op=LISTSTATUS          -> 200 {"FileStatuses": {"FileStatus": [...]}}
    GET    op=GETCONTENTSUMMARY   -> 200 {"ContentSummary": {...}}   (hdfs ``Client.content``)
    GET    op=GETHOMEDIRECTORY    -> 200 {"Path": "/user/<user.name>"} (hdfs resolves relative
                                     paths with it)
    GET    op=OPEN                -> 307 to the "datanode" URL, which answers 200 + bytes
                                     (offset= / length= honoured)
    PUT    op=MKDIRS              -> 200 {"boolean": true}
    PUT    op=CREATE              -> 307 to the "datanode" URL; the second PUT carries the
                                     bytes and answers 201 (overwrite=true/false honoured)
    PUT    op=RENAME              -> 200 {"boolean": true|false}  (destination=; with
                                     renameoptions=OVERWRITE: 200, no body, destination replaced)
    DELETE op=DELETE              -> 200 {"boolean": true|false}  (recursive=)

Anything else (APPEND, SETPERMISSION, snapshots, ACLs, ...) answers 400 with a
``RemoteException`` of type ``IllegalArgumentException``, as a real NameNode does for an
op it does not know. Errors use the real WebHDFS JSON shape::

    {"RemoteException": {"exception": "FileNotFoundException",
                         "javaClassName": "java.io.FileNotFoundException",
                         "message": "File does not exist: /path"}}

with the status codes of Hadoop's WebHDFS ``ExceptionHandler`` (FileNotFoundException
404, IllegalArgumentException 400, other IOExceptions such as FileAlreadyExistsException
403). Messages copy HDFS's where clients depend on them: luigi's ``exists()`` relies on
GETFILESTATUS saying "File does not exist: <path>", and hdfs's ``upload``/``walk`` look
for "does not exist" in LISTSTATUS errors.

The namespace is backed by a local directory (``--root DIR``): HDFS path ``/a/b`` is
``DIR/a/b``. Writes are atomic on the backing disk: CREATE streams the bytes into a
staging file under ``DIR/.webhdfs-double-staging`` (a reserved name, invisible through
the API) and publishes it with ``os.replace``; DELETE first renames the victim into the
staging area, then removes it. Namespace mutations are serialised by one lock, so
check-then-act sequences (overwrite=false, rename targets) are race-free between
concurrent clients. Permissions, owners, quotas, replication and block layout are not
modelled: FileStatus reports the backing file's mode bits, a fixed owner/group and
replication 1; the ``permission=`` parameter is validated and otherwise ignored.

Run: ``python tests/webhdfs_double.py --port PORT --root DIR`` (SIGTERM/SIGINT shut it
down cleanly). From tests, use ``start_webhdfs_double(root_dir) -> (process, port)`` and
``stop(process)``, which run it as a separate process.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/webhdfs/v1"
STAGING = ".webhdfs-double-staging"  # reserved top-level name inside --root
# The real NameNode redirects to a DataNode URL carrying this parameter; we use it as
# the marker that a request is the "datanode" leg of CREATE/OPEN.
DATANODE_MARKER = "namenoderpcaddress"
CHUNK = 64 * 1024
BLOCK_SIZE = 134217728
OWNER = "hdfs"
GROUP = "supergroup"

JAVA_CLASSES = {
    "FileNotFoundException": "java.io.FileNotFoundException",
    "IllegalArgumentException": "java.lang.IllegalArgumentException",
    "FileAlreadyExistsException": "org.apache.hadoop.fs.FileAlreadyExistsException",
    "ParentNotDirectoryException": "org.apache.hadoop.fs.ParentNotDirectoryException",
    "PathIsNotEmptyDirectoryException": "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException",
    "InvalidPathException": "org.apache.hadoop.fs.InvalidPathException",
    "AccessControlException": "org.apache.hadoop.security.AccessControlException",
    "IOException": "java.io.IOException",
    "RuntimeException": "java.lang.RuntimeException",
}

# Ops this double implements, per HTTP method (real WebHDFS splits ops the same way:
# GetOpParam, PutOpParam, PostOpParam, DeleteOpParam).
IMPLEMENTED = {
    "GET": {"GETFILESTATUS", "LISTSTATUS", "GETCONTENTSUMMARY", "GETHOMEDIRECTORY", "OPEN"},
    "PUT": {"MKDIRS", "CREATE", "RENAME"},
    "POST": set(),
    "DELETE": {"DELETE"},
}
OP_ENUM = {"GET": "GetOpParam", "PUT": "PutOpParam", "POST": "PostOpParam", "DELETE": "DeleteOpParam"}


class RemoteError(Exception):
    """An error answered to the client as a WebHDFS RemoteException."""

    def __init__(self, status: int, exception: str, message: str):
        super().__init__(message)
        self.status = status
        self.exception = exception
        self.message = message


def not_found(message: str) -> RemoteError:
    return RemoteError(404, "FileNotFoundException", message)


def bad_request(message: str) -> RemoteError:
    return RemoteError(400, "IllegalArgumentException", message)


class Namespace:
    """The fake HDFS namespace, backed by a local directory."""

    def __init__(self, root: str):
        self.root = os.path.realpath(root)
        os.makedirs(self.root, exist_ok=True)
        self.staging = os.path.join(self.root, STAGING)
        shutil.rmtree(self.staging, ignore_errors=True)  # leftovers of a killed run
        os.makedirs(self.staging, exist_ok=True)
        self.lock = threading.RLock()

    # -- paths ---------------------------------------------------------------------

    def parse(self, raw: str) -> list[str]:
        """HDFS path (already percent-decoded) -> list of components; validates it."""
        if not raw.startswith("/"):
            raise RemoteError(400, "InvalidPathException", f"Invalid path name {raw}")
        parts = [p for p in raw.split("/") if p]
        for p in parts:
            if p in (".", "..") or "\x00" in p or ":" in p:
                raise RemoteError(400, "InvalidPathException", f"Invalid path name Invalid file name: {raw}")
        if parts and parts[0] == STAGING:
            raise RemoteError(400, "InvalidPathException", f"Invalid path name {raw} (reserved by the WebHDFS test double)")
        return parts

    @staticmethod
    def hdfs_path(parts: list[str]) -> str:
        return "/" + "/".join(parts)

    def local(self, parts: list[str]) -> str:
        return os.path.join(self.root, *parts)

    def lstat(self, parts: list[str]) -> os.stat_result | None:
        try:
            return os.stat(self.local(parts))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def staging_file(self) -> str:
        return os.path.join(self.staging, uuid.uuid4().hex)

    # -- JSON shapes -----------------------------------------------------------------

    def file_status(self, parts: list[str], suffix: str, st: os.stat_result) -> dict:
        is_dir = stat.S_ISDIR(st.st_mode)
        children = 0
        if is_dir:
            try:
                children = len([n for n in os.listdir(self.local(parts)) if parts or n != STAGING])
            except OSError:
                children = 0
        return {
            "accessTime": 0 if is_dir else st.st_atime_ns // 1_000_000,
            "blockSize": 0 if is_dir else BLOCK_SIZE,
            "childrenNum": children,
            "fileId": st.st_ino,
            "group": GROUP,
            "length": 0 if is_dir else st.st_size,
            "modificationTime": st.st_mtime_ns // 1_000_000,
            "owner": OWNER,
            "pathSuffix": suffix,
            "permission": format(stat.S_IMODE(st.st_mode), "o"),
            "replication": 0 if is_dir else 1,
            "storagePolicy": 0,
            "type": "DIRECTORY" if is_dir else "FILE",
        }

    def children(self, parts: list[str]) -> list[str]:
        names = sorted(os.listdir(self.local(parts)), key=lambda n: n.encode("utf-8", "surrogateescape"))
        return [n for n in names if parts or n != STAGING]

    # -- read-only ops -----------------------------------------------------------------

    def get_file_status(self, parts: list[str]) -> dict:
        st = self.lstat(parts)
        if st is None:
            raise not_found(f"File does not exist: {self.hdfs_path(parts)}")
        return {"FileStatus": self.file_status(parts, "", st)}

    def list_status(self, parts: list[str]) -> dict:
        st = self.lstat(parts)
        if st is None:
            raise not_found(f"File {self.hdfs_path(parts)} does not exist.")
        if not stat.S_ISDIR(st.st_mode):
            # Real WebHDFS lists a file as itself, with an empty pathSuffix.
            return {"FileStatuses": {"FileStatus": [self.file_status(parts, "", st)]}}
        statuses = []
        for name in self.children(parts):
            child = parts + [name]
            cst = self.lstat(child)
            if cst is not None:  # may vanish concurrently
                statuses.append(self.file_status(child, name, cst))
        return {"FileStatuses": {"FileStatus": statuses}}

    def content_summary(self, parts: list[str]) -> dict:
        st = self.lstat(parts)
        if st is None:
            raise not_found(f"File does not exist: {self.hdfs_path(parts)}")
        dirs = files = length = 0
        if stat.S_ISDIR(st.st_mode):
            for dirpath, dirnames, filenames in os.walk(self.local(parts)):
                if dirpath == self.root and STAGING in dirnames:
                    dirnames.remove(STAGING)
                dirs += 1
                files += len(filenames)
                for f in filenames:
                    try:
                        length += os.stat(os.path.join(dirpath, f)).st_size
                    except OSError:
                        pass
        else:
            files, length = 1, st.st_size
        return {
            "ContentSummary": {
                "directoryCount": dirs,
                "fileCount": files,
                "length": length,
                "quota": -1,
                "spaceConsumed": length,
                "spaceQuota": -1,
                "typeQuota": {},
            }
        }

    def open_file(self, parts: list[str]) -> tuple[str, int]:
        path = self.hdfs_path(parts)
        st = self.lstat(parts)
        if st is None:
            raise not_found(f"File does not exist: {path}")
        if stat.S_ISDIR(st.st_mode):
            raise not_found(f"Path is not a file: {path}")
        return self.local(parts), st.st_size

    # -- mutations (all under self.lock) ---------------------------------------------

    def _check_ancestors(self, parts: list[str]) -> None:
        """Raise ParentNotDirectoryException if a proper ancestor of parts is a file."""
        for i in range(1, len(parts)):
            st = self.lstat(parts[:i])
            if st is None:
                return
            if not stat.S_ISDIR(st.st_mode):
                raise RemoteError(403, "ParentNotDirectoryException", f"{self.hdfs_path(parts[:i])} (is not a directory)")

    def mkdirs(self, parts: list[str]) -> dict:
        with self.lock:
            self._check_ancestors(parts)
            st = self.lstat(parts)
            if st is not None and not stat.S_ISDIR(st.st_mode):
                raise RemoteError(403, "FileAlreadyExistsException", f"Path is not a directory: {self.hdfs_path(parts)}")
            os.makedirs(self.local(parts), exist_ok=True)
        return {"boolean": True}

    def check_create(self, parts: list[str], overwrite: bool, client: str) -> None:
        path = self.hdfs_path(parts)
        if not parts:
            raise RemoteError(403, "FileAlreadyExistsException", f"{path} already exists as a directory")
        self._check_ancestors(parts)
        st = self.lstat(parts)
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                raise RemoteError(403, "FileAlreadyExistsException", f"{path} already exists as a directory")
            if not overwrite:
                raise RemoteError(403, "FileAlreadyExistsException", f"{path} for client {client} already exists")

    def commit_create(self, parts: list[str], staged: str, overwrite: bool, client: str) -> None:
        with self.lock:
            self.check_create(parts, overwrite, client)
            os.makedirs(self.local(parts[:-1]), exist_ok=True)  # createparent=true
            os.replace(staged, self.local(parts))

    def rename(self, src: list[str], dst: list[str]) -> dict:
        with self.lock:
            if not src or self.lstat(src) is None:
                return {"boolean": False}
            if src == dst:
                return {"boolean": True}
            if dst[: len(src)] == src:  # destination inside the source
                return {"boolean": False}
            dst_st = self.lstat(dst)
            if dst_st is not None:
                if not stat.S_ISDIR(dst_st.st_mode):
                    return {"boolean": False}  # destination file exists
                dst = dst + [src[-1]]  # rename into an existing directory
                if dst == src:
                    return {"boolean": True}  # moving into its own parent: no-op
                if self.lstat(dst) is not None:
                    return {"boolean": False}
            parent = self.lstat(dst[:-1])
            if parent is None or not stat.S_ISDIR(parent.st_mode):
                return {"boolean": False}  # HDFS rename does not create parents
            os.rename(self.local(src), self.local(dst))
        return {"boolean": True}

    def rename_overwrite(self, src: list[str], dst: list[str]) -> None:
        """rename2 with Options.Rename.OVERWRITE: the destination file, if any, is replaced
        atomically; a missing source or parent, or a directory destination, is an error."""
        with self.lock:
            src_st, dst_st = self.lstat(src), self.lstat(dst)
            if not src or src_st is None:
                raise not_found(f"rename source {self.hdfs_path(src)} does not exist")
            if dst_st is not None and stat.S_ISDIR(dst_st.st_mode):
                raise RemoteError(409, "FileAlreadyExistsException",
                                  f"rename destination {self.hdfs_path(dst)} is a directory")
            parent = self.lstat(dst[:-1])
            if parent is None or not stat.S_ISDIR(parent.st_mode):
                raise not_found(f"rename destination parent of {self.hdfs_path(dst)} does not exist")
            os.replace(self.local(src), self.local(dst))

    def delete(self, parts: list[str], recursive: bool) -> dict:
        with self.lock:
            if not parts:
                return {"boolean": False}  # HDFS refuses to delete the root
            st = self.lstat(parts)
            if st is None:
                return {"boolean": False}
            local = self.local(parts)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(local)
                return {"boolean": True}
            if os.listdir(local) and not recursive:
                raise RemoteError(
                    403, "PathIsNotEmptyDirectoryException", f"`{self.hdfs_path(parts)} is non empty': Directory is not empty"
                )
            doomed = self.staging_file()
            os.rename(local, doomed)  # atomic disappearance from the namespace
        shutil.rmtree(doomed, ignore_errors=True)
        return {"boolean": True}


def parse_bool(params: dict, name: str, default: bool) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    v = value.lower()
    if v in ("true", "false"):
        return v == "true"
    raise bad_request(f'Invalid value for webhdfs parameter "{name}": Failed to parse "{value}" to Boolean.')


def parse_long(params: dict, name: str, default: int | None) -> int | None:
    value = params.get(name)
    if value is None or value == "" or value.lower() == "null":
        return default
    try:
        n = int(value)
    except ValueError:
        raise bad_request(f'Invalid value for webhdfs parameter "{name}": Failed to parse "{value}" as a radix-10 long integer.')
    if n < 0:
        raise bad_request(f'Invalid value for webhdfs parameter "{name}": Invalid parameter range: {name} = {n} < 0')
    return n


def check_permission(params: dict) -> None:
    value = params.get("permission")
    if value in (None, "", "null"):
        return
    try:
        n = int(value, 8)
    except ValueError:
        n = -1
    if not 0 <= n <= 0o1777:
        raise bad_request(f'Invalid value for webhdfs parameter "permission": Invalid parameter range: permission = {value}')


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests.Session expects
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server_version = "WebHdfsTestDouble/1.0"
    ns: Namespace  # set on the subclass by make_server
    verbose = False

    # -- plumbing ----------------------------------------------------------------------

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler signature
        if self.verbose:
            super().log_message(format, *args)

    def do_GET(self):
        self._handle("GET")

    def do_PUT(self):
        self._handle("PUT")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def _body_chunks(self):
        """Yield the request body (Content-Length or chunked), once."""
        if getattr(self, "_body_read", False):
            return
        self._body_read = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("truncated chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                yield from self._read_exactly(size, "truncated chunked body")
                self.rfile.readline(65537)  # CRLF after the chunk
        else:
            yield from self._read_exactly(int(self.headers.get("Content-Length") or 0), "truncated body")

    def _read_exactly(self, remaining: int, error: str):
        """Yield `remaining` bytes of the request body in chunks; raise if it ends early."""
        while remaining:
            data = self.rfile.read(min(CHUNK, remaining))
            if not data:
                raise ConnectionError(error)
            remaining -= len(data)
            yield data

    def _drain(self) -> None:
        for _ in self._body_chunks():
            pass

    def send_response(self, code, message=None):
        self._responded = True
        super().send_response(code, message)

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json", headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _json(self, status: int, obj: dict) -> None:
        self._send(status, json.dumps(obj).encode())

    def _error(self, err: RemoteError) -> None:
        self._json(
            err.status,
            {
                "RemoteException": {
                    "exception": err.exception,
                    "javaClassName": JAVA_CLASSES.get(err.exception, "java.io.IOException"),
                    "message": err.message,
                }
            },
        )

    def _handle(self, method: str) -> None:
        self._body_read = False
        self._responded = False
        try:
            try:
                self._dispatch(method)
            finally:
                self._drain()  # keep the connection usable even after an early error
        except ConnectionError:
            self.close_connection = True
        except Exception as err:
            if self._responded:  # failed mid-response: all we can do is hang up
                self.close_connection = True
            else:
                self._error(self._as_remote(err))

    @staticmethod
    def _as_remote(err: Exception) -> RemoteError:
        if isinstance(err, RemoteError):
            return err
        if isinstance(err, PermissionError):
            return RemoteError(403, "AccessControlException", str(err))
        if isinstance(err, OSError):
            return RemoteError(403, "IOException", str(err))
        return RemoteError(500, "RuntimeException", f"{type(err).__name__}: {err}")  # a bug in the double

    # -- dispatch ----------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        if not (url.path == PREFIX or url.path.startswith(PREFIX + "/")):
            raise not_found(f"{url.path} is not a WebHDFS v1 URL (expected {PREFIX}/<path>)")
        raw_path = urllib.parse.unquote(url.path[len(PREFIX):]) or "/"
        # Parameter names are case-insensitive in WebHDFS; the first occurrence wins.
        params: dict[str, str] = {}
        for k, v in urllib.parse.parse_qsl(url.query, keep_blank_values=True):
            params.setdefault(k.lower(), v)
        op = params.get("op", "").upper()
        if op not in IMPLEMENTED[method]:
            detail = f"No enum constant org.apache.hadoop.hdfs.web.resources.{OP_ENUM[method]}.Op.{op}" if op else "op is missing"
            raise bad_request(f'Invalid value for webhdfs parameter "op": {detail} (not implemented by the WebHDFS test double)')
        parts = self.ns.parse(raw_path)
        datanode = DATANODE_MARKER in params
        getattr(self, f"op_{op.lower()}")(parts, params, datanode)

    def _redirect_to_datanode(self, parts: list[str], params: dict) -> None:
        host = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
        query = dict(params)
        query[DATANODE_MARKER] = host
        location = "http://%s%s%s?%s" % (
            host,
            PREFIX,
            urllib.parse.quote(Namespace.hdfs_path(parts), safe="/"),
            urllib.parse.urlencode(query),
        )
        self._send(307, content_type="application/octet-stream", headers={"Location": location})

    # -- ops -----------------------------------------------------------------------------

    def op_getfilestatus(self, parts, params, datanode):
        self._json(200, self.ns.get_file_status(parts))

    def op_liststatus(self, parts, params, datanode):
        self._json(200, self.ns.list_status(parts))

    def op_getcontentsummary(self, parts, params, datanode):
        self._json(200, self.ns.content_summary(parts))

    def op_gethomedirectory(self, parts, params, datanode):
        self._json(200, {"Path": "/user/" + (params.get("user.name") or "dr.who")})

    def op_mkdirs(self, parts, params, datanode):
        check_permission(params)
        self._json(200, self.ns.mkdirs(parts))

    def op_rename(self, parts, params, datanode):
        dest = params.get("destination")
        if not dest:
            raise bad_request('Invalid value for webhdfs parameter "destination": destination is missing')
        options = {o.strip().upper() for o in params.get("renameoptions", "").split(",") if o.strip()}
        if options - {"NONE", "OVERWRITE"}:
            raise bad_request(f'Invalid value for webhdfs parameter "renameoptions": {params["renameoptions"]}')
        if "OVERWRITE" in options:  # HDFS's rename2(OVERWRITE): replaces a file in one step; no JSON body
            self.ns.rename_overwrite(parts, self.ns.parse(dest))
            self._send(200)
            return
        self._json(200, self.ns.rename(parts, self.ns.parse(dest)))

    def op_delete(self, parts, params, datanode):
        self._json(200, self.ns.delete(parts, parse_bool(params, "recursive", False)))

    def op_create(self, parts, params, datanode):
        overwrite = parse_bool(params, "overwrite", False)
        check_permission(params)
        for name in ("blocksize", "buffersize"):
            parse_long(params, name, None)
        parse_long(params, "replication", None)
        if not datanode:
            # NameNode leg: like the real NameNode, redirect without looking at the
            # namespace; the DataNode leg reports FileAlreadyExistsException.
            self._redirect_to_datanode(parts, params)
            return
        with self.ns.lock:
            self.ns.check_create(parts, overwrite, self.client_address[0])  # fail fast, before taking the bytes
        staged = self.ns.staging_file()
        try:
            with open(staged, "wb") as f:
                for chunk in self._body_chunks():
                    f.write(chunk)
            self.ns.commit_create(parts, staged, overwrite, self.client_address[0])
        finally:
            if os.path.exists(staged):
                os.unlink(staged)
        host = self.headers.get("Host") or "127.0.0.1"
        self._send(201, content_type="application/octet-stream",
                   headers={"Location": "hdfs://%s%s" % (host, urllib.parse.quote(Namespace.hdfs_path(parts)))})

    def op_open(self, parts, params, datanode):
        offset = parse_long(params, "offset", 0)
        length = parse_long(params, "length", None)
        parse_long(params, "buffersize", None)
        local, size = self.ns.open_file(parts)
        if not datanode:
            self._redirect_to_datanode(parts, params)
            return
        try:
            f = open(local, "rb")
        except (FileNotFoundError, NotADirectoryError):
            raise not_found(f"File does not exist: {Namespace.hdfs_path(parts)}")
        with f:
            size = os.fstat(f.fileno()).st_size
            if offset > size:
                raise RemoteError(403, "IOException", f"Offset={offset} out of the range [0, {size}]; OPEN, path={Namespace.hdfs_path(parts)}")
            count = size - offset if length is None else min(length, size - offset)
            f.seek(offset)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(count))
            self.end_headers()
            while count:
                data = f.read(min(CHUNK, count))
                if not data:  # truncated underneath us; the client sees a short body
                    self.close_connection = True
                    break
                self.wfile.write(data)
                count -= len(data)


def make_server(host: str, port: int, root: str, verbose: bool = False) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"ns": Namespace(root), "verbose": verbose})

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

    return Server((host, port), handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="WebHDFS REST API v1 test double (not HDFS).")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", required=True, help="local directory backing the fake HDFS namespace")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    server = make_server(args.host, args.port, args.root, args.verbose)
    stop_requested = threading.Event()

    def request_stop(signum, frame):
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    print(f"webhdfs double serving {args.root} on http://{args.host}:{server.server_address[1]}", file=sys.stderr, flush=True)
    while not stop_requested.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    thread.join(5)
    shutil.rmtree(server.RequestHandlerClass.ns.staging, ignore_errors=True)
    return 0


# -- helpers for tests ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    url = f"http://127.0.0.1:{port}{PREFIX}/?op=GETFILESTATUS&user.name=probe"
    try:
        with urllib.request.urlopen(url, timeout=1) as res:
            return res.status == 200 and "FileStatus" in json.loads(res.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_webhdfs_double(root_dir, timeout: float = 10.0) -> tuple[subprocess.Popen, int]:
    """Start the double as a separate process on a free localhost port, backed by
    root_dir; return (process, port) once GETFILESTATUS on / answers."""
    root_dir = os.fspath(root_dir)
    os.makedirs(root_dir, exist_ok=True)
    last_error = ""
    for _attempt in range(3):  # the free port can be taken between probe and bind
        port = _free_port()
        log = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--port", str(port), "--root", root_dir],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if _answers(port):
                log.close()
                return proc, port
            time.sleep(0.05)
        stop(proc)
        log.seek(0)
        last_error = log.read().decode(errors="replace")
        log.close()
    raise RuntimeError(f"WebHDFS test double did not start; last output:\n{last_error}")


def stop(process: subprocess.Popen, timeout: float = 5.0) -> int:
    """SIGTERM the double and wait for it; SIGKILL if it does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
