"""Data collection and storage: landing files, typed raw partitions, validated clean partitions."""
from __future__ import annotations

import luigi

from pipeline import ingest, validate
from pipeline.contracts import ContractViolation
from pipeline.landing import landing_file
from tasks.base import DailyTask, StorageMixin, dataset, days_back, pipeline, st

RECENT_DAYS = 7


def _contract(table: str, reference: bool = False):
    tables = dataset.REFERENCE_TABLES if reference else dataset.DAILY_TABLES
    if table not in tables:
        raise ValueError(f"unknown {'reference' if reference else 'daily'} table {table!r}; "
                         f"known: {sorted(tables)}")
    return tables[table]


class LandingFile(StorageMixin, luigi.ExternalTask):
    """A file the upstream system drops into the landing zone; never written by the pipeline."""
    table = luigi.Parameter(description="Table name, e.g. flights")
    date = luigi.OptionalParameter(default=None, description="Day of the drop; empty for reference tables")

    def output(self):
        day = luigi.DateParameter().parse(self.date) if self.date else None
        return self.store.target(landing_file(self.store.landing, self.table, day))


class _Ingest:
    def ingest(self, reference: bool) -> None:
        source = self.input().path
        frame = ingest.parse_landing_file(st.read_bytes(self.input()), source, _contract(self.table, reference))
        st.write_parquet(self.output(), frame)
        self.set_status_message(f"{len(frame)} rows ingested from {source}")


class RawPartition(DailyTask, _Ingest):
    """A day's landing file as typed Parquet in the raw zone (immutable once written)."""
    table = luigi.Parameter(description="Daily table name, e.g. flights or weather")

    def requires(self):
        return LandingFile(table=self.table, date=self.date.isoformat())

    def output(self):
        return self.store.file(self.store.partition("raw", self.table, self.date), "part-0.parquet")

    def run(self):
        self.ingest(reference=False)


class RawReference(StorageMixin, luigi.Task, _Ingest):
    """A reference table (e.g. aircraft) as typed Parquet in the raw zone."""
    table = luigi.Parameter(description="Reference table name, e.g. planes")

    def requires(self):
        return LandingFile(table=self.table)

    def output(self):
        return self.store.file(self.store.partition("raw", self.table), "snapshot.parquet")

    def run(self):
        self.ingest(reference=True)


class _Validate:
    def outputs(self, date):
        s = self.store
        return {"clean": s.file(s.partition("clean", self.table, date), "part-0.parquet"),
                "quarantine": s.file(s.partition("quarantine", self.table, date), "part-0.parquet"),
                "report": s.file(s.partition("validation", self.table, date), "report.json"),
                "flag": s.flag(s.partition("clean", self.table, date))}

    def validate(self, date, reference: bool, recent: list[int] | None) -> None:
        raw = self.input()
        out = self.outputs(date)
        try:
            result = validate.validate_table(st.read_parquet(raw), _contract(self.table, reference),
                                             source=self.requires().input().path, date=date,
                                             recent_row_counts=recent)
        except ContractViolation as exc:
            self.set_status_message(f"FAILED contract: {exc}")
            raise
        st.write_parquet(out["quarantine"], result.quarantine)
        st.write_json(out["report"], result.report)
        st.write_parquet(out["clean"], result.clean)
        st.write_flag(out["flag"])
        r = result.report
        self.set_status_message(f"{r['rows_in']} rows in, {r['rows_clean']} clean, "
                                f"{r['rows_quarantined']} quarantined {r['quarantined_by_rule']}"
                                + (f"; WARNING {r['warnings']}" if r["warnings"] else ""))


class CleanPartition(DailyTask, _Validate):
    """A day's rows that meet the table's data contract (+ quarantine and a validation report)."""
    table = luigi.Parameter(description="Daily table name, e.g. flights or weather")

    def requires(self):
        return RawPartition(table=self.table, date=self.date)

    def output(self):
        return self.outputs(self.date)["flag"]

    def recent_row_counts(self) -> list[int]:
        counts = []
        for day in days_back(self.date, RECENT_DAYS, pipeline().start_date):
            report = self.outputs(day)["report"]
            if report.exists():
                counts.append(st.read_json(report)["rows_in"])
        return counts

    def clean_target(self):
        return self.outputs(self.date)["clean"]

    def run(self):
        self.validate(self.date, reference=False, recent=self.recent_row_counts())


class CleanReference(StorageMixin, luigi.Task, _Validate):
    """The reference table's rows that meet its contract."""
    table = luigi.Parameter(description="Reference table name, e.g. planes")

    def requires(self):
        return RawReference(table=self.table)

    def output(self):
        return self.outputs(None)["flag"]

    def clean_target(self):
        return self.outputs(None)["clean"]

    def run(self):
        self.validate(None, reference=True, recent=None)
