"""A dataset as the stages see it (tables, contracts, target, features: pipeline.description loads
it) and what it does for each day: the feature frame, checked on every day, the labels, the history."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipeline.contracts import TableContract
from pipeline.hooks import DatasetError, resolve
from pipeline.readiness import ReadinessRule
from pipeline.waiting import Freshness

DAY_COLUMN = "date"  # added to every feature row and history row: the day's ISO date
_EMPTY_DTYPES = {"int": "Int64", "float": "float64", "string": "string"}  # pipeline.ingest's types


@dataclass(frozen=True)
class Target:
    table: str       # the table whose rows are predicted: one feature row per row of it
    column: str      # the column the target is read from (an outcome: never a feature)
    name: str        # the target's column in the feature partitions
    problem: str     # the ML problem kind: "binary" or "regression" (pipeline.metrics.PROBLEMS)
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
    readiness: dict[str, ReadinessRule] = field(default_factory=dict)
    freshness: dict[str, Freshness] = field(default_factory=dict)  # tables with [tables.<name>] expected_by

    @property
    def problem(self) -> str:
        return self.target.problem

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

    def readiness_rule(self, table: str) -> ReadinessRule:
        """When `table`'s landing file counts as delivered ([tables.<table>] ready)."""
        return self.readiness.get(table) or ReadinessRule(table=table)

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
        if t.problem == "regression":
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

    def stored_history(self, table: str, clean: pd.DataFrame, date: dt.date | None) -> pd.DataFrame | None:
        """What is stored beside a clean day of `table` for later days' features: the day's history
        summary (history_rows) when `table` is the target's and the description summarizes days;
        None otherwise (later days then read the clean rows themselves)."""
        if date is None or table != self.target.table or not self.history_summary:
            return None
        return self.history_rows(clean, date)

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
