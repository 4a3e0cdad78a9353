"""Evaluating trained models: predictions on a split, their metrics, and what training cost.

See `metrics.py` for how metrics follow from logits and `results.py` for the
results file that gathers them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from catsdogs_helpers.metrics import compute_metrics, sigmoid


@dataclasses.dataclass
class ModelEvaluation:
    """A model's predictions on the test split and their metrics.

    Attributes:
        name: The model's name in the study, e.g. `"scratch"`.
        labels: True classes, shape `(N,)`, int.
        logits: The model's logits, shape `(N,)`, float.
        metrics: The output of `compute_metrics`.
    """

    name: str
    labels: np.ndarray
    logits: np.ndarray
    metrics: dict[str, object]

    @property
    def probabilities(self) -> np.ndarray:
        """Probabilities of class 1, `sigmoid(logits)`."""
        return sigmoid(self.logits)


def evaluate_model(
    model: keras.Model, dataset: tf.data.Dataset, name: str, class_names: Sequence[str] = ("cat", "dog")
) -> ModelEvaluation:
    """Predicts a batched dataset with a one-logit model and computes its metrics.

    Args:
        model: A model with one logit output.
        dataset: Batches of `(images, labels)` in a fixed order.
        name: The model's name in the study.
        class_names: Names of classes 0 and 1. Defaults to `("cat", "dog")`.

    Returns:
        A `ModelEvaluation`.
    """
    logits = np.asarray(model.predict(dataset.map(lambda images, labels: images), verbose=0), np.float32)
    labels = np.concatenate([np.reshape(batch, -1) for _, batch in dataset.as_numpy_iterator()]).astype(np.int32)
    logits = logits.reshape(-1)
    return ModelEvaluation(name, labels, logits, compute_metrics(labels, logits, class_names))


def count_params(model: keras.Model) -> tuple[int, int]:
    """Returns `(total, trainable)` numbers of weights of a model."""
    trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    return int(model.count_params()), trainable


def describe_model_cost(model: keras.Model, stages: Sequence, model_path: str | os.PathLike | None = None) -> dict:
    """Sums what training a model cost over its stages, with its size.

    Args:
        model: The trained model.
        stages: The `training.StageResult`s that trained it, in order.
        model_path: The saved model file, or `None`. Defaults to `None`.

    Returns:
        A dict with `"train_seconds"`, `"images_per_second"` (training images
        processed per second over all stages), `"epochs"`, `"stages"` (one dict
        per stage), `"params_total"`, `"params_trainable"` and `"size_bytes"`
        (`None` without `model_path`).
    """
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
