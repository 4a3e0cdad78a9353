"""Every setting of the study in one frozen dataclass, with presets.

The presets derive from one another: `quick` is `default` with fewer images and
epochs, and `smoke` is `quick` made tiny and offline.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import typing

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
        preset: Name of the preset the settings came from.
        data: `"tfds"` for TensorFlow Datasets' `cats_vs_dogs`, or the path of a folder of photos (one
            sub-folder per class, or `train/`, `validation/`, `test/` each holding the class folders).
        weights: `"imagenet"`, the path of a local MobileNetV2 no-top `.h5` file, or `None` for random weights.
        alpha: MobileNetV2 width multiplier.
        image_size: Side of the square images fed to both models, in pixels.
        scratch_image_size: Side the scratch CNN resizes its input to, in pixels (see `build_scratch_cnn`).
        batch_size: Images per batch, per GPU (see `runtime.choose_distribution_strategy`).
        validation_fraction: Share of photos held out for validation when the source is not pre-split.
        test_fraction: Share held out for the final test.
        max_images_per_split: Keep at most this many photos per split (a stable subset), or `None` for all.
        cache_dir: Folder for tf.data file caches, or `None` to cache decoded images in memory.
        seed: Seed for Python, NumPy, TensorFlow and the shuffles.
        scratch_epochs: Maximum epochs for the scratch CNN.
        scratch_learning_rate: Peak Adam learning rate of the scratch CNN (cosine decay).
        scratch_dropout: Dropout rate before the scratch CNN's logit.
        scratch_weight_decay: Decoupled (AdamW) weight decay of the scratch CNN, or `0.0` for none.
        scratch_patience: Early-stopping patience of the scratch CNN, in epochs, or `None` to train all
            `scratch_epochs` (the best validation epoch's weights are kept either way).
        transfer_epochs: Maximum epochs for the head on the frozen base.
        transfer_learning_rate: Adam learning rate of the head.
        use_cached_features: Train the head on features computed once by the frozen base (fast, no
            augmentation) instead of end to end.
        fine_tune_epochs: Epochs of fine-tuning after the head.
        fine_tune_learning_rate: Adam learning rate while fine-tuning.
        fine_tune_at: Base layers below this index (of 154 in MobileNetV2) stay frozen while fine-tuning.
        augmentation_strength: Scales the augmentation's ranges (see `models.build_augmentation`).
        dropout: Dropout rate before the transfer model's logit.
        patience: Early-stopping patience of the head and of fine-tuning (the study's and the sweep's), in epochs.
        output_dir: Folder for checkpoints, figures and results.
    """

    # Each setting names the results its value changes: the training stages ("scratch", "transfer",
    # "finetuned") and the sweep's points ("sweep"), whose manifests record it (see `depends_on`), so that a finished
    # result is reused only when trained the same way. None for where files go, the preset's name, and the data's
    # settings (the photos' content key stands for them).
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
        """Returns a copy with some settings changed (and checked again).

        Raises:
            InputError: If a changed setting is invalid (a `ValueError`).
        """
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


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_config(config: StudyConfig) -> None:
    if config.preset not in PRESET_NAMES:
        _fail("preset", config.preset, f"one of {PRESET_NAMES}")
    # An empty path is what an unset variable gives ("$OUT"): it would mean the current folder.
    expected = {"data": '"tfds" or the path of a folder of photos', "weights": '"imagenet", a .h5 file\'s path or None',
                "cache_dir": "a folder's path or None", "output_dir": "a folder's path (not empty)"}  # fmt: skip
    for name in _PATH_SETTINGS:
        value = getattr(config, name)
        if (value is not None or name in ("data", "output_dir")) and not (isinstance(value, str) and value.strip()):
            _fail(name, value, expected[name])
    if config.alpha not in MOBILENET_V2_ALPHAS:
        _fail("alpha", config.alpha, f"one of {MOBILENET_V2_ALPHAS}")
    for name in ("image_size", "scratch_image_size"):
        value = getattr(config, name)
        if not _is_integer(value) or value < 32:
            _fail(name, value, "an integer of at least 32 (pixels)")
    if config.weights == "imagenet" and config.image_size not in IMAGENET_IMAGE_SIZES:
        _fail(
            "image_size",
            config.image_size,
            f"one of {IMAGENET_IMAGE_SIZES} with weights='imagenet' (Keras has ImageNet "
            "weights only for these sizes); pick one of them or pass a local weights file",
        )
    for name in ("batch_size", "scratch_epochs", "transfer_epochs", "patience"):
        value = getattr(config, name)
        if not _is_integer(value) or value < 1:
            _fail(name, value, "a positive integer")
    patience = config.scratch_patience
    if patience is not None and (not _is_integer(patience) or patience < 1):
        _fail("scratch_patience", config.scratch_patience, "None (train every scratch epoch) or a positive integer")
    if not _is_integer(config.fine_tune_epochs) or config.fine_tune_epochs < 0:
        _fail("fine_tune_epochs", config.fine_tune_epochs, "an integer >= 0 (0 skips fine-tuning)")
    if not _is_integer(config.fine_tune_at) or config.fine_tune_at < 0:
        _fail("fine_tune_at", config.fine_tune_at, "an integer >= 0 (a layer index of the base)")
    if config.max_images_per_split is not None and (
        not _is_integer(config.max_images_per_split) or config.max_images_per_split < 2
    ):
        _fail("max_images_per_split", config.max_images_per_split, "None or an integer >= 2")
    for name in ("validation_fraction", "test_fraction"):
        value = getattr(config, name)
        if not _is_number(value) or not 0.0 < value < 0.5:
            _fail(name, value, "a fraction between 0 and 0.5")
    for name in ("scratch_learning_rate", "transfer_learning_rate", "fine_tune_learning_rate"):
        value = getattr(config, name)
        if not _is_number(value) or not 0.0 < value < 1.0:
            _fail(name, value, "a learning rate between 0 and 1")
    for name in ("dropout", "scratch_dropout"):
        value = getattr(config, name)
        if not _is_number(value) or not 0.0 <= value < 1.0:
            _fail(name, value, "a rate in [0, 1)")
    if not _is_number(config.augmentation_strength) or not 0.0 <= config.augmentation_strength <= 4.0:
        _fail("augmentation_strength", config.augmentation_strength, "a number between 0 and 4 (1 is the default)")
    if not _is_number(config.scratch_weight_decay) or not 0.0 <= config.scratch_weight_decay < 1.0:
        _fail("scratch_weight_decay", config.scratch_weight_decay, "a decay in [0, 1) (0 for none)")


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
    """Returns the settings of a preset, with some of them overridden.

    Overrides whose value is `None` are ignored, so optional command-line flags
    and notebook parameters can be passed straight through.

    Args:
        preset: `"default"` (the real study), `"quick"` (at most 2,000 photos
            per split) or `"smoke"` (seconds, random weights, for CI).
        **overrides: Settings to change, by name. `weights="none"` (or
            `"random"`) asks for random weights.

    Returns:
        A checked `StudyConfig`.

    Raises:
        InputError: If the preset is unknown or a setting is invalid (a `ValueError`).

    Example:

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
    """Parses one `NAME=VALUE` override of a `StudyConfig` field, typed by the field.

    Integers, floats and booleans (`true`/`false`, `1`/`0`, `yes`/`no`) are
    converted; `none` (any case) gives `None` where the field allows it.

    Args:
        assignment: Text such as `"scratch_epochs=5"` or `"cache_dir=none"`.

    Returns:
        `(name, value)`, ready for `get_config(preset, **{name: value})`.

    Raises:
        InputError: If the text has no `=`, names no field, or its value does not
            fit the field's type.

    Example:

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
    kinds = [kind for kind in typing.get_args(hints[name]) or (hints[name],) if kind is not type(None)]
    optional = type(None) in typing.get_args(hints[name])
    if optional and text.lower() == "none":
        return name, None
    kind = kinds[0]
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
    """Returns the `catsdogs run` command that runs a study with exactly these settings.

    Settings with an option of their own are always given; any other setting
    that differs from the preset's follows as `--set NAME=VALUE`.

    Example:

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
