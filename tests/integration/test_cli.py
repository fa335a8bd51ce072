"""The ``hdmea`` command line, run as users run it: in subprocesses, on synthetic recordings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from h5stream.tree.nodes import is_hidden
from hdmea.steps.table import STEPS
from tests.shared_files import link_read_only

HDMEA = Path(sys.executable).with_name("hdmea")
PIPELINE_STEPS = [step.name for step in STEPS]


def run_cli(*args, env=None, timeout=180, module=False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "hdmea", *args] if module or not HDMEA.exists() else [str(HDMEA), *args]
    full_env = dict(os.environ)
    for key in [k for k in full_env if k.startswith("SLURM_")]:
        del full_env[key]
    full_env.update(env or {})
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=full_env)


def _steps(path: Path) -> list[str]:
    with h5py.File(path, "r") as f:
        return [s.decode() if isinstance(s, bytes) else s for s in f["pipeline/session_info/completed_steps"][()]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    proc = run_cli("--log-level", "WARNING", "demo", "--out", str(out), "--units", "5")
    assert proc.returncode == 0, proc.stderr
    assert f"result in {out / 'demo.h5'}" in proc.stdout
    for step in PIPELINE_STEPS:
        assert step in proc.stdout
    assert "a synthetic retina recording of 5 units (4 firing, 1 planted silent" in proc.stdout
    assert "5 of 5 units kept every planted spike" in proc.stdout
    assert "of 4 firing units have their centre within one checker of the planted centre" in proc.stdout
    return out


def test_the_demo_prints_its_summary_and_keeps_the_log_lines_for_verbose(tmp_path):
    quiet = run_cli("demo", "--out", str(tmp_path / "q"), "--units", "2")
    assert quiet.returncode == 0, quiet.stderr
    assert " INFO " not in quiet.stderr and " INFO " not in quiet.stdout
    assert quiet.stdout.startswith("hdmea demo: a synthetic retina recording of 2 units")
    verbose = run_cli("demo", "--out", str(tmp_path / "v"), "--units", "2", "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert " INFO " in verbose.stderr and "hdmea.pipeline.run: demo: started" in verbose.stderr


def test_demo_writes_the_whole_pipeline(demo):
    assert _steps(demo / "demo.h5") == PIPELINE_STEPS
    # A second demo into the same directory refuses to replace the result.
    proc = run_cli("demo", "--out", str(demo))
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and "--out" in proc.stderr
    assert "overwrite=True" not in proc.stderr and "out_dir" not in proc.stderr


@pytest.mark.slow
def test_demo_next_steps_work_as_printed(demo, tmp_path):
    import shlex

    from hdmea.demo import DEMO_NAME

    # the demo's own printout (the fixture's run) is rebuilt from the files it left
    proc = run_cli("--log-level", "WARNING", "demo", "--out", str(tmp_path / "d"), "--units", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    steps = [line.strip() for line in lines[lines.index("Try next:") + 1:] if line.strip()[:1] not in ("#", "(")]
    assert [s.split()[:2] for s in steps if s.startswith("hdmea")] == [
        ["hdmea", "inspect"], ["hdmea", "report"], ["hdmea", "run"]]
    for step in steps:
        command = shlex.split(step.split("#")[0])
        if command[0] == "pip":
            assert command == ["pip", "install", "h5stream[report]"]
            continue
        done = run_cli(*command[1:], module=True)
        assert done.returncode == 0, (step, done.stderr)
    assert (tmp_path / "d" / "rerun.h5").exists() and (tmp_path / "d" / "report" / f"{DEMO_NAME}.html").exists()


def test_demo_says_what_to_install_for_the_report(monkeypatch, tmp_path):
    from hdmea import demo as demo_module

    result = demo_module.DemoResult(out_dir=tmp_path, cmcr=tmp_path / "demo.cmcr", cmtr=tmp_path / "demo.cmtr",
                                    config=tmp_path / "demo.toml", output=tmp_path / "demo.h5",
                                    generate_seconds=0.0, pipeline={"steps": [], "n_units": 1, "seconds": 0.0,
                                                                    "checkpoints": 0}, truth_check={})
    monkeypatch.setattr(demo_module, "_report_available", lambda: False)
    text = result.describe()
    assert text.index('pip install "h5stream[report]"') < text.index("hdmea report")
    monkeypatch.setattr(demo_module, "_report_available", lambda: True)
    assert "pip install" not in result.describe()


def test_inspect_prints_tree_units_and_steps(demo):
    proc = run_cli("inspect", str(demo / "demo.h5"), module=True)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "steps completed: " + ", ".join(PIPELINE_STEPS) in text
    assert "units: 5" in text
    assert "└── units/  5 members" in text
    assert "spike_times  uint64" in text and "data  float32 [50x65x65]" in text
    assert "... " in text and "more" in text  # units beyond --max-children are elided
    full = run_cli("inspect", "--all", str(demo / "demo.h5"))
    with h5py.File(demo / "demo.h5", "r") as f:
        last = sorted(f["units"])[-1]  # named by its .cmtr UnitID
        top = [name for name in f if not is_hidden(name)]
    assert f"{last}/" in full.stdout and f"{last}/" not in text
    # the top level is the file's outline: shown whole however many groups it has, never "... N more"
    assert len(top) > 4 and [line[4:].split("/")[0] for line in text.splitlines()
                              if line[:4] in ("├── ", "└── ")] == top
    bad = run_cli("inspect", str(demo / "demo.toml"))
    assert bad.returncode == 2 and "demo.toml is not a recording" in bad.stderr  # a usage error
    # as precise as scptensor: the signature was looked for and what was found instead
    assert "not an HDF5 file" in bad.stderr and "HDF5 signature" in bad.stderr
    assert f"found no signature in {(demo / 'demo.toml').stat().st_size} bytes" in bad.stderr


def test_report_writes_page_and_figures(demo, tmp_path):
    proc = run_cli("report", str(demo / "demo.h5"), "--out", str(tmp_path / "report"))
    assert proc.returncode == 0, proc.stderr
    page = tmp_path / "report" / "demo.html"
    text = page.read_text()
    pngs = sorted((tmp_path / "report").glob("*.png"))
    assert len(pngs) == 7  # STA page and mosaic, eimage page and centres, two movies' spikes, step responses
    for png in pngs:
        assert f"src='{png.name}'" in text
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"



def test_run_then_rerun_skips(tiny, tmp_path):
    out = tmp_path / "one.h5"
    args = ("run", str(tiny / "tiny.cmcr"), str(tiny / "tiny.cmtr"), "--config", str(tiny / "tiny.toml"),
            "--out", str(out), "--name", "tiny")
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "tiny: done in" in proc.stdout and "compute_sta" in proc.stdout
    assert _steps(out) == [s for s in PIPELINE_STEPS if s != "compute_eimage_sta"]
    again = run_cli(*args)
    assert again.returncode == 0 and "already finished with this configuration, skipped" in again.stdout


def _batch_dir(tiny: Path, tmp_path: Path, names) -> Path:
    src = tmp_path / "recordings"
    src.mkdir()
    for name in names:
        link_read_only(tiny / "tiny.cmcr", src / f"{name}.cmcr")  # only read; a test overwrites a .cmtr
        shutil.copyfile(tiny / "tiny.cmtr", src / f"{name}.cmtr")
        shutil.copyfile(tiny / "tiny.stimulus.json", src / f"{name}.stimulus.json")
    return src


@pytest.mark.slow
def test_batch_runs_dir_and_reports_failures(tiny, tmp_path):
    src = _batch_dir(tiny, tmp_path, ["a", "b", "c"])
    (src / "b.cmtr").write_bytes(b"\x00" * 100)  # not HDF5
    config = tmp_path / "batch.toml"
    config.write_text('[stimulus]\nfile = "{dir}/{name}.stimulus.json"\n[steps]\ncompute_sta = false\nextract_features = false\n')
    proc = run_cli("batch", str(src), "--config", str(config), "--out", str(tmp_path / "out"),
                   "--workers", "2", timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line[:2] in ("a ", "b ", "c ")}
    assert "done" in lines["a"] and "done" in lines["c"]
    assert "failed" in lines["b"] and "[data]" in lines["b"] and "b.cmtr" in lines["b"]
    summary = json.loads((tmp_path / "out" / "batch_summary.json").read_text())
    assert [r["status"] for r in summary["results"]] == ["done", "failed", "done"]
    assert _steps(tmp_path / "out" / "a.h5")[-1] == "section_spike_times"
    assert "leaked semaphore" not in proc.stderr and "Traceback" not in proc.stderr
    # a rerun: a, c finished; b is reported again before any job, nothing is retried
    again = run_cli("batch", str(src), "--config", str(config), "--out", str(tmp_path / "out"), "--workers", "2")
    assert again.returncode == 1
    assert "b.cmtr" in again.stderr and "not an HDF5 file" in again.stderr
    assert "0 done, 2 skipped, 1 failed" in again.stdout and "LocalCluster" not in again.stdout
    (src / "b.cmtr").write_bytes((tiny / "tiny.cmtr").read_bytes())
    run_cli("batch", str(src), "--config", str(config), "--out", str(tmp_path / "out"), "--workers", "1")
    last = run_cli("batch", str(src), "--config", str(config), "--out", str(tmp_path / "out"))
    assert last.returncode == 0 and "nothing to do: all 3 recordings finished already" in last.stdout


def test_run_one_is_a_slurm_array_task(tiny, tmp_path):
    src = _batch_dir(tiny, tmp_path, ["x", "y"])
    config = tmp_path / "c.toml"
    config.write_text('[stimulus]\nfile = "{dir}/{name}.stimulus.json"\n[steps]\ncompute_sta = false\nextract_features = false\n')
    env = {"SLURM_JOB_ID": "4242", "SLURM_ARRAY_JOB_ID": "4240", "SLURM_ARRAY_TASK_ID": "1"}
    proc = run_cli("run-one", str(src), "--config", str(config), "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "y: done" in proc.stdout
    assert (tmp_path / "out" / "y.h5").exists() and not (tmp_path / "out" / "x.h5").exists()
    tagged = [line for line in proc.stderr.splitlines() if "slurm=4240_1 [y]" in line]
    assert any("finished in" in line for line in tagged), proc.stderr
    missing = run_cli("run-one", str(src), "--out", str(tmp_path / "out"))
    assert missing.returncode == 2 and "SLURM_ARRAY_TASK_ID" in missing.stderr


def test_bad_config_is_rejected_before_any_work(tiny, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[stimulus]\nfile = "{dir}/{name}.stimulus.json"\n[steps.compute_sta]\nn_lagz = 30\n')
    out = tmp_path / "out"
    proc = run_cli("batch", str(tiny), "--config", str(config), "--out", str(out))
    assert proc.returncode == 2
    assert "steps.compute_sta.n_lagz" in proc.stderr and "unknown key" in proc.stderr
    assert "did you mean 'n_lags'" in proc.stderr
    assert not out.exists()
    config.write_text("[batch]\nretries = -1\n")
    proc = run_cli("run", str(tiny / "tiny.cmcr"), str(tiny / "tiny.cmtr"), "--config", str(config),
                   "--out", str(out / "x.h5"))
    assert proc.returncode == 2 and "batch.retries: must be >= 0" in proc.stderr
    assert not out.exists()


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: the job-array script as the package ships it (its data, in the wheel as in a clone)
ARRAY_SCRIPT = Path(__file__).resolve().parents[2] / "src" / "hdmea" / "data" / "slurm" / "slurm_array.sh"


def test_slurm_script_prints_and_writes_the_shipped_array_script(tmp_path, capsys):
    from hdmea.cli import main

    assert main(["slurm-script"]) == 0
    assert capsys.readouterr().out == ARRAY_SCRIPT.read_text()
    out = tmp_path / "array.sh"
    assert main(["slurm-script", "--out", str(out)]) == 0
    assert out.read_bytes() == ARRAY_SCRIPT.read_bytes() and os.access(out, os.X_OK)
    assert f"sbatch --array=0-$((N - 1)) {out}" in capsys.readouterr().out
    assert main(["slurm-script", "--out", str(out)]) == 2  # not replaced without --overwrite
    assert "exists already" in capsys.readouterr().err and out.read_bytes() == ARRAY_SCRIPT.read_bytes()


def test_slurm_array_example_script(tiny, tmp_path):
    src = _batch_dir(tiny, tmp_path, ["p", "q"])
    config = tmp_path / "c.toml"
    config.write_text('[stimulus]\nfile = "{dir}/{name}.stimulus.json"\n[steps]\ncompute_sta = false\nextract_features = false\n')
    env = dict(os.environ, SLURM_ARRAY_JOB_ID="77", SLURM_JOB_ID="78", SLURM_ARRAY_TASK_ID="0",
               HDMEA=str(HDMEA) if HDMEA.exists() else f"{sys.executable} -m hdmea")
    proc = subprocess.run(["bash", str(ARRAY_SCRIPT), str(src), str(tmp_path / "out"), str(config)],
                          capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "p: done" in proc.stdout and "slurm=77_0 [p]" in proc.stderr
    assert _steps(tmp_path / "out" / "p.h5") == ["load_recording", "add_section_time", "section_spike_times"]


def test_slurm_array_script_treats_hdmea_killed_by_its_signal_as_preempted(tmp_path):
    """A SIGTERM that reaches hdmea before it handles signals (while it starts) ends it with 143: the script
    passes the signal on, reports it, and exits 75 so that the task is requeued (here: no SLURM, no requeue)."""
    import signal

    starting = tmp_path / "hdmea-starting"
    starting.write_text("#!/bin/sh\necho starting >&2\nexec sleep 120\n")  # dies by SIGTERM's default action
    starting.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(SLURM_ARRAY_TASK_ID="0", HDMEA=str(starting))
    proc = subprocess.Popen(["bash", str(ARRAY_SCRIPT), str(tmp_path), str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr.readline().strip() == "starting"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 75, err
    assert "hdmea ended by a signal before it could checkpoint (status 143)" in err


def test_slurm_batch_example_runs_locally(tiny, tmp_path):
    src = _batch_dir(tiny, tmp_path, ["r"])
    config = tmp_path / "c.toml"
    config.write_text('[stimulus]\nfile = "{dir}/{name}.stimulus.json"\n[steps]\ncompute_sta = false\nextract_features = false\n')
    proc = subprocess.run([sys.executable, str(EXAMPLES / "slurm_batch.py"), str(src), str(tmp_path / "out"),
                           "--config", str(config), "--local", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "1 done, 0 skipped, 0 failed" in proc.stdout and "LocalCluster" in proc.stdout
    assert json.loads((tmp_path / "out" / "batch_summary.json").read_text())["results"][0]["status"] == "done"
