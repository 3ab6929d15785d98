"""What the storage backends' errors mean to a user: S3 (botocore, boto3 and pyarrow), WebHDFS and
local filesystem errors become a FileNotFoundError or a StorageError that names the path, the
endpoint or setting to check, and what to do."""
from __future__ import annotations

import contextlib
import errno
import os
from urllib.parse import urlsplit


class StorageError(RuntimeError):
    """Raised when the storage root cannot be used; the message names the root and the setting."""


S3_UNREACHABLE_HINT = ("check that the endpoint is up and that [s3] endpoint_url and region_name in luigi.cfg "
                       "point at it; a task that fails this way while running is retried as set in luigi.cfg "
                       "[scheduler] retry_count / retry_delay, otherwise rerun once the endpoint is back")
S3_CHECKSUM_HINT = ("check [s3] request_checksum_calculation / response_checksum_validation in luigi.cfg "
                    "(S3-compatible stores that keep aws-chunked framing need `when_required`; see "
                    "docs/storage.md, 'S3-compatible stores') and the endpoint's health, then rerun")
_S3_CHECKSUM_ERRORS = ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch")
_S3_SERVER_ERRORS = ("500", "502", "503", "504", "InternalError", "ServiceUnavailable", "SlowDown")


def s3_endpoint(client) -> str:
    """The endpoint URL a luigi S3Client talks to, for messages."""
    try:
        return client.s3.meta.client.meta.endpoint_url
    except Exception:  # noqa: BLE001 - only for the message
        return "the configured endpoint"


@contextlib.contextmanager
def s3_errors(path: str, client):
    """Turn botocore/boto3 errors for `path` into FileNotFoundError or a StorageError naming the
    endpoint, the bucket and what to check."""
    import boto3.exceptions
    import botocore.exceptions as bx

    def endpoint() -> str:  # only when there is an error to report
        return s3_endpoint(client)

    try:
        yield
    except (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError) as exc:
        # refused or dropped connections, timeouts, a response cut off: the endpoint is down or unreachable
        raise StorageError(
            f"cannot reach the S3 endpoint {endpoint()} for {path}: {exc}; {S3_UNREACHABLE_HINT}") from exc
    except bx.FlexibleChecksumError as exc:
        raise StorageError(f"the S3 endpoint {endpoint()} answered {path} with bytes that do not match its "
                           f"checksum ({exc}); {S3_CHECKSUM_HINT}") from exc
    except bx.NoCredentialsError as exc:
        raise StorageError(
            f"no AWS credentials for {path} ({endpoint()}): set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or run where an instance role is available") from exc
    except bx.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        bucket = urlsplit(path).netloc
        if code in ("NoSuchKey", "404"):
            raise FileNotFoundError(f"{path} does not exist") from exc
        if code == "NoSuchBucket":
            raise StorageError(
                f"S3 bucket '{bucket}' does not exist at {endpoint()} (path {path}); create it or fix "
                "[storage] root / MLPIPE_ROOT (and [s3] endpoint_url)") from exc
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            raise StorageError(
                f"access to {path} at {endpoint()} was refused ({code}); check the AWS credentials "
                "(environment, AWS_PROFILE or instance role) and the bucket policy") from exc
        if code in _S3_CHECKSUM_ERRORS or "checksum" in str(exc).lower():
            raise StorageError(f"the S3 endpoint {endpoint()} refused {path} as damaged in transit ({code}: {exc}); "
                               f"{S3_CHECKSUM_HINT}") from exc
        if code in _S3_SERVER_ERRORS:
            raise StorageError(f"the S3 endpoint {endpoint()} failed ({code}) for {path}: {exc}; "
                               f"{S3_UNREACHABLE_HINT}") from exc
        raise StorageError(f"S3 request for {path} at {endpoint()} failed: {exc}") from exc
    except boto3.exceptions.S3UploadFailedError as exc:
        raise StorageError(f"upload of {path} to {endpoint()} failed: {exc}; {S3_UNREACHABLE_HINT}") from exc


@contextlib.contextmanager
def hdfs_errors(path: str, client):
    import hdfs.util
    import requests

    try:
        yield
    except hdfs.util.HdfsError as exc:
        if "does not exist" in str(exc):
            raise FileNotFoundError(f"{path} does not exist") from exc
        raise StorageError(f"WebHDFS request for {path} at {getattr(client, 'url', '?')} failed: {exc}") from exc
    except requests.exceptions.ConnectionError as exc:
        raise StorageError(
            f"cannot reach the WebHDFS namenode {getattr(client, 'url', '?')} for {path}: {exc}; check "
            "the host:port in the root URL or [hdfs] namenode_host / [webhdfs] port in luigi.cfg") from exc


DISK_FULL = {errno.ENOSPC: "the disk is full: free space on the filesystem holding {dir} (df -h {dir}) or move "
                       "[storage] root in luigi.cfg / MLPIPE_ROOT to a larger one, then rerun",
         errno.EDQUOT: "the disk quota of the user running the pipeline is exhausted: free space or raise the "
                       "quota (quota -s), then rerun",
         errno.EFBIG: "the file is larger than the file-size limit of the process (ulimit -f) or of the "
                      "filesystem: raise the limit, then rerun"}
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


@contextlib.contextmanager
def local_errors(path: str, action: str):
    """Turn OSErrors on a local path (disk full, permission denied, a file where a directory
    should be) into a StorageError that names the path and what to do; a missing file stays
    FileNotFoundError."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise local_storage_error(path, action, exc) from exc


def local_storage_error(path: str, action: str, exc: OSError) -> StorageError:
    reason = f"[Errno {exc.errno}] {exc.strerror}" if exc.errno else str(exc)
    if isinstance(exc.filename, str) and not exc.filename.startswith(path):  # not its own temporary name
        reason += f" (at {exc.filename})"
    if exc.errno in DISK_FULL:
        todo = DISK_FULL[exc.errno].format(dir=os.path.dirname(path) or ".")
    elif exc.errno in _DENIED:
        todo = (f"the user running the pipeline (uid {os.geteuid()}) may not {action} there: fix the "
                "permissions or mount (ls -ld, lsattr) or point [storage] root in luigi.cfg / MLPIPE_ROOT at "
                "a writable directory, then rerun")
    elif exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
        blocker = blocking_file(path)
        todo = (f"{blocker} is a file where a directory is expected: move it away or point [storage] root in "
                "luigi.cfg / MLPIPE_ROOT elsewhere, then rerun" if blocker else
                "a directory stands where a file is expected (or the reverse): remove it, then rerun")
    else:
        todo = "check the disk and the storage root ([storage] root in luigi.cfg or MLPIPE_ROOT), then rerun"
    return StorageError(f"cannot {action} {path}: {reason}; {todo}")


def blocking_file(path: str) -> str | None:
    """The nearest ancestor of `path` that exists but is not a directory, if any."""
    parent = os.path.dirname(os.path.abspath(path))
    while parent and parent != os.path.dirname(parent):
        if os.path.lexists(parent):
            return None if os.path.isdir(parent) else parent
        parent = os.path.dirname(parent)
    return None


def raise_walk_error(exc: OSError) -> None:
    """os.walk's error handler: a prefix that does not exist (or is a file) lists as empty, any
    other error (permission denied, I/O) is raised instead of being silently skipped."""
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return
    raise local_storage_error(exc.filename or "?", "list", exc) from exc


# What the AWS SDK (under pyarrow) says when it gets no answer from the endpoint.
_PYARROW_UNREACHABLE = ("NETWORK_CONNECTION", "Could not connect", "Couldn't connect", "Connection refused",
                        "Connection reset", "Operation timed out", "Timeout was reached", "SERVICE_UNAVAILABLE",
                        "curlCode: 7", "curlCode: 28", "curlCode: 52", "curlCode: 56")


@contextlib.contextmanager
def pyarrow_errors(path: str, endpoint: str):
    try:
        yield
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path} does not exist") from exc
    except OSError as exc:
        text = str(exc)
        if any(sign in text for sign in _PYARROW_UNREACHABLE):
            raise StorageError(f"cannot reach the S3 endpoint {endpoint} for {path}: {text}; "
                               f"{S3_UNREACHABLE_HINT}") from exc
        if "NoSuchBucket" in text or "does not exist" in text:
            raise StorageError(f"S3 bucket '{urlsplit(path).netloc}' does not exist at {endpoint} (path {path}); "
                               "create it or fix [storage] root / MLPIPE_ROOT (and [s3] endpoint_url)") from exc
        raise StorageError(f"S3 request for {path} at {endpoint} (through pyarrow) failed: {text}; check [s3] "
                           "endpoint_url and region_name in luigi.cfg, the credentials, and that the endpoint "
                           "is up") from exc
