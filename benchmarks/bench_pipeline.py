"""Measures the input pipeline's throughput on the real photos.

Three figures, in images per second:

1. `load_splits`: listing the folder, decoding, resizing and filling the cache
   of all three splits (the cost paid once per run, before training starts);
2. one full pass over the training split, served from the cache and shuffled
   (the cost of every epoch after the first, without the model);
3. one full pass over validation + test, served from the cache.

Usage (from the repository root):

    python benchmarks/bench_pipeline.py
    python benchmarks/bench_pipeline.py --image-size 160 --batch-size 64 --output benchmarks/results/pipeline.json

The machine's load is printed next to the figures: the timings are only
comparable between runs on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "cats_vs_dogs_small"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        default=str(DEFAULT_DATA),
        help="Folder of photos (pre-split or one sub-folder per class). Defaults to ../shared/data/cats_vs_dogs_small.",
    )
    parser.add_argument("--image-size", type=int, default=224, help="Side of the images, in pixels. Defaults to 224.")
    parser.add_argument("--batch-size", type=int, default=32, help="Images per batch. Defaults to 32.")
    parser.add_argument(
        "--file-cache",
        action="store_true",
        help="Cache decoded images in files (in a temporary folder, deleted afterwards) instead of in memory.",
    )
    parser.add_argument("--output", default=None, help="Also write the figures to this JSON file.")
    return parser.parse_args(argv)


def _full_pass(dataset) -> tuple[int, float]:
    """Iterates a batched dataset once; returns (images, seconds)."""
    start = time.perf_counter()
    num_images = 0
    for images, _ in dataset:
        num_images += int(images.shape[0])
    return num_images, time.perf_counter() - start


def run(args: argparse.Namespace) -> dict[str, object]:
    # Imported here so that --help and a missing folder answer at once.
    import tensorflow as tf

    from catsdogs_helpers.data import load_splits
    from catsdogs_helpers.runtime import describe_devices

    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as cache_root:
        cache_dir = cache_root if args.file_cache else None
        start = time.perf_counter()
        splits = load_splits(
            args.data, image_size=args.image_size, batch_size=args.batch_size, cache_dir=cache_dir, verbose=False
        )
        load_seconds = time.perf_counter() - start
        num_loaded = sum(splits.num_images(split) for split in ("train", "validation", "test"))
        num_train, train_seconds = _full_pass(splits.train)
        num_validation, validation_seconds = _full_pass(splits.validation)
        num_test, test_seconds = _full_pass(splits.test)

    evaluation_seconds = validation_seconds + test_seconds
    return {
        "command": "python " + " ".join(shlex.quote(part) for part in sys.argv),
        "data": str(args.data),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "cache": "files" if args.file_cache else "memory",
        "counts": splits.counts,
        "num_skipped": len(splits.skipped),
        "load_splits": {
            "images": num_loaded,
            "seconds": load_seconds,
            "images_per_second": num_loaded / load_seconds,
        },
        "cached_train_pass": {
            "images": num_train,
            "seconds": train_seconds,
            "images_per_second": num_train / train_seconds,
        },
        "cached_validation_test_pass": {
            "images": num_validation + num_test,
            "seconds": evaluation_seconds,
            "images_per_second": (num_validation + num_test) / evaluation_seconds,
        },
        "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": {
            "devices": describe_devices(),
            "cpu_count": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
            "platform": platform.platform(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
        },
    }


def format_report(result: dict[str, object]) -> str:
    machine = result["machine"]
    lines = [
        f"Pipeline throughput: {result['data']}",
        f"  {result['image_size']} px, batch {result['batch_size']}, cache in {result['cache']}, "
        f"{result['num_skipped']} file(s) skipped",
        f"  {machine['devices']}, {machine['cpu_count']} CPU cores, "
        f"load average {machine['load_average_1min']:.1f} at the end, TensorFlow {machine['tensorflow']}",
        "",
        f"  {'stage':<44} {'images':>7} {'seconds':>8} {'images/s':>9}",
    ]
    stages = (
        ("load_splits (list, decode, resize, cache)", "load_splits"),
        ("one cached pass over train (shuffled)", "cached_train_pass"),
        ("one cached pass over validation + test", "cached_validation_test_pass"),
    )
    for label, key in stages:
        stage = result[key]
        lines.append(f"  {label:<44} {stage['images']:>7} {stage['seconds']:>8.2f} {stage['images_per_second']:>9.0f}")
    lines += ["", f"  peak memory {result['peak_memory_mib']:.0f} MiB", f"  command: {result['command']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.data).is_dir():
        print(
            f"The photo folder does not exist: {args.data}. This benchmark reads the real photos of "
            "../shared/data/cats_vs_dogs_small beside the checkout; pass another folder with --data. "
            f"Received: --data {args.data}",
            file=sys.stderr,
        )
        return 2
    result = run(args)
    print(format_report(result))
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")
        print(f"  written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
