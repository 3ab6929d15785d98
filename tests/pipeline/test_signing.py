"""Signed manifests: a model loads only when its manifest's signature is valid under an accepted key,
then its sha256 matches, then its library versions pass the policy. Keys: made on first use with
0600 outside the root, refused when others can read them or when they sit inside the root."""
from __future__ import annotations

import json
import os
import stat

import pytest

from pipeline import registry as rg
from pipeline import signing
from pipeline import storage as st
from pipeline.artifact import ModelIntegrityError, check_libraries, current_libraries, dump_model
from pipeline.hashing import json_bytes, sha256_bytes
from tests.pipeline.builders import TEST_KEYS

VERSION = "20130105-abc123"
MODEL = {"kind": "stand-in model", "weights": [0.1, 0.2]}
OTHER_KEY = signing.key_from_text("another-key-" * 4, "another key")


def publish(registry, model=MODEL, libraries=None):
    files = {"model.skops": dump_model(model), "evaluation.json": json_bytes({"ok": True})}
    manifest = {"library_versions": current_libraries() if libraries is None else libraries}
    assert registry.publish(VERSION, files, manifest)
    return registry.version_dir(VERSION)


def swap_model(registry, model) -> None:
    """What an attacker with write access to the root does: a new model file, and its sha256
    written into the manifest, so that every sha256 check passes."""
    d = registry.version_dir(VERSION)
    data = dump_model(model)
    with open(os.path.join(d, "model.skops"), "wb") as out:
        out.write(data)
    path = os.path.join(d, "manifest.json")
    manifest = json.load(open(path))
    manifest["files"]["model.skops"] = manifest["model_sha256"] = sha256_bytes(data)
    with open(path, "wb") as out:
        out.write(json_bytes(manifest))


@pytest.fixture
def registry(storage):
    return rg.Registry(storage, TEST_KEYS)


def test_a_published_version_is_signed_and_loads(registry):
    d = publish(registry)
    signature = json.load(open(os.path.join(d, "manifest.json.sig")))
    assert signature["key_id"] == TEST_KEYS.signing.key_id and signature["algorithm"] == "hmac-sha256"
    assert signature["signed_by"]["os_user"] and signature["signed_by"]["host"]
    assert TEST_KEYS.signing.secret.decode() not in open(os.path.join(d, "manifest.json.sig")).read()
    assert registry.signature(VERSION) == {"signed": True, "key_id": TEST_KEYS.signing.key_id, "valid": True,
                                           "problem": None, "signed_by": signature["signed_by"]}
    assert "manifest.json.sig" in st.read_seal(registry.storage.flag(d))  # verify checks it too
    assert registry.load(VERSION)[0] == MODEL


def test_a_swapped_model_with_its_sha256_recomputed_is_refused_before_it_is_read(registry, monkeypatch):
    publish(registry)
    swap_model(registry, {"kind": "attacker's model"})
    assert registry.verify(VERSION) == {"evaluation.json": "ok", "model.skops": "ok"}  # sha256 alone is fooled
    loaded = []
    monkeypatch.setattr(rg, "load_model", lambda *a: loaded.append(a))
    with pytest.raises(rg.RegistryError, match=rf"model version {VERSION}: .*manifest.json does not match its "
                                               rf"signature by key {TEST_KEYS.signing.key_id}"):
        registry.load(VERSION)
    assert loaded == []  # refused before any byte of the model was deserialised
    assert registry.signature(VERSION)["valid"] is False
    with pytest.raises(rg.RegistryError, match="does not match its signature"):
        registry.override(VERSION, rg.version_date(VERSION), "promoted", "try")
    assert registry.alias() is None


def test_an_unsigned_manifest_is_refused_until_signed(registry):
    d = publish(registry)
    os.remove(os.path.join(d, "manifest.json.sig"))
    with pytest.raises(rg.RegistryError, match=rf"model version {VERSION}: .*manifest.json is not signed"):
        registry.load(VERSION)
    assert registry.signature(VERSION)["signed"] is False
    assert registry.sign(VERSION) is True  # the upgrade path: checked against its sha256, then signed
    assert registry.sign(VERSION) is False
    assert registry.load(VERSION)[0] == MODEL
    assert "manifest.json.sig" in st.read_seal(registry.storage.flag(d))


def test_sign_refuses_a_version_whose_files_do_not_match_its_manifest(registry):
    d = publish(registry)
    os.remove(os.path.join(d, "manifest.json.sig"))
    with open(os.path.join(d, "model.skops"), "ab") as out:
        out.write(b"x")
    with pytest.raises(rg.RegistryError, match="fails its sha256 check"):
        registry.sign(VERSION)
    assert not os.path.exists(os.path.join(d, "manifest.json.sig"))


def test_a_manifest_signed_with_another_key_is_refused(registry, storage):
    publish(rg.Registry(storage, signing.Keyring(OTHER_KEY)))
    with pytest.raises(rg.RegistryError, match=rf"signed by key {OTHER_KEY.key_id}, which is not an accepted key"):
        registry.load(VERSION)


def test_a_signed_manifest_copied_to_another_version_is_refused(registry):
    d = publish(registry)
    other = registry.version_dir("20130106-abc123")
    import shutil

    shutil.copytree(d, other)
    with pytest.raises(rg.RegistryError, match="is the one of version 20130105-abc123"):
        registry.load("20130106-abc123")


def test_key_rotation_accepts_listed_old_keys_and_signs_with_the_new_one(storage):
    old = rg.Registry(storage, signing.Keyring(OTHER_KEY))
    publish(old)
    rotated = rg.Registry(storage, signing.Keyring(TEST_KEYS.signing, (OTHER_KEY,)))
    assert rotated.load(VERSION)[0] == MODEL
    assert rotated.signature(VERSION)["key_id"] == OTHER_KEY.key_id
    assert rotated.publish("20130106-abc123", {"model.skops": dump_model(MODEL)}, {})
    assert rotated.signature("20130106-abc123")["key_id"] == TEST_KEYS.signing.key_id
    dropped = rg.Registry(storage, TEST_KEYS)  # the old key no longer listed
    assert dropped.load("20130106-abc123")[0] == MODEL
    with pytest.raises(rg.RegistryError, match="not an accepted key"):
        dropped.load(VERSION)


def test_library_versions_policy_warns_or_refuses_naming_both_versions(storage, caplog):
    recorded = {**current_libraries(), "scikit-learn": "0.24.2"}
    now = current_libraries()["scikit-learn"]
    publish(rg.Registry(storage, TEST_KEYS), libraries=recorded)
    with caplog.at_level("WARNING"):
        assert rg.Registry(storage, TEST_KEYS, "warn").load(VERSION)[0] == MODEL
    assert f"model version {VERSION} was saved with scikit-learn 0.24.2 (this process has {now})" in caplog.text
    with pytest.raises(ModelIntegrityError, match=rf"saved with scikit-learn 0.24.2 \(this process has {now}\): "
                                                  r"refusing to load it"):
        rg.Registry(storage, TEST_KEYS, "refuse").load(VERSION)
    assert check_libraries(current_libraries(), current_libraries(), "refuse", "m") == []


# ---- keys -------------------------------------------------------------------------------------
def test_a_key_made_on_first_use_is_private_and_reused(tmp_path):
    path = str(tmp_path / "config" / "mlpipe" / "signing.key")
    key = signing.create_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert signing.create_key_file(path) == key and len(key.secret) == 64


def test_a_key_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "key"
    path.write_text("k" * 40)
    path.chmod(0o644)
    with pytest.raises(signing.SignatureError, match=rf"{path} can be read by other users .*chmod 600 {path}"):
        signing.read_key_file(str(path))
    path.chmod(0o600)
    assert signing.read_key_file(str(path)).secret == b"k" * 40


def test_a_short_key_and_a_key_inside_the_root_are_refused(tmp_path):
    with pytest.raises(signing.SignatureError, match="has 5 characters; a key needs at least 32"):
        signing.key_from_text("short", "$MLPIPE_SIGNING_KEY")
    root = tmp_path / "root"
    with pytest.raises(signing.SignatureError, match="is inside the storage root"):
        signing.check_outside(str(root / "keys" / "k"), str(root))
    signing.check_outside(str(tmp_path / "elsewhere" / "k"), str(root))


def test_a_key_id_names_the_key_without_revealing_it():
    assert OTHER_KEY.key_id != TEST_KEYS.signing.key_id and len(OTHER_KEY.key_id) == 16
    assert OTHER_KEY.secret.decode() not in repr(OTHER_KEY) + repr(signing.Keyring(OTHER_KEY))
