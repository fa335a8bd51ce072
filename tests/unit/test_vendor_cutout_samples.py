"""Vendor files: the cutout samples of a ``.cmtr``'s included peaks.

Each test writes a ``.cmtr`` by hand (``tests.mcs_handmade``, plain h5py) in the vendor's layout, with
cutouts shaped as a spike sampled at 20 kHz from band-pass-filtered data looks (a trough and a repolarisation
spanning several samples, amplitudes varying from spike to spike, alignment jittered by under a sample,
band-limited noise, now and then a spike of another unit overlapping), reads it undamaged (warnings are
errors in the tests: it reads without any), then flips one bit of one stored sample the way damaged storage
would and checks what the reader makes of it: a lone sample read with an
:class:`~hdmea.errors.UnusualVendorValueWarning` that the recording keeps, a sample past any voltage refused
with a :class:`~hdmea.errors.RecordingFormatError` naming the file, the table, the row and the sample.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hdmea.errors import RecordingFormatError, UnusualVendorValueWarning
from hdmea.io.cmtr import CmtrFile
from hdmea.io.mcs_checks import LONE_SAMPLE_MIN_PEAKS, cutout_template, judge_cutout_rows, rows_off_template


def check_cutout_samples(cutouts, include, path, obj):
    """The three steps of the check on one table, as the reader's numpy path takes them."""
    if not include.any():
        return None
    template, limit, bound = cutout_template(cutouts, include)
    return judge_cutout_rows(cutouts, rows_off_template(cutouts, include, template, bound), template, limit, path, obj)
from tests.mcs_handmade import sensor_id, write_cmtr

FS = 20000.0
N_CUT, PRE = 40, 10
PEAKS = "Spike Sorter/Unit 4/Peaks"


def _spike(t_ms: np.ndarray, width_ms: float) -> np.ndarray:
    """An extracellular spike (negative trough at 0, slower positive repolarisation), peak-normalised."""
    return -np.exp(-t_ms**2 / (2 * width_ms**2)) + 0.3 * np.exp(-(t_ms - 0.5) ** 2 / (2 * 0.25**2))


def real_looking_cutouts(n: int, seed: int, *, amplitude: float = 150.0, width_ms: float = 0.1) -> np.ndarray:
    """``n`` cutouts of 40 samples at 20 kHz (10 before the trough): amplitudes spread by 25%, alignment jittered
    by up to half a sample, noise of 6 uV filtered to 5 kHz (a 4-sample moving average of white noise), and one
    cutout in ten overlapped by another unit's spike somewhere in the cutout."""
    rng = np.random.default_rng(seed)
    t = (np.arange(N_CUT) - PRE) / FS * 1e3  # ms
    jitter = rng.uniform(-0.5, 0.5, n)[:, None] / FS * 1e3
    amps = amplitude * rng.normal(1.0, 0.25, n)[:, None]
    cut = amps * _spike(t[None, :] - jitter, width_ms)
    white = rng.normal(0.0, 12.0, (n, N_CUT + 3))
    cut += (white[:, :-3] + white[:, 1:-2] + white[:, 2:-1] + white[:, 3:]) / 4  # sd 6 uV, band-limited
    other = np.flatnonzero(rng.random(n) < 0.1)
    shift = rng.uniform(-1.0, 1.5, other.size)[:, None]  # ms: the other unit's trough anywhere in the cutout
    cut[other] += rng.uniform(40, 400, (other.size, 1)) * _spike(t[None, :] - shift, 0.08)
    return cut.astype(np.float32)


def _write(path, n: int = 300, seed: int = 0, **shape) -> np.ndarray:
    cutouts = real_looking_cutouts(n, seed, **shape)
    spikes = 50 + 30 * np.arange(n)
    write_cmtr(path, [dict(unit_id=4, sensor_id=sensor_id(10, 20), row=10, col=20, spikes=spikes, cutouts=cutouts)])
    return cutouts


def _flip(path, row: int, sample: int, bit: int) -> tuple[float, float]:
    """Flip bit ``bit`` (0 = lowest of the float32's 4 little-endian bytes) of one stored cutout sample."""
    with h5py.File(path, "a") as f:
        table = f[PEAKS][()]
        before = table[f"Cutout {sample}"][row]
        value = np.array([before], dtype="<f4").view("<u4") ^ np.uint32(1 << bit)
        table[f"Cutout {sample}"][row] = value.view("<f4")[0]
        f[PEAKS][...] = table
    return float(before), float(value.view("<f4")[0])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [dict(), dict(width_ms=0.05, amplitude=1500.0), dict(amplitude=600.0), dict(amplitude=30.0)],
                         ids=["moderate", "narrow-deep", "large", "small"])
def test_real_looking_cutouts_read_without_a_warning(tmp_path, seed, shape):
    path = tmp_path / "rec.cmtr"
    cutouts = _write(path, n=2000, seed=seed, **shape)
    with CmtrFile(path) as f:
        (unit,) = f.read_units(FS)
        assert f.unusual_values == []
    np.testing.assert_allclose(unit.waveform, cutouts.astype(np.float64).mean(axis=0), rtol=1e-5, atol=1e-3)


# the sign, the exponent's top and fifth bits: a trough of about -150 uV reads +150, -1e-37 or -4e4
@pytest.mark.parametrize("bit", [31, 30, 26])
def test_a_flipped_bit_making_a_lone_sample_is_read_with_a_warning_the_recording_keeps(tmp_path, bit):
    from hdmea.pipeline import load_recording

    path = tmp_path / "rec.cmtr"
    _write(path)
    _read_quietly(path)
    trough = int(np.argmin(real_looking_cutouts(300, 0)[57]))
    before, after = _flip(path, 57, trough, bit)
    assert before < -50 and abs(after) < 1e6  # a trough sample, flipped to a value no voltage check refuses
    with pytest.warns(UnusualVendorValueWarning) as caught:
        load_recording(cmtr_path=path, output_path=tmp_path / "rec.h5", sampling_rate=FS,
                       sensor_axis_order="col_row")
    (text,) = [str(w.message) for w in caught if w.category is UnusualVendorValueWarning]
    assert str(path) in text and f"/{PEAKS}" in text and "lone cutout sample" in text
    assert f"sample {trough} of peak row 57 is {after:.6g}" in text and "beside" in text
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        kept = [v.decode() if isinstance(v, bytes) else str(v)
                for v in np.atleast_1d(f["metadata/spike_sorting/unusual_values"][()])]
    assert kept == [text]


def test_a_lone_sample_of_an_excluded_peak_is_not_read_and_not_warned_of(tmp_path):
    path = tmp_path / "rec.cmtr"
    _write(path)
    with h5py.File(path, "a") as f:
        table = f[PEAKS][()]
        table["IncludePeak"][57] = 0
        f[PEAKS][...] = table
    _flip(path, 57, PRE, 31)
    _read_quietly(path)


def test_a_sample_past_any_voltage_is_refused_though_the_mean_hides_it(tmp_path):
    path = tmp_path / "rec.cmtr"
    _write(path)
    with h5py.File(path, "a") as f:
        table = f[PEAKS][()]
        table["Cutout 3"][12] = 2.7e7  # the mean of 300 cutouts holds 9e4, inside a volt
        f[PEAKS][...] = table
    _refused(path, 12, 3, 2.7e7)


def test_the_check_alone_on_planted_samples():
    """The check on arrays: the planted lone sample is named (row, sample, value, neighbours), a neighbour moved
    with it makes it no longer lone, and a unit of fewer than the minimum of peaks is not searched."""
    cut = real_looking_cutouts(500, 7)
    include = np.ones(500, dtype=bool)
    assert check_cutout_samples(cut, include, "f.cmtr", "/P") is None
    planted = cut.copy()
    planted[321, 20] = -2871.0
    text = check_cutout_samples(planted, include, "f.cmtr", "/P")
    left, right = planted[321, 19], planted[321, 21]
    assert text.startswith("f.cmtr [/P]: a lone cutout sample: sample 20 of peak row 321 is -2871 beside "
                           f"{left:.6g} and {right:.6g}")
    planted[321, 21] = -2000.0  # two samples far off: a shape, not a lone sample
    assert check_cutout_samples(planted, include, "f.cmtr", "/P") is None
    few = cut[:LONE_SAMPLE_MIN_PEAKS - 1].copy()
    few[2, 20] = -2871.0
    assert check_cutout_samples(few, np.ones(few.shape[0], bool), "f.cmtr", "/P") is None


def _read_quietly(path) -> None:
    with CmtrFile(path) as f:
        f.read_units(FS)
        assert f.unusual_values == []


def _refused(path, row: int, sample: int, value: float) -> None:
    with pytest.raises(RecordingFormatError) as err:
        with CmtrFile(path) as f:
            f.read_units(FS)
    text = str(err.value)
    assert str(path) in text and f"/{PEAKS} row {row} sample {sample}" in text and "implausible cutout sample" in text
    assert repr(float(np.float32(value))) in text
