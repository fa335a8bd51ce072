"""Every read the lab's analysis code makes of a recording file, performed on the files hdmea writes.

``tests/data/lab_layout/lab_reads.json`` lists the reads (file and line of the original repository at
fe13de2, the idiom, the path with its names as fields), found by ``tests/manual/scan_lab_reads.py``
parsing the lab's analysis code outside ``src/``, ``tests/`` and ``history``.  Each read whose path is
one of the original's measured files (``unified_session_u6.json``, ``immediate_store_u6.json``) is done
here, with real unit and movie names, on the file of the same mode that hdmea writes, and must give what it
gives on the original's file: the same kind, dtype kind and rank, and the same outcome of the idiom
(``float(f[p][()])`` works on a 0-d dataset, ``f[p][:]`` refuses one).
"""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from tests.compat.test_lab_layout_immediate import immediate_file  # noqa: F401  (the immediate-mode file)
from tests.compat.test_lab_unified_pipeline import _LAB_OWN, lab_run  # noqa: F401  (the session-mode file)
from tests.lab_layout import MANIFEST_DIR, load_manifest, perform_lab_reads, scalar_values, value_differences

READS = json.loads((MANIFEST_DIR / "lab_reads.json").read_text())

#: One-value datasets and attributes whose value differs from the original's on the same recording (the
#: manifests keep the original's under ``values``), and why; the same list is in the guide.
VALUE_DIFFERENCES = {
    "@created_at": "when written", "@updated_at": "when written", "pipeline@stage1_timestamp": "when written",
    "pipeline/session_info@saved_at": "when written",
    "units/<unit>/spike_times_sectioned/<movie>@created_at": "when written",
    "@source_files": "where the recording lies", "source_files@cmcr_path": "where the recording lies",
    "source_files@cmtr_path": "where the recording lies",
    "units/<unit>/spike_times_sectioned/<movie>/_attrs/n_trials":
        "movies shorter than their JSON trials (synthetic): one trial per occurrence; equal at real length",
    "units/<unit>/spike_times_sectioned/<movie>@n_trials": "the same",
    "units/<unit>/spike_times_sectioned/<movie>@trial_repeats": "the same",
    "units/<unit>/features/eimage_sta/metadata/n_spikes_used": "the sorter's accepted peaks (peaks='all': the original's)",
    "units/<unit>/features/eimage_sta@n_spikes": "the same",
    "units/<unit>/features/eimage_sta/metadata/duration_s":
        "the seconds of raw data averaged (the original: the duration asked for; equal when the raw data are longer)",
    "units/<unit>/features/sta_<movie>/metadata/n_spikes_used": "frame times one sample later (corrected defect)",
    "units/<unit>/features/<movie>/sta@n_spikes": "the same",
    "units/<unit>/features/sta_<movie>/metadata/n_spikes_excluded":
        "every occurrence of the movie pooled (corrected defect: the original counted the later ones excluded)",
    "units/<unit>/features/<movie>/sta@n_spikes_excluded": "the same",
    "units/<unit>/features/eimage_sta@version": "this library's feature version",
    "@features_extracted": "the features computed (the original's steps never add theirs: '[]')",
    "@stage1_completed": "True once loaded (the original's load_recording_with_eimage_sta leaves it False)",
    "@stage1_params_hash": "the hash of the stage-1 configuration given ('' for none)",
}


def _value_differences(path, manifest, read, skip=()):
    diff = value_differences(manifest["values"], scalar_values(path), manifest["movies"])
    return {p: rows for p, rows in diff.items() if not p.startswith(skip)}, {p for p in diff if p in read}


def test_the_list_of_reads_is_the_scan_of_the_lab_code():
    reads = READS["reads"]
    assert READS["commit"].startswith("fe13de2") and READS["files"] >= 60 and len(reads) >= 700
    assert {r["idiom"] for r in reads} == {"subscript", "in", "attrs"}
    # the reads the issue names are among them (viz_lnl.py's float(f[...][()]), create_mini_h5.py's guard)
    assert any(r["file"].endswith("viz_lnl.py") and r.get("conversion") == "float" and r["access"] == "[()]"
               for r in reads)
    assert any(r["file"].endswith("create_mini_h5.py") and r["idiom"] == "in" and "unit_meta" in r["path"]
               for r in reads)
    assert all(r["line"] > 0 and r["file"].endswith(".py") for r in reads)


@pytest.mark.slow
def test_every_lab_read_of_the_session_file_works_as_on_the_originals(lab_run):  # noqa: F811
    rec, _, output, _, _ = lab_run
    manifest = load_manifest("unified_session_u6.json")
    # the lab's own steps' results (geometry, RF fits) are written by the lab's code, not by hdmea
    paths = {p: v for p, v in manifest["paths"].items() if not p.startswith(_LAB_OWN)}
    result = perform_lab_reads(output, paths, READS["reads"], manifest["movies"])
    assert not result["failed"] and not result["absent"], result["failed"][:20] + result["absent"][:20]
    assert len(result["done"]) >= 600
    # the values: the original's, but where listed (the lab's own steps' results aside)
    differ, read = _value_differences(output, manifest, result["read"], _LAB_OWN + ("units/<unit>/auto_label",))
    assert set(differ) <= set(VALUE_DIFFERENCES), {p: differ[p][:2] for p in set(differ) - set(VALUE_DIFFERENCES)}
    # of them, the lab's code reads only these two (the file's date; the trials of too-short movies)
    assert read <= {"@created_at", "units/<unit>/spike_times_sectioned/<movie>/_attrs/n_trials"}, read


@pytest.mark.slow
def test_every_lab_read_of_the_immediate_file_works_as_on_the_originals(immediate_file):  # noqa: F811
    _, h5 = immediate_file
    manifest = load_manifest("immediate_store_u6.json")
    result = perform_lab_reads(h5, manifest["paths"], READS["reads"], manifest["movies"])
    assert not result["failed"] and not result["absent"], result["failed"][:20] + result["absent"][:20]
    assert len(result["done"]) >= 500
    differ, _ = _value_differences(h5, manifest, result["read"])
    assert set(differ) <= set(VALUE_DIFFERENCES), {p: differ[p][:2] for p in set(differ) - set(VALUE_DIFFERENCES)}
    assert sum(1 for p in manifest["values"]) > 300


@pytest.mark.slow
def test_a_file_with_1_element_scalars_fails_the_lab_reads(lab_run, tmp_path):  # noqa: F811
    """The check can fail: the layout earlier versions wrote (a scalar as a 1-element array) is caught."""
    _, _, output, _, _ = lab_run
    copy = tmp_path / "earlier.h5"
    shutil.copy(output, copy)
    with h5py.File(copy, "a") as f:
        for u in f["units"]:
            path = f"units/{u}/features/eimage_sta/geometry/center_row"
            value = f[path][()]
            del f[path]
            f[path] = np.array([value])
    manifest = load_manifest("unified_session_u6.json")
    paths = {p: v for p, v in manifest["paths"].items() if not p.startswith(_LAB_OWN[1:])}
    result = perform_lab_reads(copy, paths, READS["reads"], manifest["movies"])
    caught = [f for f in result["failed"] if "float(" in f and "center_row" in f]
    assert caught and all("('dataset', 'f', 1) where the original has [('dataset', 'f', 0)]" in f for f in caught), \
        "\n".join(result["failed"])
