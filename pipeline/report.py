"""The evaluation report of a challenger, one self-contained HTML page in the monitoring page's look:
headline cards, the gate's decision, its metrics against production, and the holdout charts."""
from __future__ import annotations

import numpy as np

from pipeline import charts, pages
from pipeline.metrics import HEADLINE_METRIC, HIGHER_IS_BETTER, PROBLEM_METRICS, PROBLEMS
from pipeline.pages import esc, fmt

# The table's rows, in this order, where the evaluation holds them.
TABLE_ROWS = (*PROBLEM_METRICS["binary"], *PROBLEM_METRICS["regression"], "rows", "positive_rate", "target_mean",
              "mean_prediction", "baseline", "baseline_mae", "baseline_rmse")


def render(title: str, evaluation: dict, labels: np.ndarray, curves: dict[str, np.ndarray], problem: str) -> str:
    """The report page of an evaluation record, with the plots of the holdout `labels` and each
    model's scores (`curves`) and the record's importance."""
    images = charts.evaluation_plots(labels, curves, evaluation["importance"], problem) if len(labels) else []
    return evaluation_html(title, evaluation, images, problem)


def _problem(evaluation: dict, problem: str | None) -> str:
    """The record's problem: as given, else as recorded ("task"), else told by its metrics."""
    if problem in PROBLEMS:
        return problem
    if evaluation.get("task") in PROBLEMS:
        return evaluation["task"]
    return "regression" if "rmse" in (evaluation.get("challenger") or {}) else "binary"


def evaluation_html(title: str, evaluation: dict, images: list[str], problem: str | None = None) -> str:
    """The page of an evaluation record with `images` (base64 PNG data as charts.evaluation_plots
    returns them: the holdout chart, then the importance chart if there is one)."""
    problem = _problem(evaluation, problem)
    challenger, production = evaluation["challenger"], evaluation.get("production") or {}
    rows = [m for m in TABLE_ROWS if m in challenger or m in production]
    # The difference column only when there is a production model to take it from.
    better = ({m: (1 if HIGHER_IS_BETTER[m] else -1) if m in HIGHER_IS_BETTER else 0 for m in rows}
              if production else None)
    decision = evaluation["decision"]
    verdict = "BLESSED" if decision["blessed"] else "REJECTED"
    holdout = evaluation.get("holdout_days") or []
    sections = [
        pages.header(esc(title), _subtitle(evaluation, holdout)),
        _cards(evaluation, problem, verdict, holdout),
        pages.section("gate", f"Gate: {verdict}", f'<ul class="reasons">{pages.list_items(decision["reasons"])}</ul>',
                      "Each rule the gate applied to the challenger, and what it found."),
        pages.section("metrics", "Holdout metrics", pages.metric_table(challenger, production, rows, better=better),
                      _metrics_caption(challenger, production)),
    ]
    if images:
        sections.append(pages.section("holdout", "Holdout curves", pages.img(images[0], _ALT[problem], "plot-holdout"),
                                      holdout_caption(problem, len(holdout))))
    if len(images) > 1:
        sections.append(pages.section("importance", "Permutation importance",
                                      pages.img(images[1], "Permutation importance of the challenger's features",
                                                "plot-importance"), importance_caption(problem)))
    return pages.document(title, pages.stylesheet(), f'<main>{"".join(sections)}</main>')


def _subtitle(evaluation: dict, holdout: list) -> str:
    production = evaluation.get("production_version")
    against = f"production <code>{esc(production)}</code>" if production else "no production model"
    return (f"challenger <code>{esc(evaluation.get('challenger_id'))}</code> vs {against} &middot; "
            f"holdout {pages.day_span(holdout)}")


def _cards(evaluation: dict, problem: str, verdict: str, holdout: list) -> str:
    challenger, production = evaluation["challenger"], evaluation.get("production") or {}
    metric = HEADLINE_METRIC[problem]
    ch, pr = challenger.get(metric), production.get(metric)
    reasons = evaluation["decision"]["reasons"]
    cards = [pages.card("Gate", verdict, pages.plural(len(reasons), "rule"),
                        "good" if verdict == "BLESSED" else "bad")]
    if isinstance(ch, (int, float)) and isinstance(pr, (int, float)):
        detail = f"production {pr:.4f} &middot; &Delta; {ch - pr:+.4f}"
    else:
        detail = "no production model to compare with" if not production else f"production {fmt(pr)}"
    cards.append(pages.card(f"Challenger {esc(metric)}", fmt(ch), detail))
    counts = evaluation.get("holdout_rows") or {}
    rows = challenger.get("rows")
    rows_detail = (f"of {counts['labelled']:,} labelled ({counts['available']:,} rows)"
                   if isinstance(counts.get("labelled"), int) and isinstance(counts.get("available"), int) else "")
    cards.append(pages.card("Holdout rows", f"{rows:,}" if isinstance(rows, int) else fmt(rows), rows_detail))
    cards.append(pages.card("Holdout days", str(len(holdout)),
                            f"{esc(holdout[0])} &rarr; {esc(holdout[-1])}" if holdout else pages.DASH))
    return f'<section class="cards">{"".join(cards)}</section>'


def _metrics_caption(challenger: dict, production: dict) -> str:
    text = (f"Each metric on the same {fmt(challenger.get('rows'))} holdout rows for both models. "
            if production else f"Each metric on the {fmt(challenger.get('rows'))} holdout rows. ")
    return text + ("&Delta; is challenger minus production, green where the challenger is better." if production
                   else "There was no production model to compare with.")


_ALT = {"binary": "ROC and calibration curves of each model on the holdout rows",
        "regression": "Predicted vs actual and residuals of each model on the holdout rows"}


def holdout_caption(problem: str, n_days: int) -> str:
    """What the holdout chart shows for `problem`."""
    days = pages.plural(n_days)
    if problem == "binary":
        return (f"On the labelled rows of the {days} of the holdout. Left: the ROC curve of each model (the "
                f"dashed diagonal is a model that guesses). Right: calibration, the observed rate of the "
                f"positive class against the mean predicted probability in {charts.CALIBRATION_BINS} bins of "
                f"equal row count (the dashed diagonal is a perfectly calibrated model).")
    return (f"On the labelled rows of the {days} of the holdout. Left: predicted against actual values on at "
            f"most {charts.SCATTER_POINTS:,} rows (the same seeded rows for each model; the dashed line is a "
            f"perfect model). Right: the histogram of each model's residuals (predicted &minus; actual) over "
            f"all rows, in the target's units.")


def importance_caption(problem: str) -> str:
    """What the importance chart shows."""
    return (f"The {esc(charts.IMPORTANCE_LABELS[problem])} (the 20 largest by absolute value), computed on "
            f"labelled holdout rows when the challenger was trained; grey bars are features whose shuffling "
            f"did not hurt the model.")

