"""The command line: `catsdogs run | sweep | evaluate | predict | export` (also `python -m catsdogs_helpers ...`).
Every command runs in this process; its exit statuses are `exit_status`'s (0 when done)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable

from catsdogs_helpers import __version__
from catsdogs_helpers.config import PRESET_DESCRIPTIONS, PRESET_NAMES, StudyConfig, get_config, parse_setting
from catsdogs_helpers.errors import InputError, StudyInterrupted
from catsdogs_helpers.exit_status import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    StandardOutput,
    discard_standard_output,
    fill_closed_standard_streams,
    report_failure,
)
from catsdogs_helpers.model_commands import evaluate_command, export_command, predict_command


def path_option(text: str) -> str:
    """An option's path, `~` expanded (a quoted `"~/photos"` reaches us as typed); refused when empty: what
    `--output "$OUT"` passes when `OUT` is not set. Every option and argument that names a path has this type."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"expected a path, got an empty value (an unset shell variable?): pass a file or folder. Received: {text!r}"
        )
    return os.path.expanduser(text)


class _ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose `--help` and `--version` raise when the standard output cannot be written (argparse
    itself ignores the failure and exits 0)."""

    def _print_message(self, message: str, file=None) -> None:
        if not message:
            return
        file = file or sys.stderr
        if file is sys.stderr:  # Where a failure could not be said anyway: as argparse does.
            with contextlib.suppress(AttributeError, OSError):
                file.write(message)
            return
        file.write(message)
        file.flush()


def build_parser() -> argparse.ArgumentParser:
    """Builds the argument parser of the command line."""
    parser = _ArgumentParser(
        prog="catsdogs",
        description="Cats vs. dogs: a CNN from scratch against transfer learning from MobileNetV2.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,sweep,evaluate,predict,export}")
    _add_study_command(
        commands,
        "run",
        help="run the whole study and write a report",
        description="Trains the CNN from scratch, the frozen MobileNetV2 with a new head and its fine-tuned "
        "version, tests all three once, and writes results.json, the figures, the three models and report.md "
        "into --output. Interrupted (Ctrl-C), the same command resumes from the last finished epoch.",
        presets_note="An option left out takes the preset's value.",
        example="catsdogs run --preset quick --data path/to/photos --output outputs/quick",
    )
    _add_sweep_command(commands)
    _add_evaluate_command(commands)
    _add_export_command(commands)
    predict = commands.add_parser(
        "predict",
        help="classify photos with a saved model",
        description="Prints the predicted class and its probability for each photo.",
    )
    predict.add_argument("--model", required=True, type=path_option, help="a .keras model of the study, or an export")
    predict.add_argument("images", nargs="+", type=path_option, metavar="IMAGE", help="photos to classify")
    return parser


def _add_study_command(commands, name: str, description: str, presets_note: str, example: str, **kwargs):
    """Adds `run` or `sweep`: its description, the presets, and the options of a study's settings."""
    presets = "\n".join(f"  {preset:<8} {text}" for preset, text in PRESET_DESCRIPTIONS.items())
    parser = commands.add_parser(
        name,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"{description}\n\npresets:\n{presets}\n\n{presets_note}",
        epilog=f"example: {example}",
        **kwargs,
    )
    parser.add_argument("--preset", default="default", choices=PRESET_NAMES, help="settings preset. Default: default")
    parser.add_argument("--data", type=path_option, help='"tfds" or a folder of class sub-folders. Default: tfds')
    parser.add_argument(
        "--weights",
        default=None,
        type=path_option,
        help='"imagenet", a local MobileNetV2 no-top .h5 file, or "none" (random weights; smoke tests only). '
        "Default: the preset's (imagenet, or none for smoke)",
    )
    parser.add_argument("--image-size", type=int, default=None, help="image side in pixels. Default: the preset's")
    parser.add_argument("--output", default="outputs", type=path_option, help="output folder. Default: outputs")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change any setting of StudyConfig (repeatable), e.g. --set alpha=0.35 --set scratch_epochs=5; "
        "--set cache_dir=PATH caches the decoded photos in files under PATH instead of in memory",
    )
    return parser


def _add_sweep_command(commands) -> None:
    sweep = _add_study_command(
        commands,
        "sweep",
        help="train the three approaches on nested subsets of the training split",
        description="How much data each approach needs: trains the CNN from scratch, the frozen MobileNetV2's "
        "head (on cached features) and the fine-tuned model on class-balanced subsets of the training split, "
        "each inside the next, each trained until a validation part carved from the subset (20%) stops "
        "improving, scores every point once on the whole test split, and writes sweep.json, sweep.png and "
        "sweep.md into --output. Interrupted (Ctrl-C), the same command reuses the finished points.",
        presets_note="Each preset has its own subset sizes and seeds (quick: 100, 300 and 1,000 photos, one "
        "seed; default: up to the whole split, two seeds); benchmarks/results/sweep.md gives measured times.",
        example="catsdogs sweep --preset quick --data path/to/photos --output outputs/sweep",
    )
    # "--sizes -5,10" is a value to refuse with its reason, not an unknown option (Python 3.13 does this itself).
    sweep._negative_number_matcher = re.compile(r"^-\.?\d")
    sweep.add_argument(
        "--sizes",
        default=None,
        help="photos per subset (its training and validation parts together), comma-separated and increasing, "
        "at least 6; 0 (last) for the whole split. Default: the preset's",
    )
    sweep.add_argument("--seeds", type=int, default=None, help="repeats of every point. Default: the preset's")


def _add_evaluate_command(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a saved model on a folder of labelled photos",
        description="Prints the metrics of a saved model on a folder with one sub-folder per class, as JSON.",
    )
    evaluate.add_argument("--model", required=True, type=path_option, help="a model saved by the study (.keras)")
    evaluate.add_argument("--data", required=True, type=path_option, help="a folder with one sub-folder per class")
    evaluate.add_argument("--batch-size", type=int, default=32, help="photos per batch. Default: 32")
    evaluate.add_argument(
        "--all",
        action="store_true",
        help="evaluate every photo of a flat folder, the training photos included. Default: only its test split "
        "(the photos the study tests on: test/ of a pre-split folder, else the 10%% a hash of their paths picks)",
    )
    evaluate.add_argument(
        "--tta",
        action="store_true",
        help="also report test-time augmentation: each photo's logit averaged with its mirror image's",
    )


def _add_export_command(commands) -> None:
    export = commands.add_parser(
        "export",
        help="export a saved model to LiteRT, SavedModel or ONNX, checked against it",
        description="Exports a model saved by the study through Keras's model.export, writes its contract (class "
        "names, input size) beside it, and checks the artifact's logits against the Keras model's on a batch of "
        "images (the largest difference is printed; above 1e-4 the export fails). predict takes the artifact too.",
        epilog="example: catsdogs export --model outputs/finetuned.keras --format litert --output finetuned.tflite",
    )
    export.add_argument("--model", required=True, type=path_option, help="a model saved by the study (.keras)")
    export.add_argument(
        "--format",
        required=True,
        choices=("litert", "saved_model", "onnx"),
        help="litert (a .tflite file, for phones), saved_model (a folder, for TensorFlow Serving) or onnx (needs "
        'pip install "catsdogs-helpers[onnx]")',
    )
    export.add_argument(
        "--output", required=True, type=path_option, help="the artifact's path (.tflite or .onnx appended if missing)"
    )
    export.add_argument("--check-data", type=path_option, help="a folder of photos to check on. Default: random images")
    export.add_argument("--num-check-photos", type=int, default=32, help="photos of --check-data used. Default: 32")


def build_config(args: argparse.Namespace) -> StudyConfig:
    """Returns the `StudyConfig` of `run`'s or `sweep`'s options (`InputError` if one of them is invalid)."""
    data = args.data if args.data in (None, "tfds") else os.path.abspath(args.data)
    weights = args.weights
    if weights not in (None, "imagenet") and weights.lower() not in ("none", "random"):
        weights = os.path.abspath(weights)
    config = get_config(args.preset, data=data, weights=weights, image_size=args.image_size, output_dir=args.output)
    settings = dict(parse_setting(text) for text in args.settings)
    return config.replace(**settings) if settings else config


def run_command(args: argparse.Namespace) -> int:
    """Runs the whole study in this process; returns the exit code."""
    config = build_config(args)
    start_tensorflow()
    from catsdogs_helpers.study import run_study

    return _timed(config, "study", lambda: run_study(config))


def sweep_command(args: argparse.Namespace) -> int:
    """Runs the data-efficiency sweep in this process; returns the exit code."""
    from catsdogs_helpers.sweep_plan import get_sweep_plan

    config = build_config(args)
    sizes = None
    if args.sizes is not None:
        try:
            sizes = [int(text) for text in args.sizes.split(",")]
        except ValueError:
            raise InputError(
                f"--sizes takes whole numbers separated by commas, e.g. 100,250,500. Received: --sizes {args.sizes}"
            ) from None
    plan = get_sweep_plan(config.preset, sizes, args.seeds)
    start_tensorflow()
    from catsdogs_helpers.sweep import run_sweep

    return _timed(config, "sweep", lambda: run_sweep(config, plan))


def _timed(config: StudyConfig, kind: str, run: Callable[[], object]) -> int:
    """Says what runs where, runs it, and says how long it took; returns the exit code, 0."""
    print(f"catsdogs {__version__}: the {config.preset} {kind} into {os.path.abspath(config.output_dir)}", flush=True)
    start = time.perf_counter()
    run()
    minutes, seconds = divmod(time.perf_counter() - start, 60)
    print(f"Done in {int(minutes)} min {seconds:.0f} s.", flush=True)
    return 0


_COMMANDS = {
    "run": run_command,
    "sweep": sweep_command,
    "evaluate": evaluate_command,
    "predict": predict_command,
    "export": export_command,
}


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its C++ start-up notes ("could not find cuda drivers", ...) sent to the null device,
    unless `TF_CPP_MIN_LOG_LEVEL=0`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0" or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def start_tensorflow() -> None:
    """Imports TensorFlow quietly and asks for its BFC CPU allocator, before any TensorFlow operation.
    `run` and `sweep` call it once their settings are checked, so that bad settings are said without waiting for
    TensorFlow; the other commands start with it."""
    import_tensorflow_quietly()
    from catsdogs_helpers.runtime import prefer_bfc_cpu_allocator

    prefer_bfc_cpu_allocator()  # Before any TensorFlow operation: evaluate, predict and export never start a study.
    # TensorFlow's Python-side notes (such as tf.function retracing after several models' predict) are not for
    # a user of this command; its errors still show.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code."""
    fill_closed_standard_streams()
    stdout, sys.stdout = sys.stdout, StandardOutput(sys.stdout)
    try:
        return _run(argv)
    finally:
        sys.stdout = stdout


def _run(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except OSError as error:  # `--help` or `--version` into an output that cannot be written.
        return report_failure(error)
    try:
        if args.command not in ("run", "sweep"):  # Those two check their settings first.
            start_tensorflow()
        code = _COMMANDS[args.command](args)
        sys.stdout.flush()  # A closed pipe or a full output fails here, not in Python's flush at exit.
        return code
    except BrokenPipeError:  # The reader went away (`| head`): end quietly (Python's docs, "Note on SIGPIPE").
        discard_standard_output()
        return EXIT_BROKEN_PIPE
    except StudyInterrupted as interrupted:
        print(f"\n{interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        return report_failure(error)
