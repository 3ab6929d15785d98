"""Training, evaluation against the model in production, and deployment decisions."""
from __future__ import annotations

import datetime as dt

import luigi

from pipeline import evaluation, registry, training
from tasks.config import limit_threads
from pipeline.dataset import DAY_COLUMN
from tasks.base import DailyTask, dataset, labelled_counts, pipeline, previous_day, read_partitions, st
from tasks.features import FeaturePartition

def model_columns() -> list[str]:
    """What the model stages read of a feature partition: the inputs, the target and the day."""
    return list(dict.fromkeys(dataset.features + [dataset.target.name, DAY_COLUMN]))


def feature_targets(days) -> dict:
    """{day: feature partition target} of `days`, in their order."""
    return {d: FeaturePartition(date=d).output() for d in days}


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
    max_train_rows = luigi.IntParameter(
        default=1_000_000, description="Cap on training rows: each day contributes its share, sampled reproducibly "
                                       "(seeded by random_state and the day) while the window is read day by day; "
                                       "0 = no cap")
    importance_repeats = luigi.IntParameter(
        default=1, description="Permutation-importance repeats on the holdout (shown in the evaluation report); 0 = off")
    tuning_trials = luigi.IntParameter(
        default=0, description="Candidate models compared by time-ordered CV inside the training window "
                               "(the configured one first); 0 = off: the configured model is the challenger")
    tuning_families = luigi.ListParameter(default=["hgb"], description='Model families searched: "hgb", "logreg"')
    tuning_folds = luigi.IntParameter(default=3, description="Time-ordered CV folds of the search")

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
                             start_date=pipeline().start_date, artifact=training.MODEL_FILE,
                             tuning=self.tuning, task=dataset.task)

    @property
    def tuning(self) -> dict:
        return {"trials": self.tuning_trials, "families": list(self.tuning_families),
                "folds": self.tuning_folds, "seed": self.random_state}

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
        return {"model": self.store.file(self.directory(), training.MODEL_FILE),
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
        self.status(f"reading and sampling the rows of {len(train_days)} days", 10)
        train = feature_targets(train_days)
        model, meta = training.fit_candidate(
            read_partitions(train, model_columns(), fingerprints),
            read_partitions(feature_targets(holdout_days), model_columns()),
            dataset.numeric_features, dataset.categorical_features, dataset.target.name, self.hyperparameters,
            self.max_train_rows, self.importance_repeats, self.tuning, day_column=DAY_COLUMN,
            labelled_by_day=labelled_counts(train, dataset.target.name) if self.max_train_rows else None,
            task=dataset.task)
        blob = training.dump_model(model)
        meta.update(training.provenance(self.date, self.lineage, blob, self.to_str_params(),
                                        train_days, holdout_days, fingerprints))
        st.write_bytes(self.files()["model"], blob)
        st.write_json(self.files()["metadata"], meta)
        st.write_flag(self.output())
        best = meta["tuning"]["best"]
        self.status(f"{meta['family']} trained on {meta['rows_trained']} of {meta['rows_labelled']} labelled rows"
                    + (f"; best of {len(meta['tuning']['trials'])} tuning trials, CV {best['score_name']} "
                       f"{best['mean_' + best['score_name']]:.4f}" if best else ""), 100)


class gate(luigi.Config):  # noqa: N801 - [gate] section
    """The deployment gate. Floors (ceilings) on the metrics of the dataset's task apply; those of
    the other task are ignored, so one luigi.cfg serves binary and regression datasets."""
    min_roc_auc = luigi.OptionalFloatParameter(default=0.60, description="Binary: floor on the challenger's holdout ROC AUC (empty: none)")
    min_average_precision = luigi.OptionalFloatParameter(default=None, description="Binary: floor on holdout average precision (empty: none)")
    max_log_loss = luigi.OptionalFloatParameter(default=None, description="Binary: ceiling on holdout log loss (empty: none)")
    max_brier = luigi.OptionalFloatParameter(default=None, description="Binary: ceiling on holdout Brier score (empty: none)")
    min_r2_vs_baseline = luigi.OptionalFloatParameter(
        default=0.0, description="Regression: floor on the holdout R2 against the naive baseline (predicting the "
                                 "training rows' mean); 0 = must beat it (empty: none)")
    min_r2 = luigi.OptionalFloatParameter(default=None, description="Regression: floor on holdout R2 (empty: none)")
    max_mae = luigi.OptionalFloatParameter(default=None, description="Regression: ceiling on holdout MAE (empty: none)")
    max_rmse = luigi.OptionalFloatParameter(default=None, description="Regression: ceiling on holdout RMSE (empty: none)")
    compare_metric = luigi.OptionalChoiceParameter(
        choices=sorted(evaluation.HIGHER_IS_BETTER), default=None, var_type=str,
        description="Metric of the challenger-vs-production comparison (empty: roc_auc for binary, r2_vs_baseline "
                    "for regression; the tolerance is in its units)")
    tolerance = luigi.FloatParameter(
        default=0.02, description="How much worse than production the challenger may be, at the interval's lower end")
    bootstrap_samples = luigi.IntParameter(default=1000, description="Paired bootstrap resamples of the holdout rows")
    confidence = luigi.FloatParameter(default=0.95, description="Confidence of the bootstrap interval")
    seed = luigi.IntParameter(default=0, description="Seed of the bootstrap resampling and of the holdout sample")
    max_eval_rows = luigi.IntParameter(
        default=20_000, description="Labelled holdout rows the gate scores and resamples (a seeded uniform sample "
                                    "when there are more); 0 = all")

    def rules(self) -> dict:
        task = dataset.task
        floors = {"roc_auc": self.min_roc_auc, "average_precision": self.min_average_precision,
                  "log_loss": self.max_log_loss, "brier": self.max_brier, "mae": self.max_mae,
                  "rmse": self.max_rmse, "r2": self.min_r2, "r2_vs_baseline": self.min_r2_vs_baseline}
        compare = self.compare_metric or evaluation.DEFAULT_COMPARE_METRIC[task]
        if compare not in evaluation.TASK_METRICS[task]:
            raise ValueError(f"[gate] compare_metric = {compare} is not a metric of a {task} target; choose one "
                             f"of {list(evaluation.TASK_METRICS[task])} or leave it empty")
        return {"floors": {k: v for k, v in floors.items() if v is not None and k in evaluation.TASK_METRICS[task]},
                "tolerance": self.tolerance, "compare_metric": compare, "bootstrap_samples": self.bootstrap_samples,
                "confidence": self.confidence, "seed": self.seed, "max_eval_rows": self.max_eval_rows}


def deployment_lineage(date: dt.date) -> str:
    return st.param_hash(model=CandidateModel(date=date).lineage, gate=gate().rules(),
                         warmup_days=pipeline().warmup_days)


def production_before(date: dt.date):
    """The Deployment task whose decision says which model was live before `date`, or None."""
    day = previous_day(date)
    return Deployment(date=day) if day >= pipeline().first_deploy_date else None


def with_production(date: dt.date, requirements: dict) -> dict:
    """`requirements` plus, under "production", the decision of the day before (if there is one)."""
    previous = production_before(date)
    return {**requirements, "production": previous} if previous else requirements


def live_version(store: st.Storage, date: dt.date) -> str | None:
    """The registry version in production for `date`: the one chosen by the deployment decision
    of the day before, unless a manual promote or rollback was recorded after that decision."""
    day = previous_day(date)
    override = registry.Registry(store).override_after(day)
    if override:
        return override["version"]
    previous = production_before(date)
    return st.read_json(previous.output())["production_version"] if previous else None


def load_live(store: st.Storage, date: dt.date):
    """(model, version) in production for `date` (sha256-checked), or (None, None)."""
    version = live_version(store, date)
    if version is None:
        return None, None
    model, _ = registry.Registry(store).load(version)
    return model, version


def last_decided(store: st.Storage) -> dt.date | None:
    """The latest date with a deployment decision under the configured lineage. Only a written
    decision counts, not the temporary file a worker killed while writing one leaves beside it."""
    output = Deployment(date=pipeline().first_deploy_date).output().path
    prefix, name = output.split("/date=")[0], output.rsplit("/", 1)[1]
    days = [p.split("/date=")[1].split("/")[0] for p in store.list_files(prefix)
            if "/date=" in p and p.endswith("/" + name)]
    return dt.date.fromisoformat(max(days)) if days else None


class ModelEvaluation(DailyTask):
    """The challenger vs the production model of the day before, on the same holdout rows."""

    def requires(self):
        return with_production(self.date, {"candidate": CandidateModel(date=self.date)})

    def directory(self) -> str:
        return self.store.partition("evaluations", dataset.name, self.date, deployment_lineage(self.date))

    def output(self):
        return self.store.flag(self.directory())

    def record(self):
        return self.store.file(self.directory(), "evaluation.json")

    def report(self):
        return self.store.file(self.directory(), "report.html")

    @limit_threads
    def run(self):
        candidate = self.requires()["candidate"]
        challenger, meta = candidate.load()
        production, version = load_live(self.store, self.date)
        self.status(f"evaluating on the holdout rows vs production {version}", 30)
        record, html = evaluation.evaluate_challenger(
            challenger, production, read_partitions(feature_targets(candidate.windows()[1]), model_columns()),
            dataset.numeric_features, dataset.categorical_features,
            dataset.target.name, gate().rules(), meta["importance"],
            title=f"Model evaluation {self.date}",
            context={"date": self.date.isoformat(), "challenger_id": f"{meta['lineage']}@{meta['date']}",
                     "production_version": version, "holdout_days": meta["holdout_days"]},
            task=dataset.task, baseline=meta.get("target_mean"))
        st.write_text(self.report(), html)
        st.write_json(self.record(), record)
        st.write_flag(self.output())
        self.status(evaluation.summary_line(record, dataset.task), 100)


class Deployment(DailyTask):
    """The deployment decision for `date`: publish a blessed challenger as a new registry version
    and move the production alias forward, or keep the previous production model."""

    def requires(self):
        return with_production(self.date, {"evaluation": ModelEvaluation(date=self.date)})

    def output(self):
        return self.store.file(self.store.partition("deployments", dataset.name, self.date,
                                                    deployment_lineage(self.date)), "decision.json")

    @limit_threads
    def run(self):
        evaluation_task = self.requires()["evaluation"]
        record = st.read_json(evaluation_task.record())
        before = record["production_version"]
        live = live_version(self.store, self.date)
        if live != before:
            raise registry.RegistryError(
                f"the production model for {self.date} is now {live}, but the evaluation compared the "
                f"challenger with {before} (a promote or rollback came in between); rerun the evaluation: "
                f"mlpipe invalidate --stage evaluation --start {self.date} --end {self.date} --yes")
        decision = registry.decide(self.date, record, before, deployment_lineage(self.date))
        if decision["blessed"]:
            publish_version(self.store, decision, evaluation_task, record)
        st.write_json(self.output(), decision)
        self.status(f"{decision['action']}: production is {decision['production_version']}", 100)


def publish_version(store: st.Storage, decision: dict, evaluation_task: ModelEvaluation, record: dict) -> None:
    """Publish the blessed challenger (model, evaluation, report; the manifest holds their
    sha256) and move the production alias to it."""
    reg = registry.Registry(store)
    candidate = evaluation_task.requires()["candidate"]
    meta = st.read_json(candidate.files()["metadata"])
    files = {training.MODEL_FILE: st.read_bytes(candidate.files()["model"]),
             "evaluation.json": st.read_bytes(evaluation_task.record()),
             "report.html": st.read_bytes(evaluation_task.report())}
    reg.publish(decision["production_version"], files,
                {**meta, "as_of": decision["date"], "metrics": record["challenger"],
                 "gate": record["decision"], "candidate_model": candidate.directory()})
    reg.move_alias(decision["production_version"], dt.date.fromisoformat(decision["date"]),
                   reason="; ".join(decision["reasons"]))


def move_production(store: st.Storage, version: str, kind: str, reason: str) -> dict:
    """A manual promote or rollback: production becomes `version` for every date after the last
    date with a deployment decision, so the next nightly run scores with it and compares its
    challenger with it. Returns the history record."""
    last = last_decided(store) or previous_day(pipeline().first_deploy_date)
    return registry.Registry(store).override(version, last, kind, reason)
