"""The study's two models (raw pixels in, one logit out), their augmentation, fine-tuning, compilation and loading."""

from __future__ import annotations

import json
import os
import zipfile

import keras
from keras import layers

from catsdogs_helpers import contract  # noqa: F401 (registers ModelContract, so saved models load)
from catsdogs_helpers.affine import RandomAffine
from catsdogs_helpers.digests import describe_architecture as describe_architecture  # Re-exported.
from catsdogs_helpers.digests import describe_compilation as describe_compilation  # Re-exported.
from catsdogs_helpers.errors import InputError, MissingInputError

BASE_NAME = "mobilenet_v2_base"
POOL_NAME = "pool"
HEAD_DROPOUT_NAME = "head_dropout"
LOGIT_NAME = "logit"
AUGMENTATION_NAME = "augmentation"


def build_augmentation(seed: int | None = None, strength: float = 1.0) -> keras.Sequential:
    """Builds the augmentation of both models, from images `(N, H, W, 3)` in [0, 255] to the same, in training only.

    Args:
        seed: Seed of the first layer (layer `i` gets `seed + i`), or `None` for unseeded draws.
        strength: Scales every range but the flip's; at 1, rotation up to 0.08 of a turn, zoom up to 20%, shift up
            to 10% of each side, contrast in [0.8, 1.2].
    """
    seeds = [None if seed is None else seed + index for index in range(3)]
    rotation, zoom, shift, contrast = 0.08 * strength, 0.2 * strength, 0.1 * strength, 0.2 * strength
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seeds[0]),
            RandomAffine(rotation, zoom, shift, seed=seeds[1]),
            # A (lower, upper) pair: RandomContrast(0.2) draws factors in [1.0, 1.2] only in Keras 3.
            layers.RandomContrast((contrast, contrast), value_range=(0, 255), seed=seeds[2]),
        ],
        name=AUGMENTATION_NAME,
    )


def _conv_block(x: keras.KerasTensor, filters: int, strides: int = 1) -> keras.KerasTensor:
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    # Momentum 0.9 (not 0.99): with ~60 steps an epoch, the moving statistics
    # used for validation then keep up with the fast-changing early weights.
    x = layers.BatchNormalization(momentum=0.9)(x)
    return layers.Activation("relu")(x)


def build_scratch_cnn(
    image_size: int = 224,
    working_size: int = 160,
    widths: tuple[int, ...] = (32, 64, 128, 256),
    dropout: float = 0.3,
    augmentation: keras.Layer | None = None,
) -> keras.Model:
    """Builds the uncompiled CNN trained from scratch, named `"scratch_cnn"`.

    Args:
        working_size: Side the model resizes images to (bilinear; antialiasing would keep XLA off on a GPU).
        widths: Filters of the stride-2 stem and of each following stage.
        augmentation: Applied after resizing, or `None`.
    """
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    if working_size != image_size:
        x = layers.Resizing(working_size, working_size, name="resize")(x)
    if augmentation is not None:
        x = augmentation(x)
    x = layers.Rescaling(1.0 / 255, name="scale")(x)
    x = _conv_block(x, widths[0], strides=2)
    x = layers.MaxPooling2D()(x)
    for filters in widths[1:]:
        x = _conv_block(x, filters)
        x = layers.MaxPooling2D()(x)
    x = _conv_block(x, widths[-1])
    x = layers.GlobalAveragePooling2D(name=POOL_NAME)(x)
    x = layers.Dropout(dropout, name=HEAD_DROPOUT_NAME)(x)
    outputs = layers.Dense(1, dtype="float32", name=LOGIT_NAME)(x)
    return keras.Model(inputs, outputs, name="scratch_cnn")


def build_mobilenet_base(image_size: int = 224, weights: str | None = "imagenet", alpha: float = 1.0) -> keras.Model:
    """Builds MobileNetV2 without its classifier.

    Args:
        weights: `"imagenet"` (downloaded by Keras), a local no-top `.h5` file of this `alpha`, or `None` (random).

    Raises:
        InputError: If the weights file does not fit the model.
        RuntimeError: If the ImageNet weights cannot be downloaded.
    """
    try:
        return keras.applications.MobileNetV2(
            input_shape=(image_size, image_size, 3), include_top=False, weights=weights, alpha=alpha, name=BASE_NAME
        )
    except Exception as error:
        if weights == "imagenet":
            raise RuntimeError(
                f"Could not download the ImageNet weights of MobileNetV2 ({type(error).__name__}: {error}). "
                "Offline, pass a local file instead: --weights path/to/"
                f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{image_size}_no_top.h5 "
                "on the command line or WEIGHTS = '<path>' in the notebook. Received: weights='imagenet'"
            ) from error
        if weights is not None:
            raise InputError(
                f"The weights file {weights} does not fit MobileNetV2 with alpha={alpha} and no top "
                f"({type(error).__name__}: {error}). Check that the file's alpha matches. "
                f"Received: weights={weights!r}, alpha={alpha}"
            ) from error
        raise


def build_transfer_model(
    image_size: int = 224,
    weights: str | None = "imagenet",
    alpha: float = 1.0,
    dropout: float = 0.2,
    augmentation: keras.Layer | None = None,
) -> keras.Model:
    """Builds the uncompiled `"transfer"` model: a frozen MobileNetV2 (see `build_mobilenet_base`) and a new head.

    The base runs with `training=False`: BatchNorm keeps ImageNet statistics, even fine-tuned; `augmentation` is first.
    """
    base = build_mobilenet_base(image_size, weights, alpha)
    base.trainable = False
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = augmentation(inputs) if augmentation is not None else inputs
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess_input")(x)  # MobileNetV2's preprocess_input.
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D(name=POOL_NAME)(x)
    x = layers.Dropout(dropout, name=HEAD_DROPOUT_NAME)(x)
    outputs = layers.Dense(1, dtype="float32", name=LOGIT_NAME)(x)
    return keras.Model(inputs, outputs, name="transfer")


def unfreeze_base(model: keras.Model, fine_tune_at: int = 100, freeze_batch_norm: bool = True) -> int:
    """Unfreezes a transfer model's base from layer `fine_tune_at` up; recompile the model afterwards.

    Args:
        freeze_batch_norm: Keep BatchNormalization layers (scale and offset too) frozen.

    Returns:
        How many base layers with weights now train.

    Raises:
        InputError: If `fine_tune_at` is not a layer index of the base.
    """
    base = model.get_layer(BASE_NAME)
    if not 0 <= fine_tune_at < len(base.layers):
        raise InputError(
            f"fine_tune_at must be a layer index of the base, between 0 and {len(base.layers) - 1}. "
            f"Received: fine_tune_at={fine_tune_at}"
        )
    base.trainable = True
    for index, layer in enumerate(base.layers):
        frozen = index < fine_tune_at or (freeze_batch_norm and isinstance(layer, layers.BatchNormalization))
        layer.trainable = not frozen
    return sum(1 for layer in base.layers if layer.trainable and layer.weights)


def compile_model(
    model: keras.Model,
    learning_rate: float,
    optimizer: str = "adam",
    decay_steps: int | None = None,
    weight_decay: float | None = None,
) -> keras.Model:
    """Compiles a one-logit model, and returns it, with a loss and metrics (`"accuracy"`, `"auc"`) for logits.

    Args:
        optimizer: `"adam"` or `"rmsprop"`.
        decay_steps: If set, the learning rate decays along a cosine to zero over this many steps.
        weight_decay: Decoupled weight decay, as AdamW's, or `None` or `0` for none.
    """
    optimizers = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}
    if optimizer not in optimizers:
        raise ValueError(f"optimizer must be one of {sorted(optimizers)}. Received: optimizer={optimizer!r}")
    if decay_steps is not None:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    model.compile(
        optimizer=optimizers[optimizer](learning_rate=learning_rate, weight_decay=weight_decay or None),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy"),
            keras.metrics.AUC(from_logits=True, name="auc"),
        ],
    )
    return model


def load_model(path: str | os.PathLike) -> keras.Model:
    """Loads a `.keras` model in safe mode (no arbitrary Python code runs).

    Raises:
        MissingInputError: If the file does not exist.
        InputError: If it cannot be loaded; the message says why (a folder, not a `.keras` archive, a corrupt one,
            code that safe mode refuses, a model saved by a newer Keras, ...).
    """
    path = os.fspath(path)
    fix = "Pass a model saved by the study (scratch.keras, transfer.keras or finetuned.keras)"
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise InputError(
            f"{path} is a SavedModel (an artifact of catsdogs export), and this command takes the .keras model it "
            "was exported from: pass that model (scratch.keras, transfer.keras or finetuned.keras). To classify "
            f"photos with the SavedModel itself, use catsdogs predict --model {path}. Received: model={path!r}"
        )
    if os.path.isdir(path):
        raise InputError(
            f"{path} is a folder, not a .keras model nor a SavedModel exported by catsdogs export (a folder holding "
            f"saved_model.pb). {fix}. Received: model={path!r}"
        )
    if not os.path.isfile(path):
        raise MissingInputError(f"The model file does not exist: {path}. Received: model={path!r}")
    reason = _describe_keras_archive(path)
    if reason is not None:
        raise InputError(f"{path} cannot be loaded: {reason}. {fix}. Received: model={path!r}")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as error:
        detail = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        if "safe_mode" in str(error):
            reason = "it holds Python code (such as a Lambda layer) that loading in safe mode refuses to run"
        elif _version_tuple(saved_by := _saved_keras_version(path)) > _version_tuple(keras.__version__):
            reason = f"it was saved by Keras {saved_by}, newer than this Keras {keras.__version__}"
        else:
            reason = "Keras could not rebuild the model it describes"
        raise InputError(f"{path} cannot be loaded: {reason} ({detail}). {fix}. Received: model={path!r}") from error


def _describe_keras_archive(path: str) -> str | None:
    """Returns why a file is not a `.keras` archive, or `None` if it looks like one."""
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as file:
            if file.read(4) == b"\x89HDF":
                return "it is an HDF5 (.h5) file, not the .keras format the study saves"
        return "it is not a .keras archive (a .keras file is a zip archive)"
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            corrupt = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        return f"it is a corrupt zip archive ({error})"
    if corrupt is not None:
        return f"it is a corrupt zip archive (its member {corrupt} fails its checksum)"
    if "config.json" not in names:
        return "it is a zip archive without the config.json of a .keras model"
    return None


def _saved_keras_version(path: str) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            return str(json.loads(archive.read("metadata.json")).get("keras_version"))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return ""


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())
