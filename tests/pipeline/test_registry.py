import datetime as dt
import os

import pytest

from pipeline import registry as rg
from pipeline import storage as st
from pipeline.hashing import json_bytes, sha256_bytes
from pipeline.artifact import ModelIntegrityError, dump_model
from tests.pipeline.builders import TEST_KEYS

D = dt.date
MODEL = {"kind": "stand-in model", "weights": [0.1, 0.2]}


def evaluation(blessed: bool, reasons=("r1",)) -> dict:
    return {"challenger_id": "cand-7", "challenger": {"roc_auc": 0.7}, "production": {"roc_auc": 0.69},
            "decision": {"blessed": blessed, "reasons": list(reasons)}}


@pytest.fixture
def registry(storage):
    return rg.Registry(storage, TEST_KEYS)


def files_of(directory: str) -> dict[str, tuple[bytes, int]]:
    out = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        with open(path, "rb") as f:
            out[name] = (f.read(), os.stat(path).st_mtime_ns)
    return out


# ---- ids ------------------------------------------------------------------------
def test_version_id_is_deterministic():
    assert rg.version_id(D(2013, 1, 5), "a1b2c3") == "20130105-a1b2c3"
    assert rg.version_id(D(2013, 1, 5), "a1b2c3") == rg.version_id(D(2013, 1, 5), "a1b2c3")
    assert rg.version_id(D(2013, 1, 6), "a1b2c3") != rg.version_id(D(2013, 1, 5), "a1b2c3")


# ---- publish / load ---------------------------------------------------------------------------
def publish(registry, version="20130105-abc", model=MODEL, manifest=None, blessed=True):
    files = {"model.skops": dump_model(model), "evaluation.json": json_bytes(evaluation(blessed)),
             "report.html": b"<html>report</html>"}
    return registry.publish(version, files, manifest if manifest is not None else {"n": 1})


def test_publish_then_manifest_and_load_return_it(registry):
    assert registry.is_published("20130105-abc") is False
    assert publish(registry, manifest={"trained_on": ["2013-01-01"]}) is True
    assert registry.is_published("20130105-abc")
    manifest = registry.manifest("20130105-abc")
    d = registry.version_dir("20130105-abc")
    on_disk = {name: open(os.path.join(d, name), "rb").read() for name in ("model.skops", "evaluation.json", "report.html")}
    assert manifest == {"trained_on": ["2013-01-01"], "version": "20130105-abc",
                        "files": {name: sha256_bytes(data) for name, data in on_disk.items()},
                        "model_sha256": sha256_bytes(on_disk["model.skops"])}
    model, loaded_manifest = registry.load("20130105-abc")
    assert model == MODEL and loaded_manifest == manifest
    assert d == os.path.join(registry.storage.root, "registry", "versions", "20130105-abc")
    assert sorted(os.listdir(d)) == ["_SUCCESS", "evaluation.json", "manifest.json", "manifest.json.sig", "model.skops",
                                     "report.html"]
    assert st.read_json(registry.storage.file(d, "evaluation.json")) == evaluation(True)
    assert registry.verify("20130105-abc") == {"evaluation.json": "ok", "model.skops": "ok", "report.html": "ok"}
    assert registry.versions() == ["20130105-abc"]


def test_published_version_is_immutable(registry):
    publish(registry)
    d = registry.version_dir("20130105-abc")
    before = files_of(d)
    assert publish(registry, model={"other": True}, manifest={"n": 2}, blessed=False) is False
    assert files_of(d) == before
    assert registry.load("20130105-abc")[0] == MODEL


def test_unfinished_version_is_not_published_and_can_be_republished(registry):
    d = registry.version_dir("20130105-abc")
    st.write_bytes(registry.storage.file(d, "model.skops"), b"half-written")
    assert registry.is_published("20130105-abc") is False and registry.versions() == []
    with pytest.raises(rg.RegistryError, match=r"model version 20130105-abc is not published in .*registry "
                                               r"\(no _SUCCESS flag\)"):
        registry.manifest("20130105-abc")
    assert publish(registry) is True
    assert registry.load("20130105-abc")[0] == MODEL


def test_load_refuses_a_tampered_model_and_verify_names_it(registry):
    publish(registry)
    path = os.path.join(registry.version_dir("20130105-abc"), "model.skops")
    with open(path, "wb") as f:
        f.write(dump_model({"kind": "swapped"}))
    with pytest.raises(ModelIntegrityError, match=rf"model file {path} has sha256 .*refusing to load it"):
        registry.load("20130105-abc")
    assert registry.verify("20130105-abc")["model.skops"] == "changed"
    os.remove(os.path.join(registry.version_dir("20130105-abc"), "report.html"))
    assert registry.verify("20130105-abc")["report.html"] == "missing"
    with pytest.raises(rg.RegistryError, match="fails its sha256 check"):
        registry.override("20130105-abc", D(2013, 1, 6), "promoted", "try it")


def test_publish_needs_a_model_file(registry):
    with pytest.raises(rg.RegistryError, match="a version needs model.skops"):
        registry.publish("20130105-abc", {"evaluation.json": b"{}"}, {})


def test_load_of_unknown_version_raises(registry):
    with pytest.raises(rg.RegistryError, match="model version 20990101-f is not published"):
        registry.load("20990101-f")


# ---- production alias ---------------------------------------------------------------------------
def test_alias_is_none_before_the_first_move(registry):
    assert registry.alias() is None


def test_move_alias_forward_and_history(registry):
    assert registry.move_alias("20130105-abc", D(2013, 1, 5), "blessed") is True
    first = registry.alias()
    assert (first["version"], first["as_of"], first["reason"], first["previous_version"]) == (
        "20130105-abc", "2013-01-05", "blessed", None)
    assert first["moved_by"] and dt.datetime.fromisoformat(first["moved_at"]).tzinfo is not None

    assert registry.move_alias("20130108-abc", D(2013, 1, 8), "blessed again") is True
    second = registry.alias()
    assert (second["version"], second["as_of"], second["previous_version"]) == (
        "20130108-abc", "2013-01-08", "20130105-abc")

    assert first["kind"] == second["kind"] == "deployed"
    assert registry.history() == [first, second]


def test_move_alias_never_moves_backwards_in_time(registry):
    registry.move_alias("20130108-abc", D(2013, 1, 8), "blessed")
    current = registry.alias()
    assert registry.move_alias("20130105-abc", D(2013, 1, 5), "late backfill") is False
    assert registry.alias() == current
    assert registry.history() == [current]


def test_move_alias_same_version_same_day_is_a_no_op(registry):
    registry.move_alias("20130108-abc", D(2013, 1, 8), "blessed")
    current = registry.alias()
    assert registry.move_alias("20130108-abc", D(2013, 1, 8), "rerun") is False
    assert registry.alias() == current


# ---- manual moves: promote and rollback -------------------------------------------------------------
def test_override_is_recorded_found_for_its_date_and_wins_over_that_dates_decision(registry):
    for day in (5, 8):
        publish(registry, version=f"2013010{day}-abc")
        registry.move_alias(f"2013010{day}-abc", D(2013, 1, day), "blessed")
    assert registry.override_after(D(2013, 1, 9)) is None
    record = registry.override("20130105-abc", D(2013, 1, 9), "rolled_back", "bad scores on 01-09")
    assert registry.override_after(D(2013, 1, 9)) == record == registry.alias()
    assert (record["kind"], record["version"], record["previous_version"], record["as_of"]) == (
        "rolled_back", "20130105-abc", "20130108-abc", "2013-01-09")
    # the nightly decision of 01-09 itself (made before the rollback) can no longer move the alias
    assert registry.move_alias("20130109-abc", D(2013, 1, 9), "rerun of 01-09") is False
    # a later decision moves it on
    assert registry.move_alias("20130110-abc", D(2013, 1, 10), "blessed") is True
    assert [r["kind"] for r in registry.history()] == ["deployed", "deployed", "rolled_back", "deployed"]


def test_override_refuses_unpublished_versions_and_unknown_kinds(registry):
    with pytest.raises(rg.RegistryError, match="not published"):
        registry.override("20990101-f", D(2013, 1, 9), "promoted", "why")
    publish(registry)
    with pytest.raises(ValueError, match="kind must be one of"):
        registry.override("20130105-abc", D(2013, 1, 9), "deployed", "why")


def test_rollback_target_skips_versions_already_rolled_back_from(registry):
    with pytest.raises(rg.RegistryError, match="nothing to roll back"):
        registry.rollback_target()
    for day in (3, 5, 8):
        publish(registry, version=f"2013010{day}-abc")
        registry.move_alias(f"2013010{day}-abc", D(2013, 1, day), "blessed")
    assert registry.rollback_target() == "20130105-abc"
    registry.override("20130105-abc", D(2013, 1, 9), "rolled_back", "first")
    assert registry.rollback_target() == "20130103-abc"  # not back to 01-08, which was rolled back from
    registry.override("20130103-abc", D(2013, 1, 9), "rolled_back", "second")
    assert registry.override_after(D(2013, 1, 9))["version"] == "20130103-abc"  # the latest manual move wins
    with pytest.raises(rg.RegistryError, match="no earlier version than 20130103-abc"):
        registry.rollback_target()


def test_live_periods_say_which_version_served_which_dates(registry):
    for day in (3, 5):
        publish(registry, version=f"2013010{day}-abc")
        registry.move_alias(f"2013010{day}-abc", D(2013, 1, day), "blessed")
    registry.override("20130103-abc", D(2013, 1, 5), "rolled_back", "oops")
    periods = rg.live_periods(registry.history())
    assert [(p["version"], p["from"], p["to"], p["served"]) for p in periods] == [
        ("20130103-abc", "2013-01-04", "2013-01-05", True),
        ("20130105-abc", "2013-01-06", "2013-01-05", False),
        ("20130103-abc", "2013-01-06", None, True)]


# ---- compare-and-swap on the alias ---------------------------------------------------------------
def test_a_promote_between_the_read_and_the_nightly_move_makes_the_move_fail(registry, monkeypatch):
    for day in (3, 5):
        publish(registry, version=f"2013010{day}-abc")
    registry.move_alias("20130103-abc", D(2013, 1, 3), "blessed")
    seen = registry.read_alias()  # the nightly deployment of 01-06 checks against this
    monkeypatch.setenv("MLPIPE_USER", "alice")
    promoted = registry.override("20130105-abc", D(2013, 1, 5), "promoted", "validated offline")
    with pytest.raises(rg.AliasMoved, match=r"the production alias .*production\.json changed after it was read: "
                                            r"alice moved it \(promoted 20130105-abc as of 2013-01-05, at .*\)\. "
                                            r"Nothing was overwritten: .*run the day again \(`mlpipe run --date "
                                            r"2013-01-06`\)"):
        registry.move_alias("20130106-abc", D(2013, 1, 6), "blessed", seen=seen)
    assert registry.alias() == promoted, "the promote is never lost"
    assert [r["version"] for r in registry.history()] == ["20130103-abc", "20130105-abc"]
    # decided on a fresh read, the nightly move goes ahead
    assert registry.move_alias("20130106-abc", D(2013, 1, 6), "blessed", seen=registry.read_alias()) is True


def test_a_nightly_move_between_the_read_and_a_promote_makes_the_promote_fail(registry):
    publish(registry, version="20130103-abc")
    registry.move_alias("20130103-abc", D(2013, 1, 3), "blessed")
    seen = registry.read_alias()
    registry.move_alias("20130104-abc", D(2013, 1, 4), "blessed")
    with pytest.raises(rg.AliasMoved, match=r"moved it \(deployed 20130104-abc as of 2013-01-04.*production was not "
                                            r"changed by this rolled back to 20130103-abc"):
        registry.override("20130103-abc", D(2013, 1, 4), "rolled_back", "oops", seen=seen)
    assert registry.alias()["version"] == "20130104-abc"
    assert registry.override_after(D(2013, 1, 4)) is None
    assert [r["kind"] for r in registry.history()] == ["deployed", "deployed"]


def test_the_first_move_is_refused_when_another_created_the_alias_meanwhile(registry):
    seen = registry.read_alias()
    assert seen == rg.AliasRead(None, None)
    registry.move_alias("20130103-abc", D(2013, 1, 3), "blessed")
    with pytest.raises(rg.AliasMoved, match="moved it"):
        registry.move_alias("20130104-abc", D(2013, 1, 4), "blessed", seen=seen)
    assert registry.alias()["version"] == "20130103-abc"


def test_publish_fails_when_a_promote_slipped_in_after_the_check(registry):
    from pipeline import deployment as dp

    for day in (3, 5):
        publish(registry, version=f"2013010{day}-abc")
    registry.move_alias("20130103-abc", D(2013, 1, 3), "blessed")
    decision = dp.decide(D(2013, 1, 6), evaluation(True), "20130103-abc", "abc")
    seen = registry.read_alias()
    dp.check_compared_with_live(D(2013, 1, 6), dp.live_version(registry, D(2013, 1, 6), None, seen), None)
    registry.override("20130105-abc", D(2013, 1, 5), "promoted", "validated offline")
    files = {"model.skops": dump_model(MODEL), "evaluation.json": b"{}", "report.html": b""}
    with pytest.raises(rg.RegistryError, match="promoted 20130105-abc"):
        dp.publish(registry, decision, files, {}, seen)
    assert registry.alias()["version"] == "20130105-abc"


def test_a_manual_move_counts_as_live_as_soon_as_it_moved_the_alias(registry):
    from pipeline import deployment as dp

    publish(registry, version="20130103-abc")
    registry.move_alias("20130104-abc", D(2013, 1, 4), "blessed")
    before = {"production_version": "20130104-abc"}
    assert dp.live_version(registry, D(2013, 1, 5), before) == "20130104-abc"
    # a rollback that moved the alias and has not yet written its override record
    manual = rg.AliasRead({**registry.alias(), "kind": "rolled_back", "version": "20130103-abc"}, "t")
    assert dp.live_version(registry, D(2013, 1, 5), before, manual) == "20130103-abc"
    assert dp.live_version(registry, D(2013, 1, 6), before, manual) == "20130104-abc", "only after its own date"


def test_a_move_whose_history_record_was_never_written_gets_it_on_the_next_try(tmp_path):
    """A process killed between moving the alias and recording the move: the nightly rerun of
    that day finds the alias already moved and writes the missing history record."""
    import datetime as dt

    from pipeline import layout
    from pipeline import storage as st
    from pipeline.registry import Registry

    store = st.Storage(str(tmp_path / "root"))
    reg = Registry(store, TEST_KEYS)
    assert reg.move_alias("20130105-abc", dt.date(2013, 1, 5), "blessed")
    history = store.path(layout.REGISTRY, layout.HISTORY)
    [name] = store.listdir(history)
    store.remove(f"{history}/{name}")
    assert reg.history() == []
    assert not reg.move_alias("20130105-abc", dt.date(2013, 1, 5), "blessed")
    assert [r["version"] for r in reg.history()] == ["20130105-abc"]
    assert reg.history()[0] == reg.alias()
