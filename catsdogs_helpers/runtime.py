"""Seeds, devices, numeric precision and "are we in Colab?".

Nothing here runs at import time: each function changes global state only when
you call it, and says what it did.
"""

from __future__ import annotations

import importlib.util
import platform
import sys

import keras
import tensorflow as tf

# Compute capability from which float16 tensor cores make mixed precision pay off.
_MIXED_PRECISION_MIN_CAPABILITY = (7, 0)


def set_seeds(seed: int) -> None:
    """Seeds Python's, NumPy's and TensorFlow's random number generators.

    Args:
        seed: The seed.
    """
    keras.utils.set_random_seed(seed)


def choose_verbosity() -> int:
    """Returns Keras's progress verbosity: a bar on a terminal or in a notebook, one line per epoch otherwise.

    Keras's progress bar rewrites its line with carriage returns and colour
    codes, which fill a log file with noise; one plain line per epoch (or per
    pass) reads well there.

    Returns:
        `1` (a progress bar) or `2` (one line), for `model.fit(verbose=...)`.
    """
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
    devices = list_devices()
    if devices == ["CPU only"]:
        return "CPU only"
    names = ", ".join(line.removeprefix("GPU: ") for line in devices)
    return f"{len(devices)} GPU{'s' if len(devices) > 1 else ''}: {names}"


def choose_precision_policy(apply: bool = True) -> str:
    """Chooses mixed precision on GPUs that benefit from it, float32 otherwise.

    Mixed precision (float16 compute, float32 weights) roughly doubles training
    speed on GPUs with tensor cores (compute capability 7.0 and above). On CPUs
    and older GPUs it brings nothing, so float32 stays. Models built afterwards
    keep their final layer in float32 so that logits and losses stay accurate.

    Args:
        apply: Set the chosen policy as Keras' global policy. Defaults to `True`.

    Returns:
        The policy name: `"mixed_float16"` or `"float32"`.
    """
    policy = "float32"
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and tuple(capability) >= _MIXED_PRECISION_MIN_CAPABILITY:
            policy = "mixed_float16"
    if apply:
        keras.mixed_precision.set_global_policy(policy)
    return policy


def describe_environment() -> dict[str, object]:
    """Returns devices, precision policy and library versions, for reports."""
    import matplotlib
    import numpy as np
    import tensorflow_datasets as tfds

    return {
        "devices": list_devices(),
        "precision_policy": keras.mixed_precision.global_policy().name,
        "colab": in_colab(),
        "platform": platform.platform(),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "tensorflow_datasets": tfds.__version__,
            "numpy": np.__version__,
            "matplotlib": matplotlib.__version__,
        },
    }
