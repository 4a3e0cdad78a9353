"""Tests of catsdogs_helpers.photos: listing, stable splitting, decoding any photo to RGB."""

import contextlib
import shutil
from pathlib import Path

import numpy as np
import photo_factory
import pytest

from catsdogs_helpers.photos import SPLIT_NAMES, decode_photo, list_photo_folder


def _relative_assignment(folder, root: Path) -> dict[str, list[tuple[str, int]]]:
    """Returns each split's `(path relative to root, label)` pairs, in their order."""
    return {
        split: [(Path(path).relative_to(root).as_posix(), label) for path, label in folder.files[split]]
        for split in SPLIT_NAMES
    }


@pytest.fixture
def unusual_folder(tmp_path):
    """A two-class folder whose cat/ also holds broken, hidden and unusual files."""
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=6, size=32)
    planted = photo_factory.plant_unusual_files(root / "cat")
    return root, planted


# Listing.


def test_listing_skips_non_photos_and_ignores_hidden_files(unusual_folder):
    root, planted = unusual_folder
    folder = list_photo_folder(root)
    listed = {Path(path).name for split in SPLIT_NAMES for path, _ in folder.files[split]}
    skipped = {Path(item.path).name: item.reason for item in folder.skipped}
    assert folder.class_names == ("cat", "dog")
    assert not folder.pre_split
    # Only the extension is judged here; broken photos are found when decoding.
    assert skipped == {"notes.txt": "not a photo (extension '.txt')"}
    assert set(planted["good"]) <= listed
    assert set(planted["bad"]) - {"notes.txt"} <= listed
    assert not set(planted["ignored"]) & (listed | set(skipped))
    assert len(listed) == 12 + len(planted["good"]) + len(planted["bad"]) - 1


def test_listing_ignores_hidden_folders_and_reads_nested_ones(tmp_path):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=3, size=16)
    photo_factory.write_class_photos(root / ".ipynb_checkpoints", "cat", 2, size=16)  # Jupyter's droppings.
    photo_factory.write_class_photos(root / "cat" / ".hidden", "cat", 2, size=16)
    photo_factory.write_class_photos(root / "cat" / "more", "cat", 2, size=16)
    folder = list_photo_folder(root)
    assert folder.class_names == ("cat", "dog")
    paths = [Path(path).relative_to(root).as_posix() for split in SPLIT_NAMES for path, _ in folder.files[split]]
    assert len(paths) == 3 + 2 + 3
    assert not any("/." in path or path.startswith(".") for path in paths)
    assert sum(path.startswith("cat/more/") for path in paths) == 2


def test_listing_never_modifies_the_folder(unusual_folder):
    root, _ = unusual_folder
    before = photo_factory.folder_fingerprint(root)
    folder = list_photo_folder(root)
    for split in SPLIT_NAMES:
        for path, _ in folder.files[split]:
            with contextlib.suppress(ValueError):  # Broken photos must stay as they are, too.
                decode_photo(path, 32)
    assert photo_factory.folder_fingerprint(root) == before


# Splitting a folder that is not pre-split.


def test_splits_are_disjoint_stable_cover_every_photo_and_follow_the_fractions(tmp_path):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=100, size=8)
    first = list_photo_folder(root, validation_fraction=0.1, test_fraction=0.2)
    second = list_photo_folder(str(root), validation_fraction=0.1, test_fraction=0.2)
    assert first.files == second.files
    paths = {split: {path for path, _ in first.files[split]} for split in SPLIT_NAMES}
    assert not paths["train"] & paths["validation"]
    assert not paths["train"] & paths["test"]
    assert not paths["validation"] & paths["test"]
    on_disk = {str(path) for path in root.rglob("*.jpg")}
    assert set().union(*paths.values()) == on_disk
    counts = {split: len(first.files[split]) for split in SPLIT_NAMES}
    assert sum(counts.values()) == 200
    assert 10 <= counts["validation"] <= 32  # About 20 expected.
    assert 25 <= counts["test"] <= 55  # About 40 expected.
    for split in SPLIT_NAMES:  # Both classes everywhere, labels from the folder names.
        labels = [label for _, label in first.files[split]]
        assert set(labels) == {0, 1}
        assert all(Path(path).parent.name == ("cat", "dog")[label] for path, label in first.files[split])
    # Shuffled, not grouped by class.
    train_labels = [label for _, label in first.files["train"]]
    assert train_labels != sorted(train_labels)


def test_split_assignment_does_not_depend_on_the_folder_location(tmp_path):
    root = photo_factory.make_photo_folder(tmp_path / "here" / "photos", num_per_class=30, size=8)
    moved = Path(shutil.copytree(root, tmp_path / "somewhere" / "else" / "copied"))
    assert _relative_assignment(list_photo_folder(root), root) == _relative_assignment(list_photo_folder(moved), moved)


def test_a_photo_keeps_its_split_when_others_are_added(tmp_path):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=20, size=8)
    before = _relative_assignment(list_photo_folder(root), root)
    photo_factory.write_class_photos(root / "dog" / "new", "dog", 10, size=8)
    after = _relative_assignment(list_photo_folder(root), root)
    for split in SPLIT_NAMES:
        assert set(before[split]) <= set(after[split])


# Pre-split folders and layout errors.


def test_pre_split_folder_keeps_its_splits(tmp_path):
    root = photo_factory.make_presplit_folder(tmp_path / "photos", {"train": 5, "validation": 3, "test": 2}, size=8)
    folder = list_photo_folder(root, validation_fraction=0.3, test_fraction=0.3)
    assert folder.pre_split
    assert folder.class_names == ("cat", "dog")
    assert folder.skipped == ()
    for split, num_per_class in {"train": 5, "validation": 3, "test": 2}.items():
        assert len(folder.files[split]) == 2 * num_per_class
        for path, label in folder.files[split]:
            relative = Path(path).relative_to(root)
            assert relative.parts[:2] == (split, ("cat", "dog")[label])


def test_pre_split_folder_without_validation_is_rejected(tmp_path):
    root = photo_factory.make_presplit_folder(tmp_path / "photos", size=8, splits=("train", "test"))
    with pytest.raises(ValueError, match="validation/") as error:
        list_photo_folder(root)
    assert f"data={str(root)!r}" in str(error.value)


def test_pre_split_folders_must_hold_the_same_classes(tmp_path):
    root = photo_factory.make_presplit_folder(tmp_path / "photos", size=8)
    shutil.move(root / "test" / "dog", root / "test" / "dogs")
    with pytest.raises(ValueError, match="same class folders"):
        list_photo_folder(root)


def test_three_class_folders_are_rejected(tmp_path):
    root = photo_factory.make_photo_folder(tmp_path / "photos", 2, size=8, class_names=("cat", "dog", "bird"))
    with pytest.raises(ValueError, match="exactly two class folders") as error:
        list_photo_folder(root)
    assert f"data={str(root)!r}" in str(error.value)
    assert "bird" in str(error.value)


def test_a_folder_without_class_folders_is_rejected(tmp_path):
    photo_factory.write_class_photos(tmp_path / "flat", "cat", 3, size=8)
    with pytest.raises(ValueError, match="found 0"):
        list_photo_folder(tmp_path / "flat")


def test_missing_folder_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist") as error:
        list_photo_folder(tmp_path / "nowhere")
    assert "data=" in str(error.value)


# Decoding.


def test_unusual_photos_decode_to_rgb(unusual_folder):
    root, planted = unusual_folder
    for name, (height, width) in planted["good"].items():
        image = decode_photo(root / "cat" / name)
        assert image.dtype == np.uint8, name
        assert image.shape == (height, width, 3), name
        resized = decode_photo(root / "cat" / name, image_size=24)
        assert resized.dtype == np.uint8, name
        assert resized.shape == (24, 24, 3), name


def test_decoding_details(unusual_folder):
    root, planted = unusual_folder
    cat = root / "cat"
    # Transparent pixels become white, opaque ones keep their colour.
    for name in ("rgba.png", "palette.png"):
        image = decode_photo(cat / name)
        assert (image[:5] == 255).all(), name
        assert image[-5:].mean(axis=(0, 1))[0] > image[-5:].mean(axis=(0, 1))[2], name
    # An animated GIF gives its first frame (red).
    red, green, blue = decode_photo(cat / "animated.gif").reshape(-1, 3).mean(axis=0)
    assert red > 200 and green < 60 and blue < 60
    # Grayscale sources give three equal channels.
    for name in ("grayscale.jpg", "gray16.png"):
        if name in planted["good"]:
            image = decode_photo(cat / name).astype(int)
            assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all(), name
    if "gray16.png" in planted["good"]:  # 16-bit levels are scaled to 8 bits, not clipped.
        image = decode_photo(cat / "gray16.png")
        assert image.min() < 10 and image.max() > 245
    # CMYK and BMP photos look like the RGB original.
    reference = decode_photo(cat / "UPPER_CASE.PNG").astype(float)
    assert np.abs(decode_photo(cat / "photo.bmp") - reference).max() == 0
    assert np.abs(decode_photo(cat / "cmyk.jpg") - reference).mean() < 12


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("truncated.jpg", "truncated or corrupt"),
        ("empty.jpg", "empty file"),
        ("random_bytes.jpg", "not an image"),
        ("notes.txt", "not an image"),
        ("Thumbs.db", "not an image"),
        ("missing.jpg", "not found"),
    ],
)
def test_broken_files_raise_value_error_with_the_reason(unusual_folder, name, reason):
    root, _ = unusual_folder
    with pytest.raises(ValueError, match=reason):
        decode_photo(root / "cat" / name, image_size=32)
