"""Remote storage failures give messages that name the endpoint, bucket or namenode and the
setting to check, instead of a bare botocore or requests traceback."""
from __future__ import annotations

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
