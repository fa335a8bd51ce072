"""The lab pipeline's four electrical-image functions, over the one streaming step (see
:mod:`hdmea.features.eimage_sta.compute`, the original's path, from :mod:`hdmea._compat_table`).

``compute_eimage_sta_lab`` (the original's ``compute_eimage_sta``: the step of this library has that
name), ``compute_eimage_sta_chunked``, ``compute_eimage_sta_legacy`` and
``compute_eimage_sta_legacy_improved`` translate their parameters and call
:func:`hdmea.steps.eimage.compute_eimage_sta`.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from hdmea.errors import ConfigError
from hdmea._compat.eimage_config import EImageSTAConfig, EImageSTAResult
from hdmea.io.recording import open_recording
from hdmea.steps.eimage import compute_eimage_sta as step

__all__ = ["compute_eimage_sta_lab", "compute_eimage_sta_chunked", "compute_eimage_sta_legacy",
           "compute_eimage_sta_legacy_improved"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


def _run(hdf5_path, cmcr_path, config: EImageSTAConfig, *, start: float, unit_ids=None) -> EImageSTAResult:
    if config.skip_highpass:
        raise ConfigError("skip_highpass=True is not available: the electrical-image step always high-pass "
                          "filters (mean-centring instead would keep the slow drift in the images)",
                          hint="leave skip_highpass=False")
    if config.use_cache or config.cache_path is not None:
        logger.info("eimage: use_cache/cache_path have no effect (the data are streamed and filtered once)")
    limit = int(config.spike_limit)
    result = step(hdf5_path, cmcr_path, window=(-int(config.pre_samples), int(config.post_samples)),
                  duration_s=config.duration_s, highpass_hz=float(config.cutoff_hz),
                  filter_order=int(config.filter_order), max_spikes_per_unit=limit if limit > 0 else None,
                  force=bool(config.force), unit_ids=unit_ids)
    skipped = 0
    if result.skipped:  # every unit had images of these parameters stored
        with open_recording(hdf5_path) as recording:
            skipped = len(recording.unit_ids)
    return EImageSTAResult(
        hdf5_path=Path(hdf5_path), cmcr_path=Path(cmcr_path) if cmcr_path is not None else Path(""),
        units_processed=0 if result.skipped else result.units_processed, units_failed=0, units_skipped=skipped,
        elapsed_seconds=time.perf_counter() - start, filter_time_seconds=float("nan"), config=config,
        warnings=[f"units not recorded in the raw data: {', '.join(result.units_not_recorded)}"]
        if result.units_not_recorded else [],
    )


def compute_eimage_sta_lab(hdf5_path: str | os.PathLike, cmcr_path: str | os.PathLike, *, cutoff_hz: float = 100.0,
                       filter_order: int = 2, pre_samples: int = 10, post_samples: int = 40, spike_limit: int = 10000,
                       duration_s: float | None = None, skip_highpass: bool = False, use_cache: bool = False,
                       cache_path: str | os.PathLike | None = None, force: bool = False) -> EImageSTAResult:
    """Electrical images of every unit of ``hdf5_path`` from ``cmcr_path`` (see the module docstring)."""
    start = time.perf_counter()
    config = EImageSTAConfig(cutoff_hz=cutoff_hz, filter_order=filter_order, pre_samples=pre_samples,
                             post_samples=post_samples, spike_limit=spike_limit, duration_s=duration_s,
                             skip_highpass=skip_highpass, use_cache=use_cache,
                             cache_path=Path(cache_path) if cache_path else None, force=force)
    return _run(hdf5_path, cmcr_path, config, start=start)


def _window_config(window_range, cutoff_hz, filter_order, duration_s, spike_limit, skip_highpass, force):
    w0, w1 = (int(window_range[0]), int(window_range[1]))
    if w0 > 0 or w1 <= 0:
        raise ConfigError(f"window_range must be (before <= 0, after > 0) samples (found {window_range})")
    return EImageSTAConfig(cutoff_hz=cutoff_hz, filter_order=filter_order, pre_samples=-w0, post_samples=w1,
                           spike_limit=spike_limit, duration_s=duration_s, skip_highpass=skip_highpass, force=force)


def compute_eimage_sta_chunked(hdf5_path, cmcr_path, *, chunk_duration_s: float = 60.0, cutoff_hz: float = 100.0,
                               filter_order: int = 2, window_range: tuple[int, int] = (-10, 40),
                               duration_s: float = 120.0, spike_limit: int = 10000, unit_ids=None,
                               skip_highpass: bool = False, force: bool = False) -> EImageSTAResult:
    """The chunked variant: the same step (``chunk_duration_s`` is the step's own chunking)."""
    start = time.perf_counter()
    return _run(hdf5_path, cmcr_path, _window_config(window_range, cutoff_hz, filter_order, duration_s, spike_limit,
                                                     skip_highpass, force), start=start, unit_ids=unit_ids)


def _legacy(hdf5_path, cmcr_path, cmtr_path, unit_ids=None, **kwargs) -> EImageSTAResult:
    start = time.perf_counter()
    if not Path(cmtr_path).exists():
        raise FileNotFoundError(f"{cmtr_path}: no such .cmtr file")
    return _run(hdf5_path, cmcr_path, _window_config(**kwargs), start=start, unit_ids=unit_ids)


def compute_eimage_sta_legacy(hdf5_path, cmcr_path, cmtr_path, *, duration_s: float = 120.0,
                              spike_limit: int = 10000, unit_ids=None, window_range: tuple[int, int] = (-10, 40),
                              cutoff_hz: float = 100.0, filter_order: int = 2, skip_highpass: bool = False,
                              force: bool = False) -> EImageSTAResult:
    """The older script's variant: the same step, divided by the spikes used (see the module docstring)."""
    return _legacy(hdf5_path, cmcr_path, cmtr_path, unit_ids=unit_ids, window_range=window_range, cutoff_hz=cutoff_hz,
                   filter_order=filter_order, duration_s=duration_s, spike_limit=spike_limit,
                   skip_highpass=skip_highpass, force=force)


def compute_eimage_sta_legacy_improved(hdf5_path, cmcr_path, cmtr_path, *, duration_s: float = 120.0,
                                       spike_limit: int = 10000, unit_ids=None,
                                       window_range: tuple[int, int] = (-10, 40), cutoff_hz: float = 100.0,
                                       filter_order: int = 2, skip_highpass: bool = False,
                                       chunk_duration_s: float = 30.0, force: bool = False) -> EImageSTAResult:
    """The older script's chunked variant: the same step."""
    return _legacy(hdf5_path, cmcr_path, cmtr_path, unit_ids=unit_ids, window_range=window_range, cutoff_hz=cutoff_hz,
                   filter_order=filter_order, duration_s=duration_s, spike_limit=spike_limit,
                   skip_highpass=skip_highpass, force=force)
