"""AnnData zarr stores in zarr format 3, under zarr 3.

The test environment holds zarr 2 (the spikeinterface extra pins ``zarr<3`` on
Python < 3.14), so the zarr store tests of
``test_scptensor_anndata_roundtrip.py`` skip their format-3 cases there.  This
test builds a virtual environment that sees every package of the running one
except zarr, installs ``zarr>=3`` into it from the package index, and runs those
tests again in it: our containers written to format-3 stores and read by
``anndata.read_zarr``, and stores ``anndata.write_zarr`` wrote under zarr 3 (in
formats 2 and 3) read by us, whole and in part (only the chunks holding the cells asked for).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytest.importorskip("anndata")
pytest.importorskip("zarr")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_zarr_format_3_round_trips_under_zarr_3(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # the running environment's packages after the venv's own, so the zarr installed here comes first
    Path(purelib, "parent-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "zarr>=3"], capture_output=True, text=True)
    if install.returncode != 0 and re.search(r"(?i)connection|resolve|network|temporary failure", install.stderr):
        pytest.skip(f"the package index is not reachable: {install.stderr.strip().splitlines()[-1]}")
    assert install.returncode == 0, install.stderr
    version = subprocess.run([str(python), "-c", "import zarr; print(zarr.__version__)"],
                             check=True, capture_output=True, text=True).stdout.strip()
    assert int(version.split(".")[0]) >= 3
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and Path(p).is_dir()
                                                       and "site-packages" not in p)}
    run = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", "-o", "addopts=",
         "tests/integration/test_scptensor_anndata_roundtrip.py", "tests/integration/test_h5scp_partial_features.py",
         "-k", "zarr"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=540,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    passed = set(re.findall(r"^PASSED \S+::(\S+)", run.stdout, flags=re.M))
    assert {
        "test_anndata_zarr_store_round_trip_resave_and_edit[2]",
        "test_anndata_zarr_store_round_trip_resave_and_edit[3]",
        "test_a_zarr_store_anndata_wrote_is_imported[2]", "test_a_zarr_store_anndata_wrote_is_imported[3]",
        "test_anndata_zarr_store_loads_in_part[3]", "test_a_partial_zarr_load_decodes_only_the_chunks_it_needs[3]",
    } <= passed, run.stdout[-4000:]
