"""Listing a folder of labelled photos and splitting it stably into train, validation and test.

Files are only ever opened for reading; which files are photos, and how each is
decoded, is `decoding.py`'s business.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from catsdogs_helpers.decoding import IMAGE_EXTENSIONS, describe_os_error, printable_path
from catsdogs_helpers.errors import InputError, MissingInputError

IGNORED_FILE_NAMES = ("thumbs.db", "desktop.ini")
SPLIT_NAMES = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    """A file (or folder) that was not used, and why.

    `path` is the path as Python sees it; `printable_path(path)` shows names
    that are not valid UTF-8.
    """

    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class PhotoFolder:
    """The photos of a folder, assigned to splits.

    Attributes:
        class_names: Class names, sorted; a photo's label is its index here.
        files: For each split, `(path, label)` pairs in a stable pseudo-random order.
        skipped: Files that are not photos (by their extension), folders that
            cannot be listed and links to folders, which are not followed.
        pre_split: Whether the folder came with `train/`, `validation/`, `test/`.
    """

    class_names: tuple[str, ...]
    files: dict[str, list[tuple[str, int]]]
    skipped: tuple[SkippedFile, ...]
    pre_split: bool


def _stable_fraction(key: str) -> float:
    """Maps a string to [0, 1), the same on every run and machine."""
    digest = hashlib.sha256(os.fsencode(key)).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _is_ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in IGNORED_FILE_NAMES


def _list_class_folders(directory: Path, data: object) -> list[str]:
    try:
        entries = list(directory.iterdir())
    except OSError as error:
        raise MissingInputError(
            f"The photo folder {printable_path(directory)} cannot be read: {describe_os_error(error)}. Make it "
            f"readable, or pass another folder. Received: data={str(data)!r}"
        ) from None
    return sorted(entry.name for entry in entries if entry.is_dir() and not _is_ignored(entry.name))


def _list_files(directory: Path, skipped: list[SkippedFile]) -> list[Path]:
    """Lists the files under `directory`; folders that cannot be read, and linked folders, go to `skipped`."""

    def unreadable(error: OSError) -> None:
        skipped.append(SkippedFile(str(error.filename), f"folder cannot be listed ({describe_os_error(error)})"))

    found = []
    for root, folders, names in os.walk(directory, onerror=unreadable):
        kept = []
        for folder in sorted(folder for folder in folders if not _is_ignored(folder)):
            if os.path.islink(os.path.join(root, folder)):
                # Following links could read a folder twice (two splits) or loop forever.
                reason = "symbolic link to a folder (not followed: link or copy the photos themselves)"
                skipped.append(SkippedFile(os.path.join(root, folder), reason))
            else:
                kept.append(folder)
        folders[:] = kept
        found.extend(Path(root) / name for name in sorted(names) if not _is_ignored(name))
    return found


def _check_class_folders(directory: Path, class_names: list[str], data: object) -> None:
    if len(class_names) != 2:
        raise InputError(
            f"Expected exactly two class folders (for example cat/ and dog/) in {printable_path(directory)}, "
            f"found {len(class_names)}: {class_names}. Put each class's photos in its own "
            f"sub-folder. Received: data={str(data)!r}"
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
    between runs or machines. Hidden files, `Thumbs.db` and `desktop.ini` are
    ignored; files whose extension is not a photo's are skipped and reported.
    A class folder may be a symbolic link; links to folders inside a class
    folder are skipped and reported, not followed.

    Returns:
        A `PhotoFolder`.

    Raises:
        MissingInputError: If the folder does not exist or cannot be read.
        InputError: If it does not hold exactly two class folders.
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise MissingInputError(
            f"The photo folder {what}: {printable_path(root)}. Pass a folder with one sub-folder per "
            f'class, or "tfds" for TensorFlow Datasets. Received: data={str(directory)!r}'
        )
    top_folders = _list_class_folders(root, directory)
    pre_split = "train" in top_folders
    if pre_split:
        missing = [name for name in SPLIT_NAMES if name not in top_folders]
        if missing:
            raise InputError(
                f"{printable_path(root)} has a train/ folder but no {'/, '.join(missing)}/ folder. Either add "
                "train/, validation/ and test/ (each with the class folders) or put the class "
                f"folders directly in {printable_path(root)} to have it split for you. "
                f"Received: data={str(directory)!r}"
            )
        class_names = _list_class_folders(root / "train", directory)
        _check_class_folders(root / "train", class_names, directory)
        for split in SPLIT_NAMES[1:]:
            found = _list_class_folders(root / split, directory)
            if found != class_names:
                raise InputError(
                    f"{printable_path(root / split)} must hold the same class folders as "
                    f"{printable_path(root / 'train')} ({class_names}), found {found}. "
                    f"Received: data={str(directory)!r}"
                )
    else:
        class_names = top_folders
        _check_class_folders(root, class_names, directory)

    files: dict[str, list[tuple[str, int]]] = {split: [] for split in SPLIT_NAMES}
    skipped: list[SkippedFile] = []
    for label, class_name in enumerate(class_names):
        class_dirs = (
            [(split, root / split / class_name) for split in SPLIT_NAMES] if pre_split else [(None, root / class_name)]
        )
        for fixed_split, class_dir in class_dirs:
            for path in _list_files(class_dir, skipped):
                if not _is_photo(path):
                    skipped.append(SkippedFile(str(path), f"not a photo (extension {path.suffix or 'none'!r})"))
                    continue
                key = path.relative_to(root).as_posix()
                split = fixed_split or _split_of(_stable_fraction(key), validation_fraction, test_fraction)
                files[split].append((str(path), label))
    for split in SPLIT_NAMES:
        files[split].sort(key=lambda item: _stable_fraction(Path(item[0]).relative_to(root).as_posix() + "#order"))
    return PhotoFolder(tuple(class_names), files, tuple(skipped), pre_split)


def _is_photo(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def list_photos(directory: str | os.PathLike) -> list[str]:
    """Returns the photos (by extension) under a folder, at any depth, sorted; hidden files are ignored.

    Raises:
        MissingInputError: If the folder does not exist.
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise MissingInputError(
            f"The photo folder {'is not a folder' if root.exists() else 'does not exist'}: {printable_path(root)}. "
            f"Pass a folder of photos. Received: {str(directory)!r}"
        )
    return sorted(str(path) for path in _list_files(root, []) if _is_photo(path))


def _split_of(fraction: float, validation_fraction: float, test_fraction: float) -> str:
    if fraction < test_fraction:
        return "test"
    if fraction < test_fraction + validation_fraction:
        return "validation"
    return "train"
