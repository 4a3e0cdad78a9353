"""The study's results (`results.json`, its schema in CONTRIBUTING.md): the dict, its markdown table, its file."""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path

import numpy as np

from catsdogs_helpers.evaluation import ModelEvaluation
from catsdogs_helpers.metrics import TEST_METRICS
from catsdogs_helpers.output_lock import write_text_atomically
from catsdogs_helpers.significance import compare_models, describe_comparison


def build_results(
    evaluations: dict[str, ModelEvaluation],
    costs: dict[str, dict],
    config: dict,
    data: dict,
    environment: dict,
    command: str | None = None,
) -> dict:
    """Gathers the study's results into one JSON-serializable dict.

    Args:
        evaluations: `ModelEvaluation` per model name, all on the same test photos.
        costs: `describe_model_cost` output per model name (may lack some models).

    Returns:
        `{"models": {name: {"test", "test_tta" (or None), "per_class_accuracy", "confusion_matrix",
        "num_test_images", **cost}}, "comparisons": [{"models": [a, b], ...}], "config", "data",
        "environment", "command"}`.
    """
    models = {}
    reported = (*TEST_METRICS, "accuracy_interval")
    for name, evaluation in evaluations.items():
        metrics, tta = evaluation.metrics, evaluation.tta_metrics
        models[name] = {
            "test": {key: metrics[key] for key in reported},
            "test_tta": None if tta is None else {key: tta[key] for key in reported},
            "per_class_accuracy": dict(metrics["per_class_accuracy"]),
            "confusion_matrix": [list(row) for row in metrics["confusion_matrix"]],
            "num_test_images": int(metrics["num_images"]),
            **costs.get(name, {}),
        }
    comparisons = [
        {"models": [a.name, b.name], **compare_models(a.labels, a.logits, b.logits)}
        for a, b in itertools.combinations(evaluations.values(), 2)
    ]
    return {
        "models": models,
        "comparisons": comparisons,
        "config": config,
        "data": data,
        "environment": environment,
        "command": command,
    }


def describe_comparisons(results: dict) -> list[str]:
    """Says for each pair of models whether their test accuracies differ by more than noise (one line each)."""
    return [describe_comparison(*item["models"], item) for item in results.get("comparisons", [])]


def _format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = round(seconds)
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _format_number(value: float | None, spec: str) -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, spec)


def _format_interval(interval: list[float] | None) -> str:
    return f"{100 * interval[0]:.1f}–{100 * interval[1]:.1f}%" if interval else "—"


def format_results_table(results: dict) -> str:
    """Formats the models' results as a GitHub markdown table, one row per model."""
    lines = [
        "| model | test accuracy | 95% interval | with TTA | test loss | AUC | F1 | training time "
        "| training images/s | parameters trainable / total | size on disk (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, model in results["models"].items():
        test = model["test"]
        size = model.get("size_bytes")
        params = (
            f"{model['params_trainable']:,} / {model['params_total']:,}"
            if "params_total" in model and "params_trainable" in model
            else "—"
        )
        tta = model.get("test_tta") or {}
        cells = [
            name,
            _format_number(test["accuracy"], ".1%"),
            _format_interval(test.get("accuracy_interval")),
            _format_number(tta.get("accuracy"), ".1%"),
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


def replace_nan(value: object) -> object:
    """Returns a copy of nested dicts and lists with NaN and infinities as `None`, NumPy scalars as Python ones.

    >>> replace_nan({"auc": float("nan"), "scores": [1.0, float("inf")]})
    {'auc': None, 'scores': [1.0, None]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: replace_nan(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [replace_nan(item) for item in value]
    if isinstance(value, np.generic):
        return replace_nan(value.item())
    return value


def save_results(results: dict, path: str | os.PathLike) -> Path:
    """Writes results as JSON (NaN and infinities as `null`), whole or not at all; returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomically(path, json.dumps(replace_nan(results), indent=2, allow_nan=False) + "\n")


def load_results(path: str | os.PathLike) -> dict:
    """Reads results written by `save_results`; a missing file raises `FileNotFoundError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"The results file does not exist: {path}. Received: path={str(path)!r}")
    return json.loads(path.read_text())
