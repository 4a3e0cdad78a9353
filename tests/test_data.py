"""Tests of catsdogs_helpers.data: tf.data pipelines from a folder, from tfds (mocked), and from real photos."""

import builtins
import collections
import errno
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import photo_factory
import pytest
import tensorflow as tf

from catsdogs_helpers import caching, data, tfds_source
from catsdogs_helpers.data import load_labelled_photos, load_splits
from catsdogs_helpers.decoding import decode_photo
from catsdogs_helpers.errors import InputError, MissingInputError
from catsdogs_helpers.photos import SPLIT_NAMES, list_photo_folder

IMAGE_SIZE = 32
FRACTIONS = {"validation_fraction": 0.25, "test_fraction": 0.25}


def _epoch(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Returns all images and labels of one pass, in order."""
    images, labels = [], []
    for batch_images, batch_labels in dataset.as_numpy_iterator():
        images.append(batch_images)
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


def _digests(images: np.ndarray) -> list[str]:
    return [hashlib.sha256(image.tobytes()).hexdigest() for image in images]


@pytest.fixture
def photos(tmp_path) -> Path:
    """16 synthetic photos per class, not pre-split."""
    return photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=16, size=40)


@pytest.fixture
def count_decodes(monkeypatch) -> list[str]:
    """Records the path of every photo that data.py decodes."""
    decoded = []

    def counting_decode_photo(path, image_size=None):
        decoded.append(str(path))
        return decode_photo(path, image_size)

    monkeypatch.setattr(data, "decode_photo", counting_decode_photo)
    return decoded


# A folder with broken, hidden and unusual files.


def test_broken_files_are_skipped_counted_and_named_and_the_folder_is_untouched(tmp_path, capsys):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=12, size=40)
    planted = photo_factory.plant_unusual_files(root / "cat")
    before = photo_factory.folder_fingerprint(root)

    splits = load_splits(root, image_size=IMAGE_SIZE, batch_size=8, verbose=True, **FRACTIONS)

    skipped = {Path(item.path).name: item.reason for item in splits.skipped}
    assert set(skipped) == set(planted["bad"])
    for name, reason in planted["bad"].items():
        assert reason in skipped[name], (name, skipped[name])
    assert all(Path(item.path).parent == root / "cat" for item in splits.skipped)
    description = splits.describe()
    printed = capsys.readouterr().out
    assert f"Skipped {len(planted['bad'])} file(s)" in description
    for item in splits.skipped:
        assert item.path in description
        assert item.path in printed
    for name in planted["ignored"]:
        assert name not in description
        assert name not in printed
    # Every good photo, the unusual ones included, is used.
    assert sum(splits.num_images(split) for split in SPLIT_NAMES) == 24 + len(planted["good"])
    assert sum(splits.counts[split]["cat"] for split in SPLIT_NAMES) == 12 + len(planted["good"])
    for split in SPLIT_NAMES:
        images, _ = _epoch(getattr(splits, split))
        assert images.shape == (splits.num_images(split), IMAGE_SIZE, IMAGE_SIZE, 3)
        assert images.dtype == np.uint8
    assert photo_factory.folder_fingerprint(root) == before


def test_describe_without_skipped_files(photos):
    splits = load_splits(photos, image_size=IMAGE_SIZE, verbose=False, **FRACTIONS)
    description = splits.describe()
    assert "Skipped 0 files." in description
    assert description.startswith(f"Source: {photos}")
    for split in SPLIT_NAMES:
        assert split in description


# Pipelines.


def test_images_and_labels_match_the_files(photos):
    splits = load_splits(photos, image_size=IMAGE_SIZE, batch_size=4, verbose=False, **FRACTIONS)
    folder = list_photo_folder(photos, **FRACTIONS)
    assert splits.class_names == ("cat", "dog")
    assert splits.source == str(photos)
    for split in SPLIT_NAMES:
        images, labels = _epoch(getattr(splits, split))
        assert images.dtype == np.uint8 and labels.dtype == np.int32
        assert images.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE, 3)
        assert len(images) == splits.num_images(split) == len(folder.files[split])
        # Cats are reddish, dogs bluish: the labels belong to the pixels.
        red_minus_blue = images[..., 0].mean(axis=(1, 2)) - images[..., 2].mean(axis=(1, 2))
        assert ((red_minus_blue > 0) == (labels == 0)).all()
        assert splits.counts[split] == {
            "cat": int((labels == 0).sum()),
            "dog": int((labels == 1).sum()),
        }
    # Validation and test come in the listed order, decoded like decode_photo does.
    for split in ("validation", "test"):
        images, labels = _epoch(getattr(splits, split))
        assert labels.tolist() == [label for _, label in folder.files[split]]
        for image, (path, _) in zip(images, folder.files[split]):
            np.testing.assert_array_equal(image, decode_photo(path, IMAGE_SIZE))
    images, labels = _epoch(splits.train_in_order)
    assert labels.tolist() == [label for _, label in folder.files["train"]]


def test_evaluation_splits_repeat_identically_and_training_reshuffles(photos):
    splits = load_splits(photos, image_size=IMAGE_SIZE, batch_size=4, verbose=False, **FRACTIONS)
    assert splits.num_images("train") > 4  # More than one batch.
    for split in ("validation", "test"):
        first_images, first_labels = _epoch(getattr(splits, split))
        second_images, second_labels = _epoch(getattr(splits, split))
        np.testing.assert_array_equal(first_images, second_images)
        np.testing.assert_array_equal(first_labels, second_labels)
    first_images, first_labels = _epoch(splits.train)
    second_images, second_labels = _epoch(splits.train)
    assert sorted(zip(_digests(first_images), first_labels)) == sorted(zip(_digests(second_images), second_labels))
    assert _digests(first_images) != _digests(second_images)
    in_order, _ = _epoch(splits.train_in_order)
    assert sorted(_digests(in_order)) == sorted(_digests(first_images))


def test_training_order_follows_the_seed(photos):
    first = load_splits(photos, image_size=IMAGE_SIZE, batch_size=4, seed=1, verbose=False, **FRACTIONS)
    again = load_splits(photos, image_size=IMAGE_SIZE, batch_size=4, seed=1, verbose=False, **FRACTIONS)
    other = load_splits(photos, image_size=IMAGE_SIZE, batch_size=4, seed=2, verbose=False, **FRACTIONS)
    first_order = _digests(_epoch(first.train)[0])
    assert _digests(_epoch(again.train)[0]) == first_order
    assert _digests(_epoch(other.train)[0]) != first_order


def test_photos_are_decoded_once(photos, count_decodes):
    splits = load_splits(photos, image_size=IMAGE_SIZE, batch_size=4, verbose=False, **FRACTIONS)
    assert sorted(count_decodes) == sorted(str(path) for path in photos.rglob("*.jpg"))
    for _ in range(2):
        for split in ("train", "validation", "test", "train_in_order"):
            _epoch(getattr(splits, split))
    assert len(count_decodes) == 32  # Every later pass reads the cache.


def test_max_images_per_split_keeps_a_stable_subset(photos):
    splits = load_splits(photos, image_size=IMAGE_SIZE, max_images_per_split=3, verbose=False, **FRACTIONS)
    folder = list_photo_folder(photos, **FRACTIONS)
    for split in SPLIT_NAMES:
        assert splits.num_images(split) == 3
    _, labels = _epoch(splits.validation)
    assert labels.tolist() == [label for _, label in folder.files["validation"][:3]]


def test_file_cache_is_written_and_reused(photos, tmp_path, count_decodes):
    cache_dir = tmp_path / "cache"
    first = load_splits(photos, image_size=IMAGE_SIZE, batch_size=4, cache_dir=cache_dir, verbose=False, **FRACTIONS)
    assert len(count_decodes) == 32
    written = sorted(path.name for path in cache_dir.iterdir())
    for split in SPLIT_NAMES:
        assert any(name.startswith(f"{split}-{IMAGE_SIZE}px-") and name.endswith(".index") for name in written)

    second = load_splits(photos, image_size=IMAGE_SIZE, batch_size=4, cache_dir=cache_dir, verbose=False, **FRACTIONS)
    assert len(count_decodes) == 32  # Nothing decoded again.
    assert second.counts == first.counts
    for split in ("validation", "test"):
        np.testing.assert_array_equal(_epoch(getattr(second, split))[0], _epoch(getattr(first, split))[0])
    assert sorted(path.name for path in cache_dir.iterdir()) == written

    # Other settings get their own cache files, never a stale one.
    resplit = load_splits(
        photos, image_size=IMAGE_SIZE, cache_dir=cache_dir, verbose=False, validation_fraction=0.4, test_fraction=0.1
    )
    assert resplit.counts != first.counts
    assert resplit.num_images("validation") == len(list_photo_folder(photos, 0.4, 0.1).files["validation"])
    resized = load_splits(photos, image_size=48, cache_dir=cache_dir, verbose=False, **FRACTIONS)
    assert _epoch(resized.test)[0].shape[1:] == (48, 48, 3)

    # Photos added to the folder are loaded, not hidden behind the old cache.
    photo_factory.write_class_photos(photos / "dog" / "more", "dog", 12, size=40, seed=7)
    grown = load_splits(photos, image_size=IMAGE_SIZE, cache_dir=cache_dir, verbose=False, **FRACTIONS)
    assert sum(grown.num_images(split) for split in SPLIT_NAMES) == 32 + 12


def test_a_cache_left_half_written_by_a_killed_run_is_cleared_and_rebuilt(photos, tmp_path):
    cache_dir = tmp_path / "cache"
    load_splits(photos, image_size=IMAGE_SIZE, cache_dir=cache_dir, verbose=False, **FRACTIONS)
    (index,) = cache_dir.glob(f"train-{IMAGE_SIZE}px-*.index")
    final = str(index).removesuffix(".index")
    for path in cache_dir.iterdir():
        path.unlink()
    # What a run killed while decoding the train split leaves: its temporary files, named after its process.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    partial = f"{final}.partial-{dead.pid}-0123abcd"
    leftovers = [Path(f"{partial}_0.lockfile"), Path(f"{partial}.data-00000-of-00001")]
    for path in leftovers:
        path.write_text("half written")

    splits = load_splits(photos, image_size=IMAGE_SIZE, cache_dir=cache_dir, verbose=False, **FRACTIONS)
    assert sum(splits.num_images(split) for split in SPLIT_NAMES) == 32
    assert not any(path.exists() for path in leftovers)
    assert not list(cache_dir.glob("*.partial-*")) and not list(cache_dir.glob("*.lockfile"))
    assert Path(final + ".index").exists()


def test_a_file_cache_is_complete_or_absent(photos, tmp_path, monkeypatch):
    """Filling a cache that fails half-way leaves no file under the cache's own name."""
    cache_dir = tmp_path / "cache"
    real_fill = caching.fill_cache

    def fail_on_train(dataset, split, class_names, verbose):
        if split == "train":
            iterator = dataset.as_numpy_iterator()
            next(iterator), next(iterator)  # Two photos into the cache, then Ctrl-C.
            raise KeyboardInterrupt
        return real_fill(dataset, split, class_names, verbose)

    monkeypatch.setattr(caching, "fill_cache", fail_on_train)
    with pytest.raises(KeyboardInterrupt):
        load_splits(photos, image_size=IMAGE_SIZE, cache_dir=cache_dir, verbose=False, **FRACTIONS)
    assert not [path for path in cache_dir.iterdir() if ".partial-" not in path.name]
    monkeypatch.setattr(caching, "fill_cache", real_fill)
    splits = load_splits(photos, image_size=IMAGE_SIZE, cache_dir=cache_dir, verbose=False, **FRACTIONS)
    assert sum(splits.num_images(split) for split in SPLIT_NAMES) == 32
    assert not list(cache_dir.glob("*.partial-*"))  # This process's own leftovers are cleared too.


def test_pre_split_folder(tmp_path):
    root = photo_factory.make_presplit_folder(tmp_path / "photos", {"train": 6, "validation": 3, "test": 2}, size=40)
    splits = load_splits(root, image_size=IMAGE_SIZE, verbose=False)
    assert splits.counts == {
        "train": {"cat": 6, "dog": 6},
        "validation": {"cat": 3, "dog": 3},
        "test": {"cat": 2, "dog": 2},
    }


def test_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_splits(tmp_path / "nowhere", image_size=IMAGE_SIZE, verbose=False)
    three = photo_factory.make_photo_folder(tmp_path / "three", 2, size=16, class_names=("a", "b", "c"))
    with pytest.raises(ValueError, match=r"data="):
        load_splits(three, image_size=IMAGE_SIZE, verbose=False)
    no_validation = photo_factory.make_presplit_folder(tmp_path / "no_validation", size=16, splits=("train", "test"))
    with pytest.raises(ValueError, match="validation/"):
        load_splits(no_validation, image_size=IMAGE_SIZE, verbose=False)


# TensorFlow Datasets, mocked (offline).


def test_tfds_splits_under_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=10):
        splits = load_splits("tfds", image_size=IMAGE_SIZE, batch_size=4, max_images_per_split=6, verbose=False)
    assert splits.source == "tfds:cats_vs_dogs"
    assert splits.class_names == ("cat", "dog")
    assert splits.skipped == ()
    for split in (*SPLIT_NAMES, "train_in_order"):
        images, labels = _epoch(getattr(splits, split))
        assert images.shape == (6, IMAGE_SIZE, IMAGE_SIZE, 3)
        assert images.dtype == np.uint8 and labels.dtype == np.int32
        assert set(labels.tolist()) <= {0, 1}
    assert splits.num_images("validation") == 6


def test_tfds_data_of_one_class_is_refused_with_the_counts():
    tfds = pytest.importorskip("tensorflow_datasets")

    def only_cats(*args, **kwargs):
        png = tf.io.encode_png(tf.zeros((20, 20, 3), tf.uint8))
        return tf.data.Dataset.from_tensor_slices(
            {"image": [png] * 4, "label": tf.zeros(4, tf.int64), "image/filename": ["a.jpg"] * 4}
        )

    with tfds.testing.mock_data(as_dataset_fn=only_cats), pytest.raises(InputError) as error:
        load_splits("tfds", image_size=IMAGE_SIZE, max_images_per_split=6, verbose=False)
    message = str(error.value)
    assert "train: cat 4, dog 0; validation: cat 4, dog 0; test: cat 4, dog 0 (no file was skipped)" in message
    assert "raise or remove max_images_per_split" in message
    assert "Received: data='tfds', validation_fraction=0.1, test_fraction=0.1, max_images_per_split=6" in message


def test_tfds_photos_are_decoded_like_a_folders_and_bad_ones_are_skipped_and_listed(tmp_path):
    """One decoder for every source: tfds photos are oriented and resized by `decoding.decode_encoded_photo`."""
    tfds = pytest.importorskip("tensorflow_datasets")
    files = photo_factory.plant_unusual_files(tmp_path, "cat", size=40)["good"]
    names = ["exif_rotated.jpg", "gray16.png", "cmyk.jpg", "photo.bmp"]
    names = [name for name in names if name in files]
    encoded = [(tmp_path / name).read_bytes() for name in names]
    records = {
        "image": [*encoded, b"not a photo", b""] * 2,
        "label": [0, 1] * (len(encoded) + 2),
        "image/filename": [*names, "notes.jpg", "empty.jpg"] * 2,
    }

    def as_dataset(*args, **kwargs):
        return tf.data.Dataset.from_tensor_slices(records)

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        splits = load_splits("tfds", image_size=IMAGE_SIZE, batch_size=64, verbose=False)
    images, _ = _epoch(splits.test)
    for index, name in enumerate(names):
        # The same pixels a folder of these files gives, and `catsdogs predict` sees.
        np.testing.assert_array_equal(images[index], decode_photo(tmp_path / name, IMAGE_SIZE))
    reasons = {(item.path, item.reason) for item in splits.skipped}
    assert ("notes.jpg", "not an image") in reasons and ("empty.jpg", "empty file") in reasons


def test_tfds_failure_explains_how_to_run_offline(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def failing_load(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds, "load", failing_load)
    monkeypatch.setattr(tfds_source, "check_download_host", lambda: None)  # The host answers; the download fails.
    with pytest.raises(RuntimeError, match="could not download or prepare") as error:
        load_splits("tfds", image_size=IMAGE_SIZE, verbose=False)
    message = str(error.value)
    assert "no network" in message
    assert "kagglecatsanddogs_5340.zip" in message and "--data path/to/PetImages" in message
    assert isinstance(error.value.__cause__, ConnectionError)


def test_tfds_without_a_reachable_host_fails_within_seconds_and_never_starts_a_download(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    attempts = []

    def load(name, download=True, **kwargs):
        attempts.append(download)
        raise AssertionError(f"Dataset {name}: could not find data in ~/tensorflow_datasets")  # Not prepared.

    def unreachable(address, timeout=None):
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(tfds, "load", load)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    start = time.perf_counter()
    with pytest.raises(RuntimeError) as error:
        load_splits("tfds", image_size=IMAGE_SIZE, verbose=False)
    assert time.perf_counter() - start < 30
    assert attempts == [False]  # The prepared copy was looked for; no download was started.
    message = str(error.value)
    assert "has no prepared copy of 'cats_vs_dogs' and cannot download it: download.microsoft.com does not" in (message)
    assert "gaierror" in message and tfds_source.DOWNLOAD_URL in message
    assert "--data path/to/PetImages" in message and message.endswith("Received: data='tfds'")


def test_a_hung_name_lookup_is_given_up_on_after_the_timeout(monkeypatch):
    over = threading.Event()

    def hung_lookup(address, timeout=None):
        over.wait(30)  # Released when the test ends, so that the given-up thread ends with it.
        raise OSError("the test is over")

    monkeypatch.setattr(socket, "create_connection", hung_lookup)
    start = time.perf_counter()
    reason = tfds_source.check_download_host(timeout=0.5)
    over.set()
    assert reason.startswith("download.microsoft.com did not answer within")
    assert time.perf_counter() - start < 5


def test_a_petimages_folder_loads_as_it_comes(tmp_path):
    """Microsoft's kagglecatsanddogs_5340.zip, unzipped: Cat/ and Dog/, with empty, broken and non-photo files."""
    root = tmp_path / "PetImages"
    for folder, class_name in (("Cat", "cat"), ("Dog", "dog")):
        photo_factory.write_class_photos(root / folder, class_name, 10, size=40)
        (root / folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + bytes(60))  # Windows' thumbnail cache.
    (root / "Cat" / "666.jpg").write_bytes(b"")  # Zero bytes, as in the real download.
    (root / "Dog" / "11702.jpg").write_bytes(b"")
    a_photo = next(path for path in sorted((root / "Dog").glob("*.jpg")) if path.stat().st_size > 0)
    (root / "Dog" / "broken.jpg").write_bytes(a_photo.read_bytes()[:200])  # Cut short.
    (root / "Cat" / "notes.jpg").write_bytes(b"GIF? no: a text file named like a photo")
    splits = load_splits(root, image_size=IMAGE_SIZE, verbose=False, validation_fraction=0.2, test_fraction=0.2)
    assert splits.class_names == ("Cat", "Dog")
    reasons = {Path(item.path).name: item.reason for item in splits.skipped}
    assert reasons["666.jpg"] == "empty file" and reasons["11702.jpg"] == "empty file"
    assert reasons["notes.jpg"] == "not an image"
    assert reasons["broken.jpg"].startswith("truncated or corrupt")
    assert "Thumbs.db" not in reasons  # An OS dropping, ignored without a word.
    assert sum(splits.num_images(split) for split in SPLIT_NAMES) == 20


# Real photos from ../shared (skipped when absent).


@pytest.mark.shared
@pytest.mark.slow
def test_real_photos_load_completely(shared_photos):
    on_disk = {
        split: {name: len(list((shared_photos / split / name).glob("*.jpg"))) for name in ("cat", "dog")}
        for split in SPLIT_NAMES
    }
    assert {split: sum(counts.values()) for split, counts in on_disk.items()} == {
        "train": 1999,
        "validation": 1000,
        "test": 999,
    }
    splits = load_splits(shared_photos, image_size=IMAGE_SIZE, batch_size=500, verbose=False)
    assert splits.skipped == ()
    assert splits.counts == on_disk
    assert splits.class_names == ("cat", "dog")
    folder = list_photo_folder(shared_photos)
    assert folder.pre_split
    for split in ("validation", "test"):
        images, labels = _epoch(getattr(splits, split))
        assert images.shape == (splits.num_images(split), IMAGE_SIZE, IMAGE_SIZE, 3)
        expected = [label for _, label in folder.files[split]]
        assert labels.tolist() == expected
        assert collections.Counter(labels.tolist()) == {0: on_disk[split]["cat"], 1: on_disk[split]["dog"]}


# Every file gets an honest verdict, and the run goes on.


@pytest.mark.parametrize("file_cache", [False, True])
def test_unreadable_files_are_skipped_with_their_true_reason_and_the_rest_loads(tmp_path, monkeypatch, file_cache):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=8, size=40)
    expected = photo_factory.plant_unreadable_files(root / "dog")
    locked = photo_factory.write_jpeg(root / "dog" / "locked.jpg", photo_factory.synthetic_photo("dog", 40))
    expected["locked.jpg"] = "permission denied"
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):  # Root ignores chmod, so refuse this one file here.
        if isinstance(file, (str, bytes, os.PathLike)) and os.fsdecode(file) == str(locked):
            raise PermissionError(errno.EACCES, "Permission denied", str(locked))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    before = photo_factory.folder_fingerprint(root)
    cache_dir = tmp_path / "cache" if file_cache else None
    splits = load_splits(root, image_size=IMAGE_SIZE, cache_dir=cache_dir, verbose=False, **FRACTIONS)
    assert {Path(item.path).name: item.reason for item in splits.skipped} == expected
    assert photo_factory.folder_fingerprint(root) == before
    assert sum(splits.num_images(split) for split in SPLIT_NAMES) == 16
    for split in SPLIT_NAMES:
        assert len(_epoch(getattr(splits, split))[0]) == splits.num_images(split)


def test_a_file_name_that_is_not_utf8_is_loaded_and_reported_printably(tmp_path, capsys):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=8, size=40)
    path = photo_factory.write_undecodable_name_photo(root / "cat", photo_factory.synthetic_photo("cat", 40, seed=3))
    if path is None:
        pytest.skip("this file system refuses names that are not valid UTF-8")
    broken = os.fsencode(root / "dog") + b"/dog\xfe.jpg"
    with open(broken, "wb"):  # An empty file, with a name that is not UTF-8 either.
        pass
    splits = load_splits(root, image_size=IMAGE_SIZE, cache_dir=tmp_path / "cache", verbose=True, **FRACTIONS)
    assert sum(splits.counts[split]["cat"] for split in SPLIT_NAMES) == 9  # The photo is used.
    assert [(os.fsencode(item.path), item.reason) for item in splits.skipped] == [(broken, "empty file")]
    printed = capsys.readouterr().out
    assert f"{root / 'dog'}/dog\\xfe.jpg: empty file" in printed
    report = json.dumps(splits.to_dict(), ensure_ascii=False).encode("utf-8")  # Valid UTF-8 throughout.
    assert b"dog\\\\xfe.jpg" in report


def test_a_new_decoder_does_not_reuse_the_old_decoders_cache(photos, tmp_path, count_decodes, monkeypatch):
    load_splits(photos, image_size=IMAGE_SIZE, cache_dir=tmp_path / "cache", verbose=False, **FRACTIONS)
    assert len(count_decodes) == 32
    monkeypatch.setattr(caching, "DECODER_VERSION", caching.DECODER_VERSION + 1)
    load_splits(photos, image_size=IMAGE_SIZE, cache_dir=tmp_path / "cache", verbose=False, **FRACTIONS)
    assert len(count_decodes) == 64  # Pixels and reasons of the old decoder are not served again.


def test_a_missing_folder_is_a_missing_input_error(tmp_path):
    with pytest.raises(MissingInputError, match="does not exist") as error:
        load_splits(tmp_path / "nowhere", image_size=IMAGE_SIZE, verbose=False)
    assert isinstance(error.value, FileNotFoundError)


# Degenerate data is refused, not scored.


def _usable_per_split(root: Path, label: int) -> dict[str, int]:
    """Photos of one class per split, as load_splits assigns them (FRACTIONS)."""
    folder = list_photo_folder(root, **FRACTIONS)
    return {split: sum(item[1] == label for item in folder.files[split]) for split in SPLIT_NAMES}


def test_an_empty_class_folder_is_refused_with_the_counts_per_split_and_class(tmp_path):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=12, size=16, class_names=("cat",))
    (root / "dog").mkdir()
    cats = _usable_per_split(root, 0)
    with pytest.raises(InputError) as error:
        load_splits(root, image_size=IMAGE_SIZE, verbose=False, **FRACTIONS)
    message = str(error.value)
    assert "train has no dog, validation has no dog, test has no dog" in message
    counts = "; ".join(f"{split}: cat {cats[split]}, dog 0" for split in SPLIT_NAMES)
    assert f"Usable photos per split and class: {counts} (no file was skipped)" in message
    assert counts.startswith("train: cat ")
    assert "Add usable photos of dog to dog/, or change validation_fraction/test_fraction" in message
    assert f"Received: data={str(root)!r}, validation_fraction=0.25, test_fraction=0.25" in message


def test_a_class_of_broken_files_is_refused_with_the_counts_and_the_skipped_files(tmp_path):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=12, size=16, class_names=("cat",))
    for index in range(6):
        (root / "dog" / f"dog.{index}.jpg").parent.mkdir(exist_ok=True)
        (root / "dog" / f"dog.{index}.jpg").write_bytes(b"")
    with pytest.raises(InputError) as error:
        load_splits(root, image_size=IMAGE_SIZE, verbose=False, **FRACTIONS)
    message = str(error.value)
    assert "has no dog" in message and "dog 0;" in message
    assert "6 file(s) skipped, for example " in message
    assert f"{root / 'dog'}/dog." in message and ": empty file" in message


def test_a_single_photo_of_a_class_is_refused(tmp_path):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=12, size=16, class_names=("cat",))
    photo_factory.write_class_photos(root / "dog", "dog", 1, size=16)
    dogs = _usable_per_split(root, 1)
    assert sorted(dogs.values()) == [0, 0, 1]
    with pytest.raises(InputError) as error:
        load_splits(root, image_size=IMAGE_SIZE, verbose=False, **FRACTIONS)
    lacking = ", ".join(f"{split} has no dog" for split in SPLIT_NAMES if not dogs[split])
    assert f"but {lacking}." in str(error.value)
    for split in SPLIT_NAMES:
        assert f"{split}: cat " in str(error.value) and f", dog {dogs[split]}" in str(error.value)


def test_a_pre_split_folder_lacking_a_class_in_one_split_is_refused(tmp_path):
    root = photo_factory.make_presplit_folder(tmp_path / "photos", {"train": 4, "validation": 2, "test": 2}, size=16)
    for path in (root / "test" / "dog").iterdir():
        path.unlink()
    with pytest.raises(InputError) as error:
        load_splits(root, image_size=IMAGE_SIZE, verbose=False)
    message = str(error.value)
    assert "but test has no dog." in message
    assert "train: cat 4, dog 4; validation: cat 2, dog 2; test: cat 2, dog 0 (no file was skipped)" in message
    assert "Add usable photos of dog to test/dog/." in message
    assert f"Received: data={str(root)!r}, max_images_per_split=None" in message  # Fractions do not apply.


def test_an_empty_split_is_refused(tmp_path):
    root = photo_factory.make_presplit_folder(tmp_path / "photos", {"train": 4, "validation": 2, "test": 0}, size=16)
    with pytest.raises(InputError) as error:
        load_splits(root, image_size=IMAGE_SIZE, verbose=False)
    assert "but test has no cat, test has no dog." in str(error.value)
    assert "test: cat 0, dog 0" in str(error.value)
    assert "Add usable photos of cat and dog to test/cat/, test/dog/." in str(error.value)


def test_evaluation_photos_load_with_their_counts_and_skipped_files(tmp_path):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=5, size=40)
    (root / "dog" / "empty.jpg").write_bytes(b"")
    dataset, class_names, counts, skipped = load_labelled_photos(
        root, image_size=IMAGE_SIZE, verbose=False, test_split_only=False
    )
    assert class_names == ("cat", "dog")
    assert counts == {"cat": 5, "dog": 5}
    assert [(Path(item.path).name, item.reason) for item in skipped] == [("empty.jpg", "empty file")]
    images, labels = _epoch(dataset)
    assert images.shape == (10, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert sorted(labels.tolist()) == [0] * 5 + [1] * 5


def test_evaluation_photos_of_no_class_are_refused_with_the_counts(tmp_path):
    root = tmp_path / "photos"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    with pytest.raises(InputError) as error:
        load_labelled_photos(root, image_size=IMAGE_SIZE, verbose=False, test_split_only=False)
    assert f"but {root} has no usable photo of cat or dog: usable photos cat 0, dog 0" in str(error.value)
    assert "Add usable photos of cat and dog to cat/, dog/" in str(error.value)


def test_evaluation_photos_of_one_class_are_refused_with_the_counts(tmp_path):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=5, size=16, class_names=("cat",))
    (root / "dog").mkdir()
    (root / "dog" / "broken.jpg").write_bytes(b"not a photo at all")
    with pytest.raises(InputError) as error:
        load_labelled_photos(root, image_size=IMAGE_SIZE, verbose=False, test_split_only=False)
    message = str(error.value)
    assert f"but {root} has no usable photo of dog: usable photos cat 5, dog 0" in message
    assert f"1 file(s) skipped, for example {root / 'dog' / 'broken.jpg'}: not an image" in message
    assert "Add usable photos of dog to dog/" in message
    assert f"Received: data={str(root)!r}" in message


def test_evaluation_of_a_flat_folder_uses_its_hash_test_split_by_default(tmp_path):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=40, size=16)
    test_files = list_photo_folder(root).files["test"]
    _, _, counts, _ = load_labelled_photos(root, image_size=IMAGE_SIZE, verbose=False)
    assert sum(counts.values()) == len(test_files) and 0 < len(test_files) < 80
    assert counts == {name: sum(1 for _, label in test_files if label == index) for index, name in enumerate(counts)}
    for path, _ in test_files:
        Path(path).unlink()
    with pytest.raises(InputError, match="its test split"):
        load_labelled_photos(root, image_size=IMAGE_SIZE, verbose=False)


def test_evaluation_of_a_pre_split_folder_uses_its_test_photos_and_refuses_one_class(tmp_path):
    root = photo_factory.make_presplit_folder(tmp_path / "photos", {"train": 4, "validation": 2, "test": 3}, size=16)
    _, _, counts, _ = load_labelled_photos(root, image_size=IMAGE_SIZE, verbose=False)
    assert counts == {"cat": 3, "dog": 3}
    for path in (root / "test" / "cat").iterdir():
        path.unlink()
    with pytest.raises(InputError) as error:
        load_labelled_photos(root, image_size=IMAGE_SIZE, verbose=False)
    assert f"but {root} (its test/ folder) has no usable photo of cat: usable photos cat 0, dog 3" in str(error.value)
    assert "Add usable photos of cat to test/cat/" in str(error.value)


def test_a_folder_that_loses_most_of_its_files_to_skips_says_so_on_the_console(tmp_path, capsys):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=2, size=16)
    for name in ("cat", "dog"):
        for index in range(3):
            (root / name / f"scan{index}.pdf").write_bytes(b"%PDF-1.4")
    load_labelled_photos(root, image_size=16, verbose=False, test_split_only=False)
    assert capsys.readouterr().err.strip() == (
        f"warning: 6 of the 10 files of {root} were skipped (6 not a photo (extension '.pdf')); only 4 photos are used."
    )
    (root / "cat" / "scan0.pdf").unlink()
    for name in ("cat", "dog"):
        (root / name / "scan1.pdf").unlink()
    load_labelled_photos(root, image_size=16, verbose=False, test_split_only=False)
    assert capsys.readouterr().err == ""  # 3 of 7 skipped: the JSON lists them.
