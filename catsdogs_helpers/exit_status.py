"""How the command line ends: its exit statuses, failures in one line, and closed or full outputs."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import traceback

from catsdogs_helpers.errors import InputError, as_disk_full_error

# The exit statuses besides 0 (done), which each README lists.
EXIT_UNREADABLE_PHOTOS = 1  # Some photos given to `predict` could not be read.
EXIT_USER_ERROR = 2  # Bad input, said in one line; a full, over-quota or read-only disk included.
EXIT_BUG = 70  # sysexits.h's EX_SOFTWARE: a bug, with its traceback.
EXIT_WRITE_FAILED = 74  # sysexits.h's EX_IOERR: the standard output could not be written for another reason.
EXIT_INTERRUPTED = 130  # Ctrl-C; the same command resumes.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # The output was a pipe that closed early (`catsdogs predict | head -1`).
ISSUES_HINT = "This is a bug: please report it with the traceback above and the command you ran."


def fill_closed_standard_streams() -> None:
    """Points a closed standard output or error (`>&-`, `2>&-`) at the null device, so that no file opened later
    takes descriptor 1 or 2 (where C++ libraries write). `sys.stdout` stays `None`: its first write fails (exit 74)."""
    for descriptor, name in ((1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is not None:
            continue
        try:
            os.fstat(descriptor)
        except OSError:
            null = os.open(os.devnull, os.O_WRONLY)
            if null != descriptor:
                os.dup2(null, descriptor)
                os.close(null)
        if name == "stderr":
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)


def report_failure(error: Exception) -> int:
    """Prints bad input or a full disk in one line (exit 2), another failed write of the standard output in one line
    (exit 74), anything else, a bug, with its traceback (exit 70); returns the exit status."""
    disk_full = as_disk_full_error(error) if not isinstance(error, InputError) else None
    if isinstance(error, OSError) and error.filename == StandardOutput.NAME:
        discard_standard_output()
        print(f"error: {disk_full or f'Cannot write {error.filename}: {error.strerror}'}", file=sys.stderr)
        return EXIT_USER_ERROR if disk_full else EXIT_WRITE_FAILED
    if isinstance(error, InputError) or disk_full is not None:
        print(f"error: {' '.join(str(disk_full or error).split())}", file=sys.stderr)
        return EXIT_USER_ERROR
    traceback.print_exc()
    print(f"\n{ISSUES_HINT}", file=sys.stderr)
    return EXIT_BUG


class StandardOutput:
    """`sys.stdout`, whose failed writes name it: an `OSError` from `print` does not say where it wrote."""

    NAME = "the standard output"

    def __init__(self, stream) -> None:
        self.stream = stream

    def __getattr__(self, name: str):
        return getattr(self.stream, name)

    def write(self, text: str) -> int:
        if self.stream is None:  # Closed by the shell (`>&-`).
            raise OSError(errno.EBADF, os.strerror(errno.EBADF), self.NAME)
        try:
            return self.stream.write(text)
        except OSError as error:
            error.filename = error.filename or self.NAME
            raise

    def flush(self) -> None:
        if self.stream is None:
            return
        try:
            self.stream.flush()
        except OSError as error:
            error.filename = error.filename or self.NAME
            raise


def discard_standard_output() -> None:
    """Points standard output at the null device, so that Python's flush at exit fails no more."""
    if getattr(sys.stdout, "stream", sys.stdout) is None:  # Closed: nothing to discard.
        return
    null = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):  # A standard output without a file descriptor (a test's).
        os.dup2(null, sys.stdout.fileno())
    os.close(null)
