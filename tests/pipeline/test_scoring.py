import numpy as np
import pandas as pd
import pytest

from pipeline.scoring import score_partition

KEYS = ["date", "carrier", "flight"]
NUMERIC = ["x"]
CATEGORICAL = ["c"]


class HalfOfX:
    """A stand-in estimator whose probability of class 1 is x / 2."""

    def __init__(self):
        self.seen_columns = None

    def predict_proba(self, X):
        self.seen_columns = list(X.columns)
        p = X["x"].to_numpy() / 2
        return np.column_stack([1 - p, p])


@pytest.fixture
def features():
    return pd.DataFrame({
        "date": pd.Series(["2013-01-10"] * 3, dtype="string"),
        "carrier": pd.Series(["UA", "AA", "B6"], dtype="string"),
        "flight": [1, 2, 3],
        "x": [0.2, 1.0, 0.5],
        "c": pd.Series(["a", None, "b"], dtype="string"),
        "late": [0.0, 1.0, np.nan],
    })


def test_scores_every_row_with_keys_and_model_version(features):
    before = features.copy(deep=True)
    model = HalfOfX()
    out = score_partition(model, features, NUMERIC, CATEGORICAL, KEYS, "20130109-abc", "binary")
    assert list(out.columns) == KEYS + ["score", "model_version"]
    pd.testing.assert_frame_equal(out[KEYS], features[KEYS])
    np.testing.assert_allclose(out["score"], [0.1, 0.5, 0.25])
    assert out["model_version"].tolist() == ["20130109-abc"] * 3
    assert model.seen_columns == ["c", "x"]  # only the model's inputs, never the target
    pd.testing.assert_frame_equal(features, before)


def test_without_a_model_scores_are_nan(features):
    out = score_partition(None, features, NUMERIC, CATEGORICAL, KEYS, None, "binary")
    assert list(out.columns) == KEYS + ["score", "model_version"]
    assert len(out) == 3
    assert out["score"].isna().all()
    assert out["model_version"].isna().all()
    pd.testing.assert_frame_equal(out[KEYS], features[KEYS])


def test_no_rows_gives_an_empty_scored_frame(features):
    out = score_partition(HalfOfX(), features.iloc[:0], NUMERIC, CATEGORICAL, KEYS, "v1", "binary")
    assert list(out.columns) == KEYS + ["score", "model_version"] and len(out) == 0


def test_missing_feature_column_is_named(features):
    with pytest.raises(KeyError, match=r"feature column\(s\) \['dest'\] are missing"):
        score_partition(HalfOfX(), features, NUMERIC, CATEGORICAL + ["dest"], KEYS, "v1", "binary")
