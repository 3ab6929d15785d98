"""The Parquet landing reader: one landing Parquet file into the frame the CSV reader
(pipeline.ingest) gives, each column's Parquet type mapped onto its contract kind."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.contracts import Column, ContractViolation, TableContract
from pipeline.ingest_cells import (ARROW_TYPES, INT64_RANGE, frame_of, missing_columns, raise_missing_columns,
                                   string_cells, string_series, to_number)


def parse_landing_parquet(data: bytes, source: str, contract: TableContract) -> pd.DataFrame:
    """Parse one landing Parquet file into the frame parse_landing_file gives for a CSV.

    Raises ContractViolation naming `source` and the rule when the file is no readable Parquet,
    lacks a required column or names one twice, or holds a column of a Parquet type that the
    contract's kind cannot take (see _parquet_column). Extra columns are dropped."""
    try:
        file = pq.ParquetFile(pa.BufferReader(data))
        missing = missing_columns(file.schema_arrow.names, source, contract)
        if missing:
            raise_missing_columns(missing, file.schema_arrow.names, source, contract)
        table = file.read(columns=contract.names, use_threads=True)
    except (pa.ArrowException, OSError) as exc:
        reason = " ".join("".join(c if c.isprintable() else " " for c in str(exc)).split())  # one line
        raise ContractViolation(
            f"landing file {source} cannot be read as Parquet (rule: parseable): {reason}; ask the "
            "upstream system to re-deliver it") from exc
    return frame_of({col.name: _parquet_column(table.column(col.name), col, source, contract)
                     for col in contract.columns}, table.num_rows)


def _parquet_column(raw: pa.ChunkedArray, col: Column, source: str,
                    contract: TableContract) -> tuple[pd.Series, np.ndarray | None]:
    """A Parquet column typed as `col.kind`, and its rows that do not parse (None: none).

    Nulls stay null. int takes integers (a uint64 above int64's range does not parse), booleans
    as 0/1 and floats of whole values (NaN is null; a fraction or an infinity does not parse);
    float takes integers and floats; string takes text (trimmed, empty is null), numbers and
    booleans as arrow writes them ("1.5", "true") and timestamps and dates formatted by the
    column's datetime_format (else ISO 8601). Decimals and text in a number column are read by the
    rules of a CSV cell. Any other type (binary, lists, structs...) raises: the upstream schema
    is wrong."""
    if pa.types.is_dictionary(raw.type):
        raw = raw.cast(raw.type.value_type)
    t = raw.type
    if pa.types.is_null(t):
        return _arrow_series(pa.nulls(len(raw), ARROW_TYPES[col.kind]), col.kind), None
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_decimal(t):
        text = raw.cast(pa.string())
        return string_cells(text) if col.kind == "string" else to_number(text, col.kind)
    if col.kind == "string" and (pa.types.is_timestamp(t) or pa.types.is_date(t)):
        return string_cells(_formatted(raw, col.datetime_format))
    is_number = pa.types.is_integer(t) or pa.types.is_floating(t)
    if col.kind == "string" and (is_number or pa.types.is_boolean(t)):
        return string_cells(raw.cast(pa.string()))
    if col.kind == "float" and is_number:
        return _arrow_series(raw.cast(pa.float64()), "float"), None
    if col.kind == "int" and pa.types.is_floating(t):
        return _whole_numbers(raw)
    if col.kind == "int" and pa.types.is_uint64(t):
        too_big = pc.fill_null(pc.greater(raw, pa.scalar(INT64_RANGE[1], t)), False)
        return (_arrow_series(pc.if_else(too_big, pa.scalar(None, t), raw).cast(pa.int64()), "int"),
                np.asarray(too_big.to_numpy(), dtype=bool))
    if col.kind == "int" and (pa.types.is_integer(t) or pa.types.is_boolean(t)):
        return _arrow_series(raw.cast(pa.int64()), "int"), None
    raise ContractViolation(
        f"landing file {source}: column '{col.name}' of table '{contract.name}' has Parquet type {t}, "
        f"which a column of kind '{col.kind}' cannot take (rule: column_type); ask the upstream system "
        "to re-deliver it with the column's type fixed")


def _arrow_series(values: pa.ChunkedArray | pa.Array, kind: str) -> pd.Series:
    """Arrow int64, float64 or string values as the frame holds them (Int64, float64 with NaN, string)."""
    if kind == "int":
        return pd.Series(pd.Int64Dtype().__from_arrow__(values))
    if kind == "float":
        return pd.Series(np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64))
    return string_series(values)


def _whole_numbers(raw: pa.ChunkedArray) -> tuple[pd.Series, np.ndarray]:
    """Floats as int64 where they are whole numbers in int64's range; others do not parse (NaN is null)."""
    values = np.asarray(raw.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    null = np.isnan(values)
    with np.errstate(invalid="ignore"):
        whole = (values == np.floor(values)) & (values >= INT64_RANGE[0]) & (values < 2.0**63)
    return pd.Series(pd.arrays.IntegerArray(np.where(whole, values, 0).astype(np.int64), ~whole)), ~null & ~whole


def _formatted(raw: pa.ChunkedArray, datetime_format: str | None) -> pa.Array:
    """Timestamps or dates as text by Python's strftime (ISO 8601 without a format), each distinct
    value formatted once. (arrow's own strftime writes fractions of a second for %S.)"""
    distinct = raw.unique()
    text = [None if v is None else v.strftime(datetime_format) if datetime_format else v.isoformat()
            for v in distinct.to_pylist()]
    return pa.array(text, pa.string()).take(pc.index_in(raw, distinct))
