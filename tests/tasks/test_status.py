"""What luigid shows of a run: every task's status message reads cleanly (no Python artefacts such
as an empty dict or None) and every long step reports its progress at several points."""
from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict

import luigi
import luigi.interface
import luigi.scheduler

from tasks import ModelMonitoring
from tests.conftest import SMALL

# Text that only a formatted Python value leaves in a message.
ARTEFACTS = re.compile(r"\{\}|\[\]|\bNone\b|\bnan\b|\{'|\['")
# The task families of the long steps: ingest, validate, features, train, evaluate, score, monitor.
LONG_STEPS = ("RawPartition", "CleanPartition", "FeaturePartition", "CandidateModel", "ModelEvaluation",
              "Predictions", "ModelMonitoring")


class RecordingScheduler(luigi.scheduler.Scheduler):
    """The local scheduler, keeping every status message and progress percentage it is sent."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.messages: dict[str, list[str]] = defaultdict(list)
        self.percentages: dict[str, list[int]] = defaultdict(list)

    def set_task_status_message(self, task_id, status_message):
        self.messages[task_id].append(status_message)
        super().set_task_status_message(task_id, status_message)

    def set_task_progress_percentage(self, task_id, progress_percentage):
        self.percentages[task_id].append(progress_percentage)
        super().set_task_progress_percentage(task_id, progress_percentage)


class _Factory(luigi.interface._WorkerSchedulerFactory):
    def __init__(self, scheduler: luigi.scheduler.Scheduler):
        self.scheduler = scheduler

    def create_local_scheduler(self):
        return self.scheduler


def _family(task_id: str) -> str:
    return task_id.split("_", 1)[0]


def test_status_messages_are_clean_and_long_steps_report_progress(small_pipeline, luigi_config):
    luigi_config({**SMALL, "CandidateModel": {**SMALL["CandidateModel"], "tuning_trials": 2, "tuning_folds": 2}})
    scheduler = RecordingScheduler()
    result = luigi.build([ModelMonitoring(date=dt.date(2013, 1, 6))], local_scheduler=True,
                         detailed_summary=True, worker_scheduler_factory=_Factory(scheduler))
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text

    ran = set(scheduler.messages) | set(scheduler.percentages)
    assert {_family(t) for t in ran} >= set(LONG_STEPS)
    for task_id in ran:
        final = scheduler.get_task_status_message(task_id)["statusMessage"]
        assert final and not ARTEFACTS.search(final), (task_id, final)
        for message in scheduler.messages[task_id]:
            assert not ARTEFACTS.search(message), (task_id, message)
    for task_id in (t for t in ran if _family(t) in LONG_STEPS):
        steps = scheduler.percentages[task_id]
        assert len(set(steps)) >= 3 and steps == sorted(steps), (task_id, steps)
        assert scheduler.get_task_progress_percentage(task_id)["progressPercentage"] == 100, task_id
    training = [m for t, ms in scheduler.messages.items() if _family(t) == "CandidateModel" for m in ms]
    assert "tuning: 2 of 2 trials done" in training


class _Reporter:
    """luigi's TaskStatusReporter as a task sees it: bound methods of an object holding the scheduler."""

    def __init__(self, scheduler):
        self._scheduler = scheduler
        self.sent: list[tuple[str, object]] = []

    def update_status_message(self, message):
        self.sent.append(("message", message))

    def update_progress_percentage(self, percent):
        self.sent.append(("percent", percent))


def _reporting_task(scheduler):
    import types

    reporter = _Reporter(scheduler)
    return reporter, types.SimpleNamespace(set_status_message=reporter.update_status_message,
                                           set_progress_percentage=reporter.update_progress_percentage)


def test_through_luigid_a_task_sends_its_last_message_and_at_most_one_a_period(monkeypatch):
    import time

    import luigi.rpc

    from tasks import base

    monkeypatch.setattr(base, "_REMOTE_STATUS_EVERY", 0.2)
    reporter, task = _reporting_task(luigi.rpc.RemoteScheduler("http://127.0.0.1:9/"))  # never contacted
    base.set_status(task, "reading", 10)
    base.set_status(task, "parsing", 50)
    time.sleep(0.25)
    base.set_status(task, "writing", 80)
    base.set_status(task, "checking", 90)
    base.set_status(task, "1,000 rows ingested", 100)
    assert reporter.sent == [("message", "writing"), ("percent", 80), ("message", "1,000 rows ingested")]

    local, task = _reporting_task(luigi.scheduler.Scheduler())  # in this process: every update, as sent
    for message, percent in (("reading", 10), ("parsing", 50), ("done", 100)):
        base.set_status(task, message, percent)
    assert local.sent == [("message", "reading"), ("percent", 10), ("message", "parsing"), ("percent", 50),
                          ("message", "done"), ("percent", 100)]
