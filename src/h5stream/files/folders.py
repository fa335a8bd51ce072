"""Atomic writes of a folder (a dataset of several files, such as scptensor's Parquet format).

A folder is built at ``<target>.partial-dir-<pid>-<n>`` beside the target,
every file and directory in it fsynced, then published:

* no target yet: the partial folder is renamed onto the target;
* ``overwrite=True``: the two folders are swapped in one step
  (``renameat2(RENAME_EXCHANGE)``, Linux: :func:`h5stream.native.libc.exchange`), and the old folder, now at the
  partial name, is deleted.  Where the exchange is unsupported, the old folder
  is first renamed to ``<target>.replaced-<pid>-<n>``, the new one renamed in,
  then the old one deleted; a writer killed between the two renames leaves the
  target missing and the old folder complete under the ``.replaced-`` name,
  which the next writer (or :func:`restore_interrupted`) renames back.

A crash therefore leaves the old folder or the new one at the target, never a
mix.  A format that must never leave the target missing, even for the moment
between two renames, passes ``one_step=True``: an existing folder is then
replaced only by the exchange, and where the system or the filesystem cannot
exchange, the replacement is refused (:class:`~h5stream.errors.WriteError`) and the
old folder kept.  The engine's :class:`~h5stream.files.WriterClaim` keeps a second writer
out; whoever takes the claim removes folders dead writers left beside the
target (:class:`~h5stream.errors.StaleFilesWarning`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from h5stream import capabilities
from h5stream.errors import StaleFilesWarning, TargetExistsError, WriteError
from h5stream.files.claims import WriterClaim, writer_gone
from h5stream.files.paths import fsync_directory, fsync_path, parent_of, sibling_path
from h5stream.files.write_errors import as_write_error, bytes_in, disk_full
from h5stream.native.libc import exchange as _exchange

__all__ = ["writing_folder", "restore_interrupted", "fsync_tree"]

logger = logging.getLogger(__name__)

_PARTIAL = ".partial-dir-"
_REPLACED = ".replaced-"
_LEFTOVER = re.compile(r"\.(?:partial-dir|replaced)-(\d+)-\d+")
#: Names earlier writers of some formats used: ``.partial-<pid>`` (a partial folder) and
#: ``.old-<pid>`` (the old folder moved aside before the new one was renamed in).
_FORMER = re.compile(r"\.(?:partial|old)-(\d+)")
_ASIDE = (_REPLACED, ".old-")


def fsync_tree(root: Path) -> None:
    """fsync every file, then every directory (deepest first) under ``root``, and ``root``."""
    dirs = []
    for here, _subdirs, files in os.walk(root):
        for name in files:
            fsync_path(os.path.join(here, name))
        dirs.append(here)
    for here in reversed(dirs):
        fsync_directory(here)


def restore_interrupted(target: Path, *, former: bool = False) -> None:
    """Put back an old folder a killed writer left renamed aside while the target is missing.

    ``former``: also the names earlier writers used (``<target>.old-<pid>``).
    """
    if target.exists():
        return
    for entry in sorted(_leftovers(target, former), key=lambda p: p.name):
        aside = entry.name[len(target.name):].startswith(_ASIDE)
        if aside and entry.is_dir() and writer_gone(_pid_of(entry, target), _mtime(entry)):
            os.rename(entry, target)
            fsync_directory(parent_of(target))
            warnings.warn(
                f"{target}: restored the folder a writer that no longer runs had moved aside "
                f"({entry.name})", StaleFilesWarning, stacklevel=3,
            )
            return


def _leftovers(target: Path, former: bool = False) -> list[Path]:
    try:
        entries = list(os.scandir(parent_of(target)))
    except OSError:
        return []
    patterns = (_LEFTOVER, _FORMER) if former else (_LEFTOVER,)
    return [
        Path(e.path) for e in entries
        if e.name.startswith(target.name) and any(p.fullmatch(e.name, len(target.name)) for p in patterns)
    ]


def _pid_of(path: Path, target: Path) -> int:
    match = _LEFTOVER.fullmatch(path.name, len(target.name)) or _FORMER.fullmatch(path.name, len(target.name))
    return int(match.group(1))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _remove_dead_leftovers(target: Path, former: bool = False) -> None:
    removed = []
    for path in _leftovers(target, former):
        if not writer_gone(_pid_of(path, target), _mtime(path)):
            continue
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path.name)
    if removed:
        warnings.warn(
            f"{target}: removed {len(removed)} folder(s) left by writers that no longer run: "
            + ", ".join(removed), StaleFilesWarning, stacklevel=4,
        )


def _write_error(exc: BaseException, target: Path, partial: Path | None = None) -> WriteError:
    if disk_full(exc):
        return as_write_error(exc, target, "writing the folder", written=bytes_in(partial) if partial else 0)
    reason = getattr(exc, "strerror", None) or str(exc)
    return WriteError(f"writing failed ({reason}); any earlier dataset is intact", path=target,
                      hint="check the directory and free space")


@contextlib.contextmanager
def writing_folder(
    path: str | os.PathLike, *, overwrite: bool, is_replaceable: Callable[[Path], bool],
    kind: str = "a folder of this format", other_folder: str = "another folder",
    one_step: bool = False, former_names: bool = False,
) -> Iterator[Path]:
    """Yield an empty partial folder that becomes ``path`` only when the block completes.

    ``is_replaceable(existing)`` says whether an existing folder at ``path`` is
    one ``overwrite=True`` may replace (a dataset of the same format, described
    by ``kind`` in errors; a folder it refuses is ``other_folder``); anything
    else at the target is refused.  ``one_step``: an existing folder is replaced
    only in one atomic exchange, or the save is refused with the old folder kept
    (see the module text).  ``former_names``: folders left beside the target under
    the names earlier writers of the format used (``.partial-<pid>``, ``.old-<pid>``)
    are cleared (or put back) like the current ones.  Errors are the
    engine's (:class:`~h5stream.errors.WriteError`, :class:`~h5stream.errors.TargetExistsError`,
    :class:`~h5stream.errors.WriterClaimError`).
    """
    target = Path(path)
    parent = parent_of(target)
    if not parent.is_dir():
        raise WriteError(
            "the target's directory does not exist", path=target, expected="an existing directory",
            found=f"no directory {parent}", hint="create the directory first",
        )
    claim = WriterClaim(target)
    claim.acquire()
    partial = sibling_path(target, _PARTIAL)
    try:
        try:
            restore_interrupted(target, former=former_names)
            _remove_dead_leftovers(target, former_names)
        except OSError as exc:
            raise _write_error(exc, target) from exc
        if target.exists() or target.is_symlink():
            if not overwrite:
                raise TargetExistsError(
                    "target exists", path=target, expected="no file or folder at the path",
                    found="an existing " + ("folder" if target.is_dir() else "file"),
                    hint="pass overwrite=True to replace it",
                )
            if target.is_symlink() or not target.is_dir() or not is_replaceable(target):
                raise WriteError(
                    "target is not a dataset of this format and is never replaced", path=target,
                    expected=kind,
                    found="a symbolic link" if target.is_symlink() else (
                        other_folder if target.is_dir() else "a file"),
                    hint="choose another path or remove it yourself",
                )
            if one_step and not capabilities.rename_exchange():
                raise _no_exchange(target)
        try:
            os.mkdir(partial)
        except OSError as exc:
            raise _write_error(exc, target) from exc
        try:
            yield partial
            fsync_tree(partial)
            _publish(partial, target, one_step)
        except WriteError:
            raise
        except Exception as exc:  # a library writing into the folder may name a full disk in its own error
            if isinstance(exc, OSError) or disk_full(exc):
                raise _write_error(exc, target, partial) from exc
            raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    finally:
        claim.release()


def _no_exchange(target: Path) -> WriteError:
    return WriteError(
        "this system or filesystem cannot replace a folder in one step, and this format is never "
        "replaced in two; the existing one is kept", path=target,
        expected="renameat2(RENAME_EXCHANGE) (Linux, on ext4, xfs, btrfs, tmpfs and most local filesystems)",
        found="no exchange", hint="save to a new path, or remove the existing one first",
    )


def _publish(partial: Path, target: Path, one_step: bool = False) -> None:
    parent = parent_of(target)
    if not target.exists():
        os.rename(partial, target)
        fsync_directory(parent)
        return
    if capabilities.rename_exchange() and _exchange(partial, target):
        fsync_directory(parent)
        return  # the old folder is now at ``partial``, removed by the caller
    if one_step:
        raise _no_exchange(target)
    aside = sibling_path(target, _REPLACED)
    os.rename(target, aside)
    try:
        os.rename(partial, target)
    except OSError:
        os.rename(aside, target)
        raise
    fsync_directory(parent)
    shutil.rmtree(aside, ignore_errors=True)
