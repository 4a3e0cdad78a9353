"""Tests of RandomAffine: its resampling, its geometry against Keras's own layers, its draws, saving, XLA."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from catsdogs_helpers import affine, models
from catsdogs_helpers.affine import RandomAffine, affine_resample

SIZE = 32


def random_images(num_images: int = 4, height: int = SIZE, width: int = SIZE) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (num_images, height, width, 3)).astype("float32")


def fixed(angle: float = 0.0, zoom: float = 1.0, shift_x: float = 0.0, shift_y: float = 0.0, num_images: int = 4):
    """A transformation dict as `get_random_transformation` returns, the same for every image."""
    return {
        "angle": np.full((num_images,), angle, "float32"),
        "zoom": np.full((num_images,), zoom, "float32"),
        "translation": np.tile(np.array([[shift_x, shift_y]], "float32"), (num_images, 1)),
    }


def apply(images: np.ndarray, transformation: dict) -> np.ndarray:
    """Applies one transformation dict through `RandomAffine`'s own matrix and resampling."""
    return apply_transforms(images, RandomAffine.transform_matrix(transformation, images.shape[1], images.shape[2]))


def apply_transforms(images: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(affine_resample(images, transforms))


def test_affine_resample_equals_keras_affine_transform_with_reflected_borders():
    # Non-square images and transforms that reach far outside them (up to two periods of the reflection).
    images = random_images(6, 20, 28)
    rng = np.random.default_rng(1)
    linear = rng.uniform(-1.5, 1.5, (6, 2, 2))
    offsets = rng.uniform(-60, 60, (6, 2, 1))
    transforms = np.concatenate([linear, offsets], axis=2).reshape(6, 6)
    transforms = np.concatenate([transforms, np.zeros((6, 2))], axis=1).astype("float32")
    expected = keras.ops.image.affine_transform(images, transforms, fill_mode="reflect")
    np.testing.assert_allclose(apply_transforms(images, transforms), np.asarray(expected), atol=0.02)


@pytest.mark.parametrize(
    ("transformation", "keras_layer"),
    [
        (fixed(angle=0.08 * 2 * math.pi), keras.layers.RandomRotation((0.08, 0.08), fill_mode="reflect")),
        (fixed(angle=-0.05 * 2 * math.pi), keras.layers.RandomRotation((-0.05, -0.05), fill_mode="reflect")),
        (fixed(zoom=1.2), keras.layers.RandomZoom((0.2, 0.2), fill_mode="reflect")),
        (fixed(zoom=0.8), keras.layers.RandomZoom((-0.2, -0.2), fill_mode="reflect")),
        (fixed(shift_x=0.1, shift_y=-0.1), keras.layers.RandomTranslation((-0.1, -0.1), (0.1, 0.1), "reflect")),
    ],
    ids=["rotation", "negative rotation", "zoom out", "zoom in", "shift"],
)
def test_each_transform_alone_equals_the_keras_layer_at_the_same_factor(transformation, keras_layer):
    images = random_images()
    expected = keras.ops.convert_to_numpy(keras_layer(images, training=True))
    np.testing.assert_allclose(apply(images, transformation), expected, atol=0.02)


def test_a_marked_point_lands_where_the_composed_transform_puts_it():
    # A smooth blob at input (x, y) = (12, 9): its brightness-weighted centre is its position.
    height, width = 40, 48
    rows, columns = np.mgrid[0:height, 0:width].astype("float32")
    blob = np.exp(-((columns - 12) ** 2 + (rows - 9) ** 2) / (2 * 1.5**2))
    images = np.repeat(blob[None, :, :, None], 3, axis=3) * 255
    angle, zoom, shift = 0.3, 0.9, np.array([0.05, -0.1])
    output = apply(images.astype("float32"), fixed(angle, zoom, *shift, num_images=1))[0, :, :, 0]
    # Output point p reads input point zoom * R(angle) @ (p - center) + center - shift, so
    # p = R(-angle) @ (q - center + shift) / zoom + center.
    center = np.array([(width - 1) / 2, (height - 1) / 2])
    q = np.array([12.0, 9.0]) - center + shift * [width, height]
    cos, sin = math.cos(angle), math.sin(angle)
    expected = np.array([cos * q[0] + sin * q[1], -sin * q[0] + cos * q[1]]) / zoom + center
    found = np.array([(output * columns).sum(), (output * rows).sum()]) / output.sum()
    np.testing.assert_allclose(found, expected, atol=0.05)


def test_borders_are_filled_with_the_reflected_photo():
    images = random_images(1)
    shifted = apply(images, fixed(shift_x=10 / SIZE, num_images=1))  # 10 pixels to the right.
    np.testing.assert_allclose(shifted[:, :, 10:], images[:, :, :-10], atol=1e-3)
    # Columns left of the photo mirror its first ten: output column j shows input column 9 - j.
    np.testing.assert_allclose(shifted[:, :, :10], images[:, :, 9::-1], atol=1e-3)


def test_identity_at_inference_and_with_zero_factors():
    images = random_images()
    layer = RandomAffine(seed=0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images, training=False)), images)
    still = RandomAffine(0.0, 0.0, 0.0, seed=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(still(images, training=True)), images, atol=1e-4)
    moved = keras.ops.convert_to_numpy(layer(images, training=True))
    assert moved.shape == images.shape and not np.allclose(moved, images)
    assert moved.min() >= 0.0 and moved.max() <= 255.0  # Bilinear: never outside the input's range.
    photos = random_images().astype("uint8")
    assert keras.ops.convert_to_numpy(layer(photos, training=True)).dtype == np.float32


def test_draws_are_fresh_every_call_and_repeat_with_the_seed():
    images = random_images()
    first, second = RandomAffine(seed=5), RandomAffine(seed=5)
    one, two = first(images, training=True), first(images, training=True)
    assert not np.allclose(keras.ops.convert_to_numpy(one), keras.ops.convert_to_numpy(two))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(second(images, training=True)), one)


def test_rejects_factors_outside_their_ranges():
    with pytest.raises(ValueError, match=r"rotation_factor=-0\.1"):
        RandomAffine(rotation_factor=-0.1)
    with pytest.raises(ValueError, match=r"zoom_factor=1\.0"):
        RandomAffine(zoom_factor=1.0)


def test_config_round_trips_and_is_deterministic():
    layer = RandomAffine(0.05, 0.1, 0.2, seed=3, name="affine")
    config = layer.get_config()
    assert RandomAffine.from_config(config).get_config() == config
    assert config == RandomAffine(0.05, 0.1, 0.2, seed=3, name="affine").get_config()
    digests = {
        models.describe_architecture(models.build_scratch_cnn(SIZE, SIZE, augmentation=models.build_augmentation(1)))
        for _ in range(2)
    }
    assert len(digests) == 1  # The same model built twice has the same architecture digest.


def test_a_saved_model_with_the_layer_loads_in_safe_mode_and_takes_raw_photos(tmp_path):
    keras.utils.set_random_seed(0)
    model = models.build_scratch_cnn(SIZE, SIZE, widths=(8, 8, 16, 16), augmentation=models.build_augmentation(0))
    models.compile_model(model, 1e-3)
    photos = np.random.default_rng(0).integers(0, 256, (4, SIZE, SIZE, 3)).astype("uint8")
    model.train_on_batch(photos, np.array([0, 1, 0, 1]))
    model.save(tmp_path / "scratch.keras")
    loaded = models.load_model(tmp_path / "scratch.keras")
    assert isinstance(loaded.get_layer("augmentation").layers[1], RandomAffine)
    np.testing.assert_allclose(loaded.predict(photos, verbose=0), model.predict(photos, verbose=0), atol=1e-5)


def test_compiles_with_xla(graph_mode):
    # On TensorFlow, keras.ops.image.affine_transform cannot: XLA has no kernel for ImageProjectiveTransformV3.
    layer = RandomAffine(seed=0)
    images = tf.constant(random_images())
    compiled = tf.function(lambda x: layer(x, training=True), jit_compile=True)
    assert compiled(images).shape == images.shape
    transforms = tf.constant(np.tile([[1, 0, 0, 0, 1, 0, 0, 0]], (4, 1)), tf.float32)
    opted_out = tf.function(lambda x: keras.ops.image.affine_transform(x, transforms), jit_compile=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="ImageProjectiveTransformV3"):
        opted_out(images)


def test_without_a_gpu_the_resampling_alone_is_compiled_and_equals_the_plain_gathers(graph_mode):
    # Keras never compiles the training step with XLA on a CPU-only machine; the layer then compiles its
    # resampling alone (the gathers op by op cost about twice as much, `benchmarks/bench_augmentation.py`).
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: the layer keeps the plain function and Keras compiles the whole step")
    compiled = affine._xla_resample_on_cpu()
    assert compiled is not None
    images = random_images(5, 24, 40)
    transforms = RandomAffine.transform_matrix(
        RandomAffine(seed=3).get_random_transformation(images), images.shape[1], images.shape[2]
    )
    # XLA fuses the arithmetic in another order: float32 rounding on pixel values up to 255 (TF 2.16: 1.5e-3).
    np.testing.assert_allclose(
        np.asarray(compiled(images, transforms)), apply_transforms(images, transforms), rtol=0, atol=1e-2
    )
    layer = RandomAffine(seed=0)
    uncompiled_step = tf.function(lambda x: layer(x, training=True))
    graph = uncompiled_step.get_concrete_function(tf.TensorSpec((2, SIZE, SIZE, 3))).graph
    called = [op for op in graph.get_operations() if op.type in ("StatefulPartitionedCall", "PartitionedCall")]
    assert any(op.get_attr("_XlaMustCompile") for op in called if "_XlaMustCompile" in op.node_def.attr)
