import datetime as dt
import os

import pandas as pd
import pytest

from pipeline import layout
from pipeline import storage as st


# ---- resolve_root -----------------------------------------------------------------------
def test_resolve_root_env_wins_over_configured(tmp_path):
    env = {"MLPIPE_ROOT": str(tmp_path / "env")}
    assert st.resolve_root(str(tmp_path / "cfg"), env=env) == str(tmp_path / "env")


def test_resolve_root_configured_when_env_missing_or_empty(tmp_path):
    assert st.resolve_root(str(tmp_path / "cfg"), env={}) == str(tmp_path / "cfg")
    assert st.resolve_root(str(tmp_path / "cfg"), env={"MLPIPE_ROOT": ""}) == str(tmp_path / "cfg")


def test_resolve_root_default_is_project_var():
    assert st.resolve_root("", env={}) == str(st.PROJECT_DIR / "var")


def test_resolve_root_reads_process_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLPIPE_ROOT", str(tmp_path / "from-env"))
    assert st.resolve_root(str(tmp_path / "cfg")) == str(tmp_path / "from-env")
    monkeypatch.delenv("MLPIPE_ROOT")
    assert st.resolve_root(str(tmp_path / "cfg")) == str(tmp_path / "cfg")


def test_resolve_root_strips_trailing_slash_but_keeps_filesystem_root(tmp_path):
    assert st.resolve_root(str(tmp_path) + "/", env={}) == str(tmp_path)
    assert st.resolve_root("/", env={}) == "/"


# ---- paths --------------------------------------------------------------------------------
def test_partition_path_pattern(tmp_path):
    s = st.Storage(str(tmp_path))
    got = s.partition("clean", "flights", dt.date(2013, 1, 5), lineage="abc123")
    assert got == f"{tmp_path}/clean/flights/h=abc123/date=2013-01-05"
    assert s.partition("clean", "flights") == f"{tmp_path}/clean/flights"
    assert s.partition("raw", "weather", dt.date(2013, 12, 31)) == f"{tmp_path}/raw/weather/date=2013-12-31"


def test_file_url_root_and_default_landing(tmp_path):
    s = st.Storage(f"file://{tmp_path}")
    assert s.root == str(tmp_path)
    assert s.landing == f"{tmp_path}/landing"
    assert s.landing_path("flights", "x.csv") == f"{tmp_path}/landing/flights/x.csv"
    other = st.Storage(str(tmp_path / "root"), landing=f"file://{tmp_path}/drop")
    assert other.landing == f"{tmp_path}/drop"


@pytest.mark.parametrize("root", ["gs://bucket/prefix", "ftp://host/data"])
def test_unsupported_scheme_raises_naming_the_setting(root):
    with pytest.raises(st.StorageError, match=r"(?s)" + root.split("://")[0]
                       + r"://.*\[storage\] root in luigi.cfg \(or MLPIPE_ROOT\)"):
        st.Storage(root)


@pytest.mark.parametrize("path, scheme", [("/data/x", "local"), ("file:///data/x", "local"),
                                          ("s3://bucket/p/x", "s3"), ("hdfs://nn:9870/p/x", "hdfs")])
def test_scheme_of_picks_the_backend(path, scheme):
    assert st.scheme_of(path) == scheme


def test_remote_paths_join_with_slashes():
    s = st.Storage("s3://bucket/prefix/", landing="hdfs://nn:9870/drop")
    assert s.partition("raw", "flights", dt.date(2013, 1, 2)) == "s3://bucket/prefix/raw/flights/date=2013-01-02"
    assert s.landing_path("flights", "f.csv") == "hdfs://nn:9870/drop/flights/f.csv"




# ---- reading and writing ------------------------------------------------------------------
def test_bytes_round_trip_creates_parents_and_leaves_no_temp_files(storage):
    directory = storage.partition("raw", "flights", dt.date(2013, 1, 1))
    target = storage.file(directory, "data.bin")
    st.write_bytes(target, b"\x00\x01abc\xff")
    assert st.read_bytes(target) == b"\x00\x01abc\xff"
    assert storage.listdir(directory) == ["data.bin"]
    st.write_bytes(target, b"replaced")
    assert st.read_bytes(target) == b"replaced"
    assert storage.listdir(directory) == ["data.bin"]


def test_json_round_trip_with_dates_and_numpy_scalars(storage):
    import numpy as np

    target = storage.file(storage.path("meta"), "m.json")
    st.write_json(target, {"date": dt.date(2013, 1, 2), "n": np.int64(3), "x": np.float64(0.5),
                           "nested": {"list": [1, "a"]}})
    assert st.read_json(target) == {"date": "2013-01-02", "n": 3, "x": 0.5, "nested": {"list": [1, "a"]}}


def test_json_rejects_unserialisable_objects(storage):
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        st.write_json(storage.file(storage.path("meta"), "bad.json"), {"x": object()})


def test_parquet_round_trip_keeps_values_and_nullable_dtypes(storage):
    df = pd.DataFrame({
        "i": pd.Series([1, None, 3], dtype="Int64"),
        "f": [0.5, float("nan"), 2.0],
        "s": pd.Series(["a", None, "c"], dtype="string"),
    })
    target = storage.file(storage.partition("clean", "t", dt.date(2013, 1, 1)), "part.parquet")
    st.write_parquet(target, df)
    back = st.read_parquet(target)
    pd.testing.assert_frame_equal(back, df)
    pd.testing.assert_frame_equal(st.read_parquet(target, columns=["s"]), df[["s"]])


def test_text_and_flag(storage):
    d = storage.path("reports")
    st.write_text(storage.file(d, "r.html"), "<p>é</p>")
    assert st.read_bytes(storage.file(d, "r.html")).decode() == "<p>é</p>"
    assert not storage.flag(d).exists()
    st.seal(storage.flag(d), {})
    assert storage.exists(os.path.join(d, layout.SUCCESS))
    assert st.read_seal(storage.flag(d)) == {}


def test_a_seal_removes_temporary_files_a_killed_write_left(storage):
    d = storage.path("features", "date=2013-01-02")
    part = storage.file(d, "part-0.parquet")
    os.makedirs(d)
    for stray in (".part-0.parquet.tmp-0123456789ab", "part-0.parquet-luigi-tmp-123456789"):
        with open(os.path.join(d, stray), "wb") as out:
            out.write(b"half")
    st.seal(storage.flag(d), {part: st.write_bytes(part, b"rows")})
    assert sorted(os.listdir(d)) == ["_SUCCESS", "part-0.parquet"]


def test_local_writes_are_fsynced_before_the_rename_and_the_directory_after(storage, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(st.os, "fsync", lambda fd: (calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                     real_fsync(fd))[1])
    monkeypatch.setattr(st.os, "replace", lambda a, b: (calls.append(("replace", b)), real_replace(a, b))[1])
    os.makedirs(storage.root, exist_ok=True)
    target = storage.file(storage.path("x", "y"), "data.bin")
    st.write_bytes(target, b"payload")
    # x and y are new: each one's entry is fsynced into its parent, then the file, then its rename
    assert calls[:2] == [("fsync", storage.root), ("fsync", storage.path("x"))]
    calls = calls[2:]
    assert [c[0] for c in calls] == ["fsync", "replace", "fsync"]
    assert st.is_temp(os.path.basename(calls[0][1])) and calls[1][1] == target.path
    assert calls[2][1] == os.path.dirname(target.path)


def test_listdir_missing_is_empty_and_remove_is_recursive(storage):
    assert storage.listdir(storage.path("nope")) == []
    d = storage.partition("raw", "x", dt.date(2013, 1, 1))
    st.write_bytes(storage.file(d, "a"), b"1")
    st.write_bytes(storage.file(os.path.join(d, "sub"), "b"), b"2")
    storage.remove(d)
    assert not storage.exists(d)
    storage.remove(d)  # removing what is not there is a no-op
    assert storage.listdir(storage.partition("raw", "x")) == []


def test_unwritable_root_raises_storage_error_naming_directory_and_setting(tmp_path):
    blocker = tmp_path / "root"
    blocker.write_bytes(b"a file where the root directory should be")
    s = st.Storage(str(blocker))
    with pytest.raises(st.StorageError,
                       match=r"cannot create directory .*root/raw.*\[storage\] root in luigi.cfg or MLPIPE_ROOT"):
        st.write_bytes(s.file(s.path("raw"), "x.bin"), b"x")




def test_an_etag_counts_as_the_md5_only_for_plain_and_sse_s3_objects():
    md5 = "0123456789abcdef0123456789abcdef"
    assert st._etag_is_md5({}, md5) and st._etag_is_md5({"ServerSideEncryption": "AES256"}, md5)
    assert not st._etag_is_md5({"ServerSideEncryption": "aws:kms"}, md5)
    assert not st._etag_is_md5({"ServerSideEncryption": "aws:kms:dsse"}, md5)
    assert not st._etag_is_md5({"SSECustomerAlgorithm": "AES256"}, md5)
    assert not st._etag_is_md5({}, md5[:30] + "-2")


def test_a_seal_sweeps_every_directory_its_output_wrote_to(storage):
    clean, quarantine = storage.path("clean", "date=2013-01-02"), storage.path("quarantine", "date=2013-01-02")
    part, rejected = storage.file(clean, "part-0.parquet"), storage.file(quarantine, "part-0.parquet")
    os.makedirs(quarantine)
    with open(os.path.join(quarantine, ".part-0.parquet.tmp-0123456789ab"), "wb") as out:
        out.write(b"half")
    st.seal(storage.flag(clean), {part: st.write_bytes(part, b"rows"), rejected: st.write_bytes(rejected, b"bad")})
    assert os.listdir(quarantine) == ["part-0.parquet"]
