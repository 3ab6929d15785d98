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


# ---- lineage: derived from parameters, settings and inputs ----------------------------------------
def lineages(day=dt.date(2013, 1, 20)) -> dict[str, str]:
    from tasks import CandidateModel, Deployment, FeaturePartition, ModelEvaluation, ModelMonitoring, Predictions

    return {cls.__name__: cls(date=day).lineage
            for cls in (FeaturePartition, CandidateModel, ModelEvaluation, Deployment, Predictions, ModelMonitoring)}


def changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def test_a_new_significant_parameter_enters_the_lineage_without_being_listed():
    import luigi

    from tasks.base import DailyTask, Lineage

    class Scores(Lineage, DailyTask):
        threshold = luigi.FloatParameter(default=0.5)
        verbose = luigi.BoolParameter(default=False, significant=False)

    base = Scores(date=dt.date(2013, 1, 1)).lineage
    assert Scores(date=dt.date(2013, 6, 1)).lineage == base  # never the date
    assert Scores(date=dt.date(2013, 1, 1), verbose=True).lineage == base  # not an insignificant one
    assert Scores(date=dt.date(2013, 1, 1), threshold=0.6).lineage != base

    class ScoresWithAWindow(Scores):
        window = luigi.IntParameter(default=3)  # declared; nothing else written for the lineage

    assert ScoresWithAWindow(date=dt.date(2013, 1, 1)).lineage != base


def test_each_setting_changes_exactly_the_lineages_downstream_of_it(luigi_config):
    before = lineages()
    luigi_config({"CandidateModel": {"learning_rate": 0.05}})  # a hyperparameter, declared only in Hyperparameters
    after_model = lineages()
    assert changed(before, after_model) == {"CandidateModel", "ModelEvaluation", "Deployment", "Predictions",
                                            "ModelMonitoring"}
    luigi_config({"gate": {"tolerance": 0.5}})
    after_gate = lineages()
    assert changed(after_model, after_gate) == {"ModelEvaluation", "Deployment", "Predictions", "ModelMonitoring"}
    luigi_config({"FeaturePartition": {"trailing_days": 2}})
    assert changed(after_gate, lineages()) == set(before)
    settled = lineages()
    luigi_config({"monitor": {"fail_on_alert": "true"}})  # decides the exit code, not the output
    assert lineages() == settled
    luigi_config({"monitor": {"feature_psi": 0.3}})
    assert changed(settled, lineages()) == {"ModelMonitoring"}


def test_the_deployment_chain_shares_one_lineage_from_its_first_day_on(luigi_config):
    from tasks.config import PipelineConfig

    first = PipelineConfig().first_deploy_date
    assert lineages(first) == lineages(first + dt.timedelta(days=1)) == lineages(first + dt.timedelta(days=40))
