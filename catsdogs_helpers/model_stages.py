"""The study's three training stages: `train_scratch_cnn`, `train_frozen_model` and `fine_tune_model`.

Each builds its model (`recipes.py`) unless handed one, trains it as a resumable `training.train_stage`, saves it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import keras

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
        name: `"scratch"`, `"transfer"` (the frozen base with its trained head) or `"finetuned"`.
        model: Raw pixels in [0, 255], shape `(N, S, S, 3)`, in; one float32 logit per photo, `(N, 1)`, out.
        stages: The training stages, in order (the fine-tuned model's include the head's).
    """

    name: str
    model: keras.Model
    stages: list[StageResult]
    path: Path

    @property
    def history(self) -> dict[str, list[float]]:
        """Per-epoch values of all its stages, one after the other."""
        return merge_histories(*(stage.history for stage in self.stages))


@dataclasses.dataclass
class _Stage:
    """A stage's model, built under its strategy, with the manifest that identifies its result."""

    config: StudyConfig
    splits: data.ImageSplits
    name: str
    model: keras.Model
    num_replicas: int
    manifest: dict[str, object]

    def train_on_photos(self, epochs: int, verbose: int, initial_epoch: int = 0) -> StageResult:
        """Trains the model end to end on the training photos (see `training.train_stage`)."""
        return training.train_stage(
            self.model,
            self.splits.train,
            self.splits.validation,
            name=self.name,
            epochs=epochs,
            initial_epoch=initial_epoch,
            output_dir=self.config.output_dir,
            num_train_images=self.splits.num_images("train"),
            patience=self.config.patience_of(self.name),
            manifest=self.manifest,
            verbose=verbose,
        )

    def save(self, stages: list[StageResult]) -> TrainedModel:
        """Saves the model as `output_dir/<name>.keras` with its contract (see `contract.py`), without optimizer."""
        trained = TrainedModel(self.name, self.model, stages, Path(self.config.output_dir) / f"{self.name}.keras")
        with written_atomically(trained.path) as temporary:
            contract.attach_contract(self.model, self.splits.class_names).save(temporary)
        return trained


@contextlib.contextmanager
def _stage_scope(
    config: StudyConfig,
    splits: data.ImageSplits,
    name: str,
    model: keras.Model | None,
    build: Callable[[int], keras.Model],
    upstream: StageResult | None = None,
) -> Iterator[_Stage]:
    """Inside the strategy scope the stage trains under (a given model's own): the stage, its model built."""
    if model is None:
        strategy = runtime.choose_distribution_strategy()
    elif not getattr(model, "compiled", False):
        raise ValueError(
            f"The model handed to the study must be compiled (model.compile(...)) before it trains. "
            f"Received: model={model.name!r}, not compiled"
        )
    else:
        strategy = model.distribute_strategy
    num_replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        model = build(num_replicas) if model is None else model
        manifest = build_stage_manifest(config, name, model, splits, upstream, num_replicas)
        yield _Stage(config, splits, name, model, num_replicas, manifest)


def train_scratch_cnn(
    config: StudyConfig,
    splits: data.ImageSplits,
    verbose: int = 2,
    model: keras.Model | None = None,
) -> TrainedModel:
    """Trains and saves the CNN trained from scratch (`scratch.keras`), keeping its best validation epoch.

    The model is built under `runtime.choose_distribution_strategy()` (several GPUs, or the strategy whose
    scope the caller entered); the learning rate is multiplied by its replicas.

    Args:
        splits: The data, from `load_data` (under the same strategy).
        verbose: `model.fit` verbosity (see `runtime.choose_verbosity`).
        model: A compiled model to train instead of the recipe's, under the strategy it was built under.

    Raises:
        ValueError: If `model` is not compiled.
    """

    def build(num_replicas: int) -> keras.Model:  # Called only when no model is handed in.
        return build_scratch_cnn(config, splits.num_images("train"), num_replicas)

    with _stage_scope(config, splits, "scratch", model, build) as stage:
        return stage.save([stage.train_on_photos(config.scratch_epochs, verbose)])


def train_frozen_model(
    config: StudyConfig,
    splits: data.ImageSplits,
    verbose: int = 2,
    model: keras.Model | None = None,
) -> TrainedModel:
    """Trains the new head on the frozen MobileNetV2, and saves the model (`transfer.keras`).

    With `use_cached_features`, the head trains on features the frozen base computed once per split (see
    `features.py`; a given `model`'s head is its layers `"pool"`, `"head_dropout"` and `"logit"`);
    otherwise end to end, with augmentation. The strategy and `model`: see `train_scratch_cnn`.

    Raises:
        ValueError: If `model` is not compiled.
    """
    with _stage_scope(config, splits, "transfer", model, functools.partial(build_frozen_model, config)) as stage:
        if not config.use_cached_features:
            return stage.save([stage.train_on_photos(config.transfer_epochs, verbose)])
        result = features.train_head_on_features(
            stage.model,
            splits.train_in_order,
            splits.validation,
            epochs=config.transfer_epochs,
            output_dir=config.output_dir,
            batch_size=config.batch_size * stage.num_replicas,
            seed=config.seed,
            patience=config.patience_of("transfer"),
            manifest=stage.manifest,
            verbose=verbose,
        )
        return stage.save([result])


def fine_tune_model(
    config: StudyConfig,
    splits: data.ImageSplits,
    frozen: TrainedModel,
    verbose: int = 2,
    model: keras.Model | None = None,
) -> TrainedModel:
    """Fine-tunes a copy of the frozen model, its epochs numbered after the head's, and saves it (`finetuned.keras`).

    The copy is read from the frozen model's file (`build_fine_tuned_model`), so the frozen model stays as it was.
    Its stages are the head's, then the fine-tuning's. The strategy and `model` (a compiled copy, its base partly
    unfrozen): see `train_scratch_cnn`.

    Raises:
        ValueError: If `model` is not compiled.
    """
    build = functools.partial(build_fine_tuned_model, config, frozen)
    head_epochs = frozen.stages[-1].num_epochs
    with _stage_scope(config, splits, "finetuned", model, build, frozen.stages[-1]) as stage:
        result = stage.train_on_photos(head_epochs + config.fine_tune_epochs, verbose, initial_epoch=head_epochs)
        return stage.save([*frozen.stages, result])
