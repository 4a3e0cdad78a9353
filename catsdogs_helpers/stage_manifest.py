"""What identifies a training stage's result: the manifest its folder holds (see `training.train_stage`)."""

from __future__ import annotations

import keras

from catsdogs_helpers import data, models, runtime
from catsdogs_helpers.config import StudyConfig, depends_on
from catsdogs_helpers.digests import hash_file, hash_json
from catsdogs_helpers.stage_files import StageResult


def build_stage_manifest(
    config: StudyConfig,
    stage: str,
    model: keras.Model,
    splits: data.ImageSplits,
    upstream: StageResult | None = None,
    num_replicas: int = 1,
) -> dict[str, object]:
    """Returns what identifies a training stage's result (JSON-serializable), so that no run reuses another's.
    Its `settings` are those of `config.depends_on(stage)` (a weights file named by its SHA-256), and `num_replicas`
    when more than one; `upstream` digests the result of the stage this one continues."""
    settings: dict[str, object] = {name: getattr(config, name) for name in depends_on(stage)}
    if settings.get("weights") not in (None, "imagenet"):
        settings["weights"] = f"sha256:{hash_file(str(config.weights))}"
    if num_replicas > 1:  # Absent on one device, so that earlier single-device runs are still reused.
        settings["num_replicas"] = num_replicas
    return {
        "stage": stage,
        "settings": settings,
        "architecture": models.describe_architecture(model),
        "compilation": models.describe_compilation(model),
        "data": splits.content_key,
        "upstream": None if upstream is None else hash_json(upstream.to_dict()),
        "versions": runtime.describe_training_versions(),
    }
