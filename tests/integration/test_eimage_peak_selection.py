"""Which peaks an electrical image averages: the sorter's accepted spikes by default, every peak on request.

The ``.cmtr`` marks each row of a unit's ``Peaks`` table with ``IncludePeak``; a 0 is a peak the sorter
judged not to be this unit's spike.  The original pipeline averaged every row of ``Peaks[:spike_limit]``;
``peaks="all"`` reproduces that selection, the default keeps the rejected peaks out.  The counts are checked
against the ``Peaks`` tables read with plain h5py, the images against each other.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hdmea.errors import ConfigError


def _peak_counts(cmtr_path, fs, stop, window):
    """{UnitID: (included, all)} peaks whose window fits [0, stop), from the Peaks tables."""
    counts = {}
    with h5py.File(cmtr_path, "r") as f:
        for name, group in f["Spike Sorter"].items():
            if not name.startswith("Unit "):
                continue
            peaks = group["Peaks"][()]
            samples = np.round(peaks["Timestamp"].astype(np.float64) * fs / 1e6).astype(np.int64)
            fits = (samples + window[0] >= 0) & (samples + window[1] <= stop)
            counts[int(group.attrs["UnitID"])] = (int((fits & (peaks["IncludePeak"] == 1)).sum()), int(fits.sum()))
    return counts


@pytest.mark.slow
def test_the_original_selection_is_a_parameter_and_the_default_keeps_rejected_peaks_out(tiny_recording, tmp_path):
    from hdmea.pipeline import create_session, load_recording
    from hdmea.steps.eimage import compute_eimage_sta

    images, used = {}, {}
    for peaks in ("included", "all"):
        s = create_session("rec", output_dir=None)
        load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, session=s)
        compute_eimage_sta(session=s, peaks=peaks, max_spikes_per_unit=None)
        images[peaks] = {u: np.asarray(s.units[u]["features"]["eimage_sta"]["data"]) for u in s.units.keys()}
        used[peaks] = {int(s.units[u]["unit_num"]): int(s.units[u]["features"]["eimage_sta"]["n_spikes_used"])
                       for u in s.units.keys()}
        fs = float(s.metadata["sampling_rate"])
        stop = int(np.asarray(s.units[next(iter(s.units.keys()))]["features"]["eimage_sta"]["stop_sample"]))
        s.close()
    counts = _peak_counts(tiny_recording.cmtr_path, fs, stop, (-10, 40))
    assert used["included"] == {u: c[0] for u, c in counts.items()}
    assert used["all"] == {u: c[1] for u, c in counts.items()}
    differ = [u for u, (inc, every) in counts.items() if every > inc > 0]
    assert differ, counts  # the synthetic sorter rejects some peaks of most units
    for unit in images["all"]:
        number = int(unit.split("_")[1])
        same = counts[number][0] == counts[number][1]
        assert np.array_equal(images["all"][unit], images["included"][unit], equal_nan=True) == same


def test_an_unknown_selection_is_refused(tiny_recording):
    from hdmea.steps.eimage import compute_eimage_sta

    with pytest.raises(ConfigError, match="peaks"):
        compute_eimage_sta(None, tiny_recording.cmcr_path, peaks="some")
