"""Every setting of the study in one frozen dataclass, checked once, and its presets: default -> quick -> smoke."""

from __future__ import annotations

import dataclasses
import os
import shlex
import typing
from collections.abc import Callable

from catsdogs_helpers.errors import InputError

IMAGENET_IMAGE_SIZES = (96, 128, 160, 192, 224)
MOBILENET_V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
PRESET_NAMES = ("default", "quick", "smoke")
# The study's three models, in the order reports list them.
MODEL_NAMES = ("scratch", "transfer", "finetuned")
PRESET_DESCRIPTIONS = {
    "default": "the real study: all of cats_vs_dogs (23,262 photos) at 224 px with ImageNet weights; use a GPU.",
    "quick": "the real study on at most 2,000 photos per split; made for a CPU (the README gives measured times).",
    "smoke": "checks in a minute that everything runs: 24 photos at 64 px, random weights with alpha 0.35 "
    "(a weights file must then be a 0.35 one); its numbers mean nothing.",
}


def _setting(default: object, *changes: str) -> typing.Any:
    """A `StudyConfig` field whose value changes the results named in `changes` (see `depends_on`)."""
    return dataclasses.field(default=default, metadata={"changes": changes})


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """All settings of the study (each field's default is the `default` preset's).

    Args:
        data: `"tfds"` or a folder of photos: one sub-folder per class, or `train/`, `validation/`, `test/` of them.
        weights: `"imagenet"`, a local MobileNetV2 no-top `.h5` file, or `None` for random weights.
        alpha: MobileNetV2 width multiplier.
        image_size, scratch_image_size: Sides, in pixels, of both models' square input and of the scratch CNN's resize.
        batch_size: Images per batch, per GPU.
        validation_fraction, test_fraction: Shares held out when the source is not pre-split.
        max_images_per_split: Keep at most this many photos per split (a stable subset), or `None` for all.
        cache_dir: Folder for tf.data file caches, or `None` to cache decoded images in memory.
        scratch_learning_rate: Peak Adam learning rate of the scratch CNN (cosine decay).
        scratch_weight_decay: Decoupled (AdamW) weight decay of the scratch CNN, `0.0` for none.
        scratch_patience: Early-stopping patience in epochs, or `None` for every epoch (the best one is kept anyway).
        use_cached_features: Train the head on features the frozen base computed once (fast, no augmentation).
        fine_tune_epochs: Epochs of fine-tuning after the head (0 skips it).
        fine_tune_at: Base layers below this index (of 154 in MobileNetV2) stay frozen while fine-tuning.
        augmentation_strength: Scales the augmentation's ranges.
        dropout, scratch_dropout: Dropout rate before the transfer model's and the scratch CNN's logit.
        patience: Early-stopping patience of the head and of fine-tuning (study and sweep), in epochs.
    """

    # Each setting names the results its value changes (stages, and the sweep's points): their manifests record
    # it (`depends_on`). None for where files go, the preset's name and the data's settings (the photos' key).
    preset: str = _setting("default")
    data: str = _setting("tfds")
    weights: str | None = _setting("imagenet", "transfer", "sweep")
    alpha: float = _setting(1.0, "transfer", "sweep")
    image_size: int = _setting(224, "scratch", "transfer", "finetuned", "sweep")
    scratch_image_size: int = _setting(160, "scratch", "sweep")
    batch_size: int = _setting(32, "scratch", "transfer", "finetuned", "sweep")
    validation_fraction: float = _setting(0.1)
    test_fraction: float = _setting(0.1)
    max_images_per_split: int | None = _setting(None)
    cache_dir: str | None = _setting(None)
    seed: int = _setting(1337, "scratch", "transfer", "finetuned", "sweep")
    scratch_epochs: int = _setting(30, "scratch", "sweep")
    scratch_learning_rate: float = _setting(2e-3, "scratch", "sweep")
    scratch_dropout: float = _setting(0.3, "scratch", "sweep")
    scratch_weight_decay: float = _setting(0.0, "scratch", "sweep")
    scratch_patience: int | None = _setting(None, "scratch", "sweep")
    transfer_epochs: int = _setting(20, "transfer", "sweep")
    transfer_learning_rate: float = _setting(1e-3, "transfer", "sweep")
    use_cached_features: bool = _setting(True, "transfer")
    fine_tune_epochs: int = _setting(5, "finetuned", "sweep")
    fine_tune_learning_rate: float = _setting(1e-5, "finetuned", "sweep")
    fine_tune_at: int = _setting(100, "finetuned", "sweep")
    augmentation_strength: float = _setting(1.0, "scratch", "transfer", "sweep")
    dropout: float = _setting(0.2, "transfer", "sweep")
    patience: int = _setting(8, "transfer", "finetuned", "sweep")
    output_dir: str = _setting("outputs")

    def __post_init__(self) -> None:
        for name in _PATH_SETTINGS:  # "~/photos" means the same folder to the checks, the lock and the writes.
            value = getattr(self, name)
            if isinstance(value, str) and value.startswith("~"):
                object.__setattr__(self, name, os.path.expanduser(value))
        _check_config(self)

    def replace(self, **changes: object) -> StudyConfig:
        """Returns a copy with some settings changed and checked (`InputError` if invalid)."""
        return dataclasses.replace(self, **changes)

    def patience_of(self, approach: str) -> int:
        """Returns the early-stopping patience, in epochs, of `"scratch"`, `"transfer"` or `"finetuned"`."""
        if approach == "scratch":
            return self.scratch_patience or self.scratch_epochs  # None: every epoch.
        return self.patience

    def to_dict(self) -> dict[str, object]:
        """Returns the settings as a JSON-serializable dictionary."""
        return dataclasses.asdict(self)


_PATH_SETTINGS = ("data", "weights", "cache_dir", "output_dir")


def _fail(name: str, value: object, expected: str) -> None:
    raise InputError(f"Invalid setting `{name}`: expected {expected}. Received: {name}={value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_path(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())  # "" is what an unset variable gives ("$OUT").


def _integer_from(minimum: int) -> Callable[[object], bool]:
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _or_none(accepts: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: value is None or accepts(value)


_LEARNING_RATES = ("scratch_learning_rate", "transfer_learning_rate", "fine_tune_learning_rate")
# (settings, accepts(value), what is expected), checked in this order.
_CHECKS = (
    (("preset",), lambda v: v in PRESET_NAMES, f"one of {PRESET_NAMES}"),
    (("data",), _is_path, '"tfds" or the path of a folder of photos'),
    (("weights",), _or_none(_is_path), '"imagenet", a .h5 file\'s path or None'),
    (("cache_dir",), _or_none(_is_path), "a folder's path or None"),
    (("output_dir",), _is_path, "a folder's path (not empty)"),
    (("alpha",), lambda v: v in MOBILENET_V2_ALPHAS, f"one of {MOBILENET_V2_ALPHAS}"),
    (("image_size", "scratch_image_size"), _integer_from(32), "an integer of at least 32 (pixels)"),
    (("batch_size", "scratch_epochs", "transfer_epochs", "patience"), _integer_from(1), "a positive integer"),
    (("scratch_patience",), _or_none(_integer_from(1)), "None (train every scratch epoch) or a positive integer"),
    (("fine_tune_epochs",), _integer_from(0), "an integer >= 0 (0 skips fine-tuning)"),
    (("fine_tune_at",), _integer_from(0), "an integer >= 0 (a layer index of the base)"),
    (("max_images_per_split",), _or_none(_integer_from(2)), "None or an integer >= 2"),
    (("validation_fraction", "test_fraction"), lambda v: _is_number(v) and 0 < v < 0.5, "a fraction between 0 and 0.5"),
    (_LEARNING_RATES, lambda v: _is_number(v) and 0 < v < 1, "a learning rate between 0 and 1"),
    (("dropout", "scratch_dropout"), lambda v: _is_number(v) and 0 <= v < 1, "a rate in [0, 1)"),
    (
        ("augmentation_strength",),
        lambda v: _is_number(v) and 0 <= v <= 4,
        "a number between 0 and 4 (1 is the default)",
    ),
    (("scratch_weight_decay",), lambda v: _is_number(v) and 0 <= v < 1, "a decay in [0, 1) (0 for none)"),
)


def _check_config(config: StudyConfig) -> None:
    for names, accepts, expected in _CHECKS:
        for name in names:
            if not accepts(getattr(config, name)):
                _fail(name, getattr(config, name), expected)
    if config.weights == "imagenet" and config.image_size not in IMAGENET_IMAGE_SIZES:
        _fail(
            "image_size",
            config.image_size,
            f"one of {IMAGENET_IMAGE_SIZES} with weights='imagenet' (Keras has ImageNet "
            "weights only for these sizes); pick one of them or pass a local weights file",
        )


def depends_on(result: str) -> tuple[str, ...]:
    """Returns the settings that change a result: `"scratch"`, `"transfer"`, `"finetuned"` or `"sweep"`."""
    return tuple(field.name for field in dataclasses.fields(StudyConfig) if result in field.metadata["changes"])


DEFAULT = StudyConfig()

# The quick preset's scratch CNN works at 128 px for up to 55 epochs (about the compute of 35 at 160 px), chosen on
# the validation split: benchmarks/results/tuning.md.
QUICK = DEFAULT.replace(
    preset="quick",
    max_images_per_split=2000,
    scratch_image_size=128,
    scratch_epochs=55,
    fine_tune_epochs=3,
)

SMOKE = QUICK.replace(
    preset="smoke",
    weights=None,
    alpha=0.35,
    image_size=64,
    scratch_image_size=32,
    batch_size=8,
    max_images_per_split=24,
    scratch_epochs=1,
    transfer_epochs=1,
    fine_tune_epochs=1,
    patience=1,
)

_PRESETS = {"default": DEFAULT, "quick": QUICK, "smoke": SMOKE}


def get_config(preset: str = "default", **overrides: object) -> StudyConfig:
    """Returns a preset's settings with `overrides` applied and checked; `None` overrides are ignored, and
    `weights="none"` or `"random"` means random weights.

    Raises:
        InputError: If the preset is unknown or a setting is invalid.

    >>> get_config("quick", image_size=160).image_size
    160
    """
    if preset not in _PRESETS:
        raise InputError(f"Unknown preset: expected one of {PRESET_NAMES}. Received: preset={preset!r}")
    fields = {field.name for field in dataclasses.fields(StudyConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise InputError(
            f"Unknown setting(s) {unknown}: expected names among {sorted(fields)}. Received: overrides={overrides!r}"
        )
    changes = {name: value for name, value in overrides.items() if value is not None}
    if str(changes.get("weights", "")).lower() in ("none", "random"):
        changes["weights"] = None
    if isinstance(changes.get("data"), os.PathLike):
        changes["data"] = os.fspath(changes["data"])
    return _PRESETS[preset].replace(**changes)


def parse_setting(assignment: str) -> tuple[str, object]:
    """Parses one `NAME=VALUE` override of a `StudyConfig` field into `(name, value)`, typed by the field; booleans
    are `true`/`false`, `1`/`0` or `yes`/`no`, and `none` (any case) gives `None` where the field allows it.

    Raises:
        InputError: If the text has no `=`, names no field, or its value does not fit the field's type.

    >>> parse_setting("alpha=0.35")
    ('alpha', 0.35)
    >>> parse_setting("max_images_per_split=none")
    ('max_images_per_split', None)
    """
    name, separator, text = assignment.partition("=")
    name, text = name.strip(), text.strip()
    hints = typing.get_type_hints(StudyConfig)
    if not separator or name not in hints or name == "preset":
        names = sorted(set(hints) - {"preset"})
        raise InputError(
            f"A setting is NAME=VALUE with NAME among {names} (the preset has its own option). Received: {assignment!r}"
        )
    optional = type(None) in typing.get_args(hints[name])
    if optional and text.lower() == "none":
        return name, None
    kind = next(kind for kind in typing.get_args(hints[name]) or (hints[name],) if kind is not type(None))
    try:
        if kind is bool:
            flags = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
            return name, flags[text.lower()]
        return name, kind(text)
    except (KeyError, ValueError):
        expected = "true or false" if kind is bool else f"a value of type {kind.__name__}"
        expected += " or none" if optional else ""
        raise InputError(f"Invalid setting `{name}`: expected {expected}. Received: {assignment!r}") from None


_COMMAND_OPTIONS = {"data": "--data", "weights": "--weights", "image_size": "--image-size", "output_dir": "--output"}


def format_command(config: StudyConfig) -> str:
    """Returns the `catsdogs run` command of these settings: those with an option of their own, then `--set
    NAME=VALUE` for any other that differs from the preset's.

    >>> format_command(get_config("quick", data="photos", output_dir="out", scratch_epochs=40))
    'catsdogs run --preset quick --data photos --weights imagenet --image-size 224 --output out --set scratch_epochs=40'
    """
    preset = _PRESETS[config.preset]
    words = ["catsdogs", "run", "--preset", config.preset]
    for name, option in _COMMAND_OPTIONS.items():
        value = getattr(config, name)
        words += [option, "none" if value is None else str(value)]
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name not in (*_COMMAND_OPTIONS, "preset") and value != getattr(preset, field.name):
            words += ["--set", f"{field.name}={'none' if value is None else value}"]
    return shlex.join(words)
