"""Recordings of a batch and the identity of their jobs.

A :class:`Recording` is a name (the output file's stem) and its two input
files; :func:`discover_recordings` finds them in a directory or a list file in
a stable order.  A running job holds ``<out>.job.claim`` (:func:`job_claim`)
from before it looks at its output until after its marker is written, so that
one process of any batch computes a recording while the others see it held.
A finished job leaves ``<out>.done`` beside its output, a small JSON record
with the configuration digest and the batch that computed it (written
atomically, not fsynced, after the output itself was committed): a rerun with
the same configuration skips it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from h5stream.errors import SourceNotFoundError
from h5stream.files import WriterClaim, write_bytes_atomic
from hdmea.errors import ConfigError
from hdmea.pipeline.run import checkpoint_path_for

__all__ = ["Recording", "discover_recordings", "output_path_for", "done_marker_path", "checkpoint_path_for",
           "read_done_marker", "write_done_marker", "finished_marker", "job_claim", "new_batch_id", "DONE_SUFFIX",
           "JOB_SUFFIX"]

DONE_SUFFIX = ".done"
#: ``<out>.job.claim`` is the claim of the job computing ``<out>`` (``<out>.job`` itself never exists)
JOB_SUFFIX = ".job"


@dataclasses.dataclass(frozen=True)
class Recording:
    """One recording to process: its name (the output file's stem) and its two input files."""

    name: str
    cmcr: Path
    cmtr: Path

    @classmethod
    def from_paths(cls, cmcr: str | os.PathLike, cmtr: str | os.PathLike | None = None,
                   name: str | None = None) -> Recording:
        cmcr = Path(cmcr)
        cmtr = Path(cmtr) if cmtr is not None else _sibling_cmtr(cmcr)
        return cls(name=name or _stem(cmcr), cmcr=cmcr, cmtr=cmtr)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".cmcr.h5", ".cmtr.h5", ".cmcr", ".cmtr"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _sibling_cmtr(cmcr: Path) -> Path:
    name = cmcr.name
    if ".cmcr" in name:
        return cmcr.with_name(name.replace(".cmcr", ".cmtr"))
    return cmcr.with_suffix(".cmtr")


def discover_recordings(source: str | os.PathLike | Iterable[Any]) -> list[Recording]:
    """Recordings from a directory, a list file, or an iterable.

    A directory yields every ``*.cmcr`` (or ``*.cmcr.h5``) with its ``.cmtr``
    sibling, sorted by name (a stable order, so a SLURM array index always
    means the same recording).  A list file has one recording per line:
    ``CMCR [CMTR]``, paths relative to the list file, ``#`` starts a comment.
    An iterable may hold :class:`Recording` objects, ``(cmcr, cmtr)`` pairs or
    ``.cmcr`` paths.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            found = sorted({*path.glob("*.cmcr"), *path.glob("*.cmcr.h5")})
            recordings = [Recording.from_paths(p) for p in found]
            if not recordings:
                raise ConfigError("no .cmcr files in the directory", path=path,
                                  hint="point to a directory of .cmcr/.cmtr pairs or a list file")
        elif path.is_file():
            recordings = _read_list_file(path)
        else:
            raise SourceNotFoundError("recording list or directory does not exist", path=path)
    else:
        recordings = []
        for item in source:
            if isinstance(item, Recording):
                recordings.append(item)
            elif isinstance(item, (str, os.PathLike)):
                recordings.append(Recording.from_paths(item))
            else:
                recordings.append(Recording.from_paths(*item))
    names = [r.name for r in recordings]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError("two recordings would write the same output file",
                          found=", ".join(duplicates), hint="give them distinct names")
    return recordings


def _read_list_file(path: Path) -> list[Recording]:
    recordings = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) > 2:
            raise ConfigError("a line holds more than two paths", path=path, obj=f"line {lineno}",
                              expected="CMCR [CMTR]", found=line)
        resolved = [p if Path(p).is_absolute() else path.parent / p for p in fields]
        recordings.append(Recording.from_paths(*resolved))
    if not recordings:
        raise ConfigError("the recording list is empty", path=path)
    return recordings


def output_path_for(recording: Recording, out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / f"{recording.name}.h5"


def done_marker_path(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name + DONE_SUFFIX)


def read_done_marker(output: str | os.PathLike) -> dict | None:
    """The finished-marker of ``output`` (None when absent, empty, unparsable or the output is gone).

    None means "not done": the job runs again.  A marker is not fsynced
    (:func:`write_done_marker`), so after a machine crash it may be missing or
    empty; that only costs the job's work again.
    """
    marker = done_marker_path(output)
    if not Path(output).exists():
        return None
    try:
        record = json.loads(marker.read_bytes().decode("utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    return record if isinstance(record, dict) else None


def finished_marker(output: str | os.PathLike, config: Any) -> dict | None:
    """The finished-marker of ``output`` when it was made with ``config`` and no rerun is asked for, else None."""
    if config.output.overwrite:
        return None
    marker = read_done_marker(output)
    if marker is not None and marker.get("config_digest") == config.digest():
        return marker
    return None


def write_done_marker(output: str | os.PathLike, record: dict) -> Path:
    """Write the finished-marker of ``output``: readers see the whole record or none of it.

    Atomic (a rename) but not fsynced: jobs are idempotent, so a marker lost in
    a machine crash only makes its job run again (:func:`read_done_marker`
    takes a missing, empty or torn marker as "not done"), while the two fsyncs
    of a durable write cost milliseconds per recording.  The output itself was
    committed durably before.
    """
    text = json.dumps(record, indent=1, sort_keys=True, default=str)
    return write_bytes_atomic(done_marker_path(output), text.encode("utf-8"), durable=False)


def job_claim(output: str | os.PathLike) -> WriterClaim:
    """The claim a job holds on its recording for its whole run (``<out>.job.claim``), not yet taken.

    Distinct from the output's own writer claim, which the pipeline takes and
    releases around each write inside the job.  A claim left by a process of
    this host that has died is cleared by the next job; one from another host
    is reported with the way to clear it (:class:`~h5stream.files.WriterClaim`).
    """
    output = Path(output)
    return WriterClaim(output.with_name(output.name + JOB_SUFFIX))


def new_batch_id() -> str:
    """A name for one batch (or one ``run-one``), unique across hosts and runs: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
