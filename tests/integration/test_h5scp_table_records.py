"""A frame record in an AnnData file that does not match its own description is a typed error.

The record of a frame (``uns/scptensor/frames/obs``) is an Arrow IPC table; here it is
replaced, with plain polars and h5py, by a table that lacks the sample id column the file
names. Read without checksums (the way a file edited by another tool is read), the load
must name the file and say what to do, not raise polars' own ``ColumnNotFoundError``.
"""

from __future__ import annotations

import io

import h5py
import numpy as np
import polars as pl
import pytest

import h5scp
from h5scp import Assay, ScpContainer, ScpMatrix
from h5scp.io.exceptions import IOFormatError


def test_a_frame_record_without_the_sample_column_is_a_format_error(tmp_path):
    obs = pl.DataFrame({"_index": ["s1", "s2", "s3"], "batch": ["a", "a", "b"]})
    var = pl.DataFrame({"_index": ["P1", "P2"]})
    container = ScpContainer(obs, {"proteins": Assay(var, {"raw": ScpMatrix(np.arange(6.0).reshape(3, 2))})})
    path = tmp_path / "cells.h5ad"
    h5scp.save(container, path)

    buffer = io.BytesIO()
    pl.DataFrame({"something_else": ["s1", "s2", "s3"]}).write_ipc(buffer)
    with h5py.File(path, "r+") as f:
        record = f["uns/scptensor/frames/obs"]
        attrs = dict(record.attrs)
        del f["uns/scptensor/frames/obs"]
        new = f["uns/scptensor/frames"].create_dataset("obs", data=np.frombuffer(buffer.getvalue(), dtype=np.uint8))
        new.attrs.update(attrs)

    with pytest.raises(IOFormatError) as caught:
        h5scp.load(path, verify=False)
    message = str(caught.value)
    assert str(path) in message
    assert "_index" in message and "does not match its own description" in message
