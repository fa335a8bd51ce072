"""The lab pipeline's electrical-image functions, over the one streaming step of this library.

``compute_eimage_sta``, ``compute_eimage_sta_chunked``, ``compute_eimage_sta_legacy`` and
``compute_eimage_sta_legacy_improved`` were four implementations of the same average in the
original (whole-file, chunked, and two that replicated an older script).  Here all four call
:func:`hdmea.pipeline.compute_eimage_sta` (they are steps: :mod:`hdmea._compat.eimage_variants`,
handed on under the original's path by :mod:`hdmea._compat_table`), which streams the ``.cmcr`` in chunks with a
continuous Butterworth high-pass and stores ``units/{u}/features/eimage_sta``; their parameters
are translated (``pre_samples``/``post_samples`` or ``window_range`` to ``window``,
``cutoff_hz`` to ``highpass_hz``, ``spike_limit`` to ``max_spikes_per_unit``).  Differences,
kept on purpose:

* every image is divided by the spikes actually averaged (the legacy functions divided by all
  of a unit's spikes, a known defect);
* ``unit_ids`` restricts nothing: one pass over the raw data serves every unit, so every unit
  is computed (the result counts them all);
* ``skip_highpass=True`` (mean-centring instead of filtering) is refused with a
  :class:`~hdmea.errors.ConfigError`: the step always filters;
* ``use_cache`` / ``cache_path`` have no effect: nothing is filtered twice, so there is nothing
  to cache;
* the legacy functions' ``cmtr_path`` is checked to exist, and the spikes are the recording's
  (loaded from that ``.cmtr`` by ``load_recording``).

``compute_sta_for_unit``, ``extract_windows_for_chunk`` and ``STAAccumulator`` work on arrays
in memory, as in the original; ``write_eimage_sta_to_hdf5`` stores one unit's image through
the recording store's writer.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from hdmea.features.eimage_sta.extractor import compute_sta_for_unit
from hdmea._compat.eimage_config import EImageSTAConfig, EImageSTAResult

__all__ = [
    "VERSION", "EImageSTAConfig", "EImageSTAResult", "STAAccumulator", "compute_sta_for_unit",
    "compute_sta_for_unit_legacy", "extract_windows_for_chunk", "write_eimage_sta_to_hdf5",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

VERSION = "1.0.0"


@dataclasses.dataclass
class STAAccumulator:
    """Running sum of spike-triggered windows over chunks; ``finalize()`` divides by the spikes added."""

    sum_array: np.ndarray
    spike_count: int = 0
    excluded_count: int = 0
    window_length: int = 0
    n_rows: int = 0
    n_cols: int = 0

    @classmethod
    def create(cls, window_length: int, n_rows: int, n_cols: int) -> STAAccumulator:
        return cls(sum_array=np.zeros((window_length, n_rows, n_cols), dtype=np.float64),
                   window_length=window_length, n_rows=n_rows, n_cols=n_cols)

    def add_windows(self, windows: np.ndarray, n_excluded: int = 0) -> None:
        """Add (n_spikes, window, rows, cols) windows, and count ``n_excluded`` spikes left out."""
        windows = np.asarray(windows)
        if windows.shape[0]:
            self.sum_array += windows.sum(axis=0, dtype=np.float64)
            self.spike_count += int(windows.shape[0])
        self.excluded_count += int(n_excluded)

    def finalize(self) -> np.ndarray:
        """The mean window, float32 (NaN when no spike was added)."""
        if self.spike_count == 0:
            return np.full((self.window_length, self.n_rows, self.n_cols), np.nan, dtype=np.float32)
        return (self.sum_array / self.spike_count).astype(np.float32)


def compute_sta_for_unit_legacy(filtered_data, spike_samples, pre_samples: int = 10, post_samples: int = 40,
                                spike_limit: int = -1) -> tuple[np.ndarray, int, int]:
    """The older script's edge rule (a spike is used when ``t - pre > 0`` and ``t + post < n_samples``,
    after the first ``spike_limit`` spikes are taken), divided by the spikes used, not by all of them."""
    data = np.asarray(filtered_data)
    spikes = np.asarray(spike_samples, dtype=np.int64).reshape(-1)
    if spike_limit and spike_limit > 0:
        spikes = spikes[:spike_limit]
    used = spikes[(spikes - pre_samples > 0) & (spikes + post_samples < data.shape[0])]
    if used.size == 0:
        return np.full((pre_samples + post_samples, *data.shape[1:]), np.nan, np.float32), 0, int(spikes.size)
    image, n, _ = compute_sta_for_unit(data, used, pre_samples, post_samples)
    return image, n, int(spikes.size - n)


def extract_windows_for_chunk(chunk_data, spike_samples, chunk_start: int, chunk_end: int, pre_samples: int = 10,
                              post_samples: int = 40) -> tuple[np.ndarray, int, int]:
    """(windows (n, pre + post, rows, cols) float32, used, excluded) of the spikes in ``[chunk_start, chunk_end)``
    whose whole window lies inside the chunk (global sample indices)."""
    data = np.asarray(chunk_data)
    spikes = np.asarray(spike_samples, dtype=np.int64).reshape(-1)
    inside = spikes[(spikes >= chunk_start) & (spikes < chunk_end)]
    fits = inside[(inside >= chunk_start + pre_samples) & (inside < chunk_end - post_samples)]
    if fits.size == 0:
        return (np.empty((0, pre_samples + post_samples, *data.shape[1:]), np.float32), 0,
                int(inside.size))
    index = (fits - chunk_start)[:, None] + np.arange(-pre_samples, post_samples)[None, :]
    return data[index].astype(np.float32), int(fits.size), int(inside.size - fits.size)


def write_eimage_sta_to_hdf5(hdf5_file, unit_id: str, sta: np.ndarray, n_spikes: int, n_spikes_excluded: int,
                             config: EImageSTAConfig, sampling_rate: float, force: bool = False) -> bool:
    """Store one unit's image at ``units/{unit_id}/features/eimage_sta`` (False when one is stored and not
    ``force``).  ``hdf5_file`` is a recording opened for writing (:func:`hdmea.io.hdf5_store.open_recording_hdf5`)."""
    from hdmea.io.hdf5_store import list_features, write_feature_to_unit

    if "eimage_sta" in list_features(hdf5_file, unit_id) and not force:
        return False
    write_feature_to_unit(hdf5_file, unit_id, "eimage_sta", {
        "data": np.asarray(sta, dtype=np.float32), "n_spikes": int(n_spikes),
        "n_spikes_excluded": int(n_spikes_excluded), "pre_samples": int(config.pre_samples),
        "post_samples": int(config.post_samples), "cutoff_hz": float(config.cutoff_hz),
        "filter_order": int(config.filter_order), "sampling_rate": float(sampling_rate),
        "spike_limit": int(config.spike_limit)}, {"version": VERSION})
    return True
