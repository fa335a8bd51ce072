#!/bin/bash
# One recording per SLURM array task, no scheduler needed.
#
#   N=$(ls recordings/*.cmcr | wc -l)
#   sbatch --array=0-$((N - 1)) examples/slurm_array.sh recordings results pipeline.toml
#
# Task k processes the k-th recording of the directory in name order (the same
# order `hdmea batch` uses).  Rerunning the array skips finished recordings
# (each output has a <name>.h5.done marker) and resumes preempted ones from
# their <name>.h5.checkpoint.h5.  Log lines carry the job and task ids.
#
# Without SLURM, the same loop runs locally (SLURM_ARRAY_TASK_ID is what
# `hdmea run-one` reads when --index is not given):
#   for k in 0 1 2; do SLURM_ARRAY_TASK_ID=$k bash examples/slurm_array.sh recordings results pipeline.toml; done
#
#SBATCH --job-name=hdmea
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=02:00:00
#SBATCH --requeue
#SBATCH --output=hdmea-%A_%a.log

set -euo pipefail

RECORDINGS=${1:?usage: slurm_array.sh RECORDINGS_DIR_OR_LIST OUT_DIR [CONFIG.toml]}
OUT=${2:?usage: slurm_array.sh RECORDINGS_DIR_OR_LIST OUT_DIR [CONFIG.toml]}
CONFIG=${3:-}
HDMEA=${HDMEA:-hdmea}

args=(run-one "$RECORDINGS" --out "$OUT" --index "${SLURM_ARRAY_TASK_ID:?not a SLURM array task}")
if [[ -n "$CONFIG" ]]; then
    args+=(--config "$CONFIG")
fi
exec $HDMEA "${args[@]}"
