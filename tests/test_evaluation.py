"""Tests of `catsdogs_helpers.evaluation`: predictions on a split, and what training cost."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from catsdogs_helpers.evaluation import count_params, describe_model_cost, evaluate_model
from catsdogs_helpers.metrics import compute_metrics
from catsdogs_helpers.stage_files import StageResult


def tiny_model(name: str = "tiny") -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(0.5, name="head_dropout")(x)
    outputs = keras.layers.Dense(1, name="logit")(x)
    return keras.Model(inputs, outputs, name=name)


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


def test_test_time_augmentation_averages_each_photos_logit_with_its_mirrors():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    labels = np.array([0, 1, 1, 0, 1], np.int32)
    model = tiny_model()
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
    evaluation = evaluate_model(model, dataset, "scratch", tta=True)
    mirrored = images[:, :, ::-1, :]  # Left-right: the width axis of (N, H, W, C).
    expected = (model.predict(images, verbose=0) + model.predict(mirrored, verbose=0)).reshape(-1) / 2
    np.testing.assert_allclose(evaluation.tta_logits, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(evaluation.tta_logits, evaluation.logits)  # The mirror changes what this model sees.
    assert evaluation.tta_metrics["accuracy"] == compute_metrics(labels, expected)["accuracy"]
    low, high = evaluation.tta_metrics["accuracy_interval"]
    assert 0.0 <= low <= evaluation.tta_metrics["accuracy"] <= high <= 1.0
    assert evaluate_model(model, dataset, "scratch").tta_logits is None  # Off unless asked for.


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
