"""The evaluation report of a challenger, one self-contained HTML page: its metrics against production,
the gate's decision, and the plots of charts.evaluation_plots."""
from __future__ import annotations

import numpy as np

from pipeline import charts, pages
from pipeline.metrics import PROBLEM_METRICS
from pipeline.pages import esc

# The table's rows, in this order, where the evaluation holds them.
TABLE_ROWS = (*PROBLEM_METRICS["binary"], *PROBLEM_METRICS["regression"], "rows", "positive_rate", "target_mean",
              "mean_prediction", "baseline", "baseline_mae", "baseline_rmse")

_CSS = """body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}td:first-child{text-align:left}
.blessed{color:#0a0}.rejected{color:#c00}"""


def render(title: str, evaluation: dict, labels: np.ndarray, curves: dict[str, np.ndarray], problem: str) -> str:
    """The report page of an evaluation record, with the plots of the holdout `labels` and each
    model's scores (`curves`) and the record's importance."""
    images = charts.evaluation_plots(labels, curves, evaluation["importance"], problem) if len(labels) else []
    return evaluation_html(title, evaluation, images)


def evaluation_html(title: str, evaluation: dict, images: list[str]) -> str:
    """The page of an evaluation record with `images`, base64 PNG data as the charts return it."""
    challenger, production = evaluation["challenger"], evaluation.get("production") or {}
    rows = [m for m in TABLE_ROWS if m in challenger or m in production]
    decision = evaluation["decision"]
    verdict = "BLESSED" if decision["blessed"] else "REJECTED"
    body = (f"<h1>{esc(title)}</h1>\n"
            f"<p>Challenger <code>{esc(evaluation.get('challenger_id'))}</code> vs production\n"
            f"<code>{esc(evaluation.get('production_version'))}</code> on {challenger.get('rows')} holdout\n"
            f"rows ({esc(', '.join(evaluation.get('holdout_days', [])))}).</p>\n"
            f'<h2 class="{verdict.lower()}">Gate: {verdict}</h2><ul>{pages.list_items(decision["reasons"])}</ul>\n'
            f"{pages.metric_table(challenger, production, rows)}\n"
            f"{''.join(pages.img(image, 'plot') for image in images)}\n")
    return pages.document(title, _CSS, body)
