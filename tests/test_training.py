"""Tests of training stages: best weights, resuming after an interruption, reuse, timing, cached features."""

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from catsdogs_helpers import data, evaluation, models, training

SIZE = 48


class Interrupt(Exception):
    """Stands for a Colab disconnect or a Ctrl-C."""


class InterruptAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Interrupt(f"interrupted after epoch {epoch}")


class RecordEpochs(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def tiny_data(num_images: int = 32, seed: int = 0) -> tf.data.Dataset:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, num_images).astype("int32")
    images = rng.integers(0, 100, (num_images, SIZE, SIZE, 3)) + 120 * labels[:, None, None, None]
    return tf.data.Dataset.from_tensor_slices((images.astype("uint8"), labels)).batch(8)


def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return models.compile_model(models.build_scratch_cnn(SIZE, 32, widths=(8, 8, 16, 16)), 1e-2)


def run_stage(model, output_dir, epochs=4, **kwargs) -> training.StageResult:
    return training.train_stage(
        model,
        tiny_data(),
        tiny_data(16, seed=1),
        name="stage",
        epochs=epochs,
        output_dir=output_dir,
        num_train_images=32,
        patience=10,
        verbose=0,
        **kwargs,
    )


def test_stage_records_history_timing_and_keeps_best_weights(tmp_path):
    model = tiny_model()
    result = run_stage(model, tmp_path)
    assert result.history["epoch"] == [0, 1, 2, 3]
    assert all(seconds > 0 for seconds in result.history["epoch_seconds"])
    assert all(rate > 0 for rate in result.history["train_images_per_second"])
    assert result.train_seconds > 0 and result.images_per_second > 0
    assert result.best_epoch == int(np.argmin(result.history["val_loss"]))
    # The model holds the best epoch's weights, the ones the checkpoint wrote.
    best = tiny_model()
    best.load_weights(tmp_path / "stage" / "best.weights.h5")
    for kept, saved in zip(model.weights, best.weights, strict=True):
        np.testing.assert_array_equal(np.array(kept), np.array(saved))
    validation_loss = model.evaluate(tiny_data(16, seed=1), verbose=0, return_dict=True)["loss"]
    assert validation_loss == pytest.approx(min(result.history["val_loss"]), rel=1e-4)


def test_interrupted_stage_continues_after_the_last_finished_epoch(tmp_path):
    with pytest.raises(Interrupt):
        run_stage(tiny_model(), tmp_path, epochs=5, callbacks=[InterruptAfterEpoch(1)])
    recorder = RecordEpochs()
    result = run_stage(tiny_model(), tmp_path, epochs=5, callbacks=[recorder])
    assert recorder.epochs == [2, 3, 4]  # Epochs 0 and 1 had finished.
    assert result.history["epoch"] == [0, 1, 2, 3, 4]  # One row per epoch across both runs.
    assert not (tmp_path / "stage" / "backup").exists()


def test_finished_stage_is_loaded_not_retrained_unless_settings_change(tmp_path):
    first_model = tiny_model()
    first = run_stage(first_model, tmp_path, fingerprint={"learning_rate": 0.01})
    recorder = RecordEpochs()
    second_model = tiny_model()
    second = run_stage(second_model, tmp_path, fingerprint={"learning_rate": 0.01}, callbacks=[recorder])
    assert recorder.epochs == []
    assert second.history == first.history
    for a, b in zip(first_model.weights, second_model.weights, strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    run_stage(tiny_model(), tmp_path, fingerprint={"learning_rate": 0.02}, callbacks=[recorder])
    assert recorder.epochs == [0, 1, 2, 3]


def test_fine_tuning_stage_continues_the_epoch_count(tmp_path):
    model = tiny_model()
    first = run_stage(model, tmp_path, epochs=2)
    second = training.train_stage(
        model,
        tiny_data(),
        tiny_data(16, seed=1),
        name="second",
        epochs=first.num_epochs + 2,
        initial_epoch=first.num_epochs,
        output_dir=tmp_path,
        num_train_images=32,
        verbose=0,
    )
    merged = training.merge_histories(first.history, second.history)
    assert merged["epoch"] == [0, 1, 2, 3]
    assert len(merged["val_loss"]) == 4


def test_merge_histories_fills_missing_keys_with_nan():
    merged = training.merge_histories({"epoch": [0], "loss": [1.0]}, {"epoch": [1], "loss": [0.5], "auc": [0.9]})
    assert merged["loss"] == [1.0, 0.5]
    assert math.isnan(merged["auc"][0]) and merged["auc"][1] == 0.9


def test_cached_feature_head_makes_the_full_model_predict_like_the_head(tmp_path):
    keras.utils.set_random_seed(0)
    model = models.build_transfer_model(SIZE, weights=None, alpha=0.35, augmentation=models.build_augmentation(0))
    result = training.train_head_on_features(
        model, tiny_data(), tiny_data(16, seed=1), learning_rate=1e-2, epochs=3, output_dir=tmp_path, verbose=0
    )
    assert result.num_epochs == 3
    stored = json.loads((tmp_path / "transfer" / "result.json").read_text())["result"]
    assert stored["train_seconds"] == pytest.approx(result.train_seconds)  # Feature extraction included.
    features, _ = training.extract_features(training.build_feature_extractor(model), tiny_data(16, seed=2))
    from_head = training.build_head(model).predict(features, verbose=0)
    images = np.concatenate([batch for batch, _ in tiny_data(16, seed=2).as_numpy_iterator()])
    np.testing.assert_allclose(model.predict(images, verbose=0), from_head, rtol=1e-4, atol=1e-4)


@pytest.mark.shared
def test_pretrained_features_separate_real_cats_and_dogs_in_seconds(tmp_path, shared_photos, shared_weights_1_0):
    """Proof that the ImageNet features are really used: random features cannot reach 90%."""
    splits = data.load_splits(str(shared_photos), image_size=224, max_images_per_split=300, verbose=False)
    keras.utils.set_random_seed(0)
    model = models.build_transfer_model(224, weights=str(shared_weights_1_0))
    result = training.train_head_on_features(
        model,
        splits.train_in_order,
        splits.validation,
        learning_rate=1e-3,
        epochs=15,
        output_dir=tmp_path,
        verbose=0,
    )
    accuracy = evaluation.evaluate_model(model, splits.test, "transfer").metrics["accuracy"]
    assert accuracy >= 0.90, f"test accuracy {accuracy:.3f} after {result.train_seconds:.0f} s"


def test_history_file_is_the_csv_logger_output(tmp_path):
    run_stage(tiny_model(), tmp_path, epochs=2)
    history = training.read_history(Path(tmp_path) / "stage" / "history.csv")
    assert set(history) >= {"epoch", "loss", "val_loss", "accuracy", "val_accuracy", "auc", "epoch_seconds"}
    assert training.read_history(tmp_path / "absent.csv") == {}


def test_a_new_stage_removes_only_its_own_old_files(tmp_path):
    stage_dir = tmp_path / "stage"
    stage_dir.mkdir()
    mine = stage_dir / "notes.txt"
    mine.write_text("a user's file that happens to sit in the output folder")
    (stage_dir / "history.csv").write_text("epoch,loss\n0,9.0\n")  # A stale log of another run.
    result = run_stage(tiny_model(), tmp_path, epochs=2)
    assert mine.read_text().startswith("a user's file")
    assert result.history["epoch"] == [0, 1]
