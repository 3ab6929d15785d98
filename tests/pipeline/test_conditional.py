"""pipeline.conditional: create-if-absent and compare-and-swap writes on local disk, on a real S3
HTTP endpoint (moto's server) and on HDFS (the WebHDFS test double), alone and raced by threads
and by processes."""
from __future__ import annotations

import json
import multiprocessing
import threading
import time

import pytest

from pipeline import conditional as cw
from pipeline import storage as st

BACKENDS = ["local", "s3", "hdfs"]


def make_store(spec: dict) -> st.Storage:
    """A Storage from a picklable description, so that a spawned process builds its own clients."""
    if spec["kind"] == "s3":
        from luigi.contrib.s3 import S3Client

        return st.Storage(spec["root"], s3_client=S3Client(endpoint_url=spec["endpoint"], region_name="us-east-1",
                                                           aws_access_key_id="testing",
                                                           aws_secret_access_key="testing"))
    if spec["kind"] == "hdfs":
        from luigi.contrib.hdfs.webhdfs_client import WebHdfsClient

        return st.Storage(spec["root"], hdfs_client=WebHdfsClient(host="127.0.0.1", port=spec["port"], user="test"))
    return st.Storage(spec["root"])


@pytest.fixture
def spec(request, tmp_path):
    kind = request.param
    if kind == "local":
        return {"kind": kind, "root": str(tmp_path / "root")}
    if kind == "s3":
        moto, bucket = request.getfixturevalue("moto_server"), request.getfixturevalue("s3_bucket")
        return {"kind": kind, "root": f"s3://{bucket}/prefix", "endpoint": moto.endpoint}
    hdfs = request.getfixturevalue("webhdfs_double")
    return {"kind": kind, "root": f"hdfs://127.0.0.1:{hdfs.port}/{tmp_path.name}/root", "port": hdfs.port}


@pytest.fixture
def store(spec):
    return make_store(spec)


every_backend = pytest.mark.parametrize("spec", BACKENDS, indirect=True)


@every_backend
def test_create_only_if_absent(store):
    path = store.path("registry", "production.json")
    assert cw.read_versioned(store, path) == (None, None)
    assert cw.write_if(store, path, b"first", None) is True
    assert cw.write_if(store, path, b"second", None) is False, "an existing file is never overwritten"
    data, token = cw.read_versioned(store, path)
    assert data == b"first" and token


@every_backend
def test_replace_only_if_unchanged_since_read(store):
    path = store.path("registry", "production.json")
    cw.write_if(store, path, b"v1", None)
    _, seen = cw.read_versioned(store, path)
    assert cw.write_if(store, path, b"v2", seen) is True
    assert cw.write_if(store, path, b"v3 from a stale read", seen) is False
    data, now = cw.read_versioned(store, path)
    assert data == b"v2" and now != seen
    assert cw.write_if(store, path, b"v3", now) is True
    assert cw.read_versioned(store, path)[0] == b"v3"


@every_backend
def test_write_versioned_returns_the_token_a_reader_sees(store):
    path = store.path("x", "record.json")
    token = cw.write_versioned(store, path, b"mine", None)
    assert token == cw.read_versioned(store, path)[1]
    assert cw.write_versioned(store, path, b"again", None) is None


@every_backend
def test_a_token_never_matches_a_missing_file(store):
    path = store.path("x", "record.json")
    cw.write_if(store, path, b"v1", None)
    _, token = cw.read_versioned(store, path)
    store.remove(path)
    assert cw.write_if(store, path, b"v2", token) is False
    assert cw.read_versioned(store, path) == (None, None)


@every_backend
def test_remove_only_if_unchanged(store):
    path = store.path("_lease.json")
    cw.write_if(store, path, b"holder A", None)
    _, a = cw.read_versioned(store, path)
    cw.write_if(store, path, b"holder B", a)
    assert cw.remove_if(store, path, a) is False, "not removed: it is no longer the one read"
    assert cw.read_versioned(store, path)[0] == b"holder B"
    _, b = cw.read_versioned(store, path)
    assert cw.remove_if(store, path, b) is True
    assert cw.read_versioned(store, path) == (None, None)
    assert cw.remove_if(store, path, b) is False


@every_backend
def test_leaves_no_lock_or_temporary_file_visible_under_the_directory(store):
    path = store.path("registry", "production.json")
    cw.write_if(store, path, b"v1", None)
    cw.write_if(store, path, b"v2", cw.read_versioned(store, path)[1])
    names = store.listdir(store.path("registry"))
    assert [n for n in names if not n.startswith(".production.json.lock")] == ["production.json"]


@every_backend
def test_threads_racing_to_create_exactly_one_wins(store):
    for round_ in range(5):
        path = store.path("race", f"r{round_}.json")
        barrier, wins = threading.Barrier(4), []

        def contend(i):
            barrier.wait()
            if cw.write_if(store, path, f"writer {i}".encode(), None):
                wins.append(i)

        threads = [threading.Thread(target=contend, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1, f"round {round_}: winners {wins}"
        assert cw.read_versioned(store, path)[0] == f"writer {wins[0]}".encode()


_barrier = None


def keep_barrier(barrier) -> None:
    """Pool initializer: the barrier every contender waits at before starting."""
    global _barrier
    _barrier = barrier


def increment(spec: dict, path: str, times: int) -> int:
    """Add 1 to the counter at `path` `times` times by compare-and-swap; returns the attempts lost."""
    store, lost = make_store(spec), 0
    _barrier.wait(timeout=60)
    for _ in range(times):
        while True:
            data, token = cw.read_versioned(store, path)
            if cw.write_if(store, path, str(int(data) + 1).encode(), token):
                break
            lost += 1
    return lost


def create_each(spec: dict, paths: list[str], who: int) -> list[bool]:
    """Try to create each of `paths`, all contenders starting each round together."""
    store, won = make_store(spec), []
    for path in paths:
        _barrier.wait(timeout=60)
        won.append(cw.write_if(store, path, f"process {who}".encode(), None))
    return won


@every_backend
def test_processes_racing_lose_no_update_and_only_one_creates(spec, store):
    counter = store.path("race", "counter")
    cw.write_if(store, counter, b"0", None)
    paths = [store.path("race", f"once-{n}.json") for n in range(20)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3, initializer=keep_barrier, initargs=(ctx.Barrier(3),)) as pool:
        created = pool.starmap(create_each, [(spec, paths, i) for i in range(3)])
        lost = pool.starmap(increment, [(spec, counter, 15) for _ in range(3)])
    assert [sum(round_) for round_ in zip(*created)] == [1] * len(paths), "one creator in every round"
    for path, round_ in zip(paths, zip(*created)):
        assert cw.read_versioned(store, path)[0] == f"process {round_.index(True)}".encode()
    assert cw.read_versioned(store, counter)[0] == b"45", "every compare-and-swap increment is kept"
    assert sum(lost) > 0, "the writers did contend"


# ---- HDFS: the mutex file beside the target ------------------------------------------------------
def mutex(store, path: str, created: float) -> None:
    store.target(path).fs.client.write(cw.lock_path(store.target(path).path), overwrite=False,
                                       data=json.dumps({"id": "someone", "created": created}).encode())


@pytest.mark.parametrize("spec", ["hdfs"], indirect=True)
def test_hdfs_a_mutex_left_by_a_dead_writer_is_taken_over_once_stale(store):
    path = store.path("registry", "production.json")
    mutex(store, path, created=time.time() - cw.HDFS_MUTEX_STALE_SECONDS - 1)
    assert cw.write_if(store, path, b"v1", None) is True
    assert store.listdir(store.path("registry")) == ["production.json"], "the stale mutex is gone"


@pytest.mark.parametrize("spec", ["hdfs"], indirect=True)
def test_hdfs_a_held_mutex_makes_the_writer_wait(store, monkeypatch):
    monkeypatch.setattr(cw, "HDFS_MUTEX_STALE_SECONDS", 1.0)
    path = store.path("registry", "production.json")
    mutex(store, path, created=time.time())
    started = time.monotonic()
    assert cw.write_if(store, path, b"v1", None) is True
    assert time.monotonic() - started >= 0.9, "it waited for the mutex holder (here: until it was stale)"
