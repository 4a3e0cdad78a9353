"""The study on several devices: `MirroredStrategy` over two logical CPUs, in a fresh process.

TensorFlow splits a CPU into logical devices only before it initializes, so the
distributed study runs in a subprocess of its own; this process's TensorFlow is
left as it is. Every stage (scratch, the head on cached features, fine-tuning)
trains one epoch there, on `tfds.testing.mock_data`.
"""

import json
import math
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import tensorflow as tf

from catsdogs_helpers import models, runtime, stage_manifest
from catsdogs_helpers.config import get_config

REPOSITORY = Path(__file__).resolve().parents[1]

# Runs the smoke study's stages under MirroredStrategy over /cpu:0 and /cpu:1, up to the evaluation (of the fine-tuned
# model only: each model's predictions cost a few seconds of tracing per replica), and prints, as its last line, JSON
# with what every training stage saw (replicas, batches, learning rate), the losses and the test metrics.
_DISTRIBUTED_STUDY = textwrap.dedent(
    """
    import json, sys, time
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras
    import tensorflow_datasets as tfds
    from catsdogs_helpers import model_stages, runtime, study, training
    from catsdogs_helpers.config import get_config

    seen = {}
    train_stage = training.train_stage

    # Records what each stage trains with, without reading its data: a tf.data iterator dropped half-way
    # (such as `next(iter(dataset))`) can deadlock TensorFlow on logical CPU devices when it is freed later.
    def recording_train_stage(model, train_data, validation_data, **kwargs):
        schedule = getattr(model.optimizer, "_learning_rate", None)
        peak = getattr(schedule, "initial_learning_rate", None)
        seen[kwargs["name"]] = {
            "replicas": model.distribute_strategy.num_replicas_in_sync,
            "batches": int(train_data.cardinality()),
            "learning_rate": float(peak if peak is not None else model.optimizer.learning_rate.numpy()),
            "mirrored": type(model.trainable_weights[-1].value).__name__,
        }
        return train_stage(model, train_data, validation_data, **kwargs)

    training.train_stage = recording_train_stage
    model_stages.training.train_stage = recording_train_stage
    model_stages.features.train_stage = recording_train_stage

    strategy = runtime.choose_distribution_strategy(["/cpu:0", "/cpu:1"])
    config = get_config("smoke", data="tfds", output_dir=sys.argv[1])
    seconds = {}
    with tfds.testing.mock_data(num_examples=24), strategy.scope():
        # run_study's stages (figures and report do not depend on the strategy), under the strategy entered.
        start = time.perf_counter()
        study.start_study(config)
        splits = study.load_data(config, verbose=False)
        trained = {"scratch": study.train_scratch_cnn(config, splits, 0)}
        seconds["scratch"] = time.perf_counter() - start
        trained["transfer"] = study.train_frozen_model(config, splits, 0)
        seconds["transfer"] = time.perf_counter() - start - sum(seconds.values())
        trained["finetuned"] = study.fine_tune_model(config, splits, trained["transfer"], 0)
        seconds["finetuned"] = time.perf_counter() - start - sum(seconds.values())
        evaluations = study.evaluate_models({"finetuned": trained["finetuned"]}, splits, tta=False)
        seconds["evaluation"] = time.perf_counter() - start - sum(seconds.values())
        batches = [int(images.shape[0]) for images, _ in splits.train]  # To its end, as training reads it.
    print(json.dumps({
        "train_batches": batches,
        "replicas": strategy.num_replicas_in_sync,
        "stages": seen,
        "seconds": seconds,
        "losses": {name: float(item.metrics["loss"]) for name, item in evaluations.items()},
        "accuracies": {name: float(item.metrics["accuracy"]) for name, item in evaluations.items()},
        "epochs": {name: [stage.num_epochs for stage in item.stages] for name, item in trained.items()},
        "history_losses": [item.history[key] for item in trained.values() for key in ("loss", "val_loss")],
    }))
    """
)


def test_with_one_device_the_default_strategy_is_kept_and_nothing_is_said():
    if len(tf.config.list_logical_devices("GPU")) > 1:
        pytest.skip("more than one GPU is visible: the study mirrors over them")
    strategy = runtime.choose_distribution_strategy()
    assert strategy is tf.distribute.get_strategy() and strategy.num_replicas_in_sync == 1
    assert runtime.describe_distribution(strategy, 32) is None


def test_forced_devices_give_one_mirrored_strategy_per_device_set():
    strategy = runtime.choose_distribution_strategy(["/cpu:0"])
    assert isinstance(strategy, tf.distribute.MirroredStrategy) and strategy.num_replicas_in_sync == 1
    assert runtime.choose_distribution_strategy(["/cpu:0"]) is strategy  # The stages share it.
    with pytest.raises(ValueError, match=r"Received: devices=\[\]"):
        runtime.choose_distribution_strategy([])


def test_the_manifest_names_the_replicas_only_when_there_are_several():
    config = get_config("smoke", data="photos", output_dir="out")
    model = models.build_scratch_cnn(config.image_size, config.scratch_image_size)
    splits = types.SimpleNamespace(content_key="photos-v1")
    one = stage_manifest.build_stage_manifest(config, "scratch", model, splits)
    two = stage_manifest.build_stage_manifest(config, "scratch", model, splits, num_replicas=2)
    assert "num_replicas" not in one["settings"]  # Runs from before distribution support are still reused.
    assert two["settings"].pop("num_replicas") == 2 and two == one


@pytest.mark.slow
def test_the_study_trains_every_stage_under_mirrored_strategy_on_two_logical_cpus(tmp_path):
    # This checkout's package first; no GPU, so that the two logical CPUs are the only devices mirrored over.
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.run(
        [sys.executable, "-c", _DISTRIBUTED_STUDY, str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        cwd=tmp_path,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    report = json.loads(process.stdout.strip().splitlines()[-1])
    assert "2 CPUs: MirroredStrategy, global batch 16 (8 per CPU), learning rates ×2" in process.stdout
    assert report["replicas"] == 2
    assert report["train_batches"] == [16, 8]  # 24 photos in global batches of 16: 8 photos per replica.
    config = get_config("smoke")
    rates = {"scratch": config.scratch_learning_rate, "transfer": config.transfer_learning_rate,
             "finetuned": config.fine_tune_learning_rate}  # fmt: skip
    assert set(report["stages"]) == set(rates)
    for name, seen in report["stages"].items():
        assert seen["replicas"] == 2, name
        assert seen["batches"] == 2, name  # 24 photos (or their cached features) in batches of 16.
        assert seen["learning_rate"] == pytest.approx(2 * rates[name]), name
        assert seen["mirrored"] == "MirroredVariable", name
    assert report["epochs"] == {"scratch": [1], "transfer": [1], "finetuned": [1, 1]}
    assert all(math.isfinite(loss) for losses in report["history_losses"] for loss in losses)
    assert 0.0 <= report["accuracies"]["finetuned"] <= 1.0 and math.isfinite(report["losses"]["finetuned"])
    for name in ("scratch", "transfer", "finetuned"):
        manifest = json.loads((tmp_path / "out" / name / "manifest.json").read_text())
        assert manifest["settings"]["num_replicas"] == 2, name
