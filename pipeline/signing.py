"""Signed records: an HMAC-SHA256 of a record's exact bytes with a secret key kept outside the
storage root, so that whoever can write to the storage but cannot read the key cannot make a
model the pipeline will load.

A registry version's manifest (which holds every file's sha256) and a candidate model's metadata
(which holds the model's sha256) are signed when written; the loader checks the signature before
it trusts the sha256 in them, and the sha256 before any byte of the model is deserialised. The
signature is a small JSON file beside the record (`<name>.sig`): the algorithm, the signing key's
id (a hash of the key, never the key), and by whom. Keys rotate by listing the old ones as
accepted: records signed by them still load, new ones are signed by the current key."""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import stat

ALGORITHM = "hmac-sha256"
MIN_SECRET = 32  # characters of a key given as text (a generated key has 64 hex digits)


class SignatureError(RuntimeError):
    """A record is unsigned, signed by a key that is not accepted, or changed after signing; or a
    signing key cannot be used."""


@dataclasses.dataclass(frozen=True)
class Key:
    """A signing key and where it came from (a file path or an environment variable's name)."""
    secret: bytes = dataclasses.field(repr=False)
    source: str

    @property
    def key_id(self) -> str:
        """Names the key in signatures and messages without revealing it."""
        return hashlib.sha256(b"mlpipe signing key\0" + self.secret).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Keyring:
    """The key new records are signed with, and every key whose signatures are accepted."""
    signing: Key
    accepted: tuple[Key, ...] = ()

    def keys(self) -> dict[str, Key]:
        return {key.key_id: key for key in (self.signing, *self.accepted)}


def _mac(secret: bytes, data: bytes) -> str:
    return hmac.new(secret, data, hashlib.sha256).hexdigest()


def sign(data: bytes, key: Key, signed_by: dict) -> bytes:
    """The signature file of `data` (exact bytes) under `key`; `signed_by` names who signed. It
    holds no time: the same record signed by the same signer gives the same bytes, so a rerun
    after a crash reproduces the output an uninterrupted run writes (the record has its own times)."""
    record = {"algorithm": ALGORITHM, "key_id": key.key_id, "signature": _mac(key.secret, data),
              "signed_by": signed_by}
    return json.dumps(record, indent=2, sort_keys=True).encode()


def check(data: bytes, signature: bytes | None, keyring: Keyring, source: str) -> dict:
    """The signature record of `data` when it is valid under an accepted key; SignatureError
    naming `source` and what failed otherwise."""
    if signature is None:
        raise SignatureError(f"{source} is not signed: refusing it. Check it, then sign it with the pipeline's key "
                             "(`mlpipe models sign VERSION`), or rebuild it")
    try:
        record = json.loads(signature)
        key_id, mac, algorithm = record["key_id"], record["signature"], record["algorithm"]
    except (ValueError, KeyError, TypeError):
        raise SignatureError(f"the signature of {source} is not a signature record: refusing it") from None
    if algorithm != ALGORITHM:
        raise SignatureError(f"{source} is signed with {algorithm!r}, not {ALGORITHM}: refusing it")
    key = keyring.keys().get(key_id)
    if key is None:
        raise SignatureError(
            f"{source} is signed by key {key_id}, which is not an accepted key (accepted: "
            f"{', '.join(sorted(keyring.keys()))}): refusing it. If that key is yours, list its file in "
            "[signing] accepted_keys")
    if not hmac.compare_digest(_mac(key.secret, data), str(mac)):
        raise SignatureError(f"{source} does not match its signature by key {key_id}: it was changed after it was "
                             "signed; refusing it")
    return record


def describe(data: bytes, signature: bytes | None, keyring: Keyring | None, source: str) -> dict:
    """What `models show` says: {"signed", "key_id", "valid", "problem"} (never raises)."""
    try:
        record = json.loads(signature) if signature is not None else None
    except ValueError:
        record = None
    key_id = record.get("key_id") if isinstance(record, dict) else None
    state = {"signed": signature is not None, "key_id": key_id, "valid": False, "problem": None,
             "signed_by": record.get("signed_by") if isinstance(record, dict) else None}
    if keyring is None:
        state["problem"] = "no signing key configured"
        return state
    try:
        check(data, signature, keyring, source)
        state["valid"] = True
    except SignatureError as exc:
        state["problem"] = str(exc).split(": refusing")[0]
    return state


# ---- keys ---------------------------------------------------------------------------------
def key_from_text(text: str, source: str) -> Key:
    secret = text.strip()
    if len(secret) < MIN_SECRET:
        raise SignatureError(f"the signing key from {source} has {len(secret)} characters; a key needs at least "
                             f"{MIN_SECRET} (make one with `python -c 'import secrets; print(secrets.token_hex(32))'`)")
    return Key(secret.encode(), source)


def read_key_file(path: str) -> Key:
    """A key from a file only its owner can read (SignatureError otherwise, naming the file)."""
    try:
        mode = os.stat(path).st_mode
        with open(path, encoding="utf-8") as src:
            text = src.read()
    except FileNotFoundError:
        raise SignatureError(f"the signing key file {path} does not exist; set [signing] key_file (or "
                             "$MLPIPE_SIGNING_KEY) to the key every worker shares") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SignatureError(f"cannot read the signing key file {path}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SignatureError(f"the signing key file {path} can be read by other users (mode "
                             f"{stat.S_IMODE(mode):o}): run `chmod 600 {path}`")
    return key_from_text(text, path)


def create_key_file(path: str) -> Key:
    """Make a new random key in `path` (mode 0600, its directory 0700) unless one is there."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_key_file(path)  # made by another process meanwhile
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return read_key_file(path)


def default_key_file() -> str:
    """Where a key is made on first use: the user's configuration directory, outside any root."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "mlpipe", "signing.key")


def check_outside(path: str, root: str) -> None:
    """Refuse a key file kept under a local storage root: whoever can write the root could then
    replace the key along with the model."""
    if "://" in root:
        return
    key, base = os.path.realpath(path), os.path.realpath(root)
    if key == base or key.startswith(base.rstrip(os.sep) + os.sep):
        raise SignatureError(f"the signing key file {path} is inside the storage root {root}: keep it outside "
                             "(a key beside the models protects nothing)")
