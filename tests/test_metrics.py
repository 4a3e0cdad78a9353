"""Tests of `catsdogs_helpers.metrics` against values computed by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from catsdogs_helpers.metrics import compute_auc, compute_metrics, compute_roc_curve, predict_classes, sigmoid

# Six photos: dogs (1) with logits 2.0, 0.3, -0.3; cats (0) with logits 0.5, 1.0, -2.0.
# Predicted dog where logit > 0: TP = 2 (2.0, 0.3), FN = 1 (-0.3), FP = 2 (0.5, 1.0), TN = 1 (-2.0).
LABELS = [1, 1, 1, 0, 0, 0]
LOGITS = [2.0, 0.3, -0.3, 0.5, 1.0, -2.0]
# Per-photo cross-entropy log(1 + exp(-z)) for dogs, log(1 + exp(z)) for cats:
# 0.126928011, 0.554355244, 0.854355244, 0.974076984, 1.313261688, 0.126928011.
EXPECTED_LOSS = 3.949905182 / 6


def test_metrics_match_hand_computed_values():
    metrics = compute_metrics(LABELS, LOGITS)
    assert metrics["confusion_matrix"] == [[1, 2], [1, 2]]
    assert metrics["accuracy"] == pytest.approx(3 / 6)
    assert metrics["precision"] == pytest.approx(2 / 4)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(4 / 7)  # 2 * (1/2 * 2/3) / (1/2 + 2/3)
    assert metrics["loss"] == pytest.approx(EXPECTED_LOSS, abs=1e-8)
    # Dog/cat pairs ranked right: 2.0 beats all 3 cats, 0.3 and -0.3 beat -2.0 only -> 5 of 9.
    assert metrics["auc"] == pytest.approx(5 / 9)
    assert metrics["per_class_accuracy"] == pytest.approx({"cat": 1 / 3, "dog": 2 / 3})
    assert metrics["num_images"] == 6


def test_metrics_are_plain_python_values():
    metrics = compute_metrics(np.array(LABELS, np.int32), np.array(LOGITS, np.float32))
    json.dumps(metrics)
    assert all(type(metrics[key]) is float for key in ("accuracy", "loss", "precision", "recall", "f1", "auc"))
    assert type(metrics["num_images"]) is int
    assert all(type(count) is int for row in metrics["confusion_matrix"] for count in row)


def test_threshold_is_logit_zero():
    assert compute_metrics([1], [0.3])["accuracy"] == 1.0
    assert compute_metrics([1], [-0.3])["accuracy"] == 0.0
    assert compute_metrics([0], [0.0])["accuracy"] == 1.0  # A logit of 0 (p = 0.5) predicts class 0.


def test_auc_counts_ties_half():
    # Dogs 0.2, 0.9; cats 0.2, 0.1: pairs 0.2~0.2 (1/2), 0.2>0.1, 0.9>0.2, 0.9>0.1 -> 3.5 / 4.
    assert compute_auc([0, 1, 0, 1], [0.2, 0.2, 0.1, 0.9]) == pytest.approx(0.875)
    assert compute_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)


def test_single_class_auc_is_nan_and_zero_divisions_are_zero():
    metrics = compute_metrics([0, 0, 0], [-1.0, -2.0, 3.0])
    assert math.isnan(metrics["auc"])
    assert metrics["recall"] == 0.0  # No dog at all: 0/0.
    assert metrics["precision"] == 0.0  # TP = 0, FP = 1.
    assert metrics["f1"] == 0.0
    assert metrics["per_class_accuracy"] == pytest.approx({"cat": 2 / 3, "dog": 0.0})


def test_loss_is_stable_for_extreme_logits():
    metrics = compute_metrics([1, 0, 1], [1000.0, -1000.0, -1000.0])
    assert metrics["loss"] == pytest.approx(1000.0 / 3)


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match=r"Received: labels\.shape"):
        compute_metrics([0, 1], [0.1])
    with pytest.raises(ValueError, match="must be 0 or 1"):
        compute_metrics([0, 2], [0.1, 0.2])


def test_roc_curve_by_hand():
    fpr, tpr = compute_roc_curve([0, 1, 0, 1], [0.2, 0.2, 0.1, 0.9])
    # Thresholds 0.9, 0.2 (one dog and one cat tied), 0.1.
    np.testing.assert_allclose(tpr, [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(fpr, [0.0, 0.0, 0.5, 1.0])
    assert np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2) == pytest.approx(0.875)  # Area = AUC.


def test_sigmoid_is_exact_and_finite_for_extreme_logits():
    np.testing.assert_allclose(sigmoid([-1000.0, -20.0, 0.0, 20.0, 1000.0]), [0.0, 2.0611536e-09, 0.5, 1.0, 1.0])
    assert np.isfinite(sigmoid(np.array([-1e308, 1e308]))).all()


def test_predict_classes_counts_a_zero_logit_as_class_zero():
    assert predict_classes([-2.0, 0.0, 1e-9, 3.0]).tolist() == [0, 0, 1, 1]
