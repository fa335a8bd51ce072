"""Parameter hashes in the original pipeline's format, ``"sha256:<16 hex digits>"``.

The digest is SHA-256 of the configuration as canonical JSON (keys sorted, no
spaces), cut to 16 hex digits: the same text the original pipeline stored as
``params_hash``, so a hash written by either one compares equal for equal
parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

__all__ = ["hash_config", "hash_file", "verify_hash"]

_DIGITS = 16


def _canonical_json(config: dict[str, Any]) -> bytes:
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def hash_config(config: dict[str, Any], prefix: str = "sha256") -> str:
    """``"<prefix>:<16 hex>"`` of a JSON-serialisable configuration (key order does not matter)."""
    return f"{prefix}:{hashlib.sha256(_canonical_json(config)).hexdigest()[:_DIGITS]}"


def hash_file(file_path: str | os.PathLike) -> str:
    """``"sha256:<16 hex>"`` of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(file_path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return f"sha256:{digest.hexdigest()[:_DIGITS]}"


def verify_hash(config: dict[str, Any], expected_hash: str) -> bool:
    """Whether ``config`` hashes to ``expected_hash`` (with ``expected_hash``'s prefix)."""
    prefix = expected_hash.split(":", 1)[0] if isinstance(expected_hash, str) and ":" in expected_hash else "sha256"
    return hash_config(config, prefix) == expected_hash
