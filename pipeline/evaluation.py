"""Holdout metrics, the challenger-vs-production comparison and the gate decision, for binary
classification (scores are probabilities) and regression (scores are predicted values)."""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from pipeline import report
from pipeline.estimators import predict
from pipeline.metrics import (HEADLINE_METRIC, HIGHER_IS_BETTER, METRIC_LABELS, PROBLEM_METRICS, check_problem,
                              metrics, problem_of)
from pipeline.sampling import sample_rows


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


def _weighted_regression(metric: str, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray,
                         baseline: float | None) -> np.ndarray:
    """`metric` of each row of `weights` (bootstrap counts): MAE, RMSE, and 1 - SSE over the squared
    deviations from the weighted target mean (r2; also r2_vs_baseline without a `baseline`) or from
    `baseline`. NaN where that reference is exact."""
    total, errors = weights.sum(axis=1), scores - labels
    if metric == "mae":
        return weights @ np.abs(errors) / total
    sse = weights @ errors ** 2
    if metric == "rmse":
        return np.sqrt(sse / total)
    centre = (weights @ labels / total if metric == "r2" or baseline is None
              else np.full(len(weights), float(baseline)))
    reference = np.einsum("ij,ij->i", weights, (labels[None, :] - centre[:, None]) ** 2)
    return np.where(reference > 0, 1 - sse / np.where(reference > 0, reference, 1.0), np.nan)


def _weighted_metric(metric: str, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray,
                     baseline: float | None = None) -> np.ndarray:
    if problem_of(metric) == "regression":
        return _weighted_regression(metric, labels, scores, weights, baseline)
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
                     samples: int, confidence: float, seed: int, baseline: float | None = None) -> dict:
    """Bootstrap confidence interval of metric(challenger) - metric(production) over the same
    resampled rows (paired), oriented so that a positive difference means the challenger is
    better. Seeded: the same inputs give the same interval. `baseline` is the naive prediction
    of r2_vs_baseline (see regression_metrics)."""
    problem = problem_of(metric)
    labels = np.asarray(labels, dtype=int if problem == "binary" else float)
    challenger, production = np.asarray(challenger, float), np.asarray(production, float)
    n, sign = len(labels), 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    rng = np.random.default_rng(seed)
    diffs = []
    chunk = max(1, min(samples, 4_000_000 // max(n, 1)))  # bounded memory for large holdouts
    for done in range(0, samples, chunk):
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, samples - done)).astype(np.int32)
        diffs.append(sign * (_weighted_metric(metric, labels, challenger, weights, baseline)
                             - _weighted_metric(metric, labels, production, weights, baseline)))
    d = np.concatenate(diffs)
    d = d[np.isfinite(d)]
    c, p = (metrics(labels, scores, problem, baseline)[metric] for scores in (challenger, production))
    alpha = (1 - confidence) / 2
    return {"metric": metric, "challenger": c, "production": p,
            "difference": None if c is None or p is None else float(sign * (c - p)),
            "ci_low": float(np.quantile(d, alpha)) if len(d) else None,
            "ci_high": float(np.quantile(d, 1 - alpha)) if len(d) else None,
            "confidence": confidence, "samples": int(samples), "valid_samples": int(len(d)),
            "seed": seed, "rows": n}


def decide_gate(challenger: dict, floors: dict[str, float], comparison: dict | None, tolerance: float) -> dict:
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


def summary_line(record: dict, problem: str) -> str:
    """One line for luigid's status message: the problem's headline metric (AUC, RMSE) of both
    models and the gate decision."""
    metric = HEADLINE_METRIC[check_problem(problem)]
    label = METRIC_LABELS[metric]

    def value(metrics: dict | None) -> str:
        found = (metrics or {}).get(metric)
        return "n/a" if found is None else f"{found:.4f}"
    verdict = "BLESSED" if record["decision"]["blessed"] else "REJECTED"
    return (f"challenger {label} {value(record['challenger'])}, production {label} "
            f"{value(record.get('production'))}; gate: {verdict}")


def context(date: dt.date, candidate_meta: dict, production_version: str | None) -> dict:
    """What an evaluation record names: its date, the challenger, the production version, the holdout."""
    return {"date": date.isoformat(), "challenger_id": f"{candidate_meta['lineage']}@{candidate_meta['date']}",
            "production_version": production_version, "holdout_days": candidate_meta["holdout_days"]}


def evaluate_challenger(challenger, production, holdout: Iterable[tuple[dt.date, Any]], numeric: list[str],
                        categorical: list[str], target: str, rules: dict, importance: dict[str, float],
                        title: str, context: dict, problem: str,
                        baseline: float | None = None) -> tuple[dict, str]:
    """Score the labelled holdout rows with the challenger and (if any) the production model, apply
    the gate, and render the HTML report with the challenger's `importance` (computed at training).
    `holdout` holds (day, rows) pairs, read one at a time; when they hold more than
    `rules["max_eval_rows"]` (> 0) labelled rows, the gate uses that many, sampled with
    sample_rows seeded by `rules["seed"]` (the same rows for both models).
    `rules`: floors, tolerance, compare_metric, bootstrap_samples, confidence, seed, max_eval_rows.
    The floors and compare_metric must be metrics of `problem`; for regression, `baseline` (the
    training rows' target mean) is the naive model r2_vs_baseline measures against.
    `context` (ids, dates) is copied into the record. Returns (evaluation record, html)."""
    foreign = sorted(m for m in [*rules["floors"], rules["compare_metric"]]
                     if m not in PROBLEM_METRICS[check_problem(problem)])
    if foreign:
        raise ValueError(f"metric(s) {foreign} in the gate's floors or compare_metric do not apply to a "
                         f"{problem} target; choose from {PROBLEM_METRICS[problem]}")
    rows, counts = sample_rows(holdout, target, rules.get("max_eval_rows", 0), rules["seed"])
    labels = rows[target].to_numpy(dtype=float) if len(rows) else np.array([], dtype=float)
    labels = labels.astype(int) if problem == "binary" else labels
    models = {"challenger": challenger, **({"production": production} if production is not None else {})}
    curves = {name: predict(model, rows, numeric, categorical, problem) for name, model in models.items()}
    del rows
    scored = {name: metrics(labels, scores, problem, baseline) for name, scores in curves.items()}
    comparison = None
    if production is not None:
        comparison = paired_bootstrap(labels, curves["challenger"], curves["production"],
                                      rules["compare_metric"], rules["bootstrap_samples"],
                                      rules["confidence"], rules["seed"], baseline=baseline)
    evaluation = {
        **context,
        "task": problem,
        "holdout_rows": {"available": counts["rows_available"], "labelled": counts["rows_labelled"],
                         "evaluated": counts["rows_sampled"], "max_eval_rows": rules.get("max_eval_rows", 0),
                         "sample_seed": rules["seed"]},
        "challenger": scored["challenger"],
        "production": scored.get("production"),
        "decision": decide_gate(scored["challenger"], rules["floors"], comparison, rules["tolerance"]),
        "importance": importance,
    }
    return evaluation, report.render(title, evaluation, labels, curves, problem)
