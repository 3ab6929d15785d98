"""One place that turns (layer, name, date, ...) into luigi targets under the storage root,
and reads/writes Parquet, JSON and bytes through those targets atomically."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import luigi
import luigi.format
import pandas as pd

SUCCESS = "_SUCCESS"
PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = PROJECT_DIR / "var"


class StorageError(RuntimeError):
    """Raised when the storage root cannot be used; the message names the root and the setting."""


def resolve_root(configured: str = "", env: dict[str, str] | None = None) -> str:
    """The storage root: $MLPIPE_ROOT if set, else the configured value, else the project's var/."""
    env = os.environ if env is None else env
    root = env.get("MLPIPE_ROOT") or configured or str(DEFAULT_ROOT)
    return root.rstrip("/") or "/"


def param_hash(**params: Any) -> str:
    """Short stable hash of parameters, used in output paths so a changed parameter yields new outputs."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Storage:
    """Builds every target of the pipeline from one root. Only local paths are supported so far;
    the scheme of the root picks the backend."""

    def __init__(self, root: str, landing: str | None = None):
        if "://" in root and not root.startswith("file://"):
            scheme = root.split("://", 1)[0]
            raise StorageError(
                f"storage root {root!r} uses scheme '{scheme}://', which this version does not "
                "support yet; set [storage] root in luigi.cfg (or MLPIPE_ROOT) to a local path")
        self.root = root.removeprefix("file://")
        self.landing = (landing or "").removeprefix("file://") or self.path("landing")

    # ---- paths -------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def partition(self, layer: str, name: str, date: dt.date | None = None,
                  phash: str | None = None) -> str:
        """`{root}/{layer}/{name}[/h={phash}][/date=YYYY-MM-DD]` -- the one path pattern."""
        parts = [layer, name]
        if phash:
            parts.append(f"h={phash}")
        if date is not None:
            parts.append(f"date={date.isoformat()}")
        return self.path(*parts)

    def landing_path(self, *parts: str) -> str:
        return os.path.join(self.landing, *parts)

    # ---- targets -----------------------------------------------------------------------
    @staticmethod
    def target(path: str) -> luigi.LocalTarget:
        return luigi.LocalTarget(path, format=luigi.format.Nop)

    def file(self, directory: str, filename: str) -> luigi.LocalTarget:
        return self.target(os.path.join(directory, filename))

    def flag(self, directory: str) -> luigi.LocalTarget:
        """The `_SUCCESS` flag of a multi-file output; written last, it alone marks completeness."""
        return self.target(os.path.join(directory, SUCCESS))

    def exists(self, path: str) -> bool:
        return self.target(path).exists()

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            return []

    def remove(self, path: str) -> None:
        target = self.target(path)
        if target.exists():
            target.fs.remove(path, recursive=True)


# ---- reading and writing through targets (atomic: temp name, then rename) -----------------
def write_bytes(target: luigi.target.FileSystemTarget, data: bytes) -> None:
    _ensure_parent(target)
    with target.open("w") as out:
        out.write(data)


def read_bytes(target: luigi.target.FileSystemTarget) -> bytes:
    with target.open("r") as src:
        return src.read()


def write_json(target, obj: Any) -> None:
    write_bytes(target, json.dumps(obj, indent=2, sort_keys=True, default=_json_default).encode())


def read_json(target) -> Any:
    return json.loads(read_bytes(target).decode())


def write_text(target, text: str) -> None:
    write_bytes(target, text.encode())


def write_parquet(target, df: pd.DataFrame) -> None:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    write_bytes(target, buf.getvalue())


def read_parquet(target, columns: list[str] | None = None) -> pd.DataFrame:
    return parquet_from_bytes(read_bytes(target), columns)


def parquet_from_bytes(data: bytes, columns: list[str] | None = None) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data), columns=columns, engine="pyarrow")


def write_flag(target) -> None:
    write_bytes(target, b"")


def _ensure_parent(target) -> None:
    parent = os.path.dirname(target.path)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create directory {parent!r}: {exc.strerror}; check that the storage root "
            "([storage] root in luigi.cfg or MLPIPE_ROOT) is writable") from exc


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
