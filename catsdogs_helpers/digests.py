"""Short SHA-256 digests (16 hexadecimal digits) that name what a run used: a settings dictionary, a weights file."""

from __future__ import annotations

import hashlib
import json
import os

DIGEST_LENGTH = 16


def hash_json(value: object) -> str:
    """Returns the digest of a JSON-serializable value (keys sorted; other objects as `str`)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:DIGEST_LENGTH]


def hash_file(path: str | os.PathLike) -> str:
    """Returns the digest of a file's bytes, read in 1-MiB blocks (an `OSError` if it cannot be read)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:DIGEST_LENGTH]
