"""The ``hdmea`` command line (also ``python -m hdmea``).

Subcommands: ``demo``, ``run``, ``batch``, ``run-one``, ``inspect``, ``report``, ``view``, ``slurm-script``.
Exit status: 0 when everything asked for succeeded, 1 when a recording (or a
command) failed, 2 when nothing was started: a bad command line, a bad
configuration, or a problem the checks before the first step found (an input
missing or of the wrong kind, an output folder that cannot be written, too
little free space).  Every error is printed as one message naming the path and
what to do; no traceback.  ``run``, ``run-one`` and ``batch`` stopped by SIGTERM
or SIGINT (a cluster's time limit or preemption, Ctrl-C) checkpoint what they
finished, print ``stopped; run the same command again to resume`` with where,
and exit 130 after Ctrl-C at a terminal, 75 (``EX_TEMPFAIL``) after SIGTERM or
inside a SLURM job (the same command resumes; see
:mod:`hdmea.pipeline.batch.preemption`).  A stop at any other moment, the
command line's start included (:mod:`hdmea.__main__`), prints the same line (:mod:`hdmea.cli_stops`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from h5stream.cli_parser import OneLineParser
from h5stream.errors import H5StreamError
from hdmea import cli_stops
from hdmea.cli_stops import (
    EXIT_INTERRUPTED,
    EXIT_PREEMPTED,
    RESUMABLE,
    STOPPED,
    command_of,
    stop_exit_code,
    stopped_line,
)
from hdmea.cli_errors import FILE_ARGUMENTS, describe_error, input_problem
from hdmea.errors import ConfigError
from hdmea.progress import counted

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _load_config(path: str | None, sensor_axis_order: str | None = None, inputs: Callable | None = None,
                 overwrite: bool = False):
    """The configuration at ``path``; with ``inputs`` (the default configuration -> the inputs' problems), the
    mistakes of a wrong configuration are reported together with every problem of the inputs."""
    from hdmea.config import PipelineConfig, load_config
    from hdmea.pipeline.preflight import load_with_inputs

    default = PipelineConfig()
    if overwrite:
        default = dataclasses.replace(default, output=dataclasses.replace(default.output, overwrite=True))
    config = load_with_inputs(lambda: load_config(path) if path else default, default, inputs or (lambda _: []))
    if sensor_axis_order is not None:  # the command line overrides [recording] of the configuration
        config = dataclasses.replace(config, sensor_axis_order=sensor_axis_order)
    return config


def _listed_inputs(recordings, out_dir: str, index: int | None = None) -> Callable:
    """What :func:`_load_config` checks beside a batch's configuration: its recordings (the one at ``index``
    of ``run-one``) exist, and its output folder can be written."""
    def problems(config) -> list:
        from hdmea.pipeline.batch import discover_recordings, output_path_for
        from hdmea.pipeline.preflight import check_run

        items = discover_recordings(recordings)
        if index is not None:  # an index out of range is refused by run_one, naming the range
            items = items[index:index + 1] if 0 <= index < len(items) else []
        return check_run(items, [output_path_for(r, out_dir) for r in items], config, open_files=False).all_problems
    return problems


# --------------------------------------------------------------------------- subcommands


def _cmd_demo(args: argparse.Namespace) -> int:
    from hdmea.demo import report, run_demo

    report(run_demo(args.out, n_units=args.units, seed=args.seed, overwrite=args.overwrite))
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from hdmea.pipeline.batch import Recording, run_job, run_pipeline_job
    from hdmea.pipeline.batch.recordings import finished_marker
    from hdmea.pipeline.preflight import check_run

    out = Path(args.out)
    if out.suffix not in (".h5", ".hdf5"):
        raise ConfigError("the output must be an .h5 file", found=str(out), hint="e.g. --out results/rec.h5")
    recording = Recording.from_paths(args.cmcr, args.cmtr, name=args.name)
    config = _load_config(args.config, args.sensor_axis_order, overwrite=args.force,
                          inputs=lambda default: check_run([recording], [out], default).all_problems)
    if args.force:
        config = dataclasses.replace(config, output=dataclasses.replace(config.output, overwrite=True))
    job = None
    if finished_marker(out, config, recording) is None:
        if args.verify_inputs:
            _refuse_unverified(recording)
        check_run([recording], [out], config).raise_if_any()
        job = functools.partial(run_pipeline_job, preflight=False)  # checked just now
        if args.config is None:
            print(_without_config_note(), file=sys.stderr)
    outcome = run_job(recording, out, config, job=job)
    return _print_outcome(recording.name, out, outcome)


def _check_run_arguments(args: argparse.Namespace) -> None:
    """A usage error (argparse's, exit 2) for a .cmtr given first and a .cmcr second."""
    from hdmea.steps.load import refuse_swapped_pair

    try:
        refuse_swapped_pair(args.cmcr, args.cmtr, call="hdmea run")
    except ConfigError as exc:
        args.parser.exit(EXIT_USAGE, f"{args.parser.prog}: {exc}\n")  # says what to do itself


def _refuse_unverified(recording) -> None:
    """Read the recording's ``.cmcr`` and ``.cmtr`` in a separate process first (``--verify-inputs``).

    A file that a read refuses, or that makes libhdf5 crash or hang, raises its
    :class:`~hdmea.errors.RecordingFormatError` here, before this process opens it.
    """
    from hdmea.io.mcs import verify_recordings

    refused = verify_recordings([recording])
    if refused:
        raise refused[recording.name]


def _without_config_note() -> str:
    """What ``run`` does without ``--config``: the steps that need a stimulus or are off by default."""
    from hdmea.pipeline.run import planned_steps

    plan = planned_steps()
    runs = [name for name, reason in plan if reason is None]
    skipped = "; ".join(f"{name}: {reason}" for name, reason in plan if reason is not None)
    return (f"hdmea run: no --config given, so only {', '.join(runs)} will run ({skipped}). "
            "A configuration describes the stimulus and switches steps on; `hdmea demo` writes one to start "
            "from, and `hdmea run --help` lists the steps.")


def _print_outcome(name: str, out: Path, outcome: dict, command_name: str = "hdmea run") -> int:
    status = outcome["status"]
    if status == "preempted":
        print(f"{command_name}: {STOPPED} ({cli_stops.stop_detail(name, outcome)})", file=sys.stderr)
        return stop_exit_code(outcome.get("signal"))
    if status in ("failed", "held"):  # held: another process holds the recording, not computed here
        text = (f"{name}: held: {outcome.get('error')}" if status == "held"
                else f"{name}: failed ({outcome.get('kind')} error): {outcome.get('error')}")
        print(on_command_line(text, "run"), file=sys.stderr)
        return EXIT_FAILED
    detail = outcome.get("detail") or {}
    if status == "skipped":
        print(f"{name}: already finished with this configuration, skipped ({out}); --force runs it again")
        return EXIT_OK
    print(f"{name}: done in {outcome.get('seconds', 0.0):.2f} s -> {out}")
    if outcome.get("note"):  # an output that had its marker, computed again: why
        print(f"  {outcome['note']}")
    for step in detail.get("steps", []):
        if step["status"] == "ran":
            print(f"  {step['name']:<22} {step['status']:<9} {step['seconds']:7.2f} s")
        else:
            note = f" ({step['note']})" if step.get("note") else ""
            print(f"  {step['name']:<22} {step['status']}{note}")
    if "n_units" in detail:
        print(f"  units: {detail['n_units']}")
    order = detail.get("frame_order")
    if order:
        from hdmea.pipeline.run import frame_order_words

        print(f"  raw frames: {frame_order_words(order)}")
        if order.get("warning"):
            print(f"  warning: {order['warning']}")
    check = detail.get("orientation")
    if check and check.get("n_units_checked"):
        own = round(check["fraction_own"] * check["n_units_checked"])
        print(f"  electrical images: {own} of {counted(check['n_units_checked'], 'unit')} peak at their own electrode")
    return EXIT_OK


def _cmd_batch(args: argparse.Namespace) -> int:
    from hdmea.pipeline.batch import run_batch, slurm_client
    from hdmea.progress import configure_logging

    config = _load_config(args.config, args.sensor_axis_order, inputs=_listed_inputs(args.recordings, args.out))
    executor = None
    if args.slurm:
        if config.batch.slurm is None:
            raise ConfigError("--slurm needs a [batch.slurm] table in the configuration",
                              path=args.config, hint="see examples/slurm_batch.py")
        executor = slurm_client(config.batch.slurm)
    worker_init = functools.partial(configure_logging, args.log_level, run_view=True)
    try:
        summary = run_batch(
            args.recordings, config, args.out, executor=executor, retries=args.retries,
            workers=args.workers, scheduler=args.scheduler, worker_init=worker_init,
            verify_inputs=args.verify_inputs,
        )
    finally:
        if executor is not None:
            executor.close()
            executor.cluster.close()
    print(summary.table())
    if summary.results and len(summary.skipped) == len(summary.results):
        print(f"nothing to do: all {counted(len(summary.results), 'recording')} finished already with this "
              "configuration (no workers were started)")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)  # the checks found it writable; a batch that started nothing
    path = summary.write_json(out_dir / (args.summary or "batch_summary.json"))
    print(f"summary: {path}")
    refused = [r for r in summary.results if r.status == "failed" and r.attempts == 0]
    if summary.results and len(refused) == len(summary.results):
        each = "the recording was" if len(refused) == 1 else f"all {len(refused)} recordings were"
        problems = "; ".join(f"{r.name}: {r.error}" for r in refused)
        _error("batch", f"nothing was started: {each} refused before the first step: {problems}. A recording is a "
               ".cmcr and its .cmtr with the same name in the folder (or a 'CMCR CMTR' line of a list file); fix "
               "the inputs and run the same command again")
        return EXIT_USAGE
    if summary.stopped_by:
        print(f"hdmea batch: {STOPPED} ({cli_stops.signal_words(summary.stopped_by)}: "
              f"{_what_the_stopped_kept(summary.preempted)})", file=sys.stderr)
        return stop_exit_code(summary.stopped_by)
    return EXIT_OK if summary.ok else EXIT_FAILED


def _what_the_stopped_kept(stopped: list) -> str:
    """How many recordings a stop ended, and how many of them keep finished steps in a checkpoint."""
    kept = sum(1 for result in stopped if (result.detail or {}).get("checkpoint"))
    where = "<name>.h5.checkpoint.h5"
    if not stopped:
        return "no recording was running"
    if kept == len(stopped):
        return f"{counted(len(stopped), 'recording')} stopped, each keeping its finished steps in {where}"
    if not kept:
        return f"{counted(len(stopped), 'recording')} stopped, none with a finished step to keep"
    return (f"{counted(len(stopped), 'recording')} stopped: {kept} keeping finished steps in {where}, "
            f"{len(stopped) - kept} with none to keep")


def _cmd_run_one(args: argparse.Namespace) -> int:
    from hdmea.pipeline.batch import run_one

    index = args.index
    if index is None:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        if task is None:
            raise ConfigError("no --index given and SLURM_ARRAY_TASK_ID is not set",
                              hint="pass --index N (0-based) or run inside a SLURM job array")
        index = int(task)
    config = _load_config(args.config, args.sensor_axis_order, inputs=_listed_inputs(args.recordings, args.out, index))
    if args.verify_inputs:
        from hdmea.pipeline.batch import discover_recordings, finished_marker, output_path_for

        items = discover_recordings(args.recordings)
        if 0 <= index < len(items) and finished_marker(output_path_for(items[index], args.out), config,
                                                         items[index]) is None:
            _refuse_unverified(items[index])  # out-of-range indexes are refused by run_one, naming the range
    result = run_one(args.recordings, index, config, args.out)
    outcome = {"status": result.status, "seconds": result.seconds, "detail": result.detail,
               "kind": result.kind, "error": result.error, "message": result.error,
               "signal": (result.detail or {}).get("signal"), "checkpoint": (result.detail or {}).get("checkpoint"),
               "steps_done": (result.detail or {}).get("steps_done"), "note": result.note}
    return _print_outcome(result.name, result.output, outcome, "hdmea run-one")


def _cmd_inspect(args: argparse.Namespace) -> int:
    from hdmea.report.tree import describe_recording

    print(describe_recording(args.file, max_children=None if args.all else args.max_children))
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    import time

    from h5stream.files.checksum_checks import carries_no_checksum, check_file, check_summary
    from hdmea.io.mcs import mcs_link_rule
    from hdmea.io.recording import marked_as_recording

    start = time.perf_counter()
    # a .cmtr's /Acquisition link to its .cmcr is accepted, as by the input checks
    stats = check_file(args.file, link_rule=mcs_link_rule)  # a mismatch is a ChecksumError: reported by _run, non-zero exit
    seconds = time.perf_counter() - start
    if carries_no_checksum(stats) and not marked_as_recording(args.file):
        read = f"all {counted(stats['unchecked'], 'dataset')} read without an error"
        if Path(args.file).suffix.lower() in (".cmcr", ".cmtr"):
            print(f"{args.file}: readable: {read}; an MCS file carries no checksums, so its values cannot be "
                  f"compared with any")
            return EXIT_OK
        _error("verify", f"{args.file} is an HDF5 file that hdmea did not write: it carries no checksums, so "
                         f"nothing could be verified ({read}). hdmea verify checks the recording files that hdmea "
                         f"run, batch or demo wrote, and MCS files (.cmcr, .cmtr).")
        return EXIT_USAGE
    print(check_summary(args.file, stats, seconds))
    return EXIT_OK


def _cmd_view(args: argparse.Namespace) -> int:
    from hdmea.view import serve

    serve(args.paths, host=args.host, port=args.port)
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from hdmea.report import write_report

    report = write_report(args.file, args.out)
    print(f"report of {args.file}: {report.html}")
    for figure in report.figures:
        print(f"  {figure}")
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="pipeline configuration (TOML)")
    p.add_argument("--sensor-axis-order", choices=("auto", "col_row", "row_col"), default=None,
                   help="how the .cmcr stores its frames (default: [recording] sensor_axis_order of the "
                        "configuration, else auto). auto decides per recording: a non-square region's shape, else "
                        "the units' spike-triggered troughs; when the data cannot tell, it reads the vendor's "
                        "[col, row], stores a warning in the output and prints it in the run summary. col_row or "
                        "row_col force the order. See docs/guide/frame-order.md")


#: What ``hdmea batch`` does when batches share an output folder (its --help).
BATCH_SHARING = """\
Batches may share an output folder. Each job holds its recording's claim (<out>.h5.job.claim) for its whole
run. A recording that another process holds (a job of another batch, or a program writing its output) is
skipped and reported as "held", naming the holder (host, pid, since when): it is neither computed again nor
counted as done by this batch, and it is not retried (run the batch again once the holder has ended to pick up
anything it did not finish). A held recording does not make the exit status 1. A recording another batch
finished is "skipped", naming that batch. batch_summary.json is the folder's summary: every batch merges its
rows into it (atomically, under a lock), and its "batches" list keeps each batch's own rows."""


def steps_help() -> str:
    """The pipeline's steps as the configuration names them, from :data:`hdmea.steps.table.STEPS`."""
    from hdmea.steps.table import STEPS

    lines = ["pipeline steps, in order ([steps.NAME] of the configuration holds a step's parameters):"]
    for step in STEPS:
        if step.switch:
            switch = f"[steps] {step.name} = true|false (default {'on' if step.default else 'off'})"
        else:
            switch = "no switch"
        lines.append(f"  {step.name:<22} {switch}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="hdmea",
        description="HD-MEA retina recordings (.cmcr/.cmtr) to one HDF5 file per recording.",
    )
    levels = ["DEBUG", "INFO", "WARNING", "ERROR"]
    log_help = "log lines on stderr, tagged with the recording (and SLURM ids)"
    parser.add_argument("--log-level", default=None, choices=levels, help=log_help + " (default INFO; WARNING for "
                        "demo without --verbose)")
    # The same option after the command name (hdmea run ... --log-level DEBUG).
    common = OneLineParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, choices=levels, help=log_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parser = functools.partial(sub.add_parser, parents=[common])

    p = add_parser("demo", help="generate a small synthetic recording and run the whole pipeline")
    p.add_argument("--out", default="hdmea-demo", metavar="DIR", help="directory for the files")
    p.add_argument("--units", type=int, default=8, help="units in the synthetic recording")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo in DIR")
    p.add_argument("--verbose", action="store_true",
                   help="show each step's log lines (by default only the summary; --log-level sets any level)")
    p.set_defaults(func=_cmd_demo)

    p = add_parser("run", help="process one recording", epilog=steps_help(),
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmcr", help="raw recording (.cmcr)")
    p.add_argument("cmtr", help="spike sorting (.cmtr)")
    _add_config(p)
    p.add_argument("--out", required=True, metavar="FILE", help="output recording file (.h5)")
    p.add_argument("--name", help="dataset id, {name} in the configuration (default: the .cmcr's stem)")
    p.add_argument("--force", action="store_true",
                   help="run again even when FILE is finished with this configuration")
    p.add_argument("--verify-inputs", action=argparse.BooleanOptionalAction, default=False,
                   help="read the inputs in a separate process first, so a file that crashes the HDF5 "
                        "library is reported instead (default: off)")
    p.set_defaults(func=_cmd_run, check=_check_run_arguments, parser=p)

    p = add_parser("batch", help="process many recordings on a Dask cluster or a process pool",
                   description=BATCH_SHARING, epilog=steps_help(),
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recordings", metavar="LIST_OR_DIR",
                   help="directory of .cmcr/.cmtr pairs, or a file listing 'CMCR [CMTR]' per line")
    _add_config(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory of the outputs")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local worker processes (default: the cores free at the start, "
                       "no more than the recordings, each job's kernels on free cores // workers threads; with one "
                       "core free or one recording, the recordings run one after another in this process)")
    where.add_argument("--scheduler", metavar="ADDR", help="address of a running Dask scheduler, or 'local' for a "
                       "Dask LocalCluster of the batch's own (default: a process pool forked from one server)")
    where.add_argument("--slurm", action="store_true",
                       help="start a dask-jobqueue SLURM cluster from [batch.slurm] of the config")
    p.add_argument("--retries", type=int, help="retries after infrastructure errors (default 2)")
    p.add_argument("--summary", metavar="NAME", help="summary file name in DIR (batch_summary.json)")
    p.add_argument("--verify-inputs", action=argparse.BooleanOptionalAction, default=True,
                   help="read every input in a separate process first: a file that crashes the HDF5 library "
                        "fails its own recording and the batch goes on (default: on)")
    p.set_defaults(func=_cmd_batch)

    p = add_parser("run-one", help="process recording number INDEX of a list (one SLURM array task)")
    p.add_argument("recordings", metavar="LIST_OR_DIR")
    p.add_argument("--index", type=int, help="0-based; default $SLURM_ARRAY_TASK_ID")
    _add_config(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--verify-inputs", action=argparse.BooleanOptionalAction, default=True,
                   help="read the recording's inputs in a separate process first, as `hdmea batch` does: a file "
                        "that crashes the HDF5 library fails this task with an error (default: on)")
    p.set_defaults(func=_cmd_run_one)

    p = add_parser("inspect", help="tree of a recording file: sizes, units, steps completed")
    p.add_argument("file")
    p.add_argument("--max-children", type=int, default=4, metavar="N",
                   help="members shown per group below the top level before eliding (default 4)")
    p.add_argument("--all", action="store_true", help="show every member")
    p.set_defaults(func=_cmd_inspect)

    p = add_parser("verify", help="check every checksum of a recording file by reading all of it")
    p.add_argument("file")
    p.set_defaults(func=_cmd_verify)

    p = add_parser("report", help="figures and an HTML page of a processed recording")
    p.add_argument("file")
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=_cmd_report)

    p = add_parser("view", help="browse recording files in a local web browser (read-only)")
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR",
                   help="recording files (.h5) or folders of them; only these folders are served")
    p.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; anything else warns: others may connect)")
    p.set_defaults(func=_cmd_view)

    from hdmea.cli_interop import add_commands as add_interop_commands
    from hdmea.cli_slurm import add_command as add_slurm_command

    add_interop_commands(add_parser)  # export-nwb, migrate
    add_slurm_command(add_parser)  # slurm-script
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hdmea`` console script; returns the exit status.

    Called without ``argv`` (the command line: the console script, ``python -m
    hdmea``), the process ends as soon as the command is done: the
    interpreter's teardown after numba has loaded LLVM takes seconds and has
    nothing left to do (every file written is committed and closed).  From
    then on Ctrl-C and SIGTERM are ignored: a stop that arrives after the
    command returned no longer decides how the process ends.  With ``argv``
    given (from Python), it returns the status like any function and the
    signal handlers are as they were.
    """
    try:
        with cli_stops.stops_noted(then_ignore=argv is None):
            code = _run(argv)
    except KeyboardInterrupt:  # Ctrl-C before a command's own handling began (its imports, its checks)
        code = _stopped(argv)
    except BaseException:
        # a stop cut an import short (numpy's, h5py's): it may surface as any error of the module cut short
        # (an AttributeError of a module left half-initialized, a RuntimeError of its own checks); a stop was
        # recorded, so the command ends with the stop's line and status, never that error's traceback
        if cli_stops.first_signal() is None:
            raise
        code = _stopped(argv)
    if argv is None and ("numba" in sys.modules or code in (EXIT_INTERRUPTED, EXIT_PREEMPTED)):
        # a stopped command ends here too: a stop that cut an extension module's import short marks the
        # interpreter, whose own exit would then end the process by SIGINT (-2), not with the stop's status
        from h5stream.stops import end_process

        end_process(code)
    return code


def _stopped(argv: Sequence[str] | None) -> int:
    print(stopped_line(command_of(sys.argv[1:] if argv is None else argv)), file=sys.stderr)
    return stop_exit_code(cli_stops.first_signal() or "SIGINT")


def _run(argv: Sequence[str] | None) -> int:
    from hdmea.pipeline.preflight import PreflightError
    from hdmea.progress import configure_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log_level is None:  # the demo's summary says it all; its log lines only with --verbose
        args.log_level = "WARNING" if args.command == "demo" and not args.verbose else "INFO"
    if getattr(args, "check", None) is not None:
        args.check(args)
    configure_logging(args.log_level, run_view=args.command in RESUMABLE,
                      one_recording=args.command in ("run", "run-one"))
    func: Callable[[argparse.Namespace], int] = args.func
    command = args.command
    named = getattr(args, FILE_ARGUMENTS.get(command, ""), None)
    for path in [named] if isinstance(named, str) else named or []:
        problem = input_problem(path, command)
        if problem is not None:
            _error(command, problem)
            return EXIT_USAGE
    stop_signals: contextlib.AbstractContextManager = contextlib.nullcontext()
    preempted: type[BaseException] | tuple = ()  # caught below only by the commands that stop on signals
    if command in RESUMABLE:
        from hdmea.pipeline.batch.preemption import Preempted, stop_on_signals

        stop_signals, preempted = stop_on_signals(), Preempted
    try:
        with warnings.catch_warnings(), stop_signals:
            # A warning is one line addressed to the user, not a source location.
            warnings.showwarning = functools.partial(_show_warning, command)
            return func(args)
    except ConfigError as exc:
        _error(command, f"configuration error: {exc}")
        return EXIT_USAGE
    except PreflightError as exc:
        _error(command, str(exc))
        return EXIT_USAGE
    except (H5StreamError, ImportError) as exc:
        if cli_stops.first_signal() is not None:  # an import cut short by Ctrl-C (numpy's, say) fails as an ImportError
            return _stopped(argv)
        text, code = describe_error(exc, command)
        _error(command, text)
        return code
    except BrokenPipeError:  # the reader of stdout left (hdmea inspect FILE | head): stop quietly, as cat does
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as exc:
        _error(command, describe_os_error(exc))
        return EXIT_FAILED
    except preempted as exc:  # a signal before or after the recordings' jobs
        print(stopped_line(command), file=sys.stderr)
        return stop_exit_code(exc.signal_name)


#: What the library's messages call a keyword argument, on the command line, per subcommand.
_FLAGS = {
    "demo": {"overwrite=True": "--overwrite", "out_dir": "--out"},
    "run": {"overwrite=True": "--force", "force=True": "--force"},
}


def on_command_line(text: str, command: str) -> str:
    """``text`` with the library's keyword arguments named as ``command``'s flags (``--overwrite``)."""
    for keyword, flag in _FLAGS.get(command, {}).items():
        text = re.sub(rf"(?<![\w-]){re.escape(keyword)}(?!\w)", flag, text)
    return text


def _show_warning(command: str, message, category, filename, lineno, file=None, line=None) -> None:
    print(f"hdmea {command}: warning: {on_command_line(str(message), command)} ({category.__name__})",
          file=sys.stderr)


def _error(command: str, text: str) -> None:
    print(f"hdmea {command}: {on_command_line(text, command)}", file=sys.stderr)


def describe_os_error(exc: OSError) -> str:
    """An operating-system error as one line: what failed, on which path, and what to do."""
    from hdmea.pipeline.preflight import user_error_hint

    reason = exc.strerror or str(exc) or type(exc).__name__
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(os.fspath(p) for p in paths)
    hint = user_error_hint(exc) or "check the path and the disk, then try again"
    return f"{where + ': ' if where else ''}{reason} ({hint})"


if __name__ == "__main__":  # pragma: no cover - python -m hdmea.cli
    sys.exit(main())
