import base64
import datetime as dt
import io
import subprocess
import sys

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest

from pipeline import charts


def _pngs(images: list[str]) -> list[np.ndarray]:
    out = []
    for data in images:
        raw = base64.b64decode(data, validate=True)
        assert raw.startswith(b"\x89PNG\r\n\x1a\n")
        out.append(matplotlib.image.imread(io.BytesIO(raw), format="png"))
    return out


def _binary_curves(n: int = 200):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=n)
    return labels, {"challenger": np.clip(labels * 0.3 + rng.random(n) * 0.7, 0, 1), "production": rng.random(n)}


def test_plots_are_embedded_pngs():
    labels, curves = _binary_curves()
    assert len(_pngs(charts.evaluation_plots(labels, curves, {"x": 0.1, "c": 0.02}, "binary"))) == 2
    assert len(_pngs(charts.evaluation_plots(labels, curves, {}, "binary"))) == 1


@pytest.mark.filterwarnings("ignore:No artists with labels")
@pytest.mark.filterwarnings("error")
def test_plots_with_one_class_still_render():
    images = charts.evaluation_plots(np.ones(10, dtype=int), {"challenger": np.linspace(0, 1, 10)}, {}, "binary")
    assert len(_pngs(images)) == 1


def test_regression_plots_sample_the_scatter():
    rng = np.random.default_rng(1)
    y = rng.normal(10, 3, charts.SCATTER_POINTS + 3000)
    images = charts.evaluation_plots(y, {"challenger": y + rng.normal(0, 1, len(y))}, {"x": 2.0}, "regression")
    assert len(_pngs(images)) == 2


def test_unknown_problem_is_refused():
    labels, curves = _binary_curves()
    with pytest.raises(ValueError, match="unknown problem kind 'multiclass'"):
        charts.evaluation_plots(labels, curves, {}, "multiclass")


def test_importance_chart_draws_only_numbers():
    assert charts.importance_chart({}, "x") is None
    assert charts.importance_chart({"a": None, "b": float("nan"), "c": "high"}, "x") is None
    (image,) = _pngs([charts.importance_chart({"a": 0.2, "b": -0.1, "c": None}, "drop in AUC")])
    assert (np.abs(image[..., :3] - matplotlib.colors.to_rgb(charts.IMPORTANCE_COLOR)).max(axis=-1) < 0.02).sum() > 500


def test_monitoring_charts_render_days_without_any_value():
    days = [dt.date(2013, 11, 1) + dt.timedelta(days=i) for i in range(5)]
    timeline = charts.Timeline(days, [False, True, False, False, False], [True, False, False, False, False])
    nan = np.full(5, np.nan)
    performance = charts.Performance(
        metric_name="RMSE", metric=nan, steps=[(nan, "baseline", charts.BASELINE_STYLE)], limits=(0, np.inf),
        empty_limits=None, observed_label="mean $minutes$", observed=nan, predicted=nan, shares=False,
        level_axis="mean minutes", alerts=[False] * 5, versions=[("v1", 2, 4)],
        events=[(days[1], "promoted"), (days[3], "odd")])
    drift = charts.Drift(features=["a", "b"], psi=np.full((2, 5), np.nan), alerting={"a"}, threshold=0.25,
                         prediction=nan, prediction_threshold=nan)
    _pngs([charts.performance_chart(timeline, performance), charts.drift_chart(timeline, drift)])


def test_versions_keep_their_colour_and_moves_their_style():
    colors = charts.version_colors(["a", "b", "a", None, ""])
    assert colors == {"a": charts.VERSION_COLORS[0], "b": charts.VERSION_COLORS[1]}
    many = charts.version_colors(f"v{i}" for i in range(2 * len(charts.VERSION_COLORS)))
    assert len(set(many.values())) == len(many) == 2 * len(charts.VERSION_COLORS)
    assert charts.event_style("rolled_back")["label"] == "rolled back"
    assert charts.event_style("")["label"] == "moved"


def test_importing_charts_does_not_load_matplotlib():
    code = "import sys, pipeline.charts; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
