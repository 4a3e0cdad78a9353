"""Training stages: best-weights checkpoints, early stopping, resuming, timing.

A stage is one call of `model.fit` with its own folder under the output
directory. It keeps its best validation epoch's weights, stops early, and
after a disconnect or Ctrl-C continues from the last finished epoch
(`BackupAndRestore`) with its history and early-stopping count; once finished
it is loaded instead of trained again. An earlier run's files are reused or
resumed only when their manifest matches; otherwise the stage says what
changed and starts afresh. The folder's files are `stage_files.py`'s.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catsdogs_helpers.checkpoints import AtomicBackupAndRestore, AtomicModelCheckpoint, recover_backup, unreadable_file
from catsdogs_helpers.output_lock import write_text_atomically
from catsdogs_helpers.stage_files import (
    BACKUP_DIR,
    BEST_WEIGHTS_FILE,
    LOG_FILE,
    MANIFEST_FILE,
    RESULT_FILE,
    StageResult,
    backed_up_epochs,
    describe_changes,
    keep_history_before,
    load_best_weights,
    load_finished_stage,
    normalize_manifest,
    read_history,
    read_manifest,
    remove_stage_files,
)


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
    """Keras' `EarlyStopping`, started from the state an interrupted run had reached (not a fresh `patience`).

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
    2. `CSVLogger` appends each epoch's logs to `history.csv`;
    3. `AtomicModelCheckpoint` keeps the best epoch's weights by `monitor`;
    4. `ResumableEarlyStopping` stops after `patience` epochs without improvement;
    5. `AtomicBackupAndRestore` saves the model and optimizer after every epoch.

    Steps 3 to 5 start from an interrupted earlier run's state; 3 and 5 write
    whole files or none.

    Args:
        num_train_images: Training images per epoch.
        patience: Epochs without improvement before stopping.
        monitor: Validation value to minimize.
        best_so_far: Best `monitor` value of earlier epochs of this stage (`math.inf`: none).
        epochs_since_best: Earlier epochs of this stage since that best value.

    Returns:
        The callbacks, for `model.fit(..., callbacks=...)`.
    """
    return [
        EpochTimer(num_train_images),
        keras.callbacks.CSVLogger(str(stage_dir / LOG_FILE), append=True),
        AtomicModelCheckpoint(
            str(stage_dir / BEST_WEIGHTS_FILE),
            monitor=monitor,
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_so_far if math.isfinite(best_so_far) else None,
        ),
        ResumableEarlyStopping(best_so_far, epochs_since_best, monitor=monitor, patience=patience),
        AtomicBackupAndRestore(str(stage_dir / BACKUP_DIR)),
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
        name: Name of the stage; its files go to `output_dir/name/`.
        epochs: Index of the epoch to stop before (as in `model.fit`).
        num_train_images: Training images per epoch, for the images/s figures.
        initial_epoch: First epoch's index; a fine-tuning stage continues the
            previous stage's epochs.
        patience: Epochs without improvement before stopping.
        monitor: Validation value to minimize.
        manifest: What identifies the stage (JSON-serializable). An earlier
            run's files are reused (finished) or resumed (interrupted) only when
            its manifest is equal; otherwise the differences are printed and the
            stage starts afresh.
        extra_seconds: Seconds of preparation to count as training time (such
            as computing cached features).
        callbacks: More callbacks, run after the stage's own.
        verbose: `model.fit` verbosity: 0 silent, 1 a progress bar, 2 one line per epoch.

    Returns:
        A `StageResult`. The model holds the best epoch's weights.
    """
    finished = load_finished_stage(model, name, output_dir, manifest, verbose)
    if finished is not None:
        return finished
    stage_dir = Path(output_dir) / name
    result_path = stage_dir / RESULT_FILE
    best_path = stage_dir / BEST_WEIGHTS_FILE
    log_path = stage_dir / LOG_FILE
    backup_dir = stage_dir / BACKUP_DIR
    manifest = normalize_manifest(manifest)

    earlier = read_manifest(stage_dir)
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
        remove_stage_files(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomically(stage_dir / MANIFEST_FILE, json.dumps(manifest, indent=1))
    if resuming:
        backed_up = backed_up_epochs(backup_dir)
        keep_history_before(log_path, initial_epoch if backed_up is None else backed_up)
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
        load_best_weights(model, best_path)
    history = read_history(log_path)
    best_epoch, _ = _best_epoch(history, monitor)
    num_epochs = len(history.get("epoch", []))
    result = StageResult(name, history, seconds, num_train_images * num_epochs / max(seconds, 1e-9), best_epoch)
    write_text_atomically(result_path, json.dumps({"result": result.to_dict()}, indent=1))
    return result
