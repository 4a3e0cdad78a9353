"""A training stage's folder (manifest, history, best weights, backup, result), and reading it back."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import warnings
from pathlib import Path

import keras

from catsdogs_helpers.checkpoints import PREVIOUS_BACKUP_DIR, recover_backup, unreadable_file
from catsdogs_helpers.output_lock import PARTIAL_PREFIX, write_text_atomically, written_atomically

RESULT_FILE = "result.json"
MANIFEST_FILE = "manifest.json"
BEST_WEIGHTS_FILE = "best.weights.h5"
LOG_FILE = "history.csv"
BACKUP_DIR = "backup"


@dataclasses.dataclass
class StageResult:
    """What a training stage did and what it cost.

    Attributes:
        history: Per-epoch values (`"epoch"`, `"loss"`, `"val_loss"`, ..., `"epoch_seconds"`), across interruptions.
        train_seconds: Wall time of the stage, feature extraction included.
        best_epoch: Index of the epoch whose weights were kept.
    """

    name: str
    history: dict[str, list[float]]
    train_seconds: float
    images_per_second: float
    best_epoch: int

    @property
    def num_epochs(self) -> int:
        """Number of epochs run."""
        return len(self.history.get("epoch", []))

    def to_dict(self) -> dict[str, object]:
        """Returns the result as a JSON-serializable dictionary."""
        return dataclasses.asdict(self)


def read_history(path: str | Path) -> dict[str, list[float]]:
    """Reads a `CSVLogger` file into `{"epoch": [...], "loss": [...], ...}`."""
    history: dict[str, list[float]] = {}
    path = Path(path)
    if not path.exists():
        return history
    for row in _complete_rows(path)[1]:
        for key, value in row.items():
            history.setdefault(key, []).append(int(value) if key == "epoch" else float(value))
    return history


def _complete_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Returns a `CSVLogger` file's columns and its complete rows (a row cut by a kill or a full disk is left out)."""
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        fields = list(reader.fieldnames or [])

    def complete(row: dict[str, str | None]) -> bool:
        try:
            [float(row[key]) for key in fields]  # A value missing (None) or cut short ("0.6e") raises.
        except (TypeError, ValueError):
            return False
        return None not in row  # No extra values (two rows run together).

    return fields, [row for row in rows if complete(row)]


def merge_histories(*histories: dict[str, list[float]]) -> dict[str, list[float]]:
    """Concatenates the histories of consecutive stages; keys missing from a stage are filled with NaN."""
    keys = list(dict.fromkeys(key for history in histories for key in history))
    merged: dict[str, list[float]] = {key: [] for key in keys}
    for history in histories:
        length = len(history.get("epoch", next(iter(history.values()), [])))
        for key in keys:
            merged[key].extend(history.get(key, [math.nan] * length))
    return merged


def _keep_history_before(path: Path, epoch: int) -> None:
    """Rewrites a `CSVLogger` file without its rows for epochs from `epoch` on (they are trained again)."""
    if not path.exists():
        return
    fields, rows = _complete_rows(path)
    with written_atomically(path) as temporary, temporary.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(row for row in rows if int(float(row["epoch"])) < epoch)


def _remove_stage_files(stage_dir: Path) -> None:
    """Removes what an earlier, different run of a stage wrote; only files this module names."""
    names = [RESULT_FILE, BEST_WEIGHTS_FILE, LOG_FILE, MANIFEST_FILE]
    names += [PARTIAL_PREFIX + name for name in names]
    backup = ["latest.weights.h5", "training_metadata.json", "latest.weights.h5.bkp", "training_metadata.json.bkp"]
    folders = [stage_dir / name for name in (BACKUP_DIR, PREVIOUS_BACKUP_DIR, PARTIAL_PREFIX + BACKUP_DIR)]
    for path in [stage_dir / name for name in names] + [folder / name for folder in folders for name in backup]:
        path.unlink(missing_ok=True)
    for folder in folders:
        with contextlib.suppress(OSError):  # Left where it holds a file this module did not write.
            folder.rmdir()


def load_best_weights(model: keras.Model, path: Path) -> None:
    """Loads a checkpoint's weights; its optimizer state, unused here, may not match the model's."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(path)


def normalize_manifest(manifest: dict[str, object] | None) -> dict[str, object]:
    """The manifest as its JSON file holds it: `None` as `{}`, a value JSON cannot hold as its text."""
    return json.loads(json.dumps(manifest or {}, default=str))


def read_manifest(stage_dir: Path) -> dict[str, object] | None:
    """The manifest an earlier run wrote into the stage's folder, or `None` if there is none or it cannot be read."""
    try:
        return json.loads((stage_dir / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None


def _flatten(value: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, object] = {}
    for key, item in value.items():
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def describe_changes(before: dict[str, object], after: dict[str, object]) -> str:
    """Describes how two manifests differ.

    >>> describe_changes({"settings": {"epochs": 3, "seed": 1}}, {"settings": {"epochs": 5, "seed": 1}})
    'settings.epochs: 3 -> 5'
    """
    old, new = _flatten(before), _flatten(after)
    missing = object()
    changes = [
        f"{key}: {old.get(key, 'absent')} -> {new.get(key, 'absent')}"
        for key in dict.fromkeys([*old, *new])
        if old.get(key, missing) != new.get(key, missing)
    ]
    return "; ".join(changes) or "none"


def prepare_stage_dir(
    name: str, stage_dir: Path, manifest: dict[str, object] | None, initial_epoch: int, verbose: int
) -> dict[str, list[float]]:
    """Empties a stage's folder unless an earlier run with this manifest can be resumed; returns the history kept."""
    manifest = normalize_manifest(manifest)
    backup_dir, log_path, best_path = stage_dir / BACKUP_DIR, stage_dir / LOG_FILE, stage_dir / BEST_WEIGHTS_FILE
    earlier = read_manifest(stage_dir)
    same_run = earlier == manifest
    recover_backup(backup_dir)
    resuming = same_run and backup_dir.exists() and log_path.exists()
    backup = [backup_dir / "training_metadata.json", backup_dir / "latest.weights.h5"]
    unreadable = unreadable_file(backup + [best_path] * best_path.exists()) if resuming else None
    if unreadable is not None:
        resuming = False
        print(f"[{name}] {unreadable} cannot be read (a write cut short by a kill or a full disk): training this "
              "stage from the start.")  # fmt: skip
    if earlier is not None and not same_run and verbose:
        print(f"[{name}] an earlier run in {stage_dir} had other settings ({describe_changes(earlier, manifest)}): "
              "training this stage from the start.")  # fmt: skip
    if not resuming:
        _remove_stage_files(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomically(stage_dir / MANIFEST_FILE, json.dumps(manifest, indent=1))
    if resuming:  # The backup's epochs, which `unreadable_file` checked.
        _keep_history_before(log_path, json.loads(backup[0].read_text())["epoch"])
    previous = read_history(log_path)
    if resuming and verbose:
        print(f"[{name}] resuming after epoch {previous['epoch'][-1] + 1 if previous else initial_epoch}.")
    return previous


def load_finished_stage(
    model: keras.Model,
    name: str,
    output_dir: str | Path,
    manifest: dict[str, object] | None = None,
    verbose: int = 1,
) -> StageResult | None:
    """Loads the best weights and result of a stage that finished in an earlier run with an equal manifest; returns its
    `StageResult`, or `None` if it has not finished with these settings."""
    stage_dir = Path(output_dir) / name
    result_path, best_path = stage_dir / RESULT_FILE, stage_dir / BEST_WEIGHTS_FILE
    if not (result_path.exists() and best_path.exists()):
        return None
    if read_manifest(stage_dir) != normalize_manifest(manifest):
        return None
    unreadable = unreadable_file([result_path, best_path])
    result = _read_stage_result(result_path) if unreadable is None else None
    if result is None:
        print(f"[{name}] {unreadable or result_path} cannot be read (a write cut short by a kill or a full disk): "
              "training this stage again.")  # fmt: skip
        # Removed, so that a second look (the cached-features head's, then `train_stage`'s) says nothing again.
        with contextlib.suppress(OSError):
            result_path.unlink()
        return None
    load_best_weights(model, best_path)
    if verbose:
        print(
            f"[{name}] finished in an earlier run: loaded its best weights from {best_path} "
            f"(delete {stage_dir} to train again)."
        )
    return result


def _read_stage_result(path: Path) -> StageResult | None:
    """Reads a stage's `result.json`, or returns `None` if it is missing, cut short or of another shape."""
    try:
        result = StageResult(**json.loads(path.read_text())["result"])
    except (OSError, ValueError, KeyError, TypeError):
        return None

    def number(value: object, kind: type | tuple[type, ...] = (int, float)) -> bool:
        return isinstance(value, kind) and not isinstance(value, bool)

    history = result.history
    well_formed = (
        isinstance(result.name, str)
        and isinstance(history, dict)
        and isinstance(history.get("epoch"), list)
        and all(isinstance(values, list) and len(values) == len(history["epoch"]) for values in history.values())
        and all(number(value) for values in history.values() for value in values)
        and number(result.train_seconds)
        and number(result.images_per_second)
        and number(result.best_epoch, int)
    )
    return result if well_formed else None
