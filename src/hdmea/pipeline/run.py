"""The runner: :func:`run_pipeline` walks the step table (:mod:`hdmea.steps.table`) for one recording."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from h5stream.stops import carry_over, kept_stops, raise_if_noted
from hdmea.progress import progress
from hdmea.session.names import canonical_step_names, steps_done
from hdmea.steps.table import STEPS, Step, StepContext

__all__ = ["run_pipeline", "PipelineReport", "StepRecord", "planned_steps", "CHECKPOINT_SUFFIX",
           "checkpoint_path_for"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


CHECKPOINT_SUFFIX = ".checkpoint.h5"


def checkpoint_path_for(output: str | os.PathLike) -> Path:
    """Where :func:`run_pipeline` keeps the checkpoint of ``output`` while it runs."""
    output = Path(output)
    return output.with_name(output.name + CHECKPOINT_SUFFIX)


# --------------------------------------------------------------------------- one recording


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
    #: the electrical images' orientation self-check (fractions of units whose image peaks at
    #: their own (row, col) and at (col, row)), when the step ran; see hdmea.steps.eimage
    orientation: dict | None = None
    #: how the raw frames were read, what decided it and the evidence (hdmea.io.frame_order), when
    #: a step read the .cmcr
    frame_order: dict | None = None

    def as_dict(self) -> dict:
        return {
            "dataset_id": self.dataset_id,
            "output": str(self.output),
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "n_units": self.n_units,
            "seconds": self.seconds,
            "resumed_from": None if self.resumed_from is None else str(self.resumed_from),
            "checkpoints": self.checkpoints,
            "orientation": self.orientation,
            "frame_order": self.frame_order,
        }


def _off_reason(step: Step, ctx: StepContext) -> str | None:
    """Why ``step`` does not run for this recording (None: it runs)."""
    if not step.enabled(ctx.config):
        return f"steps.{step.name} is off"
    return step.needs(ctx) if step.needs is not None else None


def planned_steps(config: Any = None, stimulus: Any = None) -> list[tuple[str, str | None]]:
    """Each step's name and why it will not run (None: it runs) for ``config`` and ``stimulus``.

    Used to tell a user before a run what it will do, e.g. that without a
    configuration only loading runs.
    """
    from hdmea.config import PipelineConfig

    config = config if config is not None else PipelineConfig()
    ctx = StepContext(cmcr=Path(), cmtr=Path(), output=Path(), config=config, stimulus=stimulus, session=None)
    return [(step.name, _off_reason(step, ctx)) for step in STEPS]


def _open_session(output: Path, dataset_id: str, digest: str, memory_limit: int | None):
    """A session resumed from the checkpoint made with the same configuration, else a new one."""
    from hdmea.errors import CheckpointError
    from hdmea.session.session import PipelineSession, create_session

    checkpoint = checkpoint_path_for(output)
    if checkpoint.exists():
        try:
            session = PipelineSession.load(checkpoint, hdf5_path=output, memory_limit=memory_limit)
        except CheckpointError as exc:
            logger.warning("checkpoint %s cannot be resumed (%s); starting over", checkpoint, exc)
        else:
            if (session.checkpoint_name or "").rpartition("@")[2] == digest:
                logger.info("resuming from %s (steps done: %s)", checkpoint.name,
                            ", ".join(session.completed_steps) or "none")
                return session, checkpoint
            logger.warning("checkpoint %s was made with another configuration; starting over",
                           checkpoint.name)
            session.close()
    return create_session(dataset_id, hdf5_path=output, memory_limit=memory_limit), None


def run_pipeline(
    cmcr: str | os.PathLike,
    cmtr: str | os.PathLike,
    output: str | os.PathLike,
    config: Any = None,
    *,
    dataset_id: str | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    show_progress: bool | None = None,
    preflight: bool = True,
) -> PipelineReport:
    """Run every configured step of :data:`STEPS` for one recording in a deferred session and save once.

    After each expensive step (loading, STA, electrical image) the session is
    checkpointed to ``<output>.checkpoint.h5`` once at least
    ``config.output.checkpoint_min_seconds`` of work would otherwise be lost,
    except after the last expensive step that runs: only light steps and the
    final save follow it, so the checkpoint would write the same file a second
    time to cover seconds of work.  When that file exists at the start, the
    run resumes from it and skips the steps it records as done.  The output
    appears atomically at the end and the checkpoint is removed.

    Ctrl-C ends the run with ``KeyboardInterrupt``, also one that Python
    drops (raised inside a finalizer or a weak reference's callback): it is
    raised again at the next instruction outside that callback, or at the next
    step (:mod:`h5stream.stops`); nothing of the output is left half-written.
    Importing :mod:`hdmea` takes Ctrl-C with :func:`h5stream.stops.ctrl_c`
    where Python's own handler had it: a Ctrl-C while the job still imports
    never leaves the import lock held (the job would wait for ever).  A
    Ctrl-C that a library took before the run (an ``except BaseException``
    around the configuration's loading, say) is recorded and ends the run at
    its start; one a library takes during the run ends it at the next step or
    progress update; one taken after the output was committed returns the
    report and stays recorded for the program's next job
    (:func:`h5stream.stops.recorded`).  A ``KeyboardInterrupt`` the program's
    own ``except`` catches is handled: not raised again.

    Parameters
    ----------
    cmcr, cmtr
        The recording's input files.
    output
        The recording file to write (``.h5``).
    config
        A :class:`hdmea.config.PipelineConfig`: stimulus, step switches and
        parameters, output options (default: an empty one).
    dataset_id
        Recording id (default: the output's stem).
    on_step
        Called after each step with its :class:`StepRecord`.
    show_progress
        A bar over the steps on a terminal, coarse log lines elsewhere (None:
        decided by the terminal; False: neither).
    preflight
        Before the first step, check that both inputs open as what they should
        be, that the output folder exists or can be created and is writable,
        and that its disk has room for the output
        (:mod:`hdmea.pipeline.preflight`); a problem raises
        :class:`~hdmea.pipeline.preflight.PreflightError` before any work.  The
        output folder is created when missing and removed again when the run
        fails and leaves it empty.
    """
    from hdmea.config import PipelineConfig
    from hdmea.pipeline.batch.preemption import raise_if_stopped
    from hdmea.pipeline.preflight import CreatedFolders, check_run

    config = config if config is not None else PipelineConfig()
    cmcr, cmtr, output = Path(cmcr), Path(cmtr), Path(output)
    dataset_id = dataset_id or output.stem
    # Ctrl-C that Python drops (raised inside a finalizer or a weakref callback) or that code it runs takes
    # is raised again, not lost: from the checks on, which read the inputs for a second on a busy machine
    with kept_stops():
        raise_if_noted()  # a Ctrl-C taken by a library before the run (its configuration's loading) ends it here
        if preflight:
            recording = _Inputs(dataset_id, cmcr, cmtr)
            check_run([recording], [output], config).raise_if_any()
        folders = CreatedFolders(output.parent)
        try:
            raise_if_stopped()  # a stop the checks took ends the run before its first step (as between steps)
            report = _run_steps(cmcr, cmtr, output, config, dataset_id, on_step, show_progress)
        except BaseException:
            folders.remove_if_empty()
            raise
        carry_over()  # the output is committed; a stop a library took meanwhile is the program's to meet next
        return report


@dataclasses.dataclass(frozen=True)
class _Inputs:
    name: str
    cmcr: Path
    cmtr: Path


def _run_steps(cmcr: Path, cmtr: Path, output: Path, config: Any, dataset_id: str,
               on_step: Callable[[StepRecord], None] | None, show_progress: bool | None) -> PipelineReport:
    started = time.perf_counter()
    stimulus = config.stimulus.resolve(dataset_id, cmcr.parent)
    memory_limit = (None if config.output.memory_limit_gb is None
                    else int(config.output.memory_limit_gb * 1e9))
    digest = config.digest()
    session, resumed_from = _open_session(output, dataset_id, digest, memory_limit)
    checkpoint = checkpoint_path_for(output)
    ctx = StepContext(cmcr=cmcr, cmtr=cmtr, output=output, config=config, stimulus=stimulus, session=session)
    records: list[StepRecord] = []
    checkpoints = 0
    unsaved_seconds = 0.0  # work done since the last checkpoint
    bar = progress(len(STEPS), dataset_id, unit="step", log=logger, enabled=show_progress) \
        if show_progress is not False else None
    done_before = steps_done(session.completed_steps)
    off = {step.name: _off_reason(step, ctx) for step in STEPS}
    # The last step with checkpoint_after that runs: the steps after it are light, and the final
    # save follows within their seconds, so a checkpoint after it would write the same file
    # twice (often a fifth of a lab recording's job) to protect only that short stretch.
    heavy = [step for step in STEPS if step.checkpoint_after and step.name not in done_before
             and off[step.name] is None]
    last_heavy = heavy[-1] if heavy else None
    from hdmea.pipeline.batch.preemption import Preempted, raise_if_stopped, shielded

    step = None
    # the steps the checkpoint file holds now (a resumed session's, then each checkpoint's)
    kept = canonical_step_names(session.completed_steps) if resumed_from is not None else None
    try:
        for step in STEPS:
            if bar is not None:
                bar.set_postfix(step.name)
            if step.name in steps_done(session.completed_steps):
                record = StepRecord(step.name, "resumed")
            elif (reason := off[step.name]) is not None:
                record = StepRecord(step.name, "off", note=reason)
            else:
                t0 = time.perf_counter()
                step.call(ctx, step)
                record = StepRecord(step.name, "ran", time.perf_counter() - t0)
                logger.info("%s done in %.2f s", step.name, record.seconds)
                unsaved_seconds += record.seconds
                if (step.checkpoint_after and config.output.checkpoint and step is not last_heavy
                        and unsaved_seconds >= config.output.checkpoint_min_seconds):
                    # The name carries the configuration digest: a resume with other
                    # parameters must not reuse these results.
                    with shielded():  # a stop signal waits for the file to be complete
                        session.checkpoint(checkpoint, checkpoint_name=f"after_{step.name}@{digest}",
                                           overwrite=True)
                    checkpoints += 1
                    unsaved_seconds = 0.0
                    kept = canonical_step_names(session.completed_steps)
                    raise_if_stopped()
            records.append(record)
            if bar is not None:
                bar.update(1)
            if on_step is not None:
                on_step(record)
            # A stop this process was told of ends the run here, between two steps, also when the Preempted
            # raised for it never reached this frame (a signal handler runs between any two bytecodes of the
            # main thread, also inside code that drops what it raises: seen in a CI run under load, where
            # `hdmea run` then finished every step and exited 0) or is still on its way (taken back then).
            raise_if_stopped()
        n_units = session.unit_count
        orientation = _orientation_summary(session)
        frame_order = _frame_order_summary(session)
        with shielded():  # a stop signal now has nothing left to keep: the output is complete
            session.save(output, overwrite=True)
    except Preempted as stop:
        # A signal (SLURM's time limit, preemption, Ctrl-C): keep the finished steps for the next run.
        _checkpoint_on_stop(session, checkpoint, digest, dataset_id, step, stop, kept)
        raise
    finally:
        if bar is not None:
            bar.close()
        session.close()
    checkpoint.unlink(missing_ok=True)
    return PipelineReport(dataset_id=dataset_id, output=output, steps=records, n_units=n_units,
                          seconds=time.perf_counter() - started, resumed_from=resumed_from,
                          checkpoints=checkpoints, orientation=orientation, frame_order=frame_order)


def frame_order_words(order: dict) -> str:
    """How the raw frames were read and what decided it, in words, from a run's ``frame_order`` summary."""
    from hdmea.io.frame_order import FrameOrderDecision

    return FrameOrderDecision.from_record(order).words()


def _frame_order_summary(session) -> dict | None:
    """The frame-order decision a step stored, as plain values plus a one-line ``summary`` (None: none)."""
    from hdmea.io.frame_order import stored_frame_order

    decision = stored_frame_order(session)
    if decision is None:
        return None
    out = {k: (v.item() if hasattr(v, "item") else v) for k, v in decision.as_record().items()}
    out["summary"] = decision.summary()
    if decision.undecided or decision.swapped_fields:
        out["warning"] = decision.warning_text(str(session.dataset_id))
    return out


def _checkpoint_on_stop(session, checkpoint: Path, digest: str, dataset_id: str, step: Step | None,
                        stop: BaseException, kept: list[str] | None) -> None:
    """Write the session's finished steps to ``checkpoint`` and note on ``stop`` what was kept.

    The step the signal cut short is not marked complete; the next run does it
    again and replaces whatever it had staged.  ``kept``: the steps the
    checkpoint file holds already (None: no such file); when they are all
    that is done, it is not written again.
    """
    from hdmea.pipeline.batch.preemption import shielded

    done = canonical_step_names(session.completed_steps)
    stop.recording, stop.steps_done = dataset_id, done
    stop.step = step.name if step is not None and step.name not in done else None
    if not done:
        return
    if kept == done and checkpoint.exists():
        stop.checkpoint = checkpoint
        logger.debug("stopped by %s; steps done (%s) are in %s already", stop.signal_name, ", ".join(done),
                       checkpoint)
        return
    try:
        with shielded():
            session.checkpoint(checkpoint, checkpoint_name=f"after_{done[-1]}@{digest}", overwrite=True)
    except Exception as exc:  # noqa: BLE001 - the stop is reported either way, with why nothing was kept
        from hdmea.pipeline.batch.failures import describe_error

        stop.checkpoint_error = describe_error(exc)  # plain words and the message, as a batch summary says it
        logger.error("stopped, and the checkpoint %s could not be written: %s", checkpoint, exc)
    else:
        stop.checkpoint = checkpoint
        logger.debug("stopped by %s; steps done (%s) checkpointed to %s", stop.signal_name,
                       ", ".join(done), checkpoint)


def _orientation_summary(session) -> dict | None:
    """The orientation self-check the electrical-image step stored, as plain values (None: not run)."""
    from hdmea.steps.eimage import ORIENTATION_METADATA

    stored = session.get(ORIENTATION_METADATA, None)
    if not isinstance(stored, dict):
        return None
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in stored.items()}
