"""The package's shape: dependencies flow one way (no import circle between its modules)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "catsdogs_helpers"


def _imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports anywhere (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "catsdogs_helpers":
            parts = node.module.split(".")
            found |= {alias.name for alias in node.names} if len(parts) == 1 else {parts[1]}
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("catsdogs_helpers.")}
    return (found & modules) - {path.stem}


def test_no_module_of_the_package_imports_itself_through_others():
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    graph = {name: _imports_of(PACKAGE / f"{name}.py", modules) for name in modules}

    def circle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            name, path = stack.pop()
            for imported in graph[name]:
                if imported == start:
                    return [*path, start]
                if imported not in path:
                    stack.append((imported, [*path, imported]))
        return None

    circles = [circle for name in sorted(graph) if (circle := circle_from(name))]
    assert not circles, f"import circle: {' -> '.join(circles[0])}"


def test_only_the_recipes_build_and_compile_the_studys_models():
    """One recipe per model: the study, the sweep and the rest build through `recipes.py`, never `models.*` directly."""
    recipe_calls = {"build_scratch_cnn", "build_transfer_model", "compile_model", "unfreeze_base"}
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem in {"models", "recipes"}:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in recipe_calls
                and getattr(node.value, "id", "") == "models"
            ):
                found.append(f"{path.name}:{node.lineno} models.{node.attr}")
    assert not found, f"build the study's models through recipes.py instead: {found}"
