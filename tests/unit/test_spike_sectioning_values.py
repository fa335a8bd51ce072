"""The values ``section_spike_times`` stages, against a naive numpy twin of the original's sectioning on
planted spikes; every staged array its own memory (an edit in place of one unit's value changes no other);
``sorted_unique_runs`` against ``np.unique`` of each run."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from h5stream.kernels.sectioning import sorted_unique_runs
from hdmea.pipeline import create_session
from hdmea.session.target import open_target
from hdmea.steps.spike_sectioning import section_spike_times

FS = 20000.0
#: two movies of occurrences given by their section times (no trial layout: one trial per occurrence);
#: the noise movie's occurrences overlap, so that its trials share spikes
SECTIONS = {"step_up": np.array([[100, 900], [1500, 2600], [3000, 3001]], dtype=np.int64),
            "noise": np.array([[200, 1700], [1200, 2500]], dtype=np.int64)}
PAD = (0.005, 0.01)  # seconds: 100 and 200 samples


def _planted_units(seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    units = {f"unit_{i:03d}": np.unique(rng.integers(0, 4000, size=n)).astype(np.uint64)
             for i, n in enumerate((300, 40, 1, 700))}
    units["unit_009"] = np.zeros(0, np.uint64)  # a silent unit
    units["unit_010"] = np.array([0, 99, 100, 899, 900, 1099, 3000, 3200], dtype=np.uint64)  # on every edge
    return units


def _sectioned_session():
    units = _planted_units()
    s = create_session("rec")
    with open_target(None, s, step="load_recording") as t:
        t.add_units({name: {"spike_times": spikes} for name, spikes in units.items()})
        t.add_stimulus(section_times=SECTIONS)
        t.add_metadata({"sampling_rate": FS})
        t.mark_step_complete()
        t.mark_step_complete("add_section_time")
    section_spike_times(session=s, pad_margin=PAD)
    return s, units


def _naive(spikes: np.ndarray, sections: np.ndarray) -> dict:
    """The original's sectioning of one movie, spelled out: a mask per trial of the padded section."""
    spikes = spikes.astype(np.int64)
    before, after = (int(round(p * FS)) for p in PAD)
    padded = np.stack([np.maximum(sections[:, 0] - before, 0), sections[:, 1] + after], axis=1)
    trials = [spikes[(spikes >= a) & (spikes < b)] for a, b in padded]
    joined = np.concatenate(trials)
    return {"full_spike_times": np.unique(joined), "trials": trials, "trials_start_end": sections,
            "spike_times": joined.astype(np.uint64),
            "trial_offsets": np.concatenate([[0], np.cumsum([t.size for t in trials])]).astype(np.int64),
            "trial_bounds": padded.astype(np.uint64)}


def _same(got, expected) -> None:
    got = np.asarray(got)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_staged_values_are_the_naive_sectioning_of_planted_spikes():
    s, units = _sectioned_session()
    for name, spikes in units.items():
        for movie, sections in SECTIONS.items():
            got = s.units[name]["spike_times_sectioned"][movie]
            want = _naive(spikes, sections)
            for key in ("full_spike_times", "trials_start_end", "spike_times", "trial_offsets", "trial_bounds"):
                _same(got[key], want[key])
            trials = got["trials_spike_times"]
            assert list(trials) == list(range(len(sections)))
            for k, trial in enumerate(want["trials"]):
                _same(trials[k], trial)


def _staged_arrays(s) -> list[tuple[str, np.ndarray]]:
    found = []
    for name in s.units:
        for movie in SECTIONS:
            group = s.units[name]["spike_times_sectioned"][movie]
            for key in ("full_spike_times", "trials_start_end", "spike_times", "trial_offsets", "trial_bounds"):
                found.append((f"{name}/{movie}/{key}", group[key]))
            found += [(f"{name}/{movie}/trials/{k}", v) for k, v in group["trials_spike_times"].items()]
    return found


def test_no_staged_value_shares_memory_with_another():
    s, _ = _sectioned_session()
    arrays = [(where, a) for where, a in _staged_arrays(s) if a.nbytes]
    spans = sorted((a.__array_interface__["data"][0], a.__array_interface__["data"][0] + a.nbytes, where)
                   for where, a in arrays)
    for (_, end, where), (start, _, other) in zip(spans, spans[1:]):
        assert end <= start, f"{where} and {other} share memory"
    # an edit in place of one unit's value (the staged array itself) changes no other unit's
    first, second = list(s.units)[:2]
    bounds = s.units[first]["spike_times_sectioned"]["step_up"]["trials_start_end"]
    bounds[0, 0] = 7
    assert s.units[second]["spike_times_sectioned"]["step_up"]["trials_start_end"][0, 0] == SECTIONS["step_up"][0, 0]
    offsets = s.units[first]["spike_times_sectioned"]["step_up"]["trial_offsets"]
    trials = s.units[first]["spike_times_sectioned"]["step_up"]["trials_spike_times"]
    before = [trials[k].copy() for k in trials]
    offsets[1] = 0
    assert all(np.array_equal(trials[k], v) for k, v in zip(trials, before))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=50), st.lists(st.integers(0, 50), max_size=8))
def test_sorted_unique_runs_is_numpys_unique_of_each_run(items, cuts):
    values = np.sort(np.asarray(items, dtype=np.uint64)) if len(items) % 3 else np.asarray(items, np.uint64)
    edges = sorted({0, values.size, *(c for c in cuts if c <= values.size)})
    starts, ends = np.array(edges[:-1], np.int64), np.array(edges[1:], np.int64)
    got = sorted_unique_runs(values, starts, ends)
    assert len(got) == starts.size
    for run, s, e in zip(got, starts, ends):
        _same(run, np.unique(values[s:e]).astype(np.int64))
        assert not np.shares_memory(run, values)
    spans = [r for r in got if r.size]
    assert not any(np.shares_memory(a, b) for i, a in enumerate(spans) for b in spans[i + 1:])


def test_sorted_unique_runs_refuses_bad_runs():
    values = np.arange(10, dtype=np.uint64)
    with pytest.raises(ValueError, match="within the 10 values"):
        sorted_unique_runs(values, [0], [11])
    with pytest.raises(ValueError, match="overlap"):
        sorted_unique_runs(values, [0, 3], [5, 8])
    with pytest.raises(ValueError, match="1-D"):
        sorted_unique_runs(values.reshape(2, 5), [0], [1])
