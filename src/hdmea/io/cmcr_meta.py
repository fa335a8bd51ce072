"""Plausibility checks and parsing of the meta tables of an MCS ``.cmcr``.

* :func:`check_meta_table`: the scaling and region columns of ``ChannelMeta`` and
  ``SensorMeta`` hold finite, plausible numbers and a known ``Unit``.
* :func:`meta_row`, :func:`meta_field`, :func:`first_meta_field`: one row of a meta table
  and its values as plain python values.
* :func:`sensor_region`: a raw sensor dataset's region on the 65 x 65 chip from
  its ``Region.*`` columns, checked against the stored shape;
  :func:`orders_fitting_region`: which readings of the stored frame (``[col, row]``,
  ``[row, col]``) fit those columns (the shape evidence of :mod:`hdmea.io.frame_order`).
* :func:`conversion_factors`: the per-sensor ``Conversion Factors`` text column,
  else the single ``ConversionFactor``, else none.

Every failure is a :class:`RecordingFormatError` naming the file, the table row
or column and what was expected.  :mod:`hdmea.io.cmcr` reads the file with these.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from hdmea.errors import RecordingFormatError
from hdmea.io.mcs import GRID_SIZE, attr_text
from hdmea.io.mcs_checks import META_COLUMNS, adc_range, check_columns

__all__ = ["check_meta_table", "meta_row", "meta_field", "first_meta_field", "sensor_region", "conversion_factors",
           "region_fields", "region_extent", "orders_fitting_region", "orders_fitting_fields",
           "EXPONENT_RANGE", "KNOWN_UNITS", "DURATION_TOLERANCE"]


#: Powers of ten the MCS software writes for a meta table's ``Exponent`` (pV .. kV).
EXPONENT_RANGE = (-15, 3)
#: Units of analog and sensor streams this reader scales ("" for none).
KNOWN_UNITS = ("V", "A", "Hz", "s", "")
#: Longest sampling tick read (microseconds per sample: 100 Hz).
MAX_TICK_US = 10_000
#: How far samples x Tick may be from ``LB.RecordingDuration`` (besides two ticks).
DURATION_TOLERANCE = 0.01
# Meta-table columns that must hold finite numbers, with the rule each value must follow.
_META_RULES: dict[str, tuple[str, object]] = {
    "Tick": (f"a whole number of microseconds in 1..{MAX_TICK_US} (a sampling rate of 100 Hz .. 1 MHz)",
             lambda v: (v == np.rint(v)) & (v >= 1) & (v <= MAX_TICK_US)),
    "ADCBits": ("an ADC resolution of 1..32 bits", lambda v: (v == np.rint(v)) & (v >= 1) & (v <= 32)),
    "Exponent": (f"an integer power of ten in {EXPONENT_RANGE[0]}..{EXPONENT_RANGE[1]}",
                 lambda v: (v == np.rint(v)) & (v >= EXPONENT_RANGE[0]) & (v <= EXPONENT_RANGE[1])),
    "ConversionFactor": ("a positive factor", lambda v: v > 0),
    "ADZero": ("a finite ADC zero", lambda v: np.ones(v.shape, dtype=bool)),
    "ChannelID": ("a positive integer id", lambda v: (v == np.rint(v)) & (v >= 1)),
    "RegionID": ("a positive integer id", lambda v: (v == np.rint(v)) & (v >= 1)),
    **{name: ("a 1-based chip coordinate in 1..65", lambda v: (v == np.rint(v)) & (v >= 1) & (v <= GRID_SIZE))
       for name in ("Region.Left", "Region.Top", "Region.Right", "Region.Bottom",
                    "RegionLeft", "RegionTop", "RegionRight", "RegionBottom")},
}


def check_meta_table(table: np.ndarray, path: str | os.PathLike, obj: str) -> np.ndarray:
    """``table`` if its scaling and region columns are plausible, else a :class:`RecordingFormatError`.

    Checked: a compound table whose scaling and region columns are little-endian
    numbers of the vendor's widths (:data:`hdmea.io.mcs_checks.META_COLUMNS`);
    ``Tick`` a whole number of microseconds in 1..:data:`MAX_TICK_US`; ``Exponent``
    an integer in :data:`EXPONENT_RANGE`; ``ConversionFactor > 0``; ``ADCBits`` in
    1..32; ``ADZero`` finite and, with ``ADCBits``, a code of that ADC
    (:func:`hdmea.io.mcs_checks.adc_range`); ids positive integers; ``Region.*`` in 1..65.  Every value must be a finite
    number.  No checksum protects vendor files, so these catch damaged scaling
    before it silently rescales the data.
    """
    if table.dtype.names is None:
        raise RecordingFormatError("meta table is not a table", path=path, obj=obj,
                                   expected="a compound table with named columns", found=str(table.dtype))
    check_columns(table.dtype, META_COLUMNS, path, obj)  # little-endian numbers of the vendor's widths
    if "Unit" in table.dtype.names:
        for row, unit in enumerate(table["Unit"]):
            text = attr_text(unit) if isinstance(unit, (bytes, np.bytes_)) else str(unit)
            if text not in KNOWN_UNITS:
                raise RecordingFormatError(
                    "unknown unit in the meta table", path=path, obj=f"{obj} row {row} column 'Unit'",
                    expected=" or ".join(repr(u) for u in KNOWN_UNITS), found=repr(text),
                    hint="the file is damaged, or its unit is one this reader does not scale",
                )
    for name, (expected, rule) in _META_RULES.items():
        if name not in table.dtype.names:
            continue
        column = table[name]
        if column.dtype.kind not in "iuf" or column.ndim != 1:
            raise RecordingFormatError(
                f"meta column {name!r} does not hold numbers", path=path, obj=f"{obj} column {name!r}",
                expected=expected, found=f"dtype {column.dtype}",
            )
        values = column.astype(np.float64)
        good = np.isfinite(values)
        good[good] = np.asarray(rule(values[good]), dtype=bool)
        if not good.all():
            row = int(np.flatnonzero(~good)[0])
            raise RecordingFormatError(
                f"implausible {name} in the meta table", path=path, obj=f"{obj} row {row} column {name!r}",
                expected=expected, found=repr(column[row].item()),
                hint="the file is damaged; restore it from the acquisition computer",
            )
    if "ADZero" in table.dtype.names and "ADCBits" in table.dtype.names:
        # the ADC's zero is one of its codes
        for row, (zero, bits) in enumerate(zip(table["ADZero"].tolist(), table["ADCBits"].tolist())):
            low, high = adc_range(int(bits))
            if not low <= zero <= high:
                raise RecordingFormatError(
                    "ADC zero outside the ADC's range", path=path, obj=f"{obj} row {row} column 'ADZero'",
                    expected=f"a code in {low} .. {high} ({int(bits)}-bit, signed or unsigned; column 'ADCBits')",
                    found=repr(zero), hint="the file is damaged; restore it from the acquisition computer",
                )
    return table


def meta_row(table: np.ndarray, key: str, value) -> np.void | None:
    """The meta row whose ``key`` is ``value``; a table without that column describes all rows by its first."""
    if table is None or table.size == 0:
        return None
    if table.dtype.names is None or key not in table.dtype.names:
        return table[0]
    hit = np.flatnonzero(table[key] == value)
    return table[hit[0]] if hit.size else None


def first_meta_field(row, names, default=None):
    """The value of the first of ``names`` that ``row`` holds, else ``default``."""
    for name in names:
        value = meta_field(row, name, None)
        if value is not None:
            return value
    return default


def meta_field(row, name, default=None):
    """``row[name]`` as a plain python value (bytes decoded), else ``default`` (also when ``row`` is None)."""
    if row is None or row.dtype.names is None or name not in row.dtype.names:
        return default
    value = row[name]
    if isinstance(value, (bytes, np.bytes_)):
        return attr_text(value)
    return value.item() if hasattr(value, "item") else value


def region_fields(row, swapped: bool = False) -> tuple[int, int, int | None, int | None]:
    """1-based ``(Region.Left, Region.Top, Region.Right, Region.Bottom)`` of a meta row (Left/Top default 1).

    ``swapped=True`` reads a file whose fields are swapped (Left/Right holding the
    rows, Top/Bottom the columns): the result is then the true (left, top, right, bottom).
    """
    left = first_meta_field(row, ("Region.Left", "RegionLeft"), 1)
    top = first_meta_field(row, ("Region.Top", "RegionTop"), 1)
    right = first_meta_field(row, ("Region.Right", "RegionRight"), None)
    bottom = first_meta_field(row, ("Region.Bottom", "RegionBottom"), None)
    out = (int(left), int(top), None if right is None else int(right), None if bottom is None else int(bottom))
    return swap_region_fields(out) if swapped else out


def region_extent(shape: tuple[int, ...], axis_order: str) -> tuple[int, int]:
    """``(n_rows, n_cols)`` of a stored ``(frames, axis 1, axis 2)`` dataset read as ``axis_order``."""
    a1, a2 = int(shape[1]), int(shape[2])
    return (a2, a1) if axis_order == "col_row" else (a1, a2)


def orders_fitting_region(row, shape: tuple[int, ...], swapped: bool = False) -> tuple[str, ...]:
    """The stored frame layouts (``"col_row"``, ``"row_col"``) under which ``shape`` fits its region.

    A reading fits when the region it gives lies on the 65 x 65 chip and, where the
    row has ``Region.Right``/``Region.Bottom``, spans exactly those columns and rows.
    A square region (or one without those fields and room either way) fits both:
    its shape cannot tell them apart.
    """
    return orders_fitting_fields(region_fields(row, swapped), shape)


def orders_fitting_fields(fields: tuple[int, int, int | None, int | None], shape: tuple[int, ...]) -> tuple[str, ...]:
    """:func:`orders_fitting_region` for 1-based ``(left, top, right, bottom)`` (right/bottom may be None)."""
    left, top, right, bottom = fields
    out = []
    for order in ("col_row", "row_col"):
        n_rows, n_cols = region_extent(shape, order)
        if right is not None and bottom is not None and (right - left + 1, bottom - top + 1) != (n_cols, n_rows):
            continue
        if 1 <= left and left + n_cols - 1 <= GRID_SIZE and 1 <= top and top + n_rows - 1 <= GRID_SIZE:
            out.append(order)
    return tuple(out)


def fields_swapped_to_fit(order: str, regions) -> bool:
    """Whether a forced ``order`` reads ``regions`` (``(fields, stored shape)`` each, fields as
    :func:`region_fields` gives them) only with their ``Region.*`` fields swapped.

    False where it fits them as written, or fits them neither way (the read then
    refuses the shape with its reason): a forced order reads every file whose
    shape admits it.
    """
    def fits(swapped: bool) -> bool:
        return all(order in orders_fitting_fields(swap_region_fields(fields) if swapped else fields, shape)
                   for fields, shape in regions)

    return not fits(False) and fits(True)


def swap_region_fields(fields):
    """``(left, top, right, bottom)`` of a file whose fields are swapped (Left/Right holding the rows)."""
    left, top, right, bottom = fields
    return top, left, bottom, right


def sensor_region(row, ds: h5py.Dataset, axis_order: str, path: str | os.PathLike,
                  swapped: bool = False) -> tuple[int, int, int, int]:
    """(0-based chip row offset, col offset, n_rows, n_cols) of one dataset's region.

    ``Region.Left``/``Region.Right`` are 1-based chip columns (x, the stored axis 1
    in the vendor's layout), ``Region.Top``/``Region.Bottom`` 1-based chip rows
    (y, axis 2).  ``axis_order`` is the stored frame layout (``"col_row"`` or
    ``"row_col"``).  Without them the region starts at the chip's corner.
    ``swapped``: the file's fields are swapped (see :func:`region_fields`).
    """
    left, top, right, bottom = region_fields(row, swapped)
    n_rows, n_cols = region_extent(ds.shape, axis_order)
    layout = "[frame, col, row]" if axis_order == "col_row" else "[frame, row, col]"
    fitting = orders_fitting_region(row, ds.shape, swapped)
    other = "row_col" if axis_order == "col_row" else "col_row"
    hint = (f"the shape fits sensor_axis_order={other!r} (or 'auto', which finds it)" if other in fitting
            else "check the SensorMeta row of this region: neither reading of the stored shape fits it")
    if right is not None and bottom is not None:
        want_cols, want_rows = right - left + 1, bottom - top + 1
        if (want_cols, want_rows) != (n_cols, n_rows):
            want = (want_cols, want_rows) if axis_order == "col_row" else (want_rows, want_cols)
            raise RecordingFormatError(
                "sensor data shape disagrees with its region", path=path, obj=ds.name,
                expected=(f"(frames, {want[0]}, {want[1]}) stored as {layout} for Region.Left..Right "
                          f"{left}..{right}, Region.Top..Bottom {top}..{bottom}"),
                found=str(ds.shape), hint=hint,
            )
    if not (1 <= left and left + n_cols - 1 <= GRID_SIZE and 1 <= top and top + n_rows - 1 <= GRID_SIZE):
        raise RecordingFormatError(
            "sensor region lies outside the 65 x 65 chip", path=path, obj=ds.name,
            expected="1-based Region.Left/Top with the region inside 1..65",
            found=f"Region.Left {left}, Region.Top {top}, {n_cols} columns x {n_rows} rows read as {layout}",
            hint=hint,
        )
    return top - 1, left - 1, n_rows, n_cols


def conversion_factors(row, ds: h5py.Dataset, n_sensors: int, path: str | os.PathLike,
                       meta_name: str) -> tuple[np.ndarray | None, float, str]:
    """(per-sensor factors in stored element order or None, single factor, scaling kind).

    ``row`` is the region's row of the sensor meta table ``meta_name`` (or None).
    """
    text = None
    if row is not None and row.dtype.names is not None and "Conversion Factors" in row.dtype.names:
        text = row["Conversion Factors"]
    if text is not None:
        if isinstance(text, (bytes, np.bytes_)):
            text = bytes(text).decode("ascii", errors="replace")
        tokens = str(text).replace("\x00", " ").split()
        if tokens:
            try:
                factors = np.array(tokens, dtype=np.float64)
            except ValueError:
                raise RecordingFormatError(
                    "'Conversion Factors' holds something other than numbers", path=path,
                    obj=f"{meta_name} (region {row['RegionID'] if 'RegionID' in row.dtype.names else '?'}) "
                        f"for {ds.name}",
                    expected="space-separated integers", found=repr(" ".join(tokens[:5]))[:80],
                ) from None
            bad = ~(np.isfinite(factors) & (factors > 0))
            if bad.any():
                raise RecordingFormatError(
                    "'Conversion Factors' holds a factor that is not positive", path=path,
                    obj=f"{meta_name} for {ds.name}",
                    expected="positive factors, one per sensor",
                    found=f"{float(factors[bad][0])!r} at position {int(np.flatnonzero(bad)[0])} (sensor-id order)",
                )
            if factors.size != n_sensors:
                raise RecordingFormatError(
                    "'Conversion Factors' has the wrong number of sensors", path=path,
                    obj=f"{meta_name} for {ds.name}",
                    expected=f"{n_sensors} factors (one per sensor of {ds.shape[1]} x {ds.shape[2]})",
                    found=f"{factors.size} factors",
                )
            return factors, 1.0, "per_sensor"
    single = meta_field(row, "ConversionFactor", None)
    if single is not None:
        return None, float(single), "single"
    return None, 1.0, "unscaled"
