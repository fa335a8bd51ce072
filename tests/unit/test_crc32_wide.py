"""The whole reads' CRC-32 (h5stream._ext._h5dsets.crc32_wide: ext/_crc32_fold.h where the CPU has AVX-512
with VPCLMULQDQ, the configured CRC otherwise) against zlib's ``crc32``, the independent reference."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from h5stream.native import compiled

_h5dsets = compiled("_h5dsets")


def test_the_fold_is_taken_where_the_cpu_has_it():
    """On an x86-64 Linux CPU that lists avx512f, avx512vl and vpclmulqdq the reads fold on 512 bits."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = set(fh.read().split())
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    wanted = {"avx512f", "avx512vl", "vpclmulqdq", "pclmulqdq"}
    assert _h5dsets.crc32_wide_available() == wanted.issubset(flags)


@pytest.mark.parametrize("seed", range(4))
def test_crc32_wide_equals_zlib_at_every_length_offset_and_start(seed):
    """Lengths across every boundary of the fold (0-1100 bytes: below 256, the 256-byte loop, the 64- and
    16-byte steps, the last bytes) and long runs, at any alignment, from any running CRC."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, 1 << 21, dtype=np.uint8)
    lengths = list(range(seed, 1100, 4)) + [int(n) for n in rng.integers(1100, 1 << 21, 40)]
    for n in lengths:
        start = int(rng.integers(0, 64))
        n = min(n, data.size - start)
        piece = data[start:start + n]
        crc = int(rng.integers(0, 1 << 32))
        assert _h5dsets.crc32_wide(crc, piece) == zlib.crc32(piece, crc), (n, start)
    assert _h5dsets.crc32_wide(0, np.zeros(1 << 16, np.uint8)) == zlib.crc32(bytes(1 << 16))
    assert _h5dsets.crc32_wide(0xFFFFFFFF, np.full(1 << 16, 255, np.uint8)) == zlib.crc32(b"\xff" * (1 << 16),
                                                                                          0xFFFFFFFF)


def test_a_run_digested_in_parts_equals_one_digest():
    """A CRC continued over consecutive parts (as a read's requests land) equals the CRC of the whole."""
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, 5_000_000, dtype=np.uint8)
    cuts = np.sort(rng.integers(0, data.size, 30))
    crc = 0
    for a, b in zip([0, *cuts], [*cuts, data.size]):
        crc = _h5dsets.crc32_wide(crc, data[a:b])
    assert crc == zlib.crc32(data)
