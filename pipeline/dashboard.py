"""Self-contained HTML monitoring dashboard over a period: headline figures, realized performance
(ROC AUC and the positive rate for a binary target, RMSE against a naive baseline and the target's
mean for a regression) with the production-alias moves, feature and prediction drift, the current
model's evaluation, and tables of alias events, alert days and missing days."""
from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
import re
import statistics
from collections.abc import Iterable

from pipeline.report import _fmt

_ONE_DAY = dt.timedelta(days=1)

# Line styles of the alias moves, drawn at the boundary between the move's as_of day and the
# first day the moved-to version serves (as_of + 1).
EVENT_STYLES = {
    "deployed": {"color": "#2a9d3f", "linestyle": "-", "linewidth": 1.8, "label": "deployed"},
    "promoted": {"color": "#1f5fbf", "linestyle": "--", "linewidth": 1.8, "label": "promoted"},
    "rolled_back": {"color": "#d62728", "linestyle": ":", "linewidth": 2.6, "label": "rolled back"},
}
_OTHER_EVENT = {"color": "#7f7f7f", "linestyle": "-.", "linewidth": 1.6}
VERSION_COLORS = ["#8fb8de", "#f4b183", "#a9d18e", "#c9a0dc", "#ffd966", "#9dc3c1", "#e6a0a0",
                   "#b4b4d8", "#d9c7a0", "#a0d0e6"]
# PSI bands below 0.4x, 1x, 2x, 4x the alert threshold and above.
PSI_COLORS = ["#f3f7f0", "#fde49e", "#f9a05a", "#e0452b", "#7a0b0b"]
IMPORTANCE_COLOR = "#3b6fb6"
_MISSING_SPAN = {"facecolor": "#d9d9d9", "edgecolor": "#a6a6a6", "hatch": "///", "linewidth": 0}
_NO_MODEL_SPAN = {"facecolor": "#eef1f6", "edgecolor": "none", "linewidth": 0}
_THRESHOLD_STYLE = {"color": "#c0392b", "linestyle": (0, (5, 3)), "linewidth": 1.2}
_BASELINE_STYLE = {"color": "#8a8a8a", "linestyle": (0, (5, 3)), "linewidth": 1.4}
_DPI = 100
TASKS = ("binary", "regression")


def render(start: dt.date, end: dt.date, days: list[dict], events: list[dict], current: dict | None,
           missing_days: list[str], generated_at: str, *, task: str = "binary",
           row_noun: str = "flights", target_label: str = "late arrival") -> str:
    """The dashboard page for `start`..`end`: one HTML document, every image embedded as PNG data.

    `days` are the stored per-day monitoring records, `events` the production-alias history,
    `current` the production version with its manifest and evaluation (or None), and
    `missing_days` the dates in the period without a monitoring record. `task` ("binary" or
    "regression") says which realized metrics the records hold; `row_noun` (plural) and
    `target_label` name a row and the target in the page's wording."""
    if end < start:
        raise ValueError(f"dashboard period ends ({end}) before it starts ({start})")
    spec = _task_spec(task, row_noun, target_label)
    axis = _axis_dates(start, end, days, missing_days)
    by_date = {d["date"]: d for d in days}
    missing = sorted(set(missing_days))
    sections = [
        _header(start, end, generated_at, spec),
        _summary(start, end, days, events, current, missing, spec),
        _missing_section(missing),
        _performance_section(axis, by_date, events, start, end, missing, spec),
        _drift_section(axis, by_date, missing, spec),
        _model_section(current, spec),
        _events_section(events, start, end),
        _alerts_section(days, spec),
        _all_days_section(days, spec),
    ]
    title = f"Model monitoring {start.isoformat()} to {end.isoformat()}"
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
            f'<body><main>{"".join(s for s in sections if s)}</main></body></html>\n')


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _task_spec(task: str, row_noun: str, target_label: str) -> dict:
    """What the page shows for `task`: the headline metric (realized key, name, y limits), the
    per-day step lines drawn with it, the observed level against the mean prediction, the table
    columns as (header, realized key, formatter), the evaluation metrics as (key, +1 when higher
    is better, -1 when lower is, 0 for context), and the captions."""
    if task not in TASKS:
        raise ValueError(f"unknown dashboard task {task!r}: expected one of {', '.join(TASKS)}")
    common = {
        "row_noun": row_noun,
        "title": f"{_capitalized(target_label)} model",
        "reported_only": " (values constant within a day, such as a day's weather, always differ from a "
                         "multi-day reference)",
    }
    known = f"on the day's {row_noun} once their outcomes are known"
    if task == "binary":
        headline = ("ROC AUC", "roc_auc", _num)
        observed = (f"{target_label} rate", "positive_rate", _pct)
        predicted = ("mean pred.", "mean_prediction", _pct)
        return {**common,
                "metric": "roc_auc", "metric_name": "ROC AUC", "metric_short": "AUC",
                "limits": (0.0, 1.0), "empty_limits": (0.4, 1.0),
                "steps": [(_threshold, "min_auc", "min AUC (alert below)", _THRESHOLD_STYLE)],
                "observed": observed, "predicted": predicted, "shares": True,
                "level_axis": f"share of {row_noun}",
                "alert_columns": [headline, observed],
                "day_columns": [headline, ("avg precision", "average_precision", _num), observed, predicted],
                "metrics": (("roc_auc", 1), ("average_precision", 1), ("log_loss", -1), ("brier", -1),
                            ("rows", 0), ("positive_rate", 0)),
                "predictions": "the predicted probabilities",
                "importance": "drop in holdout ROC AUC when the feature is shuffled",
                "plot_alt": f"Daily ROC AUC, {target_label} rate and mean prediction with alias moves",
                "caption": f"Daily ROC AUC {known}, and the observed {target_label} rate against the "
                           f"mean predicted probability."}
    headline, r2 = ("RMSE", "rmse", _num), ("R2 vs baseline", "r2_vs_baseline", _num)
    observed = (f"mean {target_label}", "target_mean", _num)
    predicted = ("mean pred.", "mean_prediction", _num)
    return {**common,
            "metric": "rmse", "metric_name": "RMSE", "metric_short": "RMSE",
            "limits": (0.0, math.inf), "empty_limits": None,
            "steps": [(_realized, "baseline_rmse", "naive baseline RMSE", _BASELINE_STYLE)],
            "observed": observed, "predicted": predicted, "shares": False,
            "level_axis": f"mean {target_label}",
            "alert_columns": [headline, r2, observed, predicted],
            "day_columns": [headline, ("MAE", "mae", _num), r2, observed, predicted],
            "metrics": (("mae", -1), ("rmse", -1), ("r2", 1), ("r2_vs_baseline", 1), ("baseline_mae", 0),
                        ("baseline_rmse", 0), ("rows", 0), ("target_mean", 0)),
            "predictions": "the predictions",
            "importance": "increase in holdout RMSE when the feature is shuffled",
            "plot_alt": f"Daily RMSE against the naive baseline, mean {target_label} and mean prediction "
                        f"with alias moves",
            "caption": f"Daily RMSE {known} (lower is better) against the RMSE of the naive baseline "
                       f"(dashed grey; R2 vs the baseline is below 0 on days above it), and the observed "
                       f"mean {target_label} against the mean prediction."}


# ---------------------------------------------------------------- data helpers

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
    value = ((day or {}).get("thresholds") or {}).get(key)
    return float(value) if isinstance(value, (int, float)) else math.nan


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """(first, last) index pairs of the consecutive True stretches."""
    runs, first = [], None
    for i, flag in enumerate([*flags, False]):
        if flag and first is None:
            first = i
        elif not flag and first is not None:
            runs.append((first, i - 1))
            first = None
    return runs


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


def _version_colors(runs: Iterable[tuple[str, int, int]]) -> dict[str, str]:
    colors: dict[str, str] = {}
    for version, _, _ in runs:
        colors.setdefault(version, VERSION_COLORS[len(colors) % len(VERSION_COLORS)])
    return colors


def _alert_kind(alert: str) -> str:
    text = alert.lower()
    if text.startswith("feature drift"):
        return "feature drift"
    if text.startswith("prediction drift"):
        return "prediction drift"
    if "auc" in text:
        return "low AUC"
    if re.search(r"\br2\b", text):
        return "low R2"
    return "other"


def _pct(value: float | None) -> str:
    return "&ndash;" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "&ndash;" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _weighted(days: list[dict], key: str, weight: str) -> float | None:
    total = sum_w = 0.0
    for day in days:
        value, w = _realized(day, key), _realized(day, weight)
        if math.isfinite(value) and math.isfinite(w) and w > 0:
            total += value * w
            sum_w += w
    return total / sum_w if sum_w else None


# ---------------------------------------------------------------- plots

def _mpl_text(text: object) -> str:
    """Plain text for matplotlib, which would read '$...$' as mathtext."""
    return str(text).replace("$", r"\$")


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", facecolor="white")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(data: str | None, alt: str, plot_id: str) -> str:
    if data is None:
        return ""
    return (f'<img class="plot" id="{plot_id}" alt="{html.escape(alt)}" '
            f'src="data:image/png;base64,{data}">')


def _x(axis: list[dt.date]):
    import matplotlib.dates as mdates
    import numpy as np
    return np.array([mdates.date2num(dt.datetime.combine(d, dt.time())) for d in axis])


def _shade_days(ax, x, missing_flags: list[bool], no_model_flags: list[bool]) -> None:
    for first, last in _runs(no_model_flags):
        ax.axvspan(x[first] - 0.5, x[last] + 0.5, zorder=0, **_NO_MODEL_SPAN)
    for first, last in _runs(missing_flags):
        ax.axvspan(x[first] - 0.5, x[last] + 0.5, zorder=0, **_MISSING_SPAN)


def _drawn_events(events: list[dict], start: dt.date, end: dt.date) -> list[tuple[dt.date, dict]]:
    out = []
    for event in events:
        as_of = _date(event.get("as_of"))
        if as_of is not None and start <= as_of <= end:
            out.append((as_of, event))
    return out


def _event_style(kind: str) -> dict:
    return EVENT_STYLES.get(kind, {**_OTHER_EVENT, "label": kind or "moved"})


def _marker_size(n_days: int) -> float:
    return 3.5 if n_days <= 60 else 2.0 if n_days <= 150 else 1.2


def _day_steps(ax, x, values, **style) -> None:
    """A per-day level (such as a threshold) drawn across the whole width of each day."""
    import numpy as np
    xs, ys = [], []
    for xi, value in zip(x, values):
        xs.extend([xi - 0.5, xi + 0.5, np.nan])
        ys.extend([value, value, np.nan])
    for i in range(2, len(xs) - 1, 3):  # join neighbouring days at the same level
        if ys[i - 1] == ys[i + 1]:
            xs[i], ys[i] = xs[i - 1], ys[i - 1]
    ax.plot(xs, ys, **style)


def _date_axis(ax, x) -> None:
    import matplotlib.dates as mdates
    if len(x) <= 12:
        ax.xaxis.set_major_locator(mdates.DayLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    else:
        locator = mdates.AutoDateLocator(minticks=3, maxticks=12)
        locator.intervald[mdates.HOURLY] = []  # whole days only
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlim(x[0] - 0.5, x[-1] + 0.5)


def _hide_x_labels(plt, *axes) -> None:
    """No tick labels nor date offset on the upper panels of a shared date axis."""
    for ax in axes:
        ax.tick_params(axis="x", labelbottom=False)
        ax.xaxis.get_offset_text().set_visible(False)


def _padded_limits(values, limits: tuple[float, float]) -> tuple[float, float]:
    """The range of `values` with some headroom, kept within `limits`."""
    lo, hi = float(values.min()), float(values.max())
    pad = max(0.02 * max(1.0, abs(hi)), 0.12 * (hi - lo))
    return max(limits[0], lo - pad), min(limits[1], hi + pad)


def _performance_plot(axis: list[dt.date], by_date: dict, events: list[dict], start: dt.date,
                      end: dt.date, missing: list[str], spec: dict) -> str:
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plt = _pyplot()
    x = _x(axis)
    records = [by_date.get(d.isoformat()) for d in axis]
    metric = np.array([_realized(r, spec["metric"]) for r in records])
    steps = [(np.array([value(r, key) for r in records]), label, style)
             for value, key, label, style in spec["steps"]]
    observed = np.array([_realized(r, spec["observed"][1]) for r in records])
    mean_pred = np.array([_realized(r, spec["predicted"][1]) for r in records])
    missing_set = set(missing)
    missing_flags = [d.isoformat() in missing_set for d in axis]
    no_model = [r is not None and not _has_model(r) for r in records]
    alert_x = [x[i] for i, r in enumerate(records) if r and r.get("alerts")]

    fig = plt.figure(figsize=(11, 6.4))
    try:
        grid = fig.add_gridspec(3, 1, height_ratios=[3, 2.2, 0.5], hspace=0.1)
        ax_metric = fig.add_subplot(grid[0])
        ax_level = fig.add_subplot(grid[1], sharex=ax_metric)
        ax_ver = fig.add_subplot(grid[2], sharex=ax_metric)
        for ax in (ax_metric, ax_level, ax_ver):
            _shade_days(ax, x, missing_flags, no_model)
            ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
            ax.set_axisbelow(True)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)

        handles = []
        dot = _marker_size(len(axis))
        name = spec["metric_name"]
        ax_metric.plot(x, metric, color="#1f3b73", marker="o", markersize=dot, linewidth=1.8)
        handles.append(Line2D([], [], color="#1f3b73", marker="o", markersize=3.5, label=f"daily {name}"))
        for values, label, style in steps:
            if np.isfinite(values).any():
                _day_steps(ax_metric, x, values, **style)
                handles.append(Line2D([], [], color=style["color"], linestyle=style["linestyle"],
                                      label=label))
        if alert_x:
            ax_metric.plot(alert_x, [1.0] * len(alert_x), linestyle="none", marker="v",
                           markersize=6 if len(axis) <= 60 else 3.5, color="#e8590c",
                           transform=ax_metric.get_xaxis_transform(), clip_on=False)
            handles.append(Line2D([], [], linestyle="none", marker="v", color="#e8590c",
                                  label="day with alerts"))
        if not np.isfinite(metric).any():
            ax_metric.text(0.5, 0.5, f"no realized {name} in this period", transform=ax_metric.transAxes,
                           ha="center", va="center", color="#777777", fontsize=11)
            if spec["empty_limits"]:
                ax_metric.set_ylim(*spec["empty_limits"])
        else:
            values = np.concatenate([v[np.isfinite(v)] for v in [metric, *(s[0] for s in steps)]])
            ax_metric.set_ylim(*_padded_limits(values, spec["limits"]))
        ax_metric.set_ylabel(name)

        ax_level.plot(x, observed, color="#e07b00", marker="o", markersize=dot, linewidth=1.8)
        ax_level.plot(x, mean_pred, color="#7a4fb5", marker="s", markersize=0.85 * dot, linewidth=1.4,
                      linestyle=(0, (4, 2)))
        handles.append(Line2D([], [], color="#e07b00", marker="o", markersize=3.5,
                              label=_mpl_text(f"{spec['observed'][0]} (observed)")))
        handles.append(Line2D([], [], color="#7a4fb5", marker="s", markersize=3, linestyle=(0, (4, 2)),
                              label="mean prediction"))
        levels = np.concatenate([observed, mean_pred])
        if not np.isfinite(levels).any():
            ax_level.text(0.5, 0.5, "no scored days in this period", transform=ax_level.transAxes,
                          ha="center", va="center", color="#777777", fontsize=11)
        elif spec["shares"]:
            ax_level.set_ylim(0, max(0.05, float(np.nanmax(levels)) * 1.15))
        else:
            ax_level.set_ylim(*_padded_limits(levels[np.isfinite(levels)], (-math.inf, math.inf)))
        if spec["shares"]:
            ax_level.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
        ax_level.set_ylabel(_mpl_text(spec["level_axis"]))

        runs = _version_runs(axis, by_date)
        colors = _version_colors(runs)
        span = len(axis)
        for version, first, last in runs:
            ax_ver.broken_barh([(x[first] - 0.5, last - first + 1)], (0, 1), facecolor=colors[version],
                               edgecolor="white", linewidth=1)
            if (last - first + 1) / span >= 0.16:
                ax_ver.text((x[first] + x[last]) / 2, 0.5, _mpl_text(version), ha="center", va="center",
                            fontsize=7.5, color="#222222")
        ax_ver.set_ylim(0, 1)
        ax_ver.set_yticks([])
        ax_ver.set_ylabel("model", rotation=0, ha="right", va="center")
        ax_ver.spines["left"].set_visible(False)

        seen: set[str] = set()
        for as_of, event in _drawn_events(events, start, end):
            style = _event_style(str(event.get("kind") or ""))
            pos = _x([as_of])[0] + 0.5
            line = {k: v for k, v in style.items() if k != "label"}
            for ax in (ax_metric, ax_level, ax_ver):
                ax.axvline(pos, zorder=3, **line)
            if style["label"] not in seen:
                seen.add(style["label"])
                handles.append(Line2D([], [], label=_mpl_text(style["label"]), **line))
        if any(missing_flags):
            handles.append(Patch(label="no monitoring record", **_MISSING_SPAN))
        if any(no_model):
            handles.append(Patch(label="no model in production", **_NO_MODEL_SPAN))

        _date_axis(ax_ver, x)
        _hide_x_labels(plt, ax_metric, ax_level)
        ax_metric.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.04), ncol=4,
                         frameon=False, fontsize=8.5, handlelength=2.6)
        return _png(fig)
    finally:
        plt.close(fig)


def _drift_plot(axis: list[dt.date], by_date: dict, missing: list[str]) -> str | None:
    import numpy as np
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.lines import Line2D

    records = [by_date.get(d.isoformat()) for d in axis]
    features = sorted({f for r in records if r for f in (r.get("feature_psi") or {})})
    if not features:
        return None
    matrix = np.full((len(features), len(axis)), np.nan)
    for j, record in enumerate(records):
        for i, feature in enumerate(features):
            value = ((record or {}).get("feature_psi") or {}).get(feature)
            if isinstance(value, (int, float)):
                matrix[i, j] = value
    alerting = {f for r in records if r and r.get("alert_features") for f in r["alert_features"]}
    peak = np.where(np.isfinite(matrix), matrix, -1).max(axis=1)
    order = sorted(range(len(features)),
                   key=lambda i: (bool(alerting) and features[i] not in alerting, -peak[i], features[i]))
    features = [features[i] for i in order]
    matrix = matrix[order]
    n_alerting = sum(f in alerting for f in features)

    thresholds = [_threshold(r, "feature_psi") for r in records]
    threshold = next((t for t in reversed(thresholds) if math.isfinite(t)), 0.25)
    top = max(8 * threshold, float(np.nanmax(matrix)) * 1.001 if np.isfinite(matrix).any() else 0)
    bounds = [0, 0.4 * threshold, threshold, 2 * threshold, 4 * threshold, top]
    cmap = ListedColormap(PSI_COLORS).with_extremes(
        bad=_NO_MODEL_SPAN["facecolor"], under=PSI_COLORS[0])
    norm = BoundaryNorm(bounds, cmap.N)

    pred = np.array([float(r["prediction_psi"]) if r and isinstance(r.get("prediction_psi"), (int, float))
                     else np.nan for r in records])
    pred_threshold = np.array([_threshold(r, "prediction_psi") for r in records])
    x = _x(axis)
    missing_set = set(missing)
    missing_flags = [d.isoformat() in missing_set for d in axis]
    no_model = [r is not None and not _has_model(r) for r in records]

    plt = _pyplot()
    heat_h = 0.3 * len(features) + 0.5
    fig = plt.figure(figsize=(11, heat_h + 2.4))
    try:
        grid = fig.add_gridspec(2, 2, height_ratios=[heat_h, 1.9], width_ratios=[60, 1],
                                hspace=0.12, wspace=0.02)
        ax_heat = fig.add_subplot(grid[0, 0])
        ax_cbar = fig.add_subplot(grid[0, 1])
        ax_pred = fig.add_subplot(grid[1, 0], sharex=ax_heat)
        fig.add_subplot(grid[1, 1]).set_axis_off()

        edges_x = np.append(x - 0.5, x[-1] + 0.5)
        edges_y = np.arange(len(features) + 1)
        mesh = ax_heat.pcolormesh(edges_x, edges_y, np.ma.masked_invalid(matrix), cmap=cmap, norm=norm,
                                  edgecolors="white" if len(axis) <= 92 else "face", linewidth=0.6)
        for first, last in _runs(missing_flags):
            ax_heat.axvspan(x[first] - 0.5, x[last] + 0.5, zorder=2, **_MISSING_SPAN)
        ax_heat.set_ylim(len(features), 0)
        ax_heat.set_yticks(np.arange(len(features)) + 0.5)
        ax_heat.set_yticklabels([_mpl_text(f) for f in features], fontsize=9)
        if alerting:
            for label, feature in zip(ax_heat.get_yticklabels(), features):
                if feature in alerting:
                    label.set_fontweight("bold")
                else:
                    label.set_color("#8a8a8a")
        ax_heat.tick_params(axis="y", length=0)
        if 0 < n_alerting < len(features):
            ax_heat.axhline(n_alerting, color="#333333", linewidth=1.2)
        for side in ("top", "right", "left", "bottom"):
            ax_heat.spines[side].set_visible(False)
        bar = fig.colorbar(mesh, cax=ax_cbar, spacing="uniform", ticks=bounds)
        bar.ax.set_yticklabels([f"{b:.3g}" for b in bounds], fontsize=8)
        bar.set_label("feature PSI", fontsize=9)

        _shade_days(ax_pred, x, missing_flags, no_model)
        ax_pred.plot(x, pred, color="#1f3b73", marker="o", markersize=_marker_size(len(axis)), linewidth=1.6)
        handles = [Line2D([], [], color="#1f3b73", marker="o", markersize=3.5, label="prediction PSI")]
        if np.isfinite(pred_threshold).any():
            _day_steps(ax_pred, x, pred_threshold, color="#c0392b", linestyle=(0, (5, 3)), linewidth=1.2)
            handles.append(Line2D([], [], color="#c0392b", linestyle=(0, (5, 3)),
                                  label="alert threshold"))
            over = np.isfinite(pred) & np.isfinite(pred_threshold) & (pred > pred_threshold)
            if over.any():
                ax_pred.plot(x[over], pred[over], linestyle="none", marker="o",
                             markersize=7 if len(axis) <= 60 else 4, markerfacecolor="none",
                             markeredgecolor="#c0392b", markeredgewidth=1.6)
                handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="none",
                                      markeredgecolor="#c0392b", label="over threshold"))
        if not np.isfinite(pred).any():
            ax_pred.text(0.5, 0.5, "no prediction PSI in this period", transform=ax_pred.transAxes,
                         ha="center", va="center", color="#777777")
        else:
            top = float(np.nanmax(np.concatenate([pred, pred_threshold])))
            ax_pred.set_ylim(0, max(0.1, top * 1.4))  # headroom for the legend
        ax_pred.set_ylabel("prediction PSI")
        ax_pred.grid(axis="y", color="#e5e5e5", linewidth=0.8)
        for side in ("top", "right"):
            ax_pred.spines[side].set_visible(False)
        ax_pred.legend(handles=handles, loc="upper left", fontsize=8, frameon=False, ncol=3)
        _date_axis(ax_pred, x)
        _hide_x_labels(plt, ax_heat)
        return _png(fig)
    finally:
        plt.close(fig)


def _importance_plot(importance: dict, xlabel: str) -> str | None:
    items = [(str(k), float(v)) for k, v in (importance or {}).items()
             if isinstance(v, (int, float)) and math.isfinite(v)]
    if not items:
        return None
    top = sorted(sorted(items, key=lambda kv: -abs(kv[1]))[:20], key=lambda kv: kv[1])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 0.34 * len(top) + 1.1))
    try:
        values = [v for _, v in top]
        bars = ax.barh([_mpl_text(k) for k, _ in top], values,
                       color=[IMPORTANCE_COLOR if v > 0 else "#b8b8b8" for v in values], height=0.7)
        span = max(abs(v) for v in values) or 1.0
        for bar_, value in zip(bars, values):
            ax.text(bar_.get_width() + (0.01 * span if value >= 0 else -0.01 * span),
                    bar_.get_y() + bar_.get_height() / 2, f"{value:.4f}", va="center",
                    ha="left" if value >= 0 else "right", fontsize=8, color="#333333")
        ax.axvline(0, color="#555555", linewidth=0.8)
        ax.set_xlim(min(0, min(values)) - 0.15 * span, max(0, max(values)) + 0.22 * span)
        ax.set_xlabel(xlabel)
        ax.tick_params(axis="y", length=0, labelsize=9)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.grid(axis="x", color="#ececec")
        ax.set_axisbelow(True)
        return _png(fig)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------- sections

def _header(start: dt.date, end: dt.date, generated_at: str, spec: dict) -> str:
    esc = html.escape
    return (f'<header><h1>{esc(spec["title"])} &middot; monitoring</h1>'
            f'<p class="sub">{esc(start.isoformat())} &rarr; {esc(end.isoformat())} '
            f'&middot; generated {esc(str(generated_at))}</p></header>')


def _card(label: str, value: str, detail: str = "", tone: str = "") -> str:
    return (f'<div class="card {tone}"><div class="label">{label}</div>'
            f'<div class="value">{value}</div><div class="detail">{detail}</div></div>')


def _summary(start: dt.date, end: dt.date, days: list[dict], events: list[dict], current: dict | None,
             missing: list[str], spec: dict) -> str:
    esc = html.escape
    period_days = (end - start).days + 1
    served = [d for d in days if _has_model(d)]
    scores = [a for a in (_realized(d, spec["metric"]) for d in served) if math.isfinite(a)]
    alert_days = [d for d in days if d.get("alerts")]
    kinds: dict[str, int] = {}
    for day in alert_days:
        for kind in sorted({_alert_kind(str(a)) for a in day["alerts"]}):
            kinds[kind] = kinds.get(kind, 0) + 1
    (observed_name, observed_key, level), predicted_key = spec["observed"], spec["predicted"][1]
    observed = _weighted(served, observed_key, "rows_with_outcome")
    pred = _weighted(served, predicted_key, "rows_scored")
    rows = sum(int(v) for v in (_realized(d, "rows_scored") for d in served) if math.isfinite(v))

    cards = [_card("Period", f"{period_days} day{'s' if period_days != 1 else ''}",
                   f'<span class="nowrap">{start.isoformat()}</span> &rarr; '
                   f'<span class="nowrap">{end.isoformat()}</span>')]
    monitored_detail = f"{len(served)} with a model in production"
    if missing:
        monitored_detail += f" &middot; <b>{len(missing)} missing</b>"
    cards.append(_card("Days monitored", f"{len(days)}", monitored_detail, "warn" if missing else ""))
    median_label = f"Median daily {spec['metric_name']}"
    if scores:
        cards.append(_card(median_label, f"{statistics.median(scores):.3f}",
                           f"range {min(scores):.3f} &ndash; {max(scores):.3f} over {len(scores)} "
                           f"day{'s' if len(scores) != 1 else ''}"))
    else:
        cards.append(_card(median_label, "&ndash;", f"no day with realized {spec['metric_short']}"))
    cards.append(_card(esc(_capitalized(observed_name)), level(observed),
                       f"mean prediction {level(pred)} &middot; {rows:,} {esc(spec['row_noun'])} scored"))
    alert_detail = ", ".join(f"{n} {esc(k)}" for k, n in kinds.items()) or "no alerts"
    cards.append(_card("Days with alerts", f"{len(alert_days)}", alert_detail,
                       "bad" if alert_days else "good" if days else ""))
    cards.append(_production_card(current, events))
    return f'<section class="cards">{"".join(cards)}</section>'


def _production_card(current: dict | None, events: list[dict]) -> str:
    esc = html.escape
    if current:
        version = str(current.get("version"))
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
        return _card("Production model", f'<code>{esc(version)}</code>', " &middot; ".join(detail))
    if events:
        return _card("Production model", f'<code>{esc(str(events[-1].get("version")))}</code>',
                     "manifest not available")
    return _card("Production model", "none", "no model has been deployed", "warn")


def _missing_section(missing: list[str]) -> str:
    if not missing:
        return ""
    chips = "".join(f'<li class="chip">{html.escape(d)}</li>' for d in missing)
    noun = "day has" if len(missing) == 1 else "days have"
    return (f'<section id="missing-days" class="notice"><h2>Missing days</h2>'
            f'<p>{len(missing)} {noun} no monitoring record (hatched in the charts):</p>'
            f'<ul class="chips">{chips}</ul></section>')


def _performance_section(axis, by_date, events, start, end, missing, spec: dict) -> str:
    if not by_date:
        body = '<p class="empty">No monitoring records in this period.</p>'
    else:
        body = _img(_performance_plot(axis, by_date, events, start, end, missing, spec),
                    spec["plot_alt"], "plot-performance")
        body += _version_legend(axis, by_date)
    return (f'<section id="performance"><h2>Realized performance</h2>'
            f'<p class="caption">{html.escape(spec["caption"], quote=False)} Vertical lines mark '
            f'alias moves, drawn where the new version starts serving (the day after the move).</p>'
            f'{body}</section>')


def _version_legend(axis, by_date) -> str:
    runs = _version_runs(axis, by_date)
    if not runs:
        return ""
    colors = _version_colors(runs)
    items = []
    for version, first, last in runs:
        n = last - first + 1
        items.append(f'<li><span class="swatch" style="background:{colors[version]}"></span>'
                     f'<code>{html.escape(version)}</code> {axis[first].isoformat()} &rarr; '
                     f'{axis[last].isoformat()} ({n} day{"s" if n != 1 else ""})</li>')
    return f'<ul class="versions">{"".join(items)}</ul>'


def _drift_section(axis, by_date, missing, spec: dict) -> str:
    image = _drift_plot(axis, by_date, missing) if by_date else None
    body = (_img(image, "Feature PSI heatmap and prediction PSI over time", "plot-drift") if image
            else '<p class="empty">No drift measurements in this period.</p>')
    return ('<section id="drift"><h2>Drift</h2><p class="caption">Population stability index of '
            "each feature per day against the production model's training data. Features in bold "
            f"raise alerts and are listed first; grey ones{spec['reported_only']} are reported only. "
            f"Within each group the most drifted come first. Below: PSI of {spec['predictions']}."
            f"</p>{body}</section>")


def _metric_table(evaluation: dict, metrics: tuple[tuple[str, int], ...]) -> str:
    challenger = evaluation.get("challenger") or {}
    production = evaluation.get("production") or {}
    rows = []
    for metric, better in metrics:
        ch, pr = challenger.get(metric), production.get(metric)
        delta, tone = "&ndash;", ""
        if isinstance(ch, (int, float)) and isinstance(pr, (int, float)) and better:
            diff = ch - pr
            delta = f"{diff:+.4f}"
            tone = "good" if diff * better > 0 else "bad" if diff * better < 0 else ""
        rows.append(f'<tr><td>{html.escape(metric)}</td><td>{_fmt(ch)}</td><td>{_fmt(pr)}</td>'
                    f'<td class="{tone}">{delta}</td></tr>')
    return ('<table class="metrics"><thead><tr><th>metric</th><th>challenger</th><th>production</th>'
            f'<th>&Delta;</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _cell(value) -> str:
    return html.escape(str(value)) if isinstance(value, (dict, list, tuple)) else _fmt(value)


def _kv_table(mapping: dict) -> str:
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{_cell(v)}</td></tr>" for k, v in mapping.items())
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def _details(summary: str, body: str, open_: bool = False) -> str:
    return f'<details{" open" if open_ else ""}><summary>{html.escape(summary)}</summary>{body}</details>'


def _day_span(values: list) -> str:
    values = [str(v) for v in values or []]
    if not values:
        return "&ndash;"
    if len(values) == 1:
        return html.escape(values[0])
    return f"{html.escape(values[0])} &rarr; {html.escape(values[-1])} ({len(values)} days)"


def _model_section(current: dict | None, spec: dict) -> str:
    esc = html.escape
    if not current:
        return ('<section id="model"><h2>Current model</h2>'
                '<p class="empty">No model is in production.</p></section>')
    manifest = current.get("manifest") or {}
    evaluation = current.get("evaluation") or {}
    decision = evaluation.get("decision") or {}
    blessed = decision.get("blessed")
    verdict = ('<span class="badge good">blessed</span>' if blessed else
               '<span class="badge bad">rejected</span>' if blessed is not None else "")
    reasons = "".join(f"<li>{esc(str(r))}</li>" for r in decision.get("reasons") or [])
    facts = [("version", f"<code>{esc(str(current.get('version')))}</code>"),
             ("trained as of", _fmt(manifest.get("as_of"))),
             ("training days", _day_span(manifest.get("train_days"))),
             ("holdout days", _day_span(manifest.get("holdout_days"))),
             ("rows trained", _fmt(manifest.get("rows_trained")))]
    fact_rows = "".join(f"<tr><td>{esc(key)}</td><td>{cell}</td></tr>" for key, cell in facts)
    details = []
    if manifest.get("parameters"):
        details.append(_details("Parameters", _kv_table(manifest["parameters"])))
    if manifest.get("library_versions"):
        details.append(_details("Library versions", _kv_table(manifest["library_versions"])))
    trials = (manifest.get("tuning") or {}).get("trials") or []
    if trials:
        details.append(_details(f"Tuning trials ({len(trials)})", _trials_table(trials)))
    bootstrap = decision.get("bootstrap")
    if isinstance(bootstrap, dict) and bootstrap:
        details.append(_details("Bootstrap comparison", _kv_table(bootstrap), open_=True))

    image = _importance_plot(evaluation.get("importance") or {}, spec["importance"])
    if image:
        importance = ('<h3>Permutation importance</h3>'
                      + _img(image, "Permutation importance of the current model's features",
                             "plot-importance"))
    else:
        importance = '<p class="empty">No permutation importance recorded.</p>'
    return (f'<section id="model"><h2>Current model</h2><div class="two-col">'
            f'<div><table class="kv"><tbody>{fact_rows}</tbody></table>{"".join(details)}</div>'
            f'<div><h3>Holdout evaluation</h3><p class="caption">This model as the challenger on its '
            f'holdout days, against the production model it was compared with.</p>'
            f'{_metric_table(evaluation, spec["metrics"])}'
            f'<h3>Gate {verdict}</h3><ul class="reasons">{reasons}</ul></div></div>'
            f'{importance}</section>')


def _trials_table(trials: list) -> str:
    dicts = [t for t in trials if isinstance(t, dict)]
    keys: list[str] = []
    for trial in dicts:
        keys.extend(k for k in trial if k not in keys)
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{_cell(t.get(k))}</td>" for k in keys) + "</tr>" for t in dicts)
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _data_table(columns: list[tuple[str, str]], rows: list[list[str]],
                row_classes: list[str] | None = None) -> str:
    """A table of pre-escaped cells; each column is (header, css class of its cells)."""
    head = "".join(f'<th class="{css}">{html.escape(label)}</th>' if css else f"<th>{html.escape(label)}</th>"
                   for label, css in columns)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(f'<td class="{c}">{cell}</td>' if c else f"<td>{cell}</td>"
                        for (_, c), cell in zip(columns, row))
        body.append(f"<tr{css}>{cells}</tr>")
    return (f'<div class="scroll"><table class="data"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _events_section(events: list[dict], start: dt.date, end: dt.date) -> str:
    esc = html.escape
    if not events:
        return ('<section id="events"><h2>Production alias moves</h2>'
                '<p class="empty">No alias moves recorded.</p></section>')
    rows, classes = [], []
    for event in events:
        kind = str(event.get("kind") or "")
        as_of = _date(event.get("as_of"))
        inside = as_of is not None and start <= as_of <= end
        style = _event_style(kind)
        note = "" if inside else '<br><small>outside the period</small>'
        rows.append([
            f'{esc(str(event.get("as_of")))}{note}',
            (as_of + _ONE_DAY).isoformat() if as_of else "&ndash;",
            f'<span class="kind" style="border-color:{style["color"]};color:{style["color"]}">'
            f'{esc(kind.replace("_", " ") or "moved")}</span>',
            f'<code>{esc(str(event.get("version")))}</code>',
            f'<code>{esc(str(event.get("previous_version") or "–"))}</code>',
            esc(str(event.get("reason") or "")),
            f'{esc(str(event.get("moved_at") or ""))}<br>by {esc(str(event.get("moved_by") or "unknown"))}',
        ])
        classes.append("" if inside else "outside")
    columns = [("as of", ""), ("serves from", ""), ("kind", ""), ("version", ""), ("previous", ""),
               ("reason", "wrap"), ("moved", "small")]
    return ('<section id="events"><h2>Production alias moves</h2><p class="caption">Every move of the '
            'production alias; a version moved as of a day serves from the next day. Moves outside '
            f'the period are greyed and not drawn in the charts.</p>{_data_table(columns, rows, classes)}'
            '</section>')


_ALERT_TAGS = {"feature drift": "drift", "prediction drift": "pred", "low AUC": "auc", "low R2": "auc",
               "other": "other"}


def _alert_item(alert: str) -> str:
    kind = _alert_kind(alert)
    text = alert[len(kind) + 1:].strip() if alert.lower().startswith(kind + ":") else alert
    return f'<li><span class="tag {_ALERT_TAGS[kind]}">{html.escape(kind)}</span> {html.escape(text)}</li>'


def _realized_cells(day: dict, columns: list[tuple]) -> list[str]:
    return [fmt(_realized(day, key)) for _, key, fmt in columns]


def _realized_headers(columns: list[tuple]) -> list[tuple[str, str]]:
    return [(header, "num") for header, _, _ in columns]


def _alerts_section(days: list[dict], spec: dict) -> str:
    esc = html.escape
    alert_days = [d for d in days if d.get("alerts")]
    if not alert_days:
        return ('<section id="alerts"><h2>Days with alerts</h2>'
                '<p class="empty good">No alerts in this period.</p></section>')
    rows = [[esc(str(day.get("date"))),
             f'<code>{esc(str(day.get("model_version") or "–"))}</code>',
             *_realized_cells(day, spec["alert_columns"]),
             f'<ul class="alerts">{"".join(_alert_item(str(a)) for a in day["alerts"])}</ul>']
            for day in alert_days]
    columns = [("date", ""), ("model", ""), *_realized_headers(spec["alert_columns"]), ("alerts", "wrap")]
    return (f'<section id="alerts"><h2>Days with alerts</h2><p class="caption">{len(alert_days)} of '
            f'{len(days)} monitored days raised at least one alert.</p>{_data_table(columns, rows)}'
            '</section>')


def _all_days_section(days: list[dict], spec: dict) -> str:
    esc = html.escape
    if not days:
        return ""
    rows = []
    for day in days:
        psi = {k: v for k, v in (day.get("feature_psi") or {}).items() if isinstance(v, (int, float))}
        worst = max(psi.items(), key=lambda kv: kv[1]) if psi else None
        pred_psi = day.get("prediction_psi")
        rows.append([
            esc(str(day.get("date"))), f'<code>{esc(str(day.get("model_version") or "–"))}</code>',
            *_realized_cells(day, spec["day_columns"]),
            _fmt((day.get("realized") or {}).get("rows_with_outcome")),
            _num(float(pred_psi)) if isinstance(pred_psi, (int, float)) else "&ndash;",
            f"{esc(worst[0])} {_num(float(worst[1]))}" if worst else "&ndash;",
            str(len(day.get("alerts") or [])), esc(str(day.get("note") or ""))])
    columns = [("date", ""), ("model", ""), *_realized_headers(spec["day_columns"]),
               ("rows w/ outcome", "num"), ("pred. PSI", "num"), ("max feature PSI", "num"),
               ("alerts", "num"), ("note", "wrap")]
    return ('<section id="days"><details><summary>All monitored days</summary>'
            f'{_data_table(columns, rows)}</details></section>')


_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f6f9;color:#1d2430;
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
header h1{margin:0;font-size:26px;font-weight:650}
header .sub{margin:4px 0 18px;color:#5b6573}
h2{font-size:19px;margin:0 0 6px}
h3{font-size:15px;margin:16px 0 6px}
section{background:#fff;border:1px solid #e1e5eb;border-radius:10px;padding:18px 22px;margin:0 0 18px;
 box-shadow:0 1px 2px rgba(20,30,50,.04)}
section.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;
 background:none;border:0;box-shadow:none;padding:0}
.card{background:#fff;border:1px solid #e1e5eb;border-left:5px solid #5b7bb4;border-radius:10px;
 padding:12px 14px}
.card .label{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#6b7583}
.card .value{font-size:26px;font-weight:650;margin:2px 0;overflow-wrap:anywhere}
.card .value code{font-size:12px}
.card .detail{font-size:12.5px;color:#5b6573}
.card.good{border-left-color:#2a9d3f}.card.bad{border-left-color:#d62728}.card.warn{border-left-color:#e8a400}
.notice{background:#fff8e6;border-color:#f0d48a}
.caption{color:#5b6573;margin:0 0 10px;max-width:900px}
img.plot{display:block;max-width:100%;height:auto;margin:6px auto}
.chips,.versions{list-style:none;padding:0;margin:6px 0 0;display:flex;flex-wrap:wrap;gap:6px 14px}
.chip{background:#fff;border:1px solid #e0b84f;border-radius:12px;padding:1px 10px;
 font-variant-numeric:tabular-nums}
.versions{font-size:13px;color:#444}
.swatch{display:inline-block;width:12px;height:12px;border-radius:3px;vertical-align:-1px;margin-right:4px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:5px 10px;border-bottom:1px solid #e8ebef;text-align:right;vertical-align:top;white-space:nowrap}
table.data th,table.data td{text-align:left}
table.data th.num,table.data td.num{text-align:right}
td.wrap{white-space:normal;min-width:14em}td.small{font-size:12.5px}
.scroll{overflow-x:auto}.nowrap{white-space:nowrap}
th{font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:#6b7583;background:#f7f8fa}
td:first-child,th:first-child{text-align:left}
table.data{width:100%}
table.kv td:first-child{color:#5b6573}
tr.outside td{color:#9aa1ab}tr.outside .kind{opacity:.6}
td.good{color:#1e7d32;font-weight:600}td.bad{color:#c62828;font-weight:600}
.badge{display:inline-block;border-radius:10px;padding:0 10px;font-size:13px;color:#fff;vertical-align:2px}
.badge.good{background:#2a9d3f}.badge.bad{background:#d62728}
.kind{border:1.5px solid;border-radius:10px;padding:0 8px;font-size:12.5px;white-space:nowrap}
.tag{display:inline-block;border-radius:4px;padding:0 6px;font-size:12px;min-width:8.5em;text-align:center}
.tag.drift{background:#fde7d9;color:#9c3d00}.tag.pred{background:#ece3f7;color:#5b2d91}
.tag.auc{background:#fbdada;color:#a11}.tag.other{background:#eceff3;color:#444}
ul.alerts{margin:0;padding-left:0;list-style:none}
ul.reasons{margin:4px 0;padding-left:20px}
.two-col{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.2fr);gap:28px}
.empty{color:#6b7583;font-style:italic}.empty.good{color:#1e7d32}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}
code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px}
@media (max-width:800px){.two-col{grid-template-columns:1fr}}
"""
