"""The current code reads every frozen golden file exactly (tests/data/golden, see its README).

The files were written by an earlier commit (``golden_cases.SOURCE_COMMIT``); the
expected values are rebuilt here with numpy/polars/scipy from the same
definitions and seeds (elements, scptensor container) or read from the plain
JSON/npz snapshot stored beside the file (recording and checkpoint).  Test ids
name the encoding or format and its version.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import h5py
import pytest

from tests.data.golden import golden_cases as cases

GOLDEN = cases.HERE
ELEMENTS = GOLDEN / "elements.h5"
_CASES = cases.element_cases()


def _stamped(obj) -> tuple[str, str]:
    """The encoding an element carries on disk (our typed attributes first), read with plain h5py."""
    attrs = obj.attrs
    if "h5stream:encoding-type" in attrs:
        return attrs["h5stream:encoding-type"], attrs["h5stream:encoding-version"]
    return attrs["encoding-type"], attrs["encoding-version"]


@pytest.mark.parametrize("name", list(_CASES), ids=[f"{t}-{v}-{n}" for n, (t, v, _x, _o) in _CASES.items()])
def test_element_encoding_reads_exactly(name):
    from h5stream.elements import read_elem

    etype, version, expected, _options = _CASES[name]
    with h5py.File(ELEMENTS, "r") as f:
        assert _stamped(f[name]) == (etype, version)
        cases.assert_same(read_elem(f[name]), expected, name)


def test_every_element_in_the_golden_file_is_checked():
    from h5stream.elements.dataframe import NULL_MASK_SUFFIX

    with h5py.File(ELEMENTS, "r") as f:
        # a nullable-float 0.2.0 element keeps its null mask in a dataset beside it
        elements = [name for name in f if not name.endswith(NULL_MASK_SUFFIX)]
        assert sorted(elements) == sorted([*_CASES, "dataframe-0.1.0"])


def test_every_encoding_we_write_has_a_golden_element():
    """A new encoding (or version) registered for writing needs a golden element: add it to golden_cases."""
    from h5stream.elements.registry import _WRITERS, load_codecs

    load_codecs()
    written = {entry.spec.key for entries in _WRITERS.values() for entry in entries}
    covered = {(t, v) for t, v, _x, _o in _CASES.values()}
    assert written <= covered, f"encodings without a golden element: {sorted(written - covered)}"


def test_dataframe_columns_keep_their_encodings_in_the_frame():
    from h5stream.elements.registry import read_spec

    series = {n.replace("-", "_"): (t, v) for n, (t, v, x, _o) in _CASES.items() if hasattr(x, "dtype")
              and type(x).__name__ == "Series"}
    with h5py.File(ELEMENTS, "r") as f:
        frame = f["dataframe"]
        order = list(frame.attrs["column-order"])
        assert order == cases.frame().columns
        for column in order:
            if column in series:
                spec = read_spec(frame[column])
                assert (spec.encoding_type, spec.encoding_version) == series[column], column


def test_dataframe_0_1_0_reads_exactly():
    from h5stream.elements import read_elem

    with h5py.File(ELEMENTS, "r") as f:
        assert _stamped(f["dataframe-0.1.0"]) == ("dataframe", "0.1.0")
        cases.assert_same(read_elem(f["dataframe-0.1.0"]), cases.legacy_dataframe_0_1_0(), "dataframe 0.1.0")


# ----------------------------------------------------------------------------- hdmea recording format 1


def _session_snapshot(path):
    from hdmea.pipeline import PipelineSession

    loaded = PipelineSession.load(path)
    try:
        return {
            "dataset_id": loaded.dataset_id,
            "completed_steps": list(loaded.completed_steps),
            "warnings": list(loaded.warnings),
            "checkpoint_name": loaded.checkpoint_name,
            "tree": loaded.get(""),
        }
    finally:
        loaded.close()


@pytest.mark.parametrize("stem", ["hdmea_recording", "hdmea_checkpoint"],
                         ids=["hdmea-recording-1-whole-pipeline", "hdmea-recording-1-checkpoint"])
def test_hdmea_recording_format_1_reads_exactly(stem):
    path = GOLDEN / f"{stem}.h5"
    with h5py.File(path, "r") as f:
        assert (f.attrs["h5stream_format"], f.attrs["h5stream_format_version"]) == ("hdmea-recording", "1")
    expected = cases.load_snapshot(GOLDEN / f"{stem}.expected")
    cases.assert_same(_session_snapshot(path), expected, stem)


def test_hdmea_recording_whole_pipeline_holds_every_step_and_unit():
    expected = cases.load_snapshot(GOLDEN / "hdmea_recording.expected")
    assert expected["completed_steps"], "the golden recording records its steps"
    units = expected["tree"]["units"]
    assert len(units) == cases.RECORDING_UNITS
    from hdmea.io.hdf5_store import list_units, open_recording_hdf5

    with open_recording_hdf5(GOLDEN / "hdmea_recording.h5", "r") as f:
        assert list_units(f) == sorted(units)


def test_hdmea_checkpoint_resumes_and_saves_the_same_content(tmp_path):
    from hdmea.pipeline import PipelineSession

    session = PipelineSession.load(GOLDEN / "hdmea_checkpoint.h5", hdf5_path=tmp_path / "resumed.h5")
    try:
        session.save()
    finally:
        session.close()
    expected = cases.load_snapshot(GOLDEN / "hdmea_checkpoint.expected")
    resaved = _session_snapshot(tmp_path / "resumed.h5")
    for key in ("dataset_id", "completed_steps", "warnings"):
        assert resaved[key] == expected[key], key
    cases.assert_same(resaved["tree"]["units"], expected["tree"]["units"], "units")
    cases.assert_same(resaved["tree"]["stimulus"], expected["tree"]["stimulus"], "stimulus")


# ----------------------------------------------------------------------------- scptensor 2.0


@pytest.mark.parametrize("name", ["scptensor_2.0.h5", "scptensor_2.0.h5mu"],
                         ids=["scptensor-2.0-h5", "scptensor-2.0-h5mu"])
def test_scptensor_2_0_reads_exactly(name):
    from h5scp import ScpContainer
    from h5scp.testing import assert_container_equal

    loaded = ScpContainer.load(GOLDEN / name)
    assert_container_equal(loaded, cases.expected_container(loaded))


def test_scptensor_2_0_h5ad_reads_exactly():
    from h5scp import ScpContainer
    from h5scp.testing import assert_container_equal, example_container

    c = cases.fix_history_times(example_container(seed=cases.CONTAINER_SEED))
    expected = ScpContainer(c.obs, {"peptides": c.assays["peptides"]}, history=c.history)
    assert_container_equal(ScpContainer.load(GOLDEN / "scptensor_2.0_peptides.h5ad"), expected)


def test_scptensor_2_0_files_with_whole_frame_records_read_exactly():
    """AnnData/MuData files written while uns/scptensor/frames held whole frames (before schemas)."""
    from h5scp import ScpContainer
    from h5scp.testing import assert_container_equal

    loaded = ScpContainer.load(GOLDEN / cases.RECORDS_H5MU_GOLDEN)
    assert_container_equal(loaded, cases.expected_container(loaded))
    one = ScpContainer.load(GOLDEN / cases.RECORDS_H5AD_GOLDEN)
    c = cases.expected_container(loaded)
    assert_container_equal(one, ScpContainer(c.obs, {"peptides": c.assays["peptides"]}, history=c.history))
    for name in (cases.RECORDS_H5MU_GOLDEN, cases.RECORDS_H5AD_GOLDEN):
        with h5py.File(GOLDEN / name, "r") as f:
            assert "frames" in f["uns/scptensor"] and "schemas" not in f["uns/scptensor"]


def test_scptensor_2_0_files_say_their_version():
    with h5py.File(GOLDEN / "scptensor_2.0.h5", "r") as f:
        assert (f.attrs["format_name"], f.attrs["format_version"]) == ("scptensor", "2.0")
    with h5py.File(GOLDEN / "scptensor_2.0.h5mu", "r") as f:
        assert f.attrs["scptensor:format_version"] == "2.0"


# ----------------------------------------------------------------------------- fresh interpreters

_FRESH_READERS = {
    # entry point imported alone -> code reading every golden file of that entry point
    "h5stream.elements.registry": """
        from h5stream.elements.registry import read_elem
        with h5py.File(golden / "elements.h5", "r") as f:
            values = {name: read_elem(f[name]) for name in f}
        from tests.data.golden import golden_cases as cases
        for name, (_t, _v, expected, _o) in cases.element_cases().items():
            cases.assert_same(values[name], expected, name)
        cases.assert_same(values["dataframe-0.1.0"], cases.legacy_dataframe_0_1_0(), "dataframe 0.1.0")
        print(len(values))
    """,
    "scptensor": """
        from h5scp import ScpContainer
        loaded = [ScpContainer.load(golden / n) for n in ("scptensor_2.0.h5", "scptensor_2.0.h5mu")]
        from h5scp.testing import assert_container_equal
        from tests.data.golden import golden_cases as cases
        for c in loaded:
            assert_container_equal(c, cases.expected_container(c))
        print(len(loaded))
    """,
    "hdmea.session.session": """
        from hdmea.session.session import PipelineSession
        session = PipelineSession.load(golden / "hdmea_checkpoint.h5")
        tree = session.get("")
        session.close()
        from tests.data.golden import golden_cases as cases
        cases.assert_same(tree, cases.load_snapshot(golden / "hdmea_checkpoint.expected")["tree"], "checkpoint")
        print(1)
    """,
}


@pytest.mark.parametrize("entry", list(_FRESH_READERS))
def test_a_fresh_interpreter_reads_every_encoding_through_one_entry_point(entry, child_env):
    """No codec depends on another module having been imported first."""
    code = textwrap.dedent(f"""
        import warnings
        warnings.simplefilter("error")
        import pathlib
        import h5py
        golden = pathlib.Path({str(GOLDEN)!r})
    """) + textwrap.dedent(_FRESH_READERS[entry])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=child_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) >= 1
