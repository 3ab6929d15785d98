"""What the read-only commands compute, as data: realized metrics over a range, a day's summary,
which model scored a day, the registry's versions, and the monitoring page's inputs. Printing is
the command line's (tasks.cli); these are tested without a terminal."""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from pipeline import monitoring, registry, tuning
from pipeline import storage as st
from pipeline.estimators import FAMILIES
from pipeline.layout import EVALUATION_FILE, MODEL_FILE, REPORT_FILE
from pipeline.partitions import read_frames
from tasks.config import current_dataset, get_storage, model_registry
from tasks.features import FeaturePartition
from tasks.model import CandidateModel, Deployment, ModelEvaluation, live_version
from tasks.serving import ModelMonitoring, Predictions
from tasks.threads import limit_threads


class QueryError(RuntimeError):
    """What was asked for is not stored (or not consistent); the message says what to run."""


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    if start > end:
        raise QueryError(f"--start {start} is after --end {end}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def realized(start: dt.date, end: dt.date) -> dict:
    """Pooled realized metrics of the stored predictions of [start, end] joined with their
    outcomes, and the days without stored predictions."""
    data = current_dataset()
    frames, missing = [], []
    for day in days_between(start, end):
        predicted, featured = Predictions(date=day), FeaturePartition(date=day)
        if not (predicted.output().exists() and featured.output().exists()):
            missing.append(day.isoformat())
            continue
        pred, feat = predicted.data(), featured.data()
        scores = st.read_parquet(pred, columns=["score"])
        labels = st.read_parquet(feat, columns=[data.target.name])
        if len(scores) != len(labels):
            raise QueryError(f"{pred.path} has {len(scores)} rows but {feat.path} has {len(labels)}")
        frames.append(pd.concat([scores, labels], axis=1))
    result = monitoring.realized_over(frames, data.target.name, data.problem)
    result.update(start=start.isoformat(), end=end.isoformat(), days_missing=missing)
    return result


def day_summary(date: dt.date) -> dict:
    """Where a date's artifacts are and what they say: the decision, the production model, the
    evaluation (both models' holdout metrics, the gate) and the day's monitoring."""
    store = get_storage()
    decided, evaluated, monitored = Deployment(date=date), ModelEvaluation(date=date), ModelMonitoring(date=date)
    if not decided.output().exists():
        raise QueryError(f"no deployment decision for {date} under {store.root}; run "
                         f"`mlpipe run --date {date}` first")
    decision = st.read_json(decided.data())
    version = decision["production_version"]
    return {
        "storage_root": store.root,
        "decision": {"path": decided.data().path, "action": decision["action"]},
        "production": {"version": version,
                       "model": store.file(model_registry(store).version_dir(version), MODEL_FILE).path}
        if version else None,
        "report": store.file(evaluated.directory(), REPORT_FILE).path,
        "evaluation": st.read_json(evaluated.record()),
        "monitoring": {"path": monitored.data().path,
                       "record": st.read_json(monitored.data()) if monitored.output().exists() else None},
    }


def which(date: dt.date) -> dict:
    """Which version scored `date` (from the predictions' own record), or, not scored yet, which
    one is in production for it (from the decisions)."""
    predicted = Predictions(date=date)
    if predicted.output().exists():
        target = predicted.data()
        versions = st.read_parquet(target, columns=["model_version"])["model_version"].dropna().unique().tolist()
        return {"scored": True, "versions": versions, "recorded_in": target.path}
    try:
        return {"scored": False, "live": live_version(get_storage(), date)}
    except FileNotFoundError:
        raise QueryError(f"no deployment decision for the day before {date}") from None


def model_versions() -> list[dict]:
    """Each published version: its manifest, the dates it served and whether it is in production."""
    reg = model_registry()
    alias = reg.alias()
    served: dict[str, list[str]] = {}
    for period in registry.live_periods(reg.history()):
        if period["served"]:
            served.setdefault(period["version"], []).append(f"{period['from']}..{period['to'] or 'now'}")
    return [{"version": v, "manifest": reg.manifest(v), "served": served.get(v, []),
             "live": bool(alias and alias["version"] == v)} for v in reg.versions()]


def model_details(version: str) -> dict:
    """A version ('production': the live one) with its manifest, file checks and live periods."""
    reg = model_registry()
    if version == "production":
        alias = reg.alias()
        if not alias:
            raise QueryError("no model is in production yet")
        version = alias["version"]
    try:
        manifest = reg.manifest(version)
    except registry.RegistryError as exc:
        raise QueryError(str(exc)) from None
    return {"version": version, "directory": reg.version_dir(version), "manifest": manifest,
            "checks": reg.verify(version), "signature": reg.signature(version),
            "periods": [p for p in registry.live_periods(reg.history()) if p["version"] == version]}


def monitoring_days(start: dt.date, end: dt.date) -> dict:
    """What the monitoring page shows: each monitored day's record, the days without one, every
    alias move, and the model in production with its manifest and evaluation."""
    reg = model_registry()
    days, missing = [], []
    for day in days_between(start, end):
        monitored = ModelMonitoring(date=day)
        if monitored.output().exists():
            days.append(st.read_json(monitored.data()))
        else:
            missing.append(day.isoformat())
    alias, current = reg.alias(), None
    if alias:
        current = {"version": alias["version"], "manifest": reg.manifest(alias["version"]),
                   "evaluation": json.loads(reg.read_file(alias["version"], EVALUATION_FILE))}
    return {"days": days, "missing": missing, "events": reg.history(), "current": current}


def tuning_search(date: dt.date, trials: int, families: list[str] | None, folds: int, seed: int) -> dict:
    """A search over `trials` candidate models on the training window of `date` (deploys nothing):
    the window's days, the best spec and every trial (pipeline.tuning.search)."""
    data, candidate = current_dataset(), CandidateModel(date=date)
    train_days, _ = candidate.windows()
    missing = [d for d in train_days if not FeaturePartition(date=d).output().exists()]
    if missing:
        raise QueryError(f"no feature partition for {len(missing)} day(s) of the window ({missing[0]}...); run "
                         f"`mlpipe backfill --stage features --start {train_days[0]} --end {train_days[-1]}` first")
    frame = read_frames([FeaturePartition(date=d).data() for d in train_days])

    @limit_threads
    def run(_):
        return tuning.search(frame, frame["date"], data.numeric_features, data.categorical_features,
                             data.target.name, candidate.hyperparameters.model_params(), trials,
                             families or list(FAMILIES[data.problem]), folds, seed, candidate.random_state,
                             data.problem, candidate.max_train_rows)
    try:
        best, records = run(None)
    except ValueError as exc:  # too few days or one class in a fold: the message says which
        raise QueryError(str(exc)) from None
    return {"train_days": train_days, "best": best, "trials": records}
