"""Bad deliveries under luigi's local scheduler, through `mlpipe` as a user runs it: a day with
zero flights, an unreadable file, a landing file that never arrives, a file re-delivered with
other content after its day was processed, and a re-delivery after a failed contract. Asserts on exit codes and on
the outputs read back."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os

import luigi
import pandas as pd
import pytest

from pipeline.description import builtin
from pipeline import storage as st
from pipeline.flights.landing import landing_file
from tasks import CandidateModel, CleanPartition, CleanReference, FeaturePartition, RawPartition
from tasks.cli import main
from tasks.config import get_storage
from tasks.data import LandingFileChanged
from tests import landing as landed
from tests.conftest import failures

D = dt.date
KEY = ["carrier", "flight", "origin", "sched_dep_time"]


@pytest.fixture
def pipeline_root(small_pipeline, luigi_config):
    # One attempt per task: these tests are about what a failure reports, not about retries. And
    # several mlpipe commands run in this one process: luigi's lock (by command line) would take
    # the first for one still running
    # (luigi's own logging setup would attach a handler to this test's captured stderr).
    luigi_config({"worker": {"keep_alive": "false"},
                  "core": {"no_lock": "true", "no_configure_logging": "true"}})
    return small_pipeline


def landing(table: str, day: dt.date) -> str:
    return landing_file(get_storage().landing, table, day)


def read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def deliver(table: str, day: dt.date, data: bytes) -> None:
    """As the upstream system delivers: the file, then its done-marker."""
    landed.deliver(get_storage().landing, table, day, data)


def keys(df: pd.DataFrame) -> set[tuple]:
    return set(map(tuple, df[KEY].astype(str).to_numpy().tolist()))


def test_a_zero_flight_day_fails_its_contract_and_no_model_is_trained(pipeline_root, capsys):
    day = D(2013, 1, 5)  # the first deployment date of the small pipeline
    path = landing("flights", day)
    header_only = read(path).split(b"\n", 1)[0] + b"\n"
    deliver("flights", day, header_only)

    with failures() as failed:
        code = main(["run", "--date", day.isoformat()])
    assert code == 30, capsys.readouterr().err  # task_failed
    (task, exc), = failed
    assert task.task_id == CleanPartition(table="flights", date=day).task_id
    assert str(exc).startswith(f"{path}: table 'flights' has 0 rows, the contract requires at least 1 "
                               "(rule: min_rows)")
    raw = st.read_parquet(RawPartition(table="flights", date=day).data())
    assert len(raw) == 0 and list(raw.columns) == builtin().contract("flights").names + ["_parse_errors"]
    assert not CleanPartition(table="flights", date=day).output().exists()
    assert not FeaturePartition(date=day).output().exists()
    assert not CandidateModel(date=day).output().exists()
    assert not os.path.exists(os.path.join(get_storage().root, "registry"))
    assert FeaturePartition(date=day - dt.timedelta(days=1)).output().exists()  # earlier days are fine
    assert read(path) == header_only, "the landing file must never be modified"


def test_an_unreadable_file_fails_ingest_and_the_raw_zone_keeps_nothing_of_it(pipeline_root):
    day = D(2013, 1, 3)
    path = landing("flights", day)
    semicolons = read(path).replace(b",", b";")
    deliver("flights", day, semicolons)
    with failures() as failed:
        code = main(["run", "--date", day.isoformat()])
    assert code == 30  # task_failed
    (task, exc), = failed
    assert task.task_id == RawPartition(table="flights", date=day).task_id
    assert str(exc).startswith(f"landing file {path} uses ';' as its delimiter where ',' is expected "
                               "(rule: delimiter)")
    assert not get_storage().exists(get_storage().partition("raw", "flights", day))
    assert not FeaturePartition(date=day).output().exists()
    assert read(path) == semicolons, "the landing file must never be modified"


def test_a_landing_file_that_never_arrives_is_missing_data_and_nothing_is_invented(pipeline_root):
    day = D(2013, 1, 3)
    os.remove(landing("weather", day))
    with failures() as failed:
        code = main(["run", "--date", day.isoformat()])
    assert code == 20 and failed == []  # missing_data; nothing failed
    store = get_storage()
    assert not store.exists(store.partition("raw", "weather", day))
    assert not store.exists(store.partition("clean", "weather", day))
    assert not FeaturePartition(date=day).output().exists()
    assert CleanPartition(table="flights", date=day).output().exists()  # what did arrive is processed
    assert not os.path.exists(landing("weather", day))


def test_a_redelivered_file_is_reported_then_reprocessed_after_invalidate(pipeline_root, capsys, tmp_path):
    day, later = D(2013, 1, 2), D(2013, 1, 4)
    path = landing("flights", day)
    first = read(path)
    assert main(["backfill", "--stage", "features", "--start", "2013-01-01", "--end", "2013-01-03"]) == 0
    clean = CleanPartition(table="flights", date=day)
    old_clean = st.read_parquet(clean.clean_target())
    assert len(old_clean) == len(pd.read_csv(io.BytesIO(first))) > 800

    # the same content delivered again is no change
    deliver("flights", day, first)
    assert clean.complete() and clean.delivery_change() is None

    # a re-delivery without the first 50 flights of the day
    lines = first.split(b"\n")
    second = b"\n".join(lines[:1] + lines[51:])
    deliver("flights", day, second)
    dropped = keys(pd.read_csv(io.BytesIO(b"\n".join(lines[:51]))))
    old_sha, new_sha = hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()

    capsys.readouterr()
    assert main(["plan", "--start", later.isoformat(), "--end", later.isoformat()]) == 0
    planned = capsys.readouterr().out
    assert f"landing file re-delivered (sha256 {old_sha[:12]} -> {new_sha[:12]})" in planned
    assert "mlpipe invalidate --stage validate --start 2013-01-02 --end 2013-01-02 --yes" in planned

    with failures() as failed:  # [landing] redelivery = fail, the default
        code = main(["run", "--date", later.isoformat(), "--summary", str(tmp_path / "summary.json")])
    assert code == 30  # task_failed
    (task, exc), = failed
    assert task.task_id == clean.task_id and isinstance(exc, LandingFileChanged)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["exit_class"] == "task_failed" and summary["reprocessed"] == []
    assert "reprocessing" not in capsys.readouterr().err
    message = str(exc)
    assert f"landing file {path} was re-delivered with different content after 2013-01-02 was validated" in message
    assert old_sha in message and new_sha in message
    assert "`mlpipe invalidate --stage validate --start 2013-01-02 --end 2013-01-02 --yes`" in message
    # nothing replaced, nothing built on top
    pd.testing.assert_frame_equal(st.read_parquet(clean.clean_target()), old_clean)
    raw = RawPartition(table="flights", date=day)
    assert raw.landing_record()["sha256"] == old_sha and dropped <= keys(st.read_parquet(raw.data()))
    assert not FeaturePartition(date=later).output().exists()
    assert read(path) == second, "the landing file must never be modified"

    capsys.readouterr()
    assert main(["invalidate", "--stage", "validate", "--start", "2013-01-02", "--end", "2013-01-02", "--yes"]) == 0
    assert "removed" in capsys.readouterr().out
    assert not clean.output().exists()
    assert not FeaturePartition(date=day).output().exists()
    assert not FeaturePartition(date=D(2013, 1, 3)).output().exists()  # day 2 is in its trailing history

    assert main(["backfill", "--stage", "features", "--start", "2013-01-01", "--end", later.isoformat()]) == 0
    record = raw.landing_record()
    assert record["sha256"] == new_sha and record["rows"] == len(old_clean) - 50
    assert [r["sha256"] for r in record["replaces"]] == [old_sha]
    new_clean = st.read_parquet(clean.clean_target())
    assert len(new_clean) == len(old_clean) - 50
    assert not dropped & keys(new_clean), "no row of the earlier delivery may remain"
    assert not dropped & keys(st.read_parquet(raw.data()))
    assert st.read_json(clean.outputs(day)["report"])["landing_sha256"] == new_sha
    features = st.read_parquet(FeaturePartition(date=day).data())
    assert len(features) == len(new_clean) and not dropped & keys(features)
    # the next day's trailing aggregates are computed from the new delivery only
    store_history = pd.concat([st.read_parquet(CleanPartition(table="flights", date=d).clean_target())
                               for d in (D(2013, 1, 1), day)], ignore_index=True)
    dataset = builtin()
    recomputed = dataset.feature_frame(
        {t: st.read_parquet(CleanPartition(table=t, date=D(2013, 1, 3)).clean_target()) for t in ("flights", "weather")},
        {"planes": st.read_parquet(CleanReference(table="planes").clean_target())},
        dataset.history_rows(store_history, D(2013, 1, 3)), D(2013, 1, 3), 3)
    pd.testing.assert_frame_equal(st.read_parquet(FeaturePartition(date=D(2013, 1, 3)).data()), recomputed,
                                  check_dtype=False)


def test_a_redelivery_after_a_failed_contract_is_parsed_again(pipeline_root):
    day = D(2013, 1, 2)
    path = landing("flights", day)
    good = read(path)
    deliver("flights", day, good.replace(b",EWR,", b",XXX,"))  # about a third of the rows from an unknown airport
    with failures() as failed:
        luigi.build([FeaturePartition(date=day)], local_scheduler=True)
    (task, exc), = failed
    assert "allowed:origin" in str(exc) and "rule: max_bad_fraction" in str(exc)
    raw = RawPartition(table="flights", date=day)
    assert (st.read_parquet(raw.data())["origin"] == "XXX").any()

    deliver("flights", day, good)  # upstream fixes the export and delivers again; the rerun needs no invalidate
    result = luigi.build([FeaturePartition(date=day)], local_scheduler=True, detailed_summary=True)
    assert result.status == luigi.execution_summary.LuigiStatusCode.SUCCESS, result.summary_text
    assert not (st.read_parquet(raw.data())["origin"] == "XXX").any()
    assert raw.landing_record()["sha256"] == hashlib.sha256(good).hexdigest()
    clean = st.read_parquet(CleanPartition(table="flights", date=day).clean_target())
    assert len(clean) == len(pd.read_csv(io.BytesIO(good)))
