"""What identifies a model for the study's stage manifests: digests of its architecture and of its compilation.

Both are re-exported by `models.py`; see `stage_manifest.build_stage_manifest`.
"""

from __future__ import annotations

import hashlib
import json

import keras


def describe_architecture(model: keras.Model) -> str:
    """Returns a digest of a model's layers and of how they are called, in order.

    Each layer gives its class, settings, weight shapes and trainability; each
    call in a functional model gives the layers it reads from (by position) and
    its plain arguments, so `base(x, training=False)` and `base(x)` differ.
    Layer names are left out (Keras numbers unnamed layers per process).
    Nested models are walked into.

    Returns:
        16 hexadecimal digits of a SHA-256.
    """
    text = json.dumps(_describe_layers(model), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_compilation(model: keras.Model) -> str | None:
    """Returns a digest of how a model is compiled: its optimizer (class, learning rate or schedule, every
    setting), loss and metrics, or `None` if it is not compiled.

    The optimizer's name, numbered by Keras, is left out; metrics' names count.

    Returns:
        16 hexadecimal digits of a SHA-256, or `None`.
    """
    compiled = model.get_compile_config() if getattr(model, "compiled", False) else None
    if compiled is None:
        return None
    # Keras numbers optimizers' names as it numbers layers' (`adam`, `adam_1`, ...): leave them out.
    compiled = {**compiled, "optimizer": _without_names(compiled.get("optimizer"))}
    text = json.dumps(compiled, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _describe_layers(model: keras.Model) -> list[object]:
    described: list[object] = []
    calls = _describe_calls(model)
    for index, layer in enumerate(model.layers):
        if isinstance(layer, keras.Model):  # A nested model: its own layers, not its name-laden config.
            described.append([type(layer).__name__, layer.trainable, _describe_layers(layer), calls.get(index)])
            continue
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
