"""The two models of the study, their shared augmentation, fine-tuning and compilation.

Both models take raw pixels in [0, 255] and do their own scaling, so a saved
model classifies photos as they come. Both end in a single logit (no sigmoid):
the loss and metrics are told so in `compile_model`.
"""

from __future__ import annotations

import json
import os
import zipfile

import keras
from keras import layers

from catsdogs_helpers import contract  # noqa: F401 (registers ModelContract, so saved models load)
from catsdogs_helpers.affine import RandomAffine
from catsdogs_helpers.config import IMAGENET_IMAGE_SIZES
from catsdogs_helpers.errors import InputError, MissingInputError
from catsdogs_helpers.model_digests import describe_architecture as describe_architecture  # Re-exported.
from catsdogs_helpers.model_digests import describe_compilation as describe_compilation  # Re-exported.

BASE_NAME = "mobilenet_v2_base"
POOL_NAME = "pool"
HEAD_DROPOUT_NAME = "head_dropout"
LOGIT_NAME = "logit"
AUGMENTATION_NAME = "augmentation"


def build_augmentation(seed: int | None = None, strength: float = 1.0) -> keras.Sequential:
    """Builds the random augmentation shared by both models; active only in training.

    Horizontal flips, then one `RandomAffine` (rotation up to 0.08 of a turn,
    zoom up to 20%, shift up to 10% of each side), then contrast in [0.8, 1.2].
    Layer `i` is seeded `seed + i`, so the layers draw independent numbers.

    Args:
        seed: Seed of the first layer, or `None` for unseeded transforms.
        strength: Scales every range (not the flip): `0.5` halves them, `0`
            leaves only the flip.

    Returns:
        A `keras.Sequential` named `"augmentation"` that takes and returns
        images of shape `(N, H, W, 3)` with pixel values in [0, 255].
    """
    if not 0.0 <= strength <= 4.0:
        raise InputError(f"strength must be between 0 and 4. Received: strength={strength}")
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
    """Builds the CNN trained from scratch.

    A stride-2 stem and max pooling, then one convolution (with batch
    normalization) and one pooling per stage, global average pooling, dropout
    and one logit. The input is first resized to `working_size` with plain
    bilinear interpolation (antialiasing would keep XLA off on a GPU).

    Args:
        image_size: Side of the input images, in pixels.
        working_size: Side the images are resized to inside the model, in pixels.
        widths: Filters of the stem and of each stage.
        augmentation: Applied after resizing (training only), or `None`.

    Returns:
        An uncompiled `keras.Model` named `"scratch_cnn"`: raw pixels in, one logit out.

    Example:

    >>> model = build_scratch_cnn(image_size=160)
    >>> model.output_shape
    (None, 1)
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
    """Builds MobileNetV2 without its classifier, with checked weights.

    Args:
        image_size: Side of the input images, in pixels.
        weights: `"imagenet"` (downloaded by Keras), the path of a local no-top
            `.h5` file (any input size), or `None` for random weights.
        alpha: Width multiplier; must match the weights file.

    Returns:
        The base model, named `"mobilenet_v2_base"`.

    Raises:
        InputError: If `weights="imagenet"` and Keras has no ImageNet weights
            for `image_size`, or a weights file does not fit the model.
        MissingInputError: If a weights file does not exist.
        RuntimeError: If the ImageNet weights cannot be downloaded.
    """
    if weights == "imagenet" and image_size not in IMAGENET_IMAGE_SIZES:
        raise InputError(
            f"Keras has ImageNet weights for MobileNetV2 only at image sizes {IMAGENET_IMAGE_SIZES}; "
            f"at other sizes it would silently load another size's weights. Use one of those sizes, "
            f"or pass a local weights file. Received: image_size={image_size}"
        )
    if weights not in (None, "imagenet") and not os.path.isfile(weights):
        raise MissingInputError(
            f"The weights file does not exist: {weights}. Pass the path of a MobileNetV2 no-top .h5 "
            f'file, or "imagenet" to download them. Received: weights={weights!r}'
        )
    try:
        return keras.applications.MobileNetV2(
            input_shape=(image_size, image_size, 3),
            include_top=False,
            weights=weights,
            alpha=alpha,
            name=BASE_NAME,
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
    """Builds a frozen ImageNet MobileNetV2 with a new one-logit head.

    Layers: augmentation (training only) -> a `Rescaling` to [-1, 1] (what
    `preprocess_input` computes) -> the frozen base, called with
    `training=False` so its BatchNormalization layers keep the ImageNet
    statistics, also when fine-tuned -> global average pooling -> dropout ->
    one logit.

    Args:
        image_size: Side of the input images, in pixels.
        weights: See `build_mobilenet_base`.
        alpha: MobileNetV2 width multiplier.
        augmentation: Applied first (training only), or `None`.

    Returns:
        An uncompiled `keras.Model` named `"transfer"`: raw pixels in, one logit out.
    """
    base = build_mobilenet_base(image_size, weights, alpha)
    base.trainable = False
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = augmentation(inputs) if augmentation is not None else inputs
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess_input")(x)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D(name=POOL_NAME)(x)
    x = layers.Dropout(dropout, name=HEAD_DROPOUT_NAME)(x)
    outputs = layers.Dense(1, dtype="float32", name=LOGIT_NAME)(x)
    return keras.Model(inputs, outputs, name="transfer")


def unfreeze_base(model: keras.Model, fine_tune_at: int = 100, freeze_batch_norm: bool = True) -> int:
    """Unfreezes the top of a transfer model's base for fine-tuning; recompile the model afterwards.

    Args:
        model: A model from `build_transfer_model`.
        fine_tune_at: Index of the first base layer to unfreeze; the ones below stay frozen.
        freeze_batch_norm: Keep BatchNormalization layers (scale and offset too) frozen.

    Returns:
        The number of base layers that are now trainable.

    Raises:
        InputError: If `fine_tune_at` is beyond the base's last layer (a `ValueError`).
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
    """Compiles a one-logit model with a loss and metrics that expect logits.

    The metrics are named `"accuracy"` (a `BinaryAccuracy` with threshold 0,
    since a logit of 0 is a probability of 0.5) and `"auc"`.

    Args:
        learning_rate: The learning rate (the peak one, with `decay_steps`).
        optimizer: `"adam"` or `"rmsprop"`.
        decay_steps: If set, the learning rate follows a cosine from
            `learning_rate` down to zero over this many steps.
        weight_decay: Decoupled weight decay, as AdamW's (each step shrinks
            every weight by `learning_rate * weight_decay` of itself), or
            `None` or `0` for none.

    Returns:
        The same model, compiled.
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
    """Loads a model saved in the `.keras` format, in safe mode (no arbitrary Python code runs).

    Returns:
        The model; a model saved by the study carries its contract (see `contract.py`).

    Raises:
        MissingInputError: If the file does not exist.
        InputError: If it cannot be loaded; the message gives the real reason (not a
            `.keras` archive, a corrupt archive, code that safe mode refuses, a model
            saved by a newer Keras, ...).
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
        else:
            saved_by = _saved_keras_version(path)
            newer = saved_by and _version_tuple(saved_by) > _version_tuple(keras.__version__)
            reason = f"it was saved by Keras {saved_by}, newer than this Keras {keras.__version__}" if newer else ""
            reason = reason or "Keras could not rebuild the model it describes"
        raise InputError(f"{path} cannot be loaded: {reason} ({detail}). {fix}. Received: model={path!r}") from error


def _describe_keras_archive(path: str) -> str | None:
    """Returns why a file is not a `.keras` archive, or `None` if it looks like one."""
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as file:
            start = file.read(8)
        if start.startswith(b"\x89HDF"):
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


def _saved_keras_version(path: str) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            return str(json.loads(archive.read("metadata.json")).get("keras_version"))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return None


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())
