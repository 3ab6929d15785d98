"""One holder at a time per storage root: a lease record at `{root}/_lease.json` naming who holds
the root (host, pid, user, command line, since when, until when), taken, renewed and released with
conditional writes (pipeline.conditional), so commands on any process or host that change the
root never run at the same time.

A holder renews its lease from a daemon thread every ttl/3; a holder that dies stops renewing and
its lease expires `ttl` seconds after the last renewal, when the next command takes it over. A
command on the holder's own host (and pid namespace) that finds the holder's process gone takes
the lease over at once, without waiting for the expiry.
Expiry compares the `expires` a holder wrote with the reader's clock: the hosts' clocks must agree
to well within the ttl (NTP does)."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from pipeline import conditional, layout
from pipeline import storage as st
from pipeline.hashing import json_bytes
from pipeline.registry import os_user, who

Clock = Callable[[], float]


def describe(holder: dict) -> str:
    """`command` (pid N on HOST, user U): who a lease record names."""
    return (f"`{holder.get('command', '?')}` (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"user {holder.get('user', '?')})")


class LeaseHeld(RuntimeError):
    """Another command holds the storage root; the message names it and what to do."""

    def __init__(self, holder: dict, path: str, waited: float = 0.0):
        self.holder, self.path = holder, path
        waited_text = f" (waited {waited:.0f} s)" if waited >= 1 else ""
        super().__init__(
            f"the storage root is in use{waited_text}: {describe(holder)} holds {path} since "
            f"{holder.get('started', '?')}, renewed until {holder.get('expires', '?')}. Wait for it to finish and "
            "run this again; if that process is gone (check with `ps -p PID` on its host), its lease expires "
            "at that time and the next command takes it over")


def lease_path(store: st.Storage) -> str:
    return store.path(layout.LEASE_FILE)


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="seconds")


def _expiry(now: float, ttl: float) -> str:
    return _iso(math.ceil(now + ttl))  # rounded up: a record keeps whole seconds


def holder_record(command: str, ttl: float, now: float) -> dict:
    """The record of a new holder: this process, `command`, from `now` until `now + ttl`."""
    return {"id": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(), "pid_namespace": _pid_namespace(),
            "user": who(), "os_user": os_user(), "command": command, "started": _iso(now), "renewed": _iso(now),
            "expires": _expiry(now, ttl)}


def _pid_namespace() -> str | None:
    """Which pid namespace this process is in (Linux), so a pid is compared only within its own."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def holder_gone(record: dict) -> bool:
    """Whether the holder named by `record` is a process of this host and pid namespace that no
    longer exists (killed, crashed): then its lease need not be waited out. A holder elsewhere, or
    one whose process cannot be checked, is never taken for gone."""
    namespace = _pid_namespace()
    if record.get("host") != socket.gethostname() or namespace is None or record.get("pid_namespace") != namespace:
        return False
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, TypeError, ValueError):
        return False  # alive under another user, or not a pid: leave it to the expiry
    return False


def expired(record: dict, now: float) -> bool:
    try:
        return dt.datetime.fromisoformat(record["expires"]).timestamp() <= now
    except (KeyError, TypeError, ValueError):
        return True  # not a record a holder wrote whole: nobody can be holding it


def current(store: st.Storage) -> dict | None:
    """The record of the lease as it is stored (expired or not), None when nobody holds it."""
    data, _ = conditional.read_versioned(store, lease_path(store))
    return None if data is None else _parse(data)


def _parse(data: bytes) -> dict:
    try:
        record = json.loads(data)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


class Lease:
    """A held lease: `renew()` extends it, `release()` gives it up. `lost` is the record found
    when a renewal discovered that another holder had taken it over (None while it is ours)."""

    def __init__(self, store: st.Storage, record: dict, token: str, ttl: float, clock: Clock = time.time):
        self.store, self.path, self.record, self.token = store, lease_path(store), record, token
        self.ttl, self.clock = ttl, clock
        self.lost: dict | None = None
        self.renewal_error: Exception | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def renew(self) -> bool:
        """Extend the lease to now + ttl, if it is still ours; else record it as lost."""
        with self._lock:
            if self.lost is not None:
                return False
            now = self.clock()
            record = {**self.record, "renewed": _iso(now), "expires": _expiry(now, self.ttl)}
            token = conditional.write_versioned(self.store, self.path, json_bytes(record), self.token)
            if token is None:
                self.lost = current(self.store) or {}
                return False
            self.record, self.token = record, token
            return True

    def start_renewing(self) -> None:
        """Renew every ttl/3 from a daemon thread until `release()`. A renewal that fails on storage
        errors is retried at the next tick (the error is kept in `renewal_error`)."""
        def loop():
            while not self._stop.wait(self.ttl / 3):
                try:
                    if not self.renew():
                        return
                except Exception as exc:  # noqa: BLE001 - storage down: try again at the next tick
                    self.renewal_error = exc

        self._thread = threading.Thread(target=loop, name="mlpipe-lease-renewal", daemon=True)
        self._thread.start()

    def release(self) -> bool:
        """Stop renewing and remove the lease, only if it is still ours. True when it was removed;
        False too when a renewal is still stuck on the storage after ttl/3 (the lease then expires
        by itself)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl / 3)
            if self._thread.is_alive():
                return False
        with self._lock:
            if self.lost is not None:
                return False
            return conditional.remove_if(self.store, self.path, self.token)


def acquire(store: st.Storage, command: str, ttl: float, clock: Clock = time.time) -> Lease:
    """Take the lease of `store`'s root for `command`: create it when nobody holds it, or take it
    over when its holder let it expire. Raises LeaseHeld naming the holder otherwise."""
    if ttl <= 0:
        raise ValueError(f"a lease needs a positive ttl, not {ttl}")
    path = lease_path(store)
    for _ in range(3):  # the lease changed between reading and writing it: look again
        data, token = conditional.read_versioned(store, path)
        if data is not None and not expired(_parse(data), clock()) and not holder_gone(_parse(data)):
            raise LeaseHeld(_parse(data), path)
        record = holder_record(command, ttl, clock())
        mine = conditional.write_versioned(store, path, json_bytes(record), token)
        if mine is not None:
            return Lease(store, record, mine, ttl, clock)
    raise LeaseHeld(current(store) or {}, path)


def acquire_waiting(store: st.Storage, command: str, ttl: float, wait: float, poll: float = 1.0,
                    clock: Clock = time.time, on_wait: Callable[[LeaseHeld], None] | None = None) -> Lease:
    """`acquire`, trying again every `poll` seconds for up to `wait` seconds while another holds
    it; `on_wait` is called once, with the refusal naming the holder, when the waiting starts."""
    deadline = time.monotonic() + max(wait, 0.0)
    started = time.monotonic()
    while True:
        try:
            return acquire(store, command, ttl, clock)
        except LeaseHeld as held:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LeaseHeld(held.holder, held.path, waited=time.monotonic() - started) from None
            if on_wait is not None:
                on_wait(held)
                on_wait = None
            time.sleep(min(poll, left))


@contextlib.contextmanager
def holding(store: st.Storage, command: str, ttl: float, wait: float, poll: float = 1.0,
            on_wait: Callable[[LeaseHeld], None] | None = None) -> Iterator[Lease]:
    """Hold the lease of `store`'s root while the block runs: wait up to `wait` seconds for it
    (LeaseHeld naming the holder after that; `on_wait` as for acquire_waiting), renew it every
    ttl/3, release it at the end. The block can look at `lease.lost` to learn whether another
    command took it over meanwhile."""
    lease = acquire_waiting(store, command, ttl, wait, poll, on_wait=on_wait)
    lease.start_renewing()
    try:
        yield lease
    finally:
        lease.release()
