"""Training stages: best-weights checkpoints, early stopping, resuming, timing.

A stage is one call of `model.fit` with its own folder under the output
directory. It keeps the weights of its best validation epoch, stops early when
validation stops improving, and survives interruptions: rerun the same code
after a Colab disconnect or Ctrl-C and it continues from the last finished
epoch (Keras' `BackupAndRestore`); rerun it after it finished and it loads the
result instead of training again.
"""

from __future__ import annotations

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

_RESULT_FILE = "result.json"
_BEST_WEIGHTS_FILE = "best.weights.h5"
_LOG_FILE = "history.csv"


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


def read_history(path: str | Path) -> dict[str, list[float]]:
    """Reads a `CSVLogger` file into `{"epoch": [...], "loss": [...], ...}`."""
    history: dict[str, list[float]] = {}
    path = Path(path)
    if not path.exists():
        return history
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            for key, value in row.items():
                history.setdefault(key, []).append(int(value) if key == "epoch" else float(value))
    return history


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
) -> list[keras.callbacks.Callback]:
    """Builds the callbacks of one training stage, in the order they must run.

    1. `EpochTimer` adds each epoch's seconds and training images/s to the logs;
    2. `CSVLogger` appends each epoch's logs to `history.csv` (the stage's history,
       across interruptions);
    3. `ModelCheckpoint` keeps the weights of the best epoch by `monitor`
       (validation loss by default), starting from the best value of an
       interrupted earlier run;
    4. `EarlyStopping` ends the stage after `patience` epochs without improvement;
    5. `BackupAndRestore` saves the model and optimizer after every epoch, so that
       rerunning an interrupted stage continues from its last finished epoch.

    Args:
        stage_dir: The stage's folder.
        num_train_images: Training images per epoch.
        patience: Epochs without improvement before stopping. Defaults to `8`.
        monitor: Validation value to minimize. Defaults to `"val_loss"`.
        best_so_far: Best `monitor` value of earlier epochs of this stage.
            Defaults to `math.inf` (none).

    Returns:
        The callbacks, for `model.fit(..., callbacks=...)`.
    """
    return [
        EpochTimer(num_train_images),
        keras.callbacks.CSVLogger(str(stage_dir / _LOG_FILE), append=True),
        keras.callbacks.ModelCheckpoint(
            str(stage_dir / _BEST_WEIGHTS_FILE),
            monitor=monitor,
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_so_far if math.isfinite(best_so_far) else None,
        ),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=patience),
        keras.callbacks.BackupAndRestore(str(stage_dir / "backup")),
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
    fingerprint: dict[str, object] | None = None,
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
        fingerprint: Settings that identify the stage; a finished stage is only
            reused when they match. Defaults to `None`.
        extra_seconds: Seconds of preparation to count as training time (such
            as computing cached features). Defaults to `0.0`.
        callbacks: More callbacks, run after the stage's own (which write the
            epoch's backup first). Defaults to `None`.
        verbose: `model.fit` verbosity: 0 silent, 1 a progress bar, 2 one line
            per epoch. Defaults to `2`.

    Returns:
        A `StageResult`. The model holds the best epoch's weights.
    """
    finished = load_finished_stage(model, name, output_dir, fingerprint, verbose)
    if finished is not None:
        return finished
    stage_dir = Path(output_dir) / name
    result_path = stage_dir / _RESULT_FILE
    best_path = stage_dir / _BEST_WEIGHTS_FILE
    log_path = stage_dir / _LOG_FILE
    backup_dir = stage_dir / "backup"

    resuming = backup_dir.exists() and log_path.exists()
    if not resuming:
        _remove_stage_files(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    previous = read_history(log_path)
    _, best_so_far = _best_epoch(previous, monitor)
    elapsed_before = sum(previous.get("epoch_seconds", []))
    if resuming and verbose:
        print(f"[{name}] resuming after epoch {previous['epoch'][-1] + 1 if previous else initial_epoch}.")

    stage_callbacks = [
        *build_stage_callbacks(stage_dir, num_train_images, patience, monitor, best_so_far),
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
    saved = {"fingerprint": _normalize(fingerprint), "result": result.to_dict()}
    result_path.write_text(json.dumps(saved, indent=1))
    return result


def _remove_stage_files(stage_dir: Path) -> None:
    """Removes what an earlier, different run of a stage wrote; only files this module names."""
    names = [_RESULT_FILE, _BEST_WEIGHTS_FILE, _LOG_FILE]
    backup = ["latest.weights.h5", "training_metadata.json", "latest.weights.h5.bkp", "training_metadata.json.bkp"]
    for path in [stage_dir / name for name in names] + [stage_dir / "backup" / name for name in backup]:
        path.unlink(missing_ok=True)


def _load_best_weights(model: keras.Model, path: Path) -> None:
    """Loads a checkpoint's weights; its optimizer state, unused here, may not match the model's."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(path)


def _normalize(fingerprint: dict[str, object] | None) -> dict[str, object]:
    return json.loads(json.dumps(fingerprint or {}, default=str))


def load_finished_stage(
    model: keras.Model,
    name: str,
    output_dir: str | Path,
    fingerprint: dict[str, object] | None = None,
    verbose: int = 1,
) -> StageResult | None:
    """Loads a stage that finished in an earlier run with the same settings.

    Args:
        model: The model the stage trained; it receives the best weights.
        name: The stage's name.
        output_dir: The study's output folder.
        fingerprint: The stage's settings; see `train_stage`. Defaults to `None`.
        verbose: Say so when a finished stage is loaded. Defaults to `1`.

    Returns:
        The stage's `StageResult`, or `None` if it has not finished with these settings.
    """
    stage_dir = Path(output_dir) / name
    result_path, best_path = stage_dir / _RESULT_FILE, stage_dir / _BEST_WEIGHTS_FILE
    if not (result_path.exists() and best_path.exists()):
        return None
    saved = json.loads(result_path.read_text())
    if saved.get("fingerprint") != _normalize(fingerprint):
        return None
    _load_best_weights(model, best_path)
    if verbose:
        print(
            f"[{name}] finished in an earlier run: loaded its best weights from {best_path} "
            f"(delete {stage_dir} to train again)."
        )
    return StageResult(**saved["result"])
