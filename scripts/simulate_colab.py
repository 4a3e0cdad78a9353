"""Simulate the Colab flow of transfer_learning.ipynb in a fresh virtual environment.

What Colab does, step by step, and what this script does instead:

1. A fresh runtime with TensorFlow, Keras, TensorFlow Datasets, NumPy, Matplotlib, Pillow and SciPy
   preinstalled, and no catsdogs_helpers: a new virtual environment with Colab's versions of those (see
   COLAB_PACKAGES; `--packages` replaces them), plus nbclient and ipykernel to run the notebook.
2. The notebook opened alone, in an empty folder (Colab's /content): only transfer_learning.ipynb is copied
   into an empty folder named `content`, which is the kernel's working folder. The kernel gets a fresh HOME
   (no pip cache, no ~/.keras weights, no Matplotlib or IPython settings from this machine).
3. The set-up cell installs the package from `REPO_URL`: here `file:///<this checkout>`, which the cell
   turns into `git+file:///...`. The package and whatever it needs beyond Colab's packages (filelock,
   importlib_resources, ...) come in only through that pip install, never from this script.
4. *Runtime -> Run all* with the smoke preset: the parameters are set in the notebook's copy the way
   tests/test_notebook.py sets them (the assignment lines rewritten), and nbclient runs the cells one by
   one, as the test does. Offline, give `--data` (a folder of photos) and, optionally, `--weights` (a
   MobileNetV2 no-top .h5 file; the smoke preset uses alpha 0.35).

Note: pip installs a `git+file://` URL from a clone of the checkout, so only its **committed HEAD** is
installed: uncommitted changes to the package are not part of the simulation (the script warns about them).
The notebook itself is copied from the working tree.

It prints each code cell's status and time, what the notebook's pip install added or changed in the
environment, and the time of the environment's set-up against the notebook's run. It exits 0 when every cell
ran, 1 with the failing cell's error otherwise (2 when the environment could not be set up).

Example, offline (about 6 minutes on 2 CPU cores, half of it downloading and installing TensorFlow):

    python3 scripts/simulate_colab.py --python python3.12 \\
        --data ../shared/data/cats_vs_dogs_small \\
        --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "transfer_learning.ipynb"
# What a Colab GPU runtime has preinstalled (2025, Python 3.12), among the packages the notebook needs.
# filelock and importlib_resources are left out on purpose: the set-up cell's install must bring them.
COLAB_PACKAGES = (
    "tensorflow==2.19.0",
    "keras==3.10.0",
    "tensorflow-datasets==4.9.9",
    "numpy==2.0.2",
    "matplotlib==3.10.0",
    "pillow==11.3.0",
    "scipy==1.16.1",
)
RUNNER_PACKAGES = ("nbclient", "ipykernel")  # To run the notebook; Colab has its own front end instead.
KERNEL_NAME = "colab-sim"

# Runs inside the new environment (which has nbclient): executes the notebook cell by cell, as
# tests/test_notebook.py does, printing one line per code cell as it finishes.
DRIVER = r"""
import json, re, sys, time
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

notebook_path, executed_path, timeout, kernel_log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[6]
notebook = nbformat.read(notebook_path, as_version=4)
client = NotebookClient(
    notebook, timeout=timeout, kernel_name=sys.argv[4], resources={"metadata": {"path": sys.argv[5]}}
)
code_cells = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
failed = None
with open(kernel_log, "w") as log, client.setup_kernel(stderr=log):  # TensorFlow's messages: Colab's log.
    for number, index in enumerate(code_cells, 1):
        cell = notebook.cells[index]
        lines = [line for line in cell.source.splitlines() if line.strip() and not line.startswith("%")]
        first_line = (lines or [""])[0][:70]
        start = time.perf_counter()
        try:
            client.execute_cell(cell, index, execution_count=number)
            status = "ok"
        except CellExecutionError:
            status = "FAILED"
        seconds = time.perf_counter() - start
        print(f"  cell {number:2d}/{len(code_cells)}  {status:6s} {seconds:7.1f} s  {first_line}", flush=True)
        if status != "ok":
            failed = (number, cell)
            break
nbformat.write(notebook, executed_path)
if failed:
    number, cell = failed
    errors = [output for output in cell.outputs if output.output_type == "error"]
    traceback = "\n".join(errors[0].traceback) if errors else "(no error output)"
    print(f"\nCell {number} failed:\n" + re.sub(r"\x1b\[[0-9;]*m", "", traceback), flush=True)
    with open(kernel_log) as log:
        print("\nThe kernel's last messages:\n" + "".join(log.readlines()[-15:]), flush=True)
    sys.exit(1)
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="pip installs the committed HEAD of the checkout: uncommitted changes to the package are not "
        "simulated. See the module docstring for what each step stands for.",
    )
    parser.add_argument(
        "--repo-url",
        default=ROOT.as_uri(),
        help="the notebook's REPO_URL; the set-up cell installs git+REPO_URL (a leading 'git+' is accepted "
        "and dropped). Defaults to this checkout: %(default)s",
    )
    parser.add_argument("--preset", default="smoke", help="the notebook's PRESET. Defaults to %(default)s.")
    parser.add_argument("--data", default="", help="the notebook's DATA: a photo folder (needed offline).")
    parser.add_argument("--weights", default="", help="the notebook's WEIGHTS: a MobileNetV2 no-top .h5 file.")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the Python of the new environment (Colab runs 3.12). Defaults to this one: %(default)s",
    )
    parser.add_argument(
        "--packages",
        nargs="+",
        default=list(COLAB_PACKAGES),
        help="what the runtime has preinstalled. Defaults to Colab's: %(default)s",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="folder for the environment, the notebook's folder and the executed notebook; kept afterwards. "
        "Defaults to a temporary folder, removed afterwards.",
    )
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell (%(default)s).")
    return parser.parse_args(argv)


def notebook_parameters(args: argparse.Namespace) -> dict[str, object]:
    """The assignments to set in the notebook's copy, from the command line's arguments."""
    repo_url = args.repo_url.removeprefix("git+")
    parameters: dict[str, object] = {"REPO_URL": repo_url, "PRESET": args.preset}
    for name, value in (("DATA", args.data), ("WEIGHTS", args.weights)):
        if value:
            parameters[name] = str(Path(value).resolve()) if Path(value).exists() else value
    return parameters


def set_assignments(source: str, values: dict[str, object]) -> str:
    """Rewrites `NAME = <value>` lines of a cell's source (a trailing `# @param` comment is kept).

    Raises:
        ValueError: if a name is not assigned exactly once at the start of a line.
    """
    for name, value in values.items():
        pattern = rf'^({re.escape(name)} = )("(?:[^"\\]|\\.)*"|\S+)'
        source, count = re.subn(pattern, lambda match, v=value: match.group(1) + literal(v), source, flags=re.M)
        if count != 1:
            raise ValueError(f"expected one line `{name} = ...` in the cell, found {count}")
    return source


def literal(value: object) -> str:
    """A Python literal of `value`, with double quotes for strings like the notebook's own."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def prepare_notebook(notebook: dict, parameters: dict[str, object]) -> dict:
    """Sets REPO_URL in the first code cell (the set-up cell) and the rest in the parameters cell."""
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    (tagged,) = [cell for cell in code_cells if "parameters" in cell.get("metadata", {}).get("tags", [])]
    others = tuple(name for name in parameters if name != "REPO_URL")
    for cell, names in ((code_cells[0], ("REPO_URL",)), (tagged, others)):
        source = "".join(cell["source"])
        cell["source"] = set_assignments(source, {name: parameters[name] for name in names})
    return notebook


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pip_install(python: Path, requirements: list[str]) -> None:
    """pip install, echoing what it collects and installs (it takes minutes); raises on failure."""
    command = [str(python), "-m", "pip", "install", "--progress-bar", "off", "--disable-pip-version-check"]
    process = subprocess.Popen([*command, *requirements], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip())
        if line.startswith("Collecting "):
            print("    " + line.rstrip()[:150], flush=True)
        elif line.startswith("Installing collected packages: "):
            print(f"    installing {len(line.split(': ', 1)[1].split(', '))} packages ...", flush=True)
        elif line.startswith("Successfully installed "):
            print(f"    installed {len(line.split()) - 2} packages", flush=True)
    if process.wait() != 0:
        raise RuntimeError("pip install failed:\n" + "\n".join(lines[-30:]))


def installed(python: Path) -> dict[str, str]:
    listing = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {package["name"].lower(): package["version"] for package in json.loads(listing.stdout)}


def uncommitted_changes(root: Path) -> str:
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True)
    return status.stdout.strip() if status.returncode == 0 else ""


def simulate(args: argparse.Namespace, workdir: Path) -> int:
    start = time.perf_counter()
    parameters = notebook_parameters(args)
    if parameters["REPO_URL"] == ROOT.as_uri() and uncommitted_changes(ROOT):
        step("Warning: the checkout has uncommitted changes; pip installs its committed HEAD only.")
    environment = workdir / "venv"
    step(f"Creating a fresh virtual environment in {environment} with {args.python}")
    try:
        subprocess.run([args.python, "-m", "venv", str(environment)], check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        print(
            f"Could not create a virtual environment with --python {args.python} ({error}). Give --python an "
            f"interpreter that runs here, e.g. its full path. Received: --python {args.python}",
            file=sys.stderr,
        )
        return 2
    python = environment / "bin" / "python"
    try:
        step("Upgrading pip")
        pip_install(python, ["--upgrade", "pip"])
        step(f"Installing what Colab has preinstalled: {' '.join(args.packages)}")
        pip_install(python, list(args.packages))
        step(f"Installing the notebook runner: {' '.join(RUNNER_PACKAGES)}")
        pip_install(python, list(RUNNER_PACKAGES))
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2
    before = installed(python)
    if "catsdogs-helpers" in before:
        print("catsdogs-helpers is already installed: the simulation would not test the set-up cell.")
        return 2
    setup_seconds = time.perf_counter() - start

    content = workdir / "content"
    content.mkdir()
    notebook = prepare_notebook(json.loads(NOTEBOOK.read_text(encoding="utf-8")), parameters)
    (content / NOTEBOOK.name).write_text(json.dumps(notebook, indent=1, ensure_ascii=False), encoding="utf-8")
    kernels = workdir / "jupyter" / "kernels" / KERNEL_NAME
    kernels.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (kernels / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Colab", "language": "python"}))
    home = workdir / "home"
    home.mkdir()
    kernel_environment = {
        key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    kernel_environment.update(
        HOME=str(home), JUPYTER_PATH=str(workdir / "jupyter"), PATH=f"{environment / 'bin'}:{os.environ['PATH']}"
    )
    settings = ", ".join(f"{name} = {value!r}" for name, value in parameters.items())
    step(f"Running {NOTEBOOK.name} alone in {content}, with {settings}")
    executed = workdir / "executed.ipynb"
    notebook_start = time.perf_counter()
    run = subprocess.run(
        [str(python), "-c", DRIVER, str(content / NOTEBOOK.name), str(executed), str(args.timeout), KERNEL_NAME,
         str(content), str(workdir / "kernel.log")],
        env=kernel_environment, cwd=content,
    )  # fmt: skip
    notebook_seconds = time.perf_counter() - notebook_start

    after = installed(python)
    changes = [
        f"{name} {before[name]} -> {version}" if name in before else f"{name} {version} (new)"
        for name, version in sorted(after.items())
        if before.get(name) != version
    ]
    removed = sorted(set(before) - set(after))
    print("\nThe notebook's pip install added or changed: " + (", ".join(changes) or "nothing"))
    replaced = [change for change in changes if "->" in change] + removed
    print("Packages of the runtime it replaced or removed: " + (", ".join(replaced) or "none"))
    outputs = sorted(path.name for path in (content / "outputs").glob("*")) if (content / "outputs").is_dir() else []
    print(f"Outputs written to content/outputs: {', '.join(outputs) or 'none'}")
    total = time.perf_counter() - start
    result = "PASSED: every cell ran" if run.returncode == 0 else "FAILED"
    print(f"\nColab simulation {result}.")
    print(f"  environment set-up: {minutes(setup_seconds)}")
    print(f"  notebook run:       {minutes(notebook_seconds)} (its set-up cell's pip install included)")
    print(f"  total:              {minutes(total)}")
    return 0 if run.returncode == 0 else 1


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=False)
        return simulate(args, args.workdir.resolve())
    with tempfile.TemporaryDirectory(prefix="colab-sim-") as folder:
        return simulate(args, Path(folder))


if __name__ == "__main__":
    sys.exit(main())
