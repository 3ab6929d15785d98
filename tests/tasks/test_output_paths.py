"""complete_dates finds a range's finished days from listings, and builds only two tasks to know
every day's output path (building a task resolves its parameters from luigi.cfg: seconds a year)."""
from __future__ import annotations

import datetime as dt

from tasks import Deployment, FeaturePartition
from tasks.base import output_paths

DAYS = [dt.date(2013, 1, 1) + dt.timedelta(days=i) for i in range(60)]


class Built:
    """A stand-in task whose output path is whatever `path_of(day)` says."""

    def __init__(self, path):
        self.path = path

    def output(self):
        return self


def test_paths_are_derived_from_two_built_tasks_and_equal_the_real_ones(root, luigi_config):
    luigi_config({"pipeline": {"start_date": "2013-01-01", "warmup_days": 4}})
    for cls in (FeaturePartition, Deployment):
        built = []

        def make(day, cls=cls):
            built.append(day)
            return cls(date=day)

        paths = output_paths(make, DAYS)
        assert built == [DAYS[0], DAYS[-1]]
        assert paths == {day: cls(date=day).output().path for day in DAYS}


def test_a_path_that_depends_on_the_date_otherwise_is_built_for_every_day():
    def make(day):  # a lineage that changes with the month
        return Built(f"/root/zone/h={day.month}/date={day.isoformat()}/part-0.parquet")

    paths = output_paths(make, DAYS)
    assert paths == {day: make(day).path for day in DAYS}
    assert paths[DAYS[-1]].startswith("/root/zone/h=3/")
