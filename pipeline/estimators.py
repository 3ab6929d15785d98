"""The estimators: hyperparameters, the model families of each problem kind and their scikit-learn
Pipelines (preprocessing and model in one object), the feature matrix they take, and prediction."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # scikit-learn is imported where it is used, so `import tasks` stays fast
    from sklearn.pipeline import Pipeline

from pipeline.metrics import check_problem

# The model families of each problem kind; "hgb" (gradient boosting) is the configured model.
FAMILIES = {"binary": ("hgb", "logreg"), "regression": ("hgb", "linear")}
MIN_CATEGORY_ROWS = 10  # rarer categories share one "infrequent" one-hot column (logreg, linear)


class TrainingError(ValueError):
    """The training window cannot produce a model (too few rows, one class only, a constant target)."""


@dataclass(frozen=True)
class Hyperparameters:
    """The gradient boosting model's settings: the one declaration of each, its default and what it
    means; tasks.model.CandidateModel turns each field into a luigi parameter."""
    learning_rate: float = field(default=0.1, metadata={"help": "Gradient boosting learning rate"})
    max_iter: int = field(default=200, metadata={"help": "Maximum boosting iterations"})
    max_leaf_nodes: int = field(default=31, metadata={"help": "Maximum leaves per tree"})
    min_samples_leaf: int = field(default=40, metadata={"help": "Minimum rows per leaf"})
    l2_regularization: float = field(default=0.0, metadata={"help": "L2 penalty on leaf values"})
    random_state: int = field(default=0, metadata={"help": "Seed of the estimator and row sampling"})
    early_stopping: bool = field(default=True, metadata={"help": "Stop boosting when a validation split stops improving"})

    def model_params(self) -> dict:
        """The settings a search varies from (everything but the seed, which the search keeps)."""
        return {k: v for k, v in self.__dict__.items() if k != "random_state"}


def make_estimator(numeric: list[str], categorical: list[str], hp: Hyperparameters, problem: str) -> Pipeline:
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
    boosting = HistGradientBoostingClassifier if check_problem(problem) == "binary" else HistGradientBoostingRegressor
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


def check_families(families: list[str], problem: str) -> None:
    valid = FAMILIES[check_problem(problem)]
    unknown = [f for f in families if f not in valid]
    if unknown or not families:
        raise ValueError(f"unknown or no model families {list(families)}; expected some of {valid}"
                         + ("" if problem == "binary" else f" (the families for a {problem} target)"))


def build_estimator(family: str, params: dict, numeric: list[str], categorical: list[str],
                    random_state: int, problem: str) -> Pipeline:
    """An unfitted estimator of `family` (one of FAMILIES[problem]) taking feature_matrix's columns."""
    valid = FAMILIES[check_problem(problem)]
    if family not in valid and any(family in names for names in FAMILIES.values()):
        raise ValueError(f"model family {family!r} does not fit a {problem} target; expected one of {valid}")
    if family not in valid:
        raise ValueError(f"unknown model family {family!r}; expected one of {valid}")
    if family == "hgb":
        return make_estimator(numeric, categorical, Hyperparameters(**params, random_state=random_state), problem)
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline

    if family == "logreg":
        model = LogisticRegression(C=params["C"], max_iter=params.get("max_iter", 500),
                                   random_state=random_state)
    else:
        model = Ridge(alpha=params["alpha"], random_state=random_state)
    return Pipeline([("encode", _linear_encoder(numeric, categorical)), ("model", model)])


def _linear_encoder(numeric: list[str], categorical: list[str]):
    """What linear models take: categories one-hot (missing is a category of its own, rare ones
    pooled), numbers median-imputed with a missing indicator and standardised."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer(
        [("categorical", Pipeline([
            ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
            ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist",
                                     min_frequency=MIN_CATEGORY_ROWS))]), categorical),
         ("numeric", Pipeline([
             ("impute", SimpleImputer(strategy="median", add_indicator=True)),
             ("scale", StandardScaler())]), numeric)],
        verbose_feature_names_out=False,
    )


def labelled(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    mask = frame[target].notna()
    return frame if mask.all() else frame.loc[mask]


def model_inputs(rows: pd.DataFrame, numeric: list[str], categorical: list[str], target: str,
                 problem: str) -> tuple[pd.DataFrame, np.ndarray]:
    """(X, y) of labelled rows: the feature matrix and the 0/1 labels (binary) or float64 target
    values (regression)."""
    y = rows[target].to_numpy(dtype=float)
    return feature_matrix(rows, numeric, categorical), y.astype(int) if check_problem(problem) == "binary" else y


# Rows scored at a time: bounds the memory of the feature matrix and its encoded copy.
PREDICT_CHUNK_ROWS = 200_000


def predict(estimator: Pipeline, frame: pd.DataFrame, numeric: list[str], categorical: list[str],
            problem: str, chunk_rows: int = PREDICT_CHUNK_ROWS) -> np.ndarray:
    """The positive-class probability (binary) or predicted value (regression) of every row of
    `frame`, scored `chunk_rows` at a time."""
    if not len(frame):
        return np.array([], dtype=float)
    return np.concatenate([
        scores(estimator, feature_matrix(frame.iloc[i:i + chunk_rows], numeric, categorical), problem)
        for i in range(0, len(frame), chunk_rows)])


def scores(estimator: Pipeline, X: pd.DataFrame, problem: str) -> np.ndarray:
    """The model's score of each row of the feature matrix `X`: the positive-class probability, or
    the predicted value."""
    if check_problem(problem) == "binary":
        return estimator.predict_proba(X)[:, 1]
    return np.asarray(estimator.predict(X), dtype=float)
