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


def _flights_only(command: str) -> int:
    """0 when the configured dataset is the built-in flights one, which `command` delivers data
    for; else 2, with the reason on stderr."""
    from pipeline.dataset import BUILTIN
    from tasks.base import current_dataset

    ds = current_dataset()
    if os.path.abspath(ds.source) == os.path.abspath(BUILTIN):
        return 0
    print(f"mlpipe {command}: it delivers flights data, but the dataset is '{ds.name}' ({ds.source}): its "
          "files come from its own upstream system, at the landing paths of its [tables]", file=sys.stderr)
    return 2


def cmd_land_demo(args) -> int:
    from pipeline.landing import land_demo
    from tasks.config import get_storage

    if _flights_only("land-demo"):
        return 2

    store = get_storage()
    landing = store.landing
    counts = land_demo(landing, args.start, args.end, overwrite=args.overwrite, store=store)
    print(f"landed {args.start}..{args.end} into {landing}: {counts['written']} file(s) written, "
          f"{counts['skipped']} already there")
    return 0


def cmd_land_synthetic(args) -> int:
    from pipeline.synthetic import Drift, land_synthetic
    from tasks.config import get_storage

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
    code = _done_by_another_worker(code, args.date)
    summary = ops.run_summary(args.date, code, started, timings)
    if code == 0 and summary["alerts"] and ops.fail_on_alert():
        code = ops.MONITORING_ALERT
        summary.update(exit_code=code, exit_class=ops.exit_class(code))
        print(f"mlpipe: monitoring raised {len(summary['alerts'])} alert(s) for {args.date} and [monitor] "
              f"fail_on_alert is set: {summary['alerts']}", file=sys.stderr)
    store = get_storage()
    stamp = dt.datetime.fromtimestamp(started, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = store.file(store.partition("runs", "nightly", args.date), f"run-{stamp}.json")
    try:
        st.write_json(target, summary)
        print(f"mlpipe: run summary written to {target.path}", file=sys.stderr)
    except (OSError, st.StorageError) as exc:
        print(f"mlpipe: could not store the run summary at {target.path}: {exc}", file=sys.stderr)
    if args.summary:  # written whole or not at all: alerting reads it
        with open(args.summary + ".tmp", "w") as out:
            json.dump(summary, out, indent=2, sort_keys=True)
        os.replace(args.summary + ".tmp", args.summary)
        print(f"mlpipe: run summary written to {args.summary}", file=sys.stderr)
    print(f"mlpipe: {args.date} finished with exit code {code} ({summary['exit_class']})", file=sys.stderr)
    return code


def cmd_backfill(args) -> int:
    return _run_luigi(["NightlyRange", "--start", args.start.isoformat(), "--end", args.end.isoformat(),
                       "--stage", args.stage], args, models=args.stage not in ("clean", "features"))


def _run_luigi(task_args: list[str], args, models: bool = True) -> int:
    """Run a task through luigi's own entry point, so [retcode] in luigi.cfg sets the exit code.
    `models`: the task includes model stages (what to import before luigi forks its workers)."""
    from luigi.retcodes import run_with_retcodes

    from tasks import ops
    from tasks.config import preload_for_workers

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


def luigi_retcodes():
    import luigi.retcodes

    return luigi.retcodes.retcode()


def _done_by_another_worker(code: int, date: dt.date) -> int:
    """0 instead of already_running / not_run when the date's pipeline is complete after all:
    another worker (a backfill, a second cron run) ran what this one did not."""
    from tasks import NightlyPipeline

    codes = luigi_retcodes()
    if code in (codes.already_running, codes.not_run) and NightlyPipeline(date=date).complete():
        print(f"mlpipe: {date} is complete; another worker ran the tasks this run did not "
              f"(exit code {code} becomes 0)", file=sys.stderr)
        return 0
    return code


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
        labels = st.read_parquet(feat, columns=[dataset.target.name])
        if len(scores) != len(labels):
            raise SystemExit(f"mlpipe: {pred.path} has {len(scores)} rows but {feat.path} has {len(labels)}")
        frames.append(pd.concat([scores, labels], axis=1))
    result = monitoring.realized_over(frames, dataset.target.name, task=dataset.task)
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
    from pipeline import evaluation as ev, registry, storage as st
    from pipeline.training import MODEL_FILE
    from tasks import Deployment, ModelEvaluation, ModelMonitoring
    from tasks.base import dataset
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
        print(f"production model:      {os.path.join(registry.Registry(store).version_dir(version), MODEL_FILE)}"
              f"  (version {version})")
    print(f"evaluation report:     {os.path.join(evaluation.directory(), 'report.html')}")
    print(f"monitoring output:     {monitoring.output().path}")
    record = st.read_json(evaluation.record())
    for who in ("challenger", "production"):
        m = record.get(who)
        if m:
            print(f"{who + ' holdout:':<23}" + ", ".join(
                f"{k} {m[k]:.4f}" for k in ev.TASK_METRICS[dataset.task] if m.get(k) is not None)
                + f"  ({m['rows']} rows)")
    print(f"gate:                  {'BLESSED' if record['decision']['blessed'] else 'REJECTED'}: "
          + "; ".join(record["decision"]["reasons"]))
    if monitoring.output().exists():
        mon = st.read_json(monitoring.output())
        r = mon.get("realized") or {}
        metric = ev.HEADLINE_METRIC[dataset.task]
        if r.get(metric) is not None:
            print(f"realized on {args.date}:   {metric} {r[metric]:.4f} over {r['rows_with_outcome']} "
                  f"{dataset.row_noun} scored by {mon['model_version']}")
        print(f"monitoring alerts:     {mon.get('alerts') or 'none'}")
    return 0


# ---- mlpipe models ------------------------------------------------------------------------------
def _registry():
    from pipeline import registry
    from tasks.config import get_storage

    return registry.Registry(get_storage())


def _headline() -> str:
    from pipeline.evaluation import HEADLINE_METRIC
    from tasks.base import dataset

    return HEADLINE_METRIC[dataset.task]


def _metric(metrics: dict | None, name: str) -> str:
    value = (metrics or {}).get(name)
    return "-" if value is None else f"{value:.4f}"


def cmd_models_list(args) -> int:
    from pipeline import registry

    reg = _registry()
    versions, history, alias = reg.versions(), reg.history(), reg.alias()
    if not versions:
        print(f"no published model versions under {reg.base}")
        return 0
    served: dict[str, list[str]] = {}
    for period in registry.live_periods(history):
        if period["served"]:
            served.setdefault(period["version"], []).append(f"{period['from']}..{period['to'] or 'now'}")
    metric = _headline()
    print(f"{'version':<24}{'as of':<12}{'rows trained':>13}{'holdout ' + metric:>17}  served (dates)")
    for version in versions:
        m = reg.manifest(version)
        live = "  <- production" if alias and alias["version"] == version else ""
        print(f"{version:<24}{m.get('as_of', '-'):<12}{m.get('rows_trained', '-'):>13}{_metric(m.get('metrics'), metric):>17}  "
              f"{', '.join(served.get(version, [])) or 'never'}{live}")
    return 0


def cmd_models_show(args) -> int:
    from pipeline import registry

    reg = _registry()
    version = args.version
    if version == "production":
        alias = reg.alias()
        if not alias:
            print("mlpipe: no model is in production yet", file=sys.stderr)
            return 1
        version = alias["version"]
    try:
        manifest = reg.manifest(version)
    except registry.RegistryError as exc:
        print(f"mlpipe: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(manifest, indent=2, sort_keys=True))
        return 0
    checks = reg.verify(version)
    gate = manifest.get("gate") or {}
    tuning = manifest.get("tuning") or {}
    print(f"version:          {version}  ({reg.version_dir(version)})")
    print(f"as of:            {manifest.get('as_of')}  trained {manifest.get('trained_at')}")
    print(f"model:            {manifest.get('family', 'hgb')} {json.dumps(manifest.get('model_params') or {})}")
    print(f"training window:  {manifest['train_days'][0]}..{manifest['train_days'][-1]} "
          f"({manifest.get('rows_trained')} rows); holdout {', '.join(manifest['holdout_days'])}")
    print(f"holdout metrics:  " + ", ".join(f"{k} {v:.4f}" for k, v in (manifest.get("metrics") or {}).items()
                                           if isinstance(v, float)))
    print(f"gate:             {'BLESSED' if gate.get('blessed') else 'REJECTED'}: " + "; ".join(gate.get("reasons", [])))
    if tuning.get("trials"):
        score = tuning["best"].get("score_name", "roc_auc")  # records from before score_name
        print(f"tuning:           {len(tuning['trials'])} trial(s), best mean CV {score} "
              f"{tuning['best']['mean_' + score]:.4f} (trial {tuning['best']['trial']})")
    print(f"inputs:           {len(manifest.get('input_fingerprints', {}))} feature partition(s), sha256 recorded")
    print(f"code:             {json.dumps(manifest.get('code_version'))}")
    print(f"libraries:        {json.dumps(manifest.get('library_versions'))}")
    print("files:            " + ", ".join(f"{name} {state}" for name, state in checks.items()))
    for period in registry.live_periods(reg.history()):
        if period["version"] == version:
            print(f"{period['kind']:<17} serving {period['from']}..{period['to'] or 'now'}"
                  f"{'' if period['served'] else ' (replaced the same day: never served)'}; by {period['moved_by']}: "
                  f"{period['reason']}")
    return 0 if all(state == "ok" for state in checks.values()) else 1


def _move(kind: str, version: str, reason: str) -> int:
    from pipeline import registry
    from tasks.config import get_storage
    from tasks.model import move_production

    try:
        record = move_production(get_storage(), version, kind, reason)
    except registry.RegistryError as exc:
        print(f"mlpipe: {exc}", file=sys.stderr)
        return 1
    print(f"production is now {record['version']} (was {record['previous_version']}), {kind.replace('_', ' ')} by "
          f"{record['moved_by']}: {reason}\nit serves the dates after {record['as_of']}: the next nightly run "
          f"scores with it and compares its challenger with it")
    return 0


def cmd_models_promote(args) -> int:
    return _move("promoted", args.version, args.reason)


def cmd_models_rollback(args) -> int:
    from pipeline import registry

    try:
        version = args.to or _registry().rollback_target()
    except registry.RegistryError as exc:
        print(f"mlpipe: {exc}", file=sys.stderr)
        return 1
    return _move("rolled_back", version, args.reason)


def cmd_models_which(args) -> int:
    """Which version served a date: from the predictions' own record, else from the decisions."""
    from pipeline import storage as st
    from tasks import Predictions
    from tasks.config import get_storage
    from tasks.model import live_version

    target = Predictions(date=args.date).output()
    if target.exists():
        versions = st.read_parquet(target, columns=["model_version"])["model_version"].dropna().unique().tolist()
        print(f"{args.date}: scored by {', '.join(versions) or 'no model'} (recorded in {target.path})")
        return 0
    try:
        version = live_version(get_storage(), args.date)
    except FileNotFoundError:
        print(f"mlpipe: no deployment decision for the day before {args.date}", file=sys.stderr)
        return 1
    print(f"{args.date}: not scored yet; the model in production for it is {version or 'none'}")
    return 0


# ---- mlpipe tune --------------------------------------------------------------------------------
def cmd_tune(args) -> int:
    """A larger search than the nightly one, on the training window of --date; prints the trials
    ranked and the luigi.cfg lines of the best. Nothing is deployed."""
    from pipeline import tuning
    from pipeline.evaluation import HIGHER_IS_BETTER
    from tasks import CandidateModel, FeaturePartition
    from tasks.base import dataset, read_frames
    from tasks.config import limit_threads

    candidate = CandidateModel(date=args.date)
    train_days, _ = candidate.windows()
    missing = [d for d in train_days if not FeaturePartition(date=d).output().exists()]
    if missing:
        print(f"mlpipe: no feature partition for {len(missing)} day(s) of the window ({missing[0]}...); run "
              f"`mlpipe backfill --stage features --start {train_days[0]} --end {train_days[-1]}` first",
              file=sys.stderr)
        return 1
    frame = read_frames([FeaturePartition(date=d).output() for d in train_days])
    base = {k: v for k, v in candidate.hyperparameters.__dict__.items() if k != "random_state"}

    @limit_threads
    def run(_):
        return tuning.search(frame, frame["date"], dataset.numeric_features, dataset.categorical_features,
                             dataset.target.name, base, args.trials, families, args.folds, args.seed,
                             candidate.random_state, candidate.max_train_rows, task=dataset.task)
    families = args.families or list(tuning.TASK_FAMILIES[dataset.task])
    try:
        best, trials = run(None)
    except ValueError as exc:  # too few days or one class in a fold: the message says which
        print(f"mlpipe tune: {exc}", file=sys.stderr)
        return 1
    if args.output:
        with open(args.output, "w") as out:
            json.dump({"date": args.date.isoformat(), "best": best, "trials": trials}, out, indent=2)
    print(f"{len(trials)} trial(s), {args.folds} time-ordered folds over {train_days[0]}..{train_days[-1]}")
    score = best["score_name"]
    sign = -1 if HIGHER_IS_BETTER[score] else 1  # best first
    print(f"{'trial':>5}  {'mean ' + score:>12}  {'folds':<26}  model (best first)")
    for t in sorted(trials, key=lambda t: sign * t["mean_" + score]):
        folds = " ".join(f"{v:.3f}" for v in t["fold_" + score])
        print(f"{t['trial']:>5}  {t['mean_' + score]:>12.4f}  {folds:<26}  {t['family']} {json.dumps(t['params'])}")
    if best["family"] == "hgb":
        print("\nthe best as luigi.cfg lines (a new model lineage; see README 'Tuning'):\n[CandidateModel]")
        for key, value in best["params"].items():
            print(f"{key} = {value}")
    else:
        print(f"\nthe best is {best['family']}: set [CandidateModel] tuning_trials and tuning_families "
              f"to let the nightly search pick it")
    return 0


# ---- mlpipe report ------------------------------------------------------------------------------
def cmd_report(args) -> int:
    from pipeline import dashboard, storage as st
    from tasks import ModelMonitoring
    from tasks.base import dataset
    from tasks.config import get_storage

    store, reg = get_storage(), _registry()
    days, missing = [], []
    for day in _days(args.start, args.end):
        target = ModelMonitoring(date=day).output()
        if target.exists():
            days.append(st.read_json(target))
        else:
            missing.append(day.isoformat())
    alias, current = reg.alias(), None
    if alias:
        current = {"version": alias["version"], "manifest": reg.manifest(alias["version"]),
                   "evaluation": json.loads(reg.read_file(alias["version"], "evaluation.json"))}
    page = dashboard.render(args.start, args.end, days, reg.history(), current, missing,
                            dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                            task=dataset.task, row_noun=dataset.row_noun, target_label=dataset.target.label)
    if args.output:
        with open(args.output, "w") as out:
            out.write(page)
        where = args.output
    else:
        target = store.file(store.partition("reports", "monitoring"), f"report_{args.start}_{args.end}.html")
        st.write_text(target, page)
        where = target.path
    print(f"mlpipe report: {len(days)} monitored day(s), {len(missing)} without monitoring output; written to {where}")
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
    parser.add_argument("--dataset", metavar="FILE",
                        help="the dataset description (TOML) to run; default: $MLPIPE_DATASET, else [dataset] path "
                             "in luigi.cfg, else the flights data")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("land-demo", help="deliver the embedded 2013 flights data as daily landing files")
    p.add_argument("--start", type=_date, required=True)
    p.add_argument("--end", type=_date, required=True)
    p.add_argument("--overwrite", action="store_true", help="replace landing files that exist")
    p.set_defaults(func=cmd_land_demo)

    p = sub.add_parser("land-synthetic", help="deliver synthetic daily landing files of any size (scale tests)")
    p.add_argument("--start", type=_date, required=True)
    p.add_argument("--end", type=_date, required=True)
    p.add_argument("--rows-per-day", type=int, required=True, help="flights per day")
    p.add_argument("--seed", type=int, default=0, help="random seed; a day's files depend only on it and the date")
    p.add_argument("--drift-start", type=_date, default=None,
                   help="inject drift from this date on: later departures and longer delays")
    p.add_argument("--drift-shift-minutes", type=int, default=None, help="departures move this much later (default 90)")
    p.add_argument("--drift-delay-minutes", type=float, default=None, help="delays grow by this much (default 20)")
    p.add_argument("--overwrite", action="store_true", help="replace landing files that exist")
    p.set_defaults(func=cmd_land_synthetic)

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

    p = sub.add_parser("tune", help="search hyperparameters on a date's training window (deploys nothing)")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--trials", type=int, default=20, help="candidate models to compare (default 20)")
    p.add_argument("--families", nargs="+", default=None, choices=["hgb", "logreg", "linear"],
                   help="model families to search (default: hgb and logreg for a binary target, hgb and "
                        "linear for regression)")
    p.add_argument("--folds", type=int, default=3, help="time-ordered CV folds (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the candidate draws (default 0)")
    p.add_argument("--output", metavar="FILE", help="also write every trial as JSON to this file")
    p.set_defaults(func=cmd_tune)

    p = _range_command(sub, "report", "one HTML page: realized metrics, drift and deployments over a date range")
    p.add_argument("--output", metavar="FILE", help="write the page to this local file (default: under the "
                                                     "storage root, reports/monitoring/)")
    p.set_defaults(func=cmd_report)

    models = sub.add_parser("models", help="the model registry: list, show, promote, rollback, which")
    msub = models.add_subparsers(dest="models_command", required=True)
    p = msub.add_parser("list", help="published versions, their holdout metric and the dates each served")
    p.set_defaults(func=cmd_models_list)
    p = msub.add_parser("show", help="a version's manifest, file checks and live periods")
    p.add_argument("version", help="a version id, or 'production' for the live one")
    p.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    p.set_defaults(func=cmd_models_show)
    p = msub.add_parser("promote", help="put a published version in production from the next nightly run on")
    p.add_argument("version")
    p.add_argument("--reason", required=True, help="why (kept in the alias history)")
    p.set_defaults(func=cmd_models_promote)
    p = msub.add_parser("rollback", help="go back to the previous production version (or --to VERSION)")
    p.add_argument("--to", metavar="VERSION", help="the version to go back to (default: the one live before)")
    p.add_argument("--reason", required=True, help="why (kept in the alias history)")
    p.set_defaults(func=cmd_models_rollback)
    p = msub.add_parser("which", help="which model version scored (or will score) a date")
    p.add_argument("--date", type=_date, required=True)
    p.set_defaults(func=cmd_models_which)
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
    before = os.environ.get("MLPIPE_DATASET")
    if args.dataset:  # luigi's worker processes inherit it
        os.environ["MLPIPE_DATASET"] = os.path.abspath(args.dataset)
    try:
        code = check_dataset(args.command in ("run", "backfill")) or args.func(args)
    finally:
        if argv is not None:  # a call from Python (tests): leave the environment as it was
            _set_env("MLPIPE_DATASET", before)
    if argv is None:  # the `mlpipe` command itself, not a call from Python
        _exit_now(code)
    return code


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def check_dataset(claim_root: bool) -> int:
    """Load the configured dataset description (a bad one is reported here, before anything
    runs: exit 2). With `claim_root`, the storage root is claimed for it: a root holds one
    dataset, whose name its dataset.json records, since model versions, deployments and the
    production alias are kept per root."""
    from pipeline import storage as st
    from pipeline.dataset import DatasetError
    from tasks.base import current_dataset
    from tasks.config import get_storage

    try:
        ds = current_dataset()
    except DatasetError as exc:
        print(f"mlpipe: {exc}", file=sys.stderr)
        return 2
    if not claim_root:
        return 0
    store = get_storage()
    marker = store.file(store.root, "dataset.json")
    try:
        recorded = st.read_json(marker) if marker.exists() else None
        if recorded is None:
            st.write_json(marker, {"name": ds.name, "description": ds.source})
        elif recorded.get("name") != ds.name:
            print(f"mlpipe: the storage root {store.root} holds dataset '{recorded.get('name')}' (from "
                  f"{recorded.get('description')}), not '{ds.name}' (from {ds.source}): give each dataset its own "
                  "root ([storage] root in luigi.cfg or $MLPIPE_ROOT)", file=sys.stderr)
            return 2
    except (OSError, st.StorageError):
        pass  # storage unreachable: the run's own tasks fail and say so, as without the check
    return 0


def _exit_now(code: int) -> None:
    """Exit with `code` once output is flushed, skipping interpreter teardown: pyarrow's thread
    pools can abort the process there ("terminate called without an active exception", exit 134)
    after the work has succeeded, which cron would report as a failed night."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
