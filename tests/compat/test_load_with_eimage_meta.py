"""``load_recording_with_eimage_sta``'s copies of the ``.cmtr``: each unit's ``unit_meta`` and the file's
``metadata/cmtr_meta``, read from the open the load made, equal plain h5py's reading of it; the file is
closed when the step ends, and when it fails."""

from __future__ import annotations

import h5py
import numpy as np


def test_unit_and_file_meta_from_one_open_equal_plain_h5py(tmp_path, monkeypatch):
    import hdmea.io.cmtr as cmtr_module
    from hdmea.pipeline import create_session, load_recording_with_eimage_sta
    from hdmea.io.unit_names import unit_number
    from hdmea.synthetic import SyntheticConfig, generate_recording

    rec = generate_recording(tmp_path / "src", "rec", config=SyntheticConfig.tiny(raw_seconds=0.2), seed=4)
    opened = []
    init = cmtr_module.CmtrFile.__init__

    def counting(self, path, *args, **kwargs):
        opened.append(str(path))
        init(self, path, *args, **kwargs)

    monkeypatch.setattr(cmtr_module.CmtrFile, "__init__", counting)
    session = load_recording_with_eimage_sta(rec.cmcr_path, rec.cmtr_path, session=create_session("rec"),
                                             duration_s=0.1, window_range=(-5, 15))
    # one open for the load, the unit information and the file's attributes
    assert opened == [str(rec.cmtr_path)]
    with h5py.File(rec.cmtr_path, "r") as f:
        root = {name: f.attrs[name] for name in f.attrs}
        sorter = f["Spike Sorter"]
        groups = {int(sorter[g].attrs["UnitID"]): sorter[g] for g in sorter if g.startswith("Unit ")}
        meta = session.metadata["cmtr_meta"]
        assert set(meta) == set(root)
        for name, value in root.items():
            value = value.decode() if isinstance(value, bytes) else value
            assert np.asarray(meta[name]).reshape(-1).tolist() == np.asarray(value).reshape(-1).tolist(), name
        assert session.units
        for unit in session.units:
            table = groups[unit_number(unit)]["Peaks"][()]
            peaks = session.units[unit]["unit_meta"]["peaks_data"]
            assert set(peaks) == {name.lower() for name in table.dtype.names}
            for name in table.dtype.names:
                got = np.asarray(peaks[name.lower()])
                assert got.dtype == table.dtype.fields[name][0]
                np.testing.assert_array_equal(got, table[name])


def test_the_cmtr_is_closed_when_the_step_fails(tmp_path, monkeypatch):
    import hdmea._compat.load_with_eimage as step
    import hdmea.io.cmtr as cmtr_module
    from hdmea.pipeline import create_session, load_recording_with_eimage_sta
    from hdmea.synthetic import SyntheticConfig, generate_recording

    rec = generate_recording(tmp_path / "src", "rec", config=SyntheticConfig.tiny(raw_seconds=0.2), seed=4)
    files = []
    init = cmtr_module.CmtrFile.__init__

    def keeping(self, *args, **kwargs):
        init(self, *args, **kwargs)
        files.append(self)

    class Planted(RuntimeError):
        pass

    def failing(*args, **kwargs):
        raise Planted("the images failed")

    monkeypatch.setattr(cmtr_module.CmtrFile, "__init__", keeping)
    monkeypatch.setattr(step, "compute_eimage_sta", failing)
    try:
        load_recording_with_eimage_sta(rec.cmcr_path, rec.cmtr_path, session=create_session("rec"), duration_s=0.1)
    except Planted:
        pass
    else:
        raise AssertionError("the planted failure did not leave the step")
    assert len(files) == 1 and not files[0].h5.id.valid  # the load's open, closed on the way out
