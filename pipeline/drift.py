"""Drift: reference profiles of a model's training rows (bins fixed from the training data) and the
population stability index of a day's features and predictions against them."""
from __future__ import annotations

import numpy as np
import pandas as pd

MISSING = "__missing__"
_EPS = 1e-4


def _numeric_profile(values: np.ndarray, bins: int) -> dict:
    finite = values[np.isfinite(values)]
    if not len(finite):
        edges: list[float] = []
    else:
        edges = sorted(set(np.quantile(finite, np.linspace(0, 1, bins + 1))[1:-1].tolist()))
    return {"kind": "numeric", "edges": edges, "fractions": _numeric_fractions(values, edges)}


def _numeric_fractions(values: np.ndarray, edges: list[float]) -> list[float]:
    values = np.asarray(values, dtype=float)
    n = len(values)
    missing = ~np.isfinite(values)
    idx = np.searchsorted(np.asarray(edges, dtype=float), values[~missing], side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    counts = np.append(counts, missing.sum())  # last bin: missing values
    return (counts / n).tolist() if n else [0.0] * len(counts)


def _categorical_profile(values: pd.Series, top: int) -> dict:
    filled = values.astype(object).where(values.notna(), MISSING)
    cats = filled.value_counts().index[:top].tolist()
    return {"kind": "categorical", "categories": cats,
            "fractions": _categorical_fractions(values, cats)}


def _categorical_fractions(values: pd.Series, cats: list) -> list[float]:
    filled = values.astype(object).where(values.notna(), MISSING)
    n = len(filled)
    if not n:
        return [0.0] * (len(cats) + 1)
    counts = filled.value_counts()
    known = [float(counts.get(c, 0)) / n for c in cats]
    return known + [max(0.0, 1.0 - sum(known))]


def profile(X: pd.DataFrame, numeric: list[str], categorical: list[str], scores: np.ndarray,
            bins: int = 10, top_categories: int = 30) -> dict:
    """Reference distributions of the features and scores of a model's training rows."""
    return {
        "rows": int(len(X)),
        "features": {
            **{c: _numeric_profile(X[c].to_numpy(dtype=float), bins) for c in numeric},
            **{c: _categorical_profile(X[c], top_categories) for c in categorical},
        },
        "score": _numeric_profile(np.asarray(scores, dtype=float), bins),
    }


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index between two binned distributions over the same bins."""
    e = np.clip(np.asarray(expected, dtype=float), _EPS, None)
    a = np.clip(np.asarray(actual, dtype=float), _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def drift(reference: dict, X: pd.DataFrame, scores: np.ndarray) -> dict:
    """PSI of every profiled feature of `X`, and of `scores`, against the reference bins."""
    out = {}
    for name, ref in reference["features"].items():
        if name not in X.columns:
            continue
        if ref["kind"] == "numeric":
            actual = _numeric_fractions(X[name].to_numpy(dtype=float), ref["edges"])
        else:
            actual = _categorical_fractions(X[name], ref["categories"])
        out[name] = round(psi(ref["fractions"], actual), 6)
    score_ref = reference["score"]
    score_psi = psi(score_ref["fractions"], _numeric_fractions(np.asarray(scores, float), score_ref["edges"]))
    return {"feature_psi": out, "prediction_psi": round(score_psi, 6)}


