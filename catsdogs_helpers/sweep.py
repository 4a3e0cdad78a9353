"""How much data each approach needs: the study's three models trained on nested subsets of the training split.

Every point trains by the study's recipes under the plan's `TrainingRule`, on one device, and is scored on the
whole test split; each finished point is saved in `sweep/points/` with a manifest, so a rerun reuses it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shlex
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catsdogs_helpers import features, recipes, runtime, study
from catsdogs_helpers.config import StudyConfig, depends_on
from catsdogs_helpers.data import ImageSplits
from catsdogs_helpers.digests import hash_file, hash_json
from catsdogs_helpers.evaluation import compute_test_metrics
from catsdogs_helpers.output_lock import write_text_atomically
from catsdogs_helpers.plots import plot_sweep
from catsdogs_helpers.report import REPORT_FILE, RESULTS_FILE, format_sweep_table, summarize_sweep, write_sweep
from catsdogs_helpers.results import load_results
from catsdogs_helpers.sweep_plan import SWEEP_PLANS, SweepPlan, TrainingRule, choose_subsets, fit_sizes, get_sweep_plan

__all__ = [  # With what the notebook and the command line take from here: the plans and the sweep's files.
    "SWEEP_PLANS", "SweepPlan", "TrainingRule", "choose_subsets", "fit_sizes", "format_sweep_table",
    "get_sweep_plan", "run_sweep", "summarize_sweep", "sweep_training_sizes", "write_sweep",
]  # fmt: skip


def _max_epochs(config: StudyConfig) -> dict[str, int]:
    return {"scratch": config.scratch_epochs, "transfer": config.transfer_epochs, "finetuned": config.fine_tune_epochs}


def _subset_dataset(
    splits: ImageSplits, indices: np.ndarray, batch_size: int, seed: int | None, repeat: bool = False
) -> tf.data.Dataset:
    """Batches of the training photos at `indices`, in order or reshuffled every pass; `repeat`: without end."""
    mask = tf.constant(np.isin(np.arange(splits.num_images("train")), indices))
    dataset = (
        splits.train_in_order.unbatch()
        .enumerate()
        .filter(lambda index, item: tf.gather(mask, index))
        .map(lambda index, item: item)
    )
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(indices)))  # Keras then knows an epoch's end.
    if len(indices) < splits.num_images("train"):
        dataset = dataset.cache()  # The subset only: a pass then reads these photos, not the whole split.
    if seed is not None:
        dataset = dataset.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _fit(
    model: keras.Model,
    train: tf.data.Dataset,
    validation: tf.data.Dataset,
    epochs: int,
    steps: int | None,
    patience: int,
    verbose: int,
) -> dict[str, object]:
    """Trains until the validation loss stops improving (at most `epochs`); keeps the best epoch's weights.

    Returns:
        `{"epochs", "best_epoch", "stopped_early", "train_seconds", "val_loss"}`; epochs from 1, `val_loss` per epoch.
    """
    stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    start = time.perf_counter()
    history = model.fit(train, validation_data=validation, epochs=epochs, steps_per_epoch=steps, shuffle=False,
                        callbacks=[stopping], verbose=verbose)  # fmt: skip  # tf.data shuffles.
    return {"epochs": len(history.history["loss"]), "best_epoch": stopping.best_epoch + 1,
            "stopped_early": stopping.stopped_epoch > 0, "train_seconds": time.perf_counter() - start,
            "val_loss": [float(value) for value in history.history["val_loss"]]}  # fmt: skip


def _point_manifest(config: StudyConfig, plan: SweepPlan, splits: ImageSplits) -> dict[str, object]:
    """What identifies a sweep's points (as `stage_manifest.build_stage_manifest` does a stage's)."""
    settings: dict[str, object] = {name: getattr(config, name) for name in depends_on("sweep")}
    if settings["weights"] not in (None, "imagenet"):
        settings["weights"] = f"sha256:{hash_file(str(config.weights))}"
    return {
        "settings": settings,
        "rule": dataclasses.asdict(plan.rule),
        "data": splits.content_key,
        "versions": runtime.describe_training_versions(),
    }


def sweep_training_sizes(
    config: StudyConfig,
    splits: ImageSplits,
    plan: SweepPlan | None = None,
    verbose: int | None = None,
) -> dict[str, object]:
    """Trains the three approaches on nested subsets of the training split and scores each on the test split.

    `plan` and `verbose` (of `model.fit`) default to `SWEEP_PLANS[config.preset]` and `runtime.choose_verbosity()`.

    Returns:
        What `sweep.json` holds: `"points"` (one dict per approach, size and seed: `accuracy`, `num_correct`,
        `num_images`, `accuracy_interval`, `num_train`, `num_validation`, `epoch_photos`, `epochs`, `best_epoch`,
        `stopped_early`, `val_loss` per epoch, `train_seconds`), `"sizes"` (in photos), `"plan"`, `"stopping"`
        (each approach's patience and maximum epochs), `"num_test_images"`, `"num_train_photos"`, `"class_names"`,
        `"seconds"` (wall time).

    Raises:
        InputError: If the training split is too small for every size of the plan.
    """
    plan = plan or SWEEP_PLANS[config.preset]
    verbose = runtime.choose_verbosity() if verbose is None else verbose
    start = time.perf_counter()
    train_labels = np.concatenate(list(splits.train_in_order.map(lambda x, y: y).as_numpy_iterator()))
    sizes, notes = fit_sizes(plan, train_labels)
    for note in notes:
        print(f"[sweep] {note}.", flush=True)
    seeds = [config.seed + repeat for repeat in range(plan.num_seeds)]
    subsets = {seed: choose_subsets(train_labels, sizes, seed) for seed in seeds}
    # The largest subset of each seed holds its others: the base sees only the photos some point trains on. Run only
    # when a point is to be trained: a rerun that reuses every point skips it.
    largest = np.unique(np.concatenate([subsets[seed][-1] for seed in seeds]))
    cached = functools.cache(lambda: _compute_features(config, splits, largest, train_labels, verbose))
    num_train, num_test = len(train_labels), splits.num_images("test")
    described = ", ".join(str(size or num_train) for size in sizes)
    print(f"[sweep] subsets of {described} photos of the training split ({100 * plan.rule.validation_fraction:.0f}% "
          f"of each to validate on), {plan.num_seeds} seed(s); each point scored once on {num_test} "
          "test photos.", flush=True)  # fmt: skip
    points = _train_points(config, plan, splits, cached, train_labels, subsets, verbose)
    caps = _max_epochs(config)
    return {
        "points": points,
        "sizes": [size or num_train for size in sizes],
        "plan": dataclasses.asdict(plan),
        "stopping": {"patience": {name: config.patience_of(name) for name in caps}, "max_epochs": caps},
        "num_test_images": num_test,
        "num_train_photos": num_train,
        "class_names": list(splits.class_names),
        "seconds": time.perf_counter() - start,
    }


def _train_points(
    config: StudyConfig,
    plan: SweepPlan,
    splits: ImageSplits,
    cached: Callable[[], _CachedFeatures],
    train_labels: np.ndarray,
    subsets: dict[int, list[np.ndarray]],
    verbose: int,
) -> list[dict[str, object]]:
    """Trains the points of every seed's subsets, reusing those finished points trained the same way."""
    points_dir = Path(config.output_dir) / "sweep" / "points"
    points_dir.mkdir(parents=True, exist_ok=True)
    manifest = _point_manifest(config, plan, splits)
    points: list[dict[str, object]] = []
    for seed, seed_subsets in subsets.items():
        for indices in seed_subsets:
            parts = plan.rule.split(train_labels, indices, seed)
            key = {"size": len(indices), "seed": seed, "indices": hash_json(indices.tolist()),
                   "validation": hash_json(parts[1].tolist())}  # fmt: skip
            path = points_dir / f"{key['size']}-seed{seed}.json"
            identity = json.loads(json.dumps({**manifest, **key}))
            saved = _read_point(path)
            if saved.get("manifest") == identity:
                print(f"[sweep] {key['size']} photos, seed {seed}: reusing the finished point in {path}", flush=True)
                points += saved["points"]
                continue
            found = _train_point(config, plan.rule, splits, cached(), parts, key, verbose)
            write_text_atomically(path, json.dumps({"manifest": identity, "points": found}, indent=1))
            points += found
    return points


def _read_point(path: Path) -> dict[str, object]:
    """Reads a finished point's file; `{}` (train it again, saying so where it cannot be read) if there is none."""
    if not path.exists():
        return {}
    try:
        saved = json.loads(path.read_text())
        if isinstance(saved, dict) and isinstance(saved.get("points"), list):
            return saved
    except (OSError, ValueError):
        pass
    print(f"[sweep] {path} cannot be read (a write cut short by a kill or a full disk): training this point again.",
          flush=True)  # fmt: skip
    return {}


@dataclasses.dataclass(frozen=True)
class _CachedFeatures:
    """The frozen base's pooled features of the training and test splits, in order, and their cost per photo."""

    train_features: np.ndarray
    train_labels: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray
    seconds_per_photo: float


def _compute_features(
    config: StudyConfig, splits: ImageSplits, indices: np.ndarray, train_labels: np.ndarray, verbose: int
) -> _CachedFeatures:
    """Runs the frozen base once over the training photos at `indices` and over the test split."""
    extractor = features.build_feature_extractor(recipes.build_frozen_model(config))
    print(f"[sweep] computing the frozen base's features of {len(indices)} training and "
          f"{splits.num_images('test')} test photos once...", flush=True)  # fmt: skip
    start = time.perf_counter()
    chosen = _subset_dataset(splits, indices, config.batch_size, seed=None)
    extracted, _ = features.extract_features(extractor, chosen, verbose)
    test_features, test_labels = features.extract_features(extractor, splits.test, verbose)
    seconds = time.perf_counter() - start
    print(f"[sweep] features of {len(indices) + len(test_labels)} photos in {seconds:.0f} s.", flush=True)
    train_features = np.zeros((len(train_labels), extracted.shape[1]), np.float32)
    train_features[indices] = extracted  # In order: `_subset_dataset` keeps the split's order when not shuffled.
    return _CachedFeatures(train_features, train_labels.astype(np.int32), test_features, test_labels,
                           seconds / (len(indices) + len(test_labels)))  # fmt: skip


def _train_point(
    config: StudyConfig,
    rule: TrainingRule,
    splits: ImageSplits,
    cached: _CachedFeatures,
    parts: tuple[np.ndarray, np.ndarray],
    key: dict[str, object],
    verbose: int,
) -> list[dict[str, object]]:
    """Trains and scores the three approaches on one subset (one point each), split into training and validation."""
    caps = _max_epochs(config)
    (train, validation), seed, batch_size = parts, int(key["seed"]), config.batch_size
    epoch_photos = rule.epoch_photos(len(train), len(cached.train_labels))
    steps = rule.steps_per_epoch(len(train), len(cached.train_labels), batch_size)
    repeated = epoch_photos > len(train)
    fit_steps = steps if repeated else None  # None: an epoch is one pass over the part, as Keras counts it.
    runtime.set_seeds(seed)
    images = _subset_dataset(splits, train, batch_size, seed, repeat=repeated)
    validation_images = _subset_dataset(splits, validation, batch_size, None)
    test_images = splits.test.map(lambda batch, labels: batch)
    sizes = {"num_train": len(train), "num_validation": len(validation), "epoch_photos": epoch_photos}

    def point(approach: str, fitted: dict[str, object], logits: np.ndarray) -> dict[str, object]:
        return _score({"approach": approach, **key, **sizes, **fitted}, logits, cached.test_labels)

    # The frozen model: its head on the parts' cached features (their cost counted per photo).
    recipe = config.replace(seed=seed)
    model = recipes.build_frozen_model(recipe)
    head = features.build_compiled_head(model)
    head_data = tf.data.Dataset.from_tensor_slices((cached.train_features[train], cached.train_labels[train]))
    head_data = head_data.shuffle(len(train), seed=seed, reshuffle_each_iteration=True)
    head_data = (head_data.repeat() if repeated else head_data).batch(batch_size)
    head_validation = (cached.train_features[validation], cached.train_labels[validation])
    head_validation = tf.data.Dataset.from_tensor_slices(head_validation).batch(batch_size)
    patience = recipe.patience_of  # The study's, per approach.
    fitted = _fit(head, head_data, head_validation, caps["transfer"], fit_steps, patience("transfer"), 0)
    fitted["train_seconds"] += cached.seconds_per_photo * (len(train) + len(validation))
    found = [point("transfer", fitted, head.predict(cached.test_features, verbose=0))]

    if caps["finetuned"]:  # Fine-tuning, from that head, on the parts' photos (0 epochs: none, as in the study).
        recipes.prepare_fine_tuning(recipe, model)
        tuned = _fit(model, images, validation_images, caps["finetuned"], fit_steps, patience("finetuned"), verbose)
        tuned["head_epochs"] = fitted["epochs"]
        tuned["train_seconds"] += fitted["train_seconds"]  # The head's time included, as in the study.
        found.append(point("finetuned", tuned, model.predict(test_images, verbose=0)))

    # The CNN from scratch, on the same photos.
    model = recipes.build_scratch_cnn(recipe, num_train_images=epoch_photos)  # Its cosine spans the point's steps.
    fitted = _fit(model, images, validation_images, caps["scratch"], fit_steps, patience("scratch"), verbose)
    found.append(point("scratch", fitted, model.predict(test_images, verbose=0)))
    return found


def _score(point: dict[str, object], logits: np.ndarray, labels: np.ndarray) -> dict[str, object]:
    """Adds the test accuracy, its 95% Wilson interval and counts to a point, and prints it."""
    metrics = compute_test_metrics(labels, logits)
    num_correct = int(np.trace(metrics["confusion_matrix"]))
    point = {**point, "accuracy": metrics["accuracy"], "num_correct": num_correct, "num_images": metrics["num_images"],
             "accuracy_interval": metrics["accuracy_interval"]}  # fmt: skip
    low, high = point["accuracy_interval"]
    included = " (the head's included)" if point["approach"] == "finetuned" else ""
    how = "stopped early" if point["stopped_early"] else "the cap"
    print(f"[sweep] {point['size']} photos, seed {point['seed']}, {point['approach']}: "
          f"{100 * point['accuracy']:.1f}% ({100 * low:.1f}-{100 * high:.1f}), best epoch {point['best_epoch']} of "
          f"{point['epochs']} ({how}), {point['train_seconds']:.0f} s{included}", flush=True)  # fmt: skip
    return point


def run_sweep(config: StudyConfig, plan: SweepPlan | None = None, verbose: int | None = None) -> dict[str, object]:
    """Runs the sweep on its own, as `study.run_study` runs the study; writes `sweep.json`, `.png` and `.md`.

    Raises:
        InputError: If an input is wrong, before any training.
        StudyInterrupted: On Ctrl-C; rerunning the same command reuses the finished points.
    """
    with study.study_session(config) as session:
        session.enter("data", config.data)
        splits = study.load_data(config)
        plan = plan or SWEEP_PLANS[config.preset]
        seeds = f"{plan.num_seeds} seed{'s' * (plan.num_seeds > 1)}"
        session.enter("sweep", f"subsets of {', '.join(str(size or 'all') for size in plan.sizes)} photos, {seeds}")
        sweep = sweep_training_sizes(config, splits, plan, verbose)
        path = write_sweep(config.output_dir, sweep, plot_sweep(summarize_sweep(sweep), sweep["points"]))
    print(f"\n{format_sweep_table(sweep)}\n\nSweep report: {path}", flush=True)
    hint = describe_report_update(config.output_dir)
    if hint is not None:
        print(hint, flush=True)
    return sweep


def describe_report_update(output_dir: str | os.PathLike) -> str | None:
    """How to add a sweep to `output_dir`'s report.md (results.json's command, `--output` this folder), or `None`."""
    study_report = Path(output_dir) / REPORT_FILE
    if not study_report.is_file():
        return None
    try:
        results = load_results(Path(output_dir) / RESULTS_FILE)
    except (OSError, ValueError):  # Absent, cut short, or not JSON: no study to rerun from it.
        return None
    command = results.get("command") if isinstance(results, dict) else None
    try:
        words = shlex.split(command) if isinstance(command, str) else []
    except ValueError:
        words = []
    if "--output" in words[:-1]:
        words[words.index("--output") + 1] = os.path.abspath(output_dir)
        command = shlex.join(words)
    else:
        command = f"the study's command with --output {shlex.quote(os.path.abspath(output_dir))}"
    return (f"{study_report} was written before this sweep; to add the sweep to it, run the study into this "
            f"folder again (it reuses every trained model): {command}")  # fmt: skip
