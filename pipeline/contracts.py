"""Generic table schemas and data contracts: the types a landing file is parsed into and the
rules its rows and columns must follow. Dataset modules (pipeline/flights/) declare them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

KINDS = ("int", "float", "string")


@dataclass(frozen=True)
class Column:
    """One column of a table. Row-level rules (nullable, min, max, allowed, pattern,
    datetime_format) quarantine the rows that break them; max_null_fraction is a column-level rule
    that fails the day. `datetime_format` (strptime codes) makes a string column's values dates."""
    name: str
    kind: str
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: frozenset[str] | None = None
    pattern: str | None = None
    max_null_fraction: float | None = None
    datetime_format: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name!r}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.kind != "string" and (self.pattern is not None or self.datetime_format is not None):
            raise ValueError(f"column {self.name!r}: pattern and datetime_format apply to string columns only")


@dataclass(frozen=True)
class RowCheck:
    """A named row-level rule over several columns: `valid(df)` is True for rows that pass."""
    name: str
    valid: Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True)
class TableContract:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    checks: tuple[RowCheck, ...] = ()
    min_rows: int = 1
    max_bad_fraction: float = 0.05
    # Columns holding the row's calendar date (year, month, day); rows of another date are quarantined.
    date_columns: tuple[str, str, str] | None = None
    # Warn when a day has fewer rows than this fraction of the median of recent days.
    min_fraction_of_recent: float = 0.5
    # Or one string column with a datetime_format holding the row's date: rows whose parsed value's
    # calendar date (in its own time zone) is another are quarantined, under the same rule.
    timestamp_column: str | None = None

    def __post_init__(self) -> None:
        kinds = {c.name: c.kind for c in self.columns}
        if self.date_columns is not None and (
                len(self.date_columns) != 3 or any(kinds.get(name) != "int" for name in self.date_columns)):
            raise ValueError(f"table {self.name!r}: date_columns must name three int columns of the table "
                             f"(year, month, day), not {self.date_columns!r}; its int columns are "
                             f"{[n for n, k in kinds.items() if k == 'int']}")
        if self.timestamp_column is None:
            return
        if self.date_columns is not None:
            raise ValueError(f"table {self.name!r}: set date_columns or timestamp_column, not both")
        if self.timestamp_column not in kinds:
            raise ValueError(f"table {self.name!r}: timestamp_column {self.timestamp_column!r} is not one "
                             f"of its columns {self.names}")
        if self.column(self.timestamp_column).datetime_format is None:
            raise ValueError(f"table {self.name!r}: timestamp_column {self.timestamp_column!r} must name a "
                             f"string column with a datetime_format; it has kind "
                             f"{kinds[self.timestamp_column]!r} and no datetime_format")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


class ContractViolation(ValueError):
    """A break of a table's data contract that must fail the task (not just quarantine rows)."""
