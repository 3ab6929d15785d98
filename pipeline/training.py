"""Train the challenger: the training window of a day, the model fitted on its sampled labelled rows
(optionally the best of a time-ordered search), its permutation importance on the holdout, and the
metadata that makes it traceable (inputs, parameters, code and library versions) and monitorable
(the reference profile of its training rows)."""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import platform
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # scikit-learn is imported where it is used, so `import tasks` stays fast
    from sklearn.pipeline import Pipeline

from pipeline import drift, tuning
from pipeline.estimators import (Hyperparameters, TrainingError, build_estimator, check_problem,
                                 make_estimator, model_inputs, scores)
from pipeline.hashing import sha256_bytes
from pipeline.metrics import permutation_importance
from pipeline.sampling import Part, sample_rows, subsample

def training_days(date: dt.date, window_days: int, holdout_days: int,
                  start_date: dt.date) -> tuple[list[dt.date], list[dt.date]]:
    """(train days, holdout days) of the trailing window of `window_days` ending at `date`,
    clipped at `start_date`; the last `holdout_days` days are the holdout."""
    if holdout_days < 1 or window_days <= holdout_days:
        raise ValueError(f"window_days ({window_days}) must exceed holdout_days ({holdout_days}) >= 1")
    first = max(start_date, date - dt.timedelta(days=window_days - 1))
    days = [first + dt.timedelta(days=i) for i in range((date - first).days + 1)]
    if len(days) <= holdout_days:
        raise TrainingError(
            f"the window for {date} starts at {first} (start_date {start_date}) and has {len(days)} "
            f"day(s), not more than holdout_days={holdout_days}; run a later date or an earlier start_date")
    return days[:-holdout_days], days[-holdout_days:]


# The monitoring reference profile (bins, fractions, training scores) is computed on at most this
# many training rows, seeded: deciles and category shares are as good as on all rows, and scoring
# them costs ~1 s at 200 trees instead of ~25 s per million rows.
PROFILE_ROWS = 50_000
# Permutation importance runs on at most this many labelled holdout rows, seeded (each input and
# repeat costs one prediction of them): about the 3-day holdout of the real data.
IMPORTANCE_ROWS = 3_000


def fit_rows(X: pd.DataFrame, y: np.ndarray, numeric: list[str], categorical: list[str], target: str,
             hp: Hyperparameters, counts: dict, problem: str, min_train_rows: int,
             estimator: Pipeline | None = None, profile_rows: int = PROFILE_ROWS,
             days: np.ndarray | None = None, window: str | None = None) -> tuple[Pipeline, dict]:
    """Fit `estimator` (default: make_estimator(hp, problem)) on (X, y), as model_inputs makes them,
    when the window (`window`, its first..last day, for the message) has at least `min_train_rows`
    labelled rows (counts["rows_labelled"]).
    The metadata holds `counts` (rows available and labelled), the rows trained, the problem kind and the
    target's positive rate (binary) or mean (regression: the naive baseline's prediction), and the
    monitoring reference profile of at most `profile_rows` of the training rows, seeded by the
    model's random_state (with each row's day from `days`, which finds the day-level features)."""
    labelled = int(counts.get("rows_labelled", len(X)))
    if labelled < min_train_rows:
        raise TrainingError(
            f"only {labelled} labelled training rows{f' in the window {window}' if window else ''} (minimum "
            f"{min_train_rows}, [CandidateModel] min_train_rows in luigi.cfg): lower it, or raise "
            "[pipeline] warmup_days / [CandidateModel] window_days")
    values = np.unique(y)
    if len(values) < 2 and check_problem(problem) == "binary":
        raise TrainingError(f"the training rows hold only one class of '{target}'")
    if len(values) < 2:
        raise TrainingError(f"the training rows' target '{target}' is constant (value "
                            f"{values[0] if len(values) else 'none'}): nothing to learn")
    estimator = estimator if estimator is not None else make_estimator(numeric, categorical, hp, problem)
    started = time.perf_counter()
    estimator.fit(X, y)
    seconds = time.perf_counter() - started
    pick = subsample(len(X), profile_rows, hp.random_state)
    reference = X if pick is None else X.iloc[pick]
    reference_days = None if days is None else np.asarray(days)[pick] if pick is not None else np.asarray(days)
    reference_scores = scores(estimator, reference, problem)
    n_iter = getattr(estimator.named_steps["model"], "n_iter_", None)  # None: Ridge's closed form
    meta = {
        "task": problem,
        "rows_available": int(counts["rows_available"]),
        "rows_labelled": int(counts["rows_labelled"]),
        "rows_trained": int(len(X)),
        "rows_trained_by_day": counts.get("rows_sampled_by_day"),
        "positive_rate" if problem == "binary" else "target_mean": float(y.mean()),
        "training_seconds": round(seconds, 3),
        "n_iter": int(np.max(n_iter)) if n_iter is not None else 0,
        "numeric_features": list(numeric),
        "categorical_features": list(categorical),
        "target": target,
        "reference_profile": drift.profile(reference, numeric, categorical, reference_scores, days=reference_days),
        "library_versions": library_versions(),
        "code_version": code_version(),
    }
    return estimator, meta


def provenance(date: dt.date, lineage: str, model_bytes: bytes, parameters: dict,
               train_days: list[dt.date], holdout_days: list[dt.date],
               input_fingerprints: dict[str, str]) -> dict:
    """What makes a model traceable: its date, parameters, window, inputs and bytes."""
    return {"date": date.isoformat(), "lineage": lineage, "model_sha256": sha256_bytes(model_bytes),
            "parameters": parameters, "train_days": [d.isoformat() for d in train_days],
            "holdout_days": [d.isoformat() for d in holdout_days],
            "input_fingerprints": input_fingerprints,
            "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def fit_candidate(train: Iterable[tuple[dt.date, Part]], holdout: Iterable[tuple[dt.date, Part]],
                  numeric: list[str], categorical: list[str], target: str, hp: Hyperparameters,
                  max_train_rows: int, importance_repeats: int, problem: str, min_train_rows: int,
                  tuning_spec: dict | None = None,
                  day_column: str = "date", importance_rows: int = IMPORTANCE_ROWS,
                  labelled_by_day: dict[str, int] | None = None, progress=None) -> tuple[Pipeline, dict]:
    """The challenger: fit_rows on sample_rows(train, max_train_rows, the model's seed) -- `train`
    and `holdout` are (day, rows) pairs, read one at a time -- plus the permutation importance of
    each input on at most `importance_rows` labelled `holdout` rows (computed here, in parallel per
    day, rather than in the serial deploy chain). With `tuning_spec` ({"trials", "families", "folds",
    "seed"}, trials > 0) the model is the best of a time-ordered cross-validated search inside the
    training rows (pipeline.tuning, by their `day_column`), and every trial is recorded in the
    metadata. Fewer than `min_train_rows` labelled rows in `train` is a TrainingError (fit_rows). `labelled_by_day` (of the training days) makes the sampling faster (see sample_rows).
    `problem` picks the estimators, the search's score and the importance's metric.
    `progress(message, percent)`, when given, hears of each step: tuning trials, fit, importance."""
    report = progress or (lambda message, percent: None)
    rows, counts = sample_rows(train, target, max_train_rows, hp.random_state, labelled_by_day)
    best, trials = {"family": "hgb", "params": hp.model_params()}, []
    if tuning_spec and tuning_spec.get("trials", 0) > 0:
        best, trials = tuning.search(rows, rows[day_column], numeric, categorical, target, hp.model_params(),
                                     tuning_spec["trials"], list(tuning_spec["families"]), tuning_spec["folds"],
                                     tuning_spec["seed"], hp.random_state, problem, max_train_rows,
                                     on_trial=lambda done, total: report(
                                         f"tuning: {done} of {total} trials done", 20 + 50 * done // total))
    report(f"fitting the {best['family']} model on {len(rows)} rows", 70 if trials else 40)
    estimator = build_estimator(best["family"], best["params"], numeric, categorical, hp.random_state, problem)
    X, y = model_inputs(rows, numeric, categorical, target, problem)
    days = rows[day_column].to_numpy() if day_column in rows.columns else None
    del rows  # only the matrix is held while fitting
    read = sorted(counts.get("rows_sampled_by_day") or {})
    estimator, meta = fit_rows(X, y, numeric, categorical, target, hp, counts, problem, min_train_rows,
                               estimator=estimator, days=days, window=f"{read[0]}..{read[-1]}" if read else None)
    del X, y
    meta["importance"] = {}
    if importance_repeats > 0:
        report("permutation importance on the holdout rows", 80)
        sample, _ = sample_rows(holdout, target, importance_rows, hp.random_state)
        X, y = model_inputs(sample, numeric, categorical, target, problem)
        meta["importance"] = permutation_importance(estimator, X, y, importance_repeats, hp.random_state,
                                                    importance_rows, problem)
    meta.update(importance_repeats=importance_repeats, max_train_rows=max_train_rows, family=best["family"],
                model_params=best["params"],
                tuning={**(tuning_spec or {"trials": 0}), "best": best if trials else None, "trials": trials})
    return estimator, meta


def summary_line(meta: dict) -> str:
    """One line for luigid's status message: the model trained, its rows and its tuning."""
    best = meta["tuning"]["best"]
    return (f"{meta['family']} trained on {meta['rows_trained']} of {meta['rows_labelled']} labelled rows"
            + (f"; best of {len(meta['tuning']['trials'])} tuning trials, CV {best['score_name']} "
               f"{best['mean_' + best['score_name']]:.4f}" if best else ""))


def library_versions() -> dict[str, str]:
    from importlib import metadata

    import pyarrow
    import skops
    import sklearn

    try:
        luigi_version = metadata.version("luigi")
    except metadata.PackageNotFoundError:
        luigi_version = "unknown"
    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "pandas": pd.__version__, "numpy": np.__version__, "pyarrow": pyarrow.__version__,
            "skops": skops.__version__, "luigi": luigi_version}


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, str]:
    """The package version and one sha256 over the source of `pipeline/` and `tasks/`, so a model
    records exactly which code made it (also without git)."""
    from importlib import metadata

    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted([*root.glob("pipeline/**/*.py"), *root.glob("tasks/**/*.py")]):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    try:
        version = metadata.version("mlpipe")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"package": version, "source_sha256": digest.hexdigest()}

