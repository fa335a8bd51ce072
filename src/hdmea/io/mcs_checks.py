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
* **voltages** (:func:`check_voltages`): a spike's amplitude and its mean cutout are
  finite, at most :data:`MAX_VOLTAGE` in magnitude (a volt in microvolts, far past
  any electrode's range whichever unit the file uses) and, when not zero, at least
  :data:`MIN_VOLTAGE` (no ADC count times a gain comes near it).
* **unusual values** (:func:`unusual_gain`): a sensor gain outside
  :data:`USUAL_GAIN_UV` microvolts per count is what the format allows but recordings
  rarely hold: it is read, with a :class:`~hdmea.errors.UnusualVendorValueWarning` that
  the recording keeps.
* **ADC levels** (:func:`check_adc_levels`): a light-reference sample lies inside the
  ADC's range, ``-2**(ADCBits - 1) .. 2**ADCBits - 1`` (signed or unsigned codes),
  where ``ChannelMeta`` states ``ADCBits``.

Each violation is a :class:`~hdmea.errors.RecordingFormatError` naming the file, the
object (table, column, row), what was expected, what was found and what to do.
"""

from __future__ import annotations

import os

import numpy as np

from hdmea.errors import RecordingFormatError

__all__ = ["PEAKS_COLUMNS", "PEAK_CUTOUT_COLUMN", "UNITS_COLUMNS", "UNITS_MEASURE_COLUMN", "META_COLUMNS",
           "SENSOR_DATA_TYPE", "ANALOG_DATA_TYPE", "MAX_VOLTAGE", "MIN_VOLTAGE", "check_first_peak", "USUAL_GAIN_UV", "unusual_gain", "check_columns", "check_stored_dtype", "check_voltages",
           "check_adc_levels"]

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

#: Sensor gains (microvolts per ADC count) recordings usually hold; one outside is read, with a warning.
USUAL_GAIN_UV = (0.01, 100.0)

#: Largest magnitude of a spike amplitude or cutout sample (1 V in microvolts; 1e6 V if the file uses volts).
MAX_VOLTAGE = 1e6
#: Smallest magnitude of a non-zero amplitude (a byte-swapped float lands far below it).
MIN_VOLTAGE = 1e-20

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


def check_adc_levels(raw: np.ndarray, bits: float | None, path: str | os.PathLike, obj: str, start: int) -> None:
    """Refuse a block ``raw`` of ADC codes (first sample ``start``) outside an ADC of ``bits`` bits."""
    if bits is None or not raw.size or raw.dtype.kind not in "iu":
        return
    low, high = -(1 << (int(bits) - 1)), (1 << int(bits)) - 1
    lo, hi = int(raw.min()), int(raw.max())
    if low <= lo and hi <= high:
        return
    i = int(np.flatnonzero((raw < low) | (raw > high))[0])
    raise RecordingFormatError(
        "analog sample outside the ADC's range", path=path, obj=f"{obj} sample {start + i}",
        expected=f"{low} .. {high} ({int(bits)}-bit codes, signed or unsigned; ChannelMeta ADCBits)",
        found=str(raw.reshape(-1)[i].item()), hint=_RESTORE,
    )


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
