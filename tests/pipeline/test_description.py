"""Dataset descriptions: what a valid one gives the stages, and the error a broken one gets
(each names the file, the setting and what to write instead)."""
from __future__ import annotations

import datetime as dt
import os
import re
import textwrap
from pathlib import Path

import pytest

from pipeline import description
from pipeline.dataset import DatasetError

FEATURES_PY = '''
import pandas as pd

def build(day):
    return pd.DataFrame({"size": day.rows["size"].astype(float), "colour": day.rows["colour"]})

def leaky(day):
    out = build(day)
    out["price"] = 1.0
    return out

def short(day):
    return build(day).iloc[:1]

def wrong_type(day):
    out = build(day)
    out["size"] = "big"
    return out
'''

VALID = '''
name = "sales"
outcomes = ["price"]

[target]
column = "price"
task = "regression"

[features]
function = "shop_features:build"
key = ["sku"]
numeric = ["size"]
categorical = ["colour"]

[tables.sales]
landing = "sales/{date:%Y%m%d}.csv"
key = ["sku"]

[tables.sales.columns]
sku = { type = "int", nullable = false }
size = { type = "float", min = 0 }
colour = { type = "string", allowed = ["red", "blue"] }
sold_at = { type = "timestamp", format = "%Y-%m-%d %H:%M" }
price = { type = "float", min = 0 }
'''


def write_description(directory: Path, text: str = VALID, replace: dict[str, str] | None = None) -> str:
    """shop.toml (and its feature module) in `directory`: VALID, or `text`, with `replace` applied."""
    (directory / "shop_features.py").write_text(FEATURES_PY)
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    path = directory / "shop.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def describe(tmp_path):
    return lambda text=VALID, replace=None: write_description(tmp_path, text, replace)


def error(path: str) -> str:
    with pytest.raises(DatasetError) as info:
        description.load(path)
    message = str(info.value)
    assert message.startswith(path + ":") or path in message
    return message


def test_a_valid_description_gives_the_stages_everything(describe):
    d = description.load(describe())
    assert (d.name, d.problem, d.target.table, d.target.name) == ("sales", "regression", "sales", "price")
    assert d.daily_tables["sales"].names == ["sku", "size", "colour", "sold_at", "price"]
    assert d.daily_tables["sales"].column("sold_at").datetime_format == "%Y-%m-%d %H:%M"
    assert d.landing_path("sales", dt.date(2024, 5, 6)) == "sales/20240506.csv"
    assert d.formats == {"sales": "csv"} and d.reference_tables == {}
    assert d.output_columns == ["date", "sku", "size", "colour", "price"]
    assert d.drift_alert_features == ["size", "colour"]


def test_the_flights_description_is_the_built_in_default():
    d = description.builtin()
    assert d.name == "flights" and d.problem == "binary" and d.target.threshold == 15.0
    assert sorted(d.daily_tables) == ["flights", "weather"] and list(d.reference_tables) == ["planes"]
    assert d.landing_path("flights", dt.date(2013, 1, 2)) == "flights/flights_2013-01-02.csv"
    assert len(d.daily_tables["flights"].checks) == 5
    assert d.history_summary == "pipeline.flights.features:summarize_history"


# ---- the errors a bad description gets ----------------------------------------------------------
def test_an_unknown_column_is_named_with_the_columns_there_are(describe):
    message = error(describe(replace={'key = ["sku"]\nnumeric': 'key = ["sku_id"]\nnumeric'}))
    assert "[features] key names ['sku_id'], which table 'sales' does not have" in message
    assert "'sku', 'size', 'colour', 'sold_at', 'price'" in message
    message = error(describe(replace={'column = "price"': 'column = "cost"'}))
    assert "[target] column 'cost' is not a column of table 'sales'" in message


def test_a_missing_target_says_what_to_write(describe):
    text = re.sub(r"\[target\][^\[]*", "", VALID)
    assert "no [target] section: name the table and column the model predicts" in error(describe(text))
    assert "[target] column is missing" in error(describe(replace={'column = "price"\n': ''}))
    assert "[target] problem = 'classification': the problem kind, one of ['binary', 'regression']" in error(
        describe(replace={'task = "regression"': 'task = "classification"'}))


def test_a_type_that_cannot_be_parsed(describe):
    message = error(describe(replace={'size = { type = "float"': 'size = { type = "decimal(10,2)"'}))
    assert ("column 'size' of [tables.sales] has type 'decimal(10,2)', which cannot be parsed: use one of "
            "['int', 'float', 'string', 'timestamp']") in message
    assert "timestamp without format" in error(describe(replace={', format = "%Y-%m-%d %H:%M"': ""}))
    assert "unknown setting(s) ['nulable']" in error(describe(replace={"nullable = false": "nulable = false"}))


def test_an_outcome_declared_as_a_feature_is_refused(describe):
    message = error(describe(replace={'numeric = ["size"]': 'numeric = ["size", "price"]'}))
    assert "[features] names the target or outcome column(s) ['price']" in message


def test_a_feature_function_that_cannot_be_imported(describe):
    message = error(describe(replace={"shop_features:build": "shop_features:nope"}))
    assert "module 'shop_features' has no 'nope'" in message
    message = error(describe(replace={"shop_features:build": "no_such_module:build"}))
    assert "module 'no_such_module' cannot be imported" in message


def test_the_cli_reports_a_bad_description_before_running_anything(describe, root, capsys):
    from tasks.cli import main

    path = describe(replace={'size = { type = "float"': 'size = { type = "decimal"'})
    assert main(["--dataset", path, "run", "--date", "2024-05-06"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mlpipe: {path}: column 'size' of [tables.sales] has type 'decimal'")
    assert not os.path.exists(root / "dataset.json")
    assert "MLPIPE_DATASET" not in os.environ


def test_the_flights_data_commands_refuse_another_dataset(describe, root, capsys):
    from tasks.cli import main

    path = describe()
    assert main(["--dataset", path, "land-demo", "--start", "2013-01-01", "--end", "2013-01-02"]) == 2
    assert f"mlpipe land-demo: it delivers flights data, but the dataset is 'sales' ({os.path.abspath(path)})" in (
        capsys.readouterr().err)
    assert main(["--dataset", path, "land-synthetic", "--start", "2013-01-01", "--end", "2013-01-02",
                 "--rows-per-day", "10"]) == 2
    assert "mlpipe land-synthetic: it delivers flights data" in capsys.readouterr().err
    assert not (root / "landing").exists()


def test_the_dataset_comes_from_luigi_cfg_unless_the_environment_names_one(describe, luigi_config, monkeypatch):
    from tasks.config import current_dataset

    monkeypatch.delenv("MLPIPE_DATASET", raising=False)
    assert current_dataset().name == "flights"  # nothing configured: the built-in description
    luigi_config({"dataset": {"path": describe()}})
    assert current_dataset().name == "sales" and current_dataset().target.column == "price"
    monkeypatch.setenv("MLPIPE_DATASET", description.BUILTIN)
    assert current_dataset().name == "flights"
