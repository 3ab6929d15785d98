"""Feature engineering: one feature partition per day from clean data of that day and earlier days."""
from __future__ import annotations

import luigi

from pipeline import storage as st
from pipeline.layout import PART_FILE
from pipeline.sampling import concat_parts
from tasks.base import DailyTask, Lineage, Sealed, days_back
from tasks.config import PipelineConfig, current_dataset
from tasks.data import CleanPartition, CleanReference
from tasks.threads import limit_threads


class FeaturePartition(Lineage, Sealed, DailyTask):
    """The day's model-ready rows: keys, features (no outcomes) and the target."""
    trailing_days = luigi.OptionalIntParameter(
        default=None, description="Earlier days the feature function gets in its history (empty: the "
                                  "dataset description's [features] history_days)")

    @property
    def history_window(self) -> int:
        return self.trailing_days if self.trailing_days is not None else current_dataset().history_days

    def lineage_facts(self) -> dict:
        data = current_dataset()
        return {"features": data.features, "history_days": self.history_window,
                "target": {k: v for k, v in data.target.__dict__.items() if k != "label"}}

    def history_days(self):
        return days_back(self.date, self.history_window, PipelineConfig().start_date)

    def requires(self):
        data = current_dataset()
        return {
            "tables": {t: CleanPartition(table=t, date=self.date) for t in data.daily_tables},
            "references": {t: CleanReference(table=t) for t in data.reference_tables},
            "history": [CleanPartition(table=data.target.table, date=d) for d in self.history_days()],
        }

    def directory(self) -> str:
        return self.store.partition("features", current_dataset().name, self.date, self.lineage)

    def data(self):
        return self.file(PART_FILE)

    @limit_threads(openmp=False)
    def run(self):
        data, req = current_dataset(), self.requires()
        self.status(f"reading {len(req['tables'])} table(s) and {len(req['history'])} history day(s)", 10)
        tables = {t: st.read_parquet(task.clean_target(), columns=data.input_columns.get(t))
                  for t, task in req["tables"].items()}
        refs = {t: st.read_parquet(task.clean_target()) for t, task in req["references"].items()}
        history = (concat_parts([task.history_summary() for task in req["history"]]) if req["history"]
                   else data.empty_history())
        self.status(f"building {len(data.features)} features", 40)
        frame = data.feature_frame(tables, refs, history, self.date, self.history_window)
        self.status(f"writing {len(frame)} rows", 85)
        self.seal({self.data(): st.write_parquet(self.data(), frame)})
        self.status(f"{len(frame)} rows, {len(data.features)} features, "
                    f"{len(req['history'])} history day(s)", 100)
