"""The exceptions that mean "fix your input", as opposed to a bug.

The command line prints these as one line and exits with status 2; any other
exception keeps its traceback, because it is a bug (ours, or a library's).
Both subclass the built-in exceptions that code catching errors expects, so
`except ValueError` and `except FileNotFoundError` still work.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user: a setting, a data folder, a weights or model file.

    The message says what was received, what was expected and how to fix it.

    Example:

    >>> raise InputError("Invalid setting `batch_size`: expected an integer >= 1. Received: batch_size=0")
    Traceback (most recent call last):
    ...
    catsdogs_helpers.errors.InputError: Invalid setting `batch_size`: expected an integer >= 1. Received: batch_size=0
    """


class MissingInputError(InputError, FileNotFoundError):
    """A file or folder the user named does not exist (or cannot be read)."""


class DataUnavailableError(InputError, RuntimeError):
    """The data named cannot be fetched (no network, its server down); the message says how to get it by hand.

    An `InputError`, because the fix is another input (a folder of photos), and a `RuntimeError`, because
    nothing the user typed was wrong.
    """


class StudyInterrupted(KeyboardInterrupt):
    """The study was interrupted (Ctrl-C); its message says where, and that rerunning resumes.

    Args:
        stage: The stage that was running, e.g. `"scratch"`.
        finished_epochs: Epochs of that stage that had finished and were saved,
            or `None` for a stage without epochs.
        output_dir: The study's output folder.
    """

    def __init__(self, stage: str, finished_epochs: int | None, output_dir: str) -> None:
        self.stage, self.finished_epochs, self.output_dir = stage, finished_epochs, output_dir
        where = f"the {stage} stage"
        if finished_epochs == 0:
            where += " before its first epoch finished"
        elif finished_epochs is not None:
            where += f" after {finished_epochs} finished epoch{'s' * (finished_epochs != 1)} (saved in {output_dir})"
        super().__init__(f"Interrupted during {where}; run the same command again to resume from there.")
