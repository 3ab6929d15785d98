"""Reading stored Parquet partitions through their targets: whole, or one day at a time as a
window's consumer asks for them, with each file's sha256 recorded as it is read."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline import storage as st
from pipeline.hashing import sha256_bytes
from pipeline.sampling import concat_parts


def read_frames(targets, fingerprints: dict[str, str] | None = None,
                columns: list[str] | None = None) -> pd.DataFrame:
    """Concatenate Parquet targets (only `columns`, when given); when `fingerprints` is given,
    record each file's sha256 in it. Everything is in memory at once: for a window of large days,
    iterate over read_partitions instead."""
    frames = []
    for target in targets:
        data = st.read_bytes(target)
        if fingerprints is not None:
            fingerprints[target.path] = sha256_bytes(data)
        frames.append(st.parquet_from_bytes(data, columns))
    return concat_parts(frames)


def read_partitions(targets: dict, columns: list[str] | None = None,
                    fingerprints: dict[str, str] | None = None) -> Iterator[tuple[Any, pa.Table]]:
    """(key, table) for each `key: Parquet target` of `targets`, read one at a time as the caller
    asks for them, so a caller that keeps only part of each (pipeline.sampling.sample_rows) holds
    one file at a time. Only `columns` (when given) are decoded, strings as dictionaries (a category
    per distinct value, not a string per row). When `fingerprints` is given, each file's sha256 is
    recorded in it as the file is read."""
    import pyarrow.parquet as pq

    for key, target in targets.items():
        data = st.read_bytes(target)
        if fingerprints is not None:
            fingerprints[target.path] = sha256_bytes(data)
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
    the page cache, which the window's read right after hits again). What sampling.sample_rows
    uses to cut each day to its final quota as it is read."""
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
