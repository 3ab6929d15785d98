import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline.contracts import Column, ContractViolation, RowCheck, TableContract
from pipeline.ingest import PARSE_ERRORS
from pipeline.validate import RULES, validate_table

DAY = dt.date(2013, 1, 5)
SRC = "landing/t/t_2013-01-05.csv"

COLUMNS = (
    Column("id", "int", nullable=False),
    Column("v", "float", min=0, max=10),
    Column("cat", "string", allowed=frozenset({"a", "b"})),
    Column("code", "string", pattern=r"[A-Z]{2}"),
    Column("y", "int"),
    Column("m", "int"),
    Column("d", "int"),
)


def contract(**kw) -> TableContract:
    base = dict(name="t", columns=COLUMNS, key=("id",),
                checks=(RowCheck("v_below_id", lambda df: df["v"].isna() | (df["v"] < df["id"])),),
                max_bad_fraction=1.0, date_columns=("y", "m", "d"))
    base.update(kw)
    return TableContract(**base)


def frame(rows: list[tuple], parse_errors: list | None = None) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=[c.name for c in COLUMNS]).astype(
        {"id": "Int64", "v": "float64", "cat": "string", "code": "string", "y": "Int64", "m": "Int64", "d": "Int64"})
    if parse_errors is not None:
        df[PARSE_ERRORS] = pd.Series(parse_errors, dtype="string")
    return df


def ok(i: int, **kw) -> tuple:
    row = {"id": i, "v": 0.5, "cat": "a", "code": "AB", "y": 2013, "m": 1, "d": 5}
    row.update(kw)
    return tuple(row.values())


def test_row_rules_quarantine_rows_with_rule_labels_and_counts():
    df = frame([
        ok(1),
        ok(None),                       # not_null:id (and the check: NA < ... is not valid)
        ok(3, v=-1.0),                  # min:v
        ok(4, v=11.0),                  # max:v, v_below_id
        ok(5, cat="z"),                 # allowed:cat
        ok(6, code="abc"),              # pattern:code
        ok(7, d=6),                     # partition_date
        ok(8, v=None, cat=None, code=None),  # nulls are fine where nullable
        ok(9, v=12.0, cat="q"),         # several rules
    ])
    res = validate_table(df, contract(), SRC, date=DAY)
    assert res.clean["id"].tolist() == [1, 8]
    assert list(res.clean.columns) == list(df.columns)
    labels = dict(zip(res.quarantine["id"].astype("object").where(res.quarantine["id"].notna(), None),
                      res.quarantine[RULES]))
    assert labels == {
        None: "not_null:id;v_below_id",
        3: "min:v",
        4: "max:v;v_below_id",
        5: "allowed:cat",
        6: "pattern:code",
        7: "partition_date",
        9: "max:v;allowed:cat;v_below_id",
    }
    assert res.report["quarantined_by_rule"] == {
        "not_null:id": 1, "min:v": 1, "max:v": 2, "allowed:cat": 2, "pattern:code": 1,
        "v_below_id": 3, "partition_date": 1}
    assert res.report["rows_in"] == 9
    assert res.report["rows_clean"] == 2
    assert res.report["rows_quarantined"] == 7
    assert res.report["table"] == "t" and res.report["source"] == SRC and res.report["date"] == "2013-01-05"
    assert res.report["warnings"] == []


def test_partition_date_is_only_checked_when_a_date_is_given():
    df = frame([ok(1, d=6)])
    assert validate_table(df, contract(), SRC).clean["id"].tolist() == [1]
    assert validate_table(df, contract(), SRC, date=DAY).quarantine[RULES].tolist() == ["partition_date"]


def test_duplicate_keys_keep_the_first_row():
    df = frame([ok(1, v=0.1), ok(2), ok(1, v=0.2), ok(1, v=0.3)])
    res = validate_table(df, contract(), SRC, date=DAY)
    assert res.clean["id"].tolist() == [1, 2]
    assert res.clean["v"].tolist() == [0.1, 0.5]
    assert res.quarantine["v"].tolist() == [0.2, 0.3]
    assert res.quarantine[RULES].tolist() == ["duplicate_key:id", "duplicate_key:id"]
    assert res.report["quarantined_by_rule"] == {"duplicate_key:id": 2}


def test_parse_errors_become_parseable_rules_and_leave_the_clean_table():
    df = frame([ok(1), ok(2, v=None), ok(3, v=None, y=None)],
               parse_errors=[None, "v", "v;y"])
    res = validate_table(df, contract(), SRC)
    assert res.clean["id"].tolist() == [1]
    assert PARSE_ERRORS not in res.clean.columns
    assert res.quarantine[RULES].tolist() == ["parseable:v", "parseable:v;parseable:y"]
    assert res.quarantine[PARSE_ERRORS].tolist() == ["v", "v;y"]
    assert res.report["quarantined_by_rule"] == {"parseable:v": 2, "parseable:y": 1}


def test_parse_error_rule_matches_whole_column_names_only():
    cols = (Column("x", "float"), Column("xx", "float"))
    c = TableContract("t2", cols, max_bad_fraction=1.0)
    df = pd.DataFrame({"x": [1.0, None], "xx": [None, 2.0],
                       PARSE_ERRORS: pd.Series(["xx", "x"], dtype="string")})
    res = validate_table(df, c, SRC)
    assert res.quarantine[RULES].tolist() == ["parseable:xx", "parseable:x"]


def test_missing_column_raises_naming_source_column_and_rule():
    df = frame([ok(1)]).drop(columns=["cat"])
    with pytest.raises(ContractViolation, match=r"landing/t/t_2013-01-05\.csv: missing required column\(s\) "
                                                r"\['cat'\] of table 't' \(rule: required_columns\)"):
        validate_table(df, contract(), SRC)


def test_empty_drop_raises_min_rows():
    with pytest.raises(ContractViolation, match=r"t_2013-01-05\.csv: table 't' has 0 rows, the contract "
                                                r"requires at least 1 \(rule: min_rows\).*re-delivery"):
        validate_table(frame([]), contract(), SRC, date=DAY)


def test_min_rows_above_one():
    with pytest.raises(ContractViolation, match=r"has 2 rows, the contract requires at least 3 \(rule: min_rows\)"):
        validate_table(frame([ok(1), ok(2)]), contract(min_rows=3), SRC)


def test_null_fraction_above_limit_raises_with_counts():
    cols = COLUMNS[:2] + (Column("cat", "string", max_null_fraction=0.1),) + COLUMNS[3:]
    c = contract(columns=cols)
    rows = [ok(i) for i in range(1, 9)] + [ok(9, cat=None), ok(10, cat=None)]
    with pytest.raises(ContractViolation, match=r"t_2013-01-05\.csv: column 'cat' is null in 2 of 10 rows "
                                                r"\(20\.0%\), above the contract's limit of 10\.0% "
                                                r"\(rule: max_null_fraction\)"):
        validate_table(frame(rows), c, SRC)


def test_null_fraction_at_limit_passes_and_is_reported():
    cols = COLUMNS[:2] + (Column("cat", "string", max_null_fraction=0.2),) + COLUMNS[3:]
    rows = [ok(i) for i in range(1, 9)] + [ok(9, cat=None), ok(10, cat=None)]
    res = validate_table(frame(rows), contract(columns=cols), SRC)
    assert res.report["null_rates"]["cat"] == pytest.approx(0.2)
    assert res.report["null_rates"]["id"] == 0.0
    assert len(res.clean) == 10


def test_too_many_bad_rows_raises_with_counts_per_rule():
    rows = [ok(i) for i in range(1, 18)] + [ok(18, v=-1.0), ok(19, v=-2.0), ok(20, cat="z")]
    with pytest.raises(ContractViolation,
                       match=r"t_2013-01-05\.csv: 3 of 20 rows \(15\.0%\) of table 't' break the contract, above "
                             r"the limit of 5\.0% \(rule: max_bad_fraction\); rows per rule: min:v: 2, allowed:cat: 1"):
        validate_table(frame(rows), contract(max_bad_fraction=0.05), SRC, date=DAY)


def test_bad_fraction_at_limit_passes():
    rows = [ok(i) for i in range(1, 20)] + [ok(20, v=-1.0)]
    res = validate_table(frame(rows), contract(max_bad_fraction=0.05), SRC, date=DAY)
    assert len(res.clean) == 19 and len(res.quarantine) == 1


def test_row_count_below_recent_median_warns():
    rows = [ok(i) for i in range(1, 11)]
    res = validate_table(frame(rows), contract(), SRC, recent_row_counts=[30, 50, 40])
    assert res.report["warnings"] == [
        "row count 10 is below 50% of the median of the previous 3 days (40) (rule: row_count_vs_recent)"]
    assert validate_table(frame(rows), contract(), SRC, recent_row_counts=[20, 20]).report["warnings"] == []
    assert validate_table(frame(rows), contract(), SRC, recent_row_counts=[]).report["warnings"] == []
    assert validate_table(frame(rows), contract(), SRC).report["warnings"] == []


def test_input_frame_is_not_mutated():
    df = frame([ok(1), ok(1), ok(3, v=-1.0), ok(4, d=9)], parse_errors=[None, None, None, "v"])
    before = df.copy(deep=True)
    res = validate_table(df, contract(), SRC, date=DAY)
    pd.testing.assert_frame_equal(df, before)
    assert RULES not in df.columns
    res.clean.loc[0, "v"] = 99.0
    res.quarantine.loc[0, "v"] = 99.0
    pd.testing.assert_frame_equal(df, before)
    clean = frame([ok(1), ok(2)], parse_errors=[None, None])
    before = clean.copy(deep=True)
    res = validate_table(clean, contract(), SRC, date=DAY)  # no bad row: the clean frame is not copied
    res.clean.loc[0, "v"] = 99.0
    pd.testing.assert_frame_equal(clean, before)


def _sample(rng: np.random.Generator, values: list, n: int, dtype: str) -> pd.Series:
    return pd.Series([values[i] for i in rng.integers(0, len(values), n)], dtype=dtype)


def test_duplicate_keys_are_what_dataframe_duplicated_finds_among_rows_without_nulls():
    rng = np.random.default_rng(7)
    n = 3000
    df = pd.DataFrame({
        "s": _sample(rng, ["a", "b", "A", "a ", "\u00e9", "", None], n, "string"),
        "i": _sample(rng, [-1, 0, 1, 2**62, None], n, "Int64"),
        "f": _sample(rng, [0.0, -0.0, 1.5, float("nan"), float("inf")], n, "float64"),
    })
    for key in [("s",), ("i",), ("f",), ("s", "i"), ("f", "s", "i")]:
        c = TableContract("k", (Column("s", "string"), Column("i", "int"), Column("f", "float")),
                          key=key, max_bad_fraction=1.0)
        want = df.duplicated(list(key), keep="first") & df[list(key)].notna().all(axis=1)
        res = validate_table(df, c, SRC)
        assert res.report["rows_quarantined"] == int(want.sum()) > 0, key
        pd.testing.assert_frame_equal(res.quarantine.drop(columns=[RULES]), df[want].reset_index(drop=True))


def test_string_rules_judge_each_row_as_pandas_does():
    """pattern and datetime_format are evaluated once per distinct value; the verdicts are those
    of pandas' fullmatch and to_datetime on the whole column."""
    rng = np.random.default_rng(11)
    n = 2000
    codes = ["AB", "ab", "A1", "\u00c4B", "AB\n", "A", "ABC", " AB", "", "\u0661\u0662", "12", None]
    times = ["2013-01-01T10:00:00Z", "2013-13-01T10:00:00Z", "2013-01-01 10:00:00Z", "9999-12-31T23:59:59Z",
             "0001-01-01T00:00:00Z", "2013-02-29T00:00:00Z", "2013-01-01T10:00:00Z\n", "2013-1-1T1:0:0Z",
             "\uff12013-01-01T10:00:00Z", "", None]
    df = pd.DataFrame({"code": _sample(rng, codes, n, "string"), "when": _sample(rng, times, n, "string")})
    for pattern in [r"[A-Z]{2}", r"\d\d", r"\w+$", r"A|AB"]:
        c = TableContract("s", (Column("code", "string", pattern=pattern),
                                Column("when", "string", datetime_format="%Y-%m-%dT%H:%M:%SZ")),
                          max_bad_fraction=1.0)
        res = validate_table(df, c, SRC)
        bad_code = df["code"].notna() & ~df["code"].astype("string").str.fullmatch(pattern).fillna(False).astype(bool)
        parsed = pd.to_datetime(df["when"].astype("object"), format="%Y-%m-%dT%H:%M:%SZ", errors="coerce")
        bad_when = df["when"].notna() & parsed.isna()
        want = [";".join(rule for rule, bad in (("pattern:code", c_), ("datetime:when", w)) if bad)
                for c_, w in zip(bad_code, bad_when)]
        got = res.quarantine[RULES].tolist()
        assert got == [w for w in want if w], pattern
        assert 0 < len(got) < n


WHEN_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def timestamped(values: list, datetime_format: str = WHEN_FORMAT, **kw) -> tuple[pd.DataFrame, TableContract]:
    c = TableContract("ts", (Column("id", "int"), Column("when", "string", datetime_format=datetime_format)),
                      max_bad_fraction=1.0, timestamp_column="when", **kw)
    df = pd.DataFrame({"id": pd.Series(range(len(values)), dtype="Int64"),
                       "when": pd.Series(values, dtype="string")})
    return df, c


def test_timestamp_column_quarantines_rows_of_another_date_under_partition_date():
    df, c = timestamped([
        "2013-01-05T00:00:00+0000",
        "2013-01-04T23:59:59+0000",     # partition_date
        "2013-01-05T23:30:00-0500",     # 2013-01-06 in UTC: the date is the value's own, no conversion
        "2013-01-06T00:30:00+0100",     # partition_date, though 2013-01-05 in UTC
        "2013-01-06T10:00:00",          # no offset: datetime:when only, whatever its date
        "not a time",                   # datetime:when only
        None,                           # null: no rule (the column is nullable)
        "2013-01-05T00:00:00+0000",
    ])
    res = validate_table(df, c, SRC, date=DAY)
    assert res.clean["id"].tolist() == [0, 2, 6, 7]
    assert dict(zip(res.quarantine["id"], res.quarantine[RULES])) == {
        1: "partition_date", 3: "partition_date", 4: "datetime:when", 5: "datetime:when"}
    assert res.report["quarantined_by_rule"] == {"datetime:when": 2, "partition_date": 2}
    assert validate_table(df, c, SRC).report["quarantined_by_rule"] == {"datetime:when": 2}  # no date given


def test_timestamp_column_of_one_offset_and_of_none():
    df, c = timestamped(["2013-01-05 23:00 -0500", "2013-01-06 01:00 -0500"], "%Y-%m-%d %H:%M %z")
    assert validate_table(df, c, SRC, date=DAY).quarantine[RULES].tolist() == ["partition_date"]
    df, c = timestamped(["05/01/2013", "06/01/2013", "31/02/2013"], "%d/%m/%Y")
    res = validate_table(df, c, SRC, date=DAY)
    assert res.clean["id"].tolist() == [0]
    assert res.quarantine[RULES].tolist() == ["partition_date", "datetime:when"]


def test_timestamp_column_parses_each_distinct_value_once(monkeypatch):
    parsed: list[int] = []
    to_datetime = pd.to_datetime

    def counting(arg, *args, **kwargs):
        parsed.append(len(arg) if isinstance(arg, pd.Series) else 1)
        return to_datetime(arg, *args, **kwargs)

    values = ["2013-01-05T%02d:00:00+0000" % h for h in range(24)] + ["2013-01-06T00:00:00+0000", "x"]
    df, c = timestamped([values[i % len(values)] for i in range(5000)])
    monkeypatch.setattr(pd, "to_datetime", counting)
    res = validate_table(df, c, SRC, date=DAY)
    assert sum(parsed) == len(values)
    assert res.report["quarantined_by_rule"] == {"datetime:when": 192, "partition_date": 192}


def test_date_rules_are_checked_when_the_contract_is_made():
    cols = (Column("id", "int"), Column("x", "float"), Column("s", "string"),
            Column("when", "string", datetime_format=WHEN_FORMAT))
    with pytest.raises(ValueError, match=r"table 'c': timestamp_column 'nope' is not one of its columns "
                                         r"\['id', 'x', 's', 'when'\]"):
        TableContract("c", cols, timestamp_column="nope")
    for name, kind in [("id", "int"), ("s", "string")]:
        with pytest.raises(ValueError, match=rf"table 'c': timestamp_column '{name}' must name a string column "
                                             rf"with a datetime_format; it has kind '{kind}' and no datetime_format"):
            TableContract("c", cols, timestamp_column=name)
    with pytest.raises(ValueError, match=r"table 'c': set date_columns or timestamp_column, not both"):
        TableContract("c", cols + (Column("m", "int"), Column("d", "int")), date_columns=("id", "m", "d"),
                      timestamp_column="when")
    for date_columns in [("id", "m", "x"), ("id", "m", "dd"), ("id", "m")]:
        with pytest.raises(ValueError, match=r"table 'c': date_columns must name three int columns of the table "
                                             r"\(year, month, day\), not .*; its int columns are \['id', 'm'\]"):
            TableContract("c", cols + (Column("m", "int"),), date_columns=date_columns)
    assert TableContract("c", cols, timestamp_column="when").timestamp_column == "when"
