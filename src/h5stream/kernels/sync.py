"""One pass over a frame-sync channel for its pulses (the kernel of :mod:`hdmea.steps.section_time`).

The kernel (``h5stream._ext._sync``, Cython) is compiled when the package is installed.  It
reads the channel once, allocates nothing the channel's length and holds no GIL.
"""

from __future__ import annotations

from h5stream.native import compiled

__all__ = ["sync_peaks"]


def sync_peaks(sync, scale: float, height: float):
    """Indices (int64) of the peaks of ``diff(sync / scale)`` at or above ``height``; see ``h5stream._ext._sync``.

    ``sync`` is a 1-d C-contiguous native float32 or float64 array; anything else raises TypeError.
    """
    return compiled("_sync").sync_peaks(sync, float(scale), float(height))
