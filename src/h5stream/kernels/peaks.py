"""One pass over a Peaks table of an MCS ``.cmtr`` file (the kernel of :mod:`hdmea.io.cmtr`).

The kernel (``h5stream._ext._peaks``, Cython) is compiled when the package is installed,
so a fresh process compiles nothing.  It reads strided, unaligned column views as they lie
(each element copied out of its bytes) and holds no GIL.
"""

from __future__ import annotations

from h5stream.native import compiled

__all__ = ["gather_fields", "summarise_peaks"]


def summarise_peaks(timestamps, flags, amplitudes, cutouts, factor, samples, amps, sums, template=None,
                    bound=float("inf"), flagged=None):
    """Check every peak and summarise those with ``flags == 1``; see ``h5stream._ext._peaks.summarise_peaks``.

    With a ``template`` (float32, one per cutout column), the included rows holding a sample more than
    ``bound`` off it (or not a number) are flagged into ``flagged`` (int64) while there is room.
    Returns ``(k, first_bad_flag, first_bad_time, first_unsorted, n_flagged)`` (-1: no such row).  Columns
    of a type the kernel does not read (float16, byte-swapped, ...) raise TypeError.
    """
    return compiled("_peaks").summarise_peaks(timestamps, flags, amplitudes, cutouts, float(factor), samples, amps,
                                              sums, template, float(bound), flagged)


def gather_fields(table, offset, out):
    """Copy the ``out.shape[0]`` fields lying back to back from byte ``offset`` of each record of the 1-d
    contiguous ``table`` into the rows of the contiguous ``(fields, records)`` array ``out`` (bytes as they
    are); see ``h5stream._ext._peaks.gather_fields``."""
    compiled("_peaks").gather_fields(table, int(offset), out)
