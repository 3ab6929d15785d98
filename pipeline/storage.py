"""The storage adapter, and the only module of `pipeline` that imports luigi: it turns paths of
pipeline.layout under the storage root into luigi targets on the root's backend (local disk,
S3, HDFS), and reads and writes Parquet, JSON and bytes through them atomically."""
from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import posixpath
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import luigi
import luigi.contrib.s3
import luigi.format
import pandas as pd

from pipeline import layout
from pipeline.hashing import json_bytes, sha256_bytes
from pipeline.storage_errors import (DISK_FULL, S3_CHECKSUM_HINT, StorageError, blocking_file, hdfs_errors,
                                     local_errors, pyarrow_errors, raise_walk_error, s3_endpoint, s3_errors)

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = PROJECT_DIR / "var"


def resolve_root(configured: str = "", env: dict[str, str] | None = None) -> str:
    """The storage root: $MLPIPE_ROOT if set, else the configured value, else the project's var/."""
    env = os.environ if env is None else env
    root = env.get("MLPIPE_ROOT") or configured or str(DEFAULT_ROOT)
    return root.rstrip("/") or "/"


def scheme_of(path: str) -> str:
    """'s3', 'hdfs' or 'local' (plain paths and file:// URLs)."""
    if "://" not in path:
        return "local"
    scheme = path.split("://", 1)[0].lower()
    if scheme == "file":
        return "local"
    if scheme in ("s3", "s3a", "s3n"):
        return "s3"
    if scheme in ("hdfs", "webhdfs"):
        return "hdfs"
    raise StorageError(
        f"storage path {path!r} uses scheme '{scheme}://', which is not supported; set "
        "[storage] root in luigi.cfg (or MLPIPE_ROOT) to a local path, s3://bucket/prefix or "
        "hdfs://namenode:port/path")


class Storage:
    """Builds every target of the pipeline from one root; the scheme of a path (local path,
    s3://bucket/prefix, hdfs://namenode:port/path) picks the backend. Clients are injected or,
    when None, built on first use from luigi.cfg ([s3]; [hdfs]/[webhdfs])."""

    def __init__(self, root: str, landing: str | None = None, s3_client=None, hdfs_client=None):
        self.root = _strip_file_scheme(root)
        self.landing = _strip_file_scheme(landing or "") or self.path("landing")
        for where in (self.root, self.landing):
            scheme_of(where)  # refuse unknown schemes now, with the setting to fix
        self._s3_client = s3_client
        self._hdfs_clients = {} if hdfs_client is None else {None: hdfs_client}

    # ---- paths -------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return _join(self.root, *parts)

    def partition(self, layer: str, name: str, date: dt.date | None = None,
                  lineage: str | None = None) -> str:
        """`{root}/{layer}/{name}[/h={lineage}][/date=YYYY-MM-DD]` (layout.partition)."""
        return self.path(*layout.partition(layer, name, date, lineage))

    def landing_path(self, *parts: str) -> str:
        return _join(self.landing, *parts)

    # ---- clients -----------------------------------------------------------------------
    @property
    def s3_client(self):
        if self._s3_client is None:
            self._s3_client = s3_client_from_config()
        return self._s3_client

    def hdfs_client(self, path: str):
        netloc = urlsplit(path).netloc or None
        if netloc not in self._hdfs_clients:
            if None in self._hdfs_clients:
                return self._hdfs_clients[None]
            from luigi.contrib.hdfs.webhdfs_client import WebHdfsClient, webhdfs

            host, _, port = (netloc or "").partition(":")
            user = webhdfs().user or os.environ.get("USER") or _current_user()
            self._hdfs_clients[netloc] = WebHdfsClient(host=host or None, port=int(port) if port else None,
                                                       user=user)
        return self._hdfs_clients[netloc]

    # ---- targets -----------------------------------------------------------------------
    def target(self, path: str):
        """The luigi target for `path` on its backend (bytes in, bytes out)."""
        scheme = scheme_of(path)
        if scheme == "s3":
            return S3Target(path, format=luigi.format.Nop, client=self.s3_client)
        if scheme == "hdfs":
            from luigi.contrib.hdfs.target import HdfsTarget

            return HdfsTarget(_hdfs_path(path), fs=self.hdfs_client(path))
        return luigi.LocalTarget(path, format=luigi.format.Nop)

    def file(self, directory: str, filename: str):
        return self.target(_join(directory, filename))

    def flag(self, directory: str):
        """The `_SUCCESS` flag of a multi-file output; written last, it alone marks completeness."""
        return self.target(_join(directory, layout.SUCCESS))

    def exists(self, path: str) -> bool:
        return self.target(path).exists()

    def list_files(self, prefix: str) -> set[str]:
        """Every file below `prefix` (recursively), as the `.path` of its target, with one listing
        per prefix: one LIST request per 1000 keys on S3, one LISTSTATUS per directory on HDFS."""
        scheme = scheme_of(prefix)
        if scheme == "s3":
            with s3_errors(prefix, self.s3_client):
                return set(self.s3_client.listdir(prefix))
        if scheme == "hdfs":
            return _hdfs_list(self.hdfs_client(prefix), prefix)
        found = set()
        for base, _, files in os.walk(prefix, onerror=raise_walk_error):
            found.update(os.path.join(base, name) for name in files)
        return found

    def listdir(self, path: str) -> list[str]:
        """Names directly below `path` (files and directories)."""
        below = self.list_files(path)
        base = self.target(path).path.rstrip("/") + "/"
        return sorted({p[len(base):].split("/", 1)[0] for p in below if p.startswith(base)})

    def remove(self, path: str) -> None:
        target = self.target(path)
        if not target.exists():
            return
        scheme = scheme_of(path)
        if scheme == "hdfs":
            with hdfs_errors(path, target.fs):
                target.fs.remove(target.path, recursive=True, skip_trash=True)
        elif scheme == "s3":
            with s3_errors(path, target.fs):
                target.fs.remove(target.path, recursive=True)
        else:
            with local_errors(target.path, "remove"):
                target.fs.remove(target.path, recursive=True)


# botocore's integrity settings, read from [s3] in luigi.cfg (luigi's S3Client would pass them to
# boto3 as unknown keyword arguments): `when_supported` (botocore's default) sends a CRC checksum
# with every upload, as an aws-chunked body with a trailer; `when_required` only where an API
# requires one. Every write also sends Content-MD5 and compares the stored object (write_bytes).
S3_CHECKSUM_SETTINGS = ("request_checksum_calculation", "response_checksum_validation")


def s3_client_from_config():
    """luigi's S3Client from [s3] in luigi.cfg, with S3_CHECKSUM_SETTINGS given to botocore."""
    import botocore.config
    from luigi.contrib.s3 import S3Client

    client = S3Client()
    settings = {name: client._options.pop(name) for name in S3_CHECKSUM_SETTINGS if name in client._options}
    for name, value in settings.items():
        if value not in ("when_supported", "when_required"):
            raise StorageError(f"[s3] {name} = {value!r} in luigi.cfg is not a choice: use when_supported "
                               "(botocore's default) or when_required")
    if settings:
        client._options["config"] = botocore.config.Config(**settings)
    return client


def _current_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "mlpipe"


def _strip_file_scheme(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path


def _join(base: str, *parts: str) -> str:
    if "://" in base:
        return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])
    return os.path.join(base, *parts)


def _hdfs_path(path: str) -> str:
    return urlsplit(path).path or "/" if "://" in path else path


def _hdfs_list(client, prefix: str) -> set[str]:
    with hdfs_errors(prefix, client):
        base = _hdfs_path(prefix)
        if not client.exists(base):
            return set()
        return {os.path.join(root, name) for root, _, files in client.client.walk(base) for name in files}


class S3Target(luigi.contrib.s3.S3Target):
    """luigi's S3Target whose errors name the endpoint, the bucket and the setting to check."""

    def exists(self):
        with s3_errors(self.path, self.fs):
            return super().exists()

    def open(self, mode="r"):
        with s3_errors(self.path, self.fs):
            try:
                return super().open(mode)
            except luigi.contrib.s3.FileNotFoundException as exc:
                raise FileNotFoundError(f"{self.path} does not exist") from exc


# ---- reading and writing through targets ----------------------------------------------------
# Every write is atomic and verified: the final name appears only with the whole content, and the
# store is checked to hold exactly the bytes written. Temporary files are hidden names
# (`.{name}.tmp-{random}`) in the target's directory: directory readers (pyarrow.dataset, Spark)
# skip names starting with '.', and seal() removes any a killed writer left behind.
TEMP_MARK = ".tmp-"


def is_temp(name: str) -> bool:
    """Whether a file name is a temporary file of a write (ours, or luigi's `-luigi-tmp-`)."""
    return (name.startswith(".") and TEMP_MARK in name) or "-luigi-tmp-" in name


def file_info(data: bytes) -> dict:
    """What a seal records of a file: its size and sha256."""
    return {"bytes": len(data), "sha256": sha256_bytes(data)}


def write_bytes(target, data: bytes) -> dict:
    """Write `data` so that the final name appears only complete and the store is known to hold
    exactly `data`; returns its file_info. Local disk: a hidden temporary file, fsync, rename,
    fsync of the directory. S3: one PUT with Content-MD5 (the store checks it), then its ETag or
    size compared with what was sent. HDFS: a hidden temporary file, then a rename that overwrites
    (no moment where the name is missing), then its size compared."""
    info = file_info(data)
    if _is_hdfs(target):
        _hdfs_write(target, data)
    elif isinstance(target, S3Target):
        s3_put(target, data)
    else:
        _local_write(target.path, data)
    return info


def _temp_name(path: str) -> str:
    head, name = os.path.split(path)
    return os.path.join(head, f".{name}{TEMP_MARK}{uuid.uuid4().hex[:12]}")


def _local_write(path: str, data: bytes) -> None:
    _ensure_parent(path)
    tmp = _temp_name(path)
    with local_errors(path, "write"):
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)  # the bytes are on disk before the name points at them
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)  # no partial temporary file left on a full disk
            raise
        _fsync_dir(os.path.dirname(path))  # ...and the rename itself survives a power loss


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# What S3 answers when the condition of a conditional PUT does not hold: 412 when the object is not
# as expected, 409 when a concurrent conditional write won the race, 404 for If-Match on an object
# that is gone.
S3_CONDITION_FAILED = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey", "404"}


def s3_put(target, data: bytes, condition: dict | None = None) -> str | None:
    """One verified PUT of `data` (see write_bytes); with `condition` (`{"IfNoneMatch": "*"}` or
    `{"IfMatch": etag}`) a conditional one, which returns None, writing nothing, when the
    condition does not hold. Returns the stored object's ETag."""
    import base64
    import hashlib

    import botocore.exceptions

    bucket, key = bucket_key(target.path)
    md5 = hashlib.md5(data)  # noqa: S324 - S3's integrity header, not a security use
    client = target.fs.s3.meta.client
    with s3_errors(target.path, target.fs):
        try:
            response = client.put_object(Bucket=bucket, Key=key, Body=data,
                                         ContentMD5=base64.b64encode(md5.digest()).decode(), **(condition or {}))
        except botocore.exceptions.ClientError as exc:
            if condition and str(exc.response.get("Error", {}).get("Code", "")) in S3_CONDITION_FAILED:
                return None
            raise
        etag = response.get("ETag", "").strip('"')
        if _etag_is_md5(response, etag):  # a single PUT's ETag is the MD5 of what was stored
            stored, sent = f"MD5 {etag}", f"MD5 {md5.hexdigest()}"
        else:  # encrypted or otherwise opaque ETag: compare the stored size
            stored = f"{client.head_object(Bucket=bucket, Key=key)['ContentLength']} bytes"
            sent = f"{len(data)} bytes"
    if stored != sent:
        with contextlib.suppress(Exception):
            client.delete_object(Bucket=bucket, Key=key)  # never leave a corrupt object under the name
        raise StorageError(
            f"the S3 endpoint {s3_endpoint(target.fs)} stored {target.path} corrupt: it holds {stored}, "
            f"{sent} were sent (the object was removed); {S3_CHECKSUM_HINT}")
    return response["ETag"]


def _etag_is_md5(response: dict, etag: str) -> bool:
    """Whether a PUT's ETag is the MD5 of the stored bytes: not for objects encrypted with SSE-KMS
    or a customer key (AWS documents their ETags as opaque), nor for multipart-style ETags."""
    encrypted = response.get("ServerSideEncryption", "").startswith("aws:kms") or response.get("SSECustomerAlgorithm")
    return not encrypted and len(etag) == 32 and "-" not in etag


def bucket_key(path: str) -> tuple[str, str]:
    bucket, _, key = path.split("://", 1)[1].partition("/")
    return bucket, key


def read_bytes(target) -> bytes:
    if _is_hdfs(target):
        with hdfs_errors(target.path, target.fs):
            with target.fs.client.read(target.path) as src:
                return src.read()
    if isinstance(target, S3Target):
        with s3_errors(target.path, target.fs):
            with target.open("r") as src:
                return src.read()
    with local_errors(target.path, "read"), open(target.path, "rb") as src:
        return src.read()


def file_status(target) -> dict | None:
    """One metadata request about a file, without reading it: {"size", "modified" (seconds since
    the epoch), "version" (what changes whenever it is written again: the modification time in ns
    on local disk, in ms on HDFS, the ETag on S3)}; None when it does not exist."""
    if _is_hdfs(target):
        with hdfs_errors(target.path, target.fs):
            status = target.fs.client.status(target.path, strict=False)
        if status is None:
            return None
        return {"size": int(status["length"]), "modified": status["modificationTime"] / 1000,
                "version": status["modificationTime"]}
    if isinstance(target, S3Target):
        import botocore.exceptions as bx

        bucket, key = bucket_key(target.path)
        with s3_errors(target.path, target.fs):
            try:
                head = target.fs.s3.meta.client.head_object(Bucket=bucket, Key=key)
            except bx.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        return {"size": int(head["ContentLength"]), "modified": head["LastModified"].timestamp(),
                "version": head["ETag"]}
    try:
        info = os.stat(target.path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return {"size": info.st_size, "modified": info.st_mtime, "version": info.st_mtime_ns}


def stamp(target) -> str | None:
    """What changes whenever a file is written again, read with one metadata request and without
    reading the file: size and modification time (local, HDFS) or size and ETag (S3). None when the
    file does not exist. Lets a check skip hashing a file that was not re-delivered."""
    status = file_status(target)
    return None if status is None else f"{status['size']}:{status['version']}"


def _is_hdfs(target) -> bool:
    from luigi.contrib.hdfs.target import HdfsTarget

    return isinstance(target, HdfsTarget)


def _hdfs_write(target, data: bytes) -> None:
    """A hidden temporary file, then WebHDFS's RENAME with `renameoptions=OVERWRITE` (HDFS's
    rename2: the name switches from the old content to the new in one step), then the stored size
    compared with what was sent."""
    fs, final = target.fs, target.path
    tmp = _temp_name(final)
    with hdfs_errors(final, fs):
        fs.client.write(tmp, data=data, overwrite=True)
        fs.client._rename(tmp, destination=final, renameoptions="OVERWRITE")  # hdfs' client has no public form
        status = fs.client.status(final, strict=False)
    if status is None or status["length"] != len(data):
        raise StorageError(f"HDFS stored {final} with {None if status is None else status['length']} bytes, "
                           f"{len(data)} were written; check the namenode and datanodes ([hdfs] / [webhdfs] "
                           "in luigi.cfg), then rerun")


def write_json(target, obj: Any) -> dict:
    return write_bytes(target, json_bytes(obj))


def read_json(target) -> Any:
    return json.loads(read_bytes(target).decode())


def write_text(target, text: str) -> dict:
    return write_bytes(target, text.encode())


def parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    return buf.getvalue()


def write_parquet(target, df: pd.DataFrame) -> dict:
    """Parquet, written whole through write_bytes (verified on every backend)."""
    return write_bytes(target, parquet_bytes(df))


def read_parquet(target, columns: list[str] | None = None) -> pd.DataFrame:
    if isinstance(target, S3Target):
        fs, key = pyarrow_s3(target)
        with s3_errors(target.path, target.fs), pyarrow_errors(target.path, s3_endpoint(target.fs)):
            return pd.read_parquet(key, columns=columns, engine="pyarrow", filesystem=fs)
    return parquet_from_bytes(read_bytes(target), columns)


_PYARROW_S3: dict[tuple, Any] = {}


def pyarrow_s3(target) -> tuple[Any, str]:
    """pyarrow's S3FileSystem pointed at the same endpoint and region as the target's luigi
    S3Client, and the target's `bucket/key` (reads only: every write goes through write_bytes).
    Credentials come from the AWS SDK's standard chain (environment, profile, instance role), as
    they do for boto3."""
    from pyarrow import fs as pafs

    client = target.fs.s3.meta.client
    endpoint = urlsplit(client.meta.endpoint_url)
    key = (endpoint.geturl(), client.meta.region_name)
    if key not in _PYARROW_S3:
        options = {"region": client.meta.region_name or "us-east-1", "scheme": endpoint.scheme or "https"}
        if endpoint.netloc and not endpoint.netloc.endswith("amazonaws.com"):
            options["endpoint_override"] = endpoint.netloc
        _PYARROW_S3[key] = pafs.S3FileSystem(**options)
    return _PYARROW_S3[key], target.path.split("://", 1)[1]


def parquet_from_bytes(data: bytes, columns: list[str] | None = None) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data), columns=columns, engine="pyarrow")


# ---- seals: the flag that says an output directory is complete, and what it holds ----------
def seal(flag, written: dict) -> None:
    """Mark an output complete: write its `_SUCCESS` flag (`flag`) last, holding the size and
    sha256 of each file the output wrote (`written`: {target: the file_info its write returned},
    recorded by path relative to the flag's directory), after removing temporary files a killed
    earlier attempt left in the directories it wrote to. `mlpipe verify` checks the files against it.
    (The lease keeps a second writer of the same output from writing there meanwhile.)"""
    swept = {flag.path.rsplit("/", 1)[0]: flag}
    swept.update({target.path.rsplit("/", 1)[0]: target for target in written})
    for target in swept.values():
        for path in directory_files(target):
            if is_temp(path.rsplit("/", 1)[-1]):
                _remove_file(target, path)
    files = {relative_to(flag, target): info for target, info in written.items()}
    write_bytes(flag, json_bytes({"files": dict(sorted(files.items()))}))


def read_seal(flag) -> dict | None:
    """The files a seal records ({relative path: file_info}); None when the flag is missing, {}
    when it is an empty flag from before seals recorded checksums."""
    try:
        data = read_bytes(flag)
    except FileNotFoundError:
        return None
    if not data.strip():
        return {}
    return json.loads(data.decode())["files"]


def relative_to(flag, target) -> str:
    """`target`'s path relative to the directory of `flag` (the key a seal records it under)."""
    return posixpath.relpath(target.path, flag.path.rsplit("/", 1)[0])


def beside(flag, relative: str) -> str:
    """The path of a file a seal records under `relative` (on the flag's backend: see file_beside)."""
    scheme, sep, rest = flag.path.rpartition("://")
    return scheme + sep + posixpath.normpath(posixpath.join(posixpath.dirname(rest), relative))


def file_beside(flag, relative: str):
    """The target of a file a seal records under `relative`, on the flag's backend and client."""
    path = beside(flag, relative)
    if _is_hdfs(flag):
        from luigi.contrib.hdfs.target import HdfsTarget

        return HdfsTarget(path, fs=flag.fs)
    if isinstance(flag, S3Target):
        return S3Target(path, format=luigi.format.Nop, client=flag.fs)
    return luigi.LocalTarget(path, format=luigi.format.Nop)


def directory_files(flag) -> list[str]:
    """The paths of the files in the directory of `flag` (any target) on its backend; none on S3,
    whose writes leave no temporary objects, so only temporary files are looked for there."""
    directory = flag.path.rsplit("/", 1)[0]
    if _is_hdfs(flag):
        with hdfs_errors(directory, flag.fs):
            if not flag.fs.client.status(directory, strict=False):
                return []
            return [f"{directory}/{name}" for name in flag.fs.client.list(directory)]
    if isinstance(flag, S3Target):
        return []  # S3 writes are single PUTs: no temporary objects
    try:
        return [os.path.join(directory, name) for name in os.listdir(directory)]
    except FileNotFoundError:
        return []


def _remove_file(flag, path: str) -> None:
    if _is_hdfs(flag):
        with hdfs_errors(path, flag.fs):
            flag.fs.client.delete(path)
        return
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _ensure_parent(path: str) -> None:
    """Create the directories above `path` that are missing, each one's entry fsynced into its
    parent, so that a file fsynced into a new directory cannot vanish with the directory."""
    parent = os.path.dirname(path)
    missing = []
    while parent and not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    try:
        for directory in reversed(missing):
            try:
                os.mkdir(directory)
            except FileExistsError:
                if not os.path.isdir(directory):
                    raise  # a file where the directory should be: reported below
                # else another writer created it meanwhile
            _fsync_dir(os.path.dirname(directory))
    except OSError as exc:
        blocker = blocking_file(path)
        why = f"{blocker} is a file, not a directory" if blocker else exc.strerror
        raise StorageError(
            f"cannot create directory {os.path.dirname(path)!r}: {why}; check that the storage root "
            "([storage] root in luigi.cfg or MLPIPE_ROOT) is writable"
            + (" and has free space" if exc.errno in DISK_FULL else "")) from exc
