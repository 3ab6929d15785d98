import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipeline import monitoring as mon


# ---- psi --------------------------------------------------------------------------------------
def test_psi_is_zero_for_identical_distributions():
    assert mon.psi([0.1, 0.2, 0.3, 0.4, 0.0], [0.1, 0.2, 0.3, 0.4, 0.0]) == 0.0


def test_psi_value_for_a_shift():
    expected = 0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5)
    assert mon.psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(expected)
    assert mon.psi([0.5, 0.5], [0.9, 0.1]) > 0.25


def test_psi_is_finite_and_large_for_disjoint_bins():
    value = mon.psi([1.0, 0.0], [0.0, 1.0])
    assert math.isfinite(value) and value > 10


# ---- profiles ---------------------------------------------------------------------------------
def test_numeric_profile_has_quantile_edges_and_a_missing_bin():
    X = pd.DataFrame({"x": np.r_[np.arange(100, dtype=float), [np.nan] * 25]})
    prof = mon.profile(X, ["x"], [], scores=np.linspace(0, 1, 125))
    x = prof["features"]["x"]
    assert x["kind"] == "numeric"
    assert x["edges"] == pytest.approx(np.quantile(np.arange(100.0), np.linspace(0, 1, 11))[1:-1])
    assert len(x["fractions"]) == 11
    assert x["fractions"][-1] == pytest.approx(0.2)  # 25 of 125 missing
    assert x["fractions"][:-1] == pytest.approx([0.08] * 10)
    assert sum(x["fractions"]) == pytest.approx(1.0)
    assert prof["rows"] == 125
    assert len(prof["score"]["edges"]) == 9


def test_constant_feature_profile_collapses_to_one_edge():
    prof = mon.profile(pd.DataFrame({"k": [3.0] * 20}), ["k"], [], np.full(20, 0.5))
    assert prof["features"]["k"]["edges"] == [3.0]
    assert prof["features"]["k"]["fractions"] == [0.0, 1.0, 0.0]


def test_categorical_profile_keeps_top_categories_with_missing_and_other():
    X = pd.DataFrame({"c": pd.Series(["a"] * 5 + ["b"] * 3 + [None] * 2 + ["z"], dtype="string")})
    prof = mon.profile(X, [], ["c"], np.zeros(11), top_categories=3)
    c = prof["features"]["c"]
    assert c["kind"] == "categorical"
    assert c["categories"] == ["a", "b", mon.MISSING]
    assert c["fractions"] == pytest.approx([5 / 11, 3 / 11, 2 / 11, 1 / 11])


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
    return X, scores, mon.profile(X, ["a", "b"], ["cat"], scores)


def test_drift_of_the_reference_itself_is_zero(reference):
    X, scores, prof = reference
    d = mon.drift(prof, X, scores)
    assert d == {"feature_psi": {"a": 0.0, "b": 0.0, "cat": 0.0}, "prediction_psi": 0.0}


def test_drift_uses_the_reference_bins(reference):
    X, scores, prof = reference
    shifted = X.assign(a=X["a"].max() + 100.0, cat="new")
    d = mon.drift(prof, shifted, scores)
    edges = prof["features"]["a"]["edges"]
    top_bin = [0.0] * len(edges) + [1.0, 0.0]  # every value above the reference's last edge
    assert d["feature_psi"]["a"] == pytest.approx(mon.psi(prof["features"]["a"]["fractions"], top_bin), abs=1e-6)
    other_only = [0.0, 0.0, 0.0, 1.0]  # categories u, v, w, then __other__
    assert d["feature_psi"]["cat"] == pytest.approx(
        mon.psi(prof["features"]["cat"]["fractions"], other_only), abs=1e-6)
    assert d["feature_psi"]["b"] == 0.0


def test_drift_skips_profiled_features_absent_from_the_day(reference):
    X, scores, prof = reference
    assert set(mon.drift(prof, X[["a"]], scores)["feature_psi"]) == {"a"}


def test_monitor_day_alerts_only_for_alert_features(reference):
    X, scores, prof = reference
    day = X.iloc[:300].assign(a=X["a"].iloc[:300] + 5.0, b=X["b"].iloc[:300] + 5.0)
    labels = np.full(300, np.nan)
    out = mon.monitor_day(scores[:300], labels, day, prof, alert_features=["a", "cat"], psi_threshold=0.25,
                          prediction_psi_threshold=0.25, min_auc=0.6)
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
                          prediction_psi_threshold=0.25, min_auc=0.6)
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
                          prediction_psi_threshold=0.25, min_auc=0.6)
    assert out["alerts"] == []
    assert out["realized"]["roc_auc"] == 1.0


# ---- realized_over ----------------------------------------------------------------------------
def test_realized_over_pools_days_and_counts_left_out_rows():
    day1 = pd.DataFrame({"score": [0.9, 0.2, np.nan, 0.7], "late": [1.0, 0.0, 1.0, np.nan]})
    day2 = pd.DataFrame({"score": [0.6, 0.4, 0.1], "late": [0.0, 1.0, 0.0]})
    r = mon.realized_over([day1, day2], "late")
    used_labels = [1, 0, 0, 1, 0]
    used_scores = [0.9, 0.2, 0.6, 0.4, 0.1]
    assert r["rows"] == 5
    assert r["roc_auc"] == pytest.approx(roc_auc_score(used_labels, used_scores))
    assert r["positive_rate"] == pytest.approx(0.4)
    assert (r["days"], r["rows_total"], r["rows_unscored"], r["rows_without_outcome"]) == (2, 7, 1, 1)


def test_realized_over_no_days():
    r = mon.realized_over([], "late")
    assert (r["days"], r["rows_total"], r["rows"], r["roc_auc"]) == (0, 0, 0, None)


def test_psi_near_zero_on_a_new_sample_of_the_same_distribution_and_large_when_shifted(reference):
    _, scores, prof = reference
    rng = np.random.default_rng(42)
    same = pd.DataFrame({"a": rng.normal(size=1000), "b": rng.normal(size=1000),
                         "cat": pd.Series(rng.choice(["u", "v", "w"], size=1000), dtype="string")})
    shifted = same.assign(a=same["a"] + 1.0,  # one standard deviation
                          cat=pd.Series(rng.choice(["u", "v", "w"], size=1000, p=[0.8, 0.1, 0.1]), dtype="string"))
    calm = mon.drift(prof, same, rng.uniform(0, 0.5, size=1000))
    moved = mon.drift(prof, shifted, rng.uniform(0.3, 0.8, size=1000))
    assert max(calm["feature_psi"].values()) < 0.05 and calm["prediction_psi"] < 0.05
    assert moved["feature_psi"]["a"] > 0.5 and moved["feature_psi"]["cat"] > 0.5
    assert moved["feature_psi"]["b"] < 0.05 and moved["prediction_psi"] > 1.0
