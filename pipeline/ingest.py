"""Landing file (CSV bytes) -> typed DataFrame by an explicit schema. Values that do not parse
become null and are named in the `_parse_errors` column, so validation can quarantine them
while the raw zone keeps every delivered row."""
from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline.contracts import ContractViolation, TableContract

PARSE_ERRORS = "_parse_errors"
_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}
_PANDAS_TYPES = {"int": "Int64", "float": "float64", "string": "string"}


def parse_landing_file(data: bytes, source: str, contract: TableContract) -> pd.DataFrame:
    """Parse one landing CSV into the contract's columns and types.

    Raises ContractViolation naming `source` when the file is empty, is not UTF-8 CSV, or lacks
    a required column. Extra columns are dropped; column order does not matter."""
    if not data.strip():
        raise ContractViolation(
            f"landing file {source} is empty (0 rows, no header); expected a CSV with columns "
            f"{contract.names}; ask the upstream system to re-deliver it")
    raw_header = _read_header(data, source)
    header = [name.strip() for name in raw_header]
    raw_of = dict(zip(header, raw_header))
    missing = [c for c in contract.names if c not in header]
    if missing:
        raise ContractViolation(
            f"landing file {source} is missing required column(s) {missing} of table "
            f"'{contract.name}' (rule: required_columns); found columns {header}")
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in raw_header},
                include_columns=[raw_of[c] for c in contract.names],
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise ContractViolation(
            f"landing file {source} cannot be parsed as UTF-8 CSV (rule: parseable): {exc}") from exc
    return _typed_frame(table.rename_columns(contract.names), contract)


def _read_header(data: bytes, source: str) -> list[str]:
    first = data.split(b"\n", 1)[0]
    try:
        line = first.decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise ContractViolation(
            f"landing file {source} is not UTF-8 encoded (rule: encoding): {exc}") from exc
    return next(csv.reader([line]))


def _typed_frame(table: pa.Table, contract: TableContract) -> pd.DataFrame:
    columns: dict[str, pd.Series] = {}
    errors = np.full(table.num_rows, "", dtype=object)
    for col in contract.columns:
        raw = table.column(col.name)
        if col.kind == "string":
            stripped = pc.utf8_trim_whitespace(raw)
            values = pc.if_else(pc.equal(stripped, ""), pa.scalar(None, pa.string()), stripped)
            columns[col.name] = pd.Series(values.to_pandas(), dtype="string")
            continue
        typed, bad = _to_number(raw, col.kind)
        columns[col.name] = typed
        if bad.any():
            errors[bad] = errors[bad] + col.name + ";"
    df = pd.DataFrame(columns)
    df[PARSE_ERRORS] = pd.Series(
        np.where(errors == "", None, errors), dtype="string").str.rstrip(";")
    return df


def _to_number(raw: pa.ChunkedArray, kind: str) -> tuple[pd.Series, np.ndarray]:
    """Cast strings to numbers; unparseable values become null and are flagged in `bad`."""
    text = pc.utf8_trim_whitespace(raw)
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    try:
        cast = pc.cast(text, pa.float64() if kind == "float" else pa.int64())
        series = cast.to_pandas()
        bad = np.zeros(len(series), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        strings = pd.Series(text.to_pandas(), dtype="object")
        numbers = pd.to_numeric(strings, errors="coerce").astype("float64")
        bad = (strings.notna() & numbers.isna()).to_numpy().copy()
        if kind == "int":
            not_int = numbers.notna() & ((numbers % 1 != 0) | (numbers.abs() >= 2.0**63))
            bad |= not_int.to_numpy()
            numbers = numbers.where(~not_int)
        series = numbers
    return pd.Series(series, dtype=_PANDAS_TYPES[kind]).reset_index(drop=True), bad
