"""Data collection and storage: landing files, typed raw partitions, validated clean partitions.

Each raw partition records which delivery of its landing file it was parsed from (path, size,
sha256: `landing.json` beside it) and the validation report repeats the sha256. A landing file
re-delivered with other content is parsed again only while nothing was built from the earlier
delivery; once its day was validated, the change fails the day's CleanPartition with the
`mlpipe invalidate` command that reprocesses it (with `[landing] redelivery = reprocess`, `mlpipe
run` and `backfill` reprocess the day first: tasks.ops.reprocess_redelivered), so old and new
data are never mixed."""
from __future__ import annotations

import luigi

from pipeline import identifiers, ingest, readiness, validate
from pipeline import storage as st
from pipeline.contracts import ContractViolation
from pipeline.hashing import sha256_bytes
from pipeline.layout import (HISTORY_SUMMARY_FILE, LANDING_RECORD, PART_FILE, SNAPSHOT_FILE,
                             VALIDATION_REPORT)
from tasks.base import DailyTask, Sealed, StorageMixin, days_back, set_status
from tasks.config import PipelineConfig, current_dataset
from tasks.threads import limit_threads

RECENT_DAYS = 7


class LandingFileChanged(RuntimeError):
    """A landing file was re-delivered with other content after its day had been validated."""


def _contract(table: str, reference: bool = False):
    data = current_dataset()
    tables = data.reference_tables if reference else data.daily_tables
    if table not in tables:
        raise ValueError(f"unknown {'reference' if reference else 'daily'} table {table!r}; "
                         f"known: {sorted(tables)}")
    return tables[table]


class TableParameter(luigi.Parameter):
    """A table name of the dataset description, refused (ValueError naming it and the rule) when it
    could not safely name a storage path (pipeline.identifiers.check_name)."""

    def normalize(self, x):
        return identifiers.check_name("table", x)


class LandingFile(StorageMixin, luigi.ExternalTask):
    """A file the upstream system drops into the landing zone; never written by the pipeline. It
    counts as delivered once it is whole by its table's readiness rule ([tables.<table>] ready in
    the dataset description: unchanged for a while, a done-marker beside it, or a manifest it
    matches), so a file still being copied is not ingested."""
    table = TableParameter(description="Table name of the dataset description, e.g. flights")
    date = luigi.OptionalParameter(default=None, description="Day of the drop; empty for reference tables")

    def landing_path(self) -> str:
        """The file's path relative to the landing zone."""
        day = luigi.DateParameter().parse(self.date) if self.date else None
        return current_dataset().landing_path(self.table, day)

    def output(self):
        return self.store.target(self.store.landing_path(self.landing_path()))

    def delivery(self) -> readiness.Readiness:
        """Whether the file counts as delivered by its table's readiness rule, and why (not)."""
        rule = current_dataset().readiness_rule(self.table)
        beside = rule.companion(self.landing_path())
        companion = self.store.target(self.store.landing_path(beside)) if beside is not None else None
        return readiness.check(rule, self.output(), companion)

    def complete(self):
        state = self.delivery()
        if not state.ready:
            luigi.worker.logger.warning("%s is not delivered yet: %s", self, state.reason)
        return state.ready

    def not_ready_reason(self) -> str | None:
        """Why the landing file does not count as delivered yet (None when it does)."""
        state = self.delivery()
        return None if state.ready else state.reason


class _Ingest(Sealed):
    """A raw partition's directory: the typed Parquet file (data()), the record of the delivery it
    was parsed from, and the seal over both."""
    data_file = PART_FILE

    def data(self):
        return self.file(self.data_file)

    def record_target(self):
        return self.file(LANDING_RECORD)

    def landing_record(self) -> dict | None:
        """Which delivery of the landing file the stored partition was parsed from, if recorded."""
        target = self.record_target()
        return st.read_json(target) if self.output().exists() and target.exists() else None

    def ingest(self, reference: bool) -> None:
        source = self.input().path
        stamp = st.stamp(self.input())  # before reading: a file replaced meanwhile shows a newer stamp
        set_status(self, f"reading {source}", 5)
        data = st.read_bytes(self.input())
        set_status(self, f"parsing {len(data):,} bytes of {source}", 20)
        frame = ingest.parse_landing(data, source, _contract(self.table, reference), current_dataset().formats[self.table])
        record = {**ingest.landing_record(data, source), "stamp": stamp, "rows": len(frame),
                  "rows_with_parse_errors": int(frame[ingest.PARSE_ERRORS].notna().sum())}
        previous = self.landing_record()
        if previous and previous["sha256"] != record["sha256"]:
            earlier = {k: v for k, v in previous.items() if k != "replaces"}
            record["replaces"] = [earlier] + previous.get("replaces", [])
        set_status(self, f"writing {len(frame)} parsed rows", 80)
        written = {self.data(): st.write_parquet(self.data(), frame)}
        written[self.record_target()] = st.write_json(self.record_target(), record)
        self.seal(written)  # last: a partition without it is parsed again
        set_status(self, f"{len(frame)} rows ingested from {source} (sha256 {record['sha256'][:12]})"
                   + (f", replacing the delivery {previous['sha256'][:12]}" if "replaces" in record else ""), 100)


def delivered_sha256(landing, sha256: str, stamp: str | None) -> str | None:
    """The sha256 of the landing file now (None when it is gone), given the `sha256` and `stamp`
    recorded when it was parsed. Its stamp (size + mtime or ETag, one metadata request) answers
    when it matches the recorded one; only a file written again since is read and hashed, so
    checks stay cheap at any file size."""
    now = st.stamp(landing)
    if now is None:
        return None
    if stamp is not None and now == stamp:
        return sha256
    return sha256_bytes(st.read_bytes(landing))


class RawPartition(_Ingest, DailyTask):
    """A day's landing file as typed Parquet in the raw zone, with the record of the delivery it
    was parsed from. Parsed again only while the day has no clean partition and the landing
    file's content differs from the record (a re-delivery after a failed validation, or after
    `mlpipe invalidate --stage validate`)."""
    table = TableParameter(description="Daily table name, e.g. flights or weather")

    def requires(self):
        return LandingFile(table=self.table, date=self.date.isoformat())

    def directory(self) -> str:
        return self.store.partition("raw", self.table, self.date)

    def complete(self):
        if not self.output().exists():
            return False
        if CleanPartition(table=self.table, date=self.date).output().exists():
            return True  # validated: a later re-delivery is reported by CleanPartition, not parsed
        recorded = self.landing_record()
        if recorded is None:
            return False
        return delivered_sha256(self.input(), recorded["sha256"], recorded.get("stamp")) in (None, recorded["sha256"])

    @limit_threads(openmp=False)
    def run(self):
        self.ingest(reference=False)


class RawReference(_Ingest, luigi.Task):
    """A reference table (e.g. aircraft) as typed Parquet in the raw zone."""
    table = TableParameter(description="Reference table name, e.g. planes")

    def requires(self):
        return LandingFile(table=self.table)

    data_file = SNAPSHOT_FILE

    def directory(self) -> str:
        return self.store.partition("raw", self.table)

    @limit_threads(openmp=False)
    def run(self):
        self.ingest(reference=True)


class _Validate:
    def outputs(self, date):
        s = self.store
        return {"clean": s.file(s.partition("clean", self.table, date), PART_FILE),
                "quarantine": s.file(s.partition("quarantine", self.table, date), PART_FILE),
                "report": s.file(s.partition("validation", self.table, date), VALIDATION_REPORT),
                "summary": s.file(s.partition("clean", self.table, date), HISTORY_SUMMARY_FILE),
                "flag": s.flag(s.partition("clean", self.table, date))}

    def validate(self, date, reference: bool, recent: list[int] | None) -> None:
        raw = self.requires().data()
        out = self.outputs(date)
        set_status(self, f"checking the rows of {self.table} against its contract", 10)
        try:
            result = validate.validate_table(st.read_parquet(raw), _contract(self.table, reference),
                                             source=self.requires().input().path, date=date,
                                             recent_row_counts=recent)
        except ContractViolation as exc:
            set_status(self, f"FAILED contract: {exc}")
            raise
        set_status(self, f"writing {len(result.clean)} clean and {len(result.quarantine)} quarantined rows", 70)
        record = self.requires().landing_record() or {}
        report = {**result.report, "landing_sha256": record.get("sha256"), "landing_bytes": record.get("bytes"),
                  "landing_stamp": record.get("stamp")}
        written = {out["quarantine"]: st.write_parquet(out["quarantine"], result.quarantine),
                   out["report"]: st.write_json(out["report"], report),
                   out["clean"]: st.write_parquet(out["clean"], result.clean)}
        summary = current_dataset().stored_history(self.table, result.clean, date)
        if summary is not None:
            written[out["summary"]] = st.write_parquet(out["summary"], summary)
        st.seal(out["flag"], written)
        r = result.report
        by_rule = ", ".join(f"{rule}: {n}" for rule, n in r["quarantined_by_rule"].items())
        set_status(self, f"{r['rows_in']} rows in, {r['rows_clean']} clean, {r['rows_quarantined']} quarantined"
                         + (f" ({by_rule})" if by_rule else "")
                         + (f"; WARNING {'; '.join(map(str, r['warnings']))}" if r["warnings"] else ""), 100)


class CleanPartition(DailyTask, _Validate):
    """A day's rows that meet the table's data contract (+ quarantine and a validation report)."""
    table = TableParameter(description="Daily table name, e.g. flights or weather")

    def requires(self):
        return RawPartition(table=self.table, date=self.date)

    def output(self):
        return self.outputs(self.date)["flag"]

    def recent_row_counts(self) -> list[int]:
        counts = []
        for day in days_back(self.date, RECENT_DAYS, PipelineConfig().start_date):
            report = self.outputs(day)["report"]
            if report.exists():
                counts.append(st.read_json(report)["rows_in"])
        return counts

    def clean_target(self):
        return self.outputs(self.date)["clean"]

    def history_summary(self):
        """The day as later days' features see it in their history (Dataset.history_rows): its
        summary when the dataset summarizes days (stored beside the clean rows; computed from them
        for a partition validated before summaries were stored), else its rows."""
        data, target = current_dataset(), self.outputs(self.date)["summary"]
        if data.history_summary and target.exists():
            return st.read_parquet(target)
        clean = st.read_parquet(self.clean_target(), columns=data.history_load_columns())
        return data.history_rows(clean, self.date)

    def delivery_change(self) -> tuple[str, str] | None:
        """(sha256 the day was validated from, sha256 of the landing file now) when the landing
        file was re-delivered with other content after validation; None when it was not (or
        when either is unknown: no report, a report from before checksums, no landing file)."""
        report = self.outputs(self.date)["report"]
        if not report.exists():
            return None
        recorded = st.read_json(report)
        validated = recorded.get("landing_sha256")
        landing = self.requires().input()
        current = delivered_sha256(landing, validated, recorded.get("landing_stamp")) if validated else None
        return None if current in (None, validated) else (validated, current)

    def complete(self):
        return super().complete() and self.delivery_change() is None

    @limit_threads(openmp=False)
    def run(self):
        change = self.delivery_change()
        if change:
            day = self.date.isoformat()
            message = (
                f"landing file {self.requires().input().path} was re-delivered with different content "
                f"after {day} was validated: the day's clean data and everything built from it come from "
                f"the delivery with sha256 {change[0]}, the file now has sha256 {change[1]}. Nothing was "
                f"mixed or replaced. To use the new delivery, reprocess the day: `mlpipe invalidate "
                f"--stage validate --start {day} --end {day} --yes` (it removes {self.table} and every "
                f"other clean table of {day} and everything downstream; the next run parses the new "
                f"file into the raw zone again), then rerun; if the re-delivery is a mistake, put the "
                f"earlier file back instead. With [landing] redelivery = reprocess in luigi.cfg, `mlpipe run` "
                f"and `mlpipe backfill` do this themselves")
            set_status(self, f"FAILED: {message}")
            raise LandingFileChanged(message)
        self.validate(self.date, reference=False, recent=self.recent_row_counts())


class CleanReference(StorageMixin, luigi.Task, _Validate):
    """The reference table's rows that meet its contract."""
    table = TableParameter(description="Reference table name, e.g. planes")

    def requires(self):
        return RawReference(table=self.table)

    def output(self):
        return self.outputs(None)["flag"]

    def clean_target(self):
        return self.outputs(None)["clean"]

    @limit_threads(openmp=False)
    def run(self):
        self.validate(None, reference=True, recent=None)
