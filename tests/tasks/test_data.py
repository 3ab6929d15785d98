"""Completeness checks of the data stages read the landing file only when it was written again:
an unchanged delivery is recognised by its stamp (size + mtime; ETag on S3), so the nightly's
checks cost one metadata request per file whatever its size, and a re-delivery of the same size
is still caught by its checksum."""
from __future__ import annotations

import datetime as dt
import os

import pytest

from pipeline import storage as st
from pipeline.flights.landing import landing_file
from tasks import CleanPartition, RawPartition
from tasks.cli import main
from tasks.config import get_storage


@pytest.fixture
def built(small_pipeline, luigi_config):
    luigi_config({"core": {"no_lock": "true", "no_configure_logging": "true"}})
    assert main(["backfill", "--stage", "clean", "--start", "2013-01-01", "--end", "2013-01-02"]) == 0
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
