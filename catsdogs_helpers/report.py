"""What a run leaves behind: results.json, the figures as PNG and a short markdown report; the same for a sweep."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from catsdogs_helpers.config import MODEL_NAMES
from catsdogs_helpers.output_lock import write_text_atomically
from catsdogs_helpers.plots import save_figure
from catsdogs_helpers.results import describe_comparisons, format_results_table, load_results, save_results
from catsdogs_helpers.significance import compute_accuracy_interval

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
SWEEP_FILE = "sweep.json"
SWEEP_FIGURE = "sweep"
_TITLES = {"roc_curves": "ROC curves", "grad_cam": "Grad-CAM: what each model looks at"}


def write_report(output_dir: str | os.PathLike, results: dict, figures: Mapping[str, Figure]) -> Path:
    """Writes `results.json`, one PNG per figure (by file stem) and `report.md`, which includes the sweep the folder
    holds, if any; returns the report's path."""
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


def summarize_sweep(sweep: dict[str, object]) -> list[dict[str, object]]:
    """Returns rows `{"approach", "size", "accuracy", "accuracy_interval", "seed_range", "num_seeds", "train_seconds"}`,
    one per approach (`MODEL_NAMES` order), then size: mean accuracy over seeds, its Wilson interval, the seeds' range,
    time."""
    rows = []
    for approach in MODEL_NAMES:
        for size in sweep["sizes"]:
            points = [p for p in sweep["points"] if p["approach"] == approach and p["size"] == size]
            if not points:
                continue
            accuracies = [p["accuracy"] for p in points]
            num_images = points[0]["num_images"]
            mean = float(np.mean(accuracies))
            rows.append({
                "approach": approach,
                "size": size,
                "accuracy": mean,
                "accuracy_interval": list(compute_accuracy_interval(round(mean * num_images), num_images)),
                "seed_range": [min(accuracies), max(accuracies)],
                "num_seeds": len(points),
                "train_seconds": float(np.mean([p["train_seconds"] for p in points])),
            })  # fmt: skip
    return rows


def format_sweep_table(sweep: dict[str, object]) -> str:
    """Returns a markdown table: one row per subset size, test accuracy (95% interval) and time per approach."""
    rows = {(row["approach"], row["size"]): row for row in summarize_sweep(sweep)}
    header = "| photos in the subset | " + " | ".join(f"{name} | time" for name in MODEL_NAMES) + " |"
    lines = [header, "|---:|" + "---:|---:|" * len(MODEL_NAMES)]
    for size in sweep["sizes"]:
        cells = []
        for approach in MODEL_NAMES:
            row = rows.get((approach, size))
            if row is None:
                cells += ["–", "–"]
                continue
            low, high = row["accuracy_interval"]
            spread = ""
            if row["num_seeds"] > 1:
                spread = f", seeds {100 * row['seed_range'][0]:.1f}–{100 * row['seed_range'][1]:.1f}"
            cells += [f"{100 * row['accuracy']:.1f}% ({100 * low:.1f}–{100 * high:.1f}{spread})",
                      f"{row['train_seconds']:.0f} s"]  # fmt: skip
        lines.append(f"| {size:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_sweep(output_dir: str | os.PathLike, sweep: dict[str, object], figure: Figure) -> Path:
    """Writes `sweep.json`, `sweep.png` and `sweep.md` into a folder; returns `sweep.md`'s path."""
    output = Path(output_dir)
    save_results({**sweep, "summary": summarize_sweep(sweep)}, output / SWEEP_FILE)
    save_figure(figure, output / f"{SWEEP_FIGURE}.png")
    return write_text_atomically(output / "sweep.md", "\n".join(describe_sweep(sweep)) + "\n")


def format_sweep_epochs(sweep: dict[str, object]) -> str:
    """Returns a markdown table of each point's best (kept) / run epochs per seed, `*` where it ran to its cap."""
    lines = ["| photos (train + validation) | " + " | ".join(MODEL_NAMES) + " |", "|---:|" + "---:|" * len(MODEL_NAMES)]
    for size in sweep["sizes"]:
        points = [p for p in sweep["points"] if p["size"] == size]
        if not points:
            continue
        cells = []
        for approach in MODEL_NAMES:
            own = sorted((p for p in points if p["approach"] == approach), key=lambda p: p["seed"])
            runs = [f"{p['best_epoch']} / {p['epochs']}{'' if p['stopped_early'] else '*'}" for p in own]
            cells.append("; ".join(runs) or "–")
        parts = f"{points[0]['num_train']:,} + {points[0]['num_validation']:,}"
        lines.append(f"| {size:,} ({parts}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _describe_rule(sweep: Mapping[str, object]) -> str:
    """Says how the sweep's points trained (its plan's `TrainingRule` and the study's epochs), as a paragraph."""
    rule, caps, patience = sweep["plan"]["rule"], sweep["stopping"]["max_epochs"], sweep["stopping"]["patience"]
    if isinstance(patience, int):  # A sweep.json from 0.4.x: one patience for the three approaches.
        patience = dict.fromkeys(caps, patience)
    named = {"scratch": "the scratch CNN", "transfer": "the head", "finetuned": "fine-tuning"}
    stopping = [
        f"{named[name]} every one of its {caps[name]} epochs" if patience[name] >= caps[name] else
        f"{named[name]} until the validation loss has not improved for {patience[name]} epochs, at most {caps[name]}"
        for name in named
    ]  # fmt: skip
    minimum = rule["min_epoch_photos"]
    epoch = f"a pass over the training part or {minimum} photos, whichever is more"
    if minimum is None:
        epoch = f"as many photos as the whole training split holds ({sweep['num_train_photos']:,}, the study's epoch)"
    return (
        f"Each subset is split, class by class, into {100 * rule['validation_fraction']:.0f}% for validation (at "
        f"least {rule['min_validation_per_class']} photos per class) and the rest for training. An epoch is {epoch}, "
        f"the training part repeated as needed. Each approach trains with the study's recipe and keeps its best "
        f"validation epoch's weights: {'; '.join(stopping)}."
    )


def describe_sweep(sweep: dict[str, object]) -> list[str]:
    """Returns the sweep's section of a report, as markdown lines: what was run, the tables, the figure."""
    plan = sweep["plan"]
    seeds = f"{plan['num_seeds']} seed{'s' if plan['num_seeds'] > 1 else ''}"
    how = "Each point trained for a fixed budget (an earlier version's sweep)."
    if "stopping" in sweep:
        how = _describe_rule(sweep)
    lines = [
        "## How much data each approach needs",
        "",
        f"Each approach trained on class-balanced subsets of the training split (each inside the next; {seeds}) and",
        f"scored once on the same {sweep['num_test_images']} test photos. {how}",
        "",
        "Test accuracy (95% Wilson interval for the test split's size) and training time per point:",
        "",
        format_sweep_table(sweep),
        "",
    ]
    if all("best_epoch" in point for point in sweep["points"]):
        lines += ["Epochs per point, best (kept) / run; `*`: ran up to its cap, not stopped early:", "",
                  format_sweep_epochs(sweep), ""]  # fmt: skip
    return [*lines, f"![sweep]({SWEEP_FIGURE}.png)", "", f"The whole sweep took {sweep['seconds'] / 60:.1f} min.", ""]
