"""Files survive a kill -9 and a full disk; a full disk or a closed output stream is said in one line.

What the package writes is written whole or not at all (`output_lock.written_atomically`); what a killed
or failed run left unreadable is unfinished work, redone with a one-line note; a full disk is a user's
error (exit 2), after which the same command finishes the work. Here each write, unreadable file and
closed stream on its own; whole runs killed or on a full disk: tests/test_kills_and_full_disks.py.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import photo_factory
import pytest
from model_factory import (
    SIZE,
    Interrupt,
    InterruptAfterEpoch,
    RecordEpochs,
    run_stage,
    tiny_data,
    tiny_model,
    tiny_saved_model,
)

from catsdogs_helpers import checkpoints, cli, exit_status, export, output_lock, stage_files, sweep
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


def test_export_on_a_full_disk_is_one_line_leaves_nothing_and_works_once_there_is_space(tmp_path, capsys, monkeypatch):
    model = str(tiny_saved_model(tmp_path / "model.keras"))
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
def test_a_closed_pipe_ends_predict_quietly_and_a_full_output_is_one_line(tmp_path):
    model = str(tiny_saved_model(tmp_path / "model.keras"))
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
