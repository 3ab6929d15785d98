"""Loading a dataset description: the TOML file read into a pipeline.dataset.Dataset and checked
as a whole, every error naming the file, the setting and what to write instead."""
from __future__ import annotations

import datetime as dt
import functools
import os
import tomllib

from pipeline import identifiers
from pipeline.contracts import Column, RowCheck, TableContract
from pipeline.dataset import DAY_COLUMN, Dataset, Target
from pipeline.hooks import DatasetError, resolve
from pipeline.ingest import LANDING_FORMATS
from pipeline.metrics import PROBLEMS
from pipeline.readiness import KEYS as READINESS_KEYS
from pipeline.readiness import ReadinessRule, parse_rule
from pipeline.waiting import KEYS as FRESHNESS_KEYS
from pipeline.waiting import Freshness, parse_freshness

# The column types a description may name; timestamp is text with a `format` (strptime codes).
TYPES = ("int", "float", "string", "timestamp")
_COLUMN_KEYS = {"type", "nullable", "min", "max", "allowed", "pattern", "max_null_fraction", "format"}
_TABLE_KEYS = {"landing", "format", "columns", "key", "date_columns", "timestamp_column", "min_rows",
               "max_bad_fraction", "min_fraction_of_recent", "row_checks", "feature_columns", *READINESS_KEYS,
               *FRESHNESS_KEYS}
_TOP_KEYS = {"name", "description", "row_noun", "outcomes", "target", "features", "tables"}
_TARGET_KEYS = {"table", "column", "name", "problem", "task", "threshold", "label"}
_FEATURE_KEYS = {"function", "numeric", "categorical", "key", "drift_alert", "history_days",
                 "history_columns", "history_summary"}

# The description the pipeline runs when none is configured: the flights data.
BUILTIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flights", "dataset.toml")


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
    """The flights dataset (pipeline/flights/dataset.toml)."""
    return cached(BUILTIN)


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

    def identifier(self, where: str, check, *args):
        """check(*args), a pipeline.identifiers check of a value that becomes part of a path; a
        failure's message after `where`."""
        try:
            return check(*args)
        except identifiers.IdentifierError as exc:
            self.fail(f"{where}{exc}")

    def names(self, value, setting: str, allowed: list[str], what: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(f"{setting} must be a list of column names, not {value!r}")
        unknown = [v for v in value if v not in allowed]
        if unknown:
            self.fail(f"{setting} names {unknown}, which {what} does not have; it has {allowed}")
        return list(value)

    def dataset(self) -> Dataset:
        spec = self.section(self.spec, "the top level", _TOP_KEYS)
        name = self.identifier("", identifiers.check_name, "dataset", spec.get("name"))
        tables = spec.get("tables")
        if not isinstance(tables, dict) or not tables:
            self.fail("no [tables.<name>] section: describe at least the table whose rows are predicted")
        for table in tables:
            self.identifier("", identifiers.check_name, "table", table)
        parsed = {t: self.table(t, s) for t, s in tables.items()}
        daily = {t: p[0] for t, p in parsed.items() if "{date" in p[1]}
        reference = {t: p[0] for t, p in parsed.items() if "{date" not in p[1]}
        if "target" not in spec:
            self.fail("no [target] section: name the table and column the model predicts, e.g. "
                      "[target] table = \"rides\", column = \"duration_min\", problem = \"regression\"")
        target = self.target(self.section(spec["target"], "[target]", _TARGET_KEYS), daily)
        main = daily[target.table]
        outcomes = self.names(spec.get("outcomes", []), "outcomes", main.names, f"table '{target.table}'")
        features = self.section(spec.get("features"), "[features]", _FEATURE_KEYS) if "features" in spec \
            else self.fail("no [features] section: name the feature function and the features it returns")
        function = self.function(features)
        numeric, categorical = self.declared_features(features, target, outcomes)
        keys = self.names(features.get("key", []), "[features] key", main.names, f"table '{target.table}'")
        leaked_keys = sorted(set(keys) & (set(outcomes) | {target.column}))
        if leaked_keys:
            self.fail(f"[features] key names outcome column(s) {leaked_keys}")
        drift = self.names(features.get("drift_alert", numeric + categorical), "[features] drift_alert",
                           numeric + categorical, "[features] numeric/categorical")
        history_days, history_columns, summary = self.history(features, main, target)
        row_noun = spec.get("row_noun", "rows")
        return Dataset(
            name=name, source=self.source, row_noun=str(row_noun), target=target, daily_tables=daily,
            reference_tables=reference, landing={t: p[1] for t, p in parsed.items()},
            formats={t: p[2] for t, p in parsed.items()}, key_columns=keys, outcome_columns=outcomes,
            numeric_features=numeric, categorical_features=categorical, drift_alert_features=drift,
            history_days=history_days, history_columns=history_columns, feature_function=function,
            history_summary=summary, input_columns=self.input_columns(tables, parsed, target, keys),
            readiness={t: self.readiness(t, s) for t, s in tables.items()},
            freshness={t: f for t, s in tables.items() if (f := self.freshness(t, s)) is not None})

    def readiness(self, table: str, spec: dict) -> ReadinessRule:
        """[tables.<table>] ready and the setting of its rule: when the landing file counts as delivered."""
        try:
            return parse_rule(table, spec)
        except ValueError as exc:
            self.fail(f"[tables.{table}] {exc}")

    def freshness(self, table: str, spec: dict) -> Freshness | None:
        """[tables.<table>] expected_by and timezone: when the table's file of a day is expected."""
        try:
            return parse_freshness(table, spec)
        except ValueError as exc:
            self.fail(f"[tables.{table}] {exc}")

    def function(self, features: dict) -> str:
        """[features] function, checked to import."""
        function = features.get("function")
        if not isinstance(function, str):
            self.fail("[features] function is missing: the dotted path of the function that builds the features, "
                      "e.g. \"rides_features:build\"")
        resolve(function, self.source, "[features] function")
        return function

    def declared_features(self, features: dict, target: Target,
                          outcomes: list[str]) -> tuple[list[str], list[str]]:
        """[features] numeric and categorical: each name once, at least one, no outcome among them."""
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
        return numeric, categorical

    def history(self, features: dict, main: TableContract,
                target: Target) -> tuple[int, list[str] | None, str | None]:
        """[features] history_days, history_columns and history_summary."""
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
        return history_days, history_columns, summary

    def input_columns(self, tables: dict, parsed: dict, target: Target,
                      keys: list[str]) -> dict[str, list[str]]:
        """The feature_columns of each table that names them (the target's table: with the keys and target)."""
        input_columns = {}
        for t, table_spec in tables.items():
            if "feature_columns" in table_spec:
                contract = parsed[t][0]
                chosen = self.names(table_spec["feature_columns"], f"[tables.{t}] feature_columns",
                                    contract.names, f"table '{t}'")
                if t == target.table:
                    chosen = list(dict.fromkeys(chosen + keys + [target.column]))
                input_columns[t] = chosen
        return input_columns

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
        problem = spec.get("problem", spec.get("task"))  # "task" is the key's older name
        if problem not in PROBLEMS:
            self.fail(f"[target] problem = {problem!r}: the problem kind, one of {list(PROBLEMS)}")
        threshold = spec.get("threshold")
        if threshold is not None and (problem != "binary" or not isinstance(threshold, (int, float))):
            self.fail(f"[target] threshold = {threshold!r}: a number, and only for problem = \"binary\"")
        name = spec.get("name", column if threshold is None else f"{column}_at_least_{threshold:g}")
        if name in contract.names and name != column:
            self.fail(f"[target] name '{name}' is already a column of table '{table}'; pick another")
        return Target(table=table, column=column, name=name, problem=problem,
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
            example = landing.format(date=dt.date(2000, 1, 2))
        except (KeyError, IndexError, ValueError) as exc:
            self.fail(f"{where} landing = {landing!r} cannot be formatted ({exc}); the only field is {{date}}")
        self.identifier(f"{where} landing = {landing!r}: ", identifiers.check_relative_path, "landing path", example)
        file_format = spec.get("format", "parquet" if landing.endswith(".parquet") else "csv")
        if file_format not in LANDING_FORMATS:
            self.fail(f"{where} format = {file_format!r}: choose one of {list(LANDING_FORMATS)}")
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
