"""pipeline.deployment: the nightly decision, which version is live, publishing, manual moves."""
import datetime as dt


from pipeline import deployment as dp

D = dt.date


def evaluation(blessed: bool, reasons=("r1",)) -> dict:
    return {"challenger_id": "cand-7", "challenger": {"roc_auc": 0.7}, "production": {"roc_auc": 0.69},
            "decision": {"blessed": blessed, "reasons": list(reasons)}}


def test_decide_blessed_deploys_a_new_version_chained_to_the_previous():
    d = dp.decide(D(2013, 1, 5), evaluation(True, ["ok"]), "20130104-abc", "abc")
    assert d["action"] == "deployed" and d["blessed"] is True
    assert d["candidate_version"] == "20130105-abc"
    assert d["production_version"] == "20130105-abc"
    assert d["production_version_before"] == "20130104-abc"
    assert d["date"] == "2013-01-05" and d["lineage"] == "abc" and d["challenger_id"] == "cand-7"
    assert d["reasons"] == ["ok"]
    assert d["metrics"] == {"challenger": {"roc_auc": 0.7}, "production": {"roc_auc": 0.69}}


def test_decide_rejected_keeps_the_previous_production_version():
    d = dp.decide(D(2013, 1, 5), evaluation(False), "20130103-abc", "abc")
    assert d["action"] == "kept" and d["blessed"] is False
    assert d["candidate_version"] is None
    assert d["production_version"] == d["production_version_before"] == "20130103-abc"


def test_decide_rejected_on_the_first_day_leaves_no_production():
    d = dp.decide(D(2013, 1, 5), evaluation(False), None, "abc")
    assert d["production_version"] is None and d["production_version_before"] is None


def test_decisions_chain_over_days():
    decisions, prev = [], None
    for day, blessed in [(1, True), (2, False), (3, False), (4, True), (5, False)]:
        prev = dp.decide(D(2013, 1, day), evaluation(blessed), prev, "abc")["production_version"]
        decisions.append(prev)
    assert decisions == ["20130101-abc", "20130101-abc", "20130101-abc", "20130104-abc", "20130104-abc"]
