"""Drift and realized performance: reference profiles (bins fixed from the training data),
population stability index per feature and for the predictions, and alert thresholds."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import evaluation

MISSING = "__missing__"
OTHER = "__other__"
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


def monitor_day(scores: np.ndarray, labels: np.ndarray, X: pd.DataFrame, reference: dict,
                alert_features: list[str], psi_threshold: float, prediction_psi_threshold: float,
                min_auc: float, task: str = "binary", baseline: float | None = None,
                min_r2: float = 0.0) -> dict:
    """Realized metrics on the day's labelled rows, drift against the reference, and alerts.

    PSI is reported for every profiled feature; only `alert_features` raise drift alerts
    (features constant within a day, such as the day's weather, always differ from a
    multi-day reference). The performance alert is a realized ROC AUC below `min_auc` (binary),
    or (regression) a realized R2 against the naive `baseline` (the training target mean) below
    `min_r2`: with the default 0, the alert says the model did worse than predicting that mean."""
    known = ~np.isnan(labels)
    realized = evaluation.metrics(labels[known], scores[known], task, baseline) if known.any() else {}
    realized["rows_scored"] = int(len(scores))
    realized["rows_with_outcome"] = int(known.sum())
    realized["mean_prediction"] = float(np.mean(scores)) if len(scores) else None
    drifts = drift(reference, X, scores)
    alerts = []
    for name, value in sorted(drifts["feature_psi"].items(), key=lambda kv: -kv[1]):
        if name in alert_features and value > psi_threshold:
            alerts.append(f"feature drift: PSI of '{name}' is {value:.3f} > {psi_threshold}")
    if drifts["prediction_psi"] > prediction_psi_threshold:
        alerts.append(f"prediction drift: PSI {drifts['prediction_psi']:.3f} > {prediction_psi_threshold}")
    metric, floor, name = (("roc_auc", min_auc, "ROC AUC") if evaluation.check_task(task) == "binary"
                           else ("r2_vs_baseline", min_r2, "R2 vs the naive baseline"))
    value = realized.get(metric)
    if value is not None and value < floor:
        alerts.append(f"realized {name} {value:.3f} < {floor}")
    return {"realized": realized, **drifts, "alerts": alerts,
            "thresholds": {"feature_psi": psi_threshold, "prediction_psi": prediction_psi_threshold,
                           "min_auc" if task == "binary" else "min_r2": floor}}


def realized_over(frames: list[pd.DataFrame], target: str, task: str = "binary",
                  baseline: float | None = None) -> dict:
    """Pooled realized metrics of stored predictions joined with their outcomes (for regression,
    `baseline` is the naive prediction, see evaluation.regression_metrics).

    Each frame holds `score` and `target` for one day; rows without a model score or an outcome
    are left out and counted."""
    joined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["score", target])
    usable = joined["score"].notna() & joined[target].notna()
    labels = joined.loc[usable, target].to_numpy(float)
    result = evaluation.metrics(labels.astype(int) if task == "binary" else labels,
                                joined.loc[usable, "score"].to_numpy(float), task, baseline)
    result.update(days=len(frames), rows_total=int(len(joined)),
                  rows_unscored=int(joined["score"].isna().sum()),
                  rows_without_outcome=int(joined[target].isna().sum()))
    return result
