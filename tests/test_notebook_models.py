"""The notebook's model cells build and compile the same models as the package's recipes (`catsdogs run`).

The cells tagged `model` in `transfer_learning.ipynb` hold the lesson's code (augmentation, scratch CNN, frozen
MobileNetV2 and head, unfreezing, each compile). Executed here on a tiny configuration (random weights, 64 px),
each model they build must have the architecture and compilation digests of `recipes.build_*`'s: the digests are
what a training stage's manifest holds, so equal digests mean the notebook and the command line train one study.
"""

import math
import types
from pathlib import Path

import keras
import nbformat
import pytest
from keras import layers

from catsdogs_helpers import contract, evaluation, models, recipes, study
from catsdogs_helpers.affine import RandomAffine
from catsdogs_helpers.config import get_config

NOTEBOOK = Path(__file__).resolve().parents[1] / "transfer_learning.ipynb"
NUM_TRAIN = 40
# The notebook's model built by its cells, and the package's recipe that must build the same.
BUILT = {"scratch": "scratch_model", "transfer": "transfer_model", "finetuned": "finetune_model"}


def model_cells() -> list[str]:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    return [cell.source for cell in notebook.cells if "model" in cell.metadata.get("tags", [])]


def run_cells(sources: list[str], config, frozen) -> dict[str, object]:
    """Executes the cells in order, in a namespace holding what the notebook's earlier cells define."""
    namespace = {"keras": keras, "layers": layers, "math": math, "RandomAffine": RandomAffine, "models": models,
                 "evaluation": evaluation, "config": config, "num_train": NUM_TRAIN, "frozen": frozen}  # fmt: skip
    for source in sources:
        exec(compile(source, "model cell", "exec"), namespace)
    return namespace


def digests(model: keras.Model) -> tuple[str, str | None]:
    return models.describe_architecture(model), models.describe_compilation(model)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return get_config("smoke", data="photos", output_dir=str(tmp_path_factory.mktemp("out")))


@pytest.fixture(scope="module")
def frozen(config):
    """The package's frozen model, saved with its contract as the study saves it (`transfer.keras`)."""
    model = recipes.build_frozen_model(config)
    path = Path(config.output_dir) / "transfer.keras"
    contract.attach_contract(model, ("cat", "dog")).save(path)
    return types.SimpleNamespace(path=path, model=model)


@pytest.fixture(scope="module")
def package_models(config, frozen):
    return {
        "scratch": recipes.build_scratch_cnn(config, NUM_TRAIN),
        "transfer": recipes.build_frozen_model(config),
        "finetuned": recipes.build_fine_tuned_model(config, frozen),
    }


@pytest.fixture(scope="module")
def notebook_models(config, frozen):
    namespace = run_cells(model_cells(), config, frozen)
    return {name: namespace[variable] for name, variable in BUILT.items()}


def test_the_notebook_has_model_cells_with_the_teaching_lines():
    shown = "\n".join(model_cells())
    for line in ("keras.Sequential(", "layers.RandomFlip(", "layers.Conv2D(", "layers.Dropout(",
                 "BinaryCrossentropy(from_logits=True)", "CosineDecay(", "base.trainable = False",
                 "base(x, training=False)", "isinstance(layer, layers.BatchNormalization)",
                 "config.fine_tune_learning_rate", "config.fine_tune_at"):  # fmt: skip
        assert line in shown, line
    assert ".fit(" not in shown  # Training happens in the package's stages, with the model built here.


@pytest.mark.parametrize("name", list(BUILT))
def test_each_notebook_model_is_the_packages(name, notebook_models, package_models):
    assert digests(notebook_models[name]) == digests(package_models[name])
    assert digests(notebook_models[name])[1] is not None  # Compiled.


def test_the_fine_tuned_model_unfreezes_the_top_of_the_base_but_not_batch_norm(notebook_models, config):
    base = notebook_models["finetuned"].get_layer(models.BASE_NAME)
    trainable = [layer for layer in base.layers if layer.trainable and layer.weights]
    assert trainable and all(base.layers.index(layer) >= config.fine_tune_at for layer in trainable)
    assert not any(isinstance(layer, layers.BatchNormalization) for layer in trainable)


@pytest.mark.parametrize(
    ("old", "new", "name", "part"),
    [
        ("x = base(x, training=False)", "x = base(x)", "transfer", 0),  # A call argument, not a layer setting.
        ("BatchNormalization(momentum=0.9)", "BatchNormalization(momentum=0.99)", "scratch", 0),
        ("seed=config.seed + 2", "seed=config.seed + 3", "scratch", 0),
        ("not isinstance(layer, layers.BatchNormalization)", "True", "finetuned", 0),
        ("learning_rate=config.fine_tune_learning_rate", "learning_rate=3e-5", "finetuned", 1),
        ("decay_steps=config.scratch_epochs * steps_per_epoch", "decay_steps=9 * steps_per_epoch", "scratch", 1),
        ('BinaryAccuracy(threshold=0.0, name="accuracy")', 'BinaryAccuracy(name="accuracy")', "transfer", 1),
    ],
)
def test_a_changed_cell_gives_another_digest(old, new, name, part, config, frozen, package_models):
    sources = model_cells()
    assert sum(source.count(old) for source in sources) >= 1, f"the notebook no longer holds {old!r}"
    changed = run_cells([source.replace(old, new) for source in sources], config, frozen)[BUILT[name]]
    assert digests(changed)[part] != digests(package_models[name])[part]


def test_a_changed_recipe_gives_another_digest(config, notebook_models):
    """The other side: a package recipe built with another setting no longer matches the notebook's model."""
    assert digests(recipes.build_scratch_cnn(config, NUM_TRAIN + 100))[1] != digests(notebook_models["scratch"])[1]
    assert (
        digests(recipes.build_frozen_model(config.replace(dropout=0.5)))[0] != digests(notebook_models["transfer"])[0]
    )


def test_a_model_given_to_a_stage_must_be_compiled(config):
    with pytest.raises(ValueError, match="must be compiled"):
        study.train_scratch_cnn(config, None, model=models.build_scratch_cnn(64, 32))
