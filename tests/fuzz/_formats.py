"""The formats the fuzz tests mutate: how each original is written and how it is read back.

Each :class:`FuzzFormat` names the file written (``root``: a file, or a folder for
Parquet and zarr), the file inside it whose bytes are mutated (``target``; for a zarr
store, ``store`` is set and every file of it is mutated), its sibling files
that must sit beside it (the ``.cmtr``'s ``.cmcr``), and the public reader whose
result is compared.  ``own`` formats carry our checksums, so a changed result without
an error is a bug there; vendor files carry none, so changed results are counted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

RECORDING = "recording.h5"
CHECKPOINT = "recording.checkpoint.h5"
SAMPLING_RATE = 2000.0


@dataclasses.dataclass(frozen=True)
class FuzzFormat:
    name: str
    root: str  # file (or folder) name of the original, in the originals' folder
    target: str  # the mutated file, relative to ``root`` ("" when root is the file)
    load: Callable[[Path], object]
    own: bool = True
    siblings: tuple[str, ...] = ()  # files copied beside ``root`` in the reader's folder
    store: bool = False  # a zarr store: mutations name the file of the folder they damage


# --------------------------------------------------------------------------- readers


def load_recording_file(path: Path):
    """The recording store's reader: every group, dataset and attribute of the file, decoded."""
    from hdmea.io.hdf5_store import decode_node, node_from_h5, open_recording_hdf5

    with open_recording_hdf5(path) as f:
        return decode_node(node_from_h5(f))


def load_report(path: Path):
    """What ``hdmea report`` draws and ``hdmea inspect`` prints from a recording file."""
    from hdmea.report.data import read_recording_data
    from hdmea.report.tree import describe_recording

    return {"report": read_recording_data(path), "inspect": describe_recording(path, max_children=None)}


def load_checkpoint(path: Path):
    """A resumed session: its steps, warnings and every unit, metadata and stimulus value.

    The session's trees are live views of its file; they are copied into plain values before the
    session closes, so the comparison reads what the session held, not the file's later bytes.
    """
    from hdmea.pipeline import PipelineSession

    session = PipelineSession.load(path)
    try:
        return {"dataset_id": session.dataset_id, "steps": list(session.completed_steps),
                "warnings": list(session.warnings), "units": session.units.to_dict(),
                "metadata": session.metadata.to_dict(), "stimulus": session.stimulus.to_dict()}
    finally:
        session.close()


def load_container(path: Path):
    from h5scp import ScpContainer

    return ScpContainer.load(path)


def load_cmcr(path: Path):
    """Everything the pipeline reads from a ``.cmcr``: light reference, every sensor block, then the metadata
    (as the pipeline's load step takes it after the reads, with the unusual values they met)."""
    from hdmea.io.cmcr import CmcrFile

    with CmcrFile(path) as f:
        light, rate = f.light_reference(), f.sampling_rate
        sensor = [(start, block) for start, block in f.iter_sensor_blocks(block_frames=64)]
        return {"metadata": f.metadata(), "light": light, "sampling_rate": rate, "sensor": sensor}


def load_cmtr(path: Path):
    """Every unit of a ``.cmtr`` (spike times, waveform, amplitudes, quality), with the unusual values met (as the
    pipeline's load step keeps them)."""
    from hdmea.io.cmtr import CmtrFile

    with CmtrFile(path) as f:
        return {"units": f.read_units(SAMPLING_RATE), "warnings": list(f.position_warnings),
                "unusual_values": list(f.unusual_values)}


FORMATS: dict[str, FuzzFormat] = {f.name: f for f in (
    FuzzFormat("hdmea-recording", RECORDING, "", load_recording_file),
    FuzzFormat("hdmea-report", RECORDING, "", load_report),
    FuzzFormat("hdmea-checkpoint", CHECKPOINT, "", load_checkpoint),
    FuzzFormat("scptensor-h5", "cells.h5", "", load_container),
    FuzzFormat("scptensor-h5ad", "cells.h5ad", "", load_container),
    FuzzFormat("scptensor-h5mu", "cells.h5mu", "", load_container),
    FuzzFormat("scptensor-parquet", "cells.parquet", "assays/proteins/layers/raw.parquet", load_container),
    FuzzFormat("scptensor-zarr", "cells.zarr", "", load_container, store=True),
    FuzzFormat("anndata-zarr", "anndata.zarr", "", load_container, own=False, store=True),
    FuzzFormat("vendor-cmcr", "rec.cmcr", "", load_cmcr, own=False),
    FuzzFormat("vendor-cmtr", "rec.cmtr", "", load_cmtr, own=False, siblings=("rec.cmcr",)),
)}


# --------------------------------------------------------------------------- originals


def small_recording_config():
    """A synthetic recording of a few dozen kilobytes: 3 units, a 6 x 6 sensor region, 2 kHz."""
    from hdmea.synthetic import SyntheticConfig
    from hdmea.synthetic.config import TrialConfig

    return SyntheticConfig.tiny(
        sampling_rate=SAMPLING_RATE, playlist=("step_up_5s_5i_3x", "dense_noise_15x15"),
        step_trial=TrialConfig(start_frame=6, trial_length_frame=12, repeat=2), step_tail_frames=2,
        pre_margin_frames=6, post_margin_frames=6, lead_in_s=0.1, tail_s=0.1, raw_seconds=0.02,
        sensor_regions=((1, 1, 6, 6),), n_units=3, n_silent_units=0, noise_images=10, noise_shape=(6, 6),
        filter_lags=4, base_rate_hz=(20.0, 40.0), cutout_samples=8, cutout_pre_samples=2,
    )


#: The modules whose writers stamp the time into files (``_dt.datetime.now``).
_STAMPING_MODULES = ("h5scp.io.formats_h5mu", "h5scp.io.formats_h5ad", "h5scp.io.formats_parquet",
                     "h5scp.io.exporters", "h5scp.core.container", "hdmea.io.hdf5_store")


@contextlib.contextmanager
def frozen_clock():
    """The writers' clock stopped at one instant, so every run writes byte-identical originals.

    Compressed parts of a file hold timestamps, so a new time would move the bytes the
    seeded mutations hit; with the clock frozen the outcomes repeat from run to run.
    """
    import datetime
    import importlib
    import types

    class _Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2026, 4, 19, 12, 0, 0, 123456, tzinfo=datetime.timezone.utc).astimezone(tz)

    clock = types.SimpleNamespace(**{**vars(datetime), "datetime": _Frozen})
    modules = [importlib.import_module(name) for name in _STAMPING_MODULES]
    saved = [m._dt for m in modules]
    for m in modules:
        m._dt = clock
    try:
        yield
    finally:
        for m, original in zip(modules, saved):
            m._dt = original


def write_originals(folder: Path) -> Path:
    """Write every format's original into ``folder`` (through our own writers) and return it."""
    with frozen_clock():
        return _write_originals(Path(folder))


def _write_originals(folder: Path) -> Path:
    from hdmea.pipeline import (add_section_time, create_session, extract_features, load_recording,
                                section_spike_times)
    from hdmea.synthetic import generate_recording
    from h5scp.testing import example_container

    rec = generate_recording(folder, "rec", config=small_recording_config(), seed=11)
    session = create_session("rec")
    try:
        load_recording(rec.cmcr_path, rec.cmtr_path, session=session)
        add_section_time(stimulus=rec.stimulus, session=session)
        section_spike_times(pad_margin=(0.5, 0.5), session=session)
        session.checkpoint(folder / CHECKPOINT)
        extract_features(session=session)
        session.save(folder / RECORDING)
    finally:
        session.close()
    container = example_container()
    container.save(folder / "cells.h5")
    container.save(folder / "cells.h5ad", assay="proteins")
    container.save(folder / "cells.h5mu")
    container.save(folder / "cells.parquet")
    container.save(folder / "cells.zarr", assay="proteins")
    import warnings

    import anndata  # a store anndata wrote itself (no checksum manifest): read with bounds only

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Writing zarr v2 data will no longer be the default", UserWarning)
        anndata.read_zarr(folder / "cells.zarr").write_zarr(folder / "anndata.zarr")
    for fmt in FORMATS.values():
        assert os.path.exists(folder / fmt.root / fmt.target), fmt
    return folder
