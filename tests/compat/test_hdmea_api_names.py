"""Every public name of the original pipeline's ``src/hdmea`` (jiang-lab-retina/hdmea_processing at fe13de2),
imported from the path where the original defined it.

Left out, as the plans replace them: ``hdmea.viz`` (``hdmea view``), ``hdmea.io.zarr_store`` (the HDF5
recording) and ``hdmea.features.ap_tracking`` (its trained network is not public).  The list was read from
the original's modules (top-level functions, classes and constants, and the names each ``__init__``
imports); it is written out in ``hdmea._compat_table``, which also says where each name lives.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from hdmea._compat_table import ORIGINAL_API, home_of, names_at

#: The list is the one table of the original's paths (hdmea._compat_table), read as data.
ORIGINAL_NAMES: dict[str, list[str]] = {path: names_at(path) for path in ORIGINAL_API}

CASES = [(module, name) for module, names in ORIGINAL_NAMES.items() for name in names]

#: The two private helpers of hdmea.features.sta the lab's scripts import; every other name is public.
PRIVATE = {("hdmea.features.sta", "_load_stimulus_movie"), ("hdmea.features.sta", "_find_noise_movie_from_session")}
#: The guide that states how many public names the original has (its figure is checked against the table).
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide" / "from-hdmea-processing.md"


def _entries_as_written() -> int:
    """The table's entries as written: a name listed twice at one path counts twice here, once in CASES."""
    return sum(len(names) for groups in ORIGINAL_API.values() for names in groups.values())


def test_the_list_is_complete_and_unique():
    assert len(CASES) == len(set(CASES)) == _entries_as_written(), "a name is listed twice at one path"
    assert {case for case in CASES if case[1].startswith("_")} == PRIVATE
    assert all(module.startswith("hdmea") for module in ORIGINAL_NAMES)
    stated = re.search(r"lists\s+all\s+(\d+)\s+public\s+names", GUIDE.read_text())
    assert stated, f"{GUIDE.name} no longer states how many public names the original has"
    assert int(stated.group(1)) == len(CASES) - len(PRIVATE), (
        f"{GUIDE.name} states {stated.group(1)} public names; the table holds {len(CASES) - len(PRIVATE)}: "
        f"update the guide with the table")


@pytest.mark.parametrize("module", sorted(ORIGINAL_NAMES))
def test_every_module_imports(module):
    importlib.import_module(module)


@pytest.mark.parametrize(("module", "name"), CASES, ids=[f"{m}:{n}" for m, n in CASES])
def test_every_name_imports_from_its_original_path(module, name):
    value = getattr(importlib.import_module(module), name)
    assert value is not None or name.isupper()
    home, attribute = home_of(module, name)
    assert value is getattr(importlib.import_module(home), attribute), f"{module}.{name} is not the object at {home}"


def test_the_same_object_under_every_path():
    from hdmea import features, io, pipeline
    from hdmea.features import sta
    from hdmea.io import hdf5_store, section_time, spike_sectioning
    from hdmea.pipeline import config, flows, loader, runner, session

    assert pipeline.load_recording is runner.load_recording
    assert pipeline.run_flow is flows.run_flow
    assert pipeline.create_session is session.create_session
    assert pipeline.load_hdf5_to_session is loader.load_session_from_hdf5
    assert pipeline.add_section_time is section_time.add_section_time is io.add_section_time
    assert io.section_spike_times is spike_sectioning.section_spike_times
    assert io.write_units is hdf5_store.write_units
    assert features.compute_sta is sta.compute_sta and features.STAResult is sta.STAResult
    assert runner.extract_features is pipeline.extract_features
    assert config.load_flow_config("set6a_full").name == "set6a_full"
