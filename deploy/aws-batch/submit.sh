#!/usr/bin/env bash
# Submits rasterstage as two AWS Batch array jobs: convert with N shards, then load with N
# shards once every convert child has succeeded (a plain dependency on the whole array, not
# N_TO_N: a load shard needs every dataset complete, not just its own index's tiles). Each child gets AWS_BATCH_JOB_ARRAY_INDEX (0..N-1) and
# `--shards N` takes its tiles; a failed child is retried (retryStrategy) and resumes at its
# first uncommitted tile. S3 access comes from the job role, DATABASE_URL from Secrets
# Manager (deploy/aws-batch/job-definition.json).
#
#   aws batch register-job-definition --cli-input-json file://deploy/aws-batch/job-definition.json
#   QUEUE=rasterstage-queue SHARDS=16 deploy/aws-batch/submit.sh
#
# rasterstage reads the config from a local path: bake it into an image built FROM the
# rasterstage image (COPY config.yml /work/config.yml, the default CONFIG) or mount it (EFS)
# and set CONFIG. Its output.uri must be an s3:// prefix.
set -euo pipefail

QUEUE="${QUEUE:?set QUEUE to the AWS Batch job queue}"
SHARDS="${SHARDS:-8}"
CONFIG="${CONFIG:-/work/config.yml}"
DEFINITION="${DEFINITION:-rasterstage}"
NAME="${NAME:-rasterstage-$(date +%Y%m%d-%H%M%S)}"

if ((SHARDS < 2)); then
    # AWS Batch array jobs need at least 2 children; one shard is a plain run.
    echo "SHARDS must be at least 2 for an array job (run rasterstage without --shards instead)" >&2
    exit 2
fi

command_json() { # step, extra args...
    local step="$1"
    shift
    local args=("$step" "--config" "$CONFIG" "--shards" "$SHARDS" "--quiet" "$@")
    printf '{"command": ['
    local first=1
    for a in "${args[@]}"; do
        ((first)) || printf ', '
        first=0
        printf '"%s"' "$a"
    done
    printf ']}'
}

convert_id=$(aws batch submit-job \
    --job-name "$NAME-convert" \
    --job-queue "$QUEUE" \
    --job-definition "$DEFINITION" \
    --array-properties "size=$SHARDS" \
    --container-overrides "$(command_json convert)" \
    --query jobId --output text)
echo "convert: $convert_id ($SHARDS shards)"

# -j 2: connections per child; SHARDS x 2 concurrent COPY sessions on PostgreSQL.
load_id=$(aws batch submit-job \
    --job-name "$NAME-load" \
    --job-queue "$QUEUE" \
    --job-definition "$DEFINITION" \
    --array-properties "size=$SHARDS" \
    --depends-on "jobId=$convert_id" \
    --container-overrides "$(command_json load -j 2)" \
    --query jobId --output text)
echo "load: $load_id ($SHARDS shards, after $convert_id)"
