"""Hyperparameter search: time-ordered cross-validation inside the training window over a small,
reproducible set of candidate models, the configured gradient boosting model always among them."""
from __future__ import annotations

import datetime as dt
import itertools
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # scikit-learn is imported where it is used, so `import tasks` stays fast
    from sklearn.pipeline import Pipeline

from pipeline import training

FAMILIES = ("hgb", "logreg")

# The loader's allow-list (what skops reports as untrusted for fitted estimators of FAMILIES) is
# kept beside the loader, in pipeline.training.
TRUSTED_TYPES = training.TRUSTED_TYPES

# The search space; hgb's max_iter (and early_stopping) stay those of the configured model.
SPACES: dict[str, dict[str, tuple]] = {
    "hgb": {"learning_rate": (0.03, 0.05, 0.1, 0.2), "max_leaf_nodes": (15, 31, 63),
            "min_samples_leaf": (20, 40, 80, 160), "l2_regularization": (0.0, 0.1, 1.0)},
    "logreg": {"C": (0.01, 0.1, 1.0, 10.0)},
}
MIN_CATEGORY_ROWS = 10  # rarer categories share one "infrequent" one-hot column (logreg)


def build_estimator(family: str, params: dict, numeric: list[str], categorical: list[str],
                    random_state: int) -> Pipeline:
    """An unfitted estimator of `family` taking training.feature_matrix's columns."""
    if family == "hgb":
        return training.make_estimator(numeric, categorical,
                                       training.Hyperparameters(**params, random_state=random_state))
    if family == "logreg":
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        encode = ColumnTransformer(
            [("categorical", Pipeline([
                ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist",
                                         min_frequency=MIN_CATEGORY_ROWS))]), categorical),
             ("numeric", Pipeline([
                 ("impute", SimpleImputer(strategy="median", add_indicator=True)),
                 ("scale", StandardScaler())]), numeric)],
            verbose_feature_names_out=False,
        )
        model = LogisticRegression(C=params["C"], max_iter=params.get("max_iter", 500),
                                   random_state=random_state)
        return Pipeline([("encode", encode), ("model", model)])
    raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")


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


def candidates(base: dict, trials: int, families: list[str], seed: int) -> list[dict]:
    """`trials` distinct specs {"family", "params"}: first the configured hgb model (`base`, its
    hyperparameters without random_state), then draws from SPACES without replacement, taking the
    requested families in turn; fewer when the space runs out."""
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise ValueError(f"unknown or no model families {list(families)}; expected some of {FAMILIES}")
    base = {k: v for k, v in base.items() if k != "random_state"}  # the search's random_state rules
    rng = np.random.default_rng(seed)
    # One shuffled grid per family, always drawn in FAMILIES order so that a family's sequence
    # for a seed does not depend on which other families are searched.
    draws = {}
    for family in FAMILIES:
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
           random_state: int, max_train_rows: int = 0) -> tuple[dict, list[dict]]:
    """Score every spec of candidates(...) by its mean ROC AUC over time_folds of the labelled
    rows of `frame` (`day`, aligned with it, holds each row's date as a date or "YYYY-MM-DD").
    Returns (the best spec: highest mean, earliest on ties; one record per trial, 0 = base)."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1 (got {trials}): trial 0 is the configured model")
    if len(day) != len(frame):
        raise ValueError(f"day has {len(day)} value(s) but frame has {len(frame)} row(s)")
    labelled = frame[target].notna().to_numpy()
    rows = frame.loc[labelled]
    dates = pd.to_datetime(pd.Series(day.to_numpy()[labelled])).dt.date.to_numpy()
    # The folds' matrices do not depend on the spec: build them once.
    data = []
    for k, (train_days, valid_days) in enumerate(time_folds(list(dates), folds, min_train_days=max(1, min(7, len(set(dates)) - folds)))):
        train, valid = rows.loc[np.isin(dates, train_days)], rows.loc[np.isin(dates, valid_days)]
        if max_train_rows and len(train) > max_train_rows:
            train = train.sample(n=max_train_rows, random_state=random_state)
        for part, name in ((train, "training"), (valid, "validation")):
            if part[target].nunique() < 2:
                raise training.TrainingError(
                    f"fold {k} ({valid_days[0]} to {valid_days[-1]}): its {name} rows hold only one "
                    f"class of '{target}'; use fewer folds or a longer window")
        data.append([(training.feature_matrix(part, numeric, categorical), part[target].astype(int).to_numpy())
                     for part in (train, valid)])
    from sklearn.metrics import roc_auc_score

    records = []
    for i, spec in enumerate(candidates(base, trials, families, seed)):
        started, scores = time.perf_counter(), []
        for (X_train, y_train), (X_valid, y_valid) in data:
            estimator = build_estimator(spec["family"], spec["params"], numeric, categorical, random_state)
            estimator.fit(X_train, y_train)
            scores.append(float(roc_auc_score(y_valid, estimator.predict_proba(X_valid)[:, 1])))
        records.append({"trial": i, **spec, "fold_roc_auc": scores, "mean_roc_auc": float(np.mean(scores)),
                        "seconds": round(time.perf_counter() - started, 3)})
    best = max(records, key=lambda r: r["mean_roc_auc"])  # max keeps the first of equals
    return {k: best[k] for k in ("family", "params", "mean_roc_auc", "trial")}, records
