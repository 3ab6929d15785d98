"""One contract suite for the storage layer, run against local disk, a real S3 HTTP endpoint
(moto's server, a separate process) and HDFS (the WebHDFS test double, a separate process)."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from pipeline import storage as st
from pipeline import verify
from pipeline.hashing import sha256_bytes

BACKENDS = ["local", "s3", "hdfs"]


@pytest.fixture
def store(request, tmp_path, moto_server, s3_bucket, webhdfs_double):
    from luigi.contrib.hdfs.webhdfs_client import WebHdfsClient
    from luigi.contrib.s3 import S3Client

    kind = request.param
    if kind == "local":
        return st.Storage(str(tmp_path / "root"))
    if kind == "s3":
        client = S3Client(endpoint_url=moto_server.endpoint, region_name="us-east-1")
        return st.Storage(f"s3://{s3_bucket}/prefix", s3_client=client)
    client = WebHdfsClient(host="127.0.0.1", port=webhdfs_double.port, user="test")
    return st.Storage(f"hdfs://127.0.0.1:{webhdfs_double.port}/{tmp_path.name}/root", hdfs_client=client)


pytestmark = pytest.mark.parametrize("store", BACKENDS, indirect=True)


def test_write_then_read_back_bytes(store):
    target = store.file(store.partition("raw", "t", dt.date(2013, 1, 2)), "part-0.bin")
    assert not target.exists()
    st.write_bytes(target, b"\x00\x01payload")
    assert target.exists()
    assert st.read_bytes(store.file(store.partition("raw", "t", dt.date(2013, 1, 2)), "part-0.bin")) == b"\x00\x01payload"


def test_parquet_and_json_round_trip(store):
    frame = pd.DataFrame({"a": [1, 2, None], "b": ["x", None, "z"]}).astype({"a": "Int64", "b": "string"})
    target = store.file(store.path("features"), "part-0.parquet")
    st.write_parquet(target, frame)
    pd.testing.assert_frame_equal(st.read_parquet(target), frame)
    record = store.file(store.path("reports"), "r.json")
    st.write_json(record, {"date": dt.date(2013, 1, 2), "n": 3})
    assert st.read_json(record) == {"date": "2013-01-02", "n": 3}


def test_replace_is_whole(store):
    target = store.file(store.path("x"), "data.bin")
    st.write_bytes(target, b"first version, longer")
    st.write_bytes(target, b"second")
    assert st.read_bytes(target) == b"second"
    assert store.listdir(store.path("x")) == ["data.bin"], "no temporary file is left behind"


def test_write_returns_what_the_store_holds(store):
    target = store.file(store.path("x"), "data.bin")
    assert st.write_bytes(target, b"payload") == {"bytes": 7, "sha256": sha256_bytes(b"payload")}


def test_a_seal_marks_an_output_complete_and_records_its_files(store):
    directory = store.partition("clean", "t", dt.date(2013, 1, 3))
    part, report = store.file(directory, "part-0.parquet"), store.file(store.partition("validation", "t"), "r.json")
    written = {part: st.write_parquet(part, pd.DataFrame({"a": [1]})), report: st.write_json(report, {"n": 1})}
    assert not store.flag(directory).exists(), "files without the seal do not count as complete"
    st.seal(store.flag(directory), written)
    assert store.flag(directory).exists()
    recorded = st.read_seal(store.flag(directory))
    assert recorded == {"part-0.parquet": written[part], "../../../validation/t/r.json": written[report]}
    assert st.file_beside(store.flag(directory), "../../../validation/t/r.json").path == report.path
    assert verify.check_sealed(store, store.flag(directory)) == []


def test_verify_finds_a_changed_file_under_a_seal(store):
    directory = store.partition("features", "t", dt.date(2013, 1, 3))
    part = store.file(directory, "part-0.parquet")
    st.seal(store.flag(directory), {part: st.write_bytes(part, b"the rows")})
    st.write_bytes(part, b"the rowz")  # same size, other content: as a flipped byte
    assert [p["kind"] for p in verify.check_sealed(store, store.flag(directory))] == [verify.CORRUPT]
    store.remove(f"{directory}/part-0.parquet")  # a storage path (an HDFS target's .path has no host)
    assert [p["kind"] for p in verify.check_sealed(store, store.flag(directory))] == [verify.MISSING]


def test_a_replace_never_leaves_the_name_missing(store):
    """A reader polling the name while it is replaced again and again always finds a whole file
    (on HDFS: a rename that overwrites, not remove-then-move)."""
    import threading

    target = store.file(store.path("alias"), "production.json")
    st.write_json(target, {"n": 0})
    seen, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                seen.append(st.read_json(target)["n"])
            except FileNotFoundError:
                seen.append("missing")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(1, 31):
            st.write_json(target, {"n": n})
    finally:
        stop.set()
        reader.join()
    assert "missing" not in seen and seen, seen
    assert st.read_json(target) == {"n": 30}


def test_listing_and_removal(store):
    for day in (1, 2, 3):
        st.write_bytes(store.file(store.partition("raw", "t", dt.date(2013, 1, day)), "part-0.bin"), b"x")
    files = store.list_files(store.partition("raw", "t"))
    assert files == {store.file(store.partition("raw", "t", dt.date(2013, 1, d)), "part-0.bin").path
                     for d in (1, 2, 3)}
    assert store.listdir(store.partition("raw", "t")) == ["date=2013-01-01", "date=2013-01-02", "date=2013-01-03"]
    store.remove(store.partition("raw", "t", dt.date(2013, 1, 2)))
    assert store.listdir(store.partition("raw", "t")) == ["date=2013-01-01", "date=2013-01-03"]
    assert store.list_files(store.path("nothing-here")) == set()


def test_reading_a_missing_file_raises_file_not_found_naming_it(store):
    target = store.file(store.path("missing"), "none.bin")
    with pytest.raises(FileNotFoundError, match="none.bin"):
        st.read_bytes(target)
