"""Measures the `default` preset's data path at full scale: first pass, photos/s and peak memory.

Three steps, each in its own process:

1. **Generate** a fake download shaped like the real `kagglecatsanddogs_5340.zip`:
   `PetImages/{Cat,Dog}/N.jpg`, `--num-photos` decodable JPEGs (23,262 by default,
   as many as `cats_vs_dogs` keeps) re-encoded from the real photos of
   `../shared/data/cats_vs_dogs_small` (a random crop of 80-100% of each side,
   resized back to the photo's own size, a random mirror, JPEG quality 75-95), so
   they keep the real photos' sizes (mostly 300-500 px a side), plus the 1,738
   files the builder skips. The builder skips every file without "JFIF" in its
   first 10 bytes (`tensorflow_datasets/image_classification/cats_vs_dogs.py`);
   the real skipped files are mostly JPEGs with an Exif header instead of a JFIF
   one, so these are too, with two empty files and a few PNG, BMP and GIF files
   named `.jpg`. Written with a pool of `--workers` processes into `--workdir`,
   and reused from there when it is already complete (never committed).
2. **Prepare** it with the real `cats_vs_dogs` builder (its download replaced by
   the fake zip), into `<workdir>/tfds`; timed, reported, not one of the targets.
3. **Measure**, in a fresh process per cache mode so that each peak is its own:
   `study.load_data(get_config("default", data="tfds", cache_dir=...))` with
   `TFDS_DATA_DIR` pointing at the prepared copy. `load_data` is the first pass:
   it reads, decodes, resizes and caches all three splits (23,262 photos) before
   it returns. Then one shuffled pass over the training split and one over
   validation + test, from the cache (what every epoch costs), and
   `study.take_photos` of the 22 test photos the figures draw. Peak resident
   memory is `getrusage(RUSAGE_SELF).ru_maxrss` of that process.

Targets (issue 10, on a 2-core machine): peak <= 6 GiB with the cache in memory
(Colab's free runtime has 12.7 GB for everything), <= 2.5 GiB with the file
cache, first pass >= 300 photos/s.

Usage (from the repository root; the full scale takes 20-40 minutes on 2 cores):

    python benchmarks/bench_memory.py                                  # full scale
    python benchmarks/bench_memory.py --num-photos 500 --workdir /tmp/bench_memory_small

It writes `benchmarks/results/memory.json` (git-ignored) and `memory.md` (a
summary to commit); `--output` changes where. The load average is recorded at
the start and the end of every step: other processes slow every figure.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import random
import resource
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = REPO_ROOT.parent / "shared" / "data" / "cats_vs_dogs_small"
DEFAULT_WORKDIR = Path("/tmp/catsdogs_bench_memory")
DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "results" / "memory.json"
ZIP_NAME = "kagglecatsanddogs_5340.zip"
NUM_PHOTOS = 23_262  # What cats_vs_dogs keeps of the real download's 25,000 files.
NUM_SKIPPED = 1_738  # The builder checks that exactly this many files are skipped.
NUM_DRAWN = 22  # The figures draw at most 22 test photos: 6 mistakes of each of 3 models, 4 for Grad-CAM.
TARGETS = {"memory_peak_gib": 6.0, "files_peak_gib": 2.5, "first_pass_photos_per_second": 300.0}
GENERATOR_VERSION = 1  # Bump when the generated files change, so that an old work folder is not reused.
_CHUNK = 250


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help=f"Work folder. Defaults to {DEFAULT_WORKDIR}.")
    parser.add_argument(
        "--num-photos",
        type=int,
        default=NUM_PHOTOS,
        help=f"Decodable photos in the fake download. Default {NUM_PHOTOS}.",
    )
    parser.add_argument(
        "--photos",
        default=str(DEFAULT_PHOTOS),
        help="Real photos to re-encode. Defaults to ../shared/data/cats_vs_dogs_small.",
    )
    parser.add_argument("--workers", type=int, default=2, help="Processes generating photos. Defaults to 2.")
    parser.add_argument(
        "--modes", default="memory,files", help="Cache modes to measure, comma-separated. Defaults to memory,files."
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the generated photos. Defaults to 0.")
    parser.add_argument(
        "--output", default=str(DEFAULT_OUTPUT), help="JSON results (a .md summary is written beside it)."
    )
    parser.add_argument("--child", choices=("prepare", "measure"), help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("memory", "files"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------- step 1: the fake download


def _plan(num_photos: int, seed: int) -> list[tuple[str, int, str, int]]:
    """Returns `(folder, number, kind, seed)` for every file of the download, in a fixed order.

    Files are numbered like the real ones, `Cat/0.jpg` ... `Dog/12499.jpg` at full
    scale; the skipped ones sit at random numbers among them.
    """
    total = num_photos + NUM_SKIPPED
    rng = random.Random(seed)
    skipped = set(rng.sample(range(total), NUM_SKIPPED))
    special = ["empty"] * 2 + ["png"] * 10 + ["bmp"] * 5 + ["gif"] * 5
    kinds_of_skipped = special + ["exif"] * (NUM_SKIPPED - len(special))
    rng.shuffle(kinds_of_skipped)
    kinds = iter(kinds_of_skipped)
    plan = []
    for position in range(total):
        folder, number = ("Cat", position // 2) if position % 2 == 0 else ("Dog", position // 2)
        kind = next(kinds) if position in skipped else "photo"
        plan.append((folder, number, kind, seed * 1_000_003 + position))
    return plan


_SOURCES: dict[str, list[str]] = {}


def _sources(photos: str) -> dict[str, list[str]]:
    if not _SOURCES:
        for folder, class_name in (("Cat", "cat"), ("Dog", "dog")):
            _SOURCES[folder] = sorted(str(path) for path in Path(photos).glob(f"*/{class_name}/*.jpg"))
    return _SOURCES


def _make_file(photos: str, folder: str, kind: str, seed: int) -> bytes:
    """Returns one file's bytes: a re-encoded real photo, or a file the builder skips."""
    from PIL import Image, ImageOps

    if kind == "empty":
        return b""
    rng = random.Random(seed)
    with Image.open(rng.choice(_sources(photos)[folder])) as source:
        image = source.convert("RGB")
    width, height = image.size
    crop_width, crop_height = round(width * rng.uniform(0.8, 1.0)), round(height * rng.uniform(0.8, 1.0))
    left, top = rng.randint(0, width - crop_width), rng.randint(0, height - crop_height)
    image = image.crop((left, top, left + crop_width, top + crop_height)).resize((width, height), Image.BILINEAR)
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    buffer = io.BytesIO()
    if kind in ("png", "bmp", "gif"):
        image.save(buffer, format=kind.upper())
        return buffer.getvalue()
    image.save(buffer, format="JPEG", quality=rng.randint(75, 95))
    data = buffer.getvalue()
    if kind == "exif":  # The JFIF APP0 segment replaced by an Exif APP1 one: a valid JPEG the builder skips.
        assert data[:4] == b"\xff\xd8\xff\xe0", data[:4]
        app0_end = 4 + int.from_bytes(data[4:6], "big")
        exif = Image.Exif()
        exif[0x0110] = "fake camera"  # Model
        payload = b"Exif\x00\x00" + exif.tobytes()
        data = b"\xff\xd8\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + data[app0_end:]
    return data


def _make_chunk(job: tuple[str, list[tuple[str, int, str, int]]]) -> list[tuple[str, bytes]]:
    photos, items = job
    return [
        (f"PetImages/{folder}/{number}.jpg", _make_file(photos, folder, kind, seed))
        for folder, number, kind, seed in items
    ]


def generate_download(workdir: Path, num_photos: int, photos: str, workers: int, seed: int) -> dict[str, object]:
    """Writes `<workdir>/download/kagglecatsanddogs_5340.zip`, or reuses a complete one made alike."""
    import multiprocessing

    folder = workdir / "download"
    archive, manifest_path = folder / ZIP_NAME, folder / "manifest.json"
    manifest = {"num_photos": num_photos, "num_skipped": NUM_SKIPPED, "seed": seed, "version": GENERATOR_VERSION}
    if archive.exists() and manifest_path.exists() and json.loads(manifest_path.read_text())["made"] == manifest:
        print(f"Reusing the fake download {archive}", flush=True)
        return {**json.loads(manifest_path.read_text()), "reused": True}
    if not any(_sources(photos).values()):
        raise SystemExit(f"No photos to re-encode under {photos}/*/{{cat,dog}}/*.jpg. Received: --photos {photos}")
    folder.mkdir(parents=True, exist_ok=True)
    plan = _plan(num_photos, seed)
    jobs = [(photos, plan[start : start + _CHUNK]) for start in range(0, len(plan), _CHUNK)]
    print(f"Generating {len(plan):,} files ({num_photos:,} photos + {NUM_SKIPPED:,} skipped) into {archive} ...")
    load_start, start = os.getloadavg()[0], time.perf_counter()
    partial = archive.with_suffix(".partial")
    photo_bytes = 0
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as zipped, multiprocessing.Pool(workers) as pool:
        zipped.writestr("readme[1].txt", b"A fake download for benchmarks/bench_memory.py.")
        for done, files in enumerate(pool.imap(_make_chunk, jobs), start=1):
            for name, data in files:
                zipped.writestr(name, data)
                photo_bytes += len(data)
            if done % 10 == 0 or done == len(jobs):
                print(f"  {min(done * _CHUNK, len(plan)):,} / {len(plan):,} files", flush=True)
    partial.rename(archive)
    seconds = time.perf_counter() - start
    record = {
        "made": manifest,
        "seconds": seconds,
        "bytes": archive.stat().st_size,
        "mean_file_kib": photo_bytes / len(plan) / 1024,
        "load_average": [load_start, os.getloadavg()[0]],
    }
    manifest_path.write_text(json.dumps(record, indent=2) + "\n")
    return {**record, "reused": False}


# ---------------------------------------------------------------- step 2: the real builder


def prepare_in_child(workdir: Path) -> None:
    """Runs the real `cats_vs_dogs` builder on the fake download (in its own process)."""
    from unittest import mock

    import tensorflow_datasets as tfds

    archive = str(workdir / "download" / ZIP_NAME)
    with mock.patch.object(tfds.download.DownloadManager, "download", lambda self, url_or_urls: archive):
        builder = tfds.builder("cats_vs_dogs", data_dir=str(workdir / "tfds"))
        builder.download_and_prepare()
    print(f"Prepared {builder.info.splits['train'].num_examples} photos", flush=True)


def prepare(workdir: Path, download: dict[str, object]) -> dict[str, object]:
    """Prepares the fake download with the real builder, or reuses the copy prepared from that same download."""
    marker = workdir / "tfds" / "prepared.json"
    if download["reused"] and marker.exists():
        print(f"Reusing the prepared copy in {workdir / 'tfds'}", flush=True)
        return {**json.loads(marker.read_text()), "reused": True}
    shutil.rmtree(workdir / "tfds", ignore_errors=True)
    print("Preparing cats_vs_dogs with the real tfds builder ...", flush=True)
    load_start, start = os.getloadavg()[0], time.perf_counter()
    _run_child(["--child", "prepare", "--workdir", str(workdir)])
    record = {
        "seconds": time.perf_counter() - start,
        "bytes": sum(path.stat().st_size for path in (workdir / "tfds").rglob("*") if path.is_file()),
        "load_average": [load_start, os.getloadavg()[0]],
    }
    marker.write_text(json.dumps(record, indent=2) + "\n")
    return {**record, "reused": False}


# ---------------------------------------------------------------- step 3: the study's data path


def _rss_gib() -> float:
    """The process's resident memory now, in GiB (Linux), or NaN."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def _peak_gib() -> float:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1024**3


def _cpu_seconds() -> float:
    """CPU time of this process so far, every thread, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _full_pass(dataset) -> tuple[int, float]:
    start, num_images = time.perf_counter(), 0
    for images, _ in dataset:
        num_images += int(images.shape[0])
    return num_images, time.perf_counter() - start


def measure_in_child(workdir: Path, mode: str) -> dict[str, object]:
    """Runs the `default` preset's data path in this process; returns the figures."""
    load_start = os.getloadavg()[0]
    cache_dir = workdir / "cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    from catsdogs_helpers import runtime, study
    from catsdogs_helpers.config import get_config

    runtime.prefer_bfc_cpu_allocator()  # As `study.start_study` does (since 0.4.2), before any TensorFlow operation.
    config = get_config(
        "default", data="tfds", cache_dir=str(cache_dir) if mode == "files" else None, output_dir=str(workdir / "out")
    )
    baseline = _rss_gib()
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    splits = study.load_data(config, verbose=False)
    first_seconds, first_cpu_seconds = time.perf_counter() - start, _cpu_seconds() - cpu_start
    num_photos = sum(splits.num_images(split) for split in ("train", "validation", "test"))
    after_load = {"rss_gib": _rss_gib(), "peak_gib": _peak_gib()}
    num_train, train_seconds = _full_pass(splits.train)
    num_validation, validation_seconds = _full_pass(splits.validation)
    num_test, test_seconds = _full_pass(splits.test)
    after_passes = {"rss_gib": _rss_gib(), "peak_gib": _peak_gib()}
    drawn = random.Random(0).sample(range(num_test), min(NUM_DRAWN, num_test))
    start = time.perf_counter()
    taken = study.take_photos(splits.test, drawn)
    take_seconds = time.perf_counter() - start
    cache_bytes = sum(path.stat().st_size for path in cache_dir.glob("*") if path.is_file()) if mode == "files" else 0
    shutil.rmtree(cache_dir, ignore_errors=True)
    return {
        "mode": mode,
        "cpu_allocator": runtime.describe_cpu_allocator(),
        "cache_dir": config.cache_dir,
        "counts": splits.counts,
        "num_skipped": len(splits.skipped),
        "rss_gib_after_imports": baseline,
        "first_pass": {
            "what": "study.load_data: read, decode, resize and cache all three splits",
            "photos": num_photos,
            "seconds": first_seconds,
            "photos_per_second": num_photos / first_seconds,
            "cpu_seconds": first_cpu_seconds,
            "cores_busy": first_cpu_seconds / first_seconds,
            "photos_per_cpu_second": num_photos / first_cpu_seconds,
            **after_load,
        },
        "cached_train_pass": {
            "photos": num_train,
            "seconds": train_seconds,
            "photos_per_second": num_train / train_seconds,
        },
        "cached_validation_test_pass": {
            "photos": num_validation + num_test,
            "seconds": validation_seconds + test_seconds,
            "photos_per_second": (num_validation + num_test) / (validation_seconds + test_seconds),
        },
        "after_cached_passes": after_passes,
        "take_photos": {"photos": len(taken), "seconds": take_seconds, "rss_gib": _rss_gib()},
        "peak_gib": _peak_gib(),
        "file_cache_gib": cache_bytes / 1024**3,
        "load_average": [load_start, os.getloadavg()[0]],
    }


def _run_child(arguments: list[str], env: dict[str, str] | None = None) -> str:
    command = [sys.executable, str(Path(__file__).resolve()), *arguments]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    process = subprocess.run(command, env=environment, cwd=REPO_ROOT, capture_output=True, text=True)
    if process.returncode != 0:
        raise SystemExit(f"{shlex.join(arguments)} failed ({process.returncode}):\n{process.stderr[-4000:]}")
    return process.stdout


def measure(workdir: Path, mode: str) -> dict[str, object]:
    print(f"Measuring the {mode} cache in a fresh process ...", flush=True)
    env = {"TFDS_DATA_DIR": str(workdir / "tfds"), "PYTHONPATH": str(REPO_ROOT)}
    output = _run_child(["--child", "measure", "--mode", mode, "--workdir", str(workdir)], env)
    return json.loads(output.strip().splitlines()[-1])


# ---------------------------------------------------------------- the report


def _targets(modes: dict[str, dict]) -> dict[str, dict[str, object]]:
    met = {}
    for mode, result in modes.items():
        limit = TARGETS[f"{mode}_peak_gib"]
        met[f"{mode}_peak_gib"] = {
            "target": f"<= {limit}",
            "value": result["peak_gib"],
            "met": result["peak_gib"] <= limit,
        }
        rate, floor = result["first_pass"]["photos_per_second"], TARGETS["first_pass_photos_per_second"]
        met[f"{mode}_first_pass_photos_per_second"] = {"target": f">= {floor:.0f}", "value": rate, "met": rate >= floor}
    return met


def format_table(result: dict[str, object]) -> str:
    machine = result["machine"]
    lines = [
        f"Data path of the default preset on a fake cats_vs_dogs download "
        f"({result['download']['made']['num_photos']:,} photos + {NUM_SKIPPED:,} skipped files), "
        f"{machine['cpu_count']} CPU cores, TensorFlow {machine['tensorflow']}",
        f"  fake download: {result['download']['bytes'] / 1024**2:,.0f} MiB, generated in "
        f"{result['download']['seconds']:.0f} s{' (reused)' if result['download']['reused'] else ''}",
        f"  tfds builder (download_and_prepare): {result['prepare']['seconds']:.0f} s, "
        f"{result['prepare']['bytes'] / 1024**2:,.0f} MiB{' (reused)' if result['prepare']['reused'] else ''}",
        "",
        f"  {'cache':<7} {'photos':>7} {'first pass s':>12} {'photos/s':>9} {'cached epoch s':>14} {'peak GiB':>9} "
        f"{'RSS after load':>14} {'cores busy':>10} {'photos/CPU-s':>12} {'load avg':>11}",
    ]
    for mode, item in result["modes"].items():
        first = item["first_pass"]
        load = "{:.1f} -> {:.1f}".format(*item["load_average"])
        lines.append(
            f"  {mode:<7} {first['photos']:>7,} {first['seconds']:>12.1f} {first['photos_per_second']:>9.0f} "
            f"{item['cached_train_pass']['seconds']:>14.1f} {item['peak_gib']:>9.2f} {first['rss_gib']:>14.2f} "
            f"{first['cores_busy']:>10.2f} {first['photos_per_cpu_second']:>12.0f} {load:>11}"
        )
    lines.append("")
    for name, target in result["targets"].items():
        verdict = "met" if target["met"] else "MISSED"
        lines.append(f"  {name:<40} {target['value']:>8.2f}  target {target['target']:<7} {verdict}")
    lines.append(f"\n  command: {result['command']}")
    return "\n".join(lines)


def format_markdown(result: dict[str, object]) -> str:
    machine = result["machine"]
    rows = []
    for mode, item in result["modes"].items():
        first = item["first_pass"]
        rows.append(
            f"| {mode} | {first['photos']:,} | {first['seconds']:.1f} | {first['photos_per_second']:.0f} | "
            f"{item['cached_train_pass']['seconds']:.1f} | {first['rss_gib']:.2f} | **{item['peak_gib']:.2f}** | "
            f"{item['take_photos']['seconds']:.1f} | {first['cores_busy']:.2f} | "
            f"{first['photos_per_cpu_second']:.0f} | "
            f"{item['load_average'][0]:.1f} → {item['load_average'][1]:.1f} |"
        )
    targets = [
        f"| {name} | {target['target']} | {target['value']:.2f} | {'met' if target['met'] else '**missed**'} |"
        for name, target in result["targets"].items()
    ]
    download, prepared = result["download"], result["prepare"]
    return "\n".join(
        [
            "# Memory and first pass of the default preset at full scale",
            "",
            f"Measured {result['date']} on {machine['cpu_count']} CPU cores ({machine['platform']}), no GPU, "
            f"TensorFlow {machine['tensorflow']}, shared with other jobs (load averages in the table).",
            "",
            "```",
            result["command"],
            "```",
            "",
            f"Fake download: {download['made']['num_photos']:,} photos re-encoded from the real photos of "
            f"`cats_vs_dogs_small` at their own sizes (mean file {download['mean_file_kib']:.0f} KiB) + "
            f"{NUM_SKIPPED:,} files the builder skips, {download['bytes'] / 1024**2:,.0f} MiB; prepared by the real "
            f"tfds builder in {prepared['seconds']:.0f} s ({prepared['bytes'] / 1024**2:,.0f} MiB).",
            "",
            "| cache | photos | first pass (s) | photos/s | cached train epoch (s) | RSS after load (GiB) | "
            "peak RSS (GiB) | take 22 test photos (s) | cores busy in the first pass | photos per CPU-second | "
            "load average |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            *rows,
            "",
            "| target | wanted | measured | |",
            "|---|---|---:|---|",
            *targets,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(args.workdir)
    if args.child == "prepare":
        prepare_in_child(workdir)
        return 0
    if args.child == "measure":
        print(json.dumps(measure_in_child(workdir, args.mode)))
        return 0
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if not modes or set(modes) - {"memory", "files"}:
        raise SystemExit(f"--modes takes memory, files or both. Received: --modes {args.modes}")
    if args.num_photos < 30:
        raise SystemExit(f"--num-photos must be at least 30. Received: --num-photos {args.num_photos}")
    from importlib.metadata import version

    command = "python " + shlex.join(
        [os.path.relpath(__file__, REPO_ROOT), *(argv if argv is not None else sys.argv[1:])]
    )
    load_start = os.getloadavg()[0]
    download = generate_download(workdir, args.num_photos, args.photos, args.workers, args.seed)
    prepared = prepare(workdir, download)
    results = {mode: measure(workdir, mode) for mode in modes}
    result = {
        "command": command,
        "date": datetime.date.today().isoformat(),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "tensorflow": version("tensorflow"),
            "load_average": [load_start, os.getloadavg()[0]],
        },
        "download": download,
        "prepare": prepared,
        "modes": results,
        "targets": _targets(results),
    }
    print(format_table(result))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    output.with_suffix(".md").write_text(format_markdown(result))
    print(f"  written to {output} and {output.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
