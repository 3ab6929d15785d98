import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.metrics import roc_auc_score

from pipeline import artifact as ar
from pipeline import estimators as es
from pipeline import tuning as tu

NUMERIC = ["x", "noise"]
CATEGORICAL = ["c"]
BASE = {k: v for k, v in dataclasses.asdict(es.Hyperparameters(max_iter=30)).items() if k != "random_state"}
DAYS = [dt.date(2013, 1, 1) + dt.timedelta(days=i) for i in range(20)]


def synthetic(per_day: int = 20, seed: int = 0, linear: bool = True) -> pd.DataFrame:
    """`per_day` rows on each of DAYS, shuffled; the label depends on `x` (linearly, or through |x|
    when not `linear`) and on `c == 'a'`; `noise` carries no signal; a few features are missing."""
    rng = np.random.default_rng(seed)
    n = per_day * len(DAYS)
    x = rng.normal(size=n)
    c = rng.choice(["a", "b", "c"], size=n)
    logit = (2.0 * x if linear else 3.0 * (np.abs(x) - 0.7)) + 1.0 * (c == "a") - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    frame = pd.DataFrame({"date": [d.isoformat() for d in DAYS for _ in range(per_day)], "x": x,
                          "noise": rng.normal(size=n), "c": pd.Series(c, dtype="string"), "late": y})
    frame.loc[frame.index % 17 == 0, "x"] = np.nan
    frame.loc[frame.index % 13 == 0, "c"] = pd.NA
    return frame.sample(frac=1.0, random_state=seed)


def run(frame, trials=3, families=("hgb", "logreg"), folds=3, seed=0, max_train_rows=0, day=None):
    return tu.search(frame, frame["date"] if day is None else day, NUMERIC, CATEGORICAL, "late", BASE,
                     trials, list(families), folds, seed, random_state=0, max_train_rows=max_train_rows, problem="binary")


# ---- time_folds -------------------------------------------------------------------------------
@pytest.mark.parametrize("folds, min_train_days", [(1, 7), (3, 7), (4, 5), (13, 7)])
def test_time_folds_expand_and_validate_only_on_later_days(folds, min_train_days):
    shuffled = [DAYS[i] for i in np.random.default_rng(0).permutation(len(DAYS))] * 2  # unordered, repeated
    result = tu.time_folds(shuffled, folds, min_train_days)
    assert len(result) == folds
    assert result[0][0] == DAYS[:min_train_days]
    assert [d for _, valid in result for d in valid] == DAYS[min_train_days:]  # contiguous blocks, in order
    sizes = [len(valid) for _, valid in result]
    assert max(sizes) - min(sizes) <= 1
    for train, valid in result:
        assert max(train) < min(valid)
        assert train == [d for d in DAYS if d < valid[0]]  # every earlier day, none later


def test_time_folds_too_few_days():
    assert len(tu.time_folds(DAYS[:10], folds=3)) == 3
    with pytest.raises(ValueError, match=r"9 distinct day\(s\) cannot make 3 time-ordered fold\(s\) after 7 "
                                         r"training day\(s\): need at least 10; use fewer folds"):
        tu.time_folds(DAYS[:9] * 3, folds=3)
    with pytest.raises(ValueError, match=r"folds \(0\) and min_train_days \(7\) must be >= 1"):
        tu.time_folds(DAYS, folds=0)


# ---- candidates -------------------------------------------------------------------------------
def test_candidates_reproducible_base_first_distinct():
    specs = tu.candidates(BASE, 9, ["hgb", "logreg"], seed=3, problem="binary")
    assert specs == tu.candidates(BASE, 9, ["hgb", "logreg"], seed=3, problem="binary")
    assert specs != tu.candidates(BASE, 9, ["hgb", "logreg"], seed=4, problem="binary")
    assert specs[0] == {"family": "hgb", "params": BASE}
    assert len(specs) == 9
    assert all(s not in specs[:i] for i, s in enumerate(specs))
    assert [s["family"] for s in specs] == ["hgb", "logreg"] * 4 + ["hgb"]
    for spec in specs[1:]:
        space = tu.SPACES[spec["family"]]
        if spec["family"] == "hgb":
            assert spec["params"].keys() == BASE.keys()
            assert spec["params"]["max_iter"] == BASE["max_iter"]
            assert spec["params"]["early_stopping"] == BASE["early_stopping"]
        assert all(spec["params"][k] in values for k, values in space.items())


def test_candidates_respect_families_and_stop_when_exhausted():
    only_hgb = tu.candidates(BASE, 6, ["hgb"], seed=1, problem="binary")
    assert {s["family"] for s in only_hgb} == {"hgb"}
    # a family's draws do not depend on which other families are searched
    both = tu.candidates(BASE, 9, ["hgb", "logreg"], seed=1, problem="binary")  # 4 logreg, 5 hgb
    assert [s for s in both if s["family"] == "hgb"] == only_hgb[:5]
    # the base plus all 4 values of C; then the hgb grid (144 points, the base among them)
    logreg = tu.candidates(BASE, 50, ["logreg"], seed=1, problem="binary")
    assert logreg[0]["family"] == "hgb" and len(logreg) == 5
    assert sorted(s["params"]["C"] for s in logreg[1:]) == list(tu.SPACES["logreg"]["C"])
    everything = tu.candidates(BASE, 1000, ["hgb", "logreg"], seed=1, problem="binary")
    assert len(everything) == 144 + 4
    assert all(s not in everything[:i] for i, s in enumerate(everything))
    # the search's random_state wins over one left in base
    assert tu.candidates({**BASE, "random_state": 7}, 1, ["hgb"], seed=1, problem="binary")[0]["params"] == BASE


def test_candidates_reject_unknown_family():
    with pytest.raises(ValueError, match=r"unknown or no model families \['hgb', 'forest'\]; "
                                         r"expected some of \('hgb', 'logreg'\)"):
        tu.candidates(BASE, 3, ["hgb", "forest"], seed=0, problem="binary")


# ---- build_estimator --------------------------------------------------------------------------
def test_build_estimator_unknown_family():
    with pytest.raises(ValueError, match=r"unknown model family 'forest'; expected one of \('hgb', 'logreg'\)"):
        es.build_estimator("forest", {}, NUMERIC, CATEGORICAL, 0, problem="binary")


@pytest.mark.parametrize("family, params", [("hgb", BASE), ("logreg", {"C": 1.0})])
def test_estimators_round_trip_through_skops_with_trusted_types_only(family, params):
    frame = synthetic()
    X = es.feature_matrix(frame, NUMERIC, CATEGORICAL)
    estimator = es.build_estimator(family, params, NUMERIC, CATEGORICAL, 0, problem="binary").fit(X, frame["late"].astype(int))
    data = sio.dumps(estimator)
    assert set(sio.get_untrusted_types(data=data)) <= set(ar.TRUSTED_TYPES)
    loaded = sio.loads(data, trusted=list(ar.TRUSTED_TYPES))
    unseen = X.head(20).assign(c=["zzz"] * 10 + [np.nan] * 10)  # an unknown and a missing category
    for rows in (X, unseen):
        np.testing.assert_array_equal(loaded.predict_proba(rows), estimator.predict_proba(rows))


# ---- search -----------------------------------------------------------------------------------
def fold_scores_by_hand(frame, spec, folds, max_train_rows=0):
    """What search should record for `spec`, recomputed without it."""
    rows = frame[frame["late"].notna()]
    day = pd.to_datetime(rows["date"]).dt.date
    scores = []
    for train_days, valid_days in tu.time_folds(list(day), folds):
        train, valid = rows[day.isin(train_days)], rows[day.isin(valid_days)]
        if max_train_rows and len(train) > max_train_rows:
            train = train.sample(n=max_train_rows, random_state=0)
        model = es.build_estimator(spec["family"], spec["params"], NUMERIC, CATEGORICAL, 0, problem="binary")
        model.fit(es.feature_matrix(train, NUMERIC, CATEGORICAL), train["late"].astype(int))
        scores.append(roc_auc_score(valid["late"].astype(int),
                                    model.predict_proba(es.feature_matrix(valid, NUMERIC, CATEGORICAL))[:, 1]))
    return scores


def test_search_records_every_trial_and_picks_the_best_mean():
    frame = synthetic()
    best, records = run(frame, trials=4, max_train_rows=150)
    specs = tu.candidates(BASE, 4, ["hgb", "logreg"], seed=0, problem="binary")
    assert [r["trial"] for r in records] == [0, 1, 2, 3]
    assert [{"family": r["family"], "params": r["params"]} for r in records] == specs
    for record in records:
        assert len(record["fold_roc_auc"]) == 3 and record["seconds"] >= 0
        assert record["mean_roc_auc"] == pytest.approx(np.mean(record["fold_roc_auc"]))
    for record in records[:2]:  # one of each family, recomputed without search
        assert record["fold_roc_auc"] == pytest.approx(fold_scores_by_hand(frame, record, 3, max_train_rows=150))
    assert records[0]["mean_roc_auc"] > 0.7  # a learnable label
    top = max(records, key=lambda r: r["mean_roc_auc"])
    assert best == {k: top[k] for k in ("family", "params", "mean_roc_auc", "trial", "score_name")}
    assert best["score_name"] == "roc_auc"
    assert best["mean_roc_auc"] == max(r["mean_roc_auc"] for r in records)


def test_search_passes_over_models_that_cannot_learn():
    # A label that depends on |x| is beyond a linear model (a tiny C would not do: it shrinks the
    # coefficients but keeps their ranking, and ROC AUC only sees the ranking); the trees learn it.
    best, records = run(synthetic(linear=False), trials=4)
    logreg = [r for r in records if r["family"] == "logreg"]
    assert logreg and best["family"] == "hgb"
    assert max(r["mean_roc_auc"] for r in logreg) < records[0]["mean_roc_auc"]
    assert all(abs(r["mean_roc_auc"] - 0.5) < 0.1 for r in logreg)
    assert best["mean_roc_auc"] == max(r["mean_roc_auc"] for r in records)
    # A configured model whose leaves need more rows than any fold has cannot split: its constant
    # scores rank nothing (AUC exactly 0.5) and a drawn spec wins.
    stump = {**BASE, "min_samples_leaf": 1000}
    best, records = tu.search(synthetic(), synthetic()["date"], NUMERIC, CATEGORICAL, "late", stump, 3, ["hgb"],
                              3, seed=0, random_state=0, problem="binary")
    assert records[0]["params"] == stump and records[0]["fold_roc_auc"] == [0.5, 0.5, 0.5]
    assert best["trial"] != 0 and best["mean_roc_auc"] > 0.5
    assert best["mean_roc_auc"] == max(r["mean_roc_auc"] for r in records)


def test_search_uses_labelled_rows_only_and_accepts_dates():
    frame = synthetic()
    later = synthetic(seed=1).assign(date=lambda f: pd.to_datetime(f["date"]) + pd.Timedelta(days=20),
                                     late=np.nan)  # days with no labels yet
    later["date"] = later["date"].dt.strftime("%Y-%m-%d")
    both = pd.concat([frame, later])  # duplicate index labels, as from concatenated partitions
    expected = run(frame, trials=2)
    got = run(both, trials=2, day=pd.to_datetime(both["date"]).dt.date)
    assert [r["fold_roc_auc"] for r in got[1]] == [r["fold_roc_auc"] for r in expected[1]]
    assert got[0] == expected[0]


def test_search_errors():
    frame = synthetic()
    with pytest.raises(ValueError, match=r"trials must be >= 1 \(got 0\)"):
        run(frame, trials=0)
    with pytest.raises(ValueError, match=r"day has 10 value\(s\) but frame has 400 row\(s\)"):
        run(frame, day=frame["date"].head(10))
    one_class = frame.assign(late=np.where(frame["date"] >= "2013-01-16", 0.0, frame["late"]))
    with pytest.raises(es.TrainingError, match=r"fold 2 \(2013-01-17 to 2013-01-20\): its validation rows "
                                               r"hold only one class of 'late'"):
        run(one_class, trials=1)
