"""Files created with libhdf5's evict-on-close (:func:`h5stream.lowlevel.create_file`): the same to a reader."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5stream import lowlevel
from h5stream.files import create_atomic
from h5stream.native import libhdf5
from h5stream.tree import write as tree_write
from h5stream.tree.nodes import Dataset, Group

lib = libhdf5.library()
pytestmark = pytest.mark.skipif(lib is None, reason="h5py's libhdf5 could not be located")


def _cached_after_closing(f: h5py.File) -> int:
    """Entries in the file's metadata cache after 300 small datasets were written and closed (libhdf5's
    own count: with eviction, the closed datasets' headers have left it)."""
    group = f.create_group("closed")
    for k in range(300):
        group[str(k)] = np.arange(k % 7 + 1)
    return f.id.get_mdc_size()[3]


def _tree() -> Group:
    rng = np.random.default_rng(7)
    trials = Group(children={str(k): Dataset(np.sort(rng.integers(0, 10**6, 5 + k))) for k in range(40)},
                   attrs={"n_trials": 40})
    return Group(children={"units": Group(children={
        f"unit_{u:03d}": Group(children={"trials": trials, "waveform": Dataset(rng.random(40).astype(np.float32)),
                                         "big": Dataset(rng.random(5000)), "label": Dataset("on", attrs={"x": 1.5})})
        for u in range(6)}), "empty": Dataset(np.zeros((0, 2)))}, attrs={"dataset_id": "rec"})


def _contents(path) -> dict:
    """Every object as plain h5py reads it: kind, dtype, shape, layout, values, attributes."""
    found = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                found[name] = ("dataset", obj.dtype.str, obj.shape, obj.id.get_create_plist().get_layout(),
                               obj[()].tolist() if obj.dtype.kind != "O" else obj.asstr()[()], attrs)
            else:
                found[name] = ("group", attrs)
        f.visititems(visit)
        found["/"] = dict(f.attrs)
    return found


def test_a_created_file_has_the_bounds_userblock_and_eviction_asked_for(tmp_path):
    f = lowlevel.create_file(tmp_path / "a.h5", libver=lowlevel.LIBVER, userblock_size=512, evict_on_close=True)
    try:
        assert f.libver[0] == "v110" and f.userblock_size == 512
        evicting = _cached_after_closing(f)
        f["x"] = np.arange(3)
    finally:
        f.close()
    with h5py.File(tmp_path / "a.h5", "r") as g:
        assert g["x"][()].tolist() == [0, 1, 2]
    with lowlevel.create_file(tmp_path / "b.h5", libver=lowlevel.LIBVER) as plain:
        assert _cached_after_closing(plain) > 300 > 10 * evicting
    with lowlevel.create_file(tmp_path / "d.h5") as default:
        assert default.libver[0] == "earliest"
    with pytest.raises(FileExistsError):
        lowlevel.create_file(tmp_path / "a.h5")
    with pytest.raises(ValueError, match="only 'x'"):
        lowlevel.create_file(tmp_path / "c.h5", "w")


def test_the_tree_written_with_eviction_reads_the_same_as_without(tmp_path):
    files, cached = {}, {}
    for evict in (False, True):
        target = tmp_path / f"evict-{evict}.h5"
        with create_atomic(target, libver=lowlevel.LIBVER, checksums=True, evict_on_close=evict) as f:
            tree_write.write_root(f, _tree())
            cached[evict] = _cached_after_closing(f)
        files[evict] = _contents(target)
    assert cached[False] > 300 > 10 * cached[True]
    assert files[True] == files[False]
    assert files[True]["units/unit_002/trials/7"][4] == sorted(files[True]["units/unit_002/trials/7"][4])
    assert len(files[True]) == 1 + 1 + 1 + 6 * (1 + 1 + 40 + 3) + 1 + 300


def test_an_evicting_file_holds_its_cache_at_the_fixed_size_whatever_its_strings(tmp_path):
    """Variable-length strings live in global heap collections, which stay in the cache after their objects
    close; the evicting file's cache is held at EVICTING_CACHE_BYTES, so old collections leave it."""
    texts = [f"{k:04d}-" + "x" * 3000 for k in range(400)]  # ~one 4 KB collection each: ~1.6 MB of them
    cached = {}
    for evict in (False, True):
        with lowlevel.create_file(tmp_path / f"s-{evict}.h5", libver=lowlevel.LIBVER, evict_on_close=evict) as f:
            for k, text in enumerate(texts):
                f.create_group(str(k)).attrs.create("text", text, dtype=lowlevel.TEXT_DTYPE)
                f[str(k)]["spikes"] = np.arange(k % 5 + 1)
            config, (_, _, size, entries) = f.id.get_mdc_config(), f.id.get_mdc_size()
            cached[evict] = entries
            if evict:
                assert config.max_size == config.initial_size == lowlevel.EVICTING_CACHE_BYTES
                assert config.incr_mode == config.flash_incr_mode == config.decr_mode == 0
                assert size <= lowlevel.EVICTING_CACHE_BYTES + 8192
        with h5py.File(tmp_path / f"s-{evict}.h5", "r") as g:
            assert [g[str(k)].attrs["text"] for k in range(400)] == texts
            assert g["399/spikes"][()].tolist() == list(range(5))
    assert cached[False] > 400 > 4 * cached[True]


def test_an_evicting_file_allocates_metadata_in_blocks_and_reads_the_same(tmp_path):
    """The evicting file's metadata comes from blocks of EVICTING_META_BLOCK_BYTES: its object headers lie
    together, not between the raw data allocated among them (as with libhdf5's 2 KiB blocks), a reader sees
    the same objects, and the file grows by at most one block's unused remainder."""
    files, between, sizes = {}, {}, {}
    for evict in (False, True):
        target = tmp_path / f"blocks-{evict}.h5"
        with create_atomic(target, libver=lowlevel.LIBVER, checksums=True, evict_on_close=evict) as f:
            if evict:
                assert f.id.get_access_plist().get_meta_block_size() == lowlevel.EVICTING_META_BLOCK_BYTES
            tree_write.write_root(f, _tree())
        files[evict] = _contents(target)
        sizes[evict] = target.stat().st_size
        with h5py.File(target, "r") as g:  # the trials' headers of the 6 units, the raw bytes of their 'big'
            units = [g[f"units/unit_{u:03d}"] for u in range(6)]
            headers = [h5py.h5o.get_info(unit["trials"][str(k)].id).addr for unit in units for k in range(40)]
            raw = [unit["big"].id.get_offset() for unit in units]
            between[evict] = sum(min(headers) < offset < max(headers) for offset in raw)
    assert files[True] == files[False]
    assert sizes[True] <= sizes[False] + lowlevel.EVICTING_META_BLOCK_BYTES
    assert between == {False: 5, True: 0}
