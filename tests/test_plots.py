"""Tests of `catsdogs_helpers.plots` and `catsdogs_helpers.evaluation_plots` on synthetic histories and predictions."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from catsdogs_helpers import evaluation_plots, plots

CLASS_NAMES = ("cat", "dog")


def fake_history(num_epochs: int, first_loss: float | None = None, start: int = 0, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    loss = 0.7 * np.exp(-np.arange(num_epochs) / 5) + 0.1 + 0.02 * rng.random(num_epochs)
    if first_loss is not None:
        loss[0] = first_loss
    return {
        "epoch": list(range(start, start + num_epochs)),
        "loss": loss.tolist(),
        "val_loss": (loss + 0.05).tolist(),
        "accuracy": np.clip(1.0 - loss / 2, 0.5, 1.0).tolist(),
        "val_accuracy": np.clip(0.97 - loss / 2, 0.5, 1.0).tolist(),
    }


def fake_images(count: int, size: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def logits_of(probabilities: list[float]) -> np.ndarray:
    """Logits whose sigmoid is `probabilities`."""
    probabilities = np.asarray(probabilities, dtype=float)
    return np.log(probabilities / (1.0 - probabilities))


def texts_of(figure: Figure) -> list[str]:
    return [text.get_text() for ax in figure.axes for text in ax.texts]


@pytest.mark.parametrize(("count", "num_axes"), [(9, 9), (5, 6), (1, 1)])
def test_plot_samples(count, num_axes):
    labels = np.arange(count) % 2
    figure = plots.plot_samples(fake_images(count), labels, CLASS_NAMES, title="Some photos")
    assert isinstance(figure, Figure)
    assert len(figure.axes) == num_axes
    assert [ax.get_title() for ax in figure.axes[:count]] == [CLASS_NAMES[label] for label in labels]
    assert figure.get_suptitle() == "Some photos"
    assert sum(bool(ax.images) for ax in figure.axes) == count


def test_plot_samples_shows_at_most_num_images():
    figure = plots.plot_samples(fake_images(20), np.zeros(20, int), CLASS_NAMES, num_images=4)
    assert len(figure.axes) == 4


def test_learning_curves_with_fine_tuning_marker():
    transfer = fake_history(5, seed=1)
    finetune = fake_history(4, start=5, seed=2)
    histories = {
        "scratch": fake_history(12),
        "transfer": {key: transfer[key] + finetune[key] for key in transfer},
    }
    figure = plots.plot_learning_curves(histories, fine_tune_starts={"transfer": 5})
    accuracy_ax, loss_ax = figure.axes
    assert (accuracy_ax.get_title(), loss_ax.get_title()) == ("Accuracy", "Loss")
    assert accuracy_ax.get_xlabel() == "epoch"
    for ax in (accuracy_ax, loss_ax):
        assert len(ax.lines) == 4 + 1  # Train and validation of 2 models, and the marker.
        marker = ax.lines[-1]
        assert marker.get_linestyle() == ":"
        assert list(marker.get_xdata()) == [5.5, 5.5]  # Between 1-based epochs 5 and 6.
    assert texts_of(figure).count("fine-tuning starts ") == 2
    scratch_train = accuracy_ax.lines[0]
    assert scratch_train.get_xdata()[0] == 1  # Epochs are shown 1-based.
    assert scratch_train.get_color() == "tab:orange"
    assert accuracy_ax.lines[2].get_color() == "tab:blue"
    assert accuracy_ax.lines[1].get_linestyle() == "--"
    legend_texts = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend_texts == ["scratch train", "scratch validation", "transfer train", "transfer validation"]


def test_learning_curves_without_marker_and_robust_loss_axis():
    histories = {"scratch": fake_history(20, first_loss=9.0), "transfer": fake_history(20, seed=3)}
    figure = plots.plot_learning_curves(histories)
    accuracy_ax, loss_ax = figure.axes
    assert len(accuracy_ax.lines) == len(loss_ax.lines) == 4
    assert not texts_of(figure)
    bottom, top = loss_ax.get_ylim()
    assert bottom == 0.0
    assert top < 9.0  # The bad first epoch does not flatten the rest...
    assert top > max(max(history["val_loss"][1:]) for history in histories.values())  # ...which stays visible.


def test_learning_curves_honour_custom_colours():
    figure = plots.plot_learning_curves({"other": fake_history(3)}, colors={"other": "tab:red"})
    assert figure.axes[0].lines[0].get_color() == "tab:red"


def test_plot_confusion_matrices():
    matrices = {"scratch": [[40, 10], [5, 45]], "transfer": [[49, 1], [0, 50]], "finetuned": [[50, 0], [0, 50]]}
    figure = evaluation_plots.plot_confusion_matrices(matrices, CLASS_NAMES)
    assert [ax.get_title() for ax in figure.axes] == list(matrices)
    ax = figure.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    assert [label.get_text() for label in ax.get_xticklabels()] == list(CLASS_NAMES)
    assert [text.get_text() for text in ax.texts] == ["40\n80.0%", "10\n20.0%", "5\n10.0%", "45\n90.0%"]


def test_plot_roc_curves():
    labels = np.array([0, 0, 1, 1, 0, 1])
    curves = {"scratch": (labels, np.array([0.1, 0.6, 0.4, 0.9, 0.2, 0.8])), "transfer": (labels, labels * 2.0 - 1)}
    figure = evaluation_plots.plot_roc_curves(curves)
    (ax,) = figure.axes
    assert len(ax.lines) == 3  # Chance line and two curves.
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    # scratch: dogs 0.4, 0.8, 0.9 vs cats 0.1, 0.2, 0.6 -> 8 of 9 pairs right.
    assert legend == ["chance", "scratch (AUC 0.8889)", "transfer (AUC 1.0000)"]
    assert ax.lines[1].get_color() == "tab:orange"
    assert not ax.child_axes  # No zoom: the scratch curve would run under it.


def test_plot_roc_curves_zooms_on_good_models():
    labels = np.array([0, 0, 1, 1])
    curves = {"transfer": (labels, [0.1, 0.2, 0.8, 0.9]), "finetuned": (labels, [0.1, 0.3, 0.2, 0.9])}
    (ax,) = evaluation_plots.plot_roc_curves(curves).axes  # AUCs 1.0 and 0.75.
    assert not ax.child_axes
    (ax,) = evaluation_plots.plot_roc_curves(curves, zoom=True).axes
    (inset,) = ax.child_axes
    assert len(inset.lines) == 2 and inset.get_xlim()[1] == pytest.approx(0.2)
    (ax,) = evaluation_plots.plot_roc_curves({"transfer": curves["transfer"]}).axes
    assert len(ax.child_axes) == 1


def test_plot_mistakes_row_per_model():
    labels = np.array([0, 0, 1, 1, 0, 1])
    logits = {
        "scratch": logits_of([0.97, 0.6, 0.2, 0.9, 0.1, 0.45]),  # Wrong: 0 (97% dog), 1 (60%), 2 (80% cat), 5.
        "transfer": logits_of([0.1, 0.2, 0.3, 0.9, 0.1, 0.8]),  # Wrong: 2 only.
    }
    mistakes = evaluation_plots.find_mistakes(labels, logits, num_per_model=5)
    assert mistakes["scratch"].tolist() == [0, 2, 1, 5] and mistakes["transfer"].tolist() == [2]
    # Only the photos drawn are needed, not the whole test split.
    photos = {index: image for index, image in enumerate(fake_images(6)) if index in (0, 1, 2, 5)}
    figure = evaluation_plots.plot_mistakes(photos, labels, logits, CLASS_NAMES, num_per_model=5)
    axes = np.array(figure.axes).reshape(2, 5)
    assert [ax.get_title() for ax in axes[0, :4]] == [
        "true cat, said dog 97%",
        "true dog, said cat 80%",
        "true cat, said dog 60%",
        "true dog, said cat 55%",
    ]
    assert axes[0, 0].get_ylabel() == "scratch\n4 mistakes"
    assert axes[1, 0].get_ylabel() == "transfer\n1 mistake"
    assert [text.get_text() for text in axes[1, 1].texts] == ["no more mistakes"]
    assert not axes[1, 2].images and not axes[1, 2].texts


def test_plot_mistakes_without_any_mistake():
    figure = evaluation_plots.plot_mistakes({}, [0, 1], {"finetuned": logits_of([0.1, 0.9])}, CLASS_NAMES)
    assert len(figure.axes) == 6
    assert texts_of(figure) == ["no mistakes"]


def test_plot_grad_cam():
    images = fake_images(3)
    heatmaps = {name: np.random.default_rng(4).random((3, 12, 12)) for name in ("scratch", "transfer")}
    logits = {"scratch": logits_of([0.2, 0.7, 0.99]), "transfer": logits_of([0.1, 0.3, 0.95])}
    figure = evaluation_plots.plot_grad_cam(images, heatmaps, [0, 0, 1], logits, CLASS_NAMES)
    axes = np.array(figure.axes).reshape(3, 3)
    assert [ax.get_title() for ax in axes[:, 0]] == ["true cat", "true cat", "true dog"]
    assert [ax.get_title() for ax in axes[1]] == ["true cat", "scratch: dog 70%", "transfer: cat 70%"]
    assert len(axes[0, 1].images) == 2  # Photo and heatmap.
    assert axes[0, 1].images[1].get_alpha() == pytest.approx(0.45)


def test_plot_augmentation_shows_the_original_first():
    original = fake_images(1)[0]
    figure = plots.plot_augmentation(original, fake_images(9, seed=1).astype(np.float32), title="augmented")
    titles = [ax.get_title() for ax in figure.axes if ax.images]
    assert titles == ["original", *(f"augmented {index}" for index in range(1, 10))]
    np.testing.assert_array_equal(figure.axes[0].images[0].get_array(), original)


def test_save_figure(tmp_path):
    figure = evaluation_plots.plot_roc_curves({"scratch": ([0, 1, 1], [0.2, 0.7, 0.4])})
    path = plots.save_figure(figure, tmp_path / "figures" / "roc.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1000


def test_figures_display_in_notebooks_without_pyplot():
    figure = evaluation_plots.plot_roc_curves({"scratch": ([0, 1, 1], [0.2, 0.7, 0.4])})
    assert figure._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"  # What IPython shows when a cell ends with it.
