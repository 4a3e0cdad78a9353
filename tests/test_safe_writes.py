"""Files survive a kill -9 and a full disk; a full disk or a closed output stream is said in one line.

What the package writes is written whole or not at all (`output_lock.written_atomically`); what a killed
or failed run left unreadable is unfinished work, redone with a one-line note; a full disk is a user's
error (exit 2), after which the same command finishes the work.
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

import h5py
import keras
import photo_factory
import pytest
from conftest import run_cli
from model_factory import SIZE, Interrupt, InterruptAfterEpoch, RecordEpochs, run_stage, tiny_data, tiny_model

from catsdogs_helpers import checkpoints, cli, contract, exit_status, export, output_lock, stage_files, sweep
from catsdogs_helpers.config import get_config
from catsdogs_helpers.errors import DiskFullError, as_disk_full_error

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_write_cut_short_leaves_the_previous_file_whole(tmp_path):
    path = tmp_path / "result.json"
    output_lock.write_text_atomically(path, '{"done": 1}')
    cut_short = pytest.raises(DiskFullError, match=r"Cannot write .*result.json: No space left on device \(ENOSPC\)")
    with cut_short, output_lock.written_atomically(path) as temporary:
        temporary.write_text('{"do')
        raise ENOSPC
    assert json.loads(path.read_text()) == {"done": 1}
    assert sorted(item.name for item in tmp_path.iterdir()) == ["result.json"]  # No temporary left behind.


def test_a_read_only_disk_names_the_file_not_its_temporary_name(tmp_path, monkeypatch):
    def read_only(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(output_lock, "_remove", read_only)  # Even removing a leftover fails on a read-only disk.
    with pytest.raises(DiskFullError, match=r"^Cannot write \S+/report.md: Read-only file system \(EROFS\)"):
        output_lock.write_text_atomically(tmp_path / "report.md", "text")


def test_a_leftover_of_a_killed_write_is_replaced_and_a_new_folder_is_renamed_whole(tmp_path):
    (tmp_path / ".partial-model.tflite").write_bytes(b"half of a killed run's export")
    with output_lock.written_atomically(tmp_path / "model.tflite") as temporary:
        assert not temporary.exists() and temporary.name.endswith(".tflite")  # Keras chooses formats by suffix.
        temporary.write_bytes(b"whole")
    with output_lock.written_atomically(tmp_path / "saved") as folder:
        folder.mkdir()
        (folder / "saved_model.pb").write_bytes(b"whole")
    assert sorted(item.name for item in tmp_path.iterdir()) == ["model.tflite", "saved"]


def test_full_quota_and_read_only_disks_are_recognised_in_tensorflow_and_h5py_messages():
    tensorflow = RuntimeError("{{function_node x}} /data/cache/train.partial-1_0.data-00000; No space left on device")
    assert "Cannot write /data/cache: No space left on device (ENOSPC)" in str(as_disk_full_error(tensorflow))
    hdf5 = OSError("Can't close file (file write failed: filename = '/o/s/.partial-x.h5', errno = 28, "
                   "error message = 'Disk quota exceeded')")  # fmt: skip
    assert "Cannot write /o/s: Disk quota exceeded (EDQUOT)" in str(as_disk_full_error(hdf5))
    read_only = as_disk_full_error(OSError(errno.EROFS, os.strerror(errno.EROFS), "/mnt/out/report.md"))
    assert str(read_only).startswith("Cannot write /mnt/out/report.md: Read-only file system (EROFS). Write elsewhere")
    assert as_disk_full_error(ValueError("Unrecognized format")) is None


def _truncate(path: Path, size: int = 0) -> None:
    with path.open("r+b") as file:
        file.truncate(size)


WRONG_SHAPES = ["[1, 2, 3]", "{}", "null", '"x"', '{"result": [1]}', '{"result": {"name": "stage", "history": {}}}']


BAD_HISTORY = '{"result": {"name": "stage", "history": {"epoch": ["three"]}, "train_seconds": 1, ' \
              '"images_per_second": 1, "best_epoch": 0}}'  # fmt: skip


def test_a_result_json_cut_short_or_of_the_wrong_shape_is_unfinished_work_said_once_and_trained_again(tmp_path, capsys):
    """Every unreadable text is found by the look a rerun makes (one line; the file removed, so that a second look
    says nothing); one of them is then rerun in full."""
    first = run_stage(tiny_model(), tmp_path)
    result = tmp_path / "stage" / "result.json"
    whole = result.read_text()
    model = tiny_model()
    assert stage_files.load_finished_stage(model, "stage", tmp_path, verbose=0) is not None
    said = f"[stage] {result} cannot be read (a write cut short by a kill or a full disk): training this stage again."
    for text in ["", whole[: len(whole) // 2], *WRONG_SHAPES, BAD_HISTORY]:
        result.write_text(text)
        capsys.readouterr()
        assert stage_files.load_finished_stage(model, "stage", tmp_path, verbose=0) is None, text
        assert capsys.readouterr().out.splitlines() == [said], text
        assert not result.exists(), text

    result.write_text(whole[: len(whole) // 2])
    recorder = RecordEpochs()
    again = run_stage(tiny_model(), tmp_path, callbacks=[recorder])
    assert [line for line in capsys.readouterr().out.splitlines() if "cannot be read" in line] == [said]
    assert recorder.epochs == [0, 1, 2, 3]
    assert again.history["epoch"] == first.history["epoch"]
    assert json.loads(result.read_text())["result"]["history"]["epoch"] == [0, 1, 2, 3]


BAD_EPOCHS = ['{"epoch": "three"}', '{"epoch": -1}', '{"epoch": true}', "[1, 2, 3]", "null"]


def test_a_backup_cut_short_or_of_the_wrong_shape_is_unfinished_work_and_the_stage_starts_again(tmp_path, capsys):
    """What Keras's own BackupAndRestore (3.9 to 3.15) wrote in place, cut by a kill (the issue's h5py traceback),
    or an epoch that is not a whole number: each is found unreadable; two of them are rerun in full."""
    with pytest.raises(Interrupt):
        run_stage(tiny_model(), tmp_path, epochs=4, callbacks=[InterruptAfterEpoch(1)])
    stage = tmp_path / "stage"
    files = [stage / "backup" / "latest.weights.h5", stage / "backup" / "training_metadata.json"]
    files.append(stage / "best.weights.h5")
    assert checkpoints.unreadable_file(files) is None
    for path in files:
        whole = path.read_bytes()
        _truncate(path, 96 if path.suffix == ".h5" else 0)
        assert checkpoints.unreadable_file(files) == path
        path.write_bytes(whole)
    for text in BAD_EPOCHS:
        files[1].write_text(text)
        assert checkpoints.unreadable_file(files) == files[1], text

    for path, cut in (
        (files[1], lambda: files[1].write_text('{"epoch": -1}')),
        (files[0], lambda: _truncate(files[0], 96)),
    ):
        shutil.rmtree(stage)
        with pytest.raises(Interrupt):
            run_stage(tiny_model(), tmp_path, epochs=4, callbacks=[InterruptAfterEpoch(1)])
        cut()
        capsys.readouterr()
        recorder = RecordEpochs()
        result = run_stage(tiny_model(), tmp_path, epochs=4, callbacks=[recorder])
        assert f"[stage] {path} cannot be read (a write cut short by a kill or a full disk): training this stage " \
               "from the start." in capsys.readouterr().out  # fmt: skip
        assert recorder.epochs == [0, 1, 2, 3] and result.history["epoch"] == [0, 1, 2, 3]


def test_an_unreadable_result_of_the_cached_features_head_is_said_once(tmp_path, capsys):
    """The head on cached features looks for a finished stage before `train_stage` looks again: one line, not two."""
    text = '{"test": {"accu'  # Every unreadable shape takes the same path (the result.json test above).
    from catsdogs_helpers import features, models

    def train() -> stage_files.StageResult:
        keras.utils.set_random_seed(0)
        model = models.compile_model(models.build_transfer_model(SIZE, weights=None, alpha=0.35), 1e-2)
        return features.train_head_on_features(model, tiny_data(), tiny_data(16, seed=1), epochs=2,
                                               output_dir=tmp_path, verbose=1)  # fmt: skip

    train()
    result = tmp_path / "transfer" / "result.json"
    result.write_text(text)
    capsys.readouterr()
    assert train().num_epochs == 2
    assert [line for line in capsys.readouterr().out.splitlines() if "cannot be read" in line] == [
        f"[transfer] {result} cannot be read (a write cut short by a kill or a full disk): training this stage again."
    ]


def test_a_kill_between_two_backups_resumes_from_the_earlier_one(tmp_path):
    """Killed after the last backup moved aside and before the next one was renamed into place."""
    with pytest.raises(Interrupt):
        run_stage(tiny_model(), tmp_path, epochs=5, callbacks=[InterruptAfterEpoch(1)])
    stage = tmp_path / "stage"
    os.replace(stage / "backup", stage / "backup.previous")
    (stage / ".partial-backup").mkdir()
    (stage / ".partial-backup" / "latest.weights.h5").write_bytes(b"\x89HDF\r\n")  # The next one, cut short.
    recorder = RecordEpochs()
    result = run_stage(tiny_model(), tmp_path, epochs=5, callbacks=[recorder])
    assert recorder.epochs == [2, 3, 4] and result.history["epoch"] == [0, 1, 2, 3, 4]
    assert sorted(item.name for item in stage.iterdir()) == ["best.weights.h5", "history.csv", "manifest.json",
                                                             "result.json"]  # fmt: skip


def test_each_epochs_backup_is_whole_weights_and_epoch_together(tmp_path):
    seen = []

    class CheckBackup(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            backup = tmp_path / "stage" / "backup"
            seen.append(json.loads((backup / "training_metadata.json").read_text())["epoch"])
            with h5py.File(backup / "latest.weights.h5", "r") as file:
                assert len(file.keys()) > 0

    run_stage(tiny_model(), tmp_path, epochs=3, callbacks=[CheckBackup()])  # Runs after the stage's backup.
    assert seen == [1, 2, 3]


def test_a_history_row_cut_short_is_left_out(tmp_path):
    log = tmp_path / "history.csv"
    log.write_text("epoch,loss,val_loss\n0,0.7,0.69\n1,0.5,0.6\n1")  # Epoch 12's row, cut after "1".
    assert stage_files.read_history(log) == {"epoch": [0, 1], "loss": [0.7, 0.5], "val_loss": [0.69, 0.6]}
    log.write_text("epoch,loss,val_loss\n0,0.7,0.69\n1,0.5,0.62,0.4,0.5\n")  # A cut row, then the next.
    assert stage_files.read_history(log)["epoch"] == [0]


def test_an_unreadable_sweep_point_is_trained_again(tmp_path, capsys):
    path = tmp_path / "100-seed1337.json"
    path.write_text('{"manifest": {"a": 1}, "poi')
    assert sweep._read_point(path) == {}
    assert capsys.readouterr().out.strip() == (
        f"[sweep] {path} cannot be read (a write cut short by a kill or a full disk): training this point again."
    )
    assert sweep._read_point(tmp_path / "absent.json") == {}


def _tiny_saved_model(path: Path) -> Path:
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(1, name="logit")(keras.layers.GlobalAveragePooling2D(name="pool")(inputs))
    contract.attach_contract(keras.Model(inputs, outputs), ("cat", "dog")).save(path)
    return path


def test_export_on_a_full_disk_is_one_line_leaves_nothing_and_works_once_there_is_space(tmp_path, capsys, monkeypatch):
    model = str(_tiny_saved_model(tmp_path / "model.keras"))
    output = tmp_path / "out" / "model"  # A SavedModel folder: every Keras from 3.9 exports it.
    real_export = export._export_artifact

    def export_to_a_full_disk(model, path, format):
        real_export(model, path, format)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # The artifact written, then the disk full.

    monkeypatch.setattr(export, "_export_artifact", export_to_a_full_disk)
    argv = ["export", "--model", model, "--format", "saved_model", "--output", str(output)]
    assert cli.main(argv) == exit_status.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err == f"error: Cannot write {output}: No space left on device (ENOSPC). Free some space (or write " \
                  "elsewhere) and run the same command again: the work already saved is kept.\n"  # fmt: skip
    assert list(output.parent.iterdir()) == []  # No artifact cut short, none without its contract.
    monkeypatch.undo()
    assert cli.main(argv) == 0
    assert [item.name for item in output.parent.iterdir()] == ["model"]
    assert export.load_exported_model(output).contract.class_names == ("cat", "dog")


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


@pytest.mark.slow
def test_a_closed_pipe_ends_predict_quietly_and_a_full_output_is_one_line(tmp_path):
    model = str(_tiny_saved_model(tmp_path / "model.keras"))
    photo = photo_factory.write_jpeg(tmp_path / "cat.jpg", photo_factory.synthetic_photo("cat", 32))
    command = [sys.executable, "-m", "catsdogs_helpers", "predict", "--model", model, *[str(photo)] * 3000]
    reader = "import sys; sys.stdin.readline()"  # Reads one line and goes away, as `head -1` does.
    predict = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    subprocess.run([sys.executable, "-c", reader], stdin=predict.stdout, check=True, timeout=120)
    predict.stdout.close()
    err = predict.stderr.read().decode()
    assert predict.wait(timeout=120) == exit_status.EXIT_BROKEN_PIPE, err
    assert err == ""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system: the full-output case is not tried")
    with open("/dev/full", "w") as full:
        done = subprocess.run([*command[:6], str(photo)], stdout=full, stderr=subprocess.PIPE)
    assert done.returncode == exit_status.EXIT_USER_ERROR
    assert done.stderr.decode() == (
        "error: Cannot write the standard output: No space left on device (ENOSPC). Free some space (or write "
        "elsewhere) and run the same command again: the work already saved is kept.\n"
    )


# The kill test: a short study (4 + 3 + 2 epochs of the smoke preset) killed at each of these moments in turn,
# each rerun resuming what the one before left. A moment is a file (or folder) of the output folder, as a glob,
# that the running process has started to write, and the seconds to wait after seeing it. The names match both
# a file written in place and its temporary name while it is written, so the kills land in the middle of writes:
# one of each kind of file the study writes (a backup's epoch and its weights, a best checkpoint, a stage's
# result, a model, the results, a figure), in each kind of stage (trained end to end, the head on cached
# features, fine-tuning). Every kind is written by one function for every stage (test_safe_writes' unit tests).
KILL_MOMENTS = [
    ("scratch/*backup*/training_metadata.json", 0.0),
    ("scratch/*best*", 0.0),
    ("*scratch.keras", 0.0),
    ("transfer/*backup*/latest.weights.h5", 0.005),
    ("finetuned/*result.json", 0.0),
    ("*results.json", 0.0),
    ("*.png", 0.0),
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
    print(f"{outcomes.count('killed')} kills at {len(KILL_MOMENTS)} moments: {outcomes}")
    assert outcomes.count("killed") >= len(KILL_MOMENTS) - 2, outcomes
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
    tmp_path, small_disk
):
    """An export and a run whose cache and output are on a small disk: refused in one line (exit 2) on a read-only
    disk, on a full one, and (the run) on one too small for its models; each same command works once there is
    space. The run's failures once ended in "This is a bug" (the cache) and a segmentation fault after h5py's
    traceback (the models)."""
    disk, resize = small_disk
    model = str(_tiny_saved_model(tmp_path / "model.keras"))
    artifact = disk / "exported" / "model.tflite"
    export_command = ("export", "--model", model, "--format", "litert", "--output", str(artifact))
    resize("3m,ro")
    refused = run_cli(*export_command)  # Preflight's check of the folder, before anything is exported.
    assert refused.returncode == exit_status.EXIT_USER_ERROR and refused.stderr.count("\n") == 1, refused.stderr[-3000:]
    assert str(artifact.parent) in refused.stderr and "Read-only file system" in refused.stderr
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
    assert run_cli(*export_command).returncode == 0 and artifact.with_name("model.tflite.contract.json").is_file()
    _one_line_about_a_full_disk(run_cli(*run_command), disk / "out")  # The cache fits in 3 MB, the models do not.
    resize("200m")
    again = run_cli(*run_command)
    assert again.returncode == 0, again.stderr[-3000:]
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
