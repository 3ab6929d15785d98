"""The problem kinds (binary classification, regression), their metric tables and metric
functions, and permutation importance: what evaluation, tuning and monitoring all measure with."""
from __future__ import annotations

import math

import numpy as np

from pipeline.sampling import subsample

# The kinds of ML problem a dataset's target poses: "binary" (a 0/1 target, scored by its
# probability) or "regression" (a numeric target, scored by the predicted value).
PROBLEMS = ("binary", "regression")
PROBLEM_METRICS = {"binary": ("roc_auc", "average_precision", "log_loss", "brier"),
                   "regression": ("mae", "rmse", "r2", "r2_vs_baseline")}
# Metrics where larger is better; the others (log_loss, brier, mae, rmse) are better when smaller.
HIGHER_IS_BETTER = {"roc_auc": True, "average_precision": True, "log_loss": False, "brier": False,
                    "mae": False, "rmse": False, "r2": True, "r2_vs_baseline": True}
# The one metric of one-line summaries and charts, and the gate's default comparison.
HEADLINE_METRIC = {"binary": "roc_auc", "regression": "rmse"}
# The default comparison with production: scale-free for both problem kinds, so [gate] tolerance means the
# same for any target's units (for regression: at most that much R2 against the baseline worse).
DEFAULT_COMPARE_METRIC = {"binary": "roc_auc", "regression": "r2_vs_baseline"}
METRIC_LABELS = {"roc_auc": "AUC", "rmse": "RMSE"}


def check_problem(problem: str) -> str:
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem kind {problem!r}; expected one of {PROBLEMS}")
    return problem


def problem_of(metric: str) -> str:
    """The problem kind whose metrics include `metric` (ValueError for an unknown metric)."""
    for problem, names in PROBLEM_METRICS.items():
        if metric in names:
            return problem
    raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(HIGHER_IS_BETTER)}")


def metrics(labels: np.ndarray, scores: np.ndarray, problem: str, baseline: float | None = None) -> dict:
    """Binary: ROC AUC, average precision, log loss and Brier score (None where undefined).
    Regression: see regression_metrics (`baseline` is only used there)."""
    if check_problem(problem) == "regression":
        return regression_metrics(labels, scores, baseline)
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=float)
    out: dict = {"rows": int(len(labels)), "positive_rate": float(labels.mean()) if len(labels) else None}
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        out.update(roc_auc=None, average_precision=None, log_loss=None, brier=None)
        return out
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    out["roc_auc"] = float(roc_auc_score(labels, scores))
    out["average_precision"] = float(average_precision_score(labels, scores))
    out["log_loss"] = float(log_loss(labels, np.clip(scores, 1e-6, 1 - 1e-6), labels=[0, 1]))
    out["brier"] = float(brier_score_loss(labels, scores))
    return out


def naive_baseline(model_meta: dict) -> float | None:
    """The one constant r2_vs_baseline measures a regression model against, in evaluation,
    monitoring and `mlpipe quality` alike: the training target mean of the model being judged
    (its training metadata's or registry manifest's `target_mean`), which is what a "predict the
    mean" model trained and deployed at the same time would predict. None for a binary model."""
    value = model_meta.get("target_mean")
    return None if value is None else float(value)


def regression_metrics(labels: np.ndarray, scores: np.ndarray,
                       baseline: float | np.ndarray | None = None) -> dict:
    """MAE, RMSE and R2 of the predictions `scores`, and the same errors of the naive baseline that
    predicts `baseline` (naive_baseline of the model that made each score: one constant, or one
    value per row when the rows were scored by several models): r2_vs_baseline = 1 - SSE(model) /
    SSE(baseline) is above 0 exactly when the model beats that constant. None where undefined (no
    rows; R2 also with fewer than 2 rows or a constant target; the baseline's errors and
    r2_vs_baseline without a baseline or when it is exact)."""
    y, p = np.asarray(labels, dtype=float), np.asarray(scores, dtype=float)
    n = len(y)
    out: dict = {"rows": int(n), "target_mean": float(y.mean()) if n else None,
                 "mean_prediction": float(p.mean()) if n else None}
    if n == 0:
        out.update(dict.fromkeys(("mae", "rmse", "r2", "baseline", "baseline_mae", "baseline_rmse",
                                  "r2_vs_baseline")))
        return out
    from sklearn.metrics import r2_score

    errors = p - y
    sse = float(errors @ errors)
    out.update(mae=float(np.abs(errors).mean()), rmse=math.sqrt(sse / n),
               r2=float(r2_score(y, p)) if np.ptp(y) > 0 else None)
    if baseline is None:
        out.update(dict.fromkeys(("baseline", "baseline_mae", "baseline_rmse", "r2_vs_baseline")))
        return out
    constant = np.broadcast_to(np.asarray(baseline, dtype=float), y.shape)
    baseline_errors = constant - y
    baseline_sse = float(baseline_errors @ baseline_errors)
    out.update(baseline=float(constant.mean()), baseline_mae=float(np.abs(baseline_errors).mean()),
               baseline_rmse=math.sqrt(baseline_sse / n),
               r2_vs_baseline=1 - sse / baseline_sse if baseline_sse > 0 else None)
    return out


def permutation_importance(estimator, X, labels: np.ndarray, repeats: int, seed: int, max_rows: int,
                           problem: str) -> dict[str, float]:
    """Mean drop in ROC AUC (binary) or rise in RMSE (regression) when each input column is
    shuffled, on at most `max_rows` rows (a seeded sample): positive means the model relies on it."""
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    scoring = "roc_auc" if check_problem(problem) == "binary" else "neg_root_mean_squared_error"
    if repeats <= 0 or len(np.unique(labels)) < 2:
        return {}
    pick = subsample(len(X), max_rows, seed)
    if pick is not None:
        X, labels = X.iloc[pick], labels[pick]
    result = sk_permutation_importance(estimator, X, labels, scoring=scoring, n_repeats=repeats,
                                       random_state=seed, n_jobs=1)
    return {col: round(float(v), 6) for col, v in zip(X.columns, result.importances_mean)}
