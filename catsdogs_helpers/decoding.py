"""Decoding any photo to RGB, or an honest reason why a file cannot be used.

Files are only ever opened for reading. A path may hold bytes that are not UTF-8 (`os.fsdecode`); `printable_path`
shows them escaped, as `cat\\xff.jpg`. Photos are the formats Pillow reads by itself (`IMAGE_EXTENSIONS`); HEIC/HEIF
photos need the optional `pillow-heif` (`pip install "catsdogs-helpers[heif]"`).
"""

from __future__ import annotations

import errno
import io
import os
import stat
import struct
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from catsdogs_helpers.errors import InputError

try:  # iPhone photos: the maintained plugin, an optional extra.
    from pillow_heif import register_heif_opener
except ImportError:
    HEIF_PLUGIN = False
else:
    register_heif_opener()
    HEIF_PLUGIN = True
# Photos some Pillow needs a plugin or a newer version for: listed as photos, skipped with what to install.
_HEIF_HINT = 'HEIC/HEIF photo, which needs the pillow-heif plugin: pip install "catsdogs-helpers[heif]"'
_NEEDS = {".heic": _HEIF_HINT, ".heif": _HEIF_HINT, ".hif": _HEIF_HINT,
          ".avif": "AVIF photo, which this Pillow cannot read: pip install -U pillow"}  # fmt: skip
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1")


def _readable_extensions() -> tuple[str, ...]:
    """Extensions of the formats Pillow reads without an outside program or handler, and those of `_NEEDS`."""
    Image.init()
    stubs = {name for name, (factory, _) in Image.OPEN.items()  # HDF5, GRIB, WMF, ...: outside handlers.
             if isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile)}  # fmt: skip
    readable = {
        extension
        for extension, format_id in Image.registered_extensions().items()
        if format_id in Image.OPEN and format_id not in {*stubs, "EPS", "MPEG"}  # Ghostscript; identified only.
    }
    return tuple(sorted(readable | set(_NEEDS)))


IMAGE_EXTENSIONS = _readable_extensions()
# About 0.5 GB while decoding; `PIL.Image.MAX_IMAGE_PIXELS` is neither used nor changed.
MAX_PIXELS = 128_000_000
# Part of the cache keys of data.py: bump it whenever decoding gives other pixels or reasons.
DECODER_VERSION = 3

# Errors Pillow raises for a file whose data is not what its header promises.
_DECODING_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)


class UnreadablePhotoError(InputError):
    """A photo file that cannot be used; the message is the reason, e.g. "empty file"."""


def printable_path(path: str | bytes | os.PathLike) -> str:
    """Returns a path as text that can always be printed or written as UTF-8 (`cat\\xff.jpg`)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def describe_os_error(error: OSError) -> str:
    """Returns why the system refused to read a file, in a few words (without the path)."""
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, IsADirectoryError):
        return "is a directory"
    if isinstance(error, FileNotFoundError):
        return "file not found"
    if error.errno == errno.ELOOP:
        return "symbolic link loop"
    return f"cannot be read ({error.strerror or type(error).__name__})"


def _open_file(path: str | bytes | os.PathLike) -> BinaryIO:
    """Opens a file for reading, or raises `UnreadablePhotoError` with the reason it cannot be read."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            target = printable_path(os.readlink(path))
            raise UnreadablePhotoError(f"broken symbolic link (its target {target} does not exist)") from None
        raise UnreadablePhotoError("file not found") from None
    except OSError as error:
        raise UnreadablePhotoError(describe_os_error(error)) from None
    if stat.S_ISDIR(status.st_mode):
        raise UnreadablePhotoError("is a directory")
    if not stat.S_ISREG(status.st_mode):  # Reading a FIFO could wait forever.
        raise UnreadablePhotoError("not a regular file (a pipe, socket or device)")
    if status.st_size == 0:
        raise UnreadablePhotoError("empty file")
    try:
        return open(path, "rb")
    except OSError as error:
        raise UnreadablePhotoError(describe_os_error(error)) from None


def _open_image(file: BinaryIO) -> Image.Image:
    """Identifies an image like `Image.open`, without its `DecompressionBombError` (`max_pixels` applies)."""
    try:
        return Image.open(file)
    except Image.DecompressionBombError:
        pass
    file.seek(0)
    prefix = file.read(16)
    for format_id in Image.ID:  # Image.open has loaded the plugin that recognised the file.
        factory, accept = Image.OPEN[format_id]
        accepted = accept is None or accept(prefix)
        if accepted and not isinstance(accepted, str):
            file.seek(0)
            try:
                return factory(file, "")
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue
    raise UnidentifiedImageError("no image plugin reads this file")


def _decoding_failure(error: Exception) -> str:
    if isinstance(error, OSError) and error.errno is not None:  # The system failed to read it (a bad disk).
        return describe_os_error(error)
    return f"truncated or corrupt ({error})"


def _to_rgb(image: Image.Image) -> Image.Image:
    """Converts any PIL mode to RGB: transparency over white, 16- and 32-bit levels scaled, floats as 0-255."""
    if image.mode == "RGB":
        return image
    if (image.mode == "P" and "transparency" in image.info) or image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode.startswith("I;16") or image.mode == "I":
        levels = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)
        gray = (levels * 255 + 32767) // 65535  # Rounded: level v * 257 of a 16-bit image gives back v.
        return Image.fromarray(gray.astype(np.uint8)).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError:
        raise UnreadablePhotoError(f"unsupported colour mode {image.mode!r}") from None


def decode_photo(
    path: str | bytes | os.PathLike, image_size: int | None = None, *, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Reads a photo (of any format Pillow reads; an animation's first frame) as RGB, EXIF orientation applied.

    Args:
        image_size: Resize to `image_size` x `image_size` pixels (`None`: keep the size); a JPEG is then decoded
            reduced (by 2, 4 or 8).
        max_pixels: Refuse photos with more pixels than this to decode (after a JPEG's reduction).

    Returns:
        A `uint8` array of shape `(height, width, 3)`.

    Raises:
        UnreadablePhotoError: (an `InputError`, so a `ValueError`) If the file cannot be used; the message is the
            reason, e.g. "empty file", "not an image", "too large (W×H pixels, limit N)", "truncated or corrupt
            (...)", "permission denied" or what to install for a HEIC or AVIF photo.
    """
    with _open_file(path) as file:
        return _decode_file(file, image_size, max_pixels)


def decode_encoded_photo(data: bytes, image_size: int | None = None, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decodes a photo's encoded bytes (JPEG, PNG, ...) exactly as `decode_photo` decodes a file."""
    if not data:
        raise UnreadablePhotoError("empty file")
    return _decode_file(io.BytesIO(data), image_size, max_pixels)


def _decode_file(file: BinaryIO, image_size: int | None, max_pixels: int) -> np.ndarray:
    try:
        image = _open_image(file)
    except UnidentifiedImageError:
        file.seek(0)
        header = file.read(12)  # An ISO media file (HEIF, AVIF) says its kind in its "ftyp" box.
        brand = header[8:12] if header[4:8] == b"ftyp" else b""
        reason = "not an image"
        if brand in (b"avif", b"avis") and "AVIF" not in Image.OPEN:
            reason = _NEEDS[".avif"]
        elif brand in _HEIF_BRANDS:
            reason = "truncated or corrupt (a HEIC/HEIF file pillow-heif cannot read)" if HEIF_PLUGIN else _HEIF_HINT
        raise UnreadablePhotoError(reason) from None
    except _DECODING_ERRORS as error:  # A header that lies.
        raise UnreadablePhotoError(_decoding_failure(error)) from None
    with image:
        width, height = image.size
        if image_size is not None:
            image.draft("RGB", (image_size, image_size))  # JPEG only: decodes at 1/2, 1/4 or 1/8 scale.
        if image.size[0] * image.size[1] > max_pixels:
            reduced = f", still {image.size[0]}×{image.size[1]} when reduced" if image.size != (width, height) else ""
            raise UnreadablePhotoError(f"too large ({width}×{height} pixels{reduced}, limit {max_pixels:,})")
        try:
            image.load()
            image = ImageOps.exif_transpose(image)
        except _DECODING_ERRORS as error:
            raise UnreadablePhotoError(_decoding_failure(error)) from None
        image = _to_rgb(image)
        if image_size is not None:
            image = image.resize((image_size, image_size), Image.Resampling.BILINEAR, reducing_gap=3.0)
        return np.asarray(image, dtype=np.uint8).copy()
