"""Tests of catsdogs_helpers.data: tf.data pipelines from a folder, from tfds (mocked), and from real photos."""

import collections
import hashlib
from pathlib import Path

import numpy as np
import photo_factory
import pytest
import tensorflow as tf

from catsdogs_helpers import data
from catsdogs_helpers.data import load_splits
from catsdogs_helpers.photos import SPLIT_NAMES, decode_photo, list_photo_folder

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


def test_an_empty_split_is_an_error(tmp_path):
    root = photo_factory.make_presplit_folder(tmp_path / "photos", {"train": 4, "validation": 2, "test": 0}, size=16)
    with pytest.raises(ValueError, match="test split has no usable photo"):
        load_splits(root, image_size=IMAGE_SIZE, verbose=False)
    # A split whose only photos are broken is empty too.
    for path in (root / "test" / "cat").iterdir():
        path.unlink()
    (root / "test" / "cat" / "broken.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="test split has no usable photo"):
        load_splits(root, image_size=IMAGE_SIZE, verbose=False)


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


def test_tfds_failure_explains_how_to_run_offline(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def failing_load(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds, "load", failing_load)
    with pytest.raises(RuntimeError, match="offline") as error:
        load_splits("tfds", image_size=IMAGE_SIZE, verbose=False)
    message = str(error.value)
    assert "no network" in message
    assert "folder" in message and "--data" in message
    assert isinstance(error.value.__cause__, ConnectionError)


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
