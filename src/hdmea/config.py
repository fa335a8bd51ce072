"""Pipeline configuration: a TOML file checked completely before any work starts.

A configuration holds the stimulus description (playlist, movie lengths, trial
layout of each movie, the dense-noise movie for receptive fields), the
parameters of each pipeline step, the output options and the batch options.
Every problem is reported as :class:`hdmea.errors.ConfigError` naming the key
(``stimulus.trials.step_up.repeat``) and the reason, so a batch of hundreds of
recordings never starts with a typo in it.

Example
-------
.. code-block:: toml

    [stimulus]                           # inline, or: file = "{dir}/{name}.stimulus.json"
    playlist = ["step_up_5s_5i_3x", "dense_noise", "step_up_5s_5i_3x"]
    pre_margin_frames = 60               # gray frames before and after every movie
    post_margin_frames = 120

    [stimulus.movie_lengths]             # display frames of each movie
    step_up_5s_5i_3x = 1860
    dense_noise = 10800

    [stimulus.trials.step_up_5s_5i_3x]
    start_frame = 240
    trial_length_frame = 600
    repeat = 3

    [stimulus.noise_movies.dense_noise]  # receptive fields (STA) are computed for these
    path = "noise.npy"                   # (images, h, w) uint8, relative to this file
    frames_per_image = 4

    [recording]
    sensor_axis_order = "auto"           # how the .cmcr stores frames: "auto" decides per recording from the
                                         # data (docs: guide/frame-order); "col_row" or "row_col" force it

    [steps]                              # switches of the optional steps
    compute_eimage_sta = false

    [steps.section_spike_times]          # a step's parameters (and optionally enabled = ...)
    pad_margin = [0.5, 0.5]

    [output]
    checkpoint = true                    # after loading, STA and electrical images (not the last of them) ...
    checkpoint_min_seconds = 10.0        # ... once that much work would be lost without one

    [batch]
    workers = 2
    retries = 2

The keys of ``[steps]`` are the step names of
:data:`hdmea.steps.table.STEPS`: ``<name> = true|false`` switches an
optional step, a ``[steps.<name>]`` table holds its keyword arguments (checked
against the function's signature) and may switch it with ``enabled``.  The
former keys ``sta``, ``eimage``, ``features`` and ``[steps.eimage_sta]`` are
still accepted, with a :class:`hdmea.errors.DeprecatedStepNameWarning`.

The lab's tables of hdmea_processing describe the stimulus too: ``playlist_file = "playlist.csv"``,
``movie_length_file = "movie_length.csv"`` (relative to this file), ``playlist_name`` and optionally
``repeats``; the playlist is laid out as the original pipeline lays it out.

A stimulus ``file`` is a JSON file as written by
:meth:`hdmea.stimulus.StimulusConfig.save_json`; ``{name}`` in it stands for
the recording's name and ``{dir}`` for the directory of its ``.cmcr`` (one
stimulus file per recording), a relative path is taken from the configuration
file's directory.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib

from h5stream.jsonvalues import stable_hash
from hdmea.config_reader import (Problems, TableReader, at_least, check_parameter_values, config_error,
                                  explain_toml_conflict, key_lines, line_of)
from hdmea.config_steps import PARAMETER_CHECKS, StepsConfig, parse_steps, suggest_step  # noqa: F401  (handed on)
from hdmea.errors import ConfigError, ConfigErrors
from hdmea.steps.table import find_step

__all__ = [
    "StimulusSource",
    "StepsConfig",
    "OutputConfig",
    "SlurmConfig",
    "BatchConfig",
    "PipelineConfig",
    "load_config",
    "parse_config",
]


@dataclasses.dataclass(frozen=True)
class StimulusSource:
    """Where a recording's stimulus description comes from.

    Either ``inline`` (given in the configuration, the same for every recording)
    or ``file_template``: a JSON file per recording, with ``{name}`` and ``{dir}``
    standing for the recording's name and the directory of its ``.cmcr``.
    """

    inline: Any = None  # hdmea.stimulus.StimulusConfig
    file_template: str | None = None
    base_dir: str | None = None

    @property
    def given(self) -> bool:
        return self.inline is not None or self.file_template is not None

    def resolve(self, name: str, recording_dir: str | os.PathLike) -> Any:
        """The :class:`hdmea.stimulus.StimulusConfig` of one recording (None when none is configured)."""
        if self.inline is not None:
            return self.inline
        if self.file_template is None:
            return None
        from hdmea.stimulus import StimulusConfig

        # {dir} is resolved first so that a relative recording directory is not joined twice
        # with the configuration's own directory.
        path = Path(self.file_template.format(name=name, dir=os.fspath(Path(recording_dir).resolve())))
        if not path.is_absolute() and self.base_dir is not None:
            path = Path(self.base_dir) / path
        if not path.is_file():
            raise ConfigError("the stimulus file of the recording does not exist", path=path,
                              obj=name, hint="check stimulus.file in the configuration")
        return StimulusConfig.load_json(path)

    def digest_payload(self) -> Any:
        if self.inline is not None:
            data = self.inline.to_dict()
            for movie in data.get("noise_movies", {}).values():
                movie["identity"] = _file_identity(Path(movie["path"]))
            return data
        return self.file_template


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """How results are written."""

    checkpoint: bool = True
    #: A checkpoint is written after an expensive step only when at least this much
    #: work (seconds) would otherwise be lost: small recordings skip the extra writes.
    checkpoint_min_seconds: float = 10.0
    overwrite: bool = False
    memory_limit_gb: float | None = None


@dataclasses.dataclass(frozen=True)
class SlurmConfig:
    """Options of a dask-jobqueue ``SLURMCluster`` (used by ``hdmea batch --slurm``)."""

    queue: str | None = None
    account: str | None = None
    cores: int = 1
    processes: int | None = None  # worker processes per SLURM job; default one per core
    memory: str = "8GB"
    walltime: str = "02:00:00"
    jobs: int = 1
    job_extra_directives: tuple[str, ...] = ()

    def cluster_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "cores": self.cores,
            # One single-threaded worker per core: a recording's job holds the GIL in
            # places, so jobs side by side in threads would wait for each other.
            "processes": self.processes or self.cores,
            "memory": self.memory,
            "walltime": self.walltime,
        }
        if self.queue:
            kwargs["queue"] = self.queue
        if self.account:
            kwargs["account"] = self.account
        if self.job_extra_directives:
            kwargs["job_extra_directives"] = list(self.job_extra_directives)
        return kwargs


@dataclasses.dataclass(frozen=True)
class BatchConfig:
    """How a batch is spread over workers."""

    workers: int | None = None
    retries: int = 2
    threads_per_job: int | None = None
    scheduler: str | None = None
    slurm: SlurmConfig | None = None


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The whole configuration of a pipeline run; build it with :func:`load_config`."""

    stimulus: StimulusSource = dataclasses.field(default_factory=StimulusSource)
    steps: StepsConfig = dataclasses.field(default_factory=StepsConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)
    batch: BatchConfig = dataclasses.field(default_factory=BatchConfig)
    source: str | None = None
    #: how the raw frames are stored: "auto" (decided per recording from the data, see
    #: hdmea.io.frame_order), "col_row" or "row_col"; passed to every step that reads the .cmcr
    sensor_axis_order: str = "auto"

    def digest_payload(self) -> dict[str, Any]:
        """Everything that changes the results (not batch or output options), as plain values."""
        switches = {_digest_key(name, "digest_key"): on for name, on in self.steps.switches.items()}
        params = {_digest_key(name, "digest_params_key"): dict(value)
                  for name, value in sorted(self.steps.params.items())}
        payload = {"stimulus": self.stimulus.digest_payload(), "steps": {**switches, "params": params}}
        if self.sensor_axis_order != "auto":  # "auto" leaves the digests of earlier configurations unchanged
            payload["sensor_axis_order"] = self.sensor_axis_order
        return payload

    def digest(self) -> str:
        """A hash of :meth:`digest_payload`; stored in ``.done`` markers and checkpoint names."""
        # The spaced JSON form keeps every digest stored before the hash was shared byte-identical.
        return stable_hash(self.digest_payload(), spaced=True)


def _digest_key(name: str, which: str) -> str:
    """The key of step ``name`` in digest payloads: digests are stored in .done markers and checkpoint
    names, so the steps that had other configuration keys when digests were introduced keep those keys
    (the table's ``digest_key`` / ``digest_params_key``) and outputs finished before the renaming are
    still recognised."""
    found = find_step(name)
    return (getattr(found[0], which) if found is not None else None) or name


def _file_identity(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return str(path)
    return f"{path}:{st.st_size}:{int(st.st_mtime)}"


def load_config(path: str | os.PathLike) -> PipelineConfig:
    """Read and check a TOML configuration file.

    Relative paths inside the file (the noise movie) are resolved against the
    file's directory.  Step parameters are checked against the signatures of the
    step functions.

    Raises
    ------
    ConfigError
        The file is missing, not TOML, or any key is unknown, of the wrong type or
        out of range; the message names the key and the reason.  A mistake in
        the values is raised as a :class:`~hdmea.errors.ConfigErrors` that lists
        every mistake of the file, each with its line.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError("configuration file does not exist", path=path,
                          hint="check the path given to --config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the configuration ({exc})", path=path) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        conflict = explain_toml_conflict(text)
        if conflict is not None:
            raise ConfigError(conflict, path=path) from None
        raise ConfigError(f"not valid TOML ({exc})", path=path,
                          hint="fix that line (https://toml.io shows the syntax)") from None
    try:
        return parse_config(data, base_dir=path.parent, source=str(path))
    except ConfigErrors as exc:  # each mistake with the line it is on
        lines = key_lines(text)
        raise ConfigErrors(exc.problems, path=path, lines=[line_of(p.key, lines) for p in exc.problems]) from None


def parse_config(
    data: Mapping[str, Any],
    *,
    base_dir: str | os.PathLike | None = None,
    source: str | None = None,
    check_step_signatures: bool = True,
) -> PipelineConfig:
    """Build a :class:`PipelineConfig` from a mapping (the parsed TOML) and check it.

    Parameters
    ----------
    data
        The configuration as nested dicts.
    base_dir
        Directory relative paths are resolved against (default: the working directory).
    source
        Name of the file, for error messages.
    check_step_signatures
        Check ``[steps.<name>]`` keys against the step functions' keyword arguments.

    Every section is read even after a mistake: a :class:`~hdmea.errors.ConfigErrors` lists every one.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    problems = Problems()
    root = TableReader(data, "", source, problems)
    stimulus, steps = StimulusSource(), StepsConfig()
    with problems.each():
        stimulus = _parse_stimulus(root.table_of("stimulus"), base)
    with problems.each():
        steps = parse_steps(root.table_of("steps"), check_step_signatures)
    output = _parse_output(root.table_of("output"))
    batch = _parse_batch(root.table_of("batch"))
    recording = root.table_of("recording")
    axis_order = recording.get("sensor_axis_order", "str", "auto")
    with problems.each():
        check_parameter_values({"sensor_axis_order": axis_order}, "recording", source, PARAMETER_CHECKS)
    recording.reject_unknown()
    root.reject_unknown({"stimulus", "steps", "output", "batch", "recording"})
    problems.raise_if_any(source)
    return PipelineConfig(stimulus=stimulus, steps=steps, output=output, batch=batch, source=source,
                          sensor_axis_order=axis_order)


_INLINE_STIMULUS_KEYS = ("playlist", "movie_lengths", "trials", "noise_movies",
                         "pre_margin_frames", "post_margin_frames")


#: The lab's tables (hdmea_processing's playlist.csv and movie_length.csv) named in [stimulus].
_LAB_TABLE_KEYS = ("playlist_file", "movie_length_file", "playlist_name", "repeats")


def _parse_stimulus(r: TableReader, base: Path) -> StimulusSource:
    if any(key in r.table for key in _LAB_TABLE_KEYS):
        return _parse_lab_tables(r, base)
    template = r.get("file", "str", None)
    inline_keys = [k for k in _INLINE_STIMULUS_KEYS if k in r.table]
    if template is not None:
        if inline_keys:
            raise config_error(r.child_key(inline_keys[0]), "cannot be combined with stimulus.file",
                        source=r.source, hint="describe the stimulus either inline or in the file")
        r.reject_unknown()
        if "{" not in template:
            path = Path(template) if Path(template).is_absolute() else base / template
            if not path.is_file():
                raise config_error("stimulus.file", "file does not exist", source=r.source, found=str(path))
            from hdmea.stimulus import StimulusConfig

            try:
                inline = StimulusConfig.load_json(path)
            except ConfigError as exc:
                raise config_error("stimulus.file", f"is not a valid stimulus description ({exc})",
                            source=r.source) from exc
            return StimulusSource(inline=inline, base_dir=str(base))
        try:
            template.format(name="x", dir="y")
        except (KeyError, IndexError, ValueError) as exc:
            raise config_error("stimulus.file", f"bad placeholder ({exc!r})", source=r.source,
                        hint="only {name} and {dir} are known") from exc
        return StimulusSource(file_template=template, base_dir=str(base))
    if not inline_keys:
        # Nothing was read but "file": a misspelt key is matched against every key the table accepts.
        r.reject_unknown({"file", *_INLINE_STIMULUS_KEYS})
        return StimulusSource()

    problems = r.problems if r.problems is not None else Problems()
    before = len(problems)
    playlist = r.get("playlist", "str_list", fallback=())
    pre_margin = r.get("pre_margin_frames", "int", 60, check=at_least(0))
    post_margin = r.get("post_margin_frames", "int", 120, check=at_least(0))
    lengths_reader = r.table_of("movie_lengths")
    lengths: dict[str, int] = {}
    for name in lengths_reader.table:
        value = lengths_reader.get(name, "int", fallback=None)
        if value is not None and value <= 0:
            r.refuse(config_error(lengths_reader.child_key(name), "must be a positive number of frames",
                                  source=r.source, found=value))
        elif value is not None:
            lengths[name] = value
    for name in playlist:
        if name not in lengths_reader.table:
            r.refuse(config_error(f"stimulus.movie_lengths.{name}", "is required for every movie of the playlist",
                                  source=r.source, hint="give the movie's length in display frames"))
    trials_reader = r.table_of("trials")
    trials: dict[str, dict[str, int]] = {}
    for name in trials_reader.table:
        with problems.each():
            trial = _parse_trial(trials_reader, name, playlist, lengths)
            if trial is not None:
                trials[name] = trial
    noise_reader = r.table_of("noise_movies")
    noise: dict[str, dict[str, Any]] = {}
    for name in noise_reader.table:
        with problems.each():
            movie = _parse_noise_movie(noise_reader, name, playlist, lengths, base)
            if movie is not None:
                noise[name] = movie
    r.reject_unknown()
    if len(problems) > before:
        return StimulusSource()  # the mistakes are noted: nothing to build
    from hdmea.stimulus import StimulusConfig

    inline = StimulusConfig(
        playlist=list(playlist), movie_lengths=lengths, trial_configs=trials, noise_movies=noise,
        pre_margin_frames=pre_margin, post_margin_frames=post_margin,
    )
    return StimulusSource(inline=inline, base_dir=str(base))


def _parse_trial(trials_reader: TableReader, name: str, playlist: tuple[str, ...],
                 lengths: dict[str, int]) -> dict[str, int] | None:
    """``[stimulus.trials.<name>]``: each of its mistakes noted (None when there were any), the last raised."""
    t = trials_reader.table_of(name)
    before = len(t.problems) if t.problems is not None else 0
    cfg = {
        "start_frame": t.get("start_frame", "int", 0, check=at_least(0)),
        "trial_length_frame": t.get("trial_length_frame", "int", check=at_least(0, above=True), fallback=None),
        "repeat": t.get("repeat", "int", 1, check=at_least(1)),
    }
    t.reject_unknown()
    if name not in playlist:
        raise config_error(trials_reader.child_key(name), "names a movie that is not in the playlist",
                           source=t.source, hint="playlist: " + ", ".join(playlist))
    if (t.problems is not None and len(t.problems) > before) or cfg["trial_length_frame"] is None \
            or name not in lengths:
        return None  # its mistakes are noted already
    needed = cfg["start_frame"] + cfg["repeat"] * cfg["trial_length_frame"]
    if needed > lengths[name]:
        raise config_error(trials_reader.child_key(name), "trials run past the end of the movie", source=t.source,
                           expected=f"start_frame + repeat * trial_length_frame <= {lengths[name]}", found=needed)
    return cfg


def _parse_noise_movie(noise_reader: TableReader, name: str, playlist: tuple[str, ...], lengths: dict[str, int],
                       base: Path) -> dict[str, Any] | None:
    """``[stimulus.noise_movies.<name>]``: each of its mistakes noted (None without a path), the last raised."""
    n = noise_reader.table_of(name)
    if name not in playlist:
        n.refuse(config_error(noise_reader.child_key(name), "names a movie that is not in the playlist",
                              source=n.source, hint="playlist: " + ", ".join(playlist)))
    given = n.get("path", "str", fallback=None)
    frames_per_image = n.get("frames_per_image", "int", 1, check=at_least(1))
    n.reject_unknown()
    if given is None:
        return None  # noted already
    path = Path(given)
    if not path.is_absolute():
        path = (base / path).resolve()
    shape = _noise_movie_shape(path, n.child_key("path"), n.source)
    if name in lengths and shape[0] * frames_per_image > lengths[name]:
        raise config_error(noise_reader.child_key(name), "the noise images outlast the movie", source=n.source,
                           expected=f"images * frames_per_image <= {lengths[name]}", found=shape[0] * frames_per_image)
    return {"path": str(path), "frames_per_image": frames_per_image, "shape": [shape[1], shape[2]],
            "n_images": shape[0]}


def _parse_lab_tables(r: TableReader, base: Path) -> StimulusSource:
    """``[stimulus]`` from the lab's ``playlist.csv`` and ``movie_length.csv`` (paths relative to this file),
    laid out as the original pipeline lays a playlist out (pad frames around every movie)."""
    other = [k for k in ("file", *_INLINE_STIMULUS_KEYS) if k in r.table]
    if other:
        raise config_error(r.child_key(other[0]), "cannot be combined with stimulus.playlist_file", source=r.source,
                           hint="describe the stimulus either by the lab's tables or inline or in a file")
    noted = len(r.problems) if r.problems is not None else 0
    paths = {}
    for key in ("playlist_file", "movie_length_file"):
        given = r.get(key, "str", fallback=None)
        if given is None:
            continue
        paths[key] = Path(given) if Path(given).is_absolute() else base / given
        if not paths[key].is_file():
            r.refuse(config_error(r.child_key(key), "file does not exist", source=r.source, found=str(paths[key]),
                                  hint="a relative path is taken from the configuration file's folder"))
            del paths[key]
    name = r.get("playlist_name", "str", fallback=None)
    repeats = r.get("repeats", "int", 1, check=at_least(1))
    r.reject_unknown()
    if r.problems is not None and len(r.problems) > noted:
        return StimulusSource()  # the mistakes are noted (parse_config raises them)
    from hdmea.steps.section_time import stimulus_from_playlist_csv

    try:
        inline = stimulus_from_playlist_csv(name, paths["playlist_file"], paths["movie_length_file"], repeats=repeats)
    except ConfigError as exc:
        raise config_error(r.child_key("playlist_name"), f"the lab's tables give no stimulus: {exc}",
                           source=r.source) from None
    return StimulusSource(inline=inline, base_dir=str(base))


def _noise_movie_shape(path: Path, key: str, source: str | None) -> tuple[int, int, int]:
    """Shape of a ``.npy`` noise movie, read from its header only."""
    import numpy as np

    if not path.is_file():
        raise config_error(key, "file does not exist", source=source, found=str(path))
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _fortran, dtype = read_header(fh)
    except (OSError, ValueError) as exc:
        raise config_error(key, f"is not a .npy array ({exc})", source=source, found=str(path)) from exc
    if dtype != np.uint8 or len(shape) != 3:
        raise config_error(key, "noise movie must be a uint8 array (images, height, width)", source=source,
                    found=f"{dtype} {shape}")
    return tuple(int(x) for x in shape)


def _parse_output(r: TableReader) -> OutputConfig:
    cfg = OutputConfig(
        checkpoint=r.get("checkpoint", "bool", True),
        checkpoint_min_seconds=r.get("checkpoint_min_seconds", "number", 10.0, check=at_least(0)),
        overwrite=r.get("overwrite", "bool", False),
        memory_limit_gb=r.get("memory_limit_gb", "number", None, check=at_least(0, above=True)),
    )
    r.reject_unknown()
    return cfg


def _parse_batch(r: TableReader) -> BatchConfig:
    workers = r.get("workers", "int", None, check=at_least(1))
    retries = r.get("retries", "int", 2, check=at_least(0))
    threads = r.get("threads_per_job", "int", None, check=at_least(1))
    scheduler = r.get("scheduler", "str", None)
    slurm = None
    if "slurm" in r.table:
        s = r.table_of("slurm")
        slurm = SlurmConfig(
            queue=s.get("queue", "str", None),
            account=s.get("account", "str", None),
            cores=s.get("cores", "int", 1, check=at_least(1)),
            processes=s.get("processes", "int", None, check=at_least(1)),
            memory=s.get("memory", "str", "8GB"),
            walltime=s.get("walltime", "str", "02:00:00"),
            jobs=s.get("jobs", "int", 1, check=at_least(1)),
            job_extra_directives=s.get("job_extra_directives", "str_list", ()),
        )
        s.reject_unknown()
    r.reject_unknown()
    if scheduler is not None and slurm is not None:
        r.refuse(config_error("batch.scheduler", "cannot be combined with batch.slurm", source=r.source,
                              hint="use either a running scheduler or a SLURM cluster built from options"))
    return BatchConfig(workers=workers, retries=retries, threads_per_job=threads, scheduler=scheduler,
                       slurm=slurm)
