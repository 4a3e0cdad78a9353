"""Tests of catsdogs_helpers.photos and .decoding: listing, stable splitting, decoding any photo to RGB."""

import builtins
import contextlib
import errno
import io
import os
import shutil
from pathlib import Path

import numpy as np
import photo_factory
import pytest
from PIL import Image

from catsdogs_helpers.decoding import MAX_PIXELS, UnreadablePhotoError, decode_photo, printable_path
from catsdogs_helpers.errors import InputError, MissingInputError
from catsdogs_helpers.photos import SPLIT_NAMES, list_photo_folder, list_photos


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


@pytest.mark.parametrize("extension", [".webp", ".tif", ".tiff", ".png", ".bmp", ".jfif", ".avif"])
def test_every_format_pillow_reads_is_a_photo_for_every_command(tmp_path, extension):
    if extension == ".avif" and "AVIF" not in Image.SAVE:
        pytest.skip("this Pillow cannot write AVIF")
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        Image.fromarray(photo_factory.synthetic_photo(name, 16)).save(tmp_path / name / f"a{extension}")
    folder = list_photo_folder(tmp_path, 0.1, 0.1)
    paths = [path for split in SPLIT_NAMES for path, _ in folder.files[split]]
    assert folder.skipped == () and len(paths) == 2 and paths[0].endswith(extension)
    assert list_photos(tmp_path) == sorted(paths)  # The export's check photos: any depth, any layout.
    assert decode_photo(paths[0], 8).shape == (8, 8, 3)


def test_a_heic_photo_that_pillow_cannot_read_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr("catsdogs_helpers.decoding.HEIF_PLUGIN", False)
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "IMG_0001.HEIC").write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(64))
    folder = list_photo_folder(tmp_path, 0.1, 0.1)
    assert folder.skipped == ()  # A photo: decoding says why it cannot be used.
    with pytest.raises(UnreadablePhotoError, match=r'HEIC/HEIF photo.*pip install "catsdogs-helpers\[heif\]"'):
        decode_photo(tmp_path / "cat" / "IMG_0001.HEIC")


def test_a_heic_photo_is_read_through_the_plugin(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif", reason='needs pip install "catsdogs-helpers[heif]"')
    pixels = photo_factory.synthetic_photo("cat", 32)
    pillow_heif.from_bytes(mode="RGB", size=(32, 32), data=pixels.tobytes()).save(tmp_path / "IMG.heic", quality=95)
    decoded = decode_photo(tmp_path / "IMG.heic")
    assert decoded.shape == (32, 32, 3)  # Lossy, chroma subsampled: the colours, not every pixel, come back.
    assert np.abs(decoded.mean(axis=(0, 1)) - pixels.mean(axis=(0, 1))).max() < 5
    (tmp_path / "broken.heic").write_bytes((tmp_path / "IMG.heic").read_bytes()[:40])
    with pytest.raises(UnreadablePhotoError, match=r"truncated or corrupt \(a HEIC/HEIF file pillow-heif cannot"):
        decode_photo(tmp_path / "broken.heic")


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


# Every file gets an honest verdict: decoded, or skipped with the true reason.


def _refuse_to_open(monkeypatch, refused: Path, error: OSError) -> None:
    """Makes opening `refused` for reading raise `error`; every other file opens as usual."""
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and os.fsdecode(file) == str(refused):
            raise error
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)


@pytest.mark.parametrize("image_size", [None, 24])
def test_each_unreadable_file_is_refused_with_its_true_reason(tmp_path, image_size):
    expected = photo_factory.plant_unreadable_files(tmp_path / "cat")
    (tmp_path / "cat" / "folder.jpg").mkdir()
    expected["folder.jpg"] = "is a directory"
    photo_factory.write_huge_png(tmp_path / "cat" / "huge.png", 20_000, 10_000)
    expected["huge.png"] = f"too large (20000×10000 pixels, limit {MAX_PIXELS:,})"
    for name, reason in expected.items():
        with pytest.raises(UnreadablePhotoError) as error:
            decode_photo(tmp_path / "cat" / name, image_size)
        assert str(error.value) == reason, name
        assert isinstance(error.value, InputError) and isinstance(error.value, ValueError)


def test_a_file_that_cannot_be_opened_is_refused_as_permission_denied(tmp_path, monkeypatch):
    # Monkeypatched, not chmod-ed: root (as in CI containers) reads files whatever their permissions.
    path = photo_factory.write_jpeg(tmp_path / "secret.jpg", photo_factory.synthetic_photo("cat", 16))
    _refuse_to_open(monkeypatch, path, PermissionError(errno.EACCES, "Permission denied", str(path)))
    with pytest.raises(UnreadablePhotoError) as error:
        decode_photo(path, 16)
    assert str(error.value) == "permission denied"


def test_a_failing_disk_is_reported_as_a_read_error_not_as_a_corrupt_photo(tmp_path, monkeypatch):
    path = photo_factory.write_jpeg(tmp_path / "photo.jpg", photo_factory.synthetic_photo("cat", 64))
    header = path.read_bytes()[:600]

    class FailingFile(io.BytesIO):
        def read(self, size=-1):
            if self.tell() + (size if size >= 0 else len(header)) > len(header):
                raise OSError(errno.EIO, "Input/output error")
            return super().read(size)

    real_open = builtins.open
    monkeypatch.setattr(
        builtins, "open", lambda file, *a, **k: FailingFile(header) if file == path else real_open(file, *a, **k)
    )
    with pytest.raises(UnreadablePhotoError) as error:
        decode_photo(path)
    assert str(error.value) == "cannot be read (Input/output error)"


def test_a_16_bit_png_decodes_to_the_pixels_of_its_8_bit_version(tmp_path):
    path_8_bit, path_16_bit = photo_factory.write_gray_pair(tmp_path, size=32)
    assert Image.open(path_16_bit).mode.startswith("I;16")
    for image_size in (None, 20):
        eight = decode_photo(path_8_bit, image_size).astype(int)
        sixteen = decode_photo(path_16_bit, image_size).astype(int)
        assert np.abs(sixteen - eight).max() <= 1, image_size
    # Scaled by the bit depth, not stretched to the image's own maximum (200 stays 200).
    assert decode_photo(path_16_bit).max() == 200
    assert decode_photo(path_16_bit).min() == 10


def test_32_bit_integer_images_are_read_as_16_bit_levels_and_clipped(tmp_path):
    levels = np.array([[0, 257 * 100, 65535, 70000, -5]], dtype=np.int32)
    Image.fromarray(levels).save(tmp_path / "levels.tif")  # Content, not extension, decides the format.
    assert Image.open(tmp_path / "levels.tif").mode == "I"
    assert decode_photo(tmp_path / "levels.tif")[0, :, 0].tolist() == [0, 100, 255, 255, 0]


def test_a_200_megapixel_jpeg_is_read_reduced_when_a_size_is_given(tmp_path):
    path = tmp_path / "phone.jpg"
    Image.new("L", (16_384, 12_288), 128).save(path, format="JPEG", quality=50)  # Over Pillow's own limit.
    image = decode_photo(path, image_size=224)
    assert image.shape == (224, 224, 3)
    assert np.abs(image.astype(int) - 128).max() <= 1
    # At full size it would take about 0.8 GB: too large, and the message says so.
    with pytest.raises(UnreadablePhotoError) as error:
        decode_photo(path)
    assert str(error.value) == f"too large (16384×12288 pixels, limit {MAX_PIXELS:,})"


def test_the_pixel_limit_applies_to_the_pixels_decoded(tmp_path, monkeypatch):
    jpeg = photo_factory.write_jpeg(tmp_path / "photo.jpg", photo_factory.synthetic_photo("dog", 64))
    png = photo_factory.write_huge_png(tmp_path / "photo.png", 64, 64)
    assert decode_photo(png).shape == (64, 64, 3)  # The crafted PNG is valid: black.
    assert decode_photo(png).max() == 0
    # Pillow's own refusal (here lowered, for this test only) must not decide: the file is read.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert decode_photo(jpeg, 8, max_pixels=1000).shape == (8, 8, 3)  # Decoded at 1/8 scale: 64 pixels.
    reference = photo_factory.synthetic_photo("dog", 64).astype(float).mean(axis=(0, 1))
    assert np.abs(decode_photo(jpeg, 8, max_pixels=1000).mean(axis=(0, 1)) - reference).max() < 8
    with pytest.raises(UnreadablePhotoError) as error:
        decode_photo(jpeg, 16, max_pixels=100)  # Reduced by 4, to 16×16 = 256 pixels: still too many.
    assert str(error.value) == "too large (64×64 pixels, still 16×16 when reduced, limit 100)"
    for path, image_size, reason in [
        (jpeg, None, "too large (64×64 pixels, limit 1,000)"),
        (jpeg, 40, "too large (64×64 pixels, limit 1,000)"),  # 40 px: no reduction by 2 or more is possible.
        (jpeg, 2000, "too large (64×64 pixels, limit 1,000)"),
        (png, 8, "too large (64×64 pixels, limit 1,000)"),  # A PNG cannot be reduced while decoding.
    ]:
        with pytest.raises(UnreadablePhotoError) as error:
            decode_photo(path, image_size, max_pixels=1000)
        assert str(error.value) == reason, (path.name, image_size)


def test_a_file_name_that_is_not_utf8_is_listed_and_decoded(tmp_path):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=4, size=16)
    image = photo_factory.synthetic_photo("cat", 16, seed=5)
    path = photo_factory.write_undecodable_name_photo(root / "cat", image)
    if path is None:
        pytest.skip("this file system refuses names that are not valid UTF-8")
    folder = list_photo_folder(root)
    listed = [listed_path for split in SPLIT_NAMES for listed_path, _ in folder.files[split]]
    assert path in listed
    assert os.fsencode(path).endswith(b"/cat\xff.jpg")  # The exact bytes round-trip.
    assert folder.files == list_photo_folder(root).files  # Its split is stable, like any other.
    twin = tmp_path / "twin.jpg"  # The same bytes under a plain name.
    twin.write_bytes(Path(path).read_bytes())
    np.testing.assert_array_equal(decode_photo(path, 16), decode_photo(twin, 16))
    assert np.abs(decode_photo(path).astype(int) - image).mean() < 16  # And it is the photo written.
    assert printable_path(path).endswith("/cat\\xff.jpg")
    printable_path(path).encode("utf-8")  # Printable: no lone surrogates.


# Listing: every file under a class folder is listed or reported.


def test_links_to_folders_are_reported_not_silently_dropped(tmp_path):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=3, size=16)
    photo_factory.write_class_photos(tmp_path / "elsewhere", "cat", 2, size=16)
    os.symlink(tmp_path / "elsewhere", root / "cat" / "linked")
    os.symlink(root / "dog", root / "cat" / "loop")  # Following it would label dogs as cats.
    folder = list_photo_folder(root)
    assert sum(len(folder.files[split]) for split in SPLIT_NAMES) == 6
    assert {Path(item.path).name: item.reason for item in folder.skipped} == {
        "linked": "symbolic link to a folder (not followed: link or copy the photos themselves)",
        "loop": "symbolic link to a folder (not followed: link or copy the photos themselves)",
    }


def test_a_class_folder_that_is_a_link_is_read(tmp_path):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=3, size=16, class_names=("cat",))
    photo_factory.write_class_photos(tmp_path / "dogs_elsewhere", "dog", 4, size=16)
    os.symlink(tmp_path / "dogs_elsewhere", root / "dog")
    folder = list_photo_folder(root)
    labels = [label for split in SPLIT_NAMES for _, label in folder.files[split]]
    assert folder.class_names == ("cat", "dog")
    assert (labels.count(0), labels.count(1)) == (3, 4)
    assert folder.skipped == ()


def test_a_folder_that_cannot_be_listed_is_reported(tmp_path, monkeypatch):
    root = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=3, size=16)
    photo_factory.write_class_photos(root / "dog" / "locked", "dog", 2, size=16)
    real_scandir = os.scandir

    def guarded_scandir(path="."):
        if os.fspath(path) == str(root / "dog" / "locked"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", guarded_scandir)
    folder = list_photo_folder(root)
    assert sum(len(folder.files[split]) for split in SPLIT_NAMES) == 6
    assert [(item.path, item.reason) for item in folder.skipped] == [
        (str(root / "dog" / "locked"), "folder cannot be listed (permission denied)")
    ]


def test_a_file_given_as_the_folder_is_refused_as_not_a_folder(tmp_path):
    path = photo_factory.write_jpeg(tmp_path / "photo.jpg", photo_factory.synthetic_photo("cat", 8))
    with pytest.raises(MissingInputError, match="is not a folder") as error:
        list_photo_folder(path)
    assert f"data={str(path)!r}" in str(error.value)
