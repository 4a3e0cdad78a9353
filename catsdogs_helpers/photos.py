"""Listing a folder of labelled photos (only ever read) and splitting it stably into train, validation and test."""

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
    """A file (or folder) that was not used, and why; `path` as Python sees it (see `printable_path`)."""

    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class PhotoFolder:
    """The photos of a folder, assigned to splits.

    Attributes:
        class_names: Sorted; a photo's label is its index here.
        files: For each split, `(path, label)` pairs in a stable pseudo-random order.
        skipped: Files that are not photos (by extension), folders that cannot be listed, links to folders.
        pre_split: Whether the folder came with `train/`, `validation/`, `test/`.
    """

    class_names: tuple[str, ...]
    files: dict[str, list[tuple[str, int]]]
    skipped: tuple[SkippedFile, ...]
    pre_split: bool


def list_photo_folder(
    directory: str | os.PathLike,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> PhotoFolder:
    """Lists the photos of a folder and assigns each one to a split.

    The folder holds either one sub-folder per class (exactly two; sorted, their names are the class names), or
    `train/`, `validation/` and `test/`, each with the same class folders. Otherwise a hash of a photo's path relative
    to the folder picks its split, the same on every run and machine. Hidden files, `Thumbs.db` and `desktop.ini` are
    ignored; other files that are not photos (by extension), and links to folders inside a class folder, are skipped.

    Raises:
        MissingInputError: If the folder does not exist or cannot be read.
        InputError: If its layout is not one of the two above.
    """
    fix = 'Pass a folder with one sub-folder per class, or "tfds" for TensorFlow Datasets.'
    root = _existing_folder(directory, fix, f"data={str(directory)!r}")
    class_names, pre_split = _class_names(root, directory)
    files: dict[str, list[tuple[str, int]]] = {split: [] for split in SPLIT_NAMES}
    skipped: list[SkippedFile] = []
    for label, class_name in enumerate(class_names):
        class_dirs = (
            [(split, root / split / class_name) for split in SPLIT_NAMES] if pre_split else [(None, root / class_name)]
        )
        for fixed_split, class_dir in class_dirs:
            for path in _list_files(class_dir, skipped):
                if _is_photo(path):
                    key = path.relative_to(root).as_posix()
                    files[fixed_split or _split_of(key, validation_fraction, test_fraction)].append((str(path), label))
                else:
                    skipped.append(SkippedFile(str(path), f"not a photo (extension {path.suffix or 'none'!r})"))
    for split_files in files.values():
        split_files.sort(key=lambda item: _stable_fraction(Path(item[0]).relative_to(root).as_posix() + "#order"))
    return PhotoFolder(tuple(class_names), files, tuple(skipped), pre_split)


def list_photos(directory: str | os.PathLike) -> list[str]:
    """Returns the photos (by extension) under a folder, at any depth, sorted; hidden files are ignored.

    Raises:
        MissingInputError: If the folder does not exist.
    """
    root = _existing_folder(directory, "Pass a folder of photos.", repr(str(directory)))
    return sorted(str(path) for path in _list_files(root, []) if _is_photo(path))


def _existing_folder(directory: str | os.PathLike, fix: str, received: str) -> Path:
    root = Path(directory).expanduser()
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise MissingInputError(f"The photo folder {what}: {printable_path(root)}. {fix} Received: {received}")
    return root


def _class_names(root: Path, data: object) -> tuple[list[str], bool]:
    """Returns the class names and whether `root` is pre-split; raises `InputError` for any other layout."""
    top_folders = _list_class_folders(root, data)
    pre_split = "train" in top_folders
    missing = [name for name in SPLIT_NAMES if name not in top_folders]
    if pre_split and missing:
        raise InputError(
            f"{printable_path(root)} has a train/ folder but no {'/, '.join(missing)}/ folder. Either add "
            "train/, validation/ and test/ (each with the class folders) or put the class "
            f"folders directly in {printable_path(root)} to have it split for you. Received: data={str(data)!r}"
        )
    class_root = root / "train" if pre_split else root
    class_names = _list_class_folders(class_root, data) if pre_split else top_folders
    if len(class_names) != 2:
        raise InputError(
            f"Expected exactly two class folders (for example cat/ and dog/) in {printable_path(class_root)}, "
            f"found {len(class_names)}: {class_names}. Put each class's photos in its own "
            f"sub-folder. Received: data={str(data)!r}"
        )
    for split in SPLIT_NAMES[1:] if pre_split else ():
        found = _list_class_folders(root / split, data)
        if found != class_names:
            raise InputError(
                f"{printable_path(root / split)} must hold the same class folders as "
                f"{printable_path(class_root)} ({class_names}), found {found}. Received: data={str(data)!r}"
            )
    return class_names, pre_split


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


def _is_ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in IGNORED_FILE_NAMES


def _is_photo(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _stable_fraction(key: str) -> float:
    """Maps a string to [0, 1), the same on every run and machine."""
    return int.from_bytes(hashlib.sha256(os.fsencode(key)).digest()[:8], "big") / 2.0**64


def _split_of(key: str, validation_fraction: float, test_fraction: float) -> str:
    fraction = _stable_fraction(key)
    if fraction < test_fraction:
        return "test"
    return "validation" if fraction < test_fraction + validation_fraction else "train"
