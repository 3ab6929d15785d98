"""A loaded dataset's per-day behaviour: the feature frame it builds and checks, the labels of its
target and the history rows of earlier days."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline.dataset import DatasetError
from pipeline.description import builtin, load
from tests.pipeline.test_description import write_description


@pytest.fixture
def describe(tmp_path):
    return lambda replace=None: write_description(tmp_path, replace=replace)


def test_the_feature_frame_adds_day_keys_and_target_and_hides_outcomes(describe):
    d = load(describe())
    rows = pd.DataFrame({"sku": pd.array([7, 8], dtype="Int64"), "size": [1.0, 2.0],
                         "colour": pd.array(["red", None], dtype="string"), "sold_at": ["", ""],
                         "price": [9.5, np.nan]})
    out = d.feature_frame({"sales": rows}, {}, pd.DataFrame(), dt.date(2024, 5, 6), 0)
    assert out["date"].tolist() == ["2024-05-06"] * 2 and out["sku"].tolist() == [7, 8]
    assert out["size"].tolist() == [1.0, 2.0] and out["colour"].isna().tolist() == [False, True]
    np.testing.assert_array_equal(out["price"].to_numpy(), [9.5, np.nan])


def _frame(path: str) -> pd.DataFrame:
    d = load(path)
    rows = pd.DataFrame({"sku": [1, 2], "size": [1.0, 2.0], "colour": ["red", "blue"], "sold_at": ["", ""],
                         "price": [3.0, 4.0]})
    return d.feature_frame({"sales": rows}, {}, pd.DataFrame(), dt.date(2024, 5, 6), 0)


def test_a_feature_function_that_returns_the_target_fails_its_day(describe):
    with pytest.raises(DatasetError, match=r"feature function shop_features:leaky \(from .*shop.toml\) returned "
                                           r"the target or outcome column\(s\) \['price'\]: a feature must be known "
                                           r"before the outcome"):
        _frame(describe(replace={"shop_features:build": "shop_features:leaky"}))


def test_a_feature_function_must_return_a_row_per_row_and_numbers_for_numeric(describe):
    with pytest.raises(DatasetError, match=r"returned 1 rows for 2 rows of table 'sales': it must return one "
                                           r"row per row"):
        _frame(describe(replace={"shop_features:build": "shop_features:short"}))
    with pytest.raises(DatasetError, match=r"returned numeric feature 'size' as"):
        _frame(describe(replace={"shop_features:build": "shop_features:wrong_type"}))


def test_a_binary_target_without_threshold_must_be_zero_or_one(describe):
    d = load(describe(replace={'task = "regression"': 'task = "binary"'}))
    assert d.label(pd.DataFrame({"price": [0.0, 1.0, np.nan]})).tolist()[:2] == [0.0, 1.0]
    with pytest.raises(DatasetError, match=r"holds values other than 0 and 1 \(\[3.0\]\); set \[target\] threshold"):
        d.label(pd.DataFrame({"price": [0.0, 3.0]}))


def test_the_first_day_gets_an_empty_history_with_its_columns(describe):
    from pipeline.flights import features as fl

    sales = load(describe())
    assert list(sales.empty_history().columns) == ["sku", "size", "colour", "sold_at", "price", "date"]
    assert len(sales.empty_history()) == 0
    flights = builtin()
    assert list(flights.empty_history().columns) == fl.HISTORY_SUMMARY_COLUMNS
