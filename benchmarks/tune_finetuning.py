"""Searches for a fine-tuning recipe that beats the frozen head, on the validation split only (issue 21, item 3).

Every model is built, unfrozen and compiled by the study's own functions (`catsdogs_helpers.models`, which
imports no TensorFlow), so the same script runs on Keras's JAX backend on a machine without TensorFlow. It reads
a folder `PHOTOS/{train,validation}/{cat,dog}` (no test split: it is never looked at) and trains, with the
`quick` preset's settings unless a variant changes them:

- `head`: the frozen-head baseline as the quick study trains it: the head (dropout, one logit) on features the
  frozen ImageNet MobileNetV2 computed once (`use_cached_features`), Adam at `transfer_learning_rate` for up to
  `transfer_epochs` epochs, early stopping on the validation loss with its best weights; one run per seed;
- `head_aug`: the same head trained end to end through the frozen base, with the study's augmentation;
- fine-tuning from a trained head: the base unfrozen from layer 100, 50 or 0 (`unfreeze_base`), Adam at several
  learning rates, constant or with cosine decay (`compile_model(decay_steps=...)`), for the preset's epochs or
  more with early stopping; every fine-tuning run keeps its epoch of lowest validation loss, as the study does.

The runs go in order of priority (`PLAN`, then today's recipe and the two best so far on more seeds, then
`LATE_PLAN`).

Each run is scored on the validation photos through the whole model (pixels in, logit out): accuracy with its
Wilson 95% interval, loss, and an exact McNemar test against the head it started from (the baseline of the same
seed) on the same photos (`catsdogs_helpers.significance`). The variants that score best on the first seed are
repeated on further seeds. One JSON line per run is appended to `OUTPUT/runs.jsonl` as soon as it finishes; no
run starts after `--time-limit` seconds, nor one that would end 40 s past it by its estimate (its epochs at the
speed seen so far at its depth, plus a compilation if it needs one), so a job killed at a deadline still returns
its runs. Batches hold the quick preset's `batch_size` photos unless `--batch-size` says otherwise.

Compilation dominates on a GPU, so one model is compiled per (depth, schedule) and reused by every run that
shares them: its weights are reset to ImageNet's plus the starting head's, its optimizer's state zeroed and its
constant learning rate set, which is what a fresh `compile_model` would give. Training batches drop the
remainder (one shape, one compilation); validation batches hold `--eval-batch-size` photos.

    KERAS_BACKEND=jax python benchmarks/tune_finetuning.py --photos PHOTOS --weights W.h5 --output OUT
    KERAS_BACKEND=tensorflow python benchmarks/tune_finetuning.py --photos PHOTOS --weights W.h5 --output /tmp/t \
        --limit 8 --max-epochs 1 --batch-size 4 --head-seeds 2 --repeat-seeds 1  # a check in minutes on a CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np

from catsdogs_helpers import models
from catsdogs_helpers.config import QUICK
from catsdogs_helpers.decoding import decode_photo
from catsdogs_helpers.significance import compare_models, compute_accuracy_interval


@dataclasses.dataclass(frozen=True)
class Variant:
    """One fine-tuning recipe; `depth=None` trains a head end to end through the frozen base, with augmentation."""

    name: str
    depth: int | None
    learning_rate: float
    schedule: str  # "constant" or "cosine"
    epochs: int
    patience: int
    start: str = "head"  # The head it starts from: "head" (cached features) or "head_aug".


def _ft(depth: int, rate: float, schedule: str, epochs: int, start: str = "head") -> Variant:
    """A fine-tuning variant named after its settings; runs longer than the preset's 3 epochs stop after 3 idle."""
    prefix = "ft" if start == "head" else "aug_ft"
    rate_text = f"{rate:.0e}".replace("e-0", "e-")
    name = f"{prefix}_d{depth}_{rate_text}_{schedule[:3] if schedule == 'cosine' else 'c'}_e{epochs}"
    return Variant(name, depth, rate, schedule, epochs, QUICK.patience if epochs <= 3 else 3, start)


HEAD_AUG = Variant("head_aug", None, QUICK.transfer_learning_rate, "constant", QUICK.transfer_epochs, QUICK.patience)
# In order of priority (the time guard skips what does not fit): PLAN on seed 0, then today's recipe and the two
# best so far on more seeds, then LATE_PLAN on seed 0.
PLAN = (
    _ft(QUICK.fine_tune_at, QUICK.fine_tune_learning_rate, "constant", QUICK.fine_tune_epochs),  # today
    _ft(100, 1e-5, "constant", 10),
    _ft(100, 3e-5, "constant", 10),
    _ft(100, 1e-4, "constant", 10),
    _ft(0, 1e-5, "constant", 10),
    _ft(0, 3e-5, "constant", 10),
    HEAD_AUG,
    _ft(100, 1e-5, "constant", 3, start="head_aug"),
    _ft(100, 3e-5, "constant", 10, start="head_aug"),
)
TODAY = PLAN[0].name  # The quick preset's fine-tuning: from layer 100, Adam 1e-5, constant, 3 epochs.
LATE_PLAN = (
    _ft(100, 1e-4, "cosine", 10),
    _ft(50, 3e-5, "constant", 10),
    _ft(50, 1e-4, "constant", 10),
    _ft(0, 3e-5, "cosine", 10),
    _ft(50, 1e-4, "cosine", 10),
)
# Run only when named by `--variants`: the leading recipe's neighbours, for a second look.
EXTRA = (_ft(0, 3e-5, "cosine", 20), _ft(0, 1e-4, "cosine", 10))
VARIANTS = {variant.name: variant for variant in (*PLAN, *LATE_PLAN, *EXTRA)}  # HEAD_AUG is in PLAN.


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", required=True, help="folder with train/ and validation/, each with cat/ and dog/")
    parser.add_argument("--weights", required=True, help="MobileNetV2 1.0 no-top .h5 file (ImageNet)")
    parser.add_argument("--output", required=True, help="folder for runs.jsonl and summary.md")
    parser.add_argument("--batch-size", type=int, default=QUICK.batch_size, help="default: the quick preset's")
    parser.add_argument("--eval-batch-size", type=int, default=250)
    parser.add_argument("--head-seeds", type=int, default=5, help="seeds of the baseline head")
    parser.add_argument("--repeat-seeds", type=int, default=2, help="more seeds for today's and the best variants")
    parser.add_argument("--limit", type=int, default=None, help="at most this many photos per class and split")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=None,
                        help="run only these variants, each on every --seeds, instead of the plan")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of --variants (< --head-seeds)")
    parser.add_argument("--max-epochs", type=int, default=None, help="cap every run's epochs (quick checks)")
    parser.add_argument("--time-limit", type=float, default=470.0, help="seconds after which no run starts")
    args = parser.parse_args(argv)
    for split in ("train", "validation"):
        if not (Path(args.photos) / split).is_dir():
            parser.error(f"--photos must hold train/ and validation/ folders; {split}/ is missing. "
                         f"Received: --photos {args.photos}")  # fmt: skip
    if not Path(args.weights).is_file():
        parser.error(f"--weights must be a MobileNetV2 no-top .h5 file. Received: --weights {args.weights}")
    if max(args.seeds) >= args.head_seeds:
        parser.error(f"--seeds must be below --head-seeds ({args.head_seeds}). Received: --seeds {args.seeds}")
    return args


def load_split(folder: Path, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Decodes a split's photos with the study's decoder; returns float32 pixels and int32 labels (0 cat, 1 dog)."""
    paths, labels = [], []
    for label, name in enumerate(sorted(path.name for path in (folder / "train").iterdir() if path.is_dir())):
        files = sorted(path for path in (folder / split / name).iterdir() if not path.name.startswith("."))
        paths += files[:limit]
        labels += [label] * len(files[:limit])
    with ThreadPoolExecutor(8) as pool:
        images = list(pool.map(lambda path: decode_photo(path, QUICK.image_size), paths))
    return np.stack(images).astype(np.float32), np.asarray(labels, np.int32)


class ShuffledBatches(keras.utils.PyDataset):
    """Full batches of photos in a new seeded order every epoch (the remainder changes from epoch to epoch)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int) -> None:
        super().__init__(workers=4, use_multiprocessing=False, max_queue_size=8)
        self.images, self.labels, self.batch_size = images, labels.astype(np.float32)[:, None], batch_size
        self.generator = np.random.default_rng(seed)
        self.order = self.generator.permutation(len(labels))

    def __len__(self) -> int:
        return len(self.labels) // self.batch_size

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        return self.images[rows], self.labels[rows]

    def on_epoch_end(self) -> None:
        self.order = self.generator.permutation(len(self.labels))


class EpochTimer(keras.callbacks.Callback):
    """Records each epoch's seconds, and the part of them spent on validation."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch_seconds: list[float] = []
        self.validation_seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.start = time.perf_counter()

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.test_start = time.perf_counter()

    def on_test_end(self, logs: dict | None = None) -> None:
        self.validation_seconds.append(time.perf_counter() - self.test_start)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_seconds.append(time.perf_counter() - self.start)


class Search:
    """The photos, the compiled models (one per depth and schedule), the trained heads, and the runs' records."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.start = args, time.perf_counter()
        folder = Path(args.photos)
        self.train_x, self.train_y = load_split(folder, "train", args.limit)
        self.val_x, self.val_y = load_split(folder, "validation", args.limit)
        self.output = Path(args.output)
        self.output.mkdir(parents=True, exist_ok=True)
        self.records: list[dict] = []
        self.models: dict[tuple, keras.Model] = {}
        self.heads: dict[str, list[np.ndarray]] = {}  # The logit layer's weights, by "head/SEED".
        self.head_logits: dict[str, np.ndarray] = {}  # Validation logits of the trained heads, by "head/SEED".
        self.compile_seconds: list[float] = []
        self.epoch_seconds: dict[object, list[float]] = {}
        self.scorer = self.new_model()  # Scores every run: its weights are set to the run's.
        self.initial_weights = self.scorer.get_weights()  # ImageNet base, untrained head.

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def new_model(self) -> keras.Model:
        """A transfer model as the study builds it (the base frozen, augmentation in front)."""
        return models.build_transfer_model(
            QUICK.image_size,
            self.args.weights,
            QUICK.alpha,
            QUICK.dropout,
            models.build_augmentation(QUICK.seed, QUICK.augmentation_strength),
        )

    def steps_per_epoch(self) -> int:
        return len(self.train_y) // self.args.batch_size

    def epochs(self, variant: Variant) -> int:
        return min(variant.epochs, self.args.max_epochs or variant.epochs)

    def compiled(self, variant: Variant) -> keras.Model:
        """The model compiled for this variant's depth and schedule, built on first use."""
        cosine = variant.schedule == "cosine"
        key = (variant.depth, variant.schedule, variant.learning_rate if cosine else None, self.epochs(variant))
        key = key if cosine else key[:3]
        if key not in self.models:
            model = self.new_model()
            if variant.depth is not None:
                models.unfreeze_base(model, fine_tune_at=variant.depth)
            decay_steps = self.epochs(variant) * self.steps_per_epoch() if cosine else None
            self.models[key] = models.compile_model(model, variant.learning_rate, decay_steps=decay_steps)
        return self.models[key]

    def is_compiled(self, variant: Variant) -> bool:
        cosine = variant.schedule == "cosine"
        key = (variant.depth, variant.schedule, variant.learning_rate if cosine else None, self.epochs(variant))
        return (key if cosine else key[:3]) in self.models

    def score(self, weights: list[np.ndarray]) -> tuple[np.ndarray, dict[str, float]]:
        """Validation logits of a model with these weights (through the whole model) and their accuracy and loss."""
        self.scorer.set_weights(weights)
        logits = self.scorer.predict(self.val_x, batch_size=self.args.eval_batch_size, verbose=0).reshape(-1)
        correct = int(np.sum((logits > 0) == (self.val_y == 1)))
        loss = float(np.mean(np.logaddexp(0.0, logits) - self.val_y * logits))  # Binary cross-entropy of logits.
        low, high = compute_accuracy_interval(correct, len(self.val_y))
        return logits, {"val_accuracy": correct / len(self.val_y), "val_ci95": [low, high], "val_loss": loss}

    def with_head(self, head: list[np.ndarray]) -> list[np.ndarray]:
        """ImageNet's base weights with a trained head's logit weights."""
        model = self.scorer
        model.set_weights(self.initial_weights)
        model.get_layer(models.LOGIT_NAME).set_weights(head)
        return model.get_weights()

    def record(self, record: dict) -> None:
        record["elapsed_s"] = round(self.elapsed(), 1)
        self.records.append(record)
        with open(self.output / "runs.jsonl", "a") as file:
            file.write(json.dumps(record) + "\n")
        accuracy = record.get("val_accuracy")
        print(
            f"[{record['elapsed_s']:6.1f} s] {record['variant']:<24} seed {record['seed']} "
            + (f"val acc {accuracy:.4f} loss {record['val_loss']:.4f} " if accuracy is not None else "")
            + (f"p={record['mcnemar_vs_head']['p_value']:.3f} " if "mcnemar_vs_head" in record else "")
            + f"epochs {record.get('epochs_run', '-')} fit {record.get('fit_s', 0):.1f} s",
            flush=True,
        )

    def compare(self, record: dict, logits: np.ndarray, seed: int) -> None:
        """Adds exact McNemar tests against the baseline head of the same seed and against the run's start."""
        for field, key in (("mcnemar_vs_head", f"head/{seed}"), ("mcnemar_vs_start", record.get("start"))):
            if key in self.head_logits and (field == "mcnemar_vs_head" or key != f"head/{seed}"):
                comparison = compare_models(self.val_y, self.head_logits[key], logits)
                record[field] = {name: comparison[name] for name in ("only_a_correct", "only_b_correct", "p_value")}


def reset_optimizer(model: keras.Model, learning_rate: float | None) -> None:
    """Zeroes the optimizer's state and step count (what `compile_model` gives) and sets a constant rate."""
    for variable in model.optimizer.variables:
        variable.assign(np.zeros(variable.shape, dtype=keras.backend.standardize_dtype(variable.dtype)))
    if learning_rate is not None:
        model.optimizer.learning_rate = learning_rate


def build_head(model: keras.Model) -> keras.Model:
    """The model's head on its pooled features, sharing its layers (as `features.build_head`, which imports TF)."""
    features = keras.Input(model.get_layer(models.POOL_NAME).output.shape[1:], name="features")
    outputs = model.get_layer(models.LOGIT_NAME)(model.get_layer(models.HEAD_DROPOUT_NAME)(features))
    return keras.Model(features, outputs, name=f"{model.name}_head")


def init_head(model: keras.Model, seed: int) -> None:
    """Draws the logit layer's weights anew (Keras's defaults: Glorot-uniform kernel, zero bias)."""
    logit = model.get_layer(models.LOGIT_NAME)
    logit.kernel.assign(keras.initializers.GlorotUniform(seed=seed)(logit.kernel.shape))
    logit.bias.assign(np.zeros(logit.bias.shape, np.float32))


def fit(model: keras.Model, data: object, epochs: int, patience: int, **kwargs: object) -> dict:
    """Trains with early stopping on the validation loss (best weights kept); returns what the record keeps."""
    timer = EpochTimer()
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    start = time.perf_counter()
    history = model.fit(data, epochs=epochs, callbacks=[stopper, timer], verbose=0, **kwargs).history
    return {
        "fit_s": round(time.perf_counter() - start, 2),
        "epochs_run": len(history["val_loss"]),
        "kept_epoch": int(np.argmin(history["val_loss"])) + 1,
        "history_val_accuracy": [round(value, 4) for value in history["val_accuracy"]],
        "history_val_loss": [round(value, 4) for value in history["val_loss"]],
        "history_accuracy": [round(value, 4) for value in history["accuracy"]],
        "epoch_s": [round(value, 2) for value in timer.epoch_seconds],
        "validation_s": [round(value, 2) for value in timer.validation_seconds],
    }


def train_cached_heads(search: Search) -> None:
    """The baseline: heads trained on features computed once, one per seed (`--head-seeds`)."""
    args, model = search.args, search.new_model()
    extractor = keras.Model(model.inputs, model.get_layer(models.POOL_NAME).output)
    start = time.perf_counter()
    train_features = extractor.predict(search.train_x, batch_size=args.eval_batch_size, verbose=0)
    val_features = extractor.predict(search.val_x, batch_size=args.eval_batch_size, verbose=0)
    feature_seconds = time.perf_counter() - start
    head = models.compile_model(build_head(model), QUICK.transfer_learning_rate)
    labels, val_labels = search.train_y.astype(np.float32)[:, None], search.val_y.astype(np.float32)[:, None]
    epochs = min(QUICK.transfer_epochs, args.max_epochs or QUICK.transfer_epochs)
    for seed in range(args.head_seeds):
        keras.utils.set_random_seed(QUICK.seed + seed)
        init_head(model, QUICK.seed + seed)
        reset_optimizer(head, QUICK.transfer_learning_rate)
        result = fit(
            head, train_features, epochs, QUICK.patience, y=labels, batch_size=args.batch_size, shuffle=True,
            validation_data=(val_features, val_labels), validation_batch_size=args.eval_batch_size,
        )  # fmt: skip
        weights = model.get_layer(models.LOGIT_NAME).get_weights()
        search.heads[f"head/{seed}"] = weights
        logits, scores = search.score(search.with_head(weights))
        search.head_logits[f"head/{seed}"] = logits
        record = {"variant": "head", "seed": seed, "start": None, **scores, **result}
        if seed == 0:  # The features' path and the pixels' path must give the same logits.
            record["feature_s"] = round(feature_seconds, 2)
            direct = head.predict(val_features, batch_size=args.eval_batch_size, verbose=0).reshape(-1)
            record["max_logit_difference_features_vs_pixels"] = float(np.max(np.abs(direct - logits)))
        search.record(record)


def estimate_seconds(search: Search, variant: Variant) -> float:
    """A run's expected seconds: its epochs at the speed seen at its depth, plus a compilation if it needs one."""
    compile_seconds = 0.0 if search.is_compiled(variant) else max(search.compile_seconds, default=60.0)
    seen = search.epoch_seconds.get(variant.depth, [])
    per_epoch = float(np.median(seen)) if seen else 4.0
    return compile_seconds + search.epochs(variant) * per_epoch + 2.0


def run_variant(search: Search, variant: Variant, seed: int, hard_limit: float) -> dict | None:
    """Trains one variant from the head of `seed` (or a new head, for `head_aug`), scores and records it."""
    args, start_key = search.args, f"{variant.start}/{seed}"
    base = {"variant": variant.name, "seed": seed, "start": None if variant.depth is None else start_key}
    if variant.depth is not None and start_key not in search.heads:
        search.record({**base, "skipped": f"no trained {start_key}"})
        return None
    estimate = estimate_seconds(search, variant)
    if search.elapsed() > args.time_limit or search.elapsed() + estimate > hard_limit:
        search.record({**base, "skipped": f"time guard (estimate {estimate:.0f} s)"})
        return None
    fresh = not search.is_compiled(variant)
    model = search.compiled(variant)
    model.set_weights(search.initial_weights)
    keras.utils.set_random_seed(QUICK.seed + seed)
    if variant.depth is None:
        init_head(model, QUICK.seed + seed)
    else:
        model.get_layer(models.LOGIT_NAME).set_weights(search.heads[start_key])
    reset_optimizer(model, None if variant.schedule == "cosine" else variant.learning_rate)
    batches = ShuffledBatches(search.train_x, search.train_y, args.batch_size, QUICK.seed + seed)
    validation = (search.val_x, search.val_y.astype(np.float32)[:, None])
    result = fit(model, batches, search.epochs(variant), variant.patience, validation_data=validation,
                 validation_batch_size=args.eval_batch_size)  # fmt: skip
    if variant.depth is None:
        search.heads[f"head_aug/{seed}"] = model.get_layer(models.LOGIT_NAME).get_weights()
    logits, scores = search.score(model.get_weights())
    base_layers = model.get_layer(models.BASE_NAME).layers
    record = {
        **dataclasses.asdict(variant), **base, **scores, **result, "fresh_compile": fresh,
        "trainable_base_layers": sum(1 for layer in base_layers if layer.trainable and layer.weights),
        "trainable_parameters": int(sum(np.prod(weight.shape) for weight in model.trainable_weights)),
        "estimate_s": round(estimate, 1), "train_images_per_epoch": len(batches) * args.batch_size,
    }  # fmt: skip
    search.compare(record, logits, seed)
    if variant.depth is None:
        search.head_logits[f"head_aug/{seed}"] = logits
    times = result["epoch_s"]
    if fresh and len(times) > 1:
        record["compile_estimate_s"] = round(times[0] - float(np.median(times[1:])), 1)
        search.compile_seconds.append(record["compile_estimate_s"])
    search.epoch_seconds.setdefault(variant.depth, []).extend(times[1:] if fresh else times)
    search.record(record)
    return record


def choose_repeats(search: Search, count: int = 2) -> list[Variant]:
    """Today's recipe and the `count` variants with the best validation accuracy on seed 0 (then lowest loss)."""
    done = [r for r in search.records if r["seed"] == 0 and "val_accuracy" in r and r["variant"] not in ("head", TODAY)]
    done.sort(key=lambda r: (-r["val_accuracy"], r["val_loss"]))
    return [VARIANTS[TODAY], *(VARIANTS[r["variant"]] for r in done[:count])]


def plan_runs(search: Search) -> Iterator[tuple[Variant, int]]:
    """The runs in order: `--variants` on `--seeds`, or PLAN, the repeats (chosen once PLAN is done), LATE_PLAN."""
    args = search.args
    if args.variants:
        yield from ((VARIANTS[name], seed) for name in args.variants for seed in args.seeds)
        return
    yield from ((variant, 0) for variant in PLAN)
    for seed in range(1, args.repeat_seeds + 1):
        yield from ((variant, seed) for variant in choose_repeats(search))
    yield from ((variant, 0) for variant in LATE_PLAN)


def summarize(search: Search) -> str:
    """A Markdown table of every run, then one line per variant over its seeds."""
    lines = [
        "| variant | seed | start | val accuracy [95% CI] | val loss | McNemar vs head: head-only / variant-only, p "
        "| epochs run (kept) | fit s (first epoch s) |",
        "|---|---:|---|---|---:|---|---|---:|",
    ]
    for r in search.records:
        if "val_accuracy" not in r:
            lines.append(f"| {r['variant']} | {r['seed']} | {r['start']} | skipped: {r['skipped']} | | | | |")
            continue
        low, high = r["val_ci95"]
        test = r.get("mcnemar_vs_head")
        mcnemar = f"{test['only_a_correct']} / {test['only_b_correct']}, p = {test['p_value']:.3f}" if test else "—"
        lines.append(
            f"| {r['variant']} | {r['seed']} | {r['start'] or '—'} | {r['val_accuracy']:.1%} [{low:.1%}, {high:.1%}] "
            f"| {r['val_loss']:.4f} | {mcnemar} | {r['epochs_run']} ({r['kept_epoch']}) "
            f"| {r['fit_s']:.1f} ({r['epoch_s'][0]:.1f}) |"
        )
    lines += ["", "| variant | seeds | val accuracy, mean (min–max) | val loss, mean |", "|---|---:|---|---:|"]
    for name in dict.fromkeys(r["variant"] for r in search.records):
        runs = [r for r in search.records if r["variant"] == name and "val_accuracy" in r]
        if runs:
            accuracies = [r["val_accuracy"] for r in runs]
            lines.append(
                f"| {name} | {len(runs)} | {np.mean(accuracies):.2%} ({min(accuracies):.1%}–{max(accuracies):.1%}) "
                f"| {np.mean([r['val_loss'] for r in runs]):.4f} |"
            )
    return "\n".join(lines)


def describe_environment(search: Search) -> dict[str, object]:
    """Backend, device, versions and data sizes."""
    backend = keras.backend.backend()
    environment = {"backend": backend, "python": platform.python_version(), "keras": keras.__version__,
                   "tensorflow_imported": "tensorflow" in sys.modules, "train_photos": len(search.train_y),
                   "validation_photos": len(search.val_y), "argv": sys.argv[1:]}  # fmt: skip
    if backend == "jax":
        import jax

        environment.update(jax=jax.__version__, device=str(jax.devices()[0].device_kind))
    return environment


def main(argv: list[str] | None = None) -> int:
    """Runs the search; returns the exit status."""
    args = parse_args(argv)
    hard_limit = args.time_limit + 40.0
    search = Search(args)
    environment = describe_environment(search)
    environment["setup_s"] = round(search.elapsed(), 1)
    (search.output / "environment.json").write_text(json.dumps(environment, indent=1))
    print(json.dumps(environment), flush=True)
    train_cached_heads(search)
    for variant, seed in plan_runs(search):
        if variant.start == "head_aug" and f"head_aug/{seed}" not in search.heads:
            run_variant(search, HEAD_AUG, seed, hard_limit)
        run_variant(search, variant, seed, hard_limit)
    summary = summarize(search)
    (search.output / "summary.md").write_text(summary + "\n")
    print(f"\n{summary}\n\nTotal {search.elapsed():.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
