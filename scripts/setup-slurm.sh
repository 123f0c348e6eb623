#!/usr/bin/env bash
# setup-slurm.sh — install Debian's Slurm and MUNGE for the Slurm tests (tests/it/slurm.rs),
# which run a one-node cluster of their own (scripts/slurm.sh). Called by setup.sh;
# idempotent, and quick when everything is there.
#
# Packages: slurmctld (controller), slurmd (node daemon, with slurmstepd), slurm-client
# (sbatch, squeue, scontrol, scancel), munge (authentication; mungekey makes the key).
# Debian starts none of them here: scripts/slurm.sh runs the daemons with its own
# configuration in a temporary folder, so a system Slurm, if any, is left alone.
set -euo pipefail

log() { printf '[setup-slurm] %s\n' "$*" >&2; }

SUDO=()
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
fi

missing=()
for cmd in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client scontrol:slurm-client \
    munged:munge mungekey:munge; do
    # The daemons live in /usr/sbin, which a non-root PATH may lack.
    if ! command -v "${cmd%%:*}" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/${cmd%%:*}" ]]; then
        missing+=("${cmd#*:}")
    fi
done
if ((${#missing[@]} == 0)); then
    log "Slurm and MUNGE: all present"
    exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if ! command -v apt-get >/dev/null 2>&1; then
    log "no apt-get: install ${missing[*]} yourself (the Slurm tests skip without them)"
    exit 1
fi
if [[ $(id -u) -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
    log "not root and no sudo: install ${missing[*]} yourself (the Slurm tests skip without them)"
    exit 1
fi
log "installing Debian packages: ${missing[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
# A policy-rc.d or the absence of systemd keeps the packages' own services from starting;
# where they do start, they use /etc/slurm, which scripts/slurm.sh never reads.
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
