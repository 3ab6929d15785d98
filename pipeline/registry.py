"""Model registry and deployment decisions. Versions are immutable directories; the production
alias only moves forward in time; each day's decision record chains to the previous day's, so
"which model was live on date X" is answerable from storage alone."""
from __future__ import annotations

import datetime as dt
import getpass
import os

from pipeline import storage as st
from pipeline.training import load_model


class RegistryError(RuntimeError):
    pass


def version_id(date: dt.date, lineage: str) -> str:
    """Deterministic version id, so a from-scratch backfill reproduces the same versions."""
    return f"{date:%Y%m%d}-{lineage}"


def decide(date: dt.date, evaluation: dict, previous: dict | None, lineage: str) -> dict:
    """The deployment decision for `date` given the evaluation and the decision of `date - 1`."""
    before = previous.get("production_version") if previous else None
    blessed = bool(evaluation["decision"]["blessed"])
    return {
        "date": date.isoformat(),
        "lineage": lineage,
        "blessed": blessed,
        "action": "deployed" if blessed else "kept",
        "challenger_id": evaluation.get("challenger_id"),
        "candidate_version": version_id(date, lineage) if blessed else None,
        "production_version_before": before,
        "production_version": version_id(date, lineage) if blessed else before,
        "reasons": evaluation["decision"]["reasons"],
        "metrics": {"challenger": evaluation["challenger"], "production": evaluation.get("production")},
    }


class Registry:
    """Versions under `{root}/registry/versions/<id>/`, the live alias in
    `{root}/registry/production.json`, and one immutable record per alias move in
    `{root}/registry/history/`."""

    def __init__(self, storage: st.Storage):
        self.storage = storage
        self.base = storage.path("registry")

    def version_dir(self, version: str) -> str:
        return os.path.join(self.base, "versions", version)

    def is_published(self, version: str) -> bool:
        return self.storage.flag(self.version_dir(version)).exists()

    def publish(self, version: str, model_bytes: bytes, manifest: dict, evaluation: dict) -> bool:
        """Write a new immutable version (model, manifest, evaluation, then _SUCCESS).
        Returns False, writing nothing, when the version is already published."""
        if self.is_published(version):
            return False
        d = self.version_dir(version)
        manifest = {**manifest, "version": version, "model_sha256": st.sha256_bytes(model_bytes)}
        st.write_bytes(self.storage.file(d, "model.pkl"), model_bytes)
        st.write_json(self.storage.file(d, "evaluation.json"), evaluation)
        st.write_json(self.storage.file(d, "manifest.json"), manifest)
        st.write_flag(self.storage.flag(d))
        return True

    def manifest(self, version: str) -> dict:
        if not self.is_published(version):
            raise RegistryError(f"model version {version} is not published in {self.base} "
                                "(no _SUCCESS flag); rerun its Deployment task")
        return st.read_json(self.storage.file(self.version_dir(version), "manifest.json"))

    def load(self, version: str):
        """Load a published model after checking its sha256 against the manifest."""
        manifest = self.manifest(version)
        target = self.storage.file(self.version_dir(version), "model.pkl")
        return load_model(st.read_bytes(target), manifest["model_sha256"], target.path), manifest

    def alias(self) -> dict | None:
        target = self.storage.file(self.base, "production.json")
        return st.read_json(target) if target.exists() else None

    def move_alias(self, version: str, as_of: dt.date, reason: str) -> bool:
        """Point production at `version` unless the alias already reflects a later date."""
        current = self.alias()
        if current and current["as_of"] > as_of.isoformat():
            return False
        if current and current["version"] == version and current["as_of"] == as_of.isoformat():
            return False
        record = {"version": version, "as_of": as_of.isoformat(), "reason": reason,
                  "previous_version": current["version"] if current else None,
                  "moved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "moved_by": _who()}
        st.write_json(self.storage.file(os.path.join(self.base, "history"),
                                        f"{as_of.isoformat()}_{version}.json"), record)
        st.write_json(self.storage.file(self.base, "production.json"), record)
        return True


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
