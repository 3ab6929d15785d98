"""`mlpipe verify [--start D1 --end D2] [--stage S] [--repair]`: every complete output's files
against the sizes and sha256 their seals record, flags without their data and stray temporary
files; `--repair` removes what is corrupt and everything built from it, for the next run to
rebuild (the raw zone from the landing files, which are never modified)."""
from __future__ import annotations

from pipeline import verify
from tasks import integrity, ops
from tasks.commands.common import date_arg, leased, range_problem, stage_arg
from tasks.config import PipelineConfig, get_storage


@leased("manual_wait", when=lambda args: args.repair)
def cmd_verify(args) -> int:
    start, end = _range(args)
    stages = (args.stage,) if args.stage else integrity.VERIFY_STAGES
    checked, problems = integrity.find_problems(start, end, stages)
    for p in problems:
        print(f"{p['kind']:<10}  {p['stage']:<11}  {p['date'] or '-'!s:<10}  {p['message']}")
    serious = [p for p in problems if p["kind"] != verify.UNRECORDED]
    print(f"mlpipe verify {start}..{end} ({', '.join(stages)}): {checked} output(s) checked, "
          f"{len(serious)} problem(s)")
    if not serious:
        return 0
    paths = integrity.repair_paths(serious)
    if not args.repair:
        print(f"nothing changed: `mlpipe verify --start {start} --end {end}"
              + (f" --stage {args.stage}" if args.stage else "")
              + f" --repair` removes {len(paths)} path(s) (what is corrupt and everything built from it; "
              "the landing files are kept), then a run rebuilds them")
        return ops.VERIFY_PROBLEMS
    store = get_storage()
    for path in paths:
        print(f"  removing {path}")
        store.remove(path)
    print(f"removed {len(paths)} path(s); `mlpipe backfill --start {start} --end {end}` rebuilds them")
    return 0


def _range(args) -> tuple:
    start = args.start or PipelineConfig().start_date
    return start, args.end or ops.last_day_with_outputs() or start


def add_parsers(sub) -> None:
    p = sub.add_parser("verify", help="check stored outputs against their recorded checksums (--repair: remove "
                                      "what is corrupt so the next run rebuilds it)")
    p.add_argument("--start", type=date_arg, default=None, metavar="YYYY-MM-DD",
                   help="the first day to check (default: [pipeline] start_date)")
    p.add_argument("--end", type=date_arg, default=None, metavar="YYYY-MM-DD",
                   help="the last day to check, inclusive (default: the last day with outputs)")
    p.add_argument("--stage", type=stage_arg(integrity.VERIFY_STAGES), default=None, metavar="STAGE",
                   help=f"check one stage only: one of {', '.join(integrity.VERIFY_STAGES)} (default: all of them; "
                        "ingest is the raw zone)")
    p.add_argument("--repair", action="store_true",
                   help="remove corrupt outputs and everything downstream, and stray temporary files")
    p.set_defaults(func=cmd_verify, check=lambda args: range_problem(*_range(args)))
