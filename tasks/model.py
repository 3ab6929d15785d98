"""Training, evaluation against the model in production, and deployment decisions."""
from __future__ import annotations

import datetime as dt

import luigi

from pipeline import evaluation, registry, training
from tasks.config import limit_threads
from tasks.base import DailyTask, dataset, pipeline, previous_day, read_frames, st
from tasks.features import FeaturePartition


class CandidateModel(DailyTask):
    """A model trained on the trailing window ending at `date`, minus the holdout days."""
    window_days = luigi.IntParameter(default=28, description="Days in the trailing window (train + holdout)")
    holdout_days = luigi.IntParameter(default=3, description="Last days of the window kept for evaluation")
    learning_rate = luigi.FloatParameter(default=0.1, description="Gradient boosting learning rate")
    max_iter = luigi.IntParameter(default=200, description="Maximum boosting iterations")
    max_leaf_nodes = luigi.IntParameter(default=31, description="Maximum leaves per tree")
    min_samples_leaf = luigi.IntParameter(default=40, description="Minimum rows per leaf")
    l2_regularization = luigi.FloatParameter(default=0.0, description="L2 penalty on leaf values")
    random_state = luigi.IntParameter(default=0, description="Seed of the estimator and row sampling")
    max_train_rows = luigi.IntParameter(default=0, description="Cap on training rows, sampled reproducibly; 0 = no cap")
    importance_repeats = luigi.IntParameter(
        default=1, description="Permutation-importance repeats on the holdout (shown in the evaluation report); 0 = off")

    @property
    def hyperparameters(self) -> training.Hyperparameters:
        return training.Hyperparameters(
            learning_rate=self.learning_rate, max_iter=self.max_iter, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            random_state=self.random_state)

    @property
    def lineage(self) -> str:
        """Hash of everything that shapes the model; part of every model-dependent path."""
        return st.param_hash(features=FeaturePartition(date=self.date).phash,
                             hp=self.hyperparameters.__dict__, window_days=self.window_days,
                             holdout_days=self.holdout_days, max_train_rows=self.max_train_rows,
                             importance_repeats=self.importance_repeats,
                             start_date=pipeline().start_date)

    def windows(self):
        return training.training_days(self.date, self.window_days, self.holdout_days, pipeline().start_date)

    def requires(self):
        train, holdout = self.windows()
        return [FeaturePartition(date=d) for d in train + holdout]

    def directory(self) -> str:
        return self.store.partition("models", "candidates", self.date, self.lineage)

    def output(self):
        return self.store.flag(self.directory())

    def files(self):
        return {"model": self.store.file(self.directory(), "model.pkl"),
                "metadata": self.store.file(self.directory(), "metadata.json")}

    def load(self):
        """(fitted model, metadata), the model's bytes checked against the recorded sha256."""
        meta = st.read_json(self.files()["metadata"])
        model_file = self.files()["model"]
        return training.load_model(st.read_bytes(model_file), meta["model_sha256"], model_file.path), meta

    @limit_threads
    def run(self):
        train_days, holdout_days = self.windows()
        fingerprints: dict[str, str] = {}
        frame = read_frames([FeaturePartition(date=d).output() for d in train_days], fingerprints)
        holdout = read_frames([FeaturePartition(date=d).output() for d in holdout_days])
        self.status(f"training on {len(frame)} rows of {len(train_days)} days", 10)
        model, meta = training.fit_candidate(frame, holdout, dataset.NUMERIC_FEATURES, dataset.CATEGORICAL_FEATURES,
                                             dataset.TARGET, self.hyperparameters, self.max_train_rows,
                                             self.importance_repeats)
        blob = training.dump_model(model)
        meta.update(training.provenance(self.date, self.lineage, blob, self.to_str_params(),
                                        train_days, holdout_days, fingerprints))
        st.write_bytes(self.files()["model"], blob)
        st.write_json(self.files()["metadata"], meta)
        st.write_flag(self.output())
        self.status(f"trained on {meta['rows_trained']} rows, {meta['n_iter']} iterations", 100)


class gate(luigi.Config):  # noqa: N801 - [gate] section
    min_roc_auc = luigi.FloatParameter(default=0.60, description="Absolute floor on the challenger's holdout ROC AUC")
    tolerance = luigi.FloatParameter(default=0.005, description="How much worse than production (ROC AUC) a challenger may be")


def deployment_lineage(date: dt.date) -> str:
    g = gate()
    return st.param_hash(model=CandidateModel(date=date).lineage, min_roc_auc=g.min_roc_auc,
                         tolerance=g.tolerance, warmup_days=pipeline().warmup_days)


def production_before(date: dt.date):
    """The Deployment task whose decision says which model was live before `date`, or None."""
    day = previous_day(date)
    return Deployment(date=day) if day >= pipeline().first_deploy_date else None


def with_production(date: dt.date, requirements: dict) -> dict:
    """`requirements` plus, under "production", the decision of the day before (if there is one)."""
    previous = production_before(date)
    return {**requirements, "production": previous} if previous else requirements


class ModelEvaluation(DailyTask):
    """The challenger vs the production model of the day before, on the same holdout rows."""

    def requires(self):
        return with_production(self.date, {"candidate": CandidateModel(date=self.date)})

    def directory(self) -> str:
        return self.store.partition("evaluations", dataset.NAME, self.date, deployment_lineage(self.date))

    def output(self):
        return self.store.flag(self.directory())

    def record(self):
        return self.store.file(self.directory(), "evaluation.json")

    @limit_threads
    def run(self):
        candidate = self.requires()["candidate"]
        challenger, meta = candidate.load()
        production, version = load_production(self.store, self.input().get("production"))
        holdout = read_frames([FeaturePartition(date=d).output() for d in candidate.windows()[1]])
        self.status(f"evaluating on {len(holdout)} holdout rows vs production {version}", 30)
        g = gate()
        record, html = evaluation.evaluate_challenger(
            challenger, production, holdout, dataset.NUMERIC_FEATURES, dataset.CATEGORICAL_FEATURES,
            dataset.TARGET, {"roc_auc": g.min_roc_auc}, g.tolerance, meta["importance"],
            title=f"Model evaluation {self.date}",
            context={"date": self.date.isoformat(), "challenger_id": f"{meta['lineage']}@{meta['date']}",
                     "production_version": version, "holdout_days": meta["holdout_days"]})
        st.write_text(self.store.file(self.directory(), "report.html"), html)
        st.write_json(self.record(), record)
        st.write_flag(self.output())
        self.status(evaluation.summary_line(record), 100)


def load_production(store: st.Storage, decision_target):
    """(model, version) live according to a deployment decision record, or (None, None)."""
    if decision_target is None:
        return None, None
    version = st.read_json(decision_target)["production_version"]
    if version is None:
        return None, None
    model, _ = registry.Registry(store).load(version)
    return model, version


class Deployment(DailyTask):
    """The deployment decision for `date`: publish a blessed challenger as a new registry version
    and move the production alias forward, or keep the previous production model."""

    def requires(self):
        return with_production(self.date, {"evaluation": ModelEvaluation(date=self.date)})

    def output(self):
        return self.store.file(self.store.partition("deployments", dataset.NAME, self.date,
                                                    deployment_lineage(self.date)), "decision.json")

    @limit_threads
    def run(self):
        evaluation_task = self.requires()["evaluation"]
        record = st.read_json(evaluation_task.record())
        previous = st.read_json(self.input()["production"]) if "production" in self.input() else None
        decision = registry.decide(self.date, record, previous, deployment_lineage(self.date))
        if decision["blessed"]:
            publish_version(self.store, decision, evaluation_task.requires()["candidate"], record)
        st.write_json(self.output(), decision)
        self.status(f"{decision['action']}: production is {decision['production_version']}", 100)


def publish_version(store: st.Storage, decision: dict, candidate: CandidateModel, record: dict) -> None:
    reg = registry.Registry(store)
    meta = st.read_json(candidate.files()["metadata"])
    reg.publish(decision["production_version"], st.read_bytes(candidate.files()["model"]),
                {**meta, "as_of": decision["date"]}, record)
    reg.move_alias(decision["production_version"], dt.date.fromisoformat(decision["date"]),
                   reason="; ".join(decision["reasons"]))
