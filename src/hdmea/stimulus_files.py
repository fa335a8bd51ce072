"""The lab's JSON configuration files: where they are looked up, and its stimulus files.

Files keep the original's layout: ``<config_dir>/stimuli/<name>.json`` (and, read
by the original's flows in :mod:`hdmea._compat.flow_files`, ``flows/<name>.json``
and ``defaults.json``).  A name is looked up in ``config_dir`` (default
``./config``, as the original) and then among the copies shipped with hdmea
(``hdmea/data/config``: the set6a flow and the lab's stimuli), so a flow runs from
any folder.  A path to a file is read as it is.  Bad files raise
:class:`~hdmea.errors.ConfigurationError` naming the file and the field.

This is not :mod:`hdmea.config` (the TOML configuration of ``hdmea run``); a
stimulus's ``section_kwargs`` become our :class:`hdmea.stimulus.TrialConfig`
through :func:`trial_configs`, which the sectioning steps read.  The original
pipeline's name for the stimulus files' model (``hdmea.pipeline.config``:
``StimulusConfig``) is :class:`StimulusFile` here.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from hdmea.errors import ConfigError

__all__ = [
    "StimulusFile",
    "load_json_config",
    "find_config_file",
    "load_config_as",
    "load_stimulus_config",
    "PACKAGED_CONFIG_DIR",
    "config_search_dirs",
    "trial_configs",
]

PACKAGED_CONFIG_DIR = Path(__file__).resolve().parent / "data" / "config"


def _fields_from(cls, data: dict, path) -> dict:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object", found=type(data).__name__)
    known = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in known}


def _pairs(value, name: str, path, cast) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {name} must be an object of pairs", found=type(value).__name__)
    out = {}
    for key, pair in value.items():
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ConfigError(f"{path}: {name}.{key} must be a pair", found=repr(pair))
        out[key] = (cast(pair[0]), cast(pair[1]))
    return out


@dataclasses.dataclass
class StimulusFile:
    """A stimulus described for analysis (the original's model; frame counts and rates positive)."""

    name: str
    display_name: str | None = None
    movie_length_frames: int | None = None
    frame_rate_hz: float | None = None
    num_repeats: int = 1
    sections: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    analysis_windows: dict[str, Any] = dataclasses.field(default_factory=dict)
    section_kwargs: dict[str, int] = dataclasses.field(default_factory=dict)
    generate_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    description: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("a stimulus needs a name", found=repr(self.name))
        for field, low in (("movie_length_frames", 1), ("frame_rate_hz", 0), ("num_repeats", 1)):
            value = getattr(self, field)
            if value is not None and not (value >= low if field != "frame_rate_hz" else value > 0):
                raise ConfigError(f"stimulus {self.name!r}: {field} out of range", found=repr(value))
        self.sections = _pairs(self.sections, "sections", self.name, int)
        self.analysis_windows = {k: tuple(v) if isinstance(v, list) else v for k, v in self.analysis_windows.items()}


def load_json_config(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed JSON file; ConfigurationError naming the file when it is missing or not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def config_search_dirs(config_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where names are looked up: ``config_dir`` (default ``./config``), then hdmea's own copies."""
    first = Path(config_dir) if config_dir is not None else Path("config")
    return [first, PACKAGED_CONFIG_DIR] if first.resolve() != PACKAGED_CONFIG_DIR else [first]


def find_config_file(name_or_path, kind: str, config_dir) -> Path:
    """The file of ``<kind>/<name>.json`` in :func:`config_search_dirs` (or ``name_or_path`` itself, a ``.json``
    file); ConfigError naming every place tried."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        return path
    tried = []
    for folder in config_search_dirs(config_dir):
        candidate = folder / kind / f"{name_or_path}.json"
        if candidate.is_file():
            return candidate
        tried.append(str(candidate))
    raise ConfigError(f"no {kind[:-1] if kind.endswith('s') else kind} configuration {str(name_or_path)!r}",
                      expected="one of " + ", ".join(tried),
                      found=", ".join(sorted({p.stem for d in config_search_dirs(config_dir)
                                              for p in (d / kind).glob("*.json")})) or "none")


def load_config_as(cls, name_or_path, kind: str, config_dir, what: str):
    """``cls`` (a dataclass) from the JSON file ``find_config_file(name_or_path, kind, config_dir)`` finds,
    keeping the fields ``cls`` has; a :class:`ConfigError` naming the file when it is not a ``what``."""
    path = find_config_file(name_or_path, kind, config_dir)
    data = load_json_config(path)
    try:
        return cls(**_fields_from(cls, data, path))
    except TypeError as exc:
        raise ConfigError(f"{path}: not a {what} configuration ({exc})") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_stimulus_config(name_or_path: str, config_dir: str | os.PathLike | None = None) -> StimulusFile:
    """A stimulus by name (``stimuli/<name>.json``) or by path."""
    return load_config_as(StimulusFile, name_or_path, "stimuli", config_dir, "stimulus")


def trial_configs(movies, config_dir: str | os.PathLike | None = None) -> dict[str, dict[str, int]]:
    """``section_kwargs`` (start_frame, trial_length_frame, repeat) of each movie that has a stimulus file."""
    out = {}
    for movie in movies:
        try:
            stim = load_stimulus_config(movie, config_dir)
        except ConfigError:
            continue
        kw = stim.section_kwargs
        if all(k in kw for k in ("start_frame", "trial_length_frame", "repeat")):
            out[movie] = {k: int(kw[k]) for k in ("start_frame", "trial_length_frame", "repeat")}
    return out
