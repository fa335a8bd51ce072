"""A ``.cmtr`` whose ``Peaks`` compound type is damaged in its object header is refused before any read.

The files are written here with plain h5py (:mod:`tests.mcs_handmade`), then one
field of the stored type is changed in the file's bytes, each accepted by libhdf5
2.0 when it decodes the header: the exponent bias of a cutout column's float (h5py
then reads the 4-byte member as an 8-byte float over its neighbour, and the
conversion corrupts the heap: the SIGSEGV of the peaks read), and the bit offset
of the ``PeakAmplitude`` float (releases before 2.0 also accept members outside
the compound or overlapping).  The reader, the input check in its separate process
and ``hdmea verify`` must all name the table and the member.
"""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from h5stream.errors import FormatError
from h5stream.files import check_stored_type
from hdmea.errors import RecordingFormatError
from hdmea.io.cmtr import CmtrFile
from hdmea.io.mcs import verify_inputs
from tests.mcs_handmade import sensor_id, write_cmtr

PEAKS = "/Spike Sorter/Unit 1/Peaks"
AMPLITUDES = np.linspace(-50.0, -10.0, 400, dtype=np.float32)


def _cmtr(path):
    write_cmtr(path, [dict(unit_id=1, sensor_id=sensor_id(3, 4), row=3, col=4, spikes=np.arange(1, 401))])
    with h5py.File(path, "r+") as f:
        ds = f[PEAKS]
        peaks = ds[...]
        peaks["PeakAmplitude"] = AMPLITUDES
        ds[...] = peaks
    return path


def _damage_float_bit_offset(path, bit_offset: int) -> None:
    """Set the bit offset of the PeakAmplitude member's float type in the stored Peaks type."""
    with h5py.File(path, "r") as f:
        tid = f[PEAKS].id.get_type()
        body = tid.encode()[2:]  # the datatype message as the object header stores it
        member = tid.get_member_type(1).encode()[2:]
    data = bytearray(path.read_bytes())
    assert data.count(body) == 1
    start = data.find(body)
    at = start + body.find(member, body.find(b"PeakAmplitude"))
    # float message: class and flags (4 bytes), size (4), bit offset (2), precision (2), ...
    assert int.from_bytes(data[at + 8:at + 10], "little") == 0
    data[at + 8:at + 10] = bit_offset.to_bytes(2, "little")
    path.write_bytes(bytes(data))
    with h5py.File(path, "r") as f:  # libhdf5 itself takes the damaged type
        assert f[PEAKS].id.get_type().get_member_type(1).get_offset() == bit_offset


CUTOUT_DTYPE = np.dtype([("Timestamp", "<i8"), ("PeakAmplitude", "<f4"), ("IncludePeak", "u1")]
                        + [(f"Cutout {k}", "<f4") for k in range(8)])  # the vendor's packed layout, 45 bytes


def _cmtr_with_cutouts(path):
    """The hand-made .cmtr with the Peaks table of real files: the named columns, then 8 cutout samples."""
    _cmtr(path)
    with h5py.File(path, "r+") as f:
        old = f[PEAKS][...]
        peaks = np.zeros(old.shape, dtype=CUTOUT_DTYPE)
        for name in old.dtype.names:
            peaks[name] = old[name]
        for k in range(8):
            peaks[f"Cutout {k}"] = np.float32(-5.0 * k)
        attrs = dict(f[PEAKS].attrs)
        del f[PEAKS]
        ds = f.create_dataset(PEAKS, data=peaks, chunks=(100,), maxshape=(None,))
        ds.attrs.update(attrs)
    return path


def _damage_cutout_exponent_bias(path, bias: int) -> None:
    """Set the exponent bias of the ``Cutout 1`` member's float type (127 for IEEE single precision)."""
    with h5py.File(path, "r") as f:
        tid = f[PEAKS].id.get_type()
        body = tid.encode()[2:]
        member = tid.get_member_type(4).encode()[2:]
    data = bytearray(path.read_bytes())
    assert data.count(body) == 1
    at = data.find(body) + body.find(member, body.find(b"Cutout 1"))
    # float message: class and flags, size, bit offset, precision, 4 field bytes, then the bias (4 bytes)
    assert int.from_bytes(data[at + 16:at + 20], "little") == 127
    data[at + 16:at + 20] = bias.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with h5py.File(path, "r") as f:  # h5py now reads the 4-byte member as an 8-byte float, over Cutout 2
        assert f[PEAKS].id.get_type().dtype.fields["Cutout 1"][0] == np.dtype("<f8")


def test_damaged_exponent_bias_is_refused_before_the_read(tmp_path, child_env):
    """The damage the fuzz campaign found (one flipped byte: bias 127 read as 224): the peaks read corrupted the
    heap and the process died (SIGSEGV on this table before the fix; "double free or corruption" on the fuzz's
    copy); now the table is refused, in this process and in the input check's."""
    path = _cmtr_with_cutouts(tmp_path / "rec.cmtr")
    with CmtrFile(path) as f:  # undamaged: the planted values
        [unit] = f.read_units(20000.0)
    np.testing.assert_array_equal(unit.waveform, -5.0 * np.arange(8, dtype=np.float32))
    _damage_cutout_exponent_bias(path, 224)
    done = subprocess.run([sys.executable, "-c", (
        "import sys\n"
        "from hdmea.errors import RecordingFormatError\n"
        "from hdmea.io.cmtr import CmtrFile\n"
        "try:\n"
        "    with CmtrFile(sys.argv[1]) as f:\n"
        "        f.read_units(20000.0)\n"
        "except RecordingFormatError as exc:\n"
        "    print(exc)\n"), str(path)], capture_output=True, text=True, env=child_env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert PEAKS in done.stdout and "member 'Cutout 2'" in done.stdout and "stored data type is damaged" in done.stdout
    [error] = verify_inputs([path])
    assert isinstance(error, RecordingFormatError) and "stored data type is damaged" in str(error)


@pytest.fixture
def damaged(tmp_path):
    path = _cmtr(tmp_path / "rec.cmtr")
    _damage_float_bit_offset(path, 40000)
    return path


def test_reader_refuses_the_damaged_type(damaged):
    with pytest.raises(RecordingFormatError) as info:
        with CmtrFile(damaged) as f:
            f.read_units(20000.0)
    message = str(info.value)
    assert str(damaged) in message and PEAKS in message
    assert "PeakAmplitude" in message and "bit offset 40000" in message


def test_input_check_refuses_it_in_its_own_process(damaged):
    [error] = verify_inputs([damaged])
    assert isinstance(error, RecordingFormatError)
    assert PEAKS in str(error) and "PeakAmplitude" in str(error)


def test_verify_command_refuses_it(damaged, child_env):
    done = subprocess.run([sys.executable, "-m", "hdmea", "verify", str(damaged)], capture_output=True, text=True,
                          env=child_env, check=False, timeout=180)
    assert done.returncode != 0
    assert "stored data type is damaged" in done.stdout + done.stderr


def test_undamaged_table_reads_its_values(tmp_path):
    """The same file before the damage: the values planted above, read back exactly."""
    path = _cmtr(tmp_path / "rec.cmtr")
    assert verify_inputs([path]) == [None]
    with CmtrFile(path) as f:
        [unit] = f.read_units(20000.0)
    np.testing.assert_array_equal(unit.peak_amplitudes, AMPLITUDES)
    np.testing.assert_array_equal(unit.spike_times, np.arange(1, 401))


def _compound(fields, size):
    tid = h5py.h5t.create(h5py.h5t.COMPOUND, size)
    for name, offset, member in fields:
        tid.insert(name, offset, h5py.h5t.py_create(np.dtype(member)))
    return tid


def test_check_stored_type_accepts_sound_layouts():
    """No false alarm on sound tables: flat, nested compounds, array members, packed and padded."""
    ok = _compound([(b"t", 0, "<i8"), (b"a", 8, "<f4"), (b"i", 12, "u1")], 13)
    check_stored_type(ok, "x.cmtr", "/P")
    padded = _compound([(b"t", 0, "<i8"), (b"a", 12, "<f4")], 24)
    check_stored_type(padded, "x.cmtr", "/P")
    nested = h5py.h5t.create(h5py.h5t.COMPOUND, 26)
    nested.insert(b"first", 0, ok)
    nested.insert(b"second", 13, ok)
    check_stored_type(nested, "x.cmtr", "/P")
    check_stored_type(h5py.h5t.py_create(np.dtype([("cut", "<f4", (8,)), ("n", "<i2")])), "x.cmtr", "/P")
    check_stored_type(h5py.h5t.py_create(np.dtype([("x", ">f8"), ("h", "<f2"), ("b", "?")])), "x.cmtr", "/P")


def test_verify_command_accepts_the_vendor_acquisition_link(tmp_path, child_env):
    """A valid .cmtr links /Acquisition to its .cmcr (never followed); ``hdmea verify`` took it for an unsafe link."""
    path = _cmtr(tmp_path / "rec.cmtr")
    with h5py.File(path, "r+") as f:
        f["Acquisition"] = h5py.ExternalLink("rec.cmcr", "/Acquisition")
    assert verify_inputs([path]) == [None]
    done = subprocess.run([sys.executable, "-m", "hdmea", "verify", str(path)], capture_output=True, text=True,
                          env=child_env, check=False, timeout=180)
    assert done.returncode == 0, done.stderr
    # an MCS file is read whole but carries no checksums: "readable", not "OK" (e2c6ed5)
    assert done.stdout.startswith(f"{path}: readable: all ") and "carries no checksums" in done.stdout
    with h5py.File(path, "r+") as f:  # any other external link is still refused
        f["Other"] = h5py.ExternalLink("rec.cmcr", "/Acquisition")
    done = subprocess.run([sys.executable, "-m", "hdmea", "verify", str(path)], capture_output=True, text=True,
                          env=child_env, check=False, timeout=180)
    assert done.returncode != 0 and "/Other" in done.stderr
