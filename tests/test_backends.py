"""The models' module runs on any Keras backend: it imports no TensorFlow (benchmarks/bench_backends.py relies on it).

Two checks: the import statements of `catsdogs_helpers.models` and of every module of the package it imports,
read from their source (always); and, in a fresh process where importing TensorFlow fails, importing and
building the models on a backend other than TensorFlow, then a tiny run of the benchmark (where JAX or PyTorch
is installed; skipped otherwise, with the reason).
"""

import ast
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
PACKAGE = "catsdogs_helpers"

# Makes `import tensorflow` (and any submodule) fail in the process it runs in, then runs the given code.
_WITHOUT_TENSORFLOW = textwrap.dedent(
    """
    import importlib.abc, sys

    class RefuseTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "tensorflow":
                raise ImportError(f"TensorFlow is blocked in this test. Received: import {name}")
            return None

    sys.meta_path.insert(0, RefuseTensorFlow())
    """
)


def _imported_modules(path: Path) -> set[str]:
    """Returns the absolute module names a source file imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_models_module_and_what_it_imports_of_the_package_name_no_tensorflow():
    to_read, seen = [f"{PACKAGE}.models"], set()
    while to_read:
        module = to_read.pop()
        path = REPOSITORY / Path(*module.split(".")).with_suffix(".py")
        if module in seen or not path.is_file():
            continue
        seen.add(module)
        imported = _imported_modules(path)
        assert not {name for name in imported if name.split(".")[0] in ("tensorflow", "tf_keras")}, module
        to_read.extend(name for name in imported if name.startswith(f"{PACKAGE}."))
    assert {f"{PACKAGE}.models", f"{PACKAGE}.contract", f"{PACKAGE}.digests", f"{PACKAGE}.errors"} <= seen


def _other_backend() -> str:
    for backend in ("jax", "torch"):
        if importlib.util.find_spec(backend) is not None:
            return backend
    pytest.skip("neither JAX nor PyTorch is installed here: no Keras backend to try the models on without TensorFlow")


def _run_without_tensorflow(code: str, backend: str, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPOSITORY), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_TENSORFLOW + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        cwd=REPOSITORY,
    )


@pytest.mark.slow
def test_the_models_build_and_compile_on_another_backend_without_tensorflow():
    backend = _other_backend()
    code = """
        import sys
        import keras
        from catsdogs_helpers import models

        scratch = models.build_scratch_cnn(64, 32, augmentation=models.build_augmentation(0))
        transfer = models.build_transfer_model(64, None, 0.35, augmentation=models.build_augmentation(0))
        models.unfreeze_base(transfer, fine_tune_at=100)
        models.compile_model(transfer, 1e-5)
        assert scratch.output_shape == transfer.output_shape == (None, 1)
        print(keras.backend.backend(), "tensorflow" in sys.modules)
    """
    process = _run_without_tensorflow(code, backend)
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stdout.split()[-2:] == [backend, "False"]


@pytest.mark.slow
def test_the_backend_benchmark_trains_every_stage_without_tensorflow(tmp_path):
    backend = _other_backend()
    code = """
        import runpy, sys
        sys.argv = ["bench_backends.py", *sys.argv[1:]]
        runpy.run_path("benchmarks/bench_backends.py", run_name="__main__")
    """
    output = tmp_path / "backends.json"
    settings = ["--image-size", "64", "--scratch-image-size", "32", "--alpha", "0.35", "--batch-size", "4"]
    timing = ["--warmup", "1", "--steps", "1", "--repeats", "1", "--precisions", "float32"]
    process = _run_without_tensorflow(code, backend, *settings, *timing, "--output", str(output))
    assert process.returncode == 0, process.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["backend"] == backend and report["tensorflow_imported"] is False
    assert [row["stage"] for row in report["rows"]] == ["scratch", "frozen", "finetuned"]
    assert all(row["images_per_second"] > 0 for row in report["rows"])
    frozen, finetuned = report["rows"][1]["params_trainable"], report["rows"][2]["params_trainable"]
    assert frozen < finetuned  # Only the head trains while frozen.
    assert "| stage | float32 images/s |" in process.stdout
