import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipeline import training as tr
from pipeline.storage import sha256_bytes

NUMERIC = ["x", "noise"]
CATEGORICAL = ["c"]
HP = tr.Hyperparameters(max_iter=30, min_samples_leaf=20)
D = dt.date


def synthetic(n: int, seed: int = 0) -> pd.DataFrame:
    """A label that depends on `x` and on `c == 'a'`; `noise` carries no signal."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    c = rng.choice(["a", "b", "c"], size=n)
    logit = 2.0 * x + 1.5 * (c == "a") - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return pd.DataFrame({"x": x, "noise": rng.normal(size=n), "c": pd.Series(c, dtype="string"), "late": y})


@pytest.fixture(scope="module")
def data():
    return synthetic(1500)


@pytest.fixture(scope="module")
def fitted(data):
    return tr.train_model(data.iloc[:1000], NUMERIC, CATEGORICAL, "late", HP)


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
    with pytest.raises(tr.TrainingError, match=r"the window for 2013-01-03 starts at 2013-01-01 \(start_date "
                                               r"2013-01-01\) and has 3 day\(s\), not more than holdout_days=3"):
        tr.training_days(D(2013, 1, 3), 28, 3, D(2013, 1, 1))
    with pytest.raises(tr.TrainingError, match=r"has 0 day\(s\)"):
        tr.training_days(D(2012, 12, 20), 28, 3, D(2013, 1, 1))


@pytest.mark.parametrize("window, holdout", [(3, 3), (2, 3), (10, 0)])
def test_training_days_rejects_inconsistent_window(window, holdout):
    with pytest.raises(ValueError, match=rf"window_days \({window}\) must exceed holdout_days \({holdout}\) >= 1"):
        tr.training_days(D(2013, 6, 1), window, holdout, D(2013, 1, 1))


# ---- train_model ------------------------------------------------------------------------------
def test_train_model_learns_the_signal(data, fitted):
    estimator, meta = fitted
    test = data.iloc[1000:]
    scores = tr.predict(estimator, test, NUMERIC, CATEGORICAL)
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
    _, meta = tr.train_model(frame, NUMERIC, CATEGORICAL, "late", HP)
    assert meta["rows_available"] == 700
    assert meta["rows_labelled"] == 600 and meta["rows_trained"] == 600


def test_too_few_labelled_rows_raises(data):
    frame = data.iloc[:520].copy()
    frame.loc[frame.index[:30], "late"] = np.nan
    with pytest.raises(tr.TrainingError, match=r"only 490 labelled training rows \(minimum 500\)"):
        tr.train_model(frame, NUMERIC, CATEGORICAL, "late", HP)


def test_one_class_raises(data):
    frame = data.iloc[:600].assign(late=0.0)
    with pytest.raises(tr.TrainingError, match="the training rows hold only one class of 'late'"):
        tr.train_model(frame, NUMERIC, CATEGORICAL, "late", HP)


def test_max_train_rows_caps_and_is_reproducible(data):
    frame = data.iloc[:1000]
    a, meta_a = tr.train_model(frame, NUMERIC, CATEGORICAL, "late", HP, max_train_rows=600)
    b, meta_b = tr.train_model(frame, NUMERIC, CATEGORICAL, "late", HP, max_train_rows=600)
    assert meta_a["rows_trained"] == meta_b["rows_trained"] == 600
    assert meta_a["rows_labelled"] == 1000
    assert meta_a["positive_rate"] == meta_b["positive_rate"]
    test = data.iloc[1000:]
    np.testing.assert_array_equal(tr.predict(a, test, NUMERIC, CATEGORICAL),
                                  tr.predict(b, test, NUMERIC, CATEGORICAL))
    other_seed = tr.Hyperparameters(max_iter=30, min_samples_leaf=20, random_state=1)
    _, meta_c = tr.train_model(frame, NUMERIC, CATEGORICAL, "late", other_seed, max_train_rows=600)
    assert meta_c["positive_rate"] != meta_a["positive_rate"]  # another seed samples other rows


def test_unseen_and_missing_categories_still_score(fitted, data):
    estimator, _ = fitted
    rows = data.iloc[:3].copy()
    rows["c"] = pd.Series(["never-seen", None, "a"], dtype="string", index=rows.index)
    scores = tr.predict(estimator, rows, NUMERIC, CATEGORICAL)
    assert np.isfinite(scores).all()


def test_feature_matrix_types_order_and_missing_columns(data):
    frame = data.iloc[:2].copy()
    frame["c"] = pd.Series(["a", None], dtype="string", index=frame.index)
    X = tr.feature_matrix(frame, NUMERIC, CATEGORICAL)
    assert list(X.columns) == ["c", "x", "noise"]
    assert X["c"].dtype == object and X["c"].iloc[0] == "a" and pd.isna(X["c"].iloc[1])
    assert X["x"].dtype == "float64"
    with pytest.raises(KeyError, match=r"feature column\(s\) \['dest'\] are missing"):
        tr.feature_matrix(frame, NUMERIC, CATEGORICAL + ["dest"])


def test_predict_on_no_rows_is_empty(fitted, data):
    assert tr.predict(fitted[0], data.iloc[:0], NUMERIC, CATEGORICAL).shape == (0,)


# ---- the artifact -----------------------------------------------------------------------------
def test_dump_load_round_trip_predicts_the_same(fitted, data):
    estimator, _ = fitted
    blob = tr.dump_model(estimator)
    loaded = tr.load_model(blob, sha256_bytes(blob), "/reg/v1/model.skops")
    test = data.iloc[1000:1100]
    np.testing.assert_array_equal(tr.predict(loaded, test, NUMERIC, CATEGORICAL),
                                  tr.predict(estimator, test, NUMERIC, CATEGORICAL))


def test_tampered_model_bytes_are_refused(fitted):
    blob = tr.dump_model(fitted[0])
    recorded = sha256_bytes(blob)
    tampered = blob[:-10] + bytes([blob[-10] ^ 0xFF]) + blob[-9:]
    with pytest.raises(tr.ModelIntegrityError,
                       match=rf"model file /reg/v1/model\.skops has sha256 {sha256_bytes(tampered)[:12]}\.\.\., but its "
                             rf"metadata records {recorded[:12]}\.\.\.; .*refusing to load it"):
        tr.load_model(tampered, recorded, "/reg/v1/model.skops")


class Untrusted:
    """A type no allow-list names: skops records it and the loader must refuse it."""
    def __init__(self):
        self.payload = [1, 2]


def test_model_naming_an_unlisted_type_is_refused_even_with_the_right_sha256():
    import skops.io as sio

    blob = sio.dumps({"model": Untrusted()})
    with pytest.raises(tr.ModelIntegrityError, match=r"model file /reg/v2/model\.skops names type\(s\) outside the "
                                                     r"allow-list: \['tests\.pipeline\.test_training\.Untrusted'\]"):
        tr.load_model(blob, sha256_bytes(blob), "/reg/v2/model.skops")


def test_a_pickle_file_is_not_loaded_even_with_the_right_sha256():
    import pickle

    blob = pickle.dumps({"kind": "pickled"})
    with pytest.raises(tr.ModelIntegrityError, match=r"/reg/v3/model\.skops is not a readable skops file"):
        tr.load_model(blob, sha256_bytes(blob), "/reg/v3/model.skops")


def test_code_version_fingerprints_the_source():
    version = tr.code_version()
    assert len(version["source_sha256"]) == 64 and version["package"] != ""


# ---- the challenger, with and without tuning -----------------------------------------------------
def dated(n: int, days: int, seed: int = 0) -> pd.DataFrame:
    frame = synthetic(n, seed)
    day = [(D(2013, 1, 1) + dt.timedelta(days=int(i * days / n))).isoformat() for i in range(n)]
    return frame.assign(date=pd.Series(day, dtype="string"))


def test_fit_candidate_without_tuning_is_the_configured_model():
    model, meta = tr.fit_candidate(dated(1200, 12), synthetic(300, 5), NUMERIC, CATEGORICAL, "late", HP, 0, 0)
    assert meta["family"] == "hgb" and meta["model_params"]["max_iter"] == 30
    assert meta["tuning"] == {"trials": [], "best": None}
    assert model.named_steps["model"].max_iter == 30


def test_fit_candidate_with_tuning_records_every_trial_and_trains_the_best():
    tuning = {"trials": 4, "families": ["hgb", "logreg"], "folds": 2, "seed": 0}
    model, meta = tr.fit_candidate(dated(1600, 16), synthetic(300, 5), NUMERIC, CATEGORICAL, "late", HP, 0, 0,
                                   tuning=tuning)
    trials = meta["tuning"]["trials"]
    assert len(trials) == 4 and {t["family"] for t in trials} == {"hgb", "logreg"}
    assert all(len(t["fold_roc_auc"]) == 2 for t in trials)
    best = max(trials, key=lambda t: t["mean_roc_auc"])
    assert meta["tuning"]["best"]["trial"] == best["trial"]
    assert (meta["family"], meta["model_params"]) == (best["family"], best["params"])
    # whichever family won, its artifact passes the loader's allow-list and predicts the same
    blob = tr.dump_model(model)
    loaded = tr.load_model(blob, sha256_bytes(blob), "/reg/v4/model.skops")
    test = synthetic(200, 9)
    np.testing.assert_array_equal(tr.predict(loaded, test, NUMERIC, CATEGORICAL),
                                  tr.predict(model, test, NUMERIC, CATEGORICAL))


def test_model_bytes_are_reproducible_across_copies(fitted):
    import copy

    estimator, _ = fitted
    clone = copy.deepcopy(estimator)  # other object ids, as in another process
    assert tr.dump_model(clone) == tr.dump_model(estimator)
