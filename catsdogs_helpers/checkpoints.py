"""Checkpoints written whole: a training stage's best weights and its per-epoch backup.

Keras's `ModelCheckpoint` and `BackupAndRestore` rewrite their files in place, so a
kill or a full disk mid-write leaves files no rerun can load. The callbacks here
write through `output_lock.written_atomically`; `recover_backup` and
`unreadable_file` are what a stage reads before it resumes, so anything still
unreadable is treated as unfinished work.
"""

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
    """Keras' `BackupAndRestore`, whose backup (weights and epoch) is replaced whole after every epoch.

    Keras writes `latest.weights.h5` and `training_metadata.json` in place, one after the other, and its
    `double_checkpoint` does not cover a cut epoch file nor a mismatched pair. Here the new backup is
    written into a new folder; the last one moves aside to `backup.previous` while it is renamed into
    place, then is removed (`recover_backup` brings it back after a kill in between). Overrides
    `_save_model`, the method Keras 3.9 to 3.15 call after each epoch.
    """

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
    """`h5py.File`, which, opened with mode "w" on the path given, builds the file in memory and writes it at close.

    When HDF5's own writes fail (a full disk), h5py leaves its objects half closed and the next close, or the
    interpreter's exit, crashes (segmentation fault). Built in memory (HDF5's "core" driver), the file reaches
    the disk in one ordinary Python write, whose failure is an `OSError` like any other.
    """

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
    """Inside, the HDF5 file `path` (a `.weights.h5` Keras writes) is built in memory and written whole at its close.

    A full disk then fails one Python write, which `written_atomically` turns into a `DiskFullError` (see
    `_FileWrittenFromMemory`). Keras opens the file through `h5py.File(path, mode="w")` in every Keras 3
    release: that name is pointed at the class above while the block runs, and only for `path`.
    """
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


def _readable_weights(path: Path) -> bool:
    """Whether an HDF5 weights file reads through to its last value (one cut short by a kill or full disk does not)."""

    def read(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset):
            item[()]

    try:
        with h5py.File(path, "r") as file:
            file.visititems(read)
    except (OSError, RuntimeError, ValueError, KeyError):
        return False
    return True


def _backup_metadata(value: object) -> bool:
    """Whether a backup's `training_metadata.json` holds what Keras reads from it: a whole, non-negative epoch."""
    epoch = value.get("epoch") if isinstance(value, dict) else None
    return isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0


# What a JSON file this package reads back must hold, by name; valid JSON of another shape is unreadable too.
_JSON_SHAPES = {"training_metadata.json": _backup_metadata}


def unreadable_file(paths: list[Path]) -> Path | None:
    """Returns the first of some files that is missing or cannot be read through (JSON or HDF5), or `None`.

    A JSON file of the wrong shape (`[1, 2, 3]`, `{}`, `null`, a non-integer epoch) counts as unreadable.
    """
    for path in paths:
        if path.suffix == ".h5":
            if not _readable_weights(path):
                return path
            continue
        try:
            value = json.loads(path.read_text())
        except (OSError, ValueError):
            return path
        if not _JSON_SHAPES.get(path.name, lambda value: True)(value):
            return path
    return None
