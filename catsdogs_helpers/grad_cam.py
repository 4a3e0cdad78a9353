"""Grad-CAM heatmaps: which parts of a photo made a model predict what it predicted.

The feature map is the `pool` layer's input, taken from the outer model so it works with a nested MobileNetV2 too.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from catsdogs_helpers.models import LOGIT_NAME, POOL_NAME


def compute_grad_cam(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Computes Grad-CAM heatmaps of the class a one-logit model predicts, in inference mode.

    The heatmap is the ReLU of the feature map's channels weighted by the mean gradient of the predicted class's logit
    (minus class 0's), scaled to [0, 1] per image (all zero without positive evidence) and resized to the photo.

    Args:
        model: A model with layers named `"pool"` and `"logit"` (see `models.py`).
        images: Raw pixels in [0, 255], shape `(N, H, W, 3)`.

    Returns:
        Heatmaps, float32, shape `(N, H, W)`, values in [0, 1].

    Raises:
        ValueError: If `images` is not a batch of colour images, or the model lacks the `"pool"` or `"logit"` layer.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must have shape (N, H, W, 3). Received: images.shape={images.shape}")
    try:
        pool, logit = model.get_layer(POOL_NAME), model.get_layer(LOGIT_NAME)
    except ValueError as error:
        raise ValueError(
            f"Grad-CAM needs layers named {POOL_NAME!r} and {LOGIT_NAME!r}, as built by catsdogs_helpers.models. "
            f"Received: model={model.name!r} with layers {[layer.name for layer in model.layers]}"
        ) from error
    feature_map_model = keras.Model(model.inputs, pool.input, name=f"{model.name}_feature_map")  # Shares weights.
    height, width = images.shape[1:3]
    heatmaps = []
    for start in range(0, len(images), batch_size):
        batch = tf.convert_to_tensor(images[start : start + batch_size], tf.float32)
        feature_map = tf.cast(feature_map_model(batch, training=False), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(feature_map)
            logits = tf.reshape(tf.cast(logit(pool(feature_map, training=False), training=False), tf.float32), [-1])
            sign = tf.where(logits > 0, 1.0, -1.0)  # Explain the predicted class.
            target = tf.reduce_sum(sign * logits)  # Each image's logit depends on its own map only.
        gradients = tape.gradient(target, feature_map)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1))
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        cam = tf.math.divide_no_nan(cam, peak)
        cam = tf.image.resize(cam[..., tf.newaxis], (height, width), method="bilinear")[..., 0]
        heatmaps.append(tf.clip_by_value(cam, 0.0, 1.0).numpy())
    if not heatmaps:
        return np.zeros((0, height, width), np.float32)
    return np.concatenate(heatmaps).astype(np.float32)
