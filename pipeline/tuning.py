"""Hyperparameter search: time-ordered cross-validation inside the training window over a small,
reproducible set of candidate models, the configured gradient boosting model always among them.
Binary targets are scored by ROC AUC, regression targets by RMSE."""
from __future__ import annotations

import datetime as dt
import itertools
import time

import numpy as np
import pandas as pd

from pipeline.estimators import FAMILIES, TrainingError, build_estimator, check_families, model_inputs
from pipeline.metrics import check_problem

# The search space; hgb's max_iter (and early_stopping) stay those of the configured model.
SPACES: dict[str, dict[str, tuple]] = {
    "hgb": {"learning_rate": (0.03, 0.05, 0.1, 0.2), "max_leaf_nodes": (15, 31, 63),
            "min_samples_leaf": (20, 40, 80, 160), "l2_regularization": (0.0, 0.1, 1.0)},
    "logreg": {"C": (0.01, 0.1, 1.0, 10.0)},
    "linear": {"alpha": (0.1, 1.0, 10.0, 100.0)},
}


def time_folds(days: list[dt.date], folds: int, min_train_days: int = 7
               ) -> list[tuple[list[dt.date], list[dt.date]]]:
    """Expanding-window folds: the days after the first `min_train_days` are cut into `folds`
    contiguous validation blocks, each trained on every day before it."""
    if folds < 1 or min_train_days < 1:
        raise ValueError(f"folds ({folds}) and min_train_days ({min_train_days}) must be >= 1")
    ordered = sorted(set(days))
    if len(ordered) < min_train_days + folds:
        raise ValueError(
            f"{len(ordered)} distinct day(s) cannot make {folds} time-ordered fold(s) after "
            f"{min_train_days} training day(s): need at least {min_train_days + folds}; "
            f"use fewer folds or a longer window")
    blocks = np.array_split(np.arange(min_train_days, len(ordered)), folds)
    return [(ordered[:block[0]], ordered[block[0]:block[-1] + 1]) for block in blocks]


def candidates(base: dict, trials: int, families: list[str], seed: int, problem: str) -> list[dict]:
    """`trials` distinct specs {"family", "params"}: first the configured hgb model (`base`, its
    hyperparameters without random_state), then draws from SPACES without replacement, taking the
    requested families (of FAMILIES[problem]) in turn; fewer when the space runs out."""
    check_families(families, problem)
    base = {k: v for k, v in base.items() if k != "random_state"}  # the search's random_state rules
    rng = np.random.default_rng(seed)
    # One shuffled grid per family, always drawn in the problem's family order so that a family's
    # sequence for a seed does not depend on which other families are searched.
    draws = {}
    for family in FAMILIES[problem]:
        space = SPACES[family]
        grid = list(itertools.product(*space.values()))
        draws[family] = iter([dict(zip(space, grid[i])) for i in rng.permutation(len(grid))])
    specs = [{"family": "hgb", "params": base}]
    turn = list(dict.fromkeys(families))
    at = turn.index("hgb") + 1 if "hgb" in turn else 0  # the base was hgb's turn
    while len(specs) < trials and turn:
        family = turn[at % len(turn)]
        drawn = next(draws[family], None)
        if drawn is None:  # this family's space is exhausted
            turn.remove(family)
            continue
        spec = {"family": family, "params": {**base, **drawn} if family == "hgb" else drawn}
        if spec not in specs:
            specs.append(spec)
            at += 1
    return specs


def search(frame: pd.DataFrame, day: pd.Series, numeric: list[str], categorical: list[str],
           target: str, base: dict, trials: int, families: list[str], folds: int, seed: int,
           random_state: int, problem: str, max_train_rows: int = 0,
           on_trial=None) -> tuple[dict, list[dict]]:
    """Score every spec of candidates(...) by its mean ROC AUC (binary) or RMSE (regression) over
    time_folds of the labelled rows of `frame` (`day`, aligned with it, holds each row's date as a
    date or "YYYY-MM-DD"). Returns (the best spec: highest mean AUC or lowest mean RMSE, earliest on
    ties; one record per trial, 0 = base). Records name their score in "score_name" and hold it in
    "fold_<score_name>" and "mean_<score_name>"; so does the best spec of a regression search.
    `on_trial(done, total)`, when given, is called after each trial."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1 (got {trials}): trial 0 is the configured model")
    if len(day) != len(frame):
        raise ValueError(f"day has {len(day)} value(s) but frame has {len(frame)} row(s)")
    binary = check_problem(problem) == "binary"
    check_families(families, problem)
    labelled = frame[target].notna().to_numpy()
    rows = frame.loc[labelled]
    dates = pd.to_datetime(pd.Series(day.to_numpy()[labelled])).dt.date.to_numpy()
    # The folds' matrices do not depend on the spec: build them once.
    data = []
    for k, (train_days, valid_days) in enumerate(time_folds(list(dates), folds, min_train_days=max(1, min(7, len(set(dates)) - folds)))):
        train, valid = rows.loc[np.isin(dates, train_days)], rows.loc[np.isin(dates, valid_days)]
        if max_train_rows and len(train) > max_train_rows:
            train = train.sample(n=max_train_rows, random_state=random_state)
        # AUC needs both classes on both sides; a regressor needs a target that varies to learn from
        for part, name in ((train, "training"), (valid, "validation"))[:2 if binary else 1]:
            if part[target].nunique() < 2:
                raise TrainingError(
                    f"fold {k} ({valid_days[0]} to {valid_days[-1]}): its {name} rows hold only one "
                    f"{'class' if binary else 'value'} of '{target}'; use fewer folds or a longer window")
        data.append([model_inputs(part, numeric, categorical, target, problem) for part in (train, valid)])
    from sklearn.metrics import roc_auc_score, root_mean_squared_error

    score_name, sign = ("roc_auc", 1.0) if binary else ("rmse", -1.0)  # sign: larger is better
    records = []
    specs = candidates(base, trials, families, seed, problem)
    for i, spec in enumerate(specs):
        started, scores = time.perf_counter(), []
        for (X_train, y_train), (X_valid, y_valid) in data:
            estimator = build_estimator(spec["family"], spec["params"], numeric, categorical, random_state, problem)
            estimator.fit(X_train, y_train)
            if binary:
                scores.append(float(roc_auc_score(y_valid, estimator.predict_proba(X_valid)[:, 1])))
            else:
                scores.append(float(root_mean_squared_error(y_valid, estimator.predict(X_valid))))
        records.append({"trial": i, **spec, "score_name": score_name, f"fold_{score_name}": scores,
                        f"mean_{score_name}": float(np.mean(scores)),
                        "seconds": round(time.perf_counter() - started, 3)})
        if on_trial:
            on_trial(i + 1, len(specs))
    best = max(records, key=lambda r: sign * r[f"mean_{score_name}"])  # max keeps the first of equals
    return {k: best[k] for k in ("family", "params", f"mean_{score_name}", "trial", "score_name")}, records
