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
from pipeline.metrics import PROBLEM_METRICS, naive_baseline
from pipeline.partitions import read_frames
from tasks.config import PipelineConfig, current_dataset, get_storage, model_registry
from tasks.features import FeaturePartition
from tasks.model import CandidateModel, Deployment, ModelEvaluation, live_version
from tasks.serving import ModelMonitoring, Predictions
from tasks.threads import limit_threads


class QueryError(RuntimeError):
    """What was asked for is not stored (or not consistent); the message says what to run."""


class NotRunYet(QueryError):
    """The outputs a date's question needs are not stored yet: the pipeline has not run for it."""


class DateBeforeStart(QueryError):
    """A date before [pipeline] start_date: a mistake in the command or the configuration."""


class WarmUpDay(QueryError):
    """A date of the warm-up, which has no model: the message is the answer, not an error."""


def check_model_day(date: dt.date) -> None:
    """DateBeforeStart for a date before [pipeline] start_date, WarmUpDay for one before the first
    deploy date (start_date + warmup_days); nothing for a day the model stages run."""
    cfg = PipelineConfig()
    if date < cfg.start_date:
        raise DateBeforeStart(f"{date} is before the pipeline's start_date {cfg.start_date} ([pipeline] start_date "
                              "in luigi.cfg); pick a later date or move start_date back")
    if date < cfg.first_deploy_date:
        raise WarmUpDay(f"{date} is a warm-up day: the pipeline builds data only until the first model is deployed "
                        f"on {cfg.first_deploy_date} ([pipeline] start_date + warmup_days)")


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    if start > end:
        raise QueryError(f"--start {start} is after --end {end}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def realized(start: dt.date, end: dt.date) -> dict:
    """Pooled realized metrics of the stored predictions of [start, end] joined with their
    outcomes, and the days without stored predictions."""
    data = current_dataset()
    frames, missing, baselines = [], [], {}
    for day in days_between(start, end):
        predicted, featured = Predictions(date=day), FeaturePartition(date=day)
        if not (predicted.output().exists() and featured.output().exists()):
            missing.append(day.isoformat())
            continue
        pred, feat = predicted.data(), featured.data()
        scores = st.read_parquet(pred, columns=["score", "model_version"])
        labels = st.read_parquet(feat, columns=[data.target.name])
        if len(scores) != len(labels):
            raise QueryError(f"{pred.path} has {len(scores)} rows but {feat.path} has {len(labels)}")
        if data.problem == "regression":  # each row against the training mean of the model that scored it
            for version in scores["model_version"].dropna().unique():
                if version not in baselines:
                    baselines[version] = naive_baseline(model_registry().manifest(version))
            scores = scores.assign(baseline=scores["model_version"].map(baselines).astype(float))
        frames.append(pd.concat([scores.drop(columns="model_version"), labels], axis=1))
    result = monitoring.realized_over(frames, data.target.name, data.problem)
    result.update(start=start.isoformat(), end=end.isoformat(), days_missing=missing)
    return result


def day_summary(date: dt.date) -> dict:
    """What a date's outputs say, as `mlpipe summary` leads with them: the model in production
    after the date's decision and since when, the realized metrics of the model that scored the
    date (that day, and the daily mean over its days in production), the decision and its reasons,
    the evaluation (both models' holdout metrics), the monitoring record, and every path.
    WarmUpDay or DateBeforeStart for a date without model stages; NotRunYet without a decision."""
    check_model_day(date)
    store = get_storage()
    decided, evaluated, monitored = Deployment(date=date), ModelEvaluation(date=date), ModelMonitoring(date=date)
    if not decided.output().exists():
        raise NotRunYet(f"no deployment decision for {date} under {store.root}; run `mlpipe run --date {date}` first")
    decision = st.read_json(decided.data())
    version = decision["production_version"]
    reg = model_registry(store)
    record = st.read_json(monitored.data()) if monitored.output().exists() else None
    periods = registry.live_periods(reg.history())
    return {
        "storage_root": store.root,
        "decision": {"path": decided.data().path, "action": decision["action"], "reasons": decision["reasons"],
                     "blessed": decision["blessed"], "before": decision.get("production_version_before")},
        "production": {"version": version, "model": store.file(reg.version_dir(version), MODEL_FILE).path,
                       "since": _period_of(periods, version, date + dt.timedelta(days=1))}
        if version else None,
        "report": store.file(evaluated.directory(), REPORT_FILE).path,
        "evaluation": st.read_json(evaluated.record()),
        "monitoring": {"path": monitored.data().path, "record": record},
        "served": _served_quality(periods, record, date),
    }


def _period_of(periods: list[dict], version: str, day: dt.date) -> dict | None:
    """The live period (registry.live_periods) in which `version` serves `day`."""
    for period in reversed(periods):
        if (period["version"] == version and period["from"] <= day.isoformat()
                and (period["to"] is None or day.isoformat() <= period["to"])):
            return period
    return None


def _served_quality(periods: list[dict], record: dict | None, date: dt.date) -> dict | None:
    """The daily mean of each realized metric of the model that scored `date`, over the days of
    its live period up to `date` that have a monitoring record of that model."""
    version = (record or {}).get("model_version")
    period = _period_of(periods, version, date) if version else None
    if period is None:
        return None
    names = PROBLEM_METRICS[current_dataset().problem]
    values: dict[str, list[float]] = {name: [] for name in names}
    days = 0
    for day in days_between(dt.date.fromisoformat(period["from"]), date):
        monitored = ModelMonitoring(date=day)
        if not monitored.output().exists():
            continue
        day_record = st.read_json(monitored.data())
        if day_record.get("model_version") != version:
            continue
        days += 1
        for name in names:
            value = (day_record.get("realized") or {}).get(name)
            if value is not None:
                values[name].append(value)
    return {"version": version, "from": period["from"], "days": days,
            "daily_mean": {name: sum(v) / len(v) for name, v in values.items() if v}}


def which(date: dt.date) -> dict:
    """Which version scored `date` (from the predictions' own record), or, not scored yet, which
    one is in production for it (from the decisions): {"version", "scored", "recorded_in" or
    "decided_on"}, with version None and a "why" when no model is in production for it.
    DateBeforeStart for a date before [pipeline] start_date; NotRunYet without the decision of
    the day before."""
    try:
        check_model_day(date)
    except WarmUpDay as warmup:
        return {"version": None, "scored": False, "why": str(warmup)}
    first = PipelineConfig().first_deploy_date
    predicted = Predictions(date=date)
    if predicted.output().exists():
        target = predicted.data()
        versions = st.read_parquet(target, columns=["model_version"])["model_version"].dropna().unique().tolist()
        if versions:
            return {"version": ", ".join(versions), "scored": True, "recorded_in": target.path}
    day_before = date - dt.timedelta(days=1)
    try:
        version = live_version(get_storage(), date)
    except FileNotFoundError:
        raise NotRunYet(f"no model in production on {date}: no deployment decision is stored yet for {day_before}; "
                        f"run `mlpipe run --date {day_before}` first") from None
    if version:
        return {"version": version, "scored": False, "decided_on": day_before.isoformat()}
    why = (f"the first model is deployed by the decision of {first} and serves from {first + dt.timedelta(days=1)}"
           if date == first else f"no model was in production after the decision of {day_before}")
    return {"version": None, "scored": False, "why": why}


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
            raise NotRunYet("no model is in production yet: the first is deployed by `mlpipe run` on the first deploy date")
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
    try:
        train_days, _ = candidate.windows()
    except ValueError as exc:  # a window too short for the date: the message says which
        raise QueryError(str(exc)) from None
    missing = [d for d in train_days if not FeaturePartition(date=d).output().exists()]
    if missing:
        raise NotRunYet(f"no feature partition for {len(missing)} day(s) of the window ({missing[0]}...); run "
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
