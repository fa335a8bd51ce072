"""The ``hdmea`` command line (also ``python -m hdmea``).

Subcommands: ``demo``, ``run``, ``batch``, ``run-one``, ``inspect``, ``report``.
Exit status: 0 when everything asked for succeeded, 1 when a recording failed,
2 for a bad command line or a bad configuration (nothing was started).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from h5stream.errors import H5StreamError
from hdmea.errors import ConfigError

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _load_config(path: str | None):
    from hdmea.config import PipelineConfig, load_config

    return load_config(path) if path else PipelineConfig()


# --------------------------------------------------------------------------- subcommands


def _cmd_demo(args: argparse.Namespace) -> int:
    from hdmea.demo import run_demo

    result = run_demo(args.out, n_units=args.units, seed=args.seed, overwrite=args.overwrite)
    print(result.describe())
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from hdmea.pipeline.batch import Recording, run_job

    config = _load_config(args.config)
    out = Path(args.out)
    if out.suffix not in (".h5", ".hdf5"):
        raise ConfigError("the output must be an .h5 file", found=str(out), hint="e.g. --out results/rec.h5")
    out.parent.mkdir(parents=True, exist_ok=True)
    recording = Recording.from_paths(args.cmcr, args.cmtr, name=args.name)
    outcome = run_job(recording, out, config)
    return _print_outcome(recording.name, out, outcome)


def _print_outcome(name: str, out: Path, outcome: dict) -> int:
    status = outcome["status"]
    if status == "failed":
        print(f"{name}: failed ({outcome.get('kind')} error): {outcome.get('error')}", file=sys.stderr)
        return EXIT_FAILED
    detail = outcome.get("detail") or {}
    if status == "skipped":
        print(f"{name}: already finished, skipped ({out})")
        return EXIT_OK
    print(f"{name}: done in {outcome.get('seconds', 0.0):.2f} s -> {out}")
    for step in detail.get("steps", []):
        print(f"  {step['name']:<22} {step['status']:<9} {step['seconds']:7.2f} s")
    if "n_units" in detail:
        print(f"  units: {detail['n_units']}")
    check = detail.get("orientation")
    if check and check.get("n_units_checked"):
        print(f"  electrical-image orientation: {check['fraction_own']:.0%} of {check['n_units_checked']} units "
              f"peak at their own (row, col), {check['fraction_transposed']:.0%} at (col, row)")
    return EXIT_OK


def _cmd_batch(args: argparse.Namespace) -> int:
    from hdmea.pipeline.batch import run_batch, slurm_client
    from hdmea.progress import configure_logging

    config = _load_config(args.config)
    executor = None
    if args.slurm:
        if config.batch.slurm is None:
            raise ConfigError("--slurm needs a [batch.slurm] table in the configuration",
                              path=args.config, hint="see examples/slurm_batch.py")
        executor = slurm_client(config.batch.slurm)
    worker_init = functools.partial(configure_logging, args.log_level)
    try:
        summary = run_batch(
            args.recordings, config, args.out, executor=executor, retries=args.retries,
            workers=args.workers, scheduler=args.scheduler, worker_init=worker_init,
        )
    finally:
        if executor is not None:
            executor.close()
            executor.cluster.close()
    print(summary.table())
    path = summary.write_json(Path(args.out) / (args.summary or "batch_summary.json"))
    print(f"summary: {path}")
    return EXIT_OK if summary.ok else EXIT_FAILED


def _cmd_run_one(args: argparse.Namespace) -> int:
    from hdmea.pipeline.batch import run_one

    index = args.index
    if index is None:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        if task is None:
            raise ConfigError("no --index given and SLURM_ARRAY_TASK_ID is not set",
                              hint="pass --index N (0-based) or run inside a SLURM job array")
        index = int(task)
    config = _load_config(args.config)
    result = run_one(args.recordings, index, config, args.out)
    outcome = {"status": result.status, "seconds": result.seconds, "detail": result.detail,
               "kind": result.kind, "error": result.error}
    return _print_outcome(result.name, result.output, outcome)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from hdmea.report.tree import describe_recording

    print(describe_recording(args.file, max_children=None if args.all else args.max_children))
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


def steps_help() -> str:
    """The pipeline's steps as the configuration names them, from :data:`hdmea.pipeline.steps.STEPS`."""
    from hdmea.pipeline.steps import STEPS

    lines = ["pipeline steps, in order ([steps.NAME] of the configuration holds a step's parameters):"]
    for step in STEPS:
        if step.switch:
            switch = f"[steps] {step.name} = true|false (default {'on' if step.default else 'off'})"
        else:
            switch = "no switch"
        lines.append(f"  {step.name:<22} {switch}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hdmea",
        description="HD-MEA retina recordings (.cmcr/.cmtr) to one HDF5 file per recording.",
    )
    levels = ["DEBUG", "INFO", "WARNING", "ERROR"]
    log_help = "log lines on stderr, tagged with the recording (and SLURM ids)"
    parser.add_argument("--log-level", default="INFO", choices=levels, help=log_help)
    # The same option after the command name (hdmea run ... --log-level DEBUG).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, choices=levels, help=log_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parser = functools.partial(sub.add_parser, parents=[common])

    p = add_parser("demo", help="generate a small synthetic recording and run the whole pipeline")
    p.add_argument("--out", default="hdmea-demo", metavar="DIR", help="directory for the files")
    p.add_argument("--units", type=int, default=8, help="units in the synthetic recording")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo in DIR")
    p.set_defaults(func=_cmd_demo)

    p = add_parser("run", help="process one recording", epilog=steps_help(),
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmcr", help="raw recording (.cmcr)")
    p.add_argument("cmtr", help="spike sorting (.cmtr)")
    _add_config(p)
    p.add_argument("--out", required=True, metavar="FILE", help="output recording file (.h5)")
    p.add_argument("--name", help="dataset id, {name} in the configuration (default: the .cmcr's stem)")
    p.set_defaults(func=_cmd_run)

    p = add_parser("batch", help="process many recordings on a Dask cluster or a process pool",
                   epilog=steps_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recordings", metavar="LIST_OR_DIR",
                   help="directory of .cmcr/.cmtr pairs, or a file listing 'CMCR [CMTR]' per line")
    _add_config(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory of the outputs")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local worker processes (default: CPUs)")
    where.add_argument("--scheduler", metavar="ADDR", help="address of a running Dask scheduler")
    where.add_argument("--slurm", action="store_true",
                       help="start a dask-jobqueue SLURM cluster from [batch.slurm] of the config")
    p.add_argument("--retries", type=int, help="retries after infrastructure errors (default 2)")
    p.add_argument("--summary", metavar="NAME", help="summary file name in DIR (batch_summary.json)")
    p.set_defaults(func=_cmd_batch)

    p = add_parser("run-one", help="process recording number INDEX of a list (one SLURM array task)")
    p.add_argument("recordings", metavar="LIST_OR_DIR")
    p.add_argument("--index", type=int, help="0-based; default $SLURM_ARRAY_TASK_ID")
    _add_config(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=_cmd_run_one)

    p = add_parser("inspect", help="tree of a recording file: sizes, units, steps completed")
    p.add_argument("file")
    p.add_argument("--max-children", type=int, default=4, metavar="N",
                   help="members shown per group before eliding (default 4)")
    p.add_argument("--all", action="store_true", help="show every member")
    p.set_defaults(func=_cmd_inspect)

    p = add_parser("report", help="figures and an HTML page of a processed recording")
    p.add_argument("file")
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=_cmd_report)

    from hdmea.cli_interop import add_commands as add_interop_commands

    add_interop_commands(add_parser)  # export-nwb, migrate
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hdmea`` console script; returns the exit status.

    Called without ``argv`` (the command line: the console script, ``python -m
    hdmea``), the process ends as soon as the command is done: the
    interpreter's teardown after numba has loaded LLVM takes seconds and has
    nothing left to do (every file written is committed and closed).  With
    ``argv`` given (from Python), it returns the status like any function.
    """
    code = _run(argv)
    if argv is None and "numba" in sys.modules:
        from hdmea.pipeline.batch import exit_without_teardown

        exit_without_teardown(code)
    return code


def _run(argv: Sequence[str] | None) -> int:
    from hdmea.progress import configure_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"hdmea {args.command}: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (H5StreamError, OSError, ImportError) as exc:
        print(f"hdmea {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"hdmea {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover - python -m hdmea.cli
    sys.exit(main())
