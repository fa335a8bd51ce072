"""Progress: a bar on a terminal, coarse log lines elsewhere; log lines tagged for the CLI."""

from __future__ import annotations

import io
import logging

import pytest

from hdmea.progress import (
    RecordingTagFilter,
    configure_logging,
    current_recording,
    progress,
    recording_context,
    slurm_tag,
)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_terminal_logs_coarse_lines(caplog):
    log = logging.getLogger("hdmea.test_progress")
    with caplog.at_level(logging.INFO, logger="hdmea.test_progress"):
        with progress(100, "work", unit="item", log=log, stream=io.StringIO()) as bar:
            assert not bar.uses_bar
            for _ in range(100):
                bar.update()
    lines = [r.getMessage() for r in caplog.records]
    # start, 25/50/75/100 %, done: a handful of lines for 100 updates.
    assert lines[0] == "work: started (100 items)"
    assert [m for m in lines if "%" in m and "done" not in m] == [
        f"work: {n}/100 items ({n}%, " + m.split(", ", 1)[1] for n, m in
        zip((25, 50, 75, 100), [m for m in lines if "%" in m and "done" not in m])
    ]
    assert lines[-1].startswith("work: done, 100/100 items")
    assert len(lines) == 6


def test_on_terminal_draws_a_bar_and_logs_nothing(caplog):
    stream = _Tty()
    log = logging.getLogger("hdmea.test_progress")
    with caplog.at_level(logging.INFO, logger="hdmea.test_progress"):
        with progress(10, "bar", log=log, stream=stream) as bar:
            assert bar.uses_bar
            bar.update(10)
    assert bar.count == 10
    assert "bar:" in stream.getvalue() and "/10" in stream.getvalue()
    assert not caplog.records


def test_slurm_tag_and_recording_filter():
    assert slurm_tag({}) == ""
    assert slurm_tag({"SLURM_JOB_ID": "77"}) == "slurm=77 "
    assert slurm_tag({"SLURM_JOB_ID": "78", "SLURM_ARRAY_JOB_ID": "70",
                      "SLURM_ARRAY_TASK_ID": "3"}) == "slurm=70_3 "
    record = logging.LogRecord("hdmea.x", logging.INFO, __file__, 1, "m", None, None)
    filt = RecordingTagFilter({"SLURM_JOB_ID": "5", "SLURM_ARRAY_TASK_ID": "2"})
    with recording_context("rec_A"):
        assert current_recording() == "rec_A"
        filt.filter(record)
    assert current_recording() is None
    assert record.recording == "rec_A" and record.slurm == "slurm=5_2 "


@pytest.fixture
def restore_logging():
    """Undo what configure_logging does to the package loggers, after the test."""
    lg = logging.getLogger("hdmea")
    before = (list(lg.handlers), lg.level, lg.propagate)
    yield
    lg.handlers[:] = before[0]
    lg.setLevel(before[1])
    lg.propagate = before[2]
    for name in ("h5stream", "scptensor"):
        other = logging.getLogger(name)
        other.handlers[:] = [h for h in other.handlers if not hasattr(h, "_hdmea_cli_handler")]
        other.propagate = True
        other.setLevel(logging.NOTSET)


def test_configure_logging_tags_lines_and_does_not_double(monkeypatch, restore_logging):
    monkeypatch.setenv("SLURM_JOB_ID", "1234")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "9")
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    configure_logging("INFO", stream=stream)
    with recording_context("rec_B"):
        logging.getLogger("hdmea.pipeline.batch").info("hello %d", 5)
    logging.getLogger("hdmea.pipeline.batch").debug("hidden")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "slurm=1234_9 [rec_B] hdmea.pipeline.batch: hello 5" in lines[0]
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("LOUD")


def test_log_lines_and_a_bar_share_a_terminal_without_breaking_lines(restore_logging):
    stream = _Tty()
    configure_logging("INFO", stream=stream)
    log = logging.getLogger("hdmea.test_progress")
    with progress(4, "work", unit="step", log=log, stream=stream) as bar:
        for i in range(4):
            bar.update(1)
            log.info("line %d while the bar shows", i)
    log.info("after the bar")
    text = stream.getvalue()
    for i in range(4):
        assert f"line {i} while the bar shows" in text
    # What a terminal shows of each line is what follows its last carriage return: every
    # log line must be there whole, starting with its time stamp, with no bar drawn before it.
    shown = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    logged = [line for line in shown if "while the bar shows" in line or "after the bar" in line]
    assert len(logged) == 5, shown
    for line in logged:
        assert line[:4].isdigit() and "work:" not in line and "|" not in line, line


def test_count_words_agree_with_their_numbers():
    from hdmea.progress import counted

    assert counted(1, "step") == "1 step"
    assert counted(6, "step") == "6 steps"
    assert counted(0, "recording") == "0 recordings"
    assert counted(3, "it") == "3 it"


def test_a_bar_leaves_no_leaked_semaphore_when_the_process_ends_without_teardown():
    """A bar on a terminal, then the command line's fast exit: the resource tracker finds nothing left.

    The batch's Dask cluster makes ``spawn`` the start method, under which a
    multiprocessing lock is a named semaphore that only an orderly exit removes.
    """
    import os
    import subprocess
    import sys

    script = (
        "import multiprocessing, sys\n"
        "multiprocessing.set_start_method('spawn')\n"
        "from hdmea.progress import progress\n"
        "from hdmea.pipeline.batch import exit_without_teardown\n"
        "with progress(3, 'work', stream=sys.stderr) as bar:\n"
        "    assert bar.uses_bar\n"
        "    bar.update(3)\n"
        "exit_without_teardown(0)\n"
    )
    import fcntl
    import struct
    import termios

    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 x 100 characters
    try:
        proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.DEVNULL,
                                stdout=follower, stderr=follower, close_fds=True)
        os.close(follower)
        chunks = []
        while True:  # until every holder of the terminal (the tracker too) has closed it
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(leader)
    text = b"".join(chunks).decode(errors="replace")
    assert "work:" in text  # the bar was drawn
    assert "leaked semaphore" not in text and "resource_tracker" not in text, text
