"""Exporting a trained model through Keras's `model.export`: LiteRT (phones), SavedModel (servers), ONNX.

Each artifact travels with the model's contract and is checked against the Keras model's logits.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from catsdogs_helpers.contract import Contract, read_contract
from catsdogs_helpers.errors import InputError, MissingInputError
from catsdogs_helpers.models import AUGMENTATION_NAME
from catsdogs_helpers.output_lock import write_text_atomically, written_atomically
from catsdogs_helpers.preflight import check_output_file

FORMATS = ("litert", "saved_model", "onnx")
_KERAS_FORMATS = {"litert": "litert", "saved_model": "tf_saved_model", "onnx": "onnx"}
_SUFFIXES = {"litert": ".tflite", "saved_model": "", "onnx": ".onnx"}
_REQUIREMENTS = {"onnx": (("tf2onnx", "onnxruntime"), 'pip install "catsdogs-helpers[onnx]" (tf2onnx and onnxruntime)')}
CONTRACT_SUFFIX = ".contract.json"
SAVED_MODEL_CONTRACT = os.path.join("assets.extra", "catsdogs_contract.json")
FLOAT32_TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """An exported artifact, its contract, and its largest |logit difference| from the Keras model on check photos."""

    path: Path
    format: str
    contract_path: Path
    max_logit_difference: float
    num_check_photos: int

    def describe(self) -> str:
        """Returns one line such as `Exported litert: m.tflite (contract: ...); max |logit difference| ...`."""
        return (
            f"Exported {self.format}: {self.path} (contract: {self.contract_path}); max |logit difference| from the "
            f"Keras model {self.max_logit_difference:.2e} on {self.num_check_photos} photos"
        )


def check_export_format(format: str) -> None:
    """Raises `InputError` if the format is unknown or a package it needs is missing (saying what to install)."""
    if format not in FORMATS:
        raise InputError(f"Unknown export format: expected one of {FORMATS}. Received: format={format!r}")
    packages, install = _REQUIREMENTS.get(format, ((), ""))
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(
            f"Exporting to {format} needs {', '.join(missing)}, {'which is' if len(missing) == 1 else 'which are'} "
            f"not installed: {install}. Received: format={format!r}"
        )


def contract_path_of(path: str | os.PathLike, format: str) -> Path:
    """Returns where an artifact's contract is: inside a SavedModel folder, else beside the file."""
    path = Path(path)
    return path / SAVED_MODEL_CONTRACT if format == "saved_model" else Path(f"{path}{CONTRACT_SUFFIX}")


def build_export_model(model: keras.Model) -> keras.Model:
    """Returns the inference graph of a study model, without its augmentation (converters reject random ops).

    The layers (and weights) are shared, called with `training=False`; a model that is not one chain is returned as is.
    """
    x = inputs = keras.Input(model.input_shape[1:], name="image")
    try:
        for layer in model.layers[1:]:
            if layer.name != AUGMENTATION_NAME:
                x = layer(x, training=False)
        rebuilt = keras.Model(inputs, x, name=model.name)
        rebuilt(np.zeros((1, *model.input_shape[1:]), np.float32))  # The ONNX export wants a model called once.
        return rebuilt
    except (ValueError, TypeError):  # Not one chain (a model from elsewhere): export it as it is.
        return model


def export_model(
    model: keras.Model,
    format: str,
    output: str | os.PathLike,
    check_images: np.ndarray,
) -> ExportResult:
    """Exports a model of the study, writes its contract beside (or inside) the artifact, and checks it.

    Args:
        format: `"litert"` (a `.tflite` file), `"saved_model"` (a folder) or `"onnx"` (a `.onnx` file).
        output: The artifact's path; `.tflite` or `.onnx` is appended if missing.
        check_images: Raw pixels in [0, 255], float32, shape `(N, S, S, 3)`, `S` the model's input size.

    Raises:
        InputError: If the format is unknown, needs a missing package or a newer Keras, the model carries no
            contract, the output exists or cannot be written, or the artifact's logits differ from the model's by
            more than `FLOAT32_TOLERANCE`.
    """
    check_export_format(format)
    contract = read_contract(model)
    path = Path(output)
    if _SUFFIXES[format] and path.suffix != _SUFFIXES[format]:
        path = Path(f"{path}{_SUFFIXES[format]}")
    path = check_output_file(path, "output")
    contract_path = contract_path_of(path, format)
    if format != "saved_model" and (contract_path.exists() or contract_path.is_symlink()):
        raise InputError(f"{contract_path} already exists (where the artifact's contract goes): pass another "
                         f"--output, or remove it first. Received: output={str(path)!r}")  # fmt: skip
    # Written under a temporary name with its contract, then renamed: never a truncated or contract-less artifact.
    with written_atomically(path) as temporary:
        _export_artifact(build_export_model(model), temporary, format)
        written_contract = contract_path_of(temporary, format) if format == "saved_model" else contract_path
        written_contract.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(
            written_contract, json.dumps({**dataclasses.asdict(contract), "format": format}, indent=1) + "\n"
        )
    images = np.asarray(check_images, np.float32)
    expected = np.asarray(model.predict(images, verbose=0), np.float32).reshape(-1)
    exported = load_exported_model(path)
    difference = float(np.max(np.abs(exported.predict(images).reshape(-1) - expected)))
    if not difference <= FLOAT32_TOLERANCE:
        raise InputError(
            f"The exported {format} model's logits differ from the Keras model's by up to {difference:.3g} "
            f"(more than {FLOAT32_TOLERANCE}); it is left at {path} for inspection. Received: format={format!r}"
        )
    return ExportResult(path, format, contract_path, difference, len(images))


def _export_artifact(model: keras.Model, path: Path, format: str) -> None:
    with warnings.catch_warnings():  # Keras's tf2onnx shim asks NumPy about `np.object`, which warns.
        warnings.filterwarnings("ignore", message=".*np.object", category=FutureWarning)
        try:
            model.export(str(path), format=_KERAS_FORMATS[format], verbose=False)
        except ValueError as error:
            if "Unrecognized format" not in str(error):
                raise
            raise InputError(
                f"This Keras ({keras.__version__}) cannot export to {format}: upgrade it (pip install -U keras; "
                f"3.15 exports every format). Received: format={format!r}"
            ) from None


class ExportedModel:
    """An exported artifact with its `contract`, whose `predict` gives logits as a Keras model of the study does."""

    def __init__(self, path: Path, format: str, contract: Contract, predict: Callable[[np.ndarray], object]) -> None:
        self.path, self.format, self.contract, self._predict = path, format, contract, predict
        self.input_shape = (None, contract.image_size, contract.image_size, 3)

    def predict(self, images: np.ndarray, verbose: int = 0, batch_size: int = 32) -> np.ndarray:
        """Returns the logits of raw-pixel photos, float32, shape `(N, 1)` (`verbose` is ignored)."""
        images = np.asarray(images, np.float32)
        batches = [self._predict(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
        return np.concatenate(batches).reshape(-1, 1).astype(np.float32)


def _build_predictor(path: Path, format: str) -> tuple[Callable[[np.ndarray], object], int | None]:
    """Returns the artifact's predict function and the side of its square input (`None` if not fixed)."""
    if format == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))  # Kept by the closure: its variables die with it.
        shape = loaded.serve.input_signature[0].shape
        return lambda images: np.asarray(loaded.serve(tf.constant(images))), shape[1]
    if format == "litert":
        interpreter = _build_litert_interpreter(path)
        runner = interpreter.get_signature_runner()
        (name,) = interpreter.get_signature_list()["serving_default"]["inputs"]
        shape = interpreter.get_input_details()[0]["shape"]
        return lambda images: next(iter(runner(**{name: images}).values())), int(shape[1])
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name, shape = session.get_inputs()[0].name, session.get_inputs()[0].shape
    return lambda images: session.run(None, {name: images})[0], shape[1] if isinstance(shape[1], int) else None


def _build_litert_interpreter(path: Path):
    """LiteRT's own interpreter (`ai-edge-litert`) where installed, else TensorFlow's (deprecated, still shipped)."""
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter(model_path=str(path))
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        return tf.lite.Interpreter(model_path=str(path))


def describe_artifact(path: str | os.PathLike) -> str | None:
    """Returns the format of an exported artifact (`"litert"`, `"saved_model"`, `"onnx"`), or `None`."""
    path = Path(path)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return "saved_model"
    return {suffix: format for format, suffix in _SUFFIXES.items() if suffix}.get(path.suffix)


def load_exported_model(path: str | os.PathLike) -> ExportedModel:
    """Loads an artifact written by `export_model` (a `.tflite` or `.onnx` file, or a SavedModel folder).

    Raises:
        MissingInputError: If the artifact does not exist.
        InputError: If it is not an exported artifact, or its contract is missing, unreadable, or contradicts it.
    """
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"The exported model does not exist: {path}. Received: model={str(path)!r}")
    format = describe_artifact(path)
    if format is None:
        raise InputError(
            f"{path} is not an exported model (a .tflite or .onnx file, or a SavedModel folder). "
            f"Received: model={str(path)!r}"
        )
    check_export_format(format)
    contract_path = contract_path_of(path, format)
    try:
        saved = json.loads(contract_path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(
            f"{path} has no readable contract at {contract_path} ({type(error).__name__}: {error}); "
            f"export it again with catsdogs export. Received: model={str(path)!r}"
        ) from None
    predict, image_size = _build_predictor(path, format)
    image_size = image_size or (saved.get("image_size") if isinstance(saved, dict) else None)
    return ExportedModel(path, format, Contract.checked(saved, image_size, str(path)), predict)
