"""The model lifecycle through `mlpipe` on a short real pipeline: alerts failing the run with
their own exit code, the registry commands, a rollback honoured by the next nightly run, the
monitoring report as headless Chromium renders it, and a tampered artifact refused. Everything is asserted on outputs read back from storage."""
from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from pipeline import registry as rg
from pipeline import storage as st
from pipeline.artifact import ModelIntegrityError
from tasks import Deployment, ModelEvaluation, ModelMonitoring, Predictions
from tasks.cli import main
from tasks.config import get_storage, model_registry
from tests.conftest import SMALL
from tests.test_report_browser import _dashboard_problems, _require_chromium, _shot

D = dt.date


def test_alerts_rollback_report_and_tampering(small_pipeline, luigi_config, tmp_path, capsys):
    _require_chromium()
    luigi_config({**SMALL, "gate": {"min_roc_auc": 0.5, "tolerance": 1.0},  # every challenger is blessed
                  "monitor": {"min_auc": 0.99, "fail_on_alert": "true"},   # every day raises an alert
                  "core": {"no_lock": "true"}})  # several runs in this one process
    summary_file = tmp_path / "summary.json"
    assert main(["run", "--date", "2013-01-07", "--summary", str(summary_file)]) == 50
    summary = json.loads(summary_file.read_text())
    assert summary["exit_class"] == "monitoring_alert" and summary["exit_code"] == 50
    assert any(a.startswith("realized ROC AUC") and a.endswith("< 0.99") for a in summary["alerts"])

    reg = model_registry()
    decisions = {d: st.read_json(Deployment(date=D(2013, 1, d)).data()) for d in (5, 6, 7)}
    versions = [decisions[d]["production_version"] for d in (5, 6, 7)]
    assert reg.versions() == versions and all(decisions[d]["blessed"] for d in (5, 6, 7))
    comparison = decisions[7]["comparison"]
    assert comparison["metric"] == "roc_auc" and comparison["ci_low"] <= comparison["difference"] <= comparison["ci_high"]
    assert reg.alias()["version"] == versions[2]
    capsys.readouterr()

    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert f"{versions[0]}  " in out and "2013-01-06..2013-01-06" in out and f"{versions[2]}" in out
    assert "<- production" in out.splitlines()[-1]

    assert main(["models", "rollback", "--reason", "late scores looked wrong"]) == 0
    assert f"production is now {versions[1]} (was {versions[2]})" in capsys.readouterr().out
    alias = reg.alias()
    assert (alias["version"], alias["kind"], alias["as_of"], alias["reason"]) == (
        versions[1], "rolled_back", "2013-01-07", "late scores looked wrong")
    assert [r["kind"] for r in reg.history()] == ["deployed", "deployed", "deployed", "rolled_back"]

    # the next nightly run compares its challenger with, and scores with, the rolled-back model
    assert main(["run", "--date", "2013-01-08"]) == 50
    assert st.read_json(ModelEvaluation(date=D(2013, 1, 8)).record())["production_version"] == versions[1]
    assert st.read_json(Deployment(date=D(2013, 1, 8)).data())["production_version_before"] == versions[1]
    scored_by = st.read_parquet(Predictions(date=D(2013, 1, 8)).data())["model_version"].unique().tolist()
    assert scored_by == [versions[1]]
    capsys.readouterr()
    assert main(["models", "which", "--date", "2013-01-08"]) == 0
    assert f"2013-01-08: {versions[1]} (scored it; recorded in " in capsys.readouterr().out
    report_file = tmp_path / "report.html"
    assert main(["report", "--start", "2013-01-05", "--end", "2013-01-09", "--output", str(report_file)]) == 0
    assert "2 monitored day(s), 3 without monitoring output" in capsys.readouterr().out  # 07 and 08 were run
    page = report_file.read_text()
    assert page.count("data:image/png;base64,") == 3  # performance timeline, drift, current model
    assert "rolled back" in page and "late scores looked wrong" in page and versions[1] in page and "2013-01-09" in page
    shot = _shot(tmp_path, "lifecycle-report", page)
    assert _dashboard_problems(shot) == []

    assert main(["models", "show", versions[1]]) == 0
    shown = capsys.readouterr().out
    assert "model.skops ok" in shown and "rolled_back       serving 2013-01-08..2013-01-08" in shown

    # a changed model file is refused by every reader, and `models show` says which file changed
    model_path = os.path.join(reg.version_dir(versions[1]), "model.skops")
    with open(model_path, "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelIntegrityError, match=rf"model file {model_path} has sha256"):
        reg.load(versions[1])
    assert main(["models", "show", versions[1]]) == 60  # verify_problems
    assert "model.skops changed" in capsys.readouterr().out
    assert main(["models", "promote", versions[1], "--reason", "try"]) == 60
    assert "fails its sha256 check" in capsys.readouterr().err
    os.remove(Predictions(date=D(2013, 1, 8)).output().path)
    os.remove(ModelMonitoring(date=D(2013, 1, 8)).output().path)
    assert main(["run", "--date", "2013-01-08"]) == 30  # task_failed: Predictions refuses the model
    assert not Predictions(date=D(2013, 1, 8)).output().exists()


def test_tune_ranks_trials_on_a_dates_training_window(small_pipeline, luigi_config, tmp_path, capsys):
    import luigi

    from tasks import FeaturePartition

    luigi_config({"core": {"no_lock": "true"}})
    assert main(["tune", "--date", "2013-01-07", "--trials", "3"]) == 3  # NOT_RUN_YET
    assert "no feature partition for 5 day(s) of the window (2013-01-02...)" in capsys.readouterr().err
    assert luigi.build([FeaturePartition(date=D(2013, 1, d)) for d in range(2, 7)], local_scheduler=True)
    out_file = tmp_path / "trials.json"
    assert main(["tune", "--date", "2013-01-07", "--trials", "3", "--folds", "2", "--families", "hgb", "logreg",
                 "--output", str(out_file)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out_file.read_text())
    assert len(result["trials"]) == 3 and {t["family"] for t in result["trials"]} == {"hgb", "logreg"}
    assert all(len(t["fold_roc_auc"]) == 2 and 0.4 < t["mean_roc_auc"] < 1 for t in result["trials"])
    assert result["best"]["mean_roc_auc"] == max(t["mean_roc_auc"] for t in result["trials"])
    assert "3 trial(s), 2 time-ordered folds over 2013-01-02..2013-01-06" in printed


def test_deployment_refuses_a_decision_when_production_was_moved_by_hand_after_its_evaluation(small_pipeline,
                                                                                            luigi_config):
    import luigi
    from luigi.execution_summary import LuigiStatusCode

    from tasks.model import move_production

    luigi_config({"gate": {"min_roc_auc": 0.5, "tolerance": 1.0}})  # every challenger is blessed
    built = luigi.build([Deployment(date=D(2013, 1, 6)), ModelEvaluation(date=D(2013, 1, 7))],
                        local_scheduler=True, detailed_summary=True)
    assert built.status == LuigiStatusCode.SUCCESS
    before = st.read_json(ModelEvaluation(date=D(2013, 1, 7)).record())["production_version"]
    earlier = st.read_json(Deployment(date=D(2013, 1, 5)).data())["production_version"]
    assert before == st.read_json(Deployment(date=D(2013, 1, 6)).data())["production_version"] != earlier
    # an operator rolls back between the evaluation of 2013-01-07 and its deployment decision
    move_production(get_storage(), earlier, "rolled_back", "by hand")

    decision = Deployment(date=D(2013, 1, 7))
    failed = luigi.build([decision], local_scheduler=True, detailed_summary=True)
    assert failed.status == LuigiStatusCode.FAILED
    with pytest.raises(rg.RegistryError, match=rf"the production model for 2013-01-07 is now {earlier}, but the "
                                               rf"evaluation compared the challenger with {before} .*mlpipe invalidate "
                                               r"--stage evaluate --start 2013-01-07 --end 2013-01-07 --yes"):
        decision.run()
    assert not decision.output().exists()
    assert model_registry().alias()["version"] == earlier  # the rollback stands
