"""Only a model signed by the pipeline's key reaches production, on a short real pipeline: the
attack of swapping a version's model for a constant one and writing its sha256 into the manifest,
the same done to a candidate before its evaluation, and the key made on first use."""
from __future__ import annotations

import datetime as dt
import json
import os
import stat

import luigi
import pytest

from pipeline import signing
from pipeline import storage as st
from pipeline.artifact import dump_model
from pipeline.hashing import json_bytes, sha256_bytes
from tasks import CandidateModel, Deployment, ModelEvaluation, Predictions
from tasks.cli import main
from tasks.config import keyring, model_registry

D = dt.date


def constant_model():
    """The attacker's model: scores every row 1.0 whatever its features."""
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="constant", constant=1).fit([[0], [1]], [0, 1])


def rewrite(path: str, record: dict) -> None:
    with open(path, "wb") as out:
        out.write(json_bytes(record))


def test_a_swapped_production_model_with_a_recomputed_sha256_is_refused(small_pipeline, luigi_config, capsys):
    luigi_config({"gate": {"min_roc_auc": 0.5, "tolerance": 1.0}, "core": {"no_lock": "true"}})
    assert luigi.build([Deployment(date=D(2013, 1, 5))], local_scheduler=True)
    reg = model_registry()
    [version] = reg.versions()
    d = reg.version_dir(version)
    data = dump_model(constant_model())
    with open(os.path.join(d, "model.skops"), "wb") as out:
        out.write(data)
    manifest = json.load(open(os.path.join(d, "manifest.json")))
    manifest["files"]["model.skops"] = manifest["model_sha256"] = sha256_bytes(data)
    rewrite(os.path.join(d, "manifest.json"), manifest)
    capsys.readouterr()

    assert main(["models", "show", version]) == 60  # verify_problems: a file or the signature is wrong
    shown = capsys.readouterr().out
    assert "model.skops ok" in shown  # the sha256 alone is fooled...
    assert f"signature:        INVALID (manifest.json does not match its signature by key " in shown  # ...not this

    assert main(["verify", "--stage", "registry"]) == 60
    assert f"forged      registry     2013-01-05  {d}/manifest.json: manifest.json does not match" in capsys.readouterr().out

    assert main(["run", "--date", "2013-01-06"]) == 30  # task_failed: scoring and evaluation refuse the model
    assert not Predictions(date=D(2013, 1, 6)).output().exists()
    assert not ModelEvaluation(date=D(2013, 1, 6)).output().exists()
    assert main(["models", "promote", version, "--reason", "try"]) == 60
    assert f"model version {version}: " in capsys.readouterr().err


def test_a_swapped_candidate_is_refused_by_its_evaluation(small_pipeline, luigi_config):
    luigi_config({"gate": {"min_roc_auc": 0.5, "tolerance": 1.0}})
    candidate = CandidateModel(date=D(2013, 1, 5))
    assert luigi.build([candidate], local_scheduler=True)
    data = dump_model(constant_model())
    files = candidate.files()
    with open(files["model"].path, "wb") as out:
        out.write(data)
    meta = st.read_json(files["metadata"])
    rewrite(files["metadata"].path, {**meta, "model_sha256": sha256_bytes(data)})
    evaluation = ModelEvaluation(date=D(2013, 1, 5))
    assert not luigi.build([evaluation], local_scheduler=True)
    with pytest.raises(signing.SignatureError, match=r"metadata.json does not match its signature"):
        evaluation.run()
    assert not evaluation.output().exists() and model_registry().versions() == []


def test_the_key_is_made_on_first_use_outside_the_root_and_a_key_inside_it_is_refused(
        root, luigi_config, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLPIPE_SIGNING_KEY")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    key = keyring().signing
    path = tmp_path / "config" / "mlpipe" / "signing.key"
    assert key.source == str(path) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keyring().signing == key

    inside = root / "keys" / "signing.key"
    inside.parent.mkdir(parents=True)
    inside.write_text("k" * 40)
    inside.chmod(0o600)
    luigi_config({"signing": {"key_file": str(inside)}})
    assert main(["models", "list"]) == 2
    assert capsys.readouterr().err.strip() == (f"mlpipe: the signing key file {inside} is inside the storage root "
                                               f"{root}: keep it outside (a key beside the models protects nothing)")
