"""Drift: reference profiles of a model's training rows (bins fixed from the training data) and the
population stability index of a day's features and predictions against them; features with one
value per day are profiled by their daily values and judged day against day instead."""
from __future__ import annotations

import numpy as np
import pandas as pd

MISSING = "__missing__"
_EPS = 1e-4


def _numeric_profile(values: np.ndarray, bins: int) -> dict:
    finite = values[np.isfinite(values)]
    if not len(finite):
        edges: list[float] = []
    else:
        edges = sorted(set(np.quantile(finite, np.linspace(0, 1, bins + 1))[1:-1].tolist()))
    return {"kind": "numeric", "edges": edges, "fractions": _numeric_fractions(values, edges)}


def _numeric_fractions(values: np.ndarray, edges: list[float]) -> list[float]:
    values = np.asarray(values, dtype=float)
    n = len(values)
    missing = ~np.isfinite(values)
    idx = np.searchsorted(np.asarray(edges, dtype=float), values[~missing], side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    counts = np.append(counts, missing.sum())  # last bin: missing values
    return (counts / n).tolist() if n else [0.0] * len(counts)


def _categorical_profile(values: pd.Series, top: int) -> dict:
    filled = values.astype(object).where(values.notna(), MISSING)
    cats = filled.value_counts().index[:top].tolist()
    return {"kind": "categorical", "categories": cats,
            "fractions": _categorical_fractions(values, cats)}


def _categorical_fractions(values: pd.Series, cats: list) -> list[float]:
    filled = values.astype(object).where(values.notna(), MISSING)
    n = len(filled)
    if not n:
        return [0.0] * (len(cats) + 1)
    counts = filled.value_counts()
    known = [float(counts.get(c, 0)) / n for c in cats]
    return known + [max(0.0, 1.0 - sum(known))]


def day_level_features(X: pd.DataFrame, days: np.ndarray, names: list[str]) -> list[str]:
    """The `names` that hold one value (a missing value counts as one) within every day of `days`
    that has two or more rows: day-level features, such as the day's calendar or a rate over
    earlier days. None without a day of two rows."""
    days = pd.Series(np.asarray(days), index=X.index)
    counts = days.value_counts()
    full = days.isin(counts.index[counts >= 2])
    if not full.any():
        return []
    grouped = X.loc[full, names].astype(object).where(X.loc[full, names].notna(), MISSING).groupby(days[full])
    return [name for name in names if int(grouped[name].nunique().max()) == 1]


def _day_values(X: pd.DataFrame, days: np.ndarray, name: str, kind: str) -> list:
    """The one value of a day-level feature on each reference day, in day order (None: missing)."""
    first = X[name].groupby(pd.Series(np.asarray(days), index=X.index), sort=True).first()
    if kind == "numeric":
        return [None if pd.isna(v) else float(v) for v in first]
    return [None if pd.isna(v) else str(v) for v in first]


def profile(X: pd.DataFrame, numeric: list[str], categorical: list[str], scores: np.ndarray,
            bins: int = 10, top_categories: int = 30, days: np.ndarray | None = None) -> dict:
    """Reference distributions of the features and scores of a model's training rows. With the
    rows' `days`, a day-level feature (day_level_features) is profiled by its value on each day
    instead, under "day_level": PSI of one day's single value against many days' means nothing."""
    day_level = day_level_features(X, days, numeric + categorical) if days is not None else []
    return {
        "rows": int(len(X)),
        "features": {
            **{c: _numeric_profile(X[c].to_numpy(dtype=float), bins) for c in numeric if c not in day_level},
            **{c: _categorical_profile(X[c], top_categories) for c in categorical if c not in day_level},
        },
        "day_level": {c: {"kind": "numeric" if c in numeric else "categorical",
                          "values": _day_values(X, days, c, "numeric" if c in numeric else "categorical")}
                      for c in day_level},
        "score": _numeric_profile(np.asarray(scores, dtype=float), bins),
    }


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index between two binned distributions over the same bins."""
    e = np.clip(np.asarray(expected, dtype=float), _EPS, None)
    a = np.clip(np.asarray(actual, dtype=float), _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def day_against_days(ref: dict, values: pd.Series) -> dict:
    """A day-level feature's value on the day (the most common one, should it vary) against its
    values on the reference days: numeric, the z-score against their mean and standard deviation
    (None with fewer than 2 known reference days or no spread) and whether it lies outside their
    range; categorical, the share of reference days that had the same value."""
    known_day = values.dropna()
    value = None if known_day.empty else known_day.mode().iloc[0]
    reference = [v for v in ref["values"] if v is not None]
    out: dict = {"reference_days": len(ref["values"]), "varies_today": bool(values.nunique(dropna=False) > 1)}
    if ref["kind"] == "numeric":
        value = None if value is None else float(value)
        points = np.asarray(reference, dtype=float)
        spread = float(points.std(ddof=1)) if len(points) >= 2 else 0.0
        z = (value - points.mean()) / spread if value is not None and spread > 0 else None
        out.update(value=value, reference_min=float(points.min()) if len(points) else None,
                   reference_max=float(points.max()) if len(points) else None,
                   z=None if z is None else round(float(z), 6),
                   outside_range=bool(value is not None and len(points)
                                      and not points.min() <= value <= points.max()))
    else:
        value = None if value is None else str(value)
        out.update(value=value, seen_share=round(sum(v == value for v in ref["values"]) / len(ref["values"]), 6)
                   if ref["values"] else None)
    return out


def drift(reference: dict, X: pd.DataFrame, scores: np.ndarray) -> dict:
    """PSI of every profiled feature of `X`, and of `scores`, against the reference bins; each
    day-level feature of the reference judged day against days (day_against_days)."""
    out = {}
    for name, ref in reference["features"].items():
        if name not in X.columns:
            continue
        if ref["kind"] == "numeric":
            actual = _numeric_fractions(X[name].to_numpy(dtype=float), ref["edges"])
        else:
            actual = _categorical_fractions(X[name], ref["categories"])
        out[name] = round(psi(ref["fractions"], actual), 6)
    score_ref = reference["score"]
    score_psi = psi(score_ref["fractions"], _numeric_fractions(np.asarray(scores, float), score_ref["edges"]))
    day_level = {name: day_against_days(ref, X[name]) for name, ref in reference.get("day_level", {}).items()
                 if name in X.columns}
    return {"feature_psi": out, "prediction_psi": round(score_psi, 6), "day_level": day_level}
