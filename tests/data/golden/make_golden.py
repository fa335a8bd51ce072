"""Write the golden files of tests/data/golden with the code on the path (see README.md).

Run from the repository root, with the source tree of the commit to freeze first on the path::

    PYTHONPATH=<checkout>/src:. python tests/data/golden/make_golden.py

The values come from ``golden_cases.py``.  Each file is read back with the same
code and compared before the script finishes, so a golden file always holds
what that code meant to write.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import h5py
import numpy as np

from tests.data.golden import golden_cases as cases

OUT = cases.HERE
#: The files this script writes (the folder holds others, made by their own scripts).
OUTPUTS = (
    "elements.h5",
    "hdmea_recording.h5", "hdmea_recording.expected.json", "hdmea_recording.expected.npz",
    "hdmea_checkpoint.h5", "hdmea_checkpoint.expected.json", "hdmea_checkpoint.expected.npz",
    "scptensor_2.0.h5", "scptensor_2.0.h5mu", "scptensor_2.0_peptides.h5ad",
)


def make_elements(path: Path) -> None:
    from h5stream.elements import read_elem, write_elem

    with h5py.File(path, "w") as f:
        for name, (_etype, _version, value, options) in cases.element_cases().items():
            write_elem(f, name, value, **options)
        _write_legacy_dataframe(f, "dataframe-0.1.0")
    with h5py.File(path, "r") as f:
        for name, (etype, version, value, _options) in cases.element_cases().items():
            cases.assert_same(read_elem(f[name]), value, name)
        cases.assert_same(read_elem(f["dataframe-0.1.0"]), cases.legacy_dataframe_0_1_0(), "dataframe-0.1.0")


def _write_legacy_dataframe(parent: h5py.Group, key: str) -> None:
    """An AnnData ``dataframe`` 0.1.0 (categorical codes referring to ``__categories``), by hand."""
    text = h5py.string_dtype("utf-8")
    g = parent.create_group(key)
    g.attrs["encoding-type"] = "dataframe"
    g.attrs["encoding-version"] = "0.1.0"
    g.attrs["_index"] = "_index"
    g.attrs["column-order"] = np.array(["score", "kind"], dtype=object)
    g.create_dataset("_index", data=np.array(["r0", "r1", "r2"], dtype=object), dtype=text)
    g.create_dataset("score", data=np.array([0.5, -1.0, np.nan]))
    cats = g.create_group("__categories").create_dataset("kind", data=np.array(["a", "b"], dtype=object), dtype=text)
    codes = g.create_dataset("kind", data=np.array([1, -1, 0], dtype=np.int8))
    codes.attrs["categories"] = cats.ref


def _small_config():
    """The tiny synthetic recording, shortened so that the files stay a few hundred KB."""
    from hdmea.synthetic import SyntheticConfig
    from hdmea.synthetic.config import TrialConfig

    return SyntheticConfig.tiny(
        sampling_rate=10000.0, lead_in_s=0.1, tail_s=0.1,
        step_trial=TrialConfig(start_frame=6, trial_length_frame=20, repeat=2), step_tail_frames=4,
        noise_images=40, noise_frames_per_image=2, pre_margin_frames=10, post_margin_frames=20,
        n_units=cases.RECORDING_UNITS, n_silent_units=1, raw_seconds=0.05,
    )


def make_recording(folder: Path) -> None:
    """A synthetic recording through the whole pipeline, and a checkpoint after loading."""
    from hdmea.config import parse_config
    from hdmea.pipeline import PipelineSession, create_session, load_recording
    from hdmea.pipeline.batch import run_pipeline
    from hdmea.synthetic import SyntheticConfig, generate_recording

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rec = generate_recording(tmp, "golden", config=_small_config(), seed=cases.RECORDING_SEED)
        config = parse_config({"stimulus": {"file": "{dir}/{name}.stimulus.json"}}, base_dir=tmp)
        out = tmp / "golden_recording.h5"
        run_pipeline(rec.cmcr_path, rec.cmtr_path, out, config, dataset_id="golden")
        shutil.copyfile(out, folder / "hdmea_recording.h5")

        session = create_session("golden_ckpt", hdf5_path=tmp / "ckpt_target.h5")
        session = load_recording(rec.cmcr_path, rec.cmtr_path, session=session)
        session.checkpoint(folder / "hdmea_checkpoint.h5", checkpoint_name="after_load")
        session.close()

    for name in ("hdmea_recording", "hdmea_checkpoint"):
        loaded = PipelineSession.load(folder / f"{name}.h5")
        snapshot = {
            "dataset_id": loaded.dataset_id,
            "completed_steps": list(loaded.completed_steps),
            "warnings": list(loaded.warnings),
            "checkpoint_name": loaded.checkpoint_name,
            "tree": loaded.get(""),
        }
        loaded.close()
        cases.save_snapshot(snapshot, folder / f"{name}.expected")
        cases.assert_same(cases.load_snapshot(folder / f"{name}.expected"), snapshot, name)


def make_scptensor(folder: Path) -> None:
    from h5scp import ScpContainer
    from h5scp.io import save_hdf5
    from h5scp.testing import assert_container_equal, example_container

    c = cases.fix_history_times(example_container(seed=cases.CONTAINER_SEED))
    save_hdf5(c, folder / "scptensor_2.0.h5")
    c.save(folder / "scptensor_2.0.h5mu")
    c.save(folder / "scptensor_2.0_peptides.h5ad", assay="peptides", layer="norm")
    assert_container_equal(ScpContainer.load(folder / "scptensor_2.0.h5"), c)
    assert_container_equal(ScpContainer.load(folder / "scptensor_2.0.h5mu"), c)
    assert list(ScpContainer.load(folder / "scptensor_2.0_peptides.h5ad").assays) == ["peptides"]


def main() -> int:
    import h5stream

    warnings.simplefilter("error")
    print(f"writing golden files with h5stream from {Path(h5stream.__file__).parent}", file=sys.stderr)
    for name in OUTPUTS:
        (OUT / name).unlink(missing_ok=True)
    make_elements(OUT / "elements.h5")
    make_recording(OUT)
    make_scptensor(OUT)
    sizes = {name: (OUT / name).stat().st_size for name in OUTPUTS}
    print(json.dumps(sizes, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
