"""Builders the ML unit tests share: a synthetic binary problem, days of it as (day, rows) parts,
and the fit a training window's rows get (what CandidateModel fits, without the task)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from pipeline import estimators as es
from pipeline import sampling as sp
from pipeline import signing
from pipeline import training as tr
from tests.conftest import TEST_SIGNING_KEY

NUMERIC = ["x", "noise"]
CATEGORICAL = ["c"]
HP = es.Hyperparameters(max_iter=30, min_samples_leaf=20)
D = dt.date
# The key the tests' registries sign with: the one their pipelines get from $MLPIPE_SIGNING_KEY.
TEST_KEYS = signing.Keyring(signing.key_from_text(TEST_SIGNING_KEY, "the tests' key"))


def synthetic(n: int, seed: int = 0) -> pd.DataFrame:
    """A label that depends on `x` and on `c == 'a'`; `noise` carries no signal."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    c = rng.choice(["a", "b", "c"], size=n)
    logit = 2.0 * x + 1.5 * (c == "a") - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return pd.DataFrame({"x": x, "noise": rng.normal(size=n), "c": pd.Series(c, dtype="string"), "late": y})


def day_part(i: int, n: int, seed: int = 0, unlabelled: float = 0.1) -> tuple[dt.date, pd.DataFrame]:
    """Day i of a window: n rows, a share of them without an outcome, with their day and row number."""
    frame = synthetic(n, seed + i)
    frame.loc[np.random.default_rng(seed + 100 + i).random(n) < unlabelled, "late"] = np.nan
    return D(2013, 1, 1) + dt.timedelta(days=i), frame.assign(row=np.arange(n), day=i)


def days_of(sizes: list[int], seed: int = 0) -> list[tuple[dt.date, pd.DataFrame]]:
    return [day_part(i, n, seed) for i, n in enumerate(sizes)]


def fit(frame: pd.DataFrame, numeric=NUMERIC, categorical=CATEGORICAL, target: str = "late", hp=HP,
        problem: str = "binary", **options):
    """fit_rows on the labelled rows of `frame`: (fitted pipeline, training metadata)."""
    rows = es.labelled(frame, target)
    X, y = es.model_inputs(rows, numeric, categorical, target, problem)
    counts = {"rows_available": len(frame), "rows_labelled": len(rows)}
    return tr.fit_rows(X, y, numeric, categorical, target, hp, counts, problem, **{"min_train_rows": 500, **options})


def sampled_inputs(parts, target: str, max_rows: int, seed: int, numeric=NUMERIC, categorical=CATEGORICAL,
                   problem: str = "binary"):
    """The (X, y) CandidateModel fits on, given its window's (day, rows) parts: for a bare fit."""
    rows, _ = sp.sample_rows(parts, target, max_rows, seed)
    return es.model_inputs(rows, numeric, categorical, target, problem)
