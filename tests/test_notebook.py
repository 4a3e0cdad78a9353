"""The notebook: committed clean, and executed top to bottom with the smoke preset (offline)."""

import json
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "transfer_learning.ipynb"
PARAMETERS = ("PRESET", "DATA", "WEIGHTS", "IMAGE_SIZE", "OUTPUT_DIR")


@pytest.fixture(scope="module")
def notebook() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def test_notebook_is_committed_without_outputs(notebook):
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], cell.source[:80]
            assert cell.execution_count is None, cell.source[:80]


def test_notebook_has_one_parameters_cell_with_the_documented_knobs(notebook):
    tagged = [cell for cell in notebook.cells if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    names = re.findall(r"^([A-Z_]+) = ", tagged[0].source, flags=re.MULTILINE)
    assert tuple(names) == PARAMETERS
    assert "# @param" in tagged[0].source  # Colab form fields.


def test_notebook_metadata_asks_for_python3_and_a_gpu(notebook):
    assert notebook.metadata.kernelspec.name == "python3"
    assert notebook.metadata.accelerator == "GPU"


def test_notebook_defines_no_helper_functions(notebook):
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not re.search(r"^\s*(def|class|async def) ", cell.source, flags=re.MULTILINE), cell.source[:80]
            assert "lambda" not in cell.source, cell.source[:80]


def test_every_code_cell_follows_a_why_paragraph(notebook):
    for previous, cell in zip(notebook.cells, notebook.cells[1:]):
        if cell.cell_type == "code":
            assert previous.cell_type == "markdown", cell.source[:80]


def find_cell(executed, text: str):
    matches = [cell for cell in executed.cells if cell.cell_type == "code" and text in cell.source]
    assert matches, text
    return matches[0]


def test_smoke_run_executes_every_cell_without_error(smoke_study):
    assert smoke_study["process"].returncode == 0, smoke_study["process"].stderr[-3000:]
    executed = nbformat.read(smoke_study["output"] / "transfer_learning.ipynb", as_version=4)
    code_cells = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code_cells)
    for cell in code_cells:
        assert not [output for output in cell.outputs if output.output_type == "error"], cell.source[:80]
    injected = [cell for cell in executed.cells if "injected-parameters" in cell.metadata.get("tags", [])]
    assert len(injected) == 1 and 'PRESET = "smoke"' in injected[0].source


def test_smoke_run_draws_the_side_by_side_curves_and_the_results_table(smoke_study):
    executed = nbformat.read(smoke_study["output"] / "transfer_learning.ipynb", as_version=4)
    curves = find_cell(executed, "learning_curves = plots.plot_learning_curves(")
    assert any("image/png" in output.get("data", {}) for output in curves.outputs)
    table = find_cell(executed, "evaluation.format_results_table(results)")
    markdown = [
        output["data"]["text/markdown"] for output in table.outputs if "text/markdown" in output.get("data", {})
    ]
    assert markdown and all(f"| {name} |" in markdown[0] for name in ("scratch", "transfer", "finetuned"))
    warning = find_cell(executed, "if config.weights is None:")
    assert "not transfer learning" in json.dumps(warning.outputs)
