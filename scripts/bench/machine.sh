#!/usr/bin/env bash
# machine.sh — the machine facts a benchmark report states, as key=value lines (date, cores,
# cpu, ram_gib, os), for a bench script's meta file: bash scripts/bench/machine.sh >>"$META"
set -euo pipefail
echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cores=$(nproc)"
echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "ram_gib=$(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)"
# shellcheck disable=SC1091  # the machine's file
echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
