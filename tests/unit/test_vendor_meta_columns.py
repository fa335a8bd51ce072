"""A unit's ``unit_meta`` peaks: every column of its ``Peaks`` table, copied out in one pass per run of fields.

:func:`hdmea.io.vendor_meta.table_columns` against the naive twin (``np.array(table[field])`` per field) on
structured arrays of every shape the vendor's tables and damaged ones take; :func:`units_meta` (the tables read
straight from the file into one reused buffer) against plain h5py's read of each column of hand-written
``.cmtr`` files (``tests.mcs_handmade``), contiguous and chunked.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hdmea.errors import RecordingFormatError
from hdmea.io.cmtr import CmtrFile
from hdmea.io.vendor_meta import table_columns, unit_meta, units_meta
from tests.mcs_handmade import sensor_id, write_cmtr


def _naive(table):
    return {name: np.array(table[name]) for name in table.dtype.names}


def _same(found, expected):
    assert list(found) == list(expected)  # the type's field order
    for name, column in expected.items():
        got = found[name]
        assert got.dtype == column.dtype and got.shape == column.shape, name
        assert got.flags.c_contiguous, name
        np.testing.assert_array_equal(got, column, err_msg=name)


def _peaks_dtype(n_cutout, byteorder="<"):
    # packed as the vendor's: Timestamp i8, PeakAmplitude f4, IncludePeak u1, then the cutout samples (unaligned)
    return np.dtype([("Timestamp", byteorder + "i8"), ("PeakAmplitude", byteorder + "f4"), ("IncludePeak", "u1")]
                    + [(f"Cutout {j}", byteorder + "f4") for j in range(n_cutout)])


def _filled(dtype, n, seed):
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=n * dtype.itemsize, dtype=np.uint8)  # any bytes: NaN payloads too
    return raw.view(dtype)


@pytest.mark.parametrize("dtype", [
    _peaks_dtype(40),
    _peaks_dtype(40, ">"),  # a stored type that says big-endian
    _peaks_dtype(1),
    _peaks_dtype(0),
    # fields out of offset order, a gap, a subarray, and two runs of different types back to back
    np.dtype({"names": ["b", "a", "s", "c", "d", "e", "f"],
              "formats": ["<f4", "<f4", ("<i2", (3,)), "<f8", "<f8", "<i4", "<i4"],
              "offsets": [4, 0, 8, 16, 24, 36, 40], "itemsize": 48}),
    # overlapping fields (a damaged type can say anything)
    np.dtype({"names": ["x", "y", "z"], "formats": ["<f4", "<f4", "<u2"], "offsets": [0, 2, 4], "itemsize": 8}),
    # runs of 2-byte and 1-byte fields at odd offsets (the compiled gather's other item sizes)
    np.dtype({"names": ["p", "q", "r", "s", "t", "u"], "formats": ["<u2", "<u2", ">i2", "u1", "u1", "u1"],
              "offsets": [1, 3, 5, 7, 8, 9], "itemsize": 11}),
], ids=["peaks", "big-endian", "one sample", "no samples", "mixed", "overlapping", "narrow"])
@pytest.mark.parametrize("n", [0, 1, 4097])
def test_columns_equal_the_naive_copy_of_each_field(dtype, n):
    table = _filled(dtype, n, seed=n)
    _same(table_columns(table), _naive(table))


def test_the_compiled_gather_refuses_what_it_cannot_copy():
    from h5stream.kernels.peaks import gather_fields

    table = _filled(_peaks_dtype(40), 10, seed=1)
    with pytest.raises(ValueError, match="do not fit in a record"):
        gather_fields(table, 13 + 4, np.empty((40, 10), np.float32))  # one sample past the record's end
    with pytest.raises(ValueError, match="contiguous"):
        gather_fields(table, 13, np.empty((10, 40), np.float32).T)
    with pytest.raises(ValueError, match="1-d contiguous"):
        gather_fields(table[::2], 13, np.empty((40, 5), np.float32))
    out = np.empty((40, 10), np.float32)
    gather_fields(table, 13, out)
    np.testing.assert_array_equal(out, np.stack([table[f"Cutout {j}"] for j in range(40)]))


def test_columns_of_a_strided_table_and_independent_of_it():
    whole = _filled(_peaks_dtype(40), 1001, seed=3)
    table = whole[::3]  # every third row: not contiguous
    expected = _naive(table)
    found = table_columns(table)
    _same(found, expected)
    whole.view(np.uint8)[...] = 0  # the columns are copies: clearing the table changes none
    _same(found, expected)


def _cmtr(path, *, chunks):
    rng = np.random.default_rng(11)
    units = [dict(unit_id=u, sensor_id=sensor_id(3 + u, 5), row=3 + u, col=5,
                  spikes=np.sort(rng.choice(5000, size=n, replace=False)),
                  cutouts=rng.normal(-20, 30, size=(n, 40)))
             for u, n in ((2, 700), (5, 3), (8, 2500))]
    write_cmtr(path, units)
    expected = {}
    with h5py.File(path, "a") as f:
        for u in units:
            name = f"Spike Sorter/Unit {u['unit_id']}/Peaks"
            table = f[name][()]
            table["IncludePeak"][1::4] = 0  # some peaks the sorter excluded
            del f[name]
            f.create_dataset(name, data=table, chunks=chunks and (min(chunks, table.size),))
            expected[u["unit_id"]] = table
    return expected


@pytest.mark.parametrize("chunks", [None, 256], ids=["contiguous", "chunked"])
def test_units_meta_reads_every_column_as_plain_h5py(tmp_path, chunks):
    path = tmp_path / "rec.cmtr"
    tables = _cmtr(path, chunks=chunks)
    with CmtrFile(path) as cmtr:
        metas = dict(units_meta(cmtr, cmtr.unit_ids()))  # all read first: no meta may view the reused buffer
        singles = {u: unit_meta(cmtr, u) for u in cmtr.unit_ids()}
    assert sorted(metas) == sorted(tables)
    for unit, table in tables.items():
        meta = metas[unit]
        _same(meta["peaks_data"], {name.lower(): table[name] for name in table.dtype.names})
        included = table["PeakAmplitude"][table["IncludePeak"] == 1]
        assert meta["peak_amplitudes"].dtype == np.float32
        np.testing.assert_array_equal(meta["peak_amplitudes"], included)
        assert list(meta) == list(singles[unit])  # the same keys, in the same order, as one unit alone
        for key, value in singles[unit].items():
            if isinstance(value, dict):
                _same(meta[key], value)
            else:
                np.testing.assert_array_equal(meta[key], value)


@pytest.mark.parametrize("chunks", [None, 256], ids=["contiguous", "chunked"])
def test_columns_kept_while_the_units_load_equal_those_read_again(tmp_path, chunks):
    path = tmp_path / "rec.cmtr"
    tables = _cmtr(path, chunks=chunks)
    with CmtrFile(path) as cmtr:
        read_again = dict(units_meta(cmtr, cmtr.unit_ids()))
    with CmtrFile(path) as cmtr:
        assert cmtr.take_peak_columns(cmtr.unit_ids()[0]) is None  # nothing kept unless asked
        cmtr.keep_peak_columns()
        cmtr.read_units(20_000.0)
        first = cmtr.unit_ids()[0]
        kept = cmtr.take_peak_columns(first)
        _same(kept, {name: tables[first][name] for name in tables[first].dtype.names})
        assert cmtr.take_peak_columns(first) is None  # handed over once
        cmtr.read_units(20_000.0)
        metas = dict(units_meta(cmtr, cmtr.unit_ids()))
        assert cmtr.take_peak_columns(first) is None  # units_meta took every unit's
    assert sorted(metas) == sorted(read_again)
    for unit, meta in metas.items():
        assert list(meta) == list(read_again[unit])
        _same(meta["peaks_data"], read_again[unit]["peaks_data"])
        for key, value in meta.items():
            if not isinstance(value, dict):
                np.testing.assert_array_equal(value, read_again[unit][key])
                assert np.asarray(value).dtype == np.asarray(read_again[unit][key]).dtype


def _naive_unit_meta(group):
    """unit_meta's fields other than the peaks, as plain h5py gives them (each member through the group)."""
    def value(v):
        if isinstance(v, (bytes, np.bytes_)):
            return bytes(v).decode("utf-8", errors="ignore")
        if isinstance(v, np.ndarray) and v.size == 1:
            v = v.reshape(-1)[0]
        return v.item() if isinstance(v, np.generic) else v

    out = {}
    if "Unit_Info" in group and len(group["Unit_Info"]):
        row = group["Unit_Info"][0]
        out.update({name.lower(): value(row[name]) for name in row.dtype.names})
    out.update({f"attr_{k.lower()}": value(group.attrs[k]) for k in group.attrs})
    for member, key in (("RoiSTAs", "roi_stas"), ("Unmixing", "unmixing_matrix")):
        if member in group and group[member].size:
            out[key] = np.asarray(group[member][()], dtype=np.float32)
    return out


@pytest.mark.parametrize("shape", ["usual", "empty", "scalar", "group", "dangling"])
def test_unit_info_and_small_members_as_plain_h5py(tmp_path, shape):
    path = tmp_path / "rec.cmtr"
    _cmtr(path, chunks=None)
    info = np.zeros(1, dtype=[("UnitID", "<i4"), ("SNR", "<f8"), ("Separability", "<f4"), ("Label", "S8")])
    info[0] = (2, 12.5, 0.75, b"good")
    with h5py.File(path, "a") as f:
        group = f["Spike Sorter/Unit 2"]
        group.create_dataset("Unit_Info", data=info)
        # attributes of every kind h5py reads: fixed-length text (ASCII and UTF-8, padded with NUL or spaces),
        # variable-length text, numbers of several types and byte orders, arrays, a boolean, an empty one
        for name, data, dtype in [
            ("fixed", np.bytes_(b"Unit 2"), None), ("fixed_long", np.bytes_(b"40d23856-2081-56c3-9793"), None),
            ("utf8_fixed", "\u00b5V".encode(), h5py.string_dtype("utf-8", 4)),
            ("variable", "ID text", h5py.string_dtype()), ("big_endian", 7, ">i2"), ("uint", 3, "<u8"),
            ("half", 1.5, "<f2"), ("double", -2.25, "<f8"), ("pair", [1.0, 2.0], "<f4"), ("one", [9], "<i4"),
            ("flag", True, None), ("empty", h5py.Empty("<f4"), None), ("texts", [b"a", b"bc"], None)]:
            group.attrs.create(name, data, dtype=dtype)
        tid = h5py.h5t.C_S1.copy()
        tid.set_size(6)
        tid.set_strpad(h5py.h5t.STR_SPACEPAD)
        space = h5py.h5s.create(h5py.h5s.SCALAR)
        h5py.h5a.create(group.id, b"space_padded", tid, space).write(np.array(b"ab", dtype="S6"), mtype=tid)
        if shape == "usual":
            group.create_dataset("RoiSTAs", data=np.arange(40 * 25, dtype="<f4").reshape(40, 5, 5))
            group.create_dataset("Unmixing", data=np.linspace(-1, 1, 25))  # float64 as written: float32 in meta
        elif shape == "empty":
            group.create_dataset("RoiSTAs", shape=(0, 5, 5), dtype="<f4")
            group.create_dataset("Unmixing", data=h5py.Empty("<f4"))  # a null dataspace
        elif shape == "scalar":
            group.create_dataset("Unmixing", data=np.float32(2.5))
        elif shape == "dangling":  # a soft link to nothing
            group["RoiSTAs"] = h5py.SoftLink("/Spike Sorter/no such object")
            group.create_dataset("Unmixing", data=np.ones(25, dtype="<f4"))
        else:
            group.create_group("RoiSTAs")  # a damaged file: a group where a dataset belongs
    with CmtrFile(path) as cmtr:
        if shape in ("group", "dangling"):  # refused with the file and the unit's group named
            with pytest.raises(RecordingFormatError, match=r"rec\.cmtr.*Unit 2"):
                unit_meta(cmtr, 2)
            return
        meta = unit_meta(cmtr, 2)
    with h5py.File(path, "r") as f:
        expected = _naive_unit_meta(f["Spike Sorter/Unit 2"])
    assert meta["label"] == "good" and meta["snr"].dtype == np.float64
    for key, want in expected.items():
        got = meta[key]
        if isinstance(got, np.ndarray) and got.shape == (1,) and not isinstance(want, np.ndarray):
            got = got[0]
        np.testing.assert_array_equal(got, want, err_msg=key)
        if isinstance(want, np.ndarray):
            assert got.dtype == want.dtype and got.shape == want.shape, key
    assert set(meta) - set(expected) == {"peak_amplitudes", "peaks_data"}
    assert meta["attr_fixed"] == "Unit 2" and meta["attr_variable"] == "ID text"
    with CmtrFile(path) as cmtr:  # the types met in one unit translated once for the next
        together = dict(units_meta(cmtr, [2, 2]))
    assert list(together[2]) == list(meta)
    for key, value in meta.items():
        if not isinstance(value, dict):
            np.testing.assert_array_equal(together[2][key], value, err_msg=key)
