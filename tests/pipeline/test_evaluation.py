import base64
import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipeline import estimators as es
from pipeline import evaluation as ev
from pipeline import metrics as mt
from pipeline import sampling as sp
from tests.pipeline.builders import fit

NUMERIC = ["x", "noise"]
CATEGORICAL = ["c"]
HP = es.Hyperparameters(max_iter=20, min_samples_leaf=20)


def synthetic(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    c = rng.choice(["a", "b"], size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(2.5 * x + (c == "a"))))).astype(float)
    return pd.DataFrame({"x": x, "noise": rng.normal(size=n), "c": pd.Series(c, dtype="string"), "late": y})


@pytest.fixture(scope="module")
def models():
    train = synthetic(800, seed=1)
    good, _ = fit(train, NUMERIC, CATEGORICAL, "late", HP)
    shuffled = train.assign(late=np.random.default_rng(2).permutation(train["late"].to_numpy()))
    bad, _ = fit(shuffled, NUMERIC, CATEGORICAL, "late", HP)
    return good, bad


@pytest.fixture(scope="module")
def holdout():
    df = synthetic(300, seed=3)
    df.loc[df.index[:20], "late"] = np.nan  # cancelled flights: no outcome, not evaluated
    return df


# ---- metrics ----------------------------------------------------------------------------------


# ---- gate -------------------------------------------------------------------------------------
def _comparison(difference, low, high, metric="roc_auc", c=0.70, p=0.71):
    return {"metric": metric, "challenger": c, "production": p, "difference": difference, "ci_low": low,
            "ci_high": high, "confidence": 0.95, "samples": 500, "valid_samples": 500, "seed": 0, "rows": 900}


def test_gate_fails_a_floor():
    d = ev.decide_gate({"roc_auc": 0.55, "log_loss": 0.4}, {"roc_auc": 0.6, "log_loss": 0.5}, None, 0.005)
    assert d["blessed"] is False
    assert "log_loss 0.4000 clears the floor <= 0.5" in d["reasons"]
    assert "roc_auc 0.5500 fails the floor >= 0.6" in d["reasons"]


def test_gate_fails_a_lower_is_better_floor():
    d = ev.decide_gate({"roc_auc": 0.8, "brier": 0.3}, {"brier": 0.25}, None, 0.005)
    assert d["blessed"] is False and d["reasons"][0] == "brier 0.3000 fails the floor <= 0.25"


@pytest.mark.parametrize("value", [None, float("nan")])
def test_gate_fails_an_undefined_metric(value):
    d = ev.decide_gate({"roc_auc": value}, {"roc_auc": 0.6}, None, 0.005)
    assert d["blessed"] is False
    assert d["reasons"][0] == "roc_auc is undefined on the holdout (floor >= 0.6)"


def test_gate_without_production_blesses_and_says_why():
    d = ev.decide_gate({"roc_auc": 0.7}, {"roc_auc": 0.6}, None, 0.005)
    assert d["blessed"] is True
    assert d["reasons"] == ["roc_auc 0.7000 clears the floor >= 0.6", "no model in production: nothing to compare with"]


def test_gate_rejects_when_the_interval_reaches_below_the_tolerance():
    d = ev.decide_gate({"roc_auc": 0.70}, {"roc_auc": 0.6}, _comparison(-0.002, -0.009, 0.004), 0.005)
    assert d["blessed"] is False
    assert d["reasons"][-1].startswith("roc_auc 0.7000 vs production 0.7100: difference -0.0020, 95% CI [-0.0090, +0.0040]")
    assert d["reasons"][-1].endswith("the challenger may be worse than production by more than the tolerance")
    assert d["comparison"]["ci_low"] == -0.009


def test_gate_blesses_when_the_interval_stays_within_the_tolerance():
    d = ev.decide_gate({"roc_auc": 0.70}, {"roc_auc": 0.6}, _comparison(-0.001, -0.004, 0.002), 0.005)
    assert d["blessed"] is True and d["reasons"][-1].endswith("not worse than production beyond the tolerance 0.005")


def test_gate_rejects_when_the_comparison_is_undefined():
    d = ev.decide_gate({"roc_auc": 0.7}, {}, _comparison(None, None, None), 0.005)
    assert d["blessed"] is False
    assert d["reasons"] == ["roc_auc is undefined on the holdout for challenger or production"]


# ---- paired bootstrap -------------------------------------------------------------------------
def _scored(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(int)
    strong = labels * 1.2 + rng.normal(size=n)
    weak = labels * 0.4 + rng.normal(size=n)
    return labels, 1 / (1 + np.exp(-strong)), 1 / (1 + np.exp(-weak))


def test_weighted_auc_matches_sklearn_with_sample_weights_and_ties():
    labels, strong, _ = _scored(300)
    strong = np.round(strong, 2)  # many ties
    weights = np.random.default_rng(1).multinomial(300, np.full(300, 1 / 300), size=5)
    ours = ev._weighted_auc(labels, strong, weights)
    theirs = [roc_auc_score(labels, strong, sample_weight=w) for w in weights]
    assert ours == pytest.approx(theirs)


@pytest.mark.parametrize("metric", ["roc_auc", "average_precision", "log_loss", "brier"])
def test_paired_bootstrap_orients_the_difference_and_covers_it(metric):
    labels, strong, weak = _scored()
    result = ev.paired_bootstrap(labels, strong, weak, metric, samples=200, confidence=0.9, seed=3)
    full = mt.metrics(labels, strong, problem="binary")[metric] - mt.metrics(labels, weak, problem="binary")[metric]
    assert result["difference"] == pytest.approx(full if mt.HIGHER_IS_BETTER[metric] else -full)
    assert result["difference"] > 0  # the strong model is better, whatever the metric's direction
    assert result["ci_low"] < result["difference"] < result["ci_high"]
    assert result["valid_samples"] == 200 and result["rows"] == len(labels)


def test_paired_bootstrap_is_reproducible_and_narrower_for_identical_models():
    labels, strong, weak = _scored()
    a = ev.paired_bootstrap(labels, strong, weak, "roc_auc", 300, 0.95, seed=7)
    assert a == ev.paired_bootstrap(labels, strong, weak, "roc_auc", 300, 0.95, seed=7)
    assert a != ev.paired_bootstrap(labels, strong, weak, "roc_auc", 300, 0.95, seed=8)
    same = ev.paired_bootstrap(labels, strong, strong, "roc_auc", 300, 0.95, seed=7)
    assert same["difference"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0


# ---- evaluate_challenger ----------------------------------------------------------------------
RULES = {"floors": {"roc_auc": 0.6}, "tolerance": 0.005, "compare_metric": "roc_auc",
         "bootstrap_samples": 300, "confidence": 0.95, "seed": 0}


def _evaluate(challenger, production, holdout, floors, **kw):
    parts = kw.get("parts", [(dt.date(2013, 1, 10), holdout)])
    return ev.evaluate_challenger(
        challenger, production, iter(parts), NUMERIC, CATEGORICAL, "late",
        {**RULES, "floors": floors, **kw.get("rules", {})},
        importance=kw.get("importance", {"x": 0.2, "c": 0.01}), title="Candidate <2013-01-10>",
        context={"challenger_id": "cand-1", "production_version": kw.get("version"),
                 "holdout_days": ["2013-01-08", "2013-01-09", "2013-01-10"]}, problem="binary")


def _png_images(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def test_evaluate_challenger_without_production_is_blessed(models, holdout):
    good, _ = models
    record, html = _evaluate(good, None, holdout, {"roc_auc": 0.6})
    labelled = holdout.dropna(subset=["late"])
    expected = mt.metrics(labelled["late"].astype(int).to_numpy(),
                          es.predict(good, labelled, NUMERIC, CATEGORICAL, problem="binary"), problem="binary")
    assert record["challenger"] == pytest.approx(expected)
    assert record["challenger"]["rows"] == 280
    assert record["production"] is None
    assert record["decision"]["blessed"] is True
    assert record["challenger_id"] == "cand-1"
    assert record["importance"] == {"x": 0.2, "c": 0.01}
    assert "Gate: BLESSED" in html and "REJECTED" not in html
    images = _png_images(html)
    assert len(images) == 2 and all(img.startswith(b"\x89PNG\r\n\x1a\n") for img in images)


def test_evaluate_challenger_worse_than_production_is_rejected(models, holdout):
    good, bad = models
    record, html = _evaluate(bad, good, holdout, {"roc_auc": 0.0}, version="20130109-abc")
    assert record["production"]["roc_auc"] > record["challenger"]["roc_auc"] + 0.1
    assert record["decision"]["blessed"] is False
    comparison = record["decision"]["comparison"]
    assert comparison["difference"] == pytest.approx(record["challenger"]["roc_auc"] - record["production"]["roc_auc"])
    assert comparison["ci_high"] < -0.005  # confidently worse: trained on shuffled labels
    assert "may be worse than production" in record["decision"]["reasons"][-1]
    assert "Gate: REJECTED" in html and "BLESSED" not in html
    assert "20130109-abc" in html
    assert len(_png_images(html)) == 2


def test_evaluate_challenger_with_no_labelled_rows_is_rejected(models, holdout):
    good, _ = models
    record, html = _evaluate(good, None, holdout.assign(late=np.nan), {"roc_auc": 0.6}, repeats=0)
    assert record["challenger"]["rows"] == 0
    assert record["decision"]["blessed"] is False
    assert record["decision"]["reasons"][0] == "roc_auc is undefined on the holdout (floor >= 0.6)"
    assert "Gate: REJECTED" in html and _png_images(html) == []


def test_permutation_importance_ranks_the_informative_column_first(models, holdout):
    good, _ = models
    labelled = holdout.dropna(subset=["late"])
    X = es.feature_matrix(labelled, NUMERIC, CATEGORICAL)
    importance = mt.permutation_importance(good, X, labelled["late"].astype(int).to_numpy(), repeats=2, seed=0, max_rows=3000, problem="binary")
    assert set(importance) == {"c", "x", "noise"}
    assert importance["x"] > importance["noise"] + 0.05
    assert mt.permutation_importance(good, X, labelled["late"].astype(int).to_numpy(), repeats=0, seed=0, max_rows=3000, problem="binary") == {}


def test_evaluate_challenger_blesses_a_good_challenger_over_a_degraded_production(models, holdout):
    good, bad = models
    record, html = _evaluate(good, bad, holdout, {"roc_auc": 0.6}, version="20130109-abc")
    comparison = record["decision"]["comparison"]
    assert record["decision"]["blessed"] is True
    assert comparison["ci_low"] > 0 and comparison["samples"] == 300
    assert "not worse than production" in record["decision"]["reasons"][-1]
    assert "Gate: BLESSED" in html


def test_evaluate_challenger_uses_a_bounded_seeded_sample_of_the_holdout(models):
    good, bad = models
    parts = []
    for i in range(3):
        day = synthetic(700, seed=10 + i)
        day.loc[day.index[:50], "late"] = np.nan
        parts.append((dt.date(2013, 1, 8 + i), day))
    rules = {"max_eval_rows": 900, "seed": 4}
    record, _ = _evaluate(good, bad, None, {"roc_auc": 0.6}, parts=parts, rules=rules, version="v1")
    assert record["holdout_rows"] == {"available": 2100, "labelled": 1950, "evaluated": 900,
                                      "max_eval_rows": 900, "sample_seed": 4}
    assert record["challenger"]["rows"] == record["production"]["rows"] == 900
    assert record["decision"]["comparison"]["rows"] == 900
    again, _ = _evaluate(good, bad, None, {"roc_auc": 0.6}, parts=parts, rules=rules, version="v1")
    assert again["challenger"] == record["challenger"] and again["decision"] == record["decision"]
    # the sample is training.sample_rows's, seeded by the gate's seed: the same rows for both models
    rows, _ = sp.sample_rows(iter(parts), "late", 900, seed=4)
    labels = rows["late"].astype(int).to_numpy()
    assert record["challenger"] == pytest.approx(mt.metrics(labels, es.predict(good, rows, NUMERIC, CATEGORICAL, problem="binary"), problem="binary"))
    assert record["production"] == pytest.approx(mt.metrics(labels, es.predict(bad, rows, NUMERIC, CATEGORICAL, problem="binary"), problem="binary"))
    uncapped, _ = _evaluate(good, bad, None, {"roc_auc": 0.6}, parts=parts, rules={"max_eval_rows": 0}, version="v1")
    assert uncapped["challenger"]["rows"] == uncapped["holdout_rows"]["evaluated"] == 1950


def test_weighted_auc_equals_the_auc_of_the_resampled_rows():
    rng = np.random.default_rng(5)
    labels = (rng.random(400) < 0.3).astype(int)
    scores = np.round(rng.random(400) + 0.4 * labels, 1)  # many ties
    weights = rng.multinomial(400, np.full(400, 1 / 400), size=20)
    expected = [roc_auc_score(np.repeat(labels, w), np.repeat(scores, w)) for w in weights]
    np.testing.assert_allclose(ev._weighted_auc(labels, scores, weights), expected, rtol=0, atol=1e-12)
