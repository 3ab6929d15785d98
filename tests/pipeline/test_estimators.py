"""pipeline.estimators: the feature matrix, the estimators and prediction."""

import numpy as np
import pandas as pd
import pytest

from tests.pipeline.builders import CATEGORICAL, NUMERIC

from pipeline import estimators as es


def test_unseen_and_missing_categories_still_score(fitted, data):
    estimator, _ = fitted
    rows = data.iloc[:3].copy()
    rows["c"] = pd.Series(["never-seen", None, "a"], dtype="string", index=rows.index)
    scores = es.predict(estimator, rows, NUMERIC, CATEGORICAL, "binary")
    assert np.isfinite(scores).all()


def test_feature_matrix_types_order_and_missing_columns(data):
    frame = data.iloc[:2].copy()
    frame["c"] = pd.Series(["a", None], dtype="string", index=frame.index)
    X = es.feature_matrix(frame, NUMERIC, CATEGORICAL)
    assert list(X.columns) == ["c", "x", "noise"]
    assert X["c"].dtype == object and X["c"].iloc[0] == "a" and pd.isna(X["c"].iloc[1])
    assert X["x"].dtype == "float64"
    with pytest.raises(KeyError, match=r"feature column\(s\) \['dest'\] are missing"):
        es.feature_matrix(frame, NUMERIC, CATEGORICAL + ["dest"])


def test_feature_matrix_is_the_same_from_categories_strings_and_objects(data):
    frame = data.iloc[:50].copy()
    frame.loc[frame.index[::7], "c"] = None
    as_category = frame.assign(c=frame["c"].astype("category"))
    as_object = frame.assign(c=frame["c"].astype(object))
    expected = es.feature_matrix(frame, NUMERIC, CATEGORICAL)
    for other in (as_category, as_object):
        pd.testing.assert_frame_equal(es.feature_matrix(other, NUMERIC, CATEGORICAL), expected)
    assert frame["c"].isna().sum() == 8  # the input is left alone


def test_predict_in_chunks_equals_one_pass(fitted, data):
    estimator, _ = fitted
    one_pass = estimator.predict_proba(es.feature_matrix(data, NUMERIC, CATEGORICAL))[:, 1]
    np.testing.assert_array_equal(es.predict(estimator, data, NUMERIC, CATEGORICAL, "binary", chunk_rows=333), one_pass)


def test_predict_on_no_rows_is_empty(fitted, data):
    assert es.predict(fitted[0], data.iloc[:0], NUMERIC, CATEGORICAL, "binary").shape == (0,)
