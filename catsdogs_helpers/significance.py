"""How much a test accuracy can be trusted: Wilson intervals and exact McNemar tests (`scipy.stats.binomtest`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from catsdogs_helpers.metrics import predict_classes

CONFIDENCE = 0.95
SIGNIFICANCE = 0.05


def compute_accuracy_interval(num_correct: int, num_images: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Computes the Wilson score interval `(low, high)` (fractions) of an accuracy measured on `num_images` photos.

    Raises:
        ValueError: Unless `0 <= num_correct <= num_images` and `num_images >= 1`.
    """
    if not 0 <= num_correct <= num_images or num_images < 1:
        raise ValueError(
            "An interval needs 0 <= num_correct <= num_images and num_images >= 1. "
            f"Received: num_correct={num_correct}, num_images={num_images}"
        )
    interval = stats.binomtest(int(num_correct), int(num_images)).proportion_ci(confidence, method="wilson")
    return float(interval.low), float(interval.high)


def compare_models(
    labels: Sequence[int] | np.ndarray,
    logits_a: Sequence[float] | np.ndarray,
    logits_b: Sequence[float] | np.ndarray,
) -> dict[str, object]:
    """Compares two models scored on the same photos with an exact McNemar test.

    Returns:
        A dict: `"only_a_correct"`, `"only_b_correct"` (photos one model gets right and the other wrong),
        `"both_correct"`, `"both_wrong"`, `"p_value"` (1.0 when the models never disagree) and `"distinguishable"`
        (`p_value < SIGNIFICANCE`).

    Raises:
        ValueError: If the three arrays do not have the same length.
    """
    labels = np.asarray(labels).reshape(-1)
    logits_a, logits_b = np.reshape(logits_a, -1), np.reshape(logits_b, -1)
    if not logits_a.shape == logits_b.shape == labels.shape:
        raise ValueError(
            "Both models must be scored on the same photos. Received: "
            f"{labels.size} labels, {logits_a.size} and {logits_b.size} logits"
        )
    correct_a, correct_b = predict_classes(logits_a) == labels, predict_classes(logits_b) == labels
    only_a, only_b = int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))
    p_value = float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0
    return {
        "only_a_correct": only_a,
        "only_b_correct": only_b,
        "both_correct": int(np.sum(correct_a & correct_b)),
        "both_wrong": int(np.sum(~correct_a & ~correct_b)),
        "p_value": min(p_value, 1.0),
        "distinguishable": p_value < SIGNIFICANCE,
    }


def describe_comparison(name_a: str, name_b: str, comparison: dict[str, object]) -> str:
    """Says in words whether two models' accuracies differ by more than noise (`comparison`: of `compare_models`)."""
    only_a, only_b = comparison["only_a_correct"], comparison["only_b_correct"]
    p_value = float(comparison["p_value"])
    p_text = "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"
    disagreements = f"of the {only_a + only_b} test photos only one of them gets right"
    if only_a + only_b == 0:
        return f"{name_a} and {name_b} cannot be told apart: they get exactly the same test photos right."
    if not comparison["distinguishable"]:
        return (
            f"{name_a} and {name_b} cannot be told apart: {disagreements}, {name_a} gets {only_a} and {name_b} "
            f"{only_b}, a split that chance alone makes likely (exact McNemar test, {p_text})."
        )
    better, worse = (name_a, name_b) if only_a > only_b else (name_b, name_a)
    many, few = max(only_a, only_b), min(only_a, only_b)
    return (
        f"{better} is more accurate than {worse}: {disagreements}, {better} gets {many} and {worse} {few} "
        f"(exact McNemar test, {p_text})."
    )
