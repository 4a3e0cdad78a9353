"""Train/validation/test `tf.data` pipelines from TensorFlow Datasets or a folder of photos.

Every split is decoded and resized once, cached (in memory, or in files for
datasets larger than RAM) and then served from the cache: decode -> resize ->
cache -> shuffle (training split only, seeded) -> batch -> prefetch. Images
come out as raw `uint8` pixels in [0, 255]; scaling and augmentation happen
inside the models. Decoding happens when the splits are loaded, so bad files
are found, counted and named before any training starts, and the first epoch
is timed like the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catsdogs_helpers.photos import SPLIT_NAMES, SkippedFile, decode_photo, list_photo_folder

TFDS_NAME = "cats_vs_dogs"
TFDS_CLASS_NAMES = ("cat", "dog")
_SHUFFLE_BUFFER = 4096


@dataclasses.dataclass(frozen=True)
class ImageSplits:
    """The three splits of a dataset as batched `tf.data` pipelines.

    Attributes:
        train: Training batches, reshuffled (seeded) every epoch.
        validation: Validation batches, in a fixed order.
        test: Test batches, in a fixed order.
        train_in_order: Training batches in a fixed order, unshuffled (for
            computing features once).
        class_names: Class names; label `i` means `class_names[i]`.
        counts: Photos per split and class, e.g. `{"train": {"cat": 1000, ...}}`.
        skipped: Files that were skipped, with the reason.
        source: `"tfds:cats_vs_dogs"` or the folder's path.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    train_in_order: tf.data.Dataset
    class_names: tuple[str, ...]
    counts: dict[str, dict[str, int]]
    skipped: tuple[SkippedFile, ...]
    source: str

    def num_images(self, split: str) -> int:
        """Returns the number of photos in a split."""
        return sum(self.counts[split].values())

    def to_dict(self) -> dict[str, object]:
        """Returns source, counts and skipped files as a JSON-serializable dictionary."""
        return {
            "source": self.source,
            "class_names": list(self.class_names),
            "counts": self.counts,
            "skipped": [dataclasses.asdict(item) for item in self.skipped],
        }

    def describe(self) -> str:
        """Returns a short report: counts per split and class, and skipped files."""
        lines = [f"Source: {self.source}"]
        for split in SPLIT_NAMES:
            per_class = ", ".join(f"{count} {name}" for name, count in self.counts[split].items())
            lines.append(f"  {split:<10} {self.num_images(split):>6} photos ({per_class})")
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)} file(s) that could not be used (left untouched):")
            lines.extend(f"  {item.path}: {item.reason}" for item in self.skipped)
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
    """Loads train/validation/test pipelines from TensorFlow Datasets or a folder.

    Args:
        data: `"tfds"` for `cats_vs_dogs` (its single `train` split is sliced
            into train/validation/test), or the path of a folder of photos (see
            `photos.list_photo_folder`). Defaults to `"tfds"`.
        image_size: Side of the square images, in pixels. Defaults to `224`.
        batch_size: Images per batch. Defaults to `32`.
        validation_fraction: Share of photos for validation (rounded to whole
            percent for tfds). Defaults to `0.1`.
        test_fraction: Share of photos for the test. Defaults to `0.1`.
        max_images_per_split: Keep at most this many photos per split (a stable
            subset), or `None` for all. Defaults to `None`.
        seed: Seed of the training shuffle. Defaults to `1337`.
        cache_dir: Folder for file caches, or `None` to cache in memory.
            Defaults to `None`.
        tfds_data_dir: Where tfds keeps its data; `None` for its default.
            Defaults to `None`.
        verbose: Print progress while decoding. Defaults to `True`.

    Returns:
        An `ImageSplits`.

    Raises:
        FileNotFoundError: If the folder does not exist.
        ValueError: If the folder's layout is wrong or a split has no usable photo.
        RuntimeError: If TensorFlow Datasets cannot download or prepare `cats_vs_dogs`.

    Example:

    >>> splits = load_splits("data/my_photos", image_size=160)  # doctest: +SKIP
    >>> print(splits.describe())  # doctest: +SKIP
    """
    if data == "tfds":
        raw, class_names, skipped, cache_keys = _read_tfds(
            image_size, validation_fraction, test_fraction, max_images_per_split, tfds_data_dir
        )
        source = f"tfds:{TFDS_NAME}"
    else:
        raw, class_names, skipped, cache_keys = _read_folder(
            data, image_size, validation_fraction, test_fraction, max_images_per_split
        )
        source = str(data)

    cached, counts, bad_files = {}, {}, list(skipped)
    for split in SPLIT_NAMES:
        cache_path = _cache_path(cache_dir, split, image_size, cache_keys[split])
        cached[split], counts[split], bad = _cache_usable(
            raw[split], split, class_names, image_size, cache_path, verbose
        )
        bad_files.extend(bad)
        if not sum(counts[split].values()):
            raise ValueError(
                f"The {split} split has no usable photo. Check the data source, or lower "
                f"validation_fraction/test_fraction. Received: data={data!r}"
            )

    num_train = sum(counts["train"].values())
    train = cached["train"].shuffle(min(num_train, _SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
    splits = ImageSplits(
        train=_batch(train, batch_size),
        validation=_batch(cached["validation"], batch_size),
        test=_batch(cached["test"], batch_size),
        train_in_order=_batch(cached["train"], batch_size),
        class_names=tuple(class_names),
        counts=counts,
        skipped=tuple(bad_files),
        source=source,
    )
    if verbose:
        print(splits.describe())
    return splits


def _batch(dataset: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _cache_path(cache_dir: str | os.PathLike | None, split: str, image_size: int, content_key: str) -> str:
    """Returns "" (memory) or a cache file name unique to the split's content and image size.

    `content_key` names exactly which photos the split holds (for a folder, every
    file's path, size and modification time), so a changed folder, other split
    fractions or another limit never reuse a stale cache.
    """
    if cache_dir is None:
        return ""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{content_key}|{image_size}".encode()).hexdigest()[:16]
    return str(Path(cache_dir) / f"{split}-{image_size}px-{key}")


def _describe_files(files: list[tuple[str, int]]) -> str:
    """Returns a key that changes when any file of the list is added, removed or modified."""
    digest = hashlib.sha256()
    for path, label in files:
        status = os.stat(path)
        digest.update(f"{os.path.abspath(path)}|{label}|{status.st_size}|{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _fill_cache(
    dataset: tf.data.Dataset, split: str, class_names: list[str], verbose: bool
) -> tuple[dict[str, int], list[SkippedFile]]:
    """Iterates a split once, which decodes every photo into the cache; counts classes."""
    counts = np.zeros(len(class_names), dtype=np.int64)
    bad = []
    total = int(dataset.cardinality())
    progress = keras.utils.Progbar(total if total > 0 else None, unit_name="photo", verbose=1 if verbose else 0)
    if verbose:
        print(f"Decoding the {split} split...")
    metadata = dataset.map(lambda image, label, error, path: (label, error, path)).batch(256)
    for labels, errors, paths in metadata.as_numpy_iterator():
        for label, error, path in zip(labels, errors, paths):
            if error:
                bad.append(SkippedFile(path.decode(), error.decode()))
            else:
                counts[label] += 1
        progress.add(len(labels))
    return {name: int(count) for name, count in zip(class_names, counts)}, bad


def load_labelled_photos(
    directory: str | os.PathLike, image_size: int = 224, batch_size: int = 32, verbose: bool = True
) -> tuple[tf.data.Dataset, tuple[str, ...], dict[str, int], tuple[SkippedFile, ...]]:
    """Loads every photo of a folder with class sub-folders, for evaluation.

    The folder follows the rules of `photos.list_photo_folder`; if it is
    pre-split (`train/`, `validation/`, `test/`), only its `test/` photos are used.

    Args:
        directory: The folder.
        image_size: Side of the square images, in pixels. Defaults to `224`.
        batch_size: Images per batch. Defaults to `32`.
        verbose: Print progress while decoding. Defaults to `True`.

    Returns:
        `(dataset, class_names, counts, skipped)`: batches of `(images, labels)`
        in a fixed order, class names, photos per class, skipped files.

    Raises:
        FileNotFoundError: If the folder does not exist.
        ValueError: If its layout is wrong or it holds no usable photo.
    """
    folder = list_photo_folder(directory)
    files = (
        folder.files["test"] if folder.pre_split else [item for split in SPLIT_NAMES for item in folder.files[split]]
    )
    dataset, counts, bad = _cache_usable(
        _photo_dataset(files, image_size), "photos", list(folder.class_names), image_size, "", verbose
    )
    if not sum(counts.values()):
        raise ValueError(f"{directory} holds no usable photo. Received: data={str(directory)!r}")
    return _batch(dataset, batch_size), folder.class_names, counts, (*folder.skipped, *bad)


def _cache_usable(
    raw: tf.data.Dataset, split: str, class_names: list[str], image_size: int, cache_path: str, verbose: bool
) -> tuple[tf.data.Dataset, dict[str, int], list[SkippedFile]]:
    """Caches decoded photos, fills the cache, and keeps the usable `(image, label)` pairs."""
    dataset = raw.cache(cache_path)
    counts, bad = _fill_cache(dataset, split, class_names, verbose)
    usable = dataset.filter(lambda image, label, error, path: tf.equal(error, "")).map(
        lambda image, label, error, path: (tf.ensure_shape(image, (image_size, image_size, 3)), label)
    )
    return usable.apply(tf.data.experimental.assert_cardinality(sum(counts.values()))), counts, bad


def _photo_dataset(files: list[tuple[str, int]], image_size: int) -> tf.data.Dataset:
    """Returns `(image, label, error, path)` elements decoded from photo files."""

    def decode(path: bytes) -> tuple[np.ndarray, bytes]:
        try:
            return decode_photo(path.decode(), image_size), b""
        except ValueError as error:
            return np.zeros((0, 0, 3), np.uint8), str(error).encode()

    def load(path: tf.Tensor, label: tf.Tensor):
        image, error = tf.numpy_function(decode, [path], [tf.uint8, tf.string], stateful=False)
        image.set_shape((None, None, 3))
        error.set_shape(())
        return image, label, error, path

    paths = tf.constant([path for path, _ in files], tf.string, shape=(len(files),))
    labels = np.array([label for _, label in files], dtype=np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _read_folder(
    directory: str,
    image_size: int,
    validation_fraction: float,
    test_fraction: float,
    max_images_per_split: int | None,
) -> tuple[dict[str, tf.data.Dataset], list[str], list[SkippedFile], dict[str, str]]:
    folder = list_photo_folder(directory, validation_fraction, test_fraction)
    kept = {
        split: files[:max_images_per_split] if max_images_per_split else files for split, files in folder.files.items()
    }
    raw = {split: _photo_dataset(files, image_size) for split, files in kept.items()}
    cache_keys = {split: _describe_files(files) for split, files in kept.items()}
    return raw, list(folder.class_names), list(folder.skipped), cache_keys


def _read_tfds(
    image_size: int,
    validation_fraction: float,
    test_fraction: float,
    max_images_per_split: int | None,
    data_dir: str | None,
) -> tuple[dict[str, tf.data.Dataset], list[str], list[SkippedFile], dict[str, str]]:
    import tensorflow_datasets as tfds

    train_end = round(100 * (1.0 - validation_fraction - test_fraction))
    validation_end = round(100 * (1.0 - test_fraction))
    slices = [f"train[:{train_end}%]", f"train[{train_end}%:{validation_end}%]", f"train[{validation_end}%:]"]
    try:
        datasets = tfds.load(TFDS_NAME, split=slices, as_supervised=True, shuffle_files=False, data_dir=data_dir)
    except Exception as error:
        raise RuntimeError(
            f"TensorFlow Datasets could not download or prepare {TFDS_NAME!r}: "
            f"{type(error).__name__}: {error}. To run offline, pass the path of a folder of "
            "photos instead (one sub-folder per class, e.g. cat/ and dog/), for example "
            "`--data path/to/photos` on the command line or DATA = 'path/to/photos' in the "
            "notebook. Received: data='tfds'"
        ) from error

    def prepare(image: tf.Tensor, label: tf.Tensor):
        image = tf.image.resize(image, (image_size, image_size), antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
        return image, tf.cast(label, tf.int32), tf.constant(""), tf.constant("")

    raw, cache_keys = {}, {}
    for split, split_slice, dataset in zip(SPLIT_NAMES, slices, datasets):
        if max_images_per_split:
            dataset = dataset.take(max_images_per_split)
        raw[split] = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        cache_keys[split] = f"tfds|{TFDS_NAME}|{data_dir}|{split_slice}|{max_images_per_split}"
    return raw, list(TFDS_CLASS_NAMES), [], cache_keys
