"""Text of a vendor file that is not UTF-8: replacement characters and a warning, never lone surrogates.

A ``.cmcr`` written here with plain h5py (:mod:`tests.mcs_handmade`) gets a root
``DateTime`` stored as variable-length UTF-8 text holding the bytes 0xff 0xfe;
h5py hands such text over with lone surrogates, which the reader returned, the
store wrote into ``/metadata/acquisition/DateTime`` and read back so.  The
date is informative only: it is kept with U+FFFD and a warning names the file and
the attribute.  An identity attribute that does not decode is a typed error.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hdmea.errors import RecordingFormatError, VendorTextWarning
from hdmea.io.cmcr import CmcrFile
from tests.mcs_handmade import Region, sensor_id, write_cmcr, write_cmtr

FRAMES = 400
DAMAGED = b"2026-01-01 12:00:00 \xff\xfe"
EXPECTED = "2026-01-01 12:00:00 \ufffd\ufffd"


def _pair(tmp_path):
    cmcr, cmtr = tmp_path / "hand.cmcr", tmp_path / "hand.cmtr"
    write_cmcr(cmcr, [Region(1, 1, 4, 4)], np.zeros((FRAMES, 65, 65), dtype=np.int64))
    write_cmtr(cmtr, [dict(unit_id=1, sensor_id=sensor_id(2, 3), row=2, col=3, spikes=np.arange(10, 300, 20))],
               duration_us=FRAMES * 50)
    with h5py.File(cmcr, "r+") as f:
        del f.attrs["DateTime"]
        f.attrs.create("DateTime", DAMAGED, dtype=h5py.string_dtype("utf-8"))
        assert f.attrs["DateTime"] == DAMAGED.decode("utf-8", "surrogateescape")  # what h5py hands over
    return cmcr, cmtr


def _no_surrogates(text: str) -> bool:
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def test_reader_replaces_and_warns_naming_the_attribute(tmp_path):
    cmcr, _ = _pair(tmp_path)
    with pytest.warns(VendorTextWarning, match=r"\[/@DateTime\]: the text is not valid UTF-8") as caught:
        with CmcrFile(cmcr) as f:
            metadata = f.metadata()
    assert metadata["DateTime"] == EXPECTED
    assert str(cmcr) in str(caught[0].message)
    assert metadata["ProgramName"] == "CMOS-MEA-Control"  # valid text is untouched


def test_store_keeps_the_replaced_text(tmp_path):
    from hdmea.io.hdf5_store import decode_node, node_from_h5, open_recording_hdf5
    from hdmea.pipeline import load_recording

    cmcr, cmtr = _pair(tmp_path)
    out = tmp_path / "hand.h5"
    with pytest.warns(VendorTextWarning):
        load_recording(cmcr, cmtr, output_path=out, waveforms=False, sensor_axis_order="col_row")
    with h5py.File(out, "r") as f:  # the stored bytes, read by plain h5py
        assert f["metadata/acquisition/DateTime"][0] == EXPECTED.encode("utf-8")
    with open_recording_hdf5(out) as f:  # and what our reader gives back
        again = decode_node(node_from_h5(f["metadata/acquisition"]))
    assert again["DateTime"] in (EXPECTED, [EXPECTED])


def test_identity_text_that_does_not_decode_is_a_typed_error(tmp_path):
    cmcr, _ = _pair(tmp_path)
    with h5py.File(cmcr, "r+") as f:
        del f.attrs["ProgramName"]
        f.attrs.create("ProgramName", b"CMOS-MEA-Contr\xf6l", dtype=h5py.string_dtype("utf-8"))
    with pytest.raises(RecordingFormatError) as info:
        CmcrFile(cmcr)
    message = str(info.value)
    assert "/@ProgramName" in message and "CMOS-MEA-Contr\ufffdl" in message
    assert _no_surrogates(message)


def test_a_sorter_member_name_that_is_not_utf8_is_a_typed_error(tmp_path):
    from hdmea.io.cmtr import SORTER_GROUP, CmtrFile

    cmtr = tmp_path / "names.cmtr"
    write_cmtr(cmtr, [dict(unit_id=1, sensor_id=sensor_id(2, 3), row=2, col=3, spikes=np.arange(10, 300, 20))])
    with h5py.File(cmtr, "r+") as f:
        f[SORTER_GROUP].create_group(b"Unit \xff1")
    with pytest.raises(RecordingFormatError) as caught:
        CmtrFile(cmtr).close()
    message = str(caught.value)
    assert "names.cmtr" in message and "not UTF-8" in message and "Spike Sorter" in message


def test_a_sensor_data_member_name_that_is_not_utf8_is_a_typed_error(tmp_path):
    from hdmea.io.cmcr import SENSOR_GROUP

    cmcr = tmp_path / "names.cmcr"
    write_cmcr(cmcr, [Region(1, 1, 4, 4)], np.zeros((FRAMES, 65, 65), dtype=np.int64))
    with h5py.File(cmcr, "r+") as f:
        f[SENSOR_GROUP].create_group(b"SensorData \xff 1")
    with pytest.raises(RecordingFormatError) as caught:
        with CmcrFile(cmcr) as opened:
            opened.sensor_datasets()
    message = str(caught.value)
    assert "names.cmcr" in message and "not UTF-8" in message and SENSOR_GROUP in message
