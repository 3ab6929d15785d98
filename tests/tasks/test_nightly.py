"""The nightly chain under luigi's local scheduler on a temporary root, asserting on outputs read back."""
from __future__ import annotations

import contextlib
import datetime as dt
import os

import luigi
import pandas as pd
import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline import storage as st
from pipeline.flights.landing import landing_file
from tasks import (CandidateModel, CleanPartition, Deployment, FeaturePartition, ModelEvaluation,
                   ModelMonitoring, NightlyPipeline, Predictions, RawPartition)
from tasks.config import get_storage, model_registry
from tests.landing import deliver

D = dt.date


@contextlib.contextmanager
def recorded_events():
    """Collect (event, task) for tasks that succeed or fail, and the failures' exceptions."""
    seen = {"ran": [], "failed": []}

    def on_success(task):
        seen["ran"].append(task)

    def on_failure(task, exc):
        seen["failed"].append((task, exc))

    luigi.Task.event_handler(luigi.Event.SUCCESS)(on_success)
    luigi.Task.event_handler(luigi.Event.FAILURE)(on_failure)
    try:
        yield seen
    finally:
        callbacks = luigi.Task._event_callbacks[luigi.Task]
        callbacks[luigi.Event.SUCCESS].discard(on_success)
        callbacks[luigi.Event.FAILURE].discard(on_failure)


def build(tasks, workers=1):
    with recorded_events() as seen:
        result = luigi.build(tasks, local_scheduler=True, detailed_summary=True, workers=workers)
    return result, seen


def all_files(root) -> dict[str, float]:
    out = {}
    for base, _, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            out[path] = os.stat(path).st_mtime_ns
    return out


def test_whole_chain_then_second_build_runs_nothing(small_pipeline):
    result, seen = build([NightlyPipeline(date=D(2013, 1, 7))])
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    assert not seen["failed"]

    store = get_storage()
    # every stage wrote its outputs, read back
    decisions = {d: st.read_json(Deployment(date=D(2013, 1, d)).data()) for d in (5, 6, 7)}
    assert decisions[5]["production_version_before"] is None
    for d in (6, 7):
        assert decisions[d]["production_version_before"] == decisions[d - 1]["production_version"]
    live = decisions[7]["production_version"]
    assert live is not None
    manifest = st.read_json(store.file(os.path.join(store.root, "registry", "versions", live), "manifest.json"))
    assert manifest["version"] == live and manifest["rows_trained"] > 1000
    assert set(manifest["input_fingerprints"]) == {
        FeaturePartition(date=day).data().path for day in map(dt.date.fromisoformat, manifest["train_days"])}

    features = st.read_parquet(FeaturePartition(date=D(2013, 1, 7)).data())
    predictions = st.read_parquet(Predictions(date=D(2013, 1, 7)).data())
    assert len(predictions) == len(features) > 800
    assert predictions["score"].between(0, 1).all()
    assert predictions["model_version"].unique().tolist() == [decisions[6]["production_version"]]

    evaluation = st.read_json(ModelEvaluation(date=D(2013, 1, 7)).record())
    assert evaluation["challenger"]["rows"] == int(features["late"].notna().sum())
    assert evaluation["decision"]["blessed"] == decisions[7]["blessed"]
    with open(os.path.join(ModelEvaluation(date=D(2013, 1, 7)).directory(), "report.html")) as fh:
        assert "data:image/png;base64," in fh.read()

    monitoring = st.read_json(ModelMonitoring(date=D(2013, 1, 7)).data())
    assert monitoring["model_version"] == decisions[6]["production_version"]
    assert 0.5 < monitoring["realized"]["roc_auc"] < 1
    assert "dest" in monitoring["feature_psi"]

    before = all_files(store.root)
    result, seen = build([NightlyPipeline(date=D(2013, 1, 7))])
    assert result.status == LuigiStatusCode.SUCCESS
    assert seen["ran"] == [] and "Did not run any tasks" in result.summary_text
    assert all_files(store.root) == before


def test_deleting_one_days_features_reruns_exactly_that_task(small_pipeline):
    days = [D(2013, 1, 1) + dt.timedelta(days=i) for i in range(7)]
    result, _ = build([FeaturePartition(date=d) for d in days] + [NightlyPipeline(date=days[-1])])
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    task = FeaturePartition(date=D(2013, 1, 3))
    original = st.read_parquet(task.data())
    os.remove(task.output().path)  # the seal: without it the partition is not complete

    result, seen = build([FeaturePartition(date=d) for d in days] + [NightlyPipeline(date=days[-1])])
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    assert [t.task_id for t in seen["ran"]] == [FeaturePartition(date=D(2013, 1, 3)).task_id]
    pd.testing.assert_frame_equal(st.read_parquet(task.data()), original)


def test_malformed_landing_file_fails_validation_and_nothing_downstream_runs(small_pipeline):
    store = get_storage()
    path = landing_file(store.landing, "flights", D(2013, 1, 3))
    frame = pd.read_csv(path)
    frame.loc[: len(frame) // 5, "origin"] = "XXX"  # a fifth of the rows from an unknown airport
    deliver(store.landing, "flights", D(2013, 1, 3), frame.to_csv(index=False).encode())
    with open(path, "rb") as fh:
        landed = fh.read()

    result, seen = build([NightlyPipeline(date=D(2013, 1, 7))])
    assert result.status == LuigiStatusCode.FAILED
    (task, exc), = seen["failed"]
    assert task.task_id == CleanPartition(table="flights", date=D(2013, 1, 3)).task_id
    message = str(exc)
    assert path in message and "allowed:origin" in message and "max_bad_fraction" in message
    assert "rows" in message and "%" in message

    assert not CleanPartition(table="flights", date=D(2013, 1, 3)).output().exists()
    for day in (3, 4, 5, 6):  # features of 3 need it; 4..6 use day 3 as trailing history (3 days)
        assert not FeaturePartition(date=D(2013, 1, day)).output().exists()
    assert not CandidateModel(date=D(2013, 1, 5)).output().exists()
    assert not os.path.exists(os.path.join(store.root, "registry"))
    assert RawPartition(table="flights", date=D(2013, 1, 3)).output().exists()
    with open(path, "rb") as fh:
        assert fh.read() == landed, "the landing file must never be modified"


def test_missing_landing_file_is_reported_as_missing_data(small_pipeline):
    os.remove(landing_file(get_storage().landing, "weather", D(2013, 1, 2)))
    result, seen = build([NightlyPipeline(date=D(2013, 1, 6))])
    assert result.status == LuigiStatusCode.MISSING_EXT
    assert "LandingFile(table=weather, date=2013-01-02)" in result.summary_text
    assert not FeaturePartition(date=D(2013, 1, 2)).output().exists()


def test_date_before_start_date_is_a_clear_error(small_pipeline):
    with pytest.raises(ValueError, match=r"before the pipeline's start_date 2013-01-01 \(\[pipeline\] start_date"):
        NightlyPipeline(date=D(2012, 12, 31)).requires()


def _decisions(days):
    return [st.read_json(Deployment(date=d).data()) for d in days]


def _alias_history():

    return [{k: r[k] for k in ("version", "as_of", "kind", "reason", "previous_version")}
            for r in model_registry().history()]


def test_backfill_from_scratch_reproduces_the_production_history(small_pipeline, monkeypatch, tmp_path):
    days = [D(2013, 1, 5), D(2013, 1, 6), D(2013, 1, 7)]
    result, _ = build([NightlyPipeline(date=days[-1])])
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    first = _decisions(days)
    first_history = _alias_history()
    assert first_history and first_history[0]["as_of"] == "2013-01-05"
    first_models = {d["production_version"]: st.read_json(get_storage().target(os.path.join(
        get_storage().root, "registry", "versions", d["production_version"], "manifest.json")))["model_sha256"]
        for d in first if d["production_version"]}

    landing = get_storage().landing
    monkeypatch.setenv("MLPIPE_ROOT", str(tmp_path / "second"))
    monkeypatch.setenv("MLPIPE_LANDING", landing)  # same deliveries, empty everything else
    result, _ = build([NightlyPipeline(date=days[-1])], workers=2)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    second = _decisions(days)
    assert [(d["blessed"], d["production_version"], d["reasons"]) for d in second] == \
        [(d["blessed"], d["production_version"], d["reasons"]) for d in first]
    assert _alias_history() == first_history  # same versions, dates, reasons (bootstrap figures included)
    for version, sha in first_models.items():
        manifest = st.read_json(get_storage().target(os.path.join(
            get_storage().root, "registry", "versions", version, "manifest.json")))
        assert manifest["model_sha256"] == sha


def test_an_older_date_never_moves_the_live_alias_backwards(small_pipeline):
    result, _ = build([NightlyPipeline(date=D(2013, 1, 7))])
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    store = get_storage()
    alias_target = store.file(os.path.join(store.root, "registry"), "production.json")
    alias = st.read_json(alias_target)
    blessed = [d for d in _decisions([D(2013, 1, 5), D(2013, 1, 6), D(2013, 1, 7)]) if d["blessed"]]
    assert alias["version"] == blessed[-1]["production_version"]
    assert alias["as_of"] > "2013-01-05", "the test needs a later deployment than the one it re-decides"

    # Re-deciding an older day (its record removed, as a rerun of that day would) publishes
    # its version again but leaves the live alias where the latest day put it.
    os.remove(Deployment(date=D(2013, 1, 5)).output().path)
    result, seen = build([Deployment(date=D(2013, 1, 5))])
    assert [t.task_id for t in seen["ran"]] == [Deployment(date=D(2013, 1, 5)).task_id]
    assert st.read_json(alias_target) == alias
