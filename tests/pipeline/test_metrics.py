"""pipeline.metrics: the binary metrics and their undefined cases (regression ones: test_regression.py)."""
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from pipeline import metrics as mt


def test_metrics_match_sklearn():
    labels = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    scores = np.array([0.1, 0.8, 0.4, 0.35, 0.9, 0.2, 0.6, 0.7])
    m = mt.metrics(labels, scores, problem="binary")
    assert m["rows"] == 8 and m["positive_rate"] == 0.5
    assert m["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert m["average_precision"] == pytest.approx(average_precision_score(labels, scores))
    assert m["log_loss"] == pytest.approx(log_loss(labels, scores))
    assert m["brier"] == pytest.approx(brier_score_loss(labels, scores))
    assert m["roc_auc"] == pytest.approx(14 / 16)


def test_log_loss_is_finite_for_certain_wrong_scores():
    m = mt.metrics(np.array([0, 1]), np.array([1.0, 0.0]), problem="binary")
    assert math.isfinite(m["log_loss"])
    assert m["log_loss"] == pytest.approx(-math.log(1e-6))
    assert m["roc_auc"] == 0.0 and m["brier"] == 1.0


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0]])
def test_metrics_undefined_with_one_class(labels):
    m = mt.metrics(np.array(labels), np.full(len(labels), 0.3), problem="binary")
    assert m == {"rows": len(labels), "positive_rate": float(np.mean(labels)), "roc_auc": None,
                 "average_precision": None, "log_loss": None, "brier": None}


def test_metrics_on_no_rows():
    m = mt.metrics(np.array([]), np.array([]), problem="binary")
    assert m["rows"] == 0 and m["positive_rate"] is None and m["roc_auc"] is None
