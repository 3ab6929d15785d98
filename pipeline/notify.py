"""Notifications, free of luigi and of the network: the events and their fields, event filters,
the webhook payloads (Slack incoming-webhook text, plain JSON), the email text, the retry policy
and the redaction of secrets from messages."""
from __future__ import annotations

import datetime as dt
import json
import math
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable



@dataclass(frozen=True)
class Event:
    fields: tuple[str, ...]
    title: Callable[[dict], str]


def _count(items) -> int:
    return len(items) if isinstance(items, (list, tuple)) else 0


EVENTS: dict[str, Event] = {
    "run_failed": Event(
        ("date", "exit_code", "exit_class", "failed_task", "message", "log_path"),
        lambda f: f"run for {f['date']} failed with exit code {f['exit_code']} ({f['exit_class']})"),
    "data_late": Event(
        ("date", "table", "path", "expected_by", "waited_seconds"),
        lambda f: f"landing file of {f['table']} for {f['date']} is late (expected by {f['expected_by']})"),
    "gate_rejected": Event(
        ("date", "reasons", "challenger_metrics"),
        lambda f: f"the challenger of {f['date']} was rejected by the gate"),
    "deployed": Event(
        ("date", "version", "previous_version", "reasons"),
        lambda f: f"{f['version']} deployed for {f['date']} (was {f['previous_version']})"),
    "promoted": Event(
        ("version", "previous_version", "reason", "who"),
        lambda f: f"{f['version']} promoted by {f['who']} (was {f['previous_version']})"),
    "rolled_back": Event(
        ("version", "previous_version", "reason", "who"),
        lambda f: f"rolled back to {f['version']} by {f['who']} (was {f['previous_version']})"),
    "monitoring_alert": Event(
        ("date", "alerts", "version"),
        lambda f: f"monitoring raised {_count(f['alerts'])} alert(s) for {f['date']} (model {f['version']})"),
}
ALL = "*"
FORMATS = ("slack", "json")
RETRY_STATUSES = frozenset({429}) | frozenset(range(500, 600))
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
REDACTED = "<redacted>"


class NotifyConfigError(ValueError):
    """A [notify] setting that cannot be used; the message names the setting."""


def parse_names(text: str, setting: str) -> tuple[str, ...]:
    """The webhook names of `webhooks = ops, team` (empty: none)."""
    names = tuple(n.strip() for n in (text or "").split(",") if n.strip())
    bad = [n for n in names if not NAME.match(n)]
    if bad:
        raise NotifyConfigError(f"{setting} = {text}: {bad} are not webhook names (lowercase letters, digits, "
                                "'_' and '-'; each names a [notify_webhook_NAME] section)")
    return names


def parse_events(text: str, setting: str) -> frozenset[str]:
    """The events an `events = run_failed, data_late` filter lets through: `*` is all of them,
    empty is none."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    if names == [ALL]:
        return frozenset(EVENTS)
    unknown = [n for n in names if n not in EVENTS]
    if unknown:
        raise NotifyConfigError(f"{setting} = {text}: unknown event(s) {unknown}; use * or some of {list(EVENTS)}")
    return frozenset(names)


def check_format(text: str, setting: str) -> str:
    if text not in FORMATS:
        raise NotifyConfigError(f"{setting} = {text}: use one of {list(FORMATS)}")
    return text


def event_fields(event: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Every field of `event` (None when not given), as JSON values; ValueError for an unknown
    event or a field the event does not have."""
    if event not in EVENTS:
        raise ValueError(f"unknown notification event '{event}'; the events are {list(EVENTS)}")
    unknown = sorted(set(fields) - set(EVENTS[event].fields))
    if unknown:
        raise ValueError(f"notification event '{event}' has no field(s) {unknown}; its fields are "
                         f"{list(EVENTS[event].fields)}")
    return json.loads(json.dumps({name: fields.get(name) for name in EVENTS[event].fields}, default=_json_value))


def _json_value(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def payload(event: str, fields: dict[str, Any], dataset: str | None, storage_root: str | None, host: str,
            sent_at: dt.datetime) -> dict:
    """The event as the `json` format posts it (and as the other formats are made from)."""
    values = event_fields(event, fields)
    return {"event": event, "title": EVENTS[event].title(values), "fields": values, "dataset": dataset,
            "storage_root": storage_root, "host": host,
            "sent_at": sent_at.astimezone(dt.timezone.utc).isoformat(timespec="seconds")}


def _value(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(_value(v) for v in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items()) or "none"
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) and abs(value) < 1e6 else str(value)
    return "-" if value is None else str(value)


def text_lines(message: dict) -> list[str]:
    """The fields of a payload() as `name: value` lines."""
    return [f"{name}: {_value(value)}" for name, value in message["fields"].items()]


def footer(message: dict) -> str:
    return f"dataset {message['dataset'] or '-'}, storage root {message['storage_root'] or '-'}, host {message['host']}"


def slack_body(message: dict) -> dict:
    """A Slack incoming-webhook message ({"text": ...}; Mattermost, Rocket.Chat and Teams'
    Slack-compatible hooks take it too) of a payload()."""
    lines = [f"*mlpipe {message['event']}*: {message['title']}",
             *(f"• {line}" for line in text_lines(message)), f"_{footer(message)}_"]
    return {"text": "\n".join(lines)}


def webhook_body(fmt: str, message: dict) -> bytes:
    return json.dumps(slack_body(message) if fmt == "slack" else message, sort_keys=True).encode()


def email_subject(message: dict) -> str:
    date = message["fields"].get("date")
    return f"mlpipe {message['event']}" + (f" {date}" if date else "") + f": {message['title']}"


def email_text(message: dict) -> str:
    return "\n".join([message["title"], "", *text_lines(message), "", footer(message),
                      f"sent at {message['sent_at']}"]) + "\n"


def retryable(status: int | None) -> bool:
    """Whether an attempt is worth repeating: no answer (None: connection error, timeout) or a
    server-side status."""
    return status is None or status in RETRY_STATUSES


def time_bound(attempts: int, timeout: float, backoff: float) -> float:
    """The longest a delivery takes: every attempt waits out its timeout, with `backoff` seconds
    between attempts."""
    attempts = max(1, attempts)
    return attempts * timeout + (attempts - 1) * backoff


def secrets_of(url: str, token: str = "") -> list[str]:
    """What must never be shown of a webhook: its URL, the URL's path and query (where Slack and
    others keep the secret), its password, and the token."""
    parts = urllib.parse.urlsplit(url) if url else None
    found = [url, token]
    if parts:
        found += [parts.path + (f"?{parts.query}" if parts.query else ""), parts.query, parts.password or ""]
    return sorted({s for s in found if s and len(s) > 1}, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def decision_event(decision: dict) -> tuple[str, dict]:
    """deployed or gate_rejected, with its fields, of a deployment decision (pipeline.deployment.decide)."""
    if decision["blessed"]:
        return "deployed", {"date": decision["date"], "version": decision["production_version"],
                            "previous_version": decision["production_version_before"],
                            "reasons": decision["reasons"]}
    return "gate_rejected", {"date": decision["date"], "reasons": decision["reasons"],
                             "challenger_metrics": (decision.get("metrics") or {}).get("challenger")}


def monitoring_event(record: dict) -> tuple[str, dict] | None:
    """monitoring_alert, with its fields, of a day's monitoring record that raised alerts; else None."""
    if not record.get("alerts"):
        return None
    return "monitoring_alert", {"date": record["date"], "alerts": record["alerts"], "version": record.get("model_version")}
