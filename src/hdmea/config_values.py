"""The value every step parameter of a configuration may take: its type, range and shape, checked on reading.

:data:`STEP_VALUES` holds, per step of :data:`hdmea.steps.table.STEPS` and per keyword argument a
``[steps.<name>]`` table may set, a :class:`Value`: what the argument must be (an integer, a number, a pair
of numbers in order, one of a few words ...).  :func:`step_value_errors` checks a table against it before
anything runs, so that ``n_lags = "twenty"``, ``n_lags = 0``, ``pad_margin = 0.5`` or a reversed ``window``
are refused with the file, the key path, what was found and what is expected, instead of failing a run
halfway.  Every configurable argument of every step has an entry (a test holds the table to the
signatures), so a new argument cannot slip through unchecked.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from hdmea.config_reader import config_error
from hdmea.errors import ConfigError
from hdmea.io.lab_series import FIRING_RATE_UNTIL

__all__ = ["Value", "STEP_VALUES", "step_value_errors"]


@dataclasses.dataclass(frozen=True)
class Value:
    """What one parameter must be; ``check`` returns None for a good value, else what is wrong with it."""

    expected: str
    check: Callable[[Any], str | None]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _bound_text(minimum: float | None, above: bool) -> str:
    if minimum is None:
        return ""
    if minimum == 0 and above:
        return " > 0"
    if minimum == 1 and not above:
        return " >= 1"
    return f" {'>' if above else '>='} {minimum:g}"


def _in_range(v: float, minimum: float | None, above: bool) -> bool:
    return minimum is None or (v > minimum if above else v >= minimum)


def integer(minimum: int | None = None, *, above: bool = False, what: str = "an integer") -> Value:
    expected = f"{what}{_bound_text(minimum, above)}"

    def check(v: Any) -> str | None:
        if not _is_int(v):
            return "not a whole number" if _is_number(v) else "not an integer"
        return None if _in_range(v, minimum, above) else "out of range"
    return Value(expected, check)


def number(minimum: float | None = None, *, above: bool = False, unit: str = "") -> Value:
    expected = f"a number{f' of {unit}' if unit else ''}{_bound_text(minimum, above)}"

    def check(v: Any) -> str | None:
        if not _is_number(v):
            return "not a number"
        return None if _in_range(v, minimum, above) else "out of range"
    return Value(expected, check)


def pair(names: tuple[str, str], *, integers: bool, minimum: float | None = None, ordered: bool = False,
         unit: str = "", ends: tuple[int, ...] = ()) -> Value:
    """Two values ``[a, b]``: each an integer (or number) at least ``minimum``; ``ordered``: b > a; ``ends``:
    the values b may take.  A pair of integers takes whole numbers written as floats (``-1.0``), as the steps do."""
    each = "integers" if integers else "numbers"
    bound = f", each{_bound_text(minimum, False)}" if minimum is not None else ""
    order = f", {names[1]} > {names[0]}" if ordered else ""
    last = f", {names[1]} " + " or ".join(str(e) for e in ends) if ends else ""
    expected = f"a pair [{names[0]}, {names[1]}] of {each}{f' ({unit})' if unit else ''}{bound}{order}{last}"
    is_kind = (lambda x: _is_int(x) or (_is_number(x) and float(x).is_integer())) if integers else _is_number

    def check(v: Any) -> str | None:
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            return "not a pair"
        if not all(is_kind(x) for x in v):
            return f"not two {each}"
        if not all(_in_range(x, minimum, False) for x in v):
            return "out of range"
        if ordered and not v[1] > v[0]:
            return "not in order"
        return None if not ends or v[1] in ends else "out of range"
    return Value(expected, check)


def choice(*options: str) -> Value:
    expected = "one of " + ", ".join(f'"{o}"' for o in options)
    return Value(expected, lambda v: None if isinstance(v, str) and v in options else "not one of the choices")


def _kind(expected: str, test: Callable[[Any], bool]) -> Value:
    return Value(expected, lambda v: None if test(v) else "of the wrong kind")


FLAG = _kind("true or false", lambda v: isinstance(v, bool))
TEXT = _kind("a non-empty string", lambda v: isinstance(v, str) and bool(v))
PATH = _kind("a path (a non-empty string)", lambda v: isinstance(v, str) and bool(v))
NAMES = _kind("a list of non-empty strings", lambda v: isinstance(v, list) and all(isinstance(x, str) and x for x in v))
TABLE = _kind("a table", lambda v: isinstance(v, Mapping))
THREADS = integer(1, what="a whole number of threads")


def _size_check(v: Any) -> str | None:
    from h5stream.staging import parse_size

    if _is_int(v):
        return None if v > 0 else "out of range"
    if not isinstance(v, str):
        return "of the wrong kind"
    try:
        size = parse_size(v)
    except (TypeError, ValueError):
        return "not a size"
    return None if size is not None and size > 0 else "not a size"


SIZE = Value('a size: bytes > 0 or text like "512 MiB"', _size_check)
UNIT_IDS = _kind("a list of unit ids (integers)", lambda v: isinstance(v, list) and all(_is_int(x) for x in v))
SAMPLE_WINDOW = pair(("first", "end"), integers=True, ordered=True, unit="samples around the spike")

#: step name -> parameter -> what it must be.  Arguments not listed cannot be configured (the pipeline
#: passes them itself: hdmea.steps.table.RESERVED_STEP_ARGUMENTS) or are checked by name elsewhere
#: (sensor_axis_order: hdmea.config_steps.PARAMETER_CHECKS).
STEP_VALUES: dict[str, dict[str, Value]] = {
    "load_recording": {
        "force": FLAG, "sampling_rate": number(0, above=True, unit="Hz"), "memory_threshold": SIZE,
        "waveforms": FLAG, "output_dir": PATH, "allow_overwrite": FLAG, "config": TABLE,
        "firing_rate_until": choice(*FIRING_RATE_UNTIL),
    },
    "add_section_time": {
        "playlist_name": TEXT, "force": FLAG, "mode": choice("playlist", "analog"),
        "drop_leading_peaks": integer(0), "movie_name": TEXT, "threshold": number(),
        "section_duration_s": number(0, above=True, unit="seconds"), "channel": TEXT,
        "detect": choice("level", "derivative"), "max_sections": integer(1), "light_template": FLAG,
        "non_overlapping": FLAG, "playlist_file_path": PATH, "movie_length_file_path": PATH,
        "repeats": integer(1), "pad_frame": integer(0, what="a whole number of frames"),
        "pre_margin_frame_num": integer(0, what="a whole number of frames"),
        "post_margin_frame_num": integer(0, what="a whole number of frames"),
    },
    "section_spike_times": {
        "movie_names": NAMES, "pad_margin": pair(("before_s", "after_s"), integers=False, minimum=0, unit="seconds"),
        "force": FLAG, "n_threads": THREADS, "trial_repeats": integer(1), "config_dir": PATH,
    },
    "compute_sta": {
        "force": FLAG, "movie_name": TEXT, "n_lags": integer(1, what="a whole number of frames"),
        "exclude_current_frame": FLAG, "section_pad_frames": integer(0, what="a whole number of frames"),
        "method": choice("auto", "sparse", "dense"), "n_threads": THREADS,
        "cover_range": pair(("first", "end"), integers=True, ordered=True, unit="frames around the spike",
                            ends=(0, 1)),
        "use_multiprocessing": FLAG, "stimuli_dir": PATH,
    },
    "compute_eimage_sta": {
        "window": SAMPLE_WINDOW, "start_s": number(0, unit="seconds"),
        "duration_s": number(0, above=True, unit="seconds"), "highpass_hz": number(0, above=True, unit="Hz"),
        "filter_order": integer(1), "max_spikes_per_unit": integer(1, what="a whole number of spikes"),
        "memory_budget": SIZE, "chunk_samples": integer(1, what="a whole number of samples"), "sensor_dataset": TEXT,
        "n_threads": THREADS, "force": FLAG, "unit_ids": UNIT_IDS, "peaks": choice("included", "all"),
    },
    "extract_features": {
        "features": NAMES, "force": FLAG, "config_overrides": TABLE, "units": UNIT_IDS, "zarr_path": PATH,
    },
}


#: What a check found wrong that the expected text alone does not make plain.
_TOLD = {"not a whole number", "not in order", "not a pair", "not two numbers", "not two integers", "not a size"}


def step_value_errors(step: str, arguments: Mapping[str, Any], key: str, source: str | None) -> list[ConfigError]:
    """A :class:`~hdmea.errors.ConfigError` for each argument whose value ``STEP_VALUES`` refuses."""
    values = STEP_VALUES.get(step, {})
    errors = []
    for name, found in arguments.items():
        value = values.get(name)
        problem = None if value is None else value.check(found)
        if problem is not None:
            errors.append(config_error(f"{key}.{name}", f"must be {value.expected}", source=source, found=found,
                                       note=problem if problem in _TOLD else None))
    return errors

