"""Completeness checks of the data stages read the landing file only when it was written again:
an unchanged delivery is recognised by its stamp (size + mtime; ETag on S3), so the nightly's
checks cost one metadata request per file whatever its size, and a re-delivery of the same size
is still caught by its checksum."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import time

import pytest

from pipeline import storage as st
from pipeline.description import BUILTIN
from pipeline.flights.landing import landing_file, ready_file
from pipeline.hashing import sha256_bytes
from tasks import CleanPartition, FeaturePartition, RawPartition
from tasks.cli import main
from tasks.config import get_storage
from tasks.data import LandingFile
from tests.landing import deliver


@pytest.fixture
def built(small_pipeline, luigi_config):
    luigi_config({"core": {"no_lock": "true", "no_configure_logging": "true"}})
    assert main(["backfill", "--stage", "validate", "--start", "2013-01-01", "--end", "2013-01-02"]) == 0
    return small_pipeline


def reads_of(monkeypatch, path: str) -> list[str]:
    seen: list[str] = []
    real = st.read_bytes

    def counting(target):
        if target.path == path:
            seen.append(target.path)
        return real(target)

    monkeypatch.setattr(st, "read_bytes", counting)
    return seen


def test_unchanged_landing_files_are_not_read_by_completeness_checks(built, monkeypatch):
    day = dt.date(2013, 1, 2)
    path = landing_file(get_storage().landing, "flights", day)
    record = RawPartition(table="flights", date=day).landing_record()
    assert record["stamp"] == st.stamp(get_storage().target(path))
    seen = reads_of(monkeypatch, path)
    clean = CleanPartition(table="flights", date=day)
    assert clean.complete() and RawPartition(table="flights", date=day).complete()
    assert seen == [], "an unchanged landing file must not be read to check completeness"


def test_a_same_size_redelivery_is_still_detected_by_its_checksum(built, monkeypatch):
    day = dt.date(2013, 1, 2)
    path = landing_file(get_storage().landing, "flights", day)
    with open(path, "rb") as fh:
        first = fh.read()
    second = first.replace(b",UA,", b",AA,", 1)  # one carrier changed: same size, other content
    assert len(second) == len(first) and second != first
    before = os.stat(path).st_mtime_ns
    with open(path, "wb") as fh:
        fh.write(second)
    os.utime(path, ns=(before + 1_000_000, before + 1_000_000))
    seen = reads_of(monkeypatch, path)
    clean = CleanPartition(table="flights", date=day)
    change = clean.delivery_change()
    assert change is not None and change[0] == RawPartition(table="flights", date=day).landing_record()["sha256"]
    assert not clean.complete()
    assert seen, "a landing file with a new stamp is hashed"
    # touched, same content: complete again (hashed, found equal)
    with open(path, "wb") as fh:
        fh.write(first)
    assert clean.delivery_change() is None and clean.complete()


# ---- a landing file counts as delivered only once whole (its table's readiness rule) -------------
DAY = dt.date(2013, 1, 2)


@pytest.fixture
def landed(small_pipeline, luigi_config):
    """Landed flights days 2013-01-01..08, nothing run; mlpipe callable several times in-process."""
    luigi_config({"core": {"no_lock": "true", "no_configure_logging": "true"}})
    return small_pipeline


def flights_described(tmp_path, monkeypatch, rule: str) -> None:
    """Run the flights description with `rule` as its [tables.flights] readiness settings."""
    text = open(BUILTIN).read()
    assert text.count('ready = "marker"\n') == 3  # flights (first), weather, planes
    path = tmp_path / "flights.toml"
    path.write_text(text.replace('ready = "marker"\n', rule, 1))
    monkeypatch.setenv("MLPIPE_DATASET", str(path))


def backfill_clean(day: dt.date = DAY) -> int:
    return main(["backfill", "--stage", "validate", "--start", day.isoformat(), "--end", day.isoformat()])


def ingested_rows(day: dt.date = DAY) -> int | None:
    raw = RawPartition(table="flights", date=day)
    return len(st.read_parquet(raw.data())) if raw.complete() else None


def planned(capsys, day: dt.date = DAY) -> str:
    capsys.readouterr()
    assert main(["plan", "--start", day.isoformat(), "--end", day.isoformat()]) == 0
    return capsys.readouterr().out


def cut(path: str) -> tuple[bytes, bytes]:
    """The landing file's content, and its first 300 lines: what a copy in progress has written."""
    with open(path, "rb") as fh:
        whole = fh.read()
    return whole, b"".join(whole.splitlines(keepends=True)[:300])


def test_stable_a_file_still_being_copied_is_not_ingested_until_left_unchanged(landed, tmp_path, monkeypatch,
                                                                                capsys):
    flights_described(tmp_path, monkeypatch, 'ready = "stable"\nstable_seconds = 30\n')
    path = landing_file(get_storage().landing, "flights", DAY)
    whole, part = cut(path)
    with open(path, "wb") as fh:  # the upstream copy has written 300 lines so far
        fh.write(part)

    assert backfill_clean() == 20  # [retcode] missing_data: waits, nothing failed
    assert ingested_rows() is None and not CleanPartition(table="flights", date=DAY).output().exists()
    reason = LandingFile(table="flights", date=DAY.isoformat()).not_ready_reason()
    assert reason.startswith(f"{path} was modified ") and reason.endswith(
        ' s ago; [tables.flights] ready = "stable" waits until it is unchanged for 30 s')
    assert re.search(r"landing +waits +LandingFile\(table=flights", plan := planned(capsys)) and f"why: not delivered yet: {path} was modified" in plan

    with open(path, "ab") as fh:  # the copy finishes...
        fh.write(whole[len(part):])
    assert backfill_clean() == 20 and ingested_rows() is None  # ...just now: not yet unchanged for 30 s
    old = time.time() - 31
    os.utime(path, (old, old))  # 31 s later
    assert LandingFile(table="flights", date=DAY.isoformat()).not_ready_reason() is None
    assert backfill_clean() == 0
    assert ingested_rows() == len(whole.splitlines()) - 1  # every row of the whole file
    assert RawPartition(table="flights", date=DAY).landing_record()["sha256"] == sha256_bytes(whole)


def test_marker_a_file_counts_as_delivered_once_its_marker_is_written_after_it(landed, capsys):
    path = landing_file(get_storage().landing, "flights", DAY)
    marker = ready_file(get_storage().landing, "flights", DAY)
    whole, part = cut(path)
    os.remove(marker)
    with open(path, "wb") as fh:  # the upstream copy in progress: no marker yet
        fh.write(part)

    assert backfill_clean() == 20 and ingested_rows() is None
    reason = LandingFile(table="flights", date=DAY.isoformat()).not_ready_reason()
    assert reason == (f'{path} has no done-marker {marker} yet; [tables.flights] ready = "marker" counts it as '
                      "delivered once the upstream system writes the done-marker after the file")
    assert f"why: not delivered yet: {reason}" in planned(capsys)

    with open(path, "wb") as fh:  # the copy finishes; still no marker
        fh.write(whole)
    assert backfill_clean() == 20 and ingested_rows() is None
    with open(marker, "wb"):  # the upstream system marks it done
        pass
    assert backfill_clean() == 0
    assert ingested_rows() == len(whole.splitlines()) - 1
    assert CleanPartition(table="flights", date=DAY).output().exists()


def test_marker_a_day_rewritten_after_its_marker_waits_for_a_new_marker(landed):
    day = dt.date(2013, 1, 3)
    path = landing_file(get_storage().landing, "flights", day)
    whole, part = cut(path)
    with open(path, "wb") as fh:  # an in-place copy over a delivered file: the old marker stays
        fh.write(part)
    assert backfill_clean(day) == 20 and ingested_rows(day) is None
    assert "was written again" in LandingFile(table="flights", date=day.isoformat()).not_ready_reason()
    deliver(get_storage().landing, "flights", day, whole)  # the file, then a new marker
    assert backfill_clean(day) == 0 and ingested_rows(day) == len(whole.splitlines()) - 1


def test_manifest_a_file_is_delivered_once_it_matches_its_manifest(landed, tmp_path, monkeypatch, capsys):
    flights_described(tmp_path, monkeypatch, 'ready = "manifest"\n')
    path = landing_file(get_storage().landing, "flights", DAY)
    manifest = path + ".manifest.json"
    whole, part = cut(path)
    with open(path, "wb") as fh:  # the manifest of the whole file is there, the copy has 300 lines
        fh.write(part)
    with open(manifest, "w") as fh:
        json.dump({"bytes": len(whole), "sha256": sha256_bytes(whole)}, fh)

    assert backfill_clean() == 20 and ingested_rows() is None
    reason = LandingFile(table="flights", date=DAY.isoformat()).not_ready_reason()
    assert reason == (f"{path} has {len(part)} bytes and its manifest {manifest} says {len(whole)}; "
                      '[tables.flights] ready = "manifest" waits until the file matches its manifest')
    assert f"why: not delivered yet: {reason}" in planned(capsys)

    garbled = whole.replace(b",UA,", b",AA,", 1)  # whole size, other content: a sha256 that does not match
    with open(path, "wb") as fh:
        fh.write(garbled)
    assert backfill_clean() == 20 and ingested_rows() is None
    assert f"{path} has sha256 {sha256_bytes(garbled)[:12]} and its manifest" in LandingFile(
        table="flights", date=DAY.isoformat()).not_ready_reason()

    with open(path, "wb") as fh:
        fh.write(whole)
    assert backfill_clean() == 0
    assert ingested_rows() == len(whole.splitlines()) - 1


# ---- a landing file re-delivered after its day was validated: [landing] redelivery ----------------
def test_reprocess_a_redelivered_day_is_reprocessed_by_the_next_run_and_listed_in_its_summary(
        landed, luigi_config, tmp_path, capsys):
    luigi_config({"landing": {"redelivery": "reprocess"}})
    later = dt.date(2013, 1, 4)
    landing = get_storage().landing
    path = landing_file(landing, "flights", DAY)
    with open(path, "rb") as fh:
        first = fh.read()
    assert main(["backfill", "--stage", "features", "--start", "2013-01-01", "--end", "2013-01-03"]) == 0
    clean = CleanPartition(table="flights", date=DAY)
    old_rows = len(st.read_parquet(clean.clean_target()))

    lines = first.split(b"\n")
    second = b"\n".join(lines[:1] + lines[51:])  # a re-delivery without the day's first 50 flights
    old_sha, new_sha = sha256_bytes(first), sha256_bytes(second)
    with open(path, "wb") as fh:  # still being copied over the delivered file: the old marker stays
        fh.write(second)
    capsys.readouterr()
    assert main(["run", "--date", later.isoformat()]) == 30  # the day fails as with `fail`, nothing removed
    err = capsys.readouterr().err
    assert f"mlpipe: {DAY} was re-delivered but is not delivered whole yet ({path} was written again" in err
    assert clean.output().exists() and len(st.read_parquet(clean.clean_target())) == old_rows

    deliver(landing, "flights", DAY, second)  # the copy is done: file and a new marker
    summary_file = tmp_path / "summary.json"
    assert main(["run", "--date", later.isoformat(), "--summary", str(summary_file)]) == 0
    err = capsys.readouterr().err
    assert (f"mlpipe: reprocessing {DAY}: re-delivered after the day was validated: flights (sha256 "
            f"{old_sha[:12]} -> {new_sha[:12]}); removed its clean outputs and everything downstream") in err
    summary = json.loads(summary_file.read_text())
    assert summary["exit_class"] == "success"
    assert summary["reprocessed"] == [{"table": "flights", "date": DAY.isoformat(), "from_sha256": old_sha,
                                       "to_sha256": new_sha}]
    record = RawPartition(table="flights", date=DAY).landing_record()  # parsed again over the kept raw partition:
    assert record["sha256"] == new_sha and [r["sha256"] for r in record["replaces"]] == [old_sha]
    assert len(st.read_parquet(clean.clean_target())) == old_rows - 50
    assert st.read_json(clean.outputs(DAY)["report"])["landing_sha256"] == new_sha
    assert FeaturePartition(date=later).output().exists()
    assert not FeaturePartition(date=DAY).output().exists(), "built from the earlier delivery: removed"
    with open(path, "rb") as fh:
        assert fh.read() == second, "the landing file is never modified"

    # a backfill reprocesses a re-delivered day of its range too, even one whose outputs are complete
    deliver(landing, "flights", DAY, first)
    assert main(["backfill", "--stage", "features", "--start", "2013-01-01", "--end", "2013-01-03"]) == 0
    assert f"mlpipe: reprocessing {DAY}: re-delivered after the day was validated: flights (sha256 " \
           f"{new_sha[:12]} -> {old_sha[:12]})" in capsys.readouterr().err
    assert len(st.read_parquet(clean.clean_target())) == old_rows
    assert len(st.read_parquet(FeaturePartition(date=DAY).data())) == old_rows
    assert main(["run", "--date", later.isoformat()]) == 0
    assert "reprocessing" not in capsys.readouterr().err, "a day is reprocessed once per re-delivery"


def test_a_redelivery_policy_that_is_not_one_is_a_clear_error(landed, luigi_config, capsys):
    luigi_config({"landing": {"redelivery": "replace"}})
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--date", "2013-01-02"])
    assert exit_.value.code == 2
    assert ("mlpipe: [landing] redelivery = 'replace' in luigi.cfg is not a policy: choose one of ['fail', "
            "'reprocess']") in capsys.readouterr().err
    assert ingested_rows() is None
