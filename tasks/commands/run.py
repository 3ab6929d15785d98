"""`mlpipe land-demo`, `land-synthetic`, `run`, `backfill`, `plan` and `invalidate`: delivering data
and running the pipeline through luigi's own entry point, so [retcode] sets the exit code."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import time

import luigi.worker
from luigi.retcodes import run_with_retcodes

from pipeline import dates, layout, waiting
from pipeline import storage as st
from pipeline.description import BUILTIN
from pipeline.storage_errors import StorageError
from tasks import notify, ops, workers
from tasks.commands.common import (date_arg, fail, leased, luigi_retcodes, order_problem, positive_int, range_command,
                                   range_problem, scheduling_options, stage_arg)
from tasks.config import LandingConfig, current_dataset, get_storage
from tasks.nightly import DATA_STAGES, STAGES, NightlyPipeline, NightlyRange
from tasks.queries import days_between
from tasks.threads import PARALLEL_ENV, preload_for_workers
from tasks.waiting import pending_files, take_outcome


def _flights_only(command: str) -> int:
    """0 when the configured dataset is the built-in flights one, which `command` delivers data
    for; else 2, with the reason on stderr."""
    ds = current_dataset()
    if os.path.abspath(ds.source) == os.path.abspath(BUILTIN):
        return 0
    print(f"mlpipe {command}: it delivers flights data, but the dataset is '{ds.name}' ({ds.source}): its "
          "files come from its own upstream system, at the landing paths of its [tables]", file=sys.stderr)
    return 2


def cmd_land_demo(args) -> int:
    from pipeline.flights.landing import land_demo

    if _flights_only("land-demo"):
        return 2
    store = get_storage()
    landing = store.landing
    counts = land_demo(landing, args.start, args.end, overwrite=args.overwrite, store=store)
    print(f"landed {args.start}..{args.end} into {landing}: {counts['written']} file(s) written, "
          f"{counts['skipped']} already there")
    return 0


def cmd_land_synthetic(args) -> int:
    from pipeline.flights.synthetic import Drift, land_synthetic

    if _flights_only("land-synthetic"):
        return 2
    drift = None
    if args.drift_start is not None:
        drift = Drift(args.drift_start, shift_minutes=90 if args.drift_shift_minutes is None else args.drift_shift_minutes,
                      delay_minutes=20.0 if args.drift_delay_minutes is None else args.drift_delay_minutes)
    store = get_storage()
    counts = land_synthetic(store.landing, args.start, args.end, args.rows_per_day, args.seed, drift=drift,
                            overwrite=args.overwrite, store=store)
    print(f"landed synthetic data ({args.rows_per_day} flights a day, seed {args.seed}"
          + (f", drift from {drift.start}" if drift else "") + f") for {args.start}..{args.end} into "
          f"{store.landing}: {counts['written']} file(s) written, {counts['skipped']} already there")
    return 0


@leased("run_wait")
def cmd_run(args) -> int:
    """NightlyPipeline(date), then one JSON run summary: in the storage root under runs/ and,
    with --summary, in a local file too (for alerting)."""
    started = time.time()
    reprocessed = ops.reprocess_redelivered(args.date, args.date)  # [landing] redelivery = reprocess
    code, wait, missing = _wait_for_landing(args)
    if code == ops.SCHEDULER_UNREACHABLE:
        notify.send_run_failed(args.date.isoformat(), code, ops.exit_class(code), [])
        return code
    # With landing files still missing, luigi's keep-alive would sit idle for its whole
    # max_keep_alive_idle_duration (it never checks external data again): the run ends once the
    # rest has run, since the wait for the files is over.
    idle = ["--worker-max-keep-alive-idle-duration", "1 second"] if missing else []
    with ops.recorded_timings() as timings, notify.recorded_failures() as failures:
        code = _run_luigi(["NightlyPipeline", "--date", args.date.isoformat(), *idle], args)
    if code == ops.SCHEDULER_UNREACHABLE:
        notify.send_run_failed(args.date.isoformat(), code, ops.exit_class(code), failures)
        return code
    code = _done_by_another_worker(code, NightlyPipeline(date=args.date), str(args.date))
    summary = ops.run_summary(args.date, code, started, timings, reprocessed, wait)
    if code == 0 and summary["alerts"] and ops.fail_on_alert():
        code = ops.MONITORING_ALERT
        summary.update(exit_code=code, exit_class=ops.exit_class(code))
        print(f"mlpipe: monitoring raised {len(summary['alerts'])} alert(s) for {args.date} and [monitor] "
              f"fail_on_alert is set: {summary['alerts']}", file=sys.stderr)
    _store_summary(args, summary, started)
    ending = ""
    if code == luigi_retcodes().missing_data and missing:
        ending = ": " + (wait.wait.gave_up_line(missing) if wait is not None else waiting.not_waited_line(args.date, missing))
    print(f"mlpipe: {args.date} finished with exit code {code} ({summary['exit_class']}){ending}", file=sys.stderr)
    notify.send_run_failed(args.date.isoformat(), code, summary["exit_class"], failures)
    return code


def _wait_for_landing(args) -> tuple[int, waiting.Outcome | None, list[waiting.Pending]]:
    """[landing] wait: the landing files the night needs and that are not delivered yet are waited
    for first, in a luigi run of its own (LandingWait), so luigid shows what is waited for. Returns
    that run's exit code, how the wait ended (None: nothing was waited for) and the files still
    missing."""
    missing = pending_files([NightlyPipeline(date=args.date)])
    if not missing or LandingConfig().wait <= 0:
        return 0, None, missing
    # --no-lock: luigi's lock keys on this process's command line, so a lock taken here would make
    # the pipeline's run that follows in the same process "already running".
    code = _run_luigi(["LandingWait", "--date", args.date.isoformat(), "--no-lock"], args, workers=1)
    wait = take_outcome(args.date)
    return code, wait, (missing if wait is None else wait.pending)


def _store_summary(args, summary: dict, started: float) -> None:
    """Each run's summary goes to its own file under runs/ in the storage root. A run that did
    something (a task ran, or it failed) also becomes the night's: runs/.../night.json and the
    --summary file; one that did nothing leaves those as the last real run made them."""
    store = get_storage()
    stamp = dt.datetime.fromtimestamp(started, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    night = store.partition("runs", "nightly", args.date)
    target = store.file(night, layout.run_summary_file(stamp))
    did_work = bool(summary["stages"]) or summary["exit_code"] != 0
    try:
        st.write_json(target, summary)
        if did_work:
            st.write_json(store.file(night, layout.NIGHT_SUMMARY_FILE), summary)
        print(f"mlpipe: run summary written to {target.path}", file=sys.stderr)
    except (OSError, StorageError) as exc:
        print(f"mlpipe: could not store the run summary at {target.path}: {exc}", file=sys.stderr)
    if not args.summary:
        return
    if not did_work and os.path.exists(args.summary):
        print(f"mlpipe: nothing ran; the night's summary {args.summary} is kept; this run's summary: {target.path}",
              file=sys.stderr)
        return
    with open(args.summary + ".tmp", "w") as out:  # written whole or not at all: alerting reads it
        json.dump(summary, out, indent=2, sort_keys=True)
    os.replace(args.summary + ".tmp", args.summary)
    print(f"mlpipe: run summary written to {args.summary}", file=sys.stderr)


@leased("run_wait")
def cmd_backfill(args) -> int:
    """NightlyRange, one calendar month at a time (pipeline.dates.month_spans): luigid holds one
    month's graph, a few hundred tasks, however long the range, so its UI stays usable for a year;
    the deploy chain carries over from one month to the next through the stored decisions. It stops
    at the first month that does not complete."""
    ops.reprocess_redelivered(args.start, args.end, args.stage)  # [landing] redelivery = reprocess
    spans = dates.month_spans(args.start, args.end)
    code = 0
    with notify.recorded_failures() as failures, _scheduler(args) as (url, problem):
        code = problem
        for number, (first, last) in enumerate(spans if not problem else [], 1):
            if len(spans) > 1:
                print(f"mlpipe: backfill {first}..{last} (month {number} of {len(spans)})", file=sys.stderr)
            span = NightlyRange(start=first, end=last, stage=args.stage)
            waits = bool(pending_files([span]))
            task = ["NightlyRange", "--start", first.isoformat(), "--end", last.isoformat(), "--stage", args.stage,
                    *_keep_alive_options(args, url, waits)]
            if number > 1:  # luigi's pid lock keys on this process's command line: the first month holds it
                task.append("--no-lock")
            code = _done_by_another_worker(_run_span(task, args, url, span, waits), span, f"{first}..{last}")
            if code and number < len(spans):
                print(f"mlpipe: {first}..{last} did not complete (exit code {code}); {spans[number][0]}..{args.end} "
                      "was not started: rerun the backfill once the cause is fixed", file=sys.stderr)
            if code:
                break
    notify.send_run_failed(f"{args.start}..{args.end}", code, ops.exit_class(code), failures)
    return code


def _run_span(task: list[str], args, url: str | None, span, waits: bool) -> int:
    """One month's luigi run. Through luigid, a run that ends early (`waits`: landing files are
    missing, see _keep_alive_options) may leave tasks that others' running tasks made runnable:
    once nothing runs any more, it runs again, as long as the previous pass got something done."""
    through = (url or (ops.scheduler_url() if args.central else None)) if waits else None
    codes = luigi_retcodes()
    done = workers.done_count(through) if through else 0
    while True:
        if url:
            code = _run_luigi(task, args, workers=1, scheduler_url=url)
        else:
            code = _run_luigi(task, args, models=args.stage not in DATA_STAGES)
        if not through or code not in (codes.missing_data, codes.not_run, codes.already_running) or span.complete():
            return code
        workers.wait_quiet(through, luigi.worker.worker().max_keep_alive_idle_duration.total_seconds())
        now = workers.done_count(through)
        if now <= done:
            return code
        done = now
        if "--no-lock" not in task:
            task = [*task, "--no-lock"]


def _keep_alive_options(args, url: str | None, waits: bool) -> list[str]:
    """Through luigid (--central, --processes) other processes may run what this one waits for:
    it keeps polling ([worker] keep_alive whatever the configuration says). While landing files
    are missing (`waits`), luigi would idle for its whole max_keep_alive_idle_duration (it never
    checks external data again): the backfill ends once the rest has run, as `mlpipe run` does."""
    options = ["--worker-keep-alive"] if url or args.central else []
    if waits:
        options += ["--worker-max-keep-alive-idle-duration", "1 second"]
    return options


@contextlib.contextmanager
def _scheduler(args):
    """With --processes N: luigid (the configured one with --central, else one of the backfill's
    own) and N - 1 long-lived worker processes beside this one (tasks.workers), for the whole
    backfill. This process puts each month's tasks into luigid and runs them beside the others, one
    task at a time each, polling while tasks it waits for run elsewhere; at the end the others
    finish their task at hand and leave. Yields (luigid's URL or None: luigi's usual scheduling,
    the exit code of a problem or 0)."""
    if args.processes == 1:
        yield None, 0
        return
    def others(url: str):
        return workers.pool(url, args.processes - 1, idle=0)

    with contextlib.ExitStack() as stack:
        if args.central:
            problem = _central_problem()
            if problem:
                yield None, problem
                return
            url = ops.scheduler_url()
            stack.enter_context(others(url))
        else:
            try:  # the other processes start beside luigid, and wait for it
                url = stack.enter_context(workers.own_scheduler(beside=others))
            except OSError as exc:
                yield None, fail(str(exc), luigi_retcodes().scheduling_error)
                return
        before = os.environ.get(PARALLEL_ENV)
        os.environ[PARALLEL_ENV] = "1"
        try:
            yield url, 0
        finally:
            os.environ.pop(PARALLEL_ENV) if before is None else os.environ.__setitem__(PARALLEL_ENV, before)


def _central_problem() -> int:
    """0 when the configured luigid answers and accepts this host's credentials; else the exit code
    (45, scheduler unreachable) after one line naming it and what to do."""
    host, port = ops.scheduler_address()
    if not ops.scheduler_reachable(host, port):
        print(f"mlpipe: the central scheduler (luigid) at {host}:{port} is unreachable; start it with "
              "`scripts/luigid.sh start`, point [core] default-scheduler-host/-port in luigi.cfg at it, "
              "or run without --central to use a local scheduler", file=sys.stderr)
        return ops.SCHEDULER_UNREACHABLE
    problem = ops.scheduler_auth_problem()  # before luigi, which would retry a 401 3 x 30 s
    if problem:
        print(f"mlpipe: {problem}", file=sys.stderr)
        return ops.SCHEDULER_UNREACHABLE
    return 0


def _run_luigi(task_args: list[str], args, models: bool = True, workers: int | None = None,
               scheduler_url: str | None = None) -> int:
    """Run a task through luigi's own entry point, so [retcode] in luigi.cfg sets the exit code.
    `models`: the task includes model stages (what to import before luigi forks its workers);
    `workers`: instead of --workers; `scheduler_url`: the luigid to use (checked by the caller)
    instead of the local scheduler or, with --central, luigi.cfg's."""
    workers = args.workers if workers is None else workers
    if workers > 1:
        preload_for_workers(models)

    argv = ["--module", "tasks", *task_args, "--workers", str(workers)]
    host, port = None, None
    if scheduler_url:
        argv += ["--scheduler-url", scheduler_url]
    elif not args.central:
        argv.append("--local-scheduler")
    else:
        host, port = ops.scheduler_address()
        problem = _central_problem()
        if problem:
            return problem
    try:
        run_with_retcodes(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    if host and code == luigi_retcodes().unhandled_exception and not ops.scheduler_reachable(host, port):
        print(f"mlpipe: lost the central scheduler (luigid) at {host}:{port} during the run; the outputs "
              "written so far are complete. Start it (`scripts/luigid.sh start`), wait a minute for it to "
              "release the tasks of this run, then rerun", file=sys.stderr)
        return ops.SCHEDULER_UNREACHABLE
    return code


def _done_by_another_worker(code: int, task, what: str) -> int:
    """0 instead of already_running / not_run when `task` (what a run ran, for `what`) is complete
    after all: another worker (a backfill, a second cron run, a process of the pool) ran what this
    one did not."""
    codes = luigi_retcodes()
    if code in (codes.already_running, codes.not_run) and task.complete():
        print(f"mlpipe: {what} is complete; other workers ran the tasks this one did not "
              f"(exit code {code} becomes 0)", file=sys.stderr)
        return 0
    return code


def cmd_plan(args) -> int:
    """By date (a header line each), in pipeline order: every task a backfill of the range would run,
    with its stage, action and why; then any warnings and one line of counts."""
    rows = ops.plan([NightlyPipeline(date=d) for d in days_between(args.start, args.end)])
    date = None
    for row in rows:
        if row["action"] == "complete":
            continue
        if row["date"] != date:
            date = row["date"]
            print(date or "reference tables (no date)")
        print(f"  {row['stage']:<9} {row['action']:<8} {row['task']}  why: {row['why']}")
    warnings = ops.plan_warnings(args.start, args.end)
    for warning in warnings:
        print(f"warning: {warning}")
    count = {action: sum(r["action"] == action for r in rows) for action in ("run", "blocked", "waits", "complete")}
    print(f"mlpipe plan {args.start}..{args.end}: {count['run']} task(s) would run, {count['blocked']} blocked by "
          f"{count['waits']} landing file(s) not delivered yet, {count['complete']} complete; nothing was run")
    return 0


@leased("manual_wait", when=lambda args: args.yes)
def cmd_invalidate(args) -> int:
    store = get_storage()
    paths = ops.invalidation_paths(args.start, args.end, args.stage)
    if not paths:
        print(f"mlpipe invalidate: no stored {args.stage} output (or downstream) for {args.start}..{args.end}")
        return 0
    print(f"mlpipe invalidate: {args.stage} for {args.start}..{args.end} and everything downstream "
          f"({len(paths)} output(s); the raw zone and published registry versions are kept):")
    for path in paths:
        print(f"  {path}")
    if not args.yes:
        print("nothing removed: run again with --yes to remove these")
        return 0
    for path in paths:
        store.remove(path)
    print(f"removed {len(paths)} output(s); the next run recomputes them")
    return 0


def _landing_problem(args) -> str | None:
    """land-demo's and land-synthetic's dates: within the embedded 2013 data, the first day first."""
    from pipeline.flights.landing import DATA_END, DATA_START

    if args.start > args.end:
        return order_problem(args.start, args.end)
    if args.start < DATA_START or args.end > DATA_END:
        return (f"the embedded flights data covers {DATA_START}..{DATA_END}, not {args.start}..{args.end}: "
                "pick days within it")
    return None


def _synthetic_problem(args) -> str | None:
    """land-synthetic resamples the embedded days onto any dates: only the first day first."""
    if args.drift_start is None and (args.drift_shift_minutes is not None or args.drift_delay_minutes is not None):
        return "--drift-shift-minutes and --drift-delay-minutes need --drift-start: add it, or leave them out"
    return order_problem(args.start, args.end)


def _run_problem(args) -> str | None:
    if args.summary:
        folder = os.path.dirname(os.path.abspath(args.summary))
        if not os.path.isdir(folder):
            return (f"--summary {args.summary}: the directory {folder} does not exist; create it or name a file "
                    "in one that does")
    return range_problem(args.date, args.date, what="--date")


def _backfill_problem(args) -> str | None:
    if args.processes > 1 and args.workers > 1:
        return (f"--processes {args.processes} and --workers {args.workers}: pick one (--processes starts long-lived "
                "worker processes; --workers forks a process per task)")
    return range_problem(args.start, args.end, args.stage)


def _invalidate_problem(args) -> str | None:
    if args.stage == "ingest":
        return ("--stage ingest cannot be invalidated: the raw zone is never removed (a re-delivered landing file "
                "is parsed again once its day is invalidated from validate on); pick validate or a later stage")
    return range_problem(args.start, args.end, args.stage)


DATE_HELP = "YYYY-MM-DD"


def add_parsers(sub) -> None:
    p = range_command(sub, "land-demo", "deliver the embedded 2013 flights data as daily landing files")
    p.add_argument("--overwrite", action="store_true", help="replace landing files that exist")
    p.set_defaults(func=cmd_land_demo, check=_landing_problem)

    p = range_command(sub, "land-synthetic", "deliver synthetic daily landing files of any size (scale tests)")
    p.add_argument("--rows-per-day", type=positive_int, required=True, metavar="N", help="flights per day")
    p.add_argument("--seed", type=int, default=0, help="random seed; a day's files depend only on it and the date "
                                                      "(default 0)")
    p.add_argument("--drift-start", type=date_arg, default=None, metavar=DATE_HELP,
                   help="inject drift from this day on: later departures and longer delays")
    p.add_argument("--drift-shift-minutes", type=int, default=None, metavar="MINUTES",
                   help="with --drift-start: departures move this much later (default 90)")
    p.add_argument("--drift-delay-minutes", type=float, default=None, metavar="MINUTES",
                   help="with --drift-start: delays grow by this much (default 20)")
    p.add_argument("--overwrite", action="store_true", help="replace landing files that exist")
    p.set_defaults(func=cmd_land_synthetic, check=_synthetic_problem)

    help = "run the nightly pipeline for one date"
    p = sub.add_parser("run", help=help, description="Run the nightly pipeline for one date: every stage from ingest "
                       "to monitor (before the first deploy date: the data stages only).")
    p.add_argument("--date", type=date_arg, required=True, metavar=DATE_HELP,
                   help="the day to process, usually yesterday")
    p.add_argument("--summary", metavar="FILE",
                   help="also write the JSON run summary to this local file (a run that ran nothing leaves an "
                        "existing one as it is)")
    scheduling_options(p)
    p.set_defaults(func=cmd_run, check=_run_problem)

    p = range_command(sub, "backfill", "run the nightly pipeline for every day of a range (only what is missing)")
    p.add_argument("--stage", default="nightly", type=stage_arg(("nightly", *STAGES)), metavar="STAGE",
                   help=f"backfill one stage (and what it needs) instead of the whole nightly pipeline: one of "
                        f"{', '.join(STAGES)} (default: nightly, the whole pipeline)")
    scheduling_options(p)
    p.add_argument("--processes", type=positive_int, default=1, metavar="N",
                   help="run the backfill in N long-lived worker processes, one task at a time each, through "
                        "luigid (with --central the configured one, else one of the backfill's own); other hosts "
                        "join with `mlpipe worker` (default 1: this process alone)")
    p.set_defaults(func=cmd_backfill, check=_backfill_problem)

    p = range_command(sub, "plan", "dry run: what a backfill of the range would run, and why")
    p.set_defaults(func=cmd_plan, check=lambda args: range_problem(args.start, args.end))

    p = range_command(sub, "invalidate", "remove a stage's outputs and everything downstream, for a range")
    p.add_argument("--stage", required=True, type=stage_arg(tuple(STAGES)), metavar="STAGE",
                   help=f"the first stage to remove: one of {', '.join(list(STAGES)[1:])} (ingest, the raw zone, is "
                        "never removed)")
    p.add_argument("--yes", action="store_true", help="remove them (without it: only list them)")
    p.set_defaults(func=cmd_invalidate, check=_invalidate_problem)
