"""Feature engineering: one feature partition per day from clean data of that day and earlier days."""
from __future__ import annotations

import luigi

from tasks.base import DailyTask, concat_frames, dataset, days_back, pipeline, st
from tasks.config import limit_threads
from tasks.data import CleanPartition, CleanReference


class FeaturePartition(DailyTask):
    """The day's model-ready rows: keys, features (no outcomes) and the target."""
    trailing_days = luigi.OptionalIntParameter(
        default=None, description="Earlier days the feature function gets in its history (empty: the "
                                  "dataset description's [features] history_days)")

    @property
    def history_window(self) -> int:
        return self.trailing_days if self.trailing_days is not None else dataset.history_days

    @property
    def phash(self) -> str:
        return st.param_hash(features=dataset.features, trailing_days=self.history_window,
                             target={k: v for k, v in dataset.target.__dict__.items() if k != "label"})

    def history_days(self):
        return days_back(self.date, self.history_window, pipeline().start_date)

    def requires(self):
        return {
            "tables": {t: CleanPartition(table=t, date=self.date) for t in dataset.daily_tables},
            "references": {t: CleanReference(table=t) for t in dataset.reference_tables},
            "history": [CleanPartition(table=dataset.target.table, date=d) for d in self.history_days()],
        }

    def output(self):
        return self.store.file(self.store.partition("features", dataset.name, self.date, self.phash),
                               "part-0.parquet")

    @limit_threads(openmp=False)
    def run(self):
        req = self.requires()
        tables = {t: st.read_parquet(task.clean_target(), columns=dataset.input_columns.get(t))
                  for t, task in req["tables"].items()}
        refs = {t: st.read_parquet(task.clean_target()) for t, task in req["references"].items()}
        history = (concat_frames([task.history_summary() for task in req["history"]]) if req["history"]
                   else dataset.empty_history())
        frame = dataset.feature_frame(tables, refs, history, self.date, self.history_window)
        st.write_parquet(self.output(), frame)
        self.status(f"{len(frame)} rows, {len(dataset.features)} features, "
                    f"{len(req['history'])} history day(s)", 100)
