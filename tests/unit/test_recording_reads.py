"""Only the recording reader reads a recording's datasets: every other module of hdmea goes through it.

The scan looks, with ``ast``, at every module of ``src/hdmea`` for the ways a dataset's values are
read or a file is opened for reading: ``x[()]`` and ``x[...]``, ``read_direct``, a digest check
of read values (``check_dataset``), ``h5py.File(...)``, the store's ``open_recording_hdf5`` in
read mode and the tree reader ``node_from_h5``.  Only the modules listed below, each with its
reason, may do so.
"""

from __future__ import annotations

import ast
from pathlib import Path

import h5py
import numpy as np

SRC = Path(__file__).resolve().parents[2] / "src" / "hdmea"

#: Module (relative to src/hdmea) -> why it may read files itself.
ALLOWED = {
    "io/recording.py": "the recording reader",
    "io/_unit_scan.py": "the reader's one pass over every unit for the exporters",
    "io/hdf5_store.py": "the store's writers and the open-time checks the reader calls",
    "io/cmcr.py": "vendor raw-data file (.cmcr)",
    "io/cmcr_meta.py": "vendor raw-data file (.cmcr)",
    "io/cmcr_sensors.py": "vendor raw-data file (.cmcr): its sensor datasets",
    "io/cmtr.py": "vendor spike-sorting file (.cmtr)",
    "io/mcs.py": "vendor files",
    "io/vendor_meta.py": "vendor files' metadata and unit groups (.cmcr, .cmtr), as the original copies them",
    "session/target.py": "the step target: what a step reads of the file it writes",
    "steps/load.py": "the load step, probing its own output before it writes it",
    "steps/eimage.py": "the electrical-image step, reading the vendor raw data",
    "interop/zarr_migrate.py": "reads the old pipeline's zarr archives (its recording reads go through the reader)",
    "interop/layout_upgrade.py": "migrate's look at a file it was given that may be no recording: its root "
                                 "attributes and top-level names, to say what it is (recordings go through the reader)",
    "synthetic/mcs_writer.py": "writes synthetic vendor files",
    "synthetic/truth.py": "the synthetic recording's ground-truth file (its own format, not a recording)",
}

_OPENERS = {"read_direct", "check_dataset", "node_from_h5"}


def _is_write_mode(call: ast.Call, position: int) -> bool:
    mode = call.args[position] if len(call.args) > position else next(
        (k.value for k in call.keywords if k.arg == "mode"), None)
    return isinstance(mode, ast.Constant) and mode.value in ("w", "w-", "x", "a", "r+")


def direct_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every direct read in the module ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            index = node.slice
            if (isinstance(index, ast.Tuple) and not index.elts) or (
                    isinstance(index, ast.Constant) and index.value is Ellipsis):
                found.append((node.lineno, "[()] or [...]"))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in _OPENERS:
                found.append((node.lineno, name))
            elif name == "open_recording_hdf5" and not _is_write_mode(node, 1):
                found.append((node.lineno, "open_recording_hdf5 (read mode)"))
            elif (name == "File" and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                  and func.value.id == "h5py" and not _is_write_mode(node, 1)):
                found.append((node.lineno, "h5py.File (read mode)"))
    return found


def test_no_module_but_the_reader_reads_recording_datasets():
    offenders = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel in ALLOWED:
            continue
        reads = direct_reads(ast.parse(path.read_text(), filename=str(path)))
        if reads:
            offenders[rel] = reads
    assert not offenders, f"modules reading recording files outside hdmea.io.recording: {offenders}"


def test_allowed_modules_exist():
    assert [rel for rel in ALLOWED if not (SRC / rel).is_file()] == []


def test_the_scan_sees_each_kind_of_read():
    code = """
import h5py
f = h5py.File(p)
g = h5py.File(p, "w")
a = ds[()]
b = ds[...]
c = ds[0:3]
ds.read_direct(out)
checksums.check_dataset(ds, a)
node_from_h5(f)
open_recording_hdf5(p)
open_recording_hdf5(p, "r+")
"""
    kinds = [what for _line, what in direct_reads(ast.parse(code))]
    assert kinds == ["h5py.File (read mode)", "[()] or [...]", "[()] or [...]", "read_direct", "check_dataset",
                     "node_from_h5", "open_recording_hdf5 (read mode)"]


def test_the_consumers_read_what_the_file_holds(tmp_path):
    """The report's reader on a file written with plain h5py gives the planted values (through the reader)."""
    from hdmea.report.data import read_recording_data

    path = tmp_path / "r.h5"
    with h5py.File(path, "w") as f:
        f.attrs["dataset_id"] = "planted"
        f["metadata/sampling_rate"] = 10000.0
        unit = f.create_group("units/u1")
        unit.attrs["row"], unit.attrs["col"] = np.int64(3), np.int64(60)
        unit["spike_times"] = np.array([100, 2500, 12000], dtype=np.uint64)
        sec = unit.create_group("spike_times_sectioned/step")
        sec["spike_times"] = np.array([2500, 12000], dtype=np.uint64)
        sec["trial_offsets"] = np.array([0, 1, 2])
        sec["trial_bounds"] = np.array([[2000, 7000], [11000, 16000]], dtype=np.uint64)
        f.create_group("stimulus/config").attrs["config_json"] = '{"trial_configs": {"step": {"repeat": 2}}}'
    data = read_recording_data(path)
    assert data.sampling_rate == 10000.0 and data.unit_positions == {"u1": (3, 60)}
    assert data.spike_counts == {"u1": 3}
    (movie,) = data.movies
    assert movie.repeated_trials and movie.n_trials == 2 and movie.trial_duration_s == 0.5
    np.testing.assert_allclose(np.concatenate(movie.spikes[0]), [0.05, 0.1])
