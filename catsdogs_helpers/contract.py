"""What a saved model promises its users: its class names, its input size, and that it outputs one logit.

A model trained on `Dog/` and `cat/` (labels come from the sorted folder names)
or on `gatos/` and `cachorros/` must not be read as "class 0 = cat" by
`predict` and `evaluate`. So the study saves every model with a last,
identity layer, `ModelContract`, whose configuration holds the class names; it
travels inside the `.keras` file and loads in safe mode. `read_contract` gives
it back, and refuses a model that does not fit the study's contract (a sigmoid
or softmax output, more than one output, a non-square or non-RGB input).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras

from catsdogs_helpers.errors import InputError

CONTRACT_NAME = "contract"
OUTPUT_KIND = "logit"


@keras.saving.register_keras_serializable(package="catsdogs")
class ModelContract(keras.layers.Layer):
    """An identity layer that carries a model's class names in its configuration.

    Args:
        class_names: Names of class 0 and class 1, in label order.
        **kwargs: Keras layer arguments (`name`, ...).
    """

    def __init__(self, class_names: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.class_names = tuple(str(name) for name in class_names)

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "class_names": list(self.class_names)}


@dataclasses.dataclass(frozen=True)
class Contract:
    """A model's contract, as read from it.

    Attributes:
        class_names: Names of class 0 and class 1, or `None` for a model saved
            without a contract (by an older version of the study).
        image_size: Side of the square RGB input, in pixels.
        output_kind: Always `"logit"`: one logit per photo, class 1 above 0.
    """

    class_names: tuple[str, ...] | None
    image_size: int
    output_kind: str = OUTPUT_KIND


def attach_contract(model: keras.Model, class_names: Sequence[str]) -> keras.Model:
    """Returns the model with a `ModelContract` as its last layer (sharing all weights), ready to save.

    A model that already ends in a contract gets a new one in its place.

    Args:
        model: A model of the study: raw pixels in, one logit out.
        class_names: Names of class 0 and class 1, in label order.

    Returns:
        A `keras.Model` with the same inputs, the same logit, and the contract.

    Raises:
        ValueError: If `class_names` does not hold two distinct names.
    """
    if len(class_names) != 2 or len(set(class_names)) != 2:
        raise ValueError(f"A contract needs two distinct class names. Received: class_names={class_names!r}")
    logit = model.get_layer(CONTRACT_NAME).input if _has_contract(model) else model.output
    # float32 whatever the global policy: under mixed precision an identity layer would otherwise cast the
    # float32 logit down to float16.
    outputs = ModelContract(class_names, name=CONTRACT_NAME, dtype="float32")(logit)
    return keras.Model(model.inputs, outputs, name=model.name)


def _has_contract(model: keras.Model) -> bool:
    return any(isinstance(layer, ModelContract) for layer in model.layers)


def read_contract(model: keras.Model, source: str = "model") -> Contract:
    """Reads a model's contract, and checks that the model fits the study's.

    Args:
        model: A loaded model.
        source: How to name the model in messages (its path). Defaults to `"model"`.

    Returns:
        The `Contract`; `class_names` is `None` for a model saved without one.

    Raises:
        InputError: If the model does not take square RGB images, does not have
            one output of one value, or ends in a sigmoid or softmax instead of
            a logit.
    """
    shapes = [tuple(shape) for shape in _shapes(model.inputs)]
    if len(shapes) != 1 or len(shapes[0]) != 4 or shapes[0][1] != shapes[0][2] or shapes[0][3] != 3:
        raise InputError(
            f"{source} does not take square RGB photos (one input of shape (batch, size, size, 3)), so it is not "
            f"a model of this study. Received: input shapes {shapes}"
        )
    outputs = [tuple(shape) for shape in _shapes(model.outputs)]
    if outputs != [(None, 1)]:
        raise InputError(
            f"{source} does not output one logit per photo (shape (batch, 1)), so it is not a model of this study: "
            f"its answers would be misread. Received: output shapes {outputs}"
        )
    activation = _last_activation(model)
    if activation not in (None, "linear"):
        raise InputError(
            f"{source} ends in a {activation} activation, not a logit: this study reads its output as a logit "
            f"(class 1 above 0), which would give every photo the same answer. Received: activation={activation!r}"
        )
    contract = next((layer for layer in model.layers if isinstance(layer, ModelContract)), None)
    return Contract(contract.class_names if contract is not None else None, int(shapes[0][1]))


def _shapes(tensors) -> list:
    return [tensor.shape for tensor in tensors]


def _last_activation(model: keras.Model) -> str | None:
    """Returns the activation name of the last layer that has one, looking through a contract."""
    for layer in reversed(model.layers):
        if isinstance(layer, ModelContract):
            continue
        activation = getattr(layer, "activation", None)
        if activation is not None:
            return getattr(activation, "__name__", str(activation))
        if isinstance(layer, keras.layers.Softmax):
            return "softmax"
        if not isinstance(layer, keras.layers.InputLayer):
            return None
    return None
