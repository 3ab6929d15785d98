"""A fixed catalogue of malformed landing files, each made from a real demo day's CSV, with the
outcome it must have: the quarantined rows by rule (and exactly the untouched rows clean), or a
ContractViolation whose message names the file, the column and the rule. The landing file is
read through the storage layer and must be byte-for-byte unchanged afterwards."""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
from typing import Callable

import pandas as pd
import pytest

from pipeline import storage as st
from pipeline.contracts import ContractViolation
from pipeline.flights.features import FLIGHTS, PLANES, WEATHER
from pipeline.ingest import PARSE_ERRORS, parse_landing_file
from pipeline.flights.landing import land_demo, landing_file
from pipeline.validate import RULES, validate_table

DAY = dt.date(2013, 1, 3)
CONTRACTS = {"flights": FLIGHTS, "weather": WEATHER, "planes": PLANES}
FLIGHT_KEY = "duplicate_key:carrier,flight,origin,sched_dep_time"


@pytest.fixture(scope="module")
def delivered(tmp_path_factory) -> dict[str, bytes]:
    """The demo landing files of DAY (and the aircraft table), as delivered."""
    root = str(tmp_path_factory.mktemp("demo"))
    land_demo(root, DAY, DAY)
    out = {}
    for table in CONTRACTS:
        with open(landing_file(root, table, None if table == "planes" else DAY), "rb") as fh:
            out[table] = fh.read()
    return out


# ---- building malformed files from a real one ------------------------------------------------
def frame(data: bytes) -> pd.DataFrame:
    """The file's cells as the exact text delivered."""
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_filter=False)


def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n").encode()


def cells(rows, **values) -> Callable[[bytes], bytes]:
    """Set columns to values in the given data rows (0-based)."""
    def make(data: bytes) -> bytes:
        df = frame(data)
        for col, value in values.items():
            df.loc[list(rows), col] = value
        return csv_bytes(df)
    return make


def columns(fn: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[bytes], bytes]:
    return lambda data: csv_bytes(fn(frame(data)))


def last_line(cut: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """Apply `cut` to the last line (without its newline); the file then has no final newline."""
    def make(data: bytes) -> bytes:
        head, last = data.rstrip(b"\n").rsplit(b"\n", 1)
        return head + b"\n" + cut(last)
    return make


def share(fraction: float, **values) -> Callable[[bytes], bytes]:
    """Set columns to values in the first `fraction` of the data rows."""
    def make(data: bytes) -> bytes:
        df = frame(data)
        rows = list(range(int(len(df) * fraction)))
        for col, value in values.items():
            df.loc[rows, col] = value
        return csv_bytes(df)
    return make


def latin1_in_row(row: int, col: str, text: str) -> Callable[[bytes], bytes]:
    def make(data: bytes) -> bytes:
        df = frame(data)
        df.loc[row, col] = text
        return df.to_csv(index=False, lineterminator="\n").encode("latin-1")
    return make


def replace_nth_line(n: int, fn: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    def make(data: bytes) -> bytes:
        lines = data.split(b"\n")
        lines[n] = fn(lines[n])
        return b"\n".join(lines)
    return make


# ---- the catalogue ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[bytes], bytes]
    table: str = "flights"
    # Quarantined outcome: rows per rule, and which of the delivered rows (0-based) are not clean.
    quarantined: dict[str, int] | None = None
    bad_rows: tuple[int, ...] = ()
    # Failed outcome: substrings the ContractViolation must hold besides the file's path.
    error: tuple[str, ...] | None = None
    rows_in: int | None = None  # when the malformed file has another number of rows


CASES = [
    # columns
    Case("missing column", columns(lambda df: df.drop(columns=["dep_delay"])),
         error=("missing required column(s) ['dep_delay']", "rule: required_columns")),
    Case("extra column", columns(lambda df: df.assign(gate="B12")), quarantined={}),
    Case("renamed column", columns(lambda df: df.rename(columns={"dep_delay": "departure_delay"})),
         error=("['dep_delay']", "rule: required_columns", "unexpected column(s) ['departure_delay']")),
    Case("upper-case header", columns(lambda df: df.rename(columns=str.upper)),
         error=("'dep_delay'", "rule: required_columns", "'DEP_DELAY'")),
    Case("reordered columns", columns(lambda df: df[df.columns[::-1]]), quarantined={}),
    Case("column named twice", columns(lambda df: pd.concat([df, df[["origin"]]], axis=1)),
         error=("['origin']", "more than once", "rule: unique_columns")),
    Case("header padded with spaces", lambda d: d.replace(b",dep_delay,", b", dep_delay ,", 1), quarantined={}),
    # types and unparseable values
    Case("text in an int column", cells([0, 1, 2], flight="UA707"),
         quarantined={"parseable:flight": 3, "not_null:flight": 3}, bad_rows=(0, 1, 2)),
    Case("negative flight number", cells([8], flight="-707"),
         quarantined={"min:flight": 1}, bad_rows=(8,)),
    Case("fraction in an int column", cells([5], sched_dep_time="600.5"),
         quarantined={"parseable:sched_dep_time": 1, "not_null:sched_dep_time": 1, "consistent:hour_minute": 1},
         bad_rows=(5,)),
    Case("whole numbers written as floats", columns(lambda df: df.assign(flight=df["flight"] + ".0")),
         quarantined={}),
    Case("hexadecimal in an int column", cells([7], flight="0x2C3"),
         quarantined={"parseable:flight": 1, "not_null:flight": 1}, bad_rows=(7,)),
    Case("text in a float column", cells([3, 4], dep_delay="late"),
         quarantined={"parseable:dep_delay": 2}, bad_rows=(3, 4)),
    Case("thousands separator", cells([0, 1, 2, 3], distance="1,598"),
         quarantined={"parseable:distance": 4, "not_null:distance": 4}, bad_rows=(0, 1, 2, 3)),
    Case("unparseable date", cells([10, 11], time_hour="03/01/2013 10:00"),
         quarantined={"datetime:time_hour": 2}, bad_rows=(10, 11)),
    Case("impossible date", cells([12], time_hour="2013-13-45T25:70:00Z"),
         quarantined={"datetime:time_hour": 1}, bad_rows=(12,)),
    Case("month as a name in every row", columns(lambda df: df.assign(month="Jan")),
         error=("914 of 914 rows", "parseable:month: 914", "rule: max_bad_fraction")),
    # the file as a whole
    Case("empty file", lambda d: b"", error=("is empty", "rule: not_empty")),
    Case("blank lines only", lambda d: b"\n \r\n", error=("is empty", "rule: not_empty")),
    Case("zero flights: header only", lambda d: d.split(b"\n", 1)[0] + b"\n",
         error=("table 'flights' has 0 rows", "rule: min_rows", "re-delivery")),
    Case("zero weather observations: header only", lambda d: d.split(b"\n", 1)[0] + b"\n", table="weather",
         quarantined={}, rows_in=0),
    Case("header without a newline", lambda d: d.split(b"\n", 1)[0],
         error=("table 'flights' has 0 rows", "rule: min_rows")),
    Case("truncated last line", lambda d: d[:-40],
         error=("the file looks truncated", "row 915", "Expected 19 columns, got 13", "rule: parseable")),
    Case("truncated inside the last field", last_line(lambda line: line[:-5]),
         quarantined={"datetime:time_hour": 1}, bad_rows=(913,)),
    Case("truncated after the last comma", last_line(lambda line: line.rsplit(b",", 1)[0] + b","),
         quarantined={"not_null:time_hour": 1}, bad_rows=(913,)),
    Case("no final newline", lambda d: d.rstrip(b"\n"), quarantined={}),
    Case("semicolon delimiter", lambda d: d.replace(b",", b";"), error=("';' as its delimiter", "rule: delimiter")),
    Case("tab delimiter", lambda d: d.replace(b",", b"\t"), error=("tab as its delimiter", "rule: delimiter")),
    Case("latin-1 value", latin1_in_row(4, "tailnum", "N\u00c91JB"),
         error=("byte 0xc9 in line 6, column 'tailnum' is not UTF-8", "rule: parseable")),
    Case("latin-1 header", lambda d: d.replace(b"tailnum", "tailn\u00fam".encode("latin-1"), 1),
         error=("is not UTF-8 encoded", "header", "rule: encoding")),
    Case("UTF-16", lambda d: d.decode().encode("utf-16"), error=("UTF-16", "rule: encoding")),
    Case("UTF-16 without a byte-order mark", lambda d: d.decode().encode("utf-16-le"),
         error=("UTF-16", "rule: encoding")),
    Case("byte-order mark", lambda d: b"\xef\xbb\xbf" + d, quarantined={}),
    Case("CRLF line ends", lambda d: d.replace(b"\n", b"\r\n"), quarantined={}),
    Case("byte-order mark and CRLF", lambda d: b"\xef\xbb\xbf" + d.replace(b"\n", b"\r\n"), quarantined={}),
    Case("CR line ends", lambda d: d.replace(b"\n", b"\r"), quarantined={}),
    Case("blank lines between rows", lambda d: d.replace(b"\n", b"\n\n"), quarantined={}),
    Case("unbalanced quote", replace_nth_line(3, lambda line: line.replace(b",", b',"', 1)),
         error=("a double quote is opened and never closed", "row 4 (counting the header as row 1)",
                "rule: parseable")),
    Case("a row with an extra field", replace_nth_line(3, lambda line: line + b",extra"),
         error=("1 row(s) do not have the header's 19 fields", "row 4", "Expected 19 columns, got 20",
                "rule: parseable")),
    Case("an HTML error page", lambda d: b"<html><body>502 Bad Gateway</body></html>\n",
         error=("missing required column(s) ['year'", "rule: required_columns")),
    # rows and values
    Case("duplicated rows", lambda d: d + b"\n".join(d.split(b"\n")[1:6]) + b"\n",
         quarantined={FLIGHT_KEY: 5}, rows_in=919),
    Case("out-of-range values", cells([0, 1], distance="0", dep_delay="5000"),
         quarantined={"min:distance": 2, "max:dep_delay": 2}, bad_rows=(0, 1)),
    Case("impossible scheduled time 25:70", cells([20, 21, 22], sched_dep_time="2570", hour="25", minute="70"),
         quarantined={"max:sched_dep_time": 3, "clock_time:sched_dep_time": 3, "max:hour": 3, "max:minute": 3},
         bad_rows=(20, 21, 22)),
    Case("impossible departure time 12:61", cells([30], dep_time="1261.0"),
         quarantined={"clock_time:dep_time": 1}, bad_rows=(30,)),
    Case("impossible arrival time 25:75", cells([31], arr_time="2575"),
         quarantined={"max:arr_time": 1, "clock_time:arr_time": 1}, bad_rows=(31,)),
    Case("scheduled time disagrees with hour and minute", cells([32], minute="59"),
         quarantined={"consistent:hour_minute": 1}, bad_rows=(32,)),
    Case("nulls in required columns", cells([40, 41, 42], carrier=""),
         quarantined={"not_null:carrier": 3}, bad_rows=(40, 41, 42)),
    Case("NA written for a required number", cells([43], distance="NA"),
         quarantined={"not_null:distance": 1}, bad_rows=(43,)),
    Case("nulls beyond the contract's limit", share(0.6, tailnum=""),
         error=("column 'tailnum' is null in 550 of 914 rows", "rule: max_null_fraction")),
    Case("too many broken rows", share(0.10, origin="XXX"),
         error=("91 of 914 rows", "allowed:origin: 91", "rule: max_bad_fraction")),
    Case("rows of another day", cells([50, 51, 52], day="4"),
         quarantined={"partition_date": 3}, bad_rows=(50, 51, 52)),
    Case("the file of another day", columns(lambda df: df.assign(day="4")),
         error=("914 of 914 rows", "partition_date: 914", "rule: max_bad_fraction")),
    Case("unknown airport", cells([60], origin="BOS"), quarantined={"allowed:origin": 1}, bad_rows=(60,)),
    Case("negative wind speed", cells([0], wind_speed="-3"), table="weather",
         quarantined={"min:wind_speed": 1}, bad_rows=(0,)),
    Case("weather missing a column", columns(lambda df: df.drop(columns=["visib"])), table="weather",
         error=("['visib'] of table 'weather'", "rule: required_columns")),
    Case("aircraft without a tail number", cells([0], tailnum=""), table="planes",
         quarantined={"not_null:tailnum": 1}, bad_rows=(0,)),
]


def _land(tmp_path, table: str, data: bytes) -> tuple[str, object]:
    store = st.Storage(str(tmp_path / "root"))
    path = landing_file(store.landing, table, None if table == "planes" else DAY)
    target = store.target(path)
    st.write_bytes(target, data)
    return path, target


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_landing_file(case, delivered, tmp_path):
    contract = CONTRACTS[case.table]
    original = delivered[case.table]
    data = case.make(original)
    assert data != original, "the case must change the file"
    path, target = _land(tmp_path, case.table, data)
    mtime = os.stat(path).st_mtime_ns
    day = None if case.table == "planes" else DAY

    def ingest_and_validate():
        frame = parse_landing_file(st.read_bytes(target), path, contract)
        return validate_table(frame, contract, path, date=day)

    if case.error is not None:
        with pytest.raises(ContractViolation) as info:
            ingest_and_validate()
        message = str(info.value)
        assert path in message
        for part in case.error:
            assert part in message, f"{part!r} not in {message!r}"
    else:
        result = ingest_and_validate()
        report = result.report
        assert report["quarantined_by_rule"] == case.quarantined
        assert report["source"] == path
        expected_in = len(frame(original)) if case.rows_in is None else case.rows_in
        assert report["rows_in"] == expected_in
        assert report["rows_quarantined"] == len(result.quarantine) == expected_in - report["rows_clean"]
        for rules in result.quarantine[RULES]:
            assert set(rules.split(";")) <= set(case.quarantined)
        # the clean rows are exactly the delivered rows that were not broken, value for value
        reference = validate_table(parse_landing_file(original, path, contract), contract, path, date=day)
        assert reference.report["rows_quarantined"] == 0
        want = reference.clean.drop(index=list(case.bad_rows)).reset_index(drop=True)
        if case.rows_in == 0:
            want = want.iloc[:0]
        got = result.clean
        if case.id == "whole numbers written as floats":
            got = got.astype(want.dtypes.to_dict())
        pd.testing.assert_frame_equal(got, want)

    with open(path, "rb") as fh:
        assert fh.read() == data, "the landing file must never be modified"
    assert os.stat(path).st_mtime_ns == mtime
    assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)], "nothing written beside it"


def test_the_catalogue_starts_from_clean_real_files(delivered):
    """Every case breaks a file that is itself entirely clean, and the cell editing used to
    build the cases reproduces it byte for byte."""
    for table, contract in CONTRACTS.items():
        data = delivered[table]
        assert csv_bytes(frame(data)) == data
        result = validate_table(parse_landing_file(data, table, contract), contract, table,
                                date=None if table == "planes" else DAY)
        assert result.report["rows_quarantined"] == 0 and result.report["rows_in"] > 0
    assert len(frame(delivered["flights"])) == 914


def test_quarantined_rows_keep_the_delivered_values_and_name_the_unparseable_column(delivered, tmp_path):
    data = cells([0, 1, 2], flight="UA707")(delivered["flights"])
    result = validate_table(parse_landing_file(data, "f.csv", FLIGHTS), FLIGHTS, "f.csv", date=DAY)
    original = frame(delivered["flights"]).iloc[:3]
    assert result.quarantine[PARSE_ERRORS].tolist() == ["flight"] * 3
    assert result.quarantine[RULES].tolist() == ["parseable:flight;not_null:flight"] * 3
    assert result.quarantine["tailnum"].tolist() == original["tailnum"].tolist()
    assert result.quarantine["flight"].isna().all()


def test_na_is_a_value_in_a_text_column_and_no_value_in_a_number_column(delivered):
    data = cells([0], carrier="NA", dep_delay="NA")(delivered["flights"])
    result = validate_table(parse_landing_file(data, "f.csv", FLIGHTS), FLIGHTS, "f.csv", date=DAY)
    assert result.report["rows_quarantined"] == 0
    assert result.clean.loc[0, "carrier"] == "NA" and pd.isna(result.clean.loc[0, "dep_delay"])
