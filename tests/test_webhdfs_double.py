"""The WebHDFS test double (tests/webhdfs_double.py), exercised only through the real
clients: luigi's WebHdfsClient and the `hdfs` package's InsecureClient behind it."""
from __future__ import annotations

import importlib.util
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

hdfs = pytest.importorskip("hdfs")
from hdfs.util import HdfsError  # noqa: E402
from luigi.contrib.hdfs.webhdfs_client import WebHdfsClient  # noqa: E402


def _load_double():
    """Import tests/webhdfs_double.py by path (tests/ is not a package)."""
    if "webhdfs_double" not in sys.modules:
        spec = importlib.util.spec_from_file_location("webhdfs_double", Path(__file__).with_name("webhdfs_double.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["webhdfs_double"] = module
        spec.loader.exec_module(module)
    return sys.modules["webhdfs_double"]


double = _load_double()


@pytest.fixture(scope="module")
def webhdfs(tmp_path_factory):
    """A running double: (port, backing root directory)."""
    root = tmp_path_factory.mktemp("webhdfs_root")
    process, port = double.start_webhdfs_double(root)
    yield port, root
    assert double.stop(process) == 0


@pytest.fixture
def fs(webhdfs):
    port, _ = webhdfs
    return WebHdfsClient(host="127.0.0.1", port=port, user="test")


@pytest.fixture
def client(fs):
    return fs.client  # hdfs.InsecureClient


@pytest.fixture
def base(request, client):
    """A fresh HDFS directory per test, so tests sharing the server do not collide."""
    path = "/t/" + re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    client.delete(path, recursive=True)
    client.makedirs(path)
    return path


def read_bytes(client, path, **kwargs) -> bytes:
    with client.read(path, **kwargs) as reader:
        return reader.read()


# -- luigi's WebHdfsClient ------------------------------------------------------------------


def test_exists_true_and_false(fs, client, base):
    assert fs.exists(base)
    assert not fs.exists(f"{base}/missing")
    assert not fs.exists(f"{base}/missing/deeper")
    client.write(f"{base}/f.txt", data=b"x", overwrite=True)
    assert fs.exists(f"{base}/f.txt")
    assert not fs.exists(f"{base}/f.txt/below-a-file")


def test_missing_path_error_is_the_real_webhdfs_error(client, base):
    with pytest.raises(HdfsError) as err:
        client.status(f"{base}/nope")
    assert err.value.exception == "FileNotFoundException"
    assert str(err.value) == f"File does not exist: {base}/nope"  # what luigi's exists() parses
    assert client.status(f"{base}/nope", strict=False) is None


def test_mkdir_creates_parents_and_is_idempotent(fs, client, base):
    fs.mkdir(f"{base}/a/b/c")
    fs.mkdir(f"{base}/a/b/c")
    assert client.status(f"{base}/a/b/c")["type"] == "DIRECTORY"
    assert client.status(f"{base}/a/b/c")["permission"]  # an octal string such as "755"


def test_listdir(fs, client, base):
    for name in ("b.csv", "a.csv"):
        client.write(f"{base}/{name}", data=b"1", overwrite=True)
    fs.mkdir(f"{base}/sub")
    assert fs.listdir(base) == ["a.csv", "b.csv", "sub"]  # names, sorted as HDFS does


def test_remove_recursive(fs, client, base):
    client.write(f"{base}/d/e/f.txt", data=b"x", overwrite=True)
    assert fs.remove(f"{base}/d", recursive=True, skip_trash=True) is True
    assert not fs.exists(f"{base}/d")
    assert fs.remove(f"{base}/d", recursive=True, skip_trash=True) is False  # already gone


def test_move_creates_missing_parents(fs, client, base):
    client.write(f"{base}/src.txt", data=b"payload", overwrite=True)
    fs.move(f"{base}/src.txt", f"{base}/new/parent/dst.txt")
    assert not fs.exists(f"{base}/src.txt")
    assert read_bytes(client, f"{base}/new/parent/dst.txt") == b"payload"


def test_walk(fs, client, base):
    client.write(f"{base}/top.txt", data=b"1", overwrite=True)
    client.write(f"{base}/d1/x.txt", data=b"2", overwrite=True)
    client.write(f"{base}/d1/d2/y.txt", data=b"3", overwrite=True)
    assert list(fs.walk(base, depth=1)) == [(base, ["d1"], ["top.txt"])]
    assert list(client.walk(base)) == [
        (base, ["d1"], ["top.txt"]),
        (f"{base}/d1", ["d2"], ["x.txt"]),
        (f"{base}/d1/d2", [], ["y.txt"]),
    ]
    assert list(client.walk(f"{base}/top.txt")) == []  # a file walks to nothing


def test_upload_download_and_touchz(fs, client, base, tmp_path):
    local = tmp_path / "in.bin"
    local.write_bytes(os.urandom(200_000))
    fs.upload(f"{base}/up.bin", str(local))  # streamed (chunked) CREATE
    fs.download(f"{base}/up.bin", str(tmp_path / "out.bin"))
    assert (tmp_path / "out.bin").read_bytes() == local.read_bytes()
    fs.touchz(f"{base}/_SUCCESS")
    assert client.status(f"{base}/_SUCCESS")["length"] == 0
    with pytest.raises(HdfsError):
        fs.touchz(f"{base}/_SUCCESS")  # touchz writes with overwrite=False


@pytest.mark.xfail(raises=TypeError, strict=True,
                   reason="luigi's WebHdfsClient.read passes buffer_char=, which hdfs.Client.read does not accept")
def test_luigi_read_wrapper(fs, client, base):
    client.write(f"{base}/f.txt", data=b"x", overwrite=True)
    with fs.read(f"{base}/f.txt") as reader:
        assert reader.read() == b"x"


# -- hdfs.InsecureClient --------------------------------------------------------------------


def test_write_read_roundtrip(client, base):
    small = bytes(range(256))
    big = os.urandom(1_000_003)  # more than one 64 KiB transfer chunk either way
    client.write(f"{base}/small.bin", data=small, overwrite=True)
    client.write(f"{base}/nested/dirs/big.bin", data=big, overwrite=True)  # parents created
    assert read_bytes(client, f"{base}/small.bin") == small
    assert read_bytes(client, f"{base}/nested/dirs/big.bin") == big
    assert read_bytes(client, f"{base}/small.bin", offset=10, length=5) == small[10:15]
    assert read_bytes(client, f"{base}/small.bin", offset=250) == small[250:]
    assert read_bytes(client, f"{base}/small.bin", offset=256) == b""
    with client.read(f"{base}/nested/dirs/big.bin", chunk_size=4096) as chunks:
        assert b"".join(chunks) == big


def test_write_as_context_manager_streams(client, base):
    with client.write(f"{base}/lines.txt", encoding="utf-8") as writer:
        for i in range(1000):
            writer.write(f"line {i}\n")
    text = "".join(f"line {i}\n" for i in range(1000))
    with client.read(f"{base}/lines.txt", encoding="utf-8", delimiter="\n") as lines:
        assert [line for line in lines if line] == text.splitlines()


def test_overwrite_false_refuses_an_existing_file(client, base):
    path = f"{base}/f.txt"
    client.write(path, data=b"first", overwrite=False)
    with pytest.raises(HdfsError) as err:
        client.write(path, data=b"second", overwrite=False)
    assert err.value.exception == "FileAlreadyExistsException"
    assert read_bytes(client, path) == b"first"
    client.write(path, data=b"third", overwrite=True)
    assert read_bytes(client, path) == b"third"


def test_cannot_write_over_a_directory_or_read_one(client, base):
    client.makedirs(f"{base}/dir")
    with pytest.raises(HdfsError, match="already exists as a directory"):
        client.write(f"{base}/dir", data=b"x", overwrite=True)
    with pytest.raises(HdfsError, match="Path is not a file"):
        read_bytes(client, f"{base}/dir")
    with pytest.raises(HdfsError, match="File does not exist"):
        read_bytes(client, f"{base}/missing")


def test_status_and_list(client, base):
    client.write(f"{base}/f.txt", data=b"12345", overwrite=True)
    client.makedirs(f"{base}/sub")
    status = client.status(f"{base}/f.txt")
    assert (status["type"], status["length"], status["pathSuffix"], status["replication"]) == ("FILE", 5, "", 1)
    assert client.status(base)["childrenNum"] == 2
    listing = dict(client.list(base, status=True))
    assert sorted(listing) == ["f.txt", "sub"]
    assert listing["f.txt"]["type"] == "FILE" and listing["sub"]["type"] == "DIRECTORY"
    with pytest.raises(HdfsError, match="is not a directory"):
        client.list(f"{base}/f.txt")
    with pytest.raises(HdfsError, match="does not exist"):
        client.list(f"{base}/missing")
    summary = client.content(base)
    assert (summary["directoryCount"], summary["fileCount"], summary["length"]) == (2, 1, 5)


def test_makedirs_over_a_file_fails(client, base):
    client.write(f"{base}/f", data=b"x", overwrite=True)
    with pytest.raises(HdfsError) as err:
        client.makedirs(f"{base}/f")
    assert err.value.exception == "FileAlreadyExistsException"
    with pytest.raises(HdfsError) as err:
        client.makedirs(f"{base}/f/below")
    assert err.value.exception == "ParentNotDirectoryException"


def test_rename(client, base):
    client.write(f"{base}/a.txt", data=b"A", overwrite=True)
    client.rename(f"{base}/a.txt", f"{base}/b.txt")
    assert client.status(f"{base}/a.txt", strict=False) is None
    assert read_bytes(client, f"{base}/b.txt") == b"A"

    client.makedirs(f"{base}/into")
    client.rename(f"{base}/b.txt", f"{base}/into")  # existing directory: moved inside it
    assert read_bytes(client, f"{base}/into/b.txt") == b"A"

    client.write(f"{base}/c.txt", data=b"C", overwrite=True)
    with pytest.raises(HdfsError, match="Unable to rename"):
        client.rename(f"{base}/c.txt", f"{base}/into/b.txt")  # destination file exists
    with pytest.raises(HdfsError, match="Unable to rename"):
        client.rename(f"{base}/c.txt", f"{base}/no/such/parent.txt")  # HDFS does not create parents
    with pytest.raises(HdfsError, match="Unable to rename"):
        client.rename(f"{base}/missing", f"{base}/x")
    with pytest.raises(HdfsError, match="Unable to rename"):
        client.rename(f"{base}/into", f"{base}/into/inside")  # into its own subtree
    assert read_bytes(client, f"{base}/c.txt") == b"C"

    client.rename(f"{base}/into", f"{base}/renamed_dir")  # directories move with their contents
    assert read_bytes(client, f"{base}/renamed_dir/b.txt") == b"A"


def test_delete(client, base):
    client.write(f"{base}/d/sub/f.txt", data=b"x", overwrite=True)
    client.write(f"{base}/g.txt", data=b"x", overwrite=True)
    assert client.delete(f"{base}/missing") is False
    with pytest.raises(HdfsError) as err:
        client.delete(f"{base}/d")  # non-recursive on a non-empty directory
    assert err.value.exception == "PathIsNotEmptyDirectoryException"
    assert client.delete(f"{base}/g.txt") is True
    assert client.delete(f"{base}/d", recursive=True) is True
    assert client.list(base) == []


def test_relative_paths_resolve_under_the_home_directory(client):
    client.write("rel/f.txt", data=b"home", overwrite=True)  # GETHOMEDIRECTORY -> /user/test
    assert read_bytes(client, "/user/test/rel/f.txt") == b"home"
    assert client.delete("rel", recursive=True) is True


def test_unimplemented_ops_answer_illegal_argument(client, base):
    client.write(f"{base}/f", data=b"x", overwrite=True)
    with pytest.raises(HdfsError) as err:
        client.write(f"{base}/f", data=b"more", append=True)  # APPEND is not in the double
    assert err.value.exception == "IllegalArgumentException"
    with pytest.raises(HdfsError) as err:
        client.set_permission(f"{base}/f", "600")
    assert err.value.exception == "IllegalArgumentException"


def test_concurrent_clients(webhdfs, base):
    port, _ = webhdfs

    def work(i: int) -> bytes:
        c = WebHdfsClient(host="127.0.0.1", port=port, user=f"user{i}").client  # own session
        data = os.urandom(50_000) + bytes([i])
        for _ in range(3):
            c.write(f"{base}/w{i}.bin", data=data, overwrite=True)
            with c.read(f"{base}/w{i}.bin") as r:
                assert r.read() == data
        return data

    with ThreadPoolExecutor(max_workers=8) as pool:
        written = list(pool.map(work, range(16)))

    c = WebHdfsClient(host="127.0.0.1", port=port, user="test").client
    assert sorted(c.list(base)) == sorted(f"w{i}.bin" for i in range(16))
    assert [read_bytes(c, f"{base}/w{i}.bin") for i in range(16)] == written


def test_hdfs_paths_map_onto_the_backing_directory(webhdfs, client, base):
    _, root = webhdfs
    client.write(f"{base}/x/y.txt", data=b"on disk", overwrite=True)
    local = Path(root, *base.strip("/").split("/"))
    assert (local / "x" / "y.txt").read_bytes() == b"on disk"
    assert sorted(p.name for p in local.rglob("*")) == ["x", "y.txt"]  # no temp files left behind
    assert ".webhdfs-double-staging" not in client.list("/")  # staging area is invisible


def test_sigterm_shuts_down_cleanly(tmp_path):
    process, port = double.start_webhdfs_double(tmp_path / "root")
    c = WebHdfsClient(host="127.0.0.1", port=port, user="test")
    c.mkdir("/x")
    assert double.stop(process) == 0
    assert sorted(os.listdir(tmp_path / "root")) == ["x"]
