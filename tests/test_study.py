"""The whole study in-process (`study.run_study`), as flax tests `train_and_evaluate`: one-step settings, real code."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from model_factory import InterruptAfterEpoch

from catsdogs_helpers import runtime, study, training
from catsdogs_helpers.config import MODEL_NAMES, get_config
from catsdogs_helpers.errors import InputError, StudyInterrupted

FIGURES = ("learning_curves", "confusion_matrices", "roc_curves", "mistakes", "grad_cam")
pytestmark = pytest.mark.slow


def check_outputs(output: Path, results: dict) -> None:
    """Checks what a study leaves behind, and that results.json holds the results returned."""
    for name in MODEL_NAMES:
        assert (output / f"{name}.keras").stat().st_size > 0
    for name in FIGURES:
        assert (output / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((output / "results.json").read_text())["models"].keys() == results["models"].keys()
    assert "| model | test accuracy |" in (output / "report.md").read_text()
    assert set(results) == {"models", "comparisons", "config", "data", "environment", "command"}
    assert len(results["comparisons"]) == 3  # Each pair of the three models, on the same test photos.
    assert results["command"].startswith(f"catsdogs run --preset {results['config']['preset']} ")
    report = (output / "report.md").read_text()
    assert "## Are the differences real?" in report and results["command"] in report
    for model in results["models"].values():
        assert 0.0 <= model["test"]["accuracy"] <= 1.0
        low, high = model["test"]["accuracy_interval"]
        assert low <= model["test"]["accuracy"] <= high
        assert 0.0 <= model["test_tta"]["accuracy"] <= 1.0
        assert model["train_seconds"] > 0 and model["params_total"] > 0
    assert results["models"]["transfer"]["params_trainable"] < results["models"]["finetuned"]["params_trainable"]


def test_a_study_in_mixed_precision_stopped_by_ctrl_c_resumes_then_reuses_every_finished_stage(
    tmp_path, make_photo_folder, monkeypatch, capsys
):
    """One study, in the GPU's precision (mixed_float16 on tensor cores, exercised on the CPU), met as a user meets
    it: stopped by Ctrl-C in its first stage, run again to the end (cached features, fine-tuning, Grad-CAM and TTA
    included), run a third time (every stage reused), then once more with a scratch setting changed. The tfds path
    is `test_cli.test_run_on_tfds_prepares_nothing_online`'s."""

    def choose_mixed_precision(apply: bool = True) -> str:
        keras.mixed_precision.set_global_policy("mixed_float16")
        return "mixed_float16"

    monkeypatch.setattr(runtime, "choose_precision_policy", choose_mixed_precision)
    photos = make_photo_folder(tmp_path / "photos", num_per_class=20, size=48)
    config = get_config("smoke", data=str(photos), output_dir=str(tmp_path / "out")).replace(scratch_epochs=3)
    build = training.build_stage_callbacks

    def interrupt(*args, **kwargs) -> list[keras.callbacks.Callback]:
        return [*build(*args, **kwargs), InterruptAfterEpoch(1, KeyboardInterrupt)]  # Ctrl-C after epoch 1.

    try:
        monkeypatch.setattr(training, "build_stage_callbacks", interrupt)
        with pytest.raises(StudyInterrupted) as raised:
            study.run_study(config, verbose=0)
        assert (raised.value.stage, raised.value.finished_epochs) == ("scratch", 2)
        assert "after 2 finished epochs" in str(raised.value) and "run the same command again" in str(raised.value)
        monkeypatch.setattr(training, "build_stage_callbacks", build)
        results = study.run_study(config, verbose=0)
        model = keras.models.load_model(tmp_path / "out" / "scratch.keras")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    check_outputs(tmp_path / "out", results)
    assert results["models"]["scratch"]["stages"][0]["epochs"] == 3  # Epochs 0 and 1 from the first run, then 2.
    assert results["data"]["counts"]["test"] and results["config"]["data"] == str(photos)
    assert "== scratch: training the CNN from scratch" in capsys.readouterr().out
    assert results["environment"]["precision_policy"] == "mixed_float16"
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convolutions and all(layer.compute_dtype == "float16" for layer in convolutions)
    assert model.output.dtype == "float32"  # The logit stays float32: losses and metrics stay accurate.
    for name in MODEL_NAMES:
        assert np.isfinite(results["models"][name]["test"]["loss"])

    again = study.run_study(config, verbose=2)
    output = capsys.readouterr().out
    assert output.count("finished in an earlier run") == 3
    assert " - val_loss: " not in output  # No epoch was trained again.
    for name in MODEL_NAMES:
        assert again["models"][name]["test"]["accuracy"] == results["models"][name]["test"]["accuracy"]
        assert again["models"][name]["test"]["loss"] == pytest.approx(results["models"][name]["test"]["loss"])
    # A scratch setting changed: only the scratch stage trains again, and says why.
    study.run_study(config.replace(scratch_epochs=2), verbose=2)
    output = capsys.readouterr().out
    assert "[scratch] an earlier run in" in output and "(settings.scratch_epochs: 3 -> 2; compilation: " in output
    # The cosine's length follows the epochs: the compilation digest changed with the setting.
    assert output.count("finished in an earlier run") == 2  # transfer and finetuned


def test_a_bad_weights_file_fails_before_anything_trains(tmp_path, make_photo_folder):
    photos = make_photo_folder(tmp_path / "photos", num_per_class=4, size=32)
    not_weights = tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    not_weights.write_bytes(b"not an h5 file")
    config = get_config("smoke", data=str(photos), weights=str(not_weights), output_dir=str(tmp_path / "out"))
    with pytest.raises(InputError, match=r"does not fit MobileNetV2 with alpha=0\.35") as raised:
        study.run_study(config, verbose=0)
    assert "--set alpha=1.0" in str(raised.value) and "'smoke' preset" in str(raised.value)
    assert not (tmp_path / "out" / "scratch").exists()


def test_grad_cam_photos_start_where_the_models_disagree():
    labels = np.array([0, 1, 0, 1, 0, 1])
    evaluations = {
        "scratch": study.evaluation.ModelEvaluation("scratch", labels, np.array([1, 1, -1, 1, -1, -1.0]), {}),
        "finetuned": study.evaluation.ModelEvaluation("finetuned", labels, np.array([-1, 1, -1, 1, -1, 1.0]), {}),
    }
    # Photos 0 and 5 split the models; 1, 2, 3 and 4 both get right.
    assert study.choose_grad_cam_photos(evaluations, num_photos=4) == [0, 5, 1, 2]
    always_dog, always_cat = np.array([1, 1, 1.0]), np.array([-1, -1, -1.0])
    everything_disputed = {
        "a": study.evaluation.ModelEvaluation("a", labels[:3], always_dog, {}),
        "b": study.evaluation.ModelEvaluation("b", labels[:3], always_cat, {}),
    }
    assert study.choose_grad_cam_photos(everything_disputed, num_photos=4) == [0, 1, 2]


def test_take_photos_keeps_only_the_photos_asked_for_and_reads_no_further():
    """The figures draw at most 22 test photos: they are fetched one by one, never the whole split at once."""
    read = []

    def photos():
        for index in range(100):
            read.append(index)
            yield np.full((4, 4, 3), index, np.uint8), index

    spec = (tf.TensorSpec((4, 4, 3), tf.uint8), tf.TensorSpec((), tf.int64))
    dataset = tf.data.Dataset.from_generator(photos, output_signature=spec).batch(8)
    taken = study.take_photos(dataset, [42, 3, 17, 17])
    assert sorted(taken) == [3, 17, 42]
    assert all((photo == index).all() and photo.shape == (4, 4, 3) for index, photo in taken.items())
    assert all(photo.base is None for photo in taken.values())  # Copies: a view would keep its whole batch alive.
    assert len(read) < 100  # It stopped after the batch of photo 42 instead of reading the whole split.
    assert study.take_photos(dataset, []) == {}


@pytest.mark.parametrize(("scratch_patience", "expected"), [(None, 4), (2, 2)])
def test_the_scratch_cnn_trains_every_epoch_unless_given_a_patience(
    tmp_path, make_photo_folder, monkeypatch, scratch_patience, expected
):
    """Its cosine reaches zero only at the last epoch: by default early stopping never cuts it short."""
    photos = make_photo_folder(tmp_path / "photos", num_per_class=20, size=32)
    config = get_config("smoke", data=str(photos), output_dir=str(tmp_path / "out"))
    config = config.replace(scratch_epochs=4, patience=1, scratch_patience=scratch_patience)
    used = {}

    def record(*args, **kwargs):
        used.update(kwargs)
        raise KeyboardInterrupt  # Nothing to train: what the stage was asked for is the point.

    study.start_study(config)
    splits = study.load_data(config, verbose=False)
    monkeypatch.setattr(training, "train_stage", record)
    with pytest.raises(KeyboardInterrupt):
        study.train_scratch_cnn(config, splits, verbose=0)
    assert (used["epochs"], used["patience"]) == (4, expected)
