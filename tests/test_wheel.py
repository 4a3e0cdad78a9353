"""The package as a user installs it: a wheel with every module, the `catsdogs` command, no notebook executor."""

import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(path.name for path in (ROOT / "catsdogs_helpers").glob("*.py"))


@pytest.fixture(scope="module")
def wheel(built_wheel) -> zipfile.ZipFile:
    return zipfile.ZipFile(built_wheel)


@pytest.mark.slow
def test_wheel_holds_every_module_and_the_command(wheel):
    names = wheel.namelist()
    assert sorted(Path(name).name for name in names if name.startswith("catsdogs_helpers/")) == MODULES
    (entry_points,) = [name for name in names if name.endswith("entry_points.txt")]
    assert "catsdogs = catsdogs_helpers.cli:main" in wheel.read(entry_points).decode()


@pytest.mark.slow
def test_wheel_requires_no_notebook_executor(wheel):
    (metadata,) = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
    requirements = [
        line.split(":", 1)[1].strip().lower()
        for line in wheel.read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert requirements, "the wheel declares no runtime requirement"
    for executor in ("papermill", "ipykernel", "nbclient", "jupyter"):
        assert not [line for line in requirements if line.startswith(executor)], executor
