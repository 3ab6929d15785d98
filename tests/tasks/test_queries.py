"""tasks.queries: what the read-only commands compute, as data, read back from a short real run."""
from __future__ import annotations

import datetime as dt

import luigi
import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline import storage as st
from tasks import Deployment, FeaturePartition, NightlyPipeline, Predictions, queries
from tasks.config import get_storage, model_registry
from tests.conftest import SMALL, ConfigOverrides

D = dt.date


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """The nightly pipeline of 2013-01-06 (and the deployment chain from 2013-01-05) on the short
    pipeline, every challenger blessed; run once for the module's tests, which only read it."""
    from pipeline.flights.landing import land_demo

    overrides = ConfigOverrides()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLPIPE_ROOT", str(tmp_path_factory.mktemp("night") / "root"))
        env.delenv("MLPIPE_LANDING", raising=False)
        overrides.apply({**SMALL, "gate": {"min_roc_auc": 0.5, "tolerance": 1.0}, "worker": {"keep_alive": "false"}})
        try:
            land_demo(get_storage().landing, D(2013, 1, 1), D(2013, 1, 8))
            result = luigi.build([NightlyPipeline(date=D(2013, 1, 6))], local_scheduler=True, detailed_summary=True)
            assert result.status == LuigiStatusCode.SUCCESS
            yield {day: st.read_json(Deployment(date=day).data()) for day in (D(2013, 1, 5), D(2013, 1, 6))}
        finally:
            overrides.restore()


def test_realized_pools_the_scored_days_and_names_the_missing_ones(night):
    result = queries.realized(D(2013, 1, 5), D(2013, 1, 6))
    assert result["days_missing"] == ["2013-01-05"]  # the night of the 6th scored the 6th only
    assert result["days"] == 1 and result["start"] == "2013-01-05" and result["end"] == "2013-01-06"
    scored = st.read_parquet(Predictions(date=D(2013, 1, 6)).data())
    assert result["rows_total"] == len(scored) == len(st.read_parquet(FeaturePartition(date=D(2013, 1, 6)).data()))
    assert 0.0 <= result["roc_auc"] <= 1.0
    with pytest.raises(queries.QueryError, match=r"--start 2013-01-06 is after --end 2013-01-05"):
        queries.realized(D(2013, 1, 6), D(2013, 1, 5))


def test_day_summary_points_at_the_stored_artifacts(night):
    found = queries.day_summary(D(2013, 1, 6))
    stored = night[D(2013, 1, 6)]
    assert found["decision"] == {"path": Deployment(date=D(2013, 1, 6)).data().path, "action": stored["action"],
                                 "reasons": stored["reasons"], "blessed": stored["blessed"],
                                 "before": stored["production_version_before"]}
    version = night[D(2013, 1, 6)]["production_version"]
    assert found["production"]["version"] == version
    assert found["production"]["model"].endswith(f"/registry/versions/{version}/model.skops")
    assert found["evaluation"]["production_version"] == night[D(2013, 1, 5)]["production_version"]
    assert found["monitoring"]["record"]["model_version"] == night[D(2013, 1, 5)]["production_version"]
    with pytest.raises(queries.QueryError, match=r"no deployment decision for 2013-01-08 under .*run "
                                                 r"`mlpipe run --date 2013-01-08` first"):
        queries.day_summary(D(2013, 1, 8))


def test_which_answers_from_the_predictions_then_from_the_decisions(night):
    scored = queries.which(D(2013, 1, 6))
    assert scored == {"scored": True, "version": night[D(2013, 1, 5)]["production_version"],
                      "recorded_in": Predictions(date=D(2013, 1, 6)).data().path}
    assert queries.which(D(2013, 1, 7)) == {"scored": False, "version": night[D(2013, 1, 6)]["production_version"],
                                            "decided_on": "2013-01-06"}


def test_model_versions_list_each_published_version_and_the_live_one(night):
    versions = queries.model_versions()
    published = sorted({night[day]["production_version"] for day in night})
    assert [v["version"] for v in versions] == published
    assert [v["live"] for v in versions] == [v["version"] == night[D(2013, 1, 6)]["production_version"]
                                            for v in versions]
    details = queries.model_details("production")
    assert details["version"] == night[D(2013, 1, 6)]["production_version"]
    assert set(details["checks"].values()) == {"ok"}
    assert details["manifest"] == model_registry().manifest(details["version"])
    with pytest.raises(queries.QueryError, match=r"model version 20130101-f is not published"):
        queries.model_details("20130101-f")
