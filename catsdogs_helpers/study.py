"""The study, stage by stage, and `run_study`, which runs every stage in order.

The stages, in order: `load_data`, `train_scratch_cnn`, `train_frozen_model`,
`fine_tune_model`, `evaluate_models`, `make_figures`, `write_study_report`.
The notebook calls them one by one, with the story in between; the command
line's `run` and the benchmarks call `run_study` or the same stages. One
orchestration, so they cannot drift apart.

Every training stage is resumable and reusable (see `training.train_stage`):
rerun a study into the same output folder after an interruption and it
continues from the last finished epoch; rerun it after it finished and it loads
the trained models instead of training again.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from catsdogs_helpers import (
    contract,
    data,
    evaluation,
    evaluation_plots,
    features,
    metrics,
    models,
    plots,
    report,
    results,
    runtime,
    training,
)
from catsdogs_helpers.config import MODEL_NAMES, StudyConfig, depends_on, format_command
from catsdogs_helpers.digests import hash_file, hash_json
from catsdogs_helpers.errors import StudyInterrupted
from catsdogs_helpers.grad_cam import compute_grad_cam
from catsdogs_helpers.output_lock import lock_output_dir, unlock_output_dir, written_atomically
from catsdogs_helpers.preflight import check_study_inputs
from catsdogs_helpers.recipes import build_fine_tuned_model, build_frozen_model, build_scratch_cnn

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


@dataclasses.dataclass
class TrainedModel:
    """A trained model of the study, the stages that trained it, and its saved file.

    Attributes:
        name: `"scratch"`, `"transfer"` (the frozen base with its trained head)
            or `"finetuned"`.
        model: The Keras model: raw pixels in [0, 255], shape `(N, S, S, 3)`,
            in; one logit per photo, float32, shape `(N, 1)`, out.
        stages: The training stages, in order (the fine-tuned model's include
            the head's).
        path: The saved `.keras` file.
    """

    name: str
    model: keras.Model
    stages: list[training.StageResult]
    path: Path

    @property
    def history(self) -> dict[str, list[float]]:
        """Per-epoch values of all its stages, one after the other."""
        return training.merge_histories(*(stage.history for stage in self.stages))


def announce(stage: str, detail: str = "") -> None:
    """Prints the line that says a stage starts, e.g. `== scratch: training the CNN from scratch (35 epochs) ==`."""
    print(f"\n== {stage}: {STAGE_TITLES.get(stage, stage)}{f' ({detail})' if detail else ''} ==", flush=True)


def build_stage_manifest(
    config: StudyConfig,
    stage: str,
    model: keras.Model,
    splits: data.ImageSplits,
    upstream: training.StageResult | None = None,
    num_replicas: int = 1,
) -> dict[str, object]:
    """Returns what identifies a training stage's result, so that no run reuses or resumes another's.

    An earlier run's stage is reused or resumed only when every entry is equal
    (see `training.train_stage`):

    - `settings`: the settings the stage depends on (`config.depends_on`); a
      weights file is named by its SHA-256;
      trained on several replicas (see `runtime.choose_distribution_strategy`),
      also `num_replicas`, which multiplies the batch and the learning rate;
    - `architecture`: a digest of the model's layers and how they are called
      (`models.describe_architecture`);
    - `compilation`: a digest of its optimizer, learning rate or schedule, loss
      and metrics (`models.describe_compilation`), so that a model compiled
      another way (say, in the notebook) never reuses this one's result;
    - `data`: the splits' content key (`ImageSplits.content_key`);
    - `upstream`: a digest of the stage this one starts from (fine-tuning starts
      from the frozen model's head), or `None`;
    - `versions`: TensorFlow, Keras and this package.

    Args:
        config: The study's settings.
        stage: `"scratch"`, `"transfer"` or `"finetuned"`.
        model: The compiled model the stage trains.
        splits: The data, from `load_data`.
        upstream: The result of the stage this one continues, or `None`. Defaults to `None`.
        num_replicas: Replicas the stage trains on. Defaults to `1`.

    Returns:
        A JSON-serializable dictionary.
    """
    settings: dict[str, object] = {name: getattr(config, name) for name in depends_on(stage)}
    if settings.get("weights") not in (None, "imagenet"):
        settings["weights"] = f"sha256:{hash_file(str(config.weights))}"
    if num_replicas > 1:  # Absent on one device, so that earlier single-device runs are still reused.
        settings["num_replicas"] = num_replicas
    return {
        "stage": stage,
        "settings": settings,
        "architecture": models.describe_architecture(model),
        "compilation": models.describe_compilation(model),
        "data": splits.content_key,
        "upstream": None if upstream is None else hash_json(upstream.to_dict()),
        "versions": runtime.describe_training_versions(),
    }


def start_study(config: StudyConfig, strategy: tf.distribute.Strategy | None = None) -> Path:
    """Checks every input, creates and locks the output folder, seeds, picks the precision policy and allocator.

    First it asks TensorFlow to keep CPU tensors in its pooling allocator
    (`runtime.prefer_bfc_cpu_allocator`), which takes effect if no TensorFlow
    operation has run yet in this process; if one has, it prints a one-line
    note. The output folder's lock (see `output_lock.py`) keeps a second run
    out of it while this process lives, or until `run_study` finishes. With
    several GPUs it prints how the study spreads over them (see
    `runtime.describe_distribution`).

    Args:
        config: The study's settings.
        strategy: The distribution strategy the stages will use, or `None` for
            `runtime.choose_distribution_strategy()`. Defaults to `None`.

    Returns:
        The output folder.

    Raises:
        InputError: If an input is wrong (see `preflight.check_study_inputs`),
            or another run is writing into the output folder.
    """
    too_late = runtime.prefer_bfc_cpu_allocator()  # Before the checks: they may run the first TensorFlow operation.
    if too_late is not None:
        print(too_late, flush=True)
    output_dir = check_study_inputs(config)
    lock_output_dir(output_dir)
    runtime.set_seeds(config.seed)
    runtime.choose_precision_policy()
    distribution = runtime.describe_distribution(_strategy(strategy), config.batch_size)
    if distribution is not None:
        print(distribution, flush=True)
    return output_dir


def _strategy(strategy: tf.distribute.Strategy | None) -> tf.distribute.Strategy:
    return runtime.choose_distribution_strategy() if strategy is None else strategy


def _num_replicas(strategy: tf.distribute.Strategy) -> int:
    return strategy.num_replicas_in_sync


def load_data(
    config: StudyConfig, verbose: bool = True, strategy: tf.distribute.Strategy | None = None
) -> data.ImageSplits:
    """Loads the train/validation/test splits the settings name (see `data.load_splits`).

    Args:
        config: The study's settings.
        verbose: Print the splits' counts and the files skipped. Defaults to `True`.
        strategy: The distribution strategy, or `None` for
            `runtime.choose_distribution_strategy()`: batches hold `batch_size`
            photos per replica. Defaults to `None`.

    Returns:
        The splits.
    """
    return data.load_splits(
        config.data,
        image_size=config.image_size,
        batch_size=config.batch_size * _num_replicas(_strategy(strategy)),
        validation_fraction=config.validation_fraction,
        test_fraction=config.test_fraction,
        max_images_per_split=config.max_images_per_split,
        seed=config.seed,
        cache_dir=config.cache_dir,
        verbose=verbose,
    )


def _training_strategy(model: keras.Model | None, strategy: tf.distribute.Strategy | None) -> tf.distribute.Strategy:
    """The strategy a stage trains under: the given model's own (the one it was built under), or `strategy`."""
    if model is None:
        return _strategy(strategy)
    if not getattr(model, "compiled", False):
        raise ValueError(
            f"The model handed to the study must be compiled (model.compile(...)) before it trains. "
            f"Received: model={model.name!r}, not compiled"
        )
    return model.distribute_strategy


def train_scratch_cnn(
    config: StudyConfig,
    splits: data.ImageSplits,
    verbose: int = 2,
    strategy: tf.distribute.Strategy | None = None,
    model: keras.Model | None = None,
) -> TrainedModel:
    """Trains and saves the CNN trained from scratch (`scratch.keras`), keeping its best validation epoch.

    Args:
        config: The study's settings.
        splits: The data, from `load_data` (with the same strategy).
        verbose: `model.fit` verbosity (see `runtime.choose_verbosity`). Defaults to `2`.
        strategy: The distribution strategy the model is built and trained
            under, or `None` for `runtime.choose_distribution_strategy()`; the
            learning rate is multiplied by its number of replicas. Ignored when
            `model` is given. Defaults to `None`.
        model: A compiled model to train instead of `build_scratch_cnn(config, ...)`'s,
            such as the notebook's; it trains under the strategy it was built
            under. Its manifest holds its architecture and compilation, so a
            model built or compiled otherwise never reuses another's result.
            Defaults to `None`.

    Returns:
        The `TrainedModel` named `"scratch"`.

    Raises:
        ValueError: If `model` is not compiled.
    """
    strategy = _training_strategy(model, strategy)
    num_replicas = _num_replicas(strategy)
    with strategy.scope():
        if model is None:
            model = build_scratch_cnn(config, splits.num_images("train"), num_replicas)
        stage = training.train_stage(
            model,
            splits.train,
            splits.validation,
            name="scratch",
            epochs=config.scratch_epochs,
            output_dir=config.output_dir,
            num_train_images=splits.num_images("train"),
            patience=config.patience_of("scratch"),
            manifest=build_stage_manifest(config, "scratch", model, splits, num_replicas=num_replicas),
            verbose=verbose,
        )
        return _save(TrainedModel("scratch", model, [stage], Path(config.output_dir) / "scratch.keras"), splits)


def train_frozen_model(
    config: StudyConfig,
    splits: data.ImageSplits,
    verbose: int = 2,
    strategy: tf.distribute.Strategy | None = None,
    model: keras.Model | None = None,
) -> TrainedModel:
    """Trains the new head on the frozen MobileNetV2, and saves the model (`transfer.keras`).

    With `use_cached_features`, the head trains on features the frozen base
    computed once per split (see `features.py`), compiled as the model is;
    otherwise end to end, with augmentation.

    Args:
        config: The study's settings.
        splits: The data, from `load_data` (with the same strategy).
        verbose: `model.fit` verbosity. Defaults to `2`.
        strategy: See `train_scratch_cnn`. Defaults to `None`.
        model: A compiled model to train instead of `build_frozen_model(config)`'s;
            with cached features, its layers named `"pool"`, `"head_dropout"`
            and `"logit"` are the head. See `train_scratch_cnn`. Defaults to `None`.

    Returns:
        The `TrainedModel` named `"transfer"`.

    Raises:
        ValueError: If `model` is not compiled.
    """
    strategy = _training_strategy(model, strategy)
    num_replicas = _num_replicas(strategy)
    with strategy.scope():
        if model is None:
            model = build_frozen_model(config, num_replicas)
        manifest = build_stage_manifest(config, "transfer", model, splits, num_replicas=num_replicas)
        common = dict(epochs=config.transfer_epochs, output_dir=config.output_dir,
                      patience=config.patience_of("transfer"), manifest=manifest, verbose=verbose)  # fmt: skip
        if config.use_cached_features:
            stage = features.train_head_on_features(
                model,
                splits.train_in_order,
                splits.validation,
                batch_size=config.batch_size * num_replicas,
                seed=config.seed,
                **common,
            )
        else:
            stage = training.train_stage(
                model, splits.train, splits.validation, name="transfer", num_train_images=splits.num_images("train"),
                **common,
            )  # fmt: skip
        return _save(TrainedModel("transfer", model, [stage], Path(config.output_dir) / "transfer.keras"), splits)


def fine_tune_model(
    config: StudyConfig,
    splits: data.ImageSplits,
    frozen: TrainedModel,
    verbose: int = 2,
    strategy: tf.distribute.Strategy | None = None,
    model: keras.Model | None = None,
) -> TrainedModel:
    """Fine-tunes a copy of the frozen model for `fine_tune_epochs` epochs, numbered after the head's, and saves
    it (`finetuned.keras`).

    The copy, from `build_fine_tuned_model(config, frozen)` unless `model` is
    given, is read from the frozen model's file, so the frozen model stays as it was.

    Args:
        config: The study's settings.
        splits: The data, from `load_data`.
        frozen: The frozen model, from `train_frozen_model`.
        verbose: `model.fit` verbosity. Defaults to `2`.
        strategy: See `train_scratch_cnn`. Defaults to `None`.
        model: A compiled copy of the frozen model, its base partly unfrozen,
            to train instead. See `train_scratch_cnn`. Defaults to `None`.

    Returns:
        The `TrainedModel` named `"finetuned"`, whose stages are the head's and the fine-tuning's.

    Raises:
        ValueError: If `model` is not compiled.
    """
    strategy = _training_strategy(model, strategy)
    num_replicas = _num_replicas(strategy)
    with strategy.scope():
        if model is None:
            model = build_fine_tuned_model(config, frozen, num_replicas)
        head_epochs = frozen.stages[-1].num_epochs
        manifest = build_stage_manifest(
            config, "finetuned", model, splits, upstream=frozen.stages[-1], num_replicas=num_replicas
        )
        stage = training.train_stage(
            model,
            splits.train,
            splits.validation,
            name="finetuned",
            epochs=head_epochs + config.fine_tune_epochs,
            initial_epoch=head_epochs,
            output_dir=config.output_dir,
            num_train_images=splits.num_images("train"),
            patience=config.patience_of("finetuned"),
            manifest=manifest,
            verbose=verbose,
        )
        path = Path(config.output_dir) / "finetuned.keras"
        return _save(TrainedModel("finetuned", model, [*frozen.stages, stage], path), splits)


def _save(trained: TrainedModel, splits: data.ImageSplits) -> TrainedModel:
    """Saves the model with its contract (class names; see `contract.py`), without optimizer state."""
    with written_atomically(trained.path) as temporary:
        contract.attach_contract(trained.model, splits.class_names).save(temporary)
    return trained


def evaluate_models(
    trained: Mapping[str, TrainedModel], splits: data.ImageSplits, tta: bool = True
) -> dict[str, evaluation.ModelEvaluation]:
    """Evaluates each trained model once on the test split, with and without test-time augmentation.

    Args:
        trained: The trained models.
        splits: The data, from `load_data`.
        tta: Also evaluate each model on the mean logit of a photo and its
            mirror image (see `evaluation.evaluate_model`). Defaults to `True`.

    Returns:
        A `ModelEvaluation` per model name, in the order given.
    """
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
    """Gathers test metrics, comparisons, costs, settings, data, environment and the command that reproduces
    the run into the results dict (`results.json`)."""
    costs = {name: evaluation.describe_model_cost(item.model, item.stages, item.path) for name, item in trained.items()}
    environment = runtime.describe_environment()
    command = format_command(config)
    return results.build_results(dict(evaluations), costs, config.to_dict(), splits.to_dict(), environment, command)


def choose_grad_cam_photos(evaluations: Mapping[str, evaluation.ModelEvaluation], num_photos: int = 4) -> list[int]:
    """Picks test photos worth explaining: where the models disagree first, then confident right answers.

    Args:
        evaluations: The models' evaluations on the same test photos.
        num_photos: Photos to pick. Defaults to `4`.

    Returns:
        Indices into the test split, at most `num_photos`.
    """
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
    """Draws the study's figures: learning curves, confusion matrices, ROC curves, mistakes, Grad-CAM.

    Returns:
        Figures by file stem, e.g. `{"learning_curves": figure, ...}`.
    """
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
    """Fetches some photos of a batched split by index, without holding the whole split in memory.

    Args:
        dataset: Batches of `(images, labels)` in a fixed order, such as `splits.test`.
        indices: Indices of the photos in the split.

    Returns:
        `{index: photo}`, each photo `uint8` of shape `(S, S, 3)`, a copy that
        does not keep its batch alive. The split is read once, in order, up to
        the last index asked for; only the photos asked for are kept.
    """
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


def _finished_epochs(output_dir: str | Path, stage: str) -> int:
    return len(training.read_history(Path(output_dir) / stage / "history.csv").get("epoch", []))


class StudySession:
    """The stage a study or sweep is in, for `study_session`: `enter` it as it starts."""

    def __init__(self) -> None:
        self.stage = "checks"

    def enter(self, stage: str, detail: str = "") -> None:
        """Records and announces (see `announce`) that a stage starts."""
        self.stage = stage
        announce(stage, detail)


@contextlib.contextmanager
def study_session(config: StudyConfig, strategy: tf.distribute.Strategy | None = None) -> Iterator[StudySession]:
    """What every run of stages does around them: `start_study` first, Ctrl-C as `StudyInterrupted`, unlock last.

    `run_study` and `sweep.run_sweep` run their stages inside it.

    Raises:
        InputError: If an input is wrong (from `start_study`).
        StudyInterrupted: On Ctrl-C; it names the stage and, for a training
            stage, its finished epochs.
    """
    session = StudySession()
    try:
        start_study(config, strategy)
        yield session
    except KeyboardInterrupt:
        stage = session.stage
        epochs = _finished_epochs(config.output_dir, stage) if stage in MODEL_NAMES else None
        raise StudyInterrupted(stage, epochs, str(config.output_dir)) from None
    finally:
        unlock_output_dir(config.output_dir)


def run_study(config: StudyConfig, verbose: int | None = None, strategy: tf.distribute.Strategy | None = None) -> dict:
    """Runs the whole study: every stage of this module, in order, into `config.output_dir`.

    Args:
        config: The study's settings, e.g. `get_config("quick", data="photos/")`.
        verbose: `model.fit` verbosity, or `None` for `runtime.choose_verbosity()`.
            Defaults to `None`.
        strategy: The distribution strategy of every stage, or `None` for
            `runtime.choose_distribution_strategy()` (`MirroredStrategy` with
            several GPUs; one device otherwise). Defaults to `None`.

    Returns:
        The results (what `results.json` holds: `"models"`, `"config"`,
        `"data"`, `"environment"`).

    Raises:
        InputError: If an input is wrong; raised before any training.
        StudyInterrupted: On Ctrl-C; it names the stage and its finished
            epochs. Running the same study again resumes from there.

    Example:

    >>> results = run_study(get_config("smoke", data="photos/", output_dir="out"))  # doctest: +SKIP
    >>> results["models"]["finetuned"]["test"]["accuracy"]  # doctest: +SKIP
    """
    verbose = runtime.choose_verbosity() if verbose is None else verbose
    with study_session(config, strategy) as session:
        strategy = _strategy(strategy)
        session.enter("data", config.data)
        splits = load_data(config, strategy=strategy)
        trained: dict[str, TrainedModel] = {}
        session.enter("scratch", f"up to {config.scratch_epochs} epochs")
        trained["scratch"] = train_scratch_cnn(config, splits, verbose, strategy)
        session.enter("transfer", f"up to {config.transfer_epochs} epochs")
        trained["transfer"] = train_frozen_model(config, splits, verbose, strategy)
        session.enter("finetuned", f"{config.fine_tune_epochs} epochs from base layer {config.fine_tune_at}")
        trained["finetuned"] = fine_tune_model(config, splits, trained["transfer"], verbose, strategy)
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
