import pandas as pd
import pytest

from pipeline.contracts import Column, ContractViolation, TableContract
from pipeline.flights.features import FLIGHTS
from pipeline.ingest import PARSE_ERRORS, parse_landing_file

T = TableContract("t", (Column("id", "int"), Column("x", "float"), Column("name", "string")))
SOURCE = "/landing/t/t_2013-01-01.csv"


def expected(ids, xs, names, errors=None) -> pd.DataFrame:
    return pd.DataFrame({
        "id": pd.Series(ids, dtype="Int64"),
        "x": pd.Series(xs, dtype="float64"),
        "name": pd.Series(names, dtype="string"),
        PARSE_ERRORS: pd.Series(errors or [None] * len(ids), dtype="string"),
    })


def test_types_come_from_the_schema():
    df = parse_landing_file(b"id,x,name\n1,2.5,a\n2,,b\n3,7,\n", SOURCE, T)
    pd.testing.assert_frame_equal(df, expected([1, 2, 3], [2.5, None, 7.0], ["a", "b", None]))


def test_column_order_and_extra_columns_do_not_matter_and_strings_are_trimmed():
    df = parse_landing_file(b"name,extra,x,id\n a ,zzz,1.5,7\nb,,2,8\n", SOURCE, T)
    pd.testing.assert_frame_equal(df, expected([7, 8], [1.5, 2.0], ["a", "b"]))


def test_quoted_fields_keep_commas():
    df = parse_landing_file(b'"id","x","name"\n1,2,"a,b"\n', SOURCE, T)
    pd.testing.assert_frame_equal(df, expected([1], [2.0], ["a,b"]))


def test_header_only_file_gives_zero_typed_rows():
    df = parse_landing_file(b"id,x,name\n", SOURCE, T)
    pd.testing.assert_frame_equal(df, expected([], [], []))


def test_bom_and_crlf_parse_like_a_plain_file():
    plain = parse_landing_file(b"id,x,name\n1,2.0,a\n2,3,b\n", SOURCE, T)
    bom_crlf = parse_landing_file(b"\xef\xbb\xbfid,x,name\r\n1,2.0,a\r\n2,3,b\r\n", SOURCE, T)
    pd.testing.assert_frame_equal(bom_crlf, plain)
    no_final_newline = parse_landing_file(b"id,x,name\r\n1,2.0,a\r\n2,3,b", SOURCE, T)
    pd.testing.assert_frame_equal(no_final_newline, plain)


def test_missing_column_names_file_column_and_rule():
    with pytest.raises(ContractViolation,
                       match=r"landing file /landing/t/t_2013-01-01\.csv is missing required column\(s\) "
                             r"\['x'\] of table 't' \(rule: required_columns\); found columns \['id', 'name'\]"):
        parse_landing_file(b"id,name\n1,a\n", SOURCE, T)


@pytest.mark.parametrize("data", [b"", b"  \n\r\n"])
def test_empty_file_names_file_and_expected_columns(data):
    with pytest.raises(ContractViolation,
                       match=r"landing file /landing/t/t_2013-01-01\.csv is empty .*\['id', 'x', 'name'\]"):
        parse_landing_file(data, SOURCE, T)


def test_non_utf8_header_is_an_encoding_error():
    with pytest.raises(ContractViolation, match=r"landing file .*t_2013-01-01\.csv is not UTF-8 encoded "
                                                r"\(rule: encoding\)"):
        parse_landing_file("id,x,name,caf\u00e9\n1,2,a,b\n".encode("latin-1"), SOURCE, T)


def test_non_utf8_value_is_a_parse_error_naming_the_file():
    with pytest.raises(ContractViolation, match=r"landing file .*t_2013-01-01\.csv cannot be parsed as "
                                                r"UTF-8 CSV \(rule: parseable\)"):
        parse_landing_file("id,x,name\n1,2,Montr\u00e9al\n".encode("latin-1"), SOURCE, T)


def test_ragged_row_is_a_parse_error_naming_the_file():
    with pytest.raises(ContractViolation, match=r"t_2013-01-01\.csv cannot be parsed .*\(rule: parseable\).*"
                                                r"Expected 3 columns, got 2"):
        parse_landing_file(b"id,x,name\n1,2,a\n3,4\n", SOURCE, T)


def test_unparseable_float_becomes_null_and_is_named_in_parse_errors():
    df = parse_landing_file(b"id,x,name\n1,abc,a\n2,3.5,b\n", SOURCE, T)
    pd.testing.assert_frame_equal(df, expected([1, 2], [None, 3.5], ["a", "b"], ["x", None]))


def test_unparseable_int_becomes_null_and_is_named_in_parse_errors():
    df = parse_landing_file(b"id,x,name\n1,abc,a\n2.5,1,b\n3.0,2,c\nq,r,d\n", SOURCE, T)
    pd.testing.assert_frame_equal(
        df, expected([1, None, 3, None], [None, 1.0, 2.0, None], ["a", "b", "c", "d"],
                     ["x", "id", None, "id;x"]))


def test_int_out_of_int64_range_becomes_null_and_is_named_in_parse_errors():
    df = parse_landing_file(b"id,x,name\n99999999999999999999,1,a\n2,2,b\n", SOURCE, T)
    pd.testing.assert_frame_equal(df, expected([None, 2], [1.0, 2.0], ["a", "b"], ["id", None]))


def test_header_names_padded_with_spaces_are_accepted():
    df = parse_landing_file(b"id, x, name\n1,2,a\n", SOURCE, T)
    pd.testing.assert_frame_equal(df, expected([1], [2.0], ["a"]))


def test_flights_row_parses_with_contract_types():
    data = (b"year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,carrier,"
            b"flight,tailnum,origin,dest,air_time,distance,hour,minute,time_hour\n"
            b"2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z\n"
            b"2013,1,1,,600,,,830,,AA,1,,JFK,MIA,,1089,6,0,2013-01-01T11:00:00Z\n")
    df = parse_landing_file(data, "flights.csv", FLIGHTS)
    assert list(df.columns) == FLIGHTS.names + [PARSE_ERRORS]
    assert str(df["year"].dtype) == "Int64" and df["dep_time"].dtype == "float64"
    assert df["distance"].dtype == "float64" and str(df["carrier"].dtype) == "string"
    assert df["sched_dep_time"].tolist() == [515, 600]
    assert df["dep_time"].iloc[0] == 517.0 and pd.isna(df["dep_time"].iloc[1])
    assert df["tailnum"].iloc[0] == "N14228" and pd.isna(df["tailnum"].iloc[1])
    assert df[PARSE_ERRORS].isna().all()
