"""Resolving the dotted paths a description names: from the Python path or beside the description,
and the DatasetError of a path that names nothing."""
from __future__ import annotations

import pytest

from pipeline.flights import features
from pipeline.hooks import DatasetError, resolve


def test_a_colon_or_a_dot_separates_the_module_from_the_name():
    assert resolve("pipeline.flights.features:build_features", "d.toml", "[features] function") is \
        features.build_features
    assert resolve("pipeline.flights.features.FLIGHT_CHECKS", "d.toml", "row_checks") is features.FLIGHT_CHECKS


def test_a_module_beside_the_description_is_imported_from_there(tmp_path):
    (tmp_path / "beside_the_description_mod.py").write_text("def build(day):\n    return day\n")
    build = resolve("beside_the_description_mod:build", str(tmp_path / "d.toml"), "[features] function")
    assert build(3) == 3


@pytest.mark.parametrize("dotted, message", [
    ("build", r"d\.toml: \[features\] function = 'build' is not a dotted path; write \"package\.module:function\""),
    ("no_such_module_here:build", r"module 'no_such_module_here' cannot be imported .*; put it on the Python path "
                                  r"or beside the description"),
    ("pipeline.flights.features:nope", r"module 'pipeline\.flights\.features' has no 'nope'"),
])
def test_a_path_that_names_nothing_is_a_dataset_error(dotted, message):
    with pytest.raises(DatasetError, match=message):
        resolve(dotted, "d.toml", "[features] function")
