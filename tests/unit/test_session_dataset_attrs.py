"""A resumed session checks every dataset's attributes against the file's digests, also the datasets read
without h5py's attribute listing (most of a session's datasets have no attribute): one whose attribute
another tool took away is refused, naming it."""

from __future__ import annotations

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
