"""The command line end to end (smoke preset, on a folder and on tfds), and its answers to bad input."""

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import photo_factory
import pytest
import tfds_factory
from conftest import output_of_python, run_cli
from PIL import Image

from catsdogs_helpers import cli, contract, exit_status

MODEL_NAMES = ("scratch", "transfer", "finetuned")
FIGURES = ("learning_curves", "confusion_matrices", "roc_curves", "mistakes", "grad_cam")


def check_report(output: Path) -> dict:
    """Checks what `run` leaves behind and returns results.json."""
    for name in MODEL_NAMES:
        assert (output / f"{name}.keras").stat().st_size > 0
    for name in FIGURES:
        assert (output / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (output / "report.md").read_text()
    assert "| model | test accuracy |" in report and "Random weights" in report
    results = json.loads((output / "results.json").read_text())
    assert set(results) == {"models", "comparisons", "config", "data", "environment", "command"}
    assert set(results["models"]) == set(MODEL_NAMES)
    # The command that reproduces the run: every setting with an option of its own, the others if changed.
    config = results["config"]
    assert results["command"].startswith(
        f"catsdogs run --preset smoke --data {config['data']} --weights none --image-size {config['image_size']} "
    )
    assert results["command"] in report and "## Are the differences real?" in report
    for model in results["models"].values():
        assert set(model["test"]) == {"accuracy", "loss", "precision", "recall", "f1", "auc", "accuracy_interval"}
        assert set(model["test_tta"]) == set(model["test"])
        for key in ("train_seconds", "images_per_second", "params_total", "params_trainable", "size_bytes"):
            assert model[key] is not None and model[key] > 0, key
    assert results["models"]["transfer"]["params_trainable"] < results["models"]["finetuned"]["params_trainable"]
    assert set(results["environment"]) >= {"devices", "versions"}
    assert results["environment"]["cpu_allocator"] == "bfc"  # The command line asks for it (see `smoke_study`).
    assert results["config"]["preset"] == "smoke"
    return results


@pytest.mark.slow
def test_run_on_a_folder_writes_the_whole_report(smoke_study):
    process = smoke_study["process"]
    assert process.returncode == 0, process.stderr[-3000:]
    results = check_report(smoke_study["output"])
    assert results["data"]["counts"]["test"] == {"cat": 4, "dog": 4}
    assert results["data"]["source"] == str(smoke_study["photos"])


@pytest.mark.slow
def test_run_console_says_each_stage_once_without_colour_codes_or_noise(smoke_study):
    process = smoke_study["process"]
    out, err = process.stdout, process.stderr
    for stage in ("data", "scratch", "transfer", "finetuned", "evaluation", "figures", "report"):
        assert out.count(f"== {stage}: ") == 1, stage
    assert "\x1b[" not in out + err  # Piped: one plain line per epoch, no progress bar.
    assert "Executing Cell" not in out and "Traceback" not in err
    assert "| finetuned |" in out.split("== report: ")[1]  # The results table at the end.
    assert not re.search(r"cuda|absl|oneDNN|cpu_feature_guard|retracing", out + err, flags=re.IGNORECASE)
    # Keras's epoch lines ("3/3 - 1s - ...") may repeat by chance; no other line may.
    lines = [line for line in out.splitlines() if line.strip() and not re.match(r"^\d+/\d+ - ", line)]
    assert [line for line, count in Counter(lines).items() if count > 1] == []


@pytest.mark.slow
def test_evaluate_reproduces_the_test_accuracy_of_the_run(smoke_study, capsys):
    output, photos = smoke_study["output"], smoke_study["photos"]
    results = json.loads((output / "results.json").read_text())
    assert cli.main(["evaluate", "--model", str(output / "finetuned.keras"), "--data", str(photos), "--tta"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] == {"cat": 4, "dog": 4}
    assert report["metrics"]["accuracy"] == pytest.approx(results["models"]["finetuned"]["test"]["accuracy"])
    assert report["metrics"]["accuracy_interval"] == pytest.approx(
        results["models"]["finetuned"]["test"]["accuracy_interval"]
    )
    tta = results["models"]["finetuned"]["test_tta"]
    assert report["metrics_tta"]["accuracy"] == pytest.approx(tta["accuracy"])
    assert report["metrics"]["loss"] == pytest.approx(results["models"]["finetuned"]["test"]["loss"], rel=1e-4)


@pytest.mark.slow
def test_predict_classifies_readable_photos_and_reports_unreadable_ones(smoke_study, tmp_path, capsys):
    photos = sorted((smoke_study["photos"] / "test" / "dog").glob("*.jpg"))[:2]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    model = smoke_study["output"] / "scratch.keras"
    argv = ["predict", "--model", str(model), str(photos[0]), str(broken), str(photos[1])]
    assert cli.main(argv) == exit_status.EXIT_UNREADABLE_PHOTOS == 1
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 2 and all(line.split(": ")[1].split(" (")[0] in ("cat", "dog") for line in lines)
    assert all(line.endswith("%)") for line in lines)
    errors = err.strip().splitlines()
    assert errors == [f"{broken}: error: truncated or corrupt" + errors[0].split("truncated or corrupt")[1]]


# `catsdogs predict` (and evaluate, export) never call `start_study`: the command line itself must choose the allocator.
_PREDICT_THEN_ALLOCATOR = """
import sys
from catsdogs_helpers import cli, runtime
cli.main(["predict", "--model", sys.argv[1], sys.argv[2]])
print(runtime.describe_cpu_allocator())
"""


@pytest.mark.slow
def test_predict_keeps_cpu_tensors_in_the_bfc_allocator(smoke_study):
    photo = sorted((smoke_study["photos"] / "test" / "cat").glob("*.jpg"))[0]
    model = smoke_study["output"] / "scratch.keras"
    lines = output_of_python(_PREDICT_THEN_ALLOCATOR, str(model), str(photo)).splitlines()
    assert lines[0].startswith(f"{photo}: ") and lines[-1] == "bfc"


@pytest.mark.slow
def test_run_on_tfds_prepares_nothing_online(tmp_path):
    """The tfds path, offline: the real builder prepared a fake download into TFDS_DATA_DIR."""
    data_dir = tfds_factory.prepare_fake_cats_vs_dogs(tmp_path / "tfds", num_per_class=20)
    output = tmp_path / "output"
    process = run_cli(
        "run", "--data", "tfds", "--weights", "none", "--preset", "smoke", "--output", str(output),
        env={"TFDS_DATA_DIR": str(data_dir)},
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-3000:]
    results = check_report(output)
    assert results["data"]["source"] == "tfds:cats_vs_dogs"
    # 80/10/10% of the 40 photos, the training split capped at the smoke preset's 24.
    counts = {split: sum(per_class.values()) for split, per_class in results["data"]["counts"].items()}
    assert counts == {"train": 24, "validation": 4, "test": 4}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sweep", "--preset", "smoke", "--sizes", "10,abc"],
         "--sizes takes whole numbers separated by commas, e.g. 100,250,500. Received: --sizes 10,abc"),
        (["run", "--preset", "smoke", "--set", "scratch_epochs=-1"],
         "Invalid setting `scratch_epochs`: expected a positive integer. Received: scratch_epochs=-1"),
    ],
)  # fmt: skip
def test_bad_settings_are_said_in_one_line_before_tensorflow_starts(argv, message, tmp_path):
    script = "import sys; from catsdogs_helpers import cli; print(cli.main(sys.argv[1:]), 'tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script, *argv, "--data", str(tmp_path)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.stdout.split() == [str(exit_status.EXIT_USER_ERROR), "False"], done.stderr[-3000:]
    assert done.stderr.strip().splitlines() == [f"error: {message}"]


def one_line_error(capsys, argv: list[str]) -> str:
    assert cli.main(argv) == exit_status.EXIT_USER_ERROR
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_run_rejects_bad_input_before_starting(capsys, tmp_path, make_photo_folder):
    photos = make_photo_folder(tmp_path / "photos", num_per_class=2)
    message = one_line_error(capsys, ["run", "--data", str(tmp_path / "nope"), "--output", str(tmp_path / "out")])
    assert "photo folder does not exist" in message and not (tmp_path / "out").exists()
    message = one_line_error(capsys, ["run", "--data", str(photos), "--weights", str(tmp_path / "w.h5")])
    assert "weights file does not exist" in message
    message = one_line_error(capsys, ["run", "--data", str(photos), "--image-size", "100"])
    assert "image_size=100" in message
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    for output in (a_file, a_file / "below"):
        message = one_line_error(capsys, ["run", "--preset", "smoke", "--data", str(photos), "--output", str(output)])
        assert f"{a_file} is a file" in message
    message = one_line_error(
        capsys, ["run", "--preset", "smoke", "--data", str(photos), "--output", str(photos / "out")]
    )
    assert "inside the data folder" in message and not (photos / "out").exists()
    message = one_line_error(
        capsys,
        [
            "run",
            "--preset",
            "smoke",
            "--data",
            str(photos),
            "--image-size",
            "100000",
            "--output",
            str(a_file.parent / "o"),
        ],
    )
    assert "needs" in message and "GiB" in message and "image_size=100000" in message
    assert "NAME=VALUE" in one_line_error(capsys, ["run", "--preset", "smoke", "--set", "epochs=3"])
    assert "scratch_epochs=0" in one_line_error(
        capsys, ["run", "--preset", "smoke", "--data", str(photos), "--set", "scratch_epochs=0"]
    )


def test_options_left_out_take_the_presets_values():
    parser = cli.build_parser()
    smoke = cli.build_config(parser.parse_args(["run", "--preset", "smoke"]))
    assert (smoke.weights, smoke.alpha, smoke.data) == (None, 0.35, "tfds")
    quick = cli.build_config(
        parser.parse_args(["run", "--preset", "quick", "--set", "alpha=0.5", "--set", "patience=3"])
    )
    assert (quick.weights, quick.alpha, quick.patience, quick.image_size) == ("imagenet", 0.5, 3, 224)
    explicit = cli.build_config(
        parser.parse_args(["run", "--preset", "smoke", "--weights", "imagenet", "--image-size", "96"])
    )
    assert (explicit.weights, explicit.image_size) == ("imagenet", 96)


def test_version_and_preset_help(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["--version"])
    assert raised.value.code == 0
    from catsdogs_helpers import __version__

    assert capsys.readouterr().out.strip() == f"catsdogs {__version__}"
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    help_text = capsys.readouterr().out
    for name in ("default", "quick", "smoke"):
        assert f"  {name} " in help_text
    assert "--set cache_dir=PATH caches the decoded photos in files" in " ".join(help_text.split())


def test_an_unexpected_error_keeps_its_traceback_and_says_it_is_a_bug(capsys, monkeypatch):
    def broken(args):
        raise RuntimeError("a bug deep inside")

    monkeypatch.setitem(cli._COMMANDS, "predict", broken)
    assert cli.main(["predict", "--model", "m.keras", "x.jpg"]) == exit_status.EXIT_BUG == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: a bug deep inside" in err and "This is a bug" in err


def test_ctrl_c_outside_the_study_exits_130(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli._COMMANDS, "predict", interrupted)
    assert cli.main(["predict", "--model", "m.keras", "x.jpg"]) == exit_status.EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == "Interrupted."


@pytest.mark.slow
def test_evaluate_and_predict_reject_bad_input(capsys, tmp_path, smoke_study):
    model = str(smoke_study["output"] / "scratch.keras")
    assert "model file does not exist" in one_line_error(
        capsys, ["evaluate", "--model", str(tmp_path / "m.keras"), "--data", str(tmp_path)]
    )
    text_file = tmp_path / "notes.keras"
    text_file.write_text("hello")
    assert "not a .keras archive" in one_line_error(capsys, ["predict", "--model", str(text_file), "x.jpg"])
    one_class = tmp_path / "one_class"
    (one_class / "cat").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(one_class / "cat" / "a.jpg")
    assert "exactly two class folders" in one_line_error(
        capsys, ["evaluate", "--model", model, "--data", str(one_class)]
    )
    empty = tmp_path / "empty"
    (empty / "cat").mkdir(parents=True)
    (empty / "dog").mkdir()
    assert "no usable photo" in one_line_error(capsys, ["evaluate", "--model", model, "--data", str(empty)])
    message = one_line_error(capsys, ["predict", "--model", f"{tmp_path}/", "x.jpg"])
    assert "is a folder, not a .keras model nor a SavedModel exported by catsdogs export" in message


def test_every_command_has_help(capsys):
    for command in ("run", "evaluate", "predict"):
        with pytest.raises(SystemExit) as raised:
            cli.main([command, "--help"])
        assert raised.value.code == 0
        assert "usage:" in capsys.readouterr().out
    with pytest.raises(SystemExit) as raised:
        cli.main(["evaluate"])  # --model and --data are required.
    assert raised.value.code == 2


def colour_model(path: Path, class_names: tuple[str, str]) -> Path:
    """Saves a model whose logit is 0.1 * (mean red - mean blue): reddish photos (cats here) are class 1."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(inputs)
    logit = keras.layers.Dense(1, name="logit")
    outputs = logit(x)
    logit.set_weights([np.array([[0.1], [0.0], [-0.1]], np.float32), np.zeros(1, np.float32)])
    contract.attach_contract(keras.Model(inputs, outputs), class_names).save(path)
    return path


def write_class_folder(root: Path, folders: dict[str, str], num_per_class: int = 30) -> Path:
    """Writes `folder -> synthetic class` photos (`cat` reddish, `dog` bluish)."""
    for folder, kind in folders.items():
        for index in range(num_per_class):
            photo_factory.write_jpeg(root / folder / f"{index}.jpg", photo_factory.synthetic_photo(kind, 32, index))
    return root


def test_predict_and_evaluate_use_the_class_names_saved_in_the_model(tmp_path, capsys):
    model = str(colour_model(tmp_path / "model.keras", ("Dog", "cat")))  # Class 0 "Dog", class 1 "cat".
    photos = write_class_folder(tmp_path / "photos", {"Dog": "dog", "cat": "cat"})
    assert cli.main(["predict", "--model", model, str(photos / "cat" / "0.jpg"), str(photos / "Dog" / "0.jpg")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[1].split(" (")[0] for line in lines] == ["cat", "Dog"]
    assert cli.main(["evaluate", "--model", model, "--data", str(photos), "--all"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metrics"]["accuracy"] == 1.0 and report["class_names"] == ["Dog", "cat"]
    assert report["photos"] == "every photo" and report["counts"] == {"Dog": 30, "cat": 30}
    assert cli.main(["evaluate", "--model", model, "--data", str(photos)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["photos"] == "the test split" and 0 < sum(report["counts"].values()) < 60
    assert "NaN" not in json.dumps(report)


def test_evaluate_refuses_photos_of_other_classes_and_class_names_cannot_be_given(tmp_path, capsys):
    model = str(colour_model(tmp_path / "model.keras", ("Dog", "cat")))
    photos = write_class_folder(tmp_path / "photos", {"gato": "cat", "cachorro": "dog"})
    message = one_line_error(capsys, ["evaluate", "--model", model, "--data", str(photos), "--all"])
    assert "trained on ['Dog', 'cat']" in message and "['cachorro', 'gato']" in message
    for command in (["predict", "--model", model, str(photos)], ["export", "--model", model, "--format", "litert",
                                                                 "--output", str(tmp_path / "m")]):  # fmt: skip
        with pytest.raises(SystemExit):  # The class names are the model's: nothing can contradict them.
            cli.main([*command, "--classes", "cat,dog"])
        assert "unrecognized arguments: --classes" in capsys.readouterr().err


def test_a_model_without_a_contract_is_refused_before_it_answers(tmp_path, capsys):
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "old.keras")
    message = one_line_error(capsys, ["predict", "--model", str(tmp_path / "old.keras"), "x.jpg"])
    assert "carries no contract" in message and "train it again with this version" in message


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--output", ""],
        ["sweep", "--data", " "],
        ["run", "--weights", ""],
        ["evaluate", "--model", "m.keras", "--data", ""],
        ["predict", "--model", "m.keras", ""],
        ["export", "--model", "", "--format", "litert", "--output", "m"],
        ["export", "--model", "m.keras", "--format", "litert", "--output", ""],
        ["export", "--model", "m.keras", "--format", "litert", "--output", "m", "--check-data", ""],
    ],
)
def test_every_path_option_refuses_an_empty_value(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Had it been taken as the current folder, it would be written here.
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    assert raised.value.code == exit_status.EXIT_USER_ERROR
    assert "expected a path, got an empty value (an unset shell variable?)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_bad_sweep_sizes_and_export_options_are_refused_in_one_line(capsys, tmp_path, make_photo_folder):
    photos = str(make_photo_folder(tmp_path / "photos", num_per_class=2))
    sweep = ["sweep", "--preset", "smoke", "--data", photos, "--output", str(tmp_path / "out"), "--sizes"]
    assert "must be positive" in one_line_error(capsys, [*sweep, "-5,10"])
    assert "at least 6 photos: 3 of each class" in one_line_error(capsys, [*sweep, "1"])
    export = ["export", "--model", "absent.keras", "--format", "litert", "--output", str(tmp_path / "m")]
    for number in ("0", "-3"):
        message = one_line_error(capsys, [*export, "--num-check-photos", number])
        assert message.endswith(f"Received: --num-check-photos {number}")


def test_a_quoted_tilde_is_the_home_folder_in_predict_and_export_paths(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    colour_model(tmp_path / "model.keras", ("dog", "cat"))
    photo_factory.write_jpeg(tmp_path / "cat.jpg", photo_factory.synthetic_photo("cat", 32))
    assert cli.main(["predict", "--model", "~/model.keras", "~/cat.jpg"]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'cat.jpg'}: cat (")
    exported = ["export", "--model", "~/model.keras", "--format", "saved_model", "--output", "~/exported"]
    assert cli.main(exported) == 0, capsys.readouterr().err
    assert (tmp_path / "exported" / "saved_model.pb").is_file()
    parsed = cli.build_parser().parse_args(["evaluate", "--model", "~/m.keras", "--data", "~/photos"])
    assert (parsed.model, parsed.data) == (str(tmp_path / "m.keras"), str(tmp_path / "photos"))


def _predict_with_a_closed_stream(tmp_path: Path, descriptor: int) -> subprocess.CompletedProcess:
    model = str(colour_model(tmp_path / "model.keras", ("dog", "cat")))
    photo = photo_factory.write_jpeg(tmp_path / "cat.jpg", photo_factory.synthetic_photo("cat", 32))
    command = [sys.executable, "-m", "catsdogs_helpers", "predict", "--model", model, str(photo)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: os.close(descriptor))  # fmt: skip  # As `>&-` or `2>&-` does.


@pytest.mark.slow
def test_a_closed_standard_output_is_one_line_exit_74(tmp_path):
    done = _predict_with_a_closed_stream(tmp_path, 1)
    assert done.returncode == exit_status.EXIT_WRITE_FAILED, done.stderr[-3000:]
    assert done.stderr == "error: Cannot write the standard output: Bad file descriptor\n"


@pytest.mark.slow
def test_a_closed_standard_error_classifies_as_usual(tmp_path):
    done = _predict_with_a_closed_stream(tmp_path, 2)
    assert done.returncode == 0, done
    assert done.stdout.startswith(f"{tmp_path / 'cat.jpg'}: cat (") and done.stdout.count("\n") == 1


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["predict", "--help"]])
def test_version_and_help_into_a_full_output_are_one_line_and_not_exit_0(argv):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "catsdogs_helpers", *argv], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=120)  # fmt: skip
    assert done.returncode == exit_status.EXIT_USER_ERROR  # A full output is a full disk: exit 2, as predict's.
    assert done.stderr == (
        "error: Cannot write the standard output: No space left on device (ENOSPC). Free some space (or write "
        "elsewhere) and run the same command again: the work already saved is kept.\n"
    )


def test_evaluate_and_export_given_a_savedmodel_say_they_take_the_keras_model_and_that_predict_takes_it(
    tmp_path, capsys
):
    model = str(colour_model(tmp_path / "model.keras", ("dog", "cat")))
    exported = tmp_path / "exported"
    assert cli.main(["export", "--model", model, "--format", "saved_model", "--output", str(exported)]) == 0
    photos = write_class_folder(tmp_path / "photos", {"dog": "dog", "cat": "cat"}, num_per_class=2)
    evaluate = ["evaluate", "--model", str(exported), "--data", str(photos)]
    for argv in (evaluate, ["export", "--model", str(exported), "--format", "litert", "--output", str(tmp_path / "m")]):
        message = one_line_error(capsys, argv)
        assert f"{exported} is a SavedModel (an artifact of catsdogs export)" in message, message
        assert "takes the .keras model it was exported from" in message and "catsdogs predict --model" in message
        assert "not a .keras model nor a SavedModel" not in message


@pytest.mark.parametrize("readme", ["README.md", "README.pt-BR.md"])
def test_each_readme_lists_every_exit_code_of_the_command_line(readme):
    text = (Path(__file__).parent.parent / readme).read_text()
    paragraph = re.search(r"^(Exit codes|Códigos de saída): (.+?)\n\n", text, re.MULTILINE | re.DOTALL).group(2)
    codes = {value for name, value in vars(exit_status).items() if name.startswith("EXIT_")}
    assert {int(code) for code in re.findall(r"\*\*(\d+)\*\*", paragraph)} == {0, *codes}


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_an_output_folder_holding_the_users_own_report_is_refused_and_left_as_it_was(
    command, capsys, tmp_path, monkeypatch, make_photo_folder
):
    photos = make_photo_folder(tmp_path / "photos", num_per_class=20)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my own report")
    (mine / "results.json").write_text("my notes")
    monkeypatch.chdir(mine)
    message = one_line_error(capsys, [command, "--preset", "smoke", "--data", str(photos), "--output", "."])
    assert f"The output folder {mine} holds files the study would write over (results.json, report.md)" in message
    assert "pass another output folder, or an empty one" in message
    assert sorted(item.name for item in mine.iterdir()) == ["report.md", "results.json"]  # Not even a lock.
    assert (mine / "report.md").read_text() == "my own report" and (mine / "results.json").read_text() == "my notes"


def test_a_folder_catsdogs_wrote_takes_the_study_again(tmp_path):
    from catsdogs_helpers.preflight import check_output_dir_is_ours

    locked, legacy, sweep_only, other = (tmp_path / name for name in ("locked", "legacy", "sweep", "other"))
    for folder in (locked, legacy, sweep_only, other):
        folder.mkdir()
        (folder / "report.md").write_text("# a report")
    (locked / ".catsdogs.lock").touch()  # Every run and sweep leaves it: killed, finished or resumed.
    (legacy / "results.json").write_text(json.dumps({"models": {}, "config": {}}))  # Written before the lock.
    (sweep_only / "sweep.json").write_text(json.dumps({"points": [], "sizes": []}))
    for folder in (locked, legacy, sweep_only, tmp_path / "empty"):
        check_output_dir_is_ours(folder)
    (other / "results.json").write_text(json.dumps([1, 2, 3]))
    (other / "scratch").mkdir()
    (other / "scratch" / "history.csv").write_text("my,csv")
    with pytest.raises(cli.InputError, match=r"\(results.json, report.md, scratch/history.csv\)"):
        check_output_dir_is_ours(other)


def test_export_never_writes_over_a_file_where_its_contract_goes(tmp_path, capsys):
    model = str(colour_model(tmp_path / "model.keras", ("dog", "cat")))
    sidecar = tmp_path / "m.tflite.contract.json"
    sidecar.write_text("my own notes")
    message = one_line_error(capsys, ["export", "--model", model, "--format", "litert", "--output",
                                      str(tmp_path / "m.tflite")])  # fmt: skip
    assert f"{sidecar} already exists" in message and sidecar.read_text() == "my own notes"
    assert not (tmp_path / "m.tflite").exists()
