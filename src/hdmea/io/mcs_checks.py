"""What the MCS format and the physics of a recording rule out, checked where the readers read.

No checksum protects a vendor file, so a damaged byte reads as a value.  Many such
values cannot be told from real ones (a raw sample, a cutout sample a few percent
off); these can:

* **stored types** (:func:`check_columns`, :func:`check_stored_dtype`): the MCS
  software writes little-endian numbers of fixed widths.  A column whose type says
  big-endian decodes the little-endian bytes the software wrote into other numbers
  (a peak of -68 uV reads as 2.8e-25), and a column of another width reads its
  neighbours' bytes.  Every column a reader uses is checked against
  :data:`PEAKS_COLUMNS`, :data:`UNITS_COLUMNS` or :data:`META_COLUMNS` (kind and width;
  little-endian always), once per table type.
* **zeroed rows** (:func:`check_first_peak`): a Peaks table does not start with a row
  of zero bytes (sorted timestamps put a zeroed block's rows first, where the order
  check passes them).
* **chunk sizes** (:func:`check_chunk_sizes`): every chunk of a dataset stored without
  filters holds its full size (a damaged size in the chunk index leaves the rest of the
  chunk to whatever the reader's buffer held).
* **units** (:func:`check_units_rows`): every row of the ``Units`` table is a unit at a
  sensor of the chip (``SensorID`` 1..4225: a zeroed row holds 0), each ``UnitID`` once.
* **voltages** (:func:`check_voltages`): a spike's amplitude and its mean cutout are
  finite, at most :data:`MAX_VOLTAGE` in magnitude (a volt in microvolts, far past
  any electrode's range whichever unit the file uses) and, when not zero, at least
  :data:`MIN_VOLTAGE` (no ADC count times a gain comes near it).
* **cutout samples** (:func:`cutout_template`, :func:`rows_off_template`, :func:`judge_cutout_rows`; the
  compiled Peaks kernel finds the rows in its one pass): every sample of an included peak's
  cutout is finite and at most :data:`MAX_VOLTAGE` in magnitude (the mean cutout alone
  hides one such sample among many peaks).  A *lone sample* (far off the unit's median
  cutout there, while the cutout's other samples lie close to it) is what a flipped bit of a
  stored float reads as: a spike sampled at 10-25 kHz from band-pass-filtered data
  changes over several samples, so a peak differing from its unit's other peaks at one
  sample only, by :data:`LONE_SAMPLE_NOISE` times the noise level and
  :data:`LONE_SAMPLE_RATIO` times at any other sample of its cutout, is not a spike's shape.
  A glitch of the acquisition could still make one, so it is read, with a
  :class:`~hdmea.errors.UnusualVendorValueWarning` the recording keeps.
* **unusual values** (:func:`unusual_gain`): a sensor gain outside
  :data:`USUAL_GAIN_UV` microvolts per count is what the format allows but recordings
  rarely hold: it is read, with a :class:`~hdmea.errors.UnusualVendorValueWarning` that
  the recording keeps.
* **ADC levels** (:class:`AnalogChannelCheck`): a light-reference
  sample lies inside the ADC's range, ``-2**(ADCBits - 1) .. 2**ADCBits - 1`` (signed or
  unsigned codes), where ``ChannelMeta`` states ``ADCBits``; and one channel's codes are of
  one kind: an ADC gives signed codes (``-2**(ADCBits - 1) .. 2**(ADCBits - 1) - 1``) or
  unsigned ones (``0 .. 2**ADCBits - 1``), so a channel holding a negative code and one of
  ``2**(ADCBits - 1)`` or more is damaged (a flipped high bit of a code).
* **zeroed samples** (:class:`AnalogChannelCheck`): a run of at least
  :data:`ZERO_RUN_SAMPLES` codes of exactly 0 in an analog channel whose other samples
  rarely repeat the one before (at most :data:`REPEAT_SHARE` of them) is what zeroed
  storage reads as; an input at rest to within one code that long is possible (a line held
  at ground), so it is read, with a :class:`~hdmea.errors.UnusualVendorValueWarning` the
  recording keeps.  A channel that is 0 throughout (not connected) gives none.

Each violation is a :class:`~hdmea.errors.RecordingFormatError` naming the file, the
object (table, column, row), what was expected, what was found and what to do.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from hdmea.errors import RecordingFormatError

__all__ = ["PEAKS_COLUMNS", "PEAK_CUTOUT_COLUMN", "UNITS_COLUMNS", "UNITS_MEASURE_COLUMN", "META_COLUMNS",
           "SENSOR_DATA_TYPE", "ANALOG_DATA_TYPE", "MAX_VOLTAGE", "MIN_VOLTAGE", "check_first_peak",
           "USUAL_GAIN_UV", "unusual_gain", "check_columns", "check_stored_dtype", "check_voltages", "check_units_rows",
           "check_chunk_sizes",
           "adc_range", "AnalogChannelCheck", "ZERO_RUN_SAMPLES", "REPEAT_SHARE",
           "LONE_SAMPLE_NOISE", "LONE_SAMPLE_RATIO", "LONE_SAMPLE_MIN_PEAKS", "cutout_template",
           "rows_off_template", "judge_cutout_rows"]

#: A column's allowed kinds (numpy ``dtype.kind`` letters) and widths in bytes, as the MCS software writes it.
ColumnRule = tuple[str, tuple[int, ...]]
#: The Peaks table of a ``.cmtr`` unit: microsecond timestamps as 64-bit integers.
PEAKS_COLUMNS: dict[str, ColumnRule] = {"Timestamp": ("iu", (8,)), "PeakAmplitude": ("f", (4, 8)),
                                        "IncludePeak": ("iu", (1, 2, 4, 8))}
#: Every cutout sample column of a Peaks table.
PEAK_CUTOUT_COLUMN: ColumnRule = ("f", (4, 8))
#: The ``Units`` table of a ``.cmtr``: ids and positions as integers ...
UNITS_COLUMNS: dict[str, ColumnRule] = {name: ("iu", (2, 4, 8)) for name in ("UnitID", "SensorID", "Row", "Column")}
#: ... and its quality measures (every other numeric column) as floats or integers.
UNITS_MEASURE_COLUMN: ColumnRule = ("iuf", (2, 4, 8))
#: The scaling and region columns of ``ChannelMeta`` and ``SensorMeta``.
META_COLUMNS: dict[str, ColumnRule] = {
    name: ("iuf", (4, 8)) for name in ("Tick", "Exponent", "ADZero", "ConversionFactor", "ADCBits", "ChannelID",
                                       "RegionID", "Region.Left", "Region.Top", "Region.Right", "Region.Bottom",
                                       "RegionLeft", "RegionTop", "RegionRight", "RegionBottom")}
#: Raw sensor samples (``SensorData``): 16-bit ADC counts.
SENSOR_DATA_TYPE: ColumnRule = ("iu", (2,))
#: The analog channels (``ChannelData``): ADC codes (the MCS software writes 32-bit integers).
ANALOG_DATA_TYPE: ColumnRule = ("iuf", (2, 4, 8))

#: Sensors of the 65 x 65 chip: ids 1..4225.
SENSOR_COUNT = 65 * 65

#: Sensor gains (microvolts per ADC count) recordings usually hold; one outside is read, with a warning.
USUAL_GAIN_UV = (0.01, 100.0)

#: Largest magnitude of a spike amplitude or cutout sample (1 V in microvolts; 1e6 V if the file uses volts).
MAX_VOLTAGE = 1e6
#: Smallest magnitude of a non-zero amplitude (a byte-swapped float lands far below it).
MIN_VOLTAGE = 1e-20

#: A lone cutout sample differs from the unit's median cutout at that sample by at least this many noise levels
#: (1.4826 x the median absolute difference of the unit's included cutout samples from that median cutout: the
#: standard deviation of Gaussian noise, and an over-estimate wherever amplitudes vary).  Gaussian noise passes
#: 10 levels once in 6e22 samples; a flipped exponent or sign bit of a float32 sample moves it by its own size
#: or more, which for a spike's samples is many noise levels.
LONE_SAMPLE_NOISE = 10.0
#: ... and by at least this many times every other sample of its cutout.  A real difference from the median
#: (another amplitude, an alignment jittered by part of a sample, a spike of another unit overlapping) is
#: itself a waveform, band-limited by the acquisition's filters: at 20 kHz a spike's trough spans 3-10
#: samples, and its difference from the median spreads over several samples with lobes of like size (a
#: jitter's two flanks, an amplitude's trough and its neighbours within a factor of about 1.5).  Against
#: the two neighbours alone it is not enough: a jittered spike of a trough 0.06 ms wide and 1.5 mV deep has a
#: flank 4-5 times both its neighbours' differences, never 4 times its other flank's.
LONE_SAMPLE_RATIO = 4.0
#: Units with fewer included peaks are not searched for lone samples: their median cutout is no template.
LONE_SAMPLE_MIN_PEAKS = 8
#: Rows (evenly spaced) the median cutout and the noise level are estimated from: robust statistics
#: settle long before a table's full size, and the estimate stays a small share of the read.
_TEMPLATE_ROWS = 128
#: Peaks checked at once: 4096 x 40 float32 samples (640 KiB) stay in the cache through a block's passes.
_BLOCK_ROWS = 4096

#: Codes of exactly 0 in a row from which an analog channel that otherwise varies reads as zeroed storage.
ZERO_RUN_SAMPLES = 64
#: "Otherwise varies": at most this share of the channel's other samples equal the one before (an input
#: resting within one code repeats far more often; under that share a run of 64 equal codes has a
#: chance below 0.5**63 per sample).
REPEAT_SHARE = 0.5

_RESTORE = "the file is damaged; restore it from the acquisition computer"


def _byte_order(dtype: np.dtype) -> str:
    """"little", "big" or "none" (one byte) for a plain numeric dtype."""
    if dtype.itemsize == 1 or dtype.byteorder == "|":
        return "none"
    if dtype.byteorder == "=":
        return "little" if np.little_endian else "big"
    return "little" if dtype.byteorder == "<" else "big"


def check_stored_dtype(dtype: np.dtype, rule: ColumnRule, path: str | os.PathLike, obj: str) -> None:
    """Refuse a stored numeric type that is big-endian, or not of ``rule``'s kinds and widths."""
    kinds, widths = rule
    base = dtype.base if dtype.subdtype is not None else dtype
    if _byte_order(base) == "big":
        raise RecordingFormatError(
            "a column is stored big-endian", path=path, obj=obj,
            expected=f"little-endian {base.newbyteorder('<')}, as the MCS software writes it", found=str(base),
            hint="its values would read as other numbers; " + _RESTORE,
        )
    if base.kind not in kinds or base.itemsize not in widths:
        kind_text = "/".join({"i": "signed integer", "u": "unsigned integer", "f": "float"}[k] for k in kinds)
        raise RecordingFormatError(
            "a column has the wrong type or width", path=path, obj=obj,
            expected=f"{kind_text} of {' or '.join(str(8 * w) for w in widths)} bits", found=str(base),
            hint=_RESTORE,
        )


def check_columns(dtype: np.dtype, rules: dict[str, ColumnRule], path: str | os.PathLike, obj: str, *,
                  other: ColumnRule | None = None, skip: tuple[str, ...] = ()) -> None:
    """Every numeric column of compound ``dtype`` named in ``rules`` follows its rule; any other numeric one
    (not in ``skip``) follows ``other`` when given; no column name holds a control character (a damaged
    name of a quality measure would otherwise come back as another measure).  A column that holds no numbers is left to the reader's
    own check, which names what it expected there."""
    for name in dtype.names or ():
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise RecordingFormatError(
                "a column name holds a control character", path=path, obj=f"{obj} column {name!r}",
                expected="the vendor's printable column names", found=repr(name),
                hint="a byte of the stored type is damaged; " + _RESTORE,
            )
        if dtype.fields[name][0].base.kind not in "iuf":
            continue
        rule = rules.get(name, None if name in skip else other)
        if rule is not None:
            check_stored_dtype(dtype.fields[name][0], rule, path, f"{obj} column {name!r}")


def check_chunk_sizes(ds: h5py.Dataset, path: str | os.PathLike) -> None:
    """Refuse a chunked dataset without filters one of whose chunks is stored in other than its full size: libhdf5
    reads the bytes a short chunk lacks as whatever the reader's buffer held (a damaged size in the chunk index)."""
    dsid = ds.id
    plist = dsid.get_create_plist()
    if plist.get_layout() != h5py.h5d.CHUNKED or plist.get_nfilters():
        return
    chunk = tuple(int(n) for n in plist.get_chunk())
    full = int(np.prod(chunk)) * ds.dtype.itemsize
    stored: list[tuple[tuple[int, ...], int]] = []
    if hasattr(dsid, "chunk_iter"):  # one pass over the index (HDF5 >= 1.12.3)
        dsid.chunk_iter(lambda info: stored.append((tuple(info.chunk_offset), int(info.size))))
    else:
        for i in range(dsid.get_num_chunks()):
            info = dsid.get_chunk_info(i)
            stored.append((tuple(info.chunk_offset), int(info.size)))
    for offset, size in stored:
        if size != full:
            raise RecordingFormatError(
                "a chunk is stored in other than its size", path=path, obj=f"{ds.name} chunk at {offset}",
                expected=f"{full} bytes ({' x '.join(map(str, chunk))} values of {ds.dtype}, no filter)",
                found=f"{size} bytes", hint="part of it would read as whatever memory held; " + _RESTORE,
            )


def check_first_peak(peaks: np.ndarray, path: str | os.PathLike, obj: str) -> None:
    """Refuse a Peaks table whose first row is zero bytes: a peak at 0 us of amplitude 0, excluded.

    Timestamps are sorted, so the rows of a zeroed block that would pass that check
    are the first ones; read, they silently drop those peaks.  No peak lies at the
    recording's first sample (its cutout starts before it).
    """
    if peaks.size and not np.frombuffer(peaks[:1].tobytes(), dtype=np.uint8).any():
        raise RecordingFormatError(
            "the peaks table's first row is zero bytes", path=path, obj=f"{obj} row 0",
            expected="a peak after the recording's first sample", found="Timestamp 0, every column 0",
            hint="a block of the file was zeroed; " + _RESTORE,
        )


def check_units_rows(table: np.ndarray, path: str | os.PathLike, obj: str) -> None:
    """Refuse a ``Units`` table with a ``SensorID`` off the 65 x 65 chip (1..4225, a zeroed row holds 0) or two
    rows of one ``UnitID``: every row is a unit at a sensor, each listed once."""
    names = table.dtype.names
    if "SensorID" in names and table.size:
        sensors = table["SensorID"]
        bad = np.flatnonzero((sensors < 1) | (sensors > SENSOR_COUNT))
        if bad.size:
            i = int(bad[0])
            raise RecordingFormatError(
                "sensor id in the units table outside the 65 x 65 grid", path=path,
                obj=f"{obj} row {i} column 'SensorID'",
                expected=f"1..{SENSOR_COUNT}", found=str(sensors[i].item()),
                hint="a row of zero bytes is a zeroed block; " + _RESTORE,
            )
    ids = table["UnitID"]
    if ids.size > 1:
        order = np.argsort(ids, kind="stable")
        same = np.flatnonzero(ids[order][1:] == ids[order][:-1])
        if same.size:
            i, j = sorted((int(order[same[0]]), int(order[same[0] + 1])))
            raise RecordingFormatError(
                "two rows of the units table carry one UnitID", path=path,
                obj=f"{obj} rows {i} and {j} column 'UnitID'",
                expected="one row per unit", found=f"UnitID {ids[i].item()} twice", hint=_RESTORE,
            )


def check_voltages(values: np.ndarray, path: str | os.PathLike, obj: str, what: str, *,
                   allow_tiny: bool = False, item: str = "row") -> None:
    """Refuse ``values`` (amplitudes or a mean cutout) that are not finite, above :data:`MAX_VOLTAGE` in
    magnitude, or (unless ``allow_tiny``) non-zero below :data:`MIN_VOLTAGE`."""
    if not values.size:
        return
    magnitude = np.abs(values)
    if np.isfinite(magnitude).all() and magnitude.max() <= MAX_VOLTAGE and (
            allow_tiny or not ((magnitude < MIN_VOLTAGE) & (magnitude > 0)).any()):
        return
    bad = ~np.isfinite(magnitude) | (magnitude > MAX_VOLTAGE)
    if not allow_tiny:
        bad |= (magnitude < MIN_VOLTAGE) & (magnitude > 0)
    i = int(np.flatnonzero(bad)[0])
    raise RecordingFormatError(
        f"implausible {what}", path=path, obj=f"{obj} {item} {i}",
        expected=f"a finite voltage of at most {MAX_VOLTAGE:g} in magnitude"
                 + ("" if allow_tiny else f", and 0 or at least {MIN_VOLTAGE:g}"),
        found=repr(values.reshape(-1)[i].item()), hint=_RESTORE,
    )


def cutout_template(cutouts: np.ndarray, include: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``(template, limit, bound)`` of a unit's cutouts (``cutouts``: ``(n_peaks, n_samples)``, every row of
    the table; ``include``: which rows the mean cutout takes): the median cutout of :data:`_TEMPLATE_ROWS`
    evenly spaced included peaks (float32), the lone-sample limit (:data:`LONE_SAMPLE_NOISE` noise levels;
    infinite where no template can be had) and the bound past which a row must be looked at: past the
    limit, or far enough from the template to pass :data:`MAX_VOLTAGE` (a NaN compares past any bound)."""
    m = cutouts.shape[1]
    included = np.flatnonzero(include)
    template, limit = np.zeros(m, dtype=np.float32), np.inf
    if included.size >= LONE_SAMPLE_MIN_PEAKS and m >= 3:
        sample = np.ascontiguousarray(cutouts[included[::max(1, included.size // _TEMPLATE_ROWS)]].T,
                                      dtype=np.float32)
        template = np.median(sample, axis=1).astype(np.float32)
        noise = 1.4826 * float(np.median(np.abs(sample - template[:, None])))
        if noise > 0 and np.isfinite(noise):  # identical cutouts: no noise to measure against
            limit = LONE_SAMPLE_NOISE * noise
    bound = min(limit, MAX_VOLTAGE - float(np.abs(template).max(initial=0.0)))
    return template, limit, bound


def rows_off_template(cutouts: np.ndarray, include: np.ndarray, template: np.ndarray, bound: float) -> np.ndarray:
    """The included rows holding a sample more than ``bound`` off ``template`` (or not a number), in numpy
    over blocks of :data:`_BLOCK_ROWS` peaks (the compiled Peaks kernel flags the same rows in its one pass)."""
    n, m = cutouts.shape
    buffer = np.empty((min(n, _BLOCK_ROWS), m), dtype=np.float64)
    found = []
    for start in range(0, n, _BLOCK_ROWS):
        block, inc = cutouts[start:start + _BLOCK_ROWS], include[start:start + _BLOCK_ROWS]
        off = buffer[:block.shape[0]]
        np.subtract(block, template, out=off)
        np.abs(off, out=off)
        flagged = ~(off <= bound).all(axis=1) & inc
        found.append(start + np.flatnonzero(flagged))
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def judge_cutout_rows(cutouts: np.ndarray, rows: np.ndarray, template: np.ndarray, limit: float,
                      path: str | os.PathLike, obj: str) -> str | None:
    """Refuse a sample of the flagged ``rows`` that is not finite or above :data:`MAX_VOLTAGE` in magnitude;
    return the warning's text when one of them holds a lone sample (module docstring;
    :data:`LONE_SAMPLE_NOISE`, :data:`LONE_SAMPLE_RATIO`), else None."""
    if not rows.size:
        return None
    rows = np.sort(rows)
    picked = np.asarray(cutouts[rows], dtype=np.float64)
    bad = ~(np.abs(picked) <= MAX_VOLTAGE)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise RecordingFormatError(
            "implausible cutout sample", path=path, obj=f"{obj} row {int(rows[i])} sample {int(j)}",
            expected=f"a finite voltage of at most {MAX_VOLTAGE:g} in magnitude",
            found=repr(float(picked[i, j])), hint=_RESTORE,
        )
    m = picked.shape[1]
    if m < 3 or not np.isfinite(limit):
        return None
    off = np.abs(picked - template.astype(np.float64))
    i, j = np.nonzero(off[:, 1:-1] > limit)
    if not i.size:
        return None
    j += 1
    # alone in its cutout: the peak's other samples all lie within 1/LONE_SAMPLE_RATIO of its difference
    second = np.partition(off[i], m - 2, axis=1)[:, m - 2]
    alone = (off[i, j] >= LONE_SAMPLE_RATIO * second) & (off[i, j] == off[i].max(axis=1))
    if not alone.any():
        return None
    lone_rows, at_samples = rows[i[alone]], j[alone]
    row, at = int(lone_rows[0]), int(at_samples[0])
    value, left, right = (float(cutouts[row, at + d]) for d in (0, -1, 1))
    offs = [abs(v - float(template[at + d])) for v, d in ((value, 0), (left, -1), (right, 1))]
    peaks = np.unique(lone_rows).size
    more = f"; {peaks - 1} more peak(s) of the unit hold one" if peaks > 1 else ""
    return (f"{path} [{obj}]: a lone cutout sample: sample {at} of peak row {row} is {value:.6g} beside "
            f"{left:.6g} and {right:.6g}, {offs[0]:.3g} off the unit's median cutout there ({template[at]:.4g}), "
            f"{offs[0] * LONE_SAMPLE_NOISE / limit:.0f} times its noise level ({limit / LONE_SAMPLE_NOISE:.3g}) while "
            f"its neighbours lie {offs[1]:.3g} and {offs[2]:.3g} off{more}; read as stored: a flipped bit of a "
            f"stored sample reads like this, and the unit's mean cutout holds it")


def adc_range(bits: int) -> tuple[int, int]:
    """Lowest and highest code of an ADC of ``bits`` bits, signed or unsigned: ``-2**(bits-1) .. 2**bits - 1``."""
    return -(1 << (int(bits) - 1)), (1 << int(bits)) - 1


def _refuse_level(raw: np.ndarray, bits: float, path, obj: str, start: int) -> None:
    low, high = adc_range(bits)
    i = int(np.flatnonzero((raw < low) | (raw > high))[0])
    raise RecordingFormatError(
        "analog sample outside the ADC's range", path=path, obj=f"{obj} sample {start + i}",
        expected=f"{low} .. {high} ({int(bits)}-bit codes, signed or unsigned; ChannelMeta ADCBits)",
        found=str(raw.reshape(-1)[i].item()), hint=_RESTORE,
    )


def _edge_zeros(raw: np.ndarray, from_end: bool) -> int:
    """How many codes of 0 the block ``raw`` starts (or ends) with, looked for in widening windows."""
    width = 64
    while True:
        part = raw[-width:] if from_end else raw[:width]
        other = np.flatnonzero(part)
        if other.size:
            return int(part.size - 1 - other[-1]) if from_end else int(other[0])
        if part.size == raw.size:
            return raw.size
        width *= 8


class AnalogChannelCheck:
    """The value checks of one analog channel, fed its ADC codes block by block, in order (:meth:`feed`).

    Each block's codes lie in the ADC's range (:func:`adc_range`); the channel's lowest and
    highest codes so far are of one kind (signed or unsigned); runs of at least :data:`ZERO_RUN_SAMPLES`
    codes of 0 are noted, with how often the channel's other samples (in the blocks holding such a
    run) repeat the one before.  :meth:`unusual` is the warning's text once the channel is read.
    """

    def __init__(self, bits: float | None, path: str | os.PathLike, obj: str) -> None:
        self.bits, self.path, self.obj = (None if bits is None else int(bits)), path, obj
        self.lowest: tuple[int, int] | None = None  # (code, sample)
        self.highest: tuple[int, int] | None = None
        self.runs: list[tuple[int, int]] = []  # (first sample, length) of runs of zero codes
        self._carry = (0, 0)  # (first sample, length) of the zeros ending the blocks fed so far
        self._pairs = self._repeats = 0  # neighbouring samples outside those runs, and how many are equal

    def feed(self, raw: np.ndarray, start: int) -> None:
        """Check the codes ``raw`` (1-D) of samples ``start ..``; a :class:`RecordingFormatError` if damaged."""
        if not raw.size or raw.dtype.kind not in "iu":
            return
        if self.bits is not None:
            self._levels(raw, start)
        self._zero_runs(raw, start)

    def _levels(self, raw: np.ndarray, start: int) -> None:
        i, j = int(raw.argmin()), int(raw.argmax())
        lo, hi = int(raw[i]), int(raw[j])
        low, high = adc_range(self.bits)
        if lo < low or hi > high:
            _refuse_level(raw, self.bits, self.path, self.obj, start)
        if self.lowest is None or lo < self.lowest[0]:
            self.lowest = (lo, start + i)
        if self.highest is None or hi > self.highest[0]:
            self.highest = (hi, start + j)
        half = 1 << (self.bits - 1)
        if self.lowest[0] < 0 and self.highest[0] >= half:
            (lo, at_lo), (hi, at_hi) = self.lowest, self.highest
            raise RecordingFormatError(
                "an analog channel holds codes of a signed and of an unsigned ADC", path=self.path,
                obj=f"{self.obj} samples {at_lo} and {at_hi}",
                expected=(f"{self.bits}-bit codes of one kind (ChannelMeta ADCBits): {-half} .. {half - 1} (signed) "
                          f"or 0 .. {2 * half - 1} (unsigned)"),
                found=f"{lo} at sample {at_lo} and {hi} at sample {at_hi}",
                hint="one of them is a damaged code (a flipped high bit); " + _RESTORE,
            )

    def _zero_runs(self, raw: np.ndarray, start: int) -> None:
        carry_first, carry = self._carry
        n = raw.size
        head = _edge_zeros(raw, from_end=False) if raw[0] == 0 else 0
        if head == n:  # zeros throughout: the run goes on
            self._carry = (carry_first if carry else start, carry + n)
            return
        runs = []  # (first sample, length, samples in this block) of the runs that end in this block
        if carry + head >= ZERO_RUN_SAMPLES:
            runs.append((carry_first if carry else start, carry + head, head))
        # A run of ZERO_RUN_SAMPLES inside the block holds eight samples in a row of every (ZERO_RUN_SAMPLES / 8)th:
        # only where those are 0 are the block's runs measured.
        rows = raw[::ZERO_RUN_SAMPLES // 8] == 0
        for shift in (1, 2, 4):  # eight in a row: pairs, fours, eights
            rows = rows[:-shift] & rows[shift:]
        if rows.any():
            zero = raw == 0
            bounds = np.concatenate(([0], np.flatnonzero(zero[1:] != zero[:-1]) + 1, [n]))  # runs of one kind
            of_zeros = zero[bounds[:-1]]
            starts, stops = bounds[:-1][of_zeros], bounds[1:][of_zeros]
            long = (stops - starts >= ZERO_RUN_SAMPLES) & (starts > 0) & (stops < n)  # edge runs measured apart
            runs += [(start + a, b - a, b - a) for a, b in zip(starts[long].tolist(), stops[long].tolist())]
        tail = _edge_zeros(raw, from_end=True) if raw[-1] == 0 else 0
        self._carry = (start + n - tail, tail) if tail else (0, 0)
        parts = [part for _first, _length, part in runs] + ([tail] if tail >= ZERO_RUN_SAMPLES else [])
        if parts:  # how often the block's other samples repeat the one before
            inside = sum(part - 1 for part in parts if part)
            self._pairs += n - 1 - inside
            self._repeats += int(np.count_nonzero(raw[1:] == raw[:-1])) - inside
            self.runs += [(first, length) for first, length, _part in runs]

    def unusual(self) -> str | None:
        """The warning's text when the channel read so far holds a run of zero codes its other samples make
        unusual, else None."""
        first, carry = self._carry
        runs = self.runs + ([(first, carry)] if carry >= ZERO_RUN_SAMPLES else [])
        if not runs or self._pairs < ZERO_RUN_SAMPLES or self._repeats > REPEAT_SHARE * self._pairs:
            return None
        first, length = runs[0]
        more = f" and {len(runs) - 1} more such run(s)" if len(runs) > 1 else ""
        return (f"{self.path} [{self.obj}]: {length} samples of code 0 in a row from sample {first}{more}, in a "
                f"channel whose other samples repeat the one before at a rate of {self._repeats / self._pairs:.1%}; "
                f"read as stored: zeroed storage reads like this, check the channel there")


def unusual_gain(gains_uv: np.ndarray, path: str | os.PathLike, obj: str) -> str | None:
    """The warning's text when a region's gains (microvolts per count) leave :data:`USUAL_GAIN_UV`, else None."""
    finite = gains_uv[np.isfinite(gains_uv)]
    if not finite.size:
        return None
    low, high = float(finite.min()), float(finite.max())
    if USUAL_GAIN_UV[0] <= low and high <= USUAL_GAIN_UV[1]:
        return None
    return (f"{path} [{obj}]: sensor gains of {low:.3g} .. {high:.3g} uV per ADC count, outside the usual "
            f"{USUAL_GAIN_UV[0]:g} .. {USUAL_GAIN_UV[1]:g} (Conversion Factors x 10^Exponent); read as stored: "
            f"check the recording's amplitudes if they look scaled")
