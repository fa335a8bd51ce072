"""Process a directory of recordings on a SLURM cluster through dask-jobqueue.

The driver (this script) runs on a login or head node; dask-jobqueue submits
SLURM jobs that each start Dask workers, and ``run_batch`` sends one job per
recording to them.  Finished recordings are skipped when the script runs again
(each output has a ``<name>.h5.done`` marker); a recording whose worker was
preempted resumes from its checkpoint on the next attempt.

Usage::

    python examples/slurm_batch.py RECORDINGS_DIR OUT_DIR --config pipeline.toml \\
        [--queue normal] [--account lab] [--jobs 8] [--cores 4] [--memory 16GB] [--walltime 04:00:00]

    # without SLURM, the same code on this machine (a Dask LocalCluster):
    python examples/slurm_batch.py RECORDINGS_DIR OUT_DIR --config pipeline.toml --local 2

    # or on a Dask scheduler that is already running:
    python examples/slurm_batch.py RECORDINGS_DIR OUT_DIR --config pipeline.toml --scheduler tcp://host:8786

The same batch from the command line: ``hdmea batch RECORDINGS_DIR --config
pipeline.toml --out OUT_DIR --slurm`` (SLURM options in the ``[batch.slurm]``
table of the configuration) or ``--scheduler ADDR`` or ``--workers N``.
"""

from __future__ import annotations

import argparse
import sys

from hdmea.config import PipelineConfig, SlurmConfig, load_config
from hdmea.pipeline.batch import run_batch, slurm_client
from hdmea.progress import configure_logging


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recordings", help="directory of .cmcr/.cmtr pairs or a list file")
    parser.add_argument("out", help="directory of the outputs")
    parser.add_argument("--config", help="pipeline configuration (TOML)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--local", type=int, metavar="N", help="N local worker processes instead of SLURM")
    where.add_argument("--scheduler", metavar="ADDR", help="a running Dask scheduler")
    parser.add_argument("--queue")
    parser.add_argument("--account")
    parser.add_argument("--jobs", type=int, default=4, help="SLURM jobs (each one Dask worker process)")
    parser.add_argument("--cores", type=int, default=2, help="cores per SLURM job")
    parser.add_argument("--memory", default="8GB", help="memory per SLURM job")
    parser.add_argument("--walltime", default="02:00:00")
    parser.add_argument("--retries", type=int, default=2)
    args = parser.parse_args(argv)

    configure_logging("INFO")
    config = load_config(args.config) if args.config else PipelineConfig()
    client = None
    if args.local is None and args.scheduler is None:
        slurm = SlurmConfig(queue=args.queue, account=args.account, cores=args.cores, processes=1,
                            memory=args.memory, walltime=args.walltime, jobs=args.jobs)
        client = slurm_client(slurm)
        print(client.cluster.job_script())
    try:
        summary = run_batch(args.recordings, config, args.out, executor=client, retries=args.retries,
                            workers=args.local,
                            # --local: a Dask LocalCluster, the same engine as on SLURM, on this machine
                            scheduler=args.scheduler or ("local" if args.local is not None else None))
    finally:
        if client is not None:
            client.close()
            client.cluster.close()
    print(summary.table())
    summary.write_json(f"{args.out}/batch_summary.json")
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
