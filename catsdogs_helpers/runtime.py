"""Seeds, devices, numeric precision and "are we in Colab?"; nothing runs at import time."""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
import sys
from collections.abc import Sequence

import keras
import tensorflow as tf

# Compute capability from which float16 tensor cores make mixed precision pay off.
_MIXED_PRECISION_MIN_CAPABILITY = (7, 0)

# TensorFlow reads this when it creates its CPU allocator (`ProcessState::GetCPUAllocator`, process_state.cc).
_BFC_CPU_ALLOCATOR_VARIABLE = "TF_CPU_ALLOCATOR_USE_BFC"


def prefer_bfc_cpu_allocator() -> str | None:
    """Sets `TF_CPU_ALLOCATOR_USE_BFC=true` (TensorFlow's pooling CPU allocator) unless the variable is set already.
    TensorFlow reads it once, when it starts; returns `None`, or a one-line note if it has started already."""
    if _BFC_CPU_ALLOCATOR_VARIABLE in os.environ:
        return None
    if _tensorflow_started():
        return (
            "Note: TensorFlow was already running when the study asked for its BFC allocator, so CPU tensors use "
            "TensorFlow's default allocator (slower on a CPU). Call study.start_study (or "
            "runtime.prefer_bfc_cpu_allocator) before any TensorFlow operation, or set TF_CPU_ALLOCATOR_USE_BFC=true "
            "before starting Python."
        )
    os.environ[_BFC_CPU_ALLOCATOR_VARIABLE] = "true"
    return None


def _tensorflow_started() -> bool:
    """Whether TensorFlow's eager runtime, which creates the CPU allocator, has started in this process."""
    from tensorflow.python.eager import context

    return bool(getattr(context.context(), "_initialized", True))


def describe_cpu_allocator() -> str:
    """Returns `"bfc"` if `TF_CPU_ALLOCATOR_USE_BFC` asked for the BFC allocator, `"default"` otherwise."""
    return "bfc" if os.environ.get(_BFC_CPU_ALLOCATOR_VARIABLE, "").lower() in ("true", "1") else "default"


def set_seeds(seed: int) -> None:
    """Seeds Python's, NumPy's and TensorFlow's random number generators."""
    keras.utils.set_random_seed(seed)


def choose_verbosity() -> int:
    """Returns `model.fit`'s verbosity: `1` (a bar) on a terminal or in a notebook, `2` (a line per epoch) otherwise."""
    interactive = sys.stdout.isatty() or "ipykernel" in sys.modules
    return 1 if interactive else 2


def in_colab() -> bool:
    """Returns whether the code runs inside Google Colab."""
    return "google.colab" in sys.modules or importlib.util.find_spec("google.colab") is not None


def list_devices() -> list[str]:
    """Returns one line per accelerator found, or `["CPU only"]`."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return ["CPU only"]
    lines = []
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        name = details.get("device_name", gpu.name)
        capability = details.get("compute_capability")
        suffix = f" (compute capability {capability[0]}.{capability[1]})" if capability else ""
        lines.append(f"GPU: {name}{suffix}")
    return lines


def describe_devices() -> str:
    """Returns a one-line description of the devices, such as "1 GPU: Tesla T4"."""
    gpus = [line.removeprefix("GPU: ") for line in list_devices() if line.startswith("GPU: ")]
    return f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''}: {', '.join(gpus)}" if gpus else "CPU only"


def choose_distribution_strategy(devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """Returns a `MirroredStrategy` over several GPUs, else TensorFlow's default strategy (or the one whose scope
    the caller entered). A `MirroredStrategy` is made once per set of devices, so one study's stages share it.

    Args:
        devices: Device names to mirror over instead, such as `["/cpu:0", "/cpu:1"]`, or `None` for every GPU.

    Raises:
        ValueError: If `devices` is given but empty.
    """
    if devices is not None and not devices:
        raise ValueError(
            f"devices must name at least one device, or be None for every GPU. Received: devices={devices}"
        )
    if devices is None:
        if tf.distribute.has_strategy():
            return tf.distribute.get_strategy()
        prefer_bfc_cpu_allocator()  # Listing the logical devices starts TensorFlow, and with it its CPU allocator.
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) < 2:
            return tf.distribute.get_strategy()
        devices = [gpu.name for gpu in gpus]
    return _mirrored_strategy(tuple(devices))


@functools.cache
def _mirrored_strategy(devices: tuple[str, ...]) -> tf.distribute.MirroredStrategy:
    return tf.distribute.MirroredStrategy(list(devices))


def describe_distribution(strategy: tf.distribute.Strategy, batch_size: int) -> str | None:
    """Returns a line such as `"2 GPUs: MirroredStrategy, global batch 64 (32 per GPU), learning rates ×2"`, or `None`
    for one replica (each replica takes `batch_size` photos; learning rates scale with the replicas)."""
    num_replicas = strategy.num_replicas_in_sync
    if num_replicas < 2:
        return None
    kinds = {tf.DeviceSpec.from_string(device).device_type for device in strategy.extended.worker_devices}
    kind = kinds.pop() if len(kinds) == 1 else "device"
    return (
        f"{num_replicas} {kind}s: {type(strategy).__name__}, global batch {batch_size * num_replicas} "
        f"({batch_size} per {kind}), learning rates ×{num_replicas}"
    )


def choose_precision_policy(apply: bool = True) -> str:
    """Returns `"mixed_float16"` on GPUs with tensor cores (compute capability 7.0+), `"float32"` otherwise, and with
    `apply` makes it Keras's global policy."""
    policy = "float32"
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and tuple(capability) >= _MIXED_PRECISION_MIN_CAPABILITY:
            policy = "mixed_float16"
    if apply:
        keras.mixed_precision.set_global_policy(policy)
    return policy


def describe_training_versions() -> dict[str, str]:
    """Returns the versions a trained result depends on (TensorFlow, Keras, this package), for manifests."""
    from catsdogs_helpers import __version__

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "catsdogs_helpers": __version__}


def describe_environment() -> dict[str, object]:
    """Returns devices, precision policy and library versions, for reports."""
    import matplotlib
    import numpy as np
    import tensorflow_datasets as tfds

    libraries = {"tensorflow": tf, "keras": keras, "tensorflow_datasets": tfds, "numpy": np, "matplotlib": matplotlib}
    return {
        "devices": list_devices(),
        "precision_policy": keras.mixed_precision.global_policy().name,
        "cpu_allocator": describe_cpu_allocator(),
        "colab": in_colab(),
        "platform": platform.platform(),
        "versions": {"python": platform.python_version()} | {name: lib.__version__ for name, lib in libraries.items()},
    }
