"""The manifest of a scptensor Parquet dataset, and the folder members it names.

The manifest (``manifest.json``) is written last and read first: it states the
format name and version, the ids, shapes and storage of every layer, matrix
metadata, links and the history, and maps assay and layer names to their files.
Used by :mod:`scptensor.io.formats_parquet` (the format's layout is described there).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from h5stream import jsonvalues
from scptensor.core.exceptions import ValidationError
from scptensor.core.structures import ProvenanceLog
from scptensor.io.exceptions import IOFormatError, IOSourceNotFoundError
from scptensor.io.selection import SelectionError

FORMAT_NAME = "scptensor-parquet"
FORMAT_VERSION = "1.0"
MANIFEST = "manifest.json"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
_MANIFEST_LIMIT = 256 * 2**20


# --------------------------------------------------------------------------- writing


def _file_names(names: Sequence[str], prefix: str) -> list[str]:
    used: set[str] = set()
    out = []
    for i, name in enumerate(names):
        plain = _PLAIN_NAME.fullmatch(name) and name.lower() not in used
        chosen = name if plain else f"{prefix}.{i}"  # "." never occurs in a plain name
        used.add(chosen.lower())
        out.append(chosen)
    return out


def _history_json(history: Sequence[ProvenanceLog]) -> list:
    return [
        jsonvalues.encode(
            {"timestamp": h.timestamp, "action": h.action, "params": dict(h.params),
             "software_version": h.software_version, "description": h.description},
            obj="history",
        )
        for h in history
    ]


# --------------------------------------------------------------------------- reading


def _read_manifest(root: Path) -> dict:
    manifest_path = root / MANIFEST
    try:
        size = manifest_path.stat().st_size
        if size > _MANIFEST_LIMIT:
            raise IOFormatError("manifest is too large", path=root, obj=MANIFEST,
                                expected=f"at most {_MANIFEST_LIMIT} bytes", found=f"{size} bytes")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IOFormatError(
            "folder is not a scptensor Parquet dataset", path=root, obj=MANIFEST,
            expected=f"a {MANIFEST} written by scptensor", found="no manifest",
            hint="save it with save_parquet, or read its files with polars",
        ) from None
    except (OSError, ValueError) as exc:
        raise IOFormatError("manifest is unreadable", path=root, obj=MANIFEST,
                            expected="JSON text", found=str(exc)) from exc
    if not isinstance(manifest, dict) or manifest.get("format_name") != FORMAT_NAME:
        found = manifest.get("format_name") if isinstance(manifest, dict) else type(manifest).__name__
        raise IOFormatError("manifest names another format", path=root, obj=MANIFEST,
                            expected=repr(FORMAT_NAME), found=repr(found))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IOFormatError(
            "unsupported scptensor Parquet format version", path=root, obj=f"{MANIFEST}/format_version",
            expected=repr(FORMAT_VERSION), found=repr(manifest.get("format_version")),
            hint="the dataset may come from a newer scptensor; upgrade to read it",
        )
    return manifest


def is_parquet_dataset(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding a scptensor Parquet manifest."""
    root = Path(path)
    if not root.is_dir():
        return False
    try:
        _read_manifest(root)
    except IOFormatError:
        return False
    return True


def dataset_member(root: Path, rel: Any, obj: str) -> Path:
    """A file named by the manifest, refused when it would leave the dataset folder."""
    if not isinstance(rel, str) or not rel or os.path.isabs(rel) or ".." in Path(rel).parts:
        raise IOFormatError("manifest names a file outside the dataset", path=root, obj=obj,
                            expected="a relative path inside the folder", found=repr(rel))
    member = root / rel
    if not member.is_file():
        raise IOFormatError("a file of the dataset is missing", path=root, obj=rel,
                            expected="a Parquet file", found="nothing")
    return member


@contextlib.contextmanager
def _guard(root: Path, obj: str) -> Iterator[None]:
    try:
        yield
    except (IOFormatError, IOSourceNotFoundError, SelectionError):
        raise
    except ValidationError as exc:
        raise IOFormatError(f"dataset content breaks the data model: {exc}", path=root, obj=obj,
                            hint="the dataset was modified or written by another tool") from exc
    # a damaged Parquet file can make polars' Rust code panic: PanicException is a BaseException
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError, KeyError, TypeError, ValueError,
            IndexError) as exc:
        raise IOFormatError(f"unreadable part of the dataset ({type(exc).__name__}: {exc})",
                            path=root, obj=obj) from exc
