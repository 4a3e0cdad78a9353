"""Tests of `catsdogs_helpers.contract`: class names travel with a saved model; a model that does not fit is refused."""

import re

import keras
import numpy as np
import pytest

from catsdogs_helpers import contract, models
from catsdogs_helpers.errors import InputError


def tiny_logit_model(activation: str | None = None) -> keras.Model:
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(keras.layers.Rescaling(1 / 255)(inputs))
    outputs = keras.layers.Dense(1, activation=activation, name="logit")(x)
    return keras.Model(inputs, outputs, name="tiny")


@pytest.mark.parametrize("class_names", [("cat", "dog"), ("Dog", "cat"), ("gatos", "cachorros")])
def test_class_names_travel_with_the_saved_model(tmp_path, class_names):
    model = tiny_logit_model()
    contract.attach_contract(model, class_names).save(tmp_path / "model.keras")
    loaded = models.load_model(tmp_path / "model.keras")
    assert contract.read_contract(loaded) == contract.Contract(class_names, 16, "logit")
    photos = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(photos, verbose=0), model.predict(photos, verbose=0), atol=1e-6)


def test_a_new_contract_replaces_the_old_one():
    model = contract.attach_contract(tiny_logit_model(), ("cat", "dog"))
    again = contract.attach_contract(model, ("gato", "cachorro"))
    assert [type(layer).__name__ for layer in again.layers].count("ModelContract") == 1
    assert contract.read_contract(again).class_names == ("gato", "cachorro")


@pytest.mark.parametrize("activation", [None, "sigmoid"])
def test_a_model_without_a_contract_is_refused_saying_to_train_it_again(activation):
    with pytest.raises(InputError, match=r"m.keras carries no contract.*train it again with this version"):
        contract.read_contract(tiny_logit_model(activation), "m.keras")


@pytest.mark.parametrize(
    ("saved", "message"),
    [
        ({"class_names": ["dog", "dog"]}, "two distinct class names"),
        ({"class_names": ["cat"]}, "two distinct class names"),
        ({"class_names": ["cat", ""]}, "two distinct class names"),
        ({"class_names": "cd"}, "two distinct class names"),
        ({"class_names": ["cat", "dog"], "image_size": 128}, "says image_size=128, but the model has image_size=16"),
        ({"class_names": ["cat", "dog"], "output_kind": "probability"}, "says output_kind='probability'"),
    ],
)
def test_a_contract_that_contradicts_the_model_is_refused(saved, message):
    with pytest.raises(InputError, match=re.escape(message)):
        contract.Contract.checked(saved, 16, "m.tflite")
    assert contract.Contract.checked({"class_names": ["cat", "dog"]}, 16, "m") == contract.Contract(("cat", "dog"), 16)


def test_a_saved_contract_edited_inside_the_keras_file_is_refused():
    model = contract.attach_contract(tiny_logit_model(), ("cat", "dog"))
    model.get_layer(contract.CONTRACT_NAME).class_names = ("dog", "dog")
    with pytest.raises(InputError, match="two distinct class names"):
        contract.read_contract(model, "m.keras")


def test_models_of_another_shape_are_refused():
    inputs = keras.Input((16, 16, 3))
    two = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inputs)))
    with pytest.raises(InputError, match=r"does not output one logit per photo.*\(None, 2\)"):
        contract.read_contract(two, "two.keras")
    gray = keras.Input((16, 16, 1))
    one_channel = keras.Model(gray, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(gray)))
    with pytest.raises(InputError, match="does not take square RGB photos"):
        contract.read_contract(one_channel, "gray.keras")


def test_a_contract_needs_two_distinct_names():
    with pytest.raises(ValueError, match="two distinct class names"):
        contract.attach_contract(tiny_logit_model(), ("cat", "cat"))
