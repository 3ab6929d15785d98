"""Apply a table's data contract to one parsed partition: rows that break a row-level rule go to
quarantine (with the rules they broke), and contract breaks raise ContractViolation."""
from __future__ import annotations

import datetime as dt
import re
import statistics
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from pipeline.contracts import Column, ContractViolation, TableContract
from pipeline.ingest import PARSE_ERRORS

RULES = "_rules"


@dataclass
class ValidationResult:
    clean: pd.DataFrame
    quarantine: pd.DataFrame
    report: dict


def validate_table(df: pd.DataFrame, contract: TableContract, source: str,
                   date: dt.date | None = None,
                   recent_row_counts: list[int] | None = None) -> ValidationResult:
    """Split `df` into clean and quarantined rows by `contract`; `source` names the file in errors.

    Raises ContractViolation when a column is missing, the drop is empty, a column's null rate is
    above its limit, or more than `max_bad_fraction` of the rows broke a rule."""
    _check_shape(df, contract, source)
    n = len(df)
    nulls = {c.name: np.asarray(df[c.name].isna(), dtype=bool) for c in contract.columns}
    failures = _row_failures(df, contract, date, nulls)
    counts = {rule: int(mask.sum()) for rule, mask in failures.items()}
    bad = np.zeros(n, dtype=bool)
    for mask in failures.values():
        bad |= mask

    null_rates = _check_null_rates(nulls, contract, source, n)
    n_bad = int(bad.sum())
    if n and n_bad / n > contract.max_bad_fraction:
        worst = ", ".join(f"{rule}: {k}" for rule, k in sorted(counts.items(), key=lambda kv: -kv[1])[:5])
        raise ContractViolation(
            f"{source}: {n_bad} of {n} rows ({n_bad / n:.1%}) of table '{contract.name}' break the "
            f"contract, above the limit of {contract.max_bad_fraction:.1%} (rule: max_bad_fraction); "
            f"rows per rule: {worst}; nothing of the day is used: fix the file or ask the upstream "
            "system to re-deliver it, then rerun")

    warnings = _row_count_warnings(n, contract, recent_row_counts)
    clean = (df.take(np.flatnonzero(~bad)) if n_bad else df).drop(columns=[PARSE_ERRORS], errors="ignore")
    clean = clean.reset_index(drop=True)
    quarantine = df.take(np.flatnonzero(bad))
    quarantine[RULES] = pd.Series(_labels(failures, bad), index=quarantine.index, dtype="string")
    report = {
        "table": contract.name,
        "source": source,
        "date": date.isoformat() if date else None,
        "rows_in": n,
        "rows_clean": int(n - n_bad),
        "rows_quarantined": n_bad,
        "quarantined_by_rule": counts,
        "null_rates": null_rates,
        "warnings": warnings,
    }
    return ValidationResult(clean, quarantine.reset_index(drop=True), report)


def _check_shape(df: pd.DataFrame, contract: TableContract, source: str) -> None:
    """Every required column is there, and at least the contract's minimum of rows."""
    missing = [c for c in contract.names if c not in df.columns]
    if missing:
        raise ContractViolation(
            f"{source}: missing required column(s) {missing} of table '{contract.name}' "
            "(rule: required_columns); ask the upstream system to re-deliver the file with them")
    if len(df) < contract.min_rows:
        raise ContractViolation(
            f"{source}: table '{contract.name}' has {len(df)} rows, the contract requires at least "
            f"{contract.min_rows} (rule: min_rows); an empty drop where data is expected usually "
            "means the upstream export failed: ask for a re-delivery")


def _check_null_rates(nulls: dict[str, np.ndarray], contract: TableContract, source: str, n: int) -> dict:
    """Each column's null rate, after checking it against the column's max_null_fraction."""
    null_counts = {name: int(np.count_nonzero(mask)) for name, mask in nulls.items()}
    null_rates = {name: k / n if n else 0.0 for name, k in null_counts.items()}
    for col in contract.columns:
        if col.max_null_fraction is not None and null_rates[col.name] > col.max_null_fraction:
            raise ContractViolation(
                f"{source}: column '{col.name}' is null in {null_counts[col.name]} of {n} "
                f"rows ({null_rates[col.name]:.1%}), above the contract's limit of "
                f"{col.max_null_fraction:.1%} (rule: max_null_fraction); check the upstream export "
                "of that column and ask for a re-delivery")
    return null_rates


def _labels(failures: dict[str, np.ndarray], bad: np.ndarray) -> list[str]:
    """The rules each bad row broke, joined by ';' in the order of `failures`."""
    rules: list[list[str]] = [[] for _ in range(int(bad.sum()))]
    for rule, mask in failures.items():
        for i in np.flatnonzero(mask[bad]):
            rules[i].append(rule)
    return [";".join(r) for r in rules]


def _row_failures(df: pd.DataFrame, contract: TableContract, date: dt.date | None,
                  nulls: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The rows each rule fails, for the rules that some row fails (in the order of the labels)."""
    out: dict[str, np.ndarray] = {}
    factorized: dict[str, tuple[np.ndarray, object]] = {}
    parsed: dict[str, pd.Series] = {}

    def fail(rule: str, mask) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():  # a day has ~40 rules and few failing rows: keep no mask of all-False
            out[rule] = mask

    def factorize(name: str) -> tuple[np.ndarray, object]:
        """Codes (-1 for null) of a column's values, and its distinct values; once per column."""
        if name not in factorized:
            factorized[name] = pd.factorize(df[name].array)
        return factorized[name]

    def datetimes(col: Column) -> tuple[np.ndarray, pd.Series]:
        """Codes of a column's values, and its distinct values parsed by its datetime_format; parsed
        once per column (a day of flights has ~24 distinct values of time_hour)."""
        codes, uniques = factorize(col.name)
        if col.name not in parsed:
            parsed[col.name] = _datetimes(pd.Series(uniques), col.datetime_format)
        return codes, parsed[col.name]

    if PARSE_ERRORS in df.columns and df[PARSE_ERRORS].notna().any():
        errs = df[PARSE_ERRORS].fillna("")
        for col in contract.columns:
            fail(f"parseable:{col.name}", errs.str.contains(rf"(?:^|;){re.escape(col.name)}(?:;|$)", regex=True))
    for col in contract.columns:
        s = df[col.name]
        if not col.nullable:
            fail(f"not_null:{col.name}", nulls[col.name])
        if col.min is not None:
            fail(f"min:{col.name}", (s < col.min).fillna(False))
        if col.max is not None:
            fail(f"max:{col.name}", (s > col.max).fillna(False))
        if col.allowed is not None:
            fail(f"allowed:{col.name}", _failing_values(s, lambda v: v.isin(sorted(col.allowed)), factorize))
        if col.pattern is not None:
            regex = re.compile(col.pattern)
            fail(f"pattern:{col.name}", _failing_values(
                s, lambda v: v.astype("string").str.fullmatch(regex.pattern).fillna(False), factorize))
        if col.datetime_format is not None:
            codes, when = datetimes(col)
            fail(f"datetime:{col.name}", _failing_codes(codes, when.notna()))
    for check in contract.checks:
        fail(check.name, ~check.valid(df).fillna(False).astype(bool))
    if contract.date_columns and date is not None:
        y, m, d = contract.date_columns
        fail("partition_date", ~((df[y] == date.year) & (df[m] == date.month) & (df[d] == date.day)).fillna(False))
    if contract.timestamp_column and date is not None:
        codes, when = datetimes(contract.column(contract.timestamp_column))
        fail("partition_date", _failing_codes(codes, _on_date(when, date)))  # unparsed: datetime:<col>
    if contract.key:
        fail(f"duplicate_key:{','.join(contract.key)}", _duplicated_keys(len(df), contract.key, factorize))
    return out


def _failing_values(s: pd.Series, valid: Callable[[pd.Series], pd.Series],
                    factorize: Callable[[str], tuple[np.ndarray, object]]) -> np.ndarray:
    """Rows whose value is not null and not `valid`. A string column holds few distinct values
    (a day of flights has ~24 of time_hour), so `valid` sees each of them once."""
    if not isinstance(s.dtype, pd.StringDtype):
        return np.asarray(s.notna() & ~valid(s), dtype=bool)
    codes, uniques = factorize(s.name)
    return _failing_codes(codes, valid(pd.Series(uniques)))


def _failing_codes(codes: np.ndarray, valid: pd.Series | np.ndarray) -> np.ndarray:
    """Rows whose code (from pd.factorize) is of a value that is not `valid`; code -1 (null) is no failure."""
    return ~np.append(np.asarray(valid, dtype=bool), True)[codes]


def _datetimes(values: pd.Series, datetime_format: str) -> pd.Series:
    """`values` parsed by pandas with `datetime_format`, NaT where they do not parse. Values with
    different UTC offsets (%z) are parsed one by one, each keeping its own offset."""
    text = values.astype("object")
    try:
        return pd.to_datetime(text, format=datetime_format, errors="coerce")
    except ValueError:  # "Mixed timezones detected": pandas parses them only into UTC
        return pd.Series([pd.to_datetime(v, format=datetime_format, errors="coerce") for v in text],
                         index=values.index, dtype=object)


def _on_date(when: pd.Series, date: dt.date) -> np.ndarray:
    """Whether each parsed value's calendar date, in its own time zone, is `date`; NaT counts as on it."""
    if when.dtype == object:  # values of several UTC offsets (see _datetimes)
        return np.array([pd.isna(t) or t.date() == date for t in when], dtype=bool)
    same = (when.dt.year == date.year) & (when.dt.month == date.month) & (when.dt.day == date.day)
    return np.asarray(when.isna() | same, dtype=bool)


def _duplicated_keys(n: int, key: tuple[str, ...],
                     factorize: Callable[[str], tuple[np.ndarray, object]]) -> np.ndarray:
    """Rows whose key equals an earlier row's (what DataFrame.duplicated finds). A row with a
    null key part is no duplicate of anything (not_null rules catch the null), nor the original
    of one."""
    ids = np.zeros(n, dtype=np.int64)
    has_null = np.zeros(n, dtype=bool)
    size = 1
    for name in key:
        codes, uniques = factorize(name)
        has_null |= codes < 0
        if size * (len(uniques) + 1) >= 2**62:  # compress the ids before they could overflow
            ids, first = pd.factorize(ids)
            size = len(first)
        ids = ids * (len(uniques) + 1) + codes + 1
        size *= len(uniques) + 1
    duplicated = np.zeros(n, dtype=bool)
    duplicated[~has_null] = pd.Series(ids[~has_null]).duplicated(keep="first").to_numpy()
    return duplicated


def _row_count_warnings(n: int, contract: TableContract, recent: list[int] | None) -> list[str]:
    if not recent:
        return []
    median = statistics.median(recent)
    if median and n < contract.min_fraction_of_recent * median:
        return [f"row count {n} is below {contract.min_fraction_of_recent:.0%} of the median of the "
                f"previous {len(recent)} days ({median:g}) (rule: row_count_vs_recent)"]
    return []
