"""A save is durable with two fsyncs: the finished file's, before it is published, and its directory's after.

The claim that keeps other writers out is not fsynced (it excludes live writers only).  The reference
is what the kernel is asked: every ``fsync`` of the save, by the path of its descriptor.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pytest

pytest.importorskip("h5scp")


def _container(n=40, p=12):
    from h5scp import Assay, ScpContainer, ScpMatrix

    x = np.random.default_rng(0).lognormal(size=(n, p))
    obs = pl.DataFrame({"_index": [f"S{i}" for i in range(n)]})
    var = pl.DataFrame({"_index": [f"P{j}" for j in range(p)]})
    return ScpContainer(obs, {"proteins": Assay(var, {"raw": ScpMatrix(x)})}), x


def test_a_save_fsyncs_its_file_then_its_directory_and_nothing_else(tmp_path, monkeypatch):
    from h5scp.io import load_hdf5, save_hdf5

    container, x = _container()
    target = tmp_path / "c.h5"
    synced: list[tuple[str, bool]] = []  # (path of the descriptor, did the target exist then)
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), target.exists()))
        return real_fsync(fd)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc/self/fd to name a descriptor's file")
    monkeypatch.setattr(os, "fsync", recording_fsync)
    save_hdf5(container, target)
    monkeypatch.undo()
    assert len(synced) == 2, synced
    (file_path, published_before), (dir_path, published_after) = synced
    assert os.path.dirname(file_path) == str(tmp_path) and ".partial-" in os.path.basename(file_path)
    assert not published_before  # the file's bytes are durable before its name appears
    assert dir_path == str(tmp_path) and published_after  # then the name
    assert sorted(q.name for q in tmp_path.iterdir()) == ["c.h5"]  # no claim or partial file left
    np.testing.assert_array_equal(load_hdf5(target).assays["proteins"].layers["raw"].X, x)
