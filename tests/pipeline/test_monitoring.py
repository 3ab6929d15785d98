
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipeline import drift as dr
from pipeline import monitoring as mon


# ---- psi --------------------------------------------------------------------------------------


# ---- profiles ---------------------------------------------------------------------------------


# ---- drift ------------------------------------------------------------------------------------
@pytest.fixture
def reference():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({
        "a": rng.normal(size=1000),
        "b": rng.normal(size=1000),
        "cat": pd.Series(rng.choice(["u", "v", "w"], size=1000), dtype="string"),
    })
    scores = rng.uniform(0, 0.5, size=1000)
    return X, scores, dr.profile(X, ["a", "b"], ["cat"], scores)


def test_drift_of_the_reference_itself_is_zero(reference):
    X, scores, prof = reference
    d = dr.drift(prof, X, scores)
    assert d == {"feature_psi": {"a": 0.0, "b": 0.0, "cat": 0.0}, "prediction_psi": 0.0, "day_level": {}}


def test_drift_uses_the_reference_bins(reference):
    X, scores, prof = reference
    shifted = X.assign(a=X["a"].max() + 100.0, cat="new")
    d = dr.drift(prof, shifted, scores)
    edges = prof["features"]["a"]["edges"]
    top_bin = [0.0] * len(edges) + [1.0, 0.0]  # every value above the reference's last edge
    assert d["feature_psi"]["a"] == pytest.approx(dr.psi(prof["features"]["a"]["fractions"], top_bin), abs=1e-6)
    other_only = [0.0, 0.0, 0.0, 1.0]  # categories u, v, w, then __other__
    assert d["feature_psi"]["cat"] == pytest.approx(
        dr.psi(prof["features"]["cat"]["fractions"], other_only), abs=1e-6)
    assert d["feature_psi"]["b"] == 0.0


def test_drift_skips_profiled_features_absent_from_the_day(reference):
    X, scores, prof = reference
    assert set(dr.drift(prof, X[["a"]], scores)["feature_psi"]) == {"a"}


def test_monitor_day_alerts_only_for_alert_features(reference):
    X, scores, prof = reference
    day = X.iloc[:300].assign(a=X["a"].iloc[:300] + 5.0, b=X["b"].iloc[:300] + 5.0)
    labels = np.full(300, np.nan)
    out = mon.monitor_day(scores[:300], labels, day, prof, alert_features=["a", "cat"], psi_threshold=0.25,
                          prediction_psi_threshold=0.25, min_auc=0.6, problem="binary")
    assert out["feature_psi"]["a"] > 0.25 and out["feature_psi"]["b"] > 0.25
    assert out["feature_psi"]["cat"] < 0.25
    assert out["alerts"] == [f"feature drift: PSI of 'a' is {out['feature_psi']['a']:.3f} > 0.25"]
    assert out["realized"]["rows_scored"] == 300 and out["realized"]["rows_with_outcome"] == 0
    assert "roc_auc" not in out["realized"]
    assert out["thresholds"] == {"feature_psi": 0.25, "prediction_psi": 0.25, "min_auc": 0.6}


def test_monitor_day_prediction_drift_and_realized_auc_alerts(reference):
    X, scores, prof = reference
    day_scores = np.linspace(0.6, 0.99, 200)  # above every reference score
    labels = np.r_[np.ones(100), np.zeros(100)]  # high scores are the on-time flights: AUC 0
    labels[:10] = np.nan
    out = mon.monitor_day(day_scores, labels, X.iloc[:200], prof, alert_features=[], psi_threshold=0.25,
                          prediction_psi_threshold=0.25, min_auc=0.6, problem="binary")
    assert out["prediction_psi"] > 0.25
    assert out["alerts"] == [f"prediction drift: PSI {out['prediction_psi']:.3f} > 0.25",
                             "realized ROC AUC 0.000 < 0.6"]
    r = out["realized"]
    assert r["rows_scored"] == 200 and r["rows_with_outcome"] == 190 and r["rows"] == 190
    assert r["positive_rate"] == pytest.approx(90 / 190)
    assert r["mean_prediction"] == pytest.approx(day_scores.mean())


def test_monitor_day_without_drift_has_no_alerts(reference):
    X, scores, prof = reference
    labels = (scores > 0.25).astype(float)
    out = mon.monitor_day(scores, labels, X, prof, alert_features=["a", "b", "cat"], psi_threshold=0.25,
                          prediction_psi_threshold=0.25, min_auc=0.6, problem="binary")
    assert out["alerts"] == []
    assert out["realized"]["roc_auc"] == 1.0


# ---- day-level features ------------------------------------------------------------------------
@pytest.fixture
def by_day():
    """Ten training days of 100 rows: `varying` differs within each day, `daily` (a rate over
    earlier days, say) and `weekday` hold one value per day."""
    rng = np.random.default_rng(1)
    days = np.repeat([f"2013-01-{d:02d}" for d in range(1, 11)], 100)
    daily = np.repeat(rng.normal(5.0, 1.0, size=10), 100)
    X = pd.DataFrame({"varying": rng.normal(size=1000), "daily": daily,
                      "weekday": pd.Series(np.repeat(list("MTWTFSSMTW"), 100), dtype="string")})
    scores = rng.uniform(0, 0.5, size=1000)
    return X, scores, dr.profile(X, ["varying", "daily"], ["weekday"], scores, days=days)


def test_day_level_features_are_found_from_the_training_days(by_day):
    X, _, prof = by_day
    assert set(prof["features"]) == {"varying"}
    assert prof["day_level"]["daily"]["values"] == pytest.approx(X["daily"].iloc[::100].tolist())
    assert prof["day_level"]["weekday"] == {"kind": "categorical", "values": list("MTWTFSSMTW")}
    # one differing row in one day is enough to make a feature vary within a day
    days = np.repeat(np.arange(10), 100)
    assert dr.day_level_features(X.assign(daily=X["daily"].where(X.index != 5, 0.0)), days,
                                 ["daily", "weekday"]) == ["weekday"]


def test_a_day_level_feature_raises_no_psi_alert_and_a_varying_one_still_does(by_day):
    X, scores, prof = by_day
    today = pd.DataFrame({"varying": np.random.default_rng(2).normal(size=300) + 5.0,  # shifted
                          "daily": np.full(300, 9.0), "weekday": pd.Series(["M"] * 300, dtype="string")})
    out = mon.monitor_day(scores[:300], np.full(300, np.nan), today, prof,
                          alert_features=["varying", "daily", "weekday"], psi_threshold=0.25,
                          prediction_psi_threshold=10.0, min_auc=0.6, problem="binary")
    assert out["alerts"] == [f"feature drift: PSI of 'varying' is {out['feature_psi']['varying']:.3f} > 0.25"]
    assert set(out["feature_psi"]) == {"varying"}
    values = np.asarray(prof["day_level"]["daily"]["values"])
    daily = out["day_level"]["daily"]
    assert daily["value"] == 9.0 and daily["reference_days"] == 10 and daily["outside_range"] is True
    assert daily["z"] == pytest.approx((9.0 - values.mean()) / values.std(ddof=1), abs=1e-6)
    assert out["day_level"]["weekday"] == {"reference_days": 10, "varies_today": False, "value": "M",
                                           "seen_share": 0.2}
    # without the days, the same features are binned as before: today's single value is far out
    binned = dr.profile(X, ["varying", "daily"], ["weekday"], scores)
    old = mon.monitor_day(scores[:300], np.full(300, np.nan), today, binned,
                          alert_features=["varying", "daily", "weekday"], psi_threshold=0.25,
                          prediction_psi_threshold=10.0, min_auc=0.6, problem="binary")
    assert {a.split("'")[1] for a in old["alerts"]} == {"varying", "daily", "weekday"}


def test_a_usual_day_level_value_is_within_the_reference_days(by_day):
    X, scores, prof = by_day
    day = X.iloc[300:400]  # the fourth training day itself
    out = dr.drift(prof, day, scores[300:400])["day_level"]
    assert out["daily"]["outside_range"] is False and abs(out["daily"]["z"]) < 3
    assert out["daily"]["varies_today"] is False


# ---- realized_over ----------------------------------------------------------------------------
def test_realized_over_pools_days_and_counts_left_out_rows():
    day1 = pd.DataFrame({"score": [0.9, 0.2, np.nan, 0.7], "late": [1.0, 0.0, 1.0, np.nan]})
    day2 = pd.DataFrame({"score": [0.6, 0.4, 0.1], "late": [0.0, 1.0, 0.0]})
    r = mon.realized_over([day1, day2], "late", problem="binary")
    used_labels = [1, 0, 0, 1, 0]
    used_scores = [0.9, 0.2, 0.6, 0.4, 0.1]
    assert r["rows"] == 5
    assert r["roc_auc"] == pytest.approx(roc_auc_score(used_labels, used_scores))
    assert r["positive_rate"] == pytest.approx(0.4)
    assert (r["days"], r["rows_total"], r["rows_unscored"], r["rows_without_outcome"]) == (2, 7, 1, 1)


def test_realized_over_no_days():
    r = mon.realized_over([], "late", problem="binary")
    assert (r["days"], r["rows_total"], r["rows"], r["roc_auc"]) == (0, 0, 0, None)


def test_psi_near_zero_on_a_new_sample_of_the_same_distribution_and_large_when_shifted(reference):
    _, scores, prof = reference
    rng = np.random.default_rng(42)
    same = pd.DataFrame({"a": rng.normal(size=1000), "b": rng.normal(size=1000),
                         "cat": pd.Series(rng.choice(["u", "v", "w"], size=1000), dtype="string")})
    shifted = same.assign(a=same["a"] + 1.0,  # one standard deviation
                          cat=pd.Series(rng.choice(["u", "v", "w"], size=1000, p=[0.8, 0.1, 0.1]), dtype="string"))
    calm = dr.drift(prof, same, rng.uniform(0, 0.5, size=1000))
    moved = dr.drift(prof, shifted, rng.uniform(0.3, 0.8, size=1000))
    assert max(calm["feature_psi"].values()) < 0.05 and calm["prediction_psi"] < 0.05
    assert moved["feature_psi"]["a"] > 0.5 and moved["feature_psi"]["cat"] > 0.5
    assert moved["feature_psi"]["b"] < 0.05 and moved["prediction_psi"] > 1.0
