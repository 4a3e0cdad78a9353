"""The data-efficiency sweep: nested class-balanced subsets, the training rule, the table, the figure, a real run."""

import dataclasses
import itertools
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from photo_factory import make_presplit_folder

from catsdogs_helpers import plots, report, sweep
from catsdogs_helpers.config import MODEL_NAMES, get_config
from catsdogs_helpers.errors import InputError

LABELS = np.array([0] * 30 + [1] * 20)  # 30 cats, 20 dogs, in order.


def test_subsets_are_nested_class_balanced_and_drawn_by_the_seed():
    subsets = sweep.choose_subsets(LABELS, (4, 10, 40, 0), seed=7)
    assert [len(subset) for subset in subsets] == [4, 10, 40, 50]
    for small, large in itertools.pairwise(subsets):
        assert set(small) <= set(large)
    for subset in subsets[:3]:
        assert np.bincount(LABELS[subset]).tolist() == [len(subset) // 2] * 2
    assert np.array_equal(subsets[3], np.arange(50))  # 0: the whole split, as it is.
    other = sweep.choose_subsets(LABELS, (10,), seed=8)[0]
    assert not np.array_equal(other, subsets[1])  # Another seed, other photos.
    assert np.array_equal(sweep.choose_subsets(LABELS, (10,), seed=7)[0], subsets[1])


def test_an_odd_size_gives_the_first_class_the_extra_photo():
    (subset,) = sweep.choose_subsets(LABELS, (5,), seed=0)
    assert np.bincount(LABELS[subset]).tolist() == [3, 2]


def test_a_subset_larger_than_a_class_allows_is_refused_with_the_counts():
    with pytest.raises(InputError, match=r"needs 21 of each class; the training split has class 0: 30, class 1: 20"):
        sweep.choose_subsets(LABELS, (42,), seed=0)


def test_sizes_the_split_cannot_hold_are_left_out_saying_so_and_none_fitting_is_an_error():
    plan = sweep.get_sweep_plan("quick", sizes=(10, 40, 100, 0))
    sizes, notes = sweep.fit_sizes(plan, LABELS)
    assert sizes == (10, 40, 0)  # 40 = 2 x 20 dogs; 100 is too many.
    assert notes == [
        "100 left out: the training split holds 50 photos, 40 class-balanced (pass sizes up to that, "
        "or 0 for the whole split)",
        "0 stands for the whole split: 50 photos, not class-balanced",
    ]
    balanced = np.array([0, 1] * 12)  # 24 photos: 24 and 0 are the same subset, trained once.
    assert sweep.fit_sizes(sweep.get_sweep_plan("smoke", sizes=(8, 24, 0)), balanced) == (
        (8, 24),
        ["0 (the whole split) left out: it is the subset of 24 photos already in the list"],
    )
    with pytest.raises(InputError, match=r"holds 50 photos \(40 class-balanced\): too few .* --sizes 10,20"):
        sweep.fit_sizes(sweep.get_sweep_plan("quick", sizes=(100, 250)), LABELS)


RULE = sweep.TrainingRule(validation_fraction=0.2, min_validation_per_class=2, min_epoch_photos=100)


def test_the_rule_carves_a_stratified_validation_part_from_the_subset_itself():
    (subset,) = sweep.choose_subsets(LABELS, (30,), seed=3)
    train, validation = RULE.split(LABELS, subset, seed=3)
    assert np.bincount(LABELS[validation]).tolist() == [3, 3]  # 20% of each class's 15.
    assert not set(train) & set(validation) and np.array_equal(np.sort(np.concatenate([train, validation])), subset)
    assert np.array_equal(RULE.split(LABELS, subset, seed=3)[1], validation)  # Seeded.
    assert not np.array_equal(RULE.split(LABELS, subset, seed=4)[1], validation)
    (small,) = sweep.choose_subsets(LABELS, (6,), seed=3)  # 3 per class: 2 to validate (the minimum), 1 to train.
    train, validation = RULE.split(LABELS, small, seed=3)
    assert np.bincount(LABELS[validation]).tolist() == [2, 2] and np.bincount(LABELS[train]).tolist() == [1, 1]
    (too_small,) = sweep.choose_subsets(LABELS, (4,), seed=3)
    with pytest.raises(InputError, match="too few to keep 2 for validation"):
        RULE.split(LABELS, too_small, seed=3)


def test_an_epoch_is_the_training_part_or_the_rules_minimum_of_photos():
    assert RULE.steps_per_epoch(num_train=40, num_split=2000, batch_size=32) == 4  # 100 photos: the part repeated.
    assert RULE.steps_per_epoch(num_train=800, num_split=2000, batch_size=32) == 25
    study_epoch = sweep.get_sweep_plan("quick").rule  # The plans': the whole split's photos, the study's epoch.
    assert study_epoch.epoch_photos(num_train=80, num_split=1999) == 1999
    assert study_epoch.steps_per_epoch(num_train=80, num_split=1999, batch_size=32) == 63


def test_training_stops_when_validation_stops_improving_and_keeps_the_best_epoch():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.5), keras.losses.BinaryCrossentropy(from_logits=True))
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    wrong = tf.data.Dataset.from_tensor_slices((x, 1 - y)).batch(16)  # Learning the training part hurts it.
    fitted = sweep._fit(model, train, wrong, epochs=50, steps=None, patience=2, verbose=0)
    assert fitted["stopped_early"] and fitted["epochs"] == 3 and fitted["best_epoch"] == 1
    assert fitted["train_seconds"] > 0 and len(fitted["val_loss"]) == 3
    assert min(fitted["val_loss"]) == fitted["val_loss"][0] < fitted["val_loss"][-1]
    # The weights kept are the best epoch's, not the last's.
    assert model.evaluate(wrong, verbose=0) == pytest.approx(fitted["val_loss"][0], rel=1e-5)


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ((250, 100), "increasing"),
        ((100, 100), "distinct"),
        ((-5,), "positive"),
        ((0, 100), "must come last"),
        ((), ""),
        ((1,), "at least 6 photos: 3 of each class, 2 to validate on and one to train on"),
        ((5, 10), "at least 6 photos"),
    ],
)
def test_bad_sizes_are_refused_naming_the_value(sizes, message):
    with pytest.raises(InputError, match="Received: sizes=") as raised:
        sweep.get_sweep_plan("quick", sizes=sizes)
    assert message in str(raised.value)


def test_the_plans_fit_their_presets():
    quick = sweep.get_sweep_plan("quick")
    assert quick.sizes == (100, 300, 1000) and quick.num_seeds == 1
    default = sweep.get_sweep_plan("default")
    assert default.sizes[-1] == 0 and default.num_seeds >= 2  # Up to the whole training split, several seeds.
    assert default.rule == quick.rule  # One rule: the default plan only adds sizes and seeds.
    assert all(plan.rule.min_epoch_photos is None for plan in sweep.SWEEP_PLANS.values())  # The study's epoch.
    assert sweep.get_sweep_plan("quick", num_seeds=3).num_seeds == 3
    with pytest.raises(InputError, match="num_seeds=0"):
        sweep.get_sweep_plan("quick", num_seeds=0)


def fake_sweep() -> dict:
    points = []
    for approach, accuracy in (("scratch", 0.6), ("transfer", 0.95), ("finetuned", 0.96)):
        for size in (100, 1000):
            for seed, delta in ((1, -0.01), (2, 0.01)):
                correct = round((accuracy + delta + size / 1e5) * 1000)
                points.append({"approach": approach, "size": size, "seed": seed, "accuracy": correct / 1000,
                               "num_correct": correct, "num_images": 1000, "train_seconds": size / 10.0,
                               "num_train": size * 4 // 5, "num_validation": size // 5, "epochs": 20 + seed,
                               "best_epoch": 12, "stopped_early": size == 100})  # fmt: skip
    plan = sweep.get_sweep_plan("quick", sizes=(100, 1000), num_seeds=2)
    stopping = {"patience": {"scratch": 55, "transfer": 8, "finetuned": 8},
                "max_epochs": {"scratch": 55, "transfer": 20, "finetuned": 3}}  # fmt: skip
    return {"points": points, "sizes": [100, 1000], "plan": dataclasses.asdict(plan), "stopping": stopping,
            "num_test_images": 1000, "num_train_photos": 1999, "seconds": 60.0}  # fmt: skip


def test_the_summary_averages_seeds_and_gives_the_interval_and_the_seeds_range():
    rows = sweep.summarize_sweep(fake_sweep())
    assert [(row["approach"], row["size"]) for row in rows][:2] == [("scratch", 100), ("scratch", 1000)]
    first = rows[0]
    assert first["accuracy"] == pytest.approx(0.601) and first["num_seeds"] == 2
    assert first["seed_range"] == [0.591, 0.611]
    low, high = first["accuracy_interval"]
    assert low == pytest.approx(0.5705, abs=1e-3) and high == pytest.approx(0.6307, abs=1e-3)  # Wilson, 601/1000.


def test_the_table_has_one_row_per_size_with_intervals_seed_ranges_and_times():
    table = sweep.format_sweep_table(fake_sweep())
    lines = table.splitlines()
    assert lines[0] == "| photos in the subset | scratch | time | transfer | time | finetuned | time |"
    assert lines[2].startswith("| 100 | 60.1% (57.0–63.1, seeds 59.1–61.1) | 10 s | 95.1%")
    assert lines[3].startswith("| 1,000 | 61.0%")


def test_the_report_states_the_rule_and_how_each_point_stopped():
    text = "\n".join(report.describe_sweep(fake_sweep()))
    assert "20% for validation (at least 2 photos per class)" in text
    assert "An epoch is as many photos as the whole training split holds (1,999, the study's epoch)" in text
    assert (
        "the scratch CNN every one of its 55 epochs; the head until the validation loss has not improved for 8 "
        "epochs, at most 20; fine-tuning every one of its 3 epochs."
    ) in text  # Patience 8 > 3: it cannot stop.
    assert "| 100 (80 + 20) | 12 / 21; 12 / 22 |" in text  # Stopped early: no star.
    assert "| 1,000 (800 + 200) | 12 / 21*; 12 / 22* |" in text  # Ran up to the cap.
    older = fake_sweep()  # A sweep.json from 0.4.x: one patience for the three approaches.
    older["stopping"]["patience"] = 8
    assert "the scratch CNN until the validation loss has not improved for 8 epochs, at most 55" in "\n".join(
        report.describe_sweep(older)
    )
    earlier = fake_sweep()  # A sweep.json from before the rule (a report rewritten into an old folder).
    del earlier["stopping"]
    for point in earlier["points"]:
        del point["best_epoch"]
    text = "\n".join(report.describe_sweep(earlier))
    assert "fixed budget" in text and "Epochs per point" not in text


def test_the_figure_shows_accuracy_and_time_against_photos_on_log_scales(tmp_path):
    data = fake_sweep()
    figure = plots.plot_sweep(sweep.summarize_sweep(data), data["points"], title="quick sweep, 2 CPU cores")
    accuracy_ax, time_ax = figure.axes
    assert accuracy_ax.get_xscale() == "log" and time_ax.get_yscale() == "log"
    assert figure.get_suptitle() == "quick sweep, 2 CPU cores"
    assert accuracy_ax.get_xlabel() == "photos in the subset, training + validation parts (log scale)"
    assert [label.get_text() for label in accuracy_ax.get_xticklabels()] == ["100", "1,000"]
    assert len(accuracy_ax.collections) >= 3  # The seeds' dots (and error bars) of each approach.
    path = plots.save_figure(figure, tmp_path / "sweep.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(("scratch_patience", "expected"), [(None, 4), (2, 2)])
def test_each_point_trains_with_the_studys_epochs_and_patience(tmp_path, monkeypatch, scratch_patience, expected):
    """The scratch CNN's points train every epoch, as the study's does, unless given a patience."""
    photos = make_presplit_folder(tmp_path / "photos", {"train": 8, "validation": 2, "test": 2})
    config = get_config("smoke", data=str(photos), output_dir=str(tmp_path / "out"))
    config = config.replace(scratch_epochs=4, transfer_epochs=3, fine_tune_epochs=2, patience=1,
                            scratch_patience=scratch_patience)  # fmt: skip
    asked = []

    def record(model, train, validation, epochs, steps, patience, verbose):
        asked.append((epochs, patience))
        return {"epochs": 1, "best_epoch": 1, "stopped_early": False, "train_seconds": 0.0, "val_loss": [1.0]}

    monkeypatch.setattr(sweep, "_fit", record)
    results = sweep.run_sweep(config, sweep.get_sweep_plan("smoke", sizes=(6,)), verbose=0)
    assert asked == [(3, 1), (2, 1), (4, expected)]  # The head, fine-tuning, the scratch CNN.
    assert results["stopping"]["patience"] == {"scratch": expected, "transfer": 1, "finetuned": 1}


@pytest.mark.slow
def test_a_sweep_writes_its_results_and_a_rerun_reuses_the_finished_points(tmp_path, capsys):
    photos = make_presplit_folder(tmp_path / "photos", {"train": 8, "validation": 2, "test": 5})
    config = get_config("smoke", data=str(photos), output_dir=str(tmp_path / "out"))
    plan = sweep.get_sweep_plan("smoke", sizes=(6, 0))
    results = sweep.run_sweep(config, plan, verbose=0)
    assert results["sizes"] == [6, 16]
    assert {(p["approach"], p["size"]) for p in results["points"]} == {
        (approach, size) for approach in MODEL_NAMES for size in (6, 16)
    }
    for point in results["points"]:
        assert point["num_images"] == 10  # The whole test split, every point.
        assert point["num_correct"] == round(point["accuracy"] * 10)
        assert point["accuracy_interval"][0] <= point["accuracy"] <= point["accuracy_interval"][1]
        assert (point["num_train"], point["num_validation"]) == ((2, 4) if point["size"] == 6 else (12, 4))
        assert point["best_epoch"] == point["epochs"] == 1  # The smoke preset's 1 epoch of each.
    saved = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert saved["points"] == results["points"] and len(saved["summary"]) == 6
    assert saved["plan"]["rule"] == dataclasses.asdict(plan.rule)
    assert (tmp_path / "out" / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "| photos in the subset |" in (tmp_path / "out" / "sweep.md").read_text()
    capsys.readouterr()
    again = sweep.run_sweep(config, plan, verbose=0)
    output = capsys.readouterr().out
    assert "reusing the finished point" in output
    assert "computing the frozen base's features" not in output  # Every point reused: the base never runs.
    assert again["points"] == results["points"]
    no_fine_tuning = config.replace(fine_tune_epochs=0)  # Cheaper points for the two checks below.
    other = sweep.run_sweep(no_fine_tuning, sweep.get_sweep_plan("smoke", sizes=(6,)), 0)
    assert "reusing" not in capsys.readouterr().out  # Another setting: trained again.
    assert [p["approach"] for p in other["points"]] == ["transfer", "scratch"]  # 0 epochs: no fine-tuning.
    longer = plan.replace(sizes=(6,), rule=dataclasses.replace(plan.rule, min_epoch_photos=8))
    sweep.run_sweep(no_fine_tuning, longer, verbose=0)  # The point just saved, but for the rule.
    assert "reusing" not in capsys.readouterr().out  # Another rule: trained again.


def test_the_hint_to_add_a_sweep_to_a_copied_runs_report_runs_the_study_into_the_folder_used(tmp_path):
    recorded = "catsdogs run --preset smoke --data /photos --weights none --image-size 64 --output /elsewhere/out1"
    copied = tmp_path / "my copy"
    copied.mkdir()
    (copied / "report.md").write_text("# The study\n")
    (copied / "results.json").write_text(json.dumps({"command": recorded}))
    hint = sweep.describe_report_update(copied)
    assert hint.startswith(f"{copied / 'report.md'} was written before this sweep; to add the sweep to it, run")
    assert hint.endswith(": catsdogs run --preset smoke --data /photos --weights none --image-size 64 --output "
                         f"'{copied}'")  # fmt: skip
    (copied / "results.json").write_text("[1, 2, 3]")
    assert "--output" in sweep.describe_report_update(copied) and str(copied) in sweep.describe_report_update(copied)
    (copied / "results.json").write_text('{"comm')
    assert sweep.describe_report_update(copied) is None
    assert sweep.describe_report_update(tmp_path) is None
