"""A process killed (SIGKILL) in the middle of save() or checkpoint() leaves every earlier file intact."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from hdmea.io import hdf5_store as store
from hdmea.pipeline import PipelineSession, create_session

ROOT = Path(__file__).resolve().parents[2]

KILLER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from hdmea.io import hdf5_store as store
    from hdmea.pipeline import create_session

    target, action, limit = sys.argv[1], sys.argv[2], sys.argv[3]
    final = target if action == "save" else target + ".final.h5"
    s = create_session("rec", hdf5_path=final, memory_limit=None if limit == "none" else int(limit))
    s.add_units({f"unit_{i:03d}": {"spike_times": np.arange(i, i + 5000, dtype=np.uint64), "row": i, "col": 0,
                                   "global_id": i} for i in range(40)})
    calls = {"n": 0}

    def dying_version(real):
        def dying(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 30:  # well inside the units
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return dying

    from h5stream.tree import write as tree_write

    for name in ("_native_node", "_wrapped_node"):  # whichever writer path is active
        setattr(tree_write, name, dying_version(getattr(tree_write, name)))
    if action == "save":
        s.save(overwrite=True)
    else:
        s.checkpoint(target, overwrite=True)
""")


def _earlier(path: Path) -> bytes:
    s = create_session("rec", hdf5_path=path)
    s.add_units({"unit_000": {"spike_times": np.arange(3), "row": 0, "col": 0, "global_id": 0}})
    s.save()
    return path.read_bytes()


@pytest.mark.parametrize("action, limit", [("save", "none"), ("save", "100000"), ("checkpoint", "100000")])
def test_kill_during_write_keeps_earlier_file(tmp_path, action, limit):
    target = tmp_path / "rec.h5"
    before = _earlier(target)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", KILLER, str(target), action, limit], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == -9, done.stderr
    assert target.read_bytes() == before  # the earlier, complete file is untouched
    with h5py.File(target, "r") as f:
        assert list(f["units"]) == ["unit_000"]
    resumed = PipelineSession.load(target)
    assert resumed.unit_ids() == ["unit_000"]
    resumed.close()


def test_save_while_another_writer_holds_the_target(tmp_path):
    target = tmp_path / "rec.h5"
    _earlier(target)
    holder = store.open_recording_hdf5(target, "r+")
    try:
        s = create_session("rec", hdf5_path=target)
        s.add_units({"unit_001": {"spike_times": np.arange(2)}})
        with pytest.raises(OSError) as info:
            s.save(overwrite=True)
        assert str(info.value).startswith(
            f"File is already open for writing: {target}. HDF5 supports single-writer access only. "
            "Close the file in other processes before writing. "
        )
        assert f"It is held by pid {os.getpid()} " in str(info.value)
        assert s.is_deferred
    finally:
        holder.abort()
    s.save(overwrite=True)
    assert s.is_saved
