"""The identifiers that become parts of storage paths (model versions, dataset, table and stage
names, dates, landing paths) and the one check of each: a value that could name another folder
than its own is refused with IdentifierError before any path is made of it."""
from __future__ import annotations

import datetime as dt
import re

NAME_RULE = "an ASCII letter, then at most 63 ASCII letters, digits, '_' or '-'"
VERSION_RULE = ("the 8 digits of its as-of date (YYYYMMDD), '-', then 1 to 64 lowercase hex digits "
                "(its lineage), e.g. 20130115-3f9a0c12de")
DATE_RULE = "a calendar date written YYYY-MM-DD"
PATH_RULE = "a relative path of '/'-separated parts, none empty, '.' or '..', without '\\' or NUL"

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_VERSION = re.compile(r"[0-9]{8}-[0-9a-f]{1,64}")  # what pipeline.registry.version_id makes
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# What to do about a refused name, by its kind.
_NAME_TODO = {
    "dataset": "rename the dataset (name = ... at the top of its description)",
    "table": "rename the table ([tables.<name>] in the dataset description)",
    "stage": "`mlpipe invalidate --help` lists the stages",
}


class IdentifierError(ValueError):
    """`value` is not a valid `kind`: the message names both, the rule and what to do."""

    def __init__(self, kind: str, value, rule: str, todo: str):
        super().__init__(f"{kind} {shown(value)} is refused: it must be {rule}; {todo}")
        self.kind, self.value = kind, value


def shown(value) -> str:
    """repr(value), cut short for a very long one so the message stays one readable line."""
    text = repr(value)
    if len(text) <= 200:
        return text
    return f"{text[:120]}... ({len(value) if isinstance(value, str) else len(text)} characters)"


def _matches(pattern: re.Pattern, text) -> bool:
    return isinstance(text, str) and pattern.fullmatch(text) is not None


def check_name(kind: str, text) -> str:
    """`text` when it is a valid name of `kind` ("dataset", "table", "stage"), else IdentifierError."""
    if not _matches(_NAME, text):
        raise IdentifierError(kind, text, NAME_RULE, _NAME_TODO.get(kind, f"give the {kind} such a name"))
    return text


def check_version(text) -> str:
    """`text` when it is a model version id (pipeline.registry.version_id), else IdentifierError."""
    if not _matches(_VERSION, text):
        raise IdentifierError("model version", text, VERSION_RULE, "`mlpipe models list` shows the published versions")
    return text


def check_date(text) -> dt.date:
    """The date `text` writes as YYYY-MM-DD (no other form fromisoformat accepts), else IdentifierError."""
    todo = "write it like 2013-01-05"
    if not _matches(_DATE, text):
        raise IdentifierError("date", text, DATE_RULE, todo)
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise IdentifierError("date", text, DATE_RULE, f"{todo} ({exc})") from None


def check_relative_path(kind: str, text) -> str:
    """`text` when it stays below the folder it is joined to (no absolute path, no '..'), else
    IdentifierError."""
    if (not isinstance(text, str) or not text or "\\" in text or "\0" in text
            or any(part in ("", ".", "..") for part in text.split("/"))):
        raise IdentifierError(kind, text, PATH_RULE, f"give the {kind} as a path below its folder")
    return text
