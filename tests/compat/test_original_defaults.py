"""Every module default of the original (``DEFAULT_*``, read from its source: tests/data/lab_layout/original_defaults.json)
exists at its path with its value, and a value set there reaches the code that reads it."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from tests.lab_layout import load_manifest

DEFAULTS = load_manifest("original_defaults.json")["defaults"]
#: AP tracking needs a trained network whose weights are not public: its module is not provided.
NOT_PROVIDED = ("hdmea.features.ap_tracking",)
PROVIDED = [d for d in DEFAULTS if not d["module"].startswith(NOT_PROVIDED)]


def test_the_table_is_the_originals():
    assert len(DEFAULTS) == 15 and len(PROVIDED) == 9
    assert {d["name"] for d in PROVIDED} >= {"DEFAULT_ACQUISITION_RATE", "DEFAULT_STIMULI_DIR", "DEFAULT_PAD_FRAME",
                                             "DEFAULT_PLAYLIST_PATH", "DEFAULT_MOVIE_LENGTH_PATH",
                                             "DEFAULT_CONFIG_DIR"}


@pytest.mark.parametrize("entry", PROVIDED, ids=lambda d: f"{d['module']}.{d['name']}")
def test_every_default_exists_with_the_originals_value(entry):
    module = importlib.import_module(entry["module"])
    value = getattr(module, entry["name"])
    if entry["type"] == "Path":
        assert isinstance(value, Path) and value == Path(entry["value"])
    elif entry["type"] == "Path expression":  # relative to the original's checkout: ours is the shipped folder
        assert isinstance(value, Path) and value.is_dir() and any(value.glob("*.json"))
    elif entry["type"] in ("tuple", "list"):
        assert list(value) == entry["value"]
    else:
        assert type(value).__name__ == entry["type"] and value == entry["value"]


@pytest.mark.parametrize("entry", PROVIDED, ids=lambda d: f"{d['module']}.{d['name']}")
def test_a_default_set_at_the_original_path_reaches_where_it_lives(entry, monkeypatch):
    from hdmea._compat_table import home_of

    module = importlib.import_module(entry["module"])
    home, attribute = home_of(entry["module"], entry["name"])
    new = {"str": "elsewhere.csv", "int": 7, "float": 12345.0}.get(entry["type"], Path("/elsewhere"))
    monkeypatch.setattr(module, entry["name"], new)
    assert getattr(importlib.import_module(home), attribute) == new


def test_the_acquisition_rate_set_at_the_runner_path_is_used(tiny_recording, tmp_path, monkeypatch):
    """A recording loaded without a .cmcr takes the default rate: set at hdmea.pipeline.runner, it is used."""
    import h5py

    import hdmea.pipeline.runner as runner
    from hdmea.pipeline import load_recording

    monkeypatch.setattr(runner, "DEFAULT_ACQUISITION_RATE", 10000.0)
    result = load_recording(None, tiny_recording.cmtr_path, "rec", output_dir=tmp_path)
    with h5py.File(result.hdf5_path, "r") as f:
        assert float(np.ravel(f["metadata/acquisition_rate"][()])[0]) == 10000.0
