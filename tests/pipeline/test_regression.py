"""Regression targets across the pure ML modules: metrics and the naive baseline, the bootstrap and
the gate, training and tuning, the model files, monitoring, scoring and the report."""
import base64
import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from pipeline import artifact as ar
from pipeline import estimators as es
from pipeline import evaluation as ev
from pipeline import metrics as mt
from pipeline import monitoring as mon
from pipeline import charts, report, scoring
from pipeline import sampling as sp
from pipeline import training as tr
from pipeline import tuning as tu
from pipeline.hashing import sha256_bytes
from tests.pipeline.builders import fit

NUMERIC = ["x", "noise"]
CATEGORICAL = ["c"]
TARGET = "delay"
HP = es.Hyperparameters(max_iter=100, min_samples_leaf=20)
DAYS = [dt.date(2013, 1, 1) + dt.timedelta(days=i) for i in range(20)]
EFFECT = {"a": 2.0, "b": -1.0, "c": 0.0}


def synthetic(n: int, seed: int = 0) -> pd.DataFrame:
    """delay = 3 + 4 x + a category's effect + noise (sd 0.5), over DAYS in order; `noise` carries
    no signal; a few rows have no outcome (NaN) and a few features are missing."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    c = rng.choice(list(EFFECT), size=n)
    y = 3 + 4 * x + np.vectorize(EFFECT.get)(c) + rng.normal(scale=0.5, size=n)
    frame = pd.DataFrame({"date": [DAYS[i * len(DAYS) // n].isoformat() for i in range(n)], "x": x,
                          "noise": rng.normal(size=n), "c": pd.Series(c, dtype="string"), TARGET: y})
    frame.loc[frame.index % 29 == 0, TARGET] = np.nan
    frame.loc[frame.index % 31 == 0, "x"] = np.nan
    frame.loc[frame.index % 37 == 0, "c"] = pd.NA
    return frame


def by_day(frame: pd.DataFrame) -> list[tuple[dt.date, pd.DataFrame]]:
    return [(dt.date.fromisoformat(day), rows) for day, rows in frame.groupby("date", sort=True)]


def predictions(frame: pd.DataFrame, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, labels + N(0, spread) noise) of the labelled rows of `frame`."""
    y = frame[TARGET].dropna().to_numpy()
    return y, y + np.random.default_rng(seed).normal(scale=spread, size=len(y))


@pytest.fixture(scope="module")
def train():
    return synthetic(3000, seed=1)


@pytest.fixture(scope="module")
def holdout():
    return synthetic(1000, seed=2)


@pytest.fixture(scope="module")
def candidate(train, holdout):
    return tr.fit_candidate(iter(by_day(train)), iter(by_day(holdout)), NUMERIC, CATEGORICAL, TARGET, HP,
                            max_train_rows=0, importance_repeats=2, problem="regression", min_train_rows=500)


# ---- metrics ----------------------------------------------------------------------------------
LABELS = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
PREDICTED = np.array([1.5, 2.0, 2.5, 5.0, 8.0])  # squared errors 0.25, 0, 0.25, 1, 4: SSE 5.5


def test_regression_metrics_match_sklearn_and_the_hand_computed_baseline():
    m = mt.metrics(LABELS, PREDICTED, problem="regression", baseline=3.0)
    assert m["rows"] == 5 and m["target_mean"] == 4.0 and m["mean_prediction"] == pytest.approx(3.8)
    assert m["mae"] == pytest.approx(mean_absolute_error(LABELS, PREDICTED)) and m["mae"] == pytest.approx(0.8)
    assert m["rmse"] == pytest.approx(root_mean_squared_error(LABELS, PREDICTED))
    assert m["rmse"] == pytest.approx(math.sqrt(1.1))
    assert m["r2"] == pytest.approx(r2_score(LABELS, PREDICTED)) and m["r2"] == pytest.approx(1 - 5.5 / 50)
    # the baseline predicts the training mean 3 for every row: errors 2, 1, 0, 1, 7
    assert m["baseline"] == 3.0
    assert m["baseline_mae"] == pytest.approx(11 / 5)
    assert m["baseline_rmse"] == pytest.approx(math.sqrt(55 / 5))
    assert m["r2_vs_baseline"] == pytest.approx(1 - 5.5 / 55)
    # without the model's training mean there is no baseline: never the judged rows' own mean
    own = mt.metrics(LABELS, PREDICTED, problem="regression")
    assert own["baseline"] is None and own["r2_vs_baseline"] is None and own["baseline_rmse"] is None
    assert own["r2"] == m["r2"]
    # rows scored by two models: each row against the training mean of the model that scored it
    per_row = mt.metrics(LABELS, PREDICTED, problem="regression", baseline=np.array([3.0, 3.0, 3.0, 5.0, 5.0]))
    assert per_row["r2_vs_baseline"] == pytest.approx(1 - 5.5 / (4 + 1 + 0 + 1 + 25))
    assert mt.naive_baseline({"target_mean": 3}) == 3.0 and mt.naive_baseline({"positive_rate": 0.2}) is None


def test_a_predictor_worse_than_the_mean_has_a_negative_r2_vs_baseline():
    m = mt.metrics(LABELS, LABELS[::-1], problem="regression", baseline=3.0)
    assert m["r2_vs_baseline"] == pytest.approx(1 - float(((LABELS[::-1] - LABELS) ** 2).sum()) / 55)
    assert m["r2_vs_baseline"] < 0 and m["r2"] < 0


def test_regression_metrics_where_they_are_undefined():
    empty = mt.metrics(np.array([]), np.array([]), problem="regression", baseline=3.0)
    assert empty["rows"] == 0
    assert all(empty[k] is None for k in ("target_mean", "mean_prediction", "mae", "rmse", "r2", "baseline",
                                          "baseline_mae", "baseline_rmse", "r2_vs_baseline"))
    constant = mt.metrics(np.full(4, 2.0), np.array([1.0, 2.0, 3.0, 2.0]), problem="regression", baseline=1.0)
    assert constant["r2"] is None and constant["r2_vs_baseline"] == pytest.approx(1 - 2 / 4)
    exact_baseline = mt.metrics(np.full(4, 2.0), np.full(4, 2.5), problem="regression", baseline=2.0)
    assert exact_baseline["r2_vs_baseline"] is None and exact_baseline["rmse"] == pytest.approx(0.5)
    assert mt.metrics(np.array([5.0]), np.array([4.0]), problem="regression")["r2"] is None


def test_metrics_reject_an_unknown_problem_kind():
    with pytest.raises(ValueError, match=r"unknown problem kind 'multiclass'; expected one of \('binary', 'regression'\)"):
        mt.metrics(LABELS, PREDICTED, problem="multiclass")


# ---- paired bootstrap and gate ----------------------------------------------------------------
@pytest.mark.parametrize("metric", ["mae", "rmse", "r2", "r2_vs_baseline"])
def test_weighted_metrics_with_unit_weights_equal_the_plain_ones(metric, holdout):
    y, p = predictions(holdout, 1.0, seed=3)
    weighted = ev._weighted_metric(metric, y, p, np.ones((2, len(y)), dtype=np.int32), baseline=3.5)
    assert weighted == pytest.approx([mt.metrics(y, p, problem="regression", baseline=3.5)[metric]] * 2)


def test_weighted_rmse_of_counts_is_the_rmse_of_the_repeated_rows():
    counts = np.array([[2, 0, 1, 1, 3]], dtype=np.int32)
    repeated = np.repeat(np.arange(5), counts[0])
    for metric in ("rmse", "r2", "r2_vs_baseline"):
        expected = mt.metrics(LABELS[repeated], PREDICTED[repeated], problem="regression", baseline=3.0)[metric]
        assert ev._weighted_metric(metric, LABELS, PREDICTED, counts, baseline=3.0)[0] == pytest.approx(expected)


def test_paired_bootstrap_of_rmse_favours_the_clearly_better_challenger(holdout):
    y, good = predictions(holdout, 0.5, seed=4)
    _, poor = predictions(holdout, 2.0, seed=5)
    result = ev.paired_bootstrap(y, good, poor, "rmse", 300, 0.95, seed=0)
    assert result["challenger"] == pytest.approx(root_mean_squared_error(y, good))
    assert result["production"] == pytest.approx(root_mean_squared_error(y, poor))
    assert result["difference"] == pytest.approx(result["production"] - result["challenger"])  # lower is better
    assert 0 < result["ci_low"] < result["difference"] < result["ci_high"]
    assert result["valid_samples"] == 300
    backwards = ev.paired_bootstrap(y, poor, good, "rmse", 300, 0.95, seed=0)
    assert backwards["ci_high"] < 0
    vs_baseline = ev.paired_bootstrap(y, good, poor, "r2_vs_baseline", 300, 0.95, seed=0, baseline=float(y.mean()) + 1)
    assert vs_baseline["ci_low"] > 0
    assert vs_baseline["challenger"] == pytest.approx(
        mt.metrics(y, good, problem="regression", baseline=float(y.mean()) + 1)["r2_vs_baseline"])


def test_paired_bootstrap_keeps_fractional_labels_and_still_rejects_unknown_metrics():
    y = np.array([0.2, 0.7, 1.4, 2.6, 3.9, 5.5])
    result = ev.paired_bootstrap(y, y + 0.1, y + 0.3, "mae", 50, 0.9, seed=1)
    assert result["challenger"] == pytest.approx(0.1) and result["production"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"unknown metric 'mape'; choose one of \["):
        ev.paired_bootstrap(y, y, y, "mape", 10, 0.9, seed=1)


def test_gate_applies_rmse_ceilings_and_r2_vs_baseline_floors():
    m = mt.metrics(LABELS, PREDICTED, problem="regression", baseline=3.0)  # rmse 1.0488, r2_vs_baseline 0.9
    blessed = ev.decide_gate(m, {"rmse": 1.1, "r2_vs_baseline": 0.5}, None, 0.01)
    assert blessed["blessed"] is True
    assert blessed["reasons"][:2] == ["r2_vs_baseline 0.9000 clears the floor >= 0.5",
                                      "rmse 1.0488 clears the floor <= 1.1"]
    rejected = ev.decide_gate(m, {"rmse": 1.0, "r2_vs_baseline": 0.95}, None, 0.01)
    assert rejected["blessed"] is False
    assert rejected["reasons"][:2] == ["r2_vs_baseline 0.9000 fails the floor >= 0.95",
                                       "rmse 1.0488 fails the floor <= 1.0"]


# ---- training ---------------------------------------------------------------------------------
def test_fit_candidate_trains_a_regressor_that_explains_the_holdout(candidate, train, holdout):
    model, meta = candidate
    assert isinstance(model.named_steps["model"], HistGradientBoostingRegressor)
    labelled = holdout.dropna(subset=[TARGET])
    predicted = es.predict(model, labelled, NUMERIC, CATEGORICAL, problem="regression")
    assert r2_score(labelled[TARGET], predicted) > 0.8
    assert meta["task"] == "regression" and "positive_rate" not in meta
    assert meta["target_mean"] == pytest.approx(train[TARGET].mean())
    assert meta["rows_trained"] == train[TARGET].notna().sum()
    assert meta["importance"]["x"] > 1.0 > abs(meta["importance"]["noise"])  # RMSE rises when x is shuffled
    # the monitoring reference profiles the predicted values, not probabilities
    assert max(meta["reference_profile"]["score"]["edges"]) > 1.0


def test_binary_metadata_records_its_task_and_positive_rate(train):
    binary = train.assign(late=(train[TARGET] > 3).astype(float))
    _, meta = fit(binary, NUMERIC, CATEGORICAL, "late", HP)
    assert meta["task"] == "binary" and "target_mean" not in meta
    assert meta["positive_rate"] == pytest.approx(binary["late"].mean())


def test_model_inputs_keep_the_target_as_float_for_regression(train):
    X, y = es.model_inputs(train.dropna(subset=[TARGET]), NUMERIC, CATEGORICAL, TARGET, problem="regression")
    assert y.dtype == np.float64 and np.array_equal(y, train[TARGET].dropna().to_numpy())
    rows, counts = sp.sample_rows(iter(by_day(train)), TARGET, 500, seed=0)
    assert len(rows) == 500 and counts["rows_labelled"] == train[TARGET].notna().sum()
    assert rows[TARGET].notna().all() and (rows[TARGET] % 1 != 0).all()  # not rounded to classes


def test_a_constant_target_cannot_train_a_regressor(train):
    with pytest.raises(es.TrainingError, match=r"the training rows' target 'delay' is constant "
                                               r"\(value 7.5\): nothing to learn"):
        fit(train.assign(delay=7.5), NUMERIC, CATEGORICAL, TARGET, HP, problem="regression")


@pytest.mark.parametrize("family, task, valid", [("logreg", "regression", "('hgb', 'linear')"),
                                                 ("linear", "binary", "('hgb', 'logreg')")])
def test_a_family_of_the_other_task_is_refused(family, task, valid):
    with pytest.raises(ValueError, match=rf"model family '{family}' does not fit a {task} target; "
                                         rf"expected one of {valid.replace('(', '[(]').replace(')', '[)]')}"):
        es.build_estimator(family, {}, NUMERIC, CATEGORICAL, 0, problem=task)
    with pytest.raises(ValueError, match=r"unknown or no model families \['hgb', 'logreg'\]; expected some of "
                                         r"\('hgb', 'linear'\) \(the families for a regression target\)"):
        tu.candidates({}, 3, ["hgb", "logreg"], seed=0, problem="regression")


# ---- model files --------------------------------------------------------------------------------
def round_trip(model, frame):
    blob = ar.dump_model(model)
    assert blob == ar.dump_model(model)  # reproducible bytes
    loaded = ar.load_model(blob, sha256_bytes(blob), "/reg/v1/model.skops")
    unseen = frame.head(20).assign(c=["zzz"] * 10 + [None] * 10)  # an unknown and a missing category
    for rows in (frame, unseen):
        np.testing.assert_array_equal(es.predict(loaded, rows, NUMERIC, CATEGORICAL, problem="regression"),
                                      es.predict(model, rows, NUMERIC, CATEGORICAL, problem="regression"))


def test_a_regression_hgb_model_round_trips_through_the_allow_list(candidate, holdout):
    round_trip(candidate[0], holdout)


def test_tuning_picks_the_lowest_rmse_and_the_tuned_linear_model_round_trips(train, holdout):
    # a weak boosting base (10 trees) against ridge on a linear target: ridge must win on RMSE
    weak = es.Hyperparameters(max_iter=10, min_samples_leaf=20)
    tuning = {"trials": 3, "families": ["hgb", "linear"], "folds": 2, "seed": 0}
    model, meta = tr.fit_candidate(iter(by_day(train)), iter(by_day(holdout)), NUMERIC, CATEGORICAL, TARGET,
                                   weak, max_train_rows=0, importance_repeats=0, tuning_spec=tuning, problem="regression", min_train_rows=500)
    trials = meta["tuning"]["trials"]
    assert [t["family"] for t in trials] == ["hgb", "linear", "hgb"]
    assert all(t["score_name"] == "rmse" and len(t["fold_rmse"]) == 2 for t in trials)
    best = min(trials, key=lambda t: t["mean_rmse"])
    assert best["family"] == "linear" and meta["family"] == "linear"
    assert meta["tuning"]["best"] == {"family": "linear", "params": best["params"], "mean_rmse": best["mean_rmse"],
                                      "trial": best["trial"], "score_name": "rmse"}
    assert isinstance(model.named_steps["model"], Ridge)
    assert model.named_steps["model"].alpha == best["params"]["alpha"]
    round_trip(model, holdout)


def test_search_records_each_folds_rmse_as_computed_by_hand(train):
    folds = 2
    best, records = tu.search(train, train["date"], NUMERIC, CATEGORICAL, TARGET, {"max_iter": 30}, 2,
                              ["hgb", "linear"], folds, seed=0, random_state=0, problem="regression")
    rows = train[train[TARGET].notna()]
    day = pd.to_datetime(rows["date"]).dt.date
    for record in records:
        expected = []
        for train_days, valid_days in tu.time_folds(list(day), folds):
            fit, valid = rows[day.isin(train_days)], rows[day.isin(valid_days)]
            estimator = es.build_estimator(record["family"], record["params"], NUMERIC, CATEGORICAL, 0,
                                           problem="regression")
            estimator.fit(es.feature_matrix(fit, NUMERIC, CATEGORICAL), fit[TARGET])
            expected.append(root_mean_squared_error(
                valid[TARGET], estimator.predict(es.feature_matrix(valid, NUMERIC, CATEGORICAL))))
        assert record["fold_rmse"] == pytest.approx(expected)
        assert record["mean_rmse"] == pytest.approx(np.mean(expected))
        assert "fold_roc_auc" not in record
    assert best["mean_rmse"] == min(r["mean_rmse"] for r in records)


# ---- monitoring and scoring -------------------------------------------------------------------
def test_monitor_day_alerts_when_the_model_does_worse_than_the_training_mean(candidate, holdout):
    model, meta = candidate
    X = es.feature_matrix(holdout, NUMERIC, CATEGORICAL)
    labels = holdout[TARGET].to_numpy()
    good = es.predict(model, holdout, NUMERIC, CATEGORICAL, problem="regression")
    kwargs = dict(reference=meta["reference_profile"], alert_features=["x"], psi_threshold=0.25,
                  prediction_psi_threshold=10.0, min_auc=0.6, problem="regression", baseline=meta["target_mean"])
    fine = mon.monitor_day(good, labels, X, **kwargs)
    assert fine["alerts"] == []
    assert fine["realized"]["r2_vs_baseline"] > 0.8
    assert fine["realized"]["rows_with_outcome"] == np.isfinite(labels).sum()
    assert fine["thresholds"] == {"feature_psi": 0.25, "prediction_psi": 10.0, "min_r2": 0.0}
    bad = mon.monitor_day(meta["target_mean"] - (good - meta["target_mean"]), labels, X, **kwargs)  # mirrored
    value = bad["realized"]["r2_vs_baseline"]
    assert value < 0 and bad["alerts"] == [f"realized R2 vs the naive baseline {value:.3f} < 0.0"]
    strict = mon.monitor_day(good, labels, X, **{**kwargs, "min_r2": 0.999})
    assert strict["alerts"] == [f"realized R2 vs the naive baseline {fine['realized']['r2_vs_baseline']:.3f} < 0.999"]


def test_realized_over_pools_fractional_outcomes(holdout):
    y, p = predictions(holdout, 1.0, seed=6)
    frames = [pd.DataFrame({"score": p[:400], TARGET: y[:400]}),
              pd.DataFrame({"score": np.r_[p[400:], np.nan], TARGET: np.r_[y[400:], 1.0]})]
    result = mon.realized_over(frames, TARGET, problem="regression", baseline=3.0)
    assert result["rmse"] == pytest.approx(root_mean_squared_error(y, p))
    assert result["baseline"] == 3.0 and result["rows"] == len(y) and result["rows_unscored"] == 1


def test_score_partition_writes_predicted_values(candidate, holdout):
    model, _ = candidate
    scored = scoring.score_partition(model, holdout, NUMERIC, CATEGORICAL, ["date"], "v1", problem="regression")
    np.testing.assert_array_equal(scored["score"].to_numpy(),
                                  model.predict(es.feature_matrix(holdout, NUMERIC, CATEGORICAL)))


# ---- evaluation and report --------------------------------------------------------------------
RULES = {"floors": {"r2_vs_baseline": 0.5, "rmse": 2.0}, "tolerance": 0.01, "compare_metric": "rmse",
         "bootstrap_samples": 200, "confidence": 0.95, "seed": 0}


def evaluate(challenger, production, holdout, rules=RULES, **kw):
    return ev.evaluate_challenger(challenger, production, iter(by_day(holdout)), NUMERIC, CATEGORICAL, TARGET,
                                  rules, importance={"x": 3.1, "c": 0.4, "noise": 0.0}, title="Regression",
                                  context={"challenger_id": "cand-r"}, problem="regression", **kw)


def test_evaluate_challenger_gates_a_regressor_on_rmse_and_renders_its_report(candidate, train, holdout):
    model, meta = candidate
    weak, _ = fit(train, NUMERIC, CATEGORICAL, TARGET, es.Hyperparameters(max_iter=3), problem="regression")
    record, html = evaluate(model, weak, holdout, baseline=meta["target_mean"])
    labelled = holdout.dropna(subset=[TARGET])
    expected = mt.metrics(labelled[TARGET].to_numpy(), es.predict(model, labelled, NUMERIC, CATEGORICAL,
                                                                  problem="regression"),
                          problem="regression", baseline=meta["target_mean"])
    assert record["challenger"] == pytest.approx(expected) and record["task"] == "regression"
    assert record["production"]["rmse"] > record["challenger"]["rmse"]
    comparison = record["decision"]["comparison"]
    assert comparison["metric"] == "rmse" and comparison["ci_low"] > 0
    assert record["decision"]["blessed"] is True
    assert ev.summary_line(record, problem="regression") == (
        f"challenger RMSE {record['challenger']['rmse']:.4f}, production RMSE "
        f"{record['production']['rmse']:.4f}; gate: BLESSED")
    for row in ("rmse", "mae", "r2_vs_baseline", "baseline_rmse", "target_mean"):
        assert f"<td>{row}</td>" in html
    assert "roc_auc" not in html and "positive_rate" not in html
    assert html.count("<img") == 2
    backwards, _ = evaluate(weak, model, holdout, baseline=meta["target_mean"])
    assert backwards["decision"]["blessed"] is False


def test_evaluate_challenger_refuses_binary_metrics_for_a_regression_target(candidate, holdout):
    with pytest.raises(ValueError, match=r"metric\(s\) \['roc_auc'\] in the gate's floors or compare_metric do "
                                         r"not apply to a regression target; choose from \('mae', 'rmse'"):
        evaluate(candidate[0], None, holdout, rules={**RULES, "compare_metric": "roc_auc"})


def test_regression_plots_and_html(holdout):
    y, p = predictions(synthetic(12_000, seed=7), 1.0, seed=8)  # more rows than the scatter draws
    images = charts.evaluation_plots(y, {"challenger": p, "production": p + 0.5}, {"x": 2.0, "noise": 0.01},
                                     problem="regression")
    assert len(images) == 2 and all(base64.b64decode(image).startswith(b"\x89PNG") for image in images)
    record = {"challenger": mt.metrics(y, p, problem="regression"), "production": None,
              "decision": ev.decide_gate(mt.metrics(y, p, problem="regression"), {"rmse": 0.5}, None, 0.01)}
    html = report.evaluation_html("Regression", record, images)
    assert "<td>rmse</td>" in html and "Gate: REJECTED" in html and html.count("<img") == 2
    assert f"rmse {record['challenger']['rmse']:.4f} fails the floor &lt;= 0.5" in html
