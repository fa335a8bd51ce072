"""Byte flips and zeroed blocks in every file format we read: typed errors or the original data.

For each format (see :mod:`tests.fuzz._formats`) seeded plans of mutations of one
small original (single-byte flips in raw data and, as many, in metadata: object headers,
B-trees, heaps, attributes, Parquet footers, zarr metadata files; 10% in the stored types of
tables where the file has them; 20% zeroed blocks of 512 B and 4 KiB; in zarr stores 10% files
deleted, chunks truncated or swapped, shapes grown, see :mod:`tests.fuzz._mutations`),
from new seeds in every run (printed; ``--fuzz-seed`` replays them, see ``conftest.py``), is read through the format's public reader in
separate processes (:mod:`tests.fuzz._driver`), and each outcome is compared with
the unmutated file's result:

- ``identical``: the result equals the original's exactly (the bytes were padding,
  unused space or a copy the reader does not use);
- ``typed``: one of our errors (:class:`h5stream.errors.H5StreamError`), naming the file;
- ``raw``: any other exception (a bug);
- ``crash``: the reading process died (a bug);
- ``hang``: libhdf5 still looping on the damaged file after a few seconds (ended by a
  watchdog and reported; it must be inside libhdf5, never in our code);
- ``warned`` (vendor files only): a different result read with an
  ``UnusualVendorValueWarning`` whose text the result keeps (the recording states it);
- ``silent``: a different result without an error (a bug for our formats, which carry
  checksums; counted for vendor files, which carry none).

The originals are byte-identical from run to run (frozen clock, fixed-length folder),
so the outcomes of a seed repeat.  Known failures would be listed below (none are).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fuzz._driver import inside_libhdf5
from tests.fuzz._formats import FORMATS
from tests.fuzz._mutations import STRUCTURE, compound_type_ranges

OWN = [name for name, fmt in FORMATS.items() if fmt.own]
VENDOR = [name for name, fmt in FORMATS.items() if not fmt.own]

#: (test, format) -> why it fails today.
KNOWN: dict[tuple[str, str], str] = {}


def _cases(test: str, names: list[str]) -> list:
    return [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN[test, name]))
            if (test, name) in KNOWN else name for name in names]


def _details(report, outcome: str) -> str:
    return "\n".join(report.examples(outcome, 8))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FORMATS))
def test_mutations_cover_data_metadata_and_zeroed_blocks(fuzz_report, fuzz_originals, name):
    report = fuzz_report(name)
    fmt = FORMATS[name]
    print(f"{name}: {report.row()} in {report.seconds:.1f} s; by kind: "
          f"{ {kind: dict(counts) for kind, counts in report.by_kind().items()} }")
    kinds = report.by_kind()
    tables = not fmt.store and bool(compound_type_ranges(fuzz_originals / fmt.root / fmt.target if fmt.target else
                                                         fuzz_originals / fmt.root))
    structure = set(STRUCTURE) if fmt.store else set()  # a store's files deleted, truncated, swapped, grown
    assert set(kinds) == {"data", "metadata", "zeroed"} | ({"type"} if tables else set()) | structure
    n_data, n_metadata = sum(kinds["data"].values()), sum(kinds["metadata"].values())
    assert abs(n_data - n_metadata) <= len(report.seeds) and n_data + n_metadata >= 0.65 * len(report.mutations)
    if tables:  # the stored types of tables are damaged too (a .cmtr's Peaks, a .cmcr's SensorMeta)
        assert sum(kinds["type"].values()) >= 0.09 * len(report.mutations)
    # The flips reached the reader: damage was found, and some bytes were unused (except in the
    # Parquet folder and our zarr store, whose digests cover every byte of every file).
    assert report.count("typed") > 0
    # Unused bytes are few in a recording (7 of 300 flips landed there in one run): with one seed of 100
    # mutations (the per-Python step) none may land there by chance, so this needs three seeds or more.
    if len(report.mutations) >= 300:
        assert report.count("identical") > 0 or name in ("scptensor-parquet", "scptensor-zarr")


@pytest.mark.slow
@pytest.mark.parametrize("name", _cases("raw", list(FORMATS)))
def test_no_raw_exception(fuzz_report, name):
    report = fuzz_report(name)
    assert report.count("raw") == 0, f"{report.count('raw')} raw exceptions:\n{_details(report, 'raw')}"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FORMATS))
def test_typed_errors_name_the_file(fuzz_report, name):
    report = fuzz_report(name)
    root = FORMATS[name].root
    unnamed = [f"#{i}: {r['message']}" for i, r in report.outcomes.items()
               if r["outcome"] == "typed" and root not in r["message"]]
    assert not unnamed, "\n".join(unnamed[:8])


@pytest.mark.slow
@pytest.mark.parametrize("name", _cases("crash", list(FORMATS)))
def test_no_crash(fuzz_report, name):
    report = fuzz_report(name)
    assert report.count("crash") == 0, f"{report.count('crash')} crashes:\n{_details(report, 'crash')}"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FORMATS))
def test_reads_that_do_not_end_are_inside_libhdf5(fuzz_report, name):
    """A read still running after the watchdog's limit is libhdf5 looping on damaged metadata (inside h5py, or
    in a direct call of the engine's bindings), never our code."""
    report = fuzz_report(name)
    ours = [f"#{m.index} {m.describe()}: {report.outcomes[m.index]['where']}" for m in report.mutations
            if report.outcomes[m.index]["outcome"] == "hang"
            and not inside_libhdf5(report.outcomes[m.index]["where"])]
    assert not ours, "\n".join(ours)


@pytest.mark.slow
@pytest.mark.parametrize("name", _cases("silent", OWN))
def test_our_formats_never_return_silently_changed_data(fuzz_report, name):
    report = fuzz_report(name)
    silent = report.count("silent")
    assert silent == 0, f"{silent} silently changed results:\n{_details(report, 'silent')}"


@pytest.mark.slow
@pytest.mark.parametrize("name", VENDOR)
def test_vendor_files_silent_changes_are_counted(fuzz_report, name):
    """Vendor files carry no checksum: flips in raw samples come back changed; counted by kind."""
    report = fuzz_report(name)
    by_kind = report.by_kind()
    print(f"{name}: silently changed results by kind: { {k: c['silent'] for k, c in by_kind.items()} }")
    assert by_kind["data"]["silent"] > 0


def test_a_hang_in_a_direct_libhdf5_call_is_the_library_s():
    """The hang rule's frames: h5py's, and lines of the engine that call libhdf5 through its bindings."""
    import inspect

    from h5stream import batch_attrs
    from h5stream.files import _walk

    for function, call, where in ((batch_attrs.dataset_shape_and_dtype, "lib.H5Dget_space(did)", "batch_attrs.py"),
                                  (batch_attrs.read_plain, "lib.read_plain(oid, internal)", "batch_attrs.py"),
                                  (_walk._listed, "members(gid.id,", "files/_walk.py")):
        lines, first = inspect.getsourcelines(function)
        at = first + next(i for i, line in enumerate(lines) if call in line)
        assert inside_libhdf5(f"h5stream/{where}:{at} in {function.__name__}"), call
        assert not inside_libhdf5(f"h5stream/{where}:{first} in {function.__name__}")  # the def line
    assert inside_libhdf5("h5py/_hl/attrs.py:79 in __getitem__")
    assert not inside_libhdf5("h5stream/elements/registry.py:300 in _attr_str")


def test_the_watchdog_ends_a_read_that_loops_by_its_cpu_time(tmp_path):
    """A loop is ended after its CPU seconds (SIGXCPU), with the looping frame dumped; a wait is not (its limit
    is the wall-time backstop's), so a read slowed by a busy machine is not taken for a loop."""
    import signal
    import subprocess
    import sys

    from tests.fuzz._driver import _hang_frame

    script = tmp_path / "loop.py"
    script.write_text("import sys, time\nfrom tests.fuzz._child import _Watchdog\n"
                      "w = _Watchdog(1.0, 600)\nw.arm()\ntime.sleep(1.5)\nw.disarm()\nprint('waited', flush=True)\n"
                      "w.arm()\nx = 0\nwhile True: x += 1\n")  # one line: the signal lands on the loop's test or its body
    repo = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=repo,
                          env={**os.environ, "PYTHONPATH": repo})
    assert done.stdout == "waited\n"
    assert done.returncode == -signal.SIGXCPU, done.stderr
    assert _hang_frame(done.stderr).endswith("loop.py:10 in <module>"), done.stderr
