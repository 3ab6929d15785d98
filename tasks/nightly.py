"""The nightly entry point (everything for one day, from landing files to monitoring), the backfill
of a range, and the one list of the pipeline's stages that backfill, plan, invalidate and the
command line read."""
from __future__ import annotations

import datetime as dt

import luigi

from tasks.base import complete_dates
from tasks.config import PipelineConfig, current_dataset
from tasks.data import CleanPartition, CleanReference, RawPartition, RawReference
from tasks.features import FeaturePartition
from tasks.model import CandidateModel, Deployment, ModelEvaluation
from tasks.serving import ModelMonitoring, Predictions

# The stages, in pipeline order, by the name `--stage` takes (the words of the README's diagram).
# The data stages run from the start date on; the model stages from the first deploy date
# (start_date + warmup_days). The landing files before them are the upstream system's.
STAGES = {"ingest": RawPartition, "validate": CleanPartition, "features": FeaturePartition,
          "train": CandidateModel, "evaluate": ModelEvaluation, "deploy": Deployment, "score": Predictions,
          "monitor": ModelMonitoring}
DATA_STAGES = ("ingest", "validate", "features")
PER_TABLE = ("ingest", "validate")  # one task per daily table
# The names `--stage` took before the stages were named as in the README.
RENAMED = {"raw": "ingest", "clean": "validate", "candidate": "train", "evaluation": "evaluate",
           "deployment": "deploy", "predictions": "score", "monitoring": "monitor"}


REFERENCES = {"ingest": RawReference, "validate": CleanReference}  # a reference table's tasks


def stage_of(task) -> str | None:
    """The stage word of a task, a reference table's too (None for a landing file or a wrapper)."""
    return next((stage for stage, kind in (*STAGES.items(), *REFERENCES.items()) if type(task) is kind), None)


def stage_tasks(stage: str, day: dt.date) -> list:
    """The tasks of `stage` for `day`: one per daily table for ingest and validate, else one."""
    if stage in PER_TABLE:
        return [STAGES[stage](table=t, date=day) for t in current_dataset().daily_tables]
    return [STAGES[stage](date=day)]


def day_tasks(day: dt.date) -> list:
    """Every stage's tasks for `day`, in pipeline order (the data stages only before the first deploy date)."""
    first = PipelineConfig().first_deploy_date
    return [task for stage in STAGES if stage in DATA_STAGES or day >= first for task in stage_tasks(stage, day)]


class PipelineDateError(ValueError):
    pass


class NightlyPipeline(luigi.WrapperTask):
    """Deploy and monitor for `date` (before the first deploy date: the data stages only)."""
    date = luigi.DateParameter(description="The day to process, usually yesterday")

    def requires(self):
        cfg = PipelineConfig()
        if self.date < cfg.start_date:
            raise PipelineDateError(
                f"{self.date} is before the pipeline's start_date {cfg.start_date} ([pipeline] start_date "
                "in luigi.cfg); pick a later date or move start_date back")
        if self.date < cfg.first_deploy_date:
            return [FeaturePartition(date=self.date)]
        return [Deployment(date=self.date), ModelMonitoring(date=self.date)]

    @classmethod
    def bulk_complete(cls, parameter_tuples):
        """Complete dates with a few listings (one per output prefix), not requests per date."""
        days = list(parameter_tuples)
        first = PipelineConfig().first_deploy_date
        early = [d for d in days if d < first]
        late = [d for d in days if d >= first]
        done = set(FeaturePartition.bulk_complete(early)) if early else set()
        if late:
            done |= set(Deployment.bulk_complete(late)) & set(ModelMonitoring.bulk_complete(late))
        return sorted(done)


class NightlyRange(luigi.WrapperTask):
    """NightlyPipeline (or one stage) for every day of [start, end]: a backfill of whatever is
    missing. Complete days are found with one listing per output prefix, not a request per day."""
    start = luigi.DateParameter(description="First day of the range")
    end = luigi.DateParameter(description="Last day of the range (inclusive)")
    stage = luigi.ChoiceParameter(choices=["nightly", *STAGES], default="nightly", var_type=str,
                                  description="The stage to backfill; 'nightly' is the whole pipeline")

    def requires(self):
        if self.start > self.end:
            raise PipelineDateError(f"start {self.start} is after end {self.end}")
        if not hasattr(self, "_missing"):
            self._missing = self._missing_tasks()
        return self._missing

    def _missing_tasks(self) -> list:
        days = [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]
        if self.stage == "nightly":
            done = set(NightlyPipeline.bulk_complete(days))
            return [NightlyPipeline(date=d) for d in days if d not in done]
        if self.stage not in DATA_STAGES:
            days = [d for d in days if d >= PipelineConfig().first_deploy_date]
        if self.stage in PER_TABLE:
            makers = [lambda d, t=t: STAGES[self.stage](table=t, date=d) for t in current_dataset().daily_tables]
        else:
            makers = [lambda d: STAGES[self.stage](date=d)]
        missing = []
        for make in makers:
            done = set(complete_dates(make, days))
            missing.extend(make(d) for d in days if d not in done)
        return missing
