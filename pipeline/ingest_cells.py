"""The cell rules every landing reader shares: text to the contract's numbers and strings (what
a number may look like, what is null), and the typed frame with its `_parse_errors` column."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.contracts import ContractViolation, TableContract

PARSE_ERRORS = "_parse_errors"
ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}
# The numbers a landing file may hold, ASCII digits only: "12", "-3", "+4", "007" for ints (and a
# decimal or exponent form of a whole number, "12.0" or "1.2e1"); "1.5", ".5", "1.", "1e-3" for
# floats, and inf/infinity (the range rules catch those). Hex, "1_000", "1,000" do not parse.
_INT_TEXT = r"[+-]?[0-9]+"
_DECIMAL_TEXT = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
# The forms arrow's cast reads as _int_cell and _float_cell do (it takes no '+' in an int, and 18
# digits always fit int64).
_CAST_TEXT = {"int": r"-?[0-9]{1,18}", "float": _DECIMAL_TEXT}
_INT_RE = re.compile(_INT_TEXT)
_DECIMAL_RE = re.compile(_DECIMAL_TEXT)
_INFINITY_RE = re.compile(r"[+-]?(?:inf|infinity)", re.IGNORECASE)
INT64_RANGE = (-(2**63), 2**63 - 1)
# What a number column holds for "no value" besides an empty cell (what R, pandas and Excel write).
# A string column's value is the text delivered: only an empty cell is null there ("NA" is a
# carrier code, not a missing one).
NUMBER_NULLS = frozenset({"NA", "N/A", "n/a", "NULL", "null", "NaN", "nan", "-NaN", "-nan", "#N/A",
                          "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "1.#IND", "1.#QNAN"})


def missing_columns(found: list[str], source: str, contract: TableContract) -> list[str]:
    """The contract's columns missing from `found`; raises when `found` names one twice."""
    twice = sorted({c for c in contract.names if found.count(c) > 1})
    if twice:
        raise ContractViolation(
            f"landing file {source} names column(s) {twice} of table '{contract.name}' more than once "
            f"(rule: unique_columns); found columns {found}; ask the upstream system to re-deliver it")
    return [c for c in contract.names if c not in found]


def raise_missing_columns(missing: list[str], found: list[str], source: str, contract: TableContract) -> None:
    unexpected = [c for c in found if c not in contract.names]
    hint = (f"; unexpected column(s) {unexpected[:10]}: renamed upstream?" if unexpected else "")
    raise ContractViolation(
        f"landing file {source} is missing required column(s) {missing} of table '{contract.name}' "
        f"(rule: required_columns); found columns {found[:40]}{hint}")


def frame_of(columns: dict[str, tuple[pd.Series, np.ndarray | None]], n: int) -> pd.DataFrame:
    """The frame of typed columns, and their rows that did not parse (None: none) named in PARSE_ERRORS."""
    errors = np.full(n, "", dtype=object)
    for name, (_, bad) in columns.items():
        if bad is not None and bad.any():
            errors[bad] = errors[bad] + name + ";"
    df = pd.DataFrame({name: typed for name, (typed, _) in columns.items()})
    df[PARSE_ERRORS] = pd.Series(
        np.where(errors == "", None, errors), dtype="string").str.rstrip(";")
    return df


def text_column(raw: pa.ChunkedArray) -> pa.ChunkedArray:
    """A string column's values: trimmed, an empty cell null."""
    stripped = pc.utf8_trim_whitespace(raw)
    return pc.if_else(pc.equal(stripped, ""), pa.scalar(None, raw.type), stripped)


def string_cells(raw: pa.ChunkedArray) -> tuple[pd.Series, None]:
    """A string column's values as the frame holds them (no value of text fails to parse)."""
    return string_series(text_column(raw)), None


def string_series(values: pa.Array | pa.ChunkedArray) -> pd.Series:
    """Arrow strings as a pandas "string" Series, without a round trip through Python objects."""
    return pd.Series(pd.StringDtype().__from_arrow__(values))


def to_number(raw: pa.ChunkedArray, kind: str) -> tuple[pd.Series, np.ndarray]:
    """Cast strings to numbers; values that are not numbers of `kind` (see _INT_TEXT) become null
    and are flagged in `bad`. A cell's value never depends on the other cells of its column: the
    cells of the plain forms that arrow's cast reads exactly (_CAST_TEXT) are cast at once, any
    others parsed one by one."""
    text = pc.utf8_trim_whitespace(raw)
    is_null = pc.or_(pc.equal(text, ""), pc.is_in(text, pa.array(sorted(NUMBER_NULLS))))
    text = pc.if_else(is_null, pa.scalar(None, pa.string()), text)
    plain = pc.fill_null(pc.match_substring_regex(text, f"^(?:{_CAST_TEXT[kind]})$"), False)
    arrow_type = ARROW_TYPES[kind]
    try:
        cast = pc.cast(pc.if_else(plain, text, pa.scalar(None, pa.string())), arrow_type)
        rest = pc.and_not(pc.is_valid(text), plain)
    except pa.ArrowException:  # not expected; then every cell is parsed one by one
        cast, rest = pa.nulls(len(text), arrow_type), pc.is_valid(text)
    # numpy values and a null mask: through float64 (what nulls would force) ints above 2**53 lose digits
    values = np.array(pc.fill_null(cast, 0).to_numpy(), dtype=arrow_type.to_pandas_dtype())
    null = np.array(pc.is_null(cast).to_numpy(), dtype=bool)
    bad = np.zeros(len(text), dtype=bool)
    slow = np.flatnonzero(np.asarray(rest.to_numpy(), dtype=bool))
    if slow.size:
        parse = _int_cell if kind == "int" else _float_cell
        cells = [parse(s) for s in text.take(pa.array(slow)).to_pylist()]
        bad[slow] = [v is _BAD for v in cells]
        parsed = slow[~bad[slow]]
        values[parsed] = [v for v in cells if v is not _BAD]
        null[parsed] = False
    if kind == "int":
        return pd.Series(pd.arrays.IntegerArray(values, null)), bad
    values[null] = np.nan
    return pd.Series(values), bad


_BAD = object()


def _int_cell(s: str):
    if _INT_RE.fullmatch(s):
        value = int(s)
    elif _DECIMAL_RE.fullmatch(s):
        try:
            d = Decimal(s)
        except InvalidOperation:
            return _BAD
        if d == 0:
            return 0
        if d.adjusted() > 18 or d != d.to_integral_value():
            return _BAD
        value = int(d)
    else:
        return _BAD
    return value if INT64_RANGE[0] <= value <= INT64_RANGE[1] else _BAD


def _float_cell(s: str):
    if _DECIMAL_RE.fullmatch(s) or _INFINITY_RE.fullmatch(s):
        return float(s)
    return _BAD
