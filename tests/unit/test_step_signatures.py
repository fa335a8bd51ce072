"""Step signatures shared with the original pipeline: native parameters first, the original's last.

Each step that serves both APIs at one path ends its signature with the
parameters that exist only for the original pipeline's scripts, keyword-only,
and documents them after its docstring's "The original pipeline's parameter(s)"
line; the original's positional call style still binds.
"""

from __future__ import annotations

import inspect
import re

import pytest

from hdmea.steps.features import extract_features
from hdmea.steps.load import load_recording
from hdmea.steps.section_time import add_section_time
from hdmea.steps.spike_sectioning import section_spike_times
from hdmea.steps.sta import compute_sta

# Facts from the original pipeline's signatures (hdmea_processing src/hdmea), not read from ours.
ORIGINAL_ONLY = {
    load_recording: ("output_dir", "allow_overwrite", "config"),
    section_spike_times: ("trial_repeats", "config_dir"),
    extract_features: ("zarr_path",),
    add_section_time: ("playlist_file_path", "movie_length_file_path", "repeats", "pad_frame",
                       "pre_margin_frame_num", "post_margin_frame_num"),
    compute_sta: ("cover_range", "use_multiprocessing", "stimuli_dir"),
}
COUNT_WORDS = {1: "the last of", 2: "the last two", 3: "the last three", 6: "the last six"}
HEADING = re.compile(r"^    The original pipeline's parameters? \(kept for its scripts; (.*)$", re.M)


def _documented_names(text: str) -> list[str]:
    """Parameter names of numpydoc definition lines (``name`` or ``a, b`` at the section's indent)."""
    names = []
    for line in text.splitlines():
        if re.fullmatch(r"    [A-Za-z_][\w, ]*", line):
            names.extend(n.strip() for n in line.split(","))
    return names


@pytest.mark.parametrize("func", list(ORIGINAL_ONLY), ids=lambda f: f.__name__)
def test_the_originals_parameters_form_a_documented_keyword_only_tail(func):
    tail = ORIGINAL_ONLY[func]
    params = list(inspect.signature(func).parameters.values())
    assert tuple(p.name for p in params[-len(tail):]) == tail
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[-len(tail):])
    doc = inspect.getdoc(func)
    doc = "\n".join("    " + line if line else line for line in doc.splitlines())  # getdoc dedents
    heading = HEADING.search(doc)
    assert heading is not None, f"{func.__name__}: no section for the original pipeline's parameters"
    assert heading.group(1).startswith(COUNT_WORDS[len(tail)])
    before, after = doc[:heading.start()], doc[heading.end():].split("\n    Returns\n")[0]
    native_documented = set(_documented_names(before))
    assert set(_documented_names(after)) == set(tail)
    assert not native_documented & set(tail)
    # every native parameter is documented before the heading (positional-or-keyword ones included)
    assert {p.name for p in params[:-len(tail)]} <= native_documented


def test_the_originals_positional_call_style_still_binds():
    bound = inspect.signature(add_section_time).bind("rec.h5", "set6a", playlist_file_path="p.csv")
    assert bound.arguments == {"hdf5_path": "rec.h5", "playlist_name": "set6a", "playlist_file_path": "p.csv"}
    bound = inspect.signature(compute_sta).bind("rec.h5", cover_range=(-60, 0), stimuli_dir="d")
    assert bound.arguments == {"hdf5_path": "rec.h5", "cover_range": (-60, 0), "stimuli_dir": "d"}
    with pytest.raises(TypeError):  # the tail is keyword-only: a third positional value is refused
        inspect.signature(add_section_time).bind("rec.h5", "set6a", "p.csv")
