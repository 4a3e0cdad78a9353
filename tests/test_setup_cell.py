"""The notebook's set-up cell, as Colab runs it: it installs a copy found next to the notebook, or stops with
one message that lists the ways to get the package (never a pip traceback followed by NameErrors).

The cell runs in a fresh Python process that cannot see this environment's `catsdogs_helpers` (only what pip
installs into a temporary target folder), with pip kept offline (no index, no dependencies).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "https://github.com/catsdogs-study/catsdogs"
RUNNER = """
import os, sys

# Hide this environment's catsdogs_helpers (an editable install: a path entry or an import hook); only the
# copy pip installs into the target folder counts.
sys.path[:] = [entry for entry in sys.path if not os.path.isdir(os.path.join(entry or ".", "catsdogs_helpers"))]
sys.meta_path[:] = [finder for finder in sys.meta_path if "editable" not in repr(finder).lower()]
sys.path.append(os.environ["PIP_TARGET"])
exec(compile(open(sys.argv[1]).read(), "set-up cell", "exec"))
import catsdogs_helpers
print("imported", catsdogs_helpers.__version__, "from", catsdogs_helpers.__file__)
"""
pytestmark = pytest.mark.slow


def setup_cell() -> str:
    notebook = json.loads((ROOT / "transfer_learning.ipynb").read_text())
    first_code = next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")
    source = "".join(first_code["source"])
    assert "%" not in source.split("\n", 1)[0] and "REPO_URL" in source
    return source


def run_cell(folder: Path, source: str) -> subprocess.CompletedProcess:
    (folder / "cell.py").write_text(source)
    (folder / "runner.py").write_text(RUNNER)
    target = folder / "site-packages"
    target.mkdir()
    environment = {
        **os.environ,
        "PIP_TARGET": str(target),
        "PIP_NO_DEPS": "1",
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    return subprocess.run(
        [sys.executable, "runner.py", "cell.py"], cwd=folder, env=environment, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def test_a_wheel_next_to_the_notebook_is_installed(tmp_path, built_wheel):
    wheel = Path(shutil.copy(built_wheel, tmp_path))
    process = run_cell(tmp_path, setup_cell().replace(DEFAULT_URL, "file:///nowhere/catsdogs"))
    assert process.returncode == 0, process.stderr[-3000:]
    assert f"Installed catsdogs_helpers from {wheel}." in process.stdout
    assert f"from {tmp_path / 'site-packages'}" in process.stdout


def test_with_no_copy_and_an_unreachable_url_it_stops_with_one_message(tmp_path):
    process = run_cell(tmp_path, setup_cell().replace(DEFAULT_URL, "file:///nowhere/catsdogs"))
    assert process.returncode != 0
    error = process.stderr.strip().splitlines()
    assert "ModuleNotFoundError: catsdogs_helpers, the package this notebook runs on, is not installed" in (
        process.stderr
    )
    assert "  - git+file:///nowhere/catsdogs: " in process.stderr  # pip's last line, not its traceback.
    assert "1. set REPO_URL above" in process.stderr and "2. upload the repository as a zip" in process.stderr
    assert error[-1].startswith("  4. outside Colab: pip install <path of a clone>")
    assert "NameError" not in process.stderr
