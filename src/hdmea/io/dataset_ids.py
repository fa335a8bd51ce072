"""A recording's dataset id: the rules for a name stored in a file, for a name that becomes a file's
name, and the name a recording's input files give.

- :func:`check_dataset_id`: any non-empty text without NUL (the recording file stores it as an attribute);
- :func:`file_safe_dataset_id`: also without the characters a path cannot hold (``/ \\ : * ? " < > |``),
  and without the trailing ``-`` MCS puts on sorted files (``...-Rec-``);
- :func:`dataset_id_from_files`: the ``.cmtr``'s (else the ``.cmcr``'s) stem, trailing ``-`` dropped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from h5stream.errors import UnsafeNameError
from h5stream.tree import plain_text
from hdmea.errors import ConfigError

__all__ = ["DATASET_ID_PATTERN", "check_dataset_id", "file_safe_dataset_id", "dataset_id_from_files"]

#: A dataset id that can be a file's name: no character a path cannot hold.
DATASET_ID_PATTERN = re.compile(r'^[^/\\:*?"<>|]+$')


def check_dataset_id(dataset_id) -> str:
    """``dataset_id`` as a recording file stores it; UnsafeNameError when empty, not text or holding NUL."""
    if not isinstance(dataset_id, str) or not dataset_id.strip():
        raise UnsafeNameError("dataset_id must be a non-empty string", expected="e.g. '2024.03.01-12.00.00-Rec'",
                              found=repr(dataset_id))
    if not plain_text(dataset_id):
        raise UnsafeNameError("dataset_id contains a NUL character or is not valid UTF-8", found=repr(dataset_id))
    return dataset_id


def file_safe_dataset_id(dataset_id: str) -> str:
    """The id without trailing hyphens; ConfigError when empty or holding a path-unsafe character."""
    if not isinstance(dataset_id, str) or not dataset_id.rstrip("-"):
        raise ConfigError("dataset_id is empty", expected="a non-empty name", found=repr(dataset_id))
    dataset_id = dataset_id.rstrip("-")
    if not DATASET_ID_PATTERN.match(dataset_id):
        bad = sorted(set(re.findall(r'[/\\:*?"<>|]', dataset_id)))
        raise ConfigError(f"Invalid dataset_id: {dataset_id!r} holds characters a file name cannot",
                          found=" ".join(bad), hint="use letters, digits, '.', '-' and '_'")
    return check_dataset_id(dataset_id)


def dataset_id_from_files(cmcr_path: str | os.PathLike | None, cmtr_path: str | os.PathLike | None) -> str:
    """The stem of the ``.cmtr`` (else the ``.cmcr``), trailing hyphens dropped."""
    path = cmtr_path if cmtr_path is not None else cmcr_path
    if path is None:
        raise ConfigError("no file to name the dataset after", hint="pass dataset_id or a file path")
    return Path(path).stem.rstrip("-")
