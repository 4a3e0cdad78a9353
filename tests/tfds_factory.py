"""A fake download of TensorFlow Datasets' `cats_vs_dogs`, prepared by the real tfds builder.

`tfds.testing.mock_data` patches `tfds.load` inside one Python process only. The
command line runs the notebook in a separate kernel process, so its test needs a
dataset that tfds finds on disk instead: this module writes a small zip laid out
like the real download (`PetImages/Cat/N.jpg`, `PetImages/Dog/N.jpg`, plus the
1,738 non-JFIF files the builder expects to skip), lets the real
`cats_vs_dogs` builder prepare it into a data folder, and that folder is then
passed to the kernel as `TFDS_DATA_DIR`.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from unittest import mock

import numpy as np
import tensorflow_datasets as tfds
from photo_factory import synthetic_photo
from PIL import Image

NUM_CORRUPT_IMAGES = 1738  # The builder checks that exactly this many files are skipped.


def write_fake_download(path: str | Path, num_per_class: int = 20, size: int = 48) -> Path:
    """Writes a zip shaped like the real `kagglecatsanddogs_5340.zip`."""
    path = Path(path)
    with zipfile.ZipFile(path, "w") as archive:
        for folder, class_name in (("Cat", "cat"), ("Dog", "dog")):
            for index in range(num_per_class):
                buffer = io.BytesIO()
                Image.fromarray(synthetic_photo(class_name, size, seed=index)).save(buffer, format="JPEG")
                archive.writestr(f"PetImages/{folder}/{index}.jpg", buffer.getvalue())
        for index in range(NUM_CORRUPT_IMAGES):
            archive.writestr(f"PetImages/Cat/{10_000 + index}.jpg", np.zeros(16, np.uint8).tobytes())
        archive.writestr("readme[1].txt", b"fake download for tests")
    return path


def prepare_fake_cats_vs_dogs(data_dir: str | Path, num_per_class: int = 20) -> Path:
    """Prepares `cats_vs_dogs` into `data_dir` from a fake download, offline."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    download = write_fake_download(data_dir / "fake_download.zip", num_per_class)
    with mock.patch.object(tfds.download.DownloadManager, "download", lambda self, url_or_urls: str(download)):
        tfds.builder("cats_vs_dogs", data_dir=str(data_dir)).download_and_prepare()
    return data_dir
