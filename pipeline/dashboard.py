"""The monitoring dashboard over a period, one self-contained HTML page: headline figures, realized
performance with the production-alias moves, drift, the current model, and alert/missing days."""
from __future__ import annotations

import datetime as dt
import math
import re
import statistics
from collections import Counter

import numpy as np

from pipeline import charts, pages, registry
from pipeline.metrics import HEADLINE_METRIC, HIGHER_IS_BETTER, METRIC_LABELS, PROBLEM_METRICS, check_problem
from pipeline.pages import esc, fmt, num, pct, plural

_ONE_DAY = dt.timedelta(days=1)


def render(start: dt.date, end: dt.date, days: list[dict], events: list[dict], current: dict | None,
           missing_days: list[str], generated_at: str, *, problem: str,
           row_noun: str = "flights", target_label: str = "late arrival") -> str:
    """The dashboard page for `start`..`end`: one HTML document, every image embedded as PNG data.

    `days` are the stored per-day monitoring records, `events` the production-alias history,
    `current` the production version with its manifest and evaluation (or None), and
    `missing_days` the dates in the period without a monitoring record. `problem` ("binary" or
    "regression") says which realized metrics the records hold; `row_noun` (plural) and
    `target_label` name a row and the target in the page's wording."""
    if end < start:
        raise ValueError(f"dashboard period ends ({end}) before it starts ({start})")
    spec = _page_spec(problem, row_noun, target_label)
    axis = _axis_dates(start, end, days, missing_days)
    by_date = {d["date"]: d for d in days}
    missing = sorted(set(missing_days))
    colors = _page_version_colors(axis, by_date, events)
    sections = [
        _header(start, end, generated_at, spec),
        _summary(start, end, days, events, current, missing, spec),
        _missing_section(missing),
        _performance_section(axis, by_date, events, start, end, missing, spec, colors),
        _drift_section(axis, by_date, missing, spec),
        _model_section(current, spec),
        _events_section(events, start, end, colors),
        _alerts_section(days, spec, colors),
        _all_days_section(days, spec, colors),
    ]
    title = f"Model monitoring {start.isoformat()} to {end.isoformat()}"
    return pages.document(title, pages.stylesheet() + _CSS, f'<main>{"".join(s for s in sections if s)}</main>')


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _page_spec(problem: str, row_noun: str, target_label: str) -> dict:
    """What the page shows for `problem`: the headline metric (realized key, name, y limits), the
    per-day step lines drawn with it, the observed level against the mean prediction, the table
    columns as (header, realized key, formatter), the evaluation metrics as {key: +1 when higher
    is better, -1 when lower is, 0 for context}, and the captions."""
    metric = HEADLINE_METRIC[check_problem(problem)]
    compared = {m: 1 if HIGHER_IS_BETTER[m] else -1 for m in PROBLEM_METRICS[problem]}
    common = {
        "row_noun": row_noun, "metric": metric, "metric_short": METRIC_LABELS[metric],
        "title": f"{_capitalized(target_label)} model",
    }
    known = f"on the day's {row_noun} once their outcomes are known"
    build = _binary_spec if problem == "binary" else _regression_spec
    return {**common, **build(row_noun, target_label, known, compared)}


def _binary_spec(row_noun: str, target_label: str, known: str, compared: dict) -> dict:
    headline = ("ROC AUC", "roc_auc", num)
    observed = (f"{target_label} rate", "positive_rate", pct)
    predicted = ("mean pred.", "mean_prediction", pct)
    return {"metric_name": "ROC AUC", "limits": (0.0, 1.0), "empty_limits": (0.4, 1.0),
            "steps": [(_threshold, "min_auc", "min AUC (alert below)", charts.THRESHOLD_STYLE)],
            "observed": observed, "predicted": predicted, "shares": True,
            "level_axis": f"share of {row_noun}",
            "alert_columns": [headline, observed],
            "day_columns": [headline, ("avg precision", "average_precision", num), observed, predicted],
            "metrics": {**compared, "rows": 0, "positive_rate": 0},
            "predictions": "the predicted probabilities",
            "importance": "drop in holdout ROC AUC when the feature is shuffled",
            "plot_alt": f"Daily ROC AUC, {target_label} rate and mean prediction with alias moves",
            "caption": f"Daily ROC AUC {known}, and the observed {target_label} rate against the "
                       f"mean predicted probability."}


def _regression_spec(row_noun: str, target_label: str, known: str, compared: dict) -> dict:
    headline, r2 = ("RMSE", "rmse", num), ("R2 vs baseline", "r2_vs_baseline", num)
    observed = (f"mean {target_label}", "target_mean", num)
    predicted = ("mean pred.", "mean_prediction", num)
    return {"metric_name": "RMSE", "limits": (0.0, math.inf), "empty_limits": None,
            "steps": [(_realized, "baseline_rmse", "naive baseline RMSE", charts.BASELINE_STYLE)],
            "observed": observed, "predicted": predicted, "shares": False,
            "level_axis": f"mean {target_label}",
            "alert_columns": [headline, r2, observed, predicted],
            "day_columns": [headline, ("MAE", "mae", num), r2, observed, predicted],
            "metrics": {**compared, "baseline_mae": 0, "baseline_rmse": 0, "rows": 0, "target_mean": 0},
            "predictions": "the predictions",
            "importance": "increase in holdout RMSE when the feature is shuffled",
            "plot_alt": f"Daily RMSE against the naive baseline, mean {target_label} and mean prediction "
                        f"with alias moves",
            "caption": f"Daily RMSE {known} (lower is better) against the RMSE of the naive baseline "
                       f"(dashed grey; R2 vs the baseline is below 0 on days above it), and the observed "
                       f"mean {target_label} against the mean prediction."}


# ---------------------------------------------------------------- reading the records

def _date(value) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _axis_dates(start: dt.date, end: dt.date, days: list[dict], missing_days: list[str]) -> list[dt.date]:
    """Every date of the period, widened to any record or missing day that falls outside it."""
    known = [d for d in (_date(x) for x in [*(r.get("date") for r in days), *missing_days]) if d]
    lo, hi = min([start, *known]), max([end, *known])
    return [lo + i * _ONE_DAY for i in range((hi - lo).days + 1)]


def _realized(day: dict | None, key: str) -> float:
    value = ((day or {}).get("realized") or {}).get(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan


def _has_model(day: dict | None) -> bool:
    return bool(day and day.get("model_version"))


def _threshold(day: dict | None, key: str) -> float:
    return _number(((day or {}).get("thresholds") or {}).get(key))


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def _version_runs(axis: list[dt.date], by_date: dict) -> list[tuple[str, int, int]]:
    """(version, first, last) stretches of days served by the same model version."""
    out: list[tuple[str, int, int]] = []
    for i, day in enumerate(axis):
        version = (by_date.get(day.isoformat()) or {}).get("model_version")
        if version and out and out[-1][0] == version and out[-1][2] == i - 1:
            out[-1] = (version, out[-1][1], i)
        elif version:
            out.append((version, i, i))
    return out


def _page_version_colors(axis: list[dt.date], by_date: dict, events: list[dict]) -> dict[str, str]:
    """The page's one colour per model version: the serving versions in order of first serving day,
    then the versions only the alias moves name."""
    named = [str(v) for e in events for v in (e.get("version"), e.get("previous_version")) if v]
    return charts.version_colors([*(v for v, _, _ in _version_runs(axis, by_date)), *named])


def _version_tag(version, colors: dict[str, str]) -> str:
    """A version's code with its page colour as a swatch before it (a dash for none)."""
    if not version:
        return "<code>–</code>"
    color = colors.get(str(version))
    swatch = f'<span class="swatch" style="background:{color}"></span>' if color else ""
    return f'<span class="nowrap">{swatch}<code>{esc(version)}</code></span>'


# The kinds of alert, the first whose pattern matches the lower-cased alert, with their tag's css class.
_ALERT_KINDS = (("feature drift", r"^feature drift", "drift"), ("prediction drift", r"^prediction drift", "pred"),
                ("low AUC", r"auc", "auc"), ("low R2", r"\br2\b", "auc"))
_ALERT_TAGS = {**{kind: tag for kind, _, tag in _ALERT_KINDS}, "other": "other"}


def _alert_kind(alert: str) -> str:
    return next((kind for kind, pattern, _ in _ALERT_KINDS if re.search(pattern, alert.lower())), "other")


def _weighted(days: list[dict], key: str, weight: str) -> float | None:
    """The mean of the realized `key` over `days`, weighted by the realized `weight` (None without any)."""
    values = ((_realized(day, key), _realized(day, weight)) for day in days)
    pairs = [(v, w) for v, w in values if math.isfinite(v) and w > 0]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None


def _timeline(axis: list[dt.date], by_date: dict, missing: list[str]) -> charts.Timeline:
    records = [by_date.get(d.isoformat()) for d in axis]
    return charts.Timeline(axis, [d.isoformat() in missing for d in axis],
                           [r is not None and not _has_model(r) for r in records])


def _performance(axis: list[dt.date], by_date: dict, events: list[dict], start: dt.date, end: dt.date,
                 spec: dict, colors: dict[str, str]) -> charts.Performance:
    records = [by_date.get(d.isoformat()) for d in axis]

    def series(value, key: str) -> np.ndarray:
        return np.array([value(r, key) for r in records])

    drawn = [(as_of, str(e.get("kind") or "")) for e in events
             if (as_of := _date(e.get("as_of"))) is not None and start <= as_of <= end]
    return charts.Performance(
        metric_name=spec["metric_name"], metric=series(_realized, spec["metric"]),
        steps=[(series(value, key), label, style) for value, key, label, style in spec["steps"]],
        limits=spec["limits"], empty_limits=spec["empty_limits"], observed_label=spec["observed"][0],
        observed=series(_realized, spec["observed"][1]), predicted=series(_realized, spec["predicted"][1]),
        shares=spec["shares"], level_axis=spec["level_axis"],
        alerts=[bool(r and r.get("alerts")) for r in records],
        versions=_version_runs(axis, by_date), events=drawn, version_colors=colors)


def _drift(axis: list[dt.date], by_date: dict) -> charts.Drift | None:
    """The features' PSI per day, alerting features first, then by their peak PSI; None without any."""
    records = [by_date.get(d.isoformat()) or {} for d in axis]
    features = sorted({f for r in records for f in (r.get("feature_psi") or {})})
    if not features:
        return None
    psi = np.array([[_number((r.get("feature_psi") or {}).get(f)) for r in records] for f in features])
    alerting = {f for r in records if r.get("alert_features") for f in r["alert_features"]}
    peak = np.where(np.isfinite(psi), psi, -1).max(axis=1)
    order = sorted(range(len(features)),
                   key=lambda i: (bool(alerting) and features[i] not in alerting, -peak[i], features[i]))
    thresholds = [_threshold(r, "feature_psi") for r in records]
    return charts.Drift(features=[features[i] for i in order], psi=psi[order], alerting=alerting,
                        threshold=next((t for t in reversed(thresholds) if math.isfinite(t)), 0.25),
                        prediction=np.array([_number(r.get("prediction_psi")) for r in records]),
                        prediction_threshold=np.array([_threshold(r, "prediction_psi") for r in records]))


# ---------------------------------------------------------------- sections

def _header(start: dt.date, end: dt.date, generated_at: str, spec: dict) -> str:
    subtitle = f"{start.isoformat()} &rarr; {end.isoformat()} &middot; generated {esc(generated_at)}"
    return pages.header(f'{esc(spec["title"])} &middot; monitoring', subtitle)


def _summary(start: dt.date, end: dt.date, days: list[dict], events: list[dict], current: dict | None,
             missing: list[str], spec: dict) -> str:
    served = [d for d in days if _has_model(d)]
    scores = [a for a in (_realized(d, spec["metric"]) for d in served) if math.isfinite(a)]
    alert_days = [d for d in days if d.get("alerts")]
    kinds = Counter(kind for day in alert_days for kind in sorted({_alert_kind(str(a)) for a in day["alerts"]}))
    (observed_name, observed_key, level), predicted_key = spec["observed"], spec["predicted"][1]
    observed = _weighted(served, observed_key, "rows_with_outcome")
    pred = _weighted(served, predicted_key, "rows_scored")
    rows = sum(int(v) for v in (_realized(d, "rows_scored") for d in served) if math.isfinite(v))

    cards = [pages.card("Period", plural((end - start).days + 1),
                        f'<span class="nowrap">{start.isoformat()}</span> &rarr; '
                        f'<span class="nowrap">{end.isoformat()}</span>')]
    monitored_detail = f"{len(served)} with a model in production"
    if missing:
        monitored_detail += f" &middot; <b>{len(missing)} missing</b>"
    cards.append(pages.card("Days monitored", f"{len(days)}", monitored_detail, "warn" if missing else ""))
    median_label = f"Median daily {spec['metric_name']}"
    if scores:
        cards.append(pages.card(median_label, f"{statistics.median(scores):.3f}",
                                f"range {min(scores):.3f} &ndash; {max(scores):.3f} over {plural(len(scores))}"))
    else:
        cards.append(pages.card(median_label, pages.DASH, f"no day with realized {spec['metric_short']}"))
    cards.append(pages.card(esc(_capitalized(observed_name)), level(observed),
                            f"mean prediction {level(pred)} &middot; {rows:,} {esc(spec['row_noun'])} scored"))
    alert_detail = ", ".join(f"{n} {esc(k)}" for k, n in kinds.items()) or "no alerts"
    cards.append(pages.card("Days with alerts", f"{len(alert_days)}", alert_detail,
                            "bad" if alert_days else "good" if days else ""))
    cards.append(_production_card(current, events))
    return f'<section class="cards">{"".join(cards)}</section>'


def _production_card(current: dict | None, events: list[dict]) -> str:
    if current:
        decision = (current.get("evaluation") or {}).get("decision") or {}
        latest = next((e for e in reversed(events) if e.get("version") == current.get("version")), None)
        detail = []
        if latest:
            serving = _date(latest.get("as_of"))
            since = (serving + _ONE_DAY).isoformat() if serving else str(latest.get("as_of"))
            kind = str(latest.get("kind") or "moved").replace("_", " ")
            detail.append(f"{esc(kind)}, serving since {esc(since)}")
        if "blessed" in decision:
            detail.append("gate: blessed" if decision["blessed"] else "gate: rejected")
        return pages.card("Production model", f'<code>{esc(current.get("version"))}</code>',
                          " &middot; ".join(detail))
    if events:
        return pages.card("Production model", f'<code>{esc(events[-1].get("version"))}</code>',
                          "manifest not available")
    return pages.card("Production model", "none", "no model has been deployed", "warn")


def _missing_section(missing: list[str]) -> str:
    if not missing:
        return ""
    noun = "day has" if len(missing) == 1 else "days have"
    return pages.section("missing-days", "Missing days", f"<p>{len(missing)} {noun} no monitoring record (hatched "
                         f"in the charts):</p>{pages.chips(missing)}", css="notice")


def _performance_section(axis, by_date, events, start, end, missing, spec: dict, colors: dict[str, str]) -> str:
    if not by_date:
        body = pages.empty("No monitoring records in this period.")
    else:
        chart = charts.performance_chart(_timeline(axis, by_date, missing),
                                         _performance(axis, by_date, events, start, end, spec, colors))
        body = pages.img(chart, spec["plot_alt"], "plot-performance") + _version_legend(axis, by_date, colors)
    return pages.section("performance", "Realized performance", body, performance_caption(axis, spec))


def performance_caption(axis: list[dt.date], spec: dict) -> str:
    """What the performance chart shows, as markup."""
    return (f'{esc(spec["caption"], quote=False)} From {axis[0].isoformat()} to {axis[-1].isoformat()}, one '
            f'point per day. Vertical lines mark alias moves, drawn where the new version starts serving '
            f'(the day after the move); the strip under the chart shows the version that served each day, '
            f'in the colours listed below it.')


def _version_legend(axis, by_date, colors: dict[str, str]) -> str:
    """The serving versions' colours, one entry per version (its days of serving, which may be
    several stretches), in order of first serving day."""
    served: dict[str, list[tuple[int, int]]] = {}
    for version, first, last in _version_runs(axis, by_date):
        served.setdefault(version, []).append((first, last))
    items = []
    for version, stretches in served.items():
        days = sum(last - first + 1 for first, last in stretches)
        spans = ", ".join(axis[first].isoformat() if first == last else
                          f"{axis[first].isoformat()} &rarr; {axis[last].isoformat()}" for first, last in stretches)
        items.append(f'<li data-version="{esc(version)}" data-color="{colors[version]}">'
                     f'{_version_tag(version, colors)} {spans} ({plural(days)})</li>')
    return f'<ul class="versions">{"".join(items)}</ul>' if items else ""


def _drift_section(axis, by_date, missing, spec: dict) -> str:
    data = _drift(axis, by_date) if by_date else None
    if not data:
        return pages.section("drift", "Drift", pages.empty("No drift measurements in this period."))
    body = pages.img(charts.drift_chart(_timeline(axis, by_date, missing), data),
                     "Feature PSI heatmap and prediction PSI over time", "plot-drift")
    day_level = sorted({f for r in by_date.values() for f in (r.get("day_level") or {}) if f not in data.features})
    return pages.section("drift", "Drift", body, drift_caption(data, spec, day_level))


def drift_caption(data: charts.Drift, spec: dict, day_level: list[str] = ()) -> str:
    """What the drift chart shows for `data`: which features can raise alerts is what the records
    say (their alert_features), not a property of the features' values; `day_level` are the
    features the records judge day against days instead (their "day_level"), not drawn."""
    n, threshold = len(data.features), f"{data.threshold:g}"
    alerting = [f for f in data.features if f in data.alerting]
    text = (f"Population stability index (PSI) of each of the {plural(n, 'feature')} per day against the "
            f"training rows of the model that served the day, in bands at 0.4, 1, 2 and 4 times the alert "
            f"threshold {threshold}.")
    if not alerting:
        text += " None of them is a drift alert feature of the dataset: they are reported, never alerted."
    elif len(alerting) < n:
        text += (f" The {len(alerting)} in bold, listed first, are the dataset's drift alert features: a PSI "
                 f"above {threshold} raises an alert. The other {n - len(alerting)}, in grey, are reported "
                 f"only and never alert. Within each group the most drifted come first.")
    else:
        text += (f" Each is a drift alert feature of the dataset: a PSI above {threshold} raises an alert. "
                 f"The most drifted come first.")
    if day_level:
        text += (f" Not drawn: {plural(len(day_level), 'day-level feature')} ({', '.join(day_level)}), with one "
                 f"value per day, which the records compare with the reference days' values instead.")
    return esc(text, quote=False) + f" Below: PSI of {esc(spec['predictions'])} per day against its alert threshold."


def _model_section(current: dict | None, spec: dict) -> str:
    if not current:
        return pages.section("model", "Current model", pages.empty("No model is in production."))
    manifest = current.get("manifest") or {}
    evaluation = current.get("evaluation") or {}
    decision = evaluation.get("decision") or {}
    blessed = decision.get("blessed")
    verdict = (pages.badge("blessed", "good") if blessed else
               pages.badge("rejected", "bad") if blessed is not None else "")
    image = charts.importance_chart(evaluation.get("importance") or {}, spec["importance"])
    if image:
        importance = ('<h3>Permutation importance</h3>'
                      + pages.img(image, "Permutation importance of the current model's features",
                                  "plot-importance"))
    else:
        importance = pages.empty("No permutation importance recorded.")
    table = pages.metric_table(evaluation.get("challenger") or {}, evaluation.get("production") or {},
                               spec["metrics"], better=spec["metrics"])
    return pages.section("model", "Current model", (
        f'<div class="two-col"><div>{_model_facts(current, manifest)}{_model_details(manifest, decision)}</div>'
        f'<div><h3>Holdout evaluation</h3><p class="caption">This model as the challenger on its holdout days, '
        f'against the production model it was compared with.</p>{table}<h3>Gate {verdict}</h3>'
        f'<ul class="reasons">{pages.list_items(decision.get("reasons") or [])}</ul></div></div>{importance}'))


def _model_facts(current: dict, manifest: dict) -> str:
    facts = [("version", f"<code>{esc(current.get('version'))}</code>"),
             ("trained as of", fmt(manifest.get("as_of"))),
             ("training days", pages.day_span(manifest.get("train_days"))),
             ("holdout days", pages.day_span(manifest.get("holdout_days"))),
             ("rows trained", fmt(manifest.get("rows_trained")))]
    return pages.pairs_table(facts)


def _model_details(manifest: dict, decision: dict) -> str:
    """The collapsible parts: parameters, library versions, tuning trials, bootstrap comparison."""
    parts = []
    if manifest.get("parameters"):
        parts.append(pages.details("Parameters", pages.kv_table(manifest["parameters"])))
    if manifest.get("library_versions"):
        parts.append(pages.details("Library versions", pages.kv_table(manifest["library_versions"])))
    trials = (manifest.get("tuning") or {}).get("trials") or []
    if trials:
        parts.append(pages.details(f"Tuning trials ({len(trials)})", pages.records_table(trials)))
    bootstrap = decision.get("bootstrap")
    if isinstance(bootstrap, dict) and bootstrap:
        parts.append(pages.details("Bootstrap comparison", pages.kv_table(bootstrap), open_=True))
    return "".join(parts)


def _events_section(events: list[dict], start: dt.date, end: dt.date, colors: dict[str, str]) -> str:
    if not events:
        return pages.section("events", "Production alias moves", pages.empty("No alias moves recorded."))
    rows, classes, reasons = [], [], []
    for event in events:
        kind = str(event.get("kind") or "")
        as_of = _date(event.get("as_of"))
        inside = as_of is not None and start <= as_of <= end
        color = charts.event_style(kind)["color"]
        rows.append([
            f'{esc(event.get("as_of"))}{"" if inside else "<br><small>outside the period</small>"}',
            (as_of + _ONE_DAY).isoformat() if as_of else pages.DASH,
            f'<span class="kind" style="border-color:{color};color:{color}">'
            f'{esc(kind.replace("_", " ") or "moved")}</span>',
            _version_tag(event.get("version"), colors),
            _version_tag(event.get("previous_version"), colors),
            f'{esc(event.get("moved_at") or "")} by {esc(registry.mover(event))}',
        ])
        classes.append("" if inside else "outside")
        reasons.append(f'<span class="reason">{esc(event["reason"])}</span>' if event.get("reason") else "")
    columns = [("as of", ""), ("serves from", ""), ("kind", ""), ("version", ""), ("previous", ""),
               ("moved", "small")]
    return pages.section("events", "Production alias moves", pages.data_table(columns, rows, classes, reasons),
                         "Every move of the production alias, with its reason under it; a version moved as of a "
                         "day serves from the next day. Moves outside the period are greyed and not drawn in "
                         "the charts.")


def _alert_item(alert: str) -> str:
    kind = _alert_kind(alert)
    text = alert[len(kind) + 1:].strip() if alert.lower().startswith(kind + ":") else alert
    return f'<li><span class="tag {_ALERT_TAGS[kind]}">{esc(kind)}</span> {esc(text)}</li>'


def _days_table(days: list[dict], columns: list[tuple], extra: list[tuple[str, str]], cells,
                colors: dict[str, str]) -> str:
    """A row per day: its date, model and realized `columns` (header, key, formatter), then the cells(day)
    of the `extra` columns (header, css class)."""
    rows = [[esc(day.get("date")), _version_tag(day.get("model_version"), colors),
             *(fmt_(_realized(day, key)) for _, key, fmt_ in columns), *cells(day)] for day in days]
    return pages.data_table([("date", ""), ("model", ""), *((h, "num") for h, _, _ in columns), *extra], rows)


def _alerts_section(days: list[dict], spec: dict, colors: dict[str, str]) -> str:
    alert_days = [d for d in days if d.get("alerts")]
    if not alert_days:
        return pages.section("alerts", "Days with alerts", pages.empty("No alerts in this period.", "good"))
    table = _days_table(alert_days, spec["alert_columns"], [("alerts", "wrap")], lambda day: [
        f'<ul class="alerts">{"".join(_alert_item(str(a)) for a in day["alerts"])}</ul>'], colors)
    return pages.section("alerts", "Days with alerts", table,
                         f"{len(alert_days)} of {len(days)} monitored days raised at least one alert.")


def _all_days_section(days: list[dict], spec: dict, colors: dict[str, str]) -> str:
    if not days:
        return ""
    extra = [("rows w/ outcome", "num"), ("pred. PSI", "num"), ("max feature PSI", "num"), ("alerts", "num"),
             ("note", "wrap")]
    return ('<section id="days"><details><summary>All monitored days</summary>'
            f'{_days_table(days, spec["day_columns"], extra, _day_cells, colors)}</details></section>')


def _day_cells(day: dict) -> list[str]:
    psi = {k: v for k, v in (day.get("feature_psi") or {}).items() if isinstance(v, (int, float))}
    worst = max(psi.items(), key=lambda kv: kv[1]) if psi else None
    return [fmt((day.get("realized") or {}).get("rows_with_outcome")), num(_number(day.get("prediction_psi"))),
            f"{esc(worst[0])} {num(float(worst[1]))}" if worst else pages.DASH,
            str(len(day.get("alerts") or [])), esc(day.get("note") or "")]


# The dashboard's own look, on top of pages.CSS.
_CSS = """
ul.versions{list-style:none;padding:0;margin:8px 0 0;font-size:12px;color:#444;
 display:grid;grid-template-columns:repeat(auto-fill,minmax(350px,1fr));gap:2px 16px}
tr.outside td{color:#9aa1ab}tr.outside .kind{opacity:.6}
.kind{border:1.5px solid;border-radius:10px;padding:0 8px;font-size:12.5px;white-space:nowrap}
.tag{display:inline-block;border-radius:4px;padding:0 6px;font-size:12px;min-width:8.5em;text-align:center}
.tag.drift{background:#fde7d9;color:#9c3d00}.tag.pred{background:#ece3f7;color:#5b2d91}
.tag.auc{background:#fbdada;color:#a11}.tag.other{background:#eceff3;color:#444}
ul.alerts{margin:0;padding-left:0;list-style:none}
"""
