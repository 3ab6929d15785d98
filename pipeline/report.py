"""Self-contained HTML evaluation report: metrics table, gate decision, ROC curve, calibration
and feature importance, with the plots embedded as PNG data."""
from __future__ import annotations

import base64
import html
import io

import numpy as np


def _figure_to_img(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="plot" src="data:image/png;base64,{data}"/>'


def evaluation_plots(labels: np.ndarray, curves: dict[str, np.ndarray],
                     importance: dict[str, float]) -> list[str]:
    """ROC and calibration curves for each named score array, and a feature-importance bar chart."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import roc_curve

    images = []
    fig, (roc_ax, cal_ax) = plt.subplots(1, 2, figsize=(10, 4.2))
    for name, scores in curves.items():
        if len(np.unique(labels)) > 1:
            fpr, tpr, _ = roc_curve(labels, scores)
            roc_ax.plot(fpr, tpr, label=name)
            frac, mean = calibration_curve(labels, scores, n_bins=10, strategy="quantile")
            cal_ax.plot(mean, frac, marker="o", label=name)
    roc_ax.plot([0, 1], [0, 1], ls="--", c="grey")
    roc_ax.set(title="ROC curve (holdout)", xlabel="false positive rate", ylabel="true positive rate")
    cal_ax.plot([0, 1], [0, 1], ls="--", c="grey")
    cal_ax.set(title="Calibration (holdout)", xlabel="mean predicted probability", ylabel="observed late rate")
    roc_ax.legend(loc="lower right")
    cal_ax.legend(loc="upper left")
    images.append(_figure_to_img(fig))
    plt.close(fig)

    if importance:
        top = sorted(importance.items(), key=lambda kv: kv[1])[-20:]
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(top) + 1))
        ax.barh([k for k, _ in top], [v for _, v in top])
        ax.set(title="Permutation importance on the holdout (drop in ROC AUC)", xlabel="importance")
        images.append(_figure_to_img(fig))
        plt.close(fig)
    return images


def evaluation_html(title: str, evaluation: dict, images: list[str]) -> str:
    esc = html.escape
    rows = []
    for metric in ("roc_auc", "average_precision", "log_loss", "brier", "rows", "positive_rate"):
        ch = evaluation["challenger"].get(metric)
        pr = (evaluation.get("production") or {}).get(metric)
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
