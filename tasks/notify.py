"""Sending events (pipeline.notify.EVENTS) to the webhooks of luigi.cfg [notify] and by email
through luigi's [email] settings. `send()` never raises and returns within the configured time
bound, whatever the receivers do; and the failures of a luigi run, recorded for run_failed."""
from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import logging
import os
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import luigi
import luigi.notifications

from pipeline import notify
from tasks.config import NotifyConfig, current_dataset, get_storage, webhook_config_class

logger = logging.getLogger("luigi-interface")

LOG_FILE_ENV = "MLPIPE_LOG_FILE"  # set by scripts/nightly.sh: the run's log, named in run_failed
MARGIN = 1.0  # seconds send() waits beyond the bound for its threads to report


def send(event: str, **fields) -> None:
    """Send `event` with its `fields` to every webhook (and the email receiver) whose filter lets
    it through, in parallel. Never raises; returns after delivery, or once the bound of
    [notify] attempts x timeout plus backoff has passed; every failure is one warning line."""
    try:
        deliveries, bound = _deliveries(event, fields)
    except Exception as exc:  # noqa: BLE001 - a notification never fails its caller
        logger.warning("mlpipe: notification %s not sent: %s", event, exc)
        return
    threads = [threading.Thread(target=_guarded, args=(event, label, secrets, deliver), daemon=True,
                                name=f"mlpipe-notify-{label}") for label, secrets, deliver in deliveries]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + bound + MARGIN
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    for thread, (label, _, _) in zip(threads, deliveries):
        if thread.is_alive():
            logger.warning("mlpipe: notification %s to %s given up after %.0f s ([notify] attempts x timeout "
                           "+ backoff)", event, label, bound)


def _guarded(event: str, label: str, secrets: list[str], deliver) -> None:
    try:
        deliver()
    except Exception as exc:  # noqa: BLE001
        logger.warning("mlpipe: notification %s to %s failed: %s", event, label,
                       notify.redact(str(exc) or type(exc).__name__, secrets))


def _deliveries(event: str, fields: dict) -> tuple[list, float]:
    """(label, secrets, function) of each delivery `event` goes to, and the time bound."""
    cfg = NotifyConfig()
    message = notify.payload(event, fields, _dataset_name(), get_storage().root, socket.gethostname(),
                             dt.datetime.now(dt.timezone.utc))
    attempts, timeout, backoff = max(1, cfg.attempts), cfg.timeout, max(0.0, cfg.backoff)
    found = []
    for name in notify.parse_names(cfg.webhooks, "[notify] webhooks"):
        try:
            found.extend(_webhook(name, event, message, attempts, timeout, backoff))
        except notify.NotifyConfigError as exc:
            logger.warning("mlpipe: webhook '%s' skipped: %s", name, exc)
    try:
        found.extend(_email(event, message, cfg.email_events))
    except notify.NotifyConfigError as exc:
        logger.warning("mlpipe: notification by email skipped: %s", exc)
    return found, notify.time_bound(attempts, timeout, backoff)


def _dataset_name() -> str | None:
    try:
        return current_dataset().name
    except Exception:  # noqa: BLE001 - a broken description does not stop a run_failed about it
        return None


def _webhook(name: str, event: str, message: dict, attempts: int, timeout: float, backoff: float) -> list:
    section = f"[notify_webhook_{name}]"
    cfg = webhook_config_class(name)()
    if event not in notify.parse_events(cfg.events, f"{section} events"):
        return []
    fmt = notify.check_format(cfg.format, f"{section} format")
    if not cfg.url_env:
        raise notify.NotifyConfigError(f"{section} url_env is not set: name the environment variable that "
                                       "holds its URL")
    label = f"webhook '{name}' (from ${cfg.url_env})"
    url, token = os.environ.get(cfg.url_env, "").strip(), os.environ.get(cfg.token_env, "") if cfg.token_env else ""
    if not url:
        logger.warning("mlpipe: %s skipped: $%s is not set", label, cfg.url_env)
        return []
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        logger.warning("mlpipe: %s skipped: $%s does not hold an http(s) URL", label, cfg.url_env)
        return []
    if cfg.token_env and not token:
        logger.warning("mlpipe: %s skipped: $%s ([notify_webhook_%s] token_env) is not set", label,
                       cfg.token_env, name)
        return []
    headers = {"Content-Type": "application/json", "User-Agent": "mlpipe-notify"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = notify.webhook_body(fmt, message)
    secrets = notify.secrets_of(url, token)
    return [(label, secrets, lambda: _post_with_retries(label, event, url, headers, body, attempts, timeout,
                                                        backoff, secrets))]


def _post_with_retries(label: str, event: str, url: str, headers: dict, body: bytes, attempts: int,
                       timeout: float, backoff: float, secrets: list[str]) -> None:
    problem = ""
    for attempt in range(1, attempts + 1):
        status, problem = _post(url, headers, body, timeout)
        if status is not None and 200 <= status < 300:
            logger.info("mlpipe: notification %s delivered to %s", event, label)
            return
        if not notify.retryable(status) or attempt == attempts:
            break
        time.sleep(backoff)
    logger.warning("mlpipe: notification %s to %s failed after %d attempt(s): %s", event, label, attempt,
                   notify.redact(problem, secrets))


def _post(url: str, headers: dict, body: bytes, timeout: float) -> tuple[int | None, str]:
    """(HTTP status or None, what went wrong) of one POST."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return None, f"no answer within {timeout:g} s ([notify] timeout)"
        return None, f"cannot connect: {reason}"
    except (TimeoutError, socket.timeout):
        return None, f"no answer within {timeout:g} s ([notify] timeout)"
    except (OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _email(event: str, message: dict, email_events: str) -> list:
    if event not in notify.parse_events(email_events, "[notify] email_events"):
        return []
    receiver = luigi.notifications.email().receiver
    if not receiver:
        return []
    subject, text = notify.email_subject(message), notify.email_text(message)
    return [(f"email to {receiver}", [], lambda: _send_email(subject, text, receiver))]


class _SmtpErrors(logging.Filter):
    """luigi's SMTP sender logs a connection error instead of raising it: take it (from this
    thread only) so that the failure is reported once, as ours."""

    def __init__(self):
        super().__init__()
        self.thread, self.errors = threading.get_ident(), []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread == self.thread and record.levelno >= logging.ERROR and record.module == "notifications":
            self.errors.append(record.getMessage())
            return False
        return True


def _send_email(subject: str, text: str, receiver: str) -> None:
    cfg = luigi.notifications.email()
    if cfg.format == "html":
        import html

        text = f"<pre>{html.escape(text)}</pre>"
    errors = _SmtpErrors()
    logger.addFilter(errors)
    try:
        luigi.notifications.send_email(subject, text, cfg.sender, (receiver,))
    finally:
        logger.removeFilter(errors)
    if errors.errors:
        raise RuntimeError(errors.errors[0])


FAILURES_ENV = "MLPIPE_FAILURE_RECORD"  # the record's file, for worker processes started apart


def _failure_recorder(path: str):
    def record(task, exception):
        lines = str(exception).strip().splitlines() or [type(exception).__name__]
        with open(path, "a") as out:
            out.write(json.dumps({"task": task.get_task_family(), "task_id": task.task_id,
                                  "message": lines[0][:1000]}) + "\n")
    return record


@contextlib.contextmanager
def recorded_failures():
    """Collect {task, task_id, message} of every task failure of a luigi run, from whichever worker
    process runs the task: luigi fires FAILURE in that process, so each appends a line to a
    shared file (as tasks.ops.recorded_timings does for PROCESSING_TIME). Processes started apart
    (tasks.workers) find the file in $MLPIPE_FAILURE_RECORD."""
    fd, path = tempfile.mkstemp(prefix="mlpipe-failures-", suffix=".jsonl")
    os.close(fd)
    record = _failure_recorder(path)
    luigi.Task.event_handler(luigi.Event.FAILURE)(record)
    before = os.environ.get(FAILURES_ENV)
    os.environ[FAILURES_ENV] = path
    failures: list[dict] = []
    try:
        yield failures
    finally:
        luigi.Task._event_callbacks[luigi.Task][luigi.Event.FAILURE].discard(record)
        if before is None:
            os.environ.pop(FAILURES_ENV, None)
        else:
            os.environ[FAILURES_ENV] = before
        with open(path) as src:
            failures.extend(json.loads(line) for line in src if line.strip())
        os.remove(path)


def record_failures_from_environment() -> None:
    """In a worker process started by a command that keeps a failure record: add to it."""
    path = os.environ.get(FAILURES_ENV)
    if path and os.path.exists(path):
        luigi.Task.event_handler(luigi.Event.FAILURE)(_failure_recorder(path))


def send_run_failed(date: str, code: int, exit_class: str, failures: list[dict]) -> None:
    """run_failed for a run that ended with a non-zero exit `code` (nothing for 0): the first task
    that failed and its message, and the log named by $MLPIPE_LOG_FILE."""
    if code == 0:
        return
    first = failures[0] if failures else None
    others = len({f["task_id"] for f in failures}) - 1
    message = first["message"] if first else f"no task failed; the run ended with {exit_class}"
    if others > 0:
        message += f" (and {others} other failed task(s))"
    send("run_failed", date=date, exit_code=code, exit_class=exit_class,
         failed_task=first["task_id"] if first else None, message=message,
         log_path=os.environ.get(LOG_FILE_ENV) or None)


def send_decision(decision: dict) -> None:
    """deployed or gate_rejected of a deployment decision."""
    event, fields = notify.decision_event(decision)
    send(event, **fields)


def send_monitoring(record: dict) -> None:
    """monitoring_alert when the day's monitoring raised alerts."""
    found = notify.monitoring_event(record)
    if found:
        send(found[0], **found[1])
