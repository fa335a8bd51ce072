"""Fail before the work: every check before the first step, and the user's errors never retried.

The commands run in this process (``hdmea.cli.main(argv)`` returns the exit
status) so that a read-only folder can be simulated for root, who bypasses
permissions: the probe file's creation is made to fail the way the kernel
fails it.  A really read-only filesystem (a read-only tmpfs) is used too when
this process may mount one.
"""

from __future__ import annotations

import concurrent.futures as cf
import errno
import logging
import os
import shutil
import subprocess
from collections import namedtuple
from pathlib import Path

import h5py
import pytest

from h5stream.errors import WriteError
from hdmea import cli
from hdmea.config import parse_config
from hdmea.pipeline import preflight
from hdmea.pipeline.batch import Recording, run_batch, run_one
from hdmea.pipeline.preflight import LowSpaceWarning, PreflightError, check_run
from hdmea.pipeline.run import run_pipeline
from tests.conftest import tmpfs_mount
from tests.shared_files import link_read_only


@pytest.fixture(autouse=True)
def _restore_logging():
    """The command line installs its log handler on these loggers; put them back as they were."""
    names = ("hdmea", "h5stream", "h5scp")
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers), logging.getLogger(n).propagate)
             for n in names}
    yield
    for n, (level, handlers, propagate) in saved.items():
        lg = logging.getLogger(n)
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate = propagate



def _config(**steps):
    return parse_config({"stimulus": {"file": "{dir}/{name}.stimulus.json"}, "steps": steps})


def _copies(tiny: Path, folder: Path, names) -> Path:
    """The tiny recording under each of ``names`` in ``folder``: its raw file linked (no test writes it),
    the others copied (a test damages a .cmtr)."""
    folder.mkdir()
    for name in names:
        link_read_only(tiny / "tiny.cmcr", folder / f"{name}.cmcr")
        for suffix in (".cmtr", ".stimulus.json"):
            shutil.copyfile(tiny / f"tiny{suffix}", folder / f"{name}{suffix}")
    return folder


def _probe_denied(monkeypatch, number=errno.EACCES):
    """The probe file cannot be created, as in a folder without write permission (or read-only)."""
    def refuse(*args, **kwargs):
        raise PermissionError(number, os.strerror(number), kwargs.get("dir"))

    monkeypatch.setattr(preflight.tempfile, "mkstemp", refuse)


# --------------------------------------------------------------------------- read-only output folder


def test_unwritable_output_folder_refuses_run_pipeline_before_the_first_step(tiny, tmp_path, monkeypatch):
    _probe_denied(monkeypatch)
    ran = []
    out = tmp_path / "new" / "deeper" / "rec.h5"
    with pytest.raises(PreflightError) as info:
        run_pipeline(tiny / "tiny.cmcr", tiny / "tiny.cmtr", out, _config(), on_step=ran.append)
    assert ran == []
    text = str(info.value)
    assert "nothing was started" in text and str(tmp_path / "new" / "deeper") in text
    assert "Permission denied" in text and "permissions" in text
    assert not (tmp_path / "new").exists()  # no folder left behind


def test_unwritable_output_folder_on_every_command(tiny, tmp_path, monkeypatch, capsys):
    _probe_denied(monkeypatch)
    src = _copies(tiny, tmp_path / "recs", ["a", "b"])
    config = str(tiny / "tiny.toml")
    commands = {
        "run": ["run", str(tiny / "tiny.cmcr"), str(tiny / "tiny.cmtr"), "--config", config,
                "--out", str(tmp_path / "o1" / "x.h5")],
        "batch": ["batch", str(src), "--config", config, "--out", str(tmp_path / "o2"), "--workers", "1"],
        "run-one": ["run-one", str(src), "--index", "1", "--config", config, "--out", str(tmp_path / "o3")],
        "demo": ["demo", "--out", str(tmp_path / "o4")],
    }
    for name, argv in commands.items():
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code == cli.EXIT_USAGE, (name, err)
        assert f"hdmea {name}: nothing was started" in err and "Permission denied" in err, err
        assert "Traceback" not in err and "[Errno" not in err
    for folder in ("o1", "o2", "o3", "o4"):
        assert not (tmp_path / folder).exists()
    # a batch reports every problem at once: the folder and each recording's missing input
    (src / "a.cmtr").unlink()
    (src / "b.cmcr").rename(tmp_path / "b.cmcr")
    with pytest.raises(PreflightError) as info:
        run_batch(src, None, tmp_path / "o5", show_progress=False)
    problems = info.value.problems
    assert [(p.recording, p.path.name) for p in problems] == [(None, "o5"), ("a", "a.cmtr")]
    assert str(info.value).startswith("nothing was started: 2 problems found before the first step")


@pytest.fixture
def unprivileged():
    """A folder for the test, and the command prefix that runs ``hdmea`` without permission overrides."""
    import sys
    import tempfile

    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("dropping the permission-override capabilities needs root and setpriv")
    folder = Path(tempfile.mkdtemp(prefix="hdmea-unprivileged-", dir="/tmp"))
    folder.chmod(0o755)
    hdmea = Path(sys.executable).with_name("hdmea")
    # root without the capabilities that override file permissions: the folder's mode decides,
    # while the test's own 0700 folders (and a virtual environment in one) stay readable
    command = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", str(hdmea)]
    try:
        yield folder, command
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_read_only_folder_as_a_user_without_override_rights(tiny, unprivileged):
    folder, hdmea = unprivileged
    recs = folder / "recs"
    recs.mkdir()
    for suffix in (".cmcr", ".cmtr", ".stimulus.json"):
        shutil.copyfile(tiny / f"tiny{suffix}", recs / f"tiny{suffix}")
    shutil.copyfile(tiny / "tiny.toml", folder / "tiny.toml")
    for path in [recs, *recs.iterdir(), folder / "tiny.toml"]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    locked = folder / "locked"
    locked.mkdir()
    locked.chmod(0o555)  # nobody may not write here
    runs = {
        "run": [*hdmea, "run", str(recs / "tiny.cmcr"), str(recs / "tiny.cmtr"), "--config",
                str(folder / "tiny.toml"), "--out", str(locked / "x.h5")],
        "batch": [*hdmea, "batch", str(recs), "--config", str(folder / "tiny.toml"), "--out", str(locked / "b"),
                  "--workers", "1"],
    }
    for name, command in runs.items():
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (name, proc.stdout, proc.stderr)
        assert f"hdmea {name}: nothing was started" in proc.stderr and "Permission denied" in proc.stderr
        assert str(locked) in proc.stderr and "Traceback" not in proc.stderr
        assert "attempt" not in proc.stderr and "started (attempt" not in proc.stderr  # no job, no retry
    assert os.listdir(locked) == []


@pytest.fixture
def read_only_mount(tmp_path):
    """A really read-only filesystem (a read-only tmpfs); skipped where this process may not mount."""
    with tmpfs_mount(tmp_path / "ro", "size=1m,ro") as mount:
        yield mount


def test_read_only_filesystem_every_command(tiny, tmp_path, read_only_mount, capsys):
    src = _copies(tiny, tmp_path / "recs", ["a"])
    config = str(tiny / "tiny.toml")
    for argv in (["run", str(tiny / "tiny.cmcr"), str(tiny / "tiny.cmtr"), "--config", config,
                  "--out", str(read_only_mount / "x.h5")],
                 ["batch", str(src), "--config", config, "--out", str(read_only_mount / "b"), "--workers", "1"],
                 ["run-one", str(src), "--index", "0", "--out", str(read_only_mount / "c")],
                 ["demo", "--out", str(read_only_mount / "d")]):
        assert cli.main(argv) == cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert "Read-only file system" in err and "writable disk" in err, err
        assert "Traceback" not in err
    # report into the read-only filesystem: one message naming the folder, exit status 1, no traceback
    done = tmp_path / "done.h5"
    run_pipeline(tiny / "tiny.cmcr", tiny / "tiny.cmtr", done, _config(compute_sta=False, extract_features=False),
                 dataset_id="tiny")
    assert cli.main(["report", str(done), "--out", str(read_only_mount / "report")]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert str(read_only_mount / "report") in err and "Read-only file system" in err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("hdmea report:")]) == 1
    assert os.listdir(read_only_mount) == []


# --------------------------------------------------------------------------- missing and wrong inputs


def test_missing_cmcr_is_reported_before_the_first_step(tiny, tmp_path, capsys):
    ran = []
    with pytest.raises(PreflightError) as info:
        run_pipeline(tmp_path / "gone.cmcr", tiny / "tiny.cmtr", tmp_path / "out" / "x.h5", _config(),
                     on_step=ran.append)
    assert ran == [] and "gone.cmcr: the .cmcr file does not exist" in str(info.value)
    assert info.value.kind == "user"
    code = cli.main(["run", str(tmp_path / "gone.cmcr"), str(tiny / "tiny.cmtr"), "--out", str(tmp_path / "o.h5")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and "gone.cmcr: the .cmcr file does not exist" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "o.h5").exists()


def test_batch_reports_every_bad_input_at_once_and_retries_none(tiny, tmp_path, caplog):
    src = _copies(tiny, tmp_path / "recs", ["a", "b", "c", "d"])
    (src / "b.cmcr").unlink()  # missing
    (src / "c.cmtr").write_bytes(b"\x00" * 100)  # not HDF5
    (src / "d.cmtr").unlink()
    link_read_only(tiny / "tiny.cmcr", src / "d.cmtr")  # a .cmcr given as the spike sorting
    submitted = []
    logged_before_first_job = []

    class Recorder(cf.ThreadPoolExecutor):
        def submit(self, fn, recording, *args, **kwargs):
            if not submitted:
                logged_before_first_job.extend(r.getMessage() for r in caplog.records)
            submitted.append(recording.name)
            return super().submit(fn, recording, *args, **kwargs)

    recs = [Recording.from_paths(src / f"{n}.cmcr", src / f"{n}.cmtr") for n in "abcd"]
    with caplog.at_level(logging.ERROR, logger="hdmea"), Recorder(1) as ex:
        summary = run_batch(recs, _config(compute_sta=False, extract_features=False), tmp_path / "out",
                            executor=ex, retries=3, show_progress=False)
    assert submitted == ["a"]
    assert summary["a"].status == "done"
    for name, kind, texts in (("b", "user", ["b.cmcr: the .cmcr file does not exist"]),
                              ("c", "data", ["c.cmtr", "not an HDF5 file"]),
                              ("d", "data", ["d.cmtr", "not a CMOS-MEA-Tools file"])):
        res = summary[name]
        assert res.status == "failed" and res.kind == kind and res.attempts == 0, res
        assert all(text in res.error for text in texts), res.error
    # every problem was in the log before the first job was submitted
    before = "\n".join(logged_before_first_job)
    assert all(f"{n}.cm" in before for n in "bcd"), before


# --------------------------------------------------------------------------- free space


def _free(monkeypatch, free: int):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: usage(10 * free + 1, 9 * free + 1, free))


def test_full_disk_is_refused_naming_both_figures(tiny, tmp_path, monkeypatch):
    config = _config(compute_eimage_sta=True)
    rec = Recording.from_paths(tiny / "tiny.cmcr", tiny / "tiny.cmtr", name="tiny")
    estimate = check_run([rec], [tmp_path / "x.h5"], config).estimates["tiny"]
    _free(monkeypatch, 1000)
    ran = []
    with pytest.raises(PreflightError) as info:
        run_pipeline(rec.cmcr, rec.cmtr, tmp_path / "x.h5", config, dataset_id="tiny", on_step=ran.append)
    text = str(info.value)
    assert ran == []
    assert f"needs about {preflight.format_bytes(estimate.peak)}" in text and "1.0 kB are free" in text
    # the batch: refused before any job, for every recording at once
    submitted = []

    class Recorder(cf.ThreadPoolExecutor):
        def submit(self, *args, **kwargs):
            submitted.append(args)
            return super().submit(*args, **kwargs)

    src = _copies(tiny, tmp_path / "recs", ["a", "b"])
    with Recorder(1) as ex, pytest.raises(PreflightError, match="outputs of 2 recordings"):
        run_batch(src, config, tmp_path / "out", executor=ex, show_progress=False)
    assert submitted == [] and not (tmp_path / "out").exists()
    # tight: the run goes ahead with a warning naming both figures
    _free(monkeypatch, int(estimate.peak * 1.2))
    with pytest.warns(LowSpaceWarning, match="free space is tight"):
        check_run([rec], [tmp_path / "x.h5"], config)


def test_output_estimate_covers_the_real_output(tiny, tmp_path):
    config = _config(compute_eimage_sta=True)
    rec = Recording.from_paths(tiny / "tiny.cmcr", tiny / "tiny.cmtr", name="tiny")
    estimate = check_run([rec], [tmp_path / "x.h5"], config).estimates["tiny"]
    run_pipeline(rec.cmcr, rec.cmtr, tmp_path / "x.h5", config, dataset_id="tiny")
    size = os.path.getsize(tmp_path / "x.h5")
    with h5py.File(tmp_path / "x.h5", "r") as f:  # the parts the estimate names are really there
        first = sorted(f["units"])[0]
        assert f[f"units/{first}/features/eimage_sta/data"].size * 4 * 3 <= estimate.parts["electrical images"]
    assert size <= estimate.total <= 4 * size, (size, estimate.describe())


# --------------------------------------------------------------------------- the user's errors are not retried


def _raising_job(exc):
    def job(recording, output, config):
        raise exc
    return job


@pytest.mark.parametrize("exc", [
    PermissionError(errno.EACCES, "Permission denied", "/data/out/a.h5"),
    OSError(errno.EROFS, "Read-only file system", "/data/out/a.h5"),
    OSError(errno.ENOSPC, "No space left on device", "/data/out/a.h5"),
])
def test_user_errors_met_during_a_job_are_not_retried(tiny, tmp_path, exc):
    src = _copies(tiny, tmp_path / "recs", ["a"])
    with cf.ThreadPoolExecutor(1) as ex:
        summary = run_batch(src, None, tmp_path / "out", executor=ex, retries=3, job=_raising_job(exc),
                            show_progress=False)
    res = summary["a"]
    assert res.status == "failed" and res.kind == "user" and res.attempts == 1 and len(res.errors) == 1
    assert "/data/out/a.h5: " in res.error and ("choose" in res.error or "free space" in res.error)
    assert "[Errno" not in res.error
    # the engine's own write error wrapping such an error is the user's too
    wrapped = WriteError("writing a.h5 failed", path="/data/out/a.h5")
    wrapped.__cause__ = exc
    from hdmea.pipeline.batch import classify_error

    assert classify_error(wrapped) == "user"
    assert classify_error(OSError(errno.EIO, "Input/output error")) == "infrastructure"


def test_failed_run_leaves_no_folder_it_created(tiny, tmp_path):
    def fail_after_load(record):
        raise RuntimeError("stop after " + record.name)

    out = tmp_path / "made" / "by" / "run" / "x.h5"
    (tmp_path / "made").mkdir()
    with pytest.raises(RuntimeError, match="stop after load_recording"):
        run_pipeline(tiny / "tiny.cmcr", tiny / "tiny.cmtr", out, _config(), dataset_id="tiny",
                     on_step=fail_after_load)
    assert (tmp_path / "made").is_dir() and os.listdir(tmp_path / "made") == []  # it existed before
    result = run_one([(tiny / "tiny.cmcr", tiny / "tiny.cmtr")], 0, None, tmp_path / "one" / "two",
                     job=_raising_job(ValueError("bad")))
    assert result.status == "failed" and not (tmp_path / "one").exists()


# --------------------------------------------------------------------------- reruns


def test_all_finished_batch_rerun_is_immediate(tiny, tmp_path, caplog):
    src = _copies(tiny, tmp_path / "recs", ["a", "b", "c"])
    config = _config(compute_sta=False, extract_features=False)
    with cf.ThreadPoolExecutor(2) as ex:
        first = run_batch(src, config, tmp_path / "out", executor=ex, show_progress=False)
    assert len(first.done) == 3
    with caplog.at_level(logging.INFO, logger="hdmea"):
        # no executor given: a Dask cluster would be started if there were anything to do; none is
        again = run_batch(src, config, tmp_path / "out", show_progress=False)
    assert [r.status for r in again.results] == ["skipped"] * 3
    assert again.executor == "none (nothing to do)"
    assert any("all 3 recordings finished already" in r.getMessage() for r in caplog.records)


def test_run_force_reruns_and_without_config_says_what_runs(tiny, tmp_path, capsys):
    out = tmp_path / "x.h5"
    argv = ["run", str(tiny / "tiny.cmcr"), str(tiny / "tiny.cmtr"), "--out", str(out)]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "no --config given, so only load_recording will run" in captured.err
    assert "add_section_time: no stimulus in the configuration" in captured.err
    assert "compute_eimage_sta: steps.compute_eimage_sta is off" in captured.err
    stamp = out.stat().st_mtime_ns
    assert cli.main(argv) == 0
    assert "already finished with this configuration, skipped" in capsys.readouterr().out
    assert out.stat().st_mtime_ns == stamp
    assert cli.main(argv + ["--force"]) == 0
    assert "tiny: done in" in capsys.readouterr().out
    assert out.stat().st_mtime_ns != stamp


def test_worker_warm_up_writes_no_log_lines(tmp_path):
    import io

    from hdmea.pipeline.batch import workers
    from hdmea.progress import configure_logging

    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    workers._warm_up()
    assert stream.getvalue() == ""
    logging.getLogger("hdmea.pipeline").info("after the warm-up")
    assert "after the warm-up" in stream.getvalue()  # levels are restored


def test_tight_space_warns_on_the_command_line_and_runs(tiny, tmp_path, monkeypatch, capsys):
    import warnings

    from hdmea.config import load_config

    config = load_config(tiny / "tiny.toml")  # what the command reads
    rec = Recording.from_paths(tiny / "tiny.cmcr", tiny / "tiny.cmtr", name="tiny")
    estimate = check_run([rec], [tmp_path / "x.h5"], config).estimates["tiny"]
    _free(monkeypatch, int(estimate.peak * 1.2))
    with warnings.catch_warnings():
        warnings.simplefilter("always", LowSpaceWarning)  # as outside the test suite
        code = cli.main(["run", str(rec.cmcr), str(rec.cmtr), "--config", str(tiny / "tiny.toml"),
                         "--out", str(tmp_path / "x.h5"), "--name", "tiny"])
    captured = capsys.readouterr()
    assert code == 0 and "tiny: done in" in captured.out
    lines = [line for line in captured.err.splitlines() if "free space is tight" in line]
    assert len(lines) == 1 and lines[0].startswith("hdmea run: warning: ")
    assert f"needs about {preflight.format_bytes(estimate.peak)}" in lines[0]
    assert lines[0].endswith("(LowSpaceWarning)")


def test_a_file_that_is_not_ours_at_the_output_path_is_kept(tiny, tmp_path):
    import dataclasses

    out = tmp_path / "x.h5"
    out.write_bytes(b"someone's notes, not a recording\n")
    config = _config(compute_sta=False, extract_features=False)
    ran = []
    with pytest.raises(PreflightError, match="not a recording of this pipeline is in the way") as info:
        run_pipeline(tiny / "tiny.cmcr", tiny / "tiny.cmtr", out, config, dataset_id="tiny", on_step=ran.append)
    assert ran == [] and "output.overwrite" in str(info.value)
    assert out.read_bytes() == b"someone's notes, not a recording\n"
    with h5py.File(out, "w") as f:  # an HDF5 file of another program: kept too
        f["x"] = 1
    with pytest.raises(PreflightError, match="without pipeline/session_info"):
        run_pipeline(tiny / "tiny.cmcr", tiny / "tiny.cmtr", out, config, dataset_id="tiny")
    # asked to replace it: replaced; and a recording of ours is rerun over without asking
    replace = dataclasses.replace(config, output=dataclasses.replace(config.output, overwrite=True))
    run_pipeline(tiny / "tiny.cmcr", tiny / "tiny.cmtr", out, replace, dataset_id="tiny")
    run_pipeline(tiny / "tiny.cmcr", tiny / "tiny.cmtr", out, config, dataset_id="tiny")
    with h5py.File(out, "r") as f:
        assert "pipeline/session_info" in f and "x" not in f
