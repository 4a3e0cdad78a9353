"""What a data-efficiency sweep trains: its plans (subset sizes, seeds, `TrainingRule`) and its subsets."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from catsdogs_helpers.errors import InputError


@dataclasses.dataclass(frozen=True)
class TrainingRule:
    """How every point trains: the study's recipe and epochs, on a subset split into training and validation parts.

    Attributes:
        validation_fraction: Of each class's photos in a subset, validated on (rounded, at least
            `min_validation_per_class`); the rest train.
        min_epoch_photos: Photos per epoch when the training part holds fewer (it repeats, reshuffled every
            pass); `None`: as many as the whole training split holds, the study's epoch.
    """

    validation_fraction: float
    min_validation_per_class: int
    min_epoch_photos: int | None = None

    @property
    def min_photos_per_class(self) -> int:
        """Photos a class needs in a subset: its validation photos and one to train on."""
        return self.min_validation_per_class + 1

    def split(self, labels: np.ndarray, indices: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Splits a subset's photos (`indices` into `labels`) into sorted training and validation indices."""
        rng = np.random.default_rng([seed, len(indices)])
        train, validation = [], []
        for label in np.unique(labels[indices]):
            own = rng.permutation(indices[labels[indices] == label])
            count = max(self.min_validation_per_class, round(self.validation_fraction * len(own)))
            if count >= len(own):
                raise InputError(
                    f"A subset of {len(indices)} photos has {len(own)} of class {label}: too few to keep {count} for "
                    f"validation and train on the rest. Pass sizes of at least {2 * self.min_photos_per_class}."
                )
            validation.append(own[:count])
            train.append(own[count:])
        return np.sort(np.concatenate(train)), np.sort(np.concatenate(validation))

    def epoch_photos(self, num_train: int, num_split: int) -> int:
        """Photos per epoch: the part's `num_train`, or more (`min_epoch_photos`, or else the split's `num_split`)."""
        return max(num_train, num_split if self.min_epoch_photos is None else self.min_epoch_photos)

    def steps_per_epoch(self, num_train: int, num_split: int, batch_size: int) -> int:
        """Batches per epoch (see `epoch_photos`)."""
        return math.ceil(self.epoch_photos(num_train, num_split) / batch_size)


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """What a sweep trains.

    Attributes:
        sizes: Photos per subset (both parts), increasing; `0` (last) for the whole training split.
        num_seeds: Repeats of every point, each with its own subsets and seed.
    """

    sizes: tuple[int, ...]
    num_seeds: int
    rule: TrainingRule

    def replace(self, **changes: object) -> SweepPlan:
        """Returns a copy with some fields changed."""
        return dataclasses.replace(self, **changes)


_RULE = TrainingRule(validation_fraction=0.2, min_validation_per_class=2)
# The quick plan is made for a CPU (measured: benchmarks/results/sweep.md); default goes to the whole split.
SWEEP_PLANS = {
    "default": SweepPlan(sizes=(100, 300, 1000, 3000, 10000, 0), num_seeds=2, rule=_RULE),
    "quick": SweepPlan(sizes=(100, 300, 1000), num_seeds=1, rule=_RULE),
    "smoke": SweepPlan(sizes=(8, 16), num_seeds=1, rule=_RULE),
}


def get_sweep_plan(preset: str, sizes: Sequence[int] | None = None, num_seeds: int | None = None) -> SweepPlan:
    """Returns a preset's sweep plan, with its sizes or number of seeds changed where not `None`.

    Raises:
        InputError: If the preset is unknown, or `sizes` or `num_seeds` is invalid.
    """
    if preset not in SWEEP_PLANS:
        raise InputError(f"Unknown preset: expected one of {tuple(SWEEP_PLANS)}. Received: preset={preset!r}")
    plan = SWEEP_PLANS[preset]
    if sizes is not None:
        sizes = tuple(int(size) for size in sizes)
        positive = [size for size in sizes if size != 0]
        if not sizes or any(size < 0 for size in sizes) or positive != sorted(set(positive)) or sizes.count(0) > 1:
            raise InputError(
                "sizes must be positive, distinct and increasing numbers of training photos (0, last, for the "
                f"whole training split), e.g. 100,250,500. Received: sizes={','.join(map(str, sizes))}"
            )
        if 0 in sizes and sizes[-1] != 0:
            raise InputError(f"0 (the whole training split) must come last. Received: sizes={sizes}")
        smallest = 2 * plan.rule.min_photos_per_class
        if positive and positive[0] < smallest:
            raise InputError(
                f"A class-balanced subset needs at least {smallest} photos: {plan.rule.min_photos_per_class} of each "
                f"class, {plan.rule.min_validation_per_class} to validate on and one to train on. Pass sizes of "
                f"{smallest} or more. Received: sizes={','.join(map(str, sizes))}"
            )
        plan = plan.replace(sizes=sizes)
    if num_seeds is not None:
        if not isinstance(num_seeds, int) or num_seeds < 1:
            raise InputError(f"num_seeds must be a positive integer. Received: num_seeds={num_seeds!r}")
        plan = plan.replace(num_seeds=num_seeds)
    return plan


def choose_subsets(labels: np.ndarray, sizes: Sequence[int], seed: int) -> list[np.ndarray]:
    """Chooses nested, class-balanced subsets of a split's photos (`labels`, shape `(N,)`), drawn by the seed.

    A subset of `n` photos takes `n // k` of each of the `k` classes (the first `n % k` classes one more);
    size `0` is the whole split, not balanced. Returns one sorted int64 index array per size.

    Raises:
        InputError: If a class has too few photos for a size.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    orders = [rng.permutation(np.flatnonzero(labels == label)) for label in classes]
    subsets = []
    for size in sizes:
        if size == 0:
            subsets.append(np.arange(len(labels), dtype=np.int64))
            continue
        takes = [size // len(classes) + (index < size % len(classes)) for index in range(len(classes))]
        if any(take > len(order) for take, order in zip(takes, orders)):
            counts = ", ".join(f"class {label}: {len(order)}" for label, order in zip(classes, orders))
            raise InputError(
                f"A class-balanced subset of {size} training photos needs {max(takes)} of each class; the training "
                f"split has {counts}. Choose smaller sizes. Received: sizes={tuple(sizes)}"
            )
        subsets.append(np.sort(np.concatenate([order[:take] for take, order in zip(takes, orders)])))
    return subsets


def fit_sizes(plan: SweepPlan, labels: np.ndarray) -> tuple[tuple[int, ...], list[str]]:
    """Returns the plan's sizes that the training split can hold, class-balanced, and notes on what was left out.

    Raises:
        InputError: If none of the plan's sizes fits.
    """
    counts = np.bincount(np.asarray(labels))
    counts = counts[counts > 0]
    smallest = len(counts) * plan.rule.min_photos_per_class
    largest, total = int(counts.min()) * len(counts), len(labels)
    sizes = tuple(size for size in plan.sizes if size == 0 or size <= largest)
    if not sizes:
        raise InputError(
            f"The training split holds {total} photos ({largest} class-balanced): too few for the sweep's "
            f"smallest subset of {min(plan.sizes)}. Pass smaller sizes, e.g. --sizes "
            f"{max(smallest, largest // 4)},{max(smallest, largest // 2)}. Received: sizes={plan.sizes}"
        )
    notes = []
    left_out = [str(size) for size in plan.sizes if size not in sizes]
    if left_out:
        notes.append(f"{', '.join(left_out)} left out: the training split holds {total} photos, {largest} "
                     "class-balanced (pass sizes up to that, or 0 for the whole split)")  # fmt: skip
    if len(sizes) > 1 and sizes[-1] == 0 and sizes[-2] == total:
        sizes = sizes[:-1]
        notes.append(f"0 (the whole split) left out: it is the subset of {total} photos already in the list")
    elif sizes[-1] == 0:
        notes.append(f"0 stands for the whole split: {total} photos{', not class-balanced' * (total != largest)}")
    return sizes, notes
