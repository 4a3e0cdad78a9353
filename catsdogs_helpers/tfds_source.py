"""TensorFlow Datasets' `cats_vs_dogs`, loaded undecoded, failing within seconds when it cannot be downloaded."""

from __future__ import annotations

import socket
import threading

import tensorflow as tf

from catsdogs_helpers.errors import DataUnavailableError

TFDS_NAME = "cats_vs_dogs"
DOWNLOAD_HOST = "download.microsoft.com"
DOWNLOAD_URL = (
    "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip"
)
HOST_TIMEOUT_SECONDS = 10.0
_BY_HAND = (
    f"To run without TensorFlow Datasets, download {DOWNLOAD_URL} by hand (about 800 MB), unzip it, and pass "
    "its PetImages folder (Cat/ and Dog/ inside; its empty and broken files are skipped and listed): "
    "`--data path/to/PetImages` on the command line, DATA = 'path/to/PetImages' in the notebook. Any folder "
    "with one sub-folder of photos per class works the same way."
)


def load_cats_vs_dogs(slices: list[str], data_dir: str | None = None) -> list[tf.data.Dataset]:
    """Loads slices of `cats_vs_dogs` (e.g. `"train[:80%]"`), preparing it first if needed.

    tfds retries a download for minutes, so its prepared copy is tried first, then the host (`check_download_host`).

    Returns:
        One dataset per slice, of `{"image": encoded bytes, "label": int64, "image/filename": bytes}`.

    Raises:
        DataUnavailableError: (an `InputError` and `RuntimeError`) If tfds cannot download or prepare the dataset;
            the message says how to get the photos by hand.
    """
    import tensorflow_datasets as tfds

    options = dict(split=slices, shuffle_files=False, data_dir=data_dir, decoders={"image": tfds.decode.SkipDecoding()})
    try:
        return tfds.load(TFDS_NAME, download=False, **options)
    except Exception:  # Not prepared yet (the exception's type differs across tfds versions).
        pass
    reason = check_download_host()
    if reason is not None:
        raise DataUnavailableError(
            f"TensorFlow Datasets has no prepared copy of {TFDS_NAME!r} and cannot download it: {reason}. "
            f"{_BY_HAND} Received: data='tfds'"
        )
    try:
        return tfds.load(TFDS_NAME, download=True, **options)
    except Exception as error:
        raise DataUnavailableError(
            f"TensorFlow Datasets could not download or prepare {TFDS_NAME!r}: {type(error).__name__}: {error}. "
            f"{_BY_HAND} Received: data='tfds'"
        ) from error


def check_download_host(host: str = DOWNLOAD_HOST, timeout: float = HOST_TIMEOUT_SECONDS) -> str | None:
    """Returns why `host` cannot be reached on port 443 within `timeout` seconds, or `None` if it answers."""
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            outcome.append(None)
        except OSError as error:
            outcome.append(f"{host} does not answer ({type(error).__name__}: {error})")

    thread = threading.Thread(target=connect, daemon=True)  # A socket's timeout does not bound the name lookup.
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"{host} did not answer within {timeout:.0f} s"
