"""Tests of `catsdogs_helpers.results`: the schema, the table and the JSON file."""

from __future__ import annotations

import numpy as np
import pytest

from catsdogs_helpers.evaluation import ModelEvaluation, compute_test_metrics
from catsdogs_helpers.results import (
    build_results,
    describe_comparisons,
    format_results_table,
    load_results,
    save_results,
)

# Six photos: dogs (1) with logits 2.0, 0.3, -0.3; cats (0) with logits 0.5, 1.0, -2.0.
# Predicted dog where logit > 0: TP = 2 (2.0, 0.3), FN = 1 (-0.3), FP = 2 (0.5, 1.0), TN = 1 (-2.0).
LABELS = [1, 1, 1, 0, 0, 0]
LOGITS = [2.0, 0.3, -0.3, 0.5, 1.0, -2.0]
# Per-photo cross-entropy log(1 + exp(-z)) for dogs, log(1 + exp(z)) for cats:
# 0.126928011, 0.554355244, 0.854355244, 0.974076984, 1.313261688, 0.126928011.
EXPECTED_LOSS = 3.949905182 / 6
RIGHT = [1.0, 1.0, 1.0, -1.0, -1.0, -1.0]


def make_results() -> dict:
    evaluations = {
        "scratch": ModelEvaluation("scratch", np.array(LABELS), np.array(LOGITS), compute_test_metrics(LABELS, LOGITS)),
        # Right on all six photos; the scratch CNN gets photos 2, 3 and 4 wrong.
        "transfer": ModelEvaluation("transfer", np.array(LABELS), np.array(RIGHT), compute_test_metrics(LABELS, RIGHT)),
    }
    costs = {
        "scratch": {
            "train_seconds": 192.4,
            "images_per_second": 123.456,
            "params_total": 2_259_265,
            "params_trainable": 1_281,
            "size_bytes": 9_400_000,
        },
        "transfer": {"train_seconds": 45.0, "images_per_second": 10.0, "params_total": 5, "params_trainable": 5},
    }
    return build_results(
        evaluations, costs, {"seed": 1}, {"source": "x"}, {"tensorflow": "2.21"}, command="catsdogs run --preset quick"
    )


def test_build_results_schema():
    results = make_results()
    assert set(results) == {"models", "comparisons", "config", "data", "environment", "command"}
    scratch = results["models"]["scratch"]
    assert set(scratch["test"]) == {"accuracy", "loss", "precision", "recall", "f1", "auc", "accuracy_interval"}
    # Wilson's 95% interval for 3 right of 6 (scipy.stats.binomtest(3, 6).proportion_ci(method="wilson")).
    assert scratch["test"]["accuracy_interval"] == pytest.approx([0.1876163, 0.8123837])
    assert results["models"]["transfer"]["test"]["accuracy_interval"] == pytest.approx([0.6096657, 1.0])
    assert scratch["test_tta"] is None  # Not measured here.
    assert results["command"] == "catsdogs run --preset quick"
    assert scratch["confusion_matrix"] == [[1, 2], [1, 2]]
    assert scratch["num_test_images"] == 6
    assert scratch["per_class_accuracy"] == pytest.approx({"cat": 1 / 3, "dog": 2 / 3})
    assert scratch["params_total"] == 2_259_265
    assert results["config"] == {"seed": 1}


def test_models_are_compared_on_the_photos_where_they_disagree():
    (comparison,) = make_results()["comparisons"]
    assert comparison["models"] == ["scratch", "transfer"]
    assert (comparison["only_a_correct"], comparison["only_b_correct"]) == (0, 3)
    assert (comparison["both_correct"], comparison["both_wrong"]) == (3, 0)
    assert comparison["p_value"] == pytest.approx(0.25)  # Two-sided: 2 * 0.5**3.
    assert comparison["distinguishable"] is False
    (line,) = describe_comparisons(make_results())
    assert line.startswith(
        "scratch and transfer cannot be told apart: of the 3 test photos only one of them gets right"
    )
    assert "(exact McNemar test, p = 0.250)" in line


def test_format_results_table():
    results = make_results()
    results["models"]["scratch"]["test"]["accuracy"] = 0.9834
    table = format_results_table(results)
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("| model | test accuracy | 95% interval | with TTA | test loss | AUC | F1 |")
    scratch, transfer = lines[2], lines[3]
    for expected in (
        "| scratch |",
        "98.3% | 18.8–81.2% | — |",
        f"{EXPECTED_LOSS:.4f}",
        "0.5556",
        "0.5714",
        "3 min 12 s",
        "123.5",
    ):
        assert expected in scratch
    assert "1,281 / 2,259,265" in scratch
    assert "| 9.4 |" in scratch
    assert "45 s" in transfer and "min" not in transfer
    assert transfer.endswith("| — |")  # No size on disk.
    results["models"]["transfer"]["test"]["auc"] = float("nan")  # As for a test split of one class.
    assert "| — |" in format_results_table(results).splitlines()[3]


def test_save_and_load_results_round_trip(tmp_path):
    results = make_results()
    results["models"]["transfer"]["test"]["auc"] = float("nan")
    path = save_results(results, tmp_path / "nested" / "results.json")
    text = path.read_text()
    assert "NaN" not in text
    assert '"auc": null' in text  # The transfer model saw one class only.
    assert text.startswith('{\n  "models"')
    loaded = load_results(path)
    assert loaded["models"]["transfer"]["test"]["auc"] is None
    assert loaded["models"]["scratch"]["test"] == results["models"]["scratch"]["test"]
    assert format_results_table(loaded) == format_results_table(results)
    with pytest.raises(FileNotFoundError, match="Received"):
        load_results(tmp_path / "missing.json")
