"""Writers never follow what readers refuse.

A recording whose members point into another file (an external link, external
raw storage, a virtual dataset) is refused by every write path with the error a
read raises, and the other file (the "victim") keeps its exact bytes.  The
vendor's own ``Acquisition`` link of a ``.cmtr`` is an input, read as before.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5stream.errors import UnsafeFileError
from h5stream.files import update_atomic
from hdmea.io.hdf5_store import open_recording_hdf5, write_units
from hdmea.io.section_time import add_section_time
from hdmea.io.spike_sectioning import section_spike_times
from hdmea.pipeline.runner import load_recording
from hdmea.session.session import PipelineSession, create_session
from hdmea.session.target import open_target


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def complete_recording(tiny_recording, tmp_path_factory) -> Path:
    """A recording after load_recording, add_section_time and section_spike_times (immediate mode)."""
    out = tmp_path_factory.mktemp("complete") / "rec.h5"
    load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, hdf5_path=out)
    add_section_time(out, tiny_recording.stimulus_path)
    section_spike_times(out)
    return out


def _make_hostile(source: Path, directory: Path, kind: str, member: str = "units") -> tuple[Path, Path]:
    """Copy ``source`` to ``directory/rec.h5`` with ``member`` pointing into a victim file."""
    linking = directory / "rec.h5"
    shutil.copy(source, linking)
    if kind == "external_link":
        victim = directory / "victim.h5"
        with h5py.File(source, "r") as src, h5py.File(victim, "w") as dst:
            src.copy(src[member], dst, name=member)  # a victim a write through the link would accept
        with h5py.File(linking, "r+") as f:
            del f[member]
            f[member] = h5py.ExternalLink(str(victim), "/" + member)
    elif kind == "external_storage":
        victim = directory / "victim.bin"
        victim.write_bytes(np.arange(64, dtype=np.uint64).tobytes())
        with h5py.File(linking, "r+") as f:
            unit = sorted(f["units"])[0]
            f["units"][unit].create_dataset("extra", shape=(64,), dtype=np.uint64,
                                            external=[(str(victim), 0, 64 * 8)])
    elif kind == "virtual":
        victim = directory / "victim.h5"
        with h5py.File(victim, "w") as v:
            v["data"] = np.arange(64, dtype=np.uint64)
        layout = h5py.VirtualLayout(shape=(64,), dtype=np.uint64)
        layout[:] = h5py.VirtualSource(str(victim), "data", shape=(64,))
        with h5py.File(linking, "r+") as f:
            unit = sorted(f["units"])[0]
            f["units"][unit].create_virtual_dataset("extra", layout)
    else:
        raise ValueError(kind)
    return linking, victim


def _units(n: int = 3, spikes: int = 10) -> dict:
    rng = np.random.default_rng(0)
    return {f"unit_{i:03d}": {"spike_times": np.sort(rng.integers(0, 10**6, spikes)).astype(np.uint64),
                              "row": i, "col": i, "global_id": i} for i in range(n)}


# Every write path, pointed at the linking file ``p``.
def _store_r_plus(p: Path, rec) -> None:
    with open_recording_hdf5(p, "r+") as f:
        write_units(f, _units())


def _section_force(p: Path, rec) -> None:
    section_spike_times(p, force=True)


def _section_time_force(p: Path, rec) -> None:
    add_section_time(p, rec.stimulus_path, force=True)


def _target_update(p: Path, rec) -> None:
    with open_target(p, step="probe_step") as target:
        target.put("units/unit_999/extra", np.arange(3))


def _target_create_overwrite(p: Path, rec) -> None:
    with open_target(p, step="probe_step", create=True, dataset_id="rec", overwrite=True) as target:
        target.add_units(_units())


def _load_recording_probe(p: Path, rec) -> None:
    load_recording(rec.cmcr_path, rec.cmtr_path, output_path=p)


def _update_atomic(p: Path, rec) -> None:
    with update_atomic(p) as f:
        f.require_group("units").create_group("unit_999")


def _session_save(p: Path, rec) -> None:
    s = create_session("rec")
    s.add_units(_units())
    s.save(p, overwrite=True)


def _session_save_spilled(p: Path, rec) -> None:
    s = create_session("rec", hdf5_path=p, memory_limit=1000)
    s.add_units(_units(8, spikes=2000))
    assert s.spilled_bytes > 0
    try:
        s.save(overwrite=True)
    finally:
        s.close()


def _session_checkpoint(p: Path, rec) -> None:
    s = create_session("rec", hdf5_path=p.with_name("elsewhere.h5"))
    s.add_units(_units())
    s.checkpoint(p, overwrite=True)


def _session_ensure_saved(p: Path, rec) -> None:
    s = create_session("rec", hdf5_path=p)
    s.add_units(_units())
    s.ensure_saved()


WRITE_PATHS = {
    "store_r_plus_write_units": _store_r_plus,
    "section_spike_times_force_immediate": _section_force,
    "add_section_time_force_immediate": _section_time_force,
    "open_target_update": _target_update,
    "open_target_create_overwrite": _target_create_overwrite,
    "load_recording_output_probe": _load_recording_probe,
    "update_atomic": _update_atomic,
    "session_save": _session_save,
    "session_save_spilled": _session_save_spilled,
    "session_checkpoint": _session_checkpoint,
    "session_ensure_saved": _session_ensure_saved,
}


def _read_error(p: Path) -> UnsafeFileError:
    with pytest.raises(UnsafeFileError) as info:
        open_recording_hdf5(p, "r")
    return info.value


@pytest.mark.parametrize("write_path", sorted(WRITE_PATHS))
@pytest.mark.parametrize("member", ["units", "stimulus", "pipeline"])
def test_write_through_external_link_is_refused_and_victim_unchanged(
    complete_recording, tiny_recording, tmp_path, write_path, member
):
    linking, victim = _make_hostile(complete_recording, tmp_path, "external_link", member)
    read_error = _read_error(linking)
    victim_before, linking_before = sha256(victim), sha256(linking)
    with pytest.raises(UnsafeFileError) as info:
        WRITE_PATHS[write_path](linking, tiny_recording)
    assert type(info.value) is type(read_error)
    assert info.value.obj == read_error.obj == "/" + member
    assert str(linking) in str(info.value) and str(victim) in str(info.value)
    assert sha256(victim) == victim_before
    assert sha256(linking) == linking_before
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["rec.h5", victim.name]), left


@pytest.mark.parametrize("write_path", sorted(WRITE_PATHS))
@pytest.mark.parametrize("kind", ["external_storage", "virtual"])
def test_write_to_file_with_external_storage_or_vds_is_refused(
    complete_recording, tiny_recording, tmp_path, write_path, kind
):
    linking, victim = _make_hostile(complete_recording, tmp_path, kind)
    read_error = _read_error(linking)
    victim_before, linking_before = sha256(victim), sha256(linking)
    with pytest.raises(UnsafeFileError) as info:
        WRITE_PATHS[write_path](linking, tiny_recording)
    assert type(info.value) is type(read_error) and info.value.obj == read_error.obj
    assert info.value.obj.endswith("/extra")
    assert sha256(victim) == victim_before and sha256(linking) == linking_before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["rec.h5", victim.name])


def test_the_victim_hash_sees_a_write_through_the_link(complete_recording, tmp_path):
    """Control: a plain h5py write through the link does change the victim, so the hash would notice."""
    linking, victim = _make_hostile(complete_recording, tmp_path, "external_link", "units")
    before = sha256(victim)
    with h5py.File(linking, "r+") as f:
        f["units"].create_group("unit_999")
    assert sha256(victim) != before


@pytest.mark.parametrize("write_path", sorted(WRITE_PATHS))
def test_every_write_path_works_on_the_clean_file(complete_recording, tiny_recording, tmp_path, write_path):
    """The same calls succeed on the unmodified recording, so a refusal above comes from the links."""
    target = tmp_path / "rec.h5"
    shutil.copy(complete_recording, target)
    WRITE_PATHS[write_path](target, tiny_recording)
    with open_recording_hdf5(target, "r") as f:
        assert "units" in f


def test_spilled_session_stays_usable_after_a_refused_save(complete_recording, tmp_path):
    linking, victim = _make_hostile(complete_recording, tmp_path, "external_link", "units")
    s = create_session("rec", hdf5_path=linking, memory_limit=1000)
    units = _units(8, spikes=2000)
    s.add_units(units)
    spill = s.spill_path
    with pytest.raises(UnsafeFileError):
        s.save(overwrite=True)
    assert s.spill_path == spill and spill.exists()  # spilled arrays not moved
    saved = s.save(tmp_path / "good.h5")
    assert not spill.exists()
    with h5py.File(saved, "r") as f:
        for uid, unit in units.items():
            np.testing.assert_array_equal(f["units"][uid]["spike_times"][()], unit["spike_times"])
    s.close()


def test_vendor_cmtr_acquisition_link_is_still_read(tiny_recording, tmp_path):
    """Reading inputs is no write path: the .cmtr's link to its .cmcr keeps working."""
    with h5py.File(tiny_recording.cmtr_path, "r") as f:
        assert isinstance(f.get("Acquisition", getlink=True), h5py.ExternalLink)
    result = load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, hdf5_path=tmp_path / "r.h5")
    assert result.num_units == len(tiny_recording.truth().units)
    resumed = PipelineSession.load(tmp_path / "r.h5")
    assert len(resumed.unit_ids()) == result.num_units
    resumed.close()
