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

    @classmethod
    def bulk_complete(cls, parameter_tuples):
        """Complete dates with a few listings (one per output prefix), not requests per date."""
        days = list(parameter_tuples)
        first = pipeline().first_deploy_date
        early = [d for d in days if d < first]
        late = [d for d in days if d >= first]
        done = set(FeaturePartition.bulk_complete(early)) if early else set()
        if late:
            done |= set(Deployment.bulk_complete(late)) & set(ModelMonitoring.bulk_complete(late))
        return sorted(done)


class NightlyRange(luigi.WrapperTask):
    """NightlyPipeline for every day of [start, end]: a backfill of whatever is missing."""
    start = luigi.DateParameter(description="First day of the range")
    end = luigi.DateParameter(description="Last day of the range (inclusive)")

    def requires(self):
        """NightlyPipeline for the days not yet complete (found with bulk listings, once)."""
        if self.start > self.end:
            raise PipelineDateError(f"start {self.start} is after end {self.end}")
        if not hasattr(self, "_missing"):
            days = [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]
            done = set(NightlyPipeline.bulk_complete(days))
            self._missing = [NightlyPipeline(date=d) for d in days if d not in done]
        return self._missing
