"""``hdmea demo``: a synthetic recording through the whole pipeline in a few seconds.

It writes a small ``.cmcr``/``.cmtr`` pair with a planted ground truth, a
configuration file describing its stimulus, runs every step (loading, section
times, spike sectioning, receptive fields, electrical images, features) in a
deferred session, and tells what it did and where the result is.  The files it
leaves are a starting point: ``hdmea inspect``, ``hdmea report`` and
``hdmea run`` work on them as they are.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from hdmea.errors import ConfigError

__all__ = ["DemoResult", "run_demo", "DEMO_NAME"]

DEMO_NAME = "demo"

#: Synthetic recording of the demo: 80 s of dense noise at 14-24 Hz base rates
#: give each unit enough spikes for a receptive field that matches the planted
#: one, while generating and processing take a few seconds; 1.5 s of raw data give
#: each firing unit enough spikes for the frame order to be decided by footprints.
DEMO_RECORDING = {"noise_images": 1200, "base_rate_hz": (14.0, 24.0), "raw_seconds": 1.5}

_CONFIG_TEMPLATE = """\
# Configuration written by `hdmea demo`: the stimulus comes from the JSON file
# that the synthetic generator wrote beside the recording.
[stimulus]
file = "{{dir}}/{{name}}.stimulus.json"

[steps]
compute_sta = true
compute_eimage_sta = {eimage}
extract_features = true

[output]
checkpoint = true
"""


@dataclasses.dataclass
class DemoResult:
    """Paths and timings of one demo run."""

    out_dir: Path
    cmcr: Path
    cmtr: Path
    config: Path
    output: Path
    generate_seconds: float
    pipeline: dict  # PipelineReport.as_dict()
    truth_check: dict

    def describe(self) -> str:
        p = self.pipeline
        lines = [
            f"synthetic recording: {self.cmcr.name} + {self.cmtr.name} in {self.out_dir} "
            f"(generated in {self.generate_seconds:.2f} s)",
            f"configuration: {self.config}",
            "pipeline (one deferred session, saved once):",
        ]
        for step in p["steps"]:
            text = f"  {step['name']:<22} {step['status']:<8}"
            if step["status"] == "ran":
                text += f" {step['seconds']:7.2f} s"
            elif step["note"]:
                text += f" ({step['note']})"
            lines.append(text)
        lines.append(f"units: {p['n_units']}   total {p['seconds']:.2f} s   checkpoints written: {p['checkpoints']}")
        order = p.get("frame_order")
        if order:
            lines.append(f"raw frame order: {order['summary']}")
            if order.get("warning"):
                lines.append(f"warning: {order['warning']}")
        check = p.get("orientation")
        if check and check.get("n_units_checked"):
            lines.append(f"electrical images: {check['fraction_own']:.0%} of {check['n_units_checked']} units peak "
                         f"at their own (row, col), {check['fraction_transposed']:.0%} at (col, row)")
        for key, value in self.truth_check.items():
            lines.append(f"check against the planted truth: {key} = {value}")
        lines += [
            f"result: {self.output}",
            "next:",
            f"  hdmea inspect {self.output}",
        ]
        if not _report_available():
            lines.append('  pip install ".[report]"     # from the clone\'s root: matplotlib, which hdmea report draws with')
        lines += [
            f"  hdmea report {self.output} --out {self.out_dir / 'report'}",
            f"  hdmea run {self.cmcr} {self.cmtr} --config {self.config} --out {self.out_dir / 'rerun.h5'}",
        ]
        return "\n".join(lines)


def _report_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _eimage_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("hdmea.steps.eimage") is not None
    except ImportError:
        return False


def run_demo(
    out_dir: str | os.PathLike = "hdmea-demo",
    *,
    n_units: int = 8,
    seed: int = 0,
    overwrite: bool = False,
    eimage: bool | None = None,
) -> DemoResult:
    """Generate a synthetic recording in ``out_dir`` and run the whole pipeline on it.

    Parameters
    ----------
    out_dir
        Directory for the synthetic inputs, the configuration and the result.
    n_units
        Units planted in the recording.
    seed
        Seed of the generator (same seed, same recording).
    overwrite
        Replace the files of an earlier demo in ``out_dir``.
    eimage
        Compute electrical images (default: when the step is installed).
    """
    from hdmea.pipeline.preflight import CreatedFolders, check_run

    if n_units < 1:
        raise ConfigError("the demo needs at least one unit", found=str(n_units))
    out = Path(out_dir)
    output = out / f"{DEMO_NAME}.h5"
    if output.exists() and not overwrite:
        raise ConfigError("a demo result exists already", path=output,
                          hint="pass overwrite=True or choose another out_dir")
    # Before anything is generated: the folder must be writable (the pipeline checks the rest).
    check_run([], [output], None).raise_if_any()
    folders = CreatedFolders(out)
    try:
        return _run(out, output, n_units, seed, eimage)
    except BaseException:
        folders.remove_if_empty()
        raise


def _run(out: Path, output: Path, n_units: int, seed: int, eimage: bool | None) -> DemoResult:
    from h5stream.files import write_bytes_atomic
    from hdmea.config import load_config
    from hdmea.pipeline.run import checkpoint_path_for, run_pipeline
    from hdmea.synthetic import generate_recording

    t0 = time.perf_counter()
    recording = generate_recording(out, DEMO_NAME, seed=seed, overwrite=True, **DEMO_RECORDING,
                                   n_units=n_units, n_silent_units=min(1, n_units - 1))
    generate_seconds = time.perf_counter() - t0
    config_path = out / f"{DEMO_NAME}.toml"
    use_eimage = _eimage_available() if eimage is None else eimage
    # Not fsynced: a configuration lost in a crash of the machine costs only running the demo again.
    write_bytes_atomic(config_path,
                       _CONFIG_TEMPLATE.format(eimage="true" if use_eimage else "false").encode("utf-8"),
                       durable=False)
    config = load_config(config_path)
    # Asked to replace an earlier demo: whatever is at the output path goes.
    config = dataclasses.replace(config, output=dataclasses.replace(config.output, overwrite=True))
    checkpoint_path_for(output).unlink(missing_ok=True)
    report = run_pipeline(recording.cmcr_path, recording.cmtr_path, output, config, dataset_id=DEMO_NAME)
    return DemoResult(
        out_dir=out, cmcr=recording.cmcr_path, cmtr=recording.cmtr_path, config=config_path,
        output=output, generate_seconds=generate_seconds, pipeline=report.as_dict(),
        truth_check=_check_against_truth(output, recording),
    )


def _check_against_truth(output: Path, recording) -> dict:
    """Spike counts against the planted spike trains, and receptive-field centres against the planted ones."""
    import numpy as np

    from hdmea.io.recording import open_recording

    truth = recording.truth()
    checks: dict[str, str] = {}
    with open_recording(output) as stored:
        units = set(stored.unit_ids)
        same_spikes = sum(
            1 for uid, unit in truth.units.items()
            if uid in units and stored.unit(uid).spike_count == np.asarray(unit.spike_times).size
        )
        checks["units with every planted spike"] = f"{same_spikes}/{len(truth.units)}"
        sta_name = f"sta_{truth.noise_movie}"
        hits = tested = 0
        for uid, unit in truth.units.items():
            if unit.kind == "silent" or uid not in units or not stored.unit(uid).has_feature(sta_name):
                continue
            sta = stored.unit(uid).feature(sta_name).array("sta", np.float64)
            if sta.ndim != 3 or not np.any(sta):
                continue
            deviation = np.abs(sta - sta.mean())
            lag = int(np.argmax(deviation.reshape(sta.shape[0], -1).max(axis=1)))
            found = np.unravel_index(np.argmax(deviation[lag]), sta.shape[1:])
            planted = np.unravel_index(np.argmax(np.abs(unit.spatial_rf)), unit.spatial_rf.shape)
            tested += 1
            hits += int(max(abs(found[0] - planted[0]), abs(found[1] - planted[1])) <= 1)
        if tested:
            checks["receptive-field centres within one check"] = f"{hits}/{tested}"
    return checks
