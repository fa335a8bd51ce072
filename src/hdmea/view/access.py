"""Which files the viewer may open, and how it opens them.

The viewer serves the folders it was started on and nothing else.  A request
names a file by the number of its folder and a path relative to that folder
(``"0/demo.h5"``); the path is resolved (symbolic links and ``..`` included)
and refused unless the result is a regular file inside that folder.  Files are
opened through :func:`hdmea.io.recording.open_recording` (the recording reader):
the HDF5 signature, the recording format and the unsafe-object scan are checked
on every open, HDF5 file locking is off (a pipeline writing the next version is
never blocked), and no writer claim is taken.  Each request opens the file and
closes it before answering: the pipeline's writes replace the file by an atomic
rename, so a request reads one complete version, the newest at the time it
opened the file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import h5py

from hdmea.io.recording import open_recording

__all__ = ["ServedFolders", "AccessDenied", "FileMissing", "NodeMissing", "RECORDING_SUFFIXES", "file_version"]

#: File names the viewer lists in a served folder.
RECORDING_SUFFIXES = (".h5", ".hdf5")


class AccessDenied(Exception):
    """A request named a path outside the served folders (HTTP 403)."""


class FileMissing(Exception):
    """A request named a file that does not exist in a served folder (HTTP 404)."""


class NodeMissing(Exception):
    """A request named an object (group, dataset, unit) the file does not hold (HTTP 404)."""


def refuse_unreadable(path: str | os.PathLike) -> None:
    """Open a file named on the command line as a read would, before anything is served.

    The file is opened by the recording reader (:func:`hdmea.io.recording.open_recording`,
    the one module that reads recordings), with the checks every read makes.  A
    file that is no HDF5 file, or one a read refuses, raises the recording
    face's error here (:class:`~hdmea.errors.CorruptRecordingError` and the
    others of :func:`~hdmea.io.hdf5_store.open_recording_hdf5`), so that
    ``hdmea view notes.txt`` stops with a message instead of serving a page
    that can only say the file cannot be shown.  Files found inside a served
    folder are listed as they are and reported when opened.
    """
    with open_recording(path, verify=False):
        pass


class ServedFolders:
    """The folders a viewer serves and the file it shows first.

    ``paths`` are files or folders: a folder is served as it is, a file serves
    its folder and is the file shown first.
    """

    def __init__(self, paths: list[str | os.PathLike]):
        if not paths:
            raise ValueError("the viewer needs at least one file or folder to serve")
        self.roots: list[Path] = []
        self.first: str | None = None
        for given in paths:
            path = Path(given).expanduser()
            if not path.exists():
                from hdmea.io.hdf5_store import not_found_error

                raise not_found_error(path)
            real = path.resolve()
            if not real.is_dir():
                refuse_unreadable(path)
            root = real if real.is_dir() else real.parent
            if root not in self.roots:
                self.roots.append(root)
            if not real.is_dir() and self.first is None:
                self.first = self.file_id(real)

    def file_id(self, real: Path) -> str:
        """The id of the file at the resolved path ``real`` (``"<folder number>/<relative path>"``)."""
        for number, root in enumerate(self.roots):
            if real.is_relative_to(root):
                return f"{number}/{real.relative_to(root).as_posix()}"
        raise AccessDenied(f"{real} is not in a served folder")

    def resolve(self, file_id: str) -> Path:
        """The resolved path of ``file_id``; :class:`AccessDenied` outside the served folders.

        Refused: an unknown folder number, an absolute path, any ``..``
        component, a NUL byte, and anything whose resolved path (after symbolic
        links) leaves its folder.
        """
        number, sep, relative = str(file_id).partition("/")
        if not sep or not number.isdigit() or int(number) >= len(self.roots):
            raise AccessDenied(f"{file_id!r} does not name a served folder")
        if not relative or "\x00" in relative or relative.startswith(("/", "\\")) or ".." in Path(relative).parts:
            raise AccessDenied(f"{file_id!r} is not a path inside a served folder")
        root = self.roots[int(number)]
        real = (root / relative).resolve()
        if not real.is_relative_to(root):
            raise AccessDenied(f"{file_id!r} leaves its served folder")
        if not real.is_file():
            raise FileMissing(f"{file_id!r}: no such file")
        return real

    def listing(self, limit: int = 500) -> list[dict]:
        """Recording files (by suffix) directly in each served folder, at most ``limit`` in all."""
        out: list[dict] = []
        for number, root in enumerate(self.roots):
            try:
                names = sorted(os.listdir(root))
            except OSError:
                continue
            for name in names:
                path = root / name
                if name.lower().endswith(RECORDING_SUFFIXES) and ".partial-" not in name and path.is_file():
                    out.append({"id": f"{number}/{name}", "name": name, "folder": str(root),
                                "bytes": path.stat().st_size})
                    if len(out) >= limit:
                        return out
        return out

    @contextlib.contextmanager
    def open(self, file_id: str) -> Iterator[tuple[h5py.File, Path]]:
        """The recording file ``file_id``, open read-only and validated, closed on leaving the block.

        Low-level read failures inside the block become typed
        :class:`h5stream.errors.FormatError` naming the file.
        """
        path = self.resolve(file_id)
        with open_recording(path) as recording:
            yield recording.file, path


def file_version(f: h5py.File) -> tuple[int, int, int, int]:
    """Identity of the version of the file ``f`` has open: (device, inode, size, mtime in ns).

    A pipeline replaces a file by renaming a new one over it, so a new version
    has a new inode; caches keyed by this never mix two versions.
    """
    try:
        st = os.fstat(f.id.get_vfd_handle())
    except (OSError, ValueError, TypeError):
        st = os.stat(f.filename)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
