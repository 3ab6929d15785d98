import datetime as dt
import os
import pickle

import pytest

from pipeline import registry as rg
from pipeline import storage as st
from pipeline.training import ModelIntegrityError, dump_model

D = dt.date
MODEL = {"kind": "stand-in model", "weights": [0.1, 0.2]}


def evaluation(blessed: bool, reasons=("r1",)) -> dict:
    return {"challenger_id": "cand-7", "challenger": {"roc_auc": 0.7}, "production": {"roc_auc": 0.69},
            "decision": {"blessed": blessed, "reasons": list(reasons)}}


@pytest.fixture
def registry(storage):
    return rg.Registry(storage)


def files_of(directory: str) -> dict[str, tuple[bytes, int]]:
    out = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        with open(path, "rb") as f:
            out[name] = (f.read(), os.stat(path).st_mtime_ns)
    return out


# ---- ids and decisions ------------------------------------------------------------------------
def test_version_id_is_deterministic():
    assert rg.version_id(D(2013, 1, 5), "a1b2c3") == "20130105-a1b2c3"
    assert rg.version_id(D(2013, 1, 5), "a1b2c3") == rg.version_id(D(2013, 1, 5), "a1b2c3")
    assert rg.version_id(D(2013, 1, 6), "a1b2c3") != rg.version_id(D(2013, 1, 5), "a1b2c3")


def test_decide_blessed_deploys_a_new_version_chained_to_the_previous():
    prev = {"production_version": "20130104-lin"}
    d = rg.decide(D(2013, 1, 5), evaluation(True, ["ok"]), prev, "lin")
    assert d["action"] == "deployed" and d["blessed"] is True
    assert d["candidate_version"] == "20130105-lin"
    assert d["production_version"] == "20130105-lin"
    assert d["production_version_before"] == "20130104-lin"
    assert d["date"] == "2013-01-05" and d["lineage"] == "lin" and d["challenger_id"] == "cand-7"
    assert d["reasons"] == ["ok"]
    assert d["metrics"] == {"challenger": {"roc_auc": 0.7}, "production": {"roc_auc": 0.69}}


def test_decide_rejected_keeps_the_previous_production_version():
    d = rg.decide(D(2013, 1, 5), evaluation(False), {"production_version": "20130103-lin"}, "lin")
    assert d["action"] == "kept" and d["blessed"] is False
    assert d["candidate_version"] is None
    assert d["production_version"] == d["production_version_before"] == "20130103-lin"


def test_decide_rejected_on_the_first_day_leaves_no_production():
    d = rg.decide(D(2013, 1, 5), evaluation(False), None, "lin")
    assert d["production_version"] is None and d["production_version_before"] is None


def test_decisions_chain_over_days():
    decisions, prev = [], None
    for day, blessed in [(1, True), (2, False), (3, False), (4, True), (5, False)]:
        prev = rg.decide(D(2013, 1, day), evaluation(blessed), prev, "lin")
        decisions.append(prev["production_version"])
    assert decisions == ["20130101-lin", "20130101-lin", "20130101-lin", "20130104-lin", "20130104-lin"]


# ---- publish / load ---------------------------------------------------------------------------
def test_publish_then_manifest_and_load_return_it(registry):
    blob = dump_model(MODEL)
    assert registry.is_published("20130105-lin") is False
    assert registry.publish("20130105-lin", blob, {"trained_on": ["2013-01-01"]}, evaluation(True)) is True
    assert registry.is_published("20130105-lin")
    manifest = registry.manifest("20130105-lin")
    assert manifest == {"trained_on": ["2013-01-01"], "version": "20130105-lin",
                        "model_sha256": st.sha256_bytes(blob)}
    model, loaded_manifest = registry.load("20130105-lin")
    assert model == MODEL and loaded_manifest == manifest
    d = registry.version_dir("20130105-lin")
    assert d == os.path.join(registry.storage.root, "registry", "versions", "20130105-lin")
    assert sorted(os.listdir(d)) == ["_SUCCESS", "evaluation.json", "manifest.json", "model.pkl"]
    assert st.read_json(registry.storage.file(d, "evaluation.json")) == evaluation(True)


def test_published_version_is_immutable(registry):
    registry.publish("20130105-lin", dump_model(MODEL), {"n": 1}, evaluation(True))
    d = registry.version_dir("20130105-lin")
    before = files_of(d)
    again = registry.publish("20130105-lin", dump_model({"other": True}), {"n": 2}, evaluation(False))
    assert again is False
    assert files_of(d) == before
    assert registry.load("20130105-lin")[0] == MODEL


def test_unfinished_version_is_not_published_and_can_be_republished(registry):
    d = registry.version_dir("20130105-lin")
    st.write_bytes(registry.storage.file(d, "model.pkl"), b"half-written")
    assert registry.is_published("20130105-lin") is False
    with pytest.raises(rg.RegistryError, match=r"model version 20130105-lin is not published in .*registry "
                                               r"\(no _SUCCESS flag\); rerun its Deployment task"):
        registry.manifest("20130105-lin")
    assert registry.publish("20130105-lin", dump_model(MODEL), {}, evaluation(True)) is True
    assert registry.load("20130105-lin")[0] == MODEL


def test_load_refuses_a_tampered_model(registry):
    registry.publish("20130105-lin", dump_model(MODEL), {}, evaluation(True))
    path = os.path.join(registry.version_dir("20130105-lin"), "model.pkl")
    with open(path, "wb") as f:
        f.write(pickle.dumps({"kind": "swapped"}))
    with pytest.raises(ModelIntegrityError, match=rf"model file {path} has sha256 .*refusing to load it"):
        registry.load("20130105-lin")


def test_load_of_unknown_version_raises(registry):
    with pytest.raises(rg.RegistryError, match="model version 20990101-x is not published"):
        registry.load("20990101-x")


# ---- production alias ---------------------------------------------------------------------------
def test_alias_is_none_before_the_first_move(registry):
    assert registry.alias() is None


def test_move_alias_forward_and_history(registry):
    assert registry.move_alias("20130105-lin", D(2013, 1, 5), "blessed") is True
    first = registry.alias()
    assert (first["version"], first["as_of"], first["reason"], first["previous_version"]) == (
        "20130105-lin", "2013-01-05", "blessed", None)
    assert first["moved_by"] and dt.datetime.fromisoformat(first["moved_at"]).tzinfo is not None

    assert registry.move_alias("20130108-lin", D(2013, 1, 8), "blessed again") is True
    second = registry.alias()
    assert (second["version"], second["as_of"], second["previous_version"]) == (
        "20130108-lin", "2013-01-08", "20130105-lin")

    history = os.path.join(registry.base, "history")
    assert os.listdir(history) and sorted(os.listdir(history)) == [
        "2013-01-05_20130105-lin.json", "2013-01-08_20130108-lin.json"]
    assert st.read_json(registry.storage.file(history, "2013-01-05_20130105-lin.json")) == first
    assert st.read_json(registry.storage.file(history, "2013-01-08_20130108-lin.json")) == second


def test_move_alias_never_moves_backwards_in_time(registry):
    registry.move_alias("20130108-lin", D(2013, 1, 8), "blessed")
    current = registry.alias()
    assert registry.move_alias("20130105-lin", D(2013, 1, 5), "late backfill") is False
    assert registry.alias() == current
    assert sorted(os.listdir(os.path.join(registry.base, "history"))) == ["2013-01-08_20130108-lin.json"]


def test_move_alias_same_version_same_day_is_a_no_op(registry):
    registry.move_alias("20130108-lin", D(2013, 1, 8), "blessed")
    current = registry.alias()
    assert registry.move_alias("20130108-lin", D(2013, 1, 8), "rerun") is False
    assert registry.alias() == current
