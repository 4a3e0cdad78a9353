"""The exceptions that mean "fix your input", which the command line prints in one line (exit 2), unlike a bug.
They subclass the built-in exceptions callers expect (`except ValueError`, `except FileNotFoundError` still work)."""

from __future__ import annotations

import errno
import os
import re


class InputError(ValueError):
    """Bad input from the user (a setting, a data folder, a weights or model file); the message says what was
    received, what was expected and how to fix it."""


class MissingInputError(InputError, FileNotFoundError):
    """A file or folder the user named does not exist (or cannot be read)."""


class DataUnavailableError(InputError, RuntimeError):
    """The data named cannot be fetched (no network, its server down); the message says how to get it by hand."""


class DiskFullError(InputError, OSError):
    """A file could not be written: its disk is full, over quota or read-only (see `as_disk_full_error`)."""


# errno codes, and the texts TensorFlow's and HDF5's errors carry instead of an errno.
_DISK_ERRORS = {code: os.strerror(code) for code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EROFS)}


def as_disk_full_error(error: BaseException, path: str | os.PathLike | None = None) -> DiskFullError | None:
    """Returns a one-line `DiskFullError` for an error that says the disk is full, or `None` for any other error.

    `OSError`s are recognized by errno (ENOSPC, EDQUOT, EROFS), TensorFlow's and h5py's errors by the system's
    message in their text. `path` is what was being written (`None`: the file the error names, if any).

    >>> print(as_disk_full_error(OSError(28, "No space left on device"), "out/result.json"))
    Cannot write out/result.json: No space left on device (ENOSPC). Free some space (or write elsewhere) and run \
the same command again: the work already saved is kept.
    """
    if isinstance(error, DiskFullError):
        return error
    code = getattr(error, "errno", None)
    text = str(error)
    found = code if code in _DISK_ERRORS else next((c for c, m in _DISK_ERRORS.items() if m in text), None)
    if found is None:
        return None
    where = path if path is not None else getattr(error, "filename", None) or _folder_named_in(text)
    target = f"Cannot write {where}" if where else "Cannot write a file"
    fix = "Write elsewhere" if found == errno.EROFS else "Free some space (or write elsewhere)"
    return DiskFullError(
        f"{target}: {_DISK_ERRORS[found]} ({errno.errorcode[found]}). {fix} and run the same command again: the "
        "work already saved is kept."
    )


def _folder_named_in(text: str) -> str | None:
    """The folder of the file a TensorFlow or h5py error names (`/a/b/file; No space ...`, `filename = '/a/b/file'`)."""
    found = re.search(r"filename = '([^']+)'", text) or re.search(r"(\S+/\S+); [A-Z][a-z]+", text)
    return os.path.dirname(found.group(1)) if found else None


class StudyInterrupted(KeyboardInterrupt):
    """The study was interrupted (Ctrl-C) during `stage` after `finished_epochs` saved epochs (`None`: a stage
    without epochs); its message says where, and that rerunning resumes."""

    def __init__(self, stage: str, finished_epochs: int | None, output_dir: str) -> None:
        self.stage, self.finished_epochs, self.output_dir = stage, finished_epochs, output_dir
        where = f"the {stage} stage"
        if finished_epochs == 0:
            where += " before its first epoch finished"
        elif finished_epochs is not None:
            where += f" after {finished_epochs} finished epoch{'s' * (finished_epochs != 1)} (saved in {output_dir})"
        super().__init__(f"Interrupted during {where}; run the same command again to resume from there.")
