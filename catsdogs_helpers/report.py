"""What a run leaves behind: results.json, the figures as PNG and a short markdown report."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from matplotlib.figure import Figure

from catsdogs_helpers.output_lock import write_text_atomically
from catsdogs_helpers.plots import save_figure
from catsdogs_helpers.results import describe_comparisons, format_results_table, load_results, save_results
from catsdogs_helpers.sweep import SWEEP_FILE, describe_sweep

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
_TITLES = {"roc_curves": "ROC curves", "grad_cam": "Grad-CAM: what each model looks at"}


def write_report(output_dir: str | os.PathLike, results: dict, figures: Mapping[str, Figure]) -> Path:
    """Writes `results.json`, one PNG per figure and `report.md` into a folder.

    Args:
        output_dir: The folder; created if needed.
        results: The output of `results.build_results`.
        figures: Figures by file stem, e.g. `{"learning_curves": figure}`.

    Returns:
        The path of `report.md`; it includes the data-efficiency sweep when the
        folder holds one (`sweep.json`, see `sweep.write_sweep`).
    """
    output = Path(output_dir)
    save_results(results, output / RESULTS_FILE)
    for stem, figure in figures.items():
        save_figure(figure, output / f"{stem}.png")
    config, data, environment = results["config"], results["data"], results["environment"]
    counts = ", ".join(f"{split} {sum(per_class.values())}" for split, per_class in data["counts"].items())
    lines = [
        "# Cats vs. dogs: CNN from scratch vs. transfer learning",
        "",
        f"Run on {time.strftime('%Y-%m-%d %H:%M %Z')} with the `{config['preset']}` preset on "
        f"{'; '.join(environment['devices'])} (precision {environment['precision_policy']}).",
        "",
        f"- Data: `{data['source']}` ({counts} photos; {len(data.get('skipped', []))} files skipped)",
        f"- Image size {config['image_size']} px; MobileNetV2 weights: `{config['weights']}`",
        "",
        "## Results on the test split",
        "",
        format_results_table(results),
        "",
        'The 95% interval is the accuracy\'s Wilson score interval for this many test photos; "with TTA" averages',
        "each photo's logit with its mirror image's. Training time includes computing cached features where they",
        "are used; the fine-tuned model's time includes the head's training that precedes it.",
        "",
    ]
    comparisons = describe_comparisons(results)
    if comparisons:
        lines += ["## Are the differences real?", "", *[f"- {line}" for line in comparisons], ""]
    if config["weights"] is None:
        lines += ["> **Random weights**: the transfer models started from random weights, so their figures say", ">"
                  " nothing about transfer learning.", ""]  # fmt: skip
    for stem in figures:
        title = _TITLES.get(stem, stem.replace("_", " ").capitalize())
        lines += [f"## {title}", "", f"![{stem}]({stem}.png)", ""]
    if (output / SWEEP_FILE).is_file():  # A sweep into the same folder (the notebook runs it before the report).
        lines += describe_sweep(load_results(output / SWEEP_FILE))
    versions = ", ".join(f"{name} {version}" for name, version in environment["versions"].items())
    lines += ["## Environment", "", f"{versions}; seed {config['seed']}.", ""]
    if results.get("command"):
        lines += ["## Reproduce", "", "```", results["command"], "```", ""]
    return write_text_atomically(output / REPORT_FILE, "\n".join(lines))
