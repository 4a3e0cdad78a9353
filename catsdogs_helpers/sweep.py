"""How much data each approach needs: the study's three models trained on nested subsets of the training split.

Transfer learning's advantage should be largest with few photos.
`sweep_training_sizes` trains the CNN from scratch, the frozen MobileNetV2's
head (on cached features) and the fine-tuned model on class-balanced subsets of the training split (100, 250,
500, ... photos, each subset inside the next), scores every point on the same
whole test split, and draws accuracy against training photos (`sweep.png`).

Every point trains for a fixed budget and keeps its last weights: no
validation split, no early stopping, so no photo outside the subset shapes the
point, and the test split is scored once per point. Epochs per point follow an
`EpochBudget`: small subsets get more epochs, up to a cap. The frozen base's
features are computed once, for the training photos some point trains on and
for the test split; the head then trains in seconds, and fine-tuning starts
from that head, as in the study. Models are built on one device (no
`MirroredStrategy`, unlike the study's stages).

Each finished point is written to `sweep/points/` with what identifies it (a
manifest, as the study's stages have): an interrupted sweep rerun into the same
folder skips the points it already has.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catsdogs_helpers import features, models, runtime, study
from catsdogs_helpers.config import StudyConfig, depends_on
from catsdogs_helpers.data import ImageSplits
from catsdogs_helpers.digests import hash_file, hash_json
from catsdogs_helpers.errors import InputError
from catsdogs_helpers.evaluation import compute_test_metrics
from catsdogs_helpers.output_lock import write_text_atomically
from catsdogs_helpers.plots import plot_sweep
from catsdogs_helpers.report import REPORT_FILE, RESULTS_FILE, format_sweep_table, summarize_sweep, write_sweep
from catsdogs_helpers.results import load_results


@dataclasses.dataclass(frozen=True)
class EpochBudget:
    """Epochs per point: `ceil(photo_epochs / num_photos)`, between `min_epochs` and `max_epochs`.

    A fixed number of photo-epochs (photos seen in training) per point gives
    small subsets more epochs, so each point trains to a comparable extent
    at a bounded cost; the cap keeps the smallest subsets from training for ever.
    """

    photo_epochs: int
    min_epochs: int
    max_epochs: int

    def epochs_for(self, num_photos: int) -> int:
        """Returns the epochs a subset of `num_photos` photos trains for."""
        return max(self.min_epochs, min(self.max_epochs, math.ceil(self.photo_epochs / num_photos)))


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """What a sweep trains.

    Attributes:
        sizes: Training photos per subset, increasing; `0` means the whole
            training split. Sizes larger than the training split allows
            (class-balanced) are left out.
        num_seeds: Repeats of every point, each with its own subsets and seed.
        scratch: Epoch budget of the CNN from scratch.
        head: Epoch budget of the frozen model's head (on cached features).
        fine_tune: Epoch budget of fine-tuning.
    """

    sizes: tuple[int, ...]
    num_seeds: int
    scratch: EpochBudget
    head: EpochBudget
    fine_tune: EpochBudget

    def replace(self, **changes: object) -> SweepPlan:
        """Returns a copy with some fields changed."""
        return dataclasses.replace(self, **changes)


# The quick plan is made for a CPU (measured: benchmarks/results/sweep.md); default goes to the whole split.
SWEEP_PLANS = {
    "default": SweepPlan(
        sizes=(100, 250, 500, 1000, 2500, 5000, 0),
        num_seeds=2,
        scratch=EpochBudget(150_000, 10, 150),
        head=EpochBudget(40_000, 20, 200),
        fine_tune=EpochBudget(30_000, 3, 30),
    ),
    "quick": SweepPlan(
        sizes=(100, 250, 500, 1000),
        num_seeds=1,
        scratch=EpochBudget(12_000, 10, 60),
        head=EpochBudget(40_000, 20, 200),
        fine_tune=EpochBudget(1_500, 2, 15),
    ),
    "smoke": SweepPlan(
        sizes=(8, 16),
        num_seeds=1,
        scratch=EpochBudget(16, 1, 1),
        head=EpochBudget(16, 1, 1),
        fine_tune=EpochBudget(16, 1, 1),
    ),
}


def get_sweep_plan(preset: str, sizes: Sequence[int] | None = None, num_seeds: int | None = None) -> SweepPlan:
    """Returns a preset's sweep plan, with its sizes or number of seeds changed.

    Args:
        preset: `"default"`, `"quick"` or `"smoke"`.
        sizes: Training photos per subset (at least 2, increasing; `0` for the
            whole split), or `None` for the preset's. Defaults to `None`.
        num_seeds: Repeats of every point, or `None` for the preset's. Defaults to `None`.

    Returns:
        A `SweepPlan`.

    Raises:
        InputError: If the preset is unknown, or `sizes` or `num_seeds` is invalid.
    """
    if preset not in SWEEP_PLANS:
        raise InputError(f"Unknown preset: expected one of {tuple(SWEEP_PLANS)}. Received: preset={preset!r}")
    plan = SWEEP_PLANS[preset]
    if sizes is not None:
        sizes = tuple(int(size) for size in sizes)
        positive = [size for size in sizes if size != 0]
        if not sizes or any(size < 0 for size in sizes) or positive != sorted(set(positive)) or sizes.count(0) > 1:
            raise InputError(
                "sizes must be positive, distinct and increasing numbers of training photos (0, last, for the "
                f"whole training split), e.g. 100,250,500. Received: sizes={','.join(map(str, sizes))}"
            )
        if 0 in sizes and sizes[-1] != 0:
            raise InputError(f"0 (the whole training split) must come last. Received: sizes={sizes}")
        if positive and positive[0] < 2:
            raise InputError(
                f"A class-balanced subset needs at least 2 training photos (one of each class); {positive[0]} would "
                f"train on one class only. Pass sizes of 2 or more. Received: sizes={','.join(map(str, sizes))}"
            )
        plan = plan.replace(sizes=sizes)
    if num_seeds is not None:
        if not isinstance(num_seeds, int) or num_seeds < 1:
            raise InputError(f"num_seeds must be a positive integer. Received: num_seeds={num_seeds!r}")
        plan = plan.replace(num_seeds=num_seeds)
    return plan


def choose_subsets(labels: np.ndarray, sizes: Sequence[int], seed: int) -> list[np.ndarray]:
    """Chooses nested, class-balanced subsets of a split's photos.

    Each class's photos are put in a seeded random order; a subset of `n`
    photos takes the first `n // k` of every one of the `k` classes (the first
    `n % k` classes one more), so every subset holds the previous one. Size `0`
    is the whole split, as it is (not balanced).

    Args:
        labels: The split's labels in order, int, shape `(N,)`.
        sizes: Subset sizes, increasing; `0` (last) for the whole split.
        seed: Seed of the order.

    Returns:
        One sorted int64 index array per size.

    Raises:
        InputError: If a class has too few photos for a size.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    orders = [rng.permutation(np.flatnonzero(labels == label)) for label in classes]
    subsets = []
    for size in sizes:
        if size == 0:
            subsets.append(np.arange(len(labels), dtype=np.int64))
            continue
        takes = [size // len(classes) + (index < size % len(classes)) for index in range(len(classes))]
        if any(take > len(order) for take, order in zip(takes, orders)):
            counts = ", ".join(f"class {label}: {len(order)}" for label, order in zip(classes, orders))
            raise InputError(
                f"A class-balanced subset of {size} training photos needs {max(takes)} of each class; the training "
                f"split has {counts}. Choose smaller sizes. Received: sizes={tuple(sizes)}"
            )
        subsets.append(np.sort(np.concatenate([order[:take] for take, order in zip(takes, orders)])))
    return subsets


def fit_sizes(plan: SweepPlan, labels: np.ndarray) -> tuple[tuple[int, ...], list[str]]:
    """Returns the plan's sizes that the training split can hold, class-balanced, and what was left out and why.

    A size larger than the class-balanced split is left out; `0` (the whole
    split) is left out when the largest size kept already is the whole split.

    Raises:
        InputError: If none of the plan's sizes fits.
    """
    counts = np.bincount(np.asarray(labels))
    counts = counts[counts > 0]
    largest, total = int(counts.min()) * len(counts), len(labels)
    sizes = tuple(size for size in plan.sizes if size == 0 or size <= largest)
    if not sizes:
        raise InputError(
            f"The training split holds {total} photos ({largest} class-balanced): too few for the sweep's "
            f"smallest subset of {min(plan.sizes)}. Pass smaller sizes, e.g. --sizes {max(2, largest // 4)},"
            f"{max(2, largest // 2)}. Received: sizes={plan.sizes}"
        )
    notes = []
    left_out = [str(size) for size in plan.sizes if size not in sizes]
    if left_out:
        notes.append(f"{', '.join(left_out)} left out: the training split holds {total} photos, {largest} "
                     "class-balanced (pass sizes up to that, or 0 for the whole split)")  # fmt: skip
    if len(sizes) > 1 and sizes[-1] == 0 and sizes[-2] == total:
        sizes = sizes[:-1]
        notes.append(f"0 (the whole split) left out: it is the subset of {total} photos already in the list")
    elif sizes[-1] == 0:
        notes.append(f"0 stands for the whole split: {total} photos{', not class-balanced' * (total != largest)}")
    return sizes, notes


def _subset_dataset(splits: ImageSplits, indices: np.ndarray, batch_size: int, seed: int | None) -> tf.data.Dataset:
    """Batches of the training photos at `indices`, in the split's order, or reshuffled every epoch with a seed."""
    mask = np.zeros(splits.num_images("train"), dtype=bool)
    mask[indices] = True
    mask = tf.constant(mask)
    dataset = (
        splits.train_in_order.unbatch()
        .enumerate()
        .filter(lambda index, item: tf.gather(mask, index))
        .map(lambda index, item: item)
    )
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(indices)))  # Keras then knows an epoch's end.
    if seed is None:
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    if len(indices) < splits.num_images("train"):
        dataset = dataset.cache()  # The subset only: a pass then reads these photos, not the whole split.
    dataset = dataset.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _score(logits: np.ndarray, labels: np.ndarray) -> dict[str, object]:
    """Test accuracy with its 95% Wilson interval (`evaluation.compute_test_metrics`)."""
    metrics = compute_test_metrics(labels, logits)
    num_correct = int(np.trace(metrics["confusion_matrix"]))
    return {"accuracy": metrics["accuracy"], "num_correct": num_correct, "num_images": metrics["num_images"],
            "accuracy_interval": metrics["accuracy_interval"]}  # fmt: skip


def _fit(model: keras.Model, dataset, epochs: int, verbose: int) -> float:
    start = time.perf_counter()
    model.fit(dataset, epochs=epochs, shuffle=False, verbose=verbose)  # tf.data shuffles.
    return time.perf_counter() - start


def build_point_manifest(config: StudyConfig, plan: SweepPlan, splits: ImageSplits) -> dict[str, object]:
    """Returns what identifies a sweep's points, so that a rerun reuses only points trained the same way.

    Like a study stage's manifest (`study.build_stage_manifest`): the settings
    the points depend on (`config.depends_on("sweep")`; a weights file named by its SHA-256),
    the plan's epoch budgets, the splits' content key and the library versions.
    """
    settings: dict[str, object] = {name: getattr(config, name) for name in depends_on("sweep")}
    if settings["weights"] not in (None, "imagenet"):
        settings["weights"] = f"sha256:{hash_file(str(config.weights))}"
    budgets = {name: dataclasses.asdict(getattr(plan, name)) for name in ("scratch", "head", "fine_tune")}
    return {
        "settings": settings,
        "budgets": budgets,
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

    For every seed (`config.seed + i`) and subset size: the frozen model's
    head trains on the subset's cached features (`plan.head` epochs), fine-tuning
    continues from that head on the subset's photos (`plan.fine_tune` epochs,
    from base layer `config.fine_tune_at`), and the CNN from scratch trains on
    the same photos (`plan.scratch` epochs, cosine decay). Augmentation,
    learning rates, dropout and weights are the study's (`config`).

    Args:
        config: The study's settings (`get_config(...)`); its preset picks the
            plan when `plan` is `None`.
        splits: The data, from `study.load_data(config)`.
        plan: What to train, or `None` for `SWEEP_PLANS[config.preset]`. Defaults to `None`.
        verbose: `model.fit` verbosity while training images, or `None` for
            `runtime.choose_verbosity()`. Defaults to `None`.

    Returns:
        The sweep's results (what `sweep.json` holds): `"points"`, one dict per
        approach, size and seed (`accuracy`, `num_correct`, `num_images`,
        `accuracy_interval`, `epochs`, `train_seconds`); `"sizes"` (the sizes
        run, in photos); `"plan"`; `"num_test_images"`; `"seconds"` (wall time).

    Raises:
        InputError: If the training split is too small for every size of the plan.
    """
    plan = plan or SWEEP_PLANS[config.preset]
    verbose = runtime.choose_verbosity() if verbose is None else verbose
    start = time.perf_counter()
    points_dir = Path(config.output_dir) / "sweep" / "points"
    points_dir.mkdir(parents=True, exist_ok=True)
    manifest = build_point_manifest(config, plan, splits)
    train_labels = np.concatenate([labels for labels in splits.train_in_order.map(lambda x, y: y).as_numpy_iterator()])
    sizes, notes = fit_sizes(plan, train_labels)
    for note in notes:
        print(f"[sweep] {note}.", flush=True)
    seeds = [config.seed + repeat for repeat in range(plan.num_seeds)]
    subsets = {seed: choose_subsets(train_labels, sizes, seed) for seed in seeds}
    # The largest subset of each seed holds its others: the base sees only the photos some point trains on.
    cached = _compute_features(config, splits, np.unique(np.concatenate([subsets[seed][-1] for seed in seeds])),
                               train_labels, verbose)  # fmt: skip
    num_train = len(train_labels)
    described = ", ".join(str(size or num_train) for size in sizes)
    print(f"[sweep] subsets of {described} training photos, {plan.num_seeds} seed(s); each point scored on "
          f"{len(cached.test_labels)} test photos.", flush=True)  # fmt: skip
    points: list[dict[str, object]] = []
    for seed in seeds:
        for indices in subsets[seed]:
            key = {"size": len(indices), "seed": seed, "indices": hash_json(indices.tolist())}
            path = points_dir / f"{key['size']}-seed{seed}.json"
            identity = json.loads(json.dumps({**manifest, **key}))
            saved = _read_point(path)
            if saved.get("manifest") == identity:
                print(f"[sweep] {key['size']} photos, seed {seed}: reusing the finished point in {path}", flush=True)
                points += saved["points"]
                continue
            found = _train_point(config, plan, splits, cached, indices, key, verbose)
            write_text_atomically(path, json.dumps({"manifest": identity, "points": found}, indent=1))
            points += found
    return {
        "points": points,
        "sizes": [size or num_train for size in sizes],
        "plan": dataclasses.asdict(plan),
        "num_test_images": len(cached.test_labels),
        "class_names": list(splits.class_names),
        "seconds": time.perf_counter() - start,
    }


def _read_point(path: Path) -> dict[str, object]:
    """Reads a finished point's file; `{}` (train it again, saying so) if there is none or it cannot be read."""
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
    """The frozen base's pooled features of the training and test splits, in order, and what they cost."""

    train_features: np.ndarray
    train_labels: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray
    seconds_per_photo: float


def _compute_features(
    config: StudyConfig, splits: ImageSplits, indices: np.ndarray, train_labels: np.ndarray, verbose: int
) -> _CachedFeatures:
    """Runs the frozen base once over the training photos at `indices` and over the test split."""
    model = models.build_transfer_model(config.image_size, config.weights, config.alpha, config.dropout)
    extractor = features.build_feature_extractor(model)
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
    plan: SweepPlan,
    splits: ImageSplits,
    cached: _CachedFeatures,
    indices: np.ndarray,
    key: dict[str, object],
    verbose: int,
) -> list[dict[str, object]]:
    """Trains and scores the three approaches on one subset (one point each)."""
    size, seed = len(indices), int(key["seed"])
    runtime.set_seeds(seed)
    images = _subset_dataset(splits, indices, config.batch_size, seed)
    test_images = splits.test.map(lambda batch, labels: batch)
    augmentation = models.build_augmentation(seed, config.augmentation_strength)

    def point(approach: str, epochs: int, seconds: float, logits: np.ndarray) -> dict[str, object]:
        found = {"approach": approach, **key, "epochs": epochs, "train_seconds": seconds,
                 **_score(logits, cached.test_labels)}  # fmt: skip
        _say(found)
        return found

    # The frozen model: its head on the subset's cached features (their cost counted per photo).
    model = models.build_transfer_model(config.image_size, config.weights, config.alpha, config.dropout, augmentation)
    head = models.compile_model(features.build_head(model), config.transfer_learning_rate)
    head_epochs = plan.head.epochs_for(size)
    head_data = (
        tf.data.Dataset.from_tensor_slices((cached.train_features[indices], cached.train_labels[indices]))
        .shuffle(size, seed=seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
    )
    head_seconds = _fit(head, head_data, head_epochs, 0) + cached.seconds_per_photo * size
    found = [point("transfer", head_epochs, head_seconds, head.predict(cached.test_features, verbose=0))]

    # Fine-tuning, from that head, on the subset's photos.
    models.unfreeze_base(model, fine_tune_at=config.fine_tune_at)
    models.compile_model(model, config.fine_tune_learning_rate)
    epochs = plan.fine_tune.epochs_for(size)
    seconds = head_seconds + _fit(model, images, epochs, verbose)
    found.append(point("finetuned", head_epochs + epochs, seconds, model.predict(test_images, verbose=0)))

    # The CNN from scratch, on the same photos.
    epochs = plan.scratch.epochs_for(size)
    augmentation = models.build_augmentation(seed, config.augmentation_strength)
    model = models.build_scratch_cnn(config.image_size, config.scratch_image_size, dropout=config.scratch_dropout,
                                     augmentation=augmentation)  # fmt: skip
    decay_steps = epochs * math.ceil(size / config.batch_size)
    models.compile_model(
        model, config.scratch_learning_rate, decay_steps=decay_steps, weight_decay=config.scratch_weight_decay
    )
    seconds = _fit(model, images, epochs, verbose)
    found.append(point("scratch", epochs, seconds, model.predict(test_images, verbose=0)))
    return found


def _say(point: dict[str, object]) -> None:
    low, high = point["accuracy_interval"]
    included = " (the head's included)" if point["approach"] == "finetuned" else ""
    print(f"[sweep] {point['size']} photos, seed {point['seed']}, {point['approach']}: "
          f"{100 * point['accuracy']:.1f}% ({100 * low:.1f}-{100 * high:.1f}) after {point['epochs']} epochs"
          f"{included}, {point['train_seconds']:.0f} s", flush=True)  # fmt: skip


def run_sweep(config: StudyConfig, plan: SweepPlan | None = None, verbose: int | None = None) -> dict[str, object]:
    """Runs the sweep on its own: checks, loads the data, trains every point, writes `sweep.json`/`.png`/`.md`.

    The same checks and output-folder lock as `study.run_study`; the command
    line's `sweep` and the benchmarks call this.

    Args:
        config: The study's settings, e.g. `get_config("quick", data="photos/")`.
        plan: What to train, or `None` for the preset's (`SWEEP_PLANS`). Defaults to `None`.
        verbose: `model.fit` verbosity, or `None` for `runtime.choose_verbosity()`. Defaults to `None`.

    Returns:
        The sweep's results (see `sweep_training_sizes`).

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
    study_report = Path(config.output_dir) / REPORT_FILE
    if study_report.is_file() and (Path(config.output_dir) / RESULTS_FILE).is_file():
        command = load_results(Path(config.output_dir) / RESULTS_FILE).get("command") or "the study's command"
        print(f"{study_report} was written before this sweep; to add the sweep to it, run the study into this "
              f"folder again (it reuses every trained model): {command}", flush=True)  # fmt: skip
    return sweep
