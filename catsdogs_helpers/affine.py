"""Random rotation, zoom and shift as one affine resampling per photo, in a form XLA can compile.

Keras's `RandomRotation`, `RandomZoom` and `RandomTranslation` each resample and set `supports_jit = False`, which
keeps XLA off the whole model. `RandomAffine` resamples once with `keras.ops` gathers: XLA and any backend run it.
"""

from __future__ import annotations

import functools
import math
import sys

import keras
from keras import ops


def affine_resample(images, transforms):
    """Computes `keras.ops.image.affine_transform(images, transforms, fill_mode="reflect")` with gathers only.

    Args:
        images: Floating-point images of shape `(N, H, W, C)`, with `H`, `W` and `C` known when traced.
        transforms: Shape `(N, 8)`, `[a0, a1, a2, b0, b1, b2, 0, 0]`: output pixel `(x, y)` (column, row) reads the
            input at `(a0 * x + a1 * y + a2, b0 * x + b1 * y + b2)`, mirrored about the borders.
    """
    batch_size, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]
    transforms = ops.cast(transforms, "float32")
    rows = ops.arange(height, dtype="float32")[None, :, None]
    columns = ops.arange(width, dtype="float32")[None, None, :]
    a0, a1, a2, b0, b1, b2 = (ops.reshape(transforms[:, index], (-1, 1, 1)) for index in range(6))
    source_x = _reflect(a0 * columns + a1 * rows + a2, width)  # (N, H, W)
    source_y = _reflect(b0 * columns + b1 * rows + b2, height)
    x0, y0 = ops.floor(source_x), ops.floor(source_y)
    weight_x = ops.cast(source_x - x0, images.dtype)[..., None]
    weight_y = ops.cast(source_y - y0, images.dtype)[..., None]
    x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
    x1, y1 = ops.minimum(x0 + 1, width - 1), ops.minimum(y0 + 1, height - 1)
    # Pixel (n, y, x) is row (n * H + y) * W + x of the images flattened to (N * H * W, C).
    pixels = ops.reshape(images, (-1, images.shape[-1]))
    first_row = (ops.arange(batch_size, dtype="int32") * height)[:, None, None]

    def read(y, x):
        return ops.take(pixels, (first_row + y) * width + x, axis=0)

    top_left, bottom_left = read(y0, x0), read(y1, x0)
    top = top_left + (read(y0, x1) - top_left) * weight_x
    bottom = bottom_left + (read(y1, x1) - bottom_left) * weight_x
    return top + (bottom - top) * weight_y


@functools.cache
def _xla_resample_on_cpu():
    """`affine_resample` XLA-compiled alone, on TensorFlow without a GPU; else `None`.

    Keras compiles the whole step only on a GPU (any GPU: Apple's Metal has no XLA, so it gets the plain function).
    """
    if keras.backend.backend() != "tensorflow":
        return None
    tf = sys.modules["tensorflow"]  # Imported by Keras; not here, so that this module loads without it.
    if tf.config.list_physical_devices("GPU"):
        return None
    return tf.function(affine_resample, jit_compile=True)


def _reflect(coordinate, size: int):
    """Folds coordinates into [0, size - 1] by mirroring about the borders, half a pixel outside the edge ones."""
    period = 2.0 * size
    folded = ops.mod(coordinate + 0.5, period)
    folded = ops.where(folded >= size, period - folded, folded) - 0.5
    return ops.clip(folded, 0.0, size - 1.0)


@keras.saving.register_keras_serializable(package="catsdogs")
class RandomAffine(keras.layers.Layer):
    """Randomly rotates, zooms and shifts each photo with one resampling; identity at inference.

    Per photo it draws, uniformly, an angle, a zoom and a shift along each axis. Output pixel `p` reads the input at
    `zoom * R(angle) @ (p - center) + center - shift`: a zoom above 1 zooms out.

    Args:
        rotation_factor: Largest angle either way, as a fraction of a full turn (`0.08` is 28.8 degrees).
        zoom_factor: Zooms are drawn from `[1 - zoom_factor, 1 + zoom_factor]`.
        translation_factor: Largest shift either way along each axis, as a fraction of that side.

    Raises:
        ValueError: If a factor is negative, or `zoom_factor` is 1 or more.

    >>> layer = RandomAffine(seed=0)
    >>> tuple(layer(keras.ops.zeros((2, 32, 32, 3)), training=True).shape)
    (2, 32, 32, 3)
    """

    def __init__(
        self,
        rotation_factor: float = 0.08,
        zoom_factor: float = 0.2,
        translation_factor: float = 0.1,
        seed: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        factors = {"rotation_factor": rotation_factor, "zoom_factor": zoom_factor}
        for name, value in {**factors, "translation_factor": translation_factor}.items():
            if not value >= 0:
                raise ValueError(f"{name} must be 0 or more. Received: {name}={value}")
        if zoom_factor >= 1:
            raise ValueError(
                f"zoom_factor must be below 1 (a zoom of 0 is undefined). Received: zoom_factor={zoom_factor}"
            )
        self.rotation_factor = float(rotation_factor)
        self.zoom_factor = float(zoom_factor)
        self.translation_factor = float(translation_factor)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def get_random_transformation(self, images) -> dict:
        """Draws per image an `"angle"` (radians, `(N,)`), a `"zoom"` (`(N,)`) and a `"translation"` (`(N, 2)`): the
        shift along x and y as fractions of the width and the height.
        """
        batch_size = ops.shape(images)[0]
        turn = self.rotation_factor * 2 * math.pi

        def uniform(shape, limit):
            return keras.random.uniform(shape, minval=-limit, maxval=limit, seed=self.generator)

        return {
            "angle": uniform((batch_size,), turn),
            "zoom": 1.0 + uniform((batch_size,), self.zoom_factor),
            "translation": uniform((batch_size, 2), self.translation_factor),
        }

    @staticmethod
    def transform_matrix(transformation: dict, height: int, width: int):
        """Composes a `get_random_transformation` dict into `affine_resample` transforms, shape `(N, 8)`."""
        angle, zoom = transformation["angle"], transformation["zoom"]
        shift_x = transformation["translation"][:, 0] * width
        shift_y = transformation["translation"][:, 1] * height
        cos, sin = ops.cos(angle) * zoom, ops.sin(angle) * zoom
        center_x, center_y = (width - 1) / 2, (height - 1) / 2
        zeros = ops.zeros_like(cos)
        return ops.stack(
            [
                cos, -sin, center_x - cos * center_x + sin * center_y - shift_x,
                sin, cos, center_y - sin * center_x - cos * center_y - shift_y,
                zeros, zeros,
            ],
            axis=1,
        )  # fmt: skip

    def call(self, inputs, training=False):
        images = ops.cast(inputs, self.compute_dtype)
        if not training:
            return images
        transformation = self.get_random_transformation(images)
        transforms = self.transform_matrix(transformation, images.shape[1], images.shape[2])
        return (_xla_resample_on_cpu() or affine_resample)(images, transforms)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "rotation_factor": self.rotation_factor,
            "zoom_factor": self.zoom_factor,
            "translation_factor": self.translation_factor,
            "seed": self.seed,
        }
