"""docs/transfer_learning_executed.ipynb, the notebook as a reader sees it on GitHub: outputs not stale, labelled,
light; and scripts/execute_notebook.py's digest, parameter injection and markdown refresh."""

from pathlib import Path

import nbformat
import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    return load_script("execute_notebook")


@pytest.fixture(scope="module")
def executed(script) -> nbformat.NotebookNode:
    assert script.EXECUTED.is_file(), f"{script.EXECUTED} is missing; make it with `{script.COMMAND}`"
    return nbformat.read(script.EXECUTED, as_version=4)


def test_the_executed_copy_is_not_stale(script, executed):
    """Fails when a code cell of the notebook changed after the executed copy's outputs were made."""
    recorded = executed.metadata[script.METADATA_KEY]["source_code_digest"]
    current = script.code_digest(nbformat.read(script.NOTEBOOK, as_version=4))
    assert recorded == current, (
        f"docs/transfer_learning_executed.ipynb is stale: a code cell of transfer_learning.ipynb changed after its "
        f"outputs were made (digest {recorded}, now {current}). Regenerate it: `{script.COMMAND}` (the whole "
        f"notebook on the quick preset, on a CPU). Markdown-only edits: `{script.COMMAND} --refresh-markdown`."
    )


def test_the_executed_copy_is_labelled_complete_and_light(script, executed):
    info = executed.metadata[script.METADATA_KEY]
    assert info["preset"] == "quick" and info["wall_seconds"] > 0 and info["machine"]
    label = executed.cells[0]
    assert label.cell_type == "markdown" and "execution-label" in label.metadata.get("tags", [])
    for value in (info["preset"], info["data"], info["machine"]):
        assert str(value) in label.source
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)
    assert not [output for cell in code for output in cell.outputs if output.output_type == "error"]
    assert script.image_bytes(executed) <= 2_000_000
    assert "../transfer_learning.ipynb" in label.source and "](docs/" not in "".join(c.source for c in executed.cells)


def _notebook(*cells: tuple[str, str]) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell}
    notebook.cells = [make[kind](source) for kind, source in cells]
    return notebook


def test_the_digest_follows_code_cells_only(script):
    notebook = _notebook(("markdown", "# Title"), ("code", "x = 1"))
    before = script.code_digest(notebook)
    notebook.cells[0].source = "# Another title"
    assert script.code_digest(notebook) == before
    notebook.cells[1].source = "x = 2"
    assert script.code_digest(notebook) != before


def test_parameters_are_injected_into_the_tagged_cell(script):
    notebook = _notebook(("code", 'PRESET = "default"  # @param ["default"]\nDATA = ""  # @param {type:"string"}'))
    notebook.cells[0].metadata["tags"] = ["parameters"]
    script.set_parameters(notebook, {"PRESET": "quick", "DATA": "/photos"})
    assert (
        notebook.cells[0].source == 'PRESET = "quick"  # @param ["default"]\nDATA = "/photos"  # @param {type:"string"}'
    )
    with pytest.raises(ValueError, match="WEIGHTS"):
        script.set_parameters(notebook, {"WEIGHTS": "x"})


def test_refresh_markdown_copies_prose_keeps_outputs_and_refuses_changed_code(script):
    source = _notebook(("markdown", "See [the figure](docs/figure.png)."), ("code", "print(1)"))
    executed = _notebook(("markdown", "label"), ("markdown", "old prose"), ("code", "print(1)"))
    executed.cells[2].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    info = {"preset": "quick", "data": "photos", "weights": "w.h5", "machine": "a CPU, 2 logical cores, no GPU",
            "versions": {"keras": "3"}, "date": "today", "wall_seconds": 61.0, "photos": {"train": 10, "test": 4},
            "source_code_digest": script.code_digest(source)}  # fmt: skip
    executed.metadata[script.METADATA_KEY] = info
    source.cells.insert(1, nbformat.v4.new_markdown_cell("A new paragraph."))
    merged = script.merge_markdown(source, executed)
    assert [cell.source for cell in merged.cells][1:] == [
        "See [the figure](figure.png).", "A new paragraph.", "print(1)"
    ]  # fmt: skip
    label = merged.cells[0].source  # Made anew from the metadata.
    assert "`quick`" in label and "(10 training and 4 test photos)" in label and "1 min 01 s" in label
    assert merged.cells[3].outputs[0]["text"] == "1\n"
    source.cells[2].source = "print(2)"
    with pytest.raises(ValueError, match="changed after the outputs were made"):
        script.merge_markdown(source, executed)


def test_links_are_rewritten_for_the_docs_folder(script):
    assert script.relink("[a](benchmarks/results/tuning.md) [b](https://x.org/y) [c](#top)") == (
        "[a](../benchmarks/results/tuning.md) [b](https://x.org/y) [c](#top)"
    )
    assert script.relink("![sweep](docs/reference_sweep.png)") == "![sweep](reference_sweep.png)"


def test_the_repositorys_figures_shown_in_markdown_travel_with_the_copy(script):
    cell = nbformat.v4.new_markdown_cell(
        "Before.\n\n![The sweep](docs/reference_sweep.png)\n\n![x](https://x.org/y.png)"
    )
    script.embed_images(cell)
    assert "![The sweep](attachment:reference_sweep.png)" in cell.source and "(https://x.org/y.png)" in cell.source
    assert cell.attachments["reference_sweep.png"]["image/png"].startswith("iVBOR")  # A PNG, base64.
