"""Train/validation/test `tf.data` pipelines of raw `uint8` photos, from TensorFlow Datasets or a folder.

decode -> resize -> cache -> shuffle (training split only, seeded) -> batch -> prefetch; scaling and augmentation
happen inside the models. Every photo is decoded when the splits load, so bad files are named before training.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import sys
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from catsdogs_helpers import caching
from catsdogs_helpers.decoding import UnreadablePhotoError, decode_encoded_photo, decode_photo, printable_path
from catsdogs_helpers.errors import InputError
from catsdogs_helpers.photos import SPLIT_NAMES, SkippedFile, list_photo_folder
from catsdogs_helpers.tfds_source import TFDS_NAME, load_cats_vs_dogs

TFDS_CLASS_NAMES = ("cat", "dog")
_SHUFFLE_BUFFER = 4096


@dataclasses.dataclass(frozen=True)
class ImageSplits:
    """The three splits of a dataset as batched `tf.data` pipelines of `(uint8 images, int32 labels)`.

    Attributes:
        train: Reshuffled (seeded) every epoch; the other splits keep a fixed order.
        train_in_order: The training photos in a fixed order (to compute features once).
        counts: Photos per split and class, e.g. `{"train": {"cat": 1000, ...}}`.
        source: `"tfds:cats_vs_dogs"` or the folder's path.
        content_key: Digest of the splits' photos (folder: file paths, sizes, mtimes; tfds: slices, limits) and decoder.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    train_in_order: tf.data.Dataset
    class_names: tuple[str, ...]
    counts: dict[str, dict[str, int]]
    skipped: tuple[SkippedFile, ...]
    source: str
    content_key: str = ""

    def num_images(self, split: str) -> int:
        """Returns the number of photos in a split."""
        return sum(self.counts[split].values())

    def to_dict(self) -> dict[str, object]:
        """Returns source, class names, counts and skipped files (printable paths) for JSON."""
        return {
            "source": self.source,
            "class_names": list(self.class_names),
            "counts": self.counts,
            "skipped": [{"path": printable_path(item.path), "reason": item.reason} for item in self.skipped],
        }

    def describe(self) -> str:
        """Returns a short report: counts per split and class, and skipped files."""
        lines = [f"Source: {printable_path(self.source)}"]
        for split in SPLIT_NAMES:
            per_class = ", ".join(f"{count} {name}" for name, count in self.counts[split].items())
            lines.append(f"  {split:<10} {self.num_images(split):>6} photos ({per_class})")
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)} file(s) that could not be used (left untouched):")
            lines.extend(f"  {printable_path(item.path)}: {item.reason}" for item in self.skipped)
        else:
            lines.append("Skipped 0 files.")
        return "\n".join(lines)


def load_splits(
    data: str = "tfds",
    image_size: int = 224,
    batch_size: int = 32,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    max_images_per_split: int | None = None,
    seed: int = 1337,
    cache_dir: str | os.PathLike | None = None,
    tfds_data_dir: str | None = None,
    verbose: bool = True,
) -> ImageSplits:
    """Loads train/validation/test pipelines with a `StudyConfig`'s settings, which `config.py` checks.

    Args:
        data: `"tfds"` for `cats_vs_dogs` (its `train` split sliced, the fractions rounded to whole percents), or a
            folder of photos (see `photos.list_photo_folder`).
        max_images_per_split: Keep at most this many photos per split (a stable subset), or `None` for all.
        cache_dir: Folder for file caches, or `None` to cache in memory.

    Raises:
        MissingInputError: (a `FileNotFoundError`) If the folder does not exist or cannot be read.
        InputError: (a `ValueError`) If the folder's layout is wrong, or a split has no usable photo of a class.
        DataUnavailableError: (a `RuntimeError`) If TensorFlow Datasets cannot download or prepare `cats_vs_dogs`.
    """
    if data == "tfds":
        source, class_names, listed_skipped, pre_split = f"tfds:{TFDS_NAME}", TFDS_CLASS_NAMES, (), None
        raw, cache_keys = _tfds_splits(
            image_size, validation_fraction, test_fraction, max_images_per_split, tfds_data_dir
        )
    else:
        folder = list_photo_folder(data, validation_fraction, test_fraction)
        source, class_names, listed_skipped, pre_split = str(data), folder.class_names, folder.skipped, folder.pre_split
        kept = {split: files[:max_images_per_split] for split, files in folder.files.items()}  # [:None]: all.
        raw = {split: _photo_files(files, image_size) for split, files in kept.items()}
        cache_keys = {split: caching.describe_files(files) for split, files in kept.items()}

    cached, counts, skipped = {}, {}, list(listed_skipped)
    for split in SPLIT_NAMES:
        cached[split], counts[split], bad = caching.cache_usable(
            raw[split], split, class_names, image_size, verbose, cache_dir, cache_keys[split]
        )
        skipped.extend(bad)
    fractions = "" if pre_split else f", validation_fraction={validation_fraction}, test_fraction={test_fraction}"
    received = f"data={str(data)!r}{fractions}, max_images_per_split={max_images_per_split}"
    _check_both_classes_everywhere(counts, skipped, pre_split, received)
    _warn_if_most_skipped(sum(sum(per_class.values()) for per_class in counts.values()), skipped, source)

    num_train = sum(counts["train"].values())
    train = cached["train"].shuffle(min(num_train, _SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
    splits = ImageSplits(
        train=_batch(train, batch_size),
        validation=_batch(cached["validation"], batch_size),
        test=_batch(cached["test"], batch_size),
        train_in_order=_batch(cached["train"], batch_size),
        class_names=class_names,
        counts=counts,
        skipped=tuple(skipped),
        source=source,
        content_key=caching.content_key(cache_keys),
    )
    if verbose:
        print(splits.describe())
    return splits


def load_labelled_photos(
    directory: str | os.PathLike,
    image_size: int = 224,
    batch_size: int = 32,
    verbose: bool = True,
    test_split_only: bool = True,
) -> tuple[tf.data.Dataset, tuple[str, ...], dict[str, int], tuple[SkippedFile, ...]]:
    """Loads the photos of a folder laid out for `photos.list_photo_folder`, for evaluation.

    Args:
        test_split_only: Use only the photos a study never trained on: `test/` of a pre-split folder, or the 10% of
            a flat folder that `load_splits` tests on by default; `False`: every photo of a flat folder.

    Returns:
        `(dataset, class_names, counts, skipped)`: batches of `(images, labels)` in a fixed order, class names,
        photos per class, skipped files.

    Raises:
        InputError: As `load_splits`, or if the photos lack a class.
    """
    folder = list_photo_folder(directory)
    use_test = folder.pre_split or test_split_only
    files = folder.files["test"] if use_test else [item for split in SPLIT_NAMES for item in folder.files[split]]
    raw = _photo_files(files, image_size)
    dataset, counts, bad = caching.cache_usable(raw, "photos", folder.class_names, image_size, verbose)
    skipped = [*folder.skipped, *bad]
    _check_both_classes_present(counts, skipped, directory, folder.pre_split, use_test)
    _warn_if_most_skipped(sum(counts.values()), skipped, str(directory))
    return _batch(dataset, batch_size), folder.class_names, counts, tuple(skipped)


def _batch(dataset: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _decoded(elements: tf.data.Dataset, decode: Callable[[bytes], np.ndarray]) -> tf.data.Dataset:
    """Maps `(source, label, name)` to `(image, label, error, name)`: `error` is b"" or why `decode(source)` failed."""

    def decode_or_reason(source: bytes) -> tuple[np.ndarray, bytes]:
        try:
            return decode(source), b""
        except UnreadablePhotoError as error:
            return np.zeros((0, 0, 3), np.uint8), str(error).encode("utf-8", "backslashreplace")

    def load(source: tf.Tensor, label: tf.Tensor, name: tf.Tensor):
        image, error = tf.numpy_function(decode_or_reason, [source], [tf.uint8, tf.string], stateful=False)
        image.set_shape((None, None, 3))
        error.set_shape(())
        return image, label, error, name

    return elements.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _photo_files(files: list[tuple[str, int]], image_size: int) -> tf.data.Dataset:
    """Returns `(image, label, error, path)` elements of `(path, label)` files, decoded by `decode_photo`."""
    # Bytes, not text: a file name need not be valid UTF-8 (os.fsdecode gives the path back).
    paths = tf.constant([os.fsencode(path) for path, _ in files], tf.string, shape=(len(files),))
    labels = np.array([label for _, label in files], dtype=np.int32)
    elements = tf.data.Dataset.from_tensor_slices((paths, labels, paths))
    return _decoded(elements, lambda path: decode_photo(os.fsdecode(path), image_size))


def _tfds_splits(
    image_size: int,
    validation_fraction: float,
    test_fraction: float,
    max_images_per_split: int | None,
    data_dir: str | None,
) -> tuple[dict[str, tf.data.Dataset], dict[str, str]]:
    """Returns each split's `(image, label, error, file name)` elements and cache key, from `cats_vs_dogs`."""
    train_end = round(100 * (1.0 - validation_fraction - test_fraction))
    validation_end = round(100 * (1.0 - test_fraction))
    slices = [f"train[:{train_end}%]", f"train[{train_end}%:{validation_end}%]", f"train[{validation_end}%:]"]
    raw, cache_keys = {}, {}
    for split, split_slice, dataset in zip(SPLIT_NAMES, slices, load_cats_vs_dogs(slices, data_dir)):
        if max_images_per_split:
            dataset = dataset.take(max_images_per_split)
        elements = dataset.map(lambda item: (item["image"], tf.cast(item["label"], tf.int32), item["image/filename"]))
        # Decoded by the function that decodes a folder's photos.
        raw[split] = _decoded(elements, lambda encoded: decode_encoded_photo(encoded, image_size))
        cache_keys[split] = f"tfds|{TFDS_NAME}|{data_dir}|{split_slice}|{max_images_per_split}"
    return raw, cache_keys


def _warn_if_most_skipped(num_used: int, skipped: list[SkippedFile], source: str) -> None:
    """Says on standard error, whatever the verbosity, when more files were skipped than used, and the main reasons."""
    if len(skipped) <= num_used:
        return
    reasons = collections.Counter(item.reason for item in skipped).most_common(3)
    common = "; ".join(f"{count} {reason}" for reason, count in reasons)
    print(f"warning: {len(skipped)} of the {len(skipped) + num_used} files of {printable_path(source)} were skipped "
          f"({common}); only {num_used} photos are used.", file=sys.stderr, flush=True)  # fmt: skip


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items())


def _skipped_text(skipped: list[SkippedFile]) -> str:
    if not skipped:
        return "no file was skipped"
    examples = "; ".join(f"{printable_path(item.path)}: {item.reason}" for item in skipped[:3])
    return f"{len(skipped)} file(s) skipped, for example {examples}"


def _check_both_classes_everywhere(
    counts: dict[str, dict[str, int]], skipped: list[SkippedFile], pre_split: bool | None, received: str
) -> None:
    """Raises `InputError` if a split has no usable photo of some class (`pre_split` is `None` for tfds)."""
    lacking = [(split, name) for split in SPLIT_NAMES for name, count in counts[split].items() if not count]
    if not lacking:
        return
    names = " and ".join(sorted({name for _, name in lacking}))
    if pre_split is None:
        fix = "Load more images (raise or remove max_images_per_split), or prepare cats_vs_dogs again"
    elif pre_split:
        fix = f"Add usable photos of {names} to {', '.join(f'{split}/{name}/' for split, name in lacking)}"
    else:
        folders = ", ".join(sorted({f"{name}/" for _, name in lacking}))
        fix = (
            f"Add usable photos of {names} to {folders}, or change validation_fraction/test_fraction so that "
            "every split gets photos of both classes"
        )
    per_split = "; ".join(f"{split}: {_counts_text(counts[split])}" for split in SPLIT_NAMES)
    raise InputError(
        "Every split needs usable photos of both classes, or its accuracy means nothing, but "
        f"{', '.join(f'{split} has no {name}' for split, name in lacking)}. Usable photos per split and "
        f"class: {per_split} ({_skipped_text(skipped)}). {fix}. Received: {received}"
    )


def _check_both_classes_present(
    counts: dict[str, int], skipped: list[SkippedFile], directory: str | os.PathLike, pre_split: bool, test_split: bool
) -> None:
    """Raises `InputError` if the photos to evaluate have no usable photo of some class."""
    missing = [name for name, count in counts.items() if not count]
    if not missing:
        return
    where = printable_path(directory)
    if pre_split:
        where += " (its test/ folder)"
    elif test_split:
        where += " (its test split: the 10% of photos a hash of their paths picks; --all uses every photo)"
    folders = ", ".join(f"{'test/' if pre_split else ''}{name}/" for name in missing)
    raise InputError(
        f"Evaluation needs usable photos of both classes, but {where} has no usable photo of "
        f"{' or '.join(missing)}: usable photos {_counts_text(counts)} ({_skipped_text(skipped)}). An accuracy "
        f"measured on one class says nothing about the other. Add usable photos of {' and '.join(missing)} "
        f"to {folders}, or evaluate on a folder that has both classes. Received: data={str(directory)!r}"
    )
