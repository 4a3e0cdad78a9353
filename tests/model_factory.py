"""Tiny models and datasets for the training tests (a plain module, not a test file)."""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catsdogs_helpers import contract, models, stage_files, training

SIZE = 48


class Interrupt(Exception):
    """Stands for a Colab disconnect or a Ctrl-C."""


class InterruptAfterEpoch(keras.callbacks.Callback):
    """Raises `exception` at the end of an epoch, after the callbacks before it saved that epoch."""

    def __init__(self, epoch: int, exception: type[BaseException] = Interrupt) -> None:
        super().__init__()
        self.epoch, self.exception = epoch, exception

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise self.exception(f"interrupted after epoch {epoch}")


class RecordEpochs(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def tiny_data(num_images: int = 32, seed: int = 0) -> tf.data.Dataset:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, num_images).astype("int32")
    images = rng.integers(0, 100, (num_images, SIZE, SIZE, 3)) + 120 * labels[:, None, None, None]
    return tf.data.Dataset.from_tensor_slices((images.astype("uint8"), labels)).batch(8)


def tiny_model(learning_rate: float = 1e-2, batch_norm: bool = True, dropout: float = 0.3) -> keras.Model:
    """A one-logit model compiled as the study's are, quick to trace (a second a stage, the scratch CNN's three).

    What a stage keeps and restores is all there: trainable weights, batch-norm statistics, dropout, the optimizer.
    """
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=4)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(momentum=0.5)(x)  # Statistics that settle within the 4 steps of a stage.
    x = keras.layers.Dropout(dropout)(x)
    return models.compile_model(keras.Model(inputs, keras.layers.Dense(1)(x)), learning_rate)


def run_stage(model, output_dir, epochs=4, patience=10, verbose=0, **kwargs) -> stage_files.StageResult:
    return training.train_stage(
        model,
        tiny_data(),
        tiny_data(16, seed=1),
        name="stage",
        epochs=epochs,
        output_dir=output_dir,
        num_train_images=32,
        patience=patience,
        verbose=verbose,
        **kwargs,
    )


def tiny_saved_model(path: Path) -> Path:
    """Saves a 32 px model with its contract (classes cat, dog): pooling and one Dense logit."""
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(1, name="logit")(keras.layers.GlobalAveragePooling2D(name="pool")(inputs))
    contract.attach_contract(keras.Model(inputs, outputs), ("cat", "dog")).save(path)
    return path
