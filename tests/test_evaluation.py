"""Tests of `catsdogs_helpers.evaluation` against values computed by hand."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from catsdogs_helpers.evaluation import (
    ModelEvaluation,
    build_results,
    compute_auc,
    compute_metrics,
    compute_roc_curve,
    count_params,
    describe_model_cost,
    evaluate_model,
    format_results_table,
    load_results,
    save_results,
)
from catsdogs_helpers.training import StageResult

# Six photos: dogs (1) with logits 2.0, 0.3, -0.3; cats (0) with logits 0.5, 1.0, -2.0.
# Predicted dog where logit > 0: TP = 2 (2.0, 0.3), FN = 1 (-0.3), FP = 2 (0.5, 1.0), TN = 1 (-2.0).
LABELS = [1, 1, 1, 0, 0, 0]
LOGITS = [2.0, 0.3, -0.3, 0.5, 1.0, -2.0]
# Per-photo cross-entropy log(1 + exp(-z)) for dogs, log(1 + exp(z)) for cats:
# 0.126928011, 0.554355244, 0.854355244, 0.974076984, 1.313261688, 0.126928011.
EXPECTED_LOSS = 3.949905182 / 6


def tiny_model(name: str = "tiny") -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(0.5, name="head_dropout")(x)
    outputs = keras.layers.Dense(1, name="logit")(x)
    return keras.Model(inputs, outputs, name=name)


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


def test_model_evaluation_probabilities():
    evaluation = ModelEvaluation("m", np.array([1, 0]), np.array([0.0, -1000.0]), {})
    np.testing.assert_allclose(evaluation.probabilities, [0.5, 0.0])


def test_evaluate_model_agrees_with_predict():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 8, 8, 3), dtype=np.uint8)
    labels = np.array([0, 1, 1, 0, 1, 0, 1], np.int32)
    model = tiny_model()
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(3)
    evaluation = evaluate_model(model, dataset, "scratch", ("cat", "dog"))
    logits = model.predict(images, verbose=0)
    assert evaluation.name == "scratch"
    assert evaluation.logits.shape == (7,)
    np.testing.assert_array_equal(evaluation.labels, labels)
    np.testing.assert_allclose(evaluation.logits, logits.reshape(-1), rtol=1e-5, atol=1e-6)
    expected = compute_metrics(labels, logits)
    assert evaluation.metrics["confusion_matrix"] == expected["confusion_matrix"]
    assert evaluation.metrics["loss"] == pytest.approx(expected["loss"], abs=1e-5)


def test_count_params_and_describe_model_cost(tmp_path):
    model = tiny_model()
    model.get_layer("conv").trainable = False
    # Conv: 3*3*3*4 + 4 = 112 (frozen); logit: 4 + 1 = 5.
    assert count_params(model) == (117, 5)
    model_path = tmp_path / "model.keras"
    model_path.write_bytes(b"x" * 1234)
    stages = [
        StageResult("transfer", {"epoch": [0, 1, 2]}, train_seconds=10.0, images_per_second=300.0, best_epoch=1),
        StageResult("finetune", {"epoch": [3, 4]}, train_seconds=30.0, images_per_second=100.0, best_epoch=4),
    ]
    cost = describe_model_cost(model, stages, model_path)
    assert cost["train_seconds"] == pytest.approx(40.0)
    assert cost["images_per_second"] == pytest.approx((3000 + 3000) / 40)
    assert cost["epochs"] == 5
    assert cost["stages"][1] == {
        "name": "finetune",
        "train_seconds": 30.0,
        "images_per_second": 100.0,
        "epochs": 2,
        "best_epoch": 4,
    }
    assert (cost["params_total"], cost["params_trainable"], cost["size_bytes"]) == (117, 5, 1234)
    assert describe_model_cost(model, stages)["size_bytes"] is None


def make_results() -> dict:
    evaluations = {
        "scratch": ModelEvaluation("scratch", np.array(LABELS), np.array(LOGITS), compute_metrics(LABELS, LOGITS)),
        "transfer": ModelEvaluation(
            "transfer", np.array([1, 1]), np.array([1.0, 2.0]), compute_metrics([1, 1], [1, 2])
        ),
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
    return build_results(evaluations, costs, {"seed": 1}, {"source": "x"}, {"tensorflow": "2.21"})


def test_build_results_schema():
    results = make_results()
    assert set(results) == {"models", "config", "data", "environment"}
    scratch = results["models"]["scratch"]
    assert set(scratch["test"]) == {"accuracy", "loss", "precision", "recall", "f1", "auc"}
    assert scratch["confusion_matrix"] == [[1, 2], [1, 2]]
    assert scratch["num_test_images"] == 6
    assert scratch["per_class_accuracy"] == pytest.approx({"cat": 1 / 3, "dog": 2 / 3})
    assert scratch["params_total"] == 2_259_265
    assert results["config"] == {"seed": 1}


def test_format_results_table():
    results = make_results()
    results["models"]["scratch"]["test"]["accuracy"] = 0.9834
    table = format_results_table(results)
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("| model | test accuracy | test loss | AUC | F1 |")
    scratch, transfer = lines[2], lines[3]
    for expected in ("| scratch |", "98.3%", f"{EXPECTED_LOSS:.4f}", "0.5556", "0.5714", "3 min 12 s", "123.5"):
        assert expected in scratch
    assert "1,281 / 2,259,265" in scratch
    assert "| 9.4 |" in scratch
    assert "45 s" in transfer and "min" not in transfer
    assert transfer.endswith("| — |")  # No size on disk.
    assert "| — |" in transfer  # Single-class AUC is NaN.


def test_save_and_load_results_round_trip(tmp_path):
    results = make_results()
    path = save_results(results, tmp_path / "nested" / "results.json")
    text = path.read_text()
    assert "NaN" not in text
    assert '"auc": null' in text  # The transfer model saw one class only.
    assert text.startswith('{\n  "models"')
    loaded = load_results(path)
    assert loaded["models"]["transfer"]["test"]["auc"] is None
    assert loaded["models"]["scratch"]["test"] == pytest.approx(results["models"]["scratch"]["test"])
    assert format_results_table(loaded) == format_results_table(results)
    with pytest.raises(FileNotFoundError, match="Received"):
        load_results(tmp_path / "missing.json")
