"""Chooses the scratch CNN's settings on the validation split, never looking at the test split.

Trains the scratch CNN exactly as the study does (`study.train_scratch_cnn`,
on the preset's settings, `quick` unless `--preset` says otherwise) with some
settings changed by `--set NAME=VALUE`, and reports what the study would keep:
the epoch with the lowest validation loss, its validation accuracy, and the
training accuracy of the last epoch (to tell underfitting from overfitting).
The test split is loaded (the data loader always builds all three) but never
evaluated. Run one variant per call, e.g.:

    python benchmarks/tune_scratch.py --name baseline --output benchmarks/results/tuning
    python benchmarks/tune_scratch.py --name wd0.05 --set scratch_weight_decay=0.05 --output benchmarks/results/tuning

`--threads 1` runs TensorFlow on one core, so that two variants can train side by side on 2 cores (their
accuracies are unaffected; their times are then not comparable with a run alone).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_DATA = SHARED / "data" / "cats_vs_dogs_small"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="name of the variant (the output file's stem)")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--preset", default="quick", help="settings preset. Default: quick")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: TensorFlow's choice)")
    parser.add_argument("--output", default=None, help="folder for NAME.json")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from catsdogs_helpers import study
    from catsdogs_helpers.config import get_config, parse_setting

    workdir = Path(tempfile.mkdtemp(prefix=f"tune_scratch_{args.name}_"))
    # The scratch CNN needs no MobileNetV2 weights: none are loaded or checked.
    config = get_config(args.preset, data=args.data, output_dir=str(workdir)).replace(weights=None)
    config = config.replace(**dict(parse_setting(text) for text in args.settings))
    study.start_study(config)
    splits = study.load_data(config, verbose=False)
    start = time.perf_counter()
    stage = study.train_scratch_cnn(config, splits).stages[0]
    history = stage.history
    kept = history["epoch"].index(stage.best_epoch)
    row = {
        "name": args.name,
        "settings": args.settings,
        "kept_epoch": stage.best_epoch + 1,
        "epochs_run": stage.num_epochs,
        "validation_accuracy": history["val_accuracy"][kept],
        "validation_loss": history["val_loss"][kept],
        "best_validation_accuracy": max(history["val_accuracy"]),
        "last_training_accuracy": history["accuracy"][-1],
        "seconds": time.perf_counter() - start,
        "threads": args.threads,
        "command": "python benchmarks/tune_scratch.py " + shlex.join(sys.argv[1:]),
        "when": time.ctime(),
        "history": history,
    }
    print(json.dumps({key: value for key, value in row.items() if key != "history"}, indent=1))
    if args.output:
        Path(args.output).mkdir(parents=True, exist_ok=True)
        (Path(args.output) / f"{args.name}.json").write_text(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
