"""The study's three models, each built and compiled by one recipe.

The notebook writes the same recipes out in its own cells; `tests/test_notebook_models.py`
checks that both give the same architecture and compilation digests. Build a model
inside `strategy.scope()` to train it on several devices, and pass that strategy's
number of replicas, which multiplies the learning rate (and divides the steps per epoch).
"""

from __future__ import annotations

import math
import warnings

import keras

from catsdogs_helpers import models
from catsdogs_helpers.config import StudyConfig


def build_scratch_cnn(config: StudyConfig, num_train_images: int, num_replicas: int = 1) -> keras.Model:
    """Builds and compiles the CNN trained from scratch, with its augmentation.

    Adam at `scratch_learning_rate` (with `scratch_weight_decay`), decayed to
    zero along a cosine over `scratch_epochs` epochs of `num_train_images`
    photos; dropout `scratch_dropout`.

    Args:
        num_train_images: Photos in the training split (the cosine's length follows from it).
        num_replicas: Devices the model trains on.
    """
    model = models.build_scratch_cnn(
        config.image_size,
        config.scratch_image_size,
        dropout=config.scratch_dropout,
        augmentation=models.build_augmentation(config.seed, config.augmentation_strength),
    )
    steps_per_epoch = math.ceil(num_train_images / (config.batch_size * num_replicas))
    return models.compile_model(
        model,
        config.scratch_learning_rate * num_replicas,
        decay_steps=config.scratch_epochs * steps_per_epoch,
        weight_decay=config.scratch_weight_decay,
    )


def build_frozen_model(config: StudyConfig, num_replicas: int = 1) -> keras.Model:
    """Builds and compiles MobileNetV2, frozen, with a new head (Adam at `transfer_learning_rate`).

    Raises:
        InputError, MissingInputError, RuntimeError: See `models.build_mobilenet_base`.
    """
    model = models.build_transfer_model(
        config.image_size,
        config.weights,
        config.alpha,
        config.dropout,
        models.build_augmentation(config.seed, config.augmentation_strength),
    )
    return models.compile_model(model, config.transfer_learning_rate * num_replicas)


def build_fine_tuned_model(config: StudyConfig, frozen: object, num_replicas: int = 1) -> keras.Model:
    """Reads a copy of the trained frozen model, unfreezes its base from `fine_tune_at`, and compiles it anew.

    The base's BatchNormalization layers stay frozen; Adam at `fine_tune_learning_rate`.
    The frozen model itself is left as it was.

    Args:
        frozen: The trained frozen model (a `model_stages.TrainedModel`, whose saved file is read), or the
            path of its saved file (`transfer.keras`).
        num_replicas: Devices the model trains on.
    """
    with warnings.catch_warnings():  # The head's optimizer state is not needed: the model is compiled anew.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model = models.load_model(getattr(frozen, "path", frozen))
    return prepare_fine_tuning(config, model, num_replicas)


def prepare_fine_tuning(config: StudyConfig, model: keras.Model, num_replicas: int = 1) -> keras.Model:
    """Unfreezes a trained frozen model's base from `fine_tune_at` in place and compiles it anew (see
    `build_fine_tuned_model`); returns the same model."""
    models.unfreeze_base(model, fine_tune_at=config.fine_tune_at)
    return models.compile_model(model, config.fine_tune_learning_rate * num_replicas)
