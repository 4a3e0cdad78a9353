"""Packaging: requirements.txt, the floors file, .ci/run, the documents and the notebook agree with pyproject.toml."""

import json
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

# One repository URL: pyproject.toml's [project.urls]. Every link to the repository in the user documents and
# the notebook's REPO_URL default must follow it, so that a fork changes that one line and these tests name the
# rest. Links to other GitHub repositories are not written in the user documents (cite them by their sites).
READMES = ("README.md", "README.pt-BR.md")
USER_DOCS = (*READMES, "CONTRIBUTING.md", "CHANGELOG.md")
NOTEBOOK = "transfer_learning.ipynb"
COLAB = "https://colab.research.google.com/github/"
GITHUB_LINK = re.compile(
    r"(?:colab\.research\.google\.com/github/|github\.com/)([\w.-]+)/([\w.-]+)(?:/(?:blob|tree)/[^/\s]+/([^\s)\"'>\]]+))?"
)


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


def _bash_blocks_with_pytest(path: Path) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)\n```", path.read_text(), flags=re.DOTALL)
    return [block for block in blocks if "pytest" in block]


def test_ci_runs_exactly_the_documented_test_commands():
    """.ci/run's pytest lines: the READMEs' one test command first, then CONTRIBUTING.md's floors command."""
    ci_text = (ROOT / ".ci" / "run").read_text()
    ci_lines = [line for line in ci_text.splitlines() if "pytest" in line and not line.lstrip().startswith("#")]
    assert "set -euo pipefail" in ci_text
    assert len(ci_lines) == 2
    latest, floors = ci_lines
    assert ".venv/bin/ruff check ." in latest and ".venv/bin/pytest" in latest
    assert "-c constraints/minimum.txt" in floors and floors.endswith('pytest -m "not slow"')
    for readme in READMES:
        assert _bash_blocks_with_pytest(ROOT / readme) == [latest], f"{readme}: its one test command is .ci/run's first"
    assert _bash_blocks_with_pytest(ROOT / "CONTRIBUTING.md") == ci_lines  # Both, in .ci/run's order.
    assert ".venv-floors/" in (ROOT / ".gitignore").read_text().splitlines()


def _repository_url() -> str:
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Homepage"] == urls["Repository"], "pyproject.toml [project.urls]: Homepage and Repository differ"
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", urls["Repository"]), urls["Repository"]
    return urls["Repository"]


def _owner_and_name(url: str) -> tuple[str, str]:
    owner, name = url.removeprefix("https://github.com/").split("/")
    return owner, name


def _links(text: str) -> list[tuple[int, str, tuple[str, str], str | None]]:
    """(line number, link, (owner, name), file path or None) of every GitHub or Colab-on-GitHub link in `text`."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in GITHUB_LINK.finditer(line):
            name = match[2].rstrip(".").removesuffix(".git")
            found.append((number, match[0], (match[1], name), match[3]))
    return found


@needs_tomllib
def test_readme_links_and_colab_badge_follow_the_project_url():
    url = _repository_url()
    owner, name = _owner_and_name(url)
    badge = f"{COLAB}{owner}/{name}/blob/main/{NOTEBOOK}"
    elsewhere = [
        f"{doc}:{number}: {link}"
        for doc in USER_DOCS
        for number, link, repository, _ in _links((ROOT / doc).read_text())
        if repository != (owner, name)
    ]
    assert not elsewhere, (
        f"pyproject.toml's [project.urls] Repository is {url}, but these links name another repository; "
        "change them to it: " + "; ".join(elsewhere)
    )
    for readme in READMES:
        first_screen = "\n".join((ROOT / readme).read_text().splitlines()[:12])
        assert badge in first_screen, f"{readme} needs the Open in Colab badge in its first lines: {badge}"


@needs_tomllib
def test_notebook_repo_url_default_is_the_project_url():
    url = _repository_url()
    cells = json.loads((ROOT / NOTEBOOK).read_text(encoding="utf-8"))["cells"]
    sources = ["".join(cell["source"]) for cell in cells]
    defaults = [
        line.strip()
        for cell, source in zip(cells, sources)
        if cell["cell_type"] == "code"
        for line in source.splitlines()
        if re.match(r"\s*REPO_URL\s*=", line)
    ]
    assert len(defaults) == 1, f"{NOTEBOOK}: expected one line setting REPO_URL in a code cell, found {defaults}"
    expected = f'REPO_URL = "{url}"'
    assert defaults[0].split("#")[0].strip() == expected, (
        f"{NOTEBOOK}'s set-up cell must read {expected} (pyproject.toml [project.urls] Repository). "
        f"Received: {defaults[0]}"
    )
    stale = [
        f"cell {index}: {link}"
        for index, source in enumerate(sources)
        for _, link, repository, path in _links(source)
        if path is not None and (ROOT / path).exists() and repository != _owner_and_name(url)
    ]
    assert not stale, f"{NOTEBOOK} links to this repository's files through another repository than {url}: {stale}"
