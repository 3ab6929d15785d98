"""Checksums, short stable hashes of parameters, and the project's JSON encoding: helpers every
layer uses, free of luigi and of any storage backend."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def param_hash(**params: Any) -> str:
    """Short stable hash of parameters, used in output paths so a changed parameter yields new outputs."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default).encode()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
