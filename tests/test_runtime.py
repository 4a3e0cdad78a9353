"""Tests of catsdogs_helpers.runtime: seeds, devices, precision, environment."""

import json
import random
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

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
    assert set(environment) == {"devices", "precision_policy", "colab", "platform", "versions"}
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
}))
"""


def test_importing_the_package_changes_no_global_state():
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EVERYTHING], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"catsdogs_helpers.config", "catsdogs_helpers.runtime", "catsdogs_helpers.data"} <= set(report["modules"])
    assert report["policy_before"] == report["policy"] == "float32"
    assert report["floatx"] == ["float32", "float32"]
    assert report["numpy_unchanged"], "importing catsdogs_helpers reseeded or drew from NumPy's global generator"
    assert report["python_unchanged"], "importing catsdogs_helpers reseeded or drew from Python's `random`"
