"""What every task shares: the storage factory, the dataset description and small I/O helpers."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import luigi
import pandas as pd
import pyarrow as pa

from pipeline import dataset as ds
from pipeline import storage as st
from tasks.config import dataset_path, get_storage, pipeline

# Re-exported for the task modules: the dataset, storage helpers and [pipeline] config.
__all__ = ["DailyTask", "StorageMixin", "complete_dates", "current_dataset", "dataset", "days_back", "output_paths", "pipeline",
           "previous_day", "concat_frames", "labelled_counts", "read_frame", "read_frames", "read_partitions", "st"]

def current_dataset() -> ds.Dataset:
    """The dataset the pipeline runs (tasks.config.dataset_path), loaded once per change of its file."""
    return ds.cached(dataset_path())


class _CurrentDataset:
    """`dataset.x` is current_dataset().x, looked up at each use: tasks read the configured
    dataset when they run, not when this module is imported."""

    def __getattr__(self, name: str):
        return getattr(current_dataset(), name)


dataset = _CurrentDataset()


class StorageMixin:
    @property
    def store(self) -> st.Storage:
        return get_storage()


class DailyTask(StorageMixin, luigi.Task):
    date = luigi.DateParameter(description="The day this task processes (YYYY-MM-DD)")

    @classmethod
    def bulk_complete(cls, parameter_tuples):
        """The dates (of those given) whose output exists, with one listing per output prefix
        instead of one request per date: what luigi's RangeDaily and NightlyRange use."""
        return complete_dates(lambda day: cls(date=day), parameter_tuples)

    def status(self, message: str, percent: int | None = None) -> None:
        self.set_status_message(message)
        if percent is not None:
            self.set_progress_percentage(percent)


def complete_dates(make, days) -> list:
    """The days (of `days`) whose task `make(day)` has its output. Outputs are grouped by the path
    before `/date=`; each group costs one listing (on S3: one LIST per 1000 keys) whatever the
    number of days."""
    groups: dict[str, dict] = {}
    for day, path in output_paths(make, list(days)).items():
        groups.setdefault(path.split("/date=")[0], {})[day] = path
    store = get_storage()
    done = []
    for prefix, paths in groups.items():
        listed = store.list_files(prefix)
        done.extend(day for day, path in paths.items() if path in listed)
    return sorted(done)


def output_paths(make, days: list) -> dict:
    """{day: make(day).output().path}. Building a task resolves each of its parameters (and its
    lineage's) from luigi.cfg, which for a year of days took seconds; but output paths differ
    between days only in their `date=` part (lineage hashes never depend on the date), so the
    first day's path is built and the others derived from it -- checked against the last day's
    real path, and built one by one when that does not match."""
    if not days:
        return {}
    first = make(days[0]).output().path
    marker = f"date={days[0].isoformat()}"
    if first.count(marker) == 1:
        derived = {day: first.replace(marker, f"date={day.isoformat()}") for day in days}
        if derived[days[-1]] == make(days[-1]).output().path:
            return derived
    return {day: make(day).output().path for day in days}


def previous_day(date: dt.date) -> dt.date:
    return date - dt.timedelta(days=1)


def days_back(date: dt.date, n: int, not_before: dt.date) -> list[dt.date]:
    """The up to `n` days before `date`, oldest first, none before `not_before`."""
    days = [date - dt.timedelta(days=i) for i in range(n, 0, -1)]
    return [d for d in days if d >= not_before]


def read_frames(targets, fingerprints: dict[str, str] | None = None,
                columns: list[str] | None = None) -> pd.DataFrame:
    """Concatenate Parquet targets (only `columns`, when given); when `fingerprints` is given,
    record each file's sha256 in it. Everything is in memory at once: for a window of large days,
    iterate over read_partitions instead."""
    frames = []
    for target in targets:
        data = st.read_bytes(target)
        if fingerprints is not None:
            fingerprints[target.path] = st.sha256_bytes(data)
        frames.append(st.parquet_from_bytes(data, columns))
    return concat_frames(frames)


def concat_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The rows of `frames` in order (empty frames only lend their columns when all are empty)."""
    frames = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_partitions(targets: dict, columns: list[str] | None = None,
                    fingerprints: dict[str, str] | None = None) -> Iterator[tuple[Any, pa.Table]]:
    """(key, table) for each `key: Parquet target` of `targets`, read one at a time as the caller
    asks for them, so a caller that keeps only part of each (pipeline.training.sample_rows) holds
    one file at a time. Only `columns` (when given) are decoded, strings as dictionaries (a category
    per distinct value, not a string per row). When `fingerprints` is given, each file's sha256 is
    recorded in it as the file is read."""
    import pyarrow.parquet as pq

    for key, target in targets.items():
        data = st.read_bytes(target)
        if fingerprints is not None:
            fingerprints[target.path] = st.sha256_bytes(data)
        schema = pq.read_schema(pa.BufferReader(data))
        missing = [c for c in columns or [] if c not in schema.names]
        if missing:
            raise KeyError(f"column(s) {missing} are missing from {target.path}")
        strings = [f.name for f in schema if (columns is None or f.name in columns)
                   and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
        table = pq.read_table(pa.BufferReader(data), columns=columns, read_dictionary=strings)
        del data
        yield key, table


def labelled_counts(targets: dict, column: str) -> dict[str, int]:
    """{str(key): rows whose `column` is known (not null or NaN)} of each `key: Parquet target`,
    decoding that one column only (on S3 only its bytes are fetched; a local file is read from
    the page cache, which the window's read right after hits again). What training.sample_rows
    uses to cut each day to its final quota as it is read."""
    import numpy as np

    counts = {}
    for key, target in targets.items():
        try:
            values = st.read_parquet(target, columns=[column])[column]
        except (KeyError, pa.ArrowInvalid) as exc:
            raise KeyError(f"column(s) {[column]} are missing from {target.path}") from exc
        counts[str(key)] = int((~np.isnan(values.to_numpy(dtype=float))).sum())
    return counts


def read_frame(target, columns: list[str] | None = None) -> pd.DataFrame:
    """One Parquet target as a DataFrame of `columns`, strings as categories (see read_partitions):
    far less memory than a string per row for a large day."""
    _, table = next(read_partitions({None: target}, columns))
    return table.to_pandas()
