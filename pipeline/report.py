"""Self-contained HTML evaluation report: metrics table, gate decision, ROC curve and calibration
(binary) or predicted-vs-actual and residuals (regression), and feature importance, with the plots
embedded as PNG data."""
from __future__ import annotations

import base64
import html
import io

import numpy as np

from pipeline.evaluation import TASK_METRICS, check_task

# The table's rows, in this order, where the evaluation holds them.
TABLE_ROWS = (*TASK_METRICS["binary"], *TASK_METRICS["regression"], "rows", "positive_rate", "target_mean",
              "mean_prediction", "baseline", "baseline_mae", "baseline_rmse")
# Points drawn in the predicted-vs-actual scatter at most (a seeded sample of the rows).
SCATTER_POINTS = 5000


def _figure_to_img(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="plot" src="data:image/png;base64,{data}"/>'


def evaluation_plots(labels: np.ndarray, curves: dict[str, np.ndarray],
                     importance: dict[str, float], task: str = "binary") -> list[str]:
    """For each named score array, ROC and calibration curves (binary) or predicted vs actual and
    the residuals' histogram (regression); then a feature-importance bar chart."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    (_binary_axes if check_task(task) == "binary" else _regression_axes)(axes, labels, curves)
    images = [_figure_to_img(fig)]
    plt.close(fig)

    if importance:
        drop = "drop in ROC AUC" if task == "binary" else "increase in RMSE when the feature is shuffled"
        top = sorted(importance.items(), key=lambda kv: kv[1])[-20:]
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(top) + 1))
        ax.barh([k for k, _ in top], [v for _, v in top])
        ax.set(title=f"Permutation importance on the holdout ({drop})", xlabel="importance")
        images.append(_figure_to_img(fig))
        plt.close(fig)
    return images


def _binary_axes(axes, labels: np.ndarray, curves: dict[str, np.ndarray]) -> None:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import roc_curve

    roc_ax, cal_ax = axes
    for name, scores in curves.items():
        if len(np.unique(labels)) > 1:
            fpr, tpr, _ = roc_curve(labels, scores)
            roc_ax.plot(fpr, tpr, label=name)
            frac, mean = calibration_curve(labels, scores, n_bins=10, strategy="quantile")
            cal_ax.plot(mean, frac, marker="o", label=name)
    roc_ax.plot([0, 1], [0, 1], ls="--", c="grey")
    roc_ax.set(title="ROC curve (holdout)", xlabel="false positive rate", ylabel="true positive rate")
    cal_ax.plot([0, 1], [0, 1], ls="--", c="grey")
    cal_ax.set(title="Calibration (holdout)", xlabel="mean predicted probability", ylabel="observed rate of the positive class")
    roc_ax.legend(loc="lower right")
    cal_ax.legend(loc="upper left")


def _regression_axes(axes, labels: np.ndarray, curves: dict[str, np.ndarray]) -> None:
    """Predicted vs actual on at most SCATTER_POINTS rows (the same seeded rows for every model),
    with the identity line a perfect model sits on; and each model's residuals (predicted -
    actual) over all rows."""
    from pipeline.training import subsample

    scatter_ax, residual_ax = axes
    labels = np.asarray(labels, dtype=float)
    pick = subsample(len(labels), SCATTER_POINTS, seed=0)
    pick = np.arange(len(labels)) if pick is None else pick
    for name, scores in curves.items():
        scatter_ax.scatter(labels[pick], np.asarray(scores, dtype=float)[pick], s=4, alpha=0.4, label=name)
        residual_ax.hist(np.asarray(scores, dtype=float) - labels, bins=50, alpha=0.5, label=name)
    low, high = (float(labels.min()), float(labels.max())) if len(labels) else (0.0, 1.0)
    scatter_ax.plot([low, high], [low, high], ls="--", c="grey")
    scatter_ax.set(title="Predicted vs actual (holdout)", xlabel="actual", ylabel="predicted")
    residual_ax.axvline(0, ls="--", c="grey")
    residual_ax.set(title="Residuals (holdout)", xlabel="predicted - actual", ylabel="rows")
    scatter_ax.legend(loc="upper left")
    residual_ax.legend(loc="upper right")


def evaluation_html(title: str, evaluation: dict, images: list[str]) -> str:
    esc = html.escape
    rows = []
    production = evaluation.get("production") or {}
    for metric in (m for m in TABLE_ROWS if m in evaluation["challenger"] or m in production):
        ch = evaluation["challenger"].get(metric)
        pr = production.get(metric)
        rows.append(f"<tr><td>{esc(metric)}</td><td>{_fmt(ch)}</td><td>{_fmt(pr)}</td></tr>")
    decision = evaluation["decision"]
    verdict = "BLESSED" if decision["blessed"] else "REJECTED"
    reasons = "".join(f"<li>{esc(r)}</li>" for r in decision["reasons"])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child{{text-align:left}}
.blessed{{color:#0a0}}.rejected{{color:#c00}}</style></head>
<body><h1>{esc(title)}</h1>
<p>Challenger <code>{esc(str(evaluation.get('challenger_id')))}</code> vs production
<code>{esc(str(evaluation.get('production_version')))}</code> on {evaluation['challenger'].get('rows')} holdout
rows ({esc(', '.join(evaluation.get('holdout_days', [])))}).</p>
<h2 class="{verdict.lower()}">Gate: {verdict}</h2><ul>{reasons}</ul>
<table><tr><th>metric</th><th>challenger</th><th>production</th></tr>{''.join(rows)}</table>
{''.join(images)}
</body></html>
"""


def _fmt(value) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))
