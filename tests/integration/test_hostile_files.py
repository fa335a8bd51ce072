"""Hostile files: every reader gives a typed error within 2 s and under 500 MB, never a crash.

Each file is built here with plain h5py and is small on disk; what it declares is
not: a group nested 10,000 levels deep, a group of 10^6 members, a dataset of
10^11 elements, a 1 GB string, text that is not UTF-8.  Each file is read by
every reader that accepts its kind (the recording store, a resumed session, the
report, the out-of-process verifier; the ``.cmcr``/``.cmtr`` readers and their
pre-check for vendor files) in a fresh child process, which reports per reader
the error's class, whether it is one of ours, and the seconds it took, and at
the end its peak resident memory (``VmHWM``).  A crash of the child fails
the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5stream.errors import FormatError
from tests.mcs_handmade import Region, sensor_id, write_cmcr, write_cmtr

SECONDS = 2.0
PEAK_MB = 500

# The child: read ``path`` with each named reader, one JSON line of results.
CHILD = textwrap.dedent('''
    import json, sys, time
    import numpy as np
    from h5stream.errors import H5StreamError

    def verify(path):
        from h5stream.files import verify_files
        error = verify_files([path], timeout=30)[0]
        if error is not None:
            raise error

    def recording(path):
        from hdmea.io.hdf5_store import decode_node, get_stage1_status, list_units, node_from_h5, open_recording_hdf5
        with open_recording_hdf5(path) as f:
            get_stage1_status(f)
            for name in ("metadata", "pipeline"):
                if name in f:
                    decode_node(node_from_h5(f[name]))
            for uid in list_units(f):
                decode_node(node_from_h5(f["units"][uid]))

    def session(path):
        from hdmea.pipeline import PipelineSession
        s = PipelineSession.load(path)
        try:
            s.metadata()
            for uid in s.unit_ids():
                np.asarray(s.get(f"units/{uid}/spike_times"))
        finally:
            s.close()

    def report(path):
        from hdmea.report.data import read_recording_data
        read_recording_data(path)

    def vendor_check(path):
        from hdmea.io.mcs import verify_inputs
        error = verify_inputs([path], timeout=30)[0]
        if error is not None:
            raise error

    def cmcr(path):
        from hdmea.io.cmcr import CmcrFile
        with CmcrFile(path) as f:
            f.metadata()
            for _start, _block in f.iter_sensor_blocks():
                pass

    def cmtr(path):
        from hdmea.io.cmtr import CmtrFile
        with CmtrFile(path) as f:
            f.read_units(20000.0)

    import hdmea.io.cmcr, hdmea.io.cmtr, hdmea.io.hdf5_store, hdmea.pipeline, hdmea.report.data  # imports off the clock
    path, readers = sys.argv[1], sys.argv[2].split(",")
    out = {}
    for name in readers:
        started = time.perf_counter()
        try:
            globals()[name](path)
            result = {"error": None}
        except BaseException as exc:
            result = {"error": type(exc).__name__, "typed": isinstance(exc, H5StreamError), "message": str(exc)[:600]}
        result["seconds"] = time.perf_counter() - started
        out[name] = result
    # VmHWM belongs to this process's own memory; ru_maxrss would carry the forking
    # parent's peak over the exec (Linux keeps it in the process's signal state)
    with open("/proc/self/status") as status:
        hwm = next(line for line in status if line.startswith("VmHWM:"))
    out["peak_mb"] = int(hwm.split()[1]) / 1024
    print(json.dumps(out))
''')

RECORDING_READERS = ("verify", "recording", "session", "report")


def read_in_child(path: Path, readers) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), ",".join(readers)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"reader process ended with {done.returncode}: {done.stderr[-2000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_refused(results: dict, readers, words: str) -> None:
    """Every reader raised one of our errors, mentioning ``words``, in time; the process stayed small."""
    for name in readers:
        r = results[name]
        assert r["error"] is not None, f"{name} read the hostile file without an error"
        assert r["typed"], f"{name} raised an untyped {r['error']}: {r['message']}"
        assert words in r["message"], f"{name}: {r['message']}"
        assert r["seconds"] < SECONDS, f"{name} took {r['seconds']:.2f} s"
    assert results["peak_mb"] < PEAK_MB, f"peak memory {results['peak_mb']:.0f} MB"


def recording_root(f: h5py.File) -> None:
    """The root attributes and groups of a recording file, written out by hand."""
    f.attrs["h5stream_format"] = "hdmea-recording"
    f.attrs["h5stream_format_version"] = "1"
    f.attrs["dataset_id"] = "hostile"
    f.attrs["stage1_completed"] = False
    for name in ("units", "stimulus", "metadata", "pipeline/session_info"):
        f.require_group(name)


# --------------------------------------------------------------------------- our own formats


def test_group_nested_10000_levels_deep(tmp_path):
    path = tmp_path / "deep.h5"
    with h5py.File(path, "w") as f:
        recording_root(f)
        gid = f["metadata"].id
        for _ in range(10_000):
            gid = h5py.h5g.create(gid, b"a")
    assert_refused(read_in_child(path, RECORDING_READERS), RECORDING_READERS, "nested too deeply")


@pytest.mark.slow
def test_group_of_a_million_members(tmp_path):
    path = tmp_path / "many.h5"
    with h5py.File(path, "w", libver="latest") as f:
        recording_root(f)
        gid = f["units"].id
        for i in range(1_000_000):  # soft links: the cheapest members to create (about 10 s)
            gid.links.create_soft(b"u%07d" % i, b"/metadata")
    assert_refused(read_in_child(path, RECORDING_READERS), RECORDING_READERS, "too many members")


def test_dataset_declaring_1e11_elements(tmp_path):
    path = tmp_path / "bomb.h5"
    with h5py.File(path, "w") as f:
        recording_root(f)
        unit = f["units"].create_group("u1")
        unit.create_dataset("spike_times", shape=(10**11,), dtype="<u8", chunks=(2**20,))
        unit.attrs["row"], unit.attrs["col"] = 3, 4
    assert path.stat().st_size < 100_000
    assert_refused(read_in_child(path, RECORDING_READERS), RECORDING_READERS, "declares more data than the file holds")


def test_string_declaring_1_gb(tmp_path):
    path = tmp_path / "long_string.h5"
    with h5py.File(path, "w") as f:
        recording_root(f)
        ds = f["metadata"].create_dataset("note", shape=(1,), dtype="S1000000000")
        ds.attrs["h5stream_type"] = "str"
    assert_refused(read_in_child(path, RECORDING_READERS), RECORDING_READERS, "string elements are too long")


def test_text_that_is_not_utf8(tmp_path):
    """h5py hands invalid UTF-8 over as lone surrogates; our readers refuse it, naming the object."""
    path = tmp_path / "not_utf8.h5"
    utf8 = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as f:
        recording_root(f)
        info = f["pipeline/session_info"]
        ds = info.create_dataset("warnings", data=np.array([b"m\xf3vil"], dtype=object), dtype=utf8)
        ds.attrs["h5stream_type"] = "list:str"
        f.attrs.create("created_at", np.array(b"2026-01-01 \xff", dtype=utf8))
    readers = ("recording", "session", "report")  # the verifier reads bytes, not text
    results = read_in_child(path, readers)
    assert_refused(results, readers, "not valid UTF-8")
    # Not silently the same text with the bad byte replaced or escaped
    assert all("[/pipeline/session_info/warnings]" in results[r]["message"] or "created_at" in results[r]["message"]
               for r in readers)


# --------------------------------------------------------------------------- vendor files


def _small_cmcr(path: Path) -> None:
    region = Region(top=1, left=1, bottom=4, right=3, factors=np.full((4, 3), 1000))
    write_cmcr(path, [region], np.zeros((8, 65, 65), dtype=np.int64))


def test_cmcr_sensor_data_declaring_1e11_samples(tmp_path):
    path = tmp_path / "rec.cmcr"
    _small_cmcr(path)
    with h5py.File(path, "a") as f:
        group = f["Acquisition/Sensor Data"]
        attrs = dict(group["SensorData 1 1"].attrs)
        del group["SensorData 1 1"]
        ds = group.create_dataset("SensorData 1 1", shape=(10**11 // 12, 3, 4), dtype="<u2", chunks=(4096, 3, 4))
        for key, value in attrs.items():
            ds.attrs[key] = value
    readers = ("vendor_check", "cmcr")
    assert_refused(read_in_child(path, readers), readers, "declares more data than the file holds")


def test_cmtr_peaks_declaring_1e11_rows_and_deep_nesting(tmp_path):
    path = tmp_path / "rec.cmtr"
    write_cmtr(path, [dict(unit_id=1, sensor_id=sensor_id(2, 3), row=2, col=3, spikes=[5, 9])])
    with h5py.File(path, "a") as f:
        unit = f["Spike Sorter/Unit 1"]
        dtype = unit["Peaks"].dtype
        del unit["Peaks"]
        unit.create_dataset("Peaks", shape=(10**11,), dtype=dtype, chunks=(65536,))
    readers = ("vendor_check", "cmtr")
    assert_refused(read_in_child(path, readers), readers, "declares more data than the file holds")

    deep = tmp_path / "deep.cmtr"
    write_cmtr(deep, [dict(unit_id=1, sensor_id=sensor_id(2, 3), row=2, col=3, spikes=[5, 9])])
    with h5py.File(deep, "a") as f:
        gid = f["Spike Sorter/Unit 1"].id
        for _ in range(10_000):
            gid = h5py.h5g.create(gid, b"a")
    assert_refused(read_in_child(deep, readers), readers, "nested too deeply")


# --------------------------------------------------------------------------- crash isolation in batches

# A pre-check process that dies as libhdf5 does on some damaged .cmtr files, for files named crash*.
CRASHING_CHILD = textwrap.dedent('''
    import os, signal
    import h5stream.files.verify as v
    real = v.open_validated
    def opener(p, **kw):
        if os.path.basename(p).startswith("crash"):
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(p, **kw)
    v.open_validated = opener
    v._verify_child()
''')


def _copy_pair(tiny_recording, folder: Path, name: str) -> tuple[Path, Path]:
    import shutil

    cmcr, cmtr = folder / f"{name}.cmcr", folder / f"{name}.cmtr"
    shutil.copy(tiny_recording.cmcr_path, cmcr)
    shutil.copy(tiny_recording.cmtr_path, cmtr)
    return cmcr, cmtr


def test_batch_input_that_crashes_the_reader_fails_alone(tiny_recording, tmp_path, monkeypatch):
    """--verify-inputs (on by default): the crashing recording fails with a typed error, the others run."""
    import concurrent.futures as cf

    import h5stream.files.verify as verify
    from hdmea.pipeline.batch import engine, run_batch

    ran = []

    def job(recording, output, config):  # the pipeline's place, so that its inputs are checked
        ran.append(recording.name)
        return {}

    monkeypatch.setattr(verify, "_VERIFY_CHILD", CRASHING_CHILD)
    monkeypatch.setattr(engine, "run_pipeline_job", job)
    pairs = [_copy_pair(tiny_recording, tmp_path, name) for name in ("a", "crash_b", "c")]
    with cf.ThreadPoolExecutor(1) as ex:
        summary = run_batch(pairs, None, tmp_path / "out", executor=ex)
    by_name = {r.name: r for r in summary.results}
    assert sorted(ran) == ["a", "c"]
    assert by_name["a"].status == by_name["c"].status == "done"
    failed = by_name["crash_b"]
    assert failed.status == "failed" and failed.kind == "data"
    assert "crash_b.cmcr" in failed.error and "crashed" in failed.error

    # Without the pre-check the recording is submitted (here the driver's own checks open it in-process).
    ran.clear()
    with cf.ThreadPoolExecutor(1) as ex:
        summary = run_batch(pairs, None, tmp_path / "out2", executor=ex, verify_inputs=False)
    assert sorted(ran) == ["a", "c", "crash_b"]


def test_run_verify_inputs_option(tiny_recording, tmp_path, monkeypatch, capsys):
    import h5stream.files.verify as verify
    from hdmea.cli import main

    monkeypatch.setattr(verify, "_VERIFY_CHILD", CRASHING_CHILD)
    cmcr, cmtr = _copy_pair(tiny_recording, tmp_path, "crash_r")
    code = main(["run", str(cmcr), str(cmtr), "--out", str(tmp_path / "r.h5"), "--verify-inputs"])
    err = capsys.readouterr().err
    assert code != 0 and "crash_r.cmcr" in err and "crashed" in err
    assert not (tmp_path / "r.h5").exists()


# --------------------------------------------------------------------------- damaged text in attributes


def test_attribute_string_declaring_1_gb(tmp_path):
    """A text attribute whose stored type claims 10^9 bytes (libhdf5 fails while listing attributes)."""
    import re
    import struct

    path = tmp_path / "long_attribute.h5"
    with h5py.File(path, "w") as f:
        recording_root(f)
        f["units"].create_group("u1").attrs["label"] = np.bytes_(b"x" * 1000)
    raw = bytearray(path.read_bytes())
    # The attribute's datatype message: a version-1 string type (0x13), its flags, its size 1000.
    [at] = [m.start() for m in re.finditer(rb"\x13[\x00-\xff]\x00\x00\xe8\x03\x00\x00", bytes(raw))]
    raw[at + 4:at + 8] = struct.pack("<I", 10**9)
    path.write_bytes(bytes(raw))
    readers = ("recording", "session")  # the report lists units without reading their attributes
    results = read_in_child(path, readers)
    assert_refused(results, readers, "/units/u1")


def _metadata_file(path: Path, stored: str | bytes, *, as_dataset: bool = False) -> None:
    """A recording whose /metadata/extra holds the typed JSON text ``stored`` (bytes: stored as they are)."""
    with h5py.File(path, "w") as f:
        recording_root(f)
        group = f["metadata"].create_group("extra")
        if as_dataset:
            ds = group.create_dataset("note", data=np.array([stored], dtype=object), dtype=h5py.string_dtype())
            ds.attrs["h5stream_type"] = "json"
        else:
            group.attrs["h5stream_attr_types"] = json.dumps({"note": "json"})
            group.attrs.create("note", np.array(stored, dtype=h5py.string_dtype()))


GOOD_JSON = '{"__tuple__": ["m\\u00f3vil", 1, {"__bytes__": "AAH/"}]}'
GOOD_VALUE = ("m\u00f3vil", 1, b"\x00\x01\xff")


@pytest.mark.parametrize("as_dataset", [False, True])
@pytest.mark.parametrize(("stored", "expected", "words"), [
    (GOOD_JSON, GOOD_VALUE, None),  # undamaged: read exactly
    # a lone surrogate stored on purpose (as an ASCII escape) reads back as that text
    (GOOD_JSON.replace("m\\u00f3", "m\\udcf3"), ("m\udcf3vil", 1, b"\x00\x01\xff"), None),
    (GOOD_JSON.replace("\\u00f3", "\u00f3"), None, "never written with"),  # a byte typed JSON never holds
    (GOOD_JSON.encode().replace(b"\\u00f3", b"\xf3"), None, "not valid UTF-8"),  # not UTF-8 at all
    (GOOD_JSON[:-1], None, "cannot decode"),  # truncated JSON
    (GOOD_JSON.replace("AAH/", "AAH"), None, "cannot decode"),  # base64 cut short
])
def test_typed_json_is_read_exactly_or_refused(tmp_path, stored, expected, words, as_dataset):
    """Damage that typed JSON cannot hold is refused naming the object; what it can hold is read exactly.

    A flip that leaves other valid ASCII JSON (``"mobil"`` to ``"movil"``) reads as that
    text: only the end-to-end checksums of the files we write can see it.
    """
    from hdmea.io.hdf5_store import decode_node, node_from_h5, open_recording_hdf5

    path = tmp_path / "meta.h5"
    _metadata_file(path, stored, as_dataset=as_dataset)
    with open_recording_hdf5(path) as f:
        if words is None:
            assert decode_node(node_from_h5(f["metadata/extra"]))["note"] == expected
            return
        with pytest.raises(FormatError) as err:
            decode_node(node_from_h5(f["metadata/extra"]))
    message = str(err.value)
    assert words in message and str(path) in message and "/metadata/extra" in message


def test_report_refuses_a_unit_position_that_is_not_a_number(tmp_path):
    """The report used to draw a unit whose row it could not read at row 0."""
    from hdmea.errors import RecordingFormatError
    from hdmea.report.data import read_recording_data

    path = tmp_path / "rowless.h5"
    with h5py.File(path, "w") as f:
        recording_root(f)
        unit = f["units"].create_group("u1")
        unit.create_dataset("spike_times", data=np.arange(5, dtype=np.uint64))
        unit.attrs["row"], unit.attrs["col"] = 3, 4
    assert read_recording_data(path).unit_positions == {"u1": (3, 4)}
    with h5py.File(path, "a") as f:
        f["units/u1"].attrs["row"] = "three"
    with pytest.raises(RecordingFormatError) as err:
        read_recording_data(path)
    assert "/units/u1/@row" in str(err.value) and "'three'" in str(err.value)
