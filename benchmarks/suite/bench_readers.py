"""Loading units from a .cmtr: our bulk reader against the vendor reader's per-unit calls.

Full size: a synthetic ``.cmtr`` with 400 units and about 3 million peaks (the
lab's moderate stimulus, 260 s; 40-sample float32 cutouts; about 15% of peaks
excluded).  Ours is ``hdmea.io.cmtr.read_units`` (spike samples of included peaks,
mean waveform, position, quality measures).  The peer is McsPyDataTools
(``McsPy.McsCMOSMEA``) doing the same per unit: ``get_peaks_timestamps()``,
``get_peaks_cutouts().mean(0)``, the unit's sensor coordinates and
``get_measure`` of each quality measure.  The vendor's cutout call walks peaks in
Python, so at full size it is timed on a subset of units and scaled per peak to
all units (said in ``details``).  Both read the same file from a warm page cache
(one untimed read first); results are compared unit by unit.

Run at full size: ``python -c "from benchmarks.suite.bench_readers import main; main('full')"``.
"""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np

from benchmarks.harness import Row, interleave, is_noisy, scratch_dir
from hdmea.io.cmtr import read_units
from hdmea.synthetic import SyntheticConfig, generate_recording

SIZES = {
    # units, base rate range (Hz), vendor units timed, rounds (ours), rounds (vendor)
    "small": (12, (8.0, 12.0), 12, 2, 1),
    "full": (400, (12.0, 17.0), 40, 3, 2),
}
FS = 20000.0


def make_cmtr(directory: Path, n_units: int, rates: tuple[float, float], *, lab_stimulus: bool = True):
    """A synthetic recording without raw data; ``lab_stimulus`` uses the 260 s moderate stimulus."""
    make = SyntheticConfig.moderate if lab_stimulus else SyntheticConfig.tiny
    cfg = make(n_units=n_units, n_silent_units=1, base_rate_hz=rates, raw_seconds=0.0, write_source=False)
    return generate_recording(directory, "bench", config=cfg, seed=1)


def _vendor_units(path: Path, unit_ids=None):
    from McsPy import McsCMOSMEA

    data = McsCMOSMEA.McsCMOSMEAData(str(path))
    try:
        sorter = data.Spike_Sorter
        units = sorter.get_units_by_id()
        measures = sorter.get_unit_measures()
        out = {}
        for u in units:
            uid = int(u._unit_entity_unitID)
            if unit_ids is not None and uid not in unit_ids:
                continue
            ts = u.get_peaks_timestamps()
            spikes = np.rint(np.asarray(ts, dtype=np.float64) * FS / 1e6).astype(np.uint64)
            wave = u.get_peaks_cutouts().mean(axis=0) if ts.size else None
            row, col = (int(x) for x in u._unit_entity_coordinates)
            quality = {m: float(u.get_measure(m)) for m in measures}
            out[uid] = (spikes, wave, row, col, quality)
        return out
    finally:
        data.h5_file.close()


def _ours(path: Path):
    return {u.unit_id: u for u in read_units(path, FS)}


def _check(ours, vendor) -> None:
    for uid, (spikes, wave, row, col, quality) in vendor.items():
        o = ours[uid]
        if not np.array_equal(o.spike_times, spikes) or (o.row, o.col) != (row, col):
            raise AssertionError(f"unit {uid}: spike times or position differ from the vendor reader")
        if wave is not None and not np.allclose(o.waveform, wave, rtol=1e-4, atol=1e-3):
            raise AssertionError(f"unit {uid}: waveform differs from the vendor reader")
        if any(abs(o.quality[k] - v) > 1e-9 * max(1.0, abs(v)) for k, v in quality.items()):
            raise AssertionError(f"unit {uid}: quality measures differ")


def _peak_counts(path: Path) -> dict[int, int]:
    with h5py.File(path, "r") as f:
        sorter = f["Spike Sorter"]
        return {int(sorter[k].attrs["UnitID"]): sorter[k]["Peaks"].shape[0] for k in sorter if k.startswith("Unit ")}


def run(size: str = "small") -> list[Row]:
    n_units, rates, n_vendor, rounds, vendor_rounds = SIZES[size]
    with scratch_dir() as tmp:
        t0 = time.perf_counter()
        rec = make_cmtr(Path(tmp), n_units, rates, lab_stimulus=size == "full")
        generate_s = time.perf_counter() - t0
        path = rec.cmtr_path
        peaks = _peak_counts(path)
        total_peaks = sum(peaks.values())
        ids = sorted(peaks)
        subset = set(ids[:: max(1, len(ids) // n_vendor)][:n_vendor])
        subset_peaks = sum(peaks[u] for u in subset)

        ours = _ours(path)  # warms the page cache
        _check(ours, _vendor_units(path, subset))
        t = interleave({"ours": lambda: _ours(path), "vendor": lambda: _vendor_units(path, subset)}, vendor_rounds)
        ours_t, vendor_t = t["ours"], t["vendor"]
    scale = total_peaks / subset_peaks
    vendor_all = vendor_t.min * scale
    scaled = len(subset) < len(ids)
    note = (f"vendor timed on {len(subset)} of {len(ids)} units ({subset_peaks} of {total_peaks} peaks) and "
            f"scaled by peaks x{scale:.2f}; " if scaled else "vendor timed on all units; ")
    return [Row(
        benchmark=f"load units from .cmtr ({len(ids)} units, {total_peaks} peaks)",
        peer="McsPyDataTools per-unit calls",
        peer_value=vendor_all, ours=ours_t.min, unit="s", ratio=vendor_all / ours_t.min, goal=20.0,
        details=(note + f"ours {ours_t}; vendor {vendor_t} (unscaled); warm page cache; "
                 f"generating the file took {generate_s:.1f} s; results compared unit by unit"),
        peer_median=vendor_t.median * scale, ours_median=ours_t.median, rounds=len(ours_t.rounds),
        noisy=is_noisy(ours_t, vendor_t), before=ours_t.before, after=ours_t.after,
    )]


def test_bench_readers_small():
    rows = run("small")
    assert len(rows) == 1 and rows[0].ours > 0 and rows[0].peer_value > 0


def test_bench_readers_agree_with_vendor(tmp_path):
    rec = make_cmtr(tmp_path, 4, (3.0, 4.0), lab_stimulus=False)
    _check(_ours(rec.cmtr_path), _vendor_units(rec.cmtr_path))


if __name__ == "__main__":  # python -m benchmarks.suite.bench_readers [small|full]
    from benchmarks.harness import main

    main(run)
