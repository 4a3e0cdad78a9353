"""Checks made before a study trains anything, so a bad input fails in seconds (`check_study_inputs`)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from catsdogs_helpers.config import MOBILENET_V2_ALPHAS, MODEL_NAMES, StudyConfig
from catsdogs_helpers.errors import InputError, MissingInputError
from catsdogs_helpers.output_lock import LOCK_FILE

TFDS_NUM_PHOTOS = 23_262  # Photos in TensorFlow Datasets' cats_vs_dogs (its train split, the only one).
_ALPHAS = "|".join(re.escape(str(alpha)) for alpha in MOBILENET_V2_ALPHAS)
_ALPHA_IN_FILE_NAME = re.compile(rf"_({_ALPHAS})_(\d+)_no_top")  # Keras's names: ..._1.0_224_no_top.h5


def check_output_dir(output_dir: str | os.PathLike, data: str = "tfds", option: str = "output_dir") -> Path:
    """Creates the output folder if needed and returns it resolved; `option` names it in messages.

    Raises:
        InputError: If the path is a file, lies under a file, is or lies inside the `data` folder, or cannot be
            created or written.
    """
    output = Path(output_dir).expanduser().resolve()
    if data != "tfds":
        photos = Path(data).expanduser().resolve()
        if output == photos or photos in output.parents:
            raise InputError(
                f"The output folder {output} is inside the data folder {photos}: the study never writes into your "
                f"photos. Pass an output folder outside it. Received: {option}={str(output_dir)!r}"
            )
    for path in (output, *output.parents):
        if path.exists() and not path.is_dir():
            raise InputError(
                f"The output folder cannot be created: {path} is a file, not a folder. Pass another output "
                f"folder. Received: {option}={str(output_dir)!r}"
            )
    try:
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output, prefix=".write-test-"):
            pass
    except OSError as error:
        raise InputError(
            f"The output folder {output} cannot be written ({error.strerror or error}). Pass a folder you can "
            f"write to. Received: {option}={str(output_dir)!r}"
        ) from None
    return output


# What a study or a sweep writes into its output folder: files at the top, and the training stages' files.
STUDY_FILES = (
    "results.json", "report.md", "scratch.keras", "transfer.keras", "finetuned.keras", "learning_curves.png",
    "confusion_matrices.png", "roc_curves.png", "mistakes.png", "grad_cam.png", "sweep.json", "sweep.png",
    "sweep.md",
)  # fmt: skip
STAGE_FILES = ("result.json", "best.weights.h5", "history.csv", "manifest.json", "backup")


def check_output_dir_is_ours(output: Path, option: str = "output_dir") -> None:
    """Raises `InputError` if the output folder holds files the study would write over, unless catsdogs wrote them (a
    run took its lock there, or its results.json or sweep.json is a study's or a sweep's)."""
    if (output / LOCK_FILE).exists() or _written_by_catsdogs(output):
        return
    taken = [name for name in STUDY_FILES if (output / name).exists()]
    taken += [f"{stage}/{name}" for stage in MODEL_NAMES for name in STAGE_FILES
              if (output / stage / name).exists()]  # fmt: skip
    if taken:
        shown = ", ".join(taken[:5]) + (f" and {len(taken) - 5} more" if len(taken) > 5 else "")
        raise InputError(
            f"The output folder {output} holds files the study would write over ({shown}), and no run of catsdogs "
            "wrote them: pass another output folder, or an empty one (--output on the command line, OUTPUT_DIR in "
            f"the notebook). Received: {option}={str(output)!r}"
        )


def _written_by_catsdogs(output: Path) -> bool:
    """Whether the folder's results.json is a study's or its sweep.json a sweep's (as written before the lock)."""
    for name, keys in (("results.json", {"models", "config"}), ("sweep.json", {"points", "sizes"})):
        try:
            value = json.loads((output / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(value, dict) and keys <= value.keys():
            return True
    return False


def check_output_file(path: str | os.PathLike, option: str = "output") -> Path:
    """Checks that a new file can be written at `path`; returns it, `~` expanded, its folder created.

    Raises:
        InputError: If something exists at `path`, or its folder cannot be created or written.
    """
    path = Path(path).expanduser()
    if path.exists() or path.is_symlink():
        raise InputError(f"{path} already exists: pass another --{option}, or remove it first. "
                         f"Received: {option}={str(path)!r}")  # fmt: skip
    check_output_dir(path.parent, option=option)
    return path


def check_weights(weights: str | None, alpha: float, image_size: int, preset: str = "default") -> None:
    """Builds MobileNetV2 with the weights once (downloading `"imagenet"`), so that a wrong file fails before
    training; `None` checks nothing, and `preset` is named when its `alpha` is the cause.

    Raises:
        MissingInputError: If the weights file does not exist.
        InputError: If the file does not fit MobileNetV2 with this `alpha`, or Keras has no ImageNet weights for
            `image_size`.
        RuntimeError: If the ImageNet weights cannot be downloaded.
    """
    if weights is None:
        return
    if weights != "imagenet" and not os.path.isfile(weights):
        raise MissingInputError(
            f"The weights file does not exist: {weights}. Pass the path of a MobileNetV2 no-top .h5 file, "
            f'or "imagenet" to download them. Received: weights={weights!r}'
        )
    from catsdogs_helpers.models import build_mobilenet_base

    try:
        build_mobilenet_base(image_size, weights, alpha)
    except ValueError as error:
        if weights == "imagenet":
            raise InputError(str(error)) from None
        match = _ALPHA_IN_FILE_NAME.search(Path(weights).name)
        hint = ""
        if match and float(match.group(1)) != alpha:
            set_by = f" (set by the {preset!r} preset)" if preset != "default" else ""
            hint = (
                f" The file's name says alpha {match.group(1)}, and the study uses alpha={alpha}{set_by}: pass "
                f"--set alpha={match.group(1)} (ALPHA in the notebook's settings), or a weights file for alpha {alpha}."
            )
        raise InputError(
            f"The weights file {weights} does not fit MobileNetV2 with alpha={alpha} and no top.{hint} "
            f"Received: weights={weights!r}, alpha={alpha}"
        ) from None


def available_memory_bytes() -> int | None:
    """Returns the memory available to new processes (`MemAvailable` on Linux), or `None` if unknown."""
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def estimate_cache_bytes(num_photos: int, image_size: int) -> int:
    """Returns the bytes an in-memory cache of decoded photos takes: `num_photos * image_size² * 3` (uint8 RGB)."""
    return num_photos * image_size * image_size * 3


def count_photos(config: StudyConfig) -> int:
    """Returns how many photos the study will decode (all three splits), from a listing only; raises `InputError`
    if the data folder is missing (`MissingInputError`) or its layout is wrong."""
    from catsdogs_helpers.photos import list_photo_folder

    if config.data == "tfds":
        return min(TFDS_NUM_PHOTOS, 3 * (config.max_images_per_split or TFDS_NUM_PHOTOS))
    folder = list_photo_folder(config.data, config.validation_fraction, config.test_fraction)
    cap = config.max_images_per_split or float("inf")
    return int(sum(min(len(files), cap) for files in folder.files.values()))


def check_memory(num_photos: int, image_size: int, cache_dir: str | None) -> None:
    """Refuses an in-memory cache (`cache_dir` `None`) that needs more than the memory available now (`InputError`)."""
    if cache_dir is not None:
        return
    needed, available = estimate_cache_bytes(num_photos, image_size), available_memory_bytes()
    if available is not None and needed > available:
        raise InputError(
            f"Caching {num_photos:,} photos of {image_size}x{image_size} pixels in memory needs "
            f"{needed / 2**30:,.1f} GiB; this machine has {available / 2**30:.1f} GiB available. Lower image_size, "
            f"set max_images_per_split, or cache in files with cache_dir. Received: image_size={image_size}"
        )


def check_study_inputs(config: StudyConfig) -> Path:
    """Checks the data folder, the output folder, the in-memory cache's size and the weights; returns the output
    folder, created and resolved.

    Raises:
        InputError: If an input is wrong; the message says which and how to fix it.
        RuntimeError: If the ImageNet weights cannot be downloaded.
    """
    num_photos = count_photos(config)  # First: a missing data folder creates no output folder.
    output = check_output_dir(config.output_dir, config.data)
    check_output_dir_is_ours(output)
    check_memory(num_photos, config.image_size, config.cache_dir)
    check_weights(config.weights, config.alpha, config.image_size, config.preset)
    return output
