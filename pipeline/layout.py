"""Where everything lives under the storage root: the one path pattern
`{layer}/{name}[/h={lineage}][/date=YYYY-MM-DD]` and the name of every file the pipeline writes.
Luigi-free; pipeline.storage joins these onto a root and turns them into targets."""
from __future__ import annotations

import datetime as dt

# The flag a multi-file output writes last; it alone marks the output complete.
SUCCESS = "_SUCCESS"

# The file of each output, one constant each.
PART_FILE = "part-0.parquet"              # raw, clean, quarantine, features, predictions
SNAPSHOT_FILE = "snapshot.parquet"        # a reference table's raw snapshot
LANDING_RECORD = "landing.json"           # which delivery a raw partition was parsed from
HISTORY_SUMMARY_FILE = "summary.parquet"  # a clean day as later days' features see it
VALIDATION_REPORT = "report.json"
MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"           # a candidate model's training metadata
EVALUATION_FILE = "evaluation.json"
REPORT_FILE = "report.html"               # the evaluation report
DECISION_FILE = "decision.json"
MONITORING_FILE = "monitoring.json"
MANIFEST_FILE = "manifest.json"           # a registry version's file list and checksums
SIGNATURE_SUFFIX = ".sig"                 # beside a signed record: manifest.json.sig, metadata.json.sig
ALIAS_FILE = "production.json"            # the registry's production alias
DATASET_MARKER = "dataset.json"           # which dataset a storage root holds
LEASE_FILE = "_lease.json"                # who holds the storage root (pipeline.lease)

# The registry's place under the root, and its folders.
REGISTRY = "registry"
VERSIONS, HISTORY, OVERRIDES = "versions", "history", "overrides"

_DATE = "date="


def partition(layer: str, name: str, date: dt.date | None = None, lineage: str | None = None) -> list[str]:
    """The parts of `{layer}/{name}[/h={lineage}][/date=YYYY-MM-DD]`: the one path pattern."""
    parts = [layer, name]
    if lineage:
        parts.append(f"h={lineage}")
    if date is not None:
        parts.append(f"{_DATE}{date.isoformat()}")
    return parts


def run_summary_file(stamp: str) -> str:
    """The name of one run's JSON summary (`stamp`: when it started, UTC, YYYYmmddTHHMMSSZ)."""
    return f"run-{stamp}.json"


NIGHT_SUMMARY_FILE = "night.json"  # beside them: the summary of the date's last run that ran something


def monitoring_report_file(start: dt.date, end: dt.date) -> str:
    return f"report_{start}_{end}.html"


def undated(path: str) -> str:
    """`path` up to its `/date=` part: what the same output of every date shares."""
    return path.split("/" + _DATE)[0]


def date_in(path: str) -> dt.date | None:
    """The date of the `date=YYYY-MM-DD` part of `path`, None when it has none."""
    if "/" + _DATE not in path:
        return None
    return dt.date.fromisoformat(path.split("/" + _DATE, 1)[1].split("/", 1)[0])


def with_date(path: str, old: dt.date, new: dt.date) -> str | None:
    """`path` of date `old` as the same output's path of date `new`; None when `path` does not
    hold its date exactly once."""
    marker = f"{_DATE}{old.isoformat()}"
    if path.count(marker) != 1:
        return None
    return path.replace(marker, f"{_DATE}{new.isoformat()}")


def signature_file(name: str) -> str:
    """The name of the signature beside the signed record `name` (pipeline.signing)."""
    return name + SIGNATURE_SUFFIX
