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
    st.write_flag(storage.flag(d))
    assert storage.exists(os.path.join(d, layout.SUCCESS))
    assert st.read_bytes(storage.flag(d)) == b""


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


