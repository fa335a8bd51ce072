"""Parameter hashes in the original pipeline's format, ``"sha256:<16 hex digits>"``.

The digest is :func:`h5stream.jsonvalues.stable_hash` of the configuration: SHA-256 of its canonical
JSON (keys sorted, no spaces) cut to 16 hex digits, the same text the original pipeline stored as
``params_hash``, so a hash written by either one compares equal for equal parameters.  (The original
hashed non-finite floats as JSON's ``NaN``/``Infinity`` and refused values JSON cannot hold; here they
hash as :func:`~h5stream.jsonvalues.canonical` writes them, as every other hash of this library does.)
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from h5stream.jsonvalues import stable_hash

__all__ = ["hash_config", "hash_file", "verify_hash"]

_DIGITS = 16


def hash_config(config: dict[str, Any], prefix: str = "sha256") -> str:
    """``"<prefix>:<16 hex>"`` of a JSON-like configuration (key order does not matter)."""
    return f"{prefix}:{stable_hash(config, digits=_DIGITS)}"


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
