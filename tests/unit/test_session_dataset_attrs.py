"""A resumed session checks every dataset's attributes against the file's digests, also the datasets read
without h5py's attribute listing (most of a session's datasets have no attribute): one whose attribute
another tool took away is refused, naming it."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from h5stream.errors import ChecksumError, H5StreamError
from hdmea.pipeline import PipelineSession, create_session

SPIKES = "/units/unit_001/spike_times"
TRIAL = "/units/unit_001/trials/0"


def _saved(path):
    session = create_session(dataset_id="rec")
    session.add_units({"unit_001": {"spike_times": np.arange(10, dtype=np.int64),
                                    "trials": {"0": np.arange(3, dtype=np.float64)}}})
    session.save(output_path=path)
    with h5py.File(path, "r") as f:  # the planted layout: one dataset with an attribute, one without
        assert dict(f[SPIKES].attrs) == {"unit": "sample_index"} and len(f[TRIAL].attrs) == 0
    return path


def test_the_saved_datasets_resume_with_their_values(tmp_path):
    resumed = PipelineSession.load(_saved(tmp_path / "rec.h5"))
    unit = resumed.units["unit_001"]
    np.testing.assert_array_equal(unit["spike_times"], np.arange(10))
    np.testing.assert_array_equal(unit["trials"]["0"], np.arange(3.0))


def test_an_attribute_taken_away_by_another_tool_is_refused_naming_the_dataset(tmp_path):
    path = _saved(tmp_path / "rec.h5")
    with h5py.File(path, "r+") as f:
        del f[SPIKES].attrs["unit"]
        assert len(f[SPIKES].attrs) == 0  # now read as a dataset without attributes
    with pytest.raises(H5StreamError) as caught:
        PipelineSession.load(path)
    assert SPIKES in str(caught.value)


@pytest.mark.parametrize("value", ["added", np.array(["a", "b"], dtype=h5py.string_dtype())], ids=["str", "strings"])
def test_an_attribute_added_by_another_tool_to_a_dataset_without_any_is_refused(tmp_path, value):
    path = _saved(tmp_path / "rec.h5")
    with h5py.File(path, "r+") as f:  # another tool, after the save: an attribute where none was written
        f[TRIAL].attrs["note"] = value
    with pytest.raises(ChecksumError) as caught:
        PipelineSession.load(path)
    message = str(caught.value)
    assert caught.value.path is not None and str(path) in message
    assert TRIAL in message and "note" in message and "no text attributes" in message
    assert "remove them" in message  # what to do
    with h5py.File(path, "r") as f:  # nothing was changed by the refusal
        assert f[TRIAL].attrs["note"] is not None


def test_an_attribute_added_to_a_dataset_without_any_resumes_unchecked_when_asked(tmp_path):
    path = _saved(tmp_path / "rec.h5")
    with h5py.File(path, "r+") as f:
        f[TRIAL].attrs["note"] = "added"
    resumed = PipelineSession.load(path, verify=False)
    np.testing.assert_array_equal(resumed.units["unit_001"]["trials"]["0"], np.arange(3.0))


def test_an_attribute_added_to_a_dataset_that_has_some_is_refused(tmp_path):
    path = _saved(tmp_path / "rec.h5")
    with h5py.File(path, "r+") as f:
        f[SPIKES].attrs["note"] = "added"
    with pytest.raises(ChecksumError) as caught:
        PipelineSession.load(path)
    assert SPIKES in str(caught.value)


NUMBERS = [np.float64(3.5), np.arange(4, dtype=np.int32)]


@pytest.mark.parametrize("value", NUMBERS, ids=["float", "ints"])
def test_a_number_added_by_another_tool_to_a_dataset_without_attributes_is_refused(tmp_path, value):
    path = _saved(tmp_path / "rec.h5")
    with h5py.File(path, "r+") as f:  # another tool, after the save: a number where no attribute was written
        f[TRIAL].attrs["gain"] = value
    with pytest.raises(ChecksumError) as caught:
        PipelineSession.load(path)
    message = str(caught.value)
    assert caught.value.path is not None and str(path) in message
    assert TRIAL in message and "gain" in message and "no attributes" in message and "remove them" in message
    with h5py.File(path, "r") as f:  # nothing was changed by the refusal
        np.testing.assert_array_equal(f[TRIAL].attrs["gain"], value)
    resumed = PipelineSession.load(path, verify=False)  # read as stored when asked
    np.testing.assert_array_equal(resumed.units["unit_001"]["trials"]["0"], np.arange(3.0))


def test_a_number_added_to_a_dataset_of_a_resumed_and_saved_checkpoint_is_refused(tmp_path):
    session = PipelineSession.load(_saved(tmp_path / "rec.h5"))
    session.checkpoint(tmp_path / "work.checkpoint.h5")
    resumed = PipelineSession.load(tmp_path / "work.checkpoint.h5")
    saved = resumed.save(output_path=tmp_path / "resumed.h5")
    resumed.close()
    for path in (tmp_path / "work.checkpoint.h5", saved):
        PipelineSession.load(path).close()  # as written: loads
        with h5py.File(path, "r+") as f:
            f[TRIAL].attrs["gain"] = 2
        with pytest.raises(ChecksumError, match="gain") as caught:
            PipelineSession.load(path)
        assert TRIAL in str(caught.value) and str(path) in str(caught.value)


def test_an_object_with_numbers_only_keeps_an_empty_set_and_loads(tmp_path):
    path = _saved(tmp_path / "rec.h5")
    with h5py.File(path, "r") as f:  # a group whose attributes are all numbers, none of them text
        sets = json.loads(f.attrs["h5stream_checksums"])
        numbers_only = [p for p, packed in sets["attribute_digests"]["text"].items() if packed == ""]
        assert numbers_only and all(len(f[p].attrs) for p in numbers_only)
        assert not any(isinstance(v, str) for p in numbers_only for v in f[p].attrs.values())
        assert sets["sets_complete"] is True
    PipelineSession.load(path).close()


def test_a_manifest_without_complete_sets_reads_as_before(tmp_path):
    """A file whose manifest does not say every object has a set (an older writer's): a number added where
    no attribute was loads, as such files always did; added text is still refused."""
    path = _saved(tmp_path / "rec.h5")
    with h5py.File(path, "r+") as f:
        document = json.loads(f.attrs["h5stream_checksums"])
        del document["sets_complete"]
        document["attribute_digests"]["text"] = {p: d for p, d in document["attribute_digests"]["text"].items() if d}
        f.attrs["h5stream_checksums"] = json.dumps(document)
        f[TRIAL].attrs["gain"] = 3.5
    resumed = PipelineSession.load(path)
    np.testing.assert_array_equal(resumed.units["unit_001"]["trials"]["0"], np.arange(3.0))
    resumed.close()
    with h5py.File(path, "r+") as f:
        f[TRIAL].attrs["note"] = "added"
    with pytest.raises(ChecksumError, match="note"):
        PipelineSession.load(path)
