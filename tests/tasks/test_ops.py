"""mlpipe plan (a dry run) and mlpipe invalidate (a stage and its downstream), on outputs read back."""
from __future__ import annotations

import datetime as dt
import os

import luigi
import pandas as pd
from luigi.execution_summary import LuigiStatusCode

from pipeline import storage as st
from tasks import (CandidateModel, Deployment, FeaturePartition, NightlyRange, Predictions,
                   RawPartition)
from tasks.cli import main
from tasks.config import get_storage

D = dt.date


def all_files(root):
    return {os.path.join(base, name) for base, _, names in os.walk(root) for name in names}


def test_plan_lists_what_would_run_and_why_without_running_anything(small_pipeline, capsys):
    before = all_files(small_pipeline)
    assert main(["plan", "--start", "2013-01-05", "--end", "2013-01-06"]) == 0
    out = capsys.readouterr().out
    assert all_files(small_pipeline) == before, "plan must not write anything"
    assert f"  deploy    run      Deployment(date=2013-01-06)  why: missing output {Deployment(date=D(2013, 1, 6)).output().path}" in out
    assert "RawPartition(date=2013-01-01, table=flights)" in out
    assert "nothing was run" in out

    result = luigi.build([NightlyRange(start=D(2013, 1, 5), end=D(2013, 1, 6))], local_scheduler=True,
                         detailed_summary=True)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    assert main(["plan", "--start", "2013-01-05", "--end", "2013-01-06"]) == 0
    assert "0 task(s) would run, 0 blocked by 0 landing file(s) not delivered yet" in capsys.readouterr().out


def test_plan_reports_a_missing_landing_file_as_waiting(small_pipeline, capsys):
    from pipeline.flights.landing import landing_file

    os.remove(landing_file(get_storage().landing, "flights", D(2013, 1, 2)))
    main(["plan", "--start", "2013-01-02", "--end", "2013-01-02"])
    out = capsys.readouterr().out
    assert "  landing   waits    LandingFile(table=flights, date=2013-01-02)" in out
    assert "delivered by the upstream system" in out


def test_invalidate_lists_then_removes_a_stage_and_its_downstream_and_the_rerun_restores_it(small_pipeline, capsys):
    result = luigi.build([NightlyRange(start=D(2013, 1, 1), end=D(2013, 1, 7))], local_scheduler=True,
                         detailed_summary=True)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    predictions = st.read_parquet(Predictions(date=D(2013, 1, 7)).data())
    raw = RawPartition(table="flights", date=D(2013, 1, 6)).output().path
    registry = {p for p in all_files(small_pipeline) if "/registry/versions/" in p}

    assert main(["invalidate", "--start", "2013-01-06", "--end", "2013-01-06", "--stage", "features"]) == 0
    listed = capsys.readouterr().out
    assert "nothing removed: run again with --yes" in listed
    assert FeaturePartition(date=D(2013, 1, 6)).output().exists()
    for task in (FeaturePartition(date=D(2013, 1, 6)), CandidateModel(date=D(2013, 1, 6)),
                 CandidateModel(date=D(2013, 1, 7)), Deployment(date=D(2013, 1, 7)), Predictions(date=D(2013, 1, 7))):
        path = task.output().path
        assert (path.rsplit("/", 1)[0] if path.endswith("_SUCCESS") else path) in listed
    assert Deployment(date=D(2013, 1, 5)).output().path not in listed  # upstream of the change

    assert main(["invalidate", "--start", "2013-01-06", "--end", "2013-01-06", "--stage", "features", "--yes"]) == 0
    assert "removed" in capsys.readouterr().out
    for task in (FeaturePartition(date=D(2013, 1, 6)), CandidateModel(date=D(2013, 1, 7)),
                 Deployment(date=D(2013, 1, 6)), Predictions(date=D(2013, 1, 7))):
        assert not task.output().exists()
    assert os.path.exists(raw) and Deployment(date=D(2013, 1, 5)).output().exists()
    assert registry <= all_files(small_pipeline), "published registry versions are never removed"

    result = luigi.build([NightlyRange(start=D(2013, 1, 1), end=D(2013, 1, 7))], local_scheduler=True,
                         detailed_summary=True)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    pd.testing.assert_frame_equal(st.read_parquet(Predictions(date=D(2013, 1, 7)).data()), predictions)


def test_backfill_of_one_stage_runs_that_stage_and_what_it_needs_only(small_pipeline):
    from tasks import CleanPartition, ModelEvaluation

    with_events = []
    luigi.Task.event_handler(luigi.Event.SUCCESS)(with_events.append)
    try:
        result = luigi.build([NightlyRange(start=D(2013, 1, 3), end=D(2013, 1, 4), stage="features")],
                             local_scheduler=True, detailed_summary=True)
    finally:
        luigi.Task._event_callbacks[luigi.Task][luigi.Event.SUCCESS].discard(with_events.append)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    ran = {t.get_task_family() for t in with_events}
    assert ran == {"RawPartition", "RawReference", "CleanPartition", "CleanReference", "FeaturePartition", "NightlyRange"}
    assert FeaturePartition(date=D(2013, 1, 4)).output().exists()
    assert not FeaturePartition(date=D(2013, 1, 5)).output().exists()
    assert CleanPartition(table="flights", date=D(2013, 1, 1)).output().exists()  # history of 01-04
    assert not ModelEvaluation(date=D(2013, 1, 5)).output().exists()
