import base64
import datetime as dt
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from pipeline import dashboard

START, END = dt.date(2013, 11, 1), dt.date(2013, 11, 30)
FIRST, SECOND = "20131102-aaaa1111bb", "20131110-cccc2222dd"
MISSING = ["2013-11-12", "2013-11-13"]
ALERT_FEATURES = ["dep_hour", "carrier", "origin", "distance"]


def _binary_realized(rng, weak: bool) -> tuple[dict, list[str]]:
    auc = float(rng.uniform(0.44, 0.52) if weak else rng.uniform(0.62, 0.7))
    late = float(rng.uniform(0.15, 0.3))
    realized = {"roc_auc": auc, "average_precision": late + 0.1, "positive_rate": late,
                "rows_with_outcome": 900, "rows_scored": 930,
                "mean_prediction": late + float(rng.normal(0, 0.02)), "log_loss": 0.5, "brier": 0.16}
    return realized, [f"realized ROC AUC {auc:.3f} < 0.5"] if auc < 0.5 else []


def _regression_realized(rng, weak: bool) -> tuple[dict, list[str]]:
    """Minutes of a ride: the naive baseline (the training mean) is off by about 8 minutes; the weak
    model is worse than that, so its R2 against the baseline goes below 0."""
    target_mean = float(rng.uniform(14, 20))
    baseline_rmse = float(rng.uniform(7.5, 8.5))
    rmse = float(baseline_rmse * (rng.uniform(1.02, 1.12) if weak else rng.uniform(0.7, 0.8)))
    r2_vs_baseline = 1 - (rmse / baseline_rmse) ** 2
    realized = {"rows": 880, "rows_with_outcome": 880, "rows_scored": 910, "target_mean": target_mean,
                "mean_prediction": target_mean + float(rng.normal(0, 0.8)), "mae": 0.78 * rmse,
                "rmse": rmse, "r2": 0.1 + 0.9 * r2_vs_baseline, "baseline": 16.5,
                "baseline_mae": 0.8 * baseline_rmse, "baseline_rmse": baseline_rmse,
                "r2_vs_baseline": r2_vs_baseline}
    alerts = [f"realized R2 vs the naive baseline {r2_vs_baseline:.3f} < 0.0"] if r2_vs_baseline < 0 else []
    return realized, alerts


REALIZED = {"binary": _binary_realized, "regression": _regression_realized}
MIN_PERFORMANCE = {"binary": {"min_auc": 0.5}, "regression": {"min_r2": 0.0}}


def monitoring_records(start: dt.date = START, end: dt.date = END,
                       missing: list[str] = MISSING, problem: str = "binary") -> list[dict]:
    """Per-day records as ModelMonitoring stores them: two days before any model, FIRST serving from
    the 3rd, SECOND (promoted on the 10th) from the 11th until it is rolled back on the 20th; the
    'dep_hour' PSI shifts above the threshold from the 15th, and SECOND performs badly (AUC dips
    below 0.5 for a binary `problem`, RMSE above the naive baseline's for a regression)."""
    rng = np.random.default_rng(7)
    thresholds = {"feature_psi": 0.25, "prediction_psi": 2.0, **MIN_PERFORMANCE[problem]}
    records = []
    day = start
    while day <= end:
        iso = day.isoformat()
        if iso in missing:
            pass
        elif day <= start + dt.timedelta(days=1):
            records.append({"date": iso, "model_version": None, "alerts": [],
                            "note": "no model in production yet"})
        else:
            version = SECOND if dt.date(2013, 11, 11) <= day <= dt.date(2013, 11, 20) else FIRST
            realized, performance_alerts = REALIZED[problem](rng, version == SECOND)
            shifted = day >= dt.date(2013, 11, 15)
            psi = {"dep_hour": float(rng.uniform(0.3, 0.7) if shifted else rng.uniform(0, 0.05)),
                   "carrier": float(rng.uniform(0, 0.08)), "origin": float(rng.uniform(0, 0.02)),
                   "distance": float(rng.uniform(0, 0.12)), "wind_speed": float(rng.uniform(0.5, 1.5)),
                   "temp": float(rng.uniform(0.3, 2.0))}
            pred_psi = float(rng.uniform(0.1, 0.6) if not shifted else rng.uniform(1.5, 2.6))
            alerts = [f"feature drift: PSI of '{f}' is {v:.3f} > 0.25"
                      for f, v in sorted(psi.items(), key=lambda kv: -kv[1])
                      if f in ALERT_FEATURES and v > 0.25]
            if pred_psi > 2.0:
                alerts.append(f"prediction drift: PSI {pred_psi:.3f} > 2.0")
            records.append({
                "date": iso, "model_version": version, "realized": realized,
                "feature_psi": psi, "prediction_psi": pred_psi, "alerts": alerts + performance_alerts,
                "thresholds": dict(thresholds), "alert_features": list(ALERT_FEATURES)})
        day += dt.timedelta(days=1)
    return records


def alias_events() -> list[dict]:
    def event(version, as_of, kind, reason, previous):
        return {"version": version, "as_of": as_of, "kind": kind, "reason": reason,
                "previous_version": previous, "moved_at": f"2026-11-27T10:0{len(reason) % 10}:00+00:00",
                "moved_by": "alice"}
    return [event("20131014-old0000000", "2013-10-14", "deployed", "first model", None),
            event(FIRST, "2013-11-02", "deployed", "blessed by the gate", "20131014-old0000000"),
            event(SECOND, "2013-11-10", "promoted", "challenger beat production", FIRST),
            event(FIRST, "2013-11-20", "rolled_back", "AUC <0.5 & drift on dep_hour", SECOND)]


def current_model(version: str = FIRST) -> dict:
    return {
        "version": version,
        "manifest": {"as_of": "2013-11-02", "train_days": ["2013-10-20", "2013-10-21", "2013-11-01"],
                     "holdout_days": ["2013-11-02"], "parameters": {"max_iter": 200, "learning_rate": 0.1},
                     "rows_trained": 12345, "library_versions": {"scikit-learn": "1.5.0"},
                     "tuning": {"trials": [{"learning_rate": 0.1, "roc_auc": 0.68},
                                           {"learning_rate": 0.05, "roc_auc": 0.67}]}},
        "evaluation": {
            "challenger": {"roc_auc": 0.68, "average_precision": 0.41, "log_loss": 0.49, "brier": 0.16,
                           "rows": 950, "positive_rate": 0.22},
            "production": {"roc_auc": 0.66, "average_precision": 0.39, "log_loss": 0.5, "brier": 0.17,
                           "rows": 950, "positive_rate": 0.22},
            "decision": {"blessed": True, "reasons": ["roc_auc 0.6800 >= 0.6600 - 0.01 <tolerance>"],
                         "bootstrap": {"auc_diff_mean": 0.02, "ci_low": 0.001}},
            "importance": {"dep_hour": 0.05, "carrier": 0.03, "origin": 0.01, "distance": 0.004,
                           "wind_speed": -0.001},
        },
    }


def regression_model() -> dict:
    """The current model of a regression: its evaluation and tuning trials hold RMSE-based scores."""
    model = current_model()
    metrics = {"mae": 4.6, "rmse": 6.1, "r2": 0.52, "r2_vs_baseline": 0.41, "baseline_mae": 6.3,
               "baseline_rmse": 7.95, "rows": 950, "target_mean": 16.2}
    model["manifest"]["tuning"] = {"trials": [
        {"trial": 0, "family": "hgb", "score_name": "rmse", "fold_rmse": [6.2, 6.4], "mean_rmse": 6.3},
        {"trial": 1, "family": "ridge", "score_name": "rmse", "fold_rmse": [7.1, 7.3], "mean_rmse": 7.2}]}
    model["evaluation"].update(
        challenger=metrics,
        production={**metrics, "mae": 4.9, "rmse": 6.4, "r2": 0.47, "r2_vs_baseline": 0.35},
        decision={"blessed": True, "reasons": ["rmse 6.1000 <= 6.4000 + 0.05 <tolerance>"]},
        importance={"distance": 2.1, "dep_hour": 0.6, "carrier": 0.2, "origin": -0.05})
    return model


def render(**overrides) -> str:
    args = {"start": START, "end": END, "days": monitoring_records(), "events": alias_events(),
            "current": current_model(), "missing_days": MISSING, "generated_at": "2026-11-27T10:00:00+00:00",
            "problem": "binary"}
    args.update(overrides)
    return dashboard.render(**args)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.images: dict[str, str] = {}
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        for name in ("src", "href", "srcset", "poster", "data", "action"):
            if name in attrs:
                self.refs.append((tag, name, attrs[name] or ""))
        if tag == "img":
            self.images[attrs.get("id", "")] = attrs.get("src", "")


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def decode_png(src: str) -> np.ndarray:
    import matplotlib.image

    match = re.fullmatch(r"data:image/png;base64,([A-Za-z0-9+/=]+)", src)
    assert match, src[:60]
    data = base64.b64decode(match.group(1), validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(io.BytesIO(data), format="png")


def table(page: str, section: str) -> str:
    match = re.search(rf'<section id="{section}"[^>]*>(.*?)</section>', page, re.S)
    assert match, f"no section {section}"
    return match.group(1)


def test_every_plot_is_one_decodable_png_of_sensible_size():
    page = parse(render())
    assert set(page.images) == {"plot-performance", "plot-drift", "plot-importance"}
    for plot_id, src in page.images.items():
        image = decode_png(src)
        height, width = image.shape[:2]
        assert 400 <= width <= 1400 and 150 <= height <= 1400, (plot_id, image.shape)
        rgb = image[..., :3]
        assert (rgb < 0.9).any(axis=-1).mean() > 0.02, f"{plot_id} is blank"


def test_page_has_no_external_references():
    page_text = render()
    page = parse(page_text)
    assert page.refs
    for tag, name, value in page.refs:
        assert value.startswith("data:") or value.startswith("#"), (tag, name, value[:80])
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert "url(" not in page_text and "@import" not in page_text
    without_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page_text)
    assert not re.search(r"(?i)(?:https?:)?//[a-z0-9]", without_images)


def test_summary_shows_period_monitoring_alerts_and_production():
    days = monitoring_records()
    page = render(days=days)
    cards = re.search(r'<section class="cards">(.*?)</section>', page, re.S).group(1)
    aucs = [d["realized"]["roc_auc"] for d in days if d.get("realized")]
    assert "30 days" in cards and "2013-11-01" in cards and "2013-11-30" in cards
    assert f">{len(days)}<" in cards and "2 missing" in cards
    assert f"{np.median(aucs):.3f}" in cards
    alert_days = [d for d in days if d["alerts"]]
    assert f">{len(alert_days)}<" in cards
    assert FIRST in cards and "serving since 2013-11-21" in cards


def test_alias_events_are_listed_and_escaped():
    events_html = table(render(), "events")
    for event in alias_events():
        assert event["version"] in events_html and event["as_of"] in events_html
    assert "rolled back" in events_html and "promoted" in events_html
    assert "AUC &lt;0.5 &amp; drift on dep_hour" in events_html
    assert "2013-11-21" in events_html  # a move as of the 20th serves from the 21st
    outside = re.findall(r'<tr class="outside[^"]*">.*?</tr>', events_html, re.S)
    assert len(outside) == 1 and "2013-10-14" in outside[0]


def test_alert_days_are_listed_with_their_alerts():
    days = monitoring_records()
    alerts_html = table(render(days=days), "alerts")
    alert_days = [d for d in days if d["alerts"]]
    assert alert_days and any(d["date"] >= "2013-11-15" for d in alert_days)
    rows = re.findall(r"<tr><td>(\d{4}-\d\d-\d\d)</td>", alerts_html)
    assert rows == [d["date"] for d in alert_days]
    assert '<span class="tag drift">feature drift</span> PSI of &#x27;dep_hour&#x27;' in alerts_html
    assert '<span class="tag auc">low AUC</span> realized ROC AUC' in alerts_html
    assert "wind_speed" not in alerts_html  # reported, never alerted on


def test_missing_days_are_listed():
    missing_html = table(render(), "missing-days")
    for day in MISSING:
        assert f'<li class="chip">{day}</li>' in missing_html
    assert "2 days have no monitoring record" in missing_html
    assert 'id="missing-days"' not in render(missing_days=[], days=monitoring_records(missing=[]))


def test_current_model_metrics_gate_and_details():
    model_html = table(render(), "model")
    assert "<tr><td>roc_auc</td><td>0.6800</td><td>0.6600</td>" in model_html
    assert '<td class="good">+0.0200</td>' in model_html  # higher AUC is better
    assert '<td class="good">-0.0100</td>' in model_html  # lower log loss is better
    assert "blessed" in model_html and "&lt;tolerance&gt;" in model_html
    assert "2013-10-20 &rarr; 2013-11-01 (3 days)" in model_html and "12345" in model_html
    assert "Tuning trials (2)" in model_html and "auc_diff_mean" in model_html


def test_all_text_is_escaped():
    days = monitoring_records()
    days[5]["alerts"] = ["<script>alert(1)</script>"]
    days[5]["feature_psi"]["cost_$x$<b>"] = 0.1
    current = current_model(version="v<1>")
    current["evaluation"]["decision"]["reasons"] = ["<img src=x onerror=alert(1)>"]
    page = render(days=days, current=current, generated_at="<now>")
    assert "<script>" not in page and "<img src=x" not in page and "v<1>" not in page
    assert "&lt;script&gt;" in page and "&lt;now&gt;" in page
    assert parse(page).images.keys() == {"plot-performance", "plot-drift", "plot-importance"}


@pytest.mark.parametrize("case", ["empty", "all_auc_none", "one_day", "no_events", "no_current",
                                  "only_pre_model", "no_alert_features", "long_period"])
def test_edge_cases_render(case):
    days, events, current, missing = monitoring_records(), alias_events(), current_model(), MISSING
    start, end = START, END
    if case == "empty":
        days, events, current = [], [], None
        missing = [(START + dt.timedelta(days=i)).isoformat() for i in range(30)]
    elif case == "all_auc_none":
        for day in days:
            if "realized" in day:
                day["realized"]["roc_auc"] = None
    elif case == "one_day":
        start = end = dt.date(2013, 11, 5)
        days = [d for d in days if d["date"] == "2013-11-05"]
        missing = []
    elif case == "no_events":
        events = []
    elif case == "no_current":
        current = None
    elif case == "only_pre_model":
        days = [d for d in days if d["model_version"] is None]
        start, end, missing, current, events = START, START + dt.timedelta(days=1), [], None, []
    elif case == "no_alert_features":
        for day in days:
            day.pop("alert_features", None)
    elif case == "long_period":
        end = START + dt.timedelta(days=199)
        days = monitoring_records(end=end, missing=[])
        missing = []
    page_text = dashboard.render(start, end, days, events, current, missing, "now", problem="binary")
    page = parse(page_text)
    for src in page.images.values():
        decode_png(src)
    for tag, name, value in page.refs:
        assert value.startswith(("data:", "#")), value[:60]
    expected = {
        "empty": set(),
        "only_pre_model": {"plot-performance"},
        "no_current": {"plot-performance", "plot-drift"},
    }.get(case, {"plot-performance", "plot-drift", "plot-importance"})
    assert set(page.images) == expected
    if case == "empty":
        assert "No monitoring records in this period." in page_text
        assert "No alias moves recorded." in page_text and "No model is in production." in page_text
        assert all(day in page_text for day in missing)
    if case == "no_current":
        assert "No model is in production." in page_text and FIRST in page_text


def test_period_ending_before_it_starts_is_refused():
    with pytest.raises(ValueError, match=r"ends \(2013-11-01\) before it starts \(2013-11-30\)"):
        dashboard.render(END, START, [], [], None, [], "now", problem="binary")


RIDES = {"problem": "regression", "row_noun": "rides", "target_label": "trip minutes"}


def render_regression(**overrides) -> str:
    return render(**{"days": monitoring_records(problem="regression"), "current": regression_model(),
                     **RIDES, **overrides})


def test_regression_page_speaks_of_rmse_rows_and_target():
    page_text = render_regression()
    page = parse(page_text)
    assert set(page.images) == {"plot-performance", "plot-drift", "plot-importance"}
    for src in page.images.values():
        decode_png(src)
    assert "RMSE" in page_text and "rides" in page_text and "trip minutes" in page_text
    for binary_word in ("ROC AUC", "late rate", "Late rate", "Late-arrival", "flights",
                        "predicted probabilities"):
        assert binary_word not in page_text
    assert "<h1>Trip minutes model &middot; monitoring</h1>" in page_text
    caption = table(page_text, "performance")
    assert "Daily RMSE on the day's rides once their outcomes are known" in caption
    assert "naive baseline" in caption and "mean trip minutes against the mean prediction" in caption


def test_regression_summary_shows_median_rmse_and_mean_target():
    days = monitoring_records(problem="regression")
    cards = re.search(r'<section class="cards">(.*?)</section>', render_regression(days=days), re.S).group(1)
    served = [d["realized"] for d in days if d.get("realized")]
    rmse = [r["rmse"] for r in served]
    mean_target = sum(r["target_mean"] * r["rows_with_outcome"] for r in served) / sum(
        r["rows_with_outcome"] for r in served)
    assert "Median daily RMSE" in cards and f"{np.median(rmse):.3f}" in cards
    assert "Mean trip minutes" in cards and f">{mean_target:.3f}<" in cards
    assert f"{910 * len(served):,} rides scored" in cards
    assert "%" not in cards
    assert "low R2" in cards  # the alert days are counted by kind


def test_regression_alert_days_list_rmse_r2_and_means():
    days = monitoring_records(problem="regression")
    alerts_html = table(render_regression(days=days), "alerts")
    r2_days = [d for d in days if any("R2" in a for a in d["alerts"])]
    assert r2_days and all(d["model_version"] == SECOND for d in r2_days)
    rows = re.findall(r"<tr><td>(\d{4}-\d\d-\d\d)</td>", alerts_html)
    assert rows == [d["date"] for d in days if d["alerts"]]
    for header in ("RMSE", "R2 vs baseline", "mean trip minutes", "mean pred."):
        assert f'<th class="num">{header}</th>' in alerts_html
    day = r2_days[0]
    row = re.search(rf"<tr><td>{day['date']}</td>.*?</tr>", alerts_html, re.S).group(0)
    realized = day["realized"]
    for key in ("rmse", "r2_vs_baseline", "target_mean", "mean_prediction"):
        assert f'<td class="num">{realized[key]:.3f}</td>' in row
    assert '<span class="tag auc">low R2</span> realized R2 vs the naive baseline' in row
    assert "%" not in alerts_html
    all_days = table(render_regression(days=days), "days")
    assert '<th class="num">MAE</th>' in all_days and "avg precision" not in all_days


def test_regression_alert_is_a_performance_alert():
    assert dashboard._alert_kind("realized R2 vs the naive baseline -0.120 < 0.0") == "low R2"
    assert dashboard._alert_kind("realized ROC AUC 0.480 < 0.5") == "low AUC"
    assert dashboard._alert_kind("feature drift: PSI of 'r2' is 0.300 > 0.25") == "feature drift"


def test_regression_metrics_point_the_right_way():
    model_html = table(render_regression(), "model")
    assert "<tr><td>rmse</td><td>6.1000</td><td>6.4000</td>" in model_html
    assert '<td class="good">-0.3000</td>' in model_html  # lower RMSE is better
    assert '<td class="good">+0.0600</td>' in model_html  # higher R2 vs the baseline is better
    assert "<tr><td>baseline_rmse</td><td>7.9500</td><td>7.9500</td><td class=\"\">&ndash;</td>" in model_html
    assert "roc_auc" not in model_html
    assert "mean_rmse" in model_html and "fold_rmse" in model_html and "7.2" in model_html


def test_regression_performance_plot_draws_the_baseline():
    def grey_pixels(days):
        image = decode_png(parse(render_regression(days=days)).images["plot-performance"])[..., :3]
        return int((np.abs(image - 0x8a / 255).max(axis=-1) < 0.03).sum())

    without = monitoring_records(problem="regression")
    for day in without:
        if day.get("realized"):
            day["realized"]["baseline_rmse"] = None
    assert grey_pixels(monitoring_records(problem="regression")) > grey_pixels(without) + 200


@pytest.mark.parametrize("key", ["rmse", "target_mean"])
def test_regression_renders_without_realized_values(key):
    days = monitoring_records(problem="regression")
    for day in days:
        if day.get("realized"):
            day["realized"] = dict.fromkeys(day["realized"]) if key == "target_mean" else {
                **day["realized"], "rmse": None}
    page = parse(render_regression(days=days))
    assert set(page.images) == {"plot-performance", "plot-drift", "plot-importance"}
    decode_png(page.images["plot-performance"])


def test_binary_wording_follows_row_noun_and_target_label():
    default = render()
    assert "<h1>Late arrival model &middot; monitoring</h1>" in default
    assert "Late arrival rate" in default and "flights scored" in default and "Median daily ROC AUC" in default
    assert "<th class=\"num\">late arrival rate</th>" in table(default, "alerts")
    assert "the day's flights once their outcomes are known, and the observed late arrival rate" in default
    rides = render(row_noun="rides", target_label="cancelled")
    assert "Cancelled rate" in rides and "rides scored" in rides and "ROC AUC" in rides
    assert "<th class=\"num\">cancelled rate</th>" in table(rides, "alerts")
    assert "late arrival rate" not in rides.lower() and "flights" not in rides
    assert "<h1>Cancelled model &middot; monitoring</h1>" in rides


def test_unknown_problem_is_refused():
    with pytest.raises(ValueError, match=r"unknown problem kind 'multiclass'; expected one of \('binary', 'regression'\)"):
        render(problem="multiclass")
