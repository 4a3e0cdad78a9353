"""Tests of `catsdogs_helpers.grad_cam` on tiny models, flat and nested like MobileNetV2."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from catsdogs_helpers.grad_cam import compute_grad_cam
from catsdogs_helpers.models import BASE_NAME, HEAD_DROPOUT_NAME, LOGIT_NAME, POOL_NAME


def add_head(x: keras.KerasTensor) -> keras.KerasTensor:
    x = keras.layers.GlobalAveragePooling2D(name=POOL_NAME)(x)
    x = keras.layers.Dropout(0.5, name=HEAD_DROPOUT_NAME)(x)
    return keras.layers.Dense(1, name=LOGIT_NAME)(x)


def brightness_model(logit_weight: float, logit_bias: float) -> keras.Model:
    """Feature map = mean pixel value; logit = weight * mean brightness + bias."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(1, 1, use_bias=False, name="brightness")(inputs)
    model = keras.Model(inputs, add_head(x))
    model.get_layer("brightness").set_weights([np.full((1, 1, 3, 1), 1 / 3, np.float32)])
    model.get_layer(LOGIT_NAME).set_weights(
        [np.array([[logit_weight]], np.float32), np.array([logit_bias], np.float32)]
    )
    return model


def square_images() -> np.ndarray:
    """Two black photos, each with a white 4x4 square (top-left and bottom-right)."""
    images = np.zeros((2, 16, 16, 3), np.uint8)
    images[0, :4, :4] = 255
    images[1, 12:, 12:] = 255
    return images


def nested_model(image_size: int = 24) -> keras.Model:
    """A transfer-like model: the convolutions live in a nested functional sub-model."""
    base_inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(base_inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    base = keras.Model(base_inputs, x, name=BASE_NAME)
    base.trainable = False
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = base(x, training=False)
    return keras.Model(inputs, add_head(x), name="transfer")


def test_heatmap_explains_positive_prediction():
    heatmaps = compute_grad_cam(brightness_model(1.0, 100.0), square_images())  # logit > 0: "dog".
    assert heatmaps.shape == (2, 16, 16)
    assert heatmaps.dtype == np.float32
    np.testing.assert_allclose(heatmaps[0, :4, :4], 1.0, atol=1e-6)
    np.testing.assert_allclose(heatmaps[0, 8:, 8:], 0.0, atol=1e-6)
    np.testing.assert_allclose(heatmaps[1, 12:, 12:], 1.0, atol=1e-6)


def test_heatmap_explains_negative_prediction_with_minus_logit():
    # logit = -brightness < 0: the bright square is evidence for class 0, the predicted class.
    heatmaps = compute_grad_cam(brightness_model(-1.0, 0.0), square_images())
    np.testing.assert_allclose(heatmaps[0, :4, :4], 1.0, atol=1e-6)
    np.testing.assert_allclose(heatmaps[0, 8:, 8:], 0.0, atol=1e-6)


def test_map_without_evidence_stays_zero():
    # logit = brightness - 1000 < 0: brightness only argues for class 1, so nothing explains class 0.
    heatmaps = compute_grad_cam(brightness_model(1.0, -1000.0), square_images())
    np.testing.assert_array_equal(heatmaps, 0.0)


@pytest.mark.parametrize("batch_size", [2, 32])
def test_nested_base_model(batch_size):
    keras.utils.set_random_seed(0)
    model = nested_model()
    images = np.random.default_rng(0).integers(0, 256, (5, 24, 24, 3), dtype=np.uint8)
    heatmaps = compute_grad_cam(model, images, batch_size=batch_size)
    assert heatmaps.shape == (5, 24, 24)
    assert np.isfinite(heatmaps).all()
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    assert heatmaps.max() > 0.0


def test_batches_give_the_same_maps():
    keras.utils.set_random_seed(1)
    model = nested_model()
    images = np.random.default_rng(1).integers(0, 256, (5, 24, 24, 3)).astype(np.float32)
    np.testing.assert_allclose(
        compute_grad_cam(model, images, batch_size=2), compute_grad_cam(model, images, batch_size=5), atol=1e-5
    )


def test_rejects_bad_input():
    model = brightness_model(1.0, 0.0)
    with pytest.raises(ValueError, match=r"Received: images\.shape"):
        compute_grad_cam(model, np.zeros((16, 16, 3)))
    inputs = keras.Input((16, 16, 3))
    no_pool = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="Grad-CAM needs layers named"):
        compute_grad_cam(no_pool, np.zeros((1, 16, 16, 3)))
