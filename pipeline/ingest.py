"""Landing file (CSV or Parquet bytes) -> typed DataFrame by an explicit schema; values that do
not parse become null and are named in the `_parse_errors` column, for validation to quarantine."""
from __future__ import annotations

import csv
import io
import logging
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline.contracts import ContractViolation, TableContract
from pipeline.hashing import sha256_bytes
from pipeline.ingest_cells import (ARROW_TYPES, NUMBER_NULLS, PARSE_ERRORS, frame_of, missing_columns,
                                   raise_missing_columns, string_cells, string_series, text_column, to_number)
from pipeline.ingest_parquet import parse_landing_parquet

log = logging.getLogger(__name__)

LANDING_FORMATS = ("csv", "parquet")
# Arrow's types as the frame holds them (pandas keeps strings as large_string); float64 is numpy's
# (NaN for null).
_PANDAS_OF_ARROW = {pa.int64(): pd.Int64Dtype(), pa.large_string(): pd.StringDtype()}.get
_BOM = b"\xef\xbb\xbf"
_OTHER_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}


def landing_record(data: bytes, source: str) -> dict:
    """What identifies one delivery of a landing file: its path, size and sha256."""
    return {"source": source, "bytes": len(data), "sha256": sha256_bytes(data)}


def parse_landing(data: bytes, source: str, contract: TableContract,
                  file_format: str = "csv") -> pd.DataFrame:
    """Parse one landing file of `file_format` (one of LANDING_FORMATS) into the contract's
    columns and types: the same frame whichever the format."""
    if file_format == "csv":
        return parse_landing_file(data, source, contract)
    if file_format == "parquet":
        return parse_landing_parquet(data, source, contract)
    raise ValueError(f"landing file format must be one of {LANDING_FORMATS}, not {file_format!r}")


def parse_landing_file(data: bytes, source: str, contract: TableContract, *,
                       strict: bool = False) -> pd.DataFrame:
    """Parse one landing CSV into the contract's columns and types.

    Raises ContractViolation naming `source` and the rule when the file is empty, is not UTF-8,
    uses another delimiter than ',', lacks a required column or names one twice, or has a row
    with another number of fields than the header. Extra columns are dropped; column order, a
    UTF-8 byte-order mark and CRLF or CR line ends do not matter. Values are trimmed; an empty
    cell is null, and so is NUMBER_NULLS' "NA", "NaN", "null"... in a number column.

    What a cell means is defined by the strict rules (_strict_frame). pyarrow reads the file
    straight into the contract's types when it gives the same frame (_fast_frame), the usual
    case; `strict=True` skips that fast path."""
    body = data[len(_BOM):] if data.startswith(_BOM) else data
    if _NOT_BLANK.search(body) is None:
        raise ContractViolation(
            f"landing file {source} is empty ({len(data)} bytes, no header; rule: not_empty); expected "
            f"a CSV with columns {contract.names}; ask the upstream system to re-deliver it")
    first_line = _decoded_first_line(body, source)
    raw_header = _csv_fields(first_line)
    header = [name.strip() for name in raw_header]
    _check_header(header, first_line, source, contract)
    raw_of = dict(zip(header, raw_header))
    columns = [raw_of[c] for c in contract.names]
    if not body.endswith((b"\n", b"\r")):
        body += b"\n"  # a header-only file without a final newline is a file of 0 rows
    if not strict:
        frame, why_not = _fast_frame(body, columns, contract)
        if frame is not None:
            log.debug("landing file %s: %d rows read by the fast path", source, len(frame))
            return frame
        log.info("landing file %s: read by the strict rules: %s", source, why_not)
    return _strict_frame(body, raw_header, columns, source, contract)


def _strict_frame(body: bytes, raw_header: list[str], columns: list[str], source: str,
                  contract: TableContract) -> pd.DataFrame:
    """Every cell read as text, then typed by the rules of to_number: the definition of what a
    cell means, and the source of every error message about rows."""
    invalid: list = []

    def skip_and_record(row) -> str:
        invalid.append(row)
        return "skip"

    def read(use_threads: bool, **parse_options) -> pa.Table:
        return pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(use_threads=use_threads),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, **parse_options),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in raw_header},
                include_columns=columns,
                strings_can_be_null=False,
            ),
        )

    try:
        try:
            table = read(use_threads=True)  # any ragged row raises: then read again, row by row
        except pa.ArrowException:
            table = read(use_threads=False, invalid_row_handler=skip_and_record)  # rows numbered
    except pa.ArrowException as exc:
        raise ContractViolation(
            f"landing file {source} cannot be parsed as UTF-8 CSV (rule: parseable): {exc}; ask the "
            "upstream system to re-deliver it") from exc
    if invalid:
        raise ContractViolation(_ragged_rows_message(invalid, table.num_rows, source))
    return _typed_frame(table.rename_columns(contract.names), contract)


def _fast_frame(body: bytes, columns: list[str], contract: TableContract) -> tuple[pd.DataFrame | None, str]:
    """The frame of _strict_frame, read by pyarrow straight into the contract's types on all
    cores; or None and the reason when the file holds anything the two could read differently.

    The files are tokenized alike (same parse options; the body is already known to be UTF-8).
    In a number column pyarrow takes "" and NUMBER_NULLS, matched untrimmed, as null, and reads
    optional ' '/'\t' padding, a '-' (and in floats a '+') sign, ASCII digits and, in floats, the
    decimal and exponent forms with the same correctly rounded parser: all of it read alike by
    the strict rules. Where pyarrow accepts more, this falls back:
    - a field starting with 0x/0X (pyarrow's int64 reader takes it as hexadecimal);
    - a NaN or an infinity in a float column (pyarrow reads "NAN", "+nan" or "nan(1)" as NaN where
      the strict rules flag them; infinities are read alike, but are rare enough to leave to them).
    Anything pyarrow rejects raises and falls back too: a ragged row, a cell that is no number,
    "+5", " NA", "12.0" or 2**63 in an int column, non-ASCII padding..."""
    if any(c.kind == "int" for c in contract.columns) and _may_start_a_field_with_0x(body):
        return None, "a field may start with 0x (read as hexadecimal by pyarrow)"
    try:
        table = pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(use_threads=True),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={raw: pa.large_string() if c.kind == "string" else ARROW_TYPES[c.kind]
                              for raw, c in zip(columns, contract.columns)},
                include_columns=columns,
                null_values=["", *sorted(NUMBER_NULLS)],
                strings_can_be_null=False,
                quoted_strings_can_be_null=True,
                check_utf8=False,
            ),
        ).rename_columns(contract.names)
    except pa.ArrowException as exc:
        return None, f"pyarrow: {str(exc)[:200]}"
    for col in contract.columns:
        if col.kind == "float" and pc.all(pc.is_finite(table[col.name]), skip_nulls=True).as_py() is False:
            return None, f"a NaN or infinity in column '{col.name}'"
    typed = [text_column(table[c.name]) if c.kind == "string" else table[c.name] for c in contract.columns]
    del table  # the untrimmed strings
    # each column's arrow memory is released once converted
    frame = pa.table(typed, names=contract.names).to_pandas(
        types_mapper=_PANDAS_OF_ARROW, split_blocks=True, self_destruct=True)
    frame[PARSE_ERRORS] = string_series(pa.nulls(len(frame), pa.large_string()))
    return frame, ""


# Bytes that may precede a field's first character: a delimiter, a line end, a quote, padding.
_BEFORE_A_FIELD = np.frombuffer(b',\r\n" \t', dtype=np.uint8)
_SCAN_BYTES = 1 << 24


def _may_start_a_field_with_0x(body: bytes) -> bool:
    """Whether some field of `body` may start with "0x" or "0X" (past padding and quotes)."""
    view = np.frombuffer(body, dtype=np.uint8)
    for x in b"xX":
        if bytes([x]) not in body:
            continue
        for start in range(0, len(view), _SCAN_BYTES):  # in blocks: no temporary of the file's size
            at = np.flatnonzero(view[start:start + _SCAN_BYTES] == x) + start
            at = at[at >= 1]
            zero = at[view[at - 1] == ord("0")] - 1
            if zero.size and (zero[0] == 0 or np.isin(view[zero[zero >= 1] - 1], _BEFORE_A_FIELD).any()):
                return True
    return False


_LINE_END = re.compile(rb"\r\n|\r|\n")
_NOT_BLANK = re.compile(rb"\S")  # bytes.strip()'s whitespace is \s of a bytes pattern


def _decoded_first_line(body: bytes, source: str) -> str:
    """The header line as text, once the whole body is known to be UTF-8."""
    end = _LINE_END.search(body)
    first_line = body[:end.start()] if end else body
    if body.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in first_line:
        raise ContractViolation(
            f"landing file {source} is not UTF-8 encoded (rule: encoding): it starts with a UTF-16 "
            "byte-order mark or has NUL bytes in its header (UTF-16 text, or not a text file at all); "
            "ask the upstream system to re-deliver it as UTF-8 CSV")
    if body.isascii():
        return first_line.decode("ascii")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        ends = list(_LINE_END.finditer(body, 0, exc.start))
        line_no = len(ends) + 1
        line_start = ends[-1].end() if ends else 0
        header = _csv_fields(first_line.decode("utf-8", "replace"))
        field = len(_csv_fields(body[line_start:exc.start].decode("utf-8", "replace")) or [""]) - 1
        byte = f"byte 0x{body[exc.start]:02x}"
        if line_no == 1:
            raise ContractViolation(
                f"landing file {source} is not UTF-8 encoded (rule: encoding): {byte} in the header "
                "(line 1) is not UTF-8 (latin-1 or cp1252 text?); ask the upstream system to re-deliver "
                "it as UTF-8") from exc
        where = f"line {line_no}" + (f", column '{header[field].strip()}'" if 0 <= field < len(header) else "")
        raise ContractViolation(
            f"landing file {source} cannot be parsed as UTF-8 CSV (rule: parseable): {byte} in {where} "
            "is not UTF-8 (latin-1 or cp1252 text?); ask the upstream system to re-deliver it as "
            "UTF-8") from exc
    return first_line.decode("utf-8")


def _csv_fields(line: str, delimiter: str = ",") -> list[str]:
    """The fields of one line of CSV text (no line break in it)."""
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return line.split(delimiter)


def _check_header(header: list[str], first_line: str, source: str, contract: TableContract) -> None:
    missing = missing_columns(header, source, contract)
    if not missing:
        return
    for delimiter, name in _OTHER_DELIMITERS.items():
        split = [f.strip() for f in _csv_fields(first_line, delimiter)]
        if len(split) > 1 and all(c in split for c in contract.names):
            raise ContractViolation(
                f"landing file {source} uses {name} as its delimiter where ',' is expected (rule: "
                f"delimiter): its header splits into the columns of table '{contract.name}' only at "
                f"{name}; ask the upstream system to re-deliver it comma-separated")
    raise_missing_columns(missing, header, source, contract)


def _ragged_rows_message(invalid: list, rows_read: int, source: str) -> str:
    first = invalid[0]
    last_row = rows_read + len(invalid) + 1  # rows are numbered with the header as row 1
    if first.text.count('"') % 2:
        what = "a double quote is opened and never closed"
    elif len(invalid) == 1 and first.number == last_row and first.actual_columns < first.expected_columns:
        what = "the last row is cut short: the file looks truncated"
    else:
        what = f"{len(invalid)} row(s) do not have the header's {first.expected_columns} fields"
    return (f"landing file {source} cannot be parsed as CSV (rule: parseable): {what}; row {first.number} "
            f"(counting the header as row 1): Expected {first.expected_columns} columns, got "
            f"{first.actual_columns}: {first.text[:120]!r}; ask the upstream system to re-deliver it")


def _typed_frame(table: pa.Table, contract: TableContract) -> pd.DataFrame:
    return frame_of({col.name: string_cells(table.column(col.name)) if col.kind == "string"
                     else to_number(table.column(col.name), col.kind)
                     for col in contract.columns}, table.num_rows)
