"""Short SHA-256 digests (16 hexadecimal digits) that name what a run used: settings, a weights file, a model."""

from __future__ import annotations

import hashlib
import json
import os

import keras

DIGEST_LENGTH = 16


def hash_json(value: object) -> str:
    """Returns the digest of a JSON-serializable value (keys sorted; other objects as `str`)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:DIGEST_LENGTH]


def hash_file(path: str | os.PathLike) -> str:
    """Returns the digest of a file's bytes, read in 1-MiB blocks (an `OSError` if it cannot be read)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:DIGEST_LENGTH]


def describe_architecture(model: keras.Model) -> str:
    """Returns the digest of a model's layers (class, settings, weight shapes, trainability) and of their calls with
    their plain arguments (`base(x, training=False)` differs from `base(x)`); nested models are walked into; layer
    names, which Keras numbers per process, are left out."""
    return hash_json(_describe_layers(model))


def describe_compilation(model: keras.Model) -> str | None:
    """Returns the digest of a model's optimizer (every setting but its name), loss and metrics, or `None`."""
    compiled = model.get_compile_config() if getattr(model, "compiled", False) else None
    if compiled is None:
        return None
    return hash_json({**compiled, "optimizer": _without_names(compiled.get("optimizer"))})


def _describe_layers(model: keras.Model) -> list[object]:
    described: list[object] = []
    calls = _describe_calls(model)
    for index, layer in enumerate(model.layers):
        if isinstance(layer, keras.Model):  # Its own layers, not its name-laden config.
            described.append([type(layer).__name__, layer.trainable, _describe_layers(layer), calls.get(index)])
        else:
            config = {key: value for key, value in layer.get_config().items() if key != "name"}
            shapes = [tuple(weight.shape) for weight in layer.weights]
            described.append([type(layer).__name__, config, shapes, layer.trainable, calls.get(index)])
    return described


def _describe_calls(model: keras.Model) -> dict[int, object]:
    """Each layer's calls in a functional model: the tensors it reads (as layer positions) and plain arguments."""
    layer_configs = model.get_config().get("layers") if hasattr(model, "get_config") else None
    if not isinstance(layer_configs, list):
        return {}
    positions = {layer.name: index for index, layer in enumerate(model.layers)}

    def without_names(value: object) -> object:
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            name, node, tensor = value["config"]["keras_history"]
            return ["tensor", positions.get(name, name), node, tensor]
        if isinstance(value, dict):
            return {key: without_names(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [without_names(item) for item in value]
        return value

    calls = {}
    for layer_config in layer_configs:
        name = layer_config.get("name") or layer_config.get("config", {}).get("name")
        if name in positions and layer_config.get("inbound_nodes"):
            calls[positions[name]] = without_names(layer_config["inbound_nodes"])
    return calls


def _without_names(value: object) -> object:
    if isinstance(value, dict):
        return {key: _without_names(item) for key, item in value.items() if key != "name"}
    if isinstance(value, list):
        return [_without_names(item) for item in value]
    return value
