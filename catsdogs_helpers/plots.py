"""The study's figures: sample photos, learning curves, confusion matrices, ROC, mistakes, Grad-CAM.

Every function builds a new `matplotlib.figure.Figure` and returns it; nothing
is shown, closed or configured globally. The figures are not registered with
pyplot, so they are never shown twice nor kept alive by it: in a notebook, make
one the last expression of a cell (or `display` it); write it with
`save_figure`. Each model keeps one colour in every figure.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator
from matplotlib.transforms import blended_transform_factory

from catsdogs_helpers.metrics import compute_auc, compute_roc_curve, predict_classes, sigmoid
from catsdogs_helpers.output_lock import written_atomically

MODEL_COLORS = {"scratch": "tab:orange", "transfer": "tab:blue", "finetuned": "tab:green"}
_SPARE_COLORS = ("tab:purple", "tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
_CELL_INCHES = 2.3


class _Figure(Figure):
    """A `Figure` that IPython displays as a PNG even when pyplot was never imported."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def _colors_for(names: Sequence[str], colors: Mapping[str, str] | None) -> dict[str, str]:
    chosen = {**MODEL_COLORS, **(colors or {})}
    spare = iter(color for color in _SPARE_COLORS if color not in chosen.values())
    return {name: chosen[name] if name in chosen else next(spare, "black") for name in names}


def _hide_ticks(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _said(logit: float, class_names: Sequence[str]) -> tuple[int, str]:
    """Returns the predicted class and e.g. "dog 97%" for a one-logit output."""
    predicted, probability = int(predict_classes(logit)), float(sigmoid(logit))
    return predicted, f"{class_names[predicted]} {max(probability, 1.0 - probability):.0%}"


def plot_samples(
    images: np.ndarray, labels: Sequence[int], class_names: Sequence[str], num_images: int = 9, title: str | None = None
) -> Figure:
    """Plots a grid of photos titled with their class.

    Args:
        images: Photos, uint8, shape `(N, H, W, 3)`.
        labels: Their classes.
        class_names: Class names; label `i` means `class_names[i]`.
        num_images: At most this many photos are shown. Defaults to `9`.
        title: Title of the figure, or `None`. Defaults to `None`.

    Returns:
        The figure.
    """
    images, labels = np.asarray(images), np.asarray(labels).reshape(-1)
    count = max(1, min(num_images, len(images)))
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    figure = _Figure(figsize=(_CELL_INCHES * columns, _CELL_INCHES * rows + 0.3), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for index, ax in enumerate(axes):
        _hide_ticks(ax)
        if index < min(count, len(images)):
            ax.imshow(images[index])
            ax.set_title(class_names[int(labels[index])])
    if title:
        figure.suptitle(title)
    return figure


def plot_learning_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    fine_tune_starts: Mapping[str, int] | None = None,
    colors: Mapping[str, str] | None = None,
) -> Figure:
    """Plots training and validation accuracy and loss per epoch, one colour per model.

    Args:
        histories: Keras-style histories per model name, with keys `"epoch"`
            (0-based), `"accuracy"`, `"val_accuracy"`, `"loss"` and `"val_loss"`.
        fine_tune_starts: Per model name, the 0-based index of its first
            fine-tuning epoch (the `initial_epoch` of that stage); a dotted line
            marks it. Defaults to `None`.
        colors: Colours per model name, overriding `MODEL_COLORS`. Defaults to `None`.

    Returns:
        The figure: accuracy on the left, loss on the right (from 0 up to a
        limit that ignores a few outlying values, such as a bad first epoch).
    """
    palette = _colors_for(list(histories), colors)
    figure = _Figure(figsize=(11, 4.2), layout="constrained")
    accuracy_ax, loss_ax = figure.subplots(1, 2)
    losses = []
    for name, history in histories.items():
        epochs = np.asarray(history.get("epoch", range(len(history["loss"]))), dtype=float) + 1
        for ax, key in ((accuracy_ax, "accuracy"), (loss_ax, "loss")):
            for prefix, style, split in (("", "-", "train"), ("val_", "--", "validation")):
                if prefix + key in history:
                    values = np.asarray(history[prefix + key], dtype=float)
                    marker = "o" if len(values) < 3 else None  # A line of one point would not show.
                    ax.plot(epochs, values, style, marker=marker, color=palette[name], label=f"{name} {split}")
                    if key == "loss":
                        losses.append(values)
    for name, start in (fine_tune_starts or {}).items():
        # Label where the curves are not: low on the accuracy axes, high on the loss axes.
        for ax, y, va in ((accuracy_ax, 0.03, "bottom"), (loss_ax, 0.97, "top")):
            ax.axvline(start + 0.5, color=palette.get(name, "gray"), linestyle=":", linewidth=1.5)
            x_data_y_axes = blended_transform_factory(ax.transData, ax.transAxes)
            ax.text(start + 0.5, y, "fine-tuning starts ", transform=x_data_y_axes, rotation=90,
                    ha="right", va=va, fontsize=8, color="dimgray")  # fmt: skip
    finite = np.concatenate(losses) if losses else np.empty(0)
    finite = finite[np.isfinite(finite)]
    if finite.size:
        top = min(1.05 * finite.max(), 1.1 * np.percentile(finite, 95))
        loss_ax.set_ylim(0.0, top if top > 0 else 1.0)
    for ax, title in ((accuracy_ax, "Accuracy"), (loss_ax, "Loss")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(title.lower())
        ax.grid(alpha=0.3)
    accuracy_ax.xaxis.get_major_locator().set_params(integer=True)
    loss_ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = accuracy_ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(4, max(1, len(labels))), frameon=False)
    return figure


def plot_confusion_matrices(matrices: Mapping[str, Sequence[Sequence[int]]], class_names: Sequence[str]) -> Figure:
    """Plots each model's confusion matrix side by side, with counts and row percentages.

    Args:
        matrices: 2x2 confusion matrices per model name (rows: true class,
            columns: predicted class).
        class_names: Class names.

    Returns:
        The figure.
    """
    figure = _Figure(figsize=(3.6 * len(matrices), 3.6), layout="constrained")
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
        colors: Colours per model name, overriding `MODEL_COLORS`. Defaults to `None`.
        zoom: Add an inset magnifying the top-left corner, where good models'
            curves crowd together; `None` adds it when every AUC is at least 0.9
            (so no curve runs under it). Defaults to `None`.

    Returns:
        The figure.
    """
    palette = _colors_for(list(curves), colors)
    figure = _Figure(figsize=(5.2, 5.0), layout="constrained")
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
    """Finds each model's most confident mistakes.

    Args:
        labels: True classes, shape `(N,)`.
        logits_by_model: Logits per model name, shape `(N,)`.
        num_per_model: Keep this many per model, or `None` for all. Defaults to `6`.

    Returns:
        Indices of the wrong photos per model name, the most confident mistake
        (largest |logit|) first.
    """
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
    """Plots each model's most confident mistakes, one row per model.

    Args:
        photos: Test photos by index, uint8, each `(H, W, 3)`: at least the ones
            `find_mistakes` picks (the whole split need not be in memory).
        labels: True classes of the whole test split, shape `(N,)`.
        logits_by_model: Logits of the whole test split per model name, shape `(N,)`.
        class_names: Class names.
        num_per_model: Mistakes shown per model. Defaults to `6`.

    Returns:
        The figure; each row is labelled with the model's number of mistakes,
        each photo titled like "true cat, said dog 97%".
    """
    labels = np.asarray(labels).reshape(-1)
    rows, columns = len(logits_by_model), max(1, num_per_model)
    figure = _Figure(figsize=(_CELL_INCHES * columns, (_CELL_INCHES + 0.2) * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    every_mistake = find_mistakes(labels, logits_by_model, None)
    for row, (name, logits) in zip(axes, logits_by_model.items()):
        logits = np.asarray(logits, dtype=float).reshape(-1)
        wrong = every_mistake[name]
        row[0].set_ylabel(f"{name}\n{len(wrong)} mistake{'s' * (len(wrong) != 1)}", fontsize=11)
        for column, ax in enumerate(row):
            _hide_ticks(ax)
            if column < len(wrong):
                index = int(wrong[column])
                ax.imshow(photos[index])
                _, said = _said(logits[index], class_names)
                ax.set_title(f"true {class_names[labels[index]]}, said {said}", fontsize=9)
            elif column == len(wrong):
                message = "no more mistakes" if len(wrong) else "no mistakes"
                ax.text(0.5, 0.5, message, ha="center", va="center", color="gray", transform=ax.transAxes)
    return figure


def plot_augmentation(original: np.ndarray, augmented: np.ndarray, title: str | None = None) -> Figure:
    """Plots a photo next to random augmentations of it.

    Args:
        original: The photo, uint8 or float in [0, 255], shape `(H, W, 3)`.
        augmented: Augmented versions, shape `(N, H, W, 3)`, same range.
        title: Title of the figure, or `None`. Defaults to `None`.

    Returns:
        The figure: the original first, then the augmented versions.
    """
    images = np.concatenate([np.asarray(original)[None], np.asarray(augmented)])
    images = np.uint8(np.clip(np.round(images), 0, 255))
    count = len(images)
    columns = min(count, 5)
    rows = math.ceil(count / columns)
    figure = _Figure(figsize=(_CELL_INCHES * columns, _CELL_INCHES * rows + 0.3), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for index, ax in enumerate(axes):
        _hide_ticks(ax)
        if index < count:
            ax.imshow(images[index])
            ax.set_title("original" if index == 0 else f"augmented {index}", fontsize=10)
    if title:
        figure.suptitle(title)
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
        labels: The photos' true classes.
        logits_by_model: Logits per model name, shape `(N,)`.
        class_names: Class names.

    Returns:
        The figure; each heatmap is titled with the model's prediction, green
        when right and red when wrong.
    """
    images, labels = np.asarray(images), np.asarray(labels).reshape(-1)
    rows, columns = len(images), 1 + len(heatmaps_by_model)
    figure = _Figure(figsize=(_CELL_INCHES * columns, (_CELL_INCHES + 0.1) * rows), layout="constrained")
    axes = figure.subplots(max(rows, 1), columns, squeeze=False)
    for index, row in enumerate(axes[:rows]):
        row[0].imshow(images[index])
        row[0].set_title(f"true {class_names[labels[index]]}", fontsize=10)
        for ax, (name, heatmaps) in zip(row[1:], heatmaps_by_model.items()):
            ax.imshow(images[index])
            ax.imshow(np.asarray(heatmaps)[index], cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
            predicted, said = _said(float(np.asarray(logits_by_model[name]).reshape(-1)[index]), class_names)
            color = "darkgreen" if predicted == labels[index] else "firebrick"
            ax.set_title(f"{name}: {said}", fontsize=10, color=color)
        for ax in row:
            _hide_ticks(ax)
    return figure


_SWEEP_MARKERS = ("o", "s", "^", "D")


def plot_sweep(
    summary: Sequence[Mapping[str, object]], points: Sequence[Mapping[str, object]] = (), title: str | None = None
) -> Figure:
    """Plots test accuracy and training time against the photos of each subset, one line per approach.

    Args:
        summary: Rows of `sweep.summarize_sweep`: `approach`, `size`, `accuracy`,
            `accuracy_interval` (95%, fractions) and `train_seconds` per approach and size.
        points: The sweep's single points (one per seed); with more than one
            seed per size, each is drawn as a faint dot. Defaults to `()`.
        title: A title over both panels (what was run, on what), or `None`. Defaults to `None`.

    Returns:
        The figure: accuracy (%, with the intervals as error bars, each value
        written by its bar) on the left, training time (s) on the right; both against the subset's photos
        (its training and validation parts together) on a log scale.
    """
    approaches = list(dict.fromkeys(str(row["approach"]) for row in summary))
    palette = _colors_for(approaches, None)
    means = {name: np.mean([row["accuracy"] for row in summary if row["approach"] == name]) for name in approaches}
    top = max(approaches, key=means.get)  # Its values are written above its points, the others' below.
    figure = _Figure(figsize=(11, 4.2), layout="constrained")
    accuracy_ax, time_ax = figure.subplots(1, 2)
    for index, approach in enumerate(approaches):
        rows = sorted((row for row in summary if row["approach"] == approach), key=lambda row: row["size"])
        sizes = np.array([row["size"] for row in rows], dtype=float)
        # Lines that lie on top of one another (transfer and finetuned) are told apart by their markers and by a
        # small sideways shift of each approach's error bars (a few percent, on the log scale).
        shifted = sizes * 1.04 ** (index - (len(approaches) - 1) / 2)
        marker = _SWEEP_MARKERS[index % len(_SWEEP_MARKERS)]
        accuracy = np.array([100 * row["accuracy"] for row in rows])
        interval = 100 * np.array([row["accuracy_interval"] for row in rows]).reshape(-1, 2)
        color = palette[approach]
        accuracy_ax.errorbar(shifted, accuracy, yerr=[accuracy - interval[:, 0], interval[:, 1] - accuracy],
                             color=color, marker=marker, capsize=3, label=approach)  # fmt: skip
        for x, value, (low, high) in zip(shifted, accuracy, interval):
            above = approach == top
            accuracy_ax.annotate(f"{value:.1f}", (x, high if above else low), xytext=(0, 3 if above else -3),
                                 textcoords="offset points", ha="center", va="bottom" if above else "top",
                                 fontsize=8, color=color)  # fmt: skip
        own = [point for point in points if point["approach"] == approach]
        if len(own) > len(rows):
            accuracy_ax.scatter([p["size"] for p in own], [100 * p["accuracy"] for p in own], s=12,
                                color=color, alpha=0.4, linewidths=0)  # fmt: skip
        time_ax.plot(sizes, [row["train_seconds"] for row in rows], color=color, marker=marker, label=approach)
    all_sizes = sorted({row["size"] for row in summary})
    for ax in (accuracy_ax, time_ax):
        ax.set_xscale("log")
        ax.set_xlabel("photos in the subset, training + validation parts (log scale)")
        ax.grid(alpha=0.3, which="major")
        ax.set_xticks(all_sizes, [f"{size:,}" for size in all_sizes])
        ax.xaxis.set_minor_locator(NullLocator())
    lows = [100 * row["accuracy_interval"][0] for row in summary]
    highs = [100 * row["accuracy_interval"][1] for row in summary]
    accuracy_ax.set_ylim(min(lows) - 4, max(highs) + 2.5)  # Room for the values written below and above the bars.
    accuracy_ax.set_ylabel("test accuracy (%)")
    accuracy_ax.set_title("Test accuracy (bars: 95% interval for the test split's size)", fontsize=11)
    time_ax.set_yscale("log")
    time_ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 10, 20, 50, 100, ... seconds.
    time_ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 100, not 10^2.
    time_ax.yaxis.set_minor_formatter(NullFormatter())
    time_ax.set_ylabel("training time (s, log scale)")
    time_ax.set_title("Training time per point (finetuned: the head's included)", fontsize=11)
    handles, labels = accuracy_ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=max(1, len(labels)), frameon=False)
    if title:
        figure.suptitle(title, fontsize=11)
    return figure


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Saves a figure as a PNG (120 dpi, tight bounding box), whole or not at all, creating parent folders.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_atomically(path) as temporary:
        figure.savefig(temporary, dpi=120, bbox_inches="tight")
    return path
