"""Credentials never reach what the pipeline writes: a nightly run, the registry commands, the
report and verify, on a local root and on S3, with fake AWS keys and a fake signing key set as a
deployment sets them (the environment); then every file written, every S3 object and every line
the commands printed is searched for them."""
from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.conftest import S3_CREDENTIALS
from tests.test_commands import BIN, OVERLAY, PROJECT

DATE = "2013-01-06"  # the second deployment day: a challenger compared with the model in production


def fake_secrets() -> dict[str, str]:
    return {"AWS_SECRET_ACCESS_KEY": "fakeAwsSecret" + secrets.token_hex(12),
            "AWS_ACCESS_KEY_ID": "FAKEKEYID" + secrets.token_hex(6).upper(),
            "MLPIPE_SIGNING_KEY": "fake-signing-key-" + secrets.token_hex(16)}


def commands(env: dict, tmp_path: Path) -> str:
    """Everything a night and a morning's look at it print, each command checked to succeed."""
    printed = []
    for args in (["land-demo", "--start", "2013-01-01", "--end", DATE],
                 ["run", "--date", DATE, "--summary", str(tmp_path / "summary.json")],
                 ["models", "list"], ["models", "show", "production"],
                 ["report", "--start", "2013-01-05", "--end", DATE, "--output", str(tmp_path / "report.html")],
                 ["verify"]):
        done = subprocess.run([str(BIN / "mlpipe"), *args], env=env, cwd=PROJECT, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, (args, done.stderr[-3000:])
        printed += [done.stdout, done.stderr]
    return "\n".join(printed)


def leaks(values: dict[str, str], texts: dict[str, bytes]) -> list[str]:
    return [f"{name} in {where}" for where, data in texts.items() for name, value in values.items()
            if value.encode() in data]


def local_files(directory: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_no_credential_in_anything_written_on_a_local_root(tmp_path):
    values = fake_secrets()
    overlay = tmp_path / "overlay.cfg"
    overlay.write_text(OVERLAY)
    env = {**os.environ, **values, "MLPIPE_ROOT": str(tmp_path / "root"), "LUIGI_CONFIG_PATH": str(overlay)}
    env.pop("MLPIPE_LANDING", None)
    printed = commands(env, tmp_path)
    written = local_files(tmp_path)
    assert any(path.endswith("manifest.json.sig") for path in written)  # a version was published and signed
    assert leaks(values, {"the commands' output": printed.encode(), **written}) == []


@pytest.mark.slow
def test_no_credential_in_anything_written_on_s3(tmp_path, moto_server):
    values = fake_secrets()
    bucket = "secrets-" + secrets.token_hex(4)
    moto_server.client().create_bucket(Bucket=bucket)
    overlay = tmp_path / "overlay.cfg"
    overlay.write_text(OVERLAY + f"""
[storage]
root = s3://{bucket}/pipeline
landing = s3://{bucket}/landing
[s3]
endpoint_url = {moto_server.endpoint}
region_name = us-east-1
""")
    env = {**os.environ, **S3_CREDENTIALS, **values, "LUIGI_CONFIG_PATH": str(overlay)}
    for name in ("MLPIPE_ROOT", "MLPIPE_LANDING", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    printed = commands(env, tmp_path)
    s3 = moto_server.client()
    objects = {f"s3://{bucket}/{o['Key']}": s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
               for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
               for o in page.get("Contents", [])}
    assert any(key.endswith("manifest.json.sig") for key in objects)
    assert leaks(values, {"the commands' output": printed.encode(), **objects, **local_files(tmp_path)}) == []
