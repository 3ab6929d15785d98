"""`mlpipe run` waits for a landing file that is not delivered yet, says so in the log and in the
task's status, raises a late-data alert, and runs the night once the file lands."""
from __future__ import annotations

import datetime as dt
import glob
import os
import threading

from pipeline.flights.landing import landing_file
from tasks import notify
from tasks import waiting as waiting_tasks
from tasks.cli import main
from tasks.config import get_storage
from tasks.nightly import NightlyPipeline
from tests.landing import deliver

DAY = dt.date(2013, 1, 3)  # before the first deploy date: the data stages only


def test_a_file_that_lands_during_the_wait_is_picked_up_and_the_night_completes(small_pipeline, luigi_config,
                                                                                   monkeypatch, capsys):
    # no luigi pid lock: other tests ran luigi in this process (tests/test_commands.py runs a wait
    # and the night in one process with the lock on)
    luigi_config({"landing": {"wait": 60, "wait_poll": 0.2, "wait_report": 0.3}, "core": {"no_lock": "true"}})
    landing = get_storage().landing
    path = landing_file(landing, "flights", DAY)
    with open(path, "rb") as fh:
        data = fh.read()
    for name in glob.glob(path + "*"):  # the file and its done-marker: not delivered yet
        os.remove(name)
    statuses, sent = [], []
    monkeypatch.setattr(waiting_tasks, "set_status", lambda task, line, percent: statuses.append((line, percent)))
    monkeypatch.setattr(notify, "send", lambda event, **fields: sent.append((event, fields)))
    upstream = threading.Timer(1.5, deliver, args=(landing, "flights", DAY, data))
    upstream.start()
    try:
        assert main(["run", "--date", DAY.isoformat()]) == 0
    finally:
        upstream.cancel()
    assert NightlyPipeline(date=DAY).complete()
    waits = [(line, percent) for line, percent in statuses if line.startswith("waiting for 1 landing file(s)")]
    assert len(waits) >= 2 and all(line.endswith("flights/flights_2013-01-03.csv (missing)") for line, _ in waits)
    assert statuses[-1][0].startswith("the landing files of 2013-01-03 are delivered, after ")
    # expected by 04:00 New York time on 2013-01-04, long past: one alert, naming the file
    assert [event for event, _ in sent] == ["data_late"]
    assert sent[0][1]["path"] == "flights/flights_2013-01-03.csv" and sent[0][1]["table"] == "flights"
    assert sent[0][1]["expected_by"] == "2013-01-04T04:00:00-05:00"


def test_a_night_whose_files_are_there_does_not_wait(small_pipeline, luigi_config, monkeypatch):
    luigi_config({"landing": {"wait": 60}, "core": {"no_lock": "true"}})  # another run in this process
    ran = []
    monkeypatch.setattr(waiting_tasks.LandingWait, "run", lambda self: ran.append(self))
    assert main(["run", "--date", DAY.isoformat()]) == 0
    assert ran == [] and waiting_tasks.take_outcome(DAY) is None
