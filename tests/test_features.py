"""Tests of the cached-feature path: features computed once, the head trained on them."""

import json

import keras
import numpy as np
import pytest
from model_factory import SIZE, tiny_data

from catsdogs_helpers import data, evaluation, features, models


def test_cached_feature_head_makes_the_full_model_predict_like_the_head(tmp_path):
    keras.utils.set_random_seed(0)
    model = models.build_transfer_model(SIZE, weights=None, alpha=0.35, augmentation=models.build_augmentation(0))
    models.compile_model(model, 1e-2)
    result = features.train_head_on_features(
        model, tiny_data(), tiny_data(16, seed=1), epochs=3, output_dir=tmp_path, verbose=0
    )
    assert result.num_epochs == 3
    stored = json.loads((tmp_path / "transfer" / "result.json").read_text())["result"]
    assert stored["train_seconds"] == pytest.approx(result.train_seconds)  # Feature extraction included.
    pooled, _ = features.extract_features(features.build_feature_extractor(model), tiny_data(16, seed=2))
    from_head = features.build_head(model).predict(pooled, verbose=0)
    images = np.concatenate([batch for batch, _ in tiny_data(16, seed=2).as_numpy_iterator()])
    np.testing.assert_allclose(model.predict(images, verbose=0), from_head, rtol=1e-4, atol=1e-4)


@pytest.mark.shared
def test_pretrained_features_separate_real_cats_and_dogs_in_seconds(tmp_path, shared_photos, shared_weights_1_0):
    """Proof that the ImageNet features are really used: random features cannot reach 90%.

    150 photos per split (74 cats and 76 dogs to test on): 96.7-97.3% over three seeds, 4 or 5 mistakes where 15
    are allowed (300 photos gave 97.3-97.7%, at twice the cost).
    """
    splits = data.load_splits(str(shared_photos), image_size=224, max_images_per_split=150, verbose=False)
    keras.utils.set_random_seed(0)
    model = models.compile_model(models.build_transfer_model(224, weights=str(shared_weights_1_0)), 1e-3)
    result = features.train_head_on_features(
        model,
        splits.train_in_order,
        splits.validation,
        epochs=15,
        output_dir=tmp_path,
        verbose=0,
    )
    accuracy = evaluation.evaluate_model(model, splits.test, "transfer").metrics["accuracy"]
    assert accuracy >= 0.90, f"test accuracy {accuracy:.3f} after {result.train_seconds:.0f} s"


def test_the_head_is_compiled_as_the_model_is(tmp_path):
    model = models.build_transfer_model(SIZE, weights=None, alpha=0.35)
    with pytest.raises(ValueError, match="Compile the model"):
        features.train_head_on_features(model, tiny_data(), tiny_data(16, seed=1), epochs=1, output_dir=tmp_path)
    models.compile_model(model, 3e-4, optimizer="rmsprop", decay_steps=7)
    seen = {}
    original = features.train_stage

    def spy(head, *args, **kwargs):
        seen["head"] = head
        return original(head, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(features, "train_stage", spy)
        features.train_head_on_features(model, tiny_data(), tiny_data(16, seed=1), epochs=1, output_dir=tmp_path,
                                        verbose=0)  # fmt: skip
    head = seen["head"]
    assert isinstance(head.optimizer, keras.optimizers.RMSprop) and head.optimizer is not model.optimizer
    assert models.describe_compilation(head) == models.describe_compilation(model)
