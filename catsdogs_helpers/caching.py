"""Decoding each split once into a cache, in memory or in files that a killed run cannot leave half-written.
A file cache's name holds a key of the split's exact content, the image size and the decoder's version, so a changed
folder or a new decoder never reuses a stale cache."""

from __future__ import annotations

import glob
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catsdogs_helpers.decoding import DECODER_VERSION
from catsdogs_helpers.digests import hash_json
from catsdogs_helpers.photos import SkippedFile
from catsdogs_helpers.runtime import choose_verbosity


def content_key(cache_keys: dict[str, str]) -> str:
    """Returns one digest of every split's content key and the decoder's version."""
    return hash_json({"splits": cache_keys, "decoder": DECODER_VERSION})


def describe_files(files: list[tuple[str, int]]) -> str:
    """Returns a key that changes when any file of the `(path, label)` list is added, removed or modified."""
    return hash_json([(os.path.abspath(path), label, _file_state(path)) for path, label in files])


def _file_state(path: str) -> object:
    try:
        status = os.stat(path)
    except OSError as error:  # A broken link or unreadable file: skipped when decoded, but keyed too.
        return type(error).__name__
    return [status.st_size, status.st_mtime_ns]


def cache_usable(
    raw: tf.data.Dataset,
    split: str,
    class_names: Sequence[str],
    image_size: int,
    verbose: bool,
    cache_dir: str | os.PathLike | None = None,
    key: str = "",
) -> tuple[tf.data.Dataset, dict[str, int], list[SkippedFile]]:
    """Decodes `(image, label, error, path)` elements once into a cache and keeps the usable ones.

    Args:
        cache_dir: Folder of the file cache, or `None` for memory.
        key: Names exactly which photos `raw` holds (see `describe_files`).

    Returns:
        `(dataset, counts, skipped)`: the error-free `(image, label)` pairs, photos per class, the files with an error.
    """
    cache_path = _cache_file_name(cache_dir, split, image_size, key)
    if cache_path and not os.path.exists(cache_path + ".index"):  # Its index is renamed into place last.
        _remove_stale_partial_caches(cache_path)
        partial = f"{cache_path}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        counts, bad = fill_cache(raw.cache(partial), split, class_names, verbose)
        for path in sorted(glob.glob(glob.escape(partial) + ".*"), key=lambda path: path.endswith(".index")):
            os.replace(path, cache_path + path[len(partial) :])
        dataset = raw.cache(cache_path)
    else:
        dataset = raw.cache(cache_path)
        counts, bad = fill_cache(dataset, split, class_names, verbose)
    usable = dataset.filter(lambda image, label, error, path: tf.equal(error, "")).map(
        lambda image, label, error, path: (tf.ensure_shape(image, (image_size, image_size, 3)), label)
    )
    return usable.apply(tf.data.experimental.assert_cardinality(sum(counts.values()))), counts, bad


def fill_cache(
    dataset: tf.data.Dataset, split: str, class_names: Sequence[str], verbose: bool
) -> tuple[dict[str, int], list[SkippedFile]]:
    """Iterates a split once, which decodes every photo into the cache; counts classes."""
    counts = np.zeros(len(class_names), dtype=np.int64)
    bad = []
    total = int(dataset.cardinality())
    progress = keras.utils.Progbar(
        total if total > 0 else None, unit_name="photo", verbose=choose_verbosity() if verbose else 0
    )
    if verbose:
        print(f"Decoding the {split} split...")
    metadata = dataset.map(lambda image, label, error, path: (label, error, path)).batch(256)
    for labels, errors, paths in metadata.as_numpy_iterator():
        for label, error, path in zip(labels, errors, paths):
            if error:
                bad.append(SkippedFile(os.fsdecode(path), error.decode("utf-8", "replace")))
            else:
                counts[label] += 1
        progress.add(len(labels))
    return {name: int(count) for name, count in zip(class_names, counts)}, bad


def _cache_file_name(cache_dir: str | os.PathLike | None, split: str, image_size: int, key: str) -> str:
    """Returns "" (memory) or a cache file name unique to the split's content and image size."""
    if cache_dir is None:
        return ""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    return str(Path(cache_dir) / f"{split}-{image_size}px-{hash_json([key, image_size, DECODER_VERSION])}")


def _remove_stale_partial_caches(cache_path: str) -> None:
    """Removes the temporary cache files of killed runs (their process is gone) and of this process."""
    for path in glob.glob(glob.escape(cache_path) + ".partial-*"):
        pid = path[len(cache_path) + len(".partial-") :].split("-", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or not _process_alive(int(pid))):
            Path(path).unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would end the process on Windows: assume it is alive.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # It exists but belongs to someone else (PermissionError), or the check is unsupported.
        return True
    return True
