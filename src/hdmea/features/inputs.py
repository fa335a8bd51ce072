"""What a function-style extractor reads: the recording's shared inputs, read once per run, and one unit's
stored data; and the display frames they are aligned to.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["RecordingInputs", "UnitInputs", "frame_period", "trial_frame_edges"]


@dataclasses.dataclass
class RecordingInputs:
    """Recording-wide inputs shared by every unit (read once per extraction run)."""

    target: Any
    _cache: dict = dataclasses.field(default_factory=dict)

    def frame_times(self, name: str = "default") -> np.ndarray:
        key = ("frame_times", name)
        if key not in self._cache:
            self._cache[key] = np.asarray(self.target.get(f"stimulus/frame_time/{name}")).astype(np.int64)
        return self._cache[key]

    def frame_period(self, name: str = "default") -> float:
        """The median interval between display frames of ``frame_time/{name}``, in samples (0 with under 2).

        A property of the recording, not of a unit: computed once per extraction
        run rather than once per unit and movie (a median over every frame of
        the recording, tens of thousands of them).
        """
        key = ("frame_period", name)
        if key not in self._cache:
            self._cache[key] = frame_period(self.frame_times(name))
        return self._cache[key]

    def trial_edges(self, name: str, trial_bounds) -> np.ndarray:
        """:func:`trial_frame_edges` of these trial bounds on ``frame_time/{name}`` (every unit of a movie
        has the same bounds: built once per movie, kept for the few most recent bounds)."""
        bounds = np.ascontiguousarray(trial_bounds, dtype=np.int64).reshape(-1, 2)
        key = ("trial_edges", name, bounds.shape[0], bounds.tobytes())
        edges = self._cache.get(key)
        if edges is None:
            old = [k for k in self._cache if k[0] == "trial_edges"]
            for k in old[: max(0, len(old) - 7)]:  # a handful of movies at most at a time
                del self._cache[k]
            edges = self._cache[key] = trial_frame_edges(bounds, self.frame_times(name), self.frame_period(name))
        return edges

    def sampling_rate(self) -> float:
        if "fs" not in self._cache:
            self._cache["fs"] = float(np.asarray(self.target.get("metadata/sampling_rate")).reshape(-1)[0])
        return self._cache["fs"]


@dataclasses.dataclass
class UnitInputs:
    """One unit's stored data, as an extractor sees it (paths relative to ``units/{unit_id}``)."""

    unit_id: str
    recording: RecordingInputs

    def get(self, path: str):
        return self.recording.target.get(f"units/{self.unit_id}/{path}")

    def attrs(self, path: str) -> dict:
        return self.recording.target.attrs(f"units/{self.unit_id}/{path}")


def frame_period(frame_times) -> float:
    """The median interval between consecutive display frames, in samples (0.0 with under 2 frames)."""
    frame_times = np.asarray(frame_times)
    return float(np.median(np.diff(frame_times))) if frame_times.size > 1 else 0.0


def trial_frame_edges(trial_bounds, frame_times, period: float | None = None) -> np.ndarray:
    """The display-frame edges of every trial, (n_trials, n_frames + 1) int64.

    A trial's frames are the display frames that start inside its [start, end)
    bounds, each running to the next frame's start; a trial running past the last
    frame is closed one ``period`` (:func:`frame_period`, computed here when not
    given) after it.  All trials are cut to the shortest one's frame count.
    """
    bounds = np.asarray(trial_bounds, dtype=np.int64).reshape(-1, 2)
    frame_times = np.asarray(frame_times, dtype=np.int64)
    if bounds.shape[0] == 0 or frame_times.size < 2:
        return np.zeros((bounds.shape[0], 1), dtype=np.int64)
    period = int(round(frame_period(frame_times) if period is None else float(period)))
    n_times = frame_times.size
    first = np.searchsorted(frame_times, bounds[:, 0], side="left")
    last = np.searchsorted(frame_times, bounds[:, 1], side="left")
    n_edges = np.where(last >= n_times, n_times - first + 1, last + 1 - first)
    n_frames = max(int(n_edges.min()) - 1, 0)
    index = first[:, None] + np.arange(n_frames + 1)
    closing = np.where(first < n_times, frame_times[-1] + period, bounds[:, 0])
    return np.where(index < n_times, frame_times[np.minimum(index, n_times - 1)], closing[:, None])
