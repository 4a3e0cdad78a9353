"""Tests of `catsdogs_helpers.preflight`: what is checked before anything trains."""

import os

import pytest

from catsdogs_helpers import preflight
from catsdogs_helpers.config import get_config
from catsdogs_helpers.errors import InputError, MissingInputError


def test_output_dir_is_created_and_resolved(tmp_path):
    output = preflight.check_output_dir(tmp_path / "a" / "b")
    assert output.is_dir() and output.is_absolute()
    assert list(output.iterdir()) == []  # The write test leaves nothing behind.


@pytest.mark.parametrize("below", ["", "child"])
def test_output_dir_that_is_or_lies_under_a_file_is_refused(tmp_path, below):
    a_file = tmp_path / "results.txt"
    a_file.write_text("mine")
    with pytest.raises(InputError, match=f"{a_file} is a file"):
        preflight.check_output_dir(a_file / below if below else a_file)
    assert a_file.read_text() == "mine"


def test_an_export_output_that_exists_or_lies_under_a_file_is_refused_in_one_line(tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(InputError, match=r"already exists: pass another --output"):
        preflight.check_output_file(a_file)
    with pytest.raises(InputError, match=f"{a_file} is a file, not a folder.*Received: output="):
        preflight.check_output_file(a_file / "model.tflite")
    assert a_file.read_text() == "mine"
    assert preflight.check_output_file(tmp_path / "new" / "m.tflite") == tmp_path / "new" / "m.tflite"


def test_output_dir_inside_the_data_folder_is_refused(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for output in (photos, photos / "outputs"):
        with pytest.raises(InputError, match="inside the data folder"):
            preflight.check_output_dir(output, data=str(photos))
    assert list(photos.iterdir()) == []


def test_unwritable_output_dir_is_refused(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(preflight.tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(InputError, match="cannot be written \\(Permission denied\\)"):
        preflight.check_output_dir(tmp_path / "out")


def test_memory_check_refuses_a_cache_that_cannot_fit(monkeypatch):
    monkeypatch.setattr(preflight, "available_memory_bytes", lambda: 8 * 2**30)
    preflight.check_memory(23_262, 224, cache_dir=None)  # 3.3 GiB: fits in 8.
    with pytest.raises(InputError, match=r"needs 31\.8 GiB; this machine has 8\.0 GiB") as raised:
        preflight.check_memory(23_262, 700, cache_dir=None)
    assert "cache_dir" in str(raised.value) and "image_size=700" in str(raised.value)
    preflight.check_memory(23_262, 700, cache_dir="/tmp/cache")  # A file cache is not held in memory.


def test_estimate_cache_bytes():
    assert preflight.estimate_cache_bytes(1000, 224) == 1000 * 224 * 224 * 3


def test_count_photos_of_a_folder_and_of_tfds(tmp_path, make_photo_folder):
    photos = make_photo_folder(tmp_path / "photos", num_per_class=10, size=16)
    assert preflight.count_photos(get_config("smoke", data=str(photos), max_images_per_split=None)) == 20
    assert preflight.count_photos(get_config("quick")) == 6000  # 3 splits of at most 2,000.
    assert preflight.count_photos(get_config("default")) == preflight.TFDS_NUM_PHOTOS


def test_missing_weights_file_is_refused_with_its_path(tmp_path):
    missing = tmp_path / "weights.h5"
    with pytest.raises(MissingInputError, match=str(missing)):
        preflight.check_weights(str(missing), alpha=1.0, image_size=224)


def test_weights_that_do_not_fit_name_the_alpha_of_the_file_and_of_the_preset(tmp_path):
    weights = tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    weights.write_bytes(os.urandom(64))
    with pytest.raises(InputError) as raised:
        preflight.check_weights(str(weights), alpha=0.35, image_size=64, preset="smoke")
    message = str(raised.value)
    assert "alpha=0.35" in message and "name says alpha 1.0" in message and "'smoke' preset" in message
    assert "--set alpha=1.0" in message


@pytest.mark.shared
def test_the_shared_weights_pass_with_their_alpha_and_fail_with_another(shared_weights_1_0):
    preflight.check_weights(str(shared_weights_1_0), alpha=1.0, image_size=224)
    with pytest.raises(InputError, match=r"name says alpha 1\.0"):
        preflight.check_weights(str(shared_weights_1_0), alpha=0.35, image_size=224, preset="smoke")
