"""Landing file (CSV bytes) -> typed DataFrame by an explicit schema. Values that do not parse
become null and are named in the `_parse_errors` column, so validation can quarantine them
while the raw zone keeps every delivered row."""
from __future__ import annotations

import csv
import io
import re
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline.contracts import ContractViolation, TableContract
from pipeline.storage import sha256_bytes

PARSE_ERRORS = "_parse_errors"
_PANDAS_TYPES = {"int": "Int64", "float": "float64", "string": "string"}
_BOM = b"\xef\xbb\xbf"
_OTHER_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}
# The numbers a landing file may hold, ASCII digits only: "12", "-3", "+4", "007" for ints (and a
# decimal or exponent form of a whole number, "12.0" or "1.2e1"); "1.5", ".5", "1.", "1e-3" for
# floats, and inf/infinity (the range rules catch those). Hex, "1_000", "1,000" do not parse.
_INT_TEXT = r"[+-]?[0-9]+"
_DECIMAL_TEXT = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
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


def parse_landing_file(data: bytes, source: str, contract: TableContract) -> pd.DataFrame:
    """Parse one landing CSV into the contract's columns and types.

    Raises ContractViolation naming `source` and the rule when the file is empty, is not UTF-8,
    uses another delimiter than ',', lacks a required column or names one twice, or has a row
    with another number of fields than the header. Extra columns are dropped; column order, a
    UTF-8 byte-order mark and CRLF or CR line ends do not matter. Values are trimmed; an empty
    cell is null, and so is NUMBER_NULLS' "NA", "NaN", "null"... in a number column."""
    body = data[len(_BOM):] if data.startswith(_BOM) else data
    if not body.strip():
        raise ContractViolation(
            f"landing file {source} is empty ({len(data)} bytes, no header; rule: not_empty); expected "
            f"a CSV with columns {contract.names}; ask the upstream system to re-deliver it")
    text = _decode(body, source)
    raw_header = _csv_fields(_first_line(text))
    header = [name.strip() for name in raw_header]
    _check_header(header, text, source, contract)
    raw_of = dict(zip(header, raw_header))
    if not body.endswith((b"\n", b"\r")):
        body += b"\n"  # a header-only file without a final newline is a file of 0 rows
    invalid: list = []

    def skip_and_record(row) -> str:
        invalid.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(use_threads=False),  # rows numbered in parse errors
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=skip_and_record),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in raw_header},
                include_columns=[raw_of[c] for c in contract.names],
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowException as exc:
        raise ContractViolation(
            f"landing file {source} cannot be parsed as UTF-8 CSV (rule: parseable): {exc}; ask the "
            "upstream system to re-deliver it") from exc
    if invalid:
        raise ContractViolation(_ragged_rows_message(invalid, table.num_rows, source))
    return _typed_frame(table.rename_columns(contract.names), contract)


_LINE_END = re.compile(rb"\r\n|\r|\n")


def _decode(body: bytes, source: str) -> str:
    first_line = _LINE_END.split(body, maxsplit=1)[0]
    if body.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in first_line:
        raise ContractViolation(
            f"landing file {source} is not UTF-8 encoded (rule: encoding): it starts with a UTF-16 "
            "byte-order mark or has NUL bytes in its header (UTF-16 text, or not a text file at all); "
            "ask the upstream system to re-deliver it as UTF-8 CSV")
    try:
        return body.decode("utf-8")
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


def _csv_fields(line: str, delimiter: str = ",") -> list[str]:
    """The fields of one line of CSV text (no line break in it)."""
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return line.split(delimiter)


def _first_line(text: str) -> str:
    return re.split(r"\r\n|\r|\n", text, maxsplit=1)[0]


def _check_header(header: list[str], text: str, source: str, contract: TableContract) -> None:
    twice = sorted({c for c in contract.names if header.count(c) > 1})
    if twice:
        raise ContractViolation(
            f"landing file {source} names column(s) {twice} of table '{contract.name}' more than once "
            f"(rule: unique_columns); found columns {header}; ask the upstream system to re-deliver it")
    missing = [c for c in contract.names if c not in header]
    if not missing:
        return
    for delimiter, name in _OTHER_DELIMITERS.items():
        split = [f.strip() for f in _csv_fields(_first_line(text), delimiter)]
        if len(split) > 1 and all(c in split for c in contract.names):
            raise ContractViolation(
                f"landing file {source} uses {name} as its delimiter where ',' is expected (rule: "
                f"delimiter): its header splits into the columns of table '{contract.name}' only at "
                f"{name}; ask the upstream system to re-deliver it comma-separated")
    unexpected = [c for c in header if c not in contract.names]
    hint = (f"; unexpected column(s) {unexpected[:10]}: renamed upstream?" if unexpected else "")
    raise ContractViolation(
        f"landing file {source} is missing required column(s) {missing} of table '{contract.name}' "
        f"(rule: required_columns); found columns {header[:40]}{hint}")


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
    """Cast strings to numbers; values that are not numbers of `kind` (see _INT_TEXT) become null
    and are flagged in `bad`. A cell's value never depends on the other cells of its column: the
    vectorised cast is taken only when every cell has the plain form it parses exactly."""
    text = pc.utf8_trim_whitespace(raw)
    is_null = pc.or_(pc.equal(text, ""), pc.is_in(text, pa.array(sorted(NUMBER_NULLS))))
    text = pc.if_else(is_null, pa.scalar(None, pa.string()), text)
    plain = _INT_TEXT if kind == "int" else _DECIMAL_TEXT
    if pc.all(pc.match_substring_regex(text, f"^(?:{plain})$"), skip_nulls=True).as_py() is not False:
        try:
            cast = pc.cast(text, pa.int64() if kind == "int" else pa.float64())
            # straight to Int64: through float64 (what nulls would force) ints above 2**53 lose digits
            values = cast.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
            return (pd.Series(values, dtype=_PANDAS_TYPES[kind]).reset_index(drop=True),
                    np.zeros(len(text), dtype=bool))
        except pa.ArrowException:
            pass  # e.g. an int beyond int64, or "+5" (arrow's int cast takes no sign): cell by cell
    parse = _int_cell if kind == "int" else _float_cell
    values = [None if s is None else parse(s) for s in text.to_pylist()]
    bad = np.array([v is _BAD for v in values], dtype=bool)
    values = [None if v is _BAD else v for v in values]
    if kind == "float":
        values = [np.nan if v is None else v for v in values]
    return pd.Series(values, dtype=_PANDAS_TYPES[kind]), bad


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
