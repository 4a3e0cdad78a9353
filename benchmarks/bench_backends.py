"""Training speed of the study's three models on synthetic photos, with Keras 3 on any backend.

It builds the models with the study's own functions (`catsdogs_helpers.models`, which imports no TensorFlow)
and trains each on random photos (float32 pixel values in [0, 255], 224 px, batches of 64) in the study's three
training regimes:

- `scratch`: the CNN trained from scratch, with its augmentation (`build_scratch_cnn`, `build_augmentation`);
- `frozen`: MobileNetV2 frozen, only the new head trainable, trained end to end with augmentation
  (`build_transfer_model`); the study itself trains this head on cached features, far cheaper;
- `finetuned`: the same model with its base unfrozen from layer 100 (`unfreeze_base`);

each compiled as the study compiles it (`compile_model`), in float32 and in mixed precision (`mixed_float16`),
and reports training images/s: `--warmup` steps (compilation included) first, then the best of `--repeats`
timings of `--steps` steps. Weights are random unless `--weights` names a MobileNetV2 no-top `.h5` file:
speed does not depend on them.

The backend is Keras's, chosen by the environment, so the same script measures a machine that has JAX or
PyTorch but no TensorFlow:

    KERAS_BACKEND=jax python benchmarks/bench_backends.py --output benchmarks/results/backends-jax.json
    KERAS_BACKEND=tensorflow python benchmarks/bench_backends.py
    KERAS_BACKEND=jax python benchmarks/bench_backends.py --precisions float32 --steps 2 --repeats 1  # a CPU

On a CPU, mixed precision is slow (float16 is emulated): measure float32 only, with few steps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np

from catsdogs_helpers import models
from catsdogs_helpers.config import DEFAULT

STAGES = ("scratch", "frozen", "finetuned")
PRECISIONS = ("float32", "mixed_float16")
LEARNING_RATES = {  # The default preset's.
    "scratch": DEFAULT.scratch_learning_rate,
    "frozen": DEFAULT.transfer_learning_rate,
    "finetuned": DEFAULT.fine_tune_learning_rate,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--scratch-image-size", type=int, default=DEFAULT.scratch_image_size)
    parser.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2 width multiplier")
    parser.add_argument("--fine-tune-at", type=int, default=DEFAULT.fine_tune_at)
    parser.add_argument("--weights", default=None, help="a MobileNetV2 no-top .h5 file; random weights if absent")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation included)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    return parser.parse_args(argv)


def describe_backend() -> tuple[str, str, dict[str, str]]:
    """Returns Keras's backend, the device it computes on, and the versions of the libraries involved.

    Only the backend's own library is imported: TensorFlow is never imported on JAX or PyTorch.
    """
    backend = keras.backend.backend()
    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": np.__version__}
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        versions["jax"] = jax.__version__
        return backend, f"{device.platform.upper()}: {device.device_kind} ({len(jax.devices())} visible)", versions
    if backend == "torch":
        import torch

        versions["torch"] = torch.__version__
        if torch.cuda.is_available():
            return backend, f"GPU: {torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} visible)", versions
        return backend, "CPU", versions
    if backend == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
            return backend, f"GPU: {name} ({len(gpus)} visible)", versions
        return backend, "CPU", versions
    return backend, "CPU", versions


def build_stage_model(stage: str, args: argparse.Namespace, frozen: keras.Model | None = None) -> keras.Model:
    """Builds and compiles one stage's model as the study does, under the current precision policy.

    Args:
        stage: `"scratch"`, `"frozen"` or `"finetuned"`.
        args: The command line's settings.
        frozen: For `"finetuned"`, the frozen model to unfreeze (its weights are
            reused, as the study reuses the trained head). Defaults to `None`:
            a new frozen model is built.

    Returns:
        The compiled model.
    """
    augmentation = models.build_augmentation(args.seed, DEFAULT.augmentation_strength)
    if stage == "scratch":
        model = models.build_scratch_cnn(
            args.image_size, args.scratch_image_size, dropout=DEFAULT.scratch_dropout, augmentation=augmentation
        )
    else:
        model = frozen or models.build_transfer_model(
            args.image_size, args.weights, args.alpha, DEFAULT.dropout, augmentation
        )
        if stage == "finetuned":
            models.unfreeze_base(model, fine_tune_at=args.fine_tune_at)
    return models.compile_model(model, LEARNING_RATES[stage])


def time_training(model: keras.Model, args: argparse.Namespace) -> dict[str, float]:
    """Trains a model on one random batch, repeatedly, and times it.

    Returns:
        `images_per_second` (best repeat), `warmup_seconds` (the first steps,
        compilation included) and `step_milliseconds`.
    """
    generator = np.random.default_rng(args.seed)
    shape = (args.batch_size, args.image_size, args.image_size, 3)
    images = generator.uniform(0, 255, shape).astype(np.float32)
    labels = generator.integers(0, 2, (args.batch_size, 1)).astype(np.float32)
    start = time.perf_counter()
    for _ in range(args.warmup):
        model.train_on_batch(images, labels)  # Returns the loss as a number: every step waits for the device.
    warmup_seconds = time.perf_counter() - start
    best = math.inf
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = model.train_on_batch(images, labels)
        best = min(best, time.perf_counter() - start)
    if not np.all(np.isfinite(loss)):
        raise RuntimeError(f"Training diverged: the loss is not finite. Received: loss={loss}")
    return {
        "images_per_second": args.steps * args.batch_size / best,
        "warmup_seconds": warmup_seconds,
        "step_milliseconds": 1000 * best / args.steps,
    }


def measure(args: argparse.Namespace) -> list[dict[str, object]]:
    """Times every stage in every precision; returns one row per pair."""
    rows = []
    for precision in args.precisions:
        keras.mixed_precision.set_global_policy(precision)
        try:
            frozen = None
            for stage in args.stages:
                keras.utils.set_random_seed(args.seed)
                model = build_stage_model(stage, args, frozen if stage == "finetuned" else None)
                if stage == "frozen":
                    frozen = model
                timing = time_training(model, args)
                trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
                rows.append({"stage": stage, "precision": precision, "params_trainable": trainable, **timing})
                print(
                    f"  {stage:<10} {precision:<14} {timing['images_per_second']:8.1f} images/s "
                    f"({timing['step_milliseconds']:.0f} ms/step; warm-up {timing['warmup_seconds']:.1f} s)",
                    flush=True,
                )
        finally:
            keras.mixed_precision.set_global_policy("float32")
    return rows


def format_table(rows: list[dict[str, object]]) -> str:
    """Returns the rows as a Markdown table: images/s per stage, one column per precision."""
    precisions = list(dict.fromkeys(str(row["precision"]) for row in rows))
    speeds = {(row["stage"], row["precision"]): row["images_per_second"] for row in rows}
    lines = [
        "| stage | " + " | ".join(f"{precision} images/s" for precision in precisions) + " |",
        "|---|" + "---:|" * len(precisions),
    ]
    for stage in dict.fromkeys(row["stage"] for row in rows):
        cells = [f"{speeds[stage, precision]:.1f}" if (stage, precision) in speeds else "" for precision in precisions]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; returns the exit status."""
    args = parse_args(argv)
    backend, device, versions = describe_backend()
    if backend == "numpy":
        print("The numpy backend cannot train (it has no gradients). Set KERAS_BACKEND to jax, torch or tensorflow.")
        return 2
    command = "KERAS_BACKEND={} python benchmarks/bench_backends.py {}".format(
        backend, " ".join(argv if argv is not None else sys.argv[1:])
    ).strip()
    print(f"Backend: {backend} on {device}; " + ", ".join(f"{name} {value}" for name, value in versions.items()))
    print(f"Batch {args.batch_size}, {args.image_size} px, {args.warmup} warm-up steps, best of {args.repeats} x "
          f"{args.steps} steps; weights: {args.weights or 'random'}", flush=True)  # fmt: skip
    rows = measure(args)
    print(f"\n{format_table(rows)}\n\n{command}")
    if args.output:
        report = {
            "backend": backend,
            "device": device,
            "versions": versions,
            "tensorflow_imported": "tensorflow" in sys.modules,
            "keras_backend_env": os.environ.get("KERAS_BACKEND"),
            "settings": {key: value for key, value in vars(args).items() if key != "output"},
            "rows": rows,
            "command": command,
        }
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=1))
        print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
