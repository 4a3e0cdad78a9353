"""Training stages: best-weights checkpoints, early stopping, resuming, timing.

A stage is one call of `model.fit` with its own folder under the output
directory. It keeps the weights of its best validation epoch, stops early when
validation stops improving, and survives interruptions: rerun the same code
after a Colab disconnect or Ctrl-C and it continues from the last finished
epoch (Keras' `BackupAndRestore`), with its history and early-stopping count
as they were; rerun it after it finished and it loads the result instead of
training again.

A stage never mixes runs: its folder holds a manifest (what the caller says
identifies the stage: settings, architecture, data, upstream result,
versions), and an earlier run's files are reused or resumed only when their
manifest matches. Otherwise the stage says what changed and starts afresh.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catsdogs_helpers.checkpoints import (
    PREVIOUS_BACKUP_DIR,
    AtomicBackupAndRestore,
    AtomicModelCheckpoint,
    recover_backup,
    unreadable_file,
)
from catsdogs_helpers.output_lock import PARTIAL_PREFIX, write_text_atomically, written_atomically

_RESULT_FILE = "result.json"
_MANIFEST_FILE = "manifest.json"
_BEST_WEIGHTS_FILE = "best.weights.h5"
_LOG_FILE = "history.csv"
_BACKUP_DIR = "backup"


@dataclasses.dataclass
class StageResult:
    """What a training stage did and what it cost.

    Attributes:
        name: The stage's name, e.g. `"scratch"`.
        history: Per-epoch values (`"epoch"`, `"loss"`, `"val_loss"`,
            `"accuracy"`, ..., `"epoch_seconds"`), across interruptions.
        train_seconds: Wall time of the stage, feature extraction included.
        images_per_second: Training photos processed per second of wall time.
        best_epoch: Index of the epoch whose weights were kept.
    """

    name: str
    history: dict[str, list[float]]
    train_seconds: float
    images_per_second: float
    best_epoch: int

    @property
    def num_epochs(self) -> int:
        """Number of epochs run."""
        return len(self.history.get("epoch", []))

    def to_dict(self) -> dict[str, object]:
        """Returns the result as a JSON-serializable dictionary."""
        return dataclasses.asdict(self)


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` and `train_images_per_second` to each epoch's logs.

    `train_images_per_second` counts the training part of the epoch only
    (validation excluded). Place it before callbacks that read the logs.

    Args:
        num_images: Training images per epoch.
    """

    def __init__(self, num_images: int) -> None:
        super().__init__()
        self.num_images = num_images
        self._epoch_start = 0.0
        self._train_seconds = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = time.perf_counter()
        self._train_seconds = 0.0

    def on_test_begin(self, logs: dict | None = None) -> None:
        if not self._train_seconds:
            self._train_seconds = time.perf_counter() - self._epoch_start

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self._epoch_start
        if logs is not None:
            logs["epoch_seconds"] = seconds
            logs["train_images_per_second"] = self.num_images / (self._train_seconds or seconds)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' `EarlyStopping`, started from the state an interrupted run had reached.

    Keras' callback forgets its best value and its count of epochs without
    improvement at every `fit`; resuming a stage with it would grant a fresh
    `patience`. This one starts from the resumed history's best value and the
    number of epochs since it.

    Args:
        best: Best monitored value of the earlier epochs, or `math.inf` for none.
        epochs_since_best: Epochs since that best value.
        **kwargs: `keras.callbacks.EarlyStopping` arguments (`monitor`, `patience`, ...).
    """

    def __init__(self, best: float = math.inf, epochs_since_best: int = 0, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._resumed_best = best
        self._resumed_wait = epochs_since_best

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        if math.isfinite(self._resumed_best):
            self.best, self.wait = self._resumed_best, self._resumed_wait


def read_history(path: str | Path) -> dict[str, list[float]]:
    """Reads a `CSVLogger` file into `{"epoch": [...], "loss": [...], ...}`."""
    history: dict[str, list[float]] = {}
    path = Path(path)
    if not path.exists():
        return history
    for row in _complete_rows(path)[1]:
        for key, value in row.items():
            history.setdefault(key, []).append(int(value) if key == "epoch" else float(value))
    return history


def _complete_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Returns a `CSVLogger` file's columns and its complete rows (a row cut by a kill or a full disk is left out)."""
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        fields = list(reader.fieldnames or [])

    def complete(row: dict[str, str | None]) -> bool:
        try:
            [float(row[key]) for key in fields]  # A value missing (None) or cut short ("0.6e") raises.
        except (TypeError, ValueError):
            return False
        return None not in row  # No extra values (two rows run together).

    return fields, [row for row in rows if complete(row)]


def merge_histories(*histories: dict[str, list[float]]) -> dict[str, list[float]]:
    """Concatenates the histories of consecutive stages (e.g. head, then fine-tuning).

    Keys missing from a stage are filled with NaN, so every list has one value per epoch.
    """
    keys = list(dict.fromkeys(key for history in histories for key in history))
    merged: dict[str, list[float]] = {key: [] for key in keys}
    for history in histories:
        length = len(history.get("epoch", next(iter(history.values()), [])))
        for key in keys:
            merged[key].extend(history.get(key, [math.nan] * length))
    return merged


def _keep_history_before(path: Path, epoch: int) -> None:
    """Rewrites a `CSVLogger` file without its rows for epochs from `epoch` on.

    A run killed after the logger wrote an epoch's row but before the backup
    saved that epoch repeats the epoch when resumed: its first row must go.
    """
    if not path.exists():
        return
    fields, rows = _complete_rows(path)
    with written_atomically(path) as temporary, temporary.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(row for row in rows if int(float(row["epoch"])) < epoch)


def _backed_up_epochs(backup_dir: Path) -> int | None:
    """Returns the number of epochs `BackupAndRestore` saved (the next epoch's index), or `None` if none."""
    try:
        return int(json.loads((backup_dir / "training_metadata.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _best_epoch(history: dict[str, list[float]], monitor: str) -> tuple[int, float]:
    values = history.get(monitor, [])
    if not values:
        return -1, math.inf
    index = int(np.nanargmin(values)) if not all(map(math.isnan, values)) else 0
    return int(history["epoch"][index]), float(values[index])


def build_stage_callbacks(
    stage_dir: Path,
    num_train_images: int,
    patience: int = 8,
    monitor: str = "val_loss",
    best_so_far: float = math.inf,
    epochs_since_best: int = 0,
) -> list[keras.callbacks.Callback]:
    """Builds the callbacks of one training stage, in the order they must run.

    1. `EpochTimer` adds each epoch's seconds and training images/s to the logs;
    2. `CSVLogger` appends each epoch's logs to `history.csv` (the stage's history,
       across interruptions);
    3. `AtomicModelCheckpoint` keeps the weights of the best epoch by `monitor`
       (validation loss by default), starting from the best value of an
       interrupted earlier run;
    4. `ResumableEarlyStopping` ends the stage after `patience` epochs without
       improvement, counting those of an interrupted earlier run;
    5. `AtomicBackupAndRestore` saves the model and optimizer after every epoch, so
       that rerunning an interrupted stage continues from its last finished epoch.

    Both write whole files or none (a kill or a full disk mid-write leaves the last ones).

    Args:
        stage_dir: The stage's folder.
        num_train_images: Training images per epoch.
        patience: Epochs without improvement before stopping. Defaults to `8`.
        monitor: Validation value to minimize. Defaults to `"val_loss"`.
        best_so_far: Best `monitor` value of earlier epochs of this stage.
            Defaults to `math.inf` (none).
        epochs_since_best: Earlier epochs of this stage since that best value.
            Defaults to `0`.

    Returns:
        The callbacks, for `model.fit(..., callbacks=...)`.
    """
    return [
        EpochTimer(num_train_images),
        keras.callbacks.CSVLogger(str(stage_dir / _LOG_FILE), append=True),
        AtomicModelCheckpoint(
            str(stage_dir / _BEST_WEIGHTS_FILE),
            monitor=monitor,
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_so_far if math.isfinite(best_so_far) else None,
        ),
        ResumableEarlyStopping(best_so_far, epochs_since_best, monitor=monitor, patience=patience),
        AtomicBackupAndRestore(str(stage_dir / _BACKUP_DIR)),
    ]


def train_stage(
    model: keras.Model,
    train_data: tf.data.Dataset,
    validation_data: tf.data.Dataset,
    *,
    name: str,
    epochs: int,
    output_dir: str | Path,
    num_train_images: int,
    initial_epoch: int = 0,
    patience: int = 8,
    monitor: str = "val_loss",
    manifest: dict[str, object] | None = None,
    extra_seconds: float = 0.0,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 2,
) -> StageResult:
    """Trains a compiled model for one stage, resumably, and keeps its best weights.

    Args:
        model: A compiled model.
        train_data: Training batches `(images, labels)`.
        validation_data: Validation batches.
        name: Name of the stage; its files go to `output_dir/name/`.
        epochs: Index of the epoch to stop before (as in `model.fit`).
        output_dir: The study's output folder.
        num_train_images: Training images per epoch, for the images/s figures.
        initial_epoch: First epoch's index; a fine-tuning stage continues the
            previous stage's epochs. Defaults to `0`.
        patience: Epochs without improvement before stopping. Defaults to `8`.
        monitor: Validation value to minimize. Defaults to `"val_loss"`.
        manifest: What identifies the stage (JSON-serializable: settings,
            architecture, data, upstream result, versions). An earlier run's
            files in the stage's folder are reused (finished) or resumed
            (interrupted) only when its manifest is equal; otherwise the
            differences are printed and the stage starts afresh. Defaults to `None`.
        extra_seconds: Seconds of preparation to count as training time (such
            as computing cached features). Defaults to `0.0`.
        callbacks: More callbacks, run after the stage's own (which write the
            epoch's backup first). Defaults to `None`.
        verbose: `model.fit` verbosity: 0 silent, 1 a progress bar, 2 one line
            per epoch. Defaults to `2`.

    Returns:
        A `StageResult`. The model holds the best epoch's weights.
    """
    finished = load_finished_stage(model, name, output_dir, manifest, verbose)
    if finished is not None:
        return finished
    stage_dir = Path(output_dir) / name
    result_path = stage_dir / _RESULT_FILE
    best_path = stage_dir / _BEST_WEIGHTS_FILE
    log_path = stage_dir / _LOG_FILE
    backup_dir = stage_dir / _BACKUP_DIR
    manifest = _normalize(manifest)

    earlier = _read_manifest(stage_dir)
    same_run = earlier == manifest
    recover_backup(backup_dir)
    resuming = same_run and backup_dir.exists() and log_path.exists()
    backup = [backup_dir / "training_metadata.json", backup_dir / "latest.weights.h5"]
    unreadable = unreadable_file(backup + [best_path] * best_path.exists()) if resuming else None
    if unreadable is not None:
        resuming = False
        print(f"[{name}] {unreadable} cannot be read (a write cut short by a kill or a full disk): training this "
              "stage from the start.")  # fmt: skip
    if earlier is not None and not same_run and verbose:
        print(f"[{name}] an earlier run in {stage_dir} had other settings ({describe_changes(earlier, manifest)}): "
              "training this stage from the start.")  # fmt: skip
    if not resuming:
        _remove_stage_files(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomically(stage_dir / _MANIFEST_FILE, json.dumps(manifest, indent=1))
    if resuming:
        backed_up = _backed_up_epochs(backup_dir)
        _keep_history_before(log_path, initial_epoch if backed_up is None else backed_up)
    previous = read_history(log_path)
    best_index, best_so_far = _best_epoch(previous, monitor)
    epochs_since_best = previous["epoch"][-1] - best_index if previous and best_index >= 0 else 0
    elapsed_before = sum(previous.get("epoch_seconds", []))
    if resuming and verbose:
        print(f"[{name}] resuming after epoch {previous['epoch'][-1] + 1 if previous else initial_epoch}.")

    stage_callbacks = [
        *build_stage_callbacks(stage_dir, num_train_images, patience, monitor, best_so_far, epochs_since_best),
        *(callbacks or []),
    ]
    start = time.perf_counter()
    model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=stage_callbacks,
        shuffle=False,  # The training dataset shuffles itself, seeded.
        verbose=verbose,
    )
    # BackupAndRestore leaves the epoch it restored in `model._initial_epoch`, and Keras prefers that over
    # `initial_epoch`: clear it, or the next stage on this model would start at this stage's restored epoch.
    model._initial_epoch = None
    seconds = extra_seconds + elapsed_before + time.perf_counter() - start
    if best_path.exists():
        _load_best_weights(model, best_path)
    history = read_history(log_path)
    best_epoch, _ = _best_epoch(history, monitor)
    num_epochs = len(history.get("epoch", []))
    result = StageResult(name, history, seconds, num_train_images * num_epochs / max(seconds, 1e-9), best_epoch)
    write_text_atomically(result_path, json.dumps({"result": result.to_dict()}, indent=1))
    return result


def _remove_stage_files(stage_dir: Path) -> None:
    """Removes what an earlier, different run of a stage wrote; only files this module names."""
    names = [_RESULT_FILE, _BEST_WEIGHTS_FILE, _LOG_FILE, _MANIFEST_FILE]
    names += [PARTIAL_PREFIX + name for name in names]
    backup = ["latest.weights.h5", "training_metadata.json", "latest.weights.h5.bkp", "training_metadata.json.bkp"]
    folders = [stage_dir / name for name in (_BACKUP_DIR, PREVIOUS_BACKUP_DIR, PARTIAL_PREFIX + _BACKUP_DIR)]
    for path in [stage_dir / name for name in names] + [folder / name for folder in folders for name in backup]:
        path.unlink(missing_ok=True)
    for folder in folders:
        with contextlib.suppress(OSError):  # Left where it holds a file this module did not write.
            folder.rmdir()


def _load_best_weights(model: keras.Model, path: Path) -> None:
    """Loads a checkpoint's weights; its optimizer state, unused here, may not match the model's."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(path)


def _normalize(manifest: dict[str, object] | None) -> dict[str, object]:
    return json.loads(json.dumps(manifest or {}, default=str))


def _read_manifest(stage_dir: Path) -> dict[str, object] | None:
    try:
        return json.loads((stage_dir / _MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None


def _flatten(value: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, object] = {}
    for key, item in value.items():
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def describe_changes(before: dict[str, object], after: dict[str, object]) -> str:
    """Describes how two manifests differ, e.g. `"settings.scratch_learning_rate: 0.01 -> 0.05"`.

    Example:

    >>> describe_changes({"settings": {"epochs": 3, "seed": 1}}, {"settings": {"epochs": 5, "seed": 1}})
    'settings.epochs: 3 -> 5'
    """
    old, new = _flatten(before), _flatten(after)
    missing = object()
    changes = [
        f"{key}: {old.get(key, 'absent')} -> {new.get(key, 'absent')}"
        for key in dict.fromkeys([*old, *new])
        if old.get(key, missing) != new.get(key, missing)
    ]
    return "; ".join(changes) or "none"


def load_finished_stage(
    model: keras.Model,
    name: str,
    output_dir: str | Path,
    manifest: dict[str, object] | None = None,
    verbose: int = 1,
) -> StageResult | None:
    """Loads a stage that finished in an earlier run with an equal manifest.

    Args:
        model: The model the stage trained; it receives the best weights.
        name: The stage's name.
        output_dir: The study's output folder.
        manifest: What identifies the stage; see `train_stage`. Defaults to `None`.
        verbose: Say so when a finished stage is loaded. Defaults to `1`.

    Returns:
        The stage's `StageResult`, or `None` if it has not finished with these settings.
    """
    stage_dir = Path(output_dir) / name
    result_path, best_path = stage_dir / _RESULT_FILE, stage_dir / _BEST_WEIGHTS_FILE
    if not (result_path.exists() and best_path.exists()):
        return None
    if _read_manifest(stage_dir) != _normalize(manifest):
        return None
    unreadable = unreadable_file([result_path, best_path])
    result = _read_stage_result(result_path) if unreadable is None else None
    if result is None:
        print(f"[{name}] {unreadable or result_path} cannot be read (a write cut short by a kill or a full disk): "
              "training this stage again.")  # fmt: skip
        # Without its result the stage is unfinished: a second look (the cached-features head looks before
        # `train_stage` does) neither says it again nor trusts the file.
        with contextlib.suppress(OSError):
            result_path.unlink()
        return None
    _load_best_weights(model, best_path)
    if verbose:
        print(
            f"[{name}] finished in an earlier run: loaded its best weights from {best_path} "
            f"(delete {stage_dir} to train again)."
        )
    return result


def _read_stage_result(path: Path) -> StageResult | None:
    """Reads a stage's `result.json`, or returns `None` if it is not what `train_stage` writes.

    Valid JSON of another shape (`[1, 2, 3]`, `{}`, `null`, a field of another type) is as unreadable as a
    file cut short.
    """
    try:
        result = StageResult(**json.loads(path.read_text())["result"])
    except (OSError, ValueError, KeyError, TypeError):
        return None

    def number(value: object) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    history = result.history
    well_formed = (
        isinstance(result.name, str)
        and isinstance(history, dict)
        and isinstance(history.get("epoch"), list)
        and all(isinstance(values, list) and len(values) == len(history["epoch"]) for values in history.values())
        and all(number(value) for values in history.values() for value in values)
        and number(result.train_seconds)
        and number(result.images_per_second)
        and isinstance(result.best_epoch, int)
        and not isinstance(result.best_epoch, bool)
    )
    return result if well_formed else None
