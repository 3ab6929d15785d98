"""pipeline.waiting: what a wait for landing files says, when it gives up, and when data is late."""
from __future__ import annotations

import datetime as dt

import pytest

from pipeline import waiting
from pipeline.waiting import Freshness, Pending, parse_freshness, wait_for

DAY = dt.date(2013, 2, 20)
START = dt.datetime(2013, 2, 21, 8, 0, tzinfo=dt.timezone.utc)  # 03:00 in New York
FLIGHTS = Pending("flights", DAY, "flights/flights_2013-02-20.csv")
WEATHER = Pending("weather", DAY, "weather/weather_2013-02-20.csv", reason="no done-marker beside it")
RULE = {"flights": Freshness("flights", dt.time(4, 0), "America/New_York")}


class Clock:
    """A clock that moves only when the wait sleeps."""

    def __init__(self):
        self.now = START
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += dt.timedelta(seconds=seconds)


def run(check, seconds=300.0, poll=15.0, report=60.0, rules=None):
    clock, said, alerts = Clock(), [], []
    outcome = wait_for(DAY, check, seconds, poll, report, rules or {}, clock, clock.sleep,
                       lambda line, percent: said.append((clock.now, line, percent)),
                       lambda entry, waited: alerts.append((entry, waited)))
    return outcome, said, alerts, clock


def test_a_wait_says_what_it_waits_for_at_the_start_and_every_report_interval_then_gives_up():
    outcome, said, _, clock = run(lambda: [FLIGHTS, WEATHER])
    waits = [s for s in said if s[1].startswith("waiting for 2 landing file(s) of 2013-02-20")]
    assert [(t - START).total_seconds() for t, _, _ in waits] == [0, 60, 120, 180, 240]
    assert [p for _, _, p in waits] == [0, 20, 40, 60, 80]
    assert all(line.endswith("giving up at 2013-02-21 08:05:00 UTC ([landing] wait = 300 s): "
                             "flights/flights_2013-02-20.csv (missing), weather/weather_2013-02-20.csv "
                             "(no done-marker beside it)") for _, line, _ in waits)
    assert "since 2013-02-21 08:00:00 UTC (120 s)" in waits[2][1]
    assert said[-1][1] == ("gave up waiting for landing files of 2013-02-20 after 300 s ([landing] wait in luigi.cfg): "
                           "flights/flights_2013-02-20.csv (missing), weather/weather_2013-02-20.csv (no done-marker "
                           "beside it); rerun when they land") and said[-1][2] == 100
    assert outcome.pending == [FLIGHTS, WEATHER] and outcome.waited_seconds == 300
    assert max(clock.slept) <= 15  # polls every `poll` seconds


def test_a_wait_ends_as_soon_as_the_files_are_delivered():
    checks = iter([[FLIGHTS], [FLIGHTS], [FLIGHTS], []])
    outcome, said, _, clock = run(lambda: next(checks))
    assert outcome.pending == [] and outcome.waited_seconds == 45
    assert said[-1][1] == "the landing files of 2013-02-20 are delivered, after 45 s of waiting"


def test_nothing_pending_means_no_wait_and_nothing_said():
    outcome, said, alerts, clock = run(lambda: [])
    assert outcome.pending == [] and said == [] and alerts == [] and clock.slept == []


def test_late_data_is_alerted_once_per_file_when_its_freshness_rule_passes():
    # 04:00 New York on 2013-02-21 is 09:00 UTC: an hour into a two-hour wait
    outcome, said, alerts, _ = run(lambda: [FLIGHTS, WEATHER], seconds=7200, rules=RULE)
    assert [(entry["path"], waited) for entry, waited in alerts] == [("flights/flights_2013-02-20.csv", 3600)]
    assert alerts[0][0] == {"table": "flights", "date": "2013-02-20", "expected_by": "2013-02-21T04:00:00-05:00",
                            "path": "flights/flights_2013-02-20.csv"}
    assert outcome.late == [alerts[0][0]]


def test_a_file_delivered_before_its_moment_or_of_an_earlier_day_is_never_late():
    earlier = Pending("flights", DAY - dt.timedelta(days=1), "flights/flights_2013-02-19.csv")
    _, _, alerts, _ = run(lambda: [earlier], seconds=7200, rules=RULE)
    assert alerts == []
    _, _, alerts, _ = run(lambda: [FLIGHTS], seconds=600, rules=RULE)  # over before 09:00 UTC
    assert alerts == []


def test_freshness_rule_is_read_with_its_zone_and_refuses_what_it_cannot_use():
    rule = parse_freshness("flights", {"expected_by": "04:00", "timezone": "America/New_York"})
    assert rule.expected_at(DAY) == dt.datetime(2013, 2, 21, 9, 0, tzinfo=dt.timezone.utc)
    assert parse_freshness("flights", {"expected_by": "23:30"}).timezone == "UTC"
    assert parse_freshness("flights", {}) is None
    for spec, said in [({"expected_by": "4am"}, "expected_by = '4am': a time of day as \"HH:MM\""),
                       ({"expected_by": "24:00"}, "expected_by = '24:00'"),
                       ({"expected_by": "04:00", "timezone": "Mars/Olympus"}, "timezone = 'Mars/Olympus': an IANA"),
                       ({"timezone": "UTC"}, "timezone = 'UTC' applies to expected_by only")]:
        with pytest.raises(ValueError, match=None) as exc:
            parse_freshness("flights", spec)
        assert str(exc.value).startswith(said)


def test_a_run_that_does_not_wait_names_the_files_and_the_setting():
    assert waiting.not_waited_line(DAY, [FLIGHTS]) == (
        "landing files of 2013-02-20 not delivered: flights/flights_2013-02-20.csv (missing); [landing] wait = 0 "
        "in luigi.cfg, so the run did not wait for them; rerun when they land")
