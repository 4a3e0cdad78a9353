"""Tests of what identifies a training stage: each stage's manifest holds what its result depends on."""

import dataclasses
import types

import pytest

from catsdogs_helpers import models, stage_manifest
from catsdogs_helpers.config import MODEL_NAMES, StudyConfig, depends_on, get_config

SPLITS = types.SimpleNamespace(content_key="photos-v1")


def _manifests(config, splits=SPLITS, upstream=None):
    scratch = models.build_scratch_cnn(config.image_size, config.scratch_image_size, dropout=config.scratch_dropout)
    transfer = models.build_transfer_model(config.image_size, None, config.alpha, config.dropout)
    return {
        "scratch": stage_manifest.build_stage_manifest(config, "scratch", scratch, splits),
        "transfer": stage_manifest.build_stage_manifest(config, "transfer", transfer, splits),
        "finetuned": stage_manifest.build_stage_manifest(config, "finetuned", transfer, splits, upstream),
    }


@pytest.fixture(scope="module")
def base():
    config = get_config("smoke", data="photos", output_dir="out")
    return config, _manifests(config)


def test_where_files_go_is_not_part_of_any_stage(base):
    config, manifests = base
    moved = config.replace(output_dir="/elsewhere/out", cache_dir="/tmp/cache", preset="quick")
    assert _manifests(moved) == manifests  # A notebook's relative folder and the CLI's absolute one agree.


@pytest.mark.parametrize(
    ("change", "changed_stages"),
    [
        ({"scratch_learning_rate": 0.01}, {"scratch"}),
        ({"scratch_dropout": 0.5}, {"scratch"}),
        ({"dropout": 0.5}, {"transfer", "finetuned"}),  # The fine-tuned model has the same head.
        ({"fine_tune_at": 50}, {"finetuned"}),
        ({"seed": 7}, {"scratch", "transfer", "finetuned"}),
    ],
)
def test_a_setting_changes_only_the_stages_that_depend_on_it(base, change, changed_stages):
    config, manifests = base
    changed = _manifests(config.replace(**change))
    assert {stage for stage in manifests if changed[stage] != manifests[stage]} == changed_stages


def test_data_architecture_upstream_and_weights_file_are_recorded(base, tmp_path):
    config, manifests = base
    assert all(manifest["data"] == "photos-v1" for manifest in manifests.values())
    assert _manifests(config, types.SimpleNamespace(content_key="photos-v2"))["scratch"] != manifests["scratch"]
    assert manifests["scratch"]["architecture"] != manifests["transfer"]["architecture"]
    upstream = types.SimpleNamespace(to_dict=lambda: {"best_epoch": 3})
    assert _manifests(config, upstream=upstream)["finetuned"]["upstream"] not in (
        None,
        manifests["finetuned"]["upstream"],
    )
    assert set(manifests["scratch"]["versions"]) == {"tensorflow", "keras", "catsdogs_helpers"}
    weights = tmp_path / "weights.h5"
    weights.write_bytes(b"one")
    first = stage_manifest.build_stage_manifest(
        config.replace(weights=str(weights)), "transfer", models.build_scratch_cnn(64, 32), SPLITS
    )
    weights.write_bytes(b"two")  # The same path, other contents.
    second = stage_manifest.build_stage_manifest(
        config.replace(weights=str(weights)), "transfer", models.build_scratch_cnn(64, 32), SPLITS
    )
    assert first["settings"]["weights"].startswith("sha256:") and first != second


def test_every_setting_says_which_results_it_changes():
    # A new StudyConfig field without `_setting(default, *results)` would be in no manifest: a finished stage
    # trained with another value of it would be reused.
    undeclared = [field.name for field in dataclasses.fields(StudyConfig) if "changes" not in field.metadata]
    assert not undeclared, f"declare which results these settings change (config._setting): {undeclared}"
    results = {result for field in dataclasses.fields(StudyConfig) for result in field.metadata["changes"]}
    assert results == {*MODEL_NAMES, "sweep"}


def test_a_stage_manifest_holds_the_settings_declared_for_it(base):
    _, manifests = base
    for stage in MODEL_NAMES:
        assert set(manifests[stage]["settings"]) == set(depends_on(stage))
    assert {"image_size", "batch_size", "seed", "patience"} <= set(depends_on("finetuned"))
    assert "scratch_patience" in depends_on("scratch") and "patience" not in depends_on("scratch")
    assert not {"output_dir", "cache_dir", "preset"} & {name for stage in MODEL_NAMES for name in depends_on(stage)}
