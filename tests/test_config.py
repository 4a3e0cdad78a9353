"""Tests of catsdogs_helpers.config: presets, checks, overrides."""

import dataclasses
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from catsdogs_helpers import config
from catsdogs_helpers.config import DEFAULT, QUICK, SMOKE, StudyConfig, get_config

QUICK_OVERRIDES = {
    "preset",
    "max_images_per_split",
    "scratch_image_size",
    "scratch_epochs",
    "transfer_epochs",
    "fine_tune_epochs",
    "patience",
}
SMOKE_OVERRIDES = {
    "preset",
    "weights",
    "alpha",
    "image_size",
    "scratch_image_size",
    "batch_size",
    "max_images_per_split",
    "scratch_epochs",
    "transfer_epochs",
    "fine_tune_epochs",
    "patience",
}


def _differences(first: StudyConfig, second: StudyConfig) -> set[str]:
    return {name for name, value in first.to_dict().items() if second.to_dict()[name] != value}


def test_presets_differ_only_in_the_fields_they_override():
    assert _differences(DEFAULT, QUICK) <= QUICK_OVERRIDES
    assert _differences(QUICK, SMOKE) <= SMOKE_OVERRIDES
    assert {"preset", "max_images_per_split", "scratch_image_size", "scratch_epochs"} <= _differences(DEFAULT, QUICK)
    assert {"preset", "weights", "image_size", "batch_size"} <= _differences(QUICK, SMOKE)
    assert (QUICK.preset, SMOKE.preset) == ("quick", "smoke")
    assert SMOKE.weights is None  # The smoke preset works offline.


def test_get_config_returns_the_presets():
    assert get_config() == DEFAULT
    assert get_config("quick") == QUICK
    assert get_config("smoke") == SMOKE


def _load_config_with(source_change: tuple[str, str], monkeypatch) -> object:
    """Loads a fresh copy of config.py whose source has one default changed."""
    path = Path(config.__file__)
    source = path.read_text()
    old, new = source_change
    assert source.count(old) == 1, f"config.py no longer holds {old!r}: update this test"
    spec = importlib.util.spec_from_loader("changed_config", loader=None)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "changed_config", module)
    exec(compile(source.replace(old, new), str(path), "exec"), module.__dict__)
    return module


def test_presets_follow_a_changed_default(monkeypatch):
    changed = _load_config_with(("dropout: float = _setting(0.2,", "dropout: float = _setting(0.35,"), monkeypatch)
    assert changed.DEFAULT.dropout == changed.QUICK.dropout == changed.SMOKE.dropout == 0.35
    # A default that a preset overrides stays overridden.
    changed = _load_config_with(("batch_size: int = _setting(32,", "batch_size: int = _setting(64,"), monkeypatch)
    assert (changed.DEFAULT.batch_size, changed.QUICK.batch_size, changed.SMOKE.batch_size) == (64, 64, 8)


def test_replace_returns_a_checked_copy():
    changed = DEFAULT.replace(batch_size=16)
    assert changed.batch_size == 16
    assert DEFAULT.batch_size == 32
    assert _differences(DEFAULT, changed) == {"batch_size"}
    with pytest.raises(config.InputError, match=re.escape("batch_size=0")):
        DEFAULT.replace(batch_size=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.batch_size = 8  # type: ignore[misc]


def test_overrides_change_only_what_they_name_and_none_is_ignored():
    config_ = get_config("quick", image_size=160, batch_size=None, seed=7)
    assert _differences(QUICK, config_) == {"image_size", "seed"}
    assert (config_.image_size, config_.batch_size, config_.seed) == (160, QUICK.batch_size, 7)


@pytest.mark.parametrize("spelling", ["none", "None", "NONE", "random"])
def test_weights_none_means_random_weights(spelling):
    assert get_config(weights=spelling, image_size=100).weights is None


def test_data_path_is_stored_as_a_string(tmp_path):
    assert get_config(data=tmp_path).data == str(tmp_path)


def test_a_path_spelled_with_a_tilde_names_one_folder_for_the_checks_the_lock_and_the_writes(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = get_config("smoke", data="~/photos", output_dir="~/out", cache_dir="~/cache", weights="~/w.h5")
    assert (settings.data, settings.output_dir) == (str(tmp_path / "photos"), str(tmp_path / "out"))
    assert (settings.cache_dir, settings.weights) == (str(tmp_path / "cache"), str(tmp_path / "w.h5"))
    assert settings.replace(output_dir="~/other").output_dir == str(tmp_path / "other")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("preset", "huge"),
        ("data", ""),
        ("output_dir", ""),  # What OUTPUT_DIR="$OUT" gives with OUT unset: never the current folder.
        ("output_dir", "  "),
        ("cache_dir", ""),
        ("weights", ""),
        ("weights", 3),
        ("alpha", 0.3),
        ("alpha", "1.0"),
        ("image_size", 31),
        ("image_size", 224.0),
        ("image_size", 100),  # Not an ImageNet size with weights="imagenet".
        ("scratch_image_size", 16),
        ("batch_size", 0),
        ("batch_size", True),
        ("scratch_epochs", 0),
        ("transfer_epochs", -1),
        ("patience", 0),
        ("scratch_patience", 0),
        ("scratch_patience", 2.5),
        ("fine_tune_epochs", -1),
        ("fine_tune_at", -2),
        ("max_images_per_split", 1),
        ("max_images_per_split", 2.5),
        ("validation_fraction", 0.0),
        ("validation_fraction", 0.5),
        ("validation_fraction", "0.1"),
        ("test_fraction", -0.1),
        ("test_fraction", float("nan")),
        ("scratch_learning_rate", 0.0),
        ("transfer_learning_rate", 1.5),
        ("fine_tune_learning_rate", "1e-5"),
        ("dropout", 1.0),
        ("dropout", -0.1),
    ],
)
def test_invalid_values_raise_value_error_echoing_the_value(name, value):
    with pytest.raises(config.InputError, match=re.escape(f"{name}={value!r}")):
        StudyConfig(**{name: value})
    if name != "preset":
        with pytest.raises(config.InputError, match=re.escape(f"{name}={value!r}")):
            get_config("quick", **{name: value})


def test_imagenet_weights_need_an_imagenet_size():
    with pytest.raises(config.InputError, match=r"image_size=100") as error:
        get_config(image_size=100)
    assert "weights='imagenet'" in str(error.value)
    assert get_config(image_size=100, weights="none").image_size == 100
    assert get_config(image_size=100, weights="/path/to/weights.h5").image_size == 100
    for size in config.IMAGENET_IMAGE_SIZES:
        assert get_config(image_size=size).image_size == size


def test_unknown_preset_raises():
    with pytest.raises(config.InputError, match=re.escape("preset='huge'")):
        get_config("huge")


def test_unknown_setting_raises_and_names_it():
    with pytest.raises(config.InputError, match="learning_rat") as error:
        get_config(learning_rat=0.1)
    assert "Unknown setting" in str(error.value)


@pytest.mark.parametrize("preset", config.PRESET_NAMES)
def test_to_dict_is_json_serializable_and_round_trips(preset):
    config_ = get_config(preset)
    settings = json.loads(json.dumps(config_.to_dict()))
    assert settings["preset"] == preset
    assert set(settings) == {field.name for field in dataclasses.fields(StudyConfig)}
    assert StudyConfig(**settings) == config_


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("alpha=0.35", ("alpha", 0.35)),
        ("scratch_epochs=5", ("scratch_epochs", 5)),
        (" batch_size = 16 ", ("batch_size", 16)),
        ("use_cached_features=false", ("use_cached_features", False)),
        ("use_cached_features=Yes", ("use_cached_features", True)),
        ("max_images_per_split=none", ("max_images_per_split", None)),
        ("scratch_patience=none", ("scratch_patience", None)),
        ("scratch_patience=10", ("scratch_patience", 10)),
        ("cache_dir=/tmp/cache", ("cache_dir", "/tmp/cache")),
        ("weights=None", ("weights", None)),
        ("data=tfds", ("data", "tfds")),
    ],
)
def test_parse_setting_types_the_value_by_its_field(assignment, expected):
    assert config.parse_setting(assignment) == expected


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("alpha", "NAME=VALUE"),
        ("learning_rate=0.1", "NAME=VALUE"),
        ("preset=quick", "the preset has its own option"),
        ("scratch_epochs=five", "expected a value of type int"),
        ("scratch_epochs=none", "expected a value of type int"),
        ("use_cached_features=maybe", "expected true or false"),
    ],
)
def test_parse_setting_refuses_what_it_cannot_type(assignment, message):
    with pytest.raises(config.InputError, match=message) as raised:
        config.parse_setting(assignment)
    assert repr(assignment) in str(raised.value)


def test_every_preset_is_described_in_one_sentence():
    assert set(config.PRESET_DESCRIPTIONS) == set(config.PRESET_NAMES)
    assert "alpha 0.35" in config.PRESET_DESCRIPTIONS["smoke"]  # Why a 1.0 weights file does not fit it.
