"""The cached-feature path: a frozen base's features computed once per split, and the head trained on them.
The head shares its layers with the full model, so training it trains the model. The price: no augmentation, since the
features are fixed."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catsdogs_helpers.models import HEAD_DROPOUT_NAME, LOGIT_NAME, POOL_NAME
from catsdogs_helpers.stage_files import StageResult, load_finished_stage
from catsdogs_helpers.training import train_stage


def build_feature_extractor(model: keras.Model) -> keras.Model:
    """Returns the part of a model from raw pixels to its pooled features (shares weights)."""
    return keras.Model(model.inputs, model.get_layer(POOL_NAME).output, name=f"{model.name}_features")


def build_head(model: keras.Model) -> keras.Model:
    """Returns the part of a model from pooled features to its logit (shares weights: training it trains the model)."""
    features = keras.Input(model.get_layer(POOL_NAME).output.shape[1:], name="features")
    x = model.get_layer(HEAD_DROPOUT_NAME)(features)
    outputs = model.get_layer(LOGIT_NAME)(x)
    return keras.Model(features, outputs, name=f"{model.name}_head")


def build_compiled_head(model: keras.Model) -> keras.Model:
    """Returns `build_head(model)` compiled anew as `model` is; a `ValueError` if `model` is not compiled."""
    if not getattr(model, "compiled", False):
        raise ValueError(f"Compile the model before training its head: the head is compiled as it is. Received: "
                         f"model={model.name!r}, not compiled")  # fmt: skip
    head = build_head(model)
    head.compile_from_config(model.get_compile_config())
    return head


def extract_features(
    extractor: keras.Model, dataset: tf.data.Dataset, verbose: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Runs a feature extractor over batches of `(images, labels)`; returns float32 features and int32 labels."""
    features = extractor.predict(dataset.map(lambda images, labels: images), verbose=verbose)
    labels = np.concatenate([labels for _, labels in dataset.as_numpy_iterator()])
    return features.astype(np.float32), labels.astype(np.int32)


def train_head_on_features(
    model: keras.Model,
    train_in_order: tf.data.Dataset,
    validation_data: tf.data.Dataset,
    *,
    epochs: int,
    output_dir: str | Path,
    batch_size: int = 32,
    seed: int = 1337,
    patience: int = 8,
    name: str = "transfer",
    manifest: dict[str, object] | None = None,
    verbose: int = 2,
) -> StageResult:
    """Trains a compiled frozen-base model's head, on the model's replicas, on features computed once, as `train_stage`
    trains a stage; the `StageResult`'s `train_seconds` include computing the features.

    Args:
        model: A compiled model with layers named `"pool"`, `"head_dropout"` and `"logit"`.
        train_in_order: Training batches in a fixed order (the features are shuffled with `seed`).
        batch_size: Feature vectors per batch (all replicas together).
    """
    with model.distribute_strategy.scope():
        head = build_compiled_head(model)
        extractor = build_feature_extractor(model)
        finished = load_finished_stage(head, name, output_dir, manifest, verbose)
    if finished is not None:
        return finished
    start = time.perf_counter()
    if verbose:
        print(f"[{name}] computing the frozen base's features once per split...")
    train_features, train_labels = extract_features(extractor, train_in_order, verbose)
    validation_features, validation_labels = extract_features(extractor, validation_data, verbose)
    extraction_seconds = time.perf_counter() - start
    if verbose:
        num_photos = len(train_labels) + len(validation_labels)
        print(f"[{name}] features for {num_photos} photos in {extraction_seconds:.1f} s.")
    train = (
        tf.data.Dataset.from_tensor_slices((train_features, train_labels))
        .shuffle(len(train_labels), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
    )
    validation = tf.data.Dataset.from_tensor_slices((validation_features, validation_labels)).batch(batch_size)
    return train_stage(
        head,
        train,
        validation,
        name=name,
        epochs=epochs,
        output_dir=output_dir,
        num_train_images=len(train_labels),
        patience=patience,
        manifest=manifest,
        extra_seconds=extraction_seconds,
        verbose=verbose,
    )
