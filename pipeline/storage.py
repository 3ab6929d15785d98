"""The storage adapter, and the only module of `pipeline` that imports luigi: it turns paths of
pipeline.layout under the storage root into luigi targets on the root's backend (local disk,
S3, HDFS), and reads and writes Parquet, JSON and bytes through them atomically."""
from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import luigi
import luigi.contrib.s3
import luigi.format
import pandas as pd

from pipeline import layout
from pipeline.hashing import json_bytes
from pipeline.storage_errors import (DISK_FULL, StorageError, blocking_file, hdfs_errors, local_errors,
                                     pyarrow_errors, raise_walk_error, s3_endpoint, s3_errors)

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
            from luigi.contrib.s3 import S3Client

            self._s3_client = S3Client()
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


# ---- reading and writing through targets (atomic: temp name, then rename) -----------------
def write_bytes(target, data: bytes) -> None:
    """Write `data` so that the final name appears only complete: local and S3 through luigi's
    atomic writers (temp name + rename; upload on close), HDFS to a temporary path + rename."""
    if _is_hdfs(target):
        _hdfs_write(target, data)
        return
    if isinstance(target, S3Target):
        with s3_errors(target.path, target.fs):
            with target.open("w") as out:
                out.write(data)
        return
    _ensure_parent(target)
    with local_errors(target.path, "write"):
        out = target.open("w")  # luigi's atomic_file: a temporary name, renamed on close
        try:
            out.write(data)
            out.close()
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(out.tmp_path)  # no partial temporary file left on a full disk
            raise


def read_bytes(target) -> bytes:
    if _is_hdfs(target):
        with hdfs_errors(target.path, target.fs):
            with target.fs.client.read(target.path) as src:
                return src.read()
    if isinstance(target, S3Target):
        with s3_errors(target.path, target.fs):
            with target.open("r") as src:
                return src.read()
    with local_errors(target.path, "read"), target.open("r") as src:
        return src.read()


def stamp(target) -> str | None:
    """What changes whenever a file is written again, read with one metadata request and without
    reading the file: size and modification time (local, HDFS) or size and ETag (S3). None when the
    file does not exist. Lets a check skip hashing a file that was not re-delivered."""
    if _is_hdfs(target):
        with hdfs_errors(target.path, target.fs):
            status = target.fs.client.status(target.path, strict=False)
        return None if status is None else f"{status['length']}:{status['modificationTime']}"
    if isinstance(target, S3Target):
        import botocore.exceptions as bx

        bucket, key = target.path.split("://", 1)[1].split("/", 1)
        with s3_errors(target.path, target.fs):
            try:
                head = target.fs.s3.meta.client.head_object(Bucket=bucket, Key=key)
            except bx.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        return f"{head['ContentLength']}:{head['ETag']}"
    try:
        info = os.stat(target.path)
    except FileNotFoundError:
        return None
    return f"{info.st_size}:{info.st_mtime_ns}"


def _is_hdfs(target) -> bool:
    from luigi.contrib.hdfs.target import HdfsTarget

    return isinstance(target, HdfsTarget)


def _hdfs_write(target, data: bytes) -> None:
    fs, final = target.fs, target.path
    tmp = f"{final}-luigi-tmp-{uuid.uuid4().hex[:10]}"
    with hdfs_errors(final, fs):
        fs.client.write(tmp, data=data, overwrite=True)
        if fs.exists(final):
            fs.remove(final, recursive=False, skip_trash=True)
        fs.move(tmp, final)


def write_json(target, obj: Any) -> None:
    write_bytes(target, json_bytes(obj))


def read_json(target) -> Any:
    return json.loads(read_bytes(target).decode())


def write_text(target, text: str) -> None:
    write_bytes(target, text.encode())


def write_parquet(target, df: pd.DataFrame) -> None:
    """Parquet through the target's backend; on S3 pyarrow's own S3 filesystem writes it (a
    multipart upload, so the object appears whole or not at all)."""
    if isinstance(target, S3Target):
        fs, key = pyarrow_s3(target)
        with s3_errors(target.path, target.fs), pyarrow_errors(target.path, s3_endpoint(target.fs)):
            df.to_parquet(key, index=False, engine="pyarrow", filesystem=fs)
        return
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    write_bytes(target, buf.getvalue())


def read_parquet(target, columns: list[str] | None = None) -> pd.DataFrame:
    if isinstance(target, S3Target):
        fs, key = pyarrow_s3(target)
        with s3_errors(target.path, target.fs), pyarrow_errors(target.path, s3_endpoint(target.fs)):
            return pd.read_parquet(key, columns=columns, engine="pyarrow", filesystem=fs)
    return parquet_from_bytes(read_bytes(target), columns)


_PYARROW_S3: dict[tuple, Any] = {}


def pyarrow_s3(target) -> tuple[Any, str]:
    """pyarrow's S3FileSystem pointed at the same endpoint and region as the target's luigi
    S3Client, and the target's `bucket/key`. Credentials come from the AWS SDK's standard chain
    (environment, profile, instance role), as they do for boto3."""
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


def write_flag(target) -> None:
    write_bytes(target, b"")


def _ensure_parent(target) -> None:
    parent = os.path.dirname(target.path)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        blocker = blocking_file(target.path)
        why = f"{blocker} is a file, not a directory" if blocker else exc.strerror
        raise StorageError(
            f"cannot create directory {parent!r}: {why}; check that the storage root "
            "([storage] root in luigi.cfg or MLPIPE_ROOT) is writable"
            + (" and has free space" if exc.errno in DISK_FULL else "")) from exc


