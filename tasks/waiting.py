"""LandingWait: before `mlpipe run` runs a night's pipeline, it waits for the landing files that run
needs and that are not delivered yet. It says what it waits for, since when and until when, in the
log and in luigid (status message and progress) at the start and every [landing] wait_report
seconds, and raises a late-data alert for a file past its table's freshness rule
([tables.<name>] expected_by in the dataset description). The logic is pipeline.waiting's."""
from __future__ import annotations

import datetime as dt
import logging
import time

import luigi

from pipeline import waiting
from tasks import notify
from tasks.base import set_status
from tasks.config import LandingConfig, current_dataset, get_storage
from tasks.data import LandingFile
from tasks.nightly import NightlyPipeline
from tasks.ops import plan

logger = logging.getLogger("luigi-interface")

_OUTCOMES: dict[dt.date, waiting.Outcome] = {}  # this process's waits, by day: what `mlpipe run` reads back


def pending_files(roots: list) -> list[waiting.Pending]:
    """The landing files a run of `roots` needs that are not delivered yet (as ops.plan finds them:
    the way luigi walks requirements)."""
    landing, pending = get_storage().landing, []
    for row in plan(roots):
        if row["action"] != "waits" or row["stage"] != "landing":
            continue
        task = LandingFile(table=row["table"], date=row["date"] or None)
        reason = task.not_ready_reason() if task.output().exists() else None
        pending.append(waiting.Pending(table=row["table"], day=dt.date.fromisoformat(row["date"]) if row["date"] else None,
                                       path=task.landing_path(),
                                       reason=None if reason is None else waiting.short_reason(reason, landing)))
    return pending


def take_outcome(day: dt.date) -> waiting.Outcome | None:
    """How this process's wait for the landing files of `day` ended (None: it did not wait),
    forgotten here, so that a later run in the same process waits again."""
    return _OUTCOMES.pop(day, None)


class LandingWait(luigi.Task):
    """Waits up to [landing] wait seconds for the landing files NightlyPipeline(date) needs. It never
    fails and writes nothing: once over, the pipeline runs with whatever was delivered."""
    date = luigi.DateParameter(description="The night's day (YYYY-MM-DD) whose landing files are waited for")

    def complete(self):
        return self.date in _OUTCOMES

    def run(self):
        cfg = LandingConfig()
        _OUTCOMES[self.date] = waiting.wait_for(
            self.date, check=lambda: pending_files([NightlyPipeline(date=self.date)]), seconds=cfg.wait,
            poll=cfg.wait_poll, report=cfg.wait_report, rules=current_dataset().freshness,
            clock=lambda: dt.datetime.now(dt.timezone.utc), sleep=time.sleep, say=self.say, alert=self.alert)

    def say(self, line: str, percent: int) -> None:
        logger.info("mlpipe: %s", line)
        set_status(self, line, percent)

    def alert(self, entry: dict, waited_seconds: float) -> None:
        logger.warning("mlpipe: %s", waiting.late_line(entry, waited_seconds))
        notify.send("data_late", waited_seconds=round(waited_seconds), **entry)
