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
from hdmea.progress import counted
from hdmea.io.layout_names import STA_DATASET

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
    truth_check: dict  # counts, see _check_against_truth

    def describe(self) -> str:
        """The summary ``hdmea demo`` prints: what was found, against the planted truth, and what to try next."""
        p, t = self.pipeline, self.truth_check
        n_units = p["n_units"]
        silent = t.get("silent", 0)
        firing = f" ({n_units - silent} firing, {silent} planted silent: a cell that never fires)" if silent else ""
        lines = [f"hdmea demo: a synthetic retina recording of {counted(n_units, 'unit')}{firing} analysed in "
                 f"{p['seconds']:.1f} s, result in {self.output}", "", "What was found, against the planted truth:"]
        if "spikes_kept" in t:
            lines.append(f"  spikes             {t['spikes_kept']} of {t['units']} units kept every planted spike "
                         f"({t['planted_spikes']:,} spikes in all)")
        if t.get("rf_tested"):
            lines.append(f"  receptive fields   {t['rf_hits']} of {t['rf_tested']} firing units have their centre within "
                         "one checker of the planted centre")
            if t["rf_hits"] < t["rf_tested"]:
                lines.append("                     (which unit is off, and how its field looks: the report's "
                             "receptive-field mosaic; more noise frames give each STA more spikes)")
        check = p.get("orientation")
        if check and check.get("n_units_checked"):
            own = round(check["fraction_own"] * check["n_units_checked"])
            lines.append(f"  electrical images  {own} of {check['n_units_checked']} units peak at their own electrode")
        order = p.get("frame_order")
        if order:
            from hdmea.pipeline.run import frame_order_words

            lines.append(f"  raw frame order    {frame_order_words(order)}")
            if order.get("warning"):
                lines.append(f"  warning: {order['warning']}")
        ran = [f"{s['name']} {s['seconds']:.2f} s" for s in p["steps"] if s["status"] == "ran"]
        other = [f"{s['name']} {s['status']}" + (f" ({s['note']})" if s.get("note") else "")
                 for s in p["steps"] if s["status"] != "ran"]
        lines += ["", f"Steps: {', '.join(ran + other) or 'none'}.",
                  f"Inputs: {self.cmcr} (raw) and {self.cmtr} (spike sorting), configuration {self.config}.",
                  "", "Try next:"]
        steps = [(f"hdmea inspect {self.output}", "what the result holds, unit by unit")]
        if not _report_available():
            # the installed package's extra: works from a clone, a wheel or the package index alike
            steps.append(('pip install "h5stream[report]"', "matplotlib, which the report's figures are drawn with"))
        steps += [
            (f"hdmea report {self.output} --out {self.out_dir / 'report'}",
             "receptive fields, electrical images and responses as figures and a web page"),
            (f"hdmea run {self.cmcr} {self.cmtr} --config {self.config} --out {self.out_dir / 'rerun.h5'}",
             "the same analysis as a command: give it your own .cmcr and .cmtr"),
        ]
        for command, why in steps:
            lines += [f"  # {why}", f"  {command}"]
        lines.append("(hdmea demo --verbose shows each step's log lines.)")
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
    before = _identity(output)  # an earlier demo's result, which overwrite=True replaces
    try:
        return _run(out, output, n_units, seed, eimage)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt) and _identity(output) not in (None, before):
            # stopped after this run's pipeline published its result (while it was checked against the planted
            # truth): a stopped demo leaves no result of its own, so that running it again starts it again
            # rather than refusing a result it never reported
            output.unlink(missing_ok=True)
        folders.remove_if_empty()
        raise


def report(result: DemoResult) -> None:
    """Print what the demo did; a stop before it is printed removes the result, as a stop inside
    :func:`run_demo` does (the command says it stopped, so running it again must not refuse)."""
    try:
        print(result.describe())
    except KeyboardInterrupt:
        result.output.unlink(missing_ok=True)
        raise


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns


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
    """Spike counts against the planted spike trains, and receptive-field centres against the planted ones.

    Returns counts: ``units``, ``silent`` (planted silent units), ``spikes_kept``
    (units whose stored spike count equals the planted one), ``planted_spikes``,
    ``rf_hits`` of ``rf_tested`` (firing units whose strongest STA pixel lies within
    one checker of the planted receptive field's centre).
    """
    import numpy as np

    from hdmea.io.recording import open_recording

    truth = recording.truth()
    checks: dict[str, int] = {"units": len(truth.units),
                              "silent": sum(1 for unit in truth.units.values() if unit.kind == "silent"),
                              "planted_spikes": sum(int(np.asarray(u.spike_times).size) for u in truth.units.values())}
    with open_recording(output) as stored:
        units = set(stored.unit_ids)
        checks["spikes_kept"] = sum(
            1 for uid, unit in truth.units.items()
            if uid in units and stored.unit(uid).spike_count == np.asarray(unit.spike_times).size
        )
        sta_name = f"sta_{truth.noise_movie}"
        hits = tested = 0
        for uid, unit in truth.units.items():
            if unit.kind == "silent" or uid not in units or not stored.unit(uid).has_feature(sta_name):
                continue
            sta = stored.unit(uid).feature(sta_name).array(STA_DATASET, np.float64)
            if sta.ndim != 3 or not np.any(sta):
                continue
            deviation = np.abs(sta - sta.mean())
            lag = int(np.argmax(deviation.reshape(sta.shape[0], -1).max(axis=1)))
            found = np.unravel_index(np.argmax(deviation[lag]), sta.shape[1:])
            planted = np.unravel_index(np.argmax(np.abs(unit.spatial_rf)), unit.spatial_rf.shape)
            tested += 1
            hits += int(max(abs(found[0] - planted[0]), abs(found[1] - planted[1])) <= 1)
        checks["rf_hits"], checks["rf_tested"] = hits, tested
    return checks
