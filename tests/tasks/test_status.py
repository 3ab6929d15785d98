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
