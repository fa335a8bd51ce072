"""Checks of the inputs a pipeline run starts from, at the original pipeline's import path.

Dataset ids are any text without the characters a path cannot hold
(``/ \\ : * ? " < > |``); a trailing ``-`` (MCS names sorted files ``...-Rec-``) is
dropped.  Paths are checked for their suffix (``.cmcr``/``.cmtr``, any case) and
existence; the content of the files is checked by the readers.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hdmea.errors import ConfigError, RecordingNotFoundError

__all__ = [
    "DATASET_ID_PATTERN",
    "validate_dataset_id",
    "validate_path_exists",
    "validate_cmcr_path",
    "validate_cmtr_path",
    "validate_input_files",
    "derive_dataset_id",
]

DATASET_ID_PATTERN = re.compile(r'^[^/\\:*?"<>|]+$')


def validate_dataset_id(dataset_id: str) -> str:
    """The id without trailing hyphens; ConfigurationError when empty or holding a path-unsafe character."""
    if not isinstance(dataset_id, str) or not dataset_id.rstrip("-"):
        raise ConfigError("dataset_id is empty", expected="a non-empty name", found=repr(dataset_id))
    dataset_id = dataset_id.rstrip("-")
    if not DATASET_ID_PATTERN.match(dataset_id):
        bad = sorted(set(re.findall(r'[/\\:*?"<>|]', dataset_id)))
        raise ConfigError(f"dataset_id {dataset_id!r} holds characters a file name cannot",
                          found=" ".join(bad), hint="use letters, digits, '.', '-' and '_'")
    return dataset_id


def validate_path_exists(path: str | os.PathLike, file_type: str = "file") -> Path:
    """``Path(path)``; FileNotFoundError (our RecordingNotFoundError) naming ``file_type`` when it is missing."""
    path = Path(path)
    if not path.exists():
        raise RecordingNotFoundError(f"{file_type} not found", path=path)
    return path


def _validate_suffix(path, suffix: str, label: str) -> Path | None:
    if path is None:
        return None
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise ConfigError(f"{path}: not a {suffix} file", expected=f"a path ending in {suffix}",
                          found=repr(path.suffix or "no suffix"))
    return validate_path_exists(path, label)


def validate_cmcr_path(path: str | os.PathLike | None) -> Path | None:
    """None stays None; otherwise an existing path ending in ``.cmcr``."""
    return _validate_suffix(path, ".cmcr", "CMCR file")


def validate_cmtr_path(path: str | os.PathLike | None) -> Path | None:
    """None stays None; otherwise an existing path ending in ``.cmtr``."""
    return _validate_suffix(path, ".cmtr", "CMTR file")


def validate_input_files(cmcr_path, cmtr_path) -> tuple[Path | None, Path | None]:
    """Both paths checked; ConfigurationError when neither is given."""
    if cmcr_path is None and cmtr_path is None:
        raise ConfigError("neither cmcr_path nor cmtr_path is given", hint="pass at least one of them")
    return validate_cmcr_path(cmcr_path), validate_cmtr_path(cmtr_path)


def derive_dataset_id(cmcr_path, cmtr_path) -> str:
    """The stem of the ``.cmtr`` (else the ``.cmcr``), trailing hyphens dropped."""
    path = cmtr_path if cmtr_path is not None else cmcr_path
    if path is None:
        raise ConfigError("no file to name the dataset after", hint="pass dataset_id or a file path")
    return Path(path).stem.rstrip("-")
