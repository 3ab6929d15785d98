"""The fast path of parse_landing_file on files of many pyarrow blocks (read in parallel): a day of
a million synthetic flights takes it, and a file holding anything the strict rules read otherwise
falls back to them and gives exactly their frame or their message. (Agreement on any small file
is a hypothesis property in test_ingest_properties.py.)"""
from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import pytest

from pipeline.flights import synthetic as sy
from pipeline.contracts import ContractViolation
from pipeline.flights.features import FLIGHTS
from pipeline.ingest import PARSE_ERRORS, parse_landing_file

DAY = dt.date(2014, 3, 10)
SOURCE = "/landing/flights/flights_2014-03-10.csv"


@pytest.fixture(scope="module")
def source() -> sy.Source:
    return sy.Source()


def synthetic_day(source: sy.Source, rows: int) -> bytes:
    base = source.flights[sy.real_day(DAY)]
    return sy.csv_bytes(sy.synthetic_flights(base, DAY, rows, np.random.default_rng(0)))


def parse_logged(data: bytes, caplog, strict: bool = False) -> tuple[object, str]:
    """The frame (or the ContractViolation's message) and the path that read it."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="pipeline.ingest"):
        try:
            out = parse_landing_file(data, SOURCE, FLIGHTS, strict=strict)
        except ContractViolation as exc:
            out = str(exc)
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "pipeline.ingest")
    return out, "fast" if "read by the fast path" in logged else "strict"


def test_a_day_of_a_million_flights_takes_the_fast_path(source, caplog):
    data = synthetic_day(source, 1_000_000)
    frame, path = parse_logged(data, caplog)
    assert path == "fast"
    assert len(frame) == 1_000_000 and frame[PARSE_ERRORS].isna().all()
    assert list(frame.columns) == FLIGHTS.names + [PARSE_ERRORS]
    # its first rows are what the strict rules read in them
    head = b"".join(data.splitlines(keepends=True)[:2001])
    strict = parse_landing_file(head, SOURCE, FLIGHTS, strict=True)
    pd.testing.assert_frame_equal(frame.iloc[:2000], strict, check_exact=True)


@pytest.fixture(scope="module")
def lines(source) -> list[bytes]:
    """A synthetic day of 25,000 flights (2.5 MB: several blocks of pyarrow's parallel reader)."""
    return synthetic_day(source, 25_000).split(b"\n")


def with_cell(lines: list[bytes], row: int, column: str, text: bytes) -> bytes:
    header = lines[0].decode().replace('"', "").split(",")
    fields = lines[row].split(b",")
    fields[header.index(column)] = text
    return b"\n".join(lines[:row] + [b",".join(fields)] + lines[row + 1:])


@pytest.mark.parametrize("column, text, path", [
    ("flight", b"0x1F", "strict"),          # hex: pyarrow reads 31, the strict rules an error
    ("tailnum", b'" 0X1F"', "strict"),      # could be hex to pyarrow: the guard is conservative
    ("flight", b"+5", "strict"),
    ("hour", b"12.0", "strict"),
    ("flight", b"9223372036854775808", "strict"),
    ("dep_delay", b"NAN", "strict"),        # pyarrow: NaN; strict: not a number
    ("dep_delay", b"nan(1)", "strict"),
    ("distance", b"-Infinity", "strict"),
    ("arr_delay", b" NA", "strict"),
    ("arr_delay", b" ", "strict"),
    ("dep_time", b"\xc2\xa0517", "strict"),
    ("flight", b"UA707", "strict"),
    ("arr_delay", b"NA", "fast"),
    ("flight", b'" 007\t"', "fast"),
    ("dep_delay", b"+1.5e1", "fast"),
    ("dep_delay", b"-0", "fast"),
    ("tailnum", b'"N1\nX "', "fast"),       # a line break inside a quoted value
    ("tailnum", b'"N1,""2"""', "fast"),
    ("tailnum", b"N10X", "fast"),
])
def test_a_cell_deep_in_a_large_file_reads_as_the_strict_rules_read_it(lines, caplog, column, text, path):
    data = with_cell(lines, 21_123, column, text)
    fast, taken = parse_logged(data, caplog)
    strict, _ = parse_logged(data, caplog, strict=True)
    assert taken == path
    pd.testing.assert_frame_equal(fast, strict, check_exact=True)
    assert len(fast) == 25_000


def test_a_ragged_row_deep_in_a_large_file_gets_the_strict_message(lines, caplog):
    data = b"\n".join(lines[:20_001] + [lines[20_001] + b",extra"] + lines[20_002:])
    fast, taken = parse_logged(data, caplog)
    strict, _ = parse_logged(data, caplog, strict=True)
    assert taken == "strict" and fast == strict
    assert "row 20002 (counting the header as row 1): Expected 19 columns, got 20" in fast
