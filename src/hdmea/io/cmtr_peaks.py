"""The Peaks tables of an MCS ``.cmtr``: how a table's type is read (:class:`_PeaksLayout`), where its rows
lie in the file (:func:`_plain_runs`), the table read whole (straight from the disk where its rows lie
in plain runs, else through h5py), and one table summarised into a unit's spike samples, amplitudes
and mean cutout (:func:`_summarise`, the compiled kernel ``h5stream.kernels.peaks`` or numpy).

Used by :class:`hdmea.io.cmtr.CmtrFile`; the rules are those of :mod:`hdmea.io.cmtr`'s docstring.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import h5py
import numpy as np
from numpy.lib import recfunctions

from hdmea.errors import RecordingFormatError
from hdmea.io.mcs import guard_mcs_read

__all__ = ["PEAK_FIELDS"]

PEAK_FIELDS = ("Timestamp", "PeakAmplitude", "IncludePeak")


def _microseconds_to_samples(timestamps_us: np.ndarray, sampling_rate: float) -> np.ndarray:
    # Timestamps are integral microseconds; rint of the exact product gives the
    # nearest sample (the acquisition tick divides a second exactly at 20/10/5 kHz).
    return np.rint(np.asarray(timestamps_us, dtype=np.float64) * (sampling_rate / 1e6)).astype(np.uint64)


@dataclasses.dataclass
class _PeaksLayout:
    """How to read one Peaks table type: its dtype, its HDF5 memory type, where the cutouts lie."""

    dtype: np.dtype
    mtype: object
    cutout_names: list[str]
    cutout_offset: int | None  # byte offset of a run of float32 cutout columns, or None
    #: the compiled kernel reads it: native 1/2/4/8-byte integer or float32/float64 scalar columns and the
    #: cutouts (if any) one run of float32
    compiled: bool = False

    @classmethod
    def of(cls, dtype: np.dtype) -> _PeaksLayout:
        names = [n for n in dtype.names if n not in PEAK_FIELDS]
        offset = None
        if names:
            fields = [dtype.fields[n] for n in names]
            first = fields[0][1]
            contiguous = all(f[0] == np.dtype("<f4") and f[1] == first + 4 * i for i, f in enumerate(fields))
            offset = first if contiguous else None
        scalars = [dtype.fields[n][0] for n in PEAK_FIELDS if n in dtype.names]
        compiled = (all(t.isnative and t.shape == () and (t.kind in "iu" and t.itemsize in (1, 2, 4, 8)
                                                           or t.kind == "f" and t.itemsize in (4, 8)) for t in scalars)
                    and (not names or (offset is not None and np.dtype("<f4").isnative)))
        return cls(dtype=dtype, mtype=h5py.h5t.py_create(dtype), cutout_names=names, cutout_offset=offset,
                   compiled=compiled)

    def cutout_view(self, peaks: np.ndarray) -> np.ndarray:
        """The cutout columns seen in place as an ``(n_peaks, n_cut)`` float32 array (``compiled`` layouts)."""
        if not self.cutout_names:
            return np.zeros((peaks.size, 0), dtype=np.float32)
        first = peaks[self.cutout_names[0]]
        return np.lib.stride_tricks.as_strided(first, shape=(peaks.size, len(self.cutout_names)),
                                               strides=(peaks.strides[0], 4), writeable=False)

    def mean_cutout(self, peaks: np.ndarray, include: np.ndarray) -> np.ndarray:
        k = int(np.count_nonzero(include))
        n_cut = len(self.cutout_names)
        if not n_cut:
            return np.zeros(0, dtype=np.float32)
        if k == 0:
            return np.zeros(n_cut, dtype=np.float32)
        if self.cutout_offset is not None and peaks.flags.c_contiguous:
            # The cutout columns seen in place as an (n_peaks, n_cut) float32 array.
            view = np.ndarray(shape=(peaks.size, n_cut), dtype="<f4", buffer=peaks,
                              offset=self.cutout_offset, strides=(peaks.dtype.itemsize, 4))
            total = view[include].sum(axis=0, dtype=np.float64)
        else:
            total = recfunctions.structured_to_unstructured(peaks[include][self.cutout_names],
                                                            dtype=np.float64).sum(axis=0)
        return (total / k).astype(np.float32)


#: file pages: direct reads start and end on them
_PAGE = 4096


@dataclasses.dataclass
class _Table:
    """One unit's Peaks table, opened and checked; ``runs`` are ``(first_row, file_offset)`` of the
    plain runs of bytes its rows lie in (None: read it through h5py)."""

    obj: str
    dsid: object
    layout: _PeaksLayout
    n_rows: int
    runs: list[tuple[int, int]] | None

    @property
    def span(self) -> int:
        """Bytes of a buffer taking the table's runs, each read from its own page boundary."""
        return self.n_rows * self.layout.dtype.itemsize + 2 * _PAGE * len(self.runs or ()) + _PAGE


def _plain_runs(dsid, n_rows: int, itemsize: int) -> list[tuple[int, int]] | None:
    """Where a 1-D table's rows lie in the file, as ``(first_row, file_offset)`` runs, when they lie
    there as they are (contiguous and allocated, or chunked without filters with every chunk
    allocated whole; chunks back to back merge into one run); None otherwise."""
    if n_rows == 0:
        return None
    try:
        plist = dsid.get_create_plist()
        if plist.get_external_count():
            return None
        layout = plist.get_layout()
        if layout == h5py.h5d.CONTIGUOUS:
            offset = dsid.get_offset()
            return None if offset is None or dsid.get_storage_size() != n_rows * itemsize else [(0, int(offset))]
        if layout != h5py.h5d.CHUNKED or plist.get_nfilters():
            return None
        chunk = tuple(plist.get_chunk())
        chunk_bytes = chunk[0] * itemsize
        n_chunks = -(-n_rows // chunk[0])
        if len(chunk) != 1 or dsid.get_num_chunks() != n_chunks:
            return None
        found: list[tuple[int, int, int, int]] = []
        if hasattr(dsid, "chunk_iter"):
            dsid.chunk_iter(lambda info: found.append((info.chunk_offset[0], info.byte_offset, info.size,
                                                       info.filter_mask)))
        else:
            for i in range(n_chunks):
                info = dsid.get_chunk_info(i)
                found.append((info.chunk_offset[0], info.byte_offset, info.size, info.filter_mask))
        found.sort()
    except (AttributeError, TypeError, ValueError, RuntimeError, KeyError, OSError):
        return None
    runs: list[tuple[int, int]] = []
    for i, (row, byte_offset, size, mask) in enumerate(found):
        if row != i * chunk[0] or size != chunk_bytes or mask or byte_offset is None:
            return None
        if not runs or byte_offset != runs[-1][1] + (row - runs[-1][0]) * itemsize:
            runs.append((row, int(byte_offset)))
    return runs


class _RawFile:
    """The file's bytes, read with ``O_DIRECT`` (no page-cache copy) where the system and the file
    system allow it, else through the page cache; ``os.preadv`` releases the GIL."""

    def __init__(self, path: Path, *, direct: bool = True) -> None:
        self.path = path
        self.size = os.path.getsize(path)
        self.fd = None
        from h5stream import capabilities

        if direct and capabilities.direct_io():
            try:
                self.fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
                probe = _aligned_buffer(_PAGE)
                os.preadv(self.fd, [memoryview(probe)[:_PAGE]], 0)  # some file systems refuse the reads
            except OSError:
                if self.fd is not None:
                    os.close(self.fd)
                self.fd = None
        if self.fd is None:
            self.fd = os.open(path, os.O_RDONLY)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def read_into(self, view: memoryview, lo: int, hi: int) -> None:
        """File bytes ``[lo, hi)`` (page-aligned ``lo``) into ``view``; the end of the file may cut the last page."""
        pos = lo
        while pos < hi:
            n = os.preadv(self.fd, [view[pos - lo : hi - lo]], pos)
            if n <= 0 or (pos + n) % 512 and pos + n < hi:
                if pos + max(n, 0) >= min(hi, self.size):
                    return
                raise OSError(f"{self.path}: short read at byte {pos + max(n, 0)}, expected bytes up to {hi}")
            pos += n


def _aligned_buffer(nbytes: int) -> np.ndarray:
    raw = np.empty(int(nbytes) + _PAGE, dtype=np.uint8)
    skip = (-raw.ctypes.data) % _PAGE
    return raw[skip : skip + int(nbytes)]


def _read_table(raw: _RawFile | None, table: _Table, path: Path, buffer: np.ndarray | None = None) -> np.ndarray:
    """The whole table as a structured array: its runs read straight from the file into ``buffer``
    (the rows then viewing it), or one h5py read."""
    layout, n = table.layout, table.n_rows
    if raw is None or table.runs is None or buffer is None:
        peaks = np.empty(n, dtype=layout.dtype)
        if n:
            with guard_mcs_read(path, table.obj):
                table.dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, peaks, mtype=layout.mtype)
        return peaks
    itemsize = layout.dtype.itemsize
    view = memoryview(buffer)
    ends = [r for r, _ in table.runs[1:]] + [n]
    jobs = []
    pos = 0
    for (r0, offset), r1 in zip(table.runs, ends):
        nbytes = (r1 - r0) * itemsize
        first = offset - offset % _PAGE
        last = -(-(offset + nbytes) // _PAGE) * _PAGE
        if offset + nbytes > raw.size:
            raise RecordingFormatError("peaks table lies past the end of the file", path=path, obj=table.obj,
                                       expected=f"bytes up to {offset + nbytes}", found=f"a file of {raw.size} bytes")
        raw.read_into(view[pos : pos + last - first], first, last)
        jobs.append((pos + offset - first, nbytes))
        pos += last - first
    start = jobs[0][0]
    dest = start + jobs[0][1]
    for source, nbytes in jobs[1:]:  # the later runs moved left, after the first: the rows in order
        buffer[dest : dest + nbytes] = buffer[source : source + nbytes]  # numpy copies overlapping ranges safely
        dest += nbytes
    return buffer[start : start + n * itemsize].view(layout.dtype)


def _summarise(peaks: np.ndarray, layout: _PeaksLayout, sampling_rate: float, waveform: bool, owner,
               obj: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spike samples, amplitudes and mean cutout of the included peaks, every peak checked first
    (``owner._refuse`` raises for the first problem)."""
    n_cut = len(layout.cutout_names)
    has_amps = "PeakAmplitude" in layout.dtype.names
    if layout.compiled and peaks.size:
        from h5stream.kernels.peaks import summarise_peaks

        samples = np.empty(peaks.size, dtype=np.uint64)
        amps = np.empty(peaks.size if has_amps else 0, dtype=np.float32)
        sums = np.zeros(n_cut if waveform else 0, dtype=np.float64)
        cutouts = layout.cutout_view(peaks) if waveform else np.zeros((peaks.size, 0), dtype=np.float32)
        amplitudes = peaks["PeakAmplitude"] if has_amps else np.zeros(0, dtype=np.float32)
        k, bad_flag, bad_time, unsorted = summarise_peaks(peaks["Timestamp"], peaks["IncludePeak"], amplitudes,
                                                          cutouts, float(sampling_rate) / 1e6, samples, amps, sums)
        owner._refuse(peaks, obj, bad_flag, bad_time, unsorted)
        if not waveform:
            wave = np.zeros(0, dtype=np.float32)
        elif k == 0 or not n_cut:
            wave = np.zeros(n_cut, dtype=np.float32)
        else:
            wave = (sums / k).astype(np.float32)
        # shrunk in place to the included peaks (a copy would fault in and fill new pages)
        samples.resize(k, refcheck=False)
        if has_amps:
            amps.resize(k, refcheck=False)
        return samples, amps, wave
    owner._check_peaks(peaks, obj)
    include = peaks["IncludePeak"] == 1
    spikes = _microseconds_to_samples(peaks["Timestamp"][include], sampling_rate)
    amps = peaks["PeakAmplitude"][include].astype(np.float32) if has_amps else np.zeros(0, np.float32)
    wave = layout.mean_cutout(peaks, include) if waveform else np.zeros(0, dtype=np.float32)
    return spikes, amps, wave
