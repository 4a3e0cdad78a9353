"""Shared test settings and fixtures.

Figures are drawn without a display. Real photos and ImageNet weights come from
`../shared` beside the checkout (read in place, never copied); tests that need
them are skipped, with the reason, in a clone outside that layout.
"""

from pathlib import Path

import matplotlib
import photo_factory  # tests/ is on sys.path under pytest (rootdir-relative imports).
import pytest

matplotlib.use("Agg")

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
SHARED_PHOTOS_DIR = SHARED_DIR / "data" / "cats_vs_dogs_small"
SHARED_WEIGHTS_1_0 = SHARED_DIR / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


@pytest.fixture(scope="session")
def shared_photos() -> Path:
    """The real photos, `../shared/data/cats_vs_dogs_small` (train/validation/test, cat/dog)."""
    if not SHARED_PHOTOS_DIR.is_dir():
        pytest.skip(
            "../shared/data/cats_vs_dogs_small is absent (a clone outside the CI layout); real-photo tests skipped"
        )
    return SHARED_PHOTOS_DIR


@pytest.fixture(scope="session")
def shared_weights_1_0() -> Path:
    """The ImageNet MobileNetV2 no-top weights for alpha 1.0 at 224 px, from `../shared/weights`."""
    if not SHARED_WEIGHTS_1_0.is_file():
        pytest.skip(
            f"../shared/weights/{SHARED_WEIGHTS_1_0.name} is absent (a clone outside the CI layout); "
            "tests that need the ImageNet weights skipped"
        )
    return SHARED_WEIGHTS_1_0


@pytest.fixture
def make_photo_folder():
    """Returns `photo_factory.make_photo_folder(root, num_per_class=20, size=48, ...)`.

    Example: `root = make_photo_folder(tmp_path / "photos", num_per_class=10, size=32)`.
    """
    return photo_factory.make_photo_folder
