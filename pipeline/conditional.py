"""Conditional writes on every storage backend: read a file together with a token, and replace it
only if it still has that token (or create it only if it is absent), so that two writers on any
processes or hosts never overwrite each other's decision silently.

| backend | token | how the condition is kept |
|---|---|---|
| S3 | the object's ETag | the store itself: `PutObject` with `If-None-Match: *` / `If-Match`, `DeleteObject` with `If-Match` |
| local disk | sha256 of the content | an exclusive `flock` on a hidden sidecar file beside the target (`.NAME.lock`) around read-compare-write |
| HDFS (WebHDFS) | sha256 of the content | a mutex file beside the target (`.NAME.lock`), created exclusively (CREATE with overwrite=false), around read-compare-write |

Limits. A sha256 token changes only when the content does: writing back byte-identical content
counts as no change, so records that must be told apart carry something unique (a holder id, a
time). On local disk the flock holds between processes of one machine and on a local filesystem;
on a network filesystem it holds only as far as that filesystem implements flock (NFSv4 does;
older NFS and some FUSE mounts do not). On HDFS the mutex is advisory and has no owner the
namenode knows of: a mutex older than `HDFS_MUTEX_STALE_SECONDS` is taken to belong to a writer
that died and is removed, so a writer stalled for longer than that between taking the mutex and
writing (a long GC pause, a network partition) can race the one that took it over, and two
writers that find the same stale mutex at the same moment can both proceed. The read-compare-write
it guards takes a few requests, far below that time. Only writers that go through this module
respect the conditions; a plain `storage.write_bytes` to the same path bypasses them."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import posixpath
import socket
import time
import uuid

from pipeline import storage as st
from pipeline.hashing import sha256_bytes
from pipeline.storage_errors import hdfs_errors, local_errors, s3_errors

# A mutex file on HDFS older than this belongs to a writer that died: it is removed.
HDFS_MUTEX_STALE_SECONDS = 30.0
_POLL_SECONDS = 0.05


def read_versioned(store: st.Storage, path: str) -> tuple[bytes | None, str | None]:
    """(content, token) of the file at `path`, or (None, None) when it does not exist. Pass the
    token to `write_if` / `remove_if` to change the file only if nobody changed it since."""
    target = store.target(path)
    if st.scheme_of(path) == "s3":
        return _s3_read(target)
    try:
        data = st.read_bytes(target)
    except FileNotFoundError:
        return None, None
    return data, sha256_bytes(data)


def write_if(store: st.Storage, path: str, data: bytes, expected: str | None) -> bool:
    """Write `data` to `path` only if the file still has the token `expected` (from
    `read_versioned`), or, with `expected` None, only if it does not exist. False, writing nothing,
    when the condition does not hold; the write itself is atomic as storage.write_bytes makes it."""
    return write_versioned(store, path, data, expected) is not None


def write_versioned(store: st.Storage, path: str, data: bytes, expected: str | None) -> str | None:
    """`write_if` that returns the token of what it wrote (for the next conditional write by the
    same writer), None when the condition does not hold."""
    target = store.target(path)
    if st.scheme_of(path) == "s3":
        return _s3_put(target, data, expected)
    with _guard(path, target):
        if _token(target) != expected:
            return None
        st.write_bytes(target, data)
        return sha256_bytes(data)


def remove_if(store: st.Storage, path: str, expected: str) -> bool:
    """Remove the file at `path` only if it still has the token `expected`; False otherwise."""
    target = store.target(path)
    if st.scheme_of(path) == "s3":
        return _s3_delete(target, expected)
    with _guard(path, target):
        if _token(target) != expected:
            return False
        store.remove(path)
        return True


def _token(target) -> str | None:
    try:
        return sha256_bytes(st.read_bytes(target))
    except FileNotFoundError:
        return None


def _guard(path: str, target):
    return _hdfs_mutex(target) if st.scheme_of(path) == "hdfs" else _local_lock(target.path)


def lock_path(path: str) -> str:
    """The hidden file beside the file at `path` (a local or HDFS path) that guards its
    conditional writes."""
    directory, name = posixpath.split(path)
    return posixpath.join(directory, f".{name}.lock")


# ---- local disk: flock on a sidecar file -----------------------------------------------------
@contextlib.contextmanager
def _local_lock(path: str):
    lock = lock_path(path)
    with local_errors(lock, "lock"):
        os.makedirs(os.path.dirname(lock) or ".", exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            # explicitly: a process forked meanwhile (luigi's workers) holds a copy of the descriptor,
            # and closing ours alone would leave the lock held until that process exits
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ---- HDFS: an exclusively created mutex file --------------------------------------------------
@contextlib.contextmanager
def _hdfs_mutex(target):
    import hdfs.util

    client, mutex = target.fs.client, lock_path(target.path)
    mine = json.dumps({"id": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
                       "created": time.time()}).encode()
    with hdfs_errors(mutex, target.fs):
        while True:
            try:
                client.write(mutex, data=mine, overwrite=False)
                break
            except hdfs.util.HdfsError as exc:
                if "already exists" not in str(exc) and getattr(exc, "exception", "") != "FileAlreadyExistsException":
                    raise
            if _hdfs_mutex_is_stale(client, mutex):
                client.delete(mutex)
            else:
                time.sleep(_POLL_SECONDS)
    try:
        yield
    finally:
        with hdfs_errors(mutex, target.fs):
            if _hdfs_read(client, mutex) == mine:  # not if it was taken over as stale meanwhile
                client.delete(mutex)


def _hdfs_mutex_is_stale(client, mutex: str) -> bool:
    data = _hdfs_read(client, mutex)
    if data is None:
        return False  # released meanwhile: try again
    try:
        created = float(json.loads(data)["created"])
    except (ValueError, KeyError, TypeError):
        return True  # not a mutex this module wrote whole
    return time.time() - created > HDFS_MUTEX_STALE_SECONDS


def _hdfs_read(client, path: str) -> bytes | None:
    import hdfs.util

    try:
        with client.read(path) as src:
            return src.read()
    except hdfs.util.HdfsError as exc:
        if "does not exist" in str(exc):
            return None
        raise


# ---- S3: the store's own conditional requests -------------------------------------------------
def _s3_read(target) -> tuple[bytes | None, str | None]:
    bucket, key = st.bucket_key(target.path)
    with s3_errors(target.path, target.fs):
        try:
            got = target.fs.s3.meta.client.get_object(Bucket=bucket, Key=key)
        except _client_error() as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None, None
            raise
        return got["Body"].read(), got["ETag"]


def _s3_put(target, data: bytes, expected: str | None) -> str | None:
    return st.s3_put(target, data, {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected})


def _s3_delete(target, expected: str) -> bool:
    bucket, key = st.bucket_key(target.path)
    with s3_errors(target.path, target.fs):
        try:
            target.fs.s3.meta.client.delete_object(Bucket=bucket, Key=key, IfMatch=expected)
        except _client_error() as exc:
            if _code(exc) in st.S3_CONDITION_FAILED:
                return False
            raise
    return True


def _client_error():
    import botocore.exceptions

    return botocore.exceptions.ClientError


def _code(exc) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
