"""Train the model: one scikit-learn Pipeline (preprocessing + gradient boosting) fitted on the
training rows only, plus the metadata that makes it traceable and monitorable. A `task` is
"binary" (a 0/1 target, scored by its probability) or "regression" (a numeric target)."""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import platform
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # scikit-learn is imported where it is used, so `import tasks` stays fast
    from sklearn.pipeline import Pipeline

from pipeline import monitoring
from pipeline.evaluation import check_task
from pipeline.storage import sha256_bytes


class TrainingError(ValueError):
    """The training window cannot produce a model (too few rows, one class only, a constant target)."""


@dataclass(frozen=True)
class Hyperparameters:
    learning_rate: float = 0.1
    max_iter: int = 200
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 40
    l2_regularization: float = 0.0
    early_stopping: bool = True
    random_state: int = 0


def training_days(date: dt.date, window_days: int, holdout_days: int,
                  start_date: dt.date) -> tuple[list[dt.date], list[dt.date]]:
    """(train days, holdout days) of the trailing window of `window_days` ending at `date`,
    clipped at `start_date`; the last `holdout_days` days are the holdout."""
    if holdout_days < 1 or window_days <= holdout_days:
        raise ValueError(f"window_days ({window_days}) must exceed holdout_days ({holdout_days}) >= 1")
    first = max(start_date, date - dt.timedelta(days=window_days - 1))
    days = [first + dt.timedelta(days=i) for i in range((date - first).days + 1)]
    if len(days) <= holdout_days:
        raise TrainingError(
            f"the window for {date} starts at {first} (start_date {start_date}) and has {len(days)} "
            f"day(s), not more than holdout_days={holdout_days}; run a later date or an earlier start_date")
    return days[:-holdout_days], days[-holdout_days:]


def make_estimator(numeric: list[str], categorical: list[str], hp: Hyperparameters,
                   task: str = "binary") -> Pipeline:
    """Gradient boosting (a classifier for binary, a regressor for regression) behind the ordinal
    encoding of the categories, which it splits on natively."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encode = ColumnTransformer(
        [("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                        encoded_missing_value=np.nan), categorical),
         ("numeric", "passthrough", numeric)],
        verbose_feature_names_out=False,
    )
    boosting = HistGradientBoostingClassifier if check_task(task) == "binary" else HistGradientBoostingRegressor
    model = boosting(
        learning_rate=hp.learning_rate, max_iter=hp.max_iter, max_leaf_nodes=hp.max_leaf_nodes,
        min_samples_leaf=hp.min_samples_leaf, l2_regularization=hp.l2_regularization,
        early_stopping=hp.early_stopping, random_state=hp.random_state,
        categorical_features=list(range(len(categorical))),
    )
    return Pipeline([("encode", encode), ("model", model)])


def feature_matrix(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """The model's input columns with plain dtypes (object for categories, missing as NaN; float for
    numbers), categories first, built in one copy."""
    missing = [c for c in numeric + categorical if c not in frame.columns]
    if missing:
        raise KeyError(f"feature column(s) {missing} are missing from the feature partitions")
    columns = {c: pd.Series(_object_values(frame[c]), index=frame.index, dtype=object) for c in categorical}
    columns.update({c: frame[c].to_numpy(dtype="float64", na_value=np.nan) for c in numeric})
    return pd.DataFrame(columns, index=frame.index)


def _object_values(column: pd.Series) -> np.ndarray:
    if isinstance(column.dtype, pd.CategoricalDtype):  # one object per category, not per row
        categories = np.append(column.cat.categories.to_numpy(dtype=object), np.nan)
        return categories[column.cat.codes.to_numpy()]  # code -1 (missing) picks the NaN
    return column.to_numpy(dtype=object, na_value=np.nan)


def labelled(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    mask = frame[target].notna()
    return frame if mask.all() else frame.loc[mask]


# ---- reproducible row samples, read day by day ---------------------------------------------------
# A part is one day's rows: a pandas DataFrame or a pyarrow Table.
Part = Any

# The rows kept of the days read so far are pruned when they exceed the cap by this factor (so
# memory stays bounded by about twice the cap plus one day, with few prunes).
_PRUNE_SLACK = 1.5


def sample_keys(seed: int, day: dt.date | str, n: int) -> np.ndarray:
    """The sampling keys of a day's `n` labelled rows, in row order: a day keeps the rows with its
    smallest keys. They depend only on (seed, day, n), so a rerun keys the same rows the same way."""
    day = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day))
    return np.random.default_rng([seed, day.toordinal()]).random(n)


def day_quotas(labelled_by_day: dict[str, int], max_rows: int) -> dict[str, int]:
    """Rows each day contributes to a sample of `max_rows` (> 0): its share of the labelled rows,
    rounded by largest remainder (ties to the earlier day), so they add up to the cap exactly; every
    row of every day when there are no more than `max_rows`."""
    total = sum(labelled_by_day.values())
    if total <= max_rows:
        return dict(labelled_by_day)
    quotas = {day: max_rows * n // total for day, n in labelled_by_day.items()}
    by_remainder = sorted(labelled_by_day, key=lambda day: (-(max_rows * labelled_by_day[day] % total), day))
    for day in by_remainder[:max_rows - sum(quotas.values())]:
        quotas[day] += 1
    return quotas


def sample_rows(parts: Iterable[tuple[dt.date, Part]], target: str, max_rows: int, seed: int,
                labelled_by_day: dict[str, int] | None = None) -> tuple[pd.DataFrame, dict]:
    """The labelled rows (`target` known) of `parts`, (day, rows of that day) pairs consumed one at a
    time, or, when there are more than `max_rows` > 0 of them, a sample of exactly `max_rows`: each
    day contributes its day_quotas(...) share, its rows with the smallest sample_keys(seed, day, ...)
    -- a uniform sample of the day's labelled rows. Only the rows of the days read so far that can
    still be in the sample are held (a day's final quota is at most its share of the rows read so
    far), so memory is bounded by about twice the cap plus one day, whatever the number of days.
    Rows come back in the order of the parts, and of the rows within a part, as a DataFrame with a
    fresh index. Returns (rows, counts: rows_available, rows_labelled, rows_sampled,
    rows_sampled_by_day).

    `labelled_by_day` ({str(day): labelled rows} of every part, e.g. from the Parquet footers'
    null counts) is the same sample found faster: each day's final quota is known before its rows
    are read, so each day is cut once to it, instead of early days being kept whole and cut again
    as later days arrive. A day whose labelled rows differ from it is an error."""
    if max_rows < 0:
        raise ValueError(f"max_rows must be >= 0 (0 = no cap), got {max_rows}")
    pieces: list[dict] = []  # per day: its rows kept (in row order), their keys, its labelled rows
    available = labelled_rows = kept = 0
    part = labels = None
    known = day_quotas(labelled_by_day, max_rows) if max_rows and labelled_by_day is not None else None
    for day, part in parts:
        if any(p["day"] == str(day) for p in pieces):
            raise ValueError(f"day {day} appears twice in the parts to sample: each day is one part")
        labels = np.asarray(part[target], dtype=float)
        positions = np.flatnonzero(~np.isnan(labels))
        available, labelled_rows = available + len(labels), labelled_rows + len(positions)
        piece = {"day": str(day), "labelled": len(positions), "keys": None}
        if known is not None and labelled_by_day.get(str(day)) != len(positions):
            raise ValueError(f"day {day} has {len(positions)} labelled rows, but {labelled_by_day.get(str(day))} "
                             f"were announced for it (labelled_by_day)")
        if max_rows:
            keys = sample_keys(seed, day, len(positions))
            bound = known[str(day)] if known is not None else _bound(max_rows, len(positions), labelled_rows)
            keep = _smallest(keys, bound)
            if keep is not None:
                positions, keys = positions[keep], keys[keep]
            piece["keys"] = keys
        piece["rows"] = part if len(positions) == len(labels) else _select(part, positions)
        pieces.append(piece)
        kept += len(positions)
        if max_rows and known is None and kept > _PRUNE_SLACK * max_rows:
            for earlier in pieces:  # only where at least half is no longer needed: little copying
                bound = _bound(max_rows, earlier["labelled"], labelled_rows)
                if len(earlier["keys"]) > 2 * bound:
                    kept -= len(earlier["keys"]) - _shrink(earlier, bound)
    if known is not None and set(known) != {p["day"] for p in pieces}:
        raise ValueError(f"labelled_by_day announces the days {sorted(known)}, the parts hold "
                         f"{[p['day'] for p in pieces]}")
    if max_rows:
        quotas = day_quotas({p["day"]: p["labelled"] for p in pieces}, max_rows)
        for piece in pieces:
            _shrink(piece, quotas[piece["day"]])
    by_day = {p["day"]: len(p["rows"]) for p in pieces}
    rows = _concat([p.pop("rows") for p in pieces])
    if not isinstance(part, pd.DataFrame):  # the days were read with pyarrow
        import pyarrow as pa

        part = labels = None
        pa.default_memory_pool().release_unused()  # hand what was read back to the OS before fitting
    return rows, {"rows_available": int(available), "rows_labelled": int(labelled_rows),
                  "rows_sampled": int(len(rows)), "rows_sampled_by_day": by_day}


def _bound(max_rows: int, labelled: int, labelled_so_far: int) -> int:
    """The most rows a day with `labelled` rows can contribute, when at least `labelled_so_far`
    rows are labelled in all: its share of the cap, rounded up."""
    return min(labelled, -(-max_rows * labelled // max(labelled_so_far, 1)))


def _smallest(keys: np.ndarray, k: int) -> np.ndarray | None:
    """Sorted indices of the `k` smallest keys, or None when that is all of them."""
    if k >= len(keys):
        return None
    return np.sort(np.argpartition(keys, k - 1)[:k]) if k else np.array([], dtype=np.int64)


def _shrink(piece: dict, k: int) -> int:
    keep = _smallest(piece["keys"], k)
    if keep is not None:
        piece["rows"], piece["keys"] = _select(piece["rows"], keep), piece["keys"][keep]
    return len(piece["keys"])


def _select(part: Part, positions: np.ndarray) -> Part:
    """The rows of `part` at the sorted `positions`."""
    if isinstance(part, pd.DataFrame):
        return part.take(positions)
    import pyarrow as pa

    mask = np.zeros(len(part), dtype=bool)
    mask[positions] = True
    return part.filter(pa.array(mask))  # chunk by chunk; take() would first concatenate the chunks


def _concat(parts: list[Part]) -> pd.DataFrame:
    """One DataFrame of the parts (empty ones left out unless all are empty)."""
    parts = [p for p in parts if len(p)] or parts[:1]
    if not parts:
        return pd.DataFrame()
    if isinstance(parts[0], pd.DataFrame):
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    import pyarrow as pa

    table = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
    return table.to_pandas()


def model_inputs(rows: pd.DataFrame, numeric: list[str], categorical: list[str], target: str,
                 task: str = "binary") -> tuple[pd.DataFrame, np.ndarray]:
    """(X, y) of labelled rows: the feature matrix and the 0/1 labels (binary) or float64 target
    values (regression)."""
    y = rows[target].to_numpy(dtype=float)
    return feature_matrix(rows, numeric, categorical), y.astype(int) if check_task(task) == "binary" else y


def training_rows(parts: Iterable[tuple[dt.date, Part]], numeric: list[str], categorical: list[str],
                  target: str, max_train_rows: int, random_state: int, task: str = "binary"
                  ) -> tuple[pd.DataFrame, np.ndarray]:
    """Exactly the (X, y) that CandidateModel fits on, given its training days' feature rows as
    (day, rows) pairs in window order (tasks.base.read_partitions reads them): for a bare-fit
    comparison, `make_estimator(numeric, categorical, hp, task).fit(X, y)` is the training step's fit."""
    rows, _ = sample_rows(parts, target, max_train_rows, random_state)
    return model_inputs(rows, numeric, categorical, target, task)


def subsample(n: int, max_rows: int, seed: int) -> np.ndarray | None:
    """Sorted positions of a seeded sample of `max_rows` of `n` rows, or None when all are kept."""
    if not max_rows or n <= max_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


# The monitoring reference profile (bins, fractions, training scores) is computed on at most this
# many training rows, seeded: deciles and category shares are as good as on all rows, and scoring
# them costs ~1 s at 200 trees instead of ~25 s per million rows.
PROFILE_ROWS = 50_000
# Permutation importance runs on at most this many labelled holdout rows, seeded (each input and
# repeat costs one prediction of them): about the 3-day holdout of the real data.
IMPORTANCE_ROWS = 3_000


def train_model(rows: pd.DataFrame, numeric: list[str], categorical: list[str], target: str,
                hp: Hyperparameters, min_train_rows: int = 500, estimator: Pipeline | None = None,
                counts: dict | None = None, profile_rows: int = PROFILE_ROWS, task: str = "binary"
                ) -> tuple[Pipeline, dict]:
    """Fit `estimator` (default: make_estimator(hp, task)) on the labelled rows of `rows` (sample them
    first with sample_rows, whose `counts` then go into the metadata). Returns the fitted pipeline
    and its training metadata (see fit_rows)."""
    counts = counts or {"rows_available": len(rows), "rows_labelled": int(rows[target].notna().sum())}
    X, y = model_inputs(labelled(rows, target), numeric, categorical, target, task)
    return fit_rows(X, y, numeric, categorical, target, hp, counts, min_train_rows, estimator, profile_rows, task)


def fit_rows(X: pd.DataFrame, y: np.ndarray, numeric: list[str], categorical: list[str], target: str,
             hp: Hyperparameters, counts: dict, min_train_rows: int = 500, estimator: Pipeline | None = None,
             profile_rows: int = PROFILE_ROWS, task: str = "binary") -> tuple[Pipeline, dict]:
    """Fit `estimator` (default: make_estimator(hp, task)) on (X, y), as model_inputs makes them.
    The metadata holds `counts` (rows available and labelled), the rows trained, the task and the
    target's positive rate (binary) or mean (regression: the naive baseline's prediction), and the
    monitoring reference profile of at most `profile_rows` of the training rows, seeded by the
    model's random_state."""
    if len(X) < min_train_rows:
        raise TrainingError(f"only {len(X)} labelled training rows (minimum {min_train_rows})")
    values = np.unique(y)
    if len(values) < 2 and check_task(task) == "binary":
        raise TrainingError(f"the training rows hold only one class of '{target}'")
    if len(values) < 2:
        raise TrainingError(f"the training rows' target '{target}' is constant (value "
                            f"{values[0] if len(values) else 'none'}): nothing to learn")
    estimator = estimator if estimator is not None else make_estimator(numeric, categorical, hp, task)
    started = time.perf_counter()
    estimator.fit(X, y)
    seconds = time.perf_counter() - started
    pick = subsample(len(X), profile_rows, hp.random_state)
    reference = X if pick is None else X.iloc[pick]
    scores = _outputs(estimator, reference, task)
    n_iter = getattr(estimator.named_steps["model"], "n_iter_", None)  # None: Ridge's closed form
    meta = {
        "task": task,
        "rows_available": int(counts["rows_available"]),
        "rows_labelled": int(counts["rows_labelled"]),
        "rows_trained": int(len(X)),
        "rows_trained_by_day": counts.get("rows_sampled_by_day"),
        "positive_rate" if task == "binary" else "target_mean": float(y.mean()),
        "training_seconds": round(seconds, 3),
        "n_iter": int(np.max(n_iter)) if n_iter is not None else 0,
        "numeric_features": list(numeric),
        "categorical_features": list(categorical),
        "target": target,
        "reference_profile": monitoring.profile(reference, numeric, categorical, scores),
        "library_versions": library_versions(),
        "code_version": code_version(),
    }
    return estimator, meta


def provenance(date: dt.date, lineage: str, model_bytes: bytes, parameters: dict,
               train_days: list[dt.date], holdout_days: list[dt.date],
               input_fingerprints: dict[str, str]) -> dict:
    """What makes a model traceable: its date, parameters, window, inputs and bytes."""
    return {"date": date.isoformat(), "lineage": lineage, "model_sha256": sha256_bytes(model_bytes),
            "parameters": parameters, "train_days": [d.isoformat() for d in train_days],
            "holdout_days": [d.isoformat() for d in holdout_days],
            "input_fingerprints": input_fingerprints,
            "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def fit_candidate(train: Iterable[tuple[dt.date, Part]], holdout: Iterable[tuple[dt.date, Part]],
                  numeric: list[str], categorical: list[str], target: str, hp: Hyperparameters,
                  max_train_rows: int, importance_repeats: int, tuning: dict | None = None,
                  day_column: str = "date", importance_rows: int = IMPORTANCE_ROWS,
                  labelled_by_day: dict[str, int] | None = None, task: str = "binary") -> tuple[Pipeline, dict]:
    """The challenger: train_model on sample_rows(train, max_train_rows, the model's seed) -- `train`
    and `holdout` are (day, rows) pairs, read one at a time -- plus the permutation importance of
    each input on at most `importance_rows` labelled `holdout` rows (computed here, in parallel per
    day, rather than in the serial deploy chain). With `tuning` ({"trials", "families", "folds",
    "seed"}, trials > 0) the model is the best of a time-ordered cross-validated search inside the
    training rows (pipeline.tuning, by their `day_column`), and every trial is recorded in the
    metadata. `labelled_by_day` (of the training days) makes the sampling faster (see sample_rows).
    `task` picks the estimators, the search's score and the importance's metric."""
    from pipeline import tuning as tu
    from pipeline.evaluation import permutation_importance

    rows, counts = sample_rows(train, target, max_train_rows, hp.random_state, labelled_by_day)
    base = {k: v for k, v in hp.__dict__.items() if k != "random_state"}
    best, trials = {"family": "hgb", "params": base}, []
    if tuning and tuning.get("trials", 0) > 0:
        best, trials = tu.search(rows, rows[day_column], numeric, categorical, target, base,
                                 tuning["trials"], list(tuning["families"]), tuning["folds"],
                                 tuning["seed"], hp.random_state, max_train_rows, task=task)
    estimator = tu.build_estimator(best["family"], best["params"], numeric, categorical, hp.random_state, task)
    X, y = model_inputs(rows, numeric, categorical, target, task)
    del rows  # only the matrix is held while fitting
    estimator, meta = fit_rows(X, y, numeric, categorical, target, hp, counts, estimator=estimator, task=task)
    del X, y
    if importance_repeats > 0:
        sample, _ = sample_rows(holdout, target, importance_rows, hp.random_state)
        X, y = model_inputs(sample, numeric, categorical, target, task)
        meta["importance"] = permutation_importance(estimator, X, y, importance_repeats, hp.random_state,
                                                    max_rows=importance_rows, task=task)
    else:
        meta["importance"] = {}
    meta.update(importance_repeats=importance_repeats, max_train_rows=max_train_rows, family=best["family"],
                model_params=best["params"],
                tuning={**(tuning or {"trials": 0}), "best": best if trials else None, "trials": trials})
    return estimator, meta


def library_versions() -> dict[str, str]:
    import luigi
    import pyarrow
    import skops
    import sklearn
    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "pandas": pd.__version__, "numpy": np.__version__, "pyarrow": pyarrow.__version__,
            "skops": skops.__version__,
            "luigi": luigi.__version__ if hasattr(luigi, "__version__") else "unknown"}


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, str]:
    """The package version and one sha256 over the source of `pipeline/` and `tasks/`, so a model
    records exactly which code made it (also without git)."""
    from importlib import metadata

    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted([*root.glob("pipeline/*.py"), *root.glob("tasks/*.py")]):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    try:
        version = metadata.version("mlpipe")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"package": version, "source_sha256": digest.hexdigest()}


MODEL_FILE = "model.skops"

# The only types a model file may contain beyond those skops trusts by default: what the fitted
# estimators of pipeline.tuning.TASK_FAMILIES need (skops 0.16, scikit-learn 1.9; tests check it).
# The partial is the gradient boosting models' categorical preprocessor, partial(check_array),
# and skops checks the wrapped function too; numpy.dtype comes from the SimpleImputers of logreg
# and linear.
# A file naming any other type is refused.
TRUSTED_TYPES = frozenset({
    "functools.partial",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
})


def dump_model(estimator: Pipeline) -> bytes:
    """The estimator as skops bytes (no pickle: loading runs no code named by the file), made
    byte-for-byte reproducible: the same model gives the same bytes and sha256 in any process."""
    import skops.io as sio

    return _canonical_zip(sio.dumps(estimator))


def _canonical_zip(data: bytes) -> bytes:
    """skops names array members and object ids after id() and stamps members with the current
    time; renumber both in schema order and fix the timestamps, so a from-scratch backfill
    reproduces the same model files."""
    import io
    import json
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as src:
        members = {info.filename: (info, src.read(info.filename)) for info in src.infolist()}
    schema = json.loads(members.pop("schema.json")[1])
    names: dict[str, str] = {}
    ids: dict[int, int] = {}

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    node[key] = ids.setdefault(value, len(ids) + 1)
                elif isinstance(value, str) and value in members:
                    node[key] = names.setdefault(value, f"{len(names) + 1}{os.path.splitext(value)[1]}")
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    if set(names) != set(members):
        raise ValueError(f"skops file members {sorted(set(members) - set(names))} are not named in its schema")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for old, new in sorted(names.items(), key=lambda kv: kv[1]):
            info, payload = members[old]
            dst.writestr(zipfile.ZipInfo(new, date_time=(1980, 1, 1, 0, 0, 0)), payload, info.compress_type)
        dst.writestr(zipfile.ZipInfo("schema.json", date_time=(1980, 1, 1, 0, 0, 0)),
                     json.dumps(schema, indent=2).encode(), zipfile.ZIP_STORED)
    return out.getvalue()


class ModelIntegrityError(RuntimeError):
    """A model file does not match the sha256 recorded when it was written, or names a type
    outside the allow-list."""


def load_model(data: bytes, expected_sha256: str, source: str) -> Pipeline:
    """Load a skops model only after its bytes match the recorded sha256 and every type it
    names is trusted by skops or on TRUSTED_TYPES."""
    import skops.io as sio

    actual = sha256_bytes(data)
    if actual != expected_sha256:
        raise ModelIntegrityError(
            f"model file {source} has sha256 {actual[:12]}..., but its metadata records "
            f"{expected_sha256[:12]}...; the file was changed after it was written: refusing to load it")
    try:
        untrusted = set(sio.get_untrusted_types(data=data))
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a model file we wrote"
        raise ModelIntegrityError(f"model file {source} is not a readable skops file ({exc}); "
                                  "refusing to load it") from exc
    unknown = sorted(untrusted - TRUSTED_TYPES)
    if unknown:
        raise ModelIntegrityError(
            f"model file {source} names type(s) outside the allow-list: {unknown}; refusing to load it. "
            "If a new estimator needs them, review them and add them to pipeline.training.TRUSTED_TYPES")
    return sio.loads(data, trusted=sorted(untrusted))


# Rows scored at a time: bounds the memory of the feature matrix and its encoded copy.
PREDICT_CHUNK_ROWS = 200_000


def predict(estimator: Pipeline, frame: pd.DataFrame, numeric: list[str], categorical: list[str],
            chunk_rows: int = PREDICT_CHUNK_ROWS, task: str = "binary") -> np.ndarray:
    """The positive-class probability (binary) or predicted value (regression) of every row of
    `frame`, scored `chunk_rows` at a time."""
    if not len(frame):
        return np.array([], dtype=float)
    return np.concatenate([
        _outputs(estimator, feature_matrix(frame.iloc[i:i + chunk_rows], numeric, categorical), task)
        for i in range(0, len(frame), chunk_rows)])


def _outputs(estimator: Pipeline, X: pd.DataFrame, task: str) -> np.ndarray:
    """The model's score of each row: the positive-class probability, or the predicted value."""
    if check_task(task) == "binary":
        return estimator.predict_proba(X)[:, 1]
    return np.asarray(estimator.predict(X), dtype=float)
