"""An attribute name that is not UTF-8 is a typed error naming the file and the object, never a raw one.

h5py hands back such a name as bytes; the checksum checks compared, sorted and
digested names as text and so raised ``AttributeError`` (load) or a bare
``UnicodeDecodeError`` without the path (``python -m scptensor verify``).
The damage is made here with plain h5py: one root attribute whose name holds
the byte 0xff, added to an .h5ad that carries a checksum manifest.
"""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import polars as pl
import pytest

from h5stream.errors import FormatError
from h5scp import Assay, ScpContainer, ScpMatrix

BAD_NAME = b"bad\xffname"


@pytest.fixture
def damaged_h5ad(tmp_path):
    obs = pl.DataFrame({"_index": ["s1", "s2", "s3"]})
    var = pl.DataFrame({"_index": ["P1", "P2"]})
    container = ScpContainer(obs, {"proteins": Assay(var, {"raw": ScpMatrix(np.arange(6.0).reshape(3, 2))})})
    path = tmp_path / "cells.h5ad"
    container.save(path)
    with h5py.File(path, "r+") as f:
        assert "h5stream_checksums" in f.attrs  # the manifest is what makes the readers list every name
        f.attrs.create(BAD_NAME, 1)
    return path


def test_load_names_the_attribute(damaged_h5ad):
    with pytest.raises(FormatError) as info:
        ScpContainer.load(damaged_h5ad)
    message = str(info.value)
    assert str(damaged_h5ad) in message
    assert "/@bad\\xffname" in message
    assert "not UTF-8" in message


def test_check_file_names_the_attribute(damaged_h5ad):
    from h5stream.files.checksum_checks import check_file

    with pytest.raises(FormatError, match="not UTF-8") as info:
        check_file(damaged_h5ad)
    assert str(damaged_h5ad) in str(info.value)


def test_verify_command_names_the_file(damaged_h5ad, child_env):
    done = subprocess.run([sys.executable, "-m", "h5scp", "verify", str(damaged_h5ad)], capture_output=True,
                          text=True, env=child_env, check=False, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert str(damaged_h5ad) in done.stderr
    assert "attribute name is not UTF-8" in done.stderr


def test_undamaged_name_still_checks(tmp_path):
    """The same file without the damage loads, so the error above comes from the name alone."""
    obs = pl.DataFrame({"_index": ["s1"]})
    var = pl.DataFrame({"_index": ["P1"]})
    container = ScpContainer(obs, {"p": Assay(var, {"raw": ScpMatrix(np.array([[2.5]]))})})
    path = tmp_path / "ok.h5ad"
    container.save(path)
    again = ScpContainer.load(path)
    assert again.assays["p"].layers["raw"].X.tolist() == [[2.5]]
