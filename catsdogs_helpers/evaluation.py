"""Test metrics from logits, model costs, and the study's results file and table.

The models output one logit per photo (no sigmoid): the probability of class 1
is `sigmoid(logit)` and the predicted class is `logit > 0`. Everything here
returns plain Python numbers, so results can be written to JSON as they are.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

TEST_METRICS = ("accuracy", "loss", "precision", "recall", "f1", "auc")


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # Stable for large |logit|.


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
    """Computes the ROC AUC by the Mann-Whitney rank formula, ties counting half.

    Args:
        labels: True classes, 0 or 1.
        scores: Scores of class 1 (logits or probabilities; only their order matters).

    Returns:
        The AUC, or NaN if only one class is present.
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
        logits: The model's logits, one per image (a logit above 0 predicts class 1).
        class_names: Names of classes 0 and 1. Defaults to `("cat", "dog")`.

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
    predictions = (logits > 0).astype(np.int64)
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
        scores: Scores of class 1 (logits or probabilities; only their order matters).

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
        return _sigmoid(np.asarray(self.logits, dtype=np.float64))


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


def build_results(
    evaluations: dict[str, ModelEvaluation], costs: dict[str, dict], config: dict, data: dict, environment: dict
) -> dict:
    """Gathers the study's results into one JSON-serializable dict.

    Args:
        evaluations: `ModelEvaluation` per model name.
        costs: `describe_model_cost` output per model name (may lack some models).
        config: The study's settings.
        data: What data was used (source, counts, skipped files).
        environment: Versions and hardware.

    Returns:
        `{"models": {name: {"test": {...}, "per_class_accuracy", "confusion_matrix",
        "num_test_images", **cost}}, "config", "data", "environment"}`.
    """
    models = {}
    for name, evaluation in evaluations.items():
        metrics = evaluation.metrics
        models[name] = {
            "test": {key: metrics[key] for key in TEST_METRICS},
            "per_class_accuracy": dict(metrics["per_class_accuracy"]),
            "confusion_matrix": [list(row) for row in metrics["confusion_matrix"]],
            "num_test_images": int(metrics["num_images"]),
            **costs.get(name, {}),
        }
    return {"models": models, "config": config, "data": data, "environment": environment}


def _format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = round(seconds)
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _format_number(value: float | None, spec: str) -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, spec)


def format_results_table(results: dict) -> str:
    """Formats the models' results as a GitHub markdown table, one row per model."""
    lines = [
        "| model | test accuracy | test loss | AUC | F1 | training time | training images/s "
        "| parameters trainable / total | size on disk (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, model in results["models"].items():
        test = model["test"]
        size = model.get("size_bytes")
        params = (
            f"{model['params_trainable']:,} / {model['params_total']:,}"
            if "params_total" in model and "params_trainable" in model
            else "—"
        )
        cells = [
            name,
            _format_number(test["accuracy"], ".1%"),
            _format_number(test["loss"], ".4f"),
            _format_number(test["auc"], ".4f"),
            _format_number(test["f1"], ".4f"),
            _format_duration(model.get("train_seconds")),
            _format_number(model.get("images_per_second"), ".1f"),
            params,
            "—" if size is None else f"{size / 1e6:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _replace_nan(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _replace_nan(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace_nan(item) for item in value]
    if isinstance(value, np.generic):
        return _replace_nan(value.item())
    return value


def save_results(results: dict, path: str | os.PathLike) -> Path:
    """Writes results as JSON (NaN and infinities as `null`), creating parent folders.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_replace_nan(results), indent=2, allow_nan=False) + "\n")
    return path


def load_results(path: str | os.PathLike) -> dict:
    """Reads results written by `save_results`.

    Raises:
        FileNotFoundError: If the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"The results file does not exist: {path}. Received: path={str(path)!r}")
    return json.loads(path.read_text())
