"""Landing file (CSV or Parquet bytes) -> typed DataFrame by an explicit schema. Values that do
not parse become null and are named in the `_parse_errors` column, so validation can quarantine
them while the raw zone keeps every delivered row."""
from __future__ import annotations

import csv
import io
import logging
import re
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.contracts import Column, ContractViolation, TableContract
from pipeline.storage import sha256_bytes

log = logging.getLogger(__name__)

PARSE_ERRORS = "_parse_errors"
LANDING_FORMATS = ("csv", "parquet")
_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}
# Arrow's types as the frame holds them (pandas keeps strings as large_string); float64 is numpy's
# (NaN for null).
_PANDAS_OF_ARROW = {pa.int64(): pd.Int64Dtype(), pa.large_string(): pd.StringDtype()}.get
_BOM = b"\xef\xbb\xbf"
_OTHER_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}
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
_INT64 = (-(2**63), 2**63 - 1)
# What a number column holds for "no value" besides an empty cell (what R, pandas and Excel write).
# A string column's value is the text delivered: only an empty cell is null there ("NA" is a
# carrier code, not a missing one).
NUMBER_NULLS = frozenset({"NA", "N/A", "n/a", "NULL", "null", "NaN", "nan", "-NaN", "-nan", "#N/A",
                          "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "1.#IND", "1.#QNAN"})


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
    """Every cell read as text, then typed by the rules of _to_number: the definition of what a
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
                column_types={raw: pa.large_string() if c.kind == "string" else _ARROW_TYPES[c.kind]
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
    typed = [_text_column(table[c.name]) if c.kind == "string" else table[c.name] for c in contract.columns]
    del table  # the untrimmed strings
    # each column's arrow memory is released once converted
    frame = pa.table(typed, names=contract.names).to_pandas(
        types_mapper=_PANDAS_OF_ARROW, split_blocks=True, self_destruct=True)
    frame[PARSE_ERRORS] = _string_series(pa.nulls(len(frame), pa.large_string()))
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
    missing = _missing_columns(header, source, contract)
    if not missing:
        return
    for delimiter, name in _OTHER_DELIMITERS.items():
        split = [f.strip() for f in _csv_fields(first_line, delimiter)]
        if len(split) > 1 and all(c in split for c in contract.names):
            raise ContractViolation(
                f"landing file {source} uses {name} as its delimiter where ',' is expected (rule: "
                f"delimiter): its header splits into the columns of table '{contract.name}' only at "
                f"{name}; ask the upstream system to re-deliver it comma-separated")
    _raise_missing_columns(missing, header, source, contract)


def _missing_columns(found: list[str], source: str, contract: TableContract) -> list[str]:
    """The contract's columns missing from `found`; raises when `found` names one twice."""
    twice = sorted({c for c in contract.names if found.count(c) > 1})
    if twice:
        raise ContractViolation(
            f"landing file {source} names column(s) {twice} of table '{contract.name}' more than once "
            f"(rule: unique_columns); found columns {found}; ask the upstream system to re-deliver it")
    return [c for c in contract.names if c not in found]


def _raise_missing_columns(missing: list[str], found: list[str], source: str, contract: TableContract) -> None:
    unexpected = [c for c in found if c not in contract.names]
    hint = (f"; unexpected column(s) {unexpected[:10]}: renamed upstream?" if unexpected else "")
    raise ContractViolation(
        f"landing file {source} is missing required column(s) {missing} of table '{contract.name}' "
        f"(rule: required_columns); found columns {found[:40]}{hint}")


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
    return _frame_of({col.name: _string_cells(table.column(col.name)) if col.kind == "string"
                      else _to_number(table.column(col.name), col.kind)
                      for col in contract.columns}, table.num_rows)


def _frame_of(columns: dict[str, tuple[pd.Series, np.ndarray | None]], n: int) -> pd.DataFrame:
    """The frame of typed columns, and their rows that did not parse (None: none) named in PARSE_ERRORS."""
    errors = np.full(n, "", dtype=object)
    for name, (_, bad) in columns.items():
        if bad is not None and bad.any():
            errors[bad] = errors[bad] + name + ";"
    df = pd.DataFrame({name: typed for name, (typed, _) in columns.items()})
    df[PARSE_ERRORS] = pd.Series(
        np.where(errors == "", None, errors), dtype="string").str.rstrip(";")
    return df


def _text_column(raw: pa.ChunkedArray) -> pa.ChunkedArray:
    """A string column's values: trimmed, an empty cell null."""
    stripped = pc.utf8_trim_whitespace(raw)
    return pc.if_else(pc.equal(stripped, ""), pa.scalar(None, raw.type), stripped)


def _string_cells(raw: pa.ChunkedArray) -> tuple[pd.Series, None]:
    """A string column's values as the frame holds them (no value of text fails to parse)."""
    return _string_series(_text_column(raw)), None


def _string_series(values: pa.Array | pa.ChunkedArray) -> pd.Series:
    """Arrow strings as a pandas "string" Series, without a round trip through Python objects."""
    return pd.Series(pd.StringDtype().__from_arrow__(values))


def _to_number(raw: pa.ChunkedArray, kind: str) -> tuple[pd.Series, np.ndarray]:
    """Cast strings to numbers; values that are not numbers of `kind` (see _INT_TEXT) become null
    and are flagged in `bad`. A cell's value never depends on the other cells of its column: the
    cells of the plain forms that arrow's cast reads exactly (_CAST_TEXT) are cast at once, any
    others parsed one by one."""
    text = pc.utf8_trim_whitespace(raw)
    is_null = pc.or_(pc.equal(text, ""), pc.is_in(text, pa.array(sorted(NUMBER_NULLS))))
    text = pc.if_else(is_null, pa.scalar(None, pa.string()), text)
    plain = pc.fill_null(pc.match_substring_regex(text, f"^(?:{_CAST_TEXT[kind]})$"), False)
    arrow_type = _ARROW_TYPES[kind]
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
    return value if _INT64[0] <= value <= _INT64[1] else _BAD


def _float_cell(s: str):
    if _DECIMAL_RE.fullmatch(s) or _INFINITY_RE.fullmatch(s):
        return float(s)
    return _BAD


def parse_landing_parquet(data: bytes, source: str, contract: TableContract) -> pd.DataFrame:
    """Parse one landing Parquet file into the frame parse_landing_file gives for a CSV.

    Raises ContractViolation naming `source` and the rule when the file is no readable Parquet,
    lacks a required column or names one twice, or holds a column of a Parquet type that the
    contract's kind cannot take (see _parquet_column). Extra columns are dropped."""
    try:
        file = pq.ParquetFile(pa.BufferReader(data))
        missing = _missing_columns(file.schema_arrow.names, source, contract)
        if missing:
            _raise_missing_columns(missing, file.schema_arrow.names, source, contract)
        table = file.read(columns=contract.names, use_threads=True)
    except (pa.ArrowException, OSError) as exc:
        reason = " ".join("".join(c if c.isprintable() else " " for c in str(exc)).split())  # one line
        raise ContractViolation(
            f"landing file {source} cannot be read as Parquet (rule: parseable): {reason}; ask the "
            "upstream system to re-deliver it") from exc
    return _frame_of({col.name: _parquet_column(table.column(col.name), col, source, contract)
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
        return _arrow_series(pa.nulls(len(raw), _ARROW_TYPES[col.kind]), col.kind), None
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_decimal(t):
        text = raw.cast(pa.string())
        return _string_cells(text) if col.kind == "string" else _to_number(text, col.kind)
    if col.kind == "string" and (pa.types.is_timestamp(t) or pa.types.is_date(t)):
        return _string_cells(_formatted(raw, col.datetime_format))
    is_number = pa.types.is_integer(t) or pa.types.is_floating(t)
    if col.kind == "string" and (is_number or pa.types.is_boolean(t)):
        return _string_cells(raw.cast(pa.string()))
    if col.kind == "float" and is_number:
        return _arrow_series(raw.cast(pa.float64()), "float"), None
    if col.kind == "int" and pa.types.is_floating(t):
        return _whole_numbers(raw)
    if col.kind == "int" and pa.types.is_uint64(t):
        too_big = pc.fill_null(pc.greater(raw, pa.scalar(_INT64[1], t)), False)
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
    return _string_series(values)


def _whole_numbers(raw: pa.ChunkedArray) -> tuple[pd.Series, np.ndarray]:
    """Floats as int64 where they are whole numbers in int64's range; others do not parse (NaN is null)."""
    values = np.asarray(raw.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    null = np.isnan(values)
    with np.errstate(invalid="ignore"):
        whole = (values == np.floor(values)) & (values >= _INT64[0]) & (values < 2.0**63)
    return pd.Series(pd.arrays.IntegerArray(np.where(whole, values, 0).astype(np.int64), ~whole)), ~null & ~whole


def _formatted(raw: pa.ChunkedArray, datetime_format: str | None) -> pa.Array:
    """Timestamps or dates as text by Python's strftime (ISO 8601 without a format), each distinct
    value formatted once. (arrow's own strftime writes fractions of a second for %S.)"""
    distinct = raw.unique()
    text = [None if v is None else v.strftime(datetime_format) if datetime_format else v.isoformat()
            for v in distinct.to_pylist()]
    return pa.array(text, pa.string()).take(pc.index_in(raw, distinct))
