"""The whole nightly pipeline, landing zone included, on S3 (moto's server over HTTP) and on
HDFS (the WebHDFS test double), checked by reading the stored objects back with plain clients."""
from __future__ import annotations

import datetime as dt
import io
import json

import boto3
import luigi
import pandas as pd
import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline import storage as st
from pipeline.flights.landing import land_demo
from tasks import NightlyPipeline
from tasks.config import get_storage
from tests.conftest import SMALL

D = dt.date


def run_small_pipeline(luigi_config, extra=None, workers=1):
    luigi_config({**SMALL, **(extra or {})})
    store = get_storage()
    land_demo(store.landing, D(2013, 1, 1), D(2013, 1, 6), store=store)
    result = luigi.build([NightlyPipeline(date=D(2013, 1, 6))], local_scheduler=True,
                         detailed_summary=True, workers=workers)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    return store


@pytest.mark.slow
def test_nightly_pipeline_end_to_end_on_s3(moto_server, s3_bucket, monkeypatch, luigi_config):
    monkeypatch.setenv("MLPIPE_ROOT", f"s3://{s3_bucket}/pipeline")
    monkeypatch.setenv("MLPIPE_LANDING", f"s3://{s3_bucket}/landing")
    run_small_pipeline(luigi_config, {"s3": {"endpoint_url": moto_server.endpoint, "region_name": "us-east-1"}},
                       workers=2)

    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint, region_name="us-east-1")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
            for o in page.get("Contents", [])]
    assert "landing/flights/flights_2013-01-01.csv" in keys and "landing/planes/planes.csv" in keys
    for layer in ("raw/flights/date=2013-01-06/part-0.parquet", "clean/weather/date=2013-01-06/_SUCCESS",
                  "quarantine/flights/date=2013-01-06/part-0.parquet", "validation/flights/date=2013-01-06/report.json"):
        assert f"pipeline/{layer}" in keys
    assert not [k for k in keys if st.is_temp(k.rsplit("/", 1)[-1])], "no temporary object is left behind"

    def get(key):
        return s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()

    decision_key = next(k for k in keys if k.startswith("pipeline/deployments/") and k.endswith("date=2013-01-06/decision.json"))
    decision = json.loads(get(decision_key))
    before = json.loads(get(decision_key.replace("2013-01-06", "2013-01-05")))
    assert decision["production_version_before"] == before["production_version"]
    predictions_key = next(k for k in keys if k.startswith("pipeline/predictions/") and k.endswith("date=2013-01-06/part-0.parquet"))
    predictions = pd.read_parquet(io.BytesIO(get(predictions_key)))
    raw = pd.read_parquet(io.BytesIO(get("pipeline/raw/flights/date=2013-01-06/part-0.parquet")))
    assert len(predictions) == len(pd.read_csv(io.BytesIO(get("landing/flights/flights_2013-01-06.csv"))))
    assert len(raw) == len(predictions) > 800
    assert predictions["model_version"].unique().tolist() == [before["production_version"]]
    manifest = json.loads(get(f"pipeline/registry/versions/{before['production_version']}/manifest.json"))
    assert manifest["version"] == before["production_version"]


@pytest.mark.slow
def test_nightly_pipeline_end_to_end_on_hdfs(webhdfs_double, monkeypatch, luigi_config, tmp_path):
    from hdfs import InsecureClient

    base = f"/{tmp_path.name}"
    monkeypatch.setenv("MLPIPE_ROOT", f"{webhdfs_double.url}{base}/pipeline")
    monkeypatch.setenv("MLPIPE_LANDING", f"{webhdfs_double.url}{base}/landing")
    run_small_pipeline(luigi_config)

    client = InsecureClient(f"http://127.0.0.1:{webhdfs_double.port}", user="check")
    files = {f"{root}/{name}" for root, _, names in client.walk(base) for name in names}
    assert f"{base}/landing/flights/flights_2013-01-06.csv" in files
    assert f"{base}/pipeline/clean/flights/date=2013-01-06/_SUCCESS" in files
    predictions_path = next(f for f in files if "/predictions/" in f and f.endswith("date=2013-01-06/part-0.parquet"))
    with client.read(predictions_path) as reader:
        predictions = pd.read_parquet(io.BytesIO(reader.read()))
    assert len(predictions) > 800 and predictions["score"].between(0, 1).all()
    assert not [f for f in files if st.is_temp(f.rsplit("/", 1)[-1])]


def test_checking_a_month_on_s3_costs_a_listing_per_prefix_not_a_request_per_task(
        moto_server, s3_bucket, monkeypatch, luigi_config):
    from tasks import Deployment, FeaturePartition, ModelMonitoring, NightlyRange
    from pipeline import storage as st

    monkeypatch.setenv("MLPIPE_ROOT", f"s3://{s3_bucket}/pipeline")
    luigi_config({**SMALL, "s3": {"endpoint_url": moto_server.endpoint, "region_name": "us-east-1"}})
    days = [D(2013, 1, 1) + dt.timedelta(days=i) for i in range(31)]
    for day in days:  # every output the completeness check looks at, present
        if day < D(2013, 1, 5):
            st.write_bytes(FeaturePartition(date=day).output(), b"")
        else:
            st.write_bytes(Deployment(date=day).output(), b"")
            st.write_bytes(ModelMonitoring(date=day).output(), b"")

    requests = []
    events = get_storage().s3_client.s3.meta.client.meta.events
    events.register("before-send.s3", lambda request, **_: requests.append((request.method, request.url)))

    result = luigi.build([NightlyRange(start=days[0], end=days[-1])], local_scheduler=True, detailed_summary=True)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    assert "Did not run any tasks" in result.summary_text
    # one listing for each of the three output prefixes (features, deployments, monitoring)
    assert len(requests) == 3, requests
    assert all(method == "GET" and "prefix=" in url for method, url in requests), requests

    # what a per-task check would have cost, for comparison: at least one request per output
    requests.clear()
    from tasks import NightlyPipeline
    incomplete = [d for d in days if not NightlyPipeline(date=d).complete()]
    assert incomplete == []
    assert len(requests) >= 4 + 2 * 27
