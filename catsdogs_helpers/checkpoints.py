"""Checkpoints written whole, so that a kill or a full disk mid-write leaves no file a rerun cannot load."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import h5py
import keras

from catsdogs_helpers.output_lock import written_atomically

PREVIOUS_BACKUP_DIR = "backup.previous"


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """Keras' `ModelCheckpoint` (weights only), written under a temporary name and renamed over the last."""

    def __init__(self, filepath: str, **kwargs: object) -> None:
        super().__init__(filepath, **kwargs)
        self._final_path = self.filepath

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        with written_atomically(self._final_path) as temporary, hdf5_written_from_memory(temporary):
            self.filepath = str(temporary)
            try:
                super().on_epoch_end(epoch, logs)
            finally:
                self.filepath = self._final_path


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' `BackupAndRestore`, whose backup (weights and epoch) is replaced whole after every epoch: the new backup
    is written into a new folder; the last one waits in `backup.previous` until it is in place (`recover_backup`).
    Overrides `_save_model`, which Keras 3.9 to 3.15 call after each epoch."""

    def _save_model(self) -> None:
        backup = Path(self.backup_dir)
        previous = backup.with_name(PREVIOUS_BACKUP_DIR)
        shutil.rmtree(previous, ignore_errors=True)
        if backup.exists():
            os.replace(backup, previous)
        with written_atomically(backup) as folder:
            folder.mkdir(parents=True)
            with hdf5_written_from_memory(folder / "latest.weights.h5"):
                self.model.save_weights(str(folder / "latest.weights.h5"))
            metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
            (folder / "training_metadata.json").write_text(json.dumps(metadata))
        shutil.rmtree(previous, ignore_errors=True)


class _FileWrittenFromMemory(h5py.File):
    """`h5py.File`, which, opened with mode "w" on `target`, builds the file in memory and writes it at close: a full
    disk failing HDF5's own writes crashes the interpreter later; one Python write raises `OSError`."""

    def __init__(self, name: object, mode: str = "r", *args: object, target: str = "", **kwargs: object) -> None:
        self._target = None
        named = isinstance(name, (str, os.PathLike)) and os.path.abspath(name) == target
        if mode == "w" and named and not args and not kwargs:
            self._target = target
            super().__init__(target, "w", driver="core", backing_store=False)
            return
        super().__init__(name, mode, *args, **kwargs)

    def close(self) -> None:
        if self._target is None or not self.id.valid:
            super().close()
            return
        self.flush()
        image = self.id.get_file_image()
        super().close()
        with open(self._target, "wb") as file:
            file.write(image)


@contextlib.contextmanager
def hdf5_written_from_memory(path: str | os.PathLike) -> Iterator[None]:
    """Inside, the HDF5 file `path` that Keras writes (through `h5py.File(path, "w")`) is built in memory."""
    real, target = h5py.File, os.path.abspath(path)

    def open_file(name: object, mode: str = "r", *args: object, **kwargs: object) -> h5py.File:
        return _FileWrittenFromMemory(name, mode, *args, target=target, **kwargs)

    h5py.File = open_file
    try:
        yield
    finally:
        h5py.File = real


def recover_backup(backup_dir: Path) -> None:
    """Brings the last backup back if a kill came while the next one replaced it (see `AtomicBackupAndRestore`)."""
    previous = backup_dir.with_name(PREVIOUS_BACKUP_DIR)
    if previous.is_dir() and not backup_dir.exists():
        os.replace(previous, backup_dir)


def _readable(path: Path) -> bool:
    """Whether a weights (HDF5) or JSON file reads through; a backup's metadata must hold a whole epoch >= 0."""

    def read(name: str, item: object) -> None:  # Returns None, or `visititems` would stop.
        if isinstance(item, h5py.Dataset):
            item[()]

    try:
        if path.suffix == ".h5":
            with h5py.File(path, "r") as file:
                file.visititems(read)
            return True
        value = json.loads(path.read_text())
    except (OSError, RuntimeError, ValueError, KeyError):
        return False
    epoch = value.get("epoch") if isinstance(value, dict) else None
    whole_epoch = isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0
    return path.name != "training_metadata.json" or whole_epoch


def unreadable_file(paths: list[Path]) -> Path | None:
    """Returns the first of some files that is missing or cannot be read through (JSON or HDF5), or `None`."""
    return next((path for path in paths if not _readable(path)), None)
