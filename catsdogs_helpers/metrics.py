"""Test metrics of a one-logit binary classifier; `predict_classes` is the one place a logit becomes a class."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

TEST_METRICS = ("accuracy", "loss", "precision", "recall", "f1", "auc")


def sigmoid(logits: Sequence[float] | np.ndarray) -> np.ndarray:
    """Returns the probabilities of class 1, float64, as `(1 + tanh(logit / 2)) / 2`: no overflow for any logit."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, dtype=np.float64)))


def predict_classes(logits: Sequence[float] | np.ndarray) -> np.ndarray:
    """Returns the classes, int64: 1 where the logit is above 0 (as `BinaryAccuracy(threshold=0.0)`), else 0."""
    return (np.asarray(logits, dtype=np.float64) > 0.0).astype(np.int64)


def _as_pair(labels, values, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Returns labels (int64) and values (float64) flattened, after checking that they pair up."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if labels.shape != values.shape:
        raise ValueError(
            f"labels and {name} must hold one value per image. "
            f"Received: labels.shape={labels.shape}, {name}.shape={values.shape}"
        )
    if labels.size == 0:
        raise ValueError(f"Cannot evaluate zero images. Received: labels.shape={labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1. Received: labels={np.unique(labels).tolist()}")
    return labels, values


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def compute_auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Computes the ROC AUC (Mann-Whitney, ties counting half) of scores of class 1; NaN with only one class."""
    labels, scores = _as_pair(labels, scores, "scores")
    num_positive = int(labels.sum())
    num_negative = labels.size - num_positive
    if not num_positive or not num_negative:
        return math.nan
    positive_rank_sum = stats.rankdata(scores)[labels == 1].sum()  # Ties get their mean rank.
    return float((positive_rank_sum - num_positive * (num_positive + 1) / 2.0) / (num_positive * num_negative))


def compute_metrics(
    labels: Sequence[int] | np.ndarray,
    logits: Sequence[float] | np.ndarray,
    class_names: Sequence[str] = ("cat", "dog"),
) -> dict[str, object]:
    """Computes the test metrics of one-logit outputs, as plain Python numbers.

    Returns:
        A dict with `"accuracy"`, `"loss"` (mean binary cross-entropy), `"precision"`, `"recall"`, `"f1"` (class 1
        is positive; 0/0 counts as 0.0), `"auc"` (NaN with only one class), `"per_class_accuracy"` (`{class_name:
        recall of that class}`), `"confusion_matrix"` (rows: true class, columns: predicted) and `"num_images"`.

    Raises:
        ValueError: If the shapes differ, there are no images, a label is not 0 or 1, or `class_names` is not 2 names.
    """
    labels, logits = _as_pair(labels, logits, "logits")
    if len(class_names) != 2:
        raise ValueError(f"class_names must name exactly 2 classes. Received: class_names={class_names!r}")
    predictions = predict_classes(logits)
    matrix = np.zeros((2, 2), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    (_, false_positive), (false_negative, true_positive) = matrix.tolist()
    precision = _ratio(true_positive, true_positive + false_positive)
    recall = _ratio(true_positive, true_positive + false_negative)
    losses = np.maximum(logits, 0.0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
    return {
        "accuracy": float(np.mean(predictions == labels)),
        "loss": float(np.mean(losses)),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "auc": compute_auc(labels, logits),
        "per_class_accuracy": {
            name: _ratio(matrix[index, index], matrix[index].sum()) for index, name in enumerate(class_names)
        },
        "confusion_matrix": matrix.tolist(),
        "num_images": int(labels.size),
    }


def compute_roc_curve(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Computes the ROC curve `(fpr, tpr)` from (0, 0) to (1, 1), one point per distinct score (absent class: 0s)."""
    labels, scores = _as_pair(labels, scores, "scores")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_each_score = np.r_[np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1]), scores.size - 1]
    true_positives = np.cumsum(sorted_labels)[last_of_each_score]
    false_positives = (last_of_each_score + 1) - true_positives
    num_positive, num_negative = true_positives[-1], false_positives[-1]
    tpr = np.r_[0.0, true_positives / num_positive if num_positive else np.zeros(true_positives.size)]
    fpr = np.r_[0.0, false_positives / num_negative if num_negative else np.zeros(false_positives.size)]
    return fpr, tpr
