"""Feature engineering: one feature partition per day from clean data of that day and earlier days."""
from __future__ import annotations

import luigi

from tasks.base import DailyTask, concat_frames, dataset, days_back, pipeline, st
from tasks.config import limit_threads
from tasks.data import CleanPartition, CleanReference


class FeaturePartition(DailyTask):
    """The day's model-ready rows: keys, features (no outcomes) and the target."""
    trailing_days = luigi.IntParameter(
        default=7, description="Days of earlier data behind the trailing aggregates")

    @property
    def phash(self) -> str:
        return st.param_hash(features=dataset.FEATURES, trailing_days=self.trailing_days)

    def history_days(self):
        return days_back(self.date, self.trailing_days, pipeline().start_date)

    def requires(self):
        return {
            "tables": {t: CleanPartition(table=t, date=self.date) for t in dataset.DAILY_TABLES},
            "references": {t: CleanReference(table=t) for t in dataset.REFERENCE_TABLES},
            "history": [CleanPartition(table=dataset.HISTORY_TABLE, date=d) for d in self.history_days()],
        }

    def output(self):
        return self.store.file(self.store.partition("features", dataset.NAME, self.date, self.phash),
                               "part-0.parquet")

    @limit_threads(openmp=False)
    def run(self):
        req = self.requires()
        tables = {t: st.read_parquet(task.clean_target(), columns=dataset.FEATURE_INPUT_COLUMNS.get(t))
                  for t, task in req["tables"].items()}
        refs = {t: st.read_parquet(task.clean_target()) for t, task in req["references"].items()}
        history = concat_frames([task.history_summary() for task in req["history"]])
        frame = dataset.build_features(**tables, **refs, history=history, date=self.date,
                                       trailing_days=self.trailing_days)
        st.write_parquet(self.output(), frame)
        self.status(f"{len(frame)} rows, {len(dataset.FEATURES)} features, "
                    f"{len(req['history'])} history day(s)", 100)
