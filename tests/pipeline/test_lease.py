"""pipeline.lease: one holder at a time per storage root, on a local store (the conditional writes
under it are tested on every backend in test_conditional.py)."""
from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import socket
import threading
import time

import pytest

from pipeline import lease as ls
from pipeline import storage as st
from pipeline.hashing import json_bytes


class Clock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def stored(store) -> dict | None:
    path = ls.lease_path(store)
    return json.load(open(path)) if os.path.exists(path) else None


def test_acquire_writes_a_record_naming_the_holder(storage, monkeypatch):
    monkeypatch.setenv("MLPIPE_USER", "alice")
    clock = Clock()
    held = ls.acquire(storage, "mlpipe run --date 2013-01-06", ttl=120, clock=clock)
    record = stored(storage)
    assert ls.lease_path(storage) == os.path.join(storage.root, "_lease.json")
    assert record == held.record
    assert (record["host"], record["pid"], record["user"], record["command"]) == (
        socket.gethostname(), os.getpid(), "alice", "mlpipe run --date 2013-01-06")
    started, expires = (dt.datetime.fromisoformat(record[k]) for k in ("started", "expires"))
    assert started.timestamp() == clock.now and (expires - started).total_seconds() == 120
    assert ls.current(storage) == record


def test_a_second_acquire_is_refused_naming_the_holder_and_what_to_do(storage):
    clock = Clock()
    held = ls.acquire(storage, "mlpipe run --date 2013-01-06", ttl=120, clock=clock)
    clock.now += 60
    with pytest.raises(ls.LeaseHeld) as refused:
        ls.acquire(storage, "mlpipe invalidate --stage validate --yes", ttl=120, clock=clock)
    r = held.record
    message = str(refused.value)
    assert (f"`mlpipe run --date 2013-01-06` (pid {os.getpid()} on {socket.gethostname()}, user {r['user']}) holds "
            f"{ls.lease_path(storage)} since {r['started']}, renewed until {r['expires']}") in message
    assert "Wait for it to finish and run this again; if that process is gone" in message
    assert refused.value.holder == r
    assert stored(storage) == r, "the refused command wrote nothing"


def test_an_expired_lease_is_taken_over_and_its_old_holder_learns_it_was_lost(storage):
    clock = Clock()
    old = ls.acquire(storage, "mlpipe run --date 2013-01-06", ttl=120, clock=clock)
    clock.now += 121  # the old holder stopped renewing (killed, suspended)
    new = ls.acquire(storage, "mlpipe models promote V", ttl=120, clock=clock)
    assert stored(storage) == new.record
    assert old.renew() is False
    assert old.lost == new.record
    assert old.release() is False
    assert stored(storage) == new.record, "the old holder never removes the new holder's lease"


def test_a_lease_is_not_taken_over_before_it_expires(storage):
    clock = Clock()
    ls.acquire(storage, "mlpipe run --date 2013-01-06", ttl=120, clock=clock)
    clock.now += 119
    with pytest.raises(ls.LeaseHeld):
        ls.acquire(storage, "mlpipe backfill", ttl=120, clock=clock)


def test_renewal_pushes_the_expiry_forward(storage):
    clock = Clock()
    held = ls.acquire(storage, "mlpipe run --date 2013-01-06", ttl=120, clock=clock)
    clock.now += 100
    assert held.renew() is True
    assert dt.datetime.fromisoformat(stored(storage)["expires"]).timestamp() == clock.now + 120
    assert stored(storage)["started"] == held.record["started"]
    clock.now += 100  # 200 s after the start, 100 s after the renewal
    with pytest.raises(ls.LeaseHeld):
        ls.acquire(storage, "mlpipe backfill", ttl=120, clock=clock)


def test_the_renewal_thread_keeps_a_short_lease_alive(storage):
    with ls.holding(storage, "mlpipe run --date 2013-01-06", ttl=1.5, wait=0) as held:
        first = held.record["expires"]
        time.sleep(4)  # more than twice the ttl
        with pytest.raises(ls.LeaseHeld):
            ls.acquire(storage, "mlpipe backfill", ttl=1.5)
        assert held.record["expires"] > first and held.lost is None
    assert stored(storage) is None


def test_release_removes_only_our_own_lease(storage):
    held = ls.acquire(storage, "mlpipe run --date 2013-01-06", ttl=120)
    assert held.release() is True
    assert stored(storage) is None
    assert ls.current(storage) is None
    again = ls.acquire(storage, "mlpipe backfill", ttl=120)
    assert held.release() is False
    assert stored(storage) == again.record


def test_holding_waits_for_the_holder_then_takes_the_lease(storage):
    first = ls.acquire(storage, "mlpipe models promote V", ttl=120)
    threading.Timer(0.5, first.release).start()
    started = time.monotonic()
    with ls.holding(storage, "mlpipe run --date 2013-01-06", ttl=120, wait=10, poll=0.05) as held:
        assert time.monotonic() - started >= 0.4
        assert stored(storage) == held.record
    assert stored(storage) is None


def test_holding_gives_up_after_waiting_and_names_the_holder(storage):
    ls.acquire(storage, "mlpipe run --date 2013-01-06", ttl=120)
    with pytest.raises(ls.LeaseHeld, match=r"in use \(waited 1 s\): `mlpipe run --date 2013-01-06`"):
        with ls.holding(storage, "mlpipe invalidate", ttl=120, wait=1.0, poll=0.1):
            pytest.fail("the block must not run")


def test_an_unreadable_record_does_not_block_the_root_forever(storage):
    st.write_bytes(storage.target(ls.lease_path(storage)), b"{half a reco")
    held = ls.acquire(storage, "mlpipe run --date 2013-01-06", ttl=120)
    assert stored(storage) == held.record


def test_a_ttl_must_be_positive(storage):
    with pytest.raises(ValueError, match="positive ttl"):
        ls.acquire(storage, "mlpipe run", ttl=0)


@pytest.mark.parametrize("kind", ["s3", "hdfs"])
def test_acquire_renew_refuse_and_release_on_remote_storage(kind, request, tmp_path):
    from tests.pipeline.test_conditional import make_store

    if kind == "s3":
        spec = {"kind": kind, "root": f"s3://{request.getfixturevalue('s3_bucket')}/prefix",
                "endpoint": request.getfixturevalue("moto_server").endpoint}
    else:
        port = request.getfixturevalue("webhdfs_double").port
        spec = {"kind": kind, "root": f"hdfs://127.0.0.1:{port}/{tmp_path.name}/root", "port": port}
    store = make_store(spec)
    held = ls.acquire(store, "mlpipe run --date 2013-01-06", ttl=120)
    assert held.renew() is True
    with pytest.raises(ls.LeaseHeld, match="`mlpipe run --date 2013-01-06`"):
        ls.acquire(store, "mlpipe backfill", ttl=120)
    assert ls.current(store) == held.record
    assert held.release() is True
    assert ls.current(store) is None


# ---- processes racing ---------------------------------------------------------------------------------
_barrier = None


def keep_barrier(barrier) -> None:
    """Pool initializer: the barrier every contender waits at before each round."""
    global _barrier
    _barrier = barrier


def try_each(roots: list[str], who: int) -> list[bool]:
    """Try to take the lease of each root once, all contenders starting each round together."""
    won = []
    for root in roots:
        _barrier.wait(timeout=60)
        try:
            ls.acquire(st.Storage(root), f"contender {who}", ttl=60)
            won.append(True)
        except ls.LeaseHeld:
            won.append(False)
    return won


def hold_a_while(root: str, who: int, log: str) -> None:
    store = st.Storage(root)
    _barrier.wait(timeout=60)
    for _ in range(3):
        with ls.holding(store, f"contender {who}", ttl=60, wait=60, poll=0.02):
            with open(log, "a") as out:
                out.write(f"{time.time()} start {who}\n")
            time.sleep(0.1)
            with open(log, "a") as out:
                out.write(f"{time.time()} end {who}\n")


def test_processes_racing_for_the_lease_exactly_one_holds_at_a_time(storage, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    log = str(tmp_path / "holders.log")
    roots = [str(tmp_path / f"root-{n}") for n in range(40)]
    with ctx.Pool(3, initializer=keep_barrier, initargs=(ctx.Barrier(3),)) as pool:
        won = pool.starmap(try_each, [(roots, i) for i in range(3)])
        assert [sum(round_) for round_ in zip(*won)] == [1] * len(roots), "one winner in every round"
        pool.starmap(hold_a_while, [(storage.root, i, log) for i in range(3)])
    events = [line.split() for line in open(log)]
    assert len(events) == 18
    kinds = [kind for _, kind, _ in sorted(events, key=lambda e: float(e[0]))]
    assert kinds == ["start", "end"] * 9, "no two holders at the same time"
    assert stored(storage) is None


def test_a_holder_whose_process_is_gone_is_taken_over_before_its_lease_expires(storage):
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    record = {**ls.holder_record("mlpipe run --date 2013-01-06", 600, time.time()), "pid": gone.pid}
    assert ls.holder_gone(record) and not ls.holder_gone({**record, "pid": os.getpid()})
    assert not ls.holder_gone({**record, "host": "etl-2"}), "a process elsewhere cannot be checked"
    assert not ls.holder_gone({**record, "pid_namespace": "pid:[1]"}), "nor one of another pid namespace"
    st.write_bytes(storage.target(ls.lease_path(storage)), json_bytes(record))
    taken = ls.acquire(storage, "mlpipe backfill", ttl=120)
    assert taken.record["pid"] == os.getpid()
