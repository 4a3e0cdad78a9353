"""Tests of `catsdogs_helpers.significance`: Wilson intervals and exact McNemar tests, against hand-computed values."""

import math

import numpy as np
import pytest

from catsdogs_helpers.significance import compare_models, compute_accuracy_interval, describe_comparison


def _wilson(num_correct: int, num_images: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's formula written out (Wilson, 1927), to check SciPy's against."""
    p, n = num_correct / num_images, num_images
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return center - half, center + half


@pytest.mark.parametrize(("num_correct", "num_images"), [(986, 999), (865, 999), (3, 6), (50, 100)])
def test_the_interval_is_wilsons(num_correct, num_images):
    assert compute_accuracy_interval(num_correct, num_images) == pytest.approx(_wilson(num_correct, num_images))


def test_the_interval_stays_inside_0_and_1_and_narrows_with_more_photos():
    assert compute_accuracy_interval(10, 10)[1] == pytest.approx(1.0)
    assert compute_accuracy_interval(0, 10)[0] == pytest.approx(0.0)
    small, large = compute_accuracy_interval(99, 100), compute_accuracy_interval(990, 1000)
    assert large[1] - large[0] < small[1] - small[0]
    with pytest.raises(ValueError, match="num_correct=11, num_images=10"):
        compute_accuracy_interval(11, 10)


def test_mcnemar_counts_only_the_photos_where_the_models_disagree():
    labels = np.ones(100, int)
    a = np.where(np.arange(100) < 90, 1.0, -1.0)  # Right on photos 0-89.
    b = np.where((np.arange(100) < 78) | (np.arange(100) >= 97), 1.0, -1.0)  # Right on 0-77 and 97-99.
    comparison = compare_models(labels, a, b)
    assert comparison["only_a_correct"] == 12 and comparison["only_b_correct"] == 3
    assert comparison["both_correct"] == 78 and comparison["both_wrong"] == 7
    # Exact two-sided binomial p-value: 2 * P(X <= 3) for X ~ Binomial(15, 1/2) = 2 * 576 / 32768.
    assert comparison["p_value"] == pytest.approx(0.03515625)
    assert comparison["distinguishable"] is True
    assert describe_comparison("a", "b", comparison).startswith("a is more accurate than b: of the 15 test photos")
    same = compare_models(labels, a, a)
    assert same["p_value"] == 1.0 and same["distinguishable"] is False
    assert (
        describe_comparison("a", "a", same)
        == "a and a cannot be told apart: they get exactly the same test photos right."
    )


def test_models_must_be_scored_on_the_same_photos():
    with pytest.raises(ValueError, match="same photos"):
        compare_models([1, 0, 1], [1.0, 1.0, 1.0], [1.0, 1.0])
