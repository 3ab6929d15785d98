import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipeline import artifact as ar
from pipeline import estimators as es
from pipeline import training as tr
from pipeline.hashing import sha256_bytes
from tests.pipeline.builders import CATEGORICAL, D, HP, NUMERIC, days_of, fit, sampled_inputs, synthetic

# ---- training_days ----------------------------------------------------------------------------
def test_training_days_full_window():
    train, holdout = tr.training_days(D(2013, 2, 15), window_days=28, holdout_days=3, start_date=D(2013, 1, 1))
    assert train[0] == D(2013, 1, 19) and train[-1] == D(2013, 2, 12) and len(train) == 25
    assert holdout == [D(2013, 2, 13), D(2013, 2, 14), D(2013, 2, 15)]
    assert all((b - a).days == 1 for a, b in zip(train + holdout, (train + holdout)[1:]))


def test_training_days_clipped_at_start_date():
    train, holdout = tr.training_days(D(2013, 1, 10), window_days=28, holdout_days=3, start_date=D(2013, 1, 1))
    assert train == [D(2013, 1, d) for d in range(1, 8)]
    assert holdout == [D(2013, 1, 8), D(2013, 1, 9), D(2013, 1, 10)]


def test_training_days_too_short_after_clipping_raises():
    with pytest.raises(es.TrainingError, match=r"the window for 2013-01-03 starts at 2013-01-01 \(start_date "
                                               r"2013-01-01\) and has 3 day\(s\), not more than holdout_days=3"):
        tr.training_days(D(2013, 1, 3), 28, 3, D(2013, 1, 1))
    with pytest.raises(es.TrainingError, match=r"has 0 day\(s\)"):
        tr.training_days(D(2012, 12, 20), 28, 3, D(2013, 1, 1))


@pytest.mark.parametrize("window, holdout", [(3, 3), (2, 3), (10, 0)])
def test_training_days_rejects_inconsistent_window(window, holdout):
    with pytest.raises(ValueError, match=rf"window_days \({window}\) must exceed holdout_days \({holdout}\) >= 1"):
        tr.training_days(D(2013, 6, 1), window, holdout, D(2013, 1, 1))


# ---- fit_rows ------------------------------------------------------------------------------
def test_fit_rows_learns_the_signal(data, fitted):
    estimator, meta = fitted
    test = data.iloc[1000:]
    scores = es.predict(estimator, test, NUMERIC, CATEGORICAL, "binary")
    assert scores.shape == (500,) and ((scores >= 0) & (scores <= 1)).all()
    assert roc_auc_score(test["late"].astype(int), scores) > 0.7
    assert meta["rows_trained"] == 1000 and meta["rows_labelled"] == 1000
    assert meta["positive_rate"] == pytest.approx(data["late"].iloc[:1000].mean())
    assert meta["numeric_features"] == NUMERIC and meta["categorical_features"] == CATEGORICAL
    assert meta["target"] == "late"
    assert set(meta["reference_profile"]["features"]) == {"x", "noise", "c"}
    assert meta["reference_profile"]["rows"] == 1000
    assert meta["library_versions"]["scikit-learn"]


def test_unlabelled_rows_are_not_trained_on(data):
    frame = data.iloc[:700].copy()
    frame.loc[frame.index[:100], "late"] = np.nan
    _, meta = fit(frame)
    assert meta["rows_available"] == 700
    assert meta["rows_labelled"] == 600 and meta["rows_trained"] == 600


def test_too_few_labelled_rows_raises(data):
    frame = data.iloc[:520].copy()
    frame.loc[frame.index[:30], "late"] = np.nan
    with pytest.raises(es.TrainingError, match=r"only 490 labelled training rows \(minimum 500, \[CandidateModel\] "
                                               r"min_train_rows in luigi.cfg\): lower it, or raise \[pipeline\] "
                                               r"warmup_days / \[CandidateModel\] window_days"):
        fit(frame)
    _, meta = fit(frame, min_train_rows=490)
    assert meta["rows_trained"] == 490


def test_fit_candidate_names_the_window_and_the_setting_when_it_is_short():
    parts = [(D(2013, 1, 1), dated(150, 1)), (D(2013, 1, 2), dated(150, 1, seed=1))]
    with pytest.raises(es.TrainingError, match=r"^only 300 labelled training rows in the window "
                                               r"2013-01-01\.\.2013-01-02 \(minimum 301, \[CandidateModel\] min_train_rows"):
        tr.fit_candidate(iter(parts), iter([]), NUMERIC, CATEGORICAL, "late", HP, 0, 0, "binary", min_train_rows=301)
    _, meta = tr.fit_candidate(iter(parts), iter([]), NUMERIC, CATEGORICAL, "late", HP, 0, 0, "binary",
                               min_train_rows=300)
    assert meta["rows_trained"] == 300


def test_the_reference_profile_sets_day_level_features_apart():
    """A feature with one value per training day is profiled by its daily values, not binned."""
    frame = pd.concat([dated(200, 1, seed=i).assign(date=f"2013-01-0{i + 1}", daily=float(10 + i))
                       for i in range(4)], ignore_index=True)
    parts = [(D(2013, 1, i + 1), frame[frame["date"] == f"2013-01-0{i + 1}"]) for i in range(4)]
    _, meta = tr.fit_candidate(iter(parts), iter([]), NUMERIC + ["daily"], CATEGORICAL, "late", HP, 0, 0, "binary",
                               min_train_rows=1)
    ref = meta["reference_profile"]
    assert set(ref["features"]) == {"x", "noise", "c"}
    assert ref["day_level"] == {"daily": {"kind": "numeric", "values": [10.0, 11.0, 12.0, 13.0]}}


def test_one_class_raises(data):
    frame = data.iloc[:600].assign(late=0.0)
    with pytest.raises(es.TrainingError, match="the training rows hold only one class of 'late'"):
        fit(frame)


def test_fit_candidate_caps_training_rows_reproducibly_and_fits_exactly_training_rows():
    parts = days_of([900, 1100, 700, 1300])
    holdout = days_of([600, 600], seed=50)
    hp = es.Hyperparameters(max_iter=30, min_samples_leaf=20, random_state=4)
    a, meta_a = tr.fit_candidate(iter(parts), iter(holdout), NUMERIC, CATEGORICAL, "late", hp, 1500, 1, "binary", min_train_rows=500)
    b, meta_b = tr.fit_candidate(iter(parts), iter(holdout), NUMERIC, CATEGORICAL, "late", hp, 1500, 1, "binary", min_train_rows=500)
    assert meta_a["rows_trained"] == 1500 and meta_a["max_train_rows"] == 1500
    assert meta_a["rows_available"] == 4000 and meta_a["rows_labelled"] == sum(f["late"].notna().sum() for _, f in parts)
    assert sum(meta_a["rows_trained_by_day"].values()) == 1500 and len(meta_a["rows_trained_by_day"]) == 4
    assert meta_a["reference_profile"] == meta_b["reference_profile"]
    assert meta_a["importance"] == meta_b["importance"] and set(meta_a["importance"]) == {"c", "x", "noise"}
    test = synthetic(300, 99)
    np.testing.assert_array_equal(es.predict(a, test, NUMERIC, CATEGORICAL, "binary"), es.predict(b, test, NUMERIC, CATEGORICAL, "binary"))
    # a bare fit of the same estimator on training_rows(...) is the training step's fit
    X, y = sampled_inputs(iter(parts), "late", 1500, hp.random_state)
    bare = es.make_estimator(NUMERIC, CATEGORICAL, hp, "binary").fit(X, y)
    np.testing.assert_array_equal(es.predict(bare, test, NUMERIC, CATEGORICAL, "binary"), es.predict(a, test, NUMERIC, CATEGORICAL, "binary"))
    assert meta_a["positive_rate"] == pytest.approx(y.mean())
    X_other, _ = sampled_inputs(iter(parts), "late", 1500, hp.random_state + 1)
    assert len(X_other) == 1500 and not X_other.equals(X)  # another seed samples other rows
    _, meta_c = tr.fit_candidate(iter(parts), iter(holdout), NUMERIC, CATEGORICAL, "late", hp, 1500, 0, "binary", min_train_rows=500)
    assert meta_c["importance"] == {}


def test_reference_profile_and_importance_use_bounded_seeded_samples(monkeypatch):
    seen = {}
    real = tr.permutation_importance

    def spy(estimator, X, labels, repeats, seed, max_rows, problem):
        seen["importance_rows"] = len(X)
        return real(estimator, X, labels, repeats, seed, max_rows, problem)

    monkeypatch.setattr(tr, "permutation_importance", spy)
    parts, holdout = days_of([1500, 1500]), days_of([1000, 1000], seed=60)
    _, meta = tr.fit_candidate(iter(parts), iter(holdout), NUMERIC, CATEGORICAL, "late", HP, 0, 1, "binary", importance_rows=700, min_train_rows=500)
    assert seen["importance_rows"] == 700
    assert meta["rows_trained"] == meta["rows_labelled"] > 2000
    _, small = fit(pd.concat([f for _, f in parts]), profile_rows=800)
    _, again = fit(pd.concat([f for _, f in parts]), profile_rows=800)
    assert small["reference_profile"]["rows"] == 800 and small["reference_profile"] == again["reference_profile"]
    assert meta["reference_profile"]["rows"] == meta["rows_trained"]  # under the cap: every training row




def test_code_version_fingerprints_the_source():
    version = tr.code_version()
    assert len(version["source_sha256"]) == 64 and version["package"] != ""


# ---- the challenger, with and without tuning -----------------------------------------------------
def dated(n: int, days: int, seed: int = 0) -> pd.DataFrame:
    frame = synthetic(n, seed)
    day = [(D(2013, 1, 1) + dt.timedelta(days=int(i * days / n))).isoformat() for i in range(n)]
    return frame.assign(date=pd.Series(day, dtype="string"))


def test_fit_candidate_without_tuning_is_the_configured_model():
    model, meta = tr.fit_candidate([(D(2013, 1, 1), dated(1200, 12))], [(D(2013, 1, 13), synthetic(300, 5))],
                                   NUMERIC, CATEGORICAL, "late", HP, 0, 0, "binary", min_train_rows=500)
    assert meta["family"] == "hgb" and meta["model_params"]["max_iter"] == 30
    assert meta["tuning"] == {"trials": [], "best": None}
    assert model.named_steps["model"].max_iter == 30


def test_fit_candidate_with_tuning_records_every_trial_and_trains_the_best():
    tuning = {"trials": 4, "families": ["hgb", "logreg"], "folds": 2, "seed": 0}
    model, meta = tr.fit_candidate([(D(2013, 1, 1), dated(1600, 16))], [(D(2013, 1, 17), synthetic(300, 5))],
                                   NUMERIC, CATEGORICAL, "late", HP, 0, 0, "binary", tuning_spec=tuning, min_train_rows=500)
    trials = meta["tuning"]["trials"]
    assert len(trials) == 4 and {t["family"] for t in trials} == {"hgb", "logreg"}
    assert all(len(t["fold_roc_auc"]) == 2 for t in trials)
    best = max(trials, key=lambda t: t["mean_roc_auc"])
    assert meta["tuning"]["best"]["trial"] == best["trial"]
    assert (meta["family"], meta["model_params"]) == (best["family"], best["params"])
    # whichever family won, its artifact passes the loader's allow-list and predicts the same
    blob = ar.dump_model(model)
    loaded = ar.load_model(blob, sha256_bytes(blob), "/reg/v4/model.skops")
    test = synthetic(200, 9)
    np.testing.assert_array_equal(es.predict(loaded, test, NUMERIC, CATEGORICAL, "binary"),
                                  es.predict(model, test, NUMERIC, CATEGORICAL, "binary"))


