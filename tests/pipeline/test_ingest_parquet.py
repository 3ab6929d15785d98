import datetime as dt
import io
import re
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.contracts import Column, ContractViolation, TableContract
from pipeline.ingest import PARSE_ERRORS, parse_landing, parse_landing_file
from pipeline.ingest_parquet import parse_landing_parquet
from pipeline.validate import RULES, validate_table
from tests.pipeline.test_ingest import T, expected

SOURCE = "/landing/t/t_2013-01-05.parquet"


def parquet(table: pa.Table | dict) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table if isinstance(table, pa.Table) else pa.table(table), buf)
    return buf.getvalue()


def violation(match: str):
    """pytest.raises for the ContractViolation of SOURCE whose message goes on by `match`."""
    return pytest.raises(ContractViolation, match="^" + re.escape(f"landing file {SOURCE}") + match)


def test_every_mapped_type_reads_into_the_kinds_of_the_contract():
    ts = [dt.datetime(2013, 1, 5, 5, 0), None, dt.datetime(2013, 1, 5, 23, 59, 30, 250)]
    table = pa.table({
        "i8": pa.array([1, None, -128], pa.int8()),
        "i64": pa.array([2**63 - 1, None, -(2**63)], pa.int64()),
        "u64": pa.array([0, None, 2**63 - 1], pa.uint64()),
        "u8_as_float": pa.array([255, None, 0], pa.uint8()),
        "f32": pa.array([1.0, None, -2.0], pa.float32()),
        "f64": pa.array([0.1, None, float("inf")], pa.float64()),
        "f_as_int": pa.array([3.0, None, -0.0], pa.float64()),
        "dec": pa.array([Decimal("12.00"), None, Decimal("-1.50")], pa.decimal128(6, 2)),
        "dec_as_int": pa.array([Decimal("12.00"), None, Decimal("-7")], pa.decimal128(6, 2)),
        "flag": pa.array([True, None, False]),
        "flag_text": pa.array([True, None, False]),
        "s": pa.array([" a ", None, ""], pa.string()),
        "ls": pa.array(["b", None, "c "], pa.large_string()),
        "cat": pa.array(["NYC", None, "NYC"]).dictionary_encode(),
        "n_text": pa.array([7, None, -1], pa.int32()),
        "x_text": pa.array([1.5, None, 2.0], pa.float64()),
        "num_text": pa.array([" 42 ", "NA", "1e3"], pa.string()),
        "ts": pa.array(ts, pa.timestamp("us")),
        "ts_iso": pa.array(ts, pa.timestamp("ms")),
        "day": pa.array([dt.date(2013, 1, 5), None, dt.date(2013, 1, 6)], pa.date32()),
        "nothing": pa.nulls(3),
        "extra": pa.array([[1], [2], [3]]),  # not in the contract: dropped, whatever its type
    })
    contract = TableContract("all", (
        Column("i8", "int"), Column("i64", "int"), Column("u64", "int"), Column("u8_as_float", "float"),
        Column("f32", "float"), Column("f64", "float"), Column("f_as_int", "int"), Column("dec", "float"),
        Column("dec_as_int", "int"), Column("flag", "int"), Column("flag_text", "string"), Column("s", "string"),
        Column("ls", "string"), Column("cat", "string"), Column("n_text", "string"), Column("x_text", "string"),
        Column("num_text", "float"), Column("ts", "string", datetime_format="%Y-%m-%d %H:%M:%S"),
        Column("ts_iso", "string"), Column("day", "string"), Column("nothing", "int"),
    ))
    df = parse_landing_parquet(parquet(table), SOURCE, contract)
    want = pd.DataFrame({
        "i8": pd.Series([1, None, -128], dtype="Int64"),
        "i64": pd.Series([2**63 - 1, None, -(2**63)], dtype="Int64"),
        "u64": pd.Series([0, None, 2**63 - 1], dtype="Int64"),
        "u8_as_float": pd.Series([255.0, None, 0.0], dtype="float64"),
        "f32": pd.Series([1.0, None, -2.0], dtype="float64"),
        "f64": pd.Series([0.1, None, float("inf")], dtype="float64"),
        "f_as_int": pd.Series([3, None, 0], dtype="Int64"),
        "dec": pd.Series([12.0, None, -1.5], dtype="float64"),
        "dec_as_int": pd.Series([12, None, -7], dtype="Int64"),
        "flag": pd.Series([1, None, 0], dtype="Int64"),
        "flag_text": pd.Series(["true", None, "false"], dtype="string"),
        "s": pd.Series(["a", None, None], dtype="string"),
        "ls": pd.Series(["b", None, "c"], dtype="string"),
        "cat": pd.Series(["NYC", None, "NYC"], dtype="string"),
        "n_text": pd.Series(["7", None, "-1"], dtype="string"),
        "x_text": pd.Series(["1.5", None, "2"], dtype="string"),
        "num_text": pd.Series([42.0, None, 1000.0], dtype="float64"),
        "ts": pd.Series(["2013-01-05 05:00:00", None, "2013-01-05 23:59:30"], dtype="string"),
        "ts_iso": pd.Series(["2013-01-05T05:00:00", None, "2013-01-05T23:59:30"], dtype="string"),
        "day": pd.Series(["2013-01-05", None, "2013-01-06"], dtype="string"),
        "nothing": pd.Series([None, None, None], dtype="Int64"),
        PARSE_ERRORS: pd.Series([None, None, None], dtype="string"),
    })
    pd.testing.assert_frame_equal(df, want)


def test_a_frame_reads_alike_from_csv_and_parquet():
    frame = pd.DataFrame({"name": ["a", None, "c"], "x": [1.5, None, 3.0], "extra": [1, 2, 3],
                          "id": pd.Series([1, 2, None], dtype="Int64")})
    from_csv = parse_landing(frame.to_csv(index=False).encode(), SOURCE, T, file_format="csv")
    from_parquet = parse_landing(parquet(pa.Table.from_pandas(frame)), SOURCE, T, file_format="parquet")
    pd.testing.assert_frame_equal(from_parquet, from_csv)
    pd.testing.assert_frame_equal(from_parquet, expected([1, 2, None], [1.5, None, 3.0], ["a", None, "c"]))


def test_zero_rows_give_a_typed_empty_frame():
    table = pa.table({"id": pa.array([], pa.int64()), "x": pa.array([], pa.float64()),
                      "name": pa.array([], pa.string())})
    pd.testing.assert_frame_equal(parse_landing_parquet(parquet(table), SOURCE, T), expected([], [], []))


def test_unknown_format_is_a_value_error():
    with pytest.raises(ValueError, match=r"landing file format must be one of \('csv', 'parquet'\), not 'json'"):
        parse_landing(b"{}", SOURCE, T, file_format="json")


def test_values_that_are_no_number_of_the_kind_become_null_and_parse_errors_of_their_row():
    table = pa.table({
        "id": pa.array([1.0, 2.5, None, float("nan"), float("inf"), 1e19, -3.0], pa.float64()),
        "x": pa.array(["1", "x", "", "NaN", " 2 ", "0x10", "1e2"]),
        "name": pa.array(list("abcdefg")),
    })
    df = parse_landing_parquet(parquet(table), SOURCE, T)
    pd.testing.assert_frame_equal(df, expected(
        [1, None, None, None, None, None, -3], [1.0, None, None, None, 2.0, None, 100.0], list("abcdefg"),
        [None, "id;x", None, None, "id", "id;x", None]))


def test_uint64_above_int64_is_a_parse_error_and_decimals_follow_the_csv_rules():
    table = pa.table({"id": pa.array([2**63, 2**64 - 1, 5], pa.uint64()),
                      "x": pa.array([Decimal("1.25"), Decimal("-0.5"), None], pa.decimal128(4, 2)),
                      "name": pa.array(["a", "b", "c"])})
    df = parse_landing_parquet(parquet(table), SOURCE, T)
    pd.testing.assert_frame_equal(df, expected([None, None, 5], [1.25, -0.5, None], ["a", "b", "c"],
                                               ["id", "id", None]))
    fractional = pa.table({"id": pa.array([Decimal("1.50"), Decimal("2.00")], pa.decimal128(4, 2)),
                           "x": [1.0, 2.0], "name": ["a", "b"]})
    df = parse_landing_parquet(parquet(fractional), SOURCE, T)
    assert df["id"].tolist() == [pd.NA, 2]
    assert df[PARSE_ERRORS].tolist() == ["id", pd.NA]


def test_timestamps_are_formatted_by_the_datetime_format_in_their_own_time_zone():
    contract = TableContract("w", (Column("when", "string", datetime_format="%Y-%m-%dT%H:%M:%SZ"),
                                   Column("local", "string", datetime_format="%d/%m/%Y %H:%M %z"),
                                   Column("day", "string", datetime_format="%Y%m%d")))
    utc = [dt.datetime(2013, 1, 5, 5, 0, 0, 999_999), dt.datetime(2013, 1, 5, 6, 0), None,
           dt.datetime(2013, 1, 5, 5, 0)]
    table = pa.table({
        "when": pa.array([pd.Timestamp(t) if t else None for t in utc], pa.timestamp("ns")),
        "local": pa.array(utc, pa.timestamp("s", tz="UTC")).cast(pa.timestamp("s", tz="America/New_York")),
        "day": pa.array([dt.date(2013, 1, 5)] * 4, pa.date32()),
    })
    df = parse_landing_parquet(parquet(table), SOURCE, contract)
    assert df["when"].tolist() == ["2013-01-05T05:00:00Z", "2013-01-05T06:00:00Z", pd.NA, "2013-01-05T05:00:00Z"]
    assert df["local"].tolist() == ["05/01/2013 00:00 -0500", "05/01/2013 01:00 -0500", pd.NA,
                                    "05/01/2013 00:00 -0500"]
    assert df["day"].tolist() == ["20130105"] * 4
    assert df[PARSE_ERRORS].isna().all()
    res = validate_table(df, contract, SOURCE)
    assert res.report["rows_quarantined"] == 0


def test_missing_column_names_file_columns_found_and_rule():
    data = parquet({"id": [1], "name": ["a"], "y": [2.0]})
    with violation(r" is missing required column\(s\) \['x'\] of table 't' \(rule: required_columns\); "
                   r"found columns \['id', 'name', 'y'\]; unexpected column\(s\) \['y'\]: renamed upstream\?$"):
        parse_landing_parquet(data, SOURCE, T)


def test_a_column_named_twice_is_a_contract_violation():
    table = pa.Table.from_arrays([pa.array([1]), pa.array([1]), pa.array([2.0]), pa.array(["a"])],
                                 names=["id", "id", "x", "name"])
    with violation(r" names column\(s\) \['id'\] of table 't' more than once \(rule: unique_columns\)"):
        parse_landing_parquet(parquet(table), SOURCE, T)


GOOD = parquet({"id": [1, 2], "x": [1.0, 2.0], "name": ["a", "b"]})


@pytest.mark.parametrize("data", [
    b"",
    b"\x00\x01garbage\xff" * 50,
    b"id,x,name\n1,2.0,a\n",              # a CSV delivered under a Parquet name
    GOOD[:len(GOOD) // 2],                # truncated
    GOOD[:-1],                            # the last byte of the footer's magic lost
    GOOD[:4] + b"\x00" * (len(GOOD) - 12) + GOOD[-8:],  # the footer's length points into zeros
    GOOD[:4] + b"\xff" * 8 + GOOD[12:],  # a data page's header overwritten: found on reading the column
], ids=["empty", "garbage", "csv", "half", "no final byte", "zeroed", "bad page"])
def test_unreadable_parquet_names_file_rule_and_reason(data):
    with violation(r" cannot be read as Parquet \(rule: parseable\): .+; ask the upstream system to "
                   r"re-deliver it$"):
        parse_landing_parquet(data, SOURCE, T)


@pytest.mark.parametrize("column, kind, arrow_type", [
    (pa.array([[1, 2], None]), "int", "list<element: int64>"),
    (pa.array([{"a": 1}, None]), "string", "struct<a: int64>"),
    (pa.array([b"\x00", None], pa.binary()), "string", "binary"),
    (pa.array([True, None]), "float", "bool"),
    (pa.array([dt.date(2013, 1, 5), None]), "int", "date32[day]"),
])
def test_a_type_the_kind_cannot_take_fails_the_whole_file(column, kind, arrow_type):
    contract = TableContract("n", (Column("id", "int"), Column("v", kind)))
    data = parquet({"id": [1, 2], "v": column})
    with violation(rf": column 'v' of table 'n' has Parquet type {re.escape(arrow_type)}, which a column of "
                   rf"kind '{kind}' cannot take \(rule: column_type\); ask the upstream system to re-deliver "
                   r"it with the column's type fixed$"):
        parse_landing_parquet(data, SOURCE, contract)


def test_validation_quarantines_parse_errors_alike_for_csv_and_parquet():
    contract = TableContract("t", T.columns + (Column("when", "string", datetime_format="%Y-%m-%d"),),
                             key=("id",), max_bad_fraction=1.0, timestamp_column="when")
    csv = b"id,x,name,when\n1,1.5,a,2013-01-05\n2.5,2,b,2013-01-05\n3,,c,2013-01-06\n4,4,d,2013-01-05\n"
    table = pa.table({
        "id": pa.array([1.0, 2.5, 3.0, 4.0]),
        "x": pa.array([1.5, 2.0, None, 4.0]),
        "name": pa.array(["a", "b", "c", "d"]),
        "when": pa.array([dt.date(2013, 1, 5), dt.date(2013, 1, 5), dt.date(2013, 1, 6), dt.date(2013, 1, 5)]),
    })
    day = dt.date(2013, 1, 5)
    from_csv = validate_table(parse_landing_file(csv, SOURCE, contract), contract, SOURCE, date=day)
    from_parquet = validate_table(parse_landing_parquet(parquet(table), SOURCE, contract), contract, SOURCE, date=day)
    pd.testing.assert_frame_equal(from_parquet.clean, from_csv.clean)
    pd.testing.assert_frame_equal(from_parquet.quarantine, from_csv.quarantine)
    assert from_parquet.report == from_csv.report
    assert from_parquet.clean["id"].tolist() == [1, 4]
    assert from_parquet.quarantine[RULES].tolist() == ["parseable:id", "partition_date"]
    assert from_parquet.quarantine[PARSE_ERRORS].tolist() == ["id", pd.NA]
