"""The study, stage by stage (`load_data` ... `write_study_report`), and `run_study`, which runs them in order.

The training stages are `model_stages.py`'s, reached here as `study.train_scratch_cnn` and so on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from catsdogs_helpers import data, evaluation, evaluation_plots, metrics, plots, report, results, runtime
from catsdogs_helpers.config import MODEL_NAMES, StudyConfig, format_command
from catsdogs_helpers.errors import StudyInterrupted
from catsdogs_helpers.grad_cam import compute_grad_cam
from catsdogs_helpers.model_stages import TrainedModel, fine_tune_model, train_frozen_model, train_scratch_cnn
from catsdogs_helpers.output_lock import lock_output_dir, unlock_output_dir
from catsdogs_helpers.preflight import check_study_inputs
from catsdogs_helpers.stage_files import read_history

STAGE_TITLES = {
    "data": "loading the photos",
    "scratch": "training the CNN from scratch",
    "transfer": "training the new head on the frozen MobileNetV2",
    "finetuned": "fine-tuning the top of MobileNetV2",
    "evaluation": "evaluating the three models on the test split",
    "figures": "drawing the figures",
    "report": "writing the report",
    "sweep": "training the three approaches on nested subsets of the training split",
}


def start_study(config: StudyConfig) -> Path:
    """Checks every input, creates and locks the output folder (until this process ends or `run_study` finishes), seeds,
    picks the precision policy and allocator; returns the output folder.

    Raises:
        InputError: If an input is wrong, or another run is writing into the output folder.
    """
    too_late = runtime.prefer_bfc_cpu_allocator()  # Before the checks: they may run the first TensorFlow operation.
    if too_late is not None:
        print(too_late, flush=True)
    output_dir = check_study_inputs(config)
    lock_output_dir(output_dir)
    runtime.set_seeds(config.seed)
    runtime.choose_precision_policy()
    distribution = runtime.describe_distribution(runtime.choose_distribution_strategy(), config.batch_size)
    if distribution is not None:
        print(distribution, flush=True)
    return output_dir


def load_data(config: StudyConfig, verbose: bool = True) -> data.ImageSplits:
    """Loads the train/validation/test splits the settings name, in batches of `batch_size` photos per replica
    of `runtime.choose_distribution_strategy()`."""
    return data.load_splits(
        config.data,
        image_size=config.image_size,
        batch_size=config.batch_size * runtime.choose_distribution_strategy().num_replicas_in_sync,
        validation_fraction=config.validation_fraction,
        test_fraction=config.test_fraction,
        max_images_per_split=config.max_images_per_split,
        seed=config.seed,
        cache_dir=config.cache_dir,
        verbose=verbose,
    )


def evaluate_models(
    trained: Mapping[str, TrainedModel], splits: data.ImageSplits, tta: bool = True
) -> dict[str, evaluation.ModelEvaluation]:
    """Evaluates each trained model on the test split, also with test-time augmentation (`tta`); by model name."""
    return {
        name: evaluation.evaluate_model(item.model, splits.test, name, splits.class_names, tta=tta)
        for name, item in trained.items()
    }


def build_study_results(
    config: StudyConfig,
    splits: data.ImageSplits,
    trained: Mapping[str, TrainedModel],
    evaluations: Mapping[str, evaluation.ModelEvaluation],
) -> dict:
    """Gathers the evaluations, costs, settings, data, environment and command into the results (`results.json`)."""
    costs = {name: evaluation.describe_model_cost(item.model, item.stages, item.path) for name, item in trained.items()}
    environment = runtime.describe_environment()
    command = format_command(config)
    return results.build_results(dict(evaluations), costs, config.to_dict(), splits.to_dict(), environment, command)


def choose_grad_cam_photos(evaluations: Mapping[str, evaluation.ModelEvaluation], num_photos: int = 4) -> list[int]:
    """Picks at most `num_photos` test indices worth explaining: disagreements first, then confident right answers."""
    labels = next(iter(evaluations.values())).labels
    correct = np.stack([metrics.predict_classes(item.logits) == labels for item in evaluations.values()])
    disagree = np.flatnonzero(correct.any(axis=0) & ~correct.all(axis=0))
    rest = np.flatnonzero(correct.all(axis=0))
    first = disagree[: num_photos // 2 or 1]
    order = np.concatenate([first, rest, disagree[len(first) :]])  # Fill up with more disagreements if need be.
    return [int(index) for index in order[:num_photos]]


def make_figures(
    trained: Mapping[str, TrainedModel],
    evaluations: Mapping[str, evaluation.ModelEvaluation],
    splits: data.ImageSplits,
) -> dict[str, Figure]:
    """Draws the study's figures (learning curves, confusion matrices, ROC curves, mistakes, Grad-CAM) by file stem."""
    histories = {"scratch": trained["scratch"].history, "finetuned": trained["finetuned"].history}
    fine_tune_starts = {"finetuned": trained["transfer"].stages[-1].num_epochs}
    labels = next(iter(evaluations.values())).labels
    logits = {name: item.logits for name, item in evaluations.items()}
    explained = ("scratch", "finetuned")
    shown = choose_grad_cam_photos({name: evaluations[name] for name in explained})
    mistakes = evaluation_plots.find_mistakes(labels, logits)
    photos = take_photos(splits.test, {*shown, *(int(i) for indices in mistakes.values() for i in indices)})
    shown_photos = np.stack([photos[index] for index in shown])
    cams = {name: compute_grad_cam(trained[name].model, shown_photos) for name in explained}
    return {
        "learning_curves": plots.plot_learning_curves(histories, fine_tune_starts),
        "confusion_matrices": evaluation_plots.plot_confusion_matrices(
            {name: item.metrics["confusion_matrix"] for name, item in evaluations.items()}, splits.class_names
        ),
        "roc_curves": evaluation_plots.plot_roc_curves(
            {name: (labels, item.logits) for name, item in evaluations.items()}
        ),
        "mistakes": evaluation_plots.plot_mistakes(photos, labels, logits, splits.class_names),
        "grad_cam": evaluation_plots.plot_grad_cam(
            shown_photos, cams, labels[shown], {name: logits[name][shown] for name in cams}, splits.class_names
        ),
    }


def take_photos(dataset: tf.data.Dataset, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """Returns `{index: photo}` (`uint8`, shape `(S, S, 3)`) from batches of `(images, labels)`, read up to the last."""
    wanted, found, start = set(indices), {}, 0
    for images, _ in dataset.as_numpy_iterator():
        for index in wanted & set(range(start, start + len(images))):
            found[index] = images[index - start].copy()  # A view would hold on to the whole batch.
        start += len(images)
        if start > max(wanted, default=-1):
            break
    return found


def write_study_report(config: StudyConfig, study_results: dict, figures: Mapping[str, Figure]) -> Path:
    """Writes `results.json`, the figures as PNG and `report.md` into the output folder; returns the report's path."""
    return report.write_report(config.output_dir, study_results, figures)


class StudySession:
    """The stage a study or sweep is in, for `study_session`: `enter` it as it starts."""

    def __init__(self) -> None:
        self.stage = "checks"

    def enter(self, stage: str, detail: str = "") -> None:
        """Records a stage and prints that it starts: `== scratch: training the CNN from scratch (35 epochs) ==`."""
        self.stage = stage
        print(f"\n== {stage}: {STAGE_TITLES[stage]}{f' ({detail})' if detail else ''} ==", flush=True)


@contextlib.contextmanager
def study_session(config: StudyConfig) -> Iterator[StudySession]:
    """What every run of stages does around them: `start_study` first, Ctrl-C as `StudyInterrupted`, unlock last.

    Raises:
        InputError: If an input is wrong (from `start_study`).
        StudyInterrupted: On Ctrl-C; it names the stage and, for a training stage, its finished epochs.
    """
    session = StudySession()
    try:
        start_study(config)
        yield session
    except KeyboardInterrupt:
        stage, epochs = session.stage, None
        if stage in MODEL_NAMES:
            epochs = len(read_history(Path(config.output_dir) / stage / "history.csv").get("epoch", []))
        raise StudyInterrupted(stage, epochs, str(config.output_dir)) from None
    finally:
        unlock_output_dir(config.output_dir)


def run_study(config: StudyConfig, verbose: int | None = None) -> dict:
    """Runs every stage of this module, in order, into `config.output_dir`; returns the results (`results.json`).

    `verbose` (of `model.fit`) defaults to `runtime.choose_verbosity()`. The models train under
    `runtime.choose_distribution_strategy()`: every GPU, or the strategy whose scope the caller entered.

    Raises:
        InputError: If an input is wrong; raised before any training.
        StudyInterrupted: On Ctrl-C; running the same study again resumes from there.
    """
    verbose = runtime.choose_verbosity() if verbose is None else verbose
    with study_session(config) as session:
        session.enter("data", config.data)
        splits = load_data(config)
        trained: dict[str, TrainedModel] = {}
        session.enter("scratch", f"up to {config.scratch_epochs} epochs")
        trained["scratch"] = train_scratch_cnn(config, splits, verbose)
        session.enter("transfer", f"up to {config.transfer_epochs} epochs")
        trained["transfer"] = train_frozen_model(config, splits, verbose)
        session.enter("finetuned", f"{config.fine_tune_epochs} epochs from base layer {config.fine_tune_at}")
        trained["finetuned"] = fine_tune_model(config, splits, trained["transfer"], verbose)
        session.enter("evaluation")
        evaluations = evaluate_models(trained, splits)
        study_results = build_study_results(config, splits, trained, evaluations)
        session.enter("figures")
        figures = make_figures(trained, evaluations, splits)
        session.enter("report")
        path = write_study_report(config, study_results, figures)
    comparisons = "\n".join(f"- {line}" for line in results.describe_comparisons(study_results))
    print(f"\n{results.format_results_table(study_results)}\n\n{comparisons}\n\nReport: {path}", flush=True)
    return study_results
