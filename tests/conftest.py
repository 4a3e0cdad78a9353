"""Shared test settings and fixtures.

Figures are drawn without a display. Real photos and ImageNet weights come from
`../shared` beside the checkout (read in place, never copied); tests that need
them are skipped, with the reason, in a clone outside that layout.
"""

from __future__ import annotations  # pytest.Config is not public in the floors' pytest 6.2.

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# What `study.start_study` and the command line ask of TensorFlow (`runtime.prefer_bfc_cpu_allocator`), set before
# any test module imports TensorFlow: its CPU allocator is chosen once per process.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import matplotlib
import photo_factory  # tests/ is on sys.path under pytest (rootdir-relative imports).
import pytest
import tensorflow as tf

matplotlib.use("Agg")

# Keras's steps run eagerly in the test processes: tracing a step takes longer than the few batches a test trains
# (the in-process study, sweep and stage tests take about 40% less time). What users run is traced as ever in the
# command-line, notebook, kill and distribution tests, which run in processes of their own; the tests of the traced
# or XLA-compiled step ask for `graph_mode`.
tf.config.run_functions_eagerly(True)

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
SHARED_PHOTOS_DIR = SHARED_DIR / "data" / "cats_vs_dogs_small"
SHARED_WEIGHTS_1_0 = SHARED_DIR / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist (`--dist loadfile`, pyproject.toml) gives each worker whole files; its recent versions hand out the
    # files with the most tests first, which leaves the files of a few long tests to the end, one after the other in
    # one worker while the other waits. In collection order instead, where the files with slow tests come first.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def file_of(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    slow_files = {file_of(item) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: file_of(item) not in slow_files)  # Stable: the files keep their order.


@pytest.fixture(scope="session")
def shared_photos() -> Path:
    """The real photos, `../shared/data/cats_vs_dogs_small` (train/validation/test, cat/dog)."""
    if not SHARED_PHOTOS_DIR.is_dir():
        pytest.skip(
            "../shared/data/cats_vs_dogs_small is absent (a clone outside the CI layout); real-photo tests skipped"
        )
    return SHARED_PHOTOS_DIR


@pytest.fixture(scope="session")
def shared_weights_1_0() -> Path:
    """The ImageNet MobileNetV2 no-top weights for alpha 1.0 at 224 px, from `../shared/weights`."""
    if not SHARED_WEIGHTS_1_0.is_file():
        pytest.skip(
            f"../shared/weights/{SHARED_WEIGHTS_1_0.name} is absent (a clone outside the CI layout); "
            "tests that need the ImageNet weights skipped"
        )
    return SHARED_WEIGHTS_1_0


@pytest.fixture
def make_photo_folder():
    """Returns `photo_factory.make_photo_folder(root, num_per_class=20, size=48, ...)`.

    Example: `root = make_photo_folder(tmp_path / "photos", num_per_class=10, size=32)`.
    """
    return photo_factory.make_photo_folder


def run_cli(
    *args: str, env: dict[str, str | None] | None = None, timeout: int = 600, cwd: str | Path | None = None
) -> subprocess.CompletedProcess:
    """Runs `catsdogs ARGS` in a subprocess, as a user would: the installed command, from outside the clone.

    The command is the `catsdogs` script installed next to this Python (`python -m
    catsdogs_helpers` where there is none), run from `cwd` (a new temporary folder
    by default), its output piped as into a log file. `env` adds variables to this
    process's environment, or removes those it maps to `None`.
    """
    script = Path(sys.executable).parent / "catsdogs"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "catsdogs_helpers"]
    if cwd is None:
        cwd = tempfile.mkdtemp(prefix="catsdogs-cwd-")
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={name: value for name, value in {**os.environ, **(env or {})}.items() if value is not None},
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def output_of_python(script: str, *arguments: str, **variables: str) -> str:
    """Runs `python -c script arguments` without the allocator choice made above (plus `variables`); returns stdout."""
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
    return result.stdout.strip()


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> dict[str, object]:
    """Runs the whole study once with the smoke preset on a synthetic pre-split folder.

    Returns the photo folder, the output folder and the finished process; the
    CLI and notebook tests read what this one run left behind.
    """
    root = tmp_path_factory.mktemp("smoke")
    photos = photo_factory.make_presplit_folder(root / "photos")
    output = root / "output"
    # Without the allocator choice this session makes (above): the command line must make it itself.
    command = ("run", "--data", str(photos), "--weights", "none", "--preset", "smoke", "--output", str(output))
    process = run_cli(*command, env={"TF_CPU_ALLOCATOR_USE_BFC": None})
    return {"photos": photos, "output": output, "process": process}


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout (`pip wheel --no-deps`), built once for the tests that install or open it."""
    folder = tmp_path_factory.mktemp("wheel")
    root = Path(__file__).resolve().parents[1]
    process = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(folder), str(root)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    (path,) = folder.glob("catsdogs_helpers-*.whl")
    return path


def load_script(name: str) -> object:
    """Imports `scripts/<name>.py` (not a package) as a module, for tests of its functions."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def graph_mode():
    """Traces `tf.function`s (Keras's steps included) during the test, as they are outside the tests."""
    tf.config.run_functions_eagerly(False)
    yield
    tf.config.run_functions_eagerly(True)
