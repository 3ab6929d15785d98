"""Properties of parse + validate, checked by hypothesis on generated and corrupted landing files:
valid values round-trip with nothing quarantined, corruption is quarantined or raises a
ContractViolation naming the file (never another exception), and neither column order, line
ends, a byte-order mark nor the other cells of a column change how a cell parses."""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import math
import re
import shutil
import tempfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as hs
from hypothesis.configuration import set_hypothesis_home_dir

from pipeline.contracts import Column, ContractViolation, TableContract
from pipeline.flights.features import FLIGHTS

ORIGINS = FLIGHTS.column("origin").allowed
from pipeline.ingest import NUMBER_NULLS, PARSE_ERRORS, parse_landing_file
from pipeline.flights.landing import land_demo, landing_file
from pipeline.validate import validate_table

DAY = dt.date(2013, 1, 3)
SOURCE = "/landing/t/t_2013-01-03.csv"
PROPERTY = settings(max_examples=30, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
T = TableContract("t", (Column("id", "int"), Column("x", "float"), Column("name", "string"),
                        Column("code", "string")))


# Hypothesis's caches (there is no example database: see PROPERTY) go to a temporary directory,
# not ./.hypothesis; it is set at import because hypothesis writes them as soon as tests are collected.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="hypothesis-")
set_hypothesis_home_dir(_HYPOTHESIS_HOME)


@pytest.fixture(scope="module", autouse=True)
def hypothesis_home():
    yield
    set_hypothesis_home_dir(None)
    shutil.rmtree(_HYPOTHESIS_HOME, ignore_errors=True)


@pytest.fixture(scope="module")
def real_flights(tmp_path_factory) -> bytes:
    """The first 40 rows of a real demo day's flights file."""
    root = str(tmp_path_factory.mktemp("demo"))
    land_demo(root, DAY, DAY)
    with open(landing_file(root, "flights", DAY), "rb") as fh:
        lines = fh.read().split(b"\n")
    return b"\n".join(lines[:41]) + b"\n"


def rfc4180(value) -> str:
    """One CSV field: quoted (quotes doubled) when it holds a comma, a quote or a line break.
    (Python's csv.writer leaves a bare CR unquoted when the line terminator is LF.)"""
    text = "" if value is None else str(value)
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if re.search(r'[,"\r\n]', text) else text


def write_csv(header: list[str], rows: list[list], order: list[int], newline: str, bom: bool,
              final_newline: bool = True) -> bytes:
    lines = [",".join(rfc4180(r[i]) for i in order) for r in [header, *rows]]
    text = newline.join(lines) + (newline if final_newline else "")
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


# ---- valid values round-trip -----------------------------------------------------------------
# Text that survives as itself: no surrounding whitespace (values are trimmed), not empty (null).
# Inside: anything, commas, quotes and line breaks included.
words = hs.text(hs.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda s: s[0].isalnum() and s[-1].isalnum())
row_values = hs.tuples(
    hs.none() | hs.integers(-(2**63), 2**63 - 1),
    hs.none() | hs.floats(allow_nan=False),
    hs.none() | words,
    hs.none() | hs.sampled_from(["NA", "null", "nan", "N/A", "0x1F", "1,5"]),
)


@PROPERTY
@given(rows=hs.lists(row_values, max_size=15), order=hs.permutations(range(4)),
       newline=hs.sampled_from(["\n", "\r\n", "\r"]), bom=hs.booleans(), final_newline=hs.booleans())
def test_any_valid_values_round_trip(rows, order, newline, bom, final_newline):
    rows = [list(r) for r in rows]
    rows = [[r[0], None if r[1] is None else repr(r[1]), r[2], r[3]] for r in rows]
    if not final_newline and rows and rows[-1] == [None, None, None, None]:
        final_newline = True  # a last line of bare commas with no newline is what a cut-off file looks like
    data = write_csv(T.names, rows, list(order), newline, bom, final_newline)
    df = parse_landing_file(data, SOURCE, T)
    want = pd.DataFrame({
        "id": pd.Series([r[0] for r in rows], dtype="Int64"),
        "x": pd.Series([math.nan if r[1] is None else float(r[1]) for r in rows], dtype="float64"),
        "name": pd.Series([r[2] for r in rows], dtype="string"),
        "code": pd.Series([r[3] for r in rows], dtype="string"),
        PARSE_ERRORS: pd.Series([None] * len(rows), dtype="string"),
    })
    pd.testing.assert_frame_equal(df, want)
    result = validate_table(df, T, SOURCE) if rows else None
    assert result is None or result.report["rows_quarantined"] == 0


def _hhmm(h: int, m: int) -> int:
    return h * 100 + m


UPPER, DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789"
clock = hs.builds(_hhmm, hs.integers(0, 23), hs.integers(0, 59)) | hs.just(2400)
delay = hs.none() | hs.integers(-180, 2000).map(float) | hs.floats(-180, 2000)


@hs.composite
def valid_flight(draw) -> dict:
    hour, minute = draw(hs.integers(0, 23)), draw(hs.integers(0, 59))
    departed = draw(hs.booleans())
    return {
        "year": DAY.year, "month": DAY.month, "day": DAY.day,
        "dep_time": float(draw(clock)) if departed else None,
        "sched_dep_time": _hhmm(hour, minute),
        "dep_delay": draw(delay) if departed else None,
        "arr_time": float(draw(clock)) if departed else None,
        "sched_arr_time": draw(clock),
        "arr_delay": draw(delay) if departed else None,
        "carrier": draw(hs.text(UPPER + DIGITS, min_size=2, max_size=2)),
        "flight": draw(hs.integers(1, 9999)),
        "tailnum": "N" + draw(hs.text(UPPER + DIGITS, min_size=1, max_size=5)),
        "origin": draw(hs.sampled_from(sorted(ORIGINS))),
        "dest": draw(hs.text(UPPER, min_size=3, max_size=3)),
        "air_time": draw(hs.none() | hs.floats(0, 1000)) if departed else None,
        "distance": draw(hs.floats(1, 6000)),
        "hour": hour, "minute": minute,
        "time_hour": f"2013-01-0{draw(hs.sampled_from([3, 4]))}T{draw(hs.integers(0, 23)):02d}:00:00Z",
    }


@PROPERTY
@given(rows=hs.lists(valid_flight(), min_size=1, max_size=25,
                     unique_by=lambda r: (r["carrier"], r["flight"], r["origin"], r["sched_dep_time"])),
       order=hs.permutations(range(len(FLIGHTS.names))), newline=hs.sampled_from(["\n", "\r\n"]))
def test_valid_flights_are_all_clean(rows, order, newline):
    data = write_csv(FLIGHTS.names, [[r[c] for c in FLIGHTS.names] for r in rows], list(order), newline, False)
    result = validate_table(parse_landing_file(data, SOURCE, FLIGHTS), FLIGHTS, SOURCE, date=DAY)
    assert result.report["rows_quarantined"] == 0, result.report["quarantined_by_rule"]
    assert result.clean["flight"].tolist() == [r["flight"] for r in rows]
    assert result.clean["carrier"].tolist() == [r["carrier"] for r in rows]
    got = result.clean["dep_delay"].tolist()
    assert [None if math.isnan(v) else v for v in got] == [r["dep_delay"] for r in rows]


# ---- corruption is quarantined or a ContractViolation naming the file --------------------------
NASTY = [b"", b" ", b",", b'"', b'""', b"\n", b"\r", b"\r\n", b"\x00", b"\xff", b"\xc3", b";", b"\t", b"2570",
         b"-1", b"1e400", b"inf", b"nan", b"NA", b"0x10", b"1_0", b"\xef\xbb\xbf", b"99999999999999999999",
         "\u00e9".encode(), "\u2028".encode(), b"2013-13-45T25:70:00Z"]
cell_text = hs.sampled_from(NASTY) | hs.binary(max_size=6) | hs.text(max_size=6).map(str.encode)


def corrupt_cells(data: bytes, edits) -> bytes:
    lines = data.split(b"\n")
    for row, col, text in edits:
        line = 1 + row % (len(lines) - 2)
        fields = lines[line].split(b",")
        fields[col % len(fields)] = text
        lines[line] = b",".join(fields)
    return b"\n".join(lines)


def corrupt_bytes(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for pos, kind, byte in edits:
        pos %= len(out) + 1
        if kind == "insert":
            out[pos:pos] = bytes([byte])
        elif kind == "delete" and out:
            del out[min(pos, len(out) - 1)]
        elif out:
            out[min(pos, len(out) - 1)] = byte
    return bytes(out)


def outcome(data: bytes) -> dict | str:
    """The validation report, or the ContractViolation's message; any other exception fails."""
    try:
        return validate_table(parse_landing_file(data, SOURCE, FLIGHTS), FLIGHTS, SOURCE, date=DAY).report
    except ContractViolation as exc:
        return str(exc)


def check_outcome(result: dict | str) -> None:
    if isinstance(result, str):
        assert SOURCE in result and re.search(r"\(rule: [a-z_]+", result), result
        return
    assert result["rows_clean"] + result["rows_quarantined"] == result["rows_in"]
    known = {f"{rule}:{c.name}" for c in FLIGHTS.columns
             for rule in ("parseable", "not_null", "min", "max", "allowed", "pattern", "datetime")}
    known |= {"partition_date", "duplicate_key:carrier,flight,origin,sched_dep_time"} | {
        check.name for check in FLIGHTS.checks}
    assert set(result["quarantined_by_rule"]) <= known


@PROPERTY
@given(edits=hs.lists(hs.tuples(hs.integers(0, 10_000), hs.integers(0, 30), cell_text), min_size=1, max_size=4))
def test_corrupted_cells_are_quarantined_or_fail_naming_the_file(real_flights, edits):
    check_outcome(outcome(corrupt_cells(real_flights, edits)))


@PROPERTY
@given(edits=hs.lists(hs.tuples(hs.integers(0, 10_000), hs.sampled_from(["insert", "delete", "replace"]),
                                hs.sampled_from(list(b',"\n\r\x00\xff\xc3;') + [0x41, 0x31])),
                      min_size=1, max_size=4))
@example(edits=[(0, "replace", 0xff)])  # a broken first byte
def test_corrupted_bytes_are_quarantined_or_fail_naming_the_file(real_flights, edits):
    check_outcome(outcome(corrupt_bytes(real_flights, edits)))


# ---- what does not change a parse --------------------------------------------------------------
@PROPERTY
@given(order=hs.permutations(range(len(FLIGHTS.names))), newline=hs.sampled_from(["\n", "\r\n", "\r"]),
       bom=hs.booleans(), final_newline=hs.booleans(), blank_lines=hs.booleans())
def test_parse_is_independent_of_column_order_line_ends_and_bom(real_flights, order, newline, bom,
                                                                final_newline, blank_lines):
    plain = parse_landing_file(real_flights, SOURCE, FLIGHTS)
    rows = list(csv.reader(io.StringIO(real_flights.decode())))
    header, body = rows[0], [[v or None for v in r] for r in rows[1:]]
    data = write_csv(header, body, list(order), newline, bom, final_newline)
    if blank_lines:
        data = data.replace(newline.encode(), (newline * 2).encode())
    pd.testing.assert_frame_equal(parse_landing_file(data, SOURCE, FLIGHTS), plain)


number_text = (hs.integers(-(2**70), 2**70).map(str) | hs.floats().map(repr)
               | hs.text(alphabet="0123456789+-.eExXabinfINF_, ", max_size=8)
               | hs.sampled_from(sorted(NUMBER_NULLS) + ["+5", "1.", ".5", "1e3", "0x10", "1_0", "inf"]))


@PROPERTY
@given(cells=hs.lists(number_text.filter(lambda s: "," not in s), min_size=1, max_size=12))
def test_a_number_parses_the_same_whatever_the_rest_of_its_column(cells):
    contract = TableContract("n", (Column("i", "int"), Column("x", "float")))
    whole = parse_landing_file(("i,x\n" + "".join(f"{c},{c}\n" for c in cells)).encode(), SOURCE, contract)
    alone = pd.concat([parse_landing_file(f"i,x\n{c},{c}\n".encode(), SOURCE, contract) for c in cells],
                      ignore_index=True)
    pd.testing.assert_frame_equal(whole, alone)
    for cell, i, x, err in zip(cells, whole["i"], whole["x"], whole[PARSE_ERRORS]):
        text = cell.strip()
        if re.fullmatch(r"[+-]?[0-9]+", text) and -(2**63) <= int(text) < 2**63:
            assert i == int(text) and (pd.isna(err) or "i" not in err.split(";"))
        if re.fullmatch(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", text):
            assert x == float(text) or (math.isnan(x) and math.isnan(float(text)))
        if text in ("", *NUMBER_NULLS):
            assert pd.isna(i) and math.isnan(x) and pd.isna(err)


# ---- the fast path reads what the strict rules read --------------------------------------------
# Spellings where pyarrow's typed reader and the strict rules could part: hex, signs, padding,
# decimal and exponent forms of ints, NaN and infinity spellings, int64's bounds, null spellings
# padded or not, non-ASCII digits and whitespace.
ODD_NUMBERS = ["0x10", "0X1f", " 0x7", "0x", "-0x10", "+0x1", "+5", "-0", "+0", "007", "-007", "1e3", "1E+3",
               "12.0", "1.2e1", "1.", ".5", ".", "-.5e-3", "1e", "e1", "--1", "1-", "0b1", "1_000",
               "1,000", "1e400", "-1e400", "1e-400", "inf", "-inf", "+inf", "Inf", "INFINITY", "infinity",
               "+Infinity", "nan", "NaN", "NAN", "-nan", "+nan", "nan(1)", "-NaN", "9223372036854775807",
               "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
               "99999999999999999999", "18446744073709551616", "NA", " NA", "NA ", "N/A", "n/a", "null",
               "NULL", "#N/A", "-1.#IND", "1.#QNAN", "", " ", "\t", "\t5\t", " 5 ", " -5", "5\u00a0",
               "\u30005", "\x1c5", "5\x1f", "\u0663", "\uff11", "5\n", "\r5", "TRUE", "0.1e-0", "1e-5",
               "4.9e-324", "2.4703282292062328e-324", "1.7976931348623157e308", "1.7976931348623159e308",
               "0.30000000000000004", "123456789012345678901234567890e-20"]
FAST_CONTRACT = TableContract("f", (Column("i", "int"), Column("x", "float"), Column("s", "string"),
                                    Column("j", "int")))


def _cell(text: str, quote: bool) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if quote or re.search(r'[,"\r\n]', text) else text


@hs.composite
def landing_files(draw, odd: bool) -> bytes:
    """A CSV of FAST_CONTRACT's columns (and an extra one) in any order: plain numbers, nulls and
    text, padded and quoted at random; with `odd`, also odd spellings and a ragged row now and then."""
    ints = hs.integers(-(2**63), 2**63 - 1).map(str)
    floats = hs.floats(allow_nan=False, allow_infinity=False).map(repr) | hs.integers(-10**6, 10**6).map(str)
    nulls = hs.sampled_from(["", *sorted(NUMBER_NULLS)])
    texts = hs.text(hs.characters(blacklist_categories=("Cs",)), max_size=8)
    if odd:
        fuzz = hs.text(alphabet="0123456789+-.eExXnaifINF_ \t", max_size=8)
        ints = ints | hs.sampled_from(ODD_NUMBERS) | fuzz | hs.floats().map(repr)
        floats = floats | hs.sampled_from(ODD_NUMBERS) | fuzz | hs.floats().map(repr)
    else:
        texts = texts.filter(lambda s: not re.match(r'[ \t"]*0[xX]', s))  # pyarrow may take it for hex
    pad = hs.sampled_from(["", "", " ", "\t", "  "])
    number = {"i": ints | nulls, "x": floats | nulls, "j": ints | nulls}

    def padded(kind: str) -> str:
        if kind == "s" or kind == "extra":
            return draw(texts)
        value = draw(number[kind])
        return draw(pad) + value + draw(pad) if value and value not in NUMBER_NULLS else value

    names = draw(hs.permutations(["i", "x", "s", "j", "extra"]))
    rows = [[padded(name) for name in names] for _ in range(draw(hs.integers(0, 12)))]
    if odd and rows and draw(hs.integers(0, 9)) == 0:
        rows[draw(hs.integers(0, len(rows) - 1))].append("ragged")
    newline = draw(hs.sampled_from(["\n", "\r\n", "\r"]))
    lines = [",".join(_cell(v, draw(hs.booleans())) for v in row) for row in [names, *rows]]
    text = newline.join(lines) + (newline if draw(hs.booleans()) or not rows else "")
    return (b"\xef\xbb\xbf" if draw(hs.booleans()) else b"") + text.encode()


def read_both(data: bytes, contract: TableContract) -> tuple[object, object, list[str]]:
    """The strict and the default parse (each a frame or a ContractViolation's message), and
    what pipeline.ingest logged about the default one."""
    def parse(strict: bool):
        try:
            return parse_landing_file(data, SOURCE, contract, strict=strict)
        except ContractViolation as exc:
            return str(exc)

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("pipeline.ingest")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        default = parse(strict=False)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return parse(strict=True), default, [r.getMessage() for r in records]


def assert_same_outcome(strict, fast) -> None:
    if isinstance(strict, str) or isinstance(fast, str):
        assert fast == strict
        return
    pd.testing.assert_frame_equal(fast, strict, check_exact=True)
    for name in fast.columns:
        if fast[name].dtype == "float64":  # -0.0 == 0.0: compare the signs too
            assert (np.signbit(fast[name].to_numpy()) == np.signbit(strict[name].to_numpy())).all(), name


@PROPERTY
@given(data=landing_files(odd=True))
@example(data=b"i,x,s,j,extra\n0x10,NAN,a,+5,b\n")
def test_fast_path_reads_any_file_as_the_strict_rules_do(data):
    strict, fast, _ = read_both(data, FAST_CONTRACT)
    assert_same_outcome(strict, fast)


@PROPERTY
@given(data=landing_files(odd=False))
def test_plain_files_take_the_fast_path(data):
    strict, fast, logged = read_both(data, FAST_CONTRACT)
    assert_same_outcome(strict, fast)
    assert any("read by the fast path" in m for m in logged), logged


@pytest.mark.parametrize("cell", ODD_NUMBERS)
def test_each_odd_number_reads_as_the_strict_rules_read_it(cell):
    for row in (f"{_cell(cell, False)},{_cell(cell, False)},a,1", f"1,{_cell(cell, True)},a,{_cell(cell, True)}"):
        data = f"i,x,s,j\n1,2.5,b,3\n{row}\n-4,5e-1,c,6\n".encode()
        strict, fast, _ = read_both(data, FAST_CONTRACT)
        assert_same_outcome(strict, fast)
