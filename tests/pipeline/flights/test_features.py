import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipeline.description import builtin
from pipeline.flights import features as fl
from pipeline.validate import RULES, validate_table

DAY = dt.date(2013, 1, 10)
DS = builtin()  # pipeline/flights/dataset.toml


def build(flights, weather, planes, history, date, trailing_days):
    """The day's feature partition as the FeaturePartition stage builds it from dataset.toml."""
    return DS.feature_frame({"flights": flights, "weather": weather}, {"planes": planes}, history, date,
                            trailing_days)


def weather(rows: list[tuple]) -> pd.DataFrame:
    """(origin, hour, temp) rows; the other weather features get distinct fixed values."""
    df = pd.DataFrame(rows, columns=["origin", "hour", "temp"])
    for i, col in enumerate(fl.WEATHER_FEATURES):
        if col != "temp":
            df[col] = float(i)
    df["origin"] = df["origin"].astype("string")
    df["hour"] = df["hour"].astype("Int64")
    return df


def planes(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["tailnum", "year", "seats", "engines", "engine"])
    return df.astype({"tailnum": "string", "year": "float64", "seats": "Int64", "engines": "Int64",
                      "engine": "string"})


NO_PLANES = planes([])
NO_WEATHER = weather([])


@pytest.fixture
def history_of(make_flight, make_flights):
    def build(rows: list[tuple]) -> pd.DataFrame:
        """(date, carrier, origin, dest, arr_delay) rows of earlier days."""
        out = []
        for i, (day, carrier, origin, dest, delay) in enumerate(rows):
            out.append(make_flight(year=day.year, month=day.month, day=day.day, carrier=carrier,
                                   origin=origin, dest=dest, arr_delay=delay, flight=1000 + i))
        return DS.history_rows(make_flights(out), DAY)
    return build


# ---- target ------------------------------------------------------------------------------
def test_late_label_is_15_minutes_or_more_and_nan_when_unknown():
    df = pd.DataFrame({"arr_delay": [14.0, 15.0, -5.0, np.nan, 100.0]}, index=[10, 11, 12, 13, 14])
    np.testing.assert_array_equal(DS.label(df), [0.0, 1.0, 0.0, np.nan, 1.0])
    assert DS.target.name == fl.TARGET == "late"


def test_late_label_accepts_nullable_floats():
    df = pd.DataFrame({"arr_delay": pd.Series([20.0, None], dtype="Float64")})
    assert DS.label(df)[0] == 1.0 and np.isnan(DS.label(df)[1])


# ---- schema of the features ---------------------------------------------------------------
def test_no_outcome_column_is_a_feature():
    assert not set(DS.outcome_columns) & set(DS.features)
    assert DS.target.name not in DS.features and DS.target.column in DS.outcome_columns
    assert set(DS.drift_alert_features) <= set(DS.features)
    assert set(DS.categorical_features).isdisjoint(DS.numeric_features)
    assert set(fl.WEATHER_FEATURES + fl.TRAILING_FEATURES) <= set(DS.numeric_features)


def test_the_feature_function_never_sees_the_days_outcomes(make_flights, make_flight, monkeypatch):
    seen = {}
    original = fl.build_features

    def spy(day):
        seen["columns"] = set(day.rows.columns) | set(day.tables["flights"].columns)
        return original(day)

    monkeypatch.setattr(fl, "build_features", spy)
    build(make_flights([make_flight()]), NO_WEATHER, NO_PLANES, DS.history_rows(make_flights([]), DAY), DAY, 7)
    assert seen["columns"] and not seen["columns"] & set(DS.outcome_columns)


def test_build_features_outputs_keys_features_target_only(make_flights, make_flight):
    out = build(make_flights([make_flight()]), NO_WEATHER, NO_PLANES,
                            DS.history_rows(make_flights([]), DAY), DAY, trailing_days=7)
    assert list(out.columns) == DS.output_columns
    assert not set(DS.outcome_columns) & set(out.columns)


def test_history_of_the_same_or_a_later_date_raises(make_flights, make_flight, history_of):
    today = make_flights([make_flight()])
    for bad_day in (DAY, DAY + dt.timedelta(days=3)):
        history = history_of([(DAY - dt.timedelta(days=1), "UA", "EWR", "ORD", 0.0),
                              (bad_day, "UA", "EWR", "ORD", 0.0)])
        with pytest.raises(ValueError, match=r"history for features of 2013-01-10 contains rows of 2013-01-10 "
                                             r"or later: trailing aggregates may only use earlier days"):
            build(today, NO_WEATHER, NO_PLANES, history, DAY, trailing_days=7)


# ---- row-level features ---------------------------------------------------------------------
def test_calendar_clock_and_count_features(make_flights, make_flight):
    df = make_flights([
        make_flight(flight=1, sched_dep_time=1345, sched_arr_time=2359, origin="EWR"),
        make_flight(flight=2, sched_dep_time=1300, origin="EWR"),
        make_flight(flight=3, sched_dep_time=600, origin="EWR"),
        make_flight(flight=4, sched_dep_time=1310, origin="JFK"),
    ])
    out = build(df, NO_WEATHER, NO_PLANES, DS.history_rows(make_flights([]), DAY), DAY, trailing_days=7)
    assert out["sched_dep_minutes"].tolist() == [13 * 60 + 45, 13 * 60, 6 * 60, 13 * 60 + 10]
    assert out["sched_arr_minutes"].iloc[0] == 23 * 60 + 59
    assert out["origin_flights_day"].tolist() == [3.0, 3.0, 3.0, 1.0]
    assert out["origin_flights_hour"].tolist() == [2.0, 2.0, 1.0, 1.0]
    assert (out["day_of_week"] == 3.0).all()  # 2013-01-10 was a Thursday
    assert (out["day_of_year"] == 10.0).all()
    assert (out["date"] == "2013-01-10").all()


def test_weather_joined_at_scheduled_hour_by_origin(make_flights, make_flight):
    wx = weather([("EWR", 5, 10.0), ("EWR", 6, 20.0), ("EWR", 9, 90.0), ("JFK", 5, 30.0), ("JFK", 13, 31.0)])
    df = make_flights([
        make_flight(flight=1, origin="EWR", sched_dep_time=600),   # EWR 6h -> 20
        make_flight(flight=2, origin="JFK", sched_dep_time=600),   # JFK: nearest hour 5 -> 30
        make_flight(flight=3, origin="EWR", sched_dep_time=500),   # EWR 5h -> 10
        make_flight(flight=4, origin="LGA", sched_dep_time=600),   # no LGA weather -> NaN
        make_flight(flight=5, origin="JFK", sched_dep_time=900),   # JFK 5h and 13h both > 2h away -> NaN
        make_flight(flight=6, origin="EWR", sched_dep_time=2000),  # EWR 9h is 11h away -> NaN
    ])
    out = build(df, wx, NO_PLANES, DS.history_rows(make_flights([]), DAY), DAY, trailing_days=7)
    assert out["flight"].tolist() == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(out["temp"].to_numpy(), [20.0, 30.0, 10.0, np.nan, np.nan, np.nan])
    assert out["wind_speed"].iloc[0] == float(fl.WEATHER_FEATURES.index("wind_speed"))


def test_planes_joined_by_tailnum(make_flights, make_flight):
    pl = planes([("N1", 2003.0, 150, 2, "Turbo-fan"), ("N2", np.nan, 8, 1, "Reciprocating"),
                 ("N1", 1990.0, 999, 4, "dup")])  # a duplicate tailnum must not multiply rows
    df = make_flights([make_flight(flight=1, tailnum="N2"), make_flight(flight=2, tailnum="N1"),
                       make_flight(flight=3, tailnum="N999"), make_flight(flight=4, tailnum=None),
                       make_flight(flight=5, tailnum="N1")])
    out = build(df, NO_WEATHER, pl, DS.history_rows(make_flights([]), DAY), DAY, trailing_days=7)
    assert len(out) == 5
    assert out["flight"].tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(out["plane_age"].to_numpy(), [np.nan, 10.0, np.nan, np.nan, 10.0])
    np.testing.assert_array_equal(out["plane_seats"].to_numpy(), [8.0, 150.0, np.nan, np.nan, 150.0])
    np.testing.assert_array_equal(out["plane_engines"].to_numpy(), [1.0, 2.0, np.nan, np.nan, 2.0])
    assert out["plane_engine"].tolist()[:2] == ["Reciprocating", "Turbo-fan"]
    assert out["plane_engine"].isna().tolist() == [False, False, True, True, False]


def test_output_rows_match_input_flights_in_order_with_their_target(make_many_flights, history_of):
    df = make_many_flights(60)
    df = df.iloc[::-1].set_index(pd.RangeIndex(100, 160))  # unsorted hours, non-default index
    wx = weather([(o, h, float(h)) for o in ("EWR", "JFK", "LGA") for h in range(24)]
                 + [("EWR", 7, 99.0)])  # duplicated observation must not multiply rows
    pl = planes([(f"N{i:03d}XX", 2000.0 + i % 10, 100 + i, 2, "Turbo-fan") for i in range(0, 60, 2)])
    history = history_of([(DAY - dt.timedelta(days=d), c, o, "ORD", float(10 * d))
                          for d in (1, 2, 3) for c in ("UA", "AA") for o in ("EWR", "JFK")])
    out = build(df, wx, pl, history, DAY, trailing_days=7)
    assert len(out) == len(df)
    assert out["flight"].tolist() == df["flight"].tolist()
    assert out["tailnum"].tolist() == df["tailnum"].tolist()
    expected_late = (df["arr_delay"].to_numpy(dtype=float) >= 15).astype(float)
    np.testing.assert_array_equal(out[DS.target.name].to_numpy(), expected_late)
    assert (out["temp"].to_numpy()[df["hour"].to_numpy() != 7] == df["hour"].to_numpy()[df["hour"].to_numpy() != 7]).all()
    has_plane = df["flight"].to_numpy() % 2 == 1  # tail N{i} with even i <=> flight i + 1 odd
    assert out["plane_seats"].notna().to_numpy().tolist() == has_plane.tolist()


# ---- trailing aggregates --------------------------------------------------------------------
def test_trailing_rates_use_only_history_within_trailing_days(make_flights, make_flight, history_of):
    d = lambda n: DAY - dt.timedelta(days=n)  # noqa: E731
    history = history_of([
        # 2013-01-06 is outside a 3-day window (01-07..01-09)
        (d(4), "UA", "EWR", "ORD", 60.0), (d(4), "UA", "EWR", "ORD", 60.0),
        (d(4), "ZZ", "EWR", "ORD", 60.0), (d(4), "ZZ", "EWR", "ORD", 60.0),
        (d(3), "UA", "EWR", "ORD", 30.0), (d(3), "UA", "EWR", "ORD", 0.0),
        (d(2), "UA", "EWR", "ORD", 30.0), (d(2), "AA", "JFK", "MIA", 0.0),
        (d(1), "UA", "EWR", "ORD", 30.0), (d(1), "AA", "JFK", "MIA", 30.0),
        (d(1), "AA", "JFK", "MIA", np.nan),  # cancelled: no label, left out
    ])
    today = make_flights([
        make_flight(flight=1, carrier="UA", origin="EWR", dest="ORD"),
        make_flight(flight=2, carrier="AA", origin="JFK", dest="MIA"),
        make_flight(flight=3, carrier="ZZ", origin="LGA", dest="ATL"),
    ])
    out = build(today, NO_WEATHER, NO_PLANES, history, DAY, trailing_days=3)
    p = 4 / 6  # overall late rate of the labelled rows within the window
    ua, aa = (3 + 20 * p) / (4 + 20), (1 + 20 * p) / (2 + 20)
    y = (1 + 20 * p) / (1 + 20)
    np.testing.assert_allclose(out["late_rate_carrier_7d"], [ua, aa, p])
    np.testing.assert_allclose(out["late_rate_route_7d"], [ua, aa, p])
    np.testing.assert_allclose(out["late_rate_origin_7d"], [ua, aa, p])
    np.testing.assert_allclose(out["late_rate_origin_1d"], [y, y, p])
    np.testing.assert_allclose(out["late_rate_carrier_1d"], [y, y, p])
    np.testing.assert_allclose(out["late_rate_all_1d"], [1.0, 1.0, 1.0])

    wider = build(today, NO_WEATHER, NO_PLANES, history, DAY, trailing_days=4)
    p4 = 8 / 10
    np.testing.assert_allclose(wider["late_rate_carrier_7d"].iloc[2], (2 + 20 * p4) / (2 + 20))


def test_trailing_rates_are_nan_without_history(make_flights, make_flight):
    out = build(make_flights([make_flight()]), NO_WEATHER, NO_PLANES, DS.history_rows(make_flights([]), DAY), DAY, 7)
    assert out[fl.TRAILING_FEATURES].isna().all().all()


def test_one_day_rates_are_nan_when_yesterday_is_missing(make_flights, make_flight, history_of):
    history = history_of([(DAY - dt.timedelta(days=2), "UA", "EWR", "ORD", 30.0)])
    out = build(make_flights([make_flight()]), NO_WEATHER, NO_PLANES, history, DAY, 7)
    assert out["late_rate_carrier_7d"].iloc[0] == pytest.approx((1 + 20 * 1.0) / 21)
    assert out[["late_rate_origin_1d", "late_rate_carrier_1d", "late_rate_all_1d"]].isna().all().all()


# ---- the FLIGHTS contract -------------------------------------------------------------------
def test_many_valid_flights_are_clean(make_many_flights):
    df = make_many_flights(40)
    res = validate_table(df, fl.FLIGHTS, "flights.csv", date=DAY)
    assert len(res.clean) == 40 and len(res.quarantine) == 0


def test_impossible_clock_times_are_quarantined(make_many_flights, make_flight, make_flights):
    good = make_many_flights(100)
    bad = make_flights([
        make_flight(flight=9001, sched_dep_time=2570, hour=5, minute=70),
        make_flight(flight=9002, dep_time=1261.0),
        make_flight(flight=9003, arr_time=2400.0),  # midnight as 2400 is a real clock time
        make_flight(flight=9004, sched_dep_time=700, hour=6, minute=0),
    ])
    df = pd.concat([good, bad], ignore_index=True)
    res = validate_table(df, fl.FLIGHTS, "flights_2013-01-10.csv", date=DAY)
    rules = dict(zip(res.quarantine["flight"].tolist(), res.quarantine[RULES].tolist()))
    assert set(rules) == {9001, 9002, 9004}
    assert "clock_time:sched_dep_time" in rules[9001].split(";")
    assert "max:sched_dep_time" in rules[9001].split(";")
    assert rules[9002] == "clock_time:dep_time"
    assert rules[9004] == "consistent:hour_minute"
    assert 9003 in res.clean["flight"].tolist()
    assert res.report["quarantined_by_rule"]["clock_time:sched_dep_time"] == 1


def test_flights_contract_rejects_unknown_origin_and_bad_carrier(make_many_flights, make_flight, make_flights):
    df = pd.concat([make_many_flights(100),
                    make_flights([make_flight(flight=9001, origin="BOS"), make_flight(flight=9002, carrier="u1")])],
                   ignore_index=True)
    res = validate_table(df, fl.FLIGHTS, "flights.csv", date=DAY)
    assert res.quarantine[RULES].tolist() == ["allowed:origin", "pattern:carrier"]
