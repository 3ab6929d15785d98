"""What every task shares: the storage factory, lineage hashes derived from parameters and inputs,
and listing which days of an output are complete."""
from __future__ import annotations

import datetime as dt
import html
import time
from typing import Any

import luigi
from luigi.task import flatten

from pipeline import layout
from pipeline import storage as st
from pipeline.hashing import param_hash
from tasks.config import get_storage


class StorageMixin:
    @property
    def store(self) -> st.Storage:
        return get_storage()


def significant_params(task: luigi.Task, leave_out: tuple[str, ...] = ("date",)) -> dict[str, Any]:
    """The values of `task`'s significant luigi parameters (a luigi.Config's too), by name."""
    kinds = dict(task.get_params())
    return {name: value for name, value in task.param_kwargs.items()
            if kinds[name].significant and name not in leave_out}


class Lineage:
    """A task whose output path carries `h=<lineage>`: a hash of everything that shapes the output,
    so a changed parameter, setting or input yields new outputs instead of reusing old ones. It is
    derived, never listed by hand: the task's significant parameters (a new parameter is included
    the moment it is declared), the settings and dataset facts of lineage_facts(), and the
    lineages of lineage_inputs(). The date is left out: the same output of every day shares one
    lineage (which makes a day's output path that of any other day with the date changed)."""

    def lineage_facts(self) -> dict[str, Any]:
        """What else shapes the output: luigi.cfg settings (significant_params of a Config) and
        facts of the dataset description."""
        return {}

    def lineage_inputs(self) -> list:
        """The upstream tasks whose lineages shape the output: by default every requirement that has
        one. The deployment chain's link to the day before is left out by the tasks that follow it
        (its lineage is the task's own kind, one day earlier)."""
        return [task for task in flatten(self.requires()) if isinstance(task, Lineage)]

    @property
    def lineage(self) -> str:
        if "_lineage" not in self.__dict__:
            inputs = sorted({task.lineage for task in self.lineage_inputs()})
            self.__dict__["_lineage"] = param_hash(params=significant_params(self), facts=self.lineage_facts(),
                                                   inputs=inputs)
        return self.__dict__["_lineage"]


class Sealed(StorageMixin):
    """A task whose output is a directory made complete by its seal: the `_SUCCESS` flag, written
    last, that records the size and sha256 of every file the task wrote (storage.seal). output()
    is the seal, so a directory without it (a killed run, a write the store did not keep) is not
    complete; the files are read through methods of the task (data(), ...)."""

    def directory(self) -> str:
        raise NotImplementedError

    def output(self):
        return self.store.flag(self.directory())

    def file(self, name: str):
        return self.store.file(self.directory(), name)

    def seal(self, written: dict) -> None:
        """Seal the output over `written` ({target: what its write returned})."""
        st.seal(self.output(), written)


class DailyTask(StorageMixin, luigi.Task):
    date = luigi.DateParameter(description="The day this task processes (YYYY-MM-DD)")

    @classmethod
    def bulk_complete(cls, parameter_tuples):
        """The dates (of those given) whose output exists, with one listing per output prefix
        instead of one request per date: what luigi's RangeDaily and NightlyRange use."""
        return complete_dates(lambda day: cls(date=day), parameter_tuples)

    def status(self, message: str, percent: int | None = None) -> None:
        set_status(self, message, percent)


def set_status(task: luigi.Task, message: str, percent: int | None = None) -> None:
    """Set a task's status message (and progress): the one place the pipeline does. luigi's UI inserts
    status messages into its page as HTML (jQuery .html()), so text from a file name or an exception
    could run script there: it is escaped, and shows as the original characters. `&`, `<` and `>`
    suffice in element content, the only place the UI puts it; quotes stay as they are, since the
    UI's first rendering of a message escapes it once more (until its refresh half a second later).
    A task run outside a luigi worker (its run() called directly) has no status to set.

    Through luigid each message and percentage is an HTTP request (~3 ms on both ends): there, a task
    sends its 100% message (without the percentage) and, before it, at most one a second
    (_REMOTE_STATUS_EVERY, counted from its first message), so a short task costs luigid one
    request, not seven."""
    if task.set_status_message is None:
        return
    if _through_luigid(getattr(task.set_status_message, "__self__", None)):
        now = time.monotonic()
        last = task.__dict__.setdefault("_status_sent_at", now)
        if percent != 100 and now - last < _REMOTE_STATUS_EVERY:
            return
        task._status_sent_at = now
        if percent == 100:  # the task is done a moment later: luigid's DONE says as much as 100%
            percent = None
    task.set_status_message(html.escape(str(message), quote=False))
    if percent is not None:
        task.set_progress_percentage(percent)


_REMOTE_STATUS_EVERY = 1.0  # seconds


def _through_luigid(reporter) -> bool:
    """Whether a task's status `reporter` (luigi's TaskStatusReporter, which holds the worker's
    scheduler) sends it to a central scheduler, not to a local one in this process."""
    import luigi.rpc

    return isinstance(getattr(reporter, "_scheduler", None), luigi.rpc.RemoteScheduler)


def complete_dates(make, days) -> list:
    """The days (of `days`) whose task `make(day)` has its output. Outputs are grouped by the path
    before `/date=`; each group costs one listing (on S3: one LIST per 1000 keys) whatever the
    number of days."""
    groups: dict[str, dict] = {}
    for day, path in output_paths(make, list(days)).items():
        groups.setdefault(layout.undated(path), {})[day] = path
    store = get_storage()
    done = []
    for prefix, paths in groups.items():
        listed = store.list_files(prefix)
        done.extend(day for day, path in paths.items() if path in listed)
    return sorted(done)


def output_paths(make, days: list) -> dict:
    """{day: make(day).output().path}. Building a task resolves each of its parameters (and its
    lineage's) from luigi.cfg, which for a year of days took seconds; but output paths differ
    between days only in their `date=` part (lineages never depend on the date), so the first
    day's path is built and the others derived from it -- checked against the last day's real
    path, and built one by one when that does not match."""
    if not days:
        return {}
    first = make(days[0]).output().path
    if layout.with_date(first, days[0], days[0]) is not None:
        derived = {day: layout.with_date(first, days[0], day) for day in days}
        if derived[days[-1]] == make(days[-1]).output().path:
            return derived
    return {day: make(day).output().path for day in days}


def previous_day(date: dt.date) -> dt.date:
    return date - dt.timedelta(days=1)


def days_back(date: dt.date, n: int, not_before: dt.date) -> list[dt.date]:
    """The up to `n` days before `date`, oldest first, none before `not_before`."""
    days = [date - dt.timedelta(days=i) for i in range(n, 0, -1)]
    return [d for d in days if d >= not_before]
