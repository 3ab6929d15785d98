"""The model stages' bounded samples through luigi on the short real pipeline: the capped training
sample (reproducible, in proportion to each day's rows, exactly the rows a bare fit gets from
tests.pipeline.builders.sampled_inputs) and the gate's capped holdout sample, read back from the outputs."""
from __future__ import annotations

import datetime as dt
import shutil

import luigi
import pytest
from luigi.execution_summary import LuigiStatusCode
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from pipeline import storage as st
from pipeline.artifact import dump_model
from pipeline.estimators import make_estimator, predict
from pipeline.hashing import sha256_bytes
from pipeline.partitions import read_partitions
from pipeline.sampling import sample_rows
from tasks import CandidateModel, Deployment, FeaturePartition, ModelEvaluation
from tasks.config import current_dataset
from tasks.model import feature_targets, model_columns
from tests.pipeline.builders import sampled_inputs

D = dt.date


def build(*tasks):
    result = luigi.build(list(tasks), local_scheduler=True, detailed_summary=True)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    return result


def labelled_rows(day: dt.date) -> int:
    return int(st.read_parquet(FeaturePartition(date=day).data(), columns=[current_dataset().target.name])[current_dataset().target.name]
               .notna().sum())


def test_capped_training_sample_is_reproducible_proportional_and_the_bare_fits_rows(small_pipeline, luigi_config):
    luigi_config({"CandidateModel": {"max_train_rows": 1500}})
    task = CandidateModel(date=D(2013, 1, 7))
    build(task)
    meta = st.read_json(task.files()["metadata"])
    blob = st.read_bytes(task.files()["model"])
    train_days, _ = task.windows()
    per_day = {d: labelled_rows(d) for d in train_days}
    assert meta["max_train_rows"] == 1500 and meta["rows_trained"] == 1500
    assert meta["rows_labelled"] == sum(per_day.values()) > 1500
    share = 1500 / meta["rows_labelled"]
    assert {dt.date.fromisoformat(d) for d in meta["rows_trained_by_day"]} == set(train_days)
    for day, n in per_day.items():
        assert abs(meta["rows_trained_by_day"][day.isoformat()] - share * n) <= 1
    assert len(meta["input_fingerprints"]) == len(train_days)

    # the benchmark's reference: a bare fit of make_estimator on the sampled window is the same model
    data = current_dataset()
    X, y = sampled_inputs(read_partitions(feature_targets(train_days), model_columns()), data.target.name,
                          task.max_train_rows, task.random_state, data.numeric_features, data.categorical_features)
    assert len(X) == 1500 and y.mean() == meta["positive_rate"]
    bare = make_estimator(data.numeric_features, data.categorical_features, task.hyperparameters, data.problem)
    with threadpool_limits(limits=1):  # as the task's run() ([compute] threads = 1)
        bare.fit(X, y)
    assert dump_model(bare) == blob

    # a rerun samples the same rows: the same model bytes and reference profile
    shutil.rmtree(task.directory())
    build(CandidateModel(date=D(2013, 1, 7)))
    rerun = st.read_json(task.files()["metadata"])
    assert st.read_bytes(task.files()["model"]) == blob and rerun["model_sha256"] == meta["model_sha256"]
    assert rerun["reference_profile"] == meta["reference_profile"] and rerun["importance"] == meta["importance"]


def test_default_caps_do_not_bind_on_the_real_data(small_pipeline, luigi_config):
    luigi_config({"CandidateModel": {"max_train_rows": 1_000_000}})  # luigi.cfg's default
    task = CandidateModel(date=D(2013, 1, 6))
    build(task)
    meta = st.read_json(task.files()["metadata"])
    assert meta["rows_trained"] == meta["rows_labelled"] == meta["reference_profile"]["rows"]
    rows, _ = sample_rows(read_partitions(feature_targets(task.windows()[0]), model_columns()),
                          current_dataset().target.name, 0, 0)
    assert len(rows) == meta["rows_trained"]


def test_gate_scores_a_capped_seeded_sample_of_the_holdout(small_pipeline, luigi_config):
    luigi_config({"gate": {"max_eval_rows": 400, "seed": 3}})
    build(Deployment(date=D(2013, 1, 6)))
    record = st.read_json(ModelEvaluation(date=D(2013, 1, 6)).record())
    holdout_day = CandidateModel(date=D(2013, 1, 6)).windows()[1][0]
    available = len(st.read_parquet(FeaturePartition(date=holdout_day).data(), columns=[current_dataset().target.name]))
    assert record["holdout_rows"] == {"available": available, "labelled": labelled_rows(holdout_day),
                                      "evaluated": 400, "max_eval_rows": 400, "sample_seed": 3}
    assert record["production_version"] is not None
    assert record["challenger"]["rows"] == record["production"]["rows"] == 400
    assert record["decision"]["comparison"]["rows"] == 400
    data = current_dataset()
    rows, _ = sample_rows(read_partitions({holdout_day: FeaturePartition(date=holdout_day).data()},
                                          model_columns()), data.target.name, 400, 3)
    challenger, _ = CandidateModel(date=D(2013, 1, 6)).load()
    scores = predict(challenger, rows, data.numeric_features, data.categorical_features, data.problem)
    assert record["challenger"]["roc_auc"] == pytest.approx(roc_auc_score(rows[data.target.name].astype(int), scores))


def test_training_reads_the_window_one_day_at_a_time(small_pipeline, luigi_config, monkeypatch):
    import gc
    import weakref

    from tasks import model

    luigi_config({"CandidateModel": {"max_train_rows": 1000}})
    build(*[FeaturePartition(date=D(2013, 1, d)) for d in range(2, 8)])
    alive_when_read: list[int] = []
    real = model.read_partitions

    def watched(targets, columns=None, fingerprints=None):
        seen = []
        for day, table in real(targets, columns, fingerprints):
            gc.collect()
            alive_when_read.append(sum(ref() is not None for ref in seen))
            seen.append(weakref.ref(table))
            yield day, table
            del table

    monkeypatch.setattr(model, "read_partitions", watched)
    task = CandidateModel(date=D(2013, 1, 7))
    build(task)
    meta = st.read_json(task.files()["metadata"])
    assert meta["rows_trained"] == 1000 and len(meta["input_fingerprints"]) == 5
    # 5 training days then 1 holdout day; when a day is read only the one before it (still the
    # sampler's loop variable) may be alive: never the whole window
    assert alive_when_read == [0, 1, 1, 1, 1, 0]


def test_tuning_runs_on_the_capped_sample(small_pipeline, luigi_config):
    luigi_config({"CandidateModel": {"max_train_rows": 2000, "tuning_trials": 2, "tuning_folds": 2}})
    task = CandidateModel(date=D(2013, 1, 7))
    build(task)
    meta = st.read_json(task.files()["metadata"])
    assert meta["rows_trained"] == 2000 and len(meta["tuning"]["trials"]) == 2
    assert all(len(t["fold_roc_auc"]) == 2 for t in meta["tuning"]["trials"])


def test_read_partitions_reads_lazily_only_the_columns_asked_for(tmp_path):
    import luigi.format
    import pandas as pd

    targets = {}
    for i in range(3):
        target = luigi.LocalTarget(str(tmp_path / f"day{i}.parquet"), format=luigi.format.Nop)
        st.write_parquet(target, pd.DataFrame({"c": pd.Series(["a", None, "b"], dtype="string"),
                                               "x": [1.0, 2.0, float(i)], "unused": [0, 0, 0]}))
        targets[D(2013, 1, 1 + i)] = target
    fingerprints: dict[str, str] = {}
    parts = read_partitions(targets, ["c", "x"], fingerprints)
    day, table = next(parts)
    assert day == D(2013, 1, 1) and table.column_names == ["c", "x"] and len(fingerprints) == 1
    assert str(table.schema.field("c").type) == "dictionary<values=string, indices=int32, ordered=0>"
    assert len(list(parts)) == 2 and len(fingerprints) == 3
    assert fingerprints[targets[D(2013, 1, 1)].path] == sha256_bytes(st.read_bytes(targets[D(2013, 1, 1)]))
    with pytest.raises(KeyError, match=r"column\(s\) \['late'\] are missing from .*day0\.parquet"):
        next(read_partitions(targets, ["c", "late"]))
