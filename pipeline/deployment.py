"""Deployment decisions: what the nightly decision for a day is, which registry version is live for
a day, publishing a blessed challenger and moving the production alias, and the manual promote
and rollback an operator makes between nightly runs."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pipeline import layout
from pipeline.registry import MANUAL_KINDS, AliasRead, Registry, RegistryError, version_id


def decide(date: dt.date, evaluation: dict, before: str | None, lineage: str) -> dict:
    """The deployment decision for `date`, given the evaluation and the version that was live
    before `date` (`before`: the previous decision's, or a later manual promote/rollback)."""
    blessed = bool(evaluation["decision"]["blessed"])
    return {
        "date": date.isoformat(),
        "lineage": lineage,
        "blessed": blessed,
        "action": "deployed" if blessed else "kept",
        "challenger_id": evaluation.get("challenger_id"),
        "candidate_version": version_id(date, lineage) if blessed else None,
        "production_version_before": before,
        "production_version": version_id(date, lineage) if blessed else before,
        "reasons": evaluation["decision"]["reasons"],
        "comparison": evaluation["decision"].get("comparison"),
        "metrics": {"challenger": evaluation["challenger"], "production": evaluation.get("production")},
    }


def live_version(registry: Registry, date: dt.date, previous_decision: dict | None,
                 seen: AliasRead | None = None) -> str | None:
    """The registry version in production for `date`: the one chosen by the deployment decision
    of the day before (`previous_decision`, None before the first one), unless a manual promote
    or rollback was recorded after that decision. `seen`: the production alias as the caller read
    it (read here when None); a manual move after the day before's decision counts from the
    moment it moved the alias, before its override record is written."""
    after = date - dt.timedelta(days=1)
    alias = (seen or registry.read_alias()).record
    if alias and alias.get("kind") in MANUAL_KINDS and alias["as_of"] == after.isoformat():
        return alias["version"]
    override = registry.override_after(after)
    if override:
        return override["version"]
    return previous_decision["production_version"] if previous_decision else None


def check_compared_with_live(date: dt.date, live: str | None, compared: str | None) -> None:
    """Refuse a decision whose evaluation compared the challenger with another model than the one
    live now: a promote or rollback came in between, and the comparison no longer holds."""
    if live != compared:
        raise RegistryError(
            f"the production model for {date} is now {live}, but the evaluation compared the "
            f"challenger with {compared} (a promote or rollback came in between); rerun the evaluation: "
            f"mlpipe invalidate --stage evaluate --start {date} --end {date} --yes")


def publish(registry: Registry, decision: dict, files: dict[str, bytes], manifest: dict,
            seen: AliasRead | None = None) -> None:
    """Publish a blessed challenger's `files` (the model, its evaluation and report) as the
    decision's version and move the production alias to it. `seen`: the read of the alias the
    decision was checked against (check_compared_with_live); the move fails (AliasMoved) when a
    promote or rollback moved the alias since, instead of overwriting it."""
    registry.publish(decision["production_version"], files, manifest)
    registry.move_alias(decision["production_version"], dt.date.fromisoformat(decision["date"]),
                        reason="; ".join(decision["reasons"]), seen=seen)


def last_decided(decision_paths: Iterable[str]) -> dt.date | None:
    """The latest date among the stored deployment decisions (the paths under their prefix). Only
    a sealed decision counts, not a file a worker killed before the seal left behind."""
    days = [layout.date_in(p) for p in decision_paths if p.endswith("/" + layout.SUCCESS)]
    days = [d for d in days if d is not None]
    return max(days) if days else None


def move_production(registry: Registry, version: str, kind: str, reason: str,
                    last_decision: dt.date | None, first_deploy_date: dt.date) -> dict:
    """A manual promote or rollback: production becomes `version` for every date after the last
    date with a deployment decision (`last_decision`; before the first deploy date when there is
    none), so the next nightly run scores with it and compares its challenger with it. Returns
    the history record."""
    after = last_decision or first_deploy_date - dt.timedelta(days=1)
    return registry.override(version, after, kind, reason)
