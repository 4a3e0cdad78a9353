"""The figures of the photos and of training: sample photos, augmentation, learning curves, the sweep.

Every function returns a new `matplotlib.figure.Figure` (pyplot never holds it, nothing global changes); write one with
`save_figure`. Each model keeps one colour in every figure. The test results' figures are in `evaluation_plots`.
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

from catsdogs_helpers.output_lock import written_atomically

MODEL_COLORS = {"scratch": "tab:orange", "transfer": "tab:blue", "finetuned": "tab:green"}
_SPARE_COLORS = ("tab:purple", "tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
CELL_INCHES = 2.3  # The side of one photo's cell in a grid.


class NotebookFigure(Figure):
    """A `Figure` that IPython displays as a PNG even when pyplot was never imported."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def colors_for(names: Sequence[str], colors: Mapping[str, str] | None = None) -> dict[str, str]:
    """Returns a colour per model name: `colors`, else `MODEL_COLORS`, else a spare one."""
    chosen = {**MODEL_COLORS, **(colors or {})}
    spare = iter(color for color in _SPARE_COLORS if color not in chosen.values())
    return {name: chosen[name] if name in chosen else next(spare, "black") for name in names}


def photo_grid(rows: int, columns: int, row_inches: float = CELL_INCHES, extra_inches: float = 0.0):
    """Returns a new figure and its `(rows, columns)` array of axes, without ticks or frames, for photos."""
    figure = NotebookFigure(figsize=(CELL_INCHES * columns, row_inches * rows + extra_inches), layout="constrained")
    axes = figure.subplots(max(rows, 1), columns, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    return figure, axes


def _plot_photos(images, titles: Sequence[str], columns: int, title: str | None, **title_style) -> Figure:
    figure, axes = photo_grid(math.ceil(len(titles) / columns), columns, extra_inches=0.3)
    for ax, image, text in zip(axes.flat, images, titles):
        ax.imshow(image)
        ax.set_title(text, **title_style)
    if title:
        figure.suptitle(title)
    return figure


def plot_samples(
    images: np.ndarray, labels: Sequence[int], class_names: Sequence[str], num_images: int = 9, title: str | None = None
) -> Figure:
    """Plots up to `num_images` photos (uint8, shape `(N, H, W, 3)`) titled with their class, `class_names[label]`."""
    images, labels = np.asarray(images), np.asarray(labels).reshape(-1)
    count = max(1, min(num_images, len(images)))
    titles = [class_names[int(label)] for label in labels[: min(count, len(images))]]
    return _plot_photos(images, titles, math.ceil(math.sqrt(count)), title)


def plot_augmentation(original: np.ndarray, augmented: np.ndarray, title: str | None = None) -> Figure:
    """Plots a photo `(H, W, 3)` and then its augmentations `(N, H, W, 3)`, both in [0, 255], 5 a row."""
    images = np.concatenate([np.asarray(original)[None], np.asarray(augmented)])
    images = np.uint8(np.clip(np.round(images), 0, 255))
    titles = ["original", *(f"augmented {index}" for index in range(1, len(images)))]
    return _plot_photos(images, titles, min(len(images), 5), title, fontsize=10)


def plot_learning_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    fine_tune_starts: Mapping[str, int] | None = None,
    colors: Mapping[str, str] | None = None,
) -> Figure:
    """Plots training and validation accuracy (left) and loss (right) per epoch, one colour per model.

    Args:
        histories: Keras-style histories per model name, with keys `"epoch"` (0-based), `"accuracy"`, `"val_accuracy"`,
            `"loss"` and `"val_loss"`.
        fine_tune_starts: Per model name, the 0-based index of its first fine-tuning epoch; a dotted line marks it.
        colors: Colours per model name, overriding `MODEL_COLORS`.
    """
    palette = colors_for(list(histories), colors)
    figure = NotebookFigure(figsize=(11, 4.2), layout="constrained")
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
        loss_ax.set_ylim(0.0, top if top > 0 else 1.0)  # Outliers such as a bad first epoch go off the axes.
    for ax, title in ((accuracy_ax, "Accuracy"), (loss_ax, "Loss")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(title.lower())
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = accuracy_ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(4, max(1, len(labels))), frameon=False)
    return figure


_SWEEP_MARKERS = ("o", "s", "^", "D")


def plot_sweep(
    summary: Sequence[Mapping[str, object]], points: Sequence[Mapping[str, object]] = (), title: str | None = None
) -> Figure:
    """Plots test accuracy (%, 95% intervals as error bars) and training time against the subset's photos.

    Args:
        summary: Rows of `report.summarize_sweep`: `approach`, `size`, `accuracy`, `accuracy_interval` (fractions) and
            `train_seconds`.
        points: The sweep's points, one per seed; with several seeds per size, each is drawn as a faint dot.
    """
    approaches = list(dict.fromkeys(str(row["approach"]) for row in summary))
    palette = colors_for(approaches)
    means = {name: np.mean([row["accuracy"] for row in summary if row["approach"] == name]) for name in approaches}
    top = max(approaches, key=means.get)  # Its values are written above its points, the others' below.
    figure = NotebookFigure(figsize=(11, 4.2), layout="constrained")
    accuracy_ax, time_ax = figure.subplots(1, 2)
    for index, approach in enumerate(approaches):
        rows = sorted((row for row in summary if row["approach"] == approach), key=lambda row: row["size"])
        sizes = np.array([row["size"] for row in rows], dtype=float)
        # Lines on top of one another are told apart by their markers and a small sideways shift.
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
    """Saves a figure as a PNG (120 dpi), whole or not at all, creating parent folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_atomically(path) as temporary:
        figure.savefig(temporary, dpi=120, bbox_inches="tight")
    return path
