"""The command line: `python -m catsdogs_helpers run | evaluate | predict`.

`run` executes the notebook itself, headless, with papermill: the notebook is
the one description of the study's steps, so the command line and the
tutorial cannot drift apart, and the executed notebook joins the report.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from catsdogs_helpers.config import PRESET_NAMES

NOTEBOOK_NAME = "transfer_learning.ipynb"
DEFAULT_NOTEBOOK = Path(__file__).resolve().parents[1] / NOTEBOOK_NAME

EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 1


class UserError(Exception):
    """Bad input from the user; printed as one line, without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    """Builds the argument parser of the three commands."""
    parser = argparse.ArgumentParser(
        prog="python -m catsdogs_helpers",
        description="Cats vs. dogs: a CNN from scratch against transfer learning from MobileNetV2.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,evaluate,predict}")

    run = commands.add_parser(
        "run",
        help="run the whole study headless and write a report",
        description="Runs the study notebook headless (papermill) and writes results.json, figures, "
        "the three trained models, report.md and the executed notebook into --output.",
    )
    run.add_argument("--data", default="tfds", help='"tfds" (cats_vs_dogs) or a folder of photos. Default: tfds')
    run.add_argument(
        "--weights",
        default="imagenet",
        help='"imagenet", a local MobileNetV2 no-top .h5 file, or "none" (random; smoke tests only). Default: imagenet',
    )
    run.add_argument("--preset", default="default", choices=PRESET_NAMES, help="settings preset. Default: default")
    run.add_argument("--image-size", type=int, default=None, help="image side in pixels. Default: the preset's")
    run.add_argument("--output", default="outputs", help="output folder. Default: outputs")
    run.add_argument("--notebook", default=str(DEFAULT_NOTEBOOK), help="notebook to execute. Default: the project's")

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a saved model on a folder of labelled photos",
        description="Prints the metrics of a saved model on a folder with one sub-folder per class, as JSON.",
    )
    evaluate.add_argument("--model", required=True, help="a model saved by the study (.keras)")
    evaluate.add_argument("--data", required=True, help="a folder with one sub-folder per class")
    evaluate.add_argument("--batch-size", type=int, default=32, help="photos per batch. Default: 32")

    predict = commands.add_parser(
        "predict",
        help="classify photos with a saved model",
        description="Prints the predicted class and its probability for each photo.",
    )
    predict.add_argument("--model", required=True, help="a model saved by the study (.keras)")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="photos to classify")
    predict.add_argument(
        "--classes", default="cat,dog", help="names of class 0 and class 1, comma-separated. Default: cat,dog"
    )
    return parser


def run_study(args: argparse.Namespace) -> int:
    """Executes the notebook with the given settings; returns the exit code."""
    import papermill

    from catsdogs_helpers.config import get_config

    notebook = Path(args.notebook)
    if not notebook.is_file():
        raise UserError(
            f"The study notebook was not found at {notebook}. Run from a clone of the repository or pass "
            f"--notebook path/to/{NOTEBOOK_NAME}. Received: --notebook {args.notebook}"
        )
    if args.data != "tfds" and not Path(args.data).is_dir():
        raise UserError(
            f'The data folder does not exist: {args.data}. Pass "tfds" or a folder with one sub-folder per '
            f"class. Received: --data {args.data}"
        )
    # Checks every setting before the (long) run starts; raises ValueError with the fix.
    config = get_config(args.preset, data=args.data, weights=args.weights, image_size=args.image_size)
    if config.weights not in (None, "imagenet") and not Path(config.weights).is_file():
        raise UserError(
            f'The weights file does not exist: {config.weights}. Pass "imagenet" or a MobileNetV2 no-top .h5 '
            f"file. Received: --weights {args.weights}"
        )
    output = Path(args.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    parameters = {
        "PRESET": args.preset,
        "DATA": os.path.abspath(args.data) if args.data != "tfds" else "tfds",
        "WEIGHTS": os.path.abspath(args.weights) if config.weights not in (None, "imagenet") else args.weights,
        "IMAGE_SIZE": args.image_size or 0,
        "OUTPUT_DIR": str(output),
    }
    executed = output / NOTEBOOK_NAME
    print(f"Running the study ({args.preset} preset) into {output}; cell outputs follow.", flush=True)
    _show_papermill_progress()
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=parameters,
            cwd=str(notebook.parent),
            log_output=True,
            progress_bar=False,
            kernel_name="python3",
        )
    except papermill.PapermillExecutionError as error:
        print(
            f"error: the study stopped in cell {error.cell_index}: {error.ename}: {error.evalue}. "
            f"See the executed notebook {executed}.",
            file=sys.stderr,
        )
        return EXIT_RUN_FAILED
    minutes, seconds = divmod(time.perf_counter() - start, 60)
    print(f"Done in {int(minutes)} min {seconds:.0f} s. Report: {output / 'report.md'}")
    return 0


def _show_papermill_progress() -> None:
    """Prints papermill's "Executing cell" lines and the cells' outputs as they come."""
    logger = logging.getLogger("papermill")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(_strip_trailing_newline)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _strip_trailing_newline(record: logging.LogRecord) -> bool:
    """Drops the newline a cell's output ends with; the handler adds its own."""
    if isinstance(record.msg, str):
        record.msg = record.msg.rstrip("\n")
    return True


def evaluate_saved_model(args: argparse.Namespace) -> int:
    """Prints a saved model's metrics on a folder of photos as JSON; returns the exit code."""
    from catsdogs_helpers.data import load_labelled_photos
    from catsdogs_helpers.evaluation import evaluate_model
    from catsdogs_helpers.models import load_model

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be a positive integer. Received: --batch-size {args.batch_size}")
    model = load_model(args.model)
    dataset, class_names, counts, skipped = load_labelled_photos(
        args.data, image_size=model.input_shape[1], batch_size=args.batch_size, verbose=False
    )
    evaluation = evaluate_model(model, dataset, Path(args.model).stem, class_names)
    report = {
        "model": str(args.model),
        "data": str(args.data),
        "counts": counts,
        "skipped": [{"path": item.path, "reason": item.reason} for item in skipped],
        "metrics": evaluation.metrics,
    }
    print(json.dumps(report, indent=2))
    return 0


def predict_photos(args: argparse.Namespace) -> int:
    """Prints one line per photo; returns 1 if any photo could not be read."""
    from catsdogs_helpers.models import load_model
    from catsdogs_helpers.prediction import classify_photos

    class_names = tuple(name.strip() for name in args.classes.split(","))
    if len(class_names) != 2 or not all(class_names):
        raise UserError(f"--classes takes two names separated by a comma. Received: --classes {args.classes}")
    model = load_model(args.model)
    predictions = classify_photos(model, args.images, class_names)
    for prediction in predictions:
        print(prediction.describe(), file=sys.stderr if prediction.error else sys.stdout)
    return EXIT_RUN_FAILED if any(prediction.error for prediction in predictions) else 0


_COMMANDS = {"run": run_study, "evaluate": evaluate_saved_model, "predict": predict_photos}


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code.

    User errors (a missing path, a folder without photos, a file that is not a
    model, ...) print one line starting with "error:" and return 2.
    """
    args = build_parser().parse_args(argv)
    # TensorFlow's C++ start-up notes ("could not find cuda drivers", ...) would bury the
    # answers; set TF_CPP_MIN_LOG_LEVEL yourself to see them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        return _COMMANDS[args.command](args)
    except (UserError, ValueError, FileNotFoundError, RuntimeError) as error:
        message = " ".join(str(error).split())
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
