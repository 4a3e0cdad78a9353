"""What the augmentation costs, and whether one combined geometric transform would be cheaper.

The study's augmentation (`models.build_augmentation`) is five Keras layers; three of them (rotation,
zoom, shift) each resample the whole image with its own projective transform. This measures, on random
160-px photos in batches of 32 (the scratch CNN's working size), in float32 on this machine:

- `keras_layers`: the study's block, as built;
- `combined`: the same flip and contrast, with rotation, zoom and shift composed into one affine matrix per
  photo and applied in a single `keras.ops.image.affine_transform` (one resampling instead of three);
- `scratch_step`: one training step of the scratch CNN without augmentation, for scale;

each as photos/s (best of `--repeats` timings of `--steps` batches). Run:

    python benchmarks/bench_augmentation.py --output benchmarks/results/augmentation.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catsdogs_helpers import models


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=None)
    return parser.parse_args()


def combined_geometry(images: tf.Tensor, strength: float = 1.0) -> tf.Tensor:
    """Rotation (±0.08 turn), zoom (±20%) and shift (±10%) as one affine resampling per photo."""
    batch, height, width = (
        tf.shape(images)[0],
        tf.cast(tf.shape(images)[1], tf.float32),
        tf.cast(tf.shape(images)[2], tf.float32),
    )
    angle = tf.random.uniform((batch,), -0.08, 0.08) * strength * 2 * math.pi
    zoom = 1.0 + tf.random.uniform((batch,), -0.2, 0.2) * strength
    shift_x = tf.random.uniform((batch,), -0.1, 0.1) * strength * width
    shift_y = tf.random.uniform((batch,), -0.1, 0.1) * strength * height
    cos, sin = tf.cos(angle) * zoom, tf.sin(angle) * zoom
    center_x, center_y = (width - 1) / 2, (height - 1) / 2
    # Output pixel (x, y) reads input pixel A @ (x - c) + c - shift: rotation and zoom about the centre.
    transform = tf.stack(
        [
            cos, -sin, center_x - cos * center_x + sin * center_y - shift_x,
            sin, cos, center_y - sin * center_x - cos * center_y - shift_y,
            tf.zeros_like(cos), tf.zeros_like(cos),
        ],
        axis=1,
    )  # fmt: skip
    return keras.ops.image.affine_transform(images, transform, fill_mode="reflect")


def photos_per_second(function, images: tf.Tensor, steps: int, repeats: int) -> float:
    function(images)  # Traces and warms up.
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            np.asarray(function(images))
        best = min(best, time.perf_counter() - start)
    return steps * int(images.shape[0]) / best


def main() -> int:
    args = parse_args()
    keras.utils.set_random_seed(0)
    images = tf.constant(
        np.random.default_rng(0).uniform(0, 255, (args.batch_size, args.size, args.size, 3)), tf.float32
    )
    layers = models.build_augmentation(1)
    flip, contrast = layers.layers[0], layers.layers[-1]

    keras_layers = tf.function(lambda x: layers(x, training=True))
    combined = tf.function(lambda x: contrast(combined_geometry(flip(x, training=True)), training=True))
    model = models.compile_model(models.build_scratch_cnn(args.size, args.size), 1e-3)
    labels = tf.zeros((args.batch_size, 1))
    scratch_step = lambda x: model.train_on_batch(x, labels)  # noqa: E731

    rows = {
        "keras_layers": photos_per_second(keras_layers, images, args.steps, args.repeats),
        "combined": photos_per_second(combined, images, args.steps, args.repeats),
        "scratch_step": photos_per_second(scratch_step, images, args.steps, args.repeats),
    }
    for name, rate in rows.items():
        print(f"{name:<14} {rate:8.1f} photos/s  ({1000 / rate:.2f} ms/photo)")
    saved = 1 / rows["keras_layers"] - 1 / rows["combined"]
    per_photo = 1 / rows["scratch_step"] + 1 / rows["keras_layers"]
    print(f"one combined transform saves {1000 * saved:.2f} ms/photo: {100 * saved / per_photo:.1f}% of a scratch "
          "training step with the study's augmentation")  # fmt: skip
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        report = {"photos_per_second": rows, "saved_share_of_scratch_step": saved / per_photo, "args": vars(args)}
        Path(args.output).write_text(json.dumps({**report, "when": time.ctime()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
