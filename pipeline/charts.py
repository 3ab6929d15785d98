"""Every matplotlib figure of the HTML pages (the evaluation report's and the monitoring dashboard's),
drawn off screen and returned as base64 PNG data (see pages.img)."""
from __future__ import annotations

import base64
import datetime as dt
import io
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from pipeline.metrics import check_problem
from pipeline.sampling import subsample

# Line styles of the alias moves, drawn at the boundary between the move's as_of day and the
# first day the moved-to version serves (as_of + 1).
EVENT_STYLES = {
    "deployed": {"color": "#2a9d3f", "linestyle": "-", "linewidth": 1.8, "label": "deployed"},
    "promoted": {"color": "#1f5fbf", "linestyle": "--", "linewidth": 1.8, "label": "promoted"},
    "rolled_back": {"color": "#d62728", "linestyle": ":", "linewidth": 2.6, "label": "rolled back"},
}
_OTHER_EVENT = {"color": "#7f7f7f", "linestyle": "-.", "linewidth": 1.6}
# The series colours of both pages, in the order charts use them: the first model (the challenger,
# the daily headline metric), the second (production, the observed level), then the mean prediction.
PALETTE = ("#1f3b73", "#e07b00", "#7a4fb5", "#2a9d3f", "#c0392b", "#17becf")
MODEL_COLORS = {"challenger": PALETTE[0], "production": PALETTE[1]}
# Model versions, in order of first appearance: tab20's light then dark hues and tab20b's, without
# greys (which mean "no record" and "no model"); version_palette makes more when a page has more.
VERSION_COLORS = ("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d",
                  "#9edae5", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                  "#bcbd22", "#17becf", "#393b79", "#637939", "#7b4173", "#6b6ecf", "#b5cf6b", "#e7ba52",
                  "#d6616b")
# How far apart (color_distance) the colours version_palette adds beyond VERSION_COLORS are at least,
# while the colour wheel has room.
MIN_VERSION_DISTANCE = 0.15
# PSI bands below 0.4x, 1x, 2x, 4x the alert threshold and above.
PSI_COLORS = ["#f3f7f0", "#fde49e", "#f9a05a", "#e0452b", "#7a0b0b"]
IMPORTANCE_COLOR = "#3b6fb6"
THRESHOLD_STYLE = {"color": "#c0392b", "linestyle": (0, (5, 3)), "linewidth": 1.2}
BASELINE_STYLE = {"color": "#8a8a8a", "linestyle": (0, (5, 3)), "linewidth": 1.4}
_REFERENCE_LINE = {"color": "#8a8a8a", "linestyle": (0, (5, 3)), "linewidth": 1.1}
_MISSING_SPAN = {"facecolor": "#d9d9d9", "edgecolor": "#a6a6a6", "hatch": "///", "linewidth": 0}
_NO_MODEL_SPAN = {"facecolor": "#eef1f6", "edgecolor": "none", "linewidth": 0}
_DPI = 100
# Figure sizes in inches: the full width of a page's section, and the height of a panel of two plots.
WIDTH = 11.0
PAIR_HEIGHT = 4.4
# The matplotlib settings of every figure (with PALETTE as its colour cycle): fonts, text and axis
# colours, spines, legends, the grid.
STYLE = {
    "font.family": "DejaVu Sans", "font.size": 9.5, "axes.titlesize": 11, "axes.titleweight": "bold",
    "axes.titlelocation": "left", "axes.labelsize": 9.5, "axes.labelcolor": "#1d2430",
    "text.color": "#1d2430", "axes.edgecolor": "#9aa1ab", "xtick.color": "#5b6573", "ytick.color": "#5b6573",
    "xtick.labelsize": 8.5, "ytick.labelsize": 8.5, "axes.spines.top": False, "axes.spines.right": False,
    "grid.color": "#e5e5e5", "grid.linewidth": 0.8, "axes.axisbelow": True,
    "legend.frameon": False, "legend.fontsize": 8.5, "figure.facecolor": "white",
}
# Points drawn in the predicted-vs-actual scatter at most (a seeded sample of the rows).
SCATTER_POINTS = 5000
# Bins of equal row count of the calibration curve.
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Timeline:
    """The days of a monitoring chart's x axis; per day, no record (`missing`) or no model serving (`no_model`)."""
    days: list[dt.date]
    missing: list[bool]
    no_model: list[bool]


@dataclass(frozen=True)
class Performance:
    """What the performance chart draws per day of its Timeline: the headline metric (y `limits`, or
    `empty_limits` when it has no value) with per-day `steps` (values, legend label, line style); below,
    the observed level (percentages when `shares`) against the mean prediction; the days with alerts;
    the serving versions as (version, first, last day index) runs, in `version_colors` (by default
    version_colors of the runs); the alias moves as (as_of, kind)."""
    metric_name: str
    metric: np.ndarray
    steps: list[tuple[np.ndarray, str, dict]]
    limits: tuple[float, float]
    empty_limits: tuple[float, float] | None
    observed_label: str
    observed: np.ndarray
    predicted: np.ndarray
    shares: bool
    level_axis: str
    alerts: list[bool]
    versions: list[tuple[str, int, int]]
    events: list[tuple[dt.date, str]]
    version_colors: dict[str, str] | None = None


@dataclass(frozen=True)
class Drift:
    """Feature PSI per (feature, day) in display order (alerting features first), the features
    that alert, the feature PSI alert threshold, and the prediction PSI with its daily threshold."""
    features: list[str]
    psi: np.ndarray
    alerting: set[str]
    threshold: float
    prediction: np.ndarray
    prediction_threshold: np.ndarray


@contextmanager
def _figure(figsize: tuple[float, float]) -> Iterator:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler
    with matplotlib.rc_context({**STYLE, "axes.prop_cycle": cycler(color=PALETTE)}):
        fig = plt.figure(figsize=figsize)
        try:
            yield fig
        finally:
            plt.close(fig)


def _png(fig, dpi: int = _DPI) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _mpl_text(text: object) -> str:
    """Plain text for matplotlib, which would read '$...$' as mathtext."""
    return str(text).replace("$", r"\$")


def _legend_line(**style):
    from matplotlib.lines import Line2D
    return Line2D([], [], **style)


def event_style(kind: str) -> dict:
    """The line style (and legend label) of an alias move of `kind`."""
    return EVENT_STYLES.get(kind, {**_OTHER_EVENT, "label": kind or "moved"})


def version_palette(n: int) -> list[str]:
    """`n` distinct colours: VERSION_COLORS, then hues around the colour wheel (golden-angle steps
    at two lightnesses), each kept only if it is not too close to one already chosen."""
    import colorsys
    colors = list(VERSION_COLORS[:n])
    step = 0
    while len(colors) < n:
        hue, light = (step * 0.618034) % 1.0, (0.72, 0.45, 0.6)[step % 3]
        step += 1
        rgb = colorsys.hls_to_rgb(hue, light, 0.6)
        candidate = "#" + "".join(f"{round(255 * c):02x}" for c in rgb)
        if step > 20 * n or all(color_distance(candidate, c) >= MIN_VERSION_DISTANCE for c in colors):
            if candidate not in colors:
                colors.append(candidate)
    return colors


def _rgb(color: str) -> tuple[float, ...]:
    return tuple(int(color[i:i + 2], 16) / 255 for i in (1, 3, 5))


def color_distance(a: str, b: str) -> float:
    """The euclidean distance of two '#rrggbb' colours in RGB space (channels 0..1)."""
    return math.dist(_rgb(a), _rgb(b))


def version_colors(versions: Iterable[str]) -> dict[str, str]:
    """A distinct colour for each of `versions`, in order of first appearance: the one mapping of a
    page, so that a version has the same colour in every chart and table of it."""
    unique = list(dict.fromkeys(v for v in versions if v))
    return dict(zip(unique, version_palette(len(unique))))


def text_color(background: str) -> str:
    """Dark text on a light `background` ('#rrggbb'), white on a dark one."""
    r, g, b = _rgb(background)
    return "#222222" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "#ffffff"


def evaluation_plots(labels: np.ndarray, curves: dict[str, np.ndarray],
                     importance: dict[str, float], problem: str) -> list[str]:
    """holdout_chart, then importance_chart if any importance is a number."""
    images = [holdout_chart(labels, curves, problem)]
    image = importance_chart(importance, IMPORTANCE_LABELS[check_problem(problem)])
    return images + ([image] if image else [])


# The x axis of a permutation-importance chart, per problem.
IMPORTANCE_LABELS = {"binary": "drop in holdout ROC AUC when the feature is shuffled",
                     "regression": "increase in holdout RMSE when the feature is shuffled"}


def model_color(name: str, i: int = 0) -> str:
    """The colour of the model called `name` (challenger, production) in every chart."""
    return MODEL_COLORS.get(name, PALETTE[(2 + i) % len(PALETTE)])


def holdout_chart(labels: np.ndarray, curves: dict[str, np.ndarray], problem: str) -> str:
    """For each named score array, ROC and calibration curves (binary) or predicted vs actual and
    the residuals' histogram (regression), side by side."""
    with _figure((WIDTH, PAIR_HEIGHT)) as fig:
        axes = fig.subplots(1, 2)
        (_binary_axes if check_problem(problem) == "binary" else _regression_axes)(axes, labels, curves)
        for ax in axes:
            ax.grid(color=STYLE["grid.color"])
        fig.tight_layout(w_pad=3)
        return _png(fig)


def _binary_axes(axes, labels: np.ndarray, curves: dict[str, np.ndarray]) -> None:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import roc_curve

    roc_ax, cal_ax = axes
    for i, (name, scores) in enumerate(curves.items()):
        if len(np.unique(labels)) > 1:
            fpr, tpr, _ = roc_curve(labels, scores)
            color = model_color(name, i)
            roc_ax.plot(fpr, tpr, label=name, color=color, linewidth=1.8)
            frac, mean = calibration_curve(labels, scores, n_bins=CALIBRATION_BINS, strategy="quantile")
            cal_ax.plot(mean, frac, marker="o", markersize=4, label=name, color=color, linewidth=1.6)
    roc_ax.plot([0, 1], [0, 1], label="chance", **_REFERENCE_LINE)
    roc_ax.set(title="ROC curve (holdout)", xlabel="false positive rate", ylabel="true positive rate")
    cal_ax.plot([0, 1], [0, 1], label="perfectly calibrated", **_REFERENCE_LINE)
    cal_ax.set(title="Calibration (holdout)", xlabel="mean predicted probability",
               ylabel="observed rate of the positive class")
    roc_ax.legend(loc="lower right")
    cal_ax.legend(loc="upper left")


def _regression_axes(axes, labels: np.ndarray, curves: dict[str, np.ndarray]) -> None:
    """Predicted vs actual on at most SCATTER_POINTS rows (the same seeded rows for every model),
    with the identity line a perfect model sits on; and each model's residuals (predicted -
    actual) over all rows."""
    scatter_ax, residual_ax = axes
    labels = np.asarray(labels, dtype=float)
    pick = subsample(len(labels), SCATTER_POINTS, seed=0)
    pick = np.arange(len(labels)) if pick is None else pick
    for i, (name, scores) in enumerate(curves.items()):
        color = model_color(name, i)
        scatter_ax.scatter(labels[pick], np.asarray(scores, dtype=float)[pick], s=4, alpha=0.4, label=name,
                           color=color)
        residual_ax.hist(np.asarray(scores, dtype=float) - labels, bins=50, alpha=0.5, label=name, color=color)
    low, high = (float(labels.min()), float(labels.max())) if len(labels) else (0.0, 1.0)
    scatter_ax.plot([low, high], [low, high], label="predicted = actual", **_REFERENCE_LINE)
    scatter_ax.set(title="Predicted vs actual (holdout)", xlabel="actual", ylabel="predicted")
    residual_ax.axvline(0, **_REFERENCE_LINE)
    residual_ax.set(title="Residuals (holdout)", xlabel="predicted - actual", ylabel="rows")
    scatter_ax.legend(loc="upper left")
    residual_ax.legend(loc="upper right")


def importance_chart(importance: dict, xlabel: str) -> str | None:
    """The 20 features of largest absolute importance as labelled bars (None when none is a number)."""
    items = [(str(k), float(v)) for k, v in (importance or {}).items()
             if isinstance(v, (int, float)) and math.isfinite(v)]
    if not items:
        return None
    top = sorted(sorted(items, key=lambda kv: -abs(kv[1]))[:20], key=lambda kv: kv[1])
    with _figure((8.5, 0.34 * len(top) + 1.1)) as fig:
        ax = fig.subplots()
        values = [v for _, v in top]
        bars = ax.barh([_mpl_text(k) for k, _ in top], values,
                       color=[IMPORTANCE_COLOR if v > 0 else "#b8b8b8" for v in values], height=0.7)
        span = max(abs(v) for v in values) or 1.0
        for bar_, value in zip(bars, values):
            ax.text(bar_.get_width() + (0.01 * span if value >= 0 else -0.01 * span),
                    bar_.get_y() + bar_.get_height() / 2, f"{value:.4f}", va="center",
                    ha="left" if value >= 0 else "right", fontsize=8, color="#333333")
        ax.axvline(0, color="#555555", linewidth=0.8)
        ax.set(xlim=(min(0, min(values)) - 0.15 * span, max(0, max(values)) + 0.22 * span), xlabel=xlabel)
        ax.tick_params(axis="y", length=0, labelsize=9)
        _hide_spines(ax, "top", "right")
        ax.grid(axis="x", color=STYLE["grid.color"])
        ax.set_axisbelow(True)
        return _png(fig)


def performance_chart(timeline: Timeline, data: Performance) -> str:
    """The headline metric per day over the observed level and mean prediction, above a strip of
    the serving versions; alias moves as vertical lines, days without a record hatched."""
    from matplotlib.patches import Patch

    x = _x(timeline.days)
    with _figure((WIDTH, 6.4)) as fig:
        grid = fig.add_gridspec(3, 1, height_ratios=[3, 2.2, 0.5], hspace=0.1)
        ax_metric = fig.add_subplot(grid[0])
        ax_level, ax_ver = (fig.add_subplot(grid[i], sharex=ax_metric) for i in (1, 2))
        for ax in (ax_metric, ax_level, ax_ver):
            _shade_days(ax, x, timeline)
            ax.grid(axis="y")
            ax.set_axisbelow(True)
            _hide_spines(ax, "top", "right")
        dot = _marker_size(len(x))
        handles = _metric_panel(ax_metric, x, data, dot) + _level_panel(ax_level, x, data, dot)
        _version_strip(ax_ver, x, data.versions,
                       data.version_colors or version_colors(v for v, _, _ in data.versions))
        handles += _event_lines((ax_metric, ax_level, ax_ver), data.events)
        if any(timeline.missing):
            handles.append(Patch(label="no monitoring record", **_MISSING_SPAN))
        if any(timeline.no_model):
            handles.append(Patch(label="no model in production", **_NO_MODEL_SPAN))
        _date_axis(ax_ver, x)
        _hide_x_labels(ax_metric, ax_level)
        ax_metric.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.04), ncol=4,
                         frameon=False, fontsize=8.5, handlelength=2.6)
        return _png(fig)


def _metric_panel(ax, x, data: Performance, dot: float) -> list:
    name = data.metric_name
    ax.plot(x, data.metric, color=PALETTE[0], marker="o", markersize=dot, linewidth=1.8)
    handles = [_legend_line(color=PALETTE[0], marker="o", markersize=3.5, label=f"daily {name}")]
    for values, label, style in data.steps:
        if np.isfinite(values).any():
            _day_steps(ax, x, values, **style)
            handles.append(_legend_line(color=style["color"], linestyle=style["linestyle"], label=label))
    alert_x = [x[i] for i, alert in enumerate(data.alerts) if alert]
    if alert_x:
        ax.plot(alert_x, [1.0] * len(alert_x), linestyle="none", marker="v",
                markersize=6 if len(x) <= 60 else 3.5, color="#e8590c",
                transform=ax.get_xaxis_transform(), clip_on=False)
        handles.append(_legend_line(linestyle="none", marker="v", color="#e8590c", label="day with alerts"))
    if not np.isfinite(data.metric).any():
        _note(ax, f"no realized {name} in this period", fontsize=11)
        if data.empty_limits:
            ax.set_ylim(*data.empty_limits)
    else:
        values = np.concatenate([v[np.isfinite(v)] for v in [data.metric, *(s[0] for s in data.steps)]])
        ax.set_ylim(*_padded_limits(values, data.limits))
    ax.set_ylabel(name)
    return handles


def _level_panel(ax, x, data: Performance, dot: float) -> list:
    ax.plot(x, data.observed, color=PALETTE[1], marker="o", markersize=dot, linewidth=1.8)
    ax.plot(x, data.predicted, color=PALETTE[2], marker="s", markersize=0.85 * dot, linewidth=1.4,
            linestyle=(0, (4, 2)))
    handles = [_legend_line(color=PALETTE[1], marker="o", markersize=3.5,
                            label=_mpl_text(f"{data.observed_label} (observed)")),
               _legend_line(color=PALETTE[2], marker="s", markersize=3, linestyle=(0, (4, 2)),
                            label="mean prediction")]
    levels = np.concatenate([data.observed, data.predicted])
    if not np.isfinite(levels).any():
        _note(ax, "no scored days in this period", fontsize=11)
    elif data.shares:
        ax.set_ylim(0, max(0.05, float(np.nanmax(levels)) * 1.15))
    else:
        ax.set_ylim(*_padded_limits(levels[np.isfinite(levels)], (-math.inf, math.inf)))
    if data.shares:
        ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_ylabel(_mpl_text(data.level_axis))
    return handles


def _version_strip(ax, x, runs: list[tuple[str, int, int]], colors: dict[str, str]) -> None:
    for version, first, last in runs:
        ax.broken_barh([(x[first] - 0.5, last - first + 1)], (0, 1), facecolor=colors[version],
                       edgecolor="white", linewidth=1)
        if (last - first + 1) / len(x) >= 0.16:
            ax.text((x[first] + x[last]) / 2, 0.5, _mpl_text(version), ha="center", va="center",
                    fontsize=7.5, color=text_color(colors[version]))
    ax.set(ylim=(0, 1), yticks=[])
    ax.set_ylabel("model", rotation=0, ha="right", va="center")
    ax.spines["left"].set_visible(False)


def _event_lines(axes, events: list[tuple[dt.date, str]]) -> list:
    """A vertical line per alias move on every panel; a legend handle per kind of move."""
    handles, seen = [], set()
    for as_of, kind in events:
        style = event_style(kind)
        pos = _x([as_of])[0] + 0.5
        line = {k: v for k, v in style.items() if k != "label"}
        for ax in axes:
            ax.axvline(pos, zorder=3, **line)
        if style["label"] not in seen:
            seen.add(style["label"])
            handles.append(_legend_line(label=_mpl_text(style["label"]), **line))
    return handles


def drift_chart(timeline: Timeline, data: Drift) -> str:
    """A heatmap of feature PSI per day banded by the alert threshold, above the prediction PSI
    per day against its threshold."""
    heat_h = 0.3 * len(data.features) + 0.5
    x = _x(timeline.days)
    with _figure((WIDTH, heat_h + 2.4)) as fig:
        grid = fig.add_gridspec(2, 2, height_ratios=[heat_h, 1.9], width_ratios=[60, 1],
                                hspace=0.12, wspace=0.02)
        ax_heat, ax_cbar = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
        ax_pred = fig.add_subplot(grid[1, 0], sharex=ax_heat)
        fig.add_subplot(grid[1, 1]).set_axis_off()
        _psi_heatmap(fig, ax_heat, ax_cbar, x, timeline, data)
        _prediction_psi_panel(ax_pred, x, timeline, data)
        _date_axis(ax_pred, x)
        _hide_x_labels(ax_heat)
        return _png(fig)


def _psi_heatmap(fig, ax, ax_cbar, x, timeline: Timeline, data: Drift) -> None:
    from matplotlib.colors import BoundaryNorm, ListedColormap

    features, threshold = data.features, data.threshold
    top = max(8 * threshold, float(np.nanmax(data.psi)) * 1.001 if np.isfinite(data.psi).any() else 0)
    bounds = [0, 0.4 * threshold, threshold, 2 * threshold, 4 * threshold, top]
    cmap = ListedColormap(PSI_COLORS).with_extremes(bad=_NO_MODEL_SPAN["facecolor"], under=PSI_COLORS[0])
    mesh = ax.pcolormesh(np.append(x - 0.5, x[-1] + 0.5), np.arange(len(features) + 1),
                         np.ma.masked_invalid(data.psi), cmap=cmap, norm=BoundaryNorm(bounds, cmap.N),
                         edgecolors="white" if len(x) <= 92 else "face", linewidth=0.6)
    for first, last in _runs(timeline.missing):
        ax.axvspan(x[first] - 0.5, x[last] + 0.5, zorder=2, **_MISSING_SPAN)
    ax.set(ylim=(len(features), 0), yticks=np.arange(len(features)) + 0.5)
    ax.set_yticklabels([_mpl_text(f) for f in features], fontsize=9)
    for label, feature in zip(ax.get_yticklabels(), features):
        if feature in data.alerting:
            label.set_fontweight("bold")
        elif data.alerting:
            label.set_color("#8a8a8a")
    ax.tick_params(axis="y", length=0)
    n_alerting = sum(f in data.alerting for f in features)
    if 0 < n_alerting < len(features):
        ax.axhline(n_alerting, color="#333333", linewidth=1.2)
    _hide_spines(ax, "top", "right", "left", "bottom")
    bar = fig.colorbar(mesh, cax=ax_cbar, spacing="uniform", ticks=bounds)
    bar.ax.set_yticklabels([f"{b:.3g}" for b in bounds], fontsize=8)
    bar.set_label("feature PSI", fontsize=9)


def _prediction_psi_panel(ax, x, timeline: Timeline, data: Drift) -> None:
    pred, limit = data.prediction, data.prediction_threshold
    _shade_days(ax, x, timeline)
    ax.plot(x, pred, color=PALETTE[0], marker="o", markersize=_marker_size(len(x)), linewidth=1.6)
    handles = [_legend_line(color=PALETTE[0], marker="o", markersize=3.5, label="prediction PSI")]
    if np.isfinite(limit).any():
        _day_steps(ax, x, limit, **THRESHOLD_STYLE)
        handles.append(_legend_line(color=THRESHOLD_STYLE["color"], linestyle=THRESHOLD_STYLE["linestyle"],
                                    label="alert threshold"))
        over = np.isfinite(pred) & np.isfinite(limit) & (pred > limit)
        if over.any():
            ax.plot(x[over], pred[over], linestyle="none", marker="o", markersize=7 if len(x) <= 60 else 4,
                    markerfacecolor="none", markeredgecolor="#c0392b", markeredgewidth=1.6)
            handles.append(_legend_line(linestyle="none", marker="o", markerfacecolor="none",
                                        markeredgecolor="#c0392b", label="over threshold"))
    if not np.isfinite(pred).any():
        _note(ax, "no prediction PSI in this period")
    else:
        top = float(np.nanmax(np.concatenate([pred, limit])))
        ax.set_ylim(0, max(0.1, top * 1.4))  # headroom for the legend
    ax.set_ylabel("prediction PSI")
    ax.grid(axis="y")
    _hide_spines(ax, "top", "right")
    ax.legend(handles=handles, loc="upper left", fontsize=8, frameon=False, ncol=3)


def _x(days: list[dt.date]) -> np.ndarray:
    import matplotlib.dates as mdates
    return np.array([mdates.date2num(dt.datetime.combine(d, dt.time())) for d in days])


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """(first, last) index pairs of the consecutive True stretches."""
    edges = np.diff(np.concatenate([[0], np.asarray(flags, dtype=int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def _shade_days(ax, x, timeline: Timeline) -> None:
    for flags, style in ((timeline.no_model, _NO_MODEL_SPAN), (timeline.missing, _MISSING_SPAN)):
        for first, last in _runs(flags):
            ax.axvspan(x[first] - 0.5, x[last] + 0.5, zorder=0, **style)


def _marker_size(n_days: int) -> float:
    return 3.5 if n_days <= 60 else 2.0 if n_days <= 150 else 1.2


def _day_steps(ax, x, values, **style) -> None:
    """A per-day level (such as a threshold) drawn across the whole width of each day."""
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


def _hide_x_labels(*axes) -> None:
    """No tick labels nor date offset on the upper panels of a shared date axis."""
    for ax in axes:
        ax.tick_params(axis="x", labelbottom=False)
        ax.xaxis.get_offset_text().set_visible(False)


def _note(ax, text: str, **style) -> None:
    """`text` in the middle of an empty panel."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#777777", **style)


def _hide_spines(ax, *sides: str) -> None:
    for side in sides:
        ax.spines[side].set_visible(False)


def _padded_limits(values, limits: tuple[float, float]) -> tuple[float, float]:
    """The range of `values` with some headroom, kept within `limits`."""
    lo, hi = float(values.min()), float(values.max())
    pad = max(0.02 * max(1.0, abs(hi)), 0.12 * (hi - lo))
    return max(limits[0], lo - pad), min(limits[1], hi + pad)
