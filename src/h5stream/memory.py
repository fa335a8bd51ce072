"""Large one-shot arrays on small pages.

numpy asks Linux for transparent huge pages (2 MiB) for every array of 4 MiB or
more.  Where the memory a process touches for the first time must first be backed
by a virtual machine's host (a guest that returns its free pages to the host,
as balloon and free-page-reporting guests do), faulting those pages in costs
far more with huge pages.  Measured on this project's 2-core benchmark machine
(a Firecracker guest), in a fresh process started 20 s after the last one ended:

* the light reference of the lab-shaped recording (two float32 channels of
  36 M samples, 275 MB, written once as they are read): 0.61-1.03 s of system
  time with huge pages, 0.12-0.17 s with small pages;
* the electrical-image sums of 310 units (264 MB, zeroed, each tile's share
  walked in order): the pass's system time 2.13-2.14 s against 1.58-1.62 s.

On a machine whose memory is backed up front both page sizes cost about the same
for such arrays.  Huge pages do pay where later reads jump about: the
electrical-image kernel's raw buffers, read a row's share of a tile at a time
(8450 bytes apart), took the kernel 8.80-9.33 CPU s on small pages against
8.38-8.62 s on huge ones, with no system time saved; they keep numpy's default.

:func:`small_page_array` gives an array on an anonymous mapping with huge pages
declined (``MADV_NOHUGEPAGE``); where the system has no such advice (not Linux,
or ``H5STREAM_PORTABLE=1``: :func:`h5stream.capabilities.small_pages`) it is a
plain numpy array.  The mapping starts zero-filled and is unmapped when the
array (and every view of it) is gone.

An array whose first use of a page is a read faults twice per page: the read maps
the shared zero page, the write that follows copies it.  The electrical-image
sums are such an array (each window's rows are added into them), so they are
populated when made (``populate``: one ``madvise(MADV_POPULATE_WRITE)`` call backs
every page, writable): in the lab-shaped pass with one core busy, page cache
dropped, interleaved, the step's page faults went from 158 k to 94 k and its wall
time from 8.94-9.69 s (median 9.22) to 8.89-9.12 s (median 8.93).
"""

from __future__ import annotations

import math
import mmap

import numpy as np

from h5stream import capabilities

__all__ = ["small_page_array"]

#: ``madvise`` advice that backs a range with writable pages in one call (Linux 5.14 and later; the
#: ``mmap`` module names it from Python 3.13 on)
MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)


def small_page_array(shape, dtype, *, zeros: bool = False, populate: bool = False) -> np.ndarray:
    """A C-ordered array of ``shape`` and ``dtype`` on small pages, page-aligned (zero-filled where the
    mapping is used; uninitialised, as ``np.empty``, otherwise unless ``zeros``).

    ``populate``: back the whole mapping with zeroed, writable pages now, in one call, for an array that
    will be used whole; otherwise each page is faulted in when first used.
    """
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes == 0 or not capabilities.small_pages():
        return (np.zeros if zeros else np.empty)(shape, dtype=dtype)
    pages = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    pages.madvise(mmap.MADV_NOHUGEPAGE)
    if populate:
        try:
            pages.madvise(MADV_POPULATE_WRITE)
        except OSError:  # a kernel before 5.14: the pages are faulted in as they are used
            pass
    return np.frombuffer(pages, dtype=dtype, count=math.prod(shape)).reshape(shape)
