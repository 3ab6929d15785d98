"""When a landing file counts as delivered: the readiness rule a table's description sets
(`ready = "stable"`, `"marker"` or `"manifest"`), decided by a pure function that gives the reason
a user reads, and a thin reader of what the rule needs from the storage backend."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Callable

from pipeline import storage as st
from pipeline.hashing import sha256_bytes

# The rules, and the table setting each one reads besides `ready`, with its default. A description
# that says nothing gets DEFAULT_RULE.
RULE_KEY = "ready"
DEFAULT_RULE = "stable"
SETTINGS = {"stable": "stable_seconds", "marker": "marker", "manifest": "manifest"}
RULES = tuple(SETTINGS)
DEFAULT_STABLE_SECONDS = 60
DEFAULT_MARKER = "{file}.done"
DEFAULT_MANIFEST = "{file}.manifest.json"
KEYS = (RULE_KEY, *SETTINGS.values())  # the table settings of this module, for the description's check


@dataclass(frozen=True)
class ReadinessRule:
    """How a table's landing file is known to be whole. `marker` and `manifest` name the file
    beside it, `{file}` standing for the landing file's name."""
    table: str
    ready: str = DEFAULT_RULE
    stable_seconds: float = DEFAULT_STABLE_SECONDS
    marker: str = DEFAULT_MARKER
    manifest: str = DEFAULT_MANIFEST

    @property
    def setting(self) -> str:
        """How the description names the rule, for messages: [tables.flights] ready = "marker"."""
        return f'[tables.{self.table}] {RULE_KEY} = "{self.ready}"'

    def companion(self, landing_path: str) -> str | None:
        """The done-marker or manifest of the landing file at `landing_path` (any form of path:
        it is put in the same directory); None for the stable rule, which needs none."""
        if self.ready == "stable":
            return None
        pattern = self.marker if self.ready == "marker" else self.manifest
        head, _, name = landing_path.rpartition("/")
        beside = pattern.format(file=name)
        return f"{head}/{beside}" if head else beside


@dataclass(frozen=True)
class FileState:
    """What one metadata request tells of a file."""
    size: int
    modified: float  # seconds since the epoch


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str  # why it counts as delivered, or why not yet


def parse_rule(table: str, spec: dict) -> ReadinessRule:
    """The readiness rule of a table's description settings `spec` (other settings are ignored).
    Raises ValueError naming the setting and what to write instead."""
    ready = spec.get(RULE_KEY, DEFAULT_RULE)
    if ready not in RULES:
        raise ValueError(f"{RULE_KEY} = {ready!r}: choose one of {list(RULES)} (a landing file counts as "
                         "delivered when unchanged for stable_seconds, when its done-marker is beside it, or when "
                         "it matches the manifest beside it)")
    for rule, key in SETTINGS.items():
        if key in spec and rule != ready:
            raise ValueError(f"{key} applies to {RULE_KEY} = \"{rule}\" only, and the table's rule is "
                             f"{RULE_KEY} = \"{ready}\": set {RULE_KEY} = \"{rule}\" or drop {key}")
    options: dict = {}
    seconds = spec.get("stable_seconds", DEFAULT_STABLE_SECONDS)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or seconds < 0:
        raise ValueError(f"stable_seconds = {seconds!r}: the seconds a landing file must stay unchanged before "
                         f"it counts as delivered, a number >= 0 (default {DEFAULT_STABLE_SECONDS})")
    options["stable_seconds"] = seconds
    for key, default in (("marker", DEFAULT_MARKER), ("manifest", DEFAULT_MANIFEST)):
        pattern = spec.get(key, default)
        problem = _name_problem(pattern)
        if problem:
            raise ValueError(f"{key} = {pattern!r}: {problem}; write the name of the file beside the landing "
                             f"file, with {{file}} for the landing file's name, e.g. {key} = \"{default}\"")
        options[key] = pattern
    return ReadinessRule(table=table, ready=ready, **options)


def _name_problem(pattern) -> str | None:
    if not isinstance(pattern, str) or not pattern.strip():
        return "not a file name"
    try:
        name = pattern.format(file="x.csv")
    except (KeyError, IndexError, ValueError) as exc:
        return f"it cannot be formatted ({exc}); the only field is {{file}}"
    if name == "x.csv":
        return "it names the landing file itself"
    if name.startswith("/"):
        return "it is an absolute path"
    return None


def companion_content(rule: ReadinessRule, data: bytes) -> bytes | None:
    """What an upstream system writes beside a landing file of content `data`, after it, for
    `rule` to count the file as delivered: an empty done-marker, the manifest, or nothing."""
    if rule.ready == "marker":
        return b""
    if rule.ready == "manifest":
        return json.dumps({"bytes": len(data), "sha256": sha256_bytes(data)}).encode()
    return None


def decide(rule: ReadinessRule, name: str, file: FileState | None, now: float, companion_name: str | None = None,
           companion: FileState | None = None, manifest: bytes | None = None,
           sha256: Callable[[], str] | None = None) -> Readiness:
    """Whether the landing file `name` (its state `file`; None: not there) counts as delivered by
    `rule` at time `now`, and why. The marker and manifest rules get the state of the file beside
    it (`companion`, at `companion_name`), the manifest rule also its content `manifest` and
    `sha256`, which hashes the landing file (called only when the sizes match)."""
    if file is None:
        return Readiness(False, f"{name} has not arrived")
    if rule.ready == "stable":
        return _stable(rule, name, file, now)
    if companion is None:
        what = "done-marker" if rule.ready == "marker" else "manifest"
        return Readiness(False, f"{name} has no {what} {companion_name} yet; {rule.setting} counts it as delivered "
                                f"once the upstream system writes the {what} after the file")
    if rule.ready == "marker":
        if companion.modified < file.modified:
            return Readiness(False, f"{name} was written again {_seconds(file.modified - companion.modified)} after "
                                    f"its done-marker {companion_name}; {rule.setting} waits for a marker written "
                                    "after the file")
        return Readiness(True, f"{name} has its done-marker {companion_name}")
    return _manifest(rule, name, file, companion_name, manifest, sha256)


def _stable(rule: ReadinessRule, name: str, file: FileState, now: float) -> Readiness:
    if rule.stable_seconds <= 0:
        return Readiness(True, f"{name} is there and {rule.setting} with stable_seconds = 0 waits for nothing more")
    age = now - file.modified
    wait = f"{rule.setting} waits until it is unchanged for {rule.stable_seconds:g} s"
    if age < 0:
        return Readiness(False, f"{name} has a modification time {_seconds(-age)} in the future (check the clocks of "
                                f"this machine and of the storage); {wait}")
    if age < rule.stable_seconds:
        return Readiness(False, f"{name} was modified {_seconds(age)} ago; {wait}")
    return Readiness(True, f"{name} has been unchanged for {_seconds(age)}")


def _manifest(rule: ReadinessRule, name: str, file: FileState, manifest_name: str | None, manifest: bytes | None,
              sha256: Callable[[], str] | None) -> Readiness:
    wait = f"{rule.setting} waits until the file matches its manifest"
    try:
        expected = parse_manifest(manifest or b"")
    except ValueError as exc:
        return Readiness(False, f"the manifest {manifest_name} of {name} {exc}; {wait} (ask the upstream system "
                                "for a manifest of that form)")
    if file.size != expected["bytes"]:
        return Readiness(False, f"{name} has {file.size} bytes and its manifest {manifest_name} says "
                                f"{expected['bytes']}; {wait}")
    actual = sha256() if sha256 is not None else None
    if actual != expected["sha256"]:
        return Readiness(False, f"{name} has sha256 {str(actual)[:12]} and its manifest {manifest_name} says "
                                f"{expected['sha256'][:12]}; {wait}")
    return Readiness(True, f"{name} matches its manifest {manifest_name}")


def parse_manifest(data: bytes) -> dict:
    """{"bytes": N, "sha256": "..."} of a manifest's content, or ValueError saying what is wrong."""
    form = 'is not JSON of the form {"bytes": N, "sha256": "<64 hex digits>"}'
    try:
        manifest = json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(form) from None
    if not isinstance(manifest, dict):
        raise ValueError(form)
    size, digest = manifest.get("bytes"), manifest.get("sha256")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"{form}: bytes = {size!r}")
    if not isinstance(digest, str) or len(digest) != 64 or set(digest.lower()) - set("0123456789abcdef"):
        raise ValueError(f"{form}: sha256 = {digest!r}")
    return {"bytes": size, "sha256": digest.lower()}


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s".replace(".0 s", " s")


# ---- reading what a rule needs from the storage backend --------------------------------------------
def file_state(target) -> FileState | None:
    """Size and modification time of the file behind a target of pipeline.storage, with one metadata
    request (storage.file_status); None when it does not exist."""
    status = st.file_status(target)
    return None if status is None else FileState(size=status["size"], modified=status["modified"])


def check(rule: ReadinessRule, landing, companion=None, now: float | None = None) -> Readiness:
    """decide() for the landing file behind the target `landing`, reading what `rule` needs: its
    state and, for the marker and manifest rules, that of the target `companion` beside it (the
    manifest's content too, and the landing file's content when the sizes match)."""
    state = file_state(landing)
    companion_state = file_state(companion) if companion is not None and state is not None else None
    manifest = st.read_bytes(companion) if rule.ready == "manifest" and companion_state is not None else None
    return decide(rule, landing.path, state, time.time() if now is None else now,
                  companion_name=None if companion is None else companion.path, companion=companion_state,
                  manifest=manifest, sha256=lambda: sha256_bytes(st.read_bytes(landing)))
