"""Packaging: requirements.txt, the floors file and .ci/run agree with pyproject.toml and the README."""

import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ROOT / "constraints" / "minimum.txt"
needs_tomllib = pytest.mark.skipif(tomllib is None, reason="tomllib needs Python 3.11+")


def _requirement_lines(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    """The normalized name a requirement starts with: "importlib_resources>=1" -> "importlib-resources"."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group()).lower()


def _lower_bound(requirement: str) -> str | None:
    """The version after `>=` or `==` in a requirement without markers, or None."""
    found = re.findall(r"(?:>=|==)\s*([^,;\s]+)", requirement.split(";")[0])
    assert len(found) <= 1, requirement
    return found[0] if found else None


@needs_tomllib
def test_requirements_txt_lists_exactly_the_runtime_dependencies():
    wanted = [re.sub(r"\s+", "", dependency) for dependency in _project()["dependencies"]]
    assert _requirement_lines((ROOT / "requirements.txt").read_text()) == wanted


@needs_tomllib
def test_floors_file_pins_every_declared_minimum():
    project = _project()
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    pins = {}
    for line in _requirement_lines(FLOORS.read_text()):
        name, version = line.split("==")
        pins[_name(name)] = version.strip()
    floors = {_name(requirement): _lower_bound(requirement) for requirement in declared}
    missing = {name: floor for name, floor in floors.items() if floor is not None and pins.get(name) != floor}
    assert not missing, f"constraints/minimum.txt must pin each floor ==; differs or absent: {missing}"
    assert {"tensorflow", "keras", "numpy", "pytest", "nbclient", "ipykernel"} <= set(floors)
    assert all(floors[name] for name in ("tensorflow", "keras", "tensorflow-datasets", "numpy", "matplotlib"))


def test_ci_runs_exactly_the_readme_test_commands():
    """.ci/run's pytest lines are the README's test commands: latest versions first, then the floors."""
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.DOTALL)
    readme_tests = [command for command in commands if "pytest" in command]
    ci_text = (ROOT / ".ci" / "run").read_text()
    ci_lines = [line for line in ci_text.splitlines() if "pytest" in line and not line.lstrip().startswith("#")]
    assert "set -euo pipefail" in ci_text
    assert len(ci_lines) == 2
    latest, floors = ci_lines
    assert ".venv/bin/ruff check ." in latest and ".venv/bin/pytest" in latest
    assert "-c constraints/minimum.txt" in floors and floors.endswith('pytest -m "not slow"')
    assert readme_tests[:2] == ci_lines  # The English section, in .ci/run's order.
    assert set(readme_tests) == set(ci_lines)  # The Portuguese section too, and no other test command.
    assert ".venv-floors/" in (ROOT / ".gitignore").read_text().splitlines()
