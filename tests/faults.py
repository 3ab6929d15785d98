"""Fault injection for the pipeline processes that tests/test_crashes.py starts: a wrapper around
`pipeline.storage.write_bytes` (through which every output of every task is written) that logs each
write and can SIGKILL the process, or pause it, at a chosen one. It is loaded only by
tests/fault_site/sitecustomize.py, i.e. only in processes started with tests/fault_site on
PYTHONPATH and MLPIPE_FAULT_LOG set; production code is untouched.

Environment of the child process:

- MLPIPE_FAULT_LOG: JSON-lines file; one line per event: {"event": "write"|"kill"|"pause",
  "path": path relative to MLPIPE_ROOT, "pid": ..., "action": ...} ("write" once a write is complete).
- MLPIPE_FAULT_AT: fnmatch pattern on that relative path; the fault fires at the first matching
  write of the run, and only there (a file next to the log records that it fired, so a task that
  luigi retries in another process runs undisturbed).
- MLPIPE_FAULT_ACTION:
  - "partial": the write goes through luigi's own atomic writer (a temporary file next to the
    final name) and the process is killed with SIGKILL after half the bytes, before the rename;
  - "after": the write completes, then SIGKILL (whatever the task writes next is never written);
  - "pause": create MLPIPE_FAULT_PAUSE + ".paused", wait until MLPIPE_FAULT_PAUSE + ".resume"
    exists, then write as usual.
"""
from __future__ import annotations

import fnmatch
import importlib.abc
import importlib.machinery
import json
import os
import signal
import sys
import time

TMP_MARK = "-luigi-tmp-"  # luigi's LocalTarget writes to f"{path}-luigi-tmp-{9 digits}", then renames


def _relative(path: str) -> str:
    root = os.environ.get("MLPIPE_ROOT", "").rstrip("/")
    return path[len(root) + 1:] if root and path.startswith(root + "/") else path


def _log(event: str, path: str, **extra) -> None:
    line = json.dumps({"event": event, "path": path, "pid": os.getpid(), "time": time.time(), **extra})
    with open(os.environ["MLPIPE_FAULT_LOG"], "a") as out:
        out.write(line + "\n")  # flushed on close: a SIGKILL does not lose what the kernel has


def wrap(write_bytes):
    """`write_bytes` with logging and the configured fault."""
    pattern = os.environ.get("MLPIPE_FAULT_AT")
    action = os.environ.get("MLPIPE_FAULT_ACTION", "partial")

    def faulty_write_bytes(target, data: bytes) -> None:
        path = _relative(target.path)
        fire = bool(pattern) and fnmatch.fnmatch(path, pattern) and _claim()
        if fire and action == "partial":
            _ensure_parent(target.path)
            out = target.open("w")  # luigi's AtomicLocalFile: a temporary name in the same directory
            out.write(data[: len(data) // 2])
            out.flush()
            _log("kill", path, action=action, size=len(data), tmp=_relative(out.tmp_path))
            os.kill(os.getpid(), signal.SIGKILL)
        if fire and action == "pause":
            marker = os.environ["MLPIPE_FAULT_PAUSE"]
            _log("pause", path, action=action)
            open(marker + ".paused", "w").close()
            while not os.path.exists(marker + ".resume"):
                time.sleep(0.05)
        write_bytes(target, data)
        _log("write", path, size=len(data))
        if fire and action == "after":
            _log("kill", path, action=action, size=len(data))
            os.kill(os.getpid(), signal.SIGKILL)

    return faulty_write_bytes


def _claim() -> bool:
    """True for the first caller of a run only, whichever process of it (luigi forks one per task
    with --workers > 1)."""
    try:
        os.close(os.open(os.environ["MLPIPE_FAULT_LOG"] + ".fired", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def _ensure_parent(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)


class _PatchStorageOnImport(importlib.abc.MetaPathFinder):
    """Wraps pipeline.storage.write_bytes right after the module is first imported, so nothing is
    imported early and processes that never import it are unaffected."""

    def find_spec(self, name, path=None, target=None):
        if name != "pipeline.storage":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module):
            original_exec(module)
            module.write_bytes = wrap(module.write_bytes)

        loader.exec_module = exec_module
        return spec


def install() -> None:
    if "pipeline.storage" in sys.modules:
        module = sys.modules["pipeline.storage"]
        module.write_bytes = wrap(module.write_bytes)
    else:
        sys.meta_path.insert(0, _PatchStorageOnImport())


def read_log(path) -> list[dict]:
    """The events a child process logged (empty when it wrote nothing)."""
    try:
        with open(path) as src:
            return [json.loads(line) for line in src if line.strip()]
    except FileNotFoundError:
        return []
