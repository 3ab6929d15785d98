"""`mlpipe models list|show|promote|rollback|sign|which`: the model registry from the command line."""
from __future__ import annotations

import json

from pipeline import registry
from pipeline.metrics import HEADLINE_METRIC
from pipeline.storage_errors import StorageError
from tasks import notify, queries
from tasks.commands.common import (USAGE, date_arg, fail, leased, range_problem, version_arg,
                                   version_or_production_arg)
from tasks.commands.reports import query_failed
from tasks.config import current_dataset, get_storage, model_registry
from tasks.model import move_production
from tasks.ops import VERIFY_PROBLEMS


def _metric(metrics: dict | None, name: str) -> str:
    value = (metrics or {}).get(name)
    return "-" if value is None else f"{value:.4f}"


def cmd_models_list(args) -> int:
    versions = queries.model_versions()
    if not versions:
        print(f"no published model versions under {model_registry().base}")
        return 0
    metric = HEADLINE_METRIC[current_dataset().problem]
    print(f"{'version':<24}{'as of':<12}{'rows trained':>13}{'holdout ' + metric:>17}  served (dates)")
    for v in versions:
        m = v["manifest"]
        print(f"{v['version']:<24}{m.get('as_of', '-'):<12}{m.get('rows_trained', '-'):>13}"
              f"{_metric(m.get('metrics'), metric):>17}  {', '.join(v['served']) or 'never'}"
              + ("  <- production" if v["live"] else ""))
    return 0


def cmd_models_show(args) -> int:
    try:
        found = queries.model_details(args.version)
    except queries.QueryError as exc:
        return query_failed(exc)
    manifest, checks, signature = found["manifest"], found["checks"], found["signature"]
    if args.json:
        print(json.dumps(manifest, indent=2, sort_keys=True))
        return 0
    gate, tuning = manifest.get("gate") or {}, manifest.get("tuning") or {}
    print(f"version:          {found['version']}  ({found['directory']})")
    print(f"as of:            {manifest.get('as_of')}  trained {manifest.get('trained_at')}")
    print(f"model:            {manifest.get('family', 'hgb')} {json.dumps(manifest.get('model_params') or {})}")
    print(f"training window:  {manifest['train_days'][0]}..{manifest['train_days'][-1]} "
          f"({manifest.get('rows_trained')} rows); holdout {', '.join(manifest['holdout_days'])}")
    print("holdout metrics:  " + ", ".join(f"{k} {v:.4f}" for k, v in (manifest.get("metrics") or {}).items()
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
    print(f"signature:        {describe_signature(signature, found['version'])}")
    for period in found["periods"]:
        print(f"{period['kind']:<17} serving {period['from']}..{period['to'] or 'now'}"
              f"{'' if period['served'] else ' (replaced the same day: never served)'}; by {period['moved_by']}: "
              f"{period['reason']}")
    return 0 if all(state == "ok" for state in checks.values()) and signature["valid"] else VERIFY_PROBLEMS


def describe_signature(state: dict, version: str) -> str:
    if not state["signed"]:
        return f"NOT SIGNED: it will not load; check it, then `mlpipe models sign {version}`"
    by = state.get("signed_by") or {}
    when = f" by {by.get('os_user')} on {by.get('host')}" if by.get("os_user") else ""
    if state["valid"]:
        return f"ok, signed by key {state['key_id']}{when}"
    return f"INVALID ({state['problem']}); signed by key {state['key_id']}{when}"


@leased("manual_wait")
def cmd_models_sign(args) -> int:
    reg = model_registry()
    for version in args.versions:
        try:
            signed = reg.sign(version)
        except registry.RegistryError as exc:
            return refused(exc)
        print(f"{version}: {'signed' if signed else 'already signed'} by key {reg.signature(version)['key_id']}")
    return 0


def refused(exc: registry.RegistryError) -> int:
    """The one line of a registry change refused: exit 60 (verify_problems) for a version whose files
    or signature do not check out, else 2 (a version not published, an alias moved meanwhile)."""
    return fail(str(exc), VERIFY_PROBLEMS if isinstance(exc, registry.VersionCorrupt) else USAGE)


def _move(kind: str, version: str, reason: str) -> int:
    try:
        record = move_production(get_storage(), version, kind, reason)
    except registry.RegistryError as exc:
        return refused(exc)
    print(f"production is now {record['version']} (was {record['previous_version']}), {kind.replace('_', ' ')} by "
          f"{registry.mover(record)}: {reason}\nit serves the dates after {record['as_of']}: the next nightly run "
          f"scores with it and compares its challenger with it")
    notify.send(kind, version=record["version"], previous_version=record["previous_version"], reason=reason,
                who=registry.mover(record))
    return 0


@leased("manual_wait")
def cmd_models_promote(args) -> int:
    return _move("promoted", args.version, args.reason)


@leased("manual_wait")
def cmd_models_rollback(args) -> int:
    try:
        version = args.to or model_registry().rollback_target()
    except registry.RegistryError as exc:
        return fail(str(exc))
    return _move("rolled_back", version, args.reason)


def cmd_models_which(args) -> int:
    """Which version served a date: from the predictions' own record, else from the decisions.
    Exit 0 with an answer (a version, or "no model in production on D: why"), 2 for a date
    before start_date, 3 (NOT_RUN_YET) when the decision it needs is not stored yet."""
    try:
        found = queries.which(args.date)
    except queries.QueryError as exc:
        return query_failed(exc)
    if found["version"] is None:
        print(f"no model in production on {args.date}: {found['why']}")
    elif found["scored"]:
        print(f"{args.date}: {found['version']} (scored it; recorded in {found['recorded_in']})")
    else:
        print(f"{args.date}: {found['version']} (in production for it by the decision of {found['decided_on']}; "
              "not scored yet)")
    return 0


def unpublished(*versions: str | None) -> str | None:
    """The first of `versions` (None and 'production' left out) not published in the registry, as the
    line to print; None when all are (or the registry cannot be read: the command reports that)."""
    reg = model_registry()
    for version in versions:
        try:
            if version not in (None, "production") and not reg.is_published(version):
                return (f"model version {version} is not published in {reg.base}; `mlpipe models list` shows the "
                        "published ones")
        except (OSError, registry.RegistryError, StorageError):
            return None
    return None


def add_parsers(sub) -> None:
    models = sub.add_parser("models", help="the model registry: list, show, sign, promote, rollback, which")
    msub = models.add_subparsers(dest="models_command", required=True)
    p = msub.add_parser("list", help="published versions, their holdout metric and the dates each served")
    p.set_defaults(func=cmd_models_list)
    p = msub.add_parser("show", help="a version's manifest, file checks and live periods")
    p.add_argument("version", type=version_or_production_arg, help="a version id, or 'production' for the live one")
    p.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    p.set_defaults(func=cmd_models_show, check=lambda args: unpublished(args.version))
    p = msub.add_parser("promote", help="put a published version in production from the next nightly run on")
    p.add_argument("version", type=version_arg, help="the published version to serve, e.g. 20130115-3f9a0c12de")
    p.add_argument("--reason", required=True, help="why (kept in the alias history)")
    p.set_defaults(func=cmd_models_promote)  # move_production refuses an unpublished version, under the lease
    p = msub.add_parser("rollback", help="go back to the previous production version (or --to VERSION)")
    p.add_argument("--to", metavar="VERSION", type=version_arg,
                   help="the version to go back to (default: the one live before)")
    p.add_argument("--reason", required=True, help="why (kept in the alias history)")
    p.set_defaults(func=cmd_models_rollback)
    p = msub.add_parser("sign", help="sign a version published before versions were signed, after checking its "
                                     "files against its manifest")
    p.add_argument("versions", nargs="+", metavar="VERSION", type=version_arg, help="the published versions to sign")
    p.set_defaults(func=cmd_models_sign, check=lambda args: unpublished(*args.versions))
    p = msub.add_parser("which", help="which model version scored (or will score) a date")
    p.add_argument("--date", type=date_arg, required=True, metavar="YYYY-MM-DD", help="the day that was scored")
    p.set_defaults(func=cmd_models_which, check=lambda args: range_problem(args.date, args.date, what="--date"))
