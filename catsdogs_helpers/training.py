"""Training stages that keep their best weights, stop early, resume after an interruption, and time themselves.
A stage is one `model.fit` with its own folder under the output directory (see `stage_files.py`)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catsdogs_helpers.checkpoints import AtomicBackupAndRestore, AtomicModelCheckpoint
from catsdogs_helpers.output_lock import write_text_atomically
from catsdogs_helpers.stage_files import (
    BACKUP_DIR,
    BEST_WEIGHTS_FILE,
    LOG_FILE,
    RESULT_FILE,
    StageResult,
    load_best_weights,
    load_finished_stage,
    prepare_stage_dir,
    read_history,
)


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` and `train_images_per_second` (validation excluded) to each epoch's logs."""

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
    """Keras' `EarlyStopping`, starting from an interrupted run's best value and wait (`best=math.inf`: none)."""

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
    """Builds a stage's callbacks in the order they must run: timer, CSV log, best weights, early stop, backup.

    Args:
        best_so_far: Best `monitor` value of this stage's earlier epochs (`math.inf`: none).
        epochs_since_best: This stage's earlier epochs since that best value.
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
    """Trains a compiled model for one stage in `output_dir/name/`, resumably; the model ends with its best weights.

    Args:
        epochs: Index of the epoch to stop before (as in `model.fit`).
        initial_epoch: First epoch's index; a fine-tuning stage continues the previous stage's epochs.
        manifest: What identifies the stage (JSON-serializable). An earlier run's files are reused or resumed
            only when its manifest is equal; otherwise the differences are printed and the stage starts afresh.
        extra_seconds: Seconds of preparation (such as computing cached features) counted as training time.
        callbacks: More callbacks, run after the stage's own.
    """
    finished = load_finished_stage(model, name, output_dir, manifest, verbose)
    if finished is not None:
        return finished
    stage_dir = Path(output_dir) / name
    previous = prepare_stage_dir(name, stage_dir, manifest, initial_epoch, verbose)
    best_index, best_so_far = _best_epoch(previous, monitor)
    epochs_since_best = previous["epoch"][-1] - best_index if previous and best_index >= 0 else 0
    elapsed_before = sum(previous.get("epoch_seconds", []))

    own_callbacks = build_stage_callbacks(
        stage_dir, num_train_images, patience, monitor, best_so_far, epochs_since_best
    )
    start = time.perf_counter()
    model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=[*own_callbacks, *(callbacks or [])],
        shuffle=False,  # The training dataset shuffles itself, seeded.
        verbose=verbose,
    )
    # BackupAndRestore leaves the epoch it restored in `model._initial_epoch`, which Keras prefers over
    # `initial_epoch`: cleared, or the next stage on this model would start at this stage's restored epoch.
    model._initial_epoch = None
    seconds = extra_seconds + elapsed_before + time.perf_counter() - start
    if (stage_dir / BEST_WEIGHTS_FILE).exists():
        load_best_weights(model, stage_dir / BEST_WEIGHTS_FILE)
    history = read_history(stage_dir / LOG_FILE)
    images_per_second = num_train_images * len(history.get("epoch", [])) / max(seconds, 1e-9)
    result = StageResult(name, history, seconds, images_per_second, _best_epoch(history, monitor)[0])
    write_text_atomically(stage_dir / RESULT_FILE, json.dumps({"result": result.to_dict()}, indent=1))
    return result
