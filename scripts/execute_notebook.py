"""Execute transfer_learning.ipynb on the quick preset and save it, outputs included, for readers on GitHub.

    python scripts/execute_notebook.py                      # runs the whole notebook (minutes on a CPU)
    python scripts/execute_notebook.py --refresh-markdown   # copies only markdown edits, runs nothing

The run starts from an empty working folder (as Colab's /content), on the reference photos and the 1.0-alpha,
224-px ImageNet weights in ../shared by default, with the `PRESET`, `DATA` and `WEIGHTS` lines of the
`parameters`-tagged cell rewritten (papermill's way). The executed copy, docs/transfer_learning_executed.ipynb,
opens with a cell that says what ran where: preset, data, weights, the machine's processor and cores, library
versions, date and wall time. Its metadata holds a digest of the notebook's code cells; tests/test_executed_notebook.py
fails when a code cell changed after the outputs were made. Markdown edits do not make outputs stale:
`--refresh-markdown` copies them into the executed copy without running anything, and refuses if code changed.
Figures of photos are stored as JPEG, so that the copy's images stay under about 2 MB, and Keras's progress bars
as the lines a terminal or Jupyter ends up showing.

Relative links in markdown cells are rewritten for the copy's place in docs/, and the repository's images they
show (the reference sweep figure) are attached to their cells.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import platform
import re
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "transfer_learning.ipynb"
EXECUTED = ROOT / "docs" / "transfer_learning_executed.ipynb"
DATA = "../shared/data/cats_vs_dogs_small"
WEIGHTS = "../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
METADATA_KEY = "catsdogs_executed"
# Figures of photos (samples, augmentation, mistakes, Grad-CAM) are stored as JPEG above this many base64 bytes as
# PNG; line plots stay PNG.
PNG_LIMIT = 150_000
JPEG_QUALITY = 80
COMMAND = "python scripts/execute_notebook.py"
KERNEL_NAME = "catsdogs-execute"


def code_digest(notebook: nbformat.NotebookNode) -> str:
    """A digest of the notebook's code cells' sources, in order (markdown cells and outputs left out)."""
    sources = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    return hashlib.sha256(json.dumps(sources).encode()).hexdigest()[:16]


def set_parameters(notebook: nbformat.NotebookNode, values: dict[str, str]) -> None:
    """Rewrites `NAME = "..."` lines of the `parameters`-tagged cell, keeping each trailing `# @param` comment.

    Raises:
        ValueError: If there is not exactly one such cell, or a name is not assigned once in it.
    """
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"expected one cell tagged `parameters`, found {len(tagged)}")
    source = tagged[0].source
    for name, value in values.items():
        pattern = rf'^({re.escape(name)} = )("(?:[^"\\]|\\.)*"|\S+)'
        source, count = re.subn(pattern, lambda match, v=value: match.group(1) + json.dumps(v), source, flags=re.M)
        if count != 1:
            raise ValueError(f"expected one line `{name} = ...` in the parameters cell, found {count}")
    tagged[0].source = source


def relink(markdown: str) -> str:
    """Rewrites the relative link and image targets of a markdown cell for a copy in docs/."""

    def moved(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r"^([a-z]+:|#|/)", target):
            return match.group(0)
        return f"{match.group(1)}{os.path.relpath(target, 'docs')}{match.group(3)}"

    return re.sub(r"(\]\()([^)\s]+)(\))", moved, markdown)


def embed_images(cell: nbformat.NotebookNode) -> None:
    """Attaches the repository's images that a markdown cell shows (`![...](docs/x.png)`) to the cell, in place.

    The copy then shows them wherever it is opened, whatever the renderer does with relative paths; refreshing
    the markdown attaches the figures as they are then.
    """

    def attach(match: re.Match) -> str:
        target = match.group(2)
        path = ROOT / target
        kinds = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
        if re.match(r"^([a-z]+:|#|/)", target) or path.suffix.lower() not in kinds or not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        cell.setdefault("attachments", {})[path.name] = {kinds[path.suffix.lower()]: data}
        return f"{match.group(1)}attachment:{path.name})"

    cell.source = re.sub(r"(!\[[^\]]*\]\()([^)\s]+)\)", attach, cell.source)


def describe_machine() -> str:
    """The processor's model name and logical cores, from /proc/cpuinfo where there is one."""
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), flags=re.M)
        name = names[0].strip() if names else name
    return f"{name}, {os.cpu_count()} logical cores, no GPU" if not _has_gpu() else f"{name}, with a GPU"


def _has_gpu() -> bool:
    return Path("/proc/driver/nvidia/gpus").is_dir() and any(Path("/proc/driver/nvidia/gpus").iterdir())


def count_photos(data: Path) -> dict[str, int]:
    """Photos per split folder (`train/`, `validation/`, `test/`) of a pre-split folder; empty for other layouts."""
    suffixes = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
    return {
        split: sum(1 for path in (data / split).rglob("*") if path.suffix.lower() in suffixes)
        for split in ("train", "validation", "test")
        if (data / split).is_dir()
    }


def label_cell(info: dict[str, object]) -> nbformat.NotebookNode:
    """The executed copy's first cell, made from its metadata: what ran, on what, how long, how to regenerate it."""
    minutes, seconds = divmod(round(float(info["wall_seconds"])), 60)
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items())
    counts = info.get("photos") or {}
    photos = f"`{info['data']}`"
    if counts:
        names = {"train": "training", "validation": "validation", "test": "test"}
        parts = [f"{counts[split]:,} {names[split]}" for split in names if split in counts]
        photos += f" ({', '.join(parts[:-1])} and {parts[-1]} photos)" if len(parts) > 1 else f" ({parts[0]} photos)"
    text = (
        f"> **This is [`transfer_learning.ipynb`](../transfer_learning.ipynb) run from top to bottom, with its "
        f"outputs**, so that you can read a finished run without running anything.\n>\n"
        f"> - preset: `{info['preset']}`;\n"
        f"> - photos: {photos}, the project's reference photos, from the same Asirra pool as TensorFlow Datasets' "
        f"`cats_vs_dogs`;\n"
        f"> - MobileNetV2 weights: `{info['weights']}` (ImageNet);\n"
        f"> - machine: {info['machine']}; {versions};\n"
        f"> - run on {info['date']}, in {minutes} min {seconds:02d} s for the whole notebook, "
        f"from an empty folder.\n>\n"
        f"> To regenerate it: `{COMMAND}`."
    )
    return nbformat.v4.new_markdown_cell(text, metadata={"tags": ["execution-label"]})


def merge_markdown(source: nbformat.NotebookNode, executed: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The executed copy with the source notebook's markdown cells, and its own code cells and outputs.

    Raises:
        ValueError: If the code cells differ (the outputs are stale: rerun instead).
    """
    recorded = executed.metadata.get(METADATA_KEY, {}).get("source_code_digest")
    if recorded != code_digest(source):
        raise ValueError(f"a code cell of {NOTEBOOK.name} changed after the outputs were made; run `{COMMAND}`")
    executed_code = iter(cell for cell in executed.cells[1:] if cell.cell_type == "code")
    cells = [label_cell(executed.metadata[METADATA_KEY])]
    for cell in source.cells:
        if cell.cell_type == "code":
            cells.append(next(executed_code))
        else:
            copied = nbformat.from_dict(json.loads(json.dumps(cell)))
            embed_images(copied)
            copied.source = relink(copied.source)
            cells.append(copied)
    merged = nbformat.from_dict(json.loads(json.dumps(executed)))
    merged.cells = cells
    return merged


def image_bytes(notebook: nbformat.NotebookNode) -> int:
    """Bytes of the images in the outputs and markdown attachments, as stored (base64)."""
    bundles = [output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", [])]
    bundles += [bundle for cell in notebook.cells for bundle in cell.get("attachments", {}).values()]
    return sum(len(value) for bundle in bundles for kind, value in bundle.items() if kind.startswith("image/"))


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# TensorFlow's C++ log lines (absl) on the kernel's stderr: start-up chatter about this machine, not the lesson's.
TF_LOG_LINE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] .*)$\n?",
    flags=re.MULTILINE,
)


def render_terminal_text(text: str) -> str:
    """The text a terminal (or Jupyter) shows for `text`: carriage returns and backspaces applied, colours dropped.

    Keras's progress bar redraws its line hundreds of times an epoch; rendered, each epoch is its final line.
    """
    lines, line, cursor = [], [], 0
    for char in ANSI_ESCAPE.sub("", text):
        if char == "\n":
            lines.append("".join(line).rstrip())
            line, cursor = [], 0
        elif char == "\r":
            cursor = 0
        elif char == "\b":
            cursor = max(cursor - 1, 0)
        else:
            line[cursor : cursor + 1] = [char]
            cursor += 1
    return "\n".join([*lines, "".join(line).rstrip()])


def flatten_streams(notebook: nbformat.NotebookNode) -> None:
    """Merges each cell's consecutive stream outputs of one name and renders them (see `render_terminal_text`);
    drops TensorFlow's C++ log lines from stderr."""
    for cell in notebook.cells:
        merged: list[nbformat.NotebookNode] = []
        for output in cell.get("outputs", []):
            previous = merged[-1] if merged else None
            if (
                output.output_type == "stream"
                and previous is not None
                and previous.output_type == "stream"
                and (previous.name == output.name)
            ):
                previous.text += output.text
            else:
                merged.append(output)
        for output in merged:
            if output.output_type == "stream":
                output.text = render_terminal_text(output.text)
                if output.name == "stderr":
                    output.text = TF_LOG_LINE.sub("", output.text)
        if "outputs" in cell:
            cell.outputs = [output for output in merged if output.output_type != "stream" or output.text.strip()]


def shrink_images(notebook: nbformat.NotebookNode) -> int:
    """Re-encodes the large PNG outputs (figures of photos) as JPEG, in place; returns how many it re-encoded."""
    from PIL import Image

    count = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if len(data.get("image/png", "")) <= PNG_LIMIT:
                continue
            image = Image.open(io.BytesIO(base64.b64decode(data["image/png"])))
            flat = Image.new("RGB", image.size, "white")
            flat.paste(image, mask=image.getchannel("A") if image.mode == "RGBA" else None)
            buffer = io.BytesIO()
            flat.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
            data["image/jpeg"] = base64.b64encode(buffer.getvalue()).decode("ascii")
            del data["image/png"]
            sizes = output.get("metadata", {}).pop("image/png", None)
            if sizes is not None:
                output["metadata"]["image/jpeg"] = sizes
            count += 1
    return count


def execute(args: argparse.Namespace) -> nbformat.NotebookNode:
    """Runs the notebook with the parameters injected, in an empty folder, and returns the labelled copy."""
    from nbclient import NotebookClient

    source = nbformat.read(NOTEBOOK, as_version=4)
    notebook = nbformat.from_dict(json.loads(json.dumps(source)))
    data, weights = (str((ROOT / path).resolve()) for path in (args.data, args.weights))
    set_parameters(notebook, {"PRESET": args.preset, "DATA": data, "WEIGHTS": weights})
    with tempfile.TemporaryDirectory(prefix="catsdogs-execute-") as folder:
        kernels = Path(folder) / "jupyter" / "kernels" / KERNEL_NAME
        kernels.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (kernels / "kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "catsdogs", "language": "python"})
        )
        workdir = Path(folder) / "content"
        workdir.mkdir()
        os.environ["JUPYTER_PATH"] = str(Path(folder) / "jupyter")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        start = time.perf_counter()
        client = NotebookClient(notebook, timeout=args.timeout, kernel_name=KERNEL_NAME, record_timing=False,
                                resources={"metadata": {"path": str(workdir)}})  # fmt: skip
        client.execute()
        wall_seconds = time.perf_counter() - start
    versions = {name: metadata.version(name) for name in ("tensorflow", "keras", "catsdogs-helpers")}
    info = {
        "preset": args.preset,
        "data": args.data,
        "weights": args.weights,
        "machine": describe_machine(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "wall_seconds": round(wall_seconds, 1),
        "photos": count_photos(ROOT / args.data),
        "source_code_digest": code_digest(source),
    }
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            embed_images(cell)
            cell.source = relink(cell.source)
    notebook.cells.insert(0, label_cell(info))
    notebook.metadata[METADATA_KEY] = info
    return notebook


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="quick", help="the notebook's PRESET (default: quick)")
    parser.add_argument("--data", default=DATA, help=f"photos, relative to the repository (default: {DATA})")
    parser.add_argument("--weights", default=WEIGHTS, help="MobileNetV2 no-top .h5, relative to the repository")
    parser.add_argument("--output", type=Path, default=EXECUTED, help="the executed copy (default: docs/...)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may take (default: 3600)")
    parser.add_argument(
        "--refresh-markdown", action="store_true", help="copy markdown edits into the executed copy; run nothing"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.refresh_markdown:
        try:
            notebook = merge_markdown(nbformat.read(NOTEBOOK, as_version=4), nbformat.read(args.output, as_version=4))
        except (ValueError, FileNotFoundError) as error:
            print(f"Cannot refresh the markdown: {error}", file=sys.stderr)
            return 1
    else:
        notebook = execute(args)
    flatten_streams(notebook)
    shrink_images(notebook)
    nbformat.validate(notebook)
    nbformat.write(notebook, args.output)
    size = args.output.stat().st_size
    print(f"Wrote {args.output} ({size / 1e6:.2f} MB, images {image_bytes(notebook) / 1e6:.2f} MB as base64).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
