"""Packaging: requirements.txt stays the same list as pyproject.toml's dependencies."""

import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _requirement_lines(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


@pytest.mark.skipif(tomllib is None, reason="tomllib needs Python 3.11+")
def test_requirements_txt_lists_exactly_the_runtime_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [re.sub(r"\s+", "", dependency) for dependency in project["dependencies"]]
    assert _requirement_lines((ROOT / "requirements.txt").read_text()) == wanted


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.DOTALL)
    test_commands = [command for command in commands if "pytest" in command]
    assert len(test_commands) >= 1
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "pytest" in line]
    assert ci_lines == [test_commands[0]]
