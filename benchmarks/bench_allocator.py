"""What TensorFlow's CPU allocator costs: its default one (`malloc` on most builds) against its BFC allocator.

Since version 0.4.2, `study.start_study` and the command line set `TF_CPU_ALLOCATOR_USE_BFC=true`
(`runtime.prefer_bfc_cpu_allocator`) unless it is already set. This measures, in float32 on this machine, batches
of 32 random photos, the three kinds of work the study spends its time on:

- `mobilenet_forward`: MobileNetV2 (alpha `--alpha`, no top, random weights: speed does not depend on them) at
  224 px, `predict` (feature caching, evaluation, prediction);
- `finetune_step`: a training step of the transfer model as fine-tuned (augmentation, base unfrozen from layer
  100, `models.compile_model`);
- `scratch_step`: a training step of the scratch CNN as the `quick` preset trains it (224-px input resized to
  128 inside the model, augmentation, `models.compile_model`);

each in a fresh process (the allocator is chosen once per process), `default` and `bfc` in turn (which one goes
first alternating from round to round), `--rounds` times, as photos/s (the best of 3 timings of `--steps` batches
in each process), with each process's peak resident memory. Run:

    python benchmarks/bench_allocator.py --output benchmarks/results/allocator.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ALLOCATORS = {"default": "false", "bfc": "true"}
ROWS = ("mobilenet_forward", "finetune_step", "scratch_step")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--output", default=None)
    parser.add_argument("--child", choices=ROWS, help=argparse.SUPPRESS)
    return parser.parse_args()


def measure(row: str, steps: int, alpha: float) -> dict[str, object]:
    """Runs in the child process: one row's photos/s and the process's peak memory."""
    import keras
    import numpy as np
    import tensorflow as tf

    from catsdogs_helpers import models, runtime

    batch = 32
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch * steps, 224, 224, 3)).astype("float32")
    labels = rng.integers(0, 2, (batch * steps, 1)).astype("float32")
    if row == "mobilenet_forward":
        model = keras.applications.MobileNetV2((224, 224, 3), alpha=alpha, include_top=False, weights=None)
        run = lambda: model.predict(images, batch_size=batch, verbose=0)  # noqa: E731
    else:
        if row == "finetune_step":
            model = models.build_transfer_model(224, None, alpha, augmentation=models.build_augmentation(1))
            models.unfreeze_base(model, 100)
            learning_rate = 1e-5
        else:
            model = models.build_scratch_cnn(224, 128, augmentation=models.build_augmentation(1))
            learning_rate = 2e-3
        models.compile_model(model, learning_rate)
        dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch).cache()
        run = lambda: model.fit(dataset, epochs=1, verbose=0)  # noqa: E731
    run()  # Traces, and lets the allocator grow to its working size.
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return {
        "photos_per_second": len(images) / best,
        "peak_memory_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "cpu_allocator": runtime.describe_cpu_allocator(),
    }


def main() -> int:
    args = parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.steps, args.alpha)))
        return 0
    runs = []
    for round_ in range(1, args.rounds + 1):
        for row in ROWS:
            # Alternating which allocator goes first, so that neither always meets a cooler or warmer machine.
            order = list(ALLOCATORS.items()) if round_ % 2 else list(ALLOCATORS.items())[::-1]
            for allocator, value in order:
                command = [sys.executable, __file__, "--child", row, "--steps", str(args.steps)]
                command += ["--alpha", str(args.alpha)]
                environment = {**os.environ, "TF_CPU_ALLOCATOR_USE_BFC": value, "TF_CPP_MIN_LOG_LEVEL": "3"}
                child = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
                if child.returncode != 0:
                    print(child.stderr[-3000:], file=sys.stderr)
                    return 1
                result = json.loads(child.stdout.strip().splitlines()[-1])
                if result["cpu_allocator"] != allocator:
                    print(f"{row}: asked for {allocator}, TensorFlow used {result['cpu_allocator']}", file=sys.stderr)
                    return 1
                runs.append({"round": round_, "row": row, "allocator": allocator, **result})
                print(f"round {round_}  {row:<18} {allocator:<6} {result['photos_per_second']:7.1f} photos/s  "
                      f"peak {result['peak_memory_gib']:.2f} GiB", flush=True)  # fmt: skip
    print("\nmedian over rounds:")
    summary = {}
    for row in ROWS:
        medians = {}
        for allocator in ALLOCATORS:
            chosen = [run for run in runs if run["row"] == row and run["allocator"] == allocator]
            medians[allocator] = statistics.median(run["photos_per_second"] for run in chosen)
        summary[row] = {**medians, "speedup": medians["bfc"] / medians["default"]}
        print(f"{row:<18} default {medians['default']:7.1f}  bfc {medians['bfc']:7.1f} photos/s  "
              f"x{summary[row]['speedup']:.2f}")  # fmt: skip
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        report = {"runs": runs, "summary": summary, "args": vars(args), "load_average": os.getloadavg()}
        Path(args.output).write_text(json.dumps({**report, "when": time.ctime()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
