"""The model artifact: a fitted estimator as skops bytes (no pickle), byte-for-byte reproducible,
loaded back only after its sha256 matches and every type it names is on the allow-list."""
from __future__ import annotations

import io
import json
import os
import zipfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

from pipeline.hashing import sha256_bytes

# The only types a model file may contain beyond those skops trusts by default: what the fitted
# estimators of pipeline.estimators.FAMILIES need (skops 0.16, scikit-learn 1.9; tests check it).
# The partial is the gradient boosting models' categorical preprocessor, partial(check_array),
# and skops checks the wrapped function too; numpy.dtype comes from the SimpleImputers of logreg
# and linear.
# A file naming any other type is refused.
TRUSTED_TYPES = frozenset({
    "functools.partial",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
})


def dump_model(estimator: Pipeline) -> bytes:
    """The estimator as skops bytes (no pickle: loading runs no code named by the file), made
    byte-for-byte reproducible: the same model gives the same bytes and sha256 in any process."""
    import skops.io as sio

    return _canonical_zip(sio.dumps(estimator))


def _canonical_zip(data: bytes) -> bytes:
    """skops names array members and object ids after id() and stamps members with the current
    time; renumber both in schema order and fix the timestamps, so a from-scratch backfill
    reproduces the same model files."""
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        members = {info.filename: (info, src.read(info.filename)) for info in src.infolist()}
    schema = json.loads(members.pop("schema.json")[1])
    names: dict[str, str] = {}
    ids: dict[int, int] = {}

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    node[key] = ids.setdefault(value, len(ids) + 1)
                elif isinstance(value, str) and value in members:
                    node[key] = names.setdefault(value, f"{len(names) + 1}{os.path.splitext(value)[1]}")
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    if set(names) != set(members):
        raise ValueError(f"skops file members {sorted(set(members) - set(names))} are not named in its schema")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for old, new in sorted(names.items(), key=lambda kv: kv[1]):
            info, payload = members[old]
            dst.writestr(zipfile.ZipInfo(new, date_time=(1980, 1, 1, 0, 0, 0)), payload, info.compress_type)
        dst.writestr(zipfile.ZipInfo("schema.json", date_time=(1980, 1, 1, 0, 0, 0)),
                     json.dumps(schema, indent=2).encode(), zipfile.ZIP_STORED)
    return out.getvalue()


class ModelIntegrityError(RuntimeError):
    """A model file does not match the sha256 recorded when it was written, names a type outside
    the allow-list, or was saved by other library versions under the 'refuse' policy."""


# The libraries whose versions decide how a saved model loads and predicts: a model saved by other
# versions than the loader's is handled by the [signing] library_mismatch policy.
CHECKED_LIBRARIES = ("scikit-learn", "skops", "numpy")
LIBRARY_POLICIES = ("warn", "refuse")


def library_mismatches(recorded: dict, current: dict) -> list[str]:
    """'scikit-learn 1.5.0 (this process has 1.9.0)' for each checked library whose recorded
    version differs from the current one (or was not recorded)."""
    return [f"{name} {recorded.get(name, 'unrecorded')} (this process has {current[name]})"
            for name in CHECKED_LIBRARIES if name in current and recorded.get(name) != current[name]]


def current_libraries() -> dict[str, str]:
    """The installed versions of CHECKED_LIBRARIES (as pipeline.training.library_versions records them)."""
    from importlib import metadata

    return {name: metadata.version(name) for name in CHECKED_LIBRARIES}


def check_libraries(recorded: dict, current: dict, policy: str, source: str) -> list[str]:
    """The policy on a model saved by other library versions: 'refuse' raises
    ModelIntegrityError naming both versions; 'warn' returns the warnings to log."""
    if policy not in LIBRARY_POLICIES:
        raise ValueError(f"library_mismatch must be one of {LIBRARY_POLICIES}, not {policy!r}")
    mismatches = library_mismatches(recorded, current)
    if not mismatches:
        return []
    message = f"{source} was saved with {', '.join(mismatches)}"
    if policy == "refuse":
        raise ModelIntegrityError(f"{message}: refusing to load it ([signing] library_mismatch = refuse). Retrain "
                                  "it with these libraries, or install the ones it was saved with")
    return [f"{message}; loading it anyway ([signing] library_mismatch = warn): its predictions may differ"]


def check_sha256(data: bytes, expected_sha256: str, source: str) -> None:
    """ModelIntegrityError unless `data` has the sha256 its (signed) record holds."""
    actual = sha256_bytes(data)
    if actual != expected_sha256:
        raise ModelIntegrityError(
            f"model file {source} has sha256 {actual[:12]}..., but its metadata records "
            f"{expected_sha256[:12]}...; the file was changed after it was written: refusing to load it")


def load_model(data: bytes, expected_sha256: str, source: str) -> Pipeline:
    """Load a skops model only after its bytes match the recorded sha256 and every type it
    names is trusted by skops or on TRUSTED_TYPES."""
    import skops.io as sio

    check_sha256(data, expected_sha256, source)
    try:
        untrusted = set(sio.get_untrusted_types(data=data))
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a model file we wrote"
        raise ModelIntegrityError(f"model file {source} is not a readable skops file ({exc}); "
                                  "refusing to load it") from exc
    unknown = sorted(untrusted - TRUSTED_TYPES)
    if unknown:
        raise ModelIntegrityError(
            f"model file {source} names type(s) outside the allow-list: {unknown}; refusing to load it. "
            "If a new estimator needs them, review them and add them to pipeline.artifact.TRUSTED_TYPES")
    return sio.loads(data, trusted=sorted(untrusted))


