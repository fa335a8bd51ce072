"""The one table of the compiled kernels: each module of ``ext/``, its Python wrapper, its naive twin, its fallback.

Every ``ext/<module>.pyx`` is built into ``h5stream._ext.<module>`` by ``setup.py``
(Cython, ``-O3``, OpenMP where the compiler has it) and imported through
:func:`h5stream.native.compiled`, which refuses a missing or stale build with the
rebuild command instead of falling back to slower code.  ``fallback`` says what runs
when a kernel cannot take an input (never when it is missing).  ``twin`` names the
slow, obviously right numpy version in ``tests/reference.py`` that
``tests/unit/test_kernel_table.py`` compares with the kernel on seeded data; a kernel
with nothing to compute has none and says why in ``note``.  ``benchmark`` names the
benchmark module that times it (``benchmarks/suite/bench_*.py``), where one does.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Kernel", "KERNELS", "kernel"]


@dataclasses.dataclass(frozen=True)
class Kernel:
    """One compiled module of ``ext/`` and what surrounds it."""

    module: str  # ext/<module>.pyx, built into h5stream._ext.<module>
    wrapper: str  # dotted name of the Python function that validates and calls it
    twin: str | None  # function of tests/reference.py computing the same thing naively
    fallback: str  # what runs where the kernel cannot take an input
    benchmark: str | None = None  # benchmarks/suite/<name>.py
    note: str = ""


KERNELS: tuple[Kernel, ...] = (
    Kernel("_bins", "h5stream.kernels.bins.ragged_histograms", "ragged_histograms_naive",
           "none", "bench_features"),
    Kernel("_compress", "h5stream.compression.deflate_kernel", "deflate_chunk_reference",
           "the system's libdeflate when asked (deflate='libdeflate' or 'auto'); HDF5's own filter for reads "
           "the parallel reader does not take", "bench_store",
           note="also HDF5's Fletcher32 (h5stream.checksums.fletcher32, twin fletcher32_naive)"),
    Kernel("_csr", "h5stream.kernels.csr.dense_to_csr", "csr_reference", "none", "bench_scptensor"),
    Kernel("_eimage", "h5stream.kernels.eimage.electrical_images", "eimage_reference", "none", "bench_eimage"),
    Kernel("_h5aread", "h5stream.batch_attrs.read_plain", None,
           "h5py's own attribute reads for the values the kernel leaves (arrays, enums, other types), and "
           "where the direct calls are unavailable", "bench_steps",
           note="no twin: h5py's own reads of the same attributes are the reference in tests/unit/test_h5aread.py"),
    Kernel("_h5attrs", "h5stream.checksums._recording.record_sets", "record_sets_naive",
           "h5py's own attribute writes for values the kernel hands back (h5stream.lowlevel)", "bench_store",
           note="also writes whole lists of small attributes (h5stream.lowlevel.NativeHDF5.write_attrs)"),
    Kernel("_h5dsets", "h5stream.tree.write.write_node", None,
           "the one-by-one writer (h5stream.tree.write) for each child the kernel hands back: groups, arrays "
           "with attributes (other than an ASCII type tag), on disk, text, structured or larger than "
           "lowlevel.SNAPSHOT_BLOCK",
           "bench_steps",
           note="no twin: the same libhdf5 calls as the one-by-one writer, whose file it matches byte for byte "
                "and whose digests (checked against zlib) it matches in tests/unit/test_h5dsets.py"),
    Kernel("_h5scan", "h5stream.files._walk.compiled_members", None,
           "h5py's own walk and checks (h5stream.files._walk, h5stream.files.validated) for every link the kernel "
           "hands back (groups, links that are not hard, datasets it does not take) and where the direct calls "
           "are unavailable", "bench_steps",
           note="no twin: the same libhdf5 questions as the scan through h5py, whose answers (checks, types, "
                "shapes, values, storage) it matches in tests/unit/test_h5scan.py"),
    Kernel("_ohdr", "h5stream.files._headers.check_attribute_references", "ohdr_scan_reference",
           "libhdf5's own parse of the header, for a header that does not parse as version 1", "bench_files"),
    Kernel("_peaks", "h5stream.kernels.peaks.summarise_peaks", "summarise_peaks_naive",
           "numpy on the table (hdmea.io.cmtr_peaks) for column types the kernel does not read",
           "bench_readers"),
    Kernel("_runtime", "h5stream.openmp_enabled", None, "none",
           note="no computation: the OpenMP probe and the per-thread interrupt flags (h5stream.interrupts)"),
    Kernel("_section", "h5stream.kernels.sectioning.section_sorted", "section_trials_naive", "none",
           "bench_sectioning"),
    Kernel("_sta", "h5stream.kernels.sta.spike_triggered_average", "sta_reference", "none", "bench_sta"),
    Kernel("_sync", "h5stream.kernels.sync.sync_peaks", "sync_peaks_naive", "none", "bench_lab_shape"),
    Kernel("_windows", "h5stream.kernels.windows.segment_windows", "segment_windows_naive", "none", "bench_steps",
           note="rows whose values rise are walked once past the sorted edges; any other row compares each "
                "value with each window"),
)


def kernel(module: str) -> Kernel:
    """The row of compiled module ``module`` (``"_sta"``); KeyError naming the known ones."""
    for row in KERNELS:
        if row.module == module:
            return row
    raise KeyError(f"no kernel {module!r} in h5stream.kernels.table.KERNELS (known: "
                   + ", ".join(r.module for r in KERNELS) + "); add its row there")
