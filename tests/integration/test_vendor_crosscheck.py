"""The vendor's reader (McsPyDataTools, McsPy.McsCMOSMEA) opens our synthetic files and agrees with ours."""

from __future__ import annotations


import numpy as np
import pytest

from hdmea.io.cmcr import CmcrFile
from hdmea.io.cmtr import read_units
from hdmea.io.mcs import sensor_id_to_row_col

McsCMOSMEA = pytest.importorskip("McsPy.McsCMOSMEA")



def test_units_timestamps_positions_and_measures(tiny_recording, tiny_truth):
    vendor = McsCMOSMEA.McsCMOSMEAData(str(tiny_recording.cmtr_path))
    try:
        sorter = vendor.Spike_Sorter
        vendor_units = sorter.get_units_by_id()
        ours = read_units(tiny_recording.cmtr_path, 20000.0)
        assert [int(u._unit_entity_unitID) for u in vendor_units] == [u.unit_id for u in ours]
        assert {"SNR", "Separability", "IsoINN"} <= set(sorter.get_unit_measures())
        for v, o in zip(vendor_units, ours):
            ts = np.asarray(v.get_peaks_timestamps())
            np.testing.assert_array_equal(np.rint(ts * 20000.0 / 1e6).astype(np.uint64), o.spike_times)
            assert int(v._unit_entity_sensorID) == o.sensor_id
            np.testing.assert_array_equal(v._unit_entity_coordinates, [o.row, o.col])
            assert sensor_id_to_row_col(o.sensor_id) == tuple(int(x) for x in v._unit_entity_coordinates)
            assert v.get_measure("SNR") == pytest.approx(o.quality["SNR"])
            if o.spike_count:
                cutouts = v.get_peaks_cutouts()
                np.testing.assert_allclose(cutouts.mean(axis=0), o.waveform, rtol=1e-4, atol=1e-3)
        # and both equal the planted truth
        for o, t in zip(ours, tiny_truth.units.values()):
            np.testing.assert_array_equal(o.spike_times, t.spike_times)
    finally:
        vendor.h5_file.close()


def test_light_reference_and_raw_data(tiny_recording):
    vendor = McsCMOSMEA.McsCMOSMEAData(str(tiny_recording.cmcr_path))
    try:
        acquisition = vendor.Acquisition
        stream = acquisition.ChannelStreams[0]
        vendor_light = np.asarray(stream.ChannelData_1[()])
        tick = int(stream.ChannelMeta.Tick[0])
        sensor = acquisition.SensorStreams[0]
        vendor_raw = np.asarray(sensor.SensorData_1_1[:500])
        zero = float(sensor.SensorMeta.ADZero[0])
        with CmcrFile(tiny_recording.cmcr_path) as f:
            light = f.light_reference()
            assert f.sampling_rate == pytest.approx(1e6 / tick)
            ours_raw = f.read_sensor_frames(0, 500)
        np.testing.assert_array_equal(light["raw_ch1"], vendor_light[0].astype(np.float32))
        np.testing.assert_array_equal(light["raw_ch2"], vendor_light[1].astype(np.float32))
        # the vendor's frames are [col - 1, row - 1]; ours are chip (row, col)
        np.testing.assert_array_equal(ours_raw, vendor_raw.transpose(0, 2, 1).astype(np.float32) - zero)
    finally:
        vendor.h5_file.close()


def test_vendor_follows_the_acquisition_link(tiny_recording):
    vendor = McsCMOSMEA.McsCMOSMEAData(str(tiny_recording.cmtr_path))
    try:
        shape = vendor.Acquisition.Analog_Data.ChannelData_1.shape
        with CmcrFile(tiny_recording.cmcr_path) as f:
            assert shape == (2, f.n_analog_samples())
    finally:
        vendor.h5_file.close()
