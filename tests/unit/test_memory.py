"""Arrays on small pages: what numpy would give, on a mapping that declines huge pages."""

from __future__ import annotations

import mmap
import pickle
import sys

import numpy as np
import pytest

from h5stream import capabilities
from h5stream.memory import small_page_array


def _advice_of(array: np.ndarray) -> str:
    """The ``VmFlags`` of the mapping holding ``array`` (``nh``: no huge pages; ``hg``: huge pages asked)."""
    start = array.ctypes.data
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and all(c in "0123456789abcdef-" for c in head):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= start < hi
            elif inside and line.startswith("VmFlags:"):
                return line
    raise AssertionError("no mapping holds the array")


@pytest.mark.parametrize("shape, dtype", [((3, 5), np.float32), (7, np.int16), ((2, 3, 4), np.float64),
                                          ((1_000_000,), np.float32)])
def test_the_array_is_numpy_s_with_its_shape_and_type_page_aligned_and_writable(shape, dtype):
    a = small_page_array(shape, dtype)
    assert a.shape == (shape if isinstance(shape, tuple) else (shape,)) and a.dtype == np.dtype(dtype)
    assert a.flags.c_contiguous and a.flags.writeable
    a[...] = np.arange(a.size).reshape(a.shape).astype(dtype)
    np.testing.assert_array_equal(a.ravel(), np.arange(a.size).astype(dtype))
    z = small_page_array(shape, dtype, zeros=True)
    assert not z.any()
    if capabilities.small_pages():
        assert a.ctypes.data % mmap.PAGESIZE == 0
    # a copy, a pickle and a view behave as for any array
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)), a)
    view = a.reshape(-1)[1:]
    del a
    assert view[0] == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
def test_the_mapping_declines_huge_pages_and_the_portable_path_is_numpy_s(monkeypatch):
    monkeypatch.delenv(capabilities.ENV_VAR, raising=False)
    if not capabilities.small_pages():
        pytest.skip("no MADV_NOHUGEPAGE here")
    a = small_page_array((8 * 2**20,), np.uint8)
    a[::4096] = 1  # touched
    assert " nh" in _advice_of(a)
    plain = np.empty(8 * 2**20, np.uint8)
    plain[::4096] = 1
    assert " nh" not in _advice_of(plain)
    monkeypatch.setenv(capabilities.ENV_VAR, "1")
    b = small_page_array((8 * 2**20,), np.uint8)
    assert " nh" not in _advice_of(b[:])


def test_empty_and_scalar_shapes():
    for shape in [(0,), (3, 0), ()]:
        a = small_page_array(shape, np.float32, zeros=True)
        assert a.shape == shape
    assert small_page_array((), np.float32, zeros=True) == 0


def _kernel_version() -> tuple[int, int]:
    import platform
    import re

    found = re.match(r"(\d+)\.(\d+)", platform.release())
    return (int(found[1]), int(found[2])) if found else (0, 0)


def _minor_faults() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts this process's page faults")
def test_a_populated_array_is_backed_when_made_and_using_it_faults_no_page_in(monkeypatch):
    monkeypatch.delenv(capabilities.ENV_VAR, raising=False)
    if not capabilities.small_pages():
        pytest.skip("no MADV_NOHUGEPAGE here")
    n_pages = 4096  # 16 MiB of 4 KiB pages
    lazy = small_page_array((n_pages * mmap.PAGESIZE // 4,), np.float32, zeros=True)
    before = _minor_faults()
    lazy += 1.0  # read, then written: the zero page, then a copy of it
    lazy_faults = _minor_faults() - before
    assert lazy_faults >= n_pages
    if _kernel_version() < (5, 14):
        pytest.skip("no MADV_POPULATE_WRITE before Linux 5.14: the pages are faulted in as used")
    before = _minor_faults()
    eager = small_page_array((n_pages * mmap.PAGESIZE // 4,), np.float32, zeros=True, populate=True)
    assert _minor_faults() - before >= n_pages  # every page backed, writable, by the one call
    assert not eager.any()
    before = _minor_faults()
    eager += 1.0
    assert _minor_faults() - before < n_pages // 16
    np.testing.assert_array_equal(eager, np.ones_like(eager))
    assert " nh" in _advice_of(eager)
