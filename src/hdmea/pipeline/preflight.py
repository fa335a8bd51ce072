"""Checks made before the first step, so that a run that cannot succeed fails in seconds, not after the work.

:func:`check_run` looks at everything a run needs from its surroundings:

- each input pair: both files exist and open as what they should be (the HDF5
  signature, the MCS root attributes and the writing program, the same checks
  a read makes), and the recording's stimulus file resolves;
- the output folder: it exists, or its nearest existing parent is a folder
  it can be created in, and a probe file can be created and removed there
  (this catches permissions, read-only filesystems and folders that are files);
- the free space: ``shutil.disk_usage`` of that folder covers the estimate of
  what the run writes (:func:`estimate_output`); below the estimate the run is
  refused, below :data:`TIGHT_FACTOR` times it a :class:`LowSpaceWarning` says so.

Problems are collected, not raised one at a time: a batch learns about every
recording's problem at once.  :class:`PreflightError` carries them all; it is
the user's error (a path, a permission, the disk), never retried.

The output estimate
-------------------
Made from the inputs' shapes, before anything is read, and counted
uncompressed, so that it errs on the large side:

- spike times: 8 bytes per spike of the ``.cmtr``, twice when the stimulus
  sections them (the sectioned copy);
- per unit: 64 KiB of waveform, positions, quality measures and the smaller
  features (firing rates, step responses);
- light reference: 8 bytes per analog sample of the ``.cmcr``;
- receptive fields (``compute_sta`` on and a noise movie in the stimulus):
  per unit and noise movie, ``n_lags`` frames of the movie's images as float32;
- electrical images (``compute_eimage_sta`` on): per unit, the window's
  samples of the 65 x 65 sensor grid as float32;
- the file's own structure: 10% of the above plus 1 MB.

While a run is under way its checkpoint (``<out>.checkpoint.h5``) and the
partial output may both be on disk: with checkpoints on, twice the estimate is
needed.  A batch needs the sum over the recordings it still has to do plus one
such checkpoint.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from h5stream.errors import H5StreamError, H5StreamWarning
from hdmea.errors import HdmeaError
from hdmea.steps.table import STEPS, EstimateInputs

__all__ = [
    "Problem",
    "PreflightError",
    "PreflightReport",
    "LowSpaceWarning",
    "OutputEstimate",
    "estimate_output",
    "check_inputs",
    "check_output_folder",
    "check_free_space",
    "check_output_target",
    "check_run",
    "user_error_hint",
    "reason_text",
    "format_bytes",
    "TIGHT_FACTOR",
    "CreatedFolders",
    "config_problems",
    "load_with_inputs",
]

#: Free space below this many times the estimate is "tight": the run goes ahead with a warning.
TIGHT_FACTOR = 1.5

_UNIT_BYTES = 64 * 1024
_STRUCTURE_FRACTION = 0.10
_STRUCTURE_BYTES = 1_000_000


class LowSpaceWarning(H5StreamWarning):
    """The output folder has room for the estimated output, but little more."""


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing that stops a run: what, where, and what to do about it."""

    path: Path
    what: str
    hint: str
    recording: str | None = None
    #: "user" (a path, a permission, the disk) or "data" (an input file that is not what it should be)
    kind: str = "user"
    #: the class name of the error behind the problem, for the batch summary (None: found by a check)
    error_type: str | None = None
    #: the line of ``path`` the problem is on (a mistake in a configuration file)
    line: int | None = None

    def __str__(self) -> str:
        head = f"{self.recording}: " if self.recording else ""
        where = f"{self.path}:{self.line}" if self.line is not None else f"{self.path}"
        return f"{head}{where}: {self.what}" + (f". {self.hint}" if self.hint else "")


class PreflightError(HdmeaError):
    """A run cannot start: missing or wrong inputs, an output folder it cannot write, too little space.

    ``problems`` lists every problem found (all recordings of a batch), each
    with its path and what to do.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        if count == 1:
            lines = [f"nothing was started: {self.problems[0]}"]
        else:
            lines = [f"nothing was started: {count} problems found before the first step"]
            lines += [f"  {p}" for p in self.problems]
        first = self.problems[0] if self.problems else None
        super().__init__("\n".join(lines), path=None if first is None else first.path, composed=True,
                         hint=None if first is None else first.hint)

    @property
    def kind(self) -> str:
        """``"data"`` when every problem is an input file of the wrong kind, else ``"user"``."""
        return "data" if self.problems and all(p.kind == "data" for p in self.problems) else "user"


# --------------------------------------------------------------------------- the output estimate


@dataclasses.dataclass(frozen=True)
class OutputEstimate:
    """Bytes a run is expected to write, by part (see the module docstring)."""

    parts: dict[str, int]
    checkpoint: bool = True

    @property
    def total(self) -> int:
        """Bytes of the finished output."""
        return sum(self.parts.values())

    @property
    def peak(self) -> int:
        """Bytes on disk at the worst moment: the output and, with checkpoints on, a checkpoint of it."""
        return self.total * (2 if self.checkpoint else 1)

    def describe(self) -> str:
        shown = ", ".join(f"{name} {format_bytes(n)}" for name, n in self.parts.items() if n)
        return f"{format_bytes(self.total)} ({shown})" if shown else format_bytes(self.total)


def format_bytes(n: float) -> str:
    """``"1.5 GB"``: decimal units, as ``df -H`` shows them."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover - the loop returns


def estimate_output(cmcr: Any, cmtr: Any, config: Any, stimulus: Any = None) -> OutputEstimate:
    """The bytes a run of the open ``cmcr``/``cmtr`` pair writes (see the module docstring)."""
    from hdmea.io.cmtr import SORTER_GROUP

    n_units = 0
    n_spikes = 0
    if cmtr is not None:
        sorter = cmtr.h5[SORTER_GROUP]
        for uid in cmtr.unit_ids():
            n_units += 1
            peaks = sorter.get(f"Unit {uid}/Peaks")
            if peaks is not None and hasattr(peaks, "shape") and peaks.shape:
                n_spikes += int(peaks.shape[0])
    parts = {
        "spike times": n_spikes * 8 * (2 if stimulus is not None else 1),
        "units": n_units * _UNIT_BYTES,
        "light reference": (cmcr.n_analog_samples() * 8) if cmcr is not None and cmcr.has_analog() else 0,
    }
    inputs = EstimateInputs(n_units=n_units, config=config, stimulus=stimulus)
    for step in STEPS:
        if step.estimate is not None:
            label, estimate = step.estimate
            parts[label] = estimate(step, inputs) if step.enabled(config) else 0
    parts["file structure"] = int(_STRUCTURE_FRACTION * sum(parts.values())) + _STRUCTURE_BYTES
    return OutputEstimate(parts=parts, checkpoint=bool(config.output.checkpoint))


# --------------------------------------------------------------------------- inputs


def check_inputs(recording: Any, config: Any, *, open_files: bool = True
                 ) -> tuple[list[Problem], OutputEstimate | None]:
    """Problems of one recording's inputs, and its output estimate when they open.

    ``recording`` has ``name``, ``cmcr`` and ``cmtr``.  With ``open_files``
    both files are opened as a read opens them (signature, MCS root, writing
    program) and the stimulus is resolved; without it only their existence is
    checked (for jobs other than the pipeline, whose inputs may be anything).
    """
    problems: list[Problem] = []
    name = recording.name
    for path, kind in ((Path(recording.cmcr), ".cmcr"), (Path(recording.cmtr), ".cmtr")):
        if not path.exists():
            where = path.parent if path.parent.is_dir() else "its folder, which does not exist either"
            problems.append(Problem(path, f"the {kind} file does not exist",
                                    f"check the path (looked in {where})", name))
        elif not path.is_file():
            problems.append(Problem(path, f"the {kind} path is not a file", f"give the path of the {kind} file",
                                    name))
        elif not os.access(path, os.R_OK):
            problems.append(Problem(path, f"the {kind} file is not readable",
                                    "check its permissions (the user running hdmea needs read access)", name))
    if problems or not open_files:
        return problems, None
    from hdmea.io.cmcr import CmcrFile
    from hdmea.io.cmtr import CmtrFile

    stimulus = None
    try:
        stimulus = config.stimulus.resolve(name, Path(recording.cmcr).parent)
    except H5StreamError as exc:
        problems.append(Problem(Path(exc.path or recording.cmcr), "the stimulus cannot be read: " + reason_text(exc),
                                exc.hint or "check stimulus.file in the configuration", name))
    else:
        if stimulus is not None and config.steps.enabled("compute_sta"):
            for movie in stimulus.missing_inputs():
                problems.append(Problem(Path(movie), "the noise movie of the stimulus does not exist",
                                        "check the noise movie's path in the stimulus description (a relative path "
                                        "is taken from the description's folder), or switch compute_sta off", name))
    opened: dict[str, Any] = {}
    try:
        for key, path, opener in (("cmcr", recording.cmcr, CmcrFile), ("cmtr", recording.cmtr, CmtrFile)):
            try:
                opened[key] = opener(path)
            except (H5StreamError, OSError) as exc:
                kind = "user" if user_errno(exc) is not None or isinstance(exc, FileNotFoundError) else "data"
                problems.append(Problem(Path(path), reason_text(exc),
                                        _hint(exc, _ORDER_HINT), name, kind))
        if problems:
            return problems, None
        try:
            return problems, estimate_output(opened["cmcr"], opened["cmtr"], config, stimulus)
        except (H5StreamError, OSError) as exc:  # a damaged unit table or analog stream
            path = Path(getattr(exc, "path", None) or recording.cmtr)
            return [Problem(path, reason_text(exc),
                            getattr(exc, "hint", None) or "the file may be damaged: restore it from a good copy",
                            name, "data")], None
    finally:
        for f in opened.values():
            f.close()


_ORDER_HINT = "give the raw recording (.cmcr) first and its spike sorting (.cmtr) second"


def reason_text(exc: BaseException) -> str:
    """An error's text without the path in front (the caller names it already)."""
    text = str(exc)
    path = getattr(exc, "path", None) or getattr(exc, "filename", None)
    if path and text.startswith(os.fspath(path)):
        text = text[len(os.fspath(path)):]
        inside = re.match(r"^ \[(.*?)\]", text)
        if inside:
            text = text[inside.end():]
        text = text.lstrip(": ")
        if inside and inside.group(1) != "/":
            text = f"{inside.group(1)}: {text}"
    hint = getattr(exc, "hint", None)
    if hint and text.endswith(f". {hint}"):
        text = text[: -len(hint) - 2]
    return text


def _hint(exc: BaseException, default: str) -> str:
    return getattr(exc, "hint", None) or user_error_hint(exc) or default


# --------------------------------------------------------------------------- output folder and space


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _write_probe(folder: Path) -> None:
    """Create and remove a small file in ``folder`` (raises the OSError a real write would meet)."""
    fd, name = tempfile.mkstemp(prefix=".hdmea-write-probe-", dir=folder)
    try:
        os.write(fd, b"probe")
    finally:
        os.close(fd)
        os.unlink(name)


def check_output_folder(folder: str | os.PathLike, recording: str | None = None) -> list[Problem]:
    """Problems with writing into ``folder`` (which may not exist yet): nothing is left behind."""
    folder = Path(folder)
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        return [Problem(folder, f"the output folder cannot be created: {existing} is a file, not a folder",
                        "choose another output folder", recording)]
    try:
        _write_probe(existing)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        what = ("the output folder is not writable" if existing == Path(os.path.abspath(folder))
                else f"the output folder cannot be created in {existing}")
        return [Problem(folder, f"{what} ({reason})", user_error_hint(exc) or "choose another output folder",
                        recording)]
    return []


def check_free_space(folder: str | os.PathLike, needed: int, what: str = "the output",
                     recording: str | None = None) -> list[Problem]:
    """A problem when ``folder``'s filesystem has less than ``needed`` bytes free; a warning when it is tight."""
    existing = _nearest_existing(Path(folder))
    free = shutil.disk_usage(existing).free
    if free < needed:
        return [Problem(Path(folder), f"not enough free space: {what} needs about {format_bytes(needed)}, "
                                      f"{format_bytes(free)} are free",
                        "free space or choose an output folder on another disk", recording)]
    if free < TIGHT_FACTOR * needed:
        warnings.warn(f"{folder}: free space is tight: {what} needs about {format_bytes(needed)}, "
                      f"{format_bytes(free)} are free", LowSpaceWarning, stacklevel=3)
    return []


def check_output_target(output: str | os.PathLike, overwrite: bool, recording: str | None = None) -> list[Problem]:
    """A problem when ``output`` exists and is not a recording file this pipeline wrote.

    A recording of ours (it holds ``pipeline/session_info``, or a batch's
    finished-marker names it: damaged since, it is computed again) is replaced by
    a rerun; anything else in the way (another program's file, a folder) is
    refused unless ``overwrite`` (``output.overwrite`` of the configuration).
    """
    output = Path(output)
    if overwrite or not os.path.lexists(output):
        return []
    if output.is_dir():
        return [Problem(output, "the output path is a folder", "give the path of an .h5 file", recording)]
    from hdmea.io import _files
    from hdmea.pipeline.done_markers import read_done_marker

    if read_done_marker(output) is not None:
        return []

    try:
        with _files.probe_output(output) as f:
            ours = f is not None and "pipeline/session_info" in f
            found = "an HDF5 file without pipeline/session_info" if f is not None else "a file that is not HDF5"
    except (H5StreamError, OSError) as exc:
        ours, found = False, f"a file that cannot be read safely ({reason_text(exc)})"
    if ours:
        return []
    return [Problem(output, f"a file that is not a recording of this pipeline is in the way ({found})",
                    "remove it or choose another output path; to replace it, set output.overwrite = true in the "
                    "configuration (hdmea run --force)", recording)]


@dataclasses.dataclass
class PreflightReport:
    """What the checks found: problems per recording (by name) and the output estimates."""

    problems: dict[str, list[Problem]] = dataclasses.field(default_factory=dict)
    shared: list[Problem] = dataclasses.field(default_factory=list)
    estimates: dict[str, OutputEstimate] = dataclasses.field(default_factory=dict)

    @property
    def all_problems(self) -> list[Problem]:
        return self.shared + [p for problems in self.problems.values() for p in problems]

    def raise_if_any(self) -> None:
        if self.all_problems:
            raise PreflightError(self.all_problems)


def check_run(recordings: Iterable[Any], outputs: Sequence[str | os.PathLike], config: Any, *,
              open_files: bool = True) -> PreflightReport:
    """Every check for ``recordings`` writing to ``outputs`` (one output file per recording).

    Input problems (and, with ``open_files``, an output path held by a file that
    is not a recording of this pipeline) are listed per recording; the output folders' problems and
    the free space (for the sum of the estimates plus the largest checkpoint)
    are shared.  Nothing is raised: see :meth:`PreflightReport.raise_if_any`.
    """
    report = PreflightReport()
    recordings = list(recordings)
    for recording in recordings:
        problems, estimate = check_inputs(recording, config, open_files=open_files)
        if problems:
            report.problems[recording.name] = problems
        if estimate is not None:
            report.estimates[recording.name] = estimate
    overwrite = bool(config is not None and config.output.overwrite)
    # What a custom job writes is its own business: only the pipeline's outputs are probed.
    for recording, output in zip(recordings, outputs) if open_files else ():
        in_the_way = check_output_target(output, overwrite, recording.name)
        if in_the_way:
            report.problems.setdefault(recording.name, []).extend(in_the_way)
    folders = list(dict.fromkeys(Path(os.path.abspath(Path(o).parent)) for o in outputs))
    for folder in folders:
        report.shared += check_output_folder(folder)
    if not report.shared and report.estimates:
        estimates = list(report.estimates.values())
        needed = sum(e.total for e in estimates) + max(e.peak - e.total for e in estimates)
        count = len(estimates)
        what = (f"the output of {recordings[0].name} ({estimates[0].describe()}"
                + (", and as much again for its checkpoint)" if estimates[0].checkpoint else ")")
                if count == 1 else f"the outputs of {count} recordings with one checkpoint")
        # One filesystem is assumed for the folders of one run (a batch writes one folder).
        report.shared += check_free_space(folders[0], needed, what)
    return report


# --------------------------------------------------------------------------- configuration and inputs together


def config_problems(error: Any) -> list[Problem]:
    """Each mistake of a :class:`~hdmea.errors.ConfigError` (one, or several: ``ConfigErrors``) as a problem."""
    mistakes = getattr(error, "problems", None) or [error]
    lines = getattr(error, "lines", None) or [None] * len(mistakes)
    path = Path(error.path) if error.path else Path("--config")
    return [Problem(path, f"{m.reason}", "", line=line) for m, line in zip(mistakes, lines)]


def load_with_inputs(load: Callable[[], Any], default: Any, inputs: Callable[[Any], list[Problem]]) -> Any:
    """The configuration ``load()`` reads; where it has mistakes, they are raised together with every problem
    ``inputs(default)`` finds in the inputs and output folders (checked with the ``default`` configuration),
    as one :class:`PreflightError`: one run of a command names all that is wrong.  Nothing else is started.
    """
    from hdmea.errors import ConfigError

    try:
        return load()
    except ConfigError as exc:
        mistakes = exc
    try:
        problems = inputs(default)
    except H5StreamError as exc:  # the recordings cannot even be listed: that is one more problem
        problems = [Problem(Path(exc.path or "."), reason_text(exc), exc.hint or "check the path")]
    if not problems:
        raise mistakes
    raise PreflightError(config_problems(mistakes) + problems) from None


# --------------------------------------------------------------------------- the user's errors

#: errno values that say the user's setup is at fault: retrying cannot help.
USER_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOENT, errno.ENOTDIR,
               errno.EISDIR}

_ERRNO_HINTS = {
    errno.EACCES: "check the permissions of the path, or choose another output folder",
    errno.EPERM: "check the permissions of the path, or choose another output folder",
    errno.EROFS: "the filesystem is read-only: choose an output folder on a writable disk",
    errno.ENOSPC: "free space or choose an output folder on another disk",
    errno.EDQUOT: "your disk quota is used up: free space or choose an output folder on another disk",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "the path is a folder: give a file name",
}


def user_errno(exc: BaseException) -> int | None:
    """The errno of the first OSError in ``exc``'s chain that is the user's (permissions, space, path)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        number = getattr(current, "errno", None)
        if isinstance(current, OSError) and number in USER_ERRNOS:
            return number
        current = current.__cause__ or current.__context__
    return None


def user_error_hint(exc: BaseException) -> str | None:
    """What to do about a permission, read-only, missing-path or no-space error (None for others)."""
    number = user_errno(exc)
    return None if number is None else _ERRNO_HINTS[number]


# --------------------------------------------------------------------------- folders a run creates


class CreatedFolders:
    """Create a folder and its missing parents; :meth:`remove_if_empty` takes back the empty ones.

    A failed run must not leave behind an empty output folder that it created.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        folder = Path(os.path.abspath(folder))
        self.created: list[Path] = []
        missing = []
        probe = folder
        while not probe.exists() and probe != probe.parent:
            missing.append(probe)
            probe = probe.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                continue
            self.created.append(path)

    def remove_if_empty(self) -> None:
        for path in reversed(self.created):
            try:
                path.rmdir()
            except OSError:
                break  # not empty (or gone): its parents are not empty either
        self.created = []
