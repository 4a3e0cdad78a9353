"""The study's three models, each built and compiled by one recipe (the notebook's cells build the same ones).
Build a model inside `strategy.scope()` to train it on several devices, and pass that strategy's number of replicas: it
multiplies the learning rate and divides the steps per epoch."""

from __future__ import annotations

import math
import warnings

import keras

from catsdogs_helpers import models
from catsdogs_helpers.config import StudyConfig


def build_scratch_cnn(config: StudyConfig, num_train_images: int, num_replicas: int = 1) -> keras.Model:
    """Builds and compiles the CNN trained from scratch; its cosine decay spans `scratch_epochs` epochs."""
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
    """Builds and compiles MobileNetV2, frozen, with a new head (errors: see `models.build_mobilenet_base`)."""
    model = models.build_transfer_model(
        config.image_size,
        config.weights,
        config.alpha,
        config.dropout,
        models.build_augmentation(config.seed, config.augmentation_strength),
    )
    return models.compile_model(model, config.transfer_learning_rate * num_replicas)


def build_fine_tuned_model(config: StudyConfig, frozen: object, num_replicas: int = 1) -> keras.Model:
    """Reads a copy of the trained frozen model (a `model_stages.TrainedModel`, whose saved file is read, or that file's
    path, `transfer.keras`) and prepares it for fine-tuning (see `prepare_fine_tuning`)."""
    with warnings.catch_warnings():  # The head's optimizer state is not needed: the model is compiled anew.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model = models.load_model(getattr(frozen, "path", frozen))
    return prepare_fine_tuning(config, model, num_replicas)


def prepare_fine_tuning(config: StudyConfig, model: keras.Model, num_replicas: int = 1) -> keras.Model:
    """Unfreezes a frozen model's base from `fine_tune_at` (BatchNormalization stays frozen) and compiles it anew."""
    models.unfreeze_base(model, fine_tune_at=config.fine_tune_at)
    return models.compile_model(model, config.fine_tune_learning_rate * num_replicas)
