"""The parameters and the result of the lab pipeline's electrical-image functions (the original's fields and
defaults); the original's path :mod:`hdmea.features.eimage_sta.compute` hands them on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

__all__ = ["EImageSTAConfig", "EImageSTAResult"]


@dataclasses.dataclass
class EImageSTAConfig:
    """Parameters of an electrical-image run (the original's fields and defaults)."""

    cutoff_hz: float = 100.0
    filter_order: int = 2
    pre_samples: int = 10
    post_samples: int = 40
    spike_limit: int = 10000
    duration_s: float | None = None
    skip_highpass: bool = False
    use_cache: bool = False
    cache_path: Path | None = None
    force: bool = False


@dataclasses.dataclass
class EImageSTAResult:
    """What an electrical-image run did.  ``filter_time_seconds`` is NaN: filtering overlaps reading and
    averaging in the streaming step and is not timed apart."""

    hdf5_path: Path
    cmcr_path: Path
    units_processed: int
    units_failed: int
    units_skipped: int
    elapsed_seconds: float
    filter_time_seconds: float
    config: EImageSTAConfig
    warnings: list[str] = dataclasses.field(default_factory=list)
    failed_units: list[str] = dataclasses.field(default_factory=list)
