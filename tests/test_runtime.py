"""Tests of catsdogs_helpers.runtime: seeds, devices, precision, environment."""

import json
import os
import random

import keras
import numpy as np
import photo_factory
import tensorflow as tf
from conftest import output_of_python

from catsdogs_helpers import runtime


def _draw() -> tuple[float, float, float]:
    # The legacy global generator is the one set_seeds seeds (and the one old code uses).
    return random.random(), float(np.random.rand()), float(tf.random.uniform(()))  # noqa: NPY002


def test_set_seeds_makes_python_numpy_and_tensorflow_reproducible():
    runtime.set_seeds(123)
    first = _draw()
    runtime.set_seeds(123)
    assert _draw() == first
    runtime.set_seeds(124)
    assert _draw() != first


def test_describe_devices_is_one_line():
    description = runtime.describe_devices()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        assert description.startswith(f"{len(gpus)} GPU")
    else:
        assert description == "CPU only"
        assert runtime.list_devices() == ["CPU only"]
    assert "\n" not in description


def test_choose_precision_policy_without_apply_leaves_the_global_policy():
    before = keras.mixed_precision.global_policy().name
    policy = runtime.choose_precision_policy(apply=False)
    assert policy in ("float32", "mixed_float16")
    if not tf.config.list_physical_devices("GPU"):
        assert policy == "float32"
    assert keras.mixed_precision.global_policy().name == before


def test_not_in_colab():
    assert runtime.in_colab() is False


def test_describe_environment():
    environment = runtime.describe_environment()
    assert set(environment) == {"devices", "precision_policy", "cpu_allocator", "colab", "platform", "versions"}
    assert set(environment["versions"]) == {
        "python",
        "tensorflow",
        "keras",
        "tensorflow_datasets",
        "numpy",
        "matplotlib",
    }
    assert environment["versions"]["tensorflow"] == tf.__version__
    assert environment["precision_policy"] == keras.mixed_precision.global_policy().name
    assert environment["colab"] is False
    # tests/conftest.py asks for the BFC allocator, as the study does, unless the developer chose otherwise.
    chose_default = os.environ["TF_CPU_ALLOCATOR_USE_BFC"].lower() in ("false", "0")
    assert environment["cpu_allocator"] == ("default" if chose_default else "bfc")
    json.dumps(environment)  # It goes into results files.


_IMPORT_EVERYTHING = """
import importlib, json, pkgutil, random
import numpy as np
import keras

np.random.seed(2024)
random.seed(2024)
numpy_before = np.random.get_state()[1].copy()
python_before = random.getstate()
policy_before = keras.mixed_precision.global_policy().name
floatx_before = keras.config.floatx()

import os
import catsdogs_helpers
names = sorted(
    module.name for module in pkgutil.iter_modules(catsdogs_helpers.__path__, "catsdogs_helpers.")
    if module.name != "catsdogs_helpers.__main__"
)
for name in names:
    importlib.import_module(name)

print(json.dumps({
    "modules": names,
    "policy_before": policy_before,
    "policy": keras.mixed_precision.global_policy().name,
    "floatx": [floatx_before, keras.config.floatx()],
    "numpy_unchanged": bool((np.random.get_state()[1] == numpy_before).all()),
    "python_unchanged": random.getstate() == python_before,
    "allocator_variable": os.environ.get("TF_CPU_ALLOCATOR_USE_BFC"),
    "tensorflow_started": catsdogs_helpers.runtime._tensorflow_started(),
}))
"""


def test_importing_the_package_changes_no_global_state():
    report = json.loads(output_of_python(_IMPORT_EVERYTHING).splitlines()[-1])
    assert report["allocator_variable"] is None, "importing catsdogs_helpers chose TensorFlow's CPU allocator"
    assert not report["tensorflow_started"], "importing catsdogs_helpers ran a TensorFlow operation"
    assert {"catsdogs_helpers.config", "catsdogs_helpers.runtime", "catsdogs_helpers.data"} <= set(report["modules"])
    assert report["policy_before"] == report["policy"] == "float32"
    assert report["floatx"] == ["float32", "float32"]
    assert report["numpy_unchanged"], "importing catsdogs_helpers reseeded or drew from NumPy's global generator"
    assert report["python_unchanged"], "importing catsdogs_helpers reseeded or drew from Python's `random`"


def test_the_bfc_allocator_is_asked_for_before_tensorflow_starts(monkeypatch):
    monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC")
    monkeypatch.setattr(runtime, "_tensorflow_started", lambda: False)
    assert runtime.prefer_bfc_cpu_allocator() is None
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "true"
    assert runtime.describe_cpu_allocator() == "bfc"


def test_a_users_choice_of_cpu_allocator_is_kept(monkeypatch):
    monkeypatch.setenv("TF_CPU_ALLOCATOR_USE_BFC", "false")
    monkeypatch.setattr(runtime, "_tensorflow_started", lambda: False)
    assert runtime.prefer_bfc_cpu_allocator() is None
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "false"
    assert runtime.describe_cpu_allocator() == "default"


def test_an_allocator_asked_for_after_tensorflow_started_is_reported_as_too_late(monkeypatch):
    tf.zeros(())  # TensorFlow has started in this process.
    monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC")
    note = runtime.prefer_bfc_cpu_allocator()
    assert note.startswith("Note: TensorFlow was already running when the study asked for its BFC allocator")
    assert "TF_CPU_ALLOCATOR_USE_BFC" not in os.environ, "a request that cannot take effect must not be reported"
    assert runtime.describe_cpu_allocator() == "default"


def test_start_study_says_when_the_allocator_came_too_late(monkeypatch, tmp_path, capsys):
    from catsdogs_helpers import study
    from catsdogs_helpers.config import get_config

    monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC")
    photos = photo_factory.make_photo_folder(tmp_path / "photos", num_per_class=2, size=8)
    study.start_study(get_config("smoke", data=str(photos), output_dir=str(tmp_path / "out")))
    assert "Note: TensorFlow was already running" in capsys.readouterr().out
    study.unlock_output_dir(tmp_path / "out")
