"""The nightly entry point: everything for one day, from landing files to monitoring."""
from __future__ import annotations

import datetime as dt

import luigi

from tasks.base import pipeline
from tasks.features import FeaturePartition
from tasks.model import Deployment
from tasks.serving import ModelMonitoring


class PipelineDateError(ValueError):
    pass


class NightlyPipeline(luigi.WrapperTask):
    """Deploy and monitor for `date` (before the first deploy date: the data stages only)."""
    date = luigi.DateParameter(description="The day to process, usually yesterday")

    def requires(self):
        cfg = pipeline()
        if self.date < cfg.start_date:
            raise PipelineDateError(
                f"{self.date} is before the pipeline's start_date {cfg.start_date} ([pipeline] start_date "
                "in luigi.cfg); pick a later date or move start_date back")
        if self.date < cfg.first_deploy_date:
            return [FeaturePartition(date=self.date)]
        return [Deployment(date=self.date), ModelMonitoring(date=self.date)]


class NightlyRange(luigi.WrapperTask):
    """NightlyPipeline for every day of [start, end]: a backfill of whatever is missing."""
    start = luigi.DateParameter(description="First day of the range")
    end = luigi.DateParameter(description="Last day of the range (inclusive)")

    def requires(self):
        if self.start > self.end:
            raise PipelineDateError(f"start {self.start} is after end {self.end}")
        days = (self.end - self.start).days + 1
        return [NightlyPipeline(date=self.start + dt.timedelta(days=i)) for i in range(days)]
