"""One run at a time per output folder: a lock that a dead process does not hold.

Two runs writing into the same folder would overwrite each other's checkpoints
and resume each other's stages. The lock is an OS file lock (`filelock`,
`fcntl.flock` on Linux and macOS): the operating system releases it when the
process that holds it ends, however it ends, so a killed run never leaves a
folder locked. The lock file, `.catsdogs.lock`, stays in the folder (removing
it would race with a run taking it); it holds nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import filelock

from catsdogs_helpers.errors import InputError

LOCK_FILE = ".catsdogs.lock"
_held: dict[str, filelock.BaseFileLock] = {}


def lock_output_dir(output_dir: str | os.PathLike) -> Path:
    """Takes the output folder's lock for this process, until `unlock_output_dir` or the process ends.

    Taking it again in the same process (a notebook rerunning its cells) is a no-op.

    Args:
        output_dir: The output folder; it must exist.

    Returns:
        The lock file's path.

    Raises:
        InputError: If another process holds the lock (a `ValueError`).
    """
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
