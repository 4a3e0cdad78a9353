"""Test metrics of a one-logit binary classifier, computed from its logits, as plain Python numbers or arrays.

The predicted class is `logit > 0`, decided in one place, `predict_classes`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

TEST_METRICS = ("accuracy", "loss", "precision", "recall", "f1", "auc")


def sigmoid(logits: Sequence[float] | np.ndarray) -> np.ndarray:
    """Returns the probabilities of class 1, `1 / (1 + exp(-logit))`, without overflow.

    Computed as `(1 + tanh(logit / 2)) / 2`, finite and exact for logits of any size.

    Returns:
        Probabilities in [0, 1], float64, the shape of `logits`.

    Example:

    >>> sigmoid([0.0, -1000.0, 1000.0]).tolist()
    [0.5, 0.0, 1.0]
    """
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, dtype=np.float64)))


def predict_classes(logits: Sequence[float] | np.ndarray) -> np.ndarray:
    """Returns the predicted classes of one-logit outputs: 1 where the logit is above 0.

    A logit of 0 counts as class 0, as in `keras.metrics.BinaryAccuracy(threshold=0.0)`.

    Returns:
        Classes, int64, 0 or 1, the shape of `logits`.

    Example:

    >>> predict_classes([-0.1, 0.0, 0.3]).tolist()
    [0, 0, 1]
    """
    return (np.asarray(logits, dtype=np.float64) > 0.0).astype(np.int64)


def _check_pair(labels: np.ndarray, values: np.ndarray, name: str) -> None:
    if labels.shape != values.shape:
        raise ValueError(
            f"labels and {name} must hold one value per image. "
            f"Received: labels.shape={labels.shape}, {name}.shape={values.shape}"
        )
    if labels.size == 0:
        raise ValueError(f"Cannot evaluate zero images. Received: labels.shape={labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1. Received: labels={np.unique(labels).tolist()}")


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def compute_auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Computes the ROC AUC by the Mann-Whitney rank formula, ties counting half; NaN if only one class is present.

    Args:
        labels: True classes, 0 or 1.
        scores: Scores of class 1 (logits or probabilities; only their order matters).
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    _check_pair(labels, scores, "scores")
    num_positive = int(labels.sum())
    num_negative = labels.size - num_positive
    if not num_positive or not num_negative:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], scores.size]
    ranks = np.empty(scores.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)  # Mean 1-based rank of each tie group.
    positive_rank_sum = ranks[labels == 1].sum()
    return float((positive_rank_sum - num_positive * (num_positive + 1) / 2.0) / (num_positive * num_negative))


def compute_metrics(
    labels: Sequence[int] | np.ndarray,
    logits: Sequence[float] | np.ndarray,
    class_names: Sequence[str] = ("cat", "dog"),
) -> dict[str, object]:
    """Computes test metrics of a one-logit binary classifier.

    Args:
        labels: True classes, 0 or 1, one per image.
        logits: The model's logits, one per image.
        class_names: Names of classes 0 and 1.

    Returns:
        A dict with `"accuracy"`, `"loss"` (mean binary cross-entropy),
        `"precision"`, `"recall"`, `"f1"` (class 1 is the positive class; 0/0
        counts as 0.0), `"auc"` (NaN if only one class is present),
        `"per_class_accuracy"` (`{class_name: recall of that class}`),
        `"confusion_matrix"` (rows: true class, columns: predicted class) and
        `"num_images"`, all plain Python numbers.

    Raises:
        ValueError: If the shapes differ, there are no images, or a label is not 0 or 1.
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    _check_pair(labels, logits, "logits")
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
    """Computes the ROC curve, one point per distinct score plus (0, 0).

    Args:
        labels: True classes, 0 or 1.
        scores: Scores of class 1 (only their order matters).

    Returns:
        `(fpr, tpr)`: false and true positive rates, from (0, 0) to (1, 1).
        A class that is absent gives rates of 0.
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    _check_pair(labels, scores, "scores")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_each_score = np.r_[np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1]), scores.size - 1]
    true_positives = np.cumsum(sorted_labels)[last_of_each_score]
    false_positives = (last_of_each_score + 1) - true_positives
    num_positive, num_negative = true_positives[-1], false_positives[-1]
    tpr = np.r_[0.0, true_positives / num_positive if num_positive else np.zeros(true_positives.size)]
    fpr = np.r_[0.0, false_positives / num_negative if num_negative else np.zeros(false_positives.size)]
    return fpr, tpr
