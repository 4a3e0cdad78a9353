"""Tests of catsdogs_helpers.runtime: seeds, devices, precision, environment."""

import json
import os
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
    assert environment["cpu_allocator"] == "bfc"  # tests/conftest.py asks for it, as the study does.
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
}))
"""


def _last_line_of_python(script: str, *arguments: str, **variables: str) -> str:
    """Runs `script` in a fresh Python without the allocator choice tests/conftest.py makes (plus `variables`)."""
    environment = {name: value for name, value in os.environ.items() if name != "TF_CPU_ALLOCATOR_USE_BFC"}
    result = subprocess.run(
        [sys.executable, "-c", script, *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**environment, **variables},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_importing_the_package_changes_no_global_state():
    report = json.loads(_last_line_of_python(_IMPORT_EVERYTHING))
    assert report["allocator_variable"] is None, "importing catsdogs_helpers chose TensorFlow's CPU allocator"
    assert {"catsdogs_helpers.config", "catsdogs_helpers.runtime", "catsdogs_helpers.data"} <= set(report["modules"])
    assert report["policy_before"] == report["policy"] == "float32"
    assert report["floatx"] == ["float32", "float32"]
    assert report["numpy_unchanged"], "importing catsdogs_helpers reseeded or drew from NumPy's global generator"
    assert report["python_unchanged"], "importing catsdogs_helpers reseeded or drew from Python's `random`"


# As the notebook does: every module imported (none may run a TensorFlow operation), then `start_study`.
_START_STUDY_THEN_ALLOCATE = """
import importlib, pkgutil, sys
import catsdogs_helpers
for module in pkgutil.iter_modules(catsdogs_helpers.__path__, "catsdogs_helpers."):
    if module.name != "catsdogs_helpers.__main__":
        importlib.import_module(module.name)
from catsdogs_helpers import runtime, study
from catsdogs_helpers.config import get_config

study.start_study(get_config("smoke", data=sys.argv[1], output_dir=sys.argv[2]))
print(runtime.describe_cpu_allocator())
"""


def _allocator_after_start_study(tmp_path, **variables: str) -> str:
    photos = tmp_path / "photos"
    for label in ("cat", "dog"):
        (photos / label).mkdir(parents=True)
        for index in range(2):
            keras.utils.save_img(photos / label / f"{index}.png", np.full((8, 8, 3), 40 * index, np.uint8))
    return _last_line_of_python(_START_STUDY_THEN_ALLOCATE, str(photos), str(tmp_path / "out"), **variables)


def test_a_study_keeps_cpu_tensors_in_the_bfc_allocator(tmp_path):
    assert _allocator_after_start_study(tmp_path) == "bfc"


def test_a_users_choice_of_cpu_allocator_is_kept(tmp_path):
    assert _allocator_after_start_study(tmp_path, TF_CPU_ALLOCATOR_USE_BFC="false") == "malloc"


def test_the_allocator_is_reported_as_malloc_without_the_choice():
    script = "from catsdogs_helpers import runtime; print(runtime.describe_cpu_allocator())"
    assert _last_line_of_python(script) == "malloc"
