"""`mlpipe quality`, `summary`, `tune` and `report`: what the stored outputs say, printed."""
from __future__ import annotations

import datetime as dt
import json

from pipeline import dashboard, layout
from pipeline import storage as st
from pipeline.estimators import FAMILIES
from pipeline.metrics import HIGHER_IS_BETTER, PROBLEM_METRICS
from tasks import queries
from tasks.commands.common import date_arg, fail, positive_int, range_command, range_problem
from tasks.config import current_dataset, get_storage


def cmd_quality(args) -> int:
    try:
        result = queries.realized(args.start, args.end)
    except queries.QueryError as exc:
        return query_failed(exc)
    print(json.dumps(result, indent=2))
    if result["days_missing"]:
        return fail(f"no stored predictions for {len(result['days_missing'])} day(s): "
                    f"{result['days_missing'][:5]}...; run the nightly pipeline for them first", NOT_RUN_YET)
    return 0


# The exit code of a read-only command asked about a date the pipeline has not run yet.
NOT_RUN_YET = 3
# ...and when what is stored cannot answer it (records that disagree, a registry it cannot read).
STORED_RECORDS_UNUSABLE = 1


def query_failed(exc: queries.QueryError, prefix: str = "") -> int:
    """The one line and exit code of a query that cannot answer: 2 for a date before start_date
    (a mistake), NOT_RUN_YET for outputs not stored yet, STORED_RECORDS_UNUSABLE otherwise."""
    code = (2 if isinstance(exc, queries.DateBeforeStart) else NOT_RUN_YET if isinstance(exc, queries.NotRunYet)
            else STORED_RECORDS_UNUSABLE)
    return fail(prefix + str(exc), code)


def _metrics_line(values: dict | None, problem: str) -> str:
    """Every metric of the problem kind that `values` holds, in PROBLEM_METRICS' order."""
    return ", ".join(f"{k} {values[k]:.4f}" for k in PROBLEM_METRICS[problem] if (values or {}).get(k) is not None)


def cmd_summary(args) -> int:
    try:
        found = queries.day_summary(args.date)
    except queries.WarmUpDay as warmup:
        print(warmup)
        return 0
    except queries.QueryError as exc:
        return query_failed(exc)
    data, record, production = current_dataset(), found["evaluation"], found["production"]
    decision, monitored, served = found["decision"], found["monitoring"]["record"], found["served"]
    print(f"{args.date} ({data.name})")
    if production:
        since = production["since"]
        print(f"in production:        {production['version']}"
              + (f", serving since {since['from']} ({since['kind'].replace('_', ' ')} on "
                 f"{dt.date.fromisoformat(since['from']) - dt.timedelta(days=1)})" if since else ""))
    else:
        print("in production:        no model")
    scored_by = (monitored or {}).get("model_version")
    if scored_by:
        realized = monitored.get("realized") or {}
        print(f"realized on {args.date}: {_metrics_line(realized, data.problem) or 'no outcomes yet'}"
              f"  ({realized.get('rows_with_outcome', 0)} {data.row_noun}, scored by {scored_by})")
        if served and served["days"] > 1:
            print(f"realized since {served['from']}: daily mean {_metrics_line(served['daily_mean'], data.problem)}"
                  f"  ({served['days']} days)")
        print(f"monitoring alerts:    {'; '.join(monitored.get('alerts') or []) or 'none'}")
    elif monitored is not None:
        print(f"realized on {args.date}: nothing scored ({monitored.get('note', 'no model in production')})")
    outcome = (f"deployed {production['version']}" if decision["action"] != "kept" and production
               else f"kept {decision['before'] or 'no model'}")
    print(f"decision of {args.date}: {outcome}: the challenger was "
          f"{'blessed' if decision['blessed'] else 'rejected'}:")
    for reason in decision["reasons"]:
        print(f"  - {reason}")
    for who in ("challenger", "production"):
        m = record.get(who)
        if m:
            print(f"{who + ' holdout:':<22}{_metrics_line(m, data.problem)}  ({m['rows']} rows)")
    print("paths:")
    print(f"  storage root:         {found['storage_root']}")
    print(f"  deployment decision:  {decision['path']}")
    if production:
        print(f"  production model:     {production['model']}")
    print(f"  evaluation report:    {found['report']}")
    print(f"  monitoring output:    {found['monitoring']['path']}")
    return 0


def cmd_tune(args) -> int:
    """A larger search than the nightly one, on the training window of --date; prints the trials
    ranked and the luigi.cfg lines of the best. Nothing is deployed."""
    try:
        found = queries.tuning_search(args.date, args.trials, args.families, args.folds, args.seed)
    except queries.QueryError as exc:
        return query_failed(exc, "tune: ")
    best, trials, train_days = found["best"], found["trials"], found["train_days"]
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
        print("\nthe best as luigi.cfg lines (a new model lineage; see docs/model-lifecycle.md):\n[CandidateModel]")
        for key, value in best["params"].items():
            print(f"{key} = {value}")
    else:
        print(f"\nthe best is {best['family']}: set [CandidateModel] tuning_trials and tuning_families "
              f"to let the nightly search pick it")
    return 0


def cmd_report(args) -> int:
    try:
        found = queries.monitoring_days(args.start, args.end)
    except queries.QueryError as exc:
        return fail(str(exc))
    data = current_dataset()
    page = dashboard.render(args.start, args.end, found["days"], found["events"], found["current"], found["missing"],
                            dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                            problem=data.problem, row_noun=data.row_noun, target_label=data.target.label)
    if args.output:
        with open(args.output, "w") as out:
            out.write(page)
        where = args.output
    else:
        store = get_storage()
        target = store.file(store.partition("reports", "monitoring"), layout.monitoring_report_file(args.start, args.end))
        st.write_text(target, page)
        where = target.path
    print(f"mlpipe report: {len(found['days'])} monitored day(s), {len(found['missing'])} without monitoring output; "
          f"written to {where}")
    return 0


def add_parsers(sub) -> None:
    p = range_command(sub, "quality", "realized metrics of the stored predictions over a date range")
    p.set_defaults(func=cmd_quality)

    p = sub.add_parser("summary", help="where a date's artifacts are, and the model's metrics")
    p.add_argument("--date", type=date_arg, required=True, metavar="YYYY-MM-DD", help="the day whose run to show")
    p.set_defaults(func=cmd_summary, check=lambda args: range_problem(args.date, args.date, what="--date"))

    p = sub.add_parser("tune", help="search hyperparameters on a date's training window (deploys nothing)")
    p.add_argument("--date", type=date_arg, required=True, metavar="YYYY-MM-DD",
                   help="the day whose training window to search on")
    p.add_argument("--trials", type=positive_int, default=20, help="candidate models to compare (default 20)")
    p.add_argument("--families", nargs="+", default=None, choices=sorted({f for fs in FAMILIES.values() for f in fs}),
                   help="model families to search (default: hgb and logreg for a binary target, hgb and "
                        "linear for regression)")
    p.add_argument("--folds", type=positive_int, default=3, help="time-ordered CV folds (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the candidate draws (default 0)")
    p.add_argument("--output", metavar="FILE", help="also write every trial as JSON to this file")
    p.set_defaults(func=cmd_tune)

    p = range_command(sub, "report", "one HTML page: realized metrics, drift and deployments over a date range")
    p.add_argument("--output", metavar="FILE", help="write the page to this local file (default: under the "
                                                     "storage root, reports/monitoring/)")
    p.set_defaults(func=cmd_report)
