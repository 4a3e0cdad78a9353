"""Tests of the models: shapes, preprocessing, freezing, fine-tuning, metrics for logits, saving."""

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from catsdogs_helpers import features, models
from catsdogs_helpers.config import StudyConfig
from catsdogs_helpers.errors import InputError

SIZE = 64  # Small inputs keep MobileNetV2 fast; its layers do not depend on the size.


@pytest.fixture
def transfer_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = models.build_transfer_model(SIZE, weights=None, alpha=0.35, augmentation=models.build_augmentation(0))
    return models.compile_model(model, 1e-2)


def random_photos(num_images: int, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (num_images, size, size, 3)).astype("uint8")


def test_scratch_cnn_takes_raw_pixels_and_returns_one_logit():
    model = models.build_scratch_cnn(SIZE, working_size=48, augmentation=models.build_augmentation(0))
    assert model.input_shape == (None, SIZE, SIZE, 3)
    assert model.output_shape == (None, 1)
    assert model.predict(random_photos(3), verbose=0).shape == (3, 1)
    assert model.get_layer("resize").output.shape[1:3] == (48, 48)


def test_transfer_model_shapes_and_base_is_frozen(transfer_model):
    assert transfer_model.output_shape == (None, 1)
    base = transfer_model.get_layer(models.BASE_NAME)
    assert not base.trainable
    # Only the head's kernel and bias train while the base is frozen.
    assert len(transfer_model.trainable_weights) == 2
    assert transfer_model.get_layer(models.LOGIT_NAME).dtype_policy.compute_dtype == "float32"


def test_preprocessing_inside_the_model_equals_mobilenet_v2_preprocess_input(transfer_model):
    pixels = random_photos(2).astype("float32")
    inside = transfer_model.get_layer("preprocess_input")(pixels)
    expected = keras.applications.mobilenet_v2.preprocess_input(pixels.copy())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(inside), expected, atol=1e-6)


def test_training_step_leaves_frozen_base_and_batch_norm_statistics_unchanged(transfer_model):
    base = transfer_model.get_layer(models.BASE_NAME)
    before = [np.array(weight) for weight in base.weights]  # Kernels and BN moving mean/variance.
    head_before = np.array(transfer_model.get_layer(models.LOGIT_NAME).kernel)
    transfer_model.train_on_batch(random_photos(8), np.array([0, 1] * 4))
    for old, new in zip(before, base.weights, strict=True):
        np.testing.assert_array_equal(old, np.array(new), err_msg=new.path)
    assert not np.array_equal(head_before, np.array(transfer_model.get_layer(models.LOGIT_NAME).kernel))


def test_unfreeze_base_counts_and_keeps_batch_norm_frozen(transfer_model):
    num_layers = models.unfreeze_base(transfer_model, fine_tune_at=100)
    # MobileNetV2 layers 100..153 hold 18 convolutions (kernels, no bias) and 18 BatchNormalizations.
    assert num_layers == 18
    assert len(transfer_model.trainable_weights) == 18 + 2
    batch_norms = [
        layer
        for layer in transfer_model.get_layer(models.BASE_NAME).layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert not any(layer.trainable for layer in batch_norms)
    models.unfreeze_base(transfer_model, fine_tune_at=100, freeze_batch_norm=False)
    assert len(transfer_model.trainable_weights) == 18 + 18 * 2 + 2


def test_fine_tuning_step_keeps_batch_norm_statistics(transfer_model):
    models.unfreeze_base(transfer_model, fine_tune_at=100)
    models.compile_model(transfer_model, 1e-2)
    base = transfer_model.get_layer(models.BASE_NAME)
    moving = [np.array(w) for w in base.non_trainable_weights if "moving" in w.path]
    top_kernel = base.layers[-3]  # Conv_1, the last convolution.
    kernel_before = np.array(top_kernel.kernel)
    transfer_model.train_on_batch(random_photos(8), np.array([0, 1] * 4))
    after = [np.array(w) for w in base.non_trainable_weights if "moving" in w.path]
    for old, new in zip(moving, after, strict=True):
        np.testing.assert_array_equal(old, new)
    assert not np.array_equal(kernel_before, np.array(top_kernel.kernel))


def test_unfreeze_base_rejects_an_index_beyond_the_base(transfer_model):
    with pytest.raises(ValueError, match="fine_tune_at=500"):
        models.unfreeze_base(transfer_model, fine_tune_at=500)


def test_accuracy_counts_a_positive_logit_as_class_one():
    # The model returns its input as the logit, so we choose the logits.
    identity = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="ones")])
    models.compile_model(identity, 1e-3)
    logits = np.array([[0.3], [-0.3], [2.0], [-2.0]], dtype="float32")
    results = identity.evaluate(logits, np.array([1, 1, 0, 0]), verbose=0, return_dict=True)
    # 0.3 with label 1: correct (probability 0.57); -0.3 with label 1: wrong; 2.0 with 0: wrong; -2.0 with 0: right.
    assert results["accuracy"] == pytest.approx(0.5)
    one = identity.evaluate(logits[:1], np.array([1]), verbose=0, return_dict=True)
    assert one["accuracy"] == pytest.approx(1.0)


def test_compile_model_rejects_an_unknown_optimizer():
    with pytest.raises(ValueError, match="optimizer='sgdx'"):
        models.compile_model(models.build_scratch_cnn(SIZE, 32), 1e-3, optimizer="sgdx")


def test_failed_imagenet_download_says_how_to_pass_a_local_file(monkeypatch):
    def fail(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")

    monkeypatch.setattr(keras.applications, "MobileNetV2", fail)
    with pytest.raises(RuntimeError, match="local file") as raised:
        models.build_mobilenet_base(224, "imagenet")
    assert "--weights" in str(raised.value) and "URL fetch failure" in str(raised.value)


def test_save_and_load_round_trip_gives_identical_predictions(tmp_path, transfer_model):
    scratch = models.compile_model(models.build_scratch_cnn(SIZE, 32, augmentation=models.build_augmentation()), 1e-3)
    photos = random_photos(4)
    for model in (scratch, transfer_model):
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = models.load_model(path)
        np.testing.assert_allclose(loaded.predict(photos, verbose=0), model.predict(photos, verbose=0), atol=1e-5)


def test_load_model_refuses_files_that_are_not_models(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.keras"):
        models.load_model(tmp_path / "missing.keras")
    not_a_model = tmp_path / "photo.keras"
    not_a_model.write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"it is not a \.keras archive"):
        models.load_model(not_a_model)


def test_load_model_gives_the_real_reason(tmp_path):
    h5 = tmp_path / "weights.keras"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(InputError, match=r"HDF5 \(\.h5\) file"):
        models.load_model(h5)
    no_config = tmp_path / "empty.keras"
    with zipfile.ZipFile(no_config, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(InputError, match=r"without the config\.json"):
        models.load_model(no_config)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Dense(1)])
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(InputError, match="safe mode refuses"):
        models.load_model(tmp_path / "lambda.keras")
    newer = tmp_path / "newer.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]).save(newer)
    with zipfile.ZipFile(newer) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["class_name"] = "NotALayerYet"
    members["config.json"] = json.dumps(config).encode()
    members["metadata.json"] = json.dumps({"keras_version": "99.0.0"}).encode()
    with zipfile.ZipFile(newer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    with pytest.raises(InputError, match=r"saved by Keras 99\.0\.0, newer than this Keras"):
        models.load_model(newer)


@pytest.mark.shared
def test_local_imagenet_weights_are_loaded_not_random(shared_weights_1_0: Path):
    pretrained = models.build_mobilenet_base(224, str(shared_weights_1_0), alpha=1.0)
    random = models.build_mobilenet_base(224, None, alpha=1.0)
    first_kernel = pretrained.get_layer("Conv1").kernel
    assert not np.allclose(np.array(first_kernel), np.array(random.get_layer("Conv1").kernel))
    with pytest.raises(ValueError, match=r"alpha=0\.35"):
        models.build_mobilenet_base(224, str(shared_weights_1_0), alpha=0.35)


def draw_augmentation_factors(num_draws: int = 2000, seed: int = 7, strength: float = 1.0) -> dict[str, np.ndarray]:
    """Draws each augmentation layer's random factors for `num_draws` photos of one batch."""
    augmentation = models.build_augmentation(seed, strength)
    images = np.zeros((num_draws, 8, 8, 3), np.float32)
    layer = {layer.__class__.__name__: layer for layer in augmentation.layers}
    geometry = layer["RandomAffine"].get_random_transformation(images)
    draws = {
        "flip": layer["RandomFlip"].get_random_transformation(images)["flips"],  # True: flipped.
        "rotation": geometry["angle"],  # Radians.
        "zoom": geometry["zoom"],  # Scale factor.
        "shift_x": geometry["translation"][:, 0],  # Fraction of the width.
        "shift_y": geometry["translation"][:, 1],
        "contrast": layer["RandomContrast"].get_random_transformation(images)["contrast_factor"],
    }
    return {
        name: np.asarray(keras.ops.convert_to_numpy(value), np.float64).reshape(-1) for name, value in draws.items()
    }


def test_augmentation_layers_draw_independent_factors():
    factors = draw_augmentation_factors()
    names = list(factors)
    correlations = np.corrcoef(np.stack([factors[name] for name in names]))
    print("augmentation draws (2,000 photos):")
    for name in names:
        print(f"  {name:<8} min {factors[name].min():+.3f}  max {factors[name].max():+.3f}")
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            correlation = correlations[i, names.index(second)]
            print(f"  correlation {first}/{second}: {correlation:+.3f}")
            assert abs(correlation) < 0.1, (first, second, correlation)


def test_augmentation_factors_cover_their_documented_ranges():
    factors = draw_augmentation_factors()
    assert np.mean(factors["flip"]) == pytest.approx(0.5, abs=0.05)
    contrast = factors["contrast"]
    assert 0.8 <= contrast.min() < 0.85 and 1.15 < contrast.max() <= 1.2  # Lower and higher contrast.
    assert np.mean(contrast < 1.0) == pytest.approx(0.5, abs=0.05)
    rotation = np.degrees(factors["rotation"])  # 0.08 of a turn is 28.8 degrees.
    assert -28.8 <= rotation.min() < -27.0 and 27.0 < rotation.max() <= 28.8
    zoom = factors["zoom"]
    assert 0.8 <= zoom.min() < 0.82 and 1.18 < zoom.max() <= 1.2
    for shift in (factors["shift_x"], factors["shift_y"]):
        assert -0.1 <= shift.min() < -0.09 and 0.09 < shift.max() <= 0.1


def test_augmentation_strength_scales_every_range_but_the_flip():
    half = draw_augmentation_factors(strength=0.5)
    assert 14.0 < np.degrees(np.abs(half["rotation"])).max() <= 14.4  # Half of 28.8 degrees.
    assert 0.9 <= half["zoom"].min() < 0.91 and 1.09 < half["zoom"].max() <= 1.1
    assert 0.05 - 0.005 < np.abs(half["shift_x"]).max() <= 0.05
    assert 0.9 <= half["contrast"].min() < 0.91 and 1.09 < half["contrast"].max() <= 1.1
    assert np.mean(half["flip"]) == pytest.approx(0.5, abs=0.05)
    none = draw_augmentation_factors(strength=0.0)
    assert np.all(none["rotation"] == 0) and np.all(none["zoom"] == 1) and np.all(none["contrast"] == 1)
    assert np.all(none["shift_x"] == 0) and np.all(none["shift_y"] == 0)
    with pytest.raises(ValueError, match="augmentation_strength=-1"):  # Checked with the other settings.
        StudyConfig(augmentation_strength=-1)


def test_augmentation_changes_photos_only_in_training():
    augmentation = models.build_augmentation(3)
    photos = random_photos(4).astype("float32")
    np.testing.assert_array_equal(np.asarray(augmentation(photos, training=False)), photos)
    augmented = np.asarray(augmentation(photos, training=True))
    assert augmented.shape == photos.shape and not np.allclose(augmented, photos)
    assert augmented.min() >= 0.0 and augmented.max() <= 255.0


def study_training_models(directory: Path) -> dict[str, keras.Model]:
    """Every model the study trains, built as `model_stages.py` builds them (the fine-tuned one from a saved file)."""
    scratch = models.build_scratch_cnn(SIZE, 32, augmentation=models.build_augmentation(0))
    transfer = models.build_transfer_model(SIZE, weights=None, alpha=0.35, augmentation=models.build_augmentation(0))
    transfer.save(directory / "transfer.keras")
    finetuned = models.load_model(directory / "transfer.keras")
    models.unfreeze_base(finetuned, fine_tune_at=100)
    return {"scratch": scratch, "transfer": transfer, "head": features.build_head(transfer), "finetuned": finetuned}


def resolve_auto_jit_compile_on_a_gpu(model: keras.Model, monkeypatch: pytest.MonkeyPatch) -> bool:
    """What `compile_model` leaves `model.jit_compile` at on a machine with a GPU.

    Keras resolves `jit_compile="auto"` in `Trainer._resolve_auto_jit_compile`: on TensorFlow, False on a
    CPU-only machine or under a `tf.distribute` strategy; otherwise `model_supports_jit(model)`, which is
    True only if every layer, nested ones included, has `supports_jit` (and TF op determinism is off).
    """
    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    with monkeypatch.context() as patch:
        patch.setattr(tf.config, "list_physical_devices", lambda device_type=None: [gpu])
        models.compile_model(model, 1e-3)
    return model.jit_compile


def test_no_layer_of_a_training_model_opts_out_of_xla(tmp_path, monkeypatch):
    for name, model in study_training_models(tmp_path).items():
        opted_out = [layer.name for layer in model._flatten_layers() if not layer.supports_jit]
        assert opted_out == [], name
        assert resolve_auto_jit_compile_on_a_gpu(model, monkeypatch) is True, name
    # The check catches a layer that opts out, such as Keras's own RandomRotation.
    rotating = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.RandomRotation(0.1), keras.layers.Dense(1)])
    assert resolve_auto_jit_compile_on_a_gpu(rotating, monkeypatch) is False


def test_the_scratch_training_step_compiles_with_xla(graph_mode):
    # XLA also runs on a CPU when asked explicitly: this compiles the whole training step, augmentation included.
    keras.utils.set_random_seed(0)
    model = models.build_scratch_cnn(SIZE, 32, widths=(8, 8, 16, 16), augmentation=models.build_augmentation(0))
    models.compile_model(model, 1e-2)
    model.jit_compile = True
    kernel_before = np.array(model.get_layer(models.LOGIT_NAME).kernel)
    model.train_on_batch(random_photos(8), np.array([0, 1] * 4))
    assert model.jit_compile is True
    assert not np.array_equal(kernel_before, np.array(model.get_layer(models.LOGIT_NAME).kernel))
    resize = tf.function(keras.layers.Resizing(32, 32, antialias=True), jit_compile=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="ScaleAndTranslate"):
        resize(random_photos(2).astype("float32"))
