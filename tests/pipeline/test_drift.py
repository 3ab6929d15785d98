"""pipeline.drift: population stability index and reference profiles."""
import math

import numpy as np
import pandas as pd
import pytest

from pipeline import drift as dr


def test_psi_is_zero_for_identical_distributions():
    assert dr.psi([0.1, 0.2, 0.3, 0.4, 0.0], [0.1, 0.2, 0.3, 0.4, 0.0]) == 0.0


def test_psi_value_for_a_shift():
    expected = 0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5)
    assert dr.psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(expected)
    assert dr.psi([0.5, 0.5], [0.9, 0.1]) > 0.25


def test_psi_is_finite_and_large_for_disjoint_bins():
    value = dr.psi([1.0, 0.0], [0.0, 1.0])
    assert math.isfinite(value) and value > 10


def test_numeric_profile_has_quantile_edges_and_a_missing_bin():
    X = pd.DataFrame({"x": np.r_[np.arange(100, dtype=float), [np.nan] * 25]})
    prof = dr.profile(X, ["x"], [], scores=np.linspace(0, 1, 125))
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
    prof = dr.profile(pd.DataFrame({"k": [3.0] * 20}), ["k"], [], np.full(20, 0.5))
    assert prof["features"]["k"]["edges"] == [3.0]
    assert prof["features"]["k"]["fractions"] == [0.0, 1.0, 0.0]


def test_categorical_profile_keeps_top_categories_with_missing_and_other():
    X = pd.DataFrame({"c": pd.Series(["a"] * 5 + ["b"] * 3 + [None] * 2 + ["z"], dtype="string")})
    prof = dr.profile(X, [], ["c"], np.zeros(11), top_categories=3)
    c = prof["features"]["c"]
    assert c["kind"] == "categorical"
    assert c["categories"] == ["a", "b", dr.MISSING]
    assert c["fractions"] == pytest.approx([5 / 11, 3 / 11, 2 / 11, 1 / 11])
