"""Shared fixtures of the HD-MEA reader, synthetic-recording and part-1 pipeline tests.

Import explicitly (``from tests.hdmea_fixtures import tiny_recording``); the
recordings are generated once per test session into a temporary directory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hdmea.synthetic import SyntheticConfig, generate_recording

TRUTH_IGNORED_ATTRS = frozenset({"created_at", "updated_at", "saved_at"})


# Each test module that imports these fixtures gets its own fixture definitions;
# the cache makes them share one generated recording per test session.
_GENERATED: dict[str, object] = {}


@pytest.fixture(scope="session")
def tiny_recording(tmp_path_factory):
    """A tiny synthetic recording (6 units, one silent; the step movie shown twice). Do not modify it."""
    if "tiny" not in _GENERATED:
        out = tmp_path_factory.mktemp("tiny_recording")
        _GENERATED["tiny"] = generate_recording(out, "rec", config=SyntheticConfig.tiny(), seed=7)
    return _GENERATED["tiny"]


@pytest.fixture(scope="session")
def tiny_truth(tiny_recording):
    if "tiny_truth" not in _GENERATED:
        _GENERATED["tiny_truth"] = tiny_recording.truth()
    return _GENERATED["tiny_truth"]


@pytest.fixture
def recording_copy(tiny_recording, tmp_path):
    """A private copy of the tiny recording's files (for tests that damage them)."""
    for p in (tiny_recording.cmcr_path, tiny_recording.cmtr_path, tiny_recording.stimulus_path,
              tiny_recording.noise_movie_path):
        shutil.copy(p, tmp_path / Path(p).name)
    return tmp_path / tiny_recording.cmcr_path.name, tmp_path / tiny_recording.cmtr_path.name
