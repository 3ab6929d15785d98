"""Batch scoring: a day's feature rows -> one score per row (a probability, or a predicted value for
a regression target), tagged with the model version."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.estimators import predict


def score_partition(estimator, features: pd.DataFrame, numeric: list[str], categorical: list[str],
                    key_columns: list[str], version: str | None, problem: str) -> pd.DataFrame:
    """Keys of every row plus `score` (NaN for all rows when there is no model) and `model_version`."""
    out = features[key_columns].copy()
    out["score"] = (predict(estimator, features, numeric, categorical, problem)
                    if estimator is not None else np.full(len(features), np.nan))
    out["model_version"] = pd.Series(version, index=out.index, dtype="string")
    return out
