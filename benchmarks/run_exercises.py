"""Run the notebook's three exercises as a learner would, to measure what their "What to expect" says.

Each exercise's folded solution runs right after the cells it belongs to, in a copy of `transfer_learning.ipynb`
executed with nbclient on the `quick` preset and the reference photos (as `scripts/execute_notebook.py` runs the
notebook). The study's own stages are reused from a finished quick study in `--study` (copy it first: the
notebook writes its report there); each exercise trains into its own folder under `--work`:

1. the scratch CNN's cell without `x = augmentation(x)`, compiled and trained, then both cells rerun unchanged;
2. the head on 100 photos (`max_images_per_split=100`), scored on the whole test split;
3. fine-tuning from layer 0 at 3e-5 (the two fine-tuning cells with `deeper` for `config`).

It prints one `EX` line per figure the exercises quote and saves `exercises_executed.ipynb` and the two
learning-curve figures in `--work`. The figures quoted in the notebook (results in benchmarks/results/tuning.md):

    catsdogs run --preset quick --data ../shared/data/cats_vs_dogs_small --weights <1.0 weights> --output q-study
    cp -r q-study ex-study && python benchmarks/run_exercises.py --study ex-study --work ex-work
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import execute_notebook  # noqa: E402  (scripts/ is not a package)

EXERCISE_1 = """\
no_augmentation = study.train_scratch_cnn(
    config.replace(output_dir="outputs_no_augmentation"), splits, verbose, model=scratch_model
)
plots.plot_learning_curves({"scratch": scratch.history, "no augmentation": no_augmentation.history}).savefig("ex1.png")
for name, history in {"scratch": scratch.history, "no augmentation": no_augmentation.history}.items():
    best = int(np.argmin(history["val_loss"]))
    print(f"EX1 {name}: {len(history['loss'])} epochs, kept epoch {best + 1} (validation loss "
          f"{history['val_loss'][best]:.3f}, accuracy {history['val_accuracy'][best]:.3f}); last epoch: training "
          f"accuracy {history['accuracy'][-1]:.3f}, validation accuracy {history['val_accuracy'][-1]:.3f}")
"""
EXERCISE_2 = """\
start = time.perf_counter()
small_config = config.replace(max_images_per_split=100, output_dir="outputs_100_photos")
small_splits = study.load_data(small_config)
small_head = study.train_frozen_model(small_config, small_splits, verbose)
tested = study.evaluate_models({"head on 100 photos": small_head}, splits)
print(f"EX2 {tested['head on 100 photos'].metrics['accuracy']:.1%} on {splits.num_images('test')} test photos, "
      f"{small_splits.num_images('train')} training photos, {time.perf_counter() - start:.0f} s in all")
"""
EXERCISE_3 = """\
deeper_finetuned = study.fine_tune_model(deeper, splits, frozen, verbose, model=finetune_model)
plots.plot_learning_curves({"from layer 100": finetuned.history, "from layer 0": deeper_finetuned.history}).savefig(
    "ex3.png"
)
for name, trained in {"from layer 100": finetuned, "from layer 0": deeper_finetuned}.items():
    stage, history = trained.stages[-1], trained.stages[-1].history
    print(f"EX3 {name}: {evaluation.count_params(trained.model)[1]:,} trainable weights, {stage.num_epochs} epochs "
          f"in {stage.train_seconds:.0f} s, validation accuracy {history['val_accuracy']}, loss {history['val_loss']}")
head = frozen.stages[-1].history
best = min(range(len(head["val_loss"])), key=head["val_loss"].__getitem__)
print(f"EX3 frozen head: kept epoch {best + 1}, validation loss {head['val_loss'][best]:.4f}, "
      f"accuracy {head['val_accuracy'][best]:.3f}")
"""


def exercise_notebook(study_dir: Path) -> nbformat.NotebookNode:
    """The notebook with each exercise's solution after its cells, stopping after the third."""
    notebook = nbformat.read(execute_notebook.NOTEBOOK, as_version=4)
    data, weights = (str((ROOT / path).resolve()) for path in (execute_notebook.DATA, execute_notebook.WEIGHTS))
    values = {"PRESET": "quick", "DATA": data, "WEIGHTS": weights, "OUTPUT_DIR": str(study_dir)}
    execute_notebook.set_parameters(notebook, values)
    cells = notebook.cells
    tagged = [index for index, cell in enumerate(cells) if "model" in cell.metadata.get("tags", [])]
    scratch_cnn, scratch_compile, unfreeze, recompile = tagged[1], tagged[2], tagged[-2], tagged[-1]
    code = nbformat.v4.new_code_cell

    def after(marker: str) -> int:  # The index after the code cell that trains with `marker`.
        return next(i for i, cell in enumerate(cells) if cell.cell_type == "code" and marker in cell.source) + 1

    one = [
        code(cells[scratch_cnn].source.replace("x = augmentation(x)\n", "")),
        code(cells[scratch_compile].source),
        code(EXERCISE_1),
        code(cells[scratch_cnn].source),
        code(cells[scratch_compile].source),
    ]
    three = [
        code(
            'deeper = config.replace(fine_tune_at=0, fine_tune_learning_rate=3e-5, output_dir="outputs_fine_tune_at_0")'
        ),
        code(cells[unfreeze].source.replace("config.", "deeper.")),
        code(cells[recompile].source.replace("config.", "deeper.")),
        code(EXERCISE_3),
    ]
    first, second, third = (
        after("study.train_scratch_cnn("),
        after("study.train_frozen_model("),
        after("study.fine_tune_model("),
    )
    notebook.cells = [
        *cells[:first],
        code("import time"),
        *one,
        *cells[first:second],
        code(EXERCISE_2),
        *cells[second:third],
        *three,
    ]
    return notebook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, required=True, help="a finished quick study's folder (a copy)")
    parser.add_argument("--work", type=Path, required=True, help="the exercises' working folder")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    notebook = exercise_notebook(args.study.resolve())
    with tempfile.TemporaryDirectory(prefix="catsdogs-exercises-") as folder:
        kernels = Path(folder) / "jupyter" / "kernels" / execute_notebook.KERNEL_NAME
        kernels.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (kernels / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "x", "language": "python"}))
        os.environ["JUPYTER_PATH"] = str(Path(folder) / "jupyter")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        start = time.perf_counter()
        client = NotebookClient(notebook, timeout=7200, kernel_name=execute_notebook.KERNEL_NAME,
                                resources={"metadata": {"path": str(args.work)}})  # fmt: skip
        try:
            client.execute()
        finally:
            nbformat.write(notebook, args.work / "exercises_executed.ipynb")
    print(f"wall {time.perf_counter() - start:.0f} s")
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith("EX"):
                    print(line)


if __name__ == "__main__":
    main()
