#!/bin/bash
# One recording per SLURM array task, no scheduler needed.  `hdmea slurm-script --out slurm_array.sh`
# writes this script (it ships with the package), then:
#
#   N=$(ls recordings/*.cmcr | wc -l)
#   sbatch --array=0-$((N - 1)) slurm_array.sh recordings results pipeline.toml
#
# Task k processes the k-th recording of the directory in name order (the same
# order `hdmea batch` uses).  Rerunning the array skips finished recordings
# (each output has a <name>.h5.done marker) and resumes preempted ones from
# their <name>.h5.checkpoint.h5.  Log lines carry the job and task ids.
#
# Stopped before the end (SIGTERM 300 s before the time limit, from --signal
# below; preemption; `scancel --signal=TERM --batch`), hdmea writes what it has
# finished to the checkpoint and exits 75; this script then requeues its task,
# which resumes from the checkpoint (its log says "resuming from ...").  The log
# file is appended to, so it keeps both runs.  On a cluster whose slurm.conf has
# RequeueExit=75, SLURM requeues on that exit code by itself.
#
# Without SLURM, the same loop runs locally (SLURM_ARRAY_TASK_ID is what
# `hdmea run-one` reads when --index is not given):
#   for k in 0 1 2; do SLURM_ARRAY_TASK_ID=$k bash slurm_array.sh recordings results pipeline.toml; done
#
#SBATCH --job-name=hdmea
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=02:00:00
#SBATCH --requeue
#SBATCH --signal=B:TERM@300
#SBATCH --open-mode=append
#SBATCH --output=hdmea-%A_%a.log

set -uo pipefail

RECORDINGS=${1:?usage: slurm_array.sh RECORDINGS_DIR_OR_LIST OUT_DIR [CONFIG.toml]}
OUT=${2:?usage: slurm_array.sh RECORDINGS_DIR_OR_LIST OUT_DIR [CONFIG.toml]}
CONFIG=${3:-}
HDMEA=${HDMEA:-hdmea}
PREEMPTED=75  # hdmea's exit code after a signal: finished steps checkpointed, run again to resume

args=(run-one "$RECORDINGS" --out "$OUT" --index "${SLURM_ARRAY_TASK_ID:?not a SLURM array task}")
if [[ -n "$CONFIG" ]]; then
    args+=(--config "$CONFIG")
fi

# hdmea runs in the background so that this shell, which --signal=B: signals,
# can pass the signal on to it; `wait` returns early (> 128) when a signal
# arrives, so wait again until hdmea itself has ended.  The trap is set before
# hdmea starts: a signal in between is passed on as soon as it runs.
stopped=""
child=""
trap 'stopped=1; [[ -n "$child" ]] && kill -TERM "$child" 2>/dev/null' TERM INT USR1
$HDMEA "${args[@]}" &
child=$!
if [[ -n "$stopped" ]]; then
    kill -TERM "$child" 2>/dev/null
fi
status=0
wait "$child" || status=$?
while (( status > 128 )); do
    if ! kill -0 "$child" 2>/dev/null; then
        wait "$child"
        status=$?  # its own exit code, kept by bash
        break
    fi
    status=0
    wait "$child" || status=$?
done

# A signal that reached hdmea before it had set up its own handling (while it starts) or after it
# had put it away (while it exits) ends it with the signal's default action (128 + 15): nothing
# newer than its last checkpoint to keep, and the task was stopped all the same, so requeue it.
if [[ -n "$stopped" ]] && (( status == 128 + 15 || status == 128 + 2 )); then
    echo "slurm_array.sh: hdmea ended by a signal before it could checkpoint (status $status);" \
         "its last checkpoint, if any, is kept" >&2
    status=$PREEMPTED
fi

if (( status == PREEMPTED )) && [[ -n "${SLURM_JOB_ID:-}" ]]; then
    echo "slurm_array.sh: hdmea stopped and kept its checkpoint; requeueing job ${SLURM_JOB_ID}" \
         "(array ${SLURM_ARRAY_JOB_ID:-}_${SLURM_ARRAY_TASK_ID})" >&2
    scontrol requeue "$SLURM_JOB_ID" || echo "slurm_array.sh: scontrol requeue failed; submit task" \
        "${SLURM_ARRAY_TASK_ID} again to resume it" >&2
fi
exit "$status"
