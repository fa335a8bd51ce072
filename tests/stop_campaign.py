"""Stops at random moments: SIGINT and SIGTERM sent to ``hdmea demo``, ``run``, ``batch`` and a job run from Python,
each outcome counted.

``python -m tests.stop_campaign [--stops N] [--seed S] [--folder DIR] [--trace-after SECONDS]`` prints the counts
(run it under ``python -m tests.busy --`` for a loaded machine); ``tests/integration/test_stop_campaign.py`` runs it
with two busy processes per core and asserts that no stop was lost.

``--trace-after SECONDS`` (or ``STOP_CAMPAIGN_TRACE_AFTER``) says where a slow stop spends its time: every process
of the command registers :mod:`faulthandler` on SIGUSR1 (a ``sitecustomize`` put first on its path), and a
command still running that many seconds after its stop is sent SIGUSR1 every :data:`TRACE_EVERY` seconds until it
ends; each process's Python stacks at those moments are printed with the outcome.

Each stop goes to the command's process group, as a terminal sends Ctrl-C, at a moment drawn uniformly from
the moment the command can take a stop to 0.9 times the rest of the same command's unstopped run, measured just
before from that moment (some fall after the command's end).  That moment is read from the process itself
(:func:`wait_ready`), not guessed from the interpreter's start, which a busy machine stretches: ``hdmea``'s
handlers of SIGINT and SIGTERM installed (its package's first line; :func:`catches` reads the process's
``SigCgt`` in ``/proc``), and for the job run from Python the file its first line inside its ``try`` writes.
Before it no program can take a signal: the interpreter itself ends by it.  Where ``/proc`` cannot be read, the
moment is the end of the interpreter's own start (the slowest of three ``python -c pass`` measured just before).
Each command starts with SIGINT and SIGTERM at their defaults, as a terminal's foreground job does
(:func:`with_default_stops`): a process that ignores them (a test run that imported the batch's fork server
module) would pass that on.  An outcome is one of:

- ``stopped``: the stop's exit status (130 for SIGINT, 75 for SIGTERM; the Python job: 130 after its
  ``KeyboardInterrupt``, or ended by SIGTERM), one line saying ``stopped``, the last (a batch: besides, one line
  per recording it stopped); no traceback; every :data:`AGAIN_EVERY`-th, the command again then finishes the
  work;
- ``finished``: exit status 0 within :data:`ALLOWED_SECONDS` of the stop, the work complete (the stop came after
  it was committed);
- ``slow``: stopped, or finished, but later than :data:`ALLOWED_SECONDS` (a figure to report: the time a stop
  takes is measured here, not asserted by the test);
- ``lost``: exit status 0 more than :data:`LOST_SECONDS` after the stop (the command ran on; a stop lost before
  the fix ran on for 3 to 7 s here);
- ``early``: the command ended before the stop was sent (not a stop; not counted among them);
- ``unready``: the command did not get to where it can take a stop within :data:`READY_SECONDS`, or ended before
  (no stop sent; counted, and a failure);
- ``wrong``: anything else (a traceback, an ``Exception ignored`` line, another status, several stop lines).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

#: seconds from the stop to the command's end that a stop may take
ALLOWED_SECONDS = 2.0
#: seconds after the stop past which a command that then ends with status 0 ran on: it lost the stop
LOST_SECONDS = 5.0
#: seconds between two looks at the stacks of a command that has not ended after its stop (``--trace-after``)
TRACE_EVERY = 0.25
#: every this many stops, a stopped command is run again and must finish the work
AGAIN_EVERY = 8
#: seconds a command may take from its launch until it can take a stop (:func:`wait_ready`)
READY_SECONDS = 60.0
#: seconds between two looks at a starting command (its readiness has no event to wait on)
READY_LOOK_SECONDS = 0.002
COMMANDS = ("demo", "run", "batch", "api")
RECORDINGS = 3  # a batch's
CONFIG = ('[stimulus]\nfile = "{dir}/{name}.stimulus.json"\n[steps]\ncompute_eimage_sta = true\n'
          '[output]\ncheckpoint_min_seconds = 0.0\n')
API_JOB = """
import os, sys
try:
    os.close(os.open(sys.argv[5], os.O_CREAT | os.O_WRONLY, 0o644))  # from here on a stop is taken
    from hdmea.config import load_config
    from hdmea.pipeline import run_pipeline

    run_pipeline(sys.argv[1], sys.argv[2], sys.argv[3], load_config(sys.argv[4]), show_progress=False)
except KeyboardInterrupt:
    print("api job: stopped", file=sys.stderr)
    sys.exit(130)
"""
BAD_WORDS = ("Traceback", "Exception ignored", "KeyboardInterrupt", "Preempted")


@dataclasses.dataclass
class Outcome:
    command: str
    signal_name: str
    delay: float  # seconds from the moment the command could take a stop (ready_seconds) to the stop
    kind: str
    returncode: int
    ready_seconds: float | None  # from the launch until the command could take a stop (None: never)
    seconds_to_end: float
    stderr: str
    left_processes: bool = False
    traces: str = ""  # the command's stacks after the stop (--trace-after), when it had not ended by then


def _hdmea() -> list[str]:
    return [sys.executable, "-m", "hdmea"]


def prepare(folder: Path) -> dict:
    """Three small recordings and their configuration in ``folder``."""
    from hdmea.synthetic import generate_recording

    recordings = folder / "recordings"
    made = [generate_recording(recordings, f"r{i}", n_units=4, seed=i) for i in range(RECORDINGS)]
    config = folder / "pipeline.toml"
    config.write_text(CONFIG)
    return {"made": made, "config": config, "recordings": recordings}


def command_line(command: str, setup: dict, out: Path) -> tuple[list[str], Path]:
    """The command's words and the file whose presence says its work is complete (the Python job's readiness
    file: :func:`ready_marker`)."""
    made, config = setup["made"][0], setup["config"]
    if command == "demo":
        return _hdmea() + ["demo", "--out", str(out), "--units", "4"], out / "demo.h5"
    if command == "run":
        return (_hdmea() + ["run", str(made.cmcr_path), str(made.cmtr_path), "--config", str(config),
                            "--out", str(out / "r0.h5")], out / "r0.h5")
    if command == "batch":
        return (_hdmea() + ["batch", str(setup["recordings"]), "--config", str(config), "--out", str(out),
                            "--workers", "1"], out / "r2.h5")
    return ([sys.executable, "-c", API_JOB, str(made.cmcr_path), str(made.cmtr_path), str(out / "r0.h5"),
             str(config), str(ready_marker(command, out))], out / "r0.h5")


_DEFAULT_STOPS = ("import os, signal, sys\n"
                  "for sig in (signal.SIGINT, signal.SIGTERM):\n"
                  "    signal.signal(sig, signal.SIG_DFL)\n"
                  "os.execv(sys.argv[1], sys.argv[1:])\n")


def with_default_stops(argv: list[str]) -> list[str]:
    """``argv`` run in the same process (``exec``) with SIGINT and SIGTERM at their defaults, whatever this
    process does with them (one it ignores, its children inherit ignored)."""
    return [sys.executable, "-c", _DEFAULT_STOPS, *argv]


def ready_marker(command: str, out: Path) -> Path | None:
    """The file a command writes once it can take a stop (the Python job's); None: its handlers say it."""
    return out.parent / f"{out.name}.ready" if command == "api" else None


def catches(pid: int, signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> bool | None:
    """Whether process ``pid`` runs a handler of its own for each of ``signals``: their bits in the ``SigCgt``
    mask of ``/proc/PID/status`` (Linux).  None where that cannot be read (no ``/proc``, the process gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    caught = int(line.split()[1], 16)
                    return all(caught >> (int(sig) - 1) & 1 for sig in signals)
    except (OSError, ValueError, IndexError):
        return None
    return None


def wait_ready(proc: subprocess.Popen, marker: Path | None = None, timeout: float = READY_SECONDS) -> bool | None:
    """Wait until ``proc`` can take a stop: ``marker`` exists (given: the program says so itself), or else it
    catches SIGINT and SIGTERM (:func:`catches`).  True once it can; False when it ended first or could not
    within ``timeout`` seconds; None where no ``marker`` is given and ``/proc`` cannot be read."""
    if marker is None and not os.path.isdir(f"/proc/{os.getpid()}"):
        return None
    deadline = time.monotonic() + timeout
    while True:
        if marker.exists() if marker is not None else catches(proc.pid):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            proc.wait(timeout=min(READY_LOOK_SECONDS, left))  # a bounded look that ends as the process does
        except subprocess.TimeoutExpired:
            continue
        return bool(marker.exists()) if marker is not None else False


def _stop_status(command: str, signal_name: str, returncode: int) -> bool:
    if command == "api":
        # a script that takes the KeyboardInterrupt and exits 130 may still end by SIGINT (-2): CPython marks an
        # interrupt that cut short code an extension module ran while it was imported as unhandled, and ends
        # the interpreter by SIGINT at its exit (the console script ends with os._exit after a stop instead)
        stop = (130, -signal.SIGINT) if signal_name == "SIGINT" else (-signal.SIGTERM,)
        return returncode in stop
    return returncode == (130 if signal_name == "SIGINT" else 75)


def classify(command: str, signal_name: str, returncode: int, seconds_to_end: float, stderr: str,
             complete: bool) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    stop_lines = [line for line in lines if "stopped" in line and ("hdmea" in line or "api job" in line)]
    if command == "batch":  # one line per recording it stopped, then the batch's own
        recording_lines = [line for line in stop_lines if "hdmea.pipeline.batch.jobs" in line]
        if len(recording_lines) > RECORDINGS:
            return "wrong"
        stop_lines = [line for line in stop_lines if line not in recording_lines]
    if any(word in stderr for word in BAD_WORDS):
        return "wrong"
    if returncode == 0:
        if not complete:
            return "wrong"
        if seconds_to_end > LOST_SECONDS:
            return "lost"
        return "finished" if seconds_to_end <= ALLOWED_SECONDS else "slow"
    if not _stop_status(command, signal_name, returncode):
        return "wrong"
    if command != "api" or returncode == 130:
        if len(stop_lines) != 1 or lines[-1] != stop_lines[0]:
            return "wrong"
    return "stopped" if seconds_to_end <= ALLOWED_SECONDS else "slow"


_TRACING = """
import faulthandler, os, signal, sys, time
_folder = os.environ.get("STOP_CAMPAIGN_TRACES")
if _folder:
    _file = open(os.path.join(_folder, f"{os.getpid()}.txt"), "w")
    _file.write(f"pid {os.getpid()} started at {time.monotonic():.3f}: {' '.join(sys.argv)[:300]}\\n")
    _file.flush()
    faulthandler.register(signal.SIGUSR1, file=_file, all_threads=True, chain=False)
"""


def _env(traces: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    path = [p for p in sys.path if p]
    if traces is not None:  # every Python process of the command can show its stacks (--trace-after)
        (traces / "sitecustomize.py").write_text(_TRACING)
        path.insert(0, str(traces))
        env["STOP_CAMPAIGN_TRACES"] = str(traces)
    env["PYTHONPATH"] = os.pathsep.join(path)
    return env


def _collect_traces(traces: Path, sent: float, looks: list[float]) -> str:
    """The stacks the command's processes wrote at ``looks`` (monotonic times), then emptied for the next."""
    text = [f"stacks at {', '.join(f'{t - sent:.2f}' for t in looks)} s after the stop (in that order):"]
    for found in sorted(traces.glob("*.txt")):
        text.append(found.read_text(errors="replace"))
        found.unlink()
    return "\n".join(text)


def _wait_tracing(proc: subprocess.Popen, sent: float, trace_after: float, looks: list[float]) -> None:
    """Wait for ``proc``; from ``trace_after`` seconds after the stop on, its group shows its stacks (SIGUSR1)
    every :data:`TRACE_EVERY` seconds until it ends (at most a minute)."""
    deadline = sent + trace_after
    while True:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            return
        except subprocess.TimeoutExpired:
            if time.monotonic() - sent > 60.0:
                return
            looks.append(time.monotonic())
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGUSR1)
            deadline = looks[-1] + TRACE_EVERY


def timed_run(argv: list[str], env: dict, delay: float | None, sig: signal.Signals | None,
              timeout: float = 300.0, trace_after: float | None = None, ready: bool = False,
              marker: Path | None = None, floor: float = 0.0) -> tuple[int, float | None, str]:
    """Run ``argv`` in a process group of its own, send ``sig`` to the group after ``delay`` seconds; its
    status, the seconds from the signal (from the start, without one; None: it ended before the signal) to
    its end, and its stderr.  With ``ready``, the delay counts from the moment the command can take a stop
    (:func:`wait_ready` with ``marker``; ``floor`` seconds after the launch where that cannot be read), kept in
    ``_READY[0]`` as seconds from the launch (None: it never got there; no signal is sent then, and a command
    still running is killed).  With ``trace_after`` (and ``env`` from ``_env(traces)``), the stacks of a command
    still running that long after the stop are kept in ``_TRACES[0]``."""
    _TRACES[0] = ""
    _READY[0] = None
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(with_default_stops(argv), stdout=subprocess.DEVNULL, stderr=err, env=env,
                                start_new_session=True)
        start = time.monotonic()
        sent = start
        if ready:
            got = wait_ready(proc, marker)
            elapsed = time.monotonic() - start
            if got is None:  # no /proc: the end of the interpreter's own start
                _READY[0] = max(elapsed, floor)
                delay = (delay or 0.0) + max(0.0, floor - elapsed)
            elif got:
                _READY[0] = elapsed
            else:
                sig = None
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
        if sig is not None:
            try:
                proc.wait(timeout=delay)
                sent = None
            except subprocess.TimeoutExpired:
                sent = time.monotonic()
                os.killpg(proc.pid, sig)
        looks: list[float] = []
        if sent is not None and sig is not None and trace_after is not None:
            _wait_tracing(proc, sent, trace_after, looks)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        ended = time.monotonic()
        traces = env.get("STOP_CAMPAIGN_TRACES")
        _LEFT[0] = _left_in_group(proc.pid)
        if traces:
            if looks:
                _TRACES[0] = _collect_traces(Path(traces), sent, looks)
            for stale in Path(traces).glob("*.txt"):
                stale.unlink()
        err.seek(0)
        return proc.returncode, None if sent is None else ended - sent, err.read().decode(errors="replace")


_READY: list[float | None] = [None]  # seconds from the last timed_run's launch until its command could take a stop
_LEFT_WHAT: list[str] = []  # what the processes left running were (Linux: their command lines)
_TRACES = [""]  # the stacks the last timed_run's command showed after its stop (trace_after)
_LEFT = [False]  # whether the last timed_run's command left a process of its group running (then killed)
#: seconds a command's processes (a batch's workers) may take to end after the command did
LEFT_SECONDS = 10.0


def _group_processes(group: int) -> list[str]:
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            if entry.isdigit() and os.getpgid(int(entry)) == group:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    words = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry}: {words[:200]}")
        except OSError:
            continue
    return found


def _left_in_group(group: int) -> bool:
    """Whether a process of ``group`` still runs :data:`LEFT_SECONDS` after its leader ended (then killed)."""
    deadline = time.monotonic() + LEFT_SECONDS
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        if time.monotonic() > deadline:
            _LEFT_WHAT[:] = _group_processes(group)
            os.killpg(group, signal.SIGKILL)
            return True
        time.sleep(0.1)  # a bounded look, not a synchronisation: the group has no event to wait on


def campaign(folder: Path, stops: int, seed: int = 0, commands=COMMANDS, log=None,
             trace_after: float | None = None) -> list[Outcome]:
    """Until ``stops`` stops were sent (those drawn after the command's end do not count; at most three times as
    many tries), spread evenly over ``commands``; each command's unstopped time measured first.  With
    ``trace_after``, an outcome keeps the stacks of a command still running that long after its stop."""
    rng = random.Random(seed)
    setup = prepare(folder)
    traces = None
    if trace_after is not None:
        traces = folder / "traces"
        traces.mkdir()
    env = _env(traces)
    floor = 0.0  # where /proc cannot be read: the end of the interpreter's own start
    if not os.path.isdir(f"/proc/{os.getpid()}"):
        floor = max(timed_run([sys.executable, "-c", "pass"], env, None, None)[1] for _ in range(3))
    rest = {}  # command -> seconds of its unstopped run from the moment it could take a stop
    for command in commands:
        out = folder / f"full-{command}"
        argv, done = command_line(command, setup, out)
        marker = ready_marker(command, out)
        code, seconds, err = timed_run(argv, env, None, None, ready=True, marker=marker, floor=floor)
        assert code == 0 and done.exists() and _READY[0] is not None, f"{command} failed unstopped ({code}):\n{err}"
        rest[command] = seconds - _READY[0]
        shutil.rmtree(out)
        if marker is not None:
            marker.unlink()
    outcomes = []
    sent = 0
    for i in range(3 * stops):
        if sent >= stops:
            break
        command = commands[i % len(commands)]
        sig = rng.choice([signal.SIGINT, signal.SIGTERM])
        delay = rng.uniform(0.0, 0.9 * rest[command])  # after the command can take a stop
        out = folder / f"stop-{i}"
        argv, done = command_line(command, setup, out)
        marker = ready_marker(command, out)
        code, seconds, err = timed_run(argv, env, delay, sig, trace_after=trace_after, ready=True, marker=marker,
                                       floor=floor)
        seen, ready = _TRACES[0], _READY[0]
        if ready is None:
            kind = "unready"
        else:
            kind = "early" if seconds is None else classify(command, sig.name, code, seconds, err, done.exists())
        if kind == "stopped" and code != -signal.SIGTERM and i % AGAIN_EVERY == 0:  # the same command finishes
            again, _, again_err = timed_run(argv, env, None, None)
            if again != 0 or not done.exists() or any(word in again_err for word in BAD_WORDS):
                kind, err = "wrong", err + "\n--- the same command again ---\n" + again_err
        left = _LEFT[0]
        if left:
            err += "\n--- processes left running ---\n" + "\n".join(_LEFT_WHAT)
        sent += kind != "early"
        outcome = Outcome(command, sig.name, round(delay, 3), kind, code,
                          None if ready is None else round(ready, 3), round(seconds or 0.0, 3), err, left, seen)
        outcomes.append(outcome)
        if log is not None:
            print(f"{i:4d} {command:6s} {sig.name:8s} at {delay:6.2f} s after ready at "
                  f"{'never' if ready is None else f'{ready:.2f} s'}: {kind:8s} status {code:4d}, "
                  f"ended {seconds or 0.0:5.2f} s after{', left processes' if left else ''}", file=log, flush=True)
        shutil.rmtree(out, ignore_errors=True)
        if marker is not None:
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()
    return outcomes


def counts(outcomes: list[Outcome]) -> dict:
    table = Counter((o.command, o.kind) for o in outcomes)
    latencies = [o.seconds_to_end for o in outcomes if o.kind in ("stopped", "slow") and o.returncode != 0]
    return {"by_command": {f"{c}/{k}": n for (c, k), n in sorted(table.items())},
            "total": Counter(o.kind for o in outcomes),
            "slowest_stop_seconds": max(latencies, default=0.0),
            "slowest_ready_seconds": max((o.ready_seconds for o in outcomes if o.ready_seconds is not None),
                                         default=0.0),
            "left_processes": Counter(o.command for o in outcomes if o.left_processes)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stop_campaign", description=__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--commands", default=",".join(COMMANDS))
    parser.add_argument("--trace-after", type=float, default=os.environ.get("STOP_CAMPAIGN_TRACE_AFTER"),
                        help="show the stacks of a command still running this many seconds after its stop")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="stops-", dir=args.folder))
    try:
        outcomes = campaign(folder, args.stops, args.seed, tuple(args.commands.split(",")), log=sys.stdout,
                            trace_after=args.trace_after)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for o in outcomes:
        if o.kind not in ("stopped", "finished", "early", "slow") or o.left_processes:
            print(f"--- {o.command} {o.signal_name} at {o.delay} s after ready at {o.ready_seconds} s: {o.kind}, "
                  f"status {o.returncode}, {o.seconds_to_end} s\n{o.stderr}")
        if o.traces:
            print(f"--- {o.command} {o.signal_name} at {o.delay} s after ready at {o.ready_seconds} s: {o.kind}, "
                  f"status {o.returncode}, ended "
                  f"{o.seconds_to_end} s after the stop; {o.traces}")
    print(json.dumps(counts(outcomes), indent=1))
    return 0 if all(o.kind in ("stopped", "finished", "early", "slow") and not o.left_processes
                    for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
