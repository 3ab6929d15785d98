"""Monitoring: a day's realized metrics, its feature and prediction drift against the model's
reference profile, and the alerts; and realized metrics pooled over stored predictions."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.drift import drift
from pipeline.metrics import HEADLINE_METRIC, check_problem, metrics


def monitor_day(scores: np.ndarray, labels: np.ndarray, X: pd.DataFrame, reference: dict,
                alert_features: list[str], psi_threshold: float, prediction_psi_threshold: float,
                min_auc: float, problem: str, baseline: float | None = None,
                min_r2: float = 0.0) -> dict:
    """Realized metrics on the day's labelled rows, drift against the reference, and alerts.

    PSI is reported for every profiled feature that varies within a day, and only `alert_features`
    among them raise drift alerts. Day-level features (one value per day in the training rows:
    the reference's "day_level", see drift.profile) are listed apart, judged day against the
    reference days, and raise no alert: one day's single value has no distribution to compare.
    The performance alert is a realized ROC AUC below `min_auc` (binary), or (regression) a
    realized R2 against the naive `baseline` (metrics.naive_baseline of the model) below `min_r2`:
    with the default 0, the alert says the model did worse than predicting its training mean."""
    known = ~np.isnan(labels)
    realized = metrics(labels[known], scores[known], problem, baseline) if known.any() else {}
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
    metric, floor, name = (("roc_auc", min_auc, "ROC AUC") if check_problem(problem) == "binary"
                           else ("r2_vs_baseline", min_r2, "R2 vs the naive baseline"))
    value = realized.get(metric)
    if value is not None and value < floor:
        alerts.append(f"realized {name} {value:.3f} < {floor}")
    return {"realized": realized, **drifts, "alerts": alerts,
            "thresholds": {"feature_psi": psi_threshold, "prediction_psi": prediction_psi_threshold,
                           "min_auc" if problem == "binary" else "min_r2": floor}}


def realized_over(frames: list[pd.DataFrame], target: str, problem: str,
                  baseline: float | None = None) -> dict:
    """Pooled realized metrics of stored predictions joined with their outcomes. For regression
    the naive prediction is `baseline`, or, when the frames have a `baseline` column, each row's
    (metrics.naive_baseline of the model that scored it; see metrics.regression_metrics).

    Each frame holds `score` and `target` for one day; rows without a model score or an outcome
    are left out and counted."""
    joined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["score", target])
    usable = joined["score"].notna() & joined[target].notna()
    labels = joined.loc[usable, target].to_numpy(float)
    if "baseline" in joined.columns:
        per_row = joined.loc[usable, "baseline"].to_numpy(float)
        baseline = None if np.isnan(per_row).any() else per_row
    result = metrics(labels.astype(int) if problem == "binary" else labels,
                     joined.loc[usable, "score"].to_numpy(float), problem, baseline)
    result.update(days=len(frames), rows_total=int(len(joined)),
                  rows_unscored=int(joined["score"].isna().sum()),
                  rows_without_outcome=int(joined[target].isna().sum()))
    return result


def nothing_to_monitor(date) -> dict:
    """The monitoring record of a day no model scored (none was in production before it)."""
    return {"date": date.isoformat(), "model_version": None, "alerts": [],
            "note": "no model in production before this day"}


def status_line(record: dict, problem: str) -> str:
    """One line for luigid's status message: the realized headline metric and the alerts."""
    metric = HEADLINE_METRIC[check_problem(problem)]
    value = record["realized"].get(metric)
    return (f"realized {metric} {value if value is None else round(value, 4)}; "
            + (f"ALERTS: {'; '.join(record['alerts'])}" if record["alerts"] else "no alerts"))
