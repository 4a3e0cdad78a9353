"""Short SHA-256 digests that name what a run used: a settings dictionary, a weights file.

Sixteen hexadecimal digits (64 bits) are plenty to tell apart the runs of one
output folder, and short enough to read in a manifest.
"""

from __future__ import annotations

import hashlib
import json
import os

DIGEST_LENGTH = 16


def hash_json(value: object) -> str:
    """Returns the digest of a JSON-serializable value (keys sorted; other objects as `str`)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:DIGEST_LENGTH]


def hash_file(path: str | os.PathLike) -> str:
    """Returns the digest of a file's bytes, read in 1-MiB blocks.

    Raises:
        OSError: If the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:DIGEST_LENGTH]
