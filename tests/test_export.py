"""Export: each artifact matches the Keras model, carries its contract, and `predict` reads it."""

import importlib.util
import json
import re

import keras
import numpy as np
import pytest
from conftest import run_cli
from photo_factory import make_photo_folder

from catsdogs_helpers import contract, export, models, prediction
from catsdogs_helpers.errors import InputError, MissingInputError

SIZE = 48
CLASS_NAMES = ("gatos", "cachorros")  # Not cat/dog: the names must come from the contract.
HAS_ONNX = all(importlib.util.find_spec(name) is not None for name in ("tf2onnx", "onnxruntime"))
NO_ONNX = pytest.mark.skipif(not HAS_ONNX, reason='needs pip install "catsdogs-helpers[onnx]" (tf2onnx, onnxruntime)')


def build_model(transfer: bool = False) -> keras.Model:
    """A small study model with random weights and its contract: the scratch CNN or the transfer model."""
    keras.utils.set_random_seed(0)
    augmentation = models.build_augmentation(seed=1)
    if transfer:
        model = models.build_transfer_model(SIZE, weights=None, alpha=0.35, augmentation=augmentation)
    else:
        model = models.build_scratch_cnn(SIZE, 32, widths=(8, 8, 16, 16), augmentation=augmentation)
    return contract.attach_contract(model, CLASS_NAMES)


def check_images(num_images: int = 8) -> np.ndarray:
    return np.random.default_rng(3).uniform(0, 255, (num_images, SIZE, SIZE, 3)).astype(np.float32)


def test_the_export_graph_drops_the_augmentation_and_gives_the_same_logits():
    model = build_model()
    rebuilt = export.build_export_model(model)
    assert models.AUGMENTATION_NAME not in [layer.name for layer in rebuilt.layers]
    images = check_images()
    assert np.max(np.abs(np.asarray(rebuilt(images)) - np.asarray(model(images, training=False)))) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("format", ["litert", "saved_model", pytest.param("onnx", marks=NO_ONNX)])
@pytest.mark.parametrize("transfer", [False, True], ids=["scratch", "transfer"])
def test_an_exported_model_gives_the_keras_logits_and_carries_the_class_names(tmp_path, format, transfer):
    model = build_model(transfer)
    images = check_images()
    result = export.export_model(model, format, tmp_path / "model", images)
    assert result.max_logit_difference <= export.FLOAT32_TOLERANCE and result.num_check_photos == 8
    assert json.loads(result.contract_path.read_text())["class_names"] == list(CLASS_NAMES)
    loaded = export.load_exported_model(result.path)
    assert loaded.contract.class_names == CLASS_NAMES and loaded.input_shape == (None, SIZE, SIZE, 3)
    other = check_images(3) / 2  # Other photos, another batch size.
    expected = np.asarray(model.predict(other, verbose=0))
    assert loaded.predict(other).shape == (3, 1)
    assert np.max(np.abs(loaded.predict(other) - expected)) <= export.FLOAT32_TOLERANCE
    print(f"{format} {'transfer' if transfer else 'scratch'}: {result.describe()}")


def test_a_format_whose_converter_is_missing_says_what_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    missing = {"tf2onnx", "onnxruntime"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name in missing else real_find_spec(name))
    message = r'needs tf2onnx, onnxruntime, which are not installed: pip install "catsdogs-helpers\[onnx\]"'
    with pytest.raises(InputError, match=message):
        export.check_export_format("onnx")
    missing.discard("onnxruntime")
    if real_find_spec("onnxruntime") is not None:  # Only tf2onnx missing: named alone.
        with pytest.raises(InputError, match=r"needs tf2onnx, which is not installed"):
            export.check_export_format("onnx")
    with pytest.raises(InputError, match=r"expected one of .*Received: format='coreml'"):
        export.check_export_format("coreml")


def test_an_artifact_without_its_contract_or_of_no_known_kind_is_refused(tmp_path):
    with pytest.raises(MissingInputError, match="does not exist"):
        export.load_exported_model(tmp_path / "absent.tflite")
    (tmp_path / "model.tflite").write_bytes(b"TFL3")
    with pytest.raises(InputError, match=r"has no readable contract at .*model.tflite.contract.json"):
        export.load_exported_model(tmp_path / "model.tflite")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="is not an exported model"):
        export.load_exported_model(tmp_path / "notes.txt")


@pytest.mark.slow
def test_an_exported_contract_that_contradicts_the_artifact_is_refused(tmp_path):
    result = export.export_model(build_model(), "litert", tmp_path / "model", check_images())
    saved = json.loads(result.contract_path.read_text())
    edits = {"two distinct class names": {"class_names": ["dog", "dog"]},
             f"says image_size=128, but the model has image_size={SIZE}": {"image_size": 128}}  # fmt: skip
    for message, edit in edits.items():
        result.contract_path.write_text(json.dumps({**saved, **edit}))
        with pytest.raises(InputError, match=re.escape(message)):
            export.load_exported_model(result.path)


def test_an_existing_output_is_not_overwritten(tmp_path):
    (tmp_path / "model.tflite").write_bytes(b"mine")
    with pytest.raises(InputError, match="already exists"):
        export.export_model(build_model(), "litert", tmp_path / "model.tflite", check_images())
    assert (tmp_path / "model.tflite").read_bytes() == b"mine"


@pytest.mark.slow
def test_the_command_line_exports_and_predicts_with_the_artifact(tmp_path):
    model_path = tmp_path / "scratch.keras"
    build_model().save(model_path)
    photos = make_photo_folder(tmp_path / "photos", num_per_class=4, size=SIZE, class_names=CLASS_NAMES)
    flat = tmp_path / "flat"  # "A folder of photos": a flat one too.
    flat.mkdir()
    for photo in (photos / "gatos").iterdir():
        photo.rename(flat / photo.name)
    process = run_cli("export", "--model", str(model_path), "--format", "litert", "--output",
                      str(tmp_path / "scratch"), "--check-data", str(flat), "--num-check-photos", "3")  # fmt: skip
    assert process.returncode == 0, process.stderr
    assert "Exported litert:" in process.stdout and "on 3 photos" in process.stdout
    photo = sorted(flat.iterdir())[0]
    exported = run_cli("predict", "--model", str(tmp_path / "scratch.tflite"), str(photo))
    assert exported.returncode == 0, exported.stderr
    # What `catsdogs predict --model scratch.keras` prints (test_cli runs that command), here without a third process.
    original = models.load_model(model_path)
    (said,) = prediction.classify_photos(original, [str(photo)], contract.read_contract(original).class_names)
    assert exported.stdout == f"{said.describe()}\n"  # Same class name (from the contract), same probability.
    assert exported.stdout.split(": ")[1].split(" ")[0] in CLASS_NAMES
