"""Recordings of a batch and the identity of their jobs.

A :class:`Recording` is a name (the output file's stem) and its two input
files; :func:`discover_recordings` finds them in a directory or a list file in
a stable order.  A running job holds ``<out>.job.claim`` (:func:`job_claim`)
from before it looks at its output until after its marker is written, so that
one process of any batch computes a recording while the others see it held.
A finished job leaves ``<out>.done`` beside its output, a small JSON record
with the configuration digest, the batch that computed it, what identifies its
recording (:func:`recording_identity`: each input's path, size and a digest of
its first and last blocks and blocks spread between) and the output's size and
modification time (written atomically, not fsynced, after the output itself
was committed).  A rerun skips it only when all of these still hold
(:func:`check_finished`): the same configuration, the same recording (by
content, wherever it lies now) and an output that is as it was finished or,
changed since, still passes its own whole-file check; otherwise the recording
is computed again, and the batch table says why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from h5stream.errors import SourceNotFoundError
from h5stream.files import WriterClaim
from hdmea.errors import ConfigError
from hdmea.pipeline.done_markers import DONE_SUFFIX, done_marker_path, read_done_marker, write_done_marker
from hdmea.pipeline.run import checkpoint_path_for

__all__ = ["Recording", "discover_recordings", "output_path_for", "done_marker_path", "checkpoint_path_for",
           "read_done_marker", "write_done_marker", "finished_marker", "check_finished", "Finished",
           "recording_identity", "output_state", "job_claim", "new_batch_id", "DONE_SUFFIX", "JOB_SUFFIX"]

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


#: Bytes digested at each end of an input file, and blocks of :data:`_BLOCK_BYTES` spread between: the
#: vendor files' headers, their last blocks and a sample of the raw data, read in well under a millisecond
#: from a local disk (a few reads' latency on a network one) whatever the recording's size.
_EDGE_BYTES, _SPREAD_BLOCKS, _BLOCK_BYTES = 1 << 16, 14, 1 << 12


def _file_identity(path: Path) -> dict:
    """One input's identity: its resolved path, size and BLAKE2b digest of sampled blocks (None: missing or
    unreadable)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            digest = hashlib.blake2b(size.to_bytes(8, "little"), digest_size=16)
            starts = [0] + [size * (k + 1) // (_SPREAD_BLOCKS + 1) for k in range(_SPREAD_BLOCKS)]
            lengths = [_EDGE_BYTES] + [_BLOCK_BYTES] * _SPREAD_BLOCKS
            starts.append(max(size - _EDGE_BYTES, 0))
            lengths.append(_EDGE_BYTES)
            for start, length in zip(starts, lengths):
                digest.update(os.pread(fh.fileno(), length, start))
    except OSError:  # missing or unreadable: not the recorded file; the checks before the job say why
        return {"path": os.fspath(path), "size": None, "digest": None}
    return {"path": os.path.realpath(path), "size": size, "digest": digest.hexdigest()}


def recording_identity(recording: Recording) -> dict:
    """What identifies ``recording``: ``{"cmcr": ..., "cmtr": ...}``, each input's path, size and digest."""
    return {"cmcr": _file_identity(recording.cmcr), "cmtr": _file_identity(recording.cmtr)}


def output_state(output: str | os.PathLike) -> dict | None:
    """The finished output's size and modification time (ns), recorded in its marker (None: a job that
    wrote no output, whose marker :func:`read_done_marker` never takes as finished)."""
    try:
        st = os.stat(output)
    except FileNotFoundError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _identity_change(marker: dict, recording: Recording) -> str | None:
    """Why ``recording`` is not the one the output was computed from (None: it is, by content)."""
    recorded = marker.get("inputs")
    if not isinstance(recorded, dict):
        # A marker of an earlier version names the inputs' paths only.
        for kind in ("cmcr", "cmtr"):
            was, now = marker.get(kind), os.fspath(getattr(recording, kind))
            if was is not None and os.path.realpath(was) != os.path.realpath(now):
                return f"its {kind} is {now}, the output was computed from {was}"
        return None
    current = recording_identity(recording)
    for kind in ("cmcr", "cmtr"):
        was, now = recorded.get(kind) or {}, current[kind]
        if (was.get("size"), was.get("digest")) != (now["size"], now["digest"]):
            return (f"its {kind} {now['path']} ({_size_text(now['size'])}) is not the file the output was "
                    f"computed from ({was.get('path')}, {_size_text(was.get('size'))}; the contents differ)")
    return None


def _size_text(size) -> str:
    return "missing" if size is None else f"{size:,} bytes"


def _output_problem(output: Path, marker: dict) -> str | None:
    """Why the finished output cannot be kept (None: as it was finished, or changed and still sound).

    Unchanged (size and modification time as recorded) costs one ``stat``; a changed output is
    checked whole (:func:`h5stream.files.checksum_checks.check_file`: every digest and Fletcher32
    chunk), so an output a user added to through this package is kept, a truncated one redone.
    """
    recorded = marker.get("output")
    try:
        now = output_state(output)
    except OSError as exc:
        return f"the output cannot be read ({exc.strerror or exc})"
    if now is None:
        return "the output is gone"
    if isinstance(recorded, dict) and recorded == now:
        return None
    from h5stream.files.checksum_checks import check_file
    from h5stream.errors import H5StreamError

    try:
        check_file(output)
    except (H5StreamError, OSError, RuntimeError, ValueError) as exc:
        return f"the output fails its own check ({exc})"
    return None


@dataclasses.dataclass(frozen=True)
class Finished:
    """What :func:`check_finished` found: the marker to skip on (None: compute), and why not, if it exists."""

    marker: dict | None
    redo: str | None = None
    #: the output fails its own check: the job replaces it (atomically: it stays until the new one is complete)
    replace_output: bool = False


def check_finished(output: str | os.PathLike, config: Any, recording: Recording | None = None) -> Finished:
    """Whether ``output`` is finished for ``recording`` with ``config`` (see the module docstring).

    ``redo`` says why an output that has its marker is computed again (another configuration, another
    recording of the same name, an output damaged since); None when there is no marker to judge or
    a rerun is asked for (``config.output.overwrite``).  Without ``recording`` its identity is not compared.
    """
    if config.output.overwrite:
        return Finished(None)
    output = Path(output)
    marker = read_done_marker(output)
    if marker is None:
        return Finished(None)
    if marker.get("config_digest") != config.digest():
        return Finished(None, "the output was made with another configuration")
    change = _identity_change(marker, recording) if recording is not None else None
    if change is not None:
        return Finished(None, f"another recording of the same name: {change}")
    problem = _output_problem(output, marker)
    if problem is not None:
        return Finished(None, problem, replace_output=True)
    return Finished(marker)


def finished_marker(output: str | os.PathLike, config: Any, recording: Recording | None = None) -> dict | None:
    """The finished-marker of ``output`` when it is finished for ``recording`` with ``config``, else None."""
    return check_finished(output, config, recording).marker


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
