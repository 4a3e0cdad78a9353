"""Reading photos from disk: listing a folder, splitting it stably, decoding any image to RGB.

Files are only ever opened for reading: nothing here modifies, moves or
deletes a user's file, however broken it is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
IGNORED_FILE_NAMES = ("thumbs.db", "desktop.ini")
SPLIT_NAMES = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    """A file that was not used, and why."""

    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class PhotoFolder:
    """The photos of a folder, assigned to splits.

    Attributes:
        class_names: Class names, sorted; a photo's label is its index here.
        files: For each split, `(path, label)` pairs in a stable pseudo-random order.
        skipped: Files that are not photos (by their extension).
        pre_split: Whether the folder came with `train/`, `validation/`, `test/`.
    """

    class_names: tuple[str, ...]
    files: dict[str, list[tuple[str, int]]]
    skipped: tuple[SkippedFile, ...]
    pre_split: bool


def _stable_fraction(key: str) -> float:
    """Maps a string to [0, 1), the same on every run and machine."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _is_ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in IGNORED_FILE_NAMES


def _list_class_folders(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir() if entry.is_dir() and not _is_ignored(entry.name))


def _list_files(directory: Path) -> list[Path]:
    found = []
    for root, folders, names in os.walk(directory):
        folders[:] = sorted(folder for folder in folders if not _is_ignored(folder))
        found.extend(Path(root) / name for name in sorted(names) if not _is_ignored(name))
    return found


def _check_class_folders(directory: Path, class_names: list[str], root: Path) -> None:
    if len(class_names) != 2:
        raise ValueError(
            f"Expected exactly two class folders (for example cat/ and dog/) in {directory}, "
            f"found {len(class_names)}: {class_names}. Put each class's photos in its own "
            f"sub-folder. Received: data={str(root)!r}"
        )


def list_photo_folder(
    directory: str | os.PathLike,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> PhotoFolder:
    """Lists the photos of a folder and assigns each one to a split.

    The folder holds either one sub-folder per class (exactly two; the names,
    sorted, become the class names), or `train/`, `validation/` and `test/`
    each holding the same class folders. Without a pre-split, a photo's split
    is decided by a hash of its path relative to the folder, so it never changes
    between runs or machines and the splits are disjoint. Hidden files,
    `Thumbs.db` and `desktop.ini` are ignored; files whose extension is not a
    photo's are skipped and reported.

    Args:
        directory: The folder.
        validation_fraction: Share of photos for validation. Defaults to `0.1`.
        test_fraction: Share of photos for the test. Defaults to `0.1`.

    Returns:
        A `PhotoFolder`.

    Raises:
        FileNotFoundError: If the folder does not exist.
        ValueError: If it does not hold exactly two class folders.
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"The photo folder does not exist: {root}. Pass a folder with one sub-folder per "
            f'class, or "tfds" for TensorFlow Datasets. Received: data={str(directory)!r}'
        )
    top_folders = _list_class_folders(root)
    pre_split = "train" in top_folders
    if pre_split:
        missing = [name for name in SPLIT_NAMES if name not in top_folders]
        if missing:
            raise ValueError(
                f"{root} has a train/ folder but no {'/, '.join(missing)}/ folder. Either add "
                "train/, validation/ and test/ (each with the class folders) or put the class "
                f"folders directly in {root} to have it split for you. Received: data={str(directory)!r}"
            )
        class_names = _list_class_folders(root / "train")
        _check_class_folders(root / "train", class_names, root)
        for split in SPLIT_NAMES[1:]:
            if _list_class_folders(root / split) != class_names:
                raise ValueError(
                    f"{root / split} must hold the same class folders as {root / 'train'} "
                    f"({class_names}), found {_list_class_folders(root / split)}. "
                    f"Received: data={str(directory)!r}"
                )
    else:
        class_names = top_folders
        _check_class_folders(root, class_names, root)

    files: dict[str, list[tuple[str, int]]] = {split: [] for split in SPLIT_NAMES}
    skipped = []
    for label, class_name in enumerate(class_names):
        class_dirs = (
            [(split, root / split / class_name) for split in SPLIT_NAMES] if pre_split else [(None, root / class_name)]
        )
        for fixed_split, class_dir in class_dirs:
            for path in _list_files(class_dir):
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    skipped.append(SkippedFile(str(path), f"not a photo (extension {path.suffix or 'none'!r})"))
                    continue
                key = path.relative_to(root).as_posix()
                split = fixed_split or _split_of(_stable_fraction(key), validation_fraction, test_fraction)
                files[split].append((str(path), label))
    for split in SPLIT_NAMES:
        files[split].sort(key=lambda item: _stable_fraction(Path(item[0]).relative_to(root).as_posix() + "#order"))
    return PhotoFolder(tuple(class_names), files, tuple(skipped), pre_split)


def _split_of(fraction: float, validation_fraction: float, test_fraction: float) -> str:
    if fraction < test_fraction:
        return "test"
    if fraction < test_fraction + validation_fraction:
        return "validation"
    return "train"


def _to_rgb(image: Image.Image) -> Image.Image:
    """Converts any PIL mode to RGB, compositing transparency over white."""
    if image.mode == "RGB":
        return image
    if (image.mode == "P" and "transparency" in image.info) or image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = array.max() or 1.0
        return Image.fromarray(np.uint8(np.clip(array / top * 255.0, 0, 255))).convert("RGB")
    return image.convert("RGB")


def decode_photo(path: str | os.PathLike, image_size: int | None = None) -> np.ndarray:
    """Reads a photo as an RGB `uint8` array, optionally resized to a square.

    JPEG, PNG, BMP and GIF (first frame) are read; grayscale, RGBA, palette and
    CMYK photos become RGB; EXIF orientation is applied.

    Args:
        path: The photo's path.
        image_size: Resize to `image_size` x `image_size` pixels, or `None` to
            keep the photo's size. Defaults to `None`.

    Returns:
        An array of shape `(height, width, 3)` and dtype `uint8`.

    Raises:
        ValueError: If the file is empty, not an image, truncated or corrupt;
            the message says which.
    """
    try:
        empty = os.path.getsize(path) == 0
    except OSError:
        raise ValueError("file not found or not readable") from None
    if empty:
        raise ValueError("empty file")
    try:
        with Image.open(path) as image:
            if image_size is not None:
                image.draft("RGB", (image_size, image_size))  # Fast JPEG decoding at reduced scale.
            image = ImageOps.exif_transpose(image)
            image = _to_rgb(image)
            if image_size is not None:
                image = image.resize((image_size, image_size), Image.Resampling.BILINEAR, reducing_gap=3.0)
            return np.asarray(image, dtype=np.uint8).copy()
    except UnidentifiedImageError:
        raise ValueError("not an image") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise ValueError(f"truncated or corrupt ({error})") from None
