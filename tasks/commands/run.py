"""`mlpipe land-demo`, `land-synthetic`, `run`, `backfill`, `plan` and `invalidate`: delivering data
and running the pipeline through luigi's own entry point, so [retcode] sets the exit code."""
from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time

from luigi.retcodes import run_with_retcodes

from pipeline import layout
from pipeline import storage as st
from pipeline.description import BUILTIN
from pipeline.storage_errors import StorageError
from tasks import ops
from tasks.commands.common import date_arg, leased, luigi_retcodes, range_command, scheduling_options
from tasks.config import current_dataset, get_storage
from tasks.nightly import DATA_STAGES, STAGES, NightlyPipeline
from tasks.queries import QueryError, days_between
from tasks.threads import preload_for_workers


def days(start: dt.date, end: dt.date) -> list[dt.date]:
    try:
        return days_between(start, end)
    except QueryError as exc:
        raise SystemExit(f"mlpipe: {exc}") from None


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
    if args.drift_start is None and (args.drift_shift_minutes is not None or args.drift_delay_minutes is not None):
        raise SystemExit("mlpipe land-synthetic: --drift-shift-minutes/--drift-delay-minutes need --drift-start")
    drift = None
    if args.drift_start is not None:
        drift = Drift(args.drift_start, shift_minutes=90 if args.drift_shift_minutes is None else args.drift_shift_minutes,
                      delay_minutes=20.0 if args.drift_delay_minutes is None else args.drift_delay_minutes)
    store = get_storage()
    try:
        counts = land_synthetic(store.landing, args.start, args.end, args.rows_per_day, args.seed, drift=drift,
                                overwrite=args.overwrite, store=store)
    except ValueError as exc:
        raise SystemExit(f"mlpipe land-synthetic: {exc}") from None
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
    with ops.recorded_timings() as timings:
        code = _run_luigi(["NightlyPipeline", "--date", args.date.isoformat()], args)
    if code == ops.SCHEDULER_UNREACHABLE:
        return code
    code = _done_by_another_worker(code, args.date)
    summary = ops.run_summary(args.date, code, started, timings, reprocessed)
    if code == 0 and summary["alerts"] and ops.fail_on_alert():
        code = ops.MONITORING_ALERT
        summary.update(exit_code=code, exit_class=ops.exit_class(code))
        print(f"mlpipe: monitoring raised {len(summary['alerts'])} alert(s) for {args.date} and [monitor] "
              f"fail_on_alert is set: {summary['alerts']}", file=sys.stderr)
    store = get_storage()
    stamp = dt.datetime.fromtimestamp(started, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = store.file(store.partition("runs", "nightly", args.date), layout.run_summary_file(stamp))
    try:
        st.write_json(target, summary)
        print(f"mlpipe: run summary written to {target.path}", file=sys.stderr)
    except (OSError, StorageError) as exc:
        print(f"mlpipe: could not store the run summary at {target.path}: {exc}", file=sys.stderr)
    if args.summary:  # written whole or not at all: alerting reads it
        with open(args.summary + ".tmp", "w") as out:
            json.dump(summary, out, indent=2, sort_keys=True)
        os.replace(args.summary + ".tmp", args.summary)
        print(f"mlpipe: run summary written to {args.summary}", file=sys.stderr)
    print(f"mlpipe: {args.date} finished with exit code {code} ({summary['exit_class']})", file=sys.stderr)
    return code


@leased("run_wait")
def cmd_backfill(args) -> int:
    ops.reprocess_redelivered(args.start, args.end, args.stage)  # [landing] redelivery = reprocess
    return _run_luigi(["NightlyRange", "--start", args.start.isoformat(), "--end", args.end.isoformat(),
                       "--stage", args.stage], args, models=args.stage not in DATA_STAGES)


def _run_luigi(task_args: list[str], args, models: bool = True) -> int:
    """Run a task through luigi's own entry point, so [retcode] in luigi.cfg sets the exit code.
    `models`: the task includes model stages (what to import before luigi forks its workers)."""
    if args.workers > 1:
        preload_for_workers(models)

    argv = ["--module", "tasks", *task_args, "--workers", str(args.workers)]
    host, port = None, None
    if not args.central:
        argv.append("--local-scheduler")
    else:
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
    try:
        run_with_retcodes(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    if args.central and code == luigi_retcodes().unhandled_exception and not ops.scheduler_reachable(host, port):
        print(f"mlpipe: lost the central scheduler (luigid) at {host}:{port} during the run; the outputs "
              "written so far are complete. Start it (`scripts/luigid.sh start`), wait a minute for it to "
              "release the tasks of this run, then rerun", file=sys.stderr)
        return ops.SCHEDULER_UNREACHABLE
    return code


def _done_by_another_worker(code: int, date: dt.date) -> int:
    """0 instead of already_running / not_run when the date's pipeline is complete after all:
    another worker (a backfill, a second cron run) ran what this one did not."""
    codes = luigi_retcodes()
    if code in (codes.already_running, codes.not_run) and NightlyPipeline(date=date).complete():
        print(f"mlpipe: {date} is complete; another worker ran the tasks this run did not "
              f"(exit code {code} becomes 0)", file=sys.stderr)
        return 0
    return code


def cmd_plan(args) -> int:
    rows = ops.plan([NightlyPipeline(date=d) for d in days(args.start, args.end)])
    todo = [r for r in rows if r["action"] != "complete"]
    for row in sorted(todo, key=lambda r: (r["date"], r["stage"], r["task"])):
        print(f"{row['date'] or '-':<10}  {row['action']:<5}  {row['stage']:<16}  {row['task']}\n"
              f"{'':<10}  {'':<5}  {'':<16}  why: {row['why']}")
    print(f"mlpipe plan {args.start}..{args.end}: {sum(r['action'] == 'run' for r in rows)} task(s) would run, "
          f"{sum(r['action'] == 'waits' for r in rows)} input(s) missing, "
          f"{sum(r['action'] == 'complete' for r in rows)} complete; nothing was run")
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


def add_parsers(sub) -> None:
    p = sub.add_parser("land-demo", help="deliver the embedded 2013 flights data as daily landing files")
    p.add_argument("--start", type=date_arg, required=True)
    p.add_argument("--end", type=date_arg, required=True)
    p.add_argument("--overwrite", action="store_true", help="replace landing files that exist")
    p.set_defaults(func=cmd_land_demo)

    p = sub.add_parser("land-synthetic", help="deliver synthetic daily landing files of any size (scale tests)")
    p.add_argument("--start", type=date_arg, required=True)
    p.add_argument("--end", type=date_arg, required=True)
    p.add_argument("--rows-per-day", type=int, required=True, help="flights per day")
    p.add_argument("--seed", type=int, default=0, help="random seed; a day's files depend only on it and the date")
    p.add_argument("--drift-start", type=date_arg, default=None,
                   help="inject drift from this date on: later departures and longer delays")
    p.add_argument("--drift-shift-minutes", type=int, default=None, help="departures move this much later (default 90)")
    p.add_argument("--drift-delay-minutes", type=float, default=None, help="delays grow by this much (default 20)")
    p.add_argument("--overwrite", action="store_true", help="replace landing files that exist")
    p.set_defaults(func=cmd_land_synthetic)

    p = sub.add_parser("run", help="run the nightly pipeline for one date")
    p.add_argument("--date", type=date_arg, required=True)
    p.add_argument("--summary", metavar="FILE", help="also write the JSON run summary to this local file")
    scheduling_options(p)
    p.set_defaults(func=cmd_run)

    p = range_command(sub, "backfill", "run the nightly pipeline for every day of a range (only what is missing)")
    p.add_argument("--stage", default="nightly", choices=["nightly", *STAGES],
                   help="backfill one stage (and what it needs) instead of the whole nightly pipeline")
    scheduling_options(p)
    p.set_defaults(func=cmd_backfill)

    p = range_command(sub, "plan", "dry run: what a backfill of the range would run, and why")
    p.set_defaults(func=cmd_plan)

    p = range_command(sub, "invalidate", "remove a stage's outputs and everything downstream, for a range")
    p.add_argument("--stage", required=True, choices=list(STAGES))
    p.add_argument("--yes", action="store_true", help="remove them (without it: only list them)")
    p.set_defaults(func=cmd_invalidate)
