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
