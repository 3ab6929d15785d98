"""What reaches an S3 store is what the pipeline wrote, or the write fails: uploads through a proxy
process (tests/corrupting_proxy.py) that damages them on the way to moto's server fail with a
message naming the endpoint, the object and the [s3] setting to check, and leave no object behind;
a nightly run through it leaves nothing corrupt that counts as complete, and once the store is
healthy again a rerun produces the very bytes of a run that never met a faulty store."""
from __future__ import annotations

import datetime as dt
import json
import posixpath
import re
import urllib.error

import botocore.config
import luigi
import pandas as pd
import pytest
from luigi.contrib.s3 import S3Client
from luigi.execution_summary import LuigiStatusCode
from luigi.task import flatten

from pipeline import layout
from pipeline import storage as st
from tests.conftest import SMALL, failures
from tests.corrupting_proxy import ProxyProcess

D = dt.date
DAMAGING = ["flip", "truncate", "frame"]
SETTING = "[s3] request_checksum_calculation"
PAYLOAD = bytes(range(256)) * 64
FRAME = pd.DataFrame({"id": [1, 2, 3], "name": ["a", None, "c"], "value": [0.5, 1.5, None]})
RECORD = {"date": "2013-01-02", "rows": 3, "ok": True}
WRITERS = {
    "write_bytes": (lambda target: st.write_bytes(target, PAYLOAD), st.read_bytes, PAYLOAD),
    "write_parquet": (lambda target: st.write_parquet(target, FRAME), st.read_parquet, FRAME),
    "write_json": (lambda target: st.write_json(target, RECORD), st.read_json, RECORD),
}


@pytest.fixture(scope="module")
def proxy_server(moto_server):
    """The corrupting proxy as a separate process in front of the session's moto server."""
    server = ProxyProcess(moto_server.endpoint).start()
    yield server
    server.stop()


@pytest.fixture
def proxy(proxy_server):
    """The proxy, back in `pass` mode after the test."""
    proxy_server.set_mode("pass")
    yield proxy_server
    proxy_server.set_mode("pass")


def store_client(endpoint: str) -> S3Client:
    return S3Client(endpoint_url=endpoint, region_name="us-east-1",
                    config=botocore.config.Config(retries={"max_attempts": 1}))


def stored_keys(moto_server, bucket: str, prefix: str = "") -> list[str]:
    """The keys moto holds under `prefix`, asked of moto directly (not through the proxy)."""
    pages = moto_server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


# ---- the proxy itself -----------------------------------------------------------------------
def test_the_proxy_stores_what_each_mode_describes(proxy, moto_server, s3_bucket):
    import boto3

    through = boto3.client("s3", endpoint_url=proxy.endpoint, region_name="us-east-1")
    direct = boto3.client("s3", endpoint_url=moto_server.endpoint, region_name="us-east-1",
                          config=botocore.config.Config(response_checksum_validation="when_required"))
    held, damaged = {}, proxy.status()["damaged"]
    for mode in ("pass", *DAMAGING):
        assert proxy.set_mode(mode)["mode"] == mode
        through.put_object(Bucket=s3_bucket, Key=mode, Body=PAYLOAD)
        held[mode] = direct.get_object(Bucket=s3_bucket, Key=mode)["Body"].read()
    middle = len(PAYLOAD) // 2
    assert held["pass"] == PAYLOAD
    assert [i for i, (a, b) in enumerate(zip(held["flip"], PAYLOAD)) if a != b] == [middle]
    assert held["truncate"] == PAYLOAD[:middle]
    assert re.fullmatch(rb"%x\r\n(.*)\r\n0\r\nx-amz-checksum-crc32:\S+\r\n\r\n" % len(PAYLOAD),
                        held["frame"], re.S).group(1) == PAYLOAD
    assert proxy.status() == {"mode": "frame", "damaged": damaged + 3}
    with pytest.raises(urllib.error.HTTPError, match="400"):
        proxy.set_mode("sometimes")


# ---- one write ------------------------------------------------------------------------------
@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("mode", DAMAGING)
def test_an_upload_damaged_on_the_way_fails_and_leaves_no_object(proxy, moto_server, s3_bucket, mode, writer):
    store = st.Storage(f"s3://{s3_bucket}/root", s3_client=store_client(proxy.endpoint))
    target = store.file(store.partition("raw", "t", D(2013, 1, 2)), "part-0.bin")
    proxy.set_mode(mode)
    damaged = proxy.status()["damaged"]
    with pytest.raises(st.StorageError) as failure:
        WRITERS[writer][0](target)
    assert proxy.status()["damaged"] == damaged + 1, "the proxy damaged the upload"
    message = str(failure.value)
    assert f"S3 endpoint {proxy.endpoint} " in message
    assert target.path in message
    assert SETTING in message and "when_required" in message
    assert stored_keys(moto_server, s3_bucket) == [], "nothing corrupt stays under the name"
    proxy.set_mode("pass")
    assert not target.exists()


@pytest.mark.parametrize("mode", DAMAGING)
def test_a_damaged_conditional_write_fails_too(proxy, moto_server, s3_bucket, mode):
    """The production alias and the lease move by conditional PUTs: they are checked the same way."""
    from pipeline import conditional

    store = st.Storage(f"s3://{s3_bucket}/root", s3_client=store_client(proxy.endpoint))
    path = store.path("registry", mode, "production.json")  # the parameters share a bucket
    proxy.set_mode(mode)
    with pytest.raises(st.StorageError, match=re.escape(SETTING)):
        conditional.write_if(store, path, b'{"version": "v1"}', None)
    assert stored_keys(moto_server, s3_bucket, f"root/registry/{mode}/") == [], "nothing corrupt stays under the name"
    proxy.set_mode("pass")
    assert conditional.write_if(store, path, b'{"version": "v1"}', None)
    assert conditional.read_versioned(store, path)[0] == b'{"version": "v1"}'


@pytest.mark.parametrize("mode", DAMAGING)
def test_a_damaged_rewrite_does_not_leave_corrupt_bytes_under_the_name(proxy, moto_server, s3_bucket, mode):
    store = st.Storage(f"s3://{s3_bucket}/root", s3_client=store_client(proxy.endpoint))
    target = store.file(store.path("x"), "data.bin")
    st.write_bytes(target, b"the first version")
    proxy.set_mode(mode)
    with pytest.raises(st.StorageError, match=re.escape(SETTING)):
        st.write_bytes(target, PAYLOAD)
    assert stored_keys(moto_server, s3_bucket) == []


@pytest.mark.parametrize("writer", WRITERS)
def test_an_upload_through_a_healthy_proxy_is_written_and_reads_back_equal(proxy, moto_server, s3_bucket, writer):
    store = st.Storage(f"s3://{s3_bucket}/root", s3_client=store_client(proxy.endpoint))
    target = store.file(store.path("out"), "file")
    write, read, expected = WRITERS[writer]
    damaged = proxy.status()["damaged"]
    info = write(target)
    stored = moto_server.client().get_object(Bucket=s3_bucket, Key="root/out/file")["Body"].read()
    assert info == st.file_info(stored)
    back = read(target)
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(back, expected)
    else:
        assert back == expected
    assert proxy.status()["damaged"] == damaged


# ---- the [s3] checksum settings -------------------------------------------------------------
def test_checksum_settings_in_luigi_cfg_reach_botocore(luigi_config, proxy, s3_bucket):
    luigi_config({"s3": {"endpoint_url": proxy.endpoint, "region_name": "us-east-1",
                         "request_checksum_calculation": "when_required",
                         "response_checksum_validation": "when_required"}})
    client = st.s3_client_from_config()
    config = client.s3.meta.client.meta.config
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"

    sent = []
    client.s3.meta.client.meta.events.register("before-send.s3", lambda request, **_: sent.append(request))
    store = st.Storage(f"s3://{s3_bucket}/root", s3_client=client)
    st.write_bytes(store.file(store.path("x"), "a.bin"), PAYLOAD)
    (put,) = [r for r in sent if r.method == "PUT"]
    headers = {k.lower() for k in put.headers}
    assert "content-md5" in headers
    assert not [h for h in headers if h.startswith("x-amz-checksum-")], "no CRC checksum sent: when_required"


def test_without_the_settings_botocore_keeps_its_defaults(luigi_config, proxy):
    luigi_config({"s3": {"endpoint_url": proxy.endpoint, "region_name": "us-east-1"}})
    config = st.s3_client_from_config().s3.meta.client.meta.config
    assert config.request_checksum_calculation == "when_supported"
    assert config.response_checksum_validation == "when_supported"


@pytest.mark.parametrize("name", st.S3_CHECKSUM_SETTINGS)
def test_a_bad_checksum_setting_is_refused_naming_it(luigi_config, name, s3_bucket):
    luigi_config({"s3": {name: "sometimes"}})
    with pytest.raises(st.StorageError, match=rf"\[s3\] {name} = 'sometimes' in luigi.cfg .*when_required"):
        st.s3_client_from_config()
    with pytest.raises(st.StorageError, match=rf"\[s3\] {name}"):
        st.write_bytes(st.Storage(f"s3://{s3_bucket}/root").file(f"s3://{s3_bucket}/root", "a.bin"), b"x")


# ---- a nightly run through a store that keeps the aws-chunked framing -----------------------
DAY = D(2013, 1, 4)  # before SMALL's first deploy date: the data stages (ingest, validate, features)
EARLIER = D(2013, 1, 2)
EXCLUDED = ("runs/",)  # run summaries: when and how long a run took, not what it produced


def nightly(luigi_config, monkeypatch, root: str, endpoint: str, day: dt.date):
    """NightlyPipeline(day) with the storage root `root` on the S3 endpoint `endpoint`, not yet run."""
    from tasks import NightlyPipeline

    monkeypatch.setenv("MLPIPE_ROOT", root)
    luigi_config({"s3": {"endpoint_url": endpoint, "region_name": "us-east-1"}})
    return NightlyPipeline(date=day)


def run(task):
    return luigi.build([task], local_scheduler=True, detailed_summary=True, workers=1)


def every_task(task) -> dict:
    """The task and everything it requires, transitively, by task id."""
    found, todo = {}, [task]
    while todo:
        current = todo.pop()
        if current.task_id not in found:
            found[current.task_id] = current
            todo.extend(flatten(current.requires()))
    return found


def stored_files(moto_server, bucket: str, prefix: str) -> dict[str, bytes]:
    """{path below prefix: bytes} of every object moto holds under `prefix`, runs/ excluded."""
    s3 = moto_server.client()
    return {key[len(prefix):]: s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            for key in stored_keys(moto_server, bucket, prefix) if not key[len(prefix):].startswith(EXCLUDED)}


def bad_seals(files: dict[str, bytes]) -> list[str]:
    """Every problem with the `_SUCCESS` seals among `files`: a listed file missing or differing
    from its recorded size and sha256."""
    problems = []
    for name, data in files.items():
        if name.rsplit("/", 1)[-1] != layout.SUCCESS or not data.strip():
            continue
        for relative, info in json.loads(data)["files"].items():
            path = posixpath.normpath(posixpath.join(posixpath.dirname(name), relative))
            if path not in files:
                problems.append(f"{name} lists {relative}, which does not exist")
            elif st.file_info(files[path]) != info:
                problems.append(f"{name} lists {relative} as {info}, it holds {st.file_info(files[path])}")
    return problems


@pytest.mark.slow
def test_a_run_through_a_store_that_keeps_the_framing_fails_and_a_rerun_matches_a_clean_run(
        proxy, moto_server, s3_bucket, monkeypatch, luigi_config):
    from pipeline.flights.landing import land_demo

    luigi_config(SMALL)
    landing = f"s3://{s3_bucket}/landing"
    monkeypatch.setenv("MLPIPE_LANDING", landing)
    land_demo(landing, D(2013, 1, 1), DAY, store=st.Storage(landing, s3_client=store_client(moto_server.endpoint)))

    # the reference: the same runs, talking to the store directly
    for day in (EARLIER, DAY):
        result = run(nightly(luigi_config, monkeypatch, f"s3://{s3_bucket}/reference", moto_server.endpoint, day))
        assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    reference = stored_files(moto_server, s3_bucket, "reference/")

    # through the proxy: an earlier day while the store is healthy, then the day while it keeps the framing
    root = f"s3://{s3_bucket}/faulty"
    result = run(nightly(luigi_config, monkeypatch, root, proxy.endpoint, EARLIER))
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    task = nightly(luigi_config, monkeypatch, root, proxy.endpoint, DAY)
    complete_before = {tid for tid, t in every_task(task).items() if t.complete()}
    assert task.task_id not in complete_before
    proxy.set_mode("frame")
    damaged = proxy.status()["damaged"]
    with failures() as failed:
        result = run(task)
    assert result.status == LuigiStatusCode.FAILED, result.summary_text
    assert proxy.status()["damaged"] > damaged, "the proxy framed the run's uploads"
    proxy.set_mode("pass")

    # nothing of the failed run counts as complete, and nothing it left is corrupt
    assert {tid for tid, t in every_task(task).items() if t.complete()} == complete_before, \
        "no task counts as complete after a run whose every upload was stored framed"
    left = stored_files(moto_server, s3_bucket, "faulty/")
    assert bad_seals(left) == []
    assert sorted(name for name, data in left.items() if reference.get(name) != data) == [], \
        "every object the failed run left is one a clean run writes too"

    # ...and each failed task says which endpoint, which object and which setting
    assert failed, "some task failed"
    assert not {t.task_id for t, _ in failed} & complete_before
    for failed_task, exc in failed:
        message = str(exc)
        assert isinstance(exc, st.StorageError), (failed_task, message)
        assert f"S3 endpoint {proxy.endpoint} " in message and SETTING in message, message
        named = re.search(rf"{re.escape(root)}/\S+", message)
        assert named, f"{failed_task} names no object under {root}: {message}"
        assert named.group(0).split("/", 3)[3] not in stored_keys(moto_server, s3_bucket), \
            "the corrupt object was removed"

    # the store is healthy again: the rerun completes the day, with the bytes of the clean run
    result = run(task)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    assert all(t.complete() for t in every_task(task).values())
    rerun = stored_files(moto_server, s3_bucket, "faulty/")
    assert sorted(rerun) == sorted(reference)
    assert [name for name in reference if rerun[name] != reference[name]] == []
    assert bad_seals(rerun) == []
