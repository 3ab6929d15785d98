"""`mlpipe`: the command line for the common jobs. It parses arguments and calls into
`pipeline` and `tasks`; it holds no pipeline logic of its own."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys

import pandas as pd


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    if start > end:
        raise SystemExit(f"mlpipe: --start {start} is after --end {end}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def cmd_land_demo(args) -> int:
    from pipeline.landing import land_demo
    from tasks.config import get_storage

    store = get_storage()
    landing = store.landing
    counts = land_demo(landing, args.start, args.end, overwrite=args.overwrite, store=store)
    print(f"landed {args.start}..{args.end} into {landing}: {counts['written']} file(s) written, "
          f"{counts['skipped']} already there")
    return 0


def cmd_run(args) -> int:
    """NightlyPipeline(date), then one JSON run summary: in the storage root under runs/ and,
    with --summary, in a local file too (for alerting)."""
    import time

    from pipeline import storage as st
    from tasks import ops
    from tasks.config import get_storage

    started = time.time()
    with ops.recorded_timings() as timings:
        code = _run_luigi(["NightlyPipeline", "--date", args.date.isoformat()], args)
    if code == ops.SCHEDULER_UNREACHABLE:
        return code
    summary = ops.run_summary(args.date, code, started, timings)
    store = get_storage()
    stamp = dt.datetime.fromtimestamp(started, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = store.file(store.partition("runs", "nightly", args.date), f"run-{stamp}.json")
    try:
        st.write_json(target, summary)
        print(f"mlpipe: run summary written to {target.path}", file=sys.stderr)
    except (OSError, st.StorageError) as exc:
        print(f"mlpipe: could not store the run summary at {target.path}: {exc}", file=sys.stderr)
    if args.summary:
        with open(args.summary, "w") as out:
            json.dump(summary, out, indent=2, sort_keys=True)
        print(f"mlpipe: run summary written to {args.summary}", file=sys.stderr)
    print(f"mlpipe: {args.date} finished with exit code {code} ({summary['exit_class']})", file=sys.stderr)
    return code


def cmd_backfill(args) -> int:
    return _run_luigi(["NightlyRange", "--start", args.start.isoformat(), "--end", args.end.isoformat(),
                       "--stage", args.stage], args)


def _run_luigi(task_args: list[str], args) -> int:
    """Run a task through luigi's own entry point, so [retcode] in luigi.cfg sets the exit code."""
    from luigi.retcodes import run_with_retcodes

    from tasks import ops

    argv = ["--module", "tasks", *task_args, "--workers", str(args.workers)]
    if not args.central:
        argv.append("--local-scheduler")
    else:
        host, port = ops.scheduler_address()
        if not ops.scheduler_reachable(host, port):
            print(f"mlpipe: the central scheduler (luigid) at {host}:{port} is unreachable; start it with "
                  "`scripts/luigid.sh start`, point [core] default-scheduler-host/-port in luigi.cfg at it, "
                  "or run without --central to use a local scheduler", file=sys.stderr)
            return ops.SCHEDULER_UNREACHABLE
    try:
        run_with_retcodes(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def cmd_plan(args) -> int:
    from tasks import NightlyPipeline, ops

    rows = ops.plan([NightlyPipeline(date=d) for d in _days(args.start, args.end)])
    todo = [r for r in rows if r["action"] != "complete"]
    for row in sorted(todo, key=lambda r: (r["date"], r["stage"], r["task"])):
        print(f"{row['date'] or '-':<10}  {row['action']:<5}  {row['stage']:<16}  {row['task']}\n"
              f"{'':<10}  {'':<5}  {'':<16}  why: {row['why']}")
    print(f"mlpipe plan {args.start}..{args.end}: {sum(r['action'] == 'run' for r in rows)} task(s) would run, "
          f"{sum(r['action'] == 'waits' for r in rows)} input(s) missing, "
          f"{sum(r['action'] == 'complete' for r in rows)} complete; nothing was run")
    return 0


def cmd_invalidate(args) -> int:
    from tasks import ops
    from tasks.config import get_storage

    store = get_storage()
    last = ops.last_day_with_outputs() or args.end
    tasks = ops.downstream(args.start, args.end, args.stage, last)
    paths = [p for task in tasks for p in ops.removable_paths(task) if store.exists(p)]
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


def realized(start: dt.date, end: dt.date) -> dict:
    from pipeline import monitoring, storage as st
    from tasks import FeaturePartition, Predictions
    from tasks.base import dataset

    frames, missing = [], []
    for day in _days(start, end):
        pred, feat = Predictions(date=day).output(), FeaturePartition(date=day).output()
        if not (pred.exists() and feat.exists()):
            missing.append(day.isoformat())
            continue
        scores = st.read_parquet(pred, columns=["score"])
        labels = st.read_parquet(feat, columns=[dataset.TARGET])
        if len(scores) != len(labels):
            raise SystemExit(f"mlpipe: {pred.path} has {len(scores)} rows but {feat.path} has {len(labels)}")
        frames.append(pd.concat([scores, labels], axis=1))
    result = monitoring.realized_over(frames, dataset.TARGET)
    result.update(start=start.isoformat(), end=end.isoformat(), days_missing=missing)
    return result


def cmd_quality(args) -> int:
    result = realized(args.start, args.end)
    print(json.dumps(result, indent=2))
    if result["days_missing"]:
        print(f"mlpipe: no stored predictions for {len(result['days_missing'])} day(s): "
              f"{result['days_missing'][:5]}...; run the nightly pipeline for them first", file=sys.stderr)
        return 1
    return 0


def cmd_summary(args) -> int:
    from pipeline import registry, storage as st
    from tasks import Deployment, ModelEvaluation, ModelMonitoring
    from tasks.config import get_storage

    store = get_storage()
    deployment, evaluation = Deployment(date=args.date), ModelEvaluation(date=args.date)
    monitoring = ModelMonitoring(date=args.date)
    if not deployment.output().exists():
        print(f"mlpipe: no deployment decision for {args.date} under {store.root}; run "
              f"`mlpipe run --date {args.date}` first", file=sys.stderr)
        return 1
    decision = st.read_json(deployment.output())
    version = decision["production_version"]
    print(f"storage root:          {store.root}")
    print(f"deployment decision:   {deployment.output().path}  ({decision['action']})")
    if version:
        print(f"production model:      {os.path.join(registry.Registry(store).version_dir(version), 'model.pkl')}"
              f"  (version {version})")
    print(f"evaluation report:     {os.path.join(evaluation.directory(), 'report.html')}")
    print(f"monitoring output:     {monitoring.output().path}")
    record = st.read_json(evaluation.record())
    for who in ("challenger", "production"):
        m = record.get(who)
        if m:
            print(f"{who + ' holdout:':<23}" + ", ".join(
                f"{k} {m[k]:.4f}" for k in ("roc_auc", "average_precision", "log_loss", "brier") if m.get(k) is not None)
                + f"  ({m['rows']} rows)")
    print(f"gate:                  {'BLESSED' if record['decision']['blessed'] else 'REJECTED'}: "
          + "; ".join(record["decision"]["reasons"]))
    if monitoring.output().exists():
        mon = st.read_json(monitoring.output())
        r = mon.get("realized") or {}
        if r.get("roc_auc") is not None:
            print(f"realized on {args.date}:   ROC AUC {r['roc_auc']:.4f} over {r['rows_with_outcome']} "
                  f"flights scored by {mon['model_version']}")
        print(f"monitoring alerts:     {mon.get('alerts') or 'none'}")
    return 0


def _scheduling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=1, help="luigi worker processes (default 1)")
    p.add_argument("--central", action="store_true",
                   help="use the central scheduler (luigid) from luigi.cfg instead of a local one")


def _range_command(sub, name: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help)
    p.add_argument("--start", type=_date, required=True, help="first date (YYYY-MM-DD)")
    p.add_argument("--end", type=_date, required=True, help="last date, inclusive (YYYY-MM-DD)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlpipe", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("land-demo", help="deliver the embedded 2013 flights data as daily landing files")
    p.add_argument("--start", type=_date, required=True)
    p.add_argument("--end", type=_date, required=True)
    p.add_argument("--overwrite", action="store_true", help="replace landing files that exist")
    p.set_defaults(func=cmd_land_demo)

    p = sub.add_parser("run", help="run the nightly pipeline for one date")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--summary", metavar="FILE", help="also write the JSON run summary to this local file")
    _scheduling_options(p)
    p.set_defaults(func=cmd_run)

    p = _range_command(sub, "backfill", "run the nightly pipeline for every day of a range (only what is missing)")
    p.add_argument("--stage", default="nightly",
                   choices=["nightly", "clean", "features", "candidate", "evaluation", "deployment",
                            "predictions", "monitoring"],
                   help="backfill one stage (and what it needs) instead of the whole nightly pipeline")
    _scheduling_options(p)
    p.set_defaults(func=cmd_backfill)

    p = _range_command(sub, "plan", "dry run: what a backfill of the range would run, and why")
    p.set_defaults(func=cmd_plan)

    p = _range_command(sub, "invalidate", "remove a stage's outputs and everything downstream, for a range")
    p.add_argument("--stage", required=True, choices=["clean", "features", "candidate", "evaluation",
                                                      "deployment", "predictions", "monitoring"])
    p.add_argument("--yes", action="store_true", help="remove them (without it: only list them)")
    p.set_defaults(func=cmd_invalidate)

    p = _range_command(sub, "quality", "realized metrics of the stored predictions over a date range")
    p.set_defaults(func=cmd_quality)

    p = sub.add_parser("summary", help="where a date's artifacts are, and the model's metrics")
    p.add_argument("--date", type=_date, required=True)
    p.set_defaults(func=cmd_summary)
    return parser


def use_project_config() -> None:
    """Read the project's luigi.cfg when the working directory has none (luigi reads ./luigi.cfg
    only), so `mlpipe` behaves the same from any directory; an overlay in LUIGI_CONFIG_PATH still
    wins, being read last. Without this, [retcode] would fall back to luigi's 0 for failures."""
    import luigi.configuration

    from pipeline.storage import PROJECT_DIR

    project_cfg = PROJECT_DIR / "luigi.cfg"
    if os.path.exists("luigi.cfg") or not project_cfg.exists():
        return
    luigi.configuration.add_config_path(str(project_cfg))
    overlay = os.environ.get("LUIGI_CONFIG_PATH")
    if overlay:
        luigi.configuration.add_config_path(overlay)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    use_project_config()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
