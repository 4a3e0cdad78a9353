"""Accuracy and training cost of every model of the study, against the TensorFlow tutorial's recipe.

On the real photos of ../shared/data/cats_vs_dogs_small with the ImageNet
MobileNetV2 weights of ../shared/weights, at 224 px, this trains and tests,
through the study's own stage functions (`catsdogs_helpers.study`) and with a
preset's settings (`quick` unless `--preset` says otherwise; `--set NAME=VALUE`
changes one, exactly as on the command line):

- `scratch`: the scratch CNN (`study.train_scratch_cnn`);
- `frozen_end_to_end`: the frozen MobileNetV2 + head trained end to end with
  augmentation (`study.train_frozen_model` with `use_cached_features=False`);
- `frozen_cached_features`: the head trained on cached features (the study's path);
- `finetuned`: that model fine-tuned (`study.fine_tune_model`, the study's path);
- `baseline_tutorial`: TensorFlow's "Transfer learning and fine-tuning" tutorial
  recipe (flip + rotation augmentation, Adam 1e-4 for 10 epochs on the frozen base;
  then the base unfrozen from layer 100, RMSprop 1e-5 for 10 more epochs).

and prints test accuracy, test loss, training wall time and training images/s,
plus the ratio of the baseline's training time to ours. Run:

    python benchmarks/bench_models.py --output benchmarks/results/models.json
    python benchmarks/bench_models.py --models scratch --set scratch_epochs=60
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import keras
from keras import layers

from catsdogs_helpers import models, runtime, stage_files, study, training
from catsdogs_helpers.config import PRESET_NAMES, get_config, parse_setting

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_DATA = SHARED / "data" / "cats_vs_dogs_small"
DEFAULT_WEIGHTS = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
ROWS = ("scratch", "frozen_end_to_end", "frozen_cached_features", "finetuned", "baseline_tutorial")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--preset", default="quick", choices=PRESET_NAMES, help="settings preset. Default: quick")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--frozen-epochs", type=int, default=5, help="epochs of the end-to-end frozen row")
    parser.add_argument("--baseline-epochs", type=int, default=10, help="per stage of the tutorial recipe")
    parser.add_argument(
        "--models",
        default=",".join(ROWS),
        help="comma-separated rows to train (finetuned needs frozen_cached_features)",
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
    workdir = Path(tempfile.mkdtemp(prefix="bench_models_"))
    config = get_config(args.preset, data=args.data, weights=args.weights, output_dir=str(workdir / "study"))
    config = config.replace(**dict(parse_setting(text) for text in args.settings))
    print(f"Settings: {json.dumps(config.to_dict())}")
    study.start_study(config)
    splits = study.load_data(config)
    num_train = splits.num_images("train")
    rows: dict[str, dict[str, float]] = {}
    wanted = set(args.models.split(","))

    def record(name: str, model: keras.Model, stages: list[stage_files.StageResult]) -> None:
        trained = study.TrainedModel(name, model, stages, workdir / f"{name}.keras")
        metrics = study.evaluate_models({name: trained}, splits)[name].metrics
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

    if "scratch" in wanted:
        scratch = study.train_scratch_cnn(config, splits)
        record("scratch", scratch.model, scratch.stages)
    if "frozen_end_to_end" in wanted:
        end_to_end = config.replace(
            use_cached_features=False, transfer_epochs=args.frozen_epochs, output_dir=str(workdir / "end_to_end")
        )
        frozen = study.train_frozen_model(end_to_end, splits)
        record("frozen_end_to_end", frozen.model, frozen.stages)
    if "frozen_cached_features" in wanted:
        transfer = study.train_frozen_model(config, splits)
        record("frozen_cached_features", transfer.model, transfer.stages)
        if "finetuned" in wanted:
            finetuned = study.fine_tune_model(config, splits, transfer)
            record("finetuned", finetuned.model, finetuned.stages)

    if "baseline_tutorial" in wanted:
        # Not the study's recipe, so not its stage functions: the tutorial's own settings, on the same data.
        def fit(model: keras.Model, name: str, epochs: int, initial_epoch: int = 0) -> stage_files.StageResult:
            return training.train_stage(
                model, splits.train, splits.validation, name=name, epochs=epochs, initial_epoch=initial_epoch,
                output_dir=workdir / "baseline", num_train_images=num_train, patience=max(epochs, 1),
            )  # fmt: skip

        size = config.image_size
        baseline = models.build_transfer_model(size, config.weights, augmentation=tutorial_augmentation())
        models.compile_model(baseline, 1e-4)
        first = fit(baseline, "baseline_frozen", args.baseline_epochs)
        models.unfreeze_base(baseline, fine_tune_at=100, freeze_batch_norm=False)
        models.compile_model(baseline, 1e-5, optimizer="rmsprop")
        second = fit(baseline, "baseline_finetuned", 2 * args.baseline_epochs, initial_epoch=args.baseline_epochs)
        record("baseline_tutorial", baseline, [first, second])
        if "finetuned" in rows:
            ratio = rows["baseline_tutorial"]["train_seconds"] / rows["finetuned"]["train_seconds"]
            rows["finetuned"]["baseline_time_ratio"] = ratio

    print(
        f"\nTest set: {splits.num_images('test')} photos; {runtime.describe_devices()}; image size {config.image_size}"
    )
    print(f"{'model':<24} {'test acc':>9} {'test loss':>10} {'train s':>9} {'img/s':>8} {'epochs':>7}")
    for name, row in rows.items():
        print(
            f"{name:<24} {100 * row['test_accuracy']:>8.2f}% {row['test_loss']:>10.4f} "
            f"{row['train_seconds']:>9.1f} {row['images_per_second']:>8.1f} {row['epochs']:>7}"
        )
    if "baseline_time_ratio" in rows.get("finetuned", {}):
        ratio = rows["finetuned"]["baseline_time_ratio"]
        print(f"Baseline training time / ours (cached head + fine-tuning): {ratio:.2f}x")
    command = "python benchmarks/bench_models.py " + shlex.join(sys.argv[1:])
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        report = {"command": command, "config": config.to_dict(), "rows": rows, "when": time.ctime()}
        Path(args.output).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
