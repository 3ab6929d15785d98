"""The model registry: immutable published versions, the production alias and its history.

A version is an immutable directory (model, evaluation, report, then a manifest holding the
sha256 of each, its signature by the pipeline's key (pipeline.signing), then _SUCCESS). A model is
loaded only after the manifest's signature, then the model's sha256, then the skops allow-list
pass. The production alias is a record that points at a version; every
move of it is also kept as an immutable history record: automatic ones from the nightly
deployment decision ("deployed"), manual ones from `mlpipe models promote|rollback`. A version
moved to on as-of date D is the one that serves dates after D, so "which model was live on date X"
is answerable from storage alone."""
from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import os
import pwd
import socket
from typing import Callable, NamedTuple

from pipeline import conditional, identifiers, layout, signing
from pipeline import storage as st
from pipeline.artifact import check_libraries, current_libraries, load_model
from pipeline.hashing import json_bytes, sha256_bytes
from pipeline.layout import MANIFEST_FILE, MODEL_FILE

logger = logging.getLogger(__name__)

MANUAL_KINDS = ("promoted", "rolled_back")


class RegistryError(RuntimeError):
    pass


class VersionCorrupt(RegistryError):
    """A published version whose files or signed manifest do not check out: not the asker's mistake,
    a problem in the store (`mlpipe verify` finds it too)."""


class AliasMoved(RegistryError):
    """The production alias changed between the read a move was decided on and the move itself;
    nothing was overwritten. `record` is the alias as it is now."""

    def __init__(self, message: str, record: dict | None):
        super().__init__(message)
        self.record = record


class AliasRead(NamedTuple):
    """The production alias as read (None before the first move) and its token, which a move
    decided on this read passes back so that it happens only if nobody moved the alias since."""
    record: dict | None
    token: str | None


def version_id(date: dt.date, lineage: str) -> str:
    """Deterministic version id, so a from-scratch backfill reproduces the same versions."""
    return f"{date:%Y%m%d}-{lineage}"


def version_date(version: str) -> dt.date | None:
    """The as-of date a version id starts with (version_id), None for an id of another form."""
    try:
        return dt.datetime.strptime(version.split("-", 1)[0], "%Y%m%d").date()
    except ValueError:
        return None


class Registry:
    """Versions under `{root}/registry/versions/<id>/`, the live alias in
    `{root}/registry/production.json`, one immutable record per alias move in
    `{root}/registry/history/`, and the latest manual move effective after date D in
    `{root}/registry/overrides/D.json`."""

    def __init__(self, storage: st.Storage, keys: signing.Keyring | Callable[[], signing.Keyring] | None = None,
                 library_policy: str = "warn"):
        self.storage = storage
        self.base = storage.path(layout.REGISTRY)
        self.keys = keys  # needed to publish, load, sign or move the alias; a callable is asked when needed
        self.library_policy = library_policy  # pipeline.artifact.check_libraries

    def _path(self, *parts: str) -> str:
        return self.storage.path(layout.REGISTRY, *parts)

    def version_dir(self, version: str) -> str:
        return self._path(layout.VERSIONS, checked_version(version))

    def is_published(self, version: str) -> bool:
        return self.storage.flag(self.version_dir(version)).exists()

    def versions(self) -> list[str]:
        """Published versions, oldest first (ids start with their date)."""
        files = self.storage.list_files(self._path(layout.VERSIONS))
        return sorted({p.rstrip("/").split("/")[-2] for p in files if p.endswith("/" + layout.SUCCESS)})

    def publish(self, version: str, files: dict[str, bytes], manifest: dict) -> bool:
        """Write a new immutable version: `files` (MODEL_FILE among them), then manifest.json with
        the sha256 of every file, then _SUCCESS. Returns False, writing nothing, when the version
        is already published."""
        if MODEL_FILE not in files:
            raise RegistryError(f"a version needs {MODEL_FILE}; got {sorted(files)}")
        if self.is_published(version):
            return False
        d = self.version_dir(version)
        written = {}
        for name, data in sorted(files.items()):
            target = self.storage.file(d, name)
            written[target] = st.write_bytes(target, data)
        hashes = {name: sha256_bytes(data) for name, data in files.items()}
        manifest = {**manifest, "version": version, "files": hashes, "model_sha256": hashes[MODEL_FILE]}
        written.update(write_signed(self.storage.file(d, MANIFEST_FILE), manifest, self._keys()))
        st.seal(self.storage.flag(d), written)
        return True

    def _keys(self) -> signing.Keyring:
        if self.keys is None:
            raise RegistryError("no signing key: this registry was opened without one ([signing] in luigi.cfg)")
        if callable(self.keys):
            self.keys = self.keys()
        return self.keys

    def manifest(self, version: str) -> dict:
        """The manifest as stored, for listing; trusted_manifest before acting on it."""
        return st.read_json(self._manifest_target(version))

    def _manifest_target(self, version: str):
        """The manifest of a published version (RegistryError when the version is not published)."""
        if not self.is_published(version):
            raise RegistryError(f"model version {version} is not published in {self.base} "
                                "(no _SUCCESS flag); `mlpipe models list` shows the published ones")
        return self.storage.file(self.version_dir(version), MANIFEST_FILE)

    def trusted_manifest(self, version: str) -> dict:
        """The manifest once its signature is valid under an accepted key and it names this
        version; RegistryError naming the version and what failed otherwise."""
        target = self._manifest_target(version)
        try:
            manifest = read_signed(target, self._keys())
        except signing.SignatureError as exc:
            raise VersionCorrupt(f"model version {version}: {exc}") from None
        if manifest.get("version") != version:
            raise VersionCorrupt(f"model version {version}: its signed manifest is the one of version "
                                f"{manifest.get('version')} (copied there): refusing it")
        return manifest

    def signature(self, version: str) -> dict:
        """Whether the version's manifest is signed, by which key, and whether the signature is
        valid under the accepted keys (pipeline.signing.describe)."""
        target = self.storage.file(self.version_dir(version), MANIFEST_FILE)
        try:
            keys = self._keys()
        except (RegistryError, signing.SignatureError):
            keys = None
        return signing.describe(st.read_bytes(target), _signature_bytes(target), keys, MANIFEST_FILE)

    def sign(self, version: str) -> bool:
        """Sign a version published before manifests were signed, once every file matches the
        manifest's sha256 (False when it already has a valid signature). Its seal then records
        the signature too."""
        if self.signature(version)["valid"]:
            return False
        checks = self.verify(version)
        if not all(v == "ok" for v in checks.values()):
            raise VersionCorrupt(f"version {version} fails its sha256 check ({checks}): refusing to sign it")
        d = self.version_dir(version)
        flag = self.storage.flag(d)
        manifest_target = self.storage.file(d, MANIFEST_FILE)
        written = {st.file_beside(flag, name): info for name, info in (st.read_seal(flag) or {}).items()
                   if name != layout.signature_file(MANIFEST_FILE)}
        written.update(write_signed(manifest_target, None, self._keys(), data=st.read_bytes(manifest_target)))
        st.seal(flag, written)
        return True

    def verify(self, version: str) -> dict[str, str]:
        """Each file of the manifest: 'ok', 'missing' or 'changed' (sha256 differs)."""
        result = {}
        for name, expected in sorted(self.manifest(version).get("files", {}).items()):
            target = self.storage.file(self.version_dir(version), name)
            if not target.exists():
                result[name] = "missing"
            else:
                result[name] = "ok" if sha256_bytes(st.read_bytes(target)) == expected else "changed"
        return result

    def load(self, version: str, libraries: dict[str, str] | None = None):
        """(model, manifest): the model only after the manifest's signature, then the model's
        sha256, then the library versions (self.library_policy; against `libraries`, default the installed ones)
        and the skops allow-list pass."""
        manifest = self.trusted_manifest(version)
        target = self.storage.file(self.version_dir(version), MODEL_FILE)
        for warning in check_libraries(manifest.get("library_versions", {}), libraries or current_libraries(),
                                       self.library_policy, f"model version {version}"):
            logger.warning(warning)
        return load_model(st.read_bytes(target), manifest["model_sha256"], target.path), manifest

    def read_file(self, version: str, name: str) -> bytes:
        """A file of a published version, checked against the manifest's sha256."""
        expected = self.manifest(version).get("files", {}).get(name)
        target = self.storage.file(self.version_dir(version), name)
        data = st.read_bytes(target)
        if expected is None or sha256_bytes(data) != expected:
            raise RegistryError(f"{target.path} does not match the sha256 in its manifest: refusing it")
        return data

    # ---- the production alias -------------------------------------------------------------
    def alias(self) -> dict | None:
        return self.read_alias().record

    def read_alias(self) -> AliasRead:
        data, token = conditional.read_versioned(self.storage, self._alias_path())
        return AliasRead(None if data is None else json.loads(data), token)

    def _alias_path(self) -> str:
        return self.storage.path(layout.REGISTRY, layout.ALIAS_FILE)

    def history(self) -> list[dict]:
        """Every alias move, in order (as-of date, then automatic before manual, then time)."""
        prefix = self._path(layout.HISTORY)
        names = sorted(n for n in self.storage.listdir(prefix) if n.endswith(".json"))
        return [st.read_json(self.storage.file(prefix, n)) for n in names]

    def move_alias(self, version: str, as_of: dt.date, reason: str, seen: AliasRead | None = None) -> bool:
        """The nightly decision of `as_of` points production at `version`. Refused (False) when the
        alias already reflects a later date, or a manual move after this date's decision. `seen`:
        the read of the alias the decision was checked against (read now when None); AliasMoved
        when the alias changed since."""
        checked_version(version)  # it names the history record
        seen = seen or self.read_alias()
        current = seen.record
        if current:
            if current["as_of"] > as_of.isoformat():
                return False
            if current["as_of"] == as_of.isoformat() and current["version"] == version and current.get("kind") == "deployed":
                self._keep_in_history(current, f"{as_of.isoformat()}_0_deployed_{version}")  # a killed move's second half
                return False
            if current["as_of"] == as_of.isoformat() and current.get("kind") in MANUAL_KINDS:
                return False
        self._record(version, as_of, "deployed", reason, seen, f"{as_of.isoformat()}_0_deployed_{version}",
                     f"the nightly deployment of {as_of} to {version} was checked against the model in production "
                     "as it was before; run the day again (`mlpipe run --date "
                     f"{as_of}`): its deployment then checks against the model in production now and says what to redo")
        return True

    def override(self, version: str, after: dt.date, kind: str, reason: str, seen: AliasRead | None = None) -> dict:
        """A manual move (`kind` promoted or rolled_back) to a published `version`, serving the
        dates after `after` (the last date with a deployment decision): the next nightly run
        scores with it and compares its challenger with it. `seen`: the read of the alias the
        move was decided on (read now when None); AliasMoved when the alias changed since."""
        if kind not in MANUAL_KINDS:
            raise ValueError(f"kind must be one of {MANUAL_KINDS}, not {kind!r}")
        self.trusted_manifest(version)  # raises when not published or not signed by an accepted key
        checks = self.verify(version)
        if not all(v == "ok" for v in checks.values()):
            raise VersionCorrupt(f"version {version} fails its sha256 check ({checks}): "
                                "refusing to put it in production")
        seen = seen or self.read_alias()
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        record = self._record(version, after, kind, reason, seen, f"{after.isoformat()}_1_{stamp}_{kind}_{version}",
                              f"production was not changed by this {kind.replace('_', ' ')} to {version}; look at "
                              "`mlpipe models show production` and run the command again if it is still wanted")
        st.write_json(self.storage.file(self._path(layout.OVERRIDES), f"{after.isoformat()}.json"), record)
        return record

    def override_after(self, day: dt.date) -> dict | None:
        """The latest manual move recorded after `day`'s deployment decision, if any."""
        target = self.storage.file(self._path(layout.OVERRIDES), f"{day.isoformat()}.json")
        return st.read_json(target) if target.exists() else None

    def _record(self, version: str, as_of: dt.date, kind: str, reason: str, seen: AliasRead,
                name: str, todo: str) -> dict:
        """Move the alias to a new record if it is still as `seen`, then keep the record in the
        history; AliasMoved (saying `todo`) when another move came first."""
        current = seen.record
        record = {"version": version, "as_of": as_of.isoformat(), "kind": kind, "reason": reason,
                  "previous_version": current["version"] if current else None,
                  "moved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "moved_by": who(), "os_user": os_user()}
        if not conditional.write_if(self.storage, self._alias_path(), json_bytes(record), seen.token):
            now = self.alias()
            moved = ("it was removed" if now is None else
                     f"{now.get('moved_by')} moved it ({now.get('kind')} {now.get('version')} as of "
                     f"{now.get('as_of')}, at {now.get('moved_at')})")
            raise AliasMoved(f"the production alias {self._alias_path()} changed after it was read: {moved}. "
                             f"Nothing was overwritten: {todo}", now)
        st.write_json(self.storage.file(self._path(layout.HISTORY), f"{name}.json"), record)
        return record

    def _keep_in_history(self, record: dict, name: str) -> None:
        """Write the history record of an alias move whose process died between moving the alias
        and recording the move (the alias is moved first), so no move goes missing from the history."""
        target = self.storage.file(self._path(layout.HISTORY), f"{name}.json")
        if not target.exists():
            st.write_json(target, record)

    def rollback_target(self) -> str:
        """The version live before the current one, skipping versions already rolled back from."""
        current = self.alias()
        if current is None:
            raise RegistryError("no model is in production yet: nothing to roll back")
        abandoned = {r["previous_version"] for r in self.history() if r["kind"] == "rolled_back"}
        for record in reversed(self.history()):
            version = record["version"]
            if version != current["version"] and version not in abandoned:
                return version
        raise RegistryError(f"no earlier version than {current['version']} to roll back to; "
                            "name one with --to VERSION (see `mlpipe models list`)")


def checked_version(version: str) -> str:
    """`version` when it is a version id (pipeline.identifiers), RegistryError otherwise: a
    version names a directory and a history record, and must not lead outside them."""
    try:
        return identifiers.check_version(version)
    except identifiers.IdentifierError as exc:
        raise RegistryError(str(exc)) from None


def live_periods(history: list[dict]) -> list[dict]:
    """Which version served which dates: one entry per alias move, serving from the day after its
    as-of date through the as-of date of the next move (`to` None: still live). A move followed
    by another on the same as-of date never served (`served` False)."""
    out = []
    for i, record in enumerate(history):
        last = history[i + 1]["as_of"] if i + 1 < len(history) else None
        first = (dt.date.fromisoformat(record["as_of"]) + dt.timedelta(days=1)).isoformat()
        out.append({"version": record["version"], "kind": record["kind"], "from": first, "to": last,
                    "served": last is None or last >= first, "reason": record["reason"],
                    "moved_by": mover(record), "moved_at": record["moved_at"]})
    return out


def write_signed(target, record: dict, keys: signing.Keyring, data: bytes | None = None) -> dict:
    """Write `record` as JSON (or its existing bytes `data`, None: write them) to `target`, then
    its signature beside it; {target: file_info} of both, for the output's seal."""
    written = {}
    if data is None:
        data = json_bytes(record)
        written[target] = st.write_bytes(target, data)
    sig = _signature_target(target)
    written[sig] = st.write_bytes(sig, signing.sign(data, keys.signing, signer()))
    return written


def read_signed(target, keys: signing.Keyring) -> dict:
    """The JSON record in `target` once its signature is valid (SignatureError otherwise)."""
    data = st.read_bytes(target)
    signing.check(data, _signature_bytes(target), keys, target.path)
    return json.loads(data)


def _signature_target(target):
    """The signature beside the signed record `target`."""
    return st.file_beside(target, layout.signature_file(target.path.rsplit("/", 1)[-1]))


def _signature_bytes(target) -> bytes | None:
    try:
        return st.read_bytes(_signature_target(target))
    except FileNotFoundError:
        return None


def signer() -> dict:
    """Who signs a record: the name given, the OS user and the host."""
    return {"name": who(), "os_user": os_user(), "host": socket.gethostname()}


def os_user() -> str:
    """The OS account this process runs as (whatever $MLPIPE_USER says)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def mover(record: dict) -> str:
    """Who moved the alias as a history record names them: the name given, and the OS user
    when it differs (records from before os_user name only the first)."""
    name, user = record.get("moved_by") or "unknown", record.get("os_user")
    return name if not user or user == name else f"{name} (OS user {user})"


def who() -> str:
    """Who moves the alias or holds a lease: $MLPIPE_USER, else $SUDO_USER, else the login."""
    for var in ("MLPIPE_USER", "SUDO_USER"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
