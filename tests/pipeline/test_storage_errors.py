"""Remote storage failures give messages that name the endpoint, bucket or namenode and the
setting to check, instead of a bare botocore or requests traceback."""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from pathlib import Path

import pytest
from luigi.contrib.hdfs.webhdfs_client import WebHdfsClient
from luigi.contrib.s3 import S3Client

from pipeline import storage as st
from tests.servers import free_port


def test_unreachable_s3_endpoint_names_the_endpoint_and_setting(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    endpoint = f"http://127.0.0.1:{free_port()}"
    client = S3Client(endpoint_url=endpoint, region_name="us-east-1",
                      config=__import__("botocore.config").config.Config(retries={"max_attempts": 1},
                                                                           connect_timeout=1))
    store = st.Storage("s3://bucket/root", s3_client=client)
    with pytest.raises(st.StorageError, match=rf"cannot reach the S3 endpoint {endpoint}.*\[s3\] endpoint_url"):
        store.flag(store.path("x")).exists()
    with pytest.raises(st.StorageError, match=rf"cannot reach the S3 endpoint {endpoint}"):
        st.write_bytes(store.file(store.path("x"), "a.bin"), b"data")


def test_missing_bucket_names_the_bucket_and_setting(moto_server, s3_bucket):
    client = S3Client(endpoint_url=moto_server.endpoint, region_name="us-east-1")
    store = st.Storage("s3://no-such-bucket-here/root", s3_client=client)
    with pytest.raises(st.StorageError, match=r"S3 bucket 'no-such-bucket-here' does not exist at "
                       + moto_server.endpoint.replace(".", r"\.") + r".*\[storage\] root"):
        st.write_bytes(store.file(store.path("x"), "a.bin"), b"data")
    with pytest.raises(st.StorageError, match="no-such-bucket-here"):
        store.list_files(store.path("x"))


def test_missing_credentials_say_where_credentials_come_from(moto_server, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches credentials of earlier tests
    client = S3Client(endpoint_url=moto_server.endpoint, region_name="us-east-1")
    store = st.Storage("s3://bucket/root", s3_client=client)
    with pytest.raises(st.StorageError, match=r"no AWS credentials .*AWS_ACCESS_KEY_ID.*AWS_PROFILE.*instance role"):
        st.write_bytes(store.file(store.path("x"), "a.bin"), b"data")


def test_bad_credentials_are_refused_with_a_message_naming_the_endpoint(monkeypatch):
    from tests.servers import MotoServer

    # moto checks signatures against its IAM users once authentication is switched on
    server = MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}).start()
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        import boto3

        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        store = st.Storage("s3://bucket/root", s3_client=S3Client(endpoint_url=server.endpoint, region_name="us-east-1"))
        with pytest.raises(st.StorageError, match=rf"access to s3://bucket/root/x/a.bin at {server.endpoint} was "
                           r"refused \(InvalidAccessKeyId\); check the AWS credentials"):
            st.write_bytes(store.file(store.path("x"), "a.bin"), b"data")
    finally:
        server.stop()


def test_unreachable_namenode_names_it_and_the_settings():
    port = free_port()
    store = st.Storage(f"hdfs://127.0.0.1:{port}/root",
                       hdfs_client=WebHdfsClient(host="127.0.0.1", port=port, user="test"))
    with pytest.raises(st.StorageError, match=rf"cannot reach the WebHDFS namenode http://127.0.0.1:{port}"
                       r".*\[hdfs\] namenode_host / \[webhdfs\] port"):
        st.write_bytes(store.file(store.path("x"), "a.bin"), b"data")
    with pytest.raises(st.StorageError, match="cannot reach the WebHDFS namenode"):
        store.list_files(store.path("x"))


# ---- an S3 endpoint that crashes, comes back, or drops connections -------------------------
def _every_s3_operation(store):
    """(name, call) for every storage operation a task makes on S3."""
    import pandas as pd

    d = store.path("outage", "date=2013-01-01")
    return [
        ("exists", lambda: store.flag(d).exists()),
        ("read_bytes", lambda: st.read_bytes(store.file(d, "a.bin"))),
        ("write_bytes", lambda: st.write_bytes(store.file(d, "b.bin"), b"new")),
        ("read_parquet", lambda: st.read_parquet(store.file(d, "part-0.parquet"))),
        ("write_parquet", lambda: st.write_parquet(store.file(d, "part-1.parquet"), pd.DataFrame({"x": [1]}))),
        ("list_files", lambda: store.list_files(d)),
        ("remove", lambda: store.remove(d)),
    ]


def test_crashed_s3_endpoint_fails_every_operation_with_its_url_then_works_once_it_is_back(monkeypatch):
    import pandas as pd

    from tests.servers import MotoServer

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    server = MotoServer().start()
    try:
        server.client().create_bucket(Bucket="outage")
        store = st.Storage("s3://outage/root", s3_client=S3Client(endpoint_url=server.endpoint, region_name="us-east-1"))
        d = store.path("outage", "date=2013-01-01")
        frame = pd.DataFrame({"x": range(1000), "y": ["a"] * 1000})
        st.write_bytes(store.file(d, "a.bin"), b"before the crash")
        st.write_parquet(store.file(d, "part-0.parquet"), frame)
        st.seal(store.flag(d), {})
        saved = server.snapshot()

        server.kill()
        for name, call in _every_s3_operation(store):
            with pytest.raises(st.StorageError, match=rf"cannot reach the S3 endpoint {server.endpoint} for "
                               r"s3://outage/root/outage/date=2013-01-01\S*: .*; check that the endpoint is up .*"
                               r"retried as set in luigi.cfg \[scheduler\] retry_count / retry_delay, otherwise "
                               r"rerun once the endpoint is back"):
                call()
                pytest.fail(f"{name} did not fail")

        server.restart()
        assert server.snapshot() == {}, "moto's state is in memory: a restarted server is empty"
        server.restore(saved)
        assert st.read_bytes(store.file(d, "a.bin")) == b"before the crash"
        pd.testing.assert_frame_equal(st.read_parquet(store.file(d, "part-0.parquet")), frame)
        assert store.flag(d).exists()
        st.write_bytes(store.file(d, "b.bin"), b"after")
        assert sorted(store.listdir(d)) == ["_SUCCESS", "a.bin", "b.bin", "part-0.parquet"]
    finally:
        server.stop()


def test_s3_endpoint_dropping_connections_is_reported_as_unreachable(monkeypatch):
    """A connection closed without a response (a proxy or load balancer in front of a dead
    endpoint) is botocore's ConnectionClosedError and curl's 'empty reply': both name the endpoint."""
    import socket
    import threading

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    listener = socket.create_server(("127.0.0.1", 0))
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def drop_every_connection():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=drop_every_connection, daemon=True).start()
    try:
        store = st.Storage("s3://bucket/root", s3_client=S3Client(endpoint_url=endpoint, region_name="us-east-1"))
        for name, call in _every_s3_operation(store):
            with pytest.raises(st.StorageError, match=rf"cannot reach the S3 endpoint {endpoint} for s3://bucket/root"):
                call()
                pytest.fail(f"{name} did not fail")
    finally:
        listener.close()


# ---- a local root that cannot be written: full, not permitted, in the way -----------------
def test_full_disk_names_the_file_and_leaves_no_partial_file(tmp_path, monkeypatch):
    """A real ENOSPC: the temporary file a write opens is /dev/full."""
    import types

    def open_full(path, flags, mode=0o777):
        if st.is_temp(os.path.basename(path)):
            return os.open("/dev/full", os.O_WRONLY)
        return os.open(path, flags, mode)  # the directories fsynced

    monkeypatch.setattr(st, "os", types.SimpleNamespace(**{**vars(os), "open": open_full}))
    store = st.Storage(str(tmp_path / "root"))
    for size in (10, 1_000_000):
        target = store.file(store.partition("raw", "flights"), f"part-{size}.parquet")
        with pytest.raises(st.StorageError, match=rf"cannot write {re.escape(target.path)}: \[Errno 28\] No space left "
                           rf"on device; the disk is full: free space on the filesystem holding "
                           rf"{re.escape(os.path.dirname(target.path))} \(df -h .*\[storage\] root in luigi.cfg"):
            st.write_bytes(target, b"x" * size)
        assert os.listdir(os.path.dirname(target.path)) == [], "no partial file, final or temporary"


def test_file_size_limit_names_the_file(tmp_path):
    import resource

    store = st.Storage(str(tmp_path / "root"))
    target = store.file(store.partition("raw", "flights"), "part-0.parquet")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(st.StorageError, match=rf"cannot write {re.escape(target.path)}: \[Errno 27\] File too "
                           r"large; the file is larger than the file-size limit of the process \(ulimit -f\)"):
            st.write_bytes(target, b"x" * 100_000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert os.listdir(os.path.dirname(target.path)) == []
    st.write_bytes(target, b"x" * 100_000)
    assert st.read_bytes(target) == b"x" * 100_000


@contextlib.contextmanager
def not_permitted(*directories):
    """The code inside may not write or list `directories`: by their modes when not root; as root
    (modes do not stop root) the code runs as user nobody (effective uid only, restored after),
    who may not even enter pytest's temporary directories (mode 0700)."""
    modes = {d: os.stat(d).st_mode & 0o777 for d in directories}
    for d in directories:
        os.chmod(d, 0)
    try:
        if os.geteuid() != 0:
            yield
            return
        os.seteuid(65534)
        try:
            yield
        finally:
            os.seteuid(0)
    finally:
        for d, mode in modes.items():
            os.chmod(d, mode)


def test_permission_denied_names_the_path_and_listing_does_not_pass_for_empty(tmp_path):
    store = st.Storage(str(tmp_path / "root"))
    raw = store.partition("raw", "flights")
    st.write_bytes(store.file(raw, "part-0.parquet"), b"kept")
    with not_permitted(store.root):
        with pytest.raises(st.StorageError, match=rf"cannot create directory '{re.escape(store.path('clean'))}/flights':"
                           r" Permission denied; check that the storage root \(\[storage\] root in luigi.cfg or "
                           r"MLPIPE_ROOT\) is writable"):
            st.write_bytes(store.file(store.partition("clean", "flights"), "part-0.parquet"), b"x")
        with pytest.raises(st.StorageError, match=rf"cannot list {re.escape(store.root)}\S*: \[Errno 13\] Permission "
                           r"denied; the user running the pipeline \(uid \d+\) may not list there: fix the permissions"):
            store.list_files(store.path("raw"))  # an unreadable zone is not an empty one
    assert store.list_files(store.path("raw")) == {os.path.join(raw, "part-0.parquet")}


def test_a_file_where_a_directory_should_be_is_named(tmp_path):
    store = st.Storage(str(tmp_path / "root"))
    os.makedirs(store.path("raw"))
    Path(store.path("raw", "flights")).write_text("in the way")
    with pytest.raises(st.StorageError, match=rf"cannot create directory '{re.escape(store.path('raw', 'flights'))}/"
                       rf"date=2013-01-01': {re.escape(store.path('raw', 'flights'))} is a file, not a directory"):
        st.write_bytes(store.file(store.partition("raw", "flights", dt.date(2013, 1, 1)), "part-0.parquet"), b"x")
    os.makedirs(store.path("clean", "x", "part-0.parquet"))
    with pytest.raises(st.StorageError, match=rf"cannot read {re.escape(store.path('clean', 'x', 'part-0.parquet'))}: "
                       r"\[Errno 21\] Is a directory"):
        st.read_bytes(store.file(store.path("clean", "x"), "part-0.parquet"))
    with pytest.raises(FileNotFoundError):
        st.read_bytes(store.file(store.path("clean", "y"), "part-0.parquet"))  # missing stays FileNotFoundError
