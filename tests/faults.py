"""Fault injection for the pipeline processes that tests/test_crashes.py starts: a wrapper around
`pipeline.storage.write_bytes` (through which every output of every task, every seal and the root's
lease are written) that logs each write and can SIGKILL the process, or pause it, at a chosen one;
and, for the kills inside the local writer, a stand-in for the `os` module pipeline.storage calls,
whose fsync and replace can SIGKILL the process at that step of the chosen write. It is loaded only
by tests/fault_site/sitecustomize.py, i.e. only in processes started with tests/fault_site on
PYTHONPATH and MLPIPE_FAULT_LOG set; production code is untouched.

Environment of the child process:

- MLPIPE_FAULT_LOG: JSON-lines file; one line per event: {"event": "write"|"kill"|"pause",
  "path": path relative to MLPIPE_ROOT, "pid": ..., "action": ...} ("write" once a write is
  complete; a "kill" also has the write's "size" and, when the kill leaves one, "tmp": the
  temporary file, relative to MLPIPE_ROOT).
- MLPIPE_FAULT_AT: fnmatch pattern on that relative path; the fault fires at the first matching
  write of the run, and only there (a file next to the log records that it fired, so a task that
  luigi retries in another process runs undisturbed).
- MLPIPE_FAULT_ACTION, in the order of the steps of a local write (pipeline.storage._local_write:
  a hidden temporary file `_temp_name(path)`, fsync, rename to the final name, fsync of the
  directory):
  - "partial": half the bytes written to the hidden temporary name of the writer
    (`pipeline.storage._temp_name`), then SIGKILL: a write interrupted while the data goes out;
  - "unsynced": the writer's temporary file holds every byte, SIGKILL just before its fsync;
  - "unrenamed": the temporary file is written and fsynced, SIGKILL just before the rename;
  - "unsealed": for a `_SUCCESS` seal only (a pattern matching other files never fires): every
    file of the output is written and the seal's sweep of temporary files is done, SIGKILL when
    the seal's own write starts, before any byte of it is written;
  - "after": the write completes, then SIGKILL (whatever the task writes next is never written);
  - "pause": create MLPIPE_FAULT_PAUSE + ".paused", wait until MLPIPE_FAULT_PAUSE + ".resume"
    exists, then write as usual.
  "unsynced" and "unrenamed" need the local writer (they fire from its os.fsync / os.replace);
  on S3 or HDFS they never fire.

A process writes from more than one thread (the lease renewal thread of pipeline.lease beside
the task), so the writes of one process go one at a time here: a kill then interrupts the chosen
write and no other."""
from __future__ import annotations

import fnmatch
import importlib.abc
import importlib.machinery
import json
import os
import signal
import sys
import threading
import time

SUCCESS = "_SUCCESS"  # pipeline.layout.SUCCESS, not imported: this module loads before the pipeline's
ACTIONS = ("partial", "unsynced", "unrenamed", "unsealed", "after", "pause")
_INSIDE_WRITER = ("unsynced", "unrenamed")  # fired by _OsWithFaults from within the real write

_armed = threading.local()  # .write: the chosen write, while the real writer runs it in this thread
_writing = threading.Lock()


def _new_lock_in_child() -> None:
    global _writing
    _writing = threading.Lock()  # a fork while another thread held it would leave the child's copy held


os.register_at_fork(after_in_child=_new_lock_in_child)


def _relative(path: str) -> str:
    root = os.environ.get("MLPIPE_ROOT", "").rstrip("/")
    return path[len(root) + 1:] if root and path.startswith(root + "/") else path


def _log(event: str, path: str, **extra) -> None:
    line = json.dumps({"event": event, "path": path, "pid": os.getpid(), "time": time.time(), **extra})
    with open(os.environ["MLPIPE_FAULT_LOG"], "a") as out:
        out.write(line + "\n")  # flushed on close: a SIGKILL does not lose what the kernel has


def _kill(path: str, action: str, size: int, tmp: str | None = None) -> None:
    _log("kill", path, action=action, size=size, **({"tmp": _relative(tmp)} if tmp else {}))
    os.kill(os.getpid(), signal.SIGKILL)


def wrap(storage):
    """`storage.write_bytes` (of the module pipeline.storage) with logging and the configured fault."""
    write_bytes = storage.write_bytes
    pattern = os.environ.get("MLPIPE_FAULT_AT")
    action = os.environ.get("MLPIPE_FAULT_ACTION", "partial")
    if pattern and action not in ACTIONS:
        raise ValueError(f"MLPIPE_FAULT_ACTION={action!r} is not one of {ACTIONS}")

    def chosen(path: str) -> bool:
        if not pattern or not fnmatch.fnmatch(path, pattern):
            return False
        if action == "unsealed" and path.rsplit("/", 1)[-1] != SUCCESS:
            return False
        return _claim()

    def faulty_write_bytes(target, data: bytes) -> dict:
        path = _relative(target.path)
        fire = chosen(path)
        if fire and action == "pause":
            marker = os.environ["MLPIPE_FAULT_PAUSE"]
            _log("pause", path, action=action)
            open(marker + ".paused", "w").close()
            while not os.path.exists(marker + ".resume"):
                time.sleep(0.05)
        with _writing:
            if fire and action == "unsealed":
                _kill(path, action, len(data))
            if fire and action == "partial":
                tmp = storage._temp_name(target.path)  # the writer's own hidden name, beside the final one
                os.makedirs(os.path.dirname(tmp), exist_ok=True)
                with open(tmp, "xb") as out:
                    out.write(data[: len(data) // 2])
                _kill(path, action, len(data), tmp)
            if fire and action in _INSIDE_WRITER:
                _armed.write = {"path": path, "action": action, "size": len(data), "created": {}}
            try:
                info = write_bytes(target, data)
            finally:
                _armed.write = None
            _log("write", path, size=len(data))
            if fire and action == "after":
                _kill(path, action, len(data))
        return info

    return faulty_write_bytes


class _OsWithFaults:
    """pipeline.storage's `os`: the real module, except that during the chosen write (armed by
    faulty_write_bytes in the writing thread) fsync of the file it created ("unsynced") or the
    rename ("unrenamed") SIGKILLs the process before the call."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def open(self, path, flags, *args, **kwargs):
        fd = self._real.open(path, flags, *args, **kwargs)
        write = getattr(_armed, "write", None)
        if write and flags & self._real.O_CREAT:
            write["created"][fd] = os.fspath(path)
        return fd

    def close(self, fd):
        write = getattr(_armed, "write", None)
        if write:
            write["created"].pop(fd, None)
        return self._real.close(fd)

    def fsync(self, fd):
        write = getattr(_armed, "write", None)
        if write and write["action"] == "unsynced" and fd in write["created"]:
            _kill(write["path"], write["action"], write["size"], write["created"][fd])
        return self._real.fsync(fd)

    def replace(self, src, dst, *args, **kwargs):
        write = getattr(_armed, "write", None)
        if write and write["action"] == "unrenamed":
            _kill(write["path"], write["action"], write["size"], os.fspath(src))
        return self._real.replace(src, dst, *args, **kwargs)


def _claim() -> bool:
    """True for the first caller of a run only, whichever process of it (luigi forks one per task
    with --workers > 1)."""
    try:
        os.close(os.open(os.environ["MLPIPE_FAULT_LOG"] + ".fired", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def _patch(module) -> None:
    module.write_bytes = wrap(module)
    if os.environ.get("MLPIPE_FAULT_AT") and os.environ.get("MLPIPE_FAULT_ACTION") in _INSIDE_WRITER:
        module.os = _OsWithFaults(module.os)


class _PatchStorageOnImport(importlib.abc.MetaPathFinder):
    """Patches pipeline.storage right after the module is first imported, so nothing is imported
    early and processes that never import it are unaffected."""

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
            _patch(module)

        loader.exec_module = exec_module
        return spec


def install() -> None:
    if "pipeline.storage" in sys.modules:
        _patch(sys.modules["pipeline.storage"])
    else:
        sys.meta_path.insert(0, _PatchStorageOnImport())


def read_log(path) -> list[dict]:
    """The events a child process logged (empty when it wrote nothing)."""
    try:
        with open(path) as src:
            return [json.loads(line) for line in src if line.strip()]
    except FileNotFoundError:
        return []
