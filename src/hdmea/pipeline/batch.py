"""Batch runs: one idempotent job per recording, on any executor.

:func:`run_batch` sends one job per recording to a ``concurrent.futures``
executor (a Dask ``Client`` works too; by default a Dask ``LocalCluster`` when
``distributed`` is installed, else a process pool that is rebuilt when a worker
dies).  Each job

- skips a recording whose output is already finished: the job writes
  ``<out>.done`` (atomically, after the output file itself was committed) with
  the configuration digest; a rerun with the same configuration skips it;
- resumes a half-finished recording from its checkpoint ``<out>.checkpoint.h5``;
- reports its own failures, sorted into *data* errors (a bad input file: failed
  once, with the reason) and *infrastructure* errors (a killed worker, out of
  memory, I/O): retried up to ``retries`` times.

The same code runs on a cluster: pass a ``Client`` connected to a scheduler
(``scheduler="tcp://host:8786"``), or build a dask-jobqueue ``SLURMCluster``
with :func:`slurm_client`; SLURM job arrays need no scheduler at all and run
:func:`run_one` (``hdmea run-one --index $SLURM_ARRAY_TASK_ID``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import datetime as _dt
import json
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from h5stream.errors import FormatError, SourceNotFoundError, StaleClaimWarning, WriteError
from h5stream.files import WriterClaim, fsync_directory
from hdmea.config import PipelineConfig
from hdmea.errors import ConfigError, MissingStepError, RecordingFormatError
from hdmea.progress import progress, recording_context

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

__all__ = [
    "Recording",
    "RecordingResult",
    "BatchSummary",
    "run_batch",
    "run_one",
    "run_job",
    "discover_recordings",
    "output_path_for",
    "done_marker_path",
    "checkpoint_path_for",
    "read_done_marker",
    "classify_error",
    "slurm_client",
    "slurm_cluster",
    "run_pipeline",
    "PipelineReport",
    "StepRecord",
    "PIPELINE_STEPS",
]

DONE_SUFFIX = ".done"
CHECKPOINT_SUFFIX = ".checkpoint.h5"


# --------------------------------------------------------------------------- recordings


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


def checkpoint_path_for(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name + CHECKPOINT_SUFFIX)


def read_done_marker(output: str | os.PathLike) -> dict | None:
    """The finished-marker of ``output`` (None when absent, unreadable or the output is gone)."""
    marker = done_marker_path(output)
    if not Path(output).exists():
        return None
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_done_marker(output: Path, record: dict) -> None:
    marker = done_marker_path(output)
    tmp = marker.with_name(f"{marker.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=1, sort_keys=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, marker)
    fsync_directory(marker.parent)


# --------------------------------------------------------------------------- error classes

DATA = "data"
INFRASTRUCTURE = "infrastructure"
ERROR = "error"


def _infrastructure_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [cf.BrokenExecutor, MemoryError, cf.CancelledError,
                                        TimeoutError, ConnectionError]
    try:
        from distributed import KilledWorker
        from distributed.comm.core import CommClosedError

        types += [KilledWorker, CommClosedError]
    except ImportError:
        pass
    return tuple(types)


# Checked in order; the first match decides.  Data errors come first because
# FormatError derives from OSError.  Anything unlisted is a deterministic
# failure (a bug or a bad parameter): reported once, not retried.
_ERROR_CLASSES: list[tuple[Callable[[], tuple[type[BaseException], ...]], str]] = [
    (lambda: (RecordingFormatError, ConfigError, MissingStepError, SourceNotFoundError,
              FileNotFoundError), DATA),
    (lambda: (WriteError,), INFRASTRUCTURE),
    (lambda: (FormatError,), DATA),
    (_infrastructure_types, INFRASTRUCTURE),
    (lambda: (OSError,), INFRASTRUCTURE),
]


def classify_error(exc: BaseException) -> str:
    """``"data"`` (bad input: do not retry), ``"infrastructure"`` (retry) or ``"error"``."""
    for types, kind in _ERROR_CLASSES:
        if isinstance(exc, types()):
            return kind
    return ERROR


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- the job

#: ``job(recording, output, config) -> dict`` of details for the summary.
JobFunction = Callable[[Recording, Path, PipelineConfig], dict]


#: Thread-count variables the numeric libraries read once, when they load.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                     "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def thread_environment(threads: int) -> dict[str, str]:
    """Environment variables that cap every numeric library of a worker at ``threads`` threads."""
    return {name: str(int(threads)) for name in _THREAD_VARIABLES}


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Each of ``workers`` jobs side by side gets an equal share of the cores (at least one)."""
    return max(1, (cores or available_cores()) // max(1, workers))


def _limit_loaded_libraries(threads: int) -> None:
    """Cap libraries that were loaded before the variables were set (numba, OpenBLAS)."""
    numba = sys.modules.get("numba")
    if numba is not None:
        with contextlib.suppress(Exception):
            numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    # numpy's OpenBLAS starts its threads when numpy is imported, which a worker
    # process may already have done (distributed imports numpy): set it at run time.
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            libraries = {line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line}
    except OSError:
        return
    for library in libraries:
        try:
            handle = ctypes.CDLL(library)
        except OSError:
            continue
        for symbol in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                       "scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            setter = getattr(handle, symbol, None)
            if setter is not None:
                setter(ctypes.c_int(threads))
                break


def _warm_up() -> None:
    """Import every step and run the whole pipeline once on a tiny synthetic recording.

    A fresh process pays seconds for imports, scipy.signal and loading numba's
    cached machine code on each kernel's first call; a worker pays that once,
    here, instead of inside its first recording.
    """
    import importlib
    import tempfile

    for module in ("hdmea.pipeline.runner", "hdmea.io.section_time", "hdmea.io.spike_sectioning",
                   "hdmea.features.sta", "hdmea.pipeline.eimage", "hdmea.features.extract", "scipy.signal"):
        importlib.import_module(module)
    from hdmea.config import parse_config
    from hdmea.synthetic import generate_recording

    with tempfile.TemporaryDirectory(prefix="hdmea-warm-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        made = generate_recording(tmp, "warm", n_units=3, seed=0)
        config = parse_config({"stimulus": {"file": str(made.stimulus_path)}, "steps": {"eimage": True},
                               "output": {"checkpoint": False}})
        run_pipeline(made.cmcr_path, made.cmtr_path, Path(tmp) / "warm.h5", config, dataset_id="warm",
                     show_progress=False)


@dataclasses.dataclass(frozen=True)
class WorkerSetup:
    """What a batch worker process does once, before its first job.

    ``threads`` caps the numeric libraries (None: leave them alone); ``warm``
    runs :func:`_warm_up`; ``init`` is the caller's own initialiser (e.g.
    logging).  Used as the process pool's initializer, run on every Dask worker
    when the cluster starts, and by each job as a fallback (a worker restarted
    after a crash); it runs once per process whichever comes first.
    """

    threads: int | None = None
    warm: bool = True
    init: Callable[[], None] | None = None

    def __call__(self) -> float:
        """Set this process up unless done already; returns the seconds it took (0.0 when done before)."""
        key = repr(self)  # equal after pickling, unlike the objects themselves
        if key in _SETUP_SECONDS:
            return 0.0
        started = time.perf_counter()
        if self.threads is not None:
            os.environ.update(thread_environment(self.threads))
            _limit_loaded_libraries(self.threads)
        if self.init is not None:
            self.init()
        if self.warm:
            try:
                _warm_up()
            except Exception as exc:  # noqa: BLE001 - warming is an optimisation; the job reports real errors
                logger.warning("worker warm-up failed (%s); jobs start cold", _describe(exc))
        _SETUP_SECONDS[key] = time.perf_counter() - started
        return _SETUP_SECONDS[key]

    def reported_up_front(self) -> float:
        """Set up now and return the seconds to the caller, so that no job reports them again."""
        seconds = self()
        _SETUP_REPORTED.add(repr(self))
        return seconds


_SETUP_SECONDS: dict[str, float] = {}  # setups this process ran, with their seconds
_SETUP_REPORTED: set[str] = set()  # setups whose seconds went out with a job already


def _take_setup_seconds(setup: WorkerSetup | None) -> float:
    """Run this process's setup if needed; its seconds are reported with the first job only."""
    if setup is None:
        return 0.0
    setup()
    key = repr(setup)
    if key in _SETUP_REPORTED:
        return 0.0
    _SETUP_REPORTED.add(key)
    return _SETUP_SECONDS[key]


@dataclasses.dataclass(frozen=True)
class _JobCall:
    """What a worker runs for one recording (picklable; no state of the driver)."""

    job: JobFunction
    setup: WorkerSetup | None = None

    def __call__(self, recording: Recording, output: Path, config: PipelineConfig,
                 attempt: int) -> dict:
        # The worker's one-time setup stays outside the recording's own time.
        setup_seconds = _take_setup_seconds(self.setup)
        outcome = run_job(recording, output, config, job=self.job, attempt=attempt)
        outcome["worker_setup_seconds"] = setup_seconds
        return outcome


def run_job(recording: Recording, output: str | os.PathLike, config: PipelineConfig, *,
            job: JobFunction | None = None, attempt: int = 1) -> dict:
    """Run ``job`` for one recording unless its output is already finished.

    Returns an outcome dict: ``status`` ("done", "skipped" or "failed"),
    ``seconds``, ``kind`` and ``error`` for failures, ``detail`` from the job.
    Exceptions that a worker can survive are caught and returned, sorted by
    :func:`classify_error`; only the death of the process escapes.
    """
    output = Path(output)
    job = job if job is not None else run_pipeline_job
    digest = config.digest()
    with recording_context(recording.name):
        marker = read_done_marker(output)
        if marker is not None and marker.get("config_digest") == digest and not config.output.overwrite:
            logger.info("already finished at %s, skipped", marker.get("finished_at"))
            return {"status": "skipped", "seconds": 0.0, "detail": marker.get("detail", {}),
                    "pid": os.getpid(), "finished_unix": marker.get("finished_unix"),
                    "job_seconds": marker.get("seconds", 0.0)}
        if marker is not None:
            logger.info("finished output was made with another configuration; redoing it")
        started = time.perf_counter()
        logger.info("started (attempt %d)", attempt)
        _note_left_claims(output)
        try:
            done_marker_path(output).unlink(missing_ok=True)
            with warnings.catch_warnings():
                # A worker killed mid-write leaves its writer claim behind; the next
                # attempt clears it (the claim's pid is gone), which is expected here
                # and already logged by _note_left_claims.
                warnings.filterwarnings("ignore", category=StaleClaimWarning)
                detail = job(recording, output, config) or {}
        except Exception as exc:  # noqa: BLE001 - every failure is reported, sorted by kind
            seconds = time.perf_counter() - started
            kind = classify_error(exc)
            logger.error("failed after %.2f s (%s error): %s", seconds, kind, _describe(exc))
            logger.debug("%s", traceback.format_exc())
            return {"status": "failed", "seconds": seconds, "kind": kind, "error": _describe(exc),
                    "pid": os.getpid()}
        seconds = time.perf_counter() - started
        _write_done_marker(output, {
            "recording": recording.name,
            "cmcr": str(recording.cmcr),
            "cmtr": str(recording.cmtr),
            "config_digest": digest,
            "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "finished_unix": time.time(),
            "seconds": seconds,
            "attempt": attempt,
            "detail": detail,
        })
        logger.info("finished in %.2f s", seconds)
        return {"status": "done", "seconds": seconds, "detail": detail, "pid": os.getpid()}


def _note_left_claims(output: Path) -> None:
    for target in (output, checkpoint_path_for(output)):
        claim = WriterClaim(target)
        if claim.path.exists():
            logger.warning("a writer claim of an earlier attempt is present on %s: %s; it is cleared "
                           "if that process has ended", target.name, claim.describe(claim.read_holder()))


def run_pipeline_job(recording: Recording, output: Path, config: PipelineConfig) -> dict:
    """The default job: the whole pipeline for one recording (:func:`run_pipeline`)."""
    report = run_pipeline(recording.cmcr, recording.cmtr, output, config, dataset_id=recording.name)
    return report.as_dict()


# --------------------------------------------------------------------------- the pipeline of one recording


@dataclasses.dataclass
class StepRecord:
    """One step of one recording: ``status`` is "ran", "resumed" (done before a restart) or "off"."""

    name: str
    status: str
    seconds: float = 0.0
    note: str = ""


@dataclasses.dataclass
class PipelineReport:
    """What :func:`run_pipeline` did for one recording."""

    dataset_id: str
    output: Path
    steps: list[StepRecord]
    n_units: int
    seconds: float
    resumed_from: Path | None = None
    checkpoints: int = 0

    def as_dict(self) -> dict:
        return {
            "dataset_id": self.dataset_id,
            "output": str(self.output),
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "n_units": self.n_units,
            "seconds": self.seconds,
            "resumed_from": None if self.resumed_from is None else str(self.resumed_from),
            "checkpoints": self.checkpoints,
        }


@dataclasses.dataclass
class _StepContext:
    cmcr: Path
    cmtr: Path
    output: Path
    config: PipelineConfig
    stimulus: Any  # hdmea.stimulus.StimulusConfig or None
    session: Any  # PipelineSession


def _call_step(module: str, function: str, ctx: _StepContext, step: str, *args, **fixed) -> Any:
    """Call a step function with the session, the configured parameters and ``fixed`` ones."""
    import importlib
    import inspect

    func = getattr(importlib.import_module(module), function)
    kwargs = ctx.config.steps.kwargs(step)
    kwargs.update(fixed)
    if ("n_threads" in inspect.signature(func).parameters and "n_threads" not in kwargs
            and ctx.config.batch.threads_per_job):
        # Several jobs share the machine: each kernel gets its share of the cores.
        kwargs["n_threads"] = ctx.config.batch.threads_per_job
    return func(*args, session=ctx.session, **kwargs)


def _step_load(ctx: _StepContext) -> None:
    _call_step("hdmea.pipeline.runner", "load_recording", ctx, "load_recording",
               ctx.cmcr, ctx.cmtr, ctx.session.dataset_id)


def _step_section_time(ctx: _StepContext) -> None:
    _call_step("hdmea.io.section_time", "add_section_time", ctx, "add_section_time", stimulus=ctx.stimulus)


def _step_section_spikes(ctx: _StepContext) -> None:
    _call_step("hdmea.io.spike_sectioning", "section_spike_times", ctx, "section_spike_times")


def _step_sta(ctx: _StepContext) -> None:
    # The step reads the movie named in the stored stimulus configuration; one call per noise movie.
    configured = ctx.config.steps.kwargs("compute_sta").get("movie_name")
    movies = [configured] if configured else sorted(ctx.stimulus.noise_movies)
    for i, movie in enumerate(movies):
        extra = {"force": True} if i else {}
        _call_step("hdmea.features.sta", "compute_sta", ctx, "compute_sta", movie_name=movie, **extra)


def _step_eimage(ctx: _StepContext) -> None:
    # The units are in the session already: only the electrical-image half of
    # load_recording_with_eimage_sta runs here.
    _call_step("hdmea.pipeline.eimage", "compute_eimage_sta", ctx, "eimage_sta", None, ctx.cmcr)


def _step_features(ctx: _StepContext) -> None:
    _call_step("hdmea.features.extract", "extract_features", ctx, "extract_features")


def _has_stimulus(ctx: _StepContext) -> bool:
    return ctx.stimulus is not None


def _has_noise_movie(ctx: _StepContext) -> bool:
    return ctx.config.steps.sta and ctx.stimulus is not None and bool(ctx.stimulus.noise_movies)


@dataclasses.dataclass(frozen=True)
class _PipelineStep:
    name: str
    run: Callable[[_StepContext], None]
    enabled: Callable[[_StepContext], bool]
    checkpoint_after: bool  # expensive enough that a restart should not redo it
    off_reason: str = ""


#: The pipeline in order.  ``name`` is what the step records in completed_steps.
PIPELINE_STEPS: tuple[_PipelineStep, ...] = (
    _PipelineStep("load_recording", _step_load, lambda ctx: True, True),
    _PipelineStep("add_section_time", _step_section_time, _has_stimulus, False,
                  "no stimulus in the configuration"),
    _PipelineStep("section_spike_times", _step_section_spikes, _has_stimulus, False,
                  "no stimulus in the configuration"),
    _PipelineStep("compute_sta", _step_sta, _has_noise_movie, True,
                  "no noise movie in the stimulus (or steps.sta = false)"),
    _PipelineStep("eimage_sta", _step_eimage, lambda ctx: ctx.config.steps.eimage, True,
                  "steps.eimage = false"),
    _PipelineStep("extract_features", _step_features,
                  lambda ctx: ctx.config.steps.features and ctx.stimulus is not None, False,
                  "steps.features = false or no stimulus"),
)


def run_pipeline(
    cmcr: str | os.PathLike,
    cmtr: str | os.PathLike,
    output: str | os.PathLike,
    config: PipelineConfig | None = None,
    *,
    dataset_id: str | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    show_progress: bool | None = None,
) -> PipelineReport:
    """Run every configured step for one recording in a deferred session and save once.

    After each expensive step (loading, STA, electrical image) the session is
    checkpointed to ``<output>.checkpoint.h5`` once at least
    ``config.output.checkpoint_min_seconds`` of work would otherwise be lost;
    when that file exists at the
    start, the run resumes from it and skips the steps it records as done.  The
    output appears atomically at the end and the checkpoint is removed.

    Parameters
    ----------
    cmcr, cmtr
        The recording's input files.
    output
        The recording file to write (``.h5``).
    config
        Stimulus, step parameters and output options.
    dataset_id
        Recording id (default: the output's stem).
    on_step
        Called after each step with its :class:`StepRecord`.
    show_progress
        A bar over the steps on a terminal, coarse log lines elsewhere (None:
        decided by the terminal; False: neither).
    """
    from hdmea.errors import CheckpointError
    from hdmea.pipeline.session import PipelineSession, create_session

    config = config if config is not None else PipelineConfig()
    cmcr, cmtr, output = Path(cmcr), Path(cmtr), Path(output)
    dataset_id = dataset_id or output.stem
    started = time.perf_counter()
    stimulus = config.stimulus.resolve(dataset_id, cmcr.parent)
    memory_limit = (None if config.output.memory_limit_gb is None
                    else int(config.output.memory_limit_gb * 1e9))
    checkpoint = checkpoint_path_for(output)
    session = None
    resumed_from = None
    digest = config.digest()
    if checkpoint.exists():
        try:
            session = PipelineSession.load(checkpoint, hdf5_path=output, memory_limit=memory_limit)
        except CheckpointError as exc:
            logger.warning("checkpoint %s cannot be resumed (%s); starting over", checkpoint, exc)
        else:
            if (session.checkpoint_name or "").rpartition("@")[2] != digest:
                logger.warning("checkpoint %s was made with another configuration; starting over",
                               checkpoint.name)
                session.close()
                session = None
            else:
                resumed_from = checkpoint
                logger.info("resuming from %s (steps done: %s)", checkpoint.name,
                            ", ".join(session.completed_steps) or "none")
    if session is None:
        session = create_session(dataset_id, hdf5_path=output, memory_limit=memory_limit)
    ctx = _StepContext(cmcr=cmcr, cmtr=cmtr, output=output, config=config, stimulus=stimulus,
                       session=session)
    records: list[StepRecord] = []
    checkpoints = 0
    unsaved_seconds = 0.0  # work done since the last checkpoint
    bar = progress(len(PIPELINE_STEPS), dataset_id, unit="step", log=logger, enabled=show_progress) \
        if show_progress is not False else None
    try:
        for step in PIPELINE_STEPS:
            if bar is not None:
                bar.set_postfix(step.name)
            if step.name in session.completed_steps:
                record = StepRecord(step.name, "resumed")
            elif not step.enabled(ctx):
                record = StepRecord(step.name, "off", note=step.off_reason)
            else:
                t0 = time.perf_counter()
                step.run(ctx)
                record = StepRecord(step.name, "ran", time.perf_counter() - t0)
                logger.info("%s done in %.2f s", step.name, record.seconds)
                unsaved_seconds += record.seconds
                if (step.checkpoint_after and config.output.checkpoint and step is not PIPELINE_STEPS[-1]
                        and unsaved_seconds >= config.output.checkpoint_min_seconds):
                    # The name carries the configuration digest: a resume with other
                    # parameters must not reuse these results.
                    session.checkpoint(checkpoint, checkpoint_name=f"after_{step.name}@{digest}",
                                       overwrite=True)
                    checkpoints += 1
                    unsaved_seconds = 0.0
            records.append(record)
            if bar is not None:
                bar.update(1)
            if on_step is not None:
                on_step(record)
        n_units = session.unit_count
        session.save(output, overwrite=True)
    finally:
        if bar is not None:
            bar.close()
        session.close()
    checkpoint.unlink(missing_ok=True)
    return PipelineReport(dataset_id=dataset_id, output=output, steps=records, n_units=n_units,
                          seconds=time.perf_counter() - started, resumed_from=resumed_from,
                          checkpoints=checkpoints)


# --------------------------------------------------------------------------- the summary


@dataclasses.dataclass
class RecordingResult:
    """How one recording of a batch ended."""

    name: str
    output: Path
    status: str = "pending"  # done | skipped | failed
    seconds: float = 0.0
    attempts: int = 0
    kind: str | None = None
    error: str | None = None
    errors: list[str] = dataclasses.field(default_factory=list)
    detail: dict = dataclasses.field(default_factory=dict)
    #: one-time setup of the worker (thread limits, warm-up) paid before this job; not in ``seconds``
    worker_setup_seconds: float = 0.0

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["output"] = str(self.output)
        return d


@dataclasses.dataclass
class BatchSummary:
    """Every recording of a batch with its status, time, attempts and error."""

    results: list[RecordingResult]
    seconds: float
    executor: str = ""
    #: starting the executor (and, for a local Dask cluster, setting its workers up); part of ``seconds``
    startup_seconds: float = 0.0
    #: each worker's one-time setup (thread limits, warm-up), where it is known
    worker_setup_seconds: list[float] = dataclasses.field(default_factory=list)

    def _with(self, status: str) -> list[RecordingResult]:
        return [r for r in self.results if r.status == status]

    @property
    def done(self) -> list[RecordingResult]:
        return self._with("done")

    @property
    def skipped(self) -> list[RecordingResult]:
        return self._with("skipped")

    @property
    def failed(self) -> list[RecordingResult]:
        return self._with("failed")

    @property
    def ok(self) -> bool:
        return not self.failed

    def __getitem__(self, name: str) -> RecordingResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def table(self) -> str:
        """A plain-text table, one line per recording."""
        width = max([len(r.name) for r in self.results] + [9])
        lines = [f"{'recording':<{width}}  {'status':<7}  {'time s':>8}  {'tries':>5}  error"]
        for r in self.results:
            err = "" if r.error is None else f"[{r.kind}] {r.error}"
            lines.append(f"{r.name:<{width}}  {r.status:<7}  {r.seconds:8.2f}  {r.attempts:>5}  {err}")
        lines.append(
            f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed "
            f"in {self.seconds:.2f} s ({self.executor})"
        )
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "executor": self.executor, "startup_seconds": self.startup_seconds,
                "worker_setup_seconds": self.worker_setup_seconds,
                "results": [r.as_dict() for r in self.results]}

    def write_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.as_dict(), indent=1, default=str), encoding="utf-8")
        os.replace(tmp, path)
        return path


# --------------------------------------------------------------------------- executors


class _Pool:
    """The executor a batch submits to, and how to replace it when it breaks."""

    def __init__(self, executor: cf.Executor, *, owned: bool, slots: int | None,
                 name: str, close: Callable[[], None] | None = None,
                 rebuild: Callable[[], cf.Executor] | None = None) -> None:
        self.executor = executor
        self.owned = owned
        self.slots = slots
        self.name = name
        self._close = close
        self._rebuild = rebuild
        self.rebuilds = 0
        self.local_workers: int | None = None  # jobs run side by side on this machine
        self.setup_seconds: dict[str, float] = {}  # worker -> seconds of its setup, when known up front

    def can_rebuild(self) -> bool:
        return self._rebuild is not None

    def rebuild(self) -> None:
        old = self.executor
        self.executor = self._rebuild()
        self.rebuilds += 1
        # The replacement is the batch's own, whoever made the broken one: close it at the end.
        self.owned = True
        self._close = None
        logger.warning("a worker died and broke the process pool; started a new pool")
        try:
            old.shutdown(wait=False, cancel_futures=True)
        except Exception:  # noqa: BLE001 - a broken pool may fail to shut down; it is replaced anyway
            logger.debug("shutting down the broken pool failed", exc_info=True)

    def close(self) -> None:
        if self._close is not None:
            self._close()
        elif self.owned:
            self.executor.shutdown(wait=True, cancel_futures=True)


def _process_pool(workers: int, setup: WorkerSetup | None = None) -> _Pool:
    import multiprocessing

    # forkserver: workers start from a clean process (no inherited threads or open
    # HDF5 handles of the driver) yet faster than spawn.
    context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")

    def make() -> cf.Executor:
        # The setup runs when a worker starts (also in a rebuilt pool), before any job.
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=setup)

    pool = _Pool(make(), owned=True, slots=workers, name=f"process pool, {workers} workers",
                 rebuild=make)
    pool.local_workers = workers
    return pool


def _exit_without_teardown() -> None:
    """End this process now, skipping the interpreter's teardown.

    Tearing down a process that loaded numba's LLVM takes seconds (longer than
    a Dask nanny waits before killing the worker); every file of a finished
    job is already committed and closed, so there is nothing left to flush but
    the standard streams and log handlers.
    """
    _exit_without_teardown_code(0)


def _exit_without_teardown_code(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(code)


def _fast_exit_plugin():
    from distributed import WorkerPlugin

    class FastExit(WorkerPlugin):
        """Ends a worker process of a cluster the batch owns as soon as the worker has closed."""

        name = "hdmea-fast-exit"

        def teardown(self, worker) -> None:
            _exit_without_teardown()

    return FastExit()


def _dask_local_cluster(workers: int, setup: WorkerSetup | None = None) -> _Pool | None:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        return None
    # allowed_failures=0: a task whose worker dies comes back to us at once as
    # KilledWorker, so the batch's own retry count applies (the nanny restarts the worker).
    # The nanny sets ``env`` in each worker process before it unpickles any task,
    # hence before numba or OpenMP load and read their thread counts.
    env = thread_environment(setup.threads) if setup is not None and setup.threads is not None else None
    import dask

    try:
        # No statistical profiler in the workers: it samples the job's thread every
        # 10 ms for a dashboard nobody watches, taking the GIL from long numeric jobs.
        # No MALLOC_TRIM_THRESHOLD_ in the workers' environment either: the nanny sets
        # it by default, and any value turns off glibc's adaptive mmap threshold, so
        # every large numpy temporary is mapped and unmapped again (page faults on each
        # use); jobs ran 5-10% slower with it.  The nannies keep this configuration
        # for the workers they restart.
        with dask.config.set({"distributed.worker.profile.enabled": False,
                              "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=":0", scheduler_kwargs={"allowed_failures": 0}, env=env,
            )
    except (OSError, RuntimeError, TimeoutError) as exc:  # e.g. no local TCP ports
        logger.warning("a Dask LocalCluster could not start (%s); using a process pool", _describe(exc))
        return None
    client = Client(cluster)
    client.register_plugin(_fast_exit_plugin())

    def close() -> None:
        client.close()
        cluster.close()

    pool = _Pool(client.get_executor(pure=False), owned=True, slots=None,
                 name=f"dask LocalCluster, {workers} workers", close=close)
    pool.local_workers = workers
    if setup is not None:
        # Every worker sets itself up at once, side by side; a worker the nanny
        # restarts later does it before its first job instead.
        pool.setup_seconds = {str(k): float(v) for k, v in client.run(setup.reported_up_front).items()}
    return pool


def _dask_client_pool(client: Any, *, owned: bool, name: str,
                      close: Callable[[], None] | None = None) -> _Pool:
    return _Pool(client.get_executor(pure=False), owned=owned, slots=None, name=name,
                 close=close if owned else (lambda: None))


def _is_dask_client(obj: Any) -> bool:
    try:
        from distributed import Client
    except ImportError:
        return False
    return isinstance(obj, Client)


def slurm_cluster(slurm_options: Any) -> Any:
    """A dask-jobqueue ``SLURMCluster`` built from options, not yet scaled (no job submitted).

    ``slurm_options`` is a :class:`hdmea.config.SlurmConfig` or a dict of
    ``SLURMCluster`` keyword arguments (``cores``, ``memory``, ``walltime``,
    ``queue``, ``account``, ...).  ``cluster.job_script()`` shows what would be
    submitted.
    """
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as exc:
        raise ImportError(
            "SLURM clusters need dask-jobqueue: pip install 'h5stream[batch]'"
        ) from exc
    kwargs = slurm_options.cluster_kwargs() if hasattr(slurm_options, "cluster_kwargs") else dict(slurm_options)
    # Workers run one job at a time in processes (the jobs hold the GIL in places),
    # and a task whose worker dies comes back to the batch at once.
    kwargs.setdefault("scheduler_options", {"dashboard_address": ":0"})
    return SLURMCluster(**kwargs)


def slurm_client(slurm_options: Any, *, jobs: int | None = None) -> Any:
    """A dask ``Client`` on a :func:`slurm_cluster` scaled to ``jobs`` SLURM jobs.

    ``jobs`` defaults to ``slurm_options.jobs`` (or 1).  Close the client and
    then ``client.cluster`` when done (the SLURM jobs end with them).
    """
    from distributed import Client

    cluster = slurm_cluster(slurm_options)
    cluster.scale(jobs=jobs or getattr(slurm_options, "jobs", None) or 1)
    return Client(cluster)


def _make_pool(executor: Any, workers: int | None, scheduler: str | None,
               setup: WorkerSetup | None = None) -> _Pool:
    n = workers or available_cores()
    if executor is None and scheduler is not None:
        from distributed import Client

        client = Client(scheduler)
        return _dask_client_pool(client, owned=True, name=f"dask scheduler {scheduler}",
                                 close=client.close)
    if executor is None:
        pool = _dask_local_cluster(n, setup)
        return pool if pool is not None else _process_pool(n, setup)
    if _is_dask_client(executor):
        cluster = getattr(executor, "cluster", None)
        return _Pool(executor.get_executor(pure=False), owned=False, slots=None,
                     name=f"dask client {executor.scheduler.address if executor.scheduler else ''}"
                     + (f" ({type(cluster).__name__})" if cluster is not None else ""),
                     close=lambda: None)
    if isinstance(executor, cf.Executor):
        slots = getattr(executor, "_max_workers", None)
        rebuild = None
        if isinstance(executor, cf.ProcessPoolExecutor):
            context = getattr(executor, "_mp_context", None)

            def rebuild() -> cf.Executor:  # a replacement of the same size, owned by the batch
                return cf.ProcessPoolExecutor(max_workers=slots, mp_context=context)
        return _Pool(executor, owned=False, slots=slots, name=type(executor).__name__,
                     close=lambda: None, rebuild=rebuild)
    raise TypeError(
        f"executor must be a concurrent.futures.Executor or a dask Client, not {type(executor).__name__}"
    )


# --------------------------------------------------------------------------- the engine


def run_batch(
    recordings: str | os.PathLike | Iterable[Any],
    config: PipelineConfig | None,
    out_dir: str | os.PathLike,
    executor: Any = None,
    retries: int | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    job: JobFunction | None = None,
    worker_init: Callable[[], None] | None = None,
    show_progress: bool | None = None,
) -> BatchSummary:
    """Process many recordings, one idempotent job each, and report how each ended.

    Parameters
    ----------
    recordings
        A directory of ``.cmcr``/``.cmtr`` pairs, a list file, or an iterable of
        :class:`Recording` / ``(cmcr, cmtr)`` pairs (see :func:`discover_recordings`).
    config
        The pipeline configuration (default: an empty :class:`PipelineConfig`).
    out_dir
        Directory of the outputs ``<name>.h5`` (created if missing).
    executor
        Any ``concurrent.futures.Executor`` or a dask ``Client``.  None: a Dask
        ``LocalCluster`` with ``workers`` single-threaded worker processes when
        ``distributed`` is installed, else a process pool that is rebuilt when a
        worker dies.  The batch never shuts down an executor it was given.
    retries
        How many times a recording is tried again after an infrastructure error
        (killed worker, out of memory, I/O); data errors are never retried.
        Default: ``config.batch.retries``.
    workers
        Worker processes of the default executor (default: ``config.batch.workers``
        or the number of CPUs).
    scheduler
        Address of a running Dask scheduler to use instead of a local cluster.
    job
        ``job(recording, output, config) -> dict``: the work for one recording
        (default: the whole pipeline).  Must be picklable.
    worker_init
        Called once in each worker process before its first job (e.g. logging setup).
        Worker processes of this machine also cap their numeric libraries at
        their share of the cores (``config.batch.threads_per_job``, default
        cores // workers) and, for the pipeline job, warm up once (imports and
        compiled kernels) before their first recording; that setup is not part
        of a recording's time but is part of the batch's wall time, and the
        summary reports it (``startup_seconds``, ``worker_setup_seconds``).
    show_progress
        Progress bar / log lines: None decides from the terminal.

    Returns
    -------
    BatchSummary
        One :class:`RecordingResult` per recording, in input order.
    """
    config = config if config is not None else PipelineConfig()
    retries = config.batch.retries if retries is None else retries
    if retries < 0:
        raise ConfigError("retries must be >= 0", found=repr(retries))
    workers = workers if workers is not None else config.batch.workers
    scheduler = scheduler if scheduler is not None else (
        config.batch.scheduler if executor is None else None)
    items = discover_recordings(recordings)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    job = job if job is not None else run_pipeline_job
    # Only the pipeline job gains from a warm-up that runs the pipeline.
    warm = job is run_pipeline_job
    started = time.perf_counter()
    local_setup = None
    if executor is None and scheduler is None:
        # Worker processes of this machine side by side split its cores: each job's
        # kernels get their share, and each worker's libraries are capped to it.
        share = config.batch.threads_per_job or threads_per_worker(workers or available_cores())
        local_setup = WorkerSetup(threads=share, warm=warm, init=worker_init)
    pool = _make_pool(executor, workers, scheduler, local_setup)
    setup = local_setup if pool.local_workers else WorkerSetup(threads=None, warm=warm, init=worker_init)
    if isinstance(executor, cf.ThreadPoolExecutor):
        # Threads of this process: nothing to set up per worker, nothing to warm.
        setup = WorkerSetup(threads=None, warm=False, init=worker_init)
    if config.batch.threads_per_job is None and setup.threads is not None:
        config = dataclasses.replace(config, batch=dataclasses.replace(config.batch, threads_per_job=setup.threads))
    call = _JobCall(job, setup)
    startup_seconds = time.perf_counter() - started
    logger.info("batch of %d recordings on %s", len(items), pool.name)
    try:
        results = _run_all(pool, call, items, out_dir, config, retries, show_progress)
    finally:
        pool.close()
    summary = BatchSummary(results=results, seconds=time.perf_counter() - started, executor=pool.name,
                           startup_seconds=startup_seconds,
                           worker_setup_seconds=_setup_times(pool.setup_seconds, results))
    logger.info("batch finished: %d done, %d skipped, %d failed in %.2f s",
                len(summary.done), len(summary.skipped), len(summary.failed), summary.seconds)
    return summary


def _setup_times(up_front: dict[str, float], results: Sequence[RecordingResult]) -> list[float]:
    """Seconds each worker spent on its setup: at cluster start, or reported with its first job."""
    times = [t for t in up_front.values() if t > 0]
    times += [r.worker_setup_seconds for r in results if r.worker_setup_seconds > 0]
    return times


def _run_all(pool: _Pool, call: _JobCall, items: Sequence[Recording], out_dir: Path,
             config: PipelineConfig, retries: int, show_progress: bool | None) -> list[RecordingResult]:
    results = [RecordingResult(name=r.name, output=output_path_for(r, out_dir)) for r in items]
    queue: list[int] = list(range(len(items)))  # indices waiting for a submission
    running: dict[cf.Future, int] = {}
    generation: dict[cf.Future, int] = {}  # which incarnation of the pool ran the future
    max_attempts = 1 + retries
    batch_started = time.time()

    def finish(index: int, outcome: dict) -> None:
        res = results[index]
        finished_unix = outcome.get("finished_unix")
        if outcome["status"] == "skipped" and finished_unix is not None and finished_unix >= batch_started:
            # Finished by this batch: a worker died after the job but before its
            # result was collected, and the rerun found the finished output.
            outcome = dict(outcome, status="done", seconds=outcome.get("job_seconds", 0.0))
        res.status = outcome["status"]
        res.seconds += outcome.get("seconds", 0.0)
        res.worker_setup_seconds += outcome.get("worker_setup_seconds", 0.0)
        res.detail = outcome.get("detail", {}) or {}
        if outcome["status"] == "failed":
            res.kind = outcome.get("kind")
            res.error = outcome.get("error")
        else:
            res.kind = None
            res.error = None
        bar.update(1)

    def failed_attempt(index: int, kind: str, error: str, seconds: float = 0.0) -> None:
        res = results[index]
        res.errors.append(f"attempt {res.attempts}: [{kind}] {error}")
        res.seconds += seconds
        if kind == INFRASTRUCTURE and res.attempts < max_attempts:
            logger.warning("%s: attempt %d failed (%s); trying again", res.name, res.attempts, error)
            queue.append(index)
            return
        finish(index, {"status": "failed", "kind": kind, "error": error})

    def submit_more() -> None:
        while queue and (pool.slots is None or len(running) < pool.slots):
            index = queue.pop(0)
            results[index].attempts += 1
            try:
                future = pool.executor.submit(call, items[index], results[index].output, config,
                                              results[index].attempts)
            except cf.BrokenExecutor as exc:
                results[index].attempts -= 1
                queue.insert(0, index)
                if not pool.can_rebuild():
                    for i in list(queue):
                        results[i].attempts += 1
                        finish(i, {"status": "failed", "kind": INFRASTRUCTURE,
                                   "error": f"the executor is broken: {_describe(exc)}"})
                    queue.clear()
                    return
                pool.rebuild()
                continue
            running[future] = index
            generation[future] = pool.rebuilds

    with progress(len(items), "batch", unit="recording", log=logger, enabled=show_progress) as bar:
        submit_more()
        while running:
            finished, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
            broken = False
            finished_broken: list[cf.Future] = []
            for future in finished:
                index = running.pop(future)
                try:
                    outcome = future.result()
                except BaseException as exc:  # noqa: BLE001 - any way a worker can fail is sorted here
                    if isinstance(exc, cf.BrokenExecutor):
                        broken = True
                        finished_broken.append(future)
                    kind = classify_error(exc)
                    failed_attempt(index, kind, _describe(exc))
                    continue
                if outcome["status"] == "failed":
                    results[index].worker_setup_seconds += outcome.get("worker_setup_seconds", 0.0)
                    failed_attempt(index, outcome.get("kind") or ERROR, outcome.get("error") or "",
                                   outcome.get("seconds", 0.0))
                else:
                    finish(index, outcome)
            if broken and pool.can_rebuild():
                # Jobs still running on the broken pool come back as broken too
                # and are retried; rebuild once per broken pool, not per job.
                if any(generation.get(f) == pool.rebuilds for f in finished_broken):
                    pool.rebuild()
            for future in finished:
                generation.pop(future, None)
            submit_more()
    return results


# --------------------------------------------------------------------------- job arrays


def run_one(
    recordings: str | os.PathLike | Iterable[Any],
    index: int,
    config: PipelineConfig | None,
    out_dir: str | os.PathLike,
    *,
    job: JobFunction | None = None,
) -> RecordingResult:
    """Run the job of recording number ``index`` in this process (one SLURM array task).

    The recordings are ordered as :func:`discover_recordings` orders them, so
    ``--array=0-(N-1)`` covers a directory of N recordings exactly once.
    """
    config = config if config is not None else PipelineConfig()
    items = discover_recordings(recordings)
    if not 0 <= index < len(items):
        raise ConfigError("recording index out of range", expected=f"0..{len(items) - 1}",
                          found=str(index), hint="use --array=0-%d" % (len(items) - 1))
    recording = items[index]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = output_path_for(recording, out_dir)
    outcome = run_job(recording, output, config, job=job)
    result = RecordingResult(name=recording.name, output=output, attempts=1)
    result.status = outcome["status"]
    result.seconds = outcome.get("seconds", 0.0)
    result.detail = outcome.get("detail", {}) or {}
    result.kind = outcome.get("kind")
    result.error = outcome.get("error")
    return result
