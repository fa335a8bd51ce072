"""The original pipeline's checks of the input paths a run starts from (``hdmea.utils.validation``; its
dataset-id rules are :mod:`hdmea.io.dataset_ids`).

Paths are checked for their suffix (``.cmcr``/``.cmtr``, any case) and existence; the content of the files
is checked by the readers.
"""

from __future__ import annotations

import os
from pathlib import Path

from hdmea.errors import ConfigError, RecordingNotFoundError

__all__ = ["validate_path_exists", "validate_cmcr_path", "validate_cmtr_path", "validate_input_files"]

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
