"""The Peaks tables of an MCS ``.cmtr``: how a table's type is read (:class:`_PeaksLayout`), one table
as the reader holds it (:class:`_Table`: the engine's walk entry, read whole by
:class:`h5stream.tables.TableReader`), and one table summarised into a unit's spike samples, amplitudes
and mean cutout (:func:`_summarise`, the compiled kernel ``h5stream.kernels.peaks`` or numpy), and a
table's columns each copied out on its own (:func:`table_columns`, the ``peaks_data`` of a unit's
``unit_meta``).

Used by :class:`hdmea.io.cmtr.CmtrFile`; the rules are those of :mod:`hdmea.io.cmtr`'s docstring.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.lib import recfunctions

from h5stream.kernels.peaks import gather_fields
from h5stream.tables import TableReader
from h5stream.walk import Entry
from hdmea.io.mcs_checks import cutout_template, judge_cutout_rows, rows_off_template

__all__ = ["PEAK_FIELDS", "table_columns"]

PEAK_FIELDS = ("Timestamp", "PeakAmplitude", "IncludePeak")


@dataclasses.dataclass(frozen=True)
class CutoutSuspects:
    """The rows of a unit's Peaks table holding a cutout sample far off the unit's median cutout, to be judged
    (:func:`hdmea.io.mcs_checks.judge_cutout_rows`) once the unit's amplitudes and mean passed their checks."""

    cutouts: np.ndarray
    rows: np.ndarray
    template: np.ndarray
    limit: float

    def judge(self, path, obj: str) -> str | None:
        """Refuse a sample past a volt or not a number; the text of a lone sample's warning, else None."""
        return judge_cutout_rows(self.cutouts, self.rows, self.template, self.limit, path, obj)


#: Flagged rows the kernel notes per unit; past that many, numpy finds them again (a table that damaged is rare).
_FLAGGED_ROOM = 256


def _microseconds_to_samples(timestamps_us: np.ndarray, sampling_rate: float) -> np.ndarray:
    # Timestamps are integral microseconds; rint of the exact product gives the
    # nearest sample (the acquisition tick divides a second exactly at 20/10/5 kHz).
    return np.rint(np.asarray(timestamps_us, dtype=np.float64) * (sampling_rate / 1e6)).astype(np.uint64)


@dataclasses.dataclass
class _PeaksLayout:
    """How to read one Peaks table type: its dtype, where the cutouts lie."""

    dtype: np.dtype
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
        return cls(dtype=dtype, cutout_names=names, cutout_offset=offset,
                   compiled=compiled)

    def cutout_view(self, peaks: np.ndarray) -> np.ndarray:
        """The cutout columns seen in place as an ``(n_peaks, n_cut)`` float32 array (``compiled`` layouts)."""
        if not self.cutout_names:
            return np.zeros((peaks.size, 0), dtype=np.float32)
        first = peaks[self.cutout_names[0]]
        return np.lib.stride_tricks.as_strided(first, shape=(peaks.size, len(self.cutout_names)),
                                               strides=(peaks.strides[0], 4), writeable=False)

    def cutouts(self, peaks: np.ndarray) -> np.ndarray:
        """Every row's cutout as an ``(n_peaks, n_cut)`` array: seen in place (``compiled`` layouts), else a
        float64 copy."""
        if self.compiled:
            return self.cutout_view(peaks)
        return recfunctions.structured_to_unstructured(peaks[self.cutout_names], dtype=np.float64)

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


@dataclasses.dataclass
class _Table:
    """One unit's Peaks table, opened and checked; ``runs`` are ``(first_row, file_offset)`` of the
    plain runs of bytes its rows lie in (None: read it through h5py)."""

    obj: str
    entry: Entry
    layout: _PeaksLayout
    n_rows: int
    runs: list[tuple[int, int]] | None

    @property
    def span(self) -> int:
        """Bytes of a buffer taking the table's runs, each read from its own page boundary."""
        return TableReader.span(self.n_rows, self.layout.dtype.itemsize, self.runs)


def _summarise(peaks: np.ndarray, layout: _PeaksLayout, sampling_rate: float, waveform: bool, owner,
               obj: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, CutoutSuspects | None]:
    """Spike samples, amplitudes and mean cutout of the included peaks, every peak checked first
    (``owner._refuse`` raises for the first problem), and the rows whose cutout samples the caller must judge
    (None: none).

    With a waveform, the rows holding a sample far off the unit's median cutout are found
    (:mod:`hdmea.io.mcs_checks`): by the compiled kernel in its one pass, else by numpy."""
    n_cut = len(layout.cutout_names)
    has_amps = "PeakAmplitude" in layout.dtype.names
    check = waveform and n_cut > 0 and peaks.size > 0
    include = peaks["IncludePeak"] == 1 if check else None
    if layout.compiled and peaks.size:
        from h5stream.kernels.peaks import summarise_peaks

        samples = np.empty(peaks.size, dtype=np.uint64)
        amps = np.empty(peaks.size if has_amps else 0, dtype=np.float32)
        sums = np.zeros(n_cut if waveform else 0, dtype=np.float64)
        cutouts = layout.cutout_view(peaks) if waveform else np.zeros((peaks.size, 0), dtype=np.float32)
        amplitudes = peaks["PeakAmplitude"] if has_amps else np.zeros(0, dtype=np.float32)
        template, limit, bound = cutout_template(cutouts, include) if check else (None, np.inf, np.inf)
        flagged = np.empty(_FLAGGED_ROOM, dtype=np.int64)
        k, bad_flag, bad_time, unsorted, n_flagged = summarise_peaks(
            peaks["Timestamp"], peaks["IncludePeak"], amplitudes, cutouts, float(sampling_rate) / 1e6, samples,
            amps, sums, template, bound, flagged)
        owner._refuse(peaks, obj, bad_flag, bad_time, unsorted)
        suspects = None
        if n_flagged:
            rows = (flagged[:n_flagged] if n_flagged <= flagged.size
                    else rows_off_template(cutouts, include, template, bound))
            suspects = CutoutSuspects(cutouts, rows, template, limit)
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
        return samples, amps, wave, suspects
    owner._check_peaks(peaks, obj)
    include = peaks["IncludePeak"] == 1
    spikes = _microseconds_to_samples(peaks["Timestamp"][include], sampling_rate)
    amps = peaks["PeakAmplitude"][include].astype(np.float32) if has_amps else np.zeros(0, np.float32)
    wave = layout.mean_cutout(peaks, include) if waveform else np.zeros(0, dtype=np.float32)
    suspects = None
    if check:
        cutouts = layout.cutouts(peaks)
        template, limit, bound = cutout_template(cutouts, include)
        suspects = CutoutSuspects(cutouts, rows_off_template(cutouts, include, template, bound), template, limit)
    return spikes, amps, wave, suspects


def table_columns(table: np.ndarray) -> dict[str, np.ndarray]:
    """Each field of a 1-D structured array as its own contiguous array (a copy), in the type's field order.

    Fields of one scalar type laid out back to back (a ``Peaks`` table's cutout samples) are copied
    together into a ``(fields, rows)`` block, each field then one row of it, instead of one strided pass
    over the table per field."""
    dtype, n = table.dtype, table.shape[0]
    if dtype.hasobject or not n:
        return {name: np.array(table[name]) for name in dtype.names}
    table = np.ascontiguousarray(table)
    fields = sorted(((dtype.fields[name][1], name) for name in dtype.names))
    runs: list[list[str]] = []
    end = None
    for offset, name in fields:
        ftype = dtype.fields[name][0]
        last = runs[-1][-1] if runs else None
        if last is not None and not ftype.shape and ftype == dtype.fields[last][0] and offset == end:
            runs[-1].append(name)
        else:
            runs.append([name])
        end = offset + ftype.itemsize
    out: dict[str, np.ndarray] = {}
    for run in runs:
        ftype, offset = dtype.fields[run[0]][:2]
        if len(run) == 1 or ftype.shape:
            for name in run:
                out[name] = np.array(table[name])
            continue
        # one compiled pass, record by record, into the run's (fields, rows) block: 120 lab-sized tables (240 MB)
        # 0.062-0.070 CPU s into pages already backed, against 0.071-0.079 for gathering the run's rows then
        # transposing them, which also made a second array of the table's size
        block = np.empty((len(run), n), dtype=ftype)
        gather_fields(table, offset, block)
        out.update(zip(run, block))
    return {name: out[name] for name in dtype.names}
