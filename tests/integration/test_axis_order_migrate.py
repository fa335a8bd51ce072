"""`hdmea migrate` finds an old archive's transposed electrical images by their footprints and stores them the right
way round, with a record; an option keeps them.  Archives are written here with the zarr library."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from hdmea.cli import main  # noqa: E402
from hdmea.interop.zarr_migrate import migrate  # noqa: E402

# 1-based (row, col) of the units; the last lies on the diagonal (tells nothing), the one before has few spikes
UNITS = [(10, 40), (25, 52), (50, 14), (33, 61), (58, 30), (12, 20), (40, 8), (30, 30), (21, 35)]
N_SPIKES = [40, 35, 50, 22, 60, 41, 33, 45, 5]


def _image(row, col, rng, *, transposed):
    image = rng.normal(0.0, 2.0, size=(50, 65, 65)).astype(np.float32)
    r, c = (col - 1, row - 1) if transposed else (row - 1, col - 1)
    image[10, r, c] -= 120.0
    image[11, r, c] -= 60.0
    for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        if 0 <= r + dr < 65 and 0 <= c + dc < 65:
            image[10, r + dr, c + dc] -= 40.0
    return image


def write_archive(path, *, transposed, seed=0):
    """An archive of the previous store whose images were written by a [row, col] reading of [col, row] frames."""
    rng = np.random.default_rng(seed)
    root = zarr.open_group(str(path), mode="w")
    root.attrs.update(dataset_id="OLD001", stage1_completed=True)
    units = root.create_group("units")
    images = {}
    for k, ((row, col), n) in enumerate(zip(UNITS, N_SPIKES)):
        uid = f"unit_{k:03d}"
        g = units.create_group(uid)
        g.create_dataset("spike_times", data=np.arange(n, dtype=np.uint64) * 1000, dtype=np.uint64)
        g.attrs.update(row=row, col=col, global_id=k + 1, spike_count=n)
        feature = g.create_group("features").create_group("eimage_sta")
        images[uid] = _image(row, col, rng, transposed=transposed)
        feature.create_dataset("data", data=images[uid], chunks=(10, 65, 65))
        feature.attrs.update(n_spikes=n, version="1.0.0", window=[-10, 40])
    return images


def _trough_on_target(path) -> tuple[int, int]:
    hits = n = 0
    with h5py.File(path, "r") as f:
        for k, ((row, col), spikes) in enumerate(zip(UNITS, N_SPIKES)):
            if spikes < 20:
                continue
            image = f[f"units/unit_{k:03d}/features/eimage_sta/data"][()]
            _t, r, c = np.unravel_index(np.argmin(image), image.shape)
            n += 1
            hits += max(abs(r - (row - 1)), abs(c - (col - 1))) <= 1
    return hits, n


def _record(path) -> dict:
    with h5py.File(path, "r") as f:
        g = f["pipeline/migration/eimage_orientation"]
        out = {k: g[k][()] for k in g}
        out.update(g.attrs)
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in out.items()}


def test_transposed_images_are_stored_the_right_way_round(tmp_path, capsys):
    stored = write_archive(tmp_path / "old.zarr", transposed=True)
    out = tmp_path / "new.h5"
    assert main(["migrate", str(tmp_path / "old.zarr"), str(out)]) == 0
    assert "they were transposed; stored the right way round" in capsys.readouterr().out
    hits, n = _trough_on_target(out)
    assert n == 8 and hits / n >= 0.9
    record = _record(out)
    assert record["action"] == "transposed" and int(record["n_units_tested"]) == 7  # 1 diagonal, 1 few spikes
    assert float(record["fraction_transposed"]) == 1.0 and float(record["fraction_as_stored"]) == 0.0
    with h5py.File(out, "r") as f:
        g = f["units/unit_000/features/eimage_sta"]
        np.testing.assert_array_equal(g["data"][()], np.swapaxes(stored["unit_000"], 1, 2))
        assert bool(np.asarray(g.attrs["migration_transposed"]).reshape(-1)[0])


def test_the_option_keeps_them_and_right_images_are_left_alone(tmp_path):
    stored = write_archive(tmp_path / "old.zarr", transposed=True)
    kept = migrate(tmp_path / "old.zarr", tmp_path / "kept.h5", keep_eimage_orientation=True)
    assert kept.eimage_orientation["action"].startswith("kept transposed")
    with h5py.File(tmp_path / "kept.h5", "r") as f:
        np.testing.assert_array_equal(f["units/unit_000/features/eimage_sta/data"][()], stored["unit_000"])
        assert "migration_transposed" not in f["units/unit_000/features/eimage_sta"].attrs
    assert _trough_on_target(tmp_path / "kept.h5") == (1, 8)  # only the unit on the diagonal

    right = write_archive(tmp_path / "right.zarr", transposed=False, seed=1)
    result = migrate(tmp_path / "right.zarr", tmp_path / "right.h5")
    assert result.eimage_orientation["action"] == "kept"
    assert result.eimage_orientation["fraction_as_stored"] == 1.0
    with h5py.File(tmp_path / "right.h5", "r") as f:
        np.testing.assert_array_equal(f["units/unit_000/features/eimage_sta/data"][()], right["unit_000"])
    hits, n = _trough_on_target(tmp_path / "right.h5")
    assert hits == n == 8
