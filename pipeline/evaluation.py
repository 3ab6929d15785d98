"""Holdout metrics, the challenger-vs-production comparison and the gate decision."""
from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

# Metrics where larger is better; the others (log_loss, brier) are better when smaller.
HIGHER_IS_BETTER = {"roc_auc": True, "average_precision": True, "log_loss": False, "brier": False}


def metrics(labels: np.ndarray, scores: np.ndarray) -> dict:
    """ROC AUC, average precision, log loss and Brier score (None where undefined)."""
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=float)
    out: dict = {"rows": int(len(labels)), "positive_rate": float(labels.mean()) if len(labels) else None}
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        out.update(roc_auc=None, average_precision=None, log_loss=None, brier=None)
        return out
    out["roc_auc"] = float(roc_auc_score(labels, scores))
    out["average_precision"] = float(average_precision_score(labels, scores))
    out["log_loss"] = float(log_loss(labels, np.clip(scores, 1e-6, 1 - 1e-6), labels=[0, 1]))
    out["brier"] = float(brier_score_loss(labels, scores))
    return out


def gate(challenger: dict, production: dict | None, floors: dict[str, float],
         tolerance: float, compare_metric: str = "roc_auc") -> dict:
    """Bless the challenger if it clears every floor and is not worse than production on
    `compare_metric` by more than `tolerance` on the same rows. Returns decision and reasons."""
    reasons, failed = [], False
    for metric, floor in sorted(floors.items()):
        value = challenger.get(metric)
        higher = HIGHER_IS_BETTER[metric]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            reasons.append(f"{metric} is undefined on the holdout (floor {floor})")
            failed = True
        elif (value < floor) if higher else (value > floor):
            reasons.append(f"{metric} {value:.4f} fails the floor {'>=' if higher else '<='} {floor}")
            failed = True
        else:
            reasons.append(f"{metric} {value:.4f} clears the floor {'>=' if higher else '<='} {floor}")
    if production is None:
        reasons.append("no model in production: nothing to compare with")
    else:
        c, p = challenger.get(compare_metric), production.get(compare_metric)
        if c is None or p is None:
            reasons.append(f"{compare_metric} undefined for challenger or production")
            failed = True
        else:
            delta = (c - p) if HIGHER_IS_BETTER[compare_metric] else (p - c)
            if delta < -tolerance:
                reasons.append(f"{compare_metric} {c:.4f} is worse than production's {p:.4f} by "
                               f"{-delta:.4f} > tolerance {tolerance}")
                failed = True
            else:
                reasons.append(f"{compare_metric} {c:.4f} vs production {p:.4f} "
                               f"(difference {delta:+.4f}, tolerance {tolerance})")
    return {"blessed": not failed, "reasons": reasons}


def summary_line(record: dict) -> str:
    """One line for luigid's status message: the AUCs and the gate decision."""
    def auc(metrics: dict | None) -> str:
        value = (metrics or {}).get("roc_auc")
        return "n/a" if value is None else f"{value:.4f}"
    verdict = "BLESSED" if record["decision"]["blessed"] else "REJECTED"
    return f"challenger AUC {auc(record['challenger'])}, production AUC {auc(record.get('production'))}; gate: {verdict}"


def permutation_importance(estimator, X, labels: np.ndarray, repeats: int, seed: int,
                           max_rows: int = 3000) -> dict[str, float]:
    """Mean drop in ROC AUC when each input column is shuffled (on at most `max_rows` rows)."""
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    if repeats <= 0 or len(np.unique(labels)) < 2:
        return {}
    if len(X) > max_rows:
        pick = np.random.default_rng(seed).choice(len(X), size=max_rows, replace=False)
        pick.sort()
        X, labels = X.iloc[pick], labels[pick]
    result = sk_permutation_importance(estimator, X, labels, scoring="roc_auc", n_repeats=repeats,
                                       random_state=seed, n_jobs=1)
    return {col: round(float(v), 6) for col, v in zip(X.columns, result.importances_mean)}


def evaluate_challenger(challenger, production, holdout, numeric: list[str], categorical: list[str],
                        target: str, floors: dict[str, float], tolerance: float,
                        importance: dict[str, float], title: str, context: dict) -> tuple[dict, str]:
    """Score the holdout rows with the challenger and (if any) the production model, apply the
    gate, and render the HTML report with the challenger's `importance` (computed at training).
    `context` (ids, dates) is copied into the record.
    Returns (evaluation record, html)."""
    from pipeline import report, training

    rows = training.labelled(holdout, target)
    labels = rows[target].astype(int).to_numpy()
    X = training.feature_matrix(rows, numeric, categorical)
    curves = {"challenger": challenger.predict_proba(X)[:, 1]} if len(rows) else {"challenger": np.array([])}
    challenger_metrics = metrics(labels, curves["challenger"])
    production_metrics = None
    if production is not None:
        curves["production"] = training.predict(production, rows, numeric, categorical)
        production_metrics = metrics(labels, curves["production"])
    evaluation = {
        **context,
        "challenger": challenger_metrics,
        "production": production_metrics,
        "decision": gate(challenger_metrics, production_metrics, floors, tolerance),
        "importance": importance,
    }
    images = report.evaluation_plots(labels, curves, importance) if len(rows) else []
    return evaluation, report.evaluation_html(title, evaluation, images)
