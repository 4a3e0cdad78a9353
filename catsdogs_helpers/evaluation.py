"""Evaluating trained models: predictions on a split, their metrics (`metrics.py`), and what training cost."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from catsdogs_helpers.metrics import compute_metrics
from catsdogs_helpers.significance import compute_accuracy_interval


@dataclasses.dataclass
class ModelEvaluation:
    """A model's predictions on the test split, shape `(N,)` each, and their metrics (of `compute_test_metrics`);
    `tta_logits` (the mean of each photo's logit and its mirror image's) and `tta_metrics` are set only with test-time
    augmentation."""

    name: str
    labels: np.ndarray
    logits: np.ndarray
    metrics: dict[str, object]
    tta_logits: np.ndarray | None = None
    tta_metrics: dict[str, object] | None = None


def evaluate_model(
    model: keras.Model,
    dataset: tf.data.Dataset,
    name: str,
    class_names: Sequence[str] = ("cat", "dog"),
    tta: bool = False,
) -> ModelEvaluation:
    """Predicts batches of `(images, labels)` with a one-logit model and computes its metrics; with `tta` (test-time
    augmentation), each photo is also predicted mirrored left to right, and the two logits are averaged."""
    images = dataset.map(lambda images, labels: images)
    logits = np.asarray(model.predict(images, verbose=0), np.float32).reshape(-1)
    labels = np.concatenate([np.reshape(batch, -1) for _, batch in dataset.as_numpy_iterator()]).astype(np.int32)
    evaluation = ModelEvaluation(name, labels, logits, compute_test_metrics(labels, logits, class_names))
    if tta:
        mirrored = images.map(lambda batch: tf.reverse(batch, axis=[2]))  # (N, H, W, C): W is axis 2.
        mirrored_logits = np.asarray(model.predict(mirrored, verbose=0), np.float32).reshape(-1)
        evaluation.tta_logits = (logits + mirrored_logits) / 2.0
        evaluation.tta_metrics = compute_test_metrics(labels, evaluation.tta_logits, class_names)
    return evaluation


def compute_test_metrics(
    labels: Sequence[int] | np.ndarray,
    logits: Sequence[float] | np.ndarray,
    class_names: Sequence[str] = ("cat", "dog"),
) -> dict[str, object]:
    """Returns `metrics.compute_metrics` plus `"accuracy_interval"`: `[low, high]`, the 95% Wilson interval."""
    metrics = compute_metrics(labels, logits, class_names)
    num_correct = int(np.trace(metrics["confusion_matrix"]))
    metrics["accuracy_interval"] = list(compute_accuracy_interval(num_correct, metrics["num_images"]))
    return metrics


def count_params(model: keras.Model) -> tuple[int, int]:
    """Returns `(total, trainable)` numbers of weights of a model."""
    trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    return int(model.count_params()), trainable


def describe_model_cost(model: keras.Model, stages: Sequence, model_path: str | os.PathLike | None = None) -> dict:
    """Returns what training a model cost over its `stage_files.StageResult`s, and its size: a dict with
    `"train_seconds"`, `"images_per_second"` (over all stages), `"epochs"`, `"stages"` (one dict per stage),
    `"params_total"`, `"params_trainable"` and `"size_bytes"` (`None` without `model_path`)."""
    seconds = sum(float(stage.train_seconds) for stage in stages)
    images = sum(float(stage.images_per_second) * float(stage.train_seconds) for stage in stages)
    total, trainable = count_params(model)
    return {
        "train_seconds": seconds,
        "images_per_second": images / seconds if seconds else 0.0,
        "epochs": sum(int(stage.num_epochs) for stage in stages),
        "stages": [
            {
                "name": stage.name,
                "train_seconds": float(stage.train_seconds),
                "images_per_second": float(stage.images_per_second),
                "epochs": int(stage.num_epochs),
                "best_epoch": int(stage.best_epoch),
            }
            for stage in stages
        ],
        "params_total": total,
        "params_trainable": trainable,
        "size_bytes": os.path.getsize(model_path) if model_path is not None else None,
    }
