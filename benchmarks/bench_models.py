"""Accuracy and training cost of every model of the study, against the TensorFlow tutorial's recipe.

On the real photos of ../shared/data/cats_vs_dogs_small with the ImageNet
MobileNetV2 weights of ../shared/weights, at 224 px, this trains and tests:

- the scratch CNN;
- the frozen MobileNetV2 + head, trained end to end with augmentation;
- the frozen MobileNetV2 + head, trained on cached features (the study's path);
- that model fine-tuned (the study's path);
- the baseline: TensorFlow's "Transfer learning and fine-tuning" tutorial recipe
  (flip + rotation augmentation, Adam 1e-4 for 10 epochs on the frozen base;
  then the base unfrozen from layer 100, RMSprop 1e-5 for 10 more epochs).

and prints test accuracy, test loss, training wall time and training images/s,
plus the ratio of the baseline's training time to ours. Run:

    python benchmarks/bench_models.py --output benchmarks/results/models.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import keras
from keras import layers

from catsdogs_helpers import data, evaluation, models, runtime, training

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_DATA = SHARED / "data" / "cats_vs_dogs_small"
DEFAULT_WEIGHTS = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--scratch-epochs", type=int, default=60)
    parser.add_argument("--frozen-epochs", type=int, default=5, help="end-to-end frozen model")
    parser.add_argument("--head-epochs", type=int, default=30, help="head on cached features")
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    parser.add_argument("--baseline-epochs", type=int, default=10, help="per stage of the tutorial recipe")
    parser.add_argument("--max-images-per-split", type=int, default=None, help="for a quick check of the script")
    parser.add_argument(
        "--models",
        default="scratch,frozen_end_to_end,frozen_cached_features,finetuned,baseline_tutorial",
        help="comma-separated models to train (finetuned needs frozen_cached_features)",
    )
    parser.add_argument("--output", default=None, help="write the figures as JSON here")
    return parser.parse_args()


def tutorial_augmentation() -> keras.Sequential:
    """The tutorial's augmentation: horizontal flips and rotations up to 0.2 of a turn."""
    return keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)], name="augmentation")


def main() -> int:
    args = parse_args()
    for path in (args.data, args.weights):
        if not Path(path).exists():
            print(f"error: {path} is absent; this benchmark needs ../shared beside the checkout.", file=sys.stderr)
            return 2
    runtime.set_seeds(1337)
    size = args.image_size
    splits = data.load_splits(args.data, image_size=size, max_images_per_split=args.max_images_per_split)
    num_train = splits.num_images("train")
    rows: dict[str, dict[str, float]] = {}
    workdir = tempfile.mkdtemp(prefix="bench_models_")

    def record(name: str, model: keras.Model, stages: list[training.StageResult]) -> None:
        metrics = evaluation.evaluate_model(model, splits.test, name, splits.class_names).metrics
        seconds = sum(stage.train_seconds for stage in stages)
        images = sum(stage.images_per_second * stage.train_seconds for stage in stages)
        rows[name] = {
            "test_accuracy": metrics["accuracy"],
            "test_loss": metrics["loss"],
            "train_seconds": seconds,
            "images_per_second": images / seconds,
            "epochs": sum(stage.num_epochs for stage in stages),
        }
        print(f"== {name}: {json.dumps(rows[name])}", flush=True)

    def fit(model: keras.Model, name: str, epochs: int, initial_epoch: int = 0) -> training.StageResult:
        return training.train_stage(
            model,
            splits.train,
            splits.validation,
            name=name,
            epochs=epochs,
            initial_epoch=initial_epoch,
            output_dir=workdir,
            num_train_images=num_train,
            patience=max(epochs, 1),
        )

    wanted = set(args.models.split(","))

    # 1. Scratch CNN.
    if "scratch" in wanted:
        scratch = models.build_scratch_cnn(size, augmentation=models.build_augmentation(seed=1))
        steps = args.scratch_epochs * -(-num_train // 32)
        models.compile_model(scratch, 2e-3, decay_steps=steps)
        record("scratch", scratch, [fit(scratch, "scratch", args.scratch_epochs)])

    # 2. Frozen base, head trained end to end with augmentation.
    if "frozen_end_to_end" in wanted:
        frozen = models.build_transfer_model(size, args.weights, augmentation=models.build_augmentation(seed=2))
        models.compile_model(frozen, 1e-3)
        record("frozen_end_to_end", frozen, [fit(frozen, "frozen_end_to_end", args.frozen_epochs)])

    # 3. Frozen base, head trained on cached features (the study's path).
    if "frozen_cached_features" in wanted:
        transfer = models.build_transfer_model(size, args.weights, augmentation=models.build_augmentation(seed=3))
        head_stage = training.train_head_on_features(
            transfer,
            splits.train_in_order,
            splits.validation,
            learning_rate=1e-3,
            epochs=args.head_epochs,
            output_dir=workdir,
            patience=8,
        )
        record("frozen_cached_features", transfer, [head_stage])

    # 4. Fine-tuning the top of the base (the study's path), after the cached-feature head.
    if "finetuned" in wanted and "frozen_cached_features" in wanted:
        models.unfreeze_base(transfer, fine_tune_at=100)
        models.compile_model(transfer, 1e-5)
        epochs_so_far = head_stage.num_epochs
        tune_stage = fit(transfer, "finetuned", epochs_so_far + args.fine_tune_epochs, initial_epoch=epochs_so_far)
        record("finetuned", transfer, [head_stage, tune_stage])

    # 5. Baseline: the TensorFlow tutorial's recipe.
    if "baseline_tutorial" in wanted:
        baseline = models.build_transfer_model(size, args.weights, augmentation=tutorial_augmentation())
        models.compile_model(baseline, 1e-4)
        first = fit(baseline, "baseline_frozen", args.baseline_epochs)
        models.unfreeze_base(baseline, fine_tune_at=100, freeze_batch_norm=False)
        models.compile_model(baseline, 1e-5, optimizer="rmsprop")
        second = fit(baseline, "baseline_finetuned", 2 * args.baseline_epochs, initial_epoch=args.baseline_epochs)
        record("baseline_tutorial", baseline, [first, second])
        if "finetuned" in rows:
            ratio = rows["baseline_tutorial"]["train_seconds"] / rows["finetuned"]["train_seconds"]
            rows["finetuned"]["baseline_time_ratio"] = ratio

    print(f"\nTest set: {splits.num_images('test')} photos; {runtime.describe_devices()}; image size {size}")
    print(f"{'model':<24} {'test acc':>9} {'test loss':>10} {'train s':>9} {'img/s':>8} {'epochs':>7}")
    for name, row in rows.items():
        print(
            f"{name:<24} {100 * row['test_accuracy']:>8.2f}% {row['test_loss']:>10.4f} "
            f"{row['train_seconds']:>9.1f} {row['images_per_second']:>8.1f} {row['epochs']:>7}"
        )
    if "baseline_time_ratio" in rows.get("finetuned", {}):
        ratio = rows["finetuned"]["baseline_time_ratio"]
        print(f"Baseline training time / ours (cached head + fine-tuning): {ratio:.2f}x")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps({"args": vars(args), "rows": rows, "when": time.ctime()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
