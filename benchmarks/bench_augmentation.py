"""What the augmentation costs: Keras's three resampling layers against one `RandomAffine`.

Until version 0.3.0 the study's augmentation (`models.build_augmentation`) was five Keras layers; three of
them (`RandomRotation`, `RandomZoom`, `RandomTranslation`) each resample the whole image with their own
projective transform, and each opts out of XLA. Now rotation, zoom and shift are one `affine.RandomAffine`:
one matrix and one resampling per photo, with gathers that XLA compiles. This measures, on random 160-px
photos in batches of 32 (the scratch CNN's working size), in float32 on this machine:

- `keras_layers`: flip, the three Keras resampling layers, contrast (the 0.3.0 block);
- `keras_affine_op`: flip, one `keras.ops.image.affine_transform` of the same composed matrix (TensorFlow's
  `ImageProjectiveTransformV3`, which XLA cannot compile), contrast;
- `affine_gathers`: flip, `affine.affine_resample` uncompiled (the gathers op by op: `RandomAffine` in 0.4.0
  on a CPU), contrast;
- `random_affine`: the study's block, as built (flip, `RandomAffine`, contrast; since 0.4.1, on TensorFlow
  without a GPU, `RandomAffine` compiles its resampling alone with XLA);
- `random_affine_xla`: the same under `jit_compile=True` (Keras turns XLA on only on a GPU; on a CPU this
  shows what XLA makes of the whole block);
- `scratch_step`: one training step of the scratch CNN without augmentation, for scale;
- `scratch_step_augmented`: the same with the study's augmentation inside the model, as built;
- `scratch_step_augmented_gathers`: the same with the resampling's gathers uncompiled (0.4.0 on a CPU);

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

from catsdogs_helpers import affine, models


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=None)
    return parser.parse_args()


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
    augmentation = models.build_augmentation(1)
    flip, random_affine, contrast = augmentation.layers
    rotation = keras.layers.RandomRotation(0.08, fill_mode="reflect", seed=2)
    zoom = keras.layers.RandomZoom(0.2, fill_mode="reflect", seed=3)
    shift = keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=4)

    def keras_layers(x):
        for layer in (flip, rotation, zoom, shift, contrast):
            x = layer(x, training=True)
        return x

    def keras_affine_op(x):
        x = flip(x, training=True)
        transforms = random_affine.transform_matrix(random_affine.get_random_transformation(x), args.size, args.size)
        return contrast(keras.ops.image.affine_transform(x, transforms, fill_mode="reflect"), training=True)

    def affine_gathers(x):
        x = flip(x, training=True)
        transforms = random_affine.transform_matrix(random_affine.get_random_transformation(x), args.size, args.size)
        return contrast(affine.affine_resample(x, transforms), training=True)

    model = models.compile_model(models.build_scratch_cnn(args.size, args.size), 1e-3)
    labels = tf.zeros((args.batch_size, 1))
    augmented, gathers = (
        models.compile_model(
            models.build_scratch_cnn(args.size, args.size, augmentation=models.build_augmentation(1)), 1e-3
        )
        for _ in range(2)
    )

    def gathers_step(x):
        compiled, affine._xla_resample_on_cpu = affine._xla_resample_on_cpu, lambda: None
        try:  # The step is traced on its first call, with the plain gathers.
            return gathers.train_on_batch(x, labels)
        finally:
            affine._xla_resample_on_cpu = compiled

    rows = {
        "keras_layers": tf.function(keras_layers),
        "keras_affine_op": tf.function(keras_affine_op),
        "affine_gathers": tf.function(affine_gathers),
        "random_affine": tf.function(lambda x: augmentation(x, training=True)),
        "random_affine_xla": tf.function(lambda x: augmentation(x, training=True), jit_compile=True),
        "scratch_step": lambda x: model.train_on_batch(x, labels),
        "scratch_step_augmented": lambda x: augmented.train_on_batch(x, labels),
        "scratch_step_augmented_gathers": gathers_step,
    }
    rows = {name: photos_per_second(function, images, args.steps, args.repeats) for name, function in rows.items()}
    for name, rate in rows.items():
        print(f"{name:<30} {rate:8.1f} photos/s  ({1000 / rate:.2f} ms/photo)")
    saved = 1 / rows["keras_layers"] - 1 / rows["random_affine"]
    per_photo = 1 / rows["scratch_step"] + 1 / rows["keras_layers"]
    print(f"RandomAffine saves {1000 * saved:.2f} ms/photo against the three Keras layers: "
          f"{100 * saved / per_photo:.1f}% of a scratch training step with the 0.3.0 augmentation")  # fmt: skip
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        report = {"photos_per_second": rows, "saved_share_of_scratch_step": saved / per_photo, "args": vars(args)}
        Path(args.output).write_text(json.dumps({**report, "when": time.ctime()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
