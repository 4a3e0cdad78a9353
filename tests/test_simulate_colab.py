"""scripts/simulate_colab.py without running it (that builds a virtual environment): its command line and the
notebook copy it writes, with REPO_URL in the set-up cell and the other parameters in the parameters cell."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "simulate_colab.py"


@pytest.fixture(scope="module")
def simulate_colab():
    return load_script("simulate_colab")


def code_cells(notebook: dict) -> list[str]:
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_help_runs_and_says_only_the_committed_head_is_installed():
    process = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert process.returncode == 0, process.stderr
    assert "committed HEAD" in process.stdout and "--repo-url" in process.stdout


def test_by_default_the_notebook_installs_this_checkout_and_runs_the_smoke_preset(simulate_colab):
    parameters = simulate_colab.notebook_parameters(simulate_colab.parse_args([]))
    assert parameters == {"REPO_URL": ROOT.as_uri(), "PRESET": "smoke"}
    assert parameters["REPO_URL"].startswith("file:///")  # The set-up cell prepends "git+".


def test_a_git_url_and_relative_paths_are_accepted(simulate_colab, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    args = simulate_colab.parse_args(["--repo-url", "git+file:///x/catsdogs", "--data", "photos", "--weights", "none"])
    parameters = simulate_colab.notebook_parameters(args)
    assert parameters["REPO_URL"] == "file:///x/catsdogs"
    assert parameters["DATA"] == str(tmp_path / "photos") and parameters["WEIGHTS"] == "none"


def test_the_notebook_copy_gets_each_value_in_its_cell(simulate_colab):
    notebook = json.loads(simulate_colab.NOTEBOOK.read_text(encoding="utf-8"))
    parameters = {"REPO_URL": "file:///x/catsdogs", "PRESET": "smoke", "DATA": "/photos", "WEIGHTS": "/w.h5"}
    setup, *others = code_cells(simulate_colab.prepare_notebook(notebook, parameters))
    assert 'REPO_URL = "file:///x/catsdogs"  # @param {type:"string"}' in setup
    (parameters_cell,) = [source for source in others if source.startswith("PRESET = ")]
    values = {}
    exec(parameters_cell, values)
    assert (values["PRESET"], values["DATA"], values["WEIGHTS"]) == ("smoke", "/photos", "/w.h5")
    assert values["OUTPUT_DIR"] == "outputs" and '# @param ["default", "quick", "smoke"]' in parameters_cell


def test_a_name_the_cell_does_not_assign_is_an_error(simulate_colab):
    with pytest.raises(ValueError, match=r"expected one line `PRESET = \.\.\.`"):
        simulate_colab.set_assignments("REPO_URL = ''\n", {"PRESET": "smoke"})


@pytest.mark.slow
def test_the_runner_reports_each_cell_and_stops_at_the_first_error(simulate_colab, tmp_path):
    import nbformat

    kernels = tmp_path / "jupyter" / "kernels" / "simulate-colab-test"
    kernels.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (kernels / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "test", "language": "python"}))
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in ("x = 1", "%%time\n1 / 0", "print('never')")]
    nbformat.write(notebook, tmp_path / "notebook.ipynb")
    process = subprocess.run(
        [sys.executable, "-c", simulate_colab.DRIVER, "notebook.ipynb", "executed.ipynb", "60", "simulate-colab-test",
         str(tmp_path), "kernel.log"],
        cwd=tmp_path, env={**os.environ, "JUPYTER_PATH": str(tmp_path / "jupyter")}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert process.returncode == 1, process.stderr[-2000:]
    assert re.search(r"cell  1/3  ok +[\d.]+ s  x = 1", process.stdout)
    assert re.search(r"cell  2/3  FAILED +[\d.]+ s  1 / 0", process.stdout)
    assert "cell  3/3" not in process.stdout and "ZeroDivisionError" in process.stdout
    assert (tmp_path / "executed.ipynb").is_file()


def test_an_interpreter_that_cannot_make_an_environment_is_one_line_and_exit_2(simulate_colab, tmp_path, capsys):
    missing = tmp_path / "no-such-python"
    assert simulate_colab.main(["--python", str(missing), "--workdir", str(tmp_path / "work")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("Could not create a virtual environment with --python") and "\n" not in error
    assert error.endswith(f"Received: --python {missing}")
