"""Writing safely: one run at a time per output folder, and every file written whole or not at all.
The lock is an OS file lock, released when the process ends however it ends; its file stays in the folder (removing it
would race with a run taking it)."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import traceback
from collections.abc import Iterator
from pathlib import Path

import filelock

from catsdogs_helpers.errors import InputError, as_disk_full_error

LOCK_FILE = ".catsdogs.lock"
PARTIAL_PREFIX = ".partial-"
_held: dict[str, filelock.BaseFileLock] = {}


def lock_output_dir(output_dir: str | os.PathLike) -> Path:
    """Locks an existing output folder for this process (again: a no-op); returns the lock file's path, or raises
    `InputError` if another process holds the lock."""
    path = Path(output_dir).resolve() / LOCK_FILE
    key = str(path)
    if key in _held:
        return path
    lock = filelock.FileLock(key)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise InputError(
            f"Another run is writing into {output_dir} (it holds {path}; a notebook holds it until its kernel "
            "stops). Wait for that run to finish, or pass another output folder (--output on the command line, "
            f"OUTPUT_DIR in the notebook). Received: output_dir={str(output_dir)!r}"
        ) from None
    _held[key] = lock
    return path


def unlock_output_dir(output_dir: str | os.PathLike) -> None:
    """Releases the output folder's lock if this process holds it."""
    lock = _held.pop(str(Path(output_dir).resolve() / LOCK_FILE), None)
    if lock is not None:
        lock.release()


@contextlib.contextmanager
def written_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path` (`.partial-NAME`, same suffix) to write a file or a folder to, renamed
    to `path` if the block wrote it (a folder only where `path` does not exist): a kill leaves the old file or none.

    Raises:
        DiskFullError: If the disk is full, over quota or read-only; `path` is left as it was.
    """
    path = Path(path)
    temporary = path.with_name(f"{PARTIAL_PREFIX}{path.name}")
    try:
        _remove(temporary)
        yield temporary
        if temporary.exists():
            os.replace(temporary, path)
    except BaseException as error:
        disk_full = as_disk_full_error(error, path) if isinstance(error, Exception) else None
        if disk_full is not None:
            _release_space(temporary, error)
        with contextlib.suppress(OSError):  # On a read-only disk there is nothing to remove.
            _remove(temporary)
        if disk_full is not None and disk_full is not error:
            raise disk_full from error
        raise


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Writes a text file whole or not at all (see `written_atomically`); returns its path."""
    with written_atomically(path) as temporary:
        temporary.write_text(text)
    return Path(path)


def _release_space(temporary: Path, error: BaseException) -> None:
    """Empties what a write cut short by a full disk wrote, then frees the writer's objects the error still holds
    (h5py writes when it closes a file: on a disk still full it fails, and can crash the interpreter at exit)."""
    files = [temporary] if temporary.is_file() else [item for item in temporary.rglob("*") if item.is_file()]
    for file in files:
        with contextlib.suppress(OSError):
            os.truncate(file, 0)
    while error is not None:
        traceback.clear_frames(error.__traceback__)  # Frames still running are left as they are.
        error = error.__cause__ or error.__context__
    gc.collect()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
