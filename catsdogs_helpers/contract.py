"""What a saved model promises: its class names (in label order), its input size, one logit out.
The study saves each model with a last, identity `ModelContract` layer whose configuration holds the class names, so
they travel inside the `.keras` file; an exported artifact carries the same contract as JSON (see `export.py`).
`Contract.checked` validates both."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras

from catsdogs_helpers.errors import InputError

CONTRACT_NAME = "contract"
OUTPUT_KIND = "logit"


@keras.saving.register_keras_serializable(package="catsdogs")
class ModelContract(keras.layers.Layer):
    """An identity layer that carries a model's class names (class 0's, then class 1's) in its configuration."""

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
    """A model's contract: two distinct class names, its square RGB input's side, and `"logit"` (class 1 above 0)."""

    class_names: tuple[str, ...]
    image_size: int
    output_kind: str = OUTPUT_KIND

    @classmethod
    def checked(cls, saved: object, image_size: int, source: str) -> Contract:
        """Returns the contract saved as `{"class_names": [...], "image_size": ..., ...}`, checked against the model's
        real `image_size`; `source` names the model in messages.

        Raises:
            InputError: If the class names are not two distinct non-empty names, or the saved `image_size` or
                `output_kind` (optional) is not the model's.
        """
        saved = saved if isinstance(saved, dict) else {}
        names = saved.get("class_names")
        names = tuple(names) if isinstance(names, (list, tuple)) else ()
        if len(names) != 2 or len(set(names)) != 2 or not all(isinstance(name, str) and name for name in names):
            raise InputError(
                f"The contract of {source} does not hold two distinct class names, so its answers cannot be "
                f"named; export or train the model again with this version. Received: class_names={names!r}"
            )
        for key, actual in (("image_size", image_size), ("output_kind", OUTPUT_KIND)):
            if saved.get(key, actual) != actual:
                raise InputError(
                    f"The contract of {source} says {key}={saved[key]!r}, but the model has {key}={actual!r}: "
                    f"the contract was edited or belongs to another model; export the model again. "
                    f"Received: {key}={saved[key]!r}"
                )
        return cls(names, image_size)


def attach_contract(model: keras.Model, class_names: Sequence[str]) -> keras.Model:
    """Returns the model (sharing its weights) ending in a `ModelContract`, in place of any it had; ready to save.

    Raises:
        ValueError: If `class_names` does not hold two distinct names.
    """
    if len(class_names) != 2 or len(set(class_names)) != 2:
        raise ValueError(f"A contract needs two distinct class names. Received: class_names={class_names!r}")
    logit = model.get_layer(CONTRACT_NAME).input if _find_contract(model) is not None else model.output
    # float32 whatever the global policy: under mixed precision an identity layer would otherwise cast the
    # float32 logit down to float16.
    outputs = ModelContract(class_names, name=CONTRACT_NAME, dtype="float32")(logit)
    return keras.Model(model.inputs, outputs, name=model.name)


def _find_contract(model: keras.Model) -> ModelContract | None:
    return next((layer for layer in model.layers if isinstance(layer, ModelContract)), None)


def read_contract(model: keras.Model, source: str = "model") -> Contract:
    """Reads a model's contract, and checks that the model takes square RGB photos and outputs one logit; `source` names
    the model in messages (its path).

    Raises:
        InputError: If the model does not fit the study or carries no valid contract.
    """
    shapes = [tuple(tensor.shape) for tensor in model.inputs]
    if len(shapes) != 1 or len(shapes[0]) != 4 or shapes[0][1] != shapes[0][2] or shapes[0][3] != 3:
        raise InputError(
            f"{source} does not take square RGB photos (one input of shape (batch, size, size, 3)), so it is not "
            f"a model of this study. Received: input shapes {shapes}"
        )
    outputs = [tuple(tensor.shape) for tensor in model.outputs]
    if outputs != [(None, 1)]:
        raise InputError(
            f"{source} does not output one logit per photo (shape (batch, 1)), so it is not a model of this study: "
            f"its answers would be misread. Received: output shapes {outputs}"
        )
    contract = _find_contract(model)
    if contract is None:
        raise InputError(
            f"{source} carries no contract (its class names), so it was not saved by this version of the study: "
            f"train it again with this version (catsdogs run, or the notebook). Received: model={source!r}"
        )
    return Contract.checked({"class_names": contract.class_names}, int(shapes[0][1]), source)
