"""Builders of synthetic photo folders for the tests (a plain module, not a test file).

The photos are tiny and drawn so that a model can tell the classes apart:
`cat` photos are dark and reddish, `dog` photos bright and bluish, both with
noise. `plant_unusual_files` adds every kind of file a real folder may hold:
broken photos that must be skipped and named, hidden files that must be
ignored, and unusual but valid photos that must be decoded.

Nothing here touches `../shared`: the real photos are only ever read in place.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

CLASS_NAMES = ("cat", "dog")
SPLIT_NAMES = ("train", "validation", "test")

# Mean RGB colour of each class; the noise keeps them apart (red > blue for cats, blue > red for dogs).
_CLASS_COLOURS = {"cat": (150.0, 55.0, 40.0), "dog": (110.0, 170.0, 235.0)}


def synthetic_photo(class_name: str, size: int = 48, seed: int = 0) -> np.ndarray:
    """Returns an RGB `uint8` photo of a class: a noisy colour field with a blob.

    Args:
        class_name: `"cat"` (dark, reddish) or `"dog"` (bright, bluish); any other
            name gets a colour derived from its hash.
        size: Side of the square photo, in pixels. Defaults to `48`.
        seed: Seed of the noise. Defaults to `0`.
    """
    rng = np.random.default_rng(seed)
    if class_name in _CLASS_COLOURS:
        colour = np.array(_CLASS_COLOURS[class_name])
    else:
        digest = hashlib.sha256(class_name.encode()).digest()
        colour = np.frombuffer(digest[:3], dtype=np.uint8).astype(np.float64)
    image = colour + rng.normal(0.0, 18.0, size=(size, size, 3))
    # A brighter blob at a random place, so the photos are not all alike.
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(0.25, 0.75, size=2) * size
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 6) ** 2))
    image += 40.0 * blob[..., None]
    return np.uint8(np.clip(image, 0, 255))


def write_jpeg(path: str | os.PathLike, image: np.ndarray, quality: int = 90) -> Path:
    """Writes an RGB array as a JPEG file and returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=quality)
    return path


def write_class_photos(
    directory: str | os.PathLike, class_name: str, num_photos: int, size: int = 48, seed: int = 0
) -> list[Path]:
    """Writes `num_photos` JPEGs of a class into `directory` and returns their paths."""
    directory = Path(directory)
    base = int.from_bytes(hashlib.sha256(f"{class_name}|{seed}".encode()).digest()[:4], "big")
    return [
        write_jpeg(directory / f"{class_name}.{index}.jpg", synthetic_photo(class_name, size, base + index))
        for index in range(num_photos)
    ]


def make_photo_folder(
    root: str | os.PathLike,
    num_per_class: int = 20,
    size: int = 48,
    class_names: Iterable[str] = CLASS_NAMES,
    seed: int = 0,
) -> Path:
    """Writes a folder with one sub-folder of synthetic JPEGs per class (not pre-split).

    Args:
        root: The folder to create (it may exist).
        num_per_class: Photos per class. Defaults to `20`.
        size: Side of the photos, in pixels. Defaults to `48`.
        class_names: One sub-folder per name. Defaults to `("cat", "dog")`.
        seed: Seed of the noise. Defaults to `0`.

    Returns:
        `root`, as a `Path`.
    """
    root = Path(root)
    for class_name in class_names:
        write_class_photos(root / class_name, class_name, num_per_class, size, seed)
    return root


def make_presplit_folder(
    root: str | os.PathLike,
    num_per_class: dict[str, int] | None = None,
    size: int = 48,
    class_names: Iterable[str] = CLASS_NAMES,
    splits: Iterable[str] = SPLIT_NAMES,
    seed: int = 0,
) -> Path:
    """Writes a folder with `train/`, `validation/` and `test/`, each with the class folders.

    Args:
        root: The folder to create.
        num_per_class: Photos per class in each split. Defaults to
            `{"train": 12, "validation": 4, "test": 4}`.
        size: Side of the photos, in pixels. Defaults to `48`.
        class_names: Class folder names. Defaults to `("cat", "dog")`.
        splits: Split folders to write (leave one out to test the error). Defaults to all three.
        seed: Seed of the noise. Defaults to `0`.

    Returns:
        `root`, as a `Path`.
    """
    root = Path(root)
    num_per_class = num_per_class or {"train": 12, "validation": 4, "test": 4}
    class_names = tuple(class_names)
    for split_index, split in enumerate(splits):
        for class_name in class_names:
            folder = root / split / class_name
            folder.mkdir(parents=True, exist_ok=True)
            write_class_photos(folder, class_name, num_per_class.get(split, 0), size, seed + 1000 * split_index)
    return root


def _jpeg_bytes(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def plant_unusual_files(directory: str | os.PathLike, class_name: str = "cat", size: int = 40) -> dict[str, dict]:
    """Plants broken, hidden and unusual-but-valid files in a class folder.

    Args:
        directory: A class folder (created if needed).
        class_name: Whose colours the valid photos get. Defaults to `"cat"`.
        size: Side of the valid photos, in pixels. Defaults to `40`.

    Returns:
        A dictionary with three entries, each mapping file names to details:
        `"bad"`: files that must be skipped and named, to a substring of the
        expected reason; `"ignored"`: hidden files and `Thumbs.db`, which must be
        neither used nor reported, to `None`; `"good"`: valid photos, to
        `(height, width)` of the photo as decoded at its own size.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rgb = synthetic_photo(class_name, size, seed=99)
    photo = Image.fromarray(rgb)
    bad, ignored, good = {}, {}, {}

    # Broken files: each must be skipped and named, never modified.
    full = _jpeg_bytes(photo, quality=95)
    (directory / "truncated.jpg").write_bytes(full[: len(full) // 2])
    bad["truncated.jpg"] = "truncated or corrupt"
    (directory / "empty.jpg").write_bytes(b"")
    bad["empty.jpg"] = "empty file"
    noise = np.random.default_rng(7).integers(0, 256, size=2048, dtype=np.uint8).tobytes()
    (directory / "random_bytes.jpg").write_bytes(b"NOT A PHOTO " + noise)
    bad["random_bytes.jpg"] = "not an image"
    (directory / "notes.txt").write_text("not a photo\n")
    bad["notes.txt"] = "not a photo"

    # Hidden files and OS droppings: ignored, not reported.
    (directory / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + noise[:64])
    ignored[".DS_Store"] = None
    (directory / "._cat.jpg").write_bytes(b"\x00\x05\x16\x07" + noise[:128])  # AppleDouble resource fork.
    ignored["._cat.jpg"] = None
    (directory / "Thumbs.db").write_bytes(noise[:256])
    ignored["Thumbs.db"] = None

    # Unusual but valid photos: each must be decoded to RGB.
    photo.save(directory / "UPPER_CASE.JPG", format="JPEG")
    good["UPPER_CASE.JPG"] = (size, size)
    photo.save(directory / "UPPER_CASE.PNG", format="PNG")
    good["UPPER_CASE.PNG"] = (size, size)
    photo.save(directory / "png_named.jpg", format="PNG")  # Content, not extension, decides the format.
    good["png_named.jpg"] = (size, size)
    photo.convert("L").save(directory / "grayscale.jpg", format="JPEG")
    good["grayscale.jpg"] = (size, size)
    rgba = photo.convert("RGBA")
    alpha = np.full((size, size), 255, np.uint8)
    alpha[: size // 4] = 0  # Fully transparent top rows: must become white.
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(directory / "rgba.png", format="PNG")
    good["rgba.png"] = (size, size)
    palette = photo.quantize(colors=16)
    palette_array = np.array(palette)
    palette_array[: size // 4] = 15  # Index 15 is transparent: top rows must become white.
    palette = Image.fromarray(palette_array, mode="P")
    palette.putpalette(photo.quantize(colors=16).getpalette())
    palette.save(directory / "palette.png", format="PNG", transparency=15)
    good["palette.png"] = (size, size)
    photo.convert("CMYK").save(directory / "cmyk.jpg", format="JPEG")
    good["cmyk.jpg"] = (size, size)
    photo.save(directory / "photo.bmp", format="BMP")
    good["photo.bmp"] = (size, size)
    frames = [Image.new("RGB", (size, size), colour) for colour in ((230, 20, 20), (20, 230, 20), (20, 20, 230))]
    frames[0].save(directory / "animated.gif", format="GIF", save_all=True, append_images=frames[1:], duration=100)
    good["animated.gif"] = (size, size)  # The first frame (red) is used.
    wide = np.uint16(np.linspace(0, 65535, size * size).reshape(size, size))
    try:
        Image.fromarray(wide).save(directory / "gray16.png", format="PNG")
    except (OSError, ValueError, TypeError):  # This Pillow cannot write 16-bit PNGs.
        pass
    else:
        good["gray16.png"] = (size, size)
    # A portrait photo stored in landscape with an EXIF "rotate 90°" tag: decoded upright.
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display.
    Image.fromarray(synthetic_photo(class_name, size, seed=98)[: size // 2]).save(
        directory / "exif_rotated.jpg", format="JPEG", exif=exif.tobytes()
    )
    good["exif_rotated.jpg"] = (size, size // 2)
    return {"bad": bad, "ignored": ignored, "good": good}


def folder_fingerprint(root: str | os.PathLike) -> dict[str, tuple[int, str]]:
    """Returns `{relative path: (size, sha256)}` of every file under `root`, hidden ones included.

    Folders are listed too (as `(-1, "")`), so that a created or deleted folder shows; symbolic
    links as `(-2, target)`, and pipes, sockets and devices as `(-3, "")`, without reading them.
    """
    root = Path(root)
    fingerprint = {}
    for folder, folders, names in os.walk(root):
        for name in folders:
            path = Path(folder) / name
            link = (-2, os.readlink(path)) if path.is_symlink() else (-1, "")
            fingerprint[path.relative_to(root).as_posix() + "/"] = link
        for name in names:
            path = Path(folder) / name
            if path.is_symlink():
                fingerprint[path.relative_to(root).as_posix()] = (-2, os.readlink(path))
            elif not stat.S_ISREG(path.lstat().st_mode):
                fingerprint[path.relative_to(root).as_posix()] = (-3, "")
            else:
                data = path.read_bytes()
                fingerprint[path.relative_to(root).as_posix()] = (len(data), hashlib.sha256(data).hexdigest())
    return fingerprint


def plant_unreadable_files(directory: str | os.PathLike) -> dict[str, str]:
    """Plants files that look like photos but cannot be read, each for another reason.

    A broken symbolic link, a symbolic link loop and (where the system has
    them) a named pipe, which would block a reader forever. Nothing here needs
    more than a few bytes.

    Args:
        directory: A class folder (created if needed).

    Returns:
        `{file name: the reason decode_photo must give, exactly}`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    expected = {}
    os.symlink(directory / "no_such_target.jpg", directory / "dangling_link.jpg")
    expected["dangling_link.jpg"] = (
        f"broken symbolic link (its target {directory / 'no_such_target.jpg'} does not exist)"
    )
    os.symlink("link_loop.jpg", directory / "link_loop.jpg")
    expected["link_loop.jpg"] = "symbolic link loop"
    if hasattr(os, "mkfifo"):
        os.mkfifo(directory / "pipe.jpg")
        expected["pipe.jpg"] = "not a regular file (a pipe, socket or device)"
    return expected


def write_undecodable_name_photo(directory: str | os.PathLike, image: np.ndarray) -> str | None:
    """Writes a JPEG named `b"cat\\xff.jpg"` (not valid UTF-8) and returns its path as Python sees it.

    Returns `None` where the file system refuses such names (macOS, Windows).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = os.fsencode(directory) + b"/cat\xff.jpg"
    try:
        with open(path, "wb") as file:
            Image.fromarray(image).save(file, format="JPEG", quality=95)
    except OSError:
        return None
    return os.fsdecode(path)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def write_huge_png(path: str | os.PathLike, width: int, height: int) -> Path:
    """Writes a valid black 1-bit PNG of `width` x `height` pixels, a few hundred kilobytes on disk.

    The rows are compressed one at a time, so a 200-megapixel PNG costs about
    a second and little memory to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grayscale, no interlace.
    row = b"\x00" * (1 + (width + 7) // 8)  # Filter byte "none", then black pixels.
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")
    )
    return path


def write_gray_pair(directory: str | os.PathLike, size: int = 32) -> tuple[Path, Path]:
    """Writes one grayscale picture as an 8-bit and as a 16-bit PNG; returns `(path_8_bit, path_16_bit)`.

    The picture's levels run from 10 to 200, not to 255, so a decoder that
    stretches each image to full brightness shows.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    levels = np.uint8(np.round(np.linspace(10, 200, size * size))).reshape(size, size)
    Image.fromarray(levels).save(directory / "gray8.png", format="PNG")
    Image.fromarray(levels.astype(np.uint16) * 257).save(directory / "gray16.png", format="PNG")
    return directory / "gray8.png", directory / "gray16.png"
