"""Tests of training stages: best weights, resuming after an interruption, reuse, timing."""

import math
from pathlib import Path

import keras
import numpy as np
import pytest
from model_factory import Interrupt, InterruptAfterEpoch, RecordEpochs, run_stage, tiny_data, tiny_model

from catsdogs_helpers import stage_files, training


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


def test_finished_stage_is_loaded_not_retrained_unless_its_manifest_changes(tmp_path, capsys):
    first_model = tiny_model()
    first = run_stage(first_model, tmp_path, manifest={"settings": {"learning_rate": 0.01}})
    recorder = RecordEpochs()
    second_model = tiny_model()
    second = run_stage(second_model, tmp_path, manifest={"settings": {"learning_rate": 0.01}}, callbacks=[recorder])
    assert recorder.epochs == []
    assert second.history == first.history
    for a, b in zip(first_model.weights, second_model.weights, strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    run_stage(tiny_model(), tmp_path, manifest={"settings": {"learning_rate": 0.02}}, callbacks=[recorder], verbose=1)
    assert recorder.epochs == [0, 1, 2, 3]
    assert "other settings (settings.learning_rate: 0.01 -> 0.02): training this stage from the start" in (
        capsys.readouterr().out
    )


def test_an_interrupted_stage_is_not_resumed_by_a_run_with_other_settings(tmp_path, capsys):
    """Run A (learning rate 0.01) stops after epoch 1; run B (0.05) must not train on from A's weights."""
    with pytest.raises(Interrupt):
        run_stage(tiny_model(), tmp_path, manifest={"lr": 0.01}, callbacks=[InterruptAfterEpoch(1)])
    recorder = RecordEpochs()
    result = run_stage(tiny_model(), tmp_path, manifest={"lr": 0.05}, callbacks=[recorder], verbose=1)
    assert recorder.epochs == [0, 1, 2, 3]
    assert result.history["epoch"] == [0, 1, 2, 3]  # None of run A's rows.
    assert "(lr: 0.01 -> 0.05): training this stage from the start" in capsys.readouterr().out
    # Run B's result is reused by run B, and is B's own: the same as B trained without A's leftovers.
    fresh_dir = tmp_path / "fresh"
    fresh = run_stage(tiny_model(), fresh_dir, manifest={"lr": 0.05})
    assert result.history["val_loss"] == pytest.approx(fresh.history["val_loss"], rel=1e-5)


def _frozen_model():
    """A model that cannot improve (learning rate 0): its validation loss is the same every epoch."""
    return tiny_model(0.0, batch_norm=False, dropout=0.0)


def test_early_stopping_counts_the_epochs_of_an_interrupted_run(tmp_path):
    """With patience 2 and no improvement after epoch 0, the stage ends after epoch 2, interrupted or not."""
    whole = run_stage(_frozen_model(), tmp_path / "whole", epochs=8, patience=2)
    assert whole.history["epoch"] == [0, 1, 2]
    with pytest.raises(Interrupt):
        run_stage(_frozen_model(), tmp_path / "resumed", epochs=8, patience=2, callbacks=[InterruptAfterEpoch(1)])
    recorder = RecordEpochs()
    resumed = run_stage(_frozen_model(), tmp_path / "resumed", epochs=8, patience=2, callbacks=[recorder])
    assert recorder.epochs == [2]  # Not a fresh patience of 2 more epochs.
    assert resumed.history["epoch"] == [0, 1, 2]


def test_an_epoch_logged_but_not_backed_up_is_not_repeated_in_the_history(tmp_path):
    """A run killed between the CSV logger and the backup of epoch 2 logged a row the backup does not have."""
    with pytest.raises(Interrupt):
        run_stage(tiny_model(), tmp_path, epochs=5, callbacks=[InterruptAfterEpoch(1)])
    log = tmp_path / "stage" / "history.csv"
    rows = log.read_text().splitlines()
    log.write_text("\n".join([*rows, rows[-1].replace("1,", "2,", 1)]) + "\n")  # Epoch 2's row, logged only.
    assert stage_files.read_history(log)["epoch"] == [0, 1, 2]
    result = run_stage(tiny_model(), tmp_path, epochs=5)
    assert result.history["epoch"] == [0, 1, 2, 3, 4]


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
    merged = stage_files.merge_histories(first.history, second.history)
    assert merged["epoch"] == [0, 1, 2, 3]
    assert len(merged["val_loss"]) == 4


def test_merge_histories_fills_missing_keys_with_nan():
    merged = stage_files.merge_histories({"epoch": [0], "loss": [1.0]}, {"epoch": [1], "loss": [0.5], "auc": [0.9]})
    assert merged["loss"] == [1.0, 0.5]
    assert math.isnan(merged["auc"][0]) and merged["auc"][1] == 0.9


def test_history_file_is_the_csv_logger_output(tmp_path):
    run_stage(tiny_model(), tmp_path, epochs=2)
    history = stage_files.read_history(Path(tmp_path) / "stage" / "history.csv")
    assert set(history) >= {"epoch", "loss", "val_loss", "accuracy", "val_accuracy", "auc", "epoch_seconds"}
    assert stage_files.read_history(tmp_path / "absent.csv") == {}


def test_a_new_stage_removes_only_its_own_old_files(tmp_path):
    stage_dir = tmp_path / "stage"
    stage_dir.mkdir()
    mine = stage_dir / "notes.txt"
    mine.write_text("a user's file that happens to sit in the output folder")
    (stage_dir / "history.csv").write_text("epoch,loss\n0,9.0\n")  # A stale log of another run.
    result = run_stage(tiny_model(), tmp_path, epochs=2)
    assert mine.read_text().startswith("a user's file")
    assert result.history["epoch"] == [0, 1]


def test_a_stage_after_a_resumed_stage_starts_at_its_own_initial_epoch(tmp_path):
    """BackupAndRestore leaves `model._initial_epoch` set; the next stage on the same model must not inherit it."""
    model = tiny_model()
    with pytest.raises(Interrupt):
        run_stage(model, tmp_path, epochs=4, callbacks=[InterruptAfterEpoch(1)])
    run_stage(model, tmp_path, epochs=4)  # Resumed: epochs 2 and 3.
    recorder = RecordEpochs()
    training.train_stage(
        model, tiny_data(), tiny_data(16, seed=1), name="next", epochs=6, initial_epoch=4, output_dir=tmp_path,
        num_train_images=32, callbacks=[recorder], verbose=0,
    )  # fmt: skip
    assert recorder.epochs == [4, 5]


def test_stage_callbacks_run_in_the_documented_order(tmp_path):
    callbacks = training.build_stage_callbacks(tmp_path, num_train_images=32, patience=3)
    kinds = [type(callback).__name__ for callback in callbacks]
    assert kinds == [
        "EpochTimer", "CSVLogger", "AtomicModelCheckpoint", "ResumableEarlyStopping", "AtomicBackupAndRestore"
    ]  # fmt: skip
    assert isinstance(callbacks[2], keras.callbacks.ModelCheckpoint)
    assert isinstance(callbacks[4], keras.callbacks.BackupAndRestore)
    assert callbacks[3].patience == 3
