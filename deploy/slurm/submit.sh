#!/usr/bin/env bash
# Submits rasterstage to Slurm: per step, a job array of SHARDS tasks (task K runs shard K
# of --shards SHARDS) and a finalize job that starts once every task has succeeded
# (--dependency=afterok:<array job id>); each step's array waits for the previous step's
# finalize. See deploy/slurm/README.md.
#
#   CONFIG=/shared/config.yml SHARDS=16 deploy/slurm/submit.sh              # convert, load
#   CONFIG=/shared/config.yml SHARDS=16 deploy/slurm/submit.sh convert merge
#   CONFIG=/shared/config.yml SHARDS=16 TASKS=2,5 deploy/slurm/submit.sh convert load
#                                       # rerun tasks 2 and 5 of convert, then the rest
#
# Prints one line per step: `<step> array=<job id> finalize=<job id>`.
#
# Environment:
#   CONFIG        config file, on a file system every node reads (required)
#   SHARDS        number of shards = array size (default 8); the array is 0 to SHARDS-1
#   TASKS         task ids of the first step's array (default 0-<SHARDS-1>): to resubmit
#                 failed tasks, e.g. TASKS=2 or TASKS=2,5
#   RASTERSTAGE   the rasterstage binary as the nodes see it (default: rasterstage on PATH)
#   LOGS          folder for the jobs' output files (default ./slurm-logs)
#   CPUS          CPUs per array task (default: the #SBATCH line of each script)
#   DATABASE_URL, AWS_*, GOOGLE_*, AZURE_*   passed to the jobs with the rest of the
#                 environment (--export=ALL)
# sbatch's own variables work as usual: SBATCH_PARTITION, SBATCH_ACCOUNT, SBATCH_QOS,
# SBATCH_TIMELIMIT.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${CONFIG:?set CONFIG to the config file (a path every node reads)}"
CONFIG="$(realpath "$CONFIG")"
SHARDS="${SHARDS:-8}"
if ! [[ "$SHARDS" =~ ^[1-9][0-9]*$ ]]; then
    echo "SHARDS=$SHARDS: give the number of shards, at least 1" >&2
    exit 2
fi
TASKS="${TASKS:-0-$((SHARDS - 1))}"
LOGS="$(realpath -m "${LOGS:-slurm-logs}")"
mkdir -p "$LOGS"
export CONFIG SHARDS
[[ -n "${RASTERSTAGE:-}" ]] && export RASTERSTAGE

steps=("$@")
((${#steps[@]})) || steps=(convert load)
for step in "${steps[@]}"; do
    case "$step" in
    convert | load | merge) ;;
    *)
        echo "unknown step '$step': use convert, load or merge" >&2
        exit 2
        ;;
    esac
done

# --parsable prints `<job id>[;<cluster>]`.
job_id() { local out="$1"; echo "${out%%;*}"; }

after=""
array="$TASKS"
for step in "${steps[@]}"; do
    opts=(--parsable --export=ALL)
    # A dependency that can no longer be satisfied (a task failed or was cancelled) cancels
    # the dependent job instead of leaving it pending forever, and so on down the chain.
    [[ -n "$after" ]] && opts+=(--dependency="afterok:$after" --kill-on-invalid-dep=yes)
    cpus=()
    [[ -n "${CPUS:-}" ]] && cpus=(--cpus-per-task="$CPUS")
    array_id="$(job_id "$(sbatch "${opts[@]}" "${cpus[@]}" --array="$array" \
        --output="$LOGS/%x-%A_%a.out" "$HERE/$step.sbatch")")"
    finalize_id="$(job_id "$(sbatch --parsable --export=ALL \
        --dependency="afterok:$array_id" --kill-on-invalid-dep=yes \
        --job-name="rasterstage-$step-finalize" --output="$LOGS/%x-%j.out" \
        "$HERE/finalize.sbatch" "$step")")"
    echo "$step array=$array_id finalize=$finalize_id"
    after="$finalize_id"
    array="0-$((SHARDS - 1))"
done
