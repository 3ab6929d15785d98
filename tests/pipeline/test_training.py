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


# ---- sample_rows: the capped, reproducible training sample, day by day ---------------------------
def day_part(i: int, n: int, seed: int = 0, unlabelled: float = 0.1) -> tuple[dt.date, pd.DataFrame]:
    """Day i of a window: n rows, a share of them without an outcome, with their day and row number."""
    frame = synthetic(n, seed + i)
    frame.loc[np.random.default_rng(seed + 100 + i).random(n) < unlabelled, "late"] = np.nan
    return D(2013, 1, 1) + dt.timedelta(days=i), frame.assign(row=np.arange(n), day=i)


def days_of(sizes: list[int], seed: int = 0) -> list[tuple[dt.date, pd.DataFrame]]:
    return [day_part(i, n, seed) for i, n in enumerate(sizes)]


def test_sample_rows_without_a_cap_keeps_every_labelled_row_in_order():
    parts = days_of([300, 0, 500])
    rows, counts = tr.sample_rows(iter(parts), "late", 0, seed=0)
    expected = pd.concat([f.dropna(subset=["late"]) for _, f in parts], ignore_index=True)
    pd.testing.assert_frame_equal(rows, expected)
    assert counts["rows_available"] == 800 and counts["rows_labelled"] == len(expected) == counts["rows_sampled"]


def test_sample_rows_caps_reproducibly_in_proportion_to_each_days_labelled_rows():
    parts = days_of([1000, 3000, 6000, 2000])
    labelled = {str(day): int(f["late"].notna().sum()) for day, f in parts}
    rows, counts = tr.sample_rows(iter(parts), "late", 2400, seed=7)
    assert len(rows) == counts["rows_sampled"] == 2400 and rows["late"].notna().all()
    assert counts["rows_available"] == 12000 and counts["rows_labelled"] == sum(labelled.values())
    share = 2400 / counts["rows_labelled"]
    for day, n in labelled.items():
        assert abs(counts["rows_sampled_by_day"][day] - share * n) < 1  # largest remainder: within one row
    assert counts["rows_sampled_by_day"] == tr.day_quotas(labelled, 2400)
    assert rows.groupby("day")["row"].apply(lambda r: r.is_monotonic_increasing).all()  # part and row order
    assert list(rows["day"].drop_duplicates()) == [0, 1, 2, 3]
    again, _ = tr.sample_rows(iter(days_of([1000, 3000, 6000, 2000])), "late", 2400, seed=7)
    pd.testing.assert_frame_equal(rows, again)  # a rerun picks the same rows
    other, _ = tr.sample_rows(iter(parts), "late", 2400, seed=8)
    assert not rows[["day", "row"]].equals(other[["day", "row"]])
    # a day's rows depend only on (seed, day, its labelled rows) and its quota, not on the order read
    reordered, _ = tr.sample_rows(iter(parts[::-1]), "late", 2400, seed=7)
    assert set(zip(reordered["day"], reordered["row"])) == set(zip(rows["day"], rows["row"]))
    # each day's rows are those with its smallest keys: a uniform sample of the day's labelled rows
    for day, frame in parts:
        keys = tr.sample_keys(7, day, labelled[str(day)])
        picked = frame["row"].to_numpy()[frame["late"].notna().to_numpy()][np.argsort(keys)[:counts["rows_sampled_by_day"][str(day)]]]
        assert set(picked) == set(rows.loc[rows["day"] == frame["day"].iloc[0], "row"])


def test_day_quotas_add_up_to_the_cap_by_largest_remainder():
    assert tr.day_quotas({"a": 1, "b": 1, "c": 1}, 2) == {"a": 1, "b": 1, "c": 0}  # ties: earlier day
    assert tr.day_quotas({"a": 10, "b": 30}, 7) == {"a": 2, "b": 5}  # 1.75 and 5.25
    assert tr.day_quotas({"a": 10, "b": 30}, 100) == {"a": 10, "b": 30}  # under the cap: every row
    assert tr.day_quotas({"a": 0, "b": 5}, 3) == {"a": 0, "b": 3}


def test_sample_rows_holds_one_day_at_a_time():
    import gc
    import weakref

    seen: list = []

    def parts():  # made as they are asked for, like tasks.base.read_partitions
        for i in range(6):
            if len(seen) >= 2:  # the consumer's loop variable still holds the last one
                gc.collect()
                assert seen[-2]() is None, f"day {len(seen) - 2} is still referenced while reading day {i}"
            day, frame = day_part(i, 2000)
            seen.append(weakref.ref(frame))
            yield day, frame
            del frame

    rows, counts = tr.sample_rows(parts(), "late", 500, seed=0)
    assert len(seen) == 6 and len(rows) == 500 and counts["rows_available"] == 12000


def test_sample_rows_reads_arrow_tables_like_data_frames():
    import pyarrow as pa

    parts = days_of([800, 1200, 400])
    tables = [(day, pa.Table.from_pandas(f.assign(c=f["c"].astype("string")), preserve_index=False)
               .cast(pa.schema([pa.field(n, pa.dictionary(pa.int32(), pa.string())) if n == "c"
                                else pa.Table.from_pandas(f, preserve_index=False).schema.field(n)
                                for n in f.columns])))
              for day, f in parts]
    for cap in (0, 900):
        X_frames, y_frames = tr.training_rows(iter(parts), NUMERIC, CATEGORICAL, "late", cap, 3)
        X_tables, y_tables = tr.training_rows(iter(tables), NUMERIC, CATEGORICAL, "late", cap, 3)
        pd.testing.assert_frame_equal(X_frames, X_tables)
        np.testing.assert_array_equal(y_frames, y_tables)
        assert X_frames["c"].dtype == object and len(X_frames) == (cap or sum(f["late"].notna().sum() for _, f in parts))


def test_sample_rows_given_each_days_labelled_rows_cuts_each_day_once_to_the_same_sample():
    parts = days_of([1000, 3000, 0, 6000, 2000])
    labelled = {str(day): int(f["late"].notna().sum()) for day, f in parts}
    cuts: list[int] = []
    real_select = tr._select

    def counting_select(part, positions):
        cuts.append(len(positions))
        return real_select(part, positions)

    for cap in (2400, 20_000):
        expected, expected_counts = tr.sample_rows(iter(parts), "late", cap, seed=7)
        cuts.clear()
        tr._select = counting_select
        try:
            rows, counts = tr.sample_rows(iter(parts), "late", cap, seed=7, labelled_by_day=labelled)
        finally:
            tr._select = real_select
        pd.testing.assert_frame_equal(rows, expected)
        assert counts == expected_counts
        # one cut per day with rows, each straight to the day's final quota
        assert cuts == [counts["rows_sampled_by_day"][str(day)] for day, f in parts if len(f)]


def test_sample_rows_refuses_labelled_counts_that_do_not_match_the_rows():
    parts = days_of([300, 500])
    labelled = {str(day): int(f["late"].notna().sum()) for day, f in parts}
    wrong = {**labelled, str(parts[1][0]): labelled[str(parts[1][0])] + 1}
    with pytest.raises(ValueError, match=r"day 2013-01-02 has \d+ labelled rows, but \d+ were announced"):
        tr.sample_rows(iter(parts), "late", 100, seed=0, labelled_by_day=wrong)
    with pytest.raises(ValueError, match=r"labelled_by_day announces the days"):
        tr.sample_rows(iter(parts[:1]), "late", 100, seed=0, labelled_by_day=labelled)


def test_sample_rows_rejects_a_negative_cap_and_a_day_given_twice():
    with pytest.raises(ValueError, match=r"max_rows must be >= 0 \(0 = no cap\), got -1"):
        tr.sample_rows(iter(days_of([10])), "late", -1, seed=0)
    day, frame = day_part(0, 50)
    with pytest.raises(ValueError, match=r"day 2013-01-01 appears twice in the parts to sample"):
        tr.sample_rows(iter([(day, frame), (day, frame)]), "late", 10, seed=0)


def test_fit_candidate_caps_training_rows_reproducibly_and_fits_exactly_training_rows():
    parts = days_of([900, 1100, 700, 1300])
    holdout = days_of([600, 600], seed=50)
    hp = tr.Hyperparameters(max_iter=30, min_samples_leaf=20, random_state=4)
    a, meta_a = tr.fit_candidate(iter(parts), iter(holdout), NUMERIC, CATEGORICAL, "late", hp, 1500, 1)
    b, meta_b = tr.fit_candidate(iter(parts), iter(holdout), NUMERIC, CATEGORICAL, "late", hp, 1500, 1)
    assert meta_a["rows_trained"] == 1500 and meta_a["max_train_rows"] == 1500
    assert meta_a["rows_available"] == 4000 and meta_a["rows_labelled"] == sum(f["late"].notna().sum() for _, f in parts)
    assert sum(meta_a["rows_trained_by_day"].values()) == 1500 and len(meta_a["rows_trained_by_day"]) == 4
    assert meta_a["reference_profile"] == meta_b["reference_profile"]
    assert meta_a["importance"] == meta_b["importance"] and set(meta_a["importance"]) == {"c", "x", "noise"}
    test = synthetic(300, 99)
    np.testing.assert_array_equal(tr.predict(a, test, NUMERIC, CATEGORICAL), tr.predict(b, test, NUMERIC, CATEGORICAL))
    # a bare fit of the same estimator on training_rows(...) is the training step's fit
    X, y = tr.training_rows(iter(parts), NUMERIC, CATEGORICAL, "late", 1500, hp.random_state)
    bare = tr.make_estimator(NUMERIC, CATEGORICAL, hp).fit(X, y)
    np.testing.assert_array_equal(tr.predict(bare, test, NUMERIC, CATEGORICAL), tr.predict(a, test, NUMERIC, CATEGORICAL))
    assert meta_a["positive_rate"] == pytest.approx(y.mean())
    X_other, _ = tr.training_rows(iter(parts), NUMERIC, CATEGORICAL, "late", 1500, hp.random_state + 1)
    assert len(X_other) == 1500 and not X_other.equals(X)  # another seed samples other rows
    _, meta_c = tr.fit_candidate(iter(parts), iter(holdout), NUMERIC, CATEGORICAL, "late", hp, 1500, 0)
    assert meta_c["importance"] == {}


def test_reference_profile_and_importance_use_bounded_seeded_samples(monkeypatch):
    from pipeline import evaluation

    seen = {}
    real = evaluation.permutation_importance

    def spy(estimator, X, labels, repeats, seed, max_rows, task):
        seen["importance_rows"] = len(X)
        return real(estimator, X, labels, repeats, seed, max_rows, task)

    monkeypatch.setattr(evaluation, "permutation_importance", spy)
    parts, holdout = days_of([1500, 1500]), days_of([1000, 1000], seed=60)
    _, meta = tr.fit_candidate(iter(parts), iter(holdout), NUMERIC, CATEGORICAL, "late", HP, 0, 1, importance_rows=700)
    assert seen["importance_rows"] == 700
    assert meta["rows_trained"] == meta["rows_labelled"] > 2000
    _, small = tr.train_model(pd.concat([f for _, f in parts]), NUMERIC, CATEGORICAL, "late", HP, profile_rows=800)
    _, again = tr.train_model(pd.concat([f for _, f in parts]), NUMERIC, CATEGORICAL, "late", HP, profile_rows=800)
    assert small["reference_profile"]["rows"] == 800 and small["reference_profile"] == again["reference_profile"]
    assert meta["reference_profile"]["rows"] == meta["rows_trained"]  # under the cap: every training row


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


def test_feature_matrix_is_the_same_from_categories_strings_and_objects(data):
    frame = data.iloc[:50].copy()
    frame.loc[frame.index[::7], "c"] = None
    as_category = frame.assign(c=frame["c"].astype("category"))
    as_object = frame.assign(c=frame["c"].astype(object))
    expected = tr.feature_matrix(frame, NUMERIC, CATEGORICAL)
    for other in (as_category, as_object):
        pd.testing.assert_frame_equal(tr.feature_matrix(other, NUMERIC, CATEGORICAL), expected)
    assert frame["c"].isna().sum() == 8  # the input is left alone


def test_predict_in_chunks_equals_one_pass(fitted, data):
    estimator, _ = fitted
    one_pass = estimator.predict_proba(tr.feature_matrix(data, NUMERIC, CATEGORICAL))[:, 1]
    np.testing.assert_array_equal(tr.predict(estimator, data, NUMERIC, CATEGORICAL, chunk_rows=333), one_pass)


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
    model, meta = tr.fit_candidate([(D(2013, 1, 1), dated(1200, 12))], [(D(2013, 1, 13), synthetic(300, 5))],
                                   NUMERIC, CATEGORICAL, "late", HP, 0, 0)
    assert meta["family"] == "hgb" and meta["model_params"]["max_iter"] == 30
    assert meta["tuning"] == {"trials": [], "best": None}
    assert model.named_steps["model"].max_iter == 30


def test_fit_candidate_with_tuning_records_every_trial_and_trains_the_best():
    tuning = {"trials": 4, "families": ["hgb", "logreg"], "folds": 2, "seed": 0}
    model, meta = tr.fit_candidate([(D(2013, 1, 1), dated(1600, 16))], [(D(2013, 1, 17), synthetic(300, 5))],
                                   NUMERIC, CATEGORICAL, "late", HP, 0, 0, tuning=tuning)
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
