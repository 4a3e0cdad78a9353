"""The study's three training stages: `train_scratch_cnn`, `train_frozen_model` and `fine_tune_model`.

Each builds its model by its recipe (`recipes.py`) unless it is handed one,
trains it as one resumable, reusable stage (`training.train_stage`), and saves
it with its contract; each returns a `TrainedModel`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import tensorflow as tf

from catsdogs_helpers import contract, data, features, runtime, training
from catsdogs_helpers.config import StudyConfig
from catsdogs_helpers.output_lock import written_atomically
from catsdogs_helpers.recipes import build_fine_tuned_model, build_frozen_model, build_scratch_cnn
from catsdogs_helpers.stage_files import StageResult, merge_histories
from catsdogs_helpers.stage_manifest import build_stage_manifest


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
    stages: list[StageResult]
    path: Path

    @property
    def history(self) -> dict[str, list[float]]:
        """Per-epoch values of all its stages, one after the other."""
        return merge_histories(*(stage.history for stage in self.stages))


def _num_replicas(strategy: tf.distribute.Strategy) -> int:
    return strategy.num_replicas_in_sync


def _training_strategy(model: keras.Model | None, strategy: tf.distribute.Strategy | None) -> tf.distribute.Strategy:
    """The strategy a stage trains under: the given model's own (the one it was built under), or `strategy`."""
    if model is None:
        return runtime.choose_distribution_strategy() if strategy is None else strategy
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
        splits: The data, from `load_data` (with the same strategy).
        verbose: `model.fit` verbosity (see `runtime.choose_verbosity`).
        strategy: The distribution strategy the model is built and trained
            under, or `None` for `runtime.choose_distribution_strategy()`; the
            learning rate is multiplied by its number of replicas. Ignored when
            `model` is given.
        model: A compiled model to train instead of `build_scratch_cnn(config, ...)`'s,
            such as the notebook's; it trains under the strategy it was built
            under. Its manifest holds its architecture and compilation, so a
            model built or compiled otherwise never reuses another's result.

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
    computed once per split (see `features.py`); otherwise end to end, with augmentation.

    Args:
        splits: The data, from `load_data` (with the same strategy).
        strategy: See `train_scratch_cnn`.
        model: A compiled model to train instead of `build_frozen_model(config)`'s;
            with cached features, its layers named `"pool"`, `"head_dropout"`
            and `"logit"` are the head. See `train_scratch_cnn`.

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
        frozen: The frozen model, from `train_frozen_model`.
        strategy: See `train_scratch_cnn`.
        model: A compiled copy of the frozen model, its base partly unfrozen,
            to train instead. See `train_scratch_cnn`.

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
