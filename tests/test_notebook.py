"""The notebook: committed clean, and executed top to bottom with the smoke preset (offline, nbclient)."""

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "transfer_learning.ipynb"
PARAMETERS = ("PRESET", "DATA", "WEIGHTS", "IMAGE_SIZE", "OUTPUT_DIR", "CACHE_DIR", "RUN_SWEEP")


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


def exercise_solutions(notebook) -> list[str]:
    """The Python code of each exercise's folded solution (a markdown block quote), as a learner would paste it."""
    solutions = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and "**Exercise" in cell.source:
            text = re.sub(r"^> ?", "", cell.source, flags=re.MULTILINE)
            solutions += re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    return solutions


@pytest.fixture(scope="module")
def executed_notebook(tmp_path_factory) -> nbformat.NotebookNode:
    """The notebook executed with `PRESET = "smoke"` on a synthetic folder, from an empty folder, by nbclient.

    The kernel is this test's own Python (a kernelspec written for it), never
    whatever `python3` kernel another environment registered. The training split
    holds 12 photos, so the smoke sweep plan's sizes (8, 16) fit only 8: the
    sweep cell trains one point (not two) and says why it left 16 out.
    """
    import photo_factory
    from nbclient import NotebookClient

    root = tmp_path_factory.mktemp("notebook")
    photos = photo_factory.make_presplit_folder(root / "photos", {"train": 6, "validation": 4, "test": 4})
    kernels = root / "jupyter" / "kernels" / "catsdogs-test"
    kernels.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (kernels / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "test", "language": "python"}))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    parameters.source = re.sub(r'^PRESET = "default"', 'PRESET = "smoke"', parameters.source, flags=re.MULTILINE)
    parameters.source = re.sub(r'^DATA = ""', f"DATA = {str(photos)!r}", parameters.source, flags=re.MULTILINE)
    parameters.source = re.sub(r"^RUN_SWEEP = False", "RUN_SWEEP = True", parameters.source, flags=re.MULTILINE)
    assert 'PRESET = "smoke"' in parameters.source and str(photos) in parameters.source
    assert "RUN_SWEEP = True" in parameters.source
    for solution in exercise_solutions(notebook):  # Run after the study, so that each finds what it uses.
        notebook.cells.append(nbformat.v4.new_code_cell(solution, metadata={"tags": ["exercise-solution"]}))
    workdir = root / "empty"
    workdir.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(root / "jupyter"))
        patch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
        NotebookClient(
            notebook, timeout=900, kernel_name="catsdogs-test", resources={"metadata": {"path": str(workdir)}}
        ).execute()
    notebook.metadata["workdir"] = str(workdir)
    return notebook


@pytest.mark.slow
def test_smoke_run_executes_every_cell_without_error(executed_notebook):
    code_cells = [cell for cell in executed_notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code_cells)
    assert sum("exercise-solution" in cell.metadata.get("tags", []) for cell in code_cells) >= 3
    for cell in code_cells:
        assert not [output for output in cell.outputs if output.output_type == "error"], cell.source[:80]
    output = Path(executed_notebook.metadata["workdir"]) / "outputs"
    for name in ("scratch.keras", "transfer.keras", "finetuned.keras", "results.json", "report.md"):
        assert (output / name).is_file(), name


@pytest.mark.slow
def test_smoke_run_draws_the_side_by_side_curves_and_the_results_table(executed_notebook):
    curves = find_cell(executed_notebook, "plots.plot_learning_curves(")
    assert any("image/png" in output.get("data", {}) for output in curves.outputs)
    table = find_cell(executed_notebook, "results.format_results_table(study_results)")
    markdown = [
        output["data"]["text/markdown"] for output in table.outputs if "text/markdown" in output.get("data", {})
    ]
    assert markdown and all(f"| {name} |" in markdown[0] for name in ("scratch", "transfer", "finetuned"))
    warning = find_cell(executed_notebook, "if config.weights is None:")
    assert "not transfer learning" in json.dumps(warning.outputs)


def test_the_code_a_learner_came_for_stands_in_code_cells(notebook):
    """The teaching lines are code the learner edits and runs (TensorFlow's tutorial's way), not an output."""
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    for line in ("keras.Sequential(", "layers.RandomFlip(", "layers.Conv2D(", "BinaryCrossentropy(from_logits=True)",
                 "keras.applications.MobileNetV2(", "base.trainable = False", "base(x, training=False)",
                 "layers.BatchNormalization)", "finetune_model.compile(", "model=scratch_model",
                 "model=transfer_model", "model=finetune_model"):  # fmt: skip
        assert line in code, line
    prose = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    assert "initial_epoch=head_epochs" in prose  # What the package's fine-tuning call does, shown.
    assert "display(Markdown(source" not in code


def test_no_engineering_before_the_results_and_no_exercise_runs(notebook):
    headings = [cell.source.splitlines()[0] for cell in notebook.cells if cell.cell_type == "markdown"]
    results = next(index for index, cell in enumerate(notebook.cells) if "## Test each model, once" in cell.source)
    before = "\n".join(cell.source for cell in notebook.cells[:results] if cell.cell_type == "markdown")
    for word in ("allocator", "XLA", "manifest", "BFC", "malloc"):
        assert word not in before, word
    assert "## Under the hood" in headings and headings[-1] == "## Under the hood"
    for model in ("## Model 1", "## Model 2", "## Model 3"):
        assert any(heading.startswith(model) for heading in headings), model
    exercises = [cell.source for cell in notebook.cells if "**Exercise" in cell.source]
    assert len(exercise_solutions(notebook)) == len(exercises)  # Each solution runs in the smoke run below.
    assert len(exercises) >= 3 and all(cell.cell_type == "markdown" for cell in notebook.cells
                                       if "**Exercise" in cell.source)  # fmt: skip
    assert all("<details>" in source for source in exercises)
    parameters = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    assert "RUN_SWEEP = False" in parameters.source  # Opt-in: it trains more than the study.
    assert any("docs/reference_sweep.png" in cell.source for cell in notebook.cells if cell.cell_type == "markdown")


@pytest.mark.slow
def test_smoke_run_sweeps_the_training_set_size_and_reports_it(executed_notebook):
    cell = find_cell(executed_notebook, "sweep.sweep_training_sizes(")
    assert any("image/png" in output.get("data", {}) for output in cell.outputs)
    printed = json.dumps(cell.outputs)
    assert "| photos in the subset |" in printed
    assert "SweepPlan(sizes=(8, 16)" in printed  # The smoke preset's plan, ...
    assert "16 left out: the training split holds 12 photos" in printed  # ... fitted to this folder's 12 photos.
    output = Path(executed_notebook.metadata["workdir"]) / "outputs"
    assert json.loads((output / "sweep.json").read_text())["sizes"] == [8]
    assert "## How much data each approach needs" in (output / "report.md").read_text()
