"""Holdout metrics, the challenger-vs-production comparison and the gate decision."""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

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
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    out["roc_auc"] = float(roc_auc_score(labels, scores))
    out["average_precision"] = float(average_precision_score(labels, scores))
    out["log_loss"] = float(log_loss(labels, np.clip(scores, 1e-6, 1 - 1e-6), labels=[0, 1]))
    out["brier"] = float(brier_score_loss(labels, scores))
    return out


def _bound_ok(metric: str, value: float, bound: float) -> bool:
    return value >= bound if HIGHER_IS_BETTER[metric] else value <= bound


def _weighted_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of `weights` (integer bootstrap counts), ties counted half: one sort for
    all rows, then per row one cumulative sum over the negatives and a gather at the positives.
    Sums of integer counts are exact, so this equals the AUC of the resampled rows."""
    order = np.argsort(scores, kind="mergesort")
    s, positive = scores[order], labels[order].astype(bool)
    new_group = np.r_[True, s[1:] != s[:-1]]
    starts = np.flatnonzero(new_group)
    group = np.cumsum(new_group) - 1
    ends = np.r_[starts[1:], len(s)]
    neg_at = np.flatnonzero(~positive)  # sorted positions of the negatives
    pos_group = group[positive]
    # negatives below each positive's tie group, and up to its end (the cumsum has a leading 0)
    below = np.searchsorted(neg_at, starts[pos_group])
    upto = np.searchsorted(neg_at, ends[pos_group])
    counts = weights.astype(np.int32, copy=False)  # resample counts and their sums stay below n
    cum = np.zeros((len(counts), len(neg_at) + 1), dtype=np.int32)
    np.cumsum(np.take(counts, order[~positive], axis=1), axis=1, out=cum[:, 1:])
    pos_weights = np.take(counts, order[positive], axis=1)
    ties = np.take(cum, below, axis=1) + np.take(cum, upto, axis=1)
    twice = np.einsum("ij,ij->i", pos_weights, ties, dtype=np.int64)  # 2 x (pairs won + ties / 2)
    den = pos_weights.sum(axis=1, dtype=np.int64) * cum[:, -1]
    return np.where(den > 0, twice / np.where(den > 0, 2.0 * den, 1.0), np.nan)


def _weighted_metric(metric: str, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    if metric == "roc_auc":
        return _weighted_auc(labels, scores, weights)
    if metric in ("log_loss", "brier"):
        p = np.clip(scores, 1e-6, 1 - 1e-6)
        loss = -(labels * np.log(p) + (1 - labels) * np.log(1 - p)) if metric == "log_loss" else (scores - labels) ** 2
        return weights @ loss / weights.sum(axis=1)
    from sklearn.metrics import average_precision_score

    return np.array([average_precision_score(labels, scores, sample_weight=w) if w[labels == 1].sum() else np.nan
                     for w in weights])


def paired_bootstrap(labels: np.ndarray, challenger: np.ndarray, production: np.ndarray, metric: str,
                     samples: int, confidence: float, seed: int) -> dict:
    """Bootstrap confidence interval of metric(challenger) - metric(production) over the same
    resampled rows (paired), oriented so that a positive difference means the challenger is
    better. Seeded: the same inputs give the same interval."""
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(HIGHER_IS_BETTER)}")
    labels = np.asarray(labels, dtype=int)
    challenger, production = np.asarray(challenger, float), np.asarray(production, float)
    n, sign = len(labels), 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    rng = np.random.default_rng(seed)
    diffs = []
    chunk = max(1, min(samples, 4_000_000 // max(n, 1)))  # bounded memory for large holdouts
    for done in range(0, samples, chunk):
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, samples - done)).astype(np.int32)
        diffs.append(sign * (_weighted_metric(metric, labels, challenger, weights)
                             - _weighted_metric(metric, labels, production, weights)))
    d = np.concatenate(diffs)
    d = d[np.isfinite(d)]
    c, p = metrics(labels, challenger)[metric], metrics(labels, production)[metric]
    alpha = (1 - confidence) / 2
    return {"metric": metric, "challenger": c, "production": p,
            "difference": None if c is None or p is None else float(sign * (c - p)),
            "ci_low": float(np.quantile(d, alpha)) if len(d) else None,
            "ci_high": float(np.quantile(d, 1 - alpha)) if len(d) else None,
            "confidence": confidence, "samples": int(samples), "valid_samples": int(len(d)),
            "seed": seed, "rows": n}


def gate(challenger: dict, floors: dict[str, float], comparison: dict | None, tolerance: float) -> dict:
    """Bless the challenger if it clears every absolute floor (a ceiling for the metrics where
    lower is better) and, when a model is in production, the lower end of the paired-bootstrap
    interval of (challenger - production) is above -`tolerance`: the challenger is then not worse
    than production by more than the tolerance, at the interval's confidence."""
    reasons, failed = [], False
    for metric, bound in sorted(floors.items()):
        value = challenger.get(metric)
        word = ">=" if HIGHER_IS_BETTER[metric] else "<="
        if value is None or (isinstance(value, float) and math.isnan(value)):
            reasons.append(f"{metric} is undefined on the holdout (floor {word} {bound})")
            failed = True
        elif not _bound_ok(metric, value, bound):
            reasons.append(f"{metric} {value:.4f} fails the floor {word} {bound}")
            failed = True
        else:
            reasons.append(f"{metric} {value:.4f} clears the floor {word} {bound}")
    if comparison is None:
        reasons.append("no model in production: nothing to compare with")
    elif comparison["ci_low"] is None or comparison["difference"] is None:
        reasons.append(f"{comparison['metric']} is undefined on the holdout for challenger or production")
        failed = True
    else:
        c = comparison
        figures = (f"{c['metric']} {c['challenger']:.4f} vs production {c['production']:.4f}: difference "
                   f"{c['difference']:+.4f}, {c['confidence']:.0%} CI [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] "
                   f"(paired bootstrap, {c['samples']} resamples of {c['rows']} rows, seed {c['seed']})")
        if c["ci_low"] < -tolerance:
            reasons.append(f"{figures}; the interval reaches below -{tolerance}: the challenger may be "
                           "worse than production by more than the tolerance")
            failed = True
        else:
            reasons.append(f"{figures}; not worse than production beyond the tolerance {tolerance}")
    return {"blessed": not failed, "reasons": reasons, "comparison": comparison, "floors": floors,
            "tolerance": tolerance}


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


def evaluate_challenger(challenger, production, holdout: Iterable[tuple[dt.date, Any]], numeric: list[str],
                        categorical: list[str], target: str, rules: dict, importance: dict[str, float],
                        title: str, context: dict) -> tuple[dict, str]:
    """Score the labelled holdout rows with the challenger and (if any) the production model, apply
    the gate, and render the HTML report with the challenger's `importance` (computed at training).
    `holdout` holds (day, rows) pairs, read one at a time; when they hold more than
    `rules["max_eval_rows"]` (> 0) labelled rows, the gate uses that many, sampled with
    training.sample_rows seeded by `rules["seed"]` (the same rows for both models).
    `rules`: floors, tolerance, compare_metric, bootstrap_samples, confidence, seed, max_eval_rows.
    `context` (ids, dates) is copied into the record. Returns (evaluation record, html)."""
    from pipeline import report, training

    rows, counts = training.sample_rows(holdout, target, rules.get("max_eval_rows", 0), rules["seed"])
    labels = rows[target].to_numpy(dtype=float).astype(int) if len(rows) else np.array([], dtype=int)
    curves = {"challenger": training.predict(challenger, rows, numeric, categorical)}
    challenger_metrics = metrics(labels, curves["challenger"])
    production_metrics, comparison = None, None
    if production is not None:
        curves["production"] = training.predict(production, rows, numeric, categorical)
        production_metrics = metrics(labels, curves["production"])
        comparison = paired_bootstrap(labels, curves["challenger"], curves["production"],
                                      rules["compare_metric"], rules["bootstrap_samples"],
                                      rules["confidence"], rules["seed"])
    del rows
    evaluation = {
        **context,
        "holdout_rows": {"available": counts["rows_available"], "labelled": counts["rows_labelled"],
                         "evaluated": counts["rows_sampled"], "max_eval_rows": rules.get("max_eval_rows", 0),
                         "sample_seed": rules["seed"]},
        "challenger": challenger_metrics,
        "production": production_metrics,
        "decision": gate(challenger_metrics, rules["floors"], comparison, rules["tolerance"]),
        "importance": importance,
    }
    images = report.evaluation_plots(labels, curves, importance) if len(labels) else []
    return evaluation, report.evaluation_html(title, evaluation, images)
