"""Checking stored outputs against what was written, like `git fsck` for a storage root: every file
a seal (`_SUCCESS`) records is there with its recorded size and sha256, and no temporary file of a
killed write sits in an output's directory. The problems found are plain records a command
prints and a repair acts on."""
from __future__ import annotations

import json

from pipeline import storage as st
from pipeline.hashing import sha256_bytes

# The kinds of problem, each with what `--repair` does about it.
CORRUPT = "corrupt"      # a file differs from its recorded size or sha256: the output is removed
MISSING = "missing"      # a seal records a file the store does not have: the output is removed
BAD_SEAL = "bad-seal"    # the seal itself is not readable: the output is removed
TEMP = "temp"            # a temporary file a killed write left: the file is removed
UNRECORDED = "unrecorded"  # an empty flag from before seals recorded checksums: reported only
UNSIGNED = "unsigned"    # a registry version from before manifests were signed: reported (`mlpipe models sign`)
FORGED = "forged"        # a registry version whose signature is not valid under an accepted key: removed

REMOVES_OUTPUT = (CORRUPT, MISSING, BAD_SEAL, FORGED)


def check_sealed(store: st.Storage, flag) -> list[dict]:
    """The problems of the output sealed by `flag` (none when it is not sealed: an incomplete
    output is not complete, and nothing of it counts)."""
    if not flag.exists():
        return []
    problems = [problem(TEMP, path, f"stray temporary file {path}")
                for path in sorted(st.directory_files(flag)) if st.is_temp(path.rsplit("/", 1)[-1])]
    try:
        files = st.read_seal(flag)
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        return problems + [problem(BAD_SEAL, flag.path, f"the seal {flag.path} is not readable ({exc})")]
    if files == {} and not _has_record(flag):
        return problems + [problem(UNRECORDED, flag.path, f"{flag.path} records no checksums (written before "
                                                          "seals held them): its files cannot be checked")]
    for relative, expected in files.items():
        problems.extend(check_file(st.file_beside(flag, relative), expected))
    return problems


def check_file(target, expected: dict) -> list[dict]:
    """[] when `target` holds `expected` ({"bytes", "sha256"}), else the one problem."""
    try:
        data = st.read_bytes(target)
    except FileNotFoundError:
        return [problem(MISSING, target.path, f"{target.path} is recorded in its seal but missing from the store")]
    if len(data) != expected["bytes"]:
        return [problem(CORRUPT, target.path, f"{target.path} has {len(data)} bytes, its seal records "
                                              f"{expected['bytes']}")]
    digest = sha256_bytes(data)
    if digest != expected["sha256"]:
        return [problem(CORRUPT, target.path, f"{target.path} has sha256 {digest[:12]}…, its seal records "
                                              f"{expected['sha256'][:12]}…")]
    return []


def _has_record(flag) -> bool:
    """Whether the flag holds a record (`{"files": {}}`) rather than nothing at all."""
    return bool(st.read_bytes(flag).strip())


def problem(kind: str, path: str, message: str) -> dict:
    return {"kind": kind, "path": path, "message": message}
