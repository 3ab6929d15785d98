"""Operations around a run: per-task timings, the machine-readable run summary, and the
central scheduler preflight check."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import sys
import tempfile
import time
import urllib.parse

import luigi
import luigi.interface
import luigi.retcodes

from pipeline import layout
from pipeline import storage as st
from pipeline.estimators import TrainingError
from pipeline.storage_errors import StorageError
from tasks.config import LandingConfig, MonitorConfig, PipelineConfig, current_dataset, get_storage
from tasks.data import CleanPartition, LandingFile
from tasks.features import FeaturePartition
from tasks.model import CandidateModel, Deployment, ModelEvaluation
from tasks.nightly import DATA_STAGES, PER_TABLE, STAGES, NightlyRange, day_tasks, stage_of, stage_tasks
from tasks.serving import ModelMonitoring

SCHEDULER_UNREACHABLE = 45
MONITORING_ALERT = 50
VERIFY_PROBLEMS = 60


def exit_class(code: int) -> str:
    """The [retcode] name of an exit code ('success' for 0)."""
    if code == 0:
        return "success"
    if code == SCHEDULER_UNREACHABLE:
        return "scheduler_unreachable"
    if code == MONITORING_ALERT:
        return "monitoring_alert"
    if code == VERIFY_PROBLEMS:
        return "verify_problems"
    codes = luigi.retcodes.retcode()
    for name in ("already_running", "missing_data", "not_run", "task_failed", "scheduling_error",
                 "unhandled_exception"):
        if getattr(codes, name) == code:
            return name
    return "unknown"


@contextlib.contextmanager
def recorded_timings():
    """Collect (stage word, task family, task id, seconds) of every task run, from whichever worker process
    runs it: luigi fires PROCESSING_TIME in the process that ran the task, so each appends a line
    to a shared file."""
    fd, path = tempfile.mkstemp(prefix="mlpipe-timings-", suffix=".jsonl")
    os.close(fd)

    def record(task, seconds):
        with open(path, "a") as out:
            out.write(json.dumps({"stage": stage_of(task), "task": task.get_task_family(), "task_id": task.task_id,
                                  "seconds": round(float(seconds), 3)}) + "\n")

    luigi.Task.event_handler(luigi.Event.PROCESSING_TIME)(record)
    timings: list[dict] = []
    try:
        yield timings
    finally:
        luigi.Task._event_callbacks[luigi.Task][luigi.Event.PROCESSING_TIME].discard(record)
        with open(path) as src:
            timings.extend(json.loads(line) for line in src if line.strip())
        os.remove(path)


def stage_timings(timings: list[dict]) -> dict:
    """{stage word: {tasks, seconds}} in pipeline order, of the tasks that ran (wrappers left out)."""
    out: dict[str, dict] = {stage: {"tasks": 0, "seconds": 0.0} for stage in STAGES}
    for t in timings:
        if t.get("stage") is None:
            continue
        stage = out[t["stage"]]
        stage["tasks"] += 1
        stage["seconds"] = round(stage["seconds"] + t["seconds"], 3)
    return {stage: counts for stage, counts in out.items() if counts["tasks"]}


def run_summary(date: dt.date, code: int, started: float, timings: list[dict],
                reprocessed: list[dict] | None = None, wait=None) -> dict:
    """What a run of NightlyPipeline(date) did, read back from the stored outputs: for alerting.
    `reprocessed`: the re-delivered days the run reprocessed first (reprocess_redelivered); `wait`:
    how its wait for landing files ended (pipeline.waiting.Outcome; None: it did not wait)."""
    def read(target):
        try:
            return st.read_json(target) if target.exists() else None
        except (FileNotFoundError, StorageError, ValueError):
            return None

    def read_seal(task):  # the output is complete: its file is what the task wrote
        try:
            return st.read_seal(task.output())
        except (StorageError, ValueError):
            return None

    validation = {}
    for table in current_dataset().daily_tables:
        report = read(CleanPartition(table=table, date=date).outputs(date)["report"])
        if report:
            validation[table] = {k: report[k] for k in ("rows_in", "rows_clean", "rows_quarantined",
                                                         "quarantined_by_rule", "warnings")}
    evaluation = read(ModelEvaluation(date=date).record())
    decision, monitoring = (read(task.data()) if read_seal(task) is not None else None
                            for task in (Deployment(date=date), ModelMonitoring(date=date)))
    return {
        "date": date.isoformat(),
        "exit_code": code,
        "exit_class": exit_class(code),
        "started_at": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(time.time() - started, 3),
        "storage_root": get_storage().root,
        "stages": stage_timings(timings),
        "rows": {"validation": validation,
                 "features": _rows(FeaturePartition(date=date))},
        "metrics": {"challenger": (evaluation or {}).get("challenger"),
                    "production": (evaluation or {}).get("production"),
                    "realized": (monitoring or {}).get("realized")},
        "deployment": None if decision is None else {
            k: decision.get(k) for k in ("action", "blessed", "production_version",
                                         "production_version_before", "reasons")},
        "alerts": (monitoring or {}).get("alerts", []),
        "reprocessed": list(reprocessed or []),
        "landing_wait": None if wait is None else {
            "waited_seconds": round(wait.waited_seconds), "not_delivered": [p.path for p in wait.pending]},
        "late_data": [] if wait is None else wait.late,
    }


def fail_on_alert() -> bool:
    return MonitorConfig().fail_on_alert


def _rows(task) -> int | None:
    try:
        if not task.output().exists():
            return None
        return int(len(st.read_parquet(task.data(), columns=[current_dataset().target.name])))
    except (FileNotFoundError, StorageError):
        return None


def _core():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # luigi warns about [core] options its Config class does not declare
        return luigi.interface.core()


def scheduler_url() -> str:
    """The URL luigi's workers send their requests to, as luigi.interface makes it: [core]
    default-scheduler-url, else http://{default-scheduler-host}:{default-scheduler-port}/."""
    core = _core()
    return core.scheduler_url or f"http://{core.scheduler_host}:{int(core.scheduler_port)}/"


def scheduler_address() -> tuple[str, int]:
    """luigid's host and port as luigi's own [core] settings give them (default-scheduler-url's when set)."""
    url = urllib.parse.urlsplit(scheduler_url())
    if url.scheme not in ("http", "https") or not url.hostname:
        core = _core()
        return core.scheduler_host, int(core.scheduler_port)
    return url.hostname, url.port or (443 if url.scheme == "https" else 80)


def scheduler_reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def netrc_path() -> str | None:
    """The netrc file requests (luigi's client of luigid) reads credentials from: $NETRC, else
    ~/.netrc or ~/_netrc when there is one (requests.utils.get_netrc_auth's lookup)."""
    if "NETRC" in os.environ:
        return os.path.expanduser(os.environ["NETRC"])
    found = [p for p in (os.path.expanduser(f"~/{n}") for n in (".netrc", "_netrc")) if os.path.exists(p)]
    return found[0] if found else None


def scheduler_auth_problem(timeout: float = 5.0) -> str | None:
    """Why the central scheduler would refuse this run's requests, in one line naming its address and
    the setting to fix; None when it accepts them (or does not answer HTTP: the run finds out).
    First, [scheduler_auth] netrc (when set) becomes $NETRC of this process and of the workers it
    forks, where requests finds it; a netrc file holding the scheduler's password that others can
    read is refused, since requests itself does not check."""
    import netrc

    import luigi.rpc
    import requests

    from tasks.config import SchedulerAuthConfig

    url = scheduler_url()
    host, port = scheduler_address()
    where = f"the central scheduler (luigid) at {host}:{port}"
    if urllib.parse.urlsplit(url).password is not None:
        return (f"{where}: [core] default-scheduler-url holds a password, which luigi writes to its log: remove "
                "the credentials from the URL and put them in a netrc file named by [scheduler_auth] netrc "
                "(docs/security.md)")
    configured = SchedulerAuthConfig().netrc
    if configured:
        os.environ["NETRC"] = os.path.expanduser(configured)
    path = netrc_path()
    setting = "[scheduler_auth] netrc" if configured else "$NETRC" if "NETRC" in os.environ else "~/.netrc"
    auth = None
    if path is not None and os.path.isfile(path):
        try:
            auth = requests.utils.get_netrc_auth(url, raise_errors=True)
        except netrc.NetrcParseError as exc:  # its message can quote a token of the file: name the line only
            return f"{where}: the netrc file {path} ({setting}) is not valid netrc at line {exc.lineno}"
        except OSError as exc:
            return f"{where}: cannot read the netrc file {path} ({setting}): {exc.strerror}"
        info = os.stat(path)
        if auth is not None and (info.st_mode & 0o077 or info.st_uid != os.getuid()):
            return (f"{where}: the netrc file {path} ({setting}) holds its password but is not private to you "
                    f"(mode {info.st_mode & 0o777:o}, owner uid {info.st_uid}): `chmod 600 {path}` as its owner")
    try:
        code = requests.get(url, timeout=timeout, allow_redirects=False).status_code
    except requests.RequestException:
        return None
    if code not in (401, 403):
        return None
    if not luigi.rpc.HAS_REQUESTS:
        return f"{where} asks for credentials (HTTP {code}), which luigi sends only with `requests` installed"
    if auth is None:
        named = ("" if path is None else f"; {path} ({setting}) does not exist" if not os.path.isfile(path)
                 else f"; {path} ({setting}) has none for {host}")
        return (f"{where} asks for credentials (HTTP {code}){named}: put `machine {host} login NAME password "
                f"...` in a netrc file (chmod 600) named by [scheduler_auth] netrc in luigi.cfg or by $NETRC "
                "(docs/security.md)")
    return (f"{where} refused the credentials of user {auth[0]} from {path} ({setting}) (HTTP {code}): check "
            f"them (`scripts/luigid.sh add-user {auth[0]}` on the scheduler's host sets the password)")


# ---- plan and invalidate ---------------------------------------------------------------------
def labelled_estimate(day: dt.date) -> int | None:
    """About how many labelled rows `day` has, from its small validation report of the target's
    table (clean rows less the target column's missing share); None before it is validated."""
    data = current_dataset()
    report = CleanPartition(table=data.target.table, date=day).outputs(day)["report"]
    if not report.exists():
        return None
    found = st.read_json(report)
    return round(found["rows_clean"] * (1 - (found.get("null_rates") or {}).get(data.target.column, 0.0)))


def plan_warnings(start: dt.date, end: dt.date) -> list[str]:
    """What `mlpipe plan` warns about before anything runs: the planned days whose training window
    would have fewer labelled rows than [CandidateModel] min_train_rows (estimated from the
    validation reports of the days validated so far, their mean standing in for the others), or
    a window that cannot hold its holdout. Only the windows clipped at start_date differ in
    length, so at most window_days small reports are read."""
    cfg = PipelineConfig()
    first = max(start, cfg.first_deploy_date)
    if end < first:
        return []
    try:
        CandidateModel(date=first).windows()
    except TrainingError as exc:
        return [str(exc)]
    estimates: dict[dt.date, int | None] = {}
    short, day = [], first
    while day <= end:
        candidate = CandidateModel(date=day)
        train, _ = candidate.windows()
        for d in train:
            if d not in estimates:
                estimates[d] = labelled_estimate(d)
        known = [estimates[d] for d in train if estimates[d] is not None]
        if not known:
            return []
        rows = round(sum(known) / len(known) * len(train))
        if rows < candidate.min_train_rows:
            short.append((day, train, rows, len(known)))
        if day - dt.timedelta(days=candidate.window_days - 1) >= cfg.start_date:
            break  # a full window: every later one is as long
        day += dt.timedelta(days=1)
    if not short:
        return []
    day, train, rows, validated = short[0]
    more = (f"; so would those of {len(short) - 1} later planned day(s), through {short[-1][0]}" if len(short) > 1
            else "")
    return [f"the training window of {day} ({train[0]}..{train[-1]}) has about {rows} labelled rows (from the "
            f"validation reports of {validated} of its {len(train)} days), fewer than [CandidateModel] min_train_rows "
            f"{CandidateModel(date=day).min_train_rows}: its CandidateModel would fail{more}; lower min_train_rows, "
            "or raise [pipeline] warmup_days / [CandidateModel] window_days"]


PLAN_ORDER = ("landing", *STAGES, "nightly")  # a plan's rows within a date


def plan(roots: list) -> list[dict]:
    """What a run of `roots` would do, without running anything: every task luigi would schedule,
    walking requirements the way luigi does (a complete task's requirements are not visited),
    with 'run' and the missing output, 'waits' for a missing external input (a landing file not
    delivered yet), 'blocked' for a task that would run but needs one of those, directly or not
    (`waits_for`: their tasks), or 'complete'. Each row's `stage` is its stage word ('landing' for
    a landing file, 'nightly' for a wrapper); rows come by date, then in pipeline order and table."""
    from luigi.task import flatten

    seen, rows, needs, stack = set(), {}, {}, list(reversed(roots))
    while stack:
        task = stack.pop()
        if task.task_id in seen:
            continue
        seen.add(task.task_id)
        outputs = flatten(task.output())
        missing = [o.path for o in outputs if not o.exists()]
        external = isinstance(task, luigi.ExternalTask)
        changed = getattr(task, "delivery_change", lambda: None)() if outputs and not missing else None
        if changed:
            action = "run"
            why = (f"landing file re-delivered (sha256 {changed[0][:12]} -> {changed[1][:12]}): the task fails "
                   f"until `mlpipe invalidate --stage validate --start {task.date} --end {task.date} --yes`")
        elif external and not missing and (not_ready := getattr(task, "not_ready_reason", lambda: None)()):
            action, why = "waits", f"not delivered yet: {not_ready}"
        elif outputs and not missing or (not outputs and task.complete()):
            action, why = "complete", ""
        elif external:
            action, why = "waits", f"missing input {missing[0]} (delivered by the upstream system)"
        else:
            action = "run"
            why = f"missing output {missing[0]}" if missing else "requirements not complete"
        stage = stage_of(task) or ("landing" if external else "nightly")
        rows[task.task_id] = {"date": str(getattr(task, "date", "") or ""), "stage": stage,
                              "table": getattr(task, "table", ""), "task": str(task), "action": action,
                              "why": why, "waits_for": []}
        if action == "run":
            needs[task.task_id] = [req.task_id for req in flatten(task.requires())]
            stack.extend(reversed(flatten(task.requires())))
    for task_id in list(needs):
        _waits_for(task_id, rows, needs)
    return sorted(rows.values(), key=lambda r: (r["date"], PLAN_ORDER.index(r["stage"]), r["table"], r["task"]))


def _waits_for(task_id: str, rows: dict, needs: dict) -> None:
    """Mark `task_id` 'blocked' when it would run but waits for landing files, directly or through
    its requirements (their tasks in its `waits_for`); requirements first, without recursion (the
    deploy chain is as deep as the range is long)."""
    stack = [task_id]
    while stack:
        current = stack[-1]
        pending = [req for req in needs.get(current, ()) if req in needs and req not in stack]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        reqs = needs.pop(current, None)
        if reqs is None:
            continue
        waits = list(dict.fromkeys(w for req in reqs for w in (
            [rows[req]["task"]] if rows[req]["action"] == "waits" else rows[req]["waits_for"])))
        if waits:
            more = f" and {len(waits) - 1} more landing file(s)" if len(waits) > 1 else ""
            rows[current].update(action="blocked", waits_for=waits, why=f"waits for {waits[0]}{more} (not delivered yet)")


def downstream(start: dt.date, end: dt.date, stage: str, last_day: dt.date) -> list:
    """The `stage` tasks of [start, end] and every task from the pipeline's start date to
    `last_day` that depends on them, directly or not (the deploy chain makes that every later
    decision)."""
    from luigi.task import flatten

    if stage not in STAGES or stage == "ingest":
        raise ValueError(f"unknown stage {stage!r}; choose one of {list(STAGES)[1:]} (the raw zone is never removed)")
    first = PipelineConfig().start_date
    days = [first + dt.timedelta(days=i) for i in range((max(last_day, end) - first).days + 1)]
    tasks = {t.task_id: t for day in days for t in day_tasks(day)}
    dependents: dict[str, set] = {}
    for task in tasks.values():
        for req in flatten(task.requires()):
            dependents.setdefault(req.task_id, set()).add(task.task_id)
    seeds = [t for t in tasks.values() if isinstance(t, STAGES[stage]) and start <= t.date <= end]
    reached, stack = {}, list(seeds)
    while stack:
        task = stack.pop()
        if task.task_id in reached:
            continue
        reached[task.task_id] = task
        stack.extend(tasks[d] for d in dependents.get(task.task_id, ()) if d in tasks)
    order = list(STAGES.values())
    return sorted(reached.values(), key=lambda t: (t.date, order.index(type(t))))


def removable_paths(task) -> list[str]:
    """The stored outputs of `task` (whole directories for flagged outputs)."""
    if isinstance(task, CleanPartition):
        outs = task.outputs(task.date)
        return [outs["flag"].path.rsplit("/", 1)[0], outs["quarantine"].path, outs["report"].path]
    path = task.output().path
    return [path.rsplit("/", 1)[0]] if path.endswith("/" + layout.SUCCESS) else [path]


def invalidation_paths(start: dt.date, end: dt.date, stage: str) -> list[str]:
    """The stored outputs that `mlpipe invalidate --stage S` removes for [start, end]: the stage's
    and everything downstream of them, up to the last day with outputs."""
    store = get_storage()
    tasks = downstream(start, end, stage, last_day_with_outputs() or end)
    return [path for task in tasks for path in removable_paths(task) if store.exists(path)]


def last_day_with_outputs() -> dt.date | None:
    """The latest date that has a feature partition (where the pipeline has got to)."""
    prefix = layout.undated(FeaturePartition(date=dt.date(2000, 1, 1)).output().path)
    days = [layout.date_in(f"{prefix}/{name}") for name in get_storage().listdir(prefix)]
    return max((d for d in days if d is not None), default=None)


# ---- re-delivered landing files ---------------------------------------------------------------
def redelivery_policy() -> str:
    """[landing] redelivery of luigi.cfg: 'fail' or 'reprocess'."""
    try:
        return LandingConfig().redelivery
    except ValueError:
        value = luigi.configuration.get_config().get("landing", "redelivery", "")
        print(f"mlpipe: [landing] redelivery = {value!r} in luigi.cfg is not a policy: choose one of "
              f"{list(LandingConfig.REDELIVERY)} (fail: the re-delivered day fails naming the command that "
              "reprocesses it; reprocess: mlpipe run and backfill reprocess it)", file=sys.stderr)
        raise SystemExit(2) from None  # a setting to fix, as a bad dataset description


def redelivered(start: dt.date, end: dt.date, stage: str = "nightly") -> list[tuple[CleanPartition, tuple[str, str]]]:
    """The clean partitions whose landing file was re-delivered with other content after they were
    validated, with (sha256 validated, sha256 now): those of the days of [start, end], and those a
    run of `stage` over them would check (earlier days it reads, found the way luigi walks: plan())."""
    reached = {dt.date.fromisoformat(row["date"]) for row in plan([NightlyRange(start=start, end=end, stage=stage)])
               if row["stage"] == "validate" and row["date"]}
    days = {start + dt.timedelta(days=i) for i in range((end - start).days + 1)} | reached
    found = []
    for day in sorted(days):
        for task in stage_tasks("validate", day):
            change = task.delivery_change()
            if change:
                found.append((task, change))
    return found


def reprocess_redelivered(start: dt.date, end: dt.date, stage: str = "nightly") -> list[dict]:
    """With [landing] redelivery = reprocess, before a run of `stage` over [start, end]: every day
    the run would meet whose landing file was re-delivered with other content after the day was
    validated (redelivered()) is made to be processed again from the new delivery, by removing its
    clean outputs and everything downstream (what `mlpipe invalidate --stage validate` removes; the raw
    zone and the landing files are kept: the new file is parsed again since its checksum differs
    from the raw partition's record). Downstream outputs go first, then the day's clean partitions
    (their flag before the validation report the change is detected by), so a removal interrupted
    before the flag is found again by the next run, and one interrupted after it leaves the day
    to be validated again. A re-delivered file that is not whole yet (its readiness rule) is left
    alone. One stderr line per day; returns {table, date, from_sha256, to_sha256} per reprocessed
    table and day ([] with redelivery = fail)."""
    if redelivery_policy() != "reprocess" or start > end:
        return []
    try:
        found = redelivered(start, end, stage)
        last = (last_day_with_outputs() or end) if found else end
    except (OSError, StorageError, ValueError) as exc:
        print(f"mlpipe: re-delivered landing files could not be looked for ({exc}); the run reports the cause",
              file=sys.stderr)
        return []
    by_day: dict[dt.date, list] = {}
    for task, change in found:
        by_day.setdefault(task.date, []).append((task, change))
    store, reprocessed = get_storage(), []
    for day, changes in sorted(by_day.items()):
        waiting = [reason for task, _ in changes
                   if (reason := LandingFile(table=task.table, date=day.isoformat()).not_ready_reason())]
        if waiting:
            print(f"mlpipe: {day} was re-delivered but is not delivered whole yet ({'; '.join(waiting)}): nothing of "
                  "it is removed; a run once the file is whole reprocesses it", file=sys.stderr)
            continue
        tasks = downstream(day, day, "validate", max(last, day))
        paths = [path for task in reversed(tasks) for path in removable_paths(task) if store.exists(path)]
        for path in paths:
            store.remove(path)
        rows = [{"table": task.table, "date": day.isoformat(), "from_sha256": change[0], "to_sha256": change[1]}
                for task, change in changes]
        reprocessed.extend(rows)
        tables = ", ".join(f"{r['table']} (sha256 {r['from_sha256'][:12]} -> {r['to_sha256'][:12]})" for r in rows)
        print(f"mlpipe: reprocessing {day}: re-delivered after the day was validated: {tables}; removed its clean "
              f"outputs and everything downstream ({len(paths)} output(s); [landing] redelivery = reprocess)",
              file=sys.stderr)
    return reprocessed
