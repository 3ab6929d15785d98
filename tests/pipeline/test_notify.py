"""pipeline.notify: events, filters, payloads, the retry policy and redaction, without luigi or network."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline import notify

SENT_AT = dt.datetime(2013, 1, 3, 5, 0, tzinfo=dt.timezone.utc)


def message(event="run_failed", **fields):
    fields = fields or {"date": dt.date(2013, 1, 3), "exit_code": 30, "exit_class": "task_failed",
                        "failed_task": "CleanPartition_2013_01_03_flights_abc", "message": "missing column",
                        "log_path": "/var/log/nightly-2013-01-03.log"}
    return notify.payload(event, fields, "flights", "/srv/mlpipe", "worker-1", SENT_AT)


def test_every_event_has_a_title_from_its_fields_alone():
    for name, event in notify.EVENTS.items():
        title = event.title({field: f"<{field}>" for field in event.fields})
        assert title and "{" not in title, name


def test_payload_holds_every_field_of_the_event_and_the_context():
    m = message("data_late", date="2013-01-03", table="flights", path="flights/flights_2013-01-03.csv")
    assert m["event"] == "data_late"
    assert m["fields"] == {"date": "2013-01-03", "table": "flights", "path": "flights/flights_2013-01-03.csv",
                           "expected_by": None, "waited_seconds": None}
    assert (m["dataset"], m["storage_root"], m["host"]) == ("flights", "/srv/mlpipe", "worker-1")
    assert m["sent_at"] == "2013-01-03T05:00:00+00:00"
    assert "flights" in m["title"] and "2013-01-03" in m["title"]


def test_payload_values_are_json_values():
    import numpy as np

    m = message("gate_rejected", date=dt.date(2013, 1, 3), reasons=["roc_auc 0.55 < 0.60"],
                challenger_metrics={"roc_auc": np.float64(0.55)})
    assert m["fields"]["date"] == "2013-01-03"
    assert m["fields"]["challenger_metrics"] == {"roc_auc": 0.55}
    json.dumps(m)


def test_an_unknown_event_or_field_is_refused_naming_what_exists():
    with pytest.raises(ValueError, match=r"unknown notification event 'run_failure'.*'run_failed'"):
        notify.event_fields("run_failure", {})
    with pytest.raises(ValueError, match=r"'deployed' has no field\(s\) \['versoin'\].*'version'"):
        notify.event_fields("deployed", {"versoin": "v1"})


def test_slack_body_is_text_with_the_title_fields_and_context():
    body = notify.slack_body(message())
    assert set(body) == {"text"}
    lines = body["text"].splitlines()
    assert lines[0] == "*mlpipe run_failed*: run for 2013-01-03 failed with exit code 30 (task_failed)"
    assert "• failed_task: CleanPartition_2013_01_03_flights_abc" in lines
    assert "• log_path: /var/log/nightly-2013-01-03.log" in lines
    assert lines[-1] == "_dataset flights, storage root /srv/mlpipe, host worker-1_"


def test_webhook_body_per_format():
    m = message()
    assert json.loads(notify.webhook_body("slack", m)) == notify.slack_body(m)
    assert json.loads(notify.webhook_body("json", m)) == m


def test_lists_and_metrics_read_as_text():
    m = message("gate_rejected", date="2013-01-03", reasons=["a < 1", "b > 2"],
                challenger_metrics={"roc_auc": 0.612345})
    assert notify.text_lines(m) == ["date: 2013-01-03", "reasons: a < 1; b > 2", "challenger_metrics: roc_auc 0.6123"]


def test_email_subject_names_the_event_and_date():
    assert notify.email_subject(message()).startswith("mlpipe run_failed 2013-01-03: run for 2013-01-03 failed")
    promoted = message("promoted", version="v2", previous_version="v1", reason="fix", who="ana")
    assert notify.email_subject(promoted) == "mlpipe promoted: v2 promoted by ana (was v1)"
    assert "reason: fix" in notify.email_text(promoted)


def test_event_filters():
    assert notify.parse_events("*", "s") == frozenset(notify.EVENTS)
    assert notify.parse_events(" run_failed ,data_late ", "s") == {"run_failed", "data_late"}
    assert notify.parse_events("", "s") == frozenset()
    with pytest.raises(notify.NotifyConfigError, match=r"\[notify_webhook_ops\] events = run_failed, deploy: "
                                                       r"unknown event\(s\) \['deploy'\]"):
        notify.parse_events("run_failed, deploy", "[notify_webhook_ops] events")


def test_webhook_names_and_formats():
    assert notify.parse_names("ops, team", "[notify] webhooks") == ("ops", "team")
    assert notify.parse_names("", "[notify] webhooks") == ()
    with pytest.raises(notify.NotifyConfigError, match=r"\[notify\] webhooks = ops, Team X: \['Team X'\]"):
        notify.parse_names("ops, Team X", "[notify] webhooks")
    assert notify.check_format("json", "f") == "json"
    with pytest.raises(notify.NotifyConfigError, match=r"\[notify_webhook_ops\] format = teams: use one of"):
        notify.check_format("teams", "[notify_webhook_ops] format")


def test_retry_on_no_answer_5xx_and_429_only():
    assert notify.retryable(None) and notify.retryable(500) and notify.retryable(503) and notify.retryable(429)
    assert not any(notify.retryable(s) for s in (200, 400, 401, 403, 404))


def test_time_bound():
    assert notify.time_bound(3, 5.0, 1.0) == 17.0
    assert notify.time_bound(1, 2.0, 1.0) == 2.0
    assert notify.time_bound(0, 2.0, 1.0) == 2.0


def test_redaction_removes_the_url_its_secret_path_and_the_token():
    url = "https://hooks.example.com/services/T000/B000/XXXXSECRET?key=abc123"
    secrets = notify.secrets_of(url, "tok-987")
    text = (f"POST {url} failed; path /services/T000/B000/XXXXSECRET?key=abc123; key=abc123; "
            "Authorization: Bearer tok-987")
    redacted = notify.redact(text, secrets)
    for secret in ("XXXXSECRET", "abc123", "tok-987", "hooks.example.com/services"):
        assert secret not in redacted
    assert redacted.count(notify.REDACTED) == 4


def test_redaction_of_a_password_in_the_url():
    secrets = notify.secrets_of("https://bot:hunter22@example.com/hook")
    assert "hunter22" not in notify.redact("auth hunter22 refused", secrets)


def test_a_blessed_decision_is_deployed_and_a_kept_one_gate_rejected():
    decision = {"date": "2013-01-05", "blessed": True, "production_version": "v2", "production_version_before": "v1",
                "reasons": ["ok"], "metrics": {"challenger": {"roc_auc": 0.7}}}
    assert notify.decision_event(decision) == ("deployed", {"date": "2013-01-05", "version": "v2",
                                                            "previous_version": "v1", "reasons": ["ok"]})
    kept = {**decision, "blessed": False, "production_version": "v1", "reasons": ["roc_auc 0.55 < 0.6"]}
    assert notify.decision_event(kept) == ("gate_rejected", {"date": "2013-01-05", "reasons": ["roc_auc 0.55 < 0.6"],
                                                             "challenger_metrics": {"roc_auc": 0.7}})
    for event, fields in (notify.decision_event(decision), notify.decision_event(kept)):
        notify.event_fields(event, fields)


def test_monitoring_sends_only_when_it_raised_alerts():
    record = {"date": "2013-01-06", "model_version": "v2", "alerts": ["prediction drift: PSI 2.5 > 2.0"]}
    assert notify.monitoring_event(record) == ("monitoring_alert", {"date": "2013-01-06", "version": "v2",
                                                                    "alerts": ["prediction drift: PSI 2.5 > 2.0"]})
    notify.event_fields(*notify.monitoring_event(record))
    assert notify.monitoring_event({**record, "alerts": []}) is None
