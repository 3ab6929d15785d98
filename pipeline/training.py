"""Train the model: one scikit-learn Pipeline (preprocessing + gradient boosting) fitted on the
training rows only, plus the metadata that makes it traceable and monitorable."""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from pipeline import monitoring
from pipeline.storage import sha256_bytes


class TrainingError(ValueError):
    """The training window cannot produce a model (too few rows, one class only)."""


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


def make_estimator(numeric: list[str], categorical: list[str], hp: Hyperparameters) -> Pipeline:
    encode = ColumnTransformer(
        [("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                        encoded_missing_value=np.nan), categorical),
         ("numeric", "passthrough", numeric)],
        verbose_feature_names_out=False,
    )
    model = HistGradientBoostingClassifier(
        learning_rate=hp.learning_rate, max_iter=hp.max_iter, max_leaf_nodes=hp.max_leaf_nodes,
        min_samples_leaf=hp.min_samples_leaf, l2_regularization=hp.l2_regularization,
        early_stopping=hp.early_stopping, random_state=hp.random_state,
        categorical_features=list(range(len(categorical))),
    )
    return Pipeline([("encode", encode), ("model", model)])


def feature_matrix(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """The model's input columns with plain dtypes (float for numbers, object for categories)."""
    missing = [c for c in numeric + categorical if c not in frame.columns]
    if missing:
        raise KeyError(f"feature column(s) {missing} are missing from the feature partitions")
    X = frame[numeric].astype("float64")
    for col in categorical:
        X[col] = frame[col].astype(object).where(frame[col].notna(), np.nan)
    return X[categorical + numeric]


def labelled(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    return frame.loc[frame[target].notna()]


def train_model(frame: pd.DataFrame, numeric: list[str], categorical: list[str], target: str,
                hp: Hyperparameters, max_train_rows: int = 0, min_train_rows: int = 500,
                estimator: Pipeline | None = None) -> tuple[Pipeline, dict]:
    """Fit `estimator` (default: make_estimator(hp)) on the labelled rows of `frame` (a cap of
    `max_train_rows`, sampled with the model's seed, when > 0). Returns the fitted pipeline and
    its training metadata."""
    rows = labelled(frame, target)
    if len(rows) < min_train_rows:
        raise TrainingError(f"only {len(rows)} labelled training rows (minimum {min_train_rows})")
    if rows[target].nunique() < 2:
        raise TrainingError(f"the training rows hold only one class of '{target}'")
    if max_train_rows and len(rows) > max_train_rows:
        rows = rows.sample(n=max_train_rows, random_state=hp.random_state).sort_index()
    X = feature_matrix(rows, numeric, categorical)
    y = rows[target].astype(int).to_numpy()
    estimator = estimator if estimator is not None else make_estimator(numeric, categorical, hp)
    started = time.perf_counter()
    estimator.fit(X, y)
    seconds = time.perf_counter() - started
    scores = estimator.predict_proba(X)[:, 1]
    meta = {
        "rows_available": int(len(frame)),
        "rows_labelled": int(len(labelled(frame, target))),
        "rows_trained": int(len(rows)),
        "positive_rate": float(y.mean()),
        "training_seconds": round(seconds, 3),
        "n_iter": int(np.max(getattr(estimator.named_steps["model"], "n_iter_", 0))),
        "numeric_features": list(numeric),
        "categorical_features": list(categorical),
        "target": target,
        "reference_profile": monitoring.profile(X, numeric, categorical, scores),
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


def fit_candidate(train: pd.DataFrame, holdout: pd.DataFrame, numeric: list[str], categorical: list[str],
                  target: str, hp: Hyperparameters, max_train_rows: int, importance_repeats: int,
                  tuning: dict | None = None, day_column: str = "date") -> tuple[Pipeline, dict]:
    """The challenger: train_model on `train`, plus the permutation importance of each input on
    the labelled `holdout` rows (computed here, in parallel per day, rather than in the serial
    deploy chain). With `tuning` ({"trials", "families", "folds", "seed"}, trials > 0) the model
    is the best of a time-ordered cross-validated search inside `train` (pipeline.tuning), and
    every trial is recorded in the metadata."""
    from pipeline import tuning as tu
    from pipeline.evaluation import permutation_importance

    base = {k: v for k, v in hp.__dict__.items() if k != "random_state"}
    best, trials = {"family": "hgb", "params": base}, []
    if tuning and tuning.get("trials", 0) > 0:
        best, trials = tu.search(train, train[day_column], numeric, categorical, target, base,
                                 tuning["trials"], list(tuning["families"]), tuning["folds"],
                                 tuning["seed"], hp.random_state, max_train_rows)
    estimator = tu.build_estimator(best["family"], best["params"], numeric, categorical, hp.random_state)
    estimator, meta = train_model(train, numeric, categorical, target, hp, max_train_rows, estimator=estimator)
    rows = labelled(holdout, target)
    meta["importance"] = permutation_importance(
        estimator, feature_matrix(rows, numeric, categorical), rows[target].astype(int).to_numpy(),
        importance_repeats, hp.random_state)
    meta.update(importance_repeats=importance_repeats, family=best["family"], model_params=best["params"],
                tuning={**(tuning or {"trials": 0}), "best": best if trials else None, "trials": trials})
    return estimator, meta


def library_versions() -> dict[str, str]:
    import luigi
    import pyarrow
    import skops
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
# estimators of pipeline.tuning.FAMILIES need (skops 0.16, scikit-learn 1.9; tests check it).
# The partial is HistGradientBoostingClassifier's categorical preprocessor, partial(check_array),
# and skops checks the wrapped function too; numpy.dtype comes from logreg's SimpleImputers.
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
def predict(estimator: Pipeline, frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> np.ndarray:
    if not len(frame):
        return np.array([], dtype=float)
    return estimator.predict_proba(feature_matrix(frame, numeric, categorical))[:, 1]
