"""A dataset description: one TOML file naming a dataset's landing files, their tables and data
contracts, the target, the outcome columns and the Python function that builds the features.
The stages read everything dataset-specific from the Dataset it loads into; the flights data is
one such description (pipeline/flights.toml) plus its feature module (pipeline/flights.py).

The file is checked as a whole when loaded, and every error names the file, the setting and what
to write instead: a column that no table has, a missing target, a type that is not one of TYPES,
a function that cannot be imported. What the feature function returns is checked on every day it
runs (feature_frame): one row per row of the day, every declared feature, and never the target
or an outcome column."""
from __future__ import annotations

import datetime as dt
import functools
import importlib
import os
import string
import sys
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from pipeline.contracts import Column, RowCheck, TableContract

# The column types a description may name; timestamp is text with a `format` (strptime codes).
TYPES = ("int", "float", "string", "timestamp")
TASKS = ("binary", "regression")
FORMATS = ("csv", "parquet")
FILE_FORMATS = FORMATS  # the landing file formats pipeline.ingest reads
DAY_COLUMN = "date"  # added to every feature row and history row: the day's ISO date
_EMPTY_DTYPES = {"int": "Int64", "float": "float64", "string": "string"}  # pipeline.ingest's types
_COLUMN_KEYS = {"type", "nullable", "min", "max", "allowed", "pattern", "max_null_fraction", "format"}
_TABLE_KEYS = {"landing", "format", "columns", "key", "date_columns", "timestamp_column", "min_rows",
               "max_bad_fraction", "min_fraction_of_recent", "row_checks", "feature_columns"}
_TOP_KEYS = {"name", "description", "row_noun", "outcomes", "target", "features", "tables"}
_TARGET_KEYS = {"table", "column", "name", "task", "threshold", "label"}
_FEATURE_KEYS = {"function", "numeric", "categorical", "key", "drift_alert", "history_days",
                 "history_columns", "history_summary"}


class DatasetError(ValueError):
    """A dataset description that cannot be used, or a feature function that broke its contract."""


@dataclass(frozen=True)
class Target:
    table: str       # the table whose rows are predicted: one feature row per row of it
    column: str      # the column the target is read from (an outcome: never a feature)
    name: str        # the target's column in the feature partitions
    task: str        # "binary" or "regression"
    threshold: float | None  # binary: 1 when column >= threshold, else 0; None: the column is 0/1
    label: str       # how reports name it ("late", "trip minutes")


@dataclass(frozen=True)
class DayData:
    """What a feature function gets for one day. `rows` are the clean rows of the target's table
    for `date` without the outcome columns (what is known before the outcome); `tables` holds
    every daily table of the day the same way (the target's table too), `references` the
    reference tables. `history` holds the earlier days' rows of the target's table (the last
    `history_days` of them, with the outcomes, the target and a `date` column), or their
    summaries when the description names a history_summary function."""
    date: dt.date
    rows: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    references: dict[str, pd.DataFrame]
    history: pd.DataFrame
    history_days: int


@dataclass(frozen=True)
class Dataset:
    name: str
    source: str
    row_noun: str
    target: Target
    daily_tables: dict[str, TableContract]
    reference_tables: dict[str, TableContract]
    landing: dict[str, str]
    formats: dict[str, str]
    key_columns: list[str]
    outcome_columns: list[str]
    numeric_features: list[str]
    categorical_features: list[str]
    drift_alert_features: list[str]
    history_days: int
    history_columns: list[str] | None
    feature_function: str
    history_summary: str | None
    input_columns: dict[str, list[str] | None] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.target.task

    @property
    def features(self) -> list[str]:
        return self.numeric_features + self.categorical_features

    @property
    def hidden_columns(self) -> set[str]:
        """What only the outcome tells: never shown to the feature function for the day, never
        returned by it."""
        return set(self.outcome_columns) | {self.target.column, self.target.name}

    @property
    def output_columns(self) -> list[str]:
        """The columns of a feature partition: day, keys, features, target."""
        return list(dict.fromkeys([DAY_COLUMN] + self.key_columns + self.features + [self.target.name]))

    def landing_path(self, table: str, date: dt.date | None = None) -> str:
        """Where (relative to the landing zone) the upstream system drops `table`'s file of `date`."""
        pattern = self.landing[table]
        return pattern.format(date=date) if date is not None else pattern

    def contract(self, table: str) -> TableContract:
        for tables in (self.daily_tables, self.reference_tables):
            if table in tables:
                return tables[table]
        raise DatasetError(f"{self.source}: unknown table {table!r}; the description declares "
                           f"{sorted(self.daily_tables) + sorted(self.reference_tables)}")

    def label(self, rows: pd.DataFrame) -> np.ndarray:
        """The target of each row as float64, NaN where unknown (the outcome is not in yet)."""
        t = self.target
        values = rows[t.column].to_numpy(dtype="float64", na_value=np.nan)
        if t.task == "regression":
            return values
        if t.threshold is not None:
            return np.where(np.isnan(values), np.nan, (values >= t.threshold).astype(float))
        odd = np.unique(values[~np.isnan(values) & (values != 0) & (values != 1)])
        if len(odd):
            raise DatasetError(
                f"{self.source}: the binary target column '{t.column}' holds values other than 0 and 1 "
                f"({odd[:5].tolist()}); set [target] threshold (1 when the value is at least it) or "
                "deliver 0/1")
        return values

    def history_load_columns(self) -> list[str] | None:
        """The clean columns of the target's table a history day is made from (None: all)."""
        if self.history_columns is None:
            return None
        return list(dict.fromkeys(self.history_columns + [self.target.column]))

    def history_rows(self, clean: pd.DataFrame, date: dt.date) -> pd.DataFrame:
        """One earlier day's clean rows of the target's table as the feature function sees them in
        `history`: the history columns, the target and the day; summarized by the description's
        history_summary function when it names one (what the stored day summary holds)."""
        columns = self.history_columns if self.history_columns is not None else list(clean.columns)
        rows = clean[[c for c in columns if c != DAY_COLUMN]].reset_index(drop=True)
        rows[self.target.name] = self.label(clean)
        rows[DAY_COLUMN] = pd.Series(date.isoformat(), index=rows.index, dtype="string")
        if self.history_summary is None:
            return rows
        return resolve(self.history_summary, self.source, "[features] history_summary")(rows)

    def empty_history(self) -> pd.DataFrame:
        """`history` when there is no earlier day: no rows, but the columns history_rows gives, so
        a feature function can select them on the first day as on any other."""
        contract = self.daily_tables[self.target.table]
        empty = pd.DataFrame({c.name: pd.Series(dtype=_EMPTY_DTYPES[c.kind]) for c in contract.columns})
        return self.history_rows(empty, dt.date(1970, 1, 1))

    def feature_frame(self, tables: dict[str, pd.DataFrame], references: dict[str, pd.DataFrame],
                      history: pd.DataFrame, date: dt.date, history_days: int) -> pd.DataFrame:
        """The day's feature partition: the day and key columns of each row of the target's table,
        the features the description's function builds from the day's data without outcomes, and
        the target. Raises DatasetError naming the function when its output breaks the contract."""
        main = tables[self.target.table].reset_index(drop=True)
        hidden = self.hidden_columns
        visible = {name: frame.drop(columns=[c for c in frame.columns if c in hidden]).reset_index(drop=True)
                   for name, frame in tables.items()}
        day = DayData(date=date, rows=visible[self.target.table], tables=visible, references=references,
                      history=history, history_days=history_days)
        built = resolve(self.feature_function, self.source, "[features] function")(day)
        columns = {DAY_COLUMN: pd.Series(date.isoformat(), index=main.index, dtype="string"),
                   **{c: main[c] for c in self.key_columns}, **self.check_features(built, len(main)),
                   self.target.name: self.label(main)}
        return pd.DataFrame({c: columns[c] for c in self.output_columns}, index=main.index, copy=False)

    def check_features(self, built: Any, rows: int) -> dict[str, Any]:
        """{feature: values} of the feature function's output with the declared types (float64 for
        numeric, strings for categorical; no copy of a column that has them), or DatasetError
        saying what is wrong."""
        where = f"feature function {self.feature_function} (from {self.source})"
        if not isinstance(built, pd.DataFrame):
            raise DatasetError(f"{where} returned {type(built).__name__}, not a pandas DataFrame")
        leaked = [c for c in built.columns if c in self.hidden_columns]
        if leaked:
            raise DatasetError(
                f"{where} returned the target or outcome column(s) {leaked}: a feature must be known before "
                "the outcome, or the model learns from the answer; drop them from what it returns (the "
                "pipeline adds the target itself)")
        if len(built) != rows:
            raise DatasetError(f"{where} returned {len(built)} rows for {rows} rows of table "
                               f"'{self.target.table}': it must return one row per row, in their order")
        missing = [c for c in self.features if c not in built.columns]
        if missing:
            raise DatasetError(f"{where} did not return the declared feature(s) {missing}; it returned "
                               f"{list(built.columns)[:40]}")
        extra = [c for c in built.columns if c not in self.features and c not in self.key_columns]
        if extra:
            raise DatasetError(f"{where} returned column(s) {extra} that [features] numeric/categorical do not "
                               "declare: declare them as features or drop them")
        out: dict[str, Any] = {}
        for column in self.numeric_features:
            values = built[column]
            if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
                raise DatasetError(f"{where} returned numeric feature '{column}' as {values.dtype}: return "
                                   "numbers, or declare it under [features] categorical")
            out[column] = (values.to_numpy() if values.dtype == np.float64
                           else values.to_numpy(dtype="float64", na_value=np.nan))
        for column in self.categorical_features:
            values = built[column]
            out[column] = (values if isinstance(values.dtype, pd.StringDtype) else values.astype("string")).array
        return out


# ---- loading ----------------------------------------------------------------------------------
# The description the pipeline runs when none is configured: the flights data.
BUILTIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flights.toml")


def cached(path: str) -> Dataset:
    """load(path), read again only when the file changes (the stages ask for it often)."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return load(path)  # raises the error that names the missing file
    return _cached(os.path.abspath(path), mtime)


@functools.lru_cache(maxsize=8)
def _cached(path: str, mtime: int) -> Dataset:
    return load(path)


def builtin() -> Dataset:
    """The flights dataset (pipeline/flights.toml)."""
    return cached(BUILTIN)


def resolve(dotted: str, source: str, setting: str) -> Callable:
    """The object a "package.module:name" (or "package.module.name") path names. The module is
    imported from the Python path, or else from the directory of the description `source`."""
    module_name, _, attr = dotted.rpartition(":") if ":" in dotted else dotted.rpartition(".")
    if not module_name or not attr:
        raise DatasetError(f"{source}: {setting} = {dotted!r} is not a dotted path; write "
                           "\"package.module:function\"")
    try:
        module = _import(module_name, os.path.dirname(os.path.abspath(source)))
    except ImportError as exc:
        raise DatasetError(f"{source}: {setting} = {dotted!r}: module '{module_name}' cannot be imported "
                           f"({exc}); put it on the Python path or beside the description") from exc
    if not hasattr(module, attr):
        raise DatasetError(f"{source}: {setting} = {dotted!r}: module '{module_name}' has no '{attr}'")
    return getattr(module, attr)


def _import(module_name: str, directory: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.split(".")[0] or directory in sys.path:
            raise
        sys.path.append(directory)
        return importlib.import_module(module_name)


def load(path: str) -> Dataset:
    """Read and check the dataset description at `path`."""
    try:
        with open(path, "rb") as src:
            spec = tomllib.load(src)
    except FileNotFoundError as exc:
        raise DatasetError(f"dataset description {path} does not exist (set by --dataset, $MLPIPE_DATASET "
                           "or [dataset] path in luigi.cfg)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise DatasetError(f"dataset description {path} is not valid TOML: {exc}") from exc
    return _Reader(spec, path).dataset()


class _Reader:
    def __init__(self, spec: dict, source: str):
        self.spec, self.source = spec, source

    def fail(self, message: str):
        raise DatasetError(f"{self.source}: {message}")

    def section(self, spec: dict, name: str, known: set[str]) -> dict:
        if not isinstance(spec, dict):
            self.fail(f"{name} must be a table of settings, not {spec!r}")
        unknown = sorted(set(spec) - known)
        if unknown:
            self.fail(f"unknown setting(s) {unknown} in {name}; known: {sorted(known)}")
        return spec

    def names(self, value, setting: str, allowed: list[str], what: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(f"{setting} must be a list of column names, not {value!r}")
        unknown = [v for v in value if v not in allowed]
        if unknown:
            self.fail(f"{setting} names {unknown}, which {what} does not have; it has {allowed}")
        return list(value)

    def dataset(self) -> Dataset:
        spec = self.section(self.spec, "the top level", _TOP_KEYS)
        name = spec.get("name")
        if not isinstance(name, str) or not name or set(name) - set(string.ascii_letters + string.digits + "_-"):
            self.fail(f"name = {name!r}: give the dataset a name of letters, digits, '_' or '-' (it names "
                      "its storage paths)")
        tables = spec.get("tables")
        if not isinstance(tables, dict) or not tables:
            self.fail("no [tables.<name>] section: describe at least the table whose rows are predicted")
        parsed = {t: self.table(t, s) for t, s in tables.items()}
        daily = {t: p[0] for t, p in parsed.items() if "{date" in p[1]}
        reference = {t: p[0] for t, p in parsed.items() if "{date" not in p[1]}
        if "target" not in spec:
            self.fail("no [target] section: name the table and column the model predicts, e.g. "
                      "[target] table = \"rides\", column = \"duration_min\", task = \"regression\"")
        target = self.target(self.section(spec["target"], "[target]", _TARGET_KEYS), daily)
        main = daily[target.table]
        outcomes = self.names(spec.get("outcomes", []), "outcomes", main.names, f"table '{target.table}'")
        features = self.section(spec.get("features"), "[features]", _FEATURE_KEYS) if "features" in spec \
            else self.fail("no [features] section: name the feature function and the features it returns")
        function = features.get("function")
        if not isinstance(function, str):
            self.fail("[features] function is missing: the dotted path of the function that builds the features, "
                      "e.g. \"rides_features:build\"")
        resolve(function, self.source, "[features] function")
        numeric = self.feature_names(features.get("numeric", []), "[features] numeric")
        categorical = self.feature_names(features.get("categorical", []), "[features] categorical")
        both = sorted(set(numeric) & set(categorical))
        if both:
            self.fail(f"[features] numeric and categorical both name {both}")
        if not numeric + categorical:
            self.fail("[features] declares no feature: list them under numeric and categorical")
        forbidden = sorted(set(numeric + categorical) & (set(outcomes) | {target.column, target.name}))
        if forbidden:
            self.fail(f"[features] names the target or outcome column(s) {forbidden}: they are only known after "
                      "the outcome, so a model using them cannot predict")
        keys = self.names(features.get("key", []), "[features] key", main.names, f"table '{target.table}'")
        leaked_keys = sorted(set(keys) & (set(outcomes) | {target.column}))
        if leaked_keys:
            self.fail(f"[features] key names outcome column(s) {leaked_keys}")
        drift = self.names(features.get("drift_alert", numeric + categorical), "[features] drift_alert",
                           numeric + categorical, "[features] numeric/categorical")
        history_days = features.get("history_days", 0)
        if not isinstance(history_days, int) or history_days < 0:
            self.fail(f"[features] history_days = {history_days!r}: a whole number of earlier days (0: none)")
        history_columns = features.get("history_columns")
        if history_columns is not None:
            history_columns = self.names(history_columns, "[features] history_columns", main.names,
                                         f"table '{target.table}'")
        summary = features.get("history_summary")
        if summary is not None:
            if not isinstance(summary, str):
                self.fail(f"[features] history_summary = {summary!r} must be a dotted path")
            resolve(summary, self.source, "[features] history_summary")
        input_columns = {}
        for t, table_spec in tables.items():
            if "feature_columns" in table_spec:
                contract = parsed[t][0]
                chosen = self.names(table_spec["feature_columns"], f"[tables.{t}] feature_columns",
                                    contract.names, f"table '{t}'")
                if t == target.table:
                    chosen = list(dict.fromkeys(chosen + keys + [target.column]))
                input_columns[t] = chosen
        row_noun = spec.get("row_noun", "rows")
        return Dataset(
            name=name, source=self.source, row_noun=str(row_noun), target=target, daily_tables=daily,
            reference_tables=reference, landing={t: p[1] for t, p in parsed.items()},
            formats={t: p[2] for t, p in parsed.items()}, key_columns=keys, outcome_columns=outcomes,
            numeric_features=numeric, categorical_features=categorical, drift_alert_features=drift,
            history_days=history_days, history_columns=history_columns, feature_function=function,
            history_summary=summary, input_columns=input_columns)

    def feature_names(self, value, setting: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(f"{setting} must be a list of feature names, not {value!r}")
        if DAY_COLUMN in value:
            self.fail(f"{setting} names '{DAY_COLUMN}', which the pipeline adds to every row itself")
        return list(value)

    def target(self, spec: dict, daily: dict[str, TableContract]) -> Target:
        table = spec.get("table")
        if len(daily) == 1 and table is None:
            table = next(iter(daily))
        if table not in daily:
            self.fail(f"[target] table = {table!r} is not a daily table of the description (a table whose "
                      f"landing pattern has {{date}}); daily tables: {sorted(daily)}")
        column = spec.get("column")
        if column is None:
            self.fail("[target] column is missing: name the column the model predicts")
        contract = daily[table]
        if column not in contract.names:
            self.fail(f"[target] column '{column}' is not a column of table '{table}'; it has {contract.names}")
        if contract.column(column).kind not in ("int", "float"):
            self.fail(f"[target] column '{column}' has type {contract.column(column).kind}: the target must be a "
                      "number (int or float); for a binary target deliver 0/1 or a number with a threshold")
        task = spec.get("task")
        if task not in TASKS:
            self.fail(f"[target] task = {task!r}: choose one of {list(TASKS)}")
        threshold = spec.get("threshold")
        if threshold is not None and (task != "binary" or not isinstance(threshold, (int, float))):
            self.fail(f"[target] threshold = {threshold!r}: a number, and only for task = \"binary\"")
        name = spec.get("name", column if threshold is None else f"{column}_at_least_{threshold:g}")
        if name in contract.names and name != column:
            self.fail(f"[target] name '{name}' is already a column of table '{table}'; pick another")
        return Target(table=table, column=column, name=name, task=task,
                      threshold=None if threshold is None else float(threshold),
                      label=str(spec.get("label", name)))

    def table(self, name: str, spec: dict) -> tuple[TableContract, str, str]:
        where = f"[tables.{name}]"
        spec = self.section(spec, where, _TABLE_KEYS)
        landing = spec.get("landing")
        if not isinstance(landing, str) or not landing:
            self.fail(f"{where} landing is missing: the file's path under the landing zone, with {{date}} for a "
                      f"daily file, e.g. landing = \"{name}/{name}_{{date}}.csv\" ({{date:%Y/%m/%d}} formats it)")
        try:
            landing.format(date=dt.date(2000, 1, 2))
        except (KeyError, IndexError, ValueError) as exc:
            self.fail(f"{where} landing = {landing!r} cannot be formatted ({exc}); the only field is {{date}}")
        file_format = spec.get("format", "parquet" if landing.endswith(".parquet") else "csv")
        if file_format not in FORMATS:
            self.fail(f"{where} format = {file_format!r}: choose one of {list(FORMATS)}")
        columns_spec = spec.get("columns")
        if not isinstance(columns_spec, dict) or not columns_spec:
            self.fail(f"{where} has no columns: add [tables.{name}.columns] with one entry per column, e.g. "
                      "price = { type = \"float\", min = 0 }")
        columns = tuple(self.column(name, c, s) for c, s in columns_spec.items())
        names = [c.name for c in columns]
        key = tuple(self.names(spec.get("key", []), f"{where} key", names, f"table '{name}'"))
        date_columns = spec.get("date_columns")
        if date_columns is not None:
            date_columns = tuple(self.names(date_columns, f"{where} date_columns", names, f"table '{name}'"))
            if len(date_columns) != 3:
                self.fail(f"{where} date_columns must name 3 columns: year, month, day")
        timestamp = spec.get("timestamp_column")
        if timestamp is not None:
            self.names([timestamp], f"{where} timestamp_column", names, f"table '{name}'")
        checks: tuple[RowCheck, ...] = ()
        if spec.get("row_checks"):
            checks = tuple(resolve(spec["row_checks"], self.source, f"{where} row_checks"))
            if not all(isinstance(c, RowCheck) for c in checks):
                self.fail(f"{where} row_checks must name a sequence of pipeline.contracts.RowCheck")
        options = {k: spec[k] for k in ("min_rows", "max_bad_fraction", "min_fraction_of_recent") if k in spec}
        try:
            extra = {"timestamp_column": timestamp} if timestamp is not None else {}
            contract = TableContract(name=name, columns=columns, key=key, checks=checks, date_columns=date_columns,
                                     **extra, **options)
        except (TypeError, ValueError) as exc:
            self.fail(f"{where}: {exc}")
        return contract, landing, file_format

    def column(self, table: str, name: str, spec) -> Column:
        where = f"column '{name}' of [tables.{table}]"
        if isinstance(spec, str):
            spec = {"type": spec}
        spec = self.section(spec, where, _COLUMN_KEYS)
        kind = spec.get("type")
        if kind not in TYPES:
            self.fail(f"{where} has type {kind!r}, which cannot be parsed: use one of {list(TYPES)} "
                      "(timestamp needs format = \"%Y-%m-%d %H:%M:%S\" or similar strptime codes)")
        fmt = spec.get("format")
        if kind == "timestamp" and not fmt:
            self.fail(f"{where} is a timestamp without format: add format = \"%Y-%m-%dT%H:%M:%S\" (strptime codes)")
        if fmt and kind not in ("timestamp", "string"):
            self.fail(f"{where}: format applies to timestamp columns only")
        allowed = spec.get("allowed")
        try:
            return Column(name=name, kind="string" if kind == "timestamp" else kind,
                          nullable=bool(spec.get("nullable", True)), min=spec.get("min"), max=spec.get("max"),
                          allowed=frozenset(str(v) for v in allowed) if allowed is not None else None,
                          pattern=spec.get("pattern"), max_null_fraction=spec.get("max_null_fraction"),
                          datetime_format=fmt)
        except (TypeError, ValueError) as exc:
            self.fail(f"{where}: {exc}")
