"""When a landing file counts as delivered: the three readiness rules decided without luigi, with
the reason a user reads; the description settings that choose them and the errors a bad one gets;
and the thin reader of file metadata on local disk, S3 and HDFS."""
from __future__ import annotations

import datetime as dt
import json
import os
import time

import pytest

from pipeline import description
from pipeline import readiness as rd
from pipeline import storage as st
from pipeline.hashing import sha256_bytes
from tests.pipeline.test_description import VALID, write_description

NAME = "flights/flights_2013-01-05.csv"
NOW = 1_700_000_000.0
STABLE = rd.ReadinessRule(table="flights")
MARKER = rd.ReadinessRule(table="flights", ready="marker")
MANIFEST = rd.ReadinessRule(table="flights", ready="manifest")


def state(size: int = 100, age: float = 0.0) -> rd.FileState:
    return rd.FileState(size=size, modified=NOW - age)


def never_hashed() -> str:
    raise AssertionError("the file must not be read when its size already differs from the manifest's")


# ---- the stable rule (the default) ----------------------------------------------------------------
def test_a_description_that_says_nothing_waits_for_60_unchanged_seconds():
    rule = rd.parse_rule("flights", {"landing": "flights/flights_{date}.csv"})
    assert rule == STABLE and (rule.ready, rule.stable_seconds) == ("stable", 60)
    assert rule.companion(NAME) is None


def test_stable_a_file_modified_recently_is_not_ready_with_the_reason():
    result = rd.decide(STABLE, NAME, state(age=3), now=NOW)
    assert not result.ready
    assert result.reason == ('flights/flights_2013-01-05.csv was modified 3 s ago; [tables.flights] ready = '
                             '"stable" waits until it is unchanged for 60 s')
    assert not rd.decide(STABLE, NAME, state(age=59.9), now=NOW).ready
    assert rd.decide(STABLE, NAME, state(age=60), now=NOW).ready
    assert rd.decide(STABLE, NAME, state(age=3600), now=NOW).reason == f"{NAME} has been unchanged for 3600 s"


def test_stable_seconds_and_clocks():
    quick = rd.ReadinessRule(table="t", stable_seconds=2)
    assert "was modified 0.5 s ago; [tables.t] ready = \"stable\" waits until it is unchanged for 2 s" in rd.decide(
        quick, NAME, state(age=0.5), now=NOW).reason
    assert rd.decide(quick, NAME, state(age=2.5), now=NOW).ready
    future = rd.decide(quick, NAME, state(age=-30), now=NOW)
    assert not future.ready and "modification time 30 s in the future (check the clocks" in future.reason
    assert rd.decide(rd.ReadinessRule(table="t", stable_seconds=0), NAME, state(age=-30), now=NOW).ready


def test_a_file_that_is_not_there_is_not_ready_by_any_rule():
    for rule in (STABLE, MARKER, MANIFEST):
        result = rd.decide(rule, NAME, None, now=NOW)
        assert not result.ready and result.reason == f"{NAME} has not arrived"


# ---- the marker rule -----------------------------------------------------------------------------
def test_marker_names_and_where_they_are():
    assert MARKER.companion(NAME) == "flights/flights_2013-01-05.csv.done"
    assert MARKER.companion("s3://bucket/landing/x.csv") == "s3://bucket/landing/x.csv.done"
    assert rd.ReadinessRule(table="t", ready="marker", marker="_SUCCESS").companion("r/2024/03/01/r.parquet") == \
        "r/2024/03/01/_SUCCESS"
    assert MANIFEST.companion(NAME) == "flights/flights_2013-01-05.csv.manifest.json"


def test_marker_the_file_is_delivered_once_its_marker_is_written_after_it():
    marker = MARKER.companion(NAME)
    waiting = rd.decide(MARKER, NAME, state(age=5), now=NOW, companion_name=marker, companion=None)
    assert not waiting.ready
    assert waiting.reason == (f"{NAME} has no done-marker {marker} yet; [tables.flights] ready = \"marker\" counts it "
                              "as delivered once the upstream system writes the done-marker after the file")
    assert rd.decide(MARKER, NAME, state(age=5), now=NOW, companion_name=marker, companion=state(0, age=4)).ready
    assert rd.decide(MARKER, NAME, state(age=5), now=NOW, companion_name=marker, companion=state(0, age=5)).ready
    # the file written again after its marker (a re-delivery in progress): the old marker does not count
    stale = rd.decide(MARKER, NAME, state(age=1), now=NOW, companion_name=marker, companion=state(0, age=10))
    assert not stale.ready and f"{NAME} was written again 9 s after its done-marker {marker}" in stale.reason


# ---- the manifest rule ---------------------------------------------------------------------------
def test_manifest_the_file_must_match_its_size_then_its_sha256():
    data = b"year,month\n2013,1\n"
    manifest = rd.companion_content(MANIFEST, data)
    assert json.loads(manifest) == {"bytes": len(data), "sha256": sha256_bytes(data)}
    where = MANIFEST.companion(NAME)
    kwargs = dict(now=NOW, companion_name=where, companion=state(len(manifest)), manifest=manifest)

    assert rd.decide(MANIFEST, NAME, state(len(data)), sha256=lambda: sha256_bytes(data), **kwargs).ready
    cut = rd.decide(MANIFEST, NAME, state(7), sha256=never_hashed, **kwargs)
    assert not cut.ready
    assert cut.reason == (f"{NAME} has 7 bytes and its manifest {where} says {len(data)}; [tables.flights] ready = "
                          "\"manifest\" waits until the file matches its manifest")
    other = b"year,month\n2013,2\n"
    wrong = rd.decide(MANIFEST, NAME, state(len(other)), sha256=lambda: sha256_bytes(other), **kwargs)
    assert not wrong.ready
    assert (f"has sha256 {sha256_bytes(other)[:12]} and its manifest {where} says {sha256_bytes(data)[:12]}"
            in wrong.reason)


def test_manifest_missing_or_malformed_is_not_ready():
    where = MANIFEST.companion(NAME)
    missing = rd.decide(MANIFEST, NAME, state(), now=NOW, companion_name=where, companion=None)
    assert not missing.ready and f"has no manifest {where} yet" in missing.reason
    for content in (b"not json", b"[1, 2]", b'{"bytes": "100", "sha256": "' + b"0" * 64 + b'"}',
                    b'{"bytes": 100, "sha256": "abc"}'):
        bad = rd.decide(MANIFEST, NAME, state(), now=NOW, companion_name=where, companion=state(len(content)),
                        manifest=content, sha256=never_hashed)
        assert not bad.ready
        assert f'the manifest {where} of {NAME} is not JSON of the form {{"bytes": N, "sha256": ' in bad.reason
    assert rd.companion_content(STABLE, b"x") is None and rd.companion_content(MARKER, b"x") == b""


# ---- the settings in a description, and the errors a bad one gets ----------------------------------
def describe(tmp_path, settings: str) -> str:
    return write_description(tmp_path, VALID, {'landing = "sales/{date:%Y%m%d}.csv"\n':
                                               'landing = "sales/{date:%Y%m%d}.csv"\n' + settings})


def test_the_rule_and_its_setting_are_read_per_table(tmp_path):
    d = description.load(describe(tmp_path, 'ready = "marker"\nmarker = "{file}.ok"\n'))
    assert d.readiness_rule("sales") == rd.ReadinessRule(table="sales", ready="marker", marker="{file}.ok")
    d = description.load(describe(tmp_path, 'ready = "manifest"\n'))
    assert d.readiness_rule("sales").companion("sales/20240506.csv") == "sales/20240506.csv.manifest.json"
    assert description.load(describe(tmp_path, "stable_seconds = 5\n")).readiness_rule("sales").stable_seconds == 5
    assert description.load(describe(tmp_path, "")).readiness_rule("sales") == rd.ReadinessRule(table="sales")
    assert {r.ready for r in description.builtin().readiness.values()} == {"marker"}


@pytest.mark.parametrize("settings, message", [
    ('ready = "stabel"\n', "[tables.sales] ready = 'stabel': choose one of ['stable', 'marker', 'manifest']"),
    ('stable_seconds = -1\n', "[tables.sales] stable_seconds = -1: the seconds a landing file must stay unchanged"),
    ('stable_seconds = "60"\n', "[tables.sales] stable_seconds = '60': the seconds"),
    ('marker = "{file}.done"\n', '[tables.sales] marker applies to ready = "marker" only, and the table\'s rule is '
                                 'ready = "stable": set ready = "marker" or drop marker'),
    ('ready = "marker"\nmarker = "{name}.done"\n', "[tables.sales] marker = '{name}.done': it cannot be formatted"),
    ('ready = "marker"\nmarker = "{file}"\n', "[tables.sales] marker = '{file}': it names the landing file itself"),
    ('ready = "manifest"\nmanifest = 3\n', "[tables.sales] manifest = 3: not a file name"),
])
def test_a_bad_rule_or_value_is_one_error_naming_the_file_the_table_and_the_key(tmp_path, settings, message):
    path = describe(tmp_path, settings)
    with pytest.raises(description.DatasetError) as info:
        description.load(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_the_rule_keys_are_settings_the_description_knows():
    with pytest.raises(ValueError, match=r"ready = 'later': choose one of"):
        rd.parse_rule("t", {"ready": "later"})
    assert set(rd.KEYS) <= description._TABLE_KEYS


# ---- the reader, on every backend -----------------------------------------------------------------
@pytest.fixture(params=["local", "s3", "hdfs"])
def store(request, tmp_path):
    from luigi.contrib.hdfs.webhdfs_client import WebHdfsClient
    from luigi.contrib.s3 import S3Client

    if request.param == "local":
        return st.Storage(str(tmp_path / "root"))
    if request.param == "s3":
        moto, bucket = request.getfixturevalue("moto_server"), request.getfixturevalue("s3_bucket")
        return st.Storage(f"s3://{bucket}/prefix",
                          s3_client=S3Client(endpoint_url=moto.endpoint, region_name="us-east-1"))
    hdfs = request.getfixturevalue("webhdfs_double")
    return st.Storage(f"hdfs://127.0.0.1:{hdfs.port}/{tmp_path.name}/root",
                      hdfs_client=WebHdfsClient(host="127.0.0.1", port=hdfs.port, user="test"))


def test_file_state_and_check_on_every_backend(store):
    landing = store.target(store.landing_path(NAME))
    marker = store.target(store.landing_path(MARKER.companion(NAME)))
    assert rd.file_state(landing) is None
    assert rd.check(MARKER, landing, marker).reason == f"{landing.path} has not arrived"

    before = time.time()
    st.write_bytes(landing, b"year,month\n2013,1\n")
    found = rd.file_state(landing)
    assert found.size == 18 and before - 2 <= found.modified <= time.time() + 2
    waiting = rd.check(MARKER, landing, marker)
    assert not waiting.ready and f"has no done-marker {marker.path} yet" in waiting.reason
    st.write_bytes(marker, b"")
    assert rd.check(MARKER, landing, marker).ready
    assert not rd.check(STABLE, landing, now=found.modified + 59).ready
    assert rd.check(STABLE, landing, now=found.modified + 61).ready

    manifest = store.target(store.landing_path(MANIFEST.companion(NAME)))
    st.write_bytes(manifest, rd.companion_content(MANIFEST, b"year,month\n2013,2\n"))  # same size, other bytes
    assert "has sha256" in rd.check(MANIFEST, landing, manifest).reason
    st.write_bytes(manifest, rd.companion_content(MANIFEST, b"year,month\n2013,1\n"))
    assert rd.check(MANIFEST, landing, manifest).ready


def test_a_local_file_written_in_pieces_is_stable_only_once_left_alone(tmp_path):
    path = tmp_path / "landing" / "t.csv"
    path.parent.mkdir()
    target = st.Storage(str(tmp_path)).target(str(path))
    rule = rd.ReadinessRule(table="t", stable_seconds=30)
    with open(path, "wb") as out:
        out.write(b"a,b\n1,2\n")
        out.flush()
        assert "was modified 0" in rd.check(rule, target).reason
        old = time.time() - 40
        os.utime(path, (old, old))
        assert rd.check(rule, target).ready
        out.write(b"3,4\n")  # the copy goes on: the file is modified again
    assert not rd.check(rule, target).ready
    assert dt.datetime.fromtimestamp(rd.file_state(target).modified) > dt.datetime.fromtimestamp(old)
