"""The names a recording file records for its finished steps (``pipeline/session_info/completed_steps``).

Files written before the step table had its present names recorded some steps under an older name;
those read as the present name (:func:`canonical_step_name`).  The step table
(:mod:`hdmea.steps.table`) checks that every present name here is one of its rows.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["RECORDED_STEP_ALIASES", "COMPOSITE_STEPS", "canonical_step_name", "canonical_step_names", "steps_done"]

#: Older recorded name -> the step's present name.  Only names earlier versions wrote into files: a
#: configuration key such as ``sta`` is no recorded name.
RECORDED_STEP_ALIASES: dict[str, str] = {"eimage_sta": "compute_eimage_sta"}


#: A step recorded under one name that ran others: ``load_recording_with_eimage_sta`` records its own name
#: only, as the original does (its file lists no ``load_recording`` or ``compute_eimage_sta``); a step that
#: needs one of those finds it done.
COMPOSITE_STEPS: dict[str, tuple[str, ...]] = {
    "load_recording_with_eimage_sta": ("load_recording", "compute_eimage_sta"),
}


def steps_done(names: Iterable[str]) -> set[str]:
    """The steps that have run, given the recorded names: each composite step's inner steps included."""
    done = set(canonical_step_names(names))
    for name in list(done):
        done.update(COMPOSITE_STEPS.get(name, ()))
    return done


def canonical_step_name(name: str) -> str:
    """The present name of a recorded step (older names map to theirs; unknown names pass through)."""
    return RECORDED_STEP_ALIASES.get(name, name)


def canonical_step_names(names: Iterable[str]) -> list[str]:
    """Recorded step names with older names replaced, in order, each once."""
    seen: dict[str, None] = {}
    for name in names:
        seen.setdefault(canonical_step_name(str(name)), None)
    return list(seen)
