"""Waiting for landing files: when a table's file of a day is expected (its freshness rule), how long
a run waits for files not delivered yet, and the lines that say what it waits for and gives up on."""
from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass
from typing import Callable

# The table settings of the freshness rule, for the description's check.
EXPECTED_BY_KEY = "expected_by"
TIMEZONE_KEY = "timezone"
KEYS = (EXPECTED_BY_KEY, TIMEZONE_KEY)
DEFAULT_TIMEZONE = "UTC"
WAIT_SETTING = "[landing] wait"  # how long `mlpipe run` waits, as luigi.cfg names it
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True)
class Freshness:
    """A table's file of day D is expected by `expected_by` on day D+1 in `timezone` (an IANA name)."""
    table: str
    expected_by: dt.time
    timezone: str = DEFAULT_TIMEZONE

    def expected_at(self, day: dt.date) -> dt.datetime:
        """The moment (timezone-aware) the file of `day` is expected by."""
        return dt.datetime.combine(day + dt.timedelta(days=1), self.expected_by,
                                   tzinfo=zoneinfo.ZoneInfo(self.timezone))


def parse_freshness(table: str, spec: dict) -> Freshness | None:
    """The freshness rule of a table's description settings `spec` (None without expected_by).
    Raises ValueError naming the setting and what is allowed."""
    expected_by, zone = spec.get(EXPECTED_BY_KEY), spec.get(TIMEZONE_KEY)
    if expected_by is None:
        if zone is not None:
            raise ValueError(f"{TIMEZONE_KEY} = {zone!r} applies to {EXPECTED_BY_KEY} only: add {EXPECTED_BY_KEY} "
                             "= \"HH:MM\" (the time on the next day by which a day's file is expected) or drop "
                             f"{TIMEZONE_KEY}")
        return None
    match = _TIME.fullmatch(expected_by) if isinstance(expected_by, str) else None
    if match is None:
        raise ValueError(f"{EXPECTED_BY_KEY} = {expected_by!r}: a time of day as \"HH:MM\" (24-hour, 00:00 to 23:59), "
                         "by which the file of day D is expected on day D+1, e.g. expected_by = \"04:00\"")
    zone = DEFAULT_TIMEZONE if zone is None else zone
    if not isinstance(zone, str) or not _is_zone(zone):
        raise ValueError(f"{TIMEZONE_KEY} = {zone!r}: an IANA time zone name such as \"America/New_York\" or "
                         f"\"UTC\" (default {DEFAULT_TIMEZONE}), the zone expected_by is in")
    return Freshness(table=table, expected_by=dt.time(int(match.group(1)), int(match.group(2))), timezone=zone)


def _is_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Pending:
    """A landing file a run waits for: its table and day (None: a reference table), its path relative
    to the landing zone, and why it does not count as delivered (None: it is not there at all)."""
    table: str
    day: dt.date | None
    path: str
    reason: str | None = None

    def describe(self) -> str:
        return f"{self.path} ({'missing' if self.reason is None else self.reason})"


def short_reason(reason: str, landing_root: str) -> str:
    """A readiness reason with the landing zone's prefix taken off the paths it names."""
    prefix = landing_root.rstrip("/") + "/"
    return reason.replace(prefix, "")


@dataclass(frozen=True)
class Wait:
    """A wait for the landing files of `day` that started at `since` (aware) and lasts `seconds`."""
    day: dt.date
    since: dt.datetime
    seconds: float

    @property
    def deadline(self) -> dt.datetime:
        return self.since + dt.timedelta(seconds=self.seconds)

    def over(self, now: dt.datetime) -> bool:
        return now >= self.deadline

    def percent(self, now: dt.datetime) -> int:
        """How much of the wait has passed, 0-100."""
        if self.seconds <= 0:
            return 100
        return max(0, min(100, int((now - self.since).total_seconds() * 100 / self.seconds)))

    def waiting_line(self, pending: list[Pending], now: dt.datetime) -> str:
        """What the wait is for, since when and until when: the log line and the status message."""
        waited = (now - self.since).total_seconds()
        return (f"waiting for {len(pending)} landing file(s) of {self.day} since {_clock(self.since)} "
                f"({waited:.0f} s); giving up at {_clock(self.deadline)} ({WAIT_SETTING} = {self.seconds:g} s): "
                + ", ".join(p.describe() for p in pending))

    def delivered_line(self, now: dt.datetime) -> str:
        return (f"the landing files of {self.day} are delivered, after {(now - self.since).total_seconds():.0f} s "
                "of waiting")

    def gave_up_line(self, pending: list[Pending]) -> str:
        """The last line of a run whose wait ended without the files."""
        return (f"gave up waiting for landing files of {self.day} after {self.seconds:g} s ({WAIT_SETTING} in "
                f"luigi.cfg): " + ", ".join(p.describe() for p in pending) + "; rerun when they land")


def not_waited_line(day: dt.date, pending: list[Pending]) -> str:
    """The last line of a run that did not wait ([landing] wait = 0) for files not delivered."""
    return (f"landing files of {day} not delivered: " + ", ".join(p.describe() for p in pending)
            + f"; {WAIT_SETTING} = 0 in luigi.cfg, so the run did not wait for them; rerun when they land")


def _clock(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def late_files(pending: list[Pending], rules: dict[str, Freshness], day: dt.date,
               now: dt.datetime) -> list[dict]:
    """The files of `day` among `pending` (seen not delivered at `now`) that were expected by an
    earlier moment by their table's freshness rule: {table, date, expected_by (ISO, with its zone),
    path} each. Earlier days' files and tables without a rule are never late here."""
    late = []
    for p in pending:
        rule = rules.get(p.table)
        if rule is None or p.day != day:
            continue
        expected = rule.expected_at(day)
        if now >= expected:
            late.append({"table": p.table, "date": day.isoformat(), "expected_by": expected.isoformat(),
                         "path": p.path})
    return late


def late_line(entry: dict, waited_seconds: float) -> str:
    return (f"late data: {entry['path']} ({entry['table']} of {entry['date']}) was expected by {entry['expected_by']} "
            f"and is not delivered ({waited_seconds:.0f} s waited so far)")


@dataclass(frozen=True)
class Outcome:
    """How a wait ended: the files still not delivered (none: all arrived) and the late ones."""
    wait: Wait
    ended: dt.datetime
    pending: list[Pending]
    late: list[dict]

    @property
    def waited_seconds(self) -> float:
        return (self.ended - self.wait.since).total_seconds()


def wait_for(day: dt.date, check: Callable[[], list[Pending]], seconds: float, poll: float, report: float,
             rules: dict[str, Freshness], clock: Callable[[], dt.datetime], sleep: Callable[[float], None],
             say: Callable[[str, int], None], alert: Callable[[dict, float], None]) -> Outcome:
    """Wait up to `seconds` for the landing files of `day` that `check()` finds not delivered,
    checking every `poll` seconds. At the start and every `report` seconds, `say(line, percent)`
    tells what is waited for; each file of `day` found not delivered after its freshness rule's
    moment is given to `alert(entry, waited_seconds)` once (late_files). Ends as soon as nothing is
    pending, or when the wait is over."""
    wait = Wait(day=day, since=clock(), seconds=seconds)
    next_report, alerted, late = wait.since, set(), []
    while True:
        now, pending = clock(), check()
        for entry in late_files(pending, rules, day, now):
            if entry["path"] not in alerted:
                alerted.add(entry["path"])
                late.append(entry)
                alert(entry, (now - wait.since).total_seconds())
        if not pending:
            if now > wait.since:
                say(wait.delivered_line(now), 100)
            return Outcome(wait, now, [], late)
        if wait.over(now):
            say(wait.gave_up_line(pending), 100)
            return Outcome(wait, now, pending, late)
        if now >= next_report:
            say(wait.waiting_line(pending, now), wait.percent(now))
            while next_report <= now:
                next_report += dt.timedelta(seconds=max(report, 0.001))
        sleep(max(0.0, min(poll, (wait.deadline - now).total_seconds(), (next_report - now).total_seconds())))
