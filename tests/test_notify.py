"""Notifications (tasks.notify) delivered to real receivers: a webhook receiver and an SMTP server,
each a separate process; and `mlpipe` runs, as real processes, that notify them."""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

import luigi
import pandas as pd
import pytest

from pipeline import registry

from pipeline import notify as events
from tasks import notify
from tests.landing import deliver
from tests.servers import free_port
from tests.smtp_receiver import SmtpReceiver
from tests.webhook_receiver import WebhookReceiver

PROJECT = Path(__file__).resolve().parents[1]
FAILED = {"date": "2013-01-03", "exit_code": 30, "exit_class": "task_failed", "failed_task": "CleanPartition_x",
          "message": "landing file is missing required column(s) ['arr_delay']", "log_path": "/tmp/n.log"}


@pytest.fixture(scope="module")
def receiver():
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def path(request):
    """A path of the receiver of this test's own (records of other tests do not mix in)."""
    return f"/{request.node.name.replace('[', '-').replace(']', '')}"


@pytest.fixture
def hooks(root, luigi_config, monkeypatch, receiver):
    """`hooks({"ops": {"path": "/...", "format": ..., "events": ...}}, attempts=..)`: webhooks
    whose URL is the receiver's `path`, through $MLPIPE_TEST_HOOK_<NAME>; returns the URLs."""
    def configure(webhooks: dict[str, dict], **notify_options):
        urls, config = {}, {"notify": {"webhooks": ", ".join(webhooks), "timeout": 2, "attempts": 2,
                                       "backoff": 0.1, **notify_options}}
        for name, options in webhooks.items():
            options = dict(options)
            variable = f"MLPIPE_TEST_HOOK_{name.upper()}"
            if "path" in options:
                urls[name] = receiver.url(options.pop("path"))
                monkeypatch.setenv(variable, urls[name])
            config[f"notify_webhook_{name}"] = {"url_env": variable, **options}
        luigi_config(config)
        return urls
    return configure


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def timed_send(event: str, **fields) -> float:
    started = time.monotonic()
    notify.send(event, **fields)
    return time.monotonic() - started


def test_slack_and_json_webhooks_receive_the_event(hooks, receiver, path, root, monkeypatch):
    monkeypatch.setenv("MLPIPE_TEST_TOKEN", "tok-secret-123")
    hooks({"chat": {"path": path + "/slack", "format": "slack"},
           "ops": {"path": path + "/json", "format": "json", "token_env": "MLPIPE_TEST_TOKEN"}})
    notify.send("run_failed", **FAILED)

    [slack] = receiver.records(path + "/slack")
    assert set(slack["body"]) == {"text"}
    assert slack["body"]["text"].startswith("*mlpipe run_failed*: run for 2013-01-03 failed with exit code 30")
    assert "• failed_task: CleanPartition_x" in slack["body"]["text"]
    assert "Authorization" not in slack["headers"]

    [plain] = receiver.records(path + "/json")
    body = plain["body"]
    assert body["event"] == "run_failed"
    assert body["fields"] == FAILED
    assert (body["dataset"], body["storage_root"], body["host"]) == ("flights", str(root), socket.gethostname())
    assert plain["headers"]["Authorization"] == "Bearer tok-secret-123"
    assert plain["headers"]["Content-Type"] == "application/json"


def test_each_webhook_gets_only_the_events_of_its_filter(hooks, receiver, path):
    hooks({"failures": {"path": path + "/failures", "events": "run_failed, data_late"},
           "models": {"path": path + "/models", "events": "deployed, promoted"}})
    notify.send("deployed", date="2013-01-05", version="v2", previous_version="v1", reasons=["ok"])
    notify.send("data_late", date="2013-01-05", table="flights", path="flights/flights_2013-01-05.csv",
                expected_by="2013-01-06T04:00:00-05:00", waited_seconds=420)
    assert [r["body"]["text"].splitlines()[0] for r in receiver.records(path + "/failures")] == [
        "*mlpipe data_late*: landing file of flights for 2013-01-05 is late (expected by 2013-01-06T04:00:00-05:00)"]
    assert [r["body"]["text"].splitlines()[0] for r in receiver.records(path + "/models")] == [
        "*mlpipe deployed*: v2 deployed for 2013-01-05 (was v1)"]


def test_a_receiver_answering_500_is_retried_then_given_up_with_one_redacted_warning(hooks, receiver, path, caplog):
    urls = hooks({"ops": {"path": path + "/status/500/SECRET-PATH-42"}}, attempts=3, backoff=0.2)
    elapsed = timed_send("run_failed", **FAILED)
    assert len(receiver.records(path)) == 3
    assert warnings(caplog) == ["mlpipe: notification run_failed to webhook 'ops' (from $MLPIPE_TEST_HOOK_OPS) "
                                "failed after 3 attempt(s): HTTP 500"]
    assert elapsed <= events.time_bound(3, 2, 0.2) + notify.MARGIN
    assert urls["ops"] not in caplog.text and "SECRET-PATH-42" not in caplog.text


def test_a_client_error_is_not_retried(hooks, receiver, path, caplog):
    hooks({"ops": {"path": path + "/status/404"}}, attempts=3)
    notify.send("run_failed", **FAILED)
    assert len(receiver.records(path)) == 1
    assert warnings(caplog)[-1].endswith("failed after 1 attempt(s): HTTP 404")


def test_a_receiver_that_never_answers_costs_at_most_the_bound(hooks, receiver, path, caplog):
    attempts, timeout, backoff = 2, 0.5, 0.2
    urls = hooks({"ops": {"path": path + "/hang/SECRET-PATH-43"}, "chat": {"path": path + "/ok"}},
                 attempts=attempts, timeout=timeout, backoff=backoff)
    elapsed = timed_send("run_failed", **FAILED)
    bound = events.time_bound(attempts, timeout, backoff)
    assert timeout * attempts <= elapsed <= bound + notify.MARGIN
    assert len(receiver.records(path + "/hang")) == attempts
    assert len(receiver.records(path + "/ok")) == 1  # the other webhook is not held up
    assert warnings(caplog) == ["mlpipe: notification run_failed to webhook 'ops' (from $MLPIPE_TEST_HOOK_OPS) "
                                f"failed after {attempts} attempt(s): no answer within 0.5 s ([notify] timeout)"]
    assert urls["ops"] not in caplog.text and "SECRET-PATH-43" not in caplog.text


def test_a_receiver_that_is_down_is_reported_without_its_url(hooks, luigi_config, monkeypatch, caplog):
    url = f"http://127.0.0.1:{free_port()}/SECRET-PATH-44"
    hooks({"ops": {}})
    monkeypatch.setenv("MLPIPE_TEST_HOOK_OPS", url)
    notify.send("run_failed", **FAILED)
    [warning] = warnings(caplog)
    assert warning.startswith("mlpipe: notification run_failed to webhook 'ops' (from $MLPIPE_TEST_HOOK_OPS) "
                              "failed after 2 attempt(s): cannot connect: ")
    assert "SECRET-PATH-44" not in caplog.text and "127.0.0.1" not in caplog.text


def test_an_unset_url_variable_only_warns_naming_it(hooks, receiver, path, caplog):
    hooks({"ops": {}, "chat": {"path": path}})
    notify.send("run_failed", **FAILED)
    assert warnings(caplog) == ["mlpipe: webhook 'ops' (from $MLPIPE_TEST_HOOK_OPS) skipped: "
                                "$MLPIPE_TEST_HOOK_OPS is not set"]
    assert len(receiver.records(path)) == 1


def test_a_bad_setting_skips_its_webhook_naming_the_setting(hooks, receiver, path, caplog):
    hooks({"ops": {"path": path + "/ops", "events": "run_failed, deploy"},
           "chat": {"path": path + "/chat", "format": "teams"}, "team": {"path": path + "/team"}})
    notify.send("run_failed", **FAILED)
    assert warnings(caplog) == [
        "mlpipe: webhook 'ops' skipped: [notify_webhook_ops] events = run_failed, deploy: unknown event(s) "
        f"['deploy']; use * or some of {list(events.EVENTS)}",
        "mlpipe: webhook 'chat' skipped: [notify_webhook_chat] format = teams: use one of ['slack', 'json']"]
    assert [r["path"] for r in receiver.records(path)] == [path + "/team"]


def test_a_wrong_call_warns_and_does_not_raise(hooks, receiver, path, caplog):
    hooks({"ops": {"path": path}})
    notify.send("run_failed", **FAILED, exit_cod=1)
    assert "has no field(s) ['exit_cod']" in warnings(caplog)[0]
    assert receiver.records(path) == []


def test_nothing_is_configured_by_default(root, caplog):
    assert timed_send("run_failed", **FAILED) < 0.5
    assert warnings(caplog) == []


@pytest.fixture
def smtp(tmp_path, luigi_config):
    server = SmtpReceiver(tmp_path / "mail").start()
    luigi_config({"email": {"receiver": "ops@example.com", "sender": "mlpipe@example.com", "force_send": "true"},
                  "smtp": {"host": "127.0.0.1", "port": server.port, "timeout": 2}})
    yield server
    server.stop()


def test_events_are_emailed_to_luigis_receiver(root, smtp, luigi_config):
    luigi_config({"notify": {"email_events": "run_failed, promoted"}})
    notify.send("run_failed", **FAILED)
    notify.send("deployed", date="2013-01-05", version="v2", previous_version="v1", reasons=["ok"])  # filtered out
    [mail] = smtp.messages()
    assert mail["Subject"] == "mlpipe run_failed 2013-01-03: run for 2013-01-03 failed with exit code 30 (task_failed)"
    assert mail["To"] == "ops@example.com"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "failed_task: CleanPartition_x" in text and f"storage root {root}" in text


def test_an_smtp_server_that_is_down_is_one_warning(root, luigi_config, caplog):
    luigi_config({"email": {"receiver": "ops@example.com", "force_send": "true"},
                  "smtp": {"host": "127.0.0.1", "port": free_port(), "timeout": 1}})
    notify.send("run_failed", **FAILED)
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert line.startswith("mlpipe: notification run_failed to email to ops@example.com failed: "
                           "Not able to connect to smtp server")


class Fails(luigi.Task):
    name = luigi.Parameter(description="which")

    def run(self):
        raise RuntimeError(f"{self.name} broke\nsecond line")


def test_failures_of_a_run_are_recorded_from_every_worker_process_and_sent(hooks, receiver, path, monkeypatch):
    hooks({"ops": {"path": path, "format": "json"}})
    monkeypatch.setenv(notify.LOG_FILE_ENV, "/var/log/nightly.log")
    with notify.recorded_failures() as failures:
        luigi.build([Fails(name="a"), Fails(name="b")], local_scheduler=True, workers=2, detailed_summary=True)
    assert sorted(f["message"] for f in failures) == ["a broke", "b broke"]
    notify.send_run_failed("2013-01-03", 30, "task_failed", failures)
    [record] = receiver.records(path)
    fields = record["body"]["fields"]
    assert fields["failed_task"] == failures[0]["task_id"] and fields["failed_task"].startswith("Fails_")
    assert fields["message"] == f"{failures[0]['message']} (and 1 other failed task(s))"
    assert (fields["exit_code"], fields["exit_class"], fields["log_path"]) == (30, "task_failed", "/var/log/nightly.log")


def test_a_successful_run_sends_nothing(hooks, receiver, path):
    hooks({"ops": {"path": path}})
    notify.send_run_failed("2013-01-03", 0, "success", [])
    assert receiver.records(path) == []


# Real `mlpipe` processes: the short pipeline of tests/test_commands.py with failures at once.
OVERLAY = """
[pipeline]
start_date = 2013-01-01
warmup_days = 4
[FeaturePartition]
trailing_days = 3
[CandidateModel]
window_days = 6
holdout_days = 1
max_iter = 30
importance_repeats = 1
[gate]
min_roc_auc = 0.5
tolerance = {tolerance}
[worker]
keep_alive = false
[notify]
webhooks = ops
timeout = {timeout}
attempts = {attempts}
backoff = 0.2
[notify_webhook_ops]
url_env = MLPIPE_TEST_HOOK
format = json
"""


def mlpipe(env, *args):
    return subprocess.run([str(PROJECT / ".venv" / "bin" / "mlpipe"), *args], env=env, cwd=PROJECT,
                          capture_output=True, text=True, timeout=600)


def environment(tmp_path, url: str, timeout: float = 2, attempts: int = 2, tolerance: float = 0.02,
                extra: str = "") -> dict:
    overlay = tmp_path / "overlay.cfg"
    overlay.write_text(OVERLAY.format(timeout=timeout, attempts=attempts, tolerance=tolerance) + extra)
    env = dict(os.environ, MLPIPE_ROOT=str(tmp_path / "root"), LUIGI_CONFIG_PATH=str(overlay),
               MLPIPE_TEST_HOOK=url, MLPIPE_LOG_FILE=str(tmp_path / "nightly.log"))
    env.pop("MLPIPE_LANDING", None)
    return env


def land_with_corrupt_day(env):
    assert mlpipe(env, "land-demo", "--start", "2013-01-01", "--end", "2013-01-03").returncode == 0
    landing = Path(env["MLPIPE_ROOT"]) / "landing"
    frame = pd.read_csv(landing / "flights" / "flights_2013-01-02.csv").drop(columns=["arr_delay"])
    deliver(str(landing), "flights", dt.date(2013, 1, 2), frame.to_csv(index=False).encode())


@pytest.mark.slow
def test_a_failing_run_notifies_run_failed_with_the_failing_task(tmp_path, receiver, path):
    env = environment(tmp_path, receiver.url(path + "/SECRET-PATH-45"))
    land_with_corrupt_day(env)
    proc = mlpipe(env, "run", "--date", "2013-01-03")
    assert proc.returncode == 30, proc.stderr[-3000:]
    [record] = receiver.records(path)
    body = record["body"]
    assert body["event"] == "run_failed"
    fields = body["fields"]
    assert (fields["date"], fields["exit_code"], fields["exit_class"]) == ("2013-01-03", 30, "task_failed")
    assert fields["failed_task"].startswith("RawPartition_2013_01_02_flights_")
    assert "is missing required column(s) ['arr_delay']" in fields["message"]
    assert fields["log_path"] == env["MLPIPE_LOG_FILE"]
    assert body["storage_root"] == env["MLPIPE_ROOT"]
    assert "delivered to webhook 'ops' (from $MLPIPE_TEST_HOOK)" in proc.stderr
    assert "SECRET-PATH-45" not in proc.stderr + proc.stdout


@pytest.mark.slow
def test_a_receiver_that_hangs_leaves_the_exit_code_of_a_backfill_unchanged(tmp_path, receiver, path):
    timeout, attempts = 1, 2
    env = environment(tmp_path, receiver.url(path + "/hang/SECRET-PATH-46"), timeout=timeout, attempts=attempts)
    land_with_corrupt_day(env)
    started = time.monotonic()
    proc = mlpipe(env, "backfill", "--start", "2013-01-01", "--end", "2013-01-03")
    elapsed = time.monotonic() - started
    assert proc.returncode == 30, proc.stderr[-3000:]  # as without notifications (tests/test_commands.py)
    [first, second] = receiver.records(path)
    assert first["body"]["fields"]["date"] == "2013-01-01..2013-01-03"
    assert second["received_at"] - first["received_at"] >= timeout
    assert (f"notification run_failed to webhook 'ops' (from $MLPIPE_TEST_HOOK) failed after {attempts} "
            f"attempt(s): no answer within {timeout} s") in proc.stderr
    assert "SECRET-PATH-46" not in proc.stderr + proc.stdout
    assert elapsed < 120


@pytest.mark.slow
def test_deployments_monitoring_alerts_and_manual_moves_are_notified(tmp_path, receiver, path):
    # [gate] tolerance = 1: every challenger that clears the floor is deployed; [monitor] min_auc = 1:
    # every monitored day raises an alert.
    env = environment(tmp_path, receiver.url(path), tolerance=1.0, extra="[monitor]\nmin_auc = 1.0\n")
    assert mlpipe(env, "land-demo", "--start", "2013-01-01", "--end", "2013-01-07").returncode == 0
    proc = mlpipe(env, "backfill", "--start", "2013-01-05", "--end", "2013-01-07")
    assert proc.returncode == 0, proc.stderr[-3000:]
    decisions = {d["date"]: d for d in (json.loads(p.read_text()) for p in
                                        Path(env["MLPIPE_ROOT"]).glob("deployments/flights/h=*/date=*/decision.json"))}
    assert sorted(decisions) == ["2013-01-05", "2013-01-06", "2013-01-07"]
    got = {(r["body"]["event"], r["body"]["fields"].get("date")): r["body"]["fields"] for r in receiver.records(path)}
    for date, decision in decisions.items():
        event = "deployed" if decision["blessed"] else "gate_rejected"
        assert got[(event, date)]["reasons"] == decision["reasons"]
        if decision["blessed"]:
            assert got[(event, date)]["version"] == decision["production_version"]
            assert got[(event, date)]["previous_version"] == decision["production_version_before"]
    assert [d["blessed"] for _, d in sorted(decisions.items())] == [True, True, True]
    monitored = sorted(date for event, date in got if event == "monitoring_alert")
    assert monitored == ["2013-01-06", "2013-01-07"]  # 2013-01-05 had no model in production before it
    assert any(a.startswith("realized ROC AUC") for a in got[("monitoring_alert", "2013-01-07")]["alerts"])
    assert got[("monitoring_alert", "2013-01-07")]["version"] == decisions["2013-01-06"]["production_version"]

    live, before = decisions["2013-01-07"]["production_version"], decisions["2013-01-07"]["production_version_before"]
    proc = mlpipe(dict(env, MLPIPE_USER="ana"), "models", "rollback", "--reason", "drill")
    assert proc.returncode == 0, proc.stderr[-3000:]
    [rolled] = [r["body"]["fields"] for r in receiver.records(path) if r["body"]["event"] == "rolled_back"]
    ana = registry.mover({"moved_by": "ana", "os_user": registry.os_user()})  # "ana (OS user root)" as root
    assert rolled == {"version": before, "previous_version": live, "reason": "drill", "who": ana}
    proc = mlpipe(dict(env, MLPIPE_USER="ana"), "models", "promote", live, "--reason", "back")
    assert proc.returncode == 0, proc.stderr[-3000:]
    [promoted] = [r["body"]["fields"] for r in receiver.records(path) if r["body"]["event"] == "promoted"]
    assert promoted == {"version": live, "previous_version": before, "reason": "back", "who": ana}
