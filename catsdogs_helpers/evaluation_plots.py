"""The figures of the models' test results: confusion matrices, ROC curves, the most confident mistakes, Grad-CAM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from catsdogs_helpers.metrics import compute_auc, compute_roc_curve, predict_classes, sigmoid
from catsdogs_helpers.plots import CELL_INCHES, NotebookFigure, colors_for, photo_grid


def _said(logit: float, class_names: Sequence[str]) -> tuple[int, str]:
    """Returns the predicted class and e.g. "dog 97%" for a one-logit output."""
    predicted, probability = int(predict_classes(logit)), float(sigmoid(logit))
    return predicted, f"{class_names[predicted]} {max(probability, 1.0 - probability):.0%}"


def plot_confusion_matrices(matrices: Mapping[str, Sequence[Sequence[int]]], class_names: Sequence[str]) -> Figure:
    """Plots each model's 2x2 confusion matrix (rows: true class) side by side, with counts and row percentages."""
    figure = NotebookFigure(figsize=(3.6 * len(matrices), 3.6), layout="constrained")
    axes = figure.subplots(1, len(matrices), squeeze=False)[0]
    for ax, (name, matrix) in zip(axes, matrices.items()):
        matrix = np.asarray(matrix, dtype=np.int64)
        rows = matrix.sum(axis=1, keepdims=True)
        shares = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
        ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        for (row, column), count in np.ndenumerate(matrix):
            color = "white" if shares[row, column] > 0.6 else "black"
            ax.text(column, row, f"{count}\n{shares[row, column]:.1%}", ha="center", va="center", color=color)
        ax.set_xticks(range(len(class_names)), class_names)
        ax.set_yticks(range(len(class_names)), class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name)
    return figure


def plot_roc_curves(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    colors: Mapping[str, str] | None = None,
    zoom: bool | None = None,
) -> Figure:
    """Plots the models' ROC curves on one axes, with their AUC in the legend.

    Args:
        curves: `(labels, scores)` per model name; scores are logits or probabilities of class 1.
        colors: Colours per model name, overriding `MODEL_COLORS`.
        zoom: Add an inset magnifying the top-left corner; `None`: when every AUC is >= 0.9 (no curve runs under it).
    """
    palette = colors_for(list(curves), colors)
    figure = NotebookFigure(figsize=(5.2, 5.0), layout="constrained")
    ax = figure.subplots()
    ax.plot([0, 1], [0, 1], linestyle=":", color="gray", label="chance")
    points, aucs = {}, []
    for name, (labels, scores) in curves.items():
        points[name] = compute_roc_curve(labels, scores)
        aucs.append(compute_auc(labels, scores))
        ax.plot(*points[name], color=palette[name], linewidth=2, label=f"{name} (AUC {aucs[-1]:.4f})")
    ax.set_xlim(-0.01, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curves")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    if zoom or (zoom is None and aucs and all(auc >= 0.9 for auc in aucs)):
        inset = ax.inset_axes((0.4, 0.38, 0.52, 0.42), xlim=(-0.002, 0.2), ylim=(0.8, 1.002))
        for name, (fpr, tpr) in points.items():
            inset.plot(fpr, tpr, color=palette[name], linewidth=2)
        inset.set_title("top-left corner", fontsize=8)
        inset.tick_params(labelsize=7)
        inset.grid(alpha=0.3)
        ax.indicate_inset_zoom(inset, edgecolor="gray")
    return figure


def find_mistakes(
    labels: Sequence[int] | np.ndarray, logits_by_model: Mapping[str, np.ndarray], num_per_model: int | None = 6
) -> dict[str, np.ndarray]:
    """Returns each model's wrong photos' indices, most confident (largest |logit|) first; `num_per_model=None`: all."""
    labels = np.asarray(labels).reshape(-1)
    found = {}
    for name, logits in logits_by_model.items():
        logits = np.asarray(logits, dtype=float).reshape(-1)
        wrong = np.flatnonzero(predict_classes(logits) != labels)
        found[name] = wrong[np.argsort(-np.abs(logits[wrong]), kind="stable")][:num_per_model]
    return found


def plot_mistakes(
    photos: Mapping[int, np.ndarray],
    labels: Sequence[int],
    logits_by_model: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    num_per_model: int = 6,
) -> Figure:
    """Plots each model's most confident mistakes, one row per model, each titled like "true cat, said dog 97%".

    Args:
        photos: Test photos by index, uint8, each `(H, W, 3)`: at least those `find_mistakes` picks, not all.
        labels: True classes of the whole test split, shape `(N,)`.
        logits_by_model: Logits of the whole test split per model name, shape `(N,)`.
    """
    labels = np.asarray(labels).reshape(-1)
    figure, axes = photo_grid(len(logits_by_model), max(1, num_per_model), row_inches=CELL_INCHES + 0.2)
    every_mistake = find_mistakes(labels, logits_by_model, None)
    for row, (name, logits) in zip(axes, logits_by_model.items()):
        logits = np.asarray(logits, dtype=float).reshape(-1)
        wrong = every_mistake[name]
        row[0].set_ylabel(f"{name}\n{len(wrong)} mistake{'s' * (len(wrong) != 1)}", fontsize=11)
        for column, ax in enumerate(row):
            if column < len(wrong):
                index = int(wrong[column])
                ax.imshow(photos[index])
                _, said = _said(logits[index], class_names)
                ax.set_title(f"true {class_names[labels[index]]}, said {said}", fontsize=9)
            elif column == len(wrong):
                message = "no more mistakes" if len(wrong) else "no mistakes"
                ax.text(0.5, 0.5, message, ha="center", va="center", color="gray", transform=ax.transAxes)
    return figure


def plot_grad_cam(
    images: np.ndarray,
    heatmaps_by_model: Mapping[str, np.ndarray],
    labels: Sequence[int],
    logits_by_model: Mapping[str, np.ndarray],
    class_names: Sequence[str],
) -> Figure:
    """Plots photos next to each model's Grad-CAM heatmap, one row per photo.

    Args:
        images: Photos, uint8, shape `(N, H, W, 3)`.
        heatmaps_by_model: Heatmaps in [0, 1] per model name, shape `(N, H, W)`.
        logits_by_model: Logits per model name, shape `(N,)`; heatmap titles, green when right, red when wrong.
    """
    images, labels = np.asarray(images), np.asarray(labels).reshape(-1)
    figure, axes = photo_grid(len(images), 1 + len(heatmaps_by_model), row_inches=CELL_INCHES + 0.1)
    for index, row in enumerate(axes[: len(images)]):
        row[0].imshow(images[index])
        row[0].set_title(f"true {class_names[labels[index]]}", fontsize=10)
        for ax, (name, heatmaps) in zip(row[1:], heatmaps_by_model.items()):
            ax.imshow(images[index])
            ax.imshow(np.asarray(heatmaps)[index], cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
            predicted, said = _said(float(np.asarray(logits_by_model[name]).reshape(-1)[index]), class_names)
            color = "darkgreen" if predicted == labels[index] else "firebrick"
            ax.set_title(f"{name}: {said}", fontsize=10, color=color)
    return figure
