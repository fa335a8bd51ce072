"""``hdmea run-one --verify-inputs`` (on by default) reads the task's inputs in a separate process first.

An input that makes libhdf5 crash (simulated: the checking process kills itself
with SIGSEGV on files named ``crash*``, as libhdf5 does on some damaged ``.cmtr``)
or that a read refuses fails the task with a typed error and exit status 1, never
a crash of the task itself, and no output is written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.integration.test_hostile_files import CRASHING_CHILD


def _recordings(tiny_recording, folder: Path, name: str) -> Path:
    folder.mkdir()
    shutil.copy(tiny_recording.cmcr_path, folder / f"{name}.cmcr")
    shutil.copy(tiny_recording.cmtr_path, folder / f"{name}.cmtr")
    return folder


def test_input_that_crashes_the_reader_fails_the_task_with_a_typed_error(tiny_recording, tmp_path, monkeypatch,
                                                                        capsys):
    import h5stream.files.verify as verify
    from hdmea.cli import main

    monkeypatch.setattr(verify, "_VERIFY_CHILD", CRASHING_CHILD)
    src = _recordings(tiny_recording, tmp_path / "in", "crash_r")
    out = tmp_path / "out"
    code = main(["run-one", str(src), "--index", "0", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "RecordingFormatError" not in err and str(src / "crash_r.cmcr") in err and "crashed" in err
    assert "Traceback" not in err
    assert not (out / "crash_r.h5").exists()

    # --no-verify-inputs skips the separate process: the (healthy) files are processed here.
    code = main(["run-one", str(src), "--index", "0", "--out", str(out), "--no-verify-inputs"])
    assert code == 0, capsys.readouterr().err
    assert (out / "crash_r.h5").is_file()


def test_damaged_input_is_refused_before_the_task_opens_it(tiny_recording, tmp_path, capsys):
    from hdmea.cli import main

    src = _recordings(tiny_recording, tmp_path / "in", "rec")
    cmtr = src / "rec.cmtr"
    cmtr.write_bytes(cmtr.read_bytes()[: cmtr.stat().st_size // 3])  # truncated: a copy cut short
    code = main(["run-one", str(src), "--index", "0", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "RecordingFormatError" not in err and str(cmtr) in err and "Traceback" not in err and "truncated" in err
    assert not (tmp_path / "out" / "rec.h5").exists()
