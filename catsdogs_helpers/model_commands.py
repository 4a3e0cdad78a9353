"""The commands on a saved model: `catsdogs evaluate`, `predict` and `export`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from catsdogs_helpers.errors import InputError
from catsdogs_helpers.exit_status import EXIT_UNREADABLE_PHOTOS


def evaluate_command(args: argparse.Namespace) -> int:
    """Prints a saved model's metrics on a folder of photos as JSON; returns the exit code."""
    from catsdogs_helpers.contract import read_contract
    from catsdogs_helpers.data import load_labelled_photos
    from catsdogs_helpers.decoding import printable_path
    from catsdogs_helpers.evaluation import evaluate_model
    from catsdogs_helpers.models import load_model
    from catsdogs_helpers.results import replace_nan

    if args.batch_size < 1:
        raise InputError(f"--batch-size must be a positive integer. Received: --batch-size {args.batch_size}")
    model = load_model(args.model)
    contract = read_contract(model, args.model)
    dataset, folder_classes, counts, skipped = load_labelled_photos(
        args.data,
        image_size=contract.image_size,
        batch_size=args.batch_size,
        verbose=False,
        test_split_only=not args.all,
    )
    class_names = contract.class_names
    dataset = dataset.map(_relabel(folder_classes, class_names, args.model, args.data))
    evaluation = evaluate_model(model, dataset, Path(args.model).stem, class_names, tta=args.tta)
    report = {
        "model": str(args.model),
        "data": str(args.data),
        "photos": "every photo" if args.all else "the test split",
        "class_names": list(class_names),
        "counts": counts,
        "skipped": [{"path": printable_path(item.path), "reason": item.reason} for item in skipped],
        "metrics": evaluation.metrics,
        **({"metrics_tta": evaluation.tta_metrics} if args.tta else {}),
    }
    print(json.dumps(replace_nan(report), indent=2, allow_nan=False))
    return 0


def _relabel(folder_classes: tuple[str, ...], model_classes: tuple[str, ...], model: str, data: str):
    """Returns a `dataset.map` function giving each photo its class's label in the model (`InputError` if the
    folder's classes are not the model's)."""
    import tensorflow as tf

    if set(folder_classes) != set(model_classes):
        raise InputError(
            f"The photos' classes are not the model's: {model} was trained on {list(model_classes)} (class 0, "
            f"class 1), and {data} has folders {list(folder_classes)}. Name the class folders as the model's "
            f"classes. Received: --data {data}"
        )
    mapping = tf.constant([model_classes.index(name) for name in folder_classes], tf.int32)
    return lambda images, labels: (images, tf.gather(mapping, tf.cast(labels, tf.int32)))


def predict_command(args: argparse.Namespace) -> int:
    """Prints one line per photo; returns 1 if any photo could not be read."""
    from catsdogs_helpers.contract import read_contract
    from catsdogs_helpers.export import describe_artifact, load_exported_model
    from catsdogs_helpers.models import load_model
    from catsdogs_helpers.prediction import classify_photos

    if describe_artifact(args.model) is not None:  # An exported LiteRT, SavedModel or ONNX model, with its contract.
        model = load_exported_model(args.model)
        class_names = model.contract.class_names
    else:
        model = load_model(args.model)
        class_names = read_contract(model, args.model).class_names
    predictions = classify_photos(model, args.images, class_names)
    for prediction in predictions:
        print(prediction.describe(), file=sys.stderr if prediction.error else sys.stdout)
    return EXIT_UNREADABLE_PHOTOS if any(prediction.error for prediction in predictions) else 0


def export_command(args: argparse.Namespace) -> int:
    """Exports a saved model, checks the artifact against it, and prints the check; returns the exit code."""
    import numpy as np

    from catsdogs_helpers.contract import read_contract
    from catsdogs_helpers.export import check_export_format, export_model
    from catsdogs_helpers.models import load_model
    from catsdogs_helpers.photos import list_photos

    check_export_format(args.format)  # Before loading anything: a missing converter is said at once.
    if args.num_check_photos < 1:
        raise InputError(f"--num-check-photos must be 1 or more. Received: --num-check-photos {args.num_check_photos}")
    model = load_model(args.model)
    image_size = read_contract(model, args.model).image_size
    if args.check_data is None:
        images = np.random.default_rng(0).uniform(0, 255, (16, image_size, image_size, 3)).astype(np.float32)
        described = "16 images of random pixels (--check-data FOLDER checks on photos)"
    else:
        from catsdogs_helpers.decoding import UnreadablePhotoError, decode_photo

        paths = list_photos(args.check_data)
        paths = paths[:: max(1, len(paths) // args.num_check_photos)][: args.num_check_photos]  # Every sub-folder.
        decoded = []
        for path in paths:
            with contextlib.suppress(UnreadablePhotoError):
                decoded.append(decode_photo(path, image_size))
        if not decoded:
            raise InputError(f"No readable photo in {args.check_data} to check the export on. "
                             f"Received: --check-data {args.check_data}")  # fmt: skip
        images = np.stack(decoded).astype(np.float32)
        described = f"{len(images)} photos of {args.check_data}"
    result = export_model(model, args.format, args.output, images)
    print(f"{result.describe()} ({described}).")
    return 0
