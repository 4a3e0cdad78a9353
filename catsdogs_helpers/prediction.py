"""Classifying single photos with a trained model."""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np

from catsdogs_helpers.decoding import UnreadablePhotoError, decode_photo, printable_path
from catsdogs_helpers.metrics import predict_classes, sigmoid


@dataclasses.dataclass(frozen=True)
class PhotoPrediction:
    """A model's answer for one photo: the class name and its probability, or the `error` that kept it unread."""

    path: str
    label: str | None
    probability: float | None
    error: str | None = None

    def describe(self) -> str:
        """Returns one line such as `cat.jpg: cat (97.1%)`."""
        if self.error is not None:
            return f"{self.path}: error: {self.error}"
        return f"{self.path}: {self.label} ({100 * self.probability:.1f}%)"


def classify_photos(
    model: keras.Model, paths: list[str | os.PathLike], class_names: tuple[str, ...]
) -> list[PhotoPrediction]:
    """Classifies photos, resized to the model's input size, one `PhotoPrediction` per path; a photo that cannot be read
    gets one with an `error`, the others are still classified."""
    image_size = model.input_shape[1]
    predictions: list[PhotoPrediction | None] = []
    images, positions = [], []
    for path in paths:
        try:
            images.append(decode_photo(path, image_size))
            positions.append(len(predictions))
            predictions.append(None)
        except UnreadablePhotoError as error:
            predictions.append(PhotoPrediction(printable_path(path), None, None, str(error)))
    if images:
        logits = model.predict(np.stack(images), verbose=0).reshape(-1)
        for position, label, class_1_probability in zip(positions, predict_classes(logits), sigmoid(logits)):
            probability = float(class_1_probability if label == 1 else 1.0 - class_1_probability)
            predictions[position] = PhotoPrediction(printable_path(paths[position]), class_names[label], probability)
    return predictions
