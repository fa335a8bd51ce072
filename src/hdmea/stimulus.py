"""The visual stimulus of a recording: playlist, movie lengths, trial layouts and noise movies.

Display frames are counted from the first frame the frame-sync channel reports
(after the leading pulses the lab drops).  Each playlist entry occupies
``pre_margin_frames + movie_length + post_margin_frames`` display frames: a gray
pad, the movie, a gray pad.  Movie frame ``j`` of an occurrence whose section
starts at display frame ``s`` is display frame ``s + pre_margin_frames + j``.

The original pipeline's playlist layout is the other one (``pad_frames`` set, as
``add_section_time(playlist_name=...)`` builds it from the lab's CSV files): each
entry occupies ``2 * pad_frames + movie_length + 1`` display frames, the movie
starts ``pad_frames`` into it, and the section runs from ``pre_margin_frames``
before the movie to ``post_margin_frames + 1`` frames after its last frame.  Movie
frame ``j`` is again display frame ``s + pre_margin_frames + j``.

A movie made of trials (a step stimulus, say ``step_up_5s_5i_3x``) has a
:class:`TrialConfig`: trial ``n`` starts at movie frame ``start_frame + n *
trial_length_frame``.  A dense-noise movie has a :class:`NoiseMovie`: image ``i``
of its ``frames`` array is shown on movie frames ``i * frames_per_image`` to
``(i + 1) * frames_per_image - 1``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from h5stream.files import write_bytes_atomic
from hdmea.errors import ConfigError

__all__ = [
    "TrialConfig",
    "NoiseMovie",
    "StimulusConfig",
    "occurrence_frame_ranges",
    "trial_frame_ranges",
    "frames_to_samples",
    "movie_display_frames",
]


@dataclasses.dataclass(frozen=True)
class TrialConfig:
    """Where the trials of a movie lie, in movie frames."""

    start_frame: int
    trial_length_frame: int
    repeat: int

    def __post_init__(self) -> None:
        for name in ("start_frame", "trial_length_frame", "repeat"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"trial config {name} must be a non-negative integer, found {value!r}")
        if self.trial_length_frame == 0 or self.repeat == 0:
            raise ConfigError(
                "trial config needs trial_length_frame >= 1 and repeat >= 1, "
                f"found {self.trial_length_frame} and {self.repeat}"
            )

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.trial_length_frame * self.repeat


@dataclasses.dataclass(frozen=True)
class NoiseMovie:
    """A dense-noise movie: images stored uint8 in a ``.npy`` file, each shown ``frames_per_image`` frames."""

    path: str
    frames_per_image: int
    shape: tuple[int, int]
    n_images: int

    def load_frames(self) -> np.ndarray:
        frames = np.load(self.path, allow_pickle=False)
        if frames.dtype != np.uint8 or frames.ndim != 3 or frames.shape[1:] != tuple(self.shape):
            raise ConfigError(
                f"{self.path}: noise movie must be uint8 (n_images, {self.shape[0]}, {self.shape[1]}), "
                f"found {frames.dtype} {frames.shape}"
            )
        return frames

    def image_of_movie_frame(self, movie_frames: np.ndarray) -> np.ndarray:
        """Index of the image shown on each movie frame."""
        return np.asarray(movie_frames, dtype=np.int64) // self.frames_per_image


@dataclasses.dataclass
class StimulusConfig:
    """Playlist and movie descriptions that section times and trials are computed from."""

    playlist: list[str]
    movie_lengths: dict[str, int]
    trial_configs: dict[str, TrialConfig] = dataclasses.field(default_factory=dict)
    noise_movies: dict[str, NoiseMovie] = dataclasses.field(default_factory=dict)
    pre_margin_frames: int = 60
    post_margin_frames: int = 120
    pad_frames: int | None = None

    def __post_init__(self) -> None:
        self.playlist = [str(m) for m in self.playlist]
        if self.pad_frames is not None:
            self.pad_frames = int(self.pad_frames)
            if self.pad_frames < self.pre_margin_frames or self.post_margin_frames < 0:
                raise ConfigError(
                    "a playlist with pad frames needs pad_frames >= pre_margin_frames >= 0 and post_margin_frames >= 0",
                    found=f"pad {self.pad_frames}, pre {self.pre_margin_frames}, post {self.post_margin_frames}",
                )
        missing = [m for m in self.playlist if m not in self.movie_lengths]
        if missing:
            raise ConfigError(
                f"playlist names movies without a length: {sorted(set(missing))}; add them to movie_lengths"
            )
        for name, length in self.movie_lengths.items():
            if int(length) <= 0:
                raise ConfigError(f"movie {name!r} has length {length}; lengths are positive frame counts")
        self.movie_lengths = {str(k): int(v) for k, v in self.movie_lengths.items()}
        self.trial_configs = {
            str(k): v if isinstance(v, TrialConfig) else TrialConfig(**v) for k, v in self.trial_configs.items()
        }
        for name, tc in self.trial_configs.items():
            length = self.movie_lengths.get(name)
            if length is not None and tc.end_frame > length:
                raise ConfigError(
                    f"trials of movie {name!r} end at movie frame {tc.end_frame}, after its length {length}"
                )
        self.noise_movies = {
            str(k): v if isinstance(v, NoiseMovie) else NoiseMovie(
                path=str(v["path"]), frames_per_image=int(v["frames_per_image"]),
                shape=tuple(int(x) for x in v["shape"]), n_images=int(v["n_images"]),
            )
            for k, v in self.noise_movies.items()
        }

    # -- derived layout
    @property
    def frames_per_entry(self) -> list[int]:
        if self.pad_frames is not None:
            return [2 * self.pad_frames + self.movie_lengths[m] + 1 for m in self.playlist]
        return [self.pre_margin_frames + self.movie_lengths[m] + self.post_margin_frames for m in self.playlist]

    @property
    def frames_needed(self) -> int:
        """Display frames up to the end of the last section (what the frame-sync channel must show)."""
        if not self.playlist:
            return 0
        return int(max(int(r[:, 1].max()) for r in occurrence_frame_ranges(self).values()))

    @property
    def total_frames(self) -> int:
        return int(sum(self.frames_per_entry))

    def movies(self) -> list[str]:
        """Distinct movie names in playlist order."""
        return list(dict.fromkeys(self.playlist))

    # -- serialisation (JSON-compatible dict)
    def to_dict(self) -> dict:
        return {
            "playlist": list(self.playlist),
            "movie_lengths": dict(self.movie_lengths),
            "trial_configs": {k: dataclasses.asdict(v) for k, v in self.trial_configs.items()},
            "noise_movies": {
                k: {"path": v.path, "frames_per_image": v.frames_per_image, "shape": list(v.shape),
                    "n_images": v.n_images}
                for k, v in self.noise_movies.items()
            },
            "pre_margin_frames": self.pre_margin_frames,
            "post_margin_frames": self.post_margin_frames,
            **({"pad_frames": self.pad_frames} if self.pad_frames is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: dict) -> StimulusConfig:
        try:
            return cls(
                playlist=list(data["playlist"]),
                movie_lengths=dict(data["movie_lengths"]),
                trial_configs=dict(data.get("trial_configs", {})),
                noise_movies=dict(data.get("noise_movies", {})),
                pre_margin_frames=int(data.get("pre_margin_frames", 60)),
                post_margin_frames=int(data.get("post_margin_frames", 120)),
                pad_frames=None if data.get("pad_frames") is None else int(data["pad_frames"]),
            )
        except KeyError as exc:
            raise ConfigError(f"stimulus configuration lacks the key {exc.args[0]!r}") from None

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write the description as JSON.  A noise movie's ``path`` is written relative to the file's folder
        (where the movie can be reached from it), so the file works from any working folder and moves with
        its folder; ``absolute_path`` keeps where it was, for a copy of the file alone."""
        path = Path(path)
        data = self.to_dict()
        for movie in data["noise_movies"].values():
            movie["absolute_path"] = os.fspath(Path(movie["path"]).resolve())
            movie["path"] = _relative_to(Path(movie["path"]), path.parent)
        return write_bytes_atomic(path, json.dumps(data, indent=1).encode("utf-8"))

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> StimulusConfig:
        """Read a description: a noise movie is looked for beside the file (a relative ``path``), then where
        it was written (``absolute_path``), then from the working folder (files written before paths were
        relative); where none exists, the path beside the file is kept, for the checks to name."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the stimulus configuration ({exc})") from exc
        for movie in (data.get("noise_movies") or {}).values() if isinstance(data, dict) else ():
            if isinstance(movie, dict) and isinstance(movie.get("path"), str):
                stored = Path(movie["path"])
                places = [stored] if stored.is_absolute() else [Path(path).parent / stored]
                places += [Path(p) for p in [movie.pop("absolute_path", None)] if isinstance(p, str)]
                places += [] if stored.is_absolute() else [stored]
                found = next((p for p in places if p.is_file()), places[0])
                movie["path"] = os.fspath(found.resolve())
        return cls.from_dict(data)

    def missing_inputs(self) -> list[str]:
        """The noise-movie files this description names that do not exist."""
        return [movie.path for movie in self.noise_movies.values() if not Path(movie.path).is_file()]


def _relative_to(target: Path, folder: Path) -> str:
    """``target`` relative to ``folder`` with forward slashes, or absolute where no relative path reaches it
    (another drive)."""
    try:
        return Path(os.path.relpath(target.resolve(), folder.resolve())).as_posix()
    except ValueError:
        return os.fspath(target.resolve())


def occurrence_frame_ranges(config: StimulusConfig) -> dict[str, np.ndarray]:
    """Per movie, the display-frame range ``[first, end)`` of every occurrence's section, (n, 2) int64."""
    out: dict[str, list[tuple[int, int]]] = {}
    cursor = 0
    pad, pre, post = config.pad_frames, config.pre_margin_frames, config.post_margin_frames
    for movie, span in zip(config.playlist, config.frames_per_entry):
        if pad is None:
            out.setdefault(movie, []).append((cursor, cursor + span))
        else:
            movie_start = cursor + pad
            out.setdefault(movie, []).append(
                (movie_start - pre, movie_start + config.movie_lengths[movie] + post + 2))
        cursor += span
    return {m: np.asarray(r, dtype=np.int64).reshape(-1, 2) for m, r in out.items()}


def trial_frame_ranges(config: StimulusConfig, movie: str, occurrence_first_frames: np.ndarray) -> np.ndarray:
    """Display-frame ranges ``[start, end)`` of every trial of every occurrence, (n_occ * repeat, 2) int64.

    ``occurrence_first_frames`` are the first display frames of the occurrences' sections.
    """
    tc = config.trial_configs.get(movie)
    if tc is None:
        length = config.movie_lengths[movie]
        tc = TrialConfig(start_frame=0, trial_length_frame=length, repeat=1)
    first = np.asarray(occurrence_first_frames, dtype=np.int64).reshape(-1, 1)
    n = np.arange(tc.repeat, dtype=np.int64).reshape(1, -1)
    starts = first + config.pre_margin_frames + tc.start_frame + n * tc.trial_length_frame
    starts = starts.reshape(-1)
    return np.stack([starts, starts + tc.trial_length_frame], axis=1)


def frames_to_samples(frame_times: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Sample index of display frames; frames past the last one are extrapolated at the median period."""
    frame_times = np.asarray(frame_times, dtype=np.int64)
    frames = np.asarray(frames, dtype=np.int64)
    if frame_times.size == 0:
        raise ConfigError("no frame times: the frame-sync channel showed no frames")
    if frames.size and frames.min() < 0:
        raise ConfigError(f"display frame {int(frames.min())} is before the first frame")
    n = frame_times.size
    inside = np.minimum(frames, n - 1)
    out = frame_times[inside]
    beyond = frames >= n
    if beyond.any():
        period = float(np.median(np.diff(frame_times))) if n > 1 else 0.0
        out = out.astype(np.float64)
        out[beyond] = frame_times[-1] + (frames[beyond] - (n - 1)) * period
        out = np.rint(out).astype(np.int64)
    return out


def movie_display_frames(config: StimulusConfig, movie: str) -> np.ndarray:
    """Display frame of every movie frame of every occurrence, (n_occurrences, movie_length) int64.

    With a noise movie, the image shown on those display frames is
    ``config.noise_movies[movie].image_of_movie_frame(np.arange(movie_length))``.
    """
    if movie not in config.movie_lengths or movie not in config.playlist:
        raise ConfigError(f"movie {movie!r} is not in the playlist")
    firsts = occurrence_frame_ranges(config)[movie][:, :1]
    return firsts + config.pre_margin_frames + np.arange(config.movie_lengths[movie], dtype=np.int64)[None, :]
