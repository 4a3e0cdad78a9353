"""Whole runs killed with SIGKILL or on a full disk: each rerun finishes the work (tests/test_safe_writes.py: the
writes, the unreadable files and the closed streams one at a time).

What is killed, or may crash on a full disk, runs in a process of its own, which ends without ending pytest;
the runs that must succeed, and the injected ENOSPC, run in this one. The small disk is a tmpfs mounted for the
test (skipped where mounting is refused: the injected-ENOSPC test stands in).
"""

import errno
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import photo_factory
import pytest
from conftest import run_cli
from model_factory import tiny_saved_model

from catsdogs_helpers import cli, exit_status, stage_files
from catsdogs_helpers.config import get_config


@pytest.mark.slow
def test_a_full_disk_while_training_is_one_line_exit_2_and_the_same_command_finishes(tmp_path, capsys, monkeypatch):
    """An injected ENOSPC (for machines where no small disk can be mounted; see the tmpfs test below)."""
    photos = photo_factory.make_presplit_folder(tmp_path / "photos")
    output = tmp_path / "out"
    real_save = keras.Model.save_weights

    def save_to_a_full_disk(self, path, *args, **kwargs):
        if "backup" in str(path) and "transfer" in str(path):  # The transfer stage's first backup.
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(self, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", save_to_a_full_disk)
    argv = ["run", "--preset", "smoke", "--data", str(photos), "--weights", "none", "--output", str(output)]
    assert cli.main(argv) == exit_status.EXIT_USER_ERROR
    assert capsys.readouterr().err == (
        f"error: Cannot write {output / 'transfer' / 'backup'}: No space left on device (ENOSPC). Free some space "
        "(or write elsewhere) and run the same command again: the work already saved is kept.\n"
    )
    assert not (output / "transfer" / "backup").exists() and (output / "scratch" / "result.json").is_file()
    monkeypatch.undo()
    assert cli.main(argv) == 0
    assert "[scratch] finished in an earlier run" in capsys.readouterr().out
    assert json.loads((output / "results.json").read_text())["models"].keys() == {"scratch", "transfer", "finetuned"}


# The kill test: a short study (4 + 3 + 2 epochs of the smoke preset) killed at each of these moments in turn,
# each rerun resuming what the one before left. A moment is a file (or folder) of the output folder, as a glob,
# that the running process has started to write, and the seconds to wait after seeing it. The names match both
# a file written in place and its temporary name while it is written, so the kills land in the middle of writes:
# a backup's epoch and its weights, a best checkpoint, a stage's result and the results, in each kind of stage
# (trained end to end, the head on cached features, fine-tuning). Models, figures and the report are written by
# the same `output_lock.written_atomically` as the results (its own tests are in test_safe_writes.py).
KILL_MOMENTS = [
    ("scratch/*backup*/training_metadata.json", 0.0),
    ("scratch/*best*", 0.0),
    ("transfer/*backup*/latest.weights.h5", 0.005),
    ("finetuned/*result.json", 0.0),
    ("*results.json", 0.0),
]
SHORT_STUDY = {"scratch_epochs": 4, "transfer_epochs": 3, "fine_tune_epochs": 2, "patience": 10}
# What the uninterrupted study trains (patience 10: no stage stops early); fine-tuning continues the head's count.
UNINTERRUPTED_EPOCHS = {"scratch": [0, 1, 2, 3], "transfer": [0, 1, 2], "finetuned": [3, 4]}


def _started_writing(root: Path, pattern: str, since_ns: int) -> bool:
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = os.path.join(folder, name)
            if fnmatch.fnmatch(os.path.relpath(path, root), pattern):
                try:
                    if os.stat(path).st_mtime_ns >= since_ns:
                        return True
                except FileNotFoundError:  # Renamed or removed since it was listed.
                    continue
    return False


def _run_until(command: list[str], output: Path, pattern: str, delay: float, log: Path) -> str:
    """Runs the command and kills it (SIGKILL) once it starts writing `pattern`; returns "killed" or its exit."""
    since = time.time_ns()
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, stdin=subprocess.DEVNULL)
        while process.poll() is None:
            if _started_writing(output, pattern, since):
                time.sleep(delay)
                process.send_signal(signal.SIGKILL)
                process.wait()
                return "killed"
            time.sleep(0.002)
    return f"exit {process.returncode}"


@pytest.mark.slow
def test_a_study_killed_at_many_moments_finishes_as_an_uninterrupted_one(tmp_path, capsys):
    """Resumed training is not bit for bit the run it continues: a resumed epoch draws its shuffle and its
    augmentation anew (measured: an uninterrupted rerun is identical, a resumed one differs from the killed
    epoch on). So "the same result" is what resuming promises: every rerun ends in no traceback, the last one
    finishes, every stage has exactly the epochs of the uninterrupted run (none lost, none repeated), the
    results hold every model scored on every test photo with the settings asked for, the saved model is the one
    scored, and nothing half-written or temporary is left."""
    photos = photo_factory.make_presplit_folder(tmp_path / "photos")
    script = Path(sys.executable).parent / "catsdogs"
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "catsdogs_helpers"]
    killed = tmp_path / "killed"
    settings = [item for name, value in SHORT_STUDY.items() for item in ("--set", f"{name}={value}")]
    argv = ["run", "--preset", "smoke", "--data", str(photos), "--weights", "none", *settings, "--output", str(killed)]
    outcomes = []
    for index, (pattern, delay) in enumerate(KILL_MOMENTS):
        log = tmp_path / f"stderr-{index}.txt"
        outcomes.append(_run_until([*base, *argv], killed, pattern, delay, log))
        assert "Traceback" not in log.read_text() and "This is a bug" not in log.read_text(), (pattern, log.read_text())
        assert outcomes[-1] in ("killed", "exit 0"), (pattern, outcomes[-1], log.read_text()[-2000:])
    assert outcomes.count("killed") >= len(KILL_MOMENTS) - 1, outcomes
    assert cli.main(argv) == 0  # The last rerun, in this process.
    assert "Traceback" not in capsys.readouterr().err

    for stage, epochs in UNINTERRUPTED_EPOCHS.items():
        assert json.loads((killed / stage / "result.json").read_text())["result"]["history"]["epoch"] == epochs
        assert stage_files.read_history(killed / stage / "history.csv")["epoch"] == epochs
    found = json.loads((killed / "results.json").read_text())
    assert list(found["models"]) == ["scratch", "transfer", "finetuned"]
    assert {name: model["epochs"] for name, model in found["models"].items()} == {"scratch": 4, "transfer": 3,
                                                                                  "finetuned": 5}  # fmt: skip
    assert {model["num_test_images"] for model in found["models"].values()} == {8}  # 4 cats and 4 dogs.
    expected = get_config("smoke", data=str(photos), weights=None, output_dir=str(killed)).replace(**SHORT_STUDY)
    assert found["config"] == json.loads(json.dumps(expected.to_dict()))
    capsys.readouterr()
    assert cli.main(["evaluate", "--model", str(killed / "finetuned.keras"), "--data", str(photos)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["metrics"]["accuracy"] == found["models"]["finetuned"]["test"]["accuracy"]
    left = [path.name for path in killed.rglob("*") if path.name.startswith(".partial-") or "backup" in path.name]
    assert left == []


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs mounted for the test, and `resize(size)` to free space; skipped where mounting is refused."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], capture_output=True,
                             text=True, check=False) if shutil.which("mount") else None  # fmt: skip
    if mounted is None or mounted.returncode != 0:
        reason = "no mount command" if mounted is None else mounted.stderr.strip()
        pytest.skip(f"cannot mount a small tmpfs here ({reason}); the injected-ENOSPC tests stand in")

    def resize(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)

    try:
        yield folder, resize
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _one_line_about_a_full_disk(process: subprocess.CompletedProcess, path: Path, says: str = "No space") -> None:
    assert process.returncode == exit_status.EXIT_USER_ERROR, (process.returncode, process.stderr[-3000:])
    assert process.stderr.count("\n") == 1, process.stderr[-3000:]
    assert process.stderr.startswith(f"error: Cannot write {path}") and f": {says}" in process.stderr


@pytest.mark.slow
def test_read_only_and_full_disks_are_one_line_exit_2_and_the_same_commands_work_once_space_is_freed(
    tmp_path, small_disk, capsys
):
    """An export and a run whose cache and output are on a small disk: refused in one line (exit 2) on a read-only
    disk, on a full one, and (the run) on one too small for its models; each same command works once there is
    space. The run's failures once ended in "This is a bug" (the cache) and a segmentation fault after h5py's
    traceback (the models): those run in processes of their own; what must succeed runs in this one."""
    disk, resize = small_disk
    model = str(tiny_saved_model(tmp_path / "model.keras"))
    artifact = disk / "exported" / "model.tflite"
    export_command = ("export", "--model", model, "--format", "litert", "--output", str(artifact))
    resize("3m,ro")
    assert cli.main(list(export_command)) == exit_status.EXIT_USER_ERROR  # Preflight's check, before exporting.
    refused = capsys.readouterr().err
    assert refused.count("\n") == 1 and str(artifact.parent) in refused and "Read-only file system" in refused
    resize("3m,rw")
    filler = disk / "filler"
    with filler.open("wb") as file, pytest.raises(OSError, match="No space left"):
        while True:  # Fills the disk.
            file.write(b"\0" * 65536)
            file.flush()
    _one_line_about_a_full_disk(run_cli(*export_command), artifact)
    assert not artifact.exists() and not list(disk.rglob("*.json"))
    photos = photo_factory.make_presplit_folder(tmp_path / "photos")
    run_command = ("run", "--preset", "smoke", "--data", str(photos), "--weights", "none", "--output",
                   str(disk / "out"), "--set", f"cache_dir={disk / 'cache'}")  # fmt: skip
    _one_line_about_a_full_disk(run_cli(*run_command), disk / "cache")  # The cache is written first.
    filler.unlink()
    assert cli.main(list(export_command)) == 0 and artifact.with_name("model.tflite.contract.json").is_file()
    _one_line_about_a_full_disk(run_cli(*run_command), disk / "out")  # The cache fits in 3 MB, the models do not.
    resize("200m")
    assert cli.main(list(run_command)) == 0
    assert (disk / "out" / "report.md").is_file() and not list(disk.rglob(".partial-*"))


# Saves a model's weights (2.4 MB with Adam's state) as a stage's backup and best checkpoint do, onto a disk with
# 0 to 312 kB free, then once there is space. HDF5 writing on the disk itself failed at some of these levels
# inside a dataset's close ("Exception ignored in: h5py._objects.ObjectID.__dealloc__"), and the next close or the
# interpreter's exit crashed (exit 139).
_SAVE_ON_A_FULLER_AND_FULLER_DISK = """
import os, shutil, sys
from pathlib import Path
import keras, numpy as np
from catsdogs_helpers import checkpoints
from catsdogs_helpers.errors import DiskFullError
disk, filler = Path(sys.argv[1]), Path(sys.argv[1]) / "filler"
inputs = keras.Input((64,))
x = inputs
for index in range(12):
    x = keras.layers.Dense(128)(x)
model = keras.Model(inputs, keras.layers.Dense(1)(x))
model.compile("adam", "mse")
model.fit(np.zeros((4, 64)), np.zeros((4, 1)), verbose=0)
backup = checkpoints.AtomicBackupAndRestore(str(disk / "backup"))
backup.set_model(model)
backup._current_epoch, backup._last_batch_seen = 1, 0
best = checkpoints.AtomicModelCheckpoint(str(disk / "best.weights.h5"), save_weights_only=True)
best.set_model(model)
refused = 0
for free in range(0, 320 * 1024, 8 * 1024):
    for save in (backup._save_model, lambda: best.on_epoch_end(0, {"val_loss": 1.0})):
        filler.unlink(missing_ok=True)
        space = os.statvfs(disk)
        filler.write_bytes(bytes(max(0, space.f_bavail * space.f_frsize - free)))
        try:
            save()
        except DiskFullError:
            refused += 1
filler.unlink()
backup._save_model()
model.load_weights(disk / "backup" / "latest.weights.h5")
shutil.rmtree(disk / "backup")  # The disk holds one of the two.
best.on_epoch_end(0, {"val_loss": 0.5})
model.load_weights(disk / "best.weights.h5")
print(refused, sorted(item.name for item in disk.iterdir()))
"""


@pytest.mark.slow
def test_weights_saved_onto_a_full_disk_fail_in_one_error_without_h5py_tracebacks_or_a_crash(small_disk):
    disk, _ = small_disk
    done = subprocess.run([sys.executable, "-c", _SAVE_ON_A_FULLER_AND_FULLER_DISK, str(disk)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr[-3000:]
    assert done.stdout.split(maxsplit=1) == ["80", "['best.weights.h5']\n"]
