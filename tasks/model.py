"""Training, evaluation against the model in production, and deployment decisions."""
from __future__ import annotations

import dataclasses
import datetime as dt

import luigi

from pipeline import deployment, evaluation, layout, registry, training
from pipeline import storage as st
from pipeline.artifact import check_sha256, dump_model, load_model
from pipeline.dataset import DAY_COLUMN
from pipeline.estimators import Hyperparameters
from pipeline.metrics import naive_baseline
from pipeline.layout import EVALUATION_FILE, DECISION_FILE, METADATA_FILE, MODEL_FILE, REPORT_FILE
from pipeline.partitions import labelled_counts, read_partitions
from tasks import notify
from tasks.base import DailyTask, Lineage, Sealed, previous_day, significant_params
from tasks.config import GateConfig, PipelineConfig, current_dataset, keyring, model_registry
from tasks.features import FeaturePartition
from tasks.threads import limit_threads

_PARAMETERS = {float: luigi.FloatParameter, int: luigi.IntParameter, bool: luigi.BoolParameter}


def _hyperparameter(field: dataclasses.Field) -> luigi.Parameter:
    return _PARAMETERS[type(field.default)](default=field.default, description=field.metadata["help"])


# One luigi parameter per field of pipeline.estimators.Hyperparameters ([CandidateModel] learning_rate
# and so on in luigi.cfg), so a hyperparameter is declared once, there.
HyperparameterParameters = type("HyperparameterParameters", (), {
    f.name: _hyperparameter(f) for f in dataclasses.fields(Hyperparameters)})


def model_columns() -> list[str]:
    """What the model stages read of a feature partition: the inputs, the target and the day."""
    data = current_dataset()
    return list(dict.fromkeys(data.features + [data.target.name, DAY_COLUMN]))


def feature_targets(days) -> dict:
    """{day: feature partition target} of `days`, in their order."""
    return {d: FeaturePartition(date=d).data() for d in days}


class CandidateModel(Lineage, HyperparameterParameters, Sealed, DailyTask):
    """A model trained on the trailing window ending at `date`, minus the holdout days."""
    window_days = luigi.IntParameter(default=28, description="Days in the trailing window (train + holdout)")
    holdout_days = luigi.IntParameter(default=3, description="Last days of the window kept for evaluation")
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
    # Not significant: it decides whether a model is trained, never what a trained model is, so
    # changing it leaves the lineage (and every stored model) as it is.
    min_train_rows = luigi.IntParameter(
        default=500, significant=False,
        description="Fewest labelled rows in the training days of the window; fewer fails the task")

    # The memory-heavy step (its window's sample, the fit, the importance): luigid runs at most
    # [resources] training of them at once, across every host and process ([resources] in luigi.cfg).
    resources = {"training": 1}

    @property
    def hyperparameters(self) -> Hyperparameters:
        return Hyperparameters(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Hyperparameters)})

    def lineage_facts(self) -> dict:
        return {"start_date": PipelineConfig().start_date, "artifact": MODEL_FILE}

    def lineage_inputs(self) -> list:
        return [FeaturePartition(date=self.date)]  # every day of the window shares its lineage

    @property
    def tuning(self) -> dict:
        return {"trials": self.tuning_trials, "families": list(self.tuning_families),
                "folds": self.tuning_folds, "seed": self.random_state}

    def windows(self):
        return training.training_days(self.date, self.window_days, self.holdout_days, PipelineConfig().start_date)

    def requires(self):
        train, holdout = self.windows()
        return [FeaturePartition(date=d) for d in train + holdout]

    def directory(self) -> str:
        return self.store.partition("models", "candidates", self.date, self.lineage)

    def files(self):
        return {"model": self.file(MODEL_FILE), "metadata": self.file(METADATA_FILE)}

    def metadata(self) -> dict:
        """The training metadata, once its signature by an accepted key is checked."""
        return registry.read_signed(self.files()["metadata"], keyring())

    def model_bytes(self, meta: dict) -> bytes:
        """The model file, checked against the sha256 in its signed metadata `meta` (metadata())."""
        model_file = self.files()["model"]
        data = st.read_bytes(model_file)
        check_sha256(data, meta["model_sha256"], model_file.path)
        return data

    def load(self):
        """(fitted model, metadata): the metadata's signature, then the model's sha256 checked."""
        meta, model_file = self.metadata(), self.files()["model"]
        return load_model(st.read_bytes(model_file), meta["model_sha256"], model_file.path), meta

    @limit_threads
    def run(self):
        data, (train_days, holdout_days) = current_dataset(), self.windows()
        fingerprints: dict[str, str] = {}
        self.status(f"reading and sampling the rows of {len(train_days)} days", 10)
        train = feature_targets(train_days)
        model, meta = training.fit_candidate(
            read_partitions(train, model_columns(), fingerprints),
            read_partitions(feature_targets(holdout_days), model_columns()),
            data.numeric_features, data.categorical_features, data.target.name, self.hyperparameters,
            self.max_train_rows, self.importance_repeats, data.problem, self.min_train_rows, self.tuning,
            day_column=DAY_COLUMN,
            labelled_by_day=labelled_counts(train, data.target.name) if self.max_train_rows else None,
            progress=self.status)
        self.status("writing the model and its signed metadata", 90)
        blob = dump_model(model)
        meta.update(training.provenance(self.date, self.lineage, blob, self.to_str_params(),
                                        train_days, holdout_days, fingerprints))
        files = self.files()
        self.seal({files["model"]: st.write_bytes(files["model"], blob),
                   **registry.write_signed(files["metadata"], meta, keyring())})
        self.status(training.summary_line(meta), 100)


def production_before(date: dt.date):
    """The Deployment task whose decision says which model was live before `date`, or None."""
    day = previous_day(date)
    return Deployment(date=day) if day >= PipelineConfig().first_deploy_date else None


def with_production(date: dt.date, requirements: dict) -> dict:
    """`requirements` plus, under "production", the decision of the day before (if there is one)."""
    previous = production_before(date)
    return {**requirements, "production": previous} if previous else requirements


def live_version(store: st.Storage, date: dt.date, seen: registry.AliasRead | None = None) -> str | None:
    """The registry version in production for `date` (pipeline.deployment.live_version; `seen`:
    the production alias as the caller read it)."""
    previous = production_before(date)
    decision = st.read_json(previous.data()) if previous else None
    return deployment.live_version(model_registry(store), date, decision, seen)


def load_live(store: st.Storage, date: dt.date):
    """(model, version) in production for `date` (sha256-checked), or (None, None)."""
    version = live_version(store, date)
    if version is None:
        return None, None
    model, _ = model_registry(store).load(version)
    return model, version


def last_decided(store: st.Storage) -> dt.date | None:
    """The latest date with a deployment decision under the configured lineage."""
    output = Deployment(date=PipelineConfig().first_deploy_date).output().path
    return deployment.last_decided(store.list_files(layout.undated(output)))


def move_production(store: st.Storage, version: str, kind: str, reason: str) -> dict:
    """A manual promote or rollback (pipeline.deployment.move_production), after the last decision."""
    return deployment.move_production(model_registry(store), version, kind, reason, last_decided(store),
                                      PipelineConfig().first_deploy_date)


class FollowsProduction(Lineage):
    """A task of the deployment chain: its link to the decision of the day before ("production")
    is left out of its lineage inputs, being its own chain one day earlier."""

    def lineage_inputs(self) -> list:
        return [task for key, task in self.requires().items() if key != "production"]


class ModelEvaluation(FollowsProduction, Sealed, DailyTask):
    """The challenger vs the production model of the day before, on the same holdout rows."""

    def requires(self):
        return with_production(self.date, {"candidate": CandidateModel(date=self.date)})

    def lineage_facts(self) -> dict:
        return {"gate": significant_params(GateConfig()), "warmup_days": PipelineConfig().warmup_days}

    def directory(self) -> str:
        return self.store.partition("evaluations", current_dataset().name, self.date, self.lineage)

    def record(self):
        return self.file(EVALUATION_FILE)

    def report(self):
        return self.file(REPORT_FILE)

    @limit_threads
    def run(self):
        data, candidate = current_dataset(), self.requires()["candidate"]
        self.status("loading the challenger and the production model", 5)
        challenger, meta = candidate.load()
        production, version = load_live(self.store, self.date)
        rules = GateConfig().rules(data.problem)
        self.status(f"scoring the holdout rows and {rules['bootstrap_samples']} bootstrap resamples vs production "
                    f"{version}" if version else "scoring the holdout rows (no production model to compare with)", 20)
        record, html = evaluation.evaluate_challenger(
            challenger, production, read_partitions(feature_targets(candidate.windows()[1]), model_columns()),
            data.numeric_features, data.categorical_features, data.target.name, rules,
            meta["importance"], title=f"Model evaluation {self.date}",
            context=evaluation.context(self.date, meta, version), problem=data.problem,
            baseline=naive_baseline(meta))
        self.status("writing the evaluation record and report", 90)
        self.seal({self.report(): st.write_text(self.report(), html),
                   self.record(): st.write_json(self.record(), record)})
        self.status(evaluation.summary_line(record, data.problem), 100)


class Deployment(FollowsProduction, Sealed, DailyTask):
    """The deployment decision for `date`: publish a blessed challenger as a new registry version
    and move the production alias forward, or keep the previous production model."""

    def requires(self):
        return with_production(self.date, {"evaluation": ModelEvaluation(date=self.date)})

    @property
    def resources(self) -> dict:
        """One publisher per storage root at a time among every worker of a central scheduler
        (luigid allows one of a resource it has no [resources] limit for)."""
        return {f"mlpipe-registry:{self.store.root}": 1}

    def directory(self) -> str:
        return self.store.partition("deployments", current_dataset().name, self.date, self.lineage)

    def data(self):
        return self.file(DECISION_FILE)

    @limit_threads
    def run(self):
        evaluated = self.requires()["evaluation"]
        record = st.read_json(evaluated.record())
        seen = model_registry(self.store).read_alias()  # one read for the check and the alias move
        deployment.check_compared_with_live(self.date, live_version(self.store, self.date, seen),
                                            record["production_version"])
        decision = deployment.decide(self.date, record, record["production_version"], self.lineage)
        if decision["blessed"]:
            self.publish(decision, evaluated, record, seen)
        self.seal({self.data(): st.write_json(self.data(), decision)})
        self.status(f"{decision['action']}: production is {decision['production_version'] or 'none yet'}", 100)
        notify.send_decision(decision)  # deployed or gate_rejected: after the decision is stored

    def publish(self, decision: dict, evaluated: ModelEvaluation, record: dict, seen: registry.AliasRead) -> None:
        """Publish the blessed challenger (model, evaluation, report; the manifest holds their sha256)
        and move the alias, if it is still as `seen`."""
        candidate = evaluated.requires()["candidate"]
        meta = candidate.metadata()
        files = {MODEL_FILE: candidate.model_bytes(meta),
                 EVALUATION_FILE: st.read_bytes(evaluated.record()), REPORT_FILE: st.read_bytes(evaluated.report())}
        deployment.publish(model_registry(self.store), decision, files,
                           {**meta, "as_of": decision["date"], "metrics": record["challenger"],
                            "gate": record["decision"], "candidate_model": candidate.directory()}, seen)
