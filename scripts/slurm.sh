#!/usr/bin/env bash
# slurm.sh — a one-node Slurm cluster of its own on this machine, for the Slurm tests
# (tests/it/slurm.rs). SOURCE it after services.sh (test.sh does):
#
#     source scripts/services.sh && source scripts/slurm.sh
#
# It starts munged, slurmctld and slurmd (Debian's packages, scripts/setup-slurm.sh) with a
# configuration of their own in a temporary folder: free loopback ports, this host's name as
# the node, state, spool, logs and the MUNGE key and socket in that folder, no cgroups
# (proctrack/linuxproc, task/none) and no accounting (no slurmdbd). A system Slurm, if any,
# is neither read nor touched. The daemons run as the current user (root here); services.sh's
# EXIT trap cancels the cluster's jobs and stops all three.
#
# Exports:
#   RASTERSTAGE_TEST_SLURM_CONF   the slurm.conf; the tests pass it as SLURM_CONF to sbatch,
#                                 squeue, scontrol and scancel (never set globally, so nothing
#                                 else submits to this cluster by accident)
# Knobs:
#   RASTERSTAGE_SLURM=0           do not start it (the Slurm tests then skip)
#
# By hand: SLURM_CONF=$RASTERSTAGE_TEST_SLURM_CONF sinfo
#
# Returns non-zero, with the daemons' last log lines, when the cluster does not come up.

if [[ -n "${RASTERSTAGE_TEST_SLURM_CONF:-}" && -f "${RASTERSTAGE_TEST_SLURM_CONF}" ]]; then
    # shellcheck disable=SC2317
    return 0 2>/dev/null || exit 0
fi

_RS_SLURM_DIR_SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "${_RS_SERVICES_UP:-}" ]]; then
    # shellcheck source=services.sh disable=SC2317
    source "$_RS_SLURM_DIR_SCRIPT/services.sh" || { return 1 2>/dev/null || exit 1; }
fi

_rs_slurm_log() { printf '[slurm] %s\n' "$*" >&2; }

# The daemons are in /usr/sbin, which is not on every PATH.
_rs_slurm_bin() {
    if command -v "$1" 2>/dev/null; then return 0; fi
    if [[ -x "/usr/sbin/$1" ]]; then echo "/usr/sbin/$1"; return 0; fi
    return 1
}

# Stops the daemon whose pid file is $1 and waits (up to 10 s) until it has gone, so that
# the folder is removed after it.
_rs_slurm_kill() {
    local pid i
    pid="$(cat "$1" 2>/dev/null)" || return 0
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
}

_rs_slurm_fail() {
    local dir="$1" f
    shift
    _rs_slurm_log "ERROR: $*"
    for f in "$dir"/log/*.log "$dir"/munge/munged.log; do
        [[ -s "$f" ]] || continue
        _rs_slurm_log "last lines of $f:"
        tail -n 15 "$f" >&2
    done
    return 1
}

_rs_slurm_start() {
    local munged mungekey slurmctld slurmd b
    if ! { munged="$(_rs_slurm_bin munged)" && mungekey="$(_rs_slurm_bin mungekey)" &&
        slurmctld="$(_rs_slurm_bin slurmctld)" && slurmd="$(_rs_slurm_bin slurmd)"; }; then
        _rs_slurm_log "ERROR: Slurm or MUNGE is not installed: run scripts/setup.sh (Debian packages slurmctld slurmd slurm-client munge)"
        return 1
    fi
    for b in sbatch scontrol squeue scancel sinfo; do
        command -v "$b" >/dev/null 2>&1 || {
            _rs_slurm_log "ERROR: $b not found: run scripts/setup.sh (Debian package slurm-client)"
            return 1
        }
    done

    local dir user node ctld_port slurmd_port mem_mb
    dir="$(mktemp -d "${TMPDIR:-/tmp}/rasterstage-slurm.XXXXXX")" || return 1
    # MUNGE refuses a socket its clients cannot reach: the folder must be searchable.
    chmod 755 "$dir"
    mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
    user="$(id -un)"
    node="$(hostname -s)"
    # Pushed first, run last: the folder goes once every daemon has stopped.
    _RS_CLEANUP+=("rm -rf '$dir'")

    # MUNGE: a fresh key, its own socket. -f because the key folder lies under /tmp, whose
    # world-writable (sticky) parent MUNGE's permission checks would otherwise refuse.
    "$mungekey" --create --keyfile="$dir/munge/munge.key" >/dev/null 2>&1 || {
        dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none && chmod 400 "$dir/munge/munge.key"
    } || { _rs_slurm_fail "$dir" "could not create a MUNGE key"; return 1; }
    "$munged" -f --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
        --seed-file="$dir/munge/munged.seed" </dev/null >/dev/null 2>&1 ||
        { _rs_slurm_fail "$dir" "munged did not start"; return 1; }
    _RS_CLEANUP+=("_rs_slurm_kill '$dir/munge/munged.pid'")

    ctld_port="$(_rs_free_port)" && slurmd_port="$(_rs_free_port)" || return 1
    mem_mb=$(($(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 1024))
    # CPUs=4 with config_overrides: the node offers 4 CPUs whatever the machine has, so an
    # array of 4 one-CPU tasks runs at once on a 2-core machine (the tasks mostly wait on
    # S3 and PostgreSQL here). CR_CPU: memory is checked against RealMemory, not consumed.
    cat >"$dir/slurm.conf" <<CONF
ClusterName=rasterstage-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=3600
KillWait=5
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=4 RealMemory=$mem_mb State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

    # Both daemonize and write their pid files; -i: no state to recover.
    (cd "$dir" && "$slurmctld" -i -f "$dir/slurm.conf" </dev/null >"$dir/log/slurmctld.out" 2>&1) ||
        { _rs_slurm_fail "$dir" "slurmctld did not start"; return 1; }
    _RS_CLEANUP+=("_rs_slurm_kill '$dir/slurmctld.pid'")
    (cd "$dir" && "$slurmd" -f "$dir/slurm.conf" </dev/null >"$dir/log/slurmd.out" 2>&1) ||
        { _rs_slurm_fail "$dir" "slurmd did not start"; return 1; }
    _RS_CLEANUP+=("_rs_slurm_kill '$dir/slurmd.pid'")
    # Run first at exit: cancel what is left of the tests' jobs while the daemons still run.
    _RS_CLEANUP+=("SLURM_CONF='$dir/slurm.conf' scancel --user='$user' --quiet; sleep 1")

    local state=""
    for _ in $(seq 1 120); do
        state="$(SLURM_CONF="$dir/slurm.conf" sinfo -h -N -o %T 2>/dev/null | head -n1)"
        [[ "$state" == idle ]] && break
        sleep 0.5
    done
    if [[ "$state" != idle ]]; then
        _rs_slurm_fail "$dir" "node $node not idle after 60 s (state: ${state:-no answer})"
        return 1
    fi
    export RASTERSTAGE_TEST_SLURM_CONF="$dir/slurm.conf"
    _rs_slurm_log "Slurm $(SLURM_CONF="$dir/slurm.conf" sinfo -V | awk '{ print $2 }'): one-node cluster ($node, 4 CPUs) in $dir, SLURM_CONF=$RASTERSTAGE_TEST_SLURM_CONF"
}

if [[ "${RASTERSTAGE_SLURM:-1}" == 0 ]]; then
    _rs_slurm_log "RASTERSTAGE_SLURM=0: not starting Slurm (the Slurm tests skip)"
elif ! _rs_slurm_start; then
    # What did start stops at exit with the other services; the tests skip, or fail where
    # services are required.
    # shellcheck disable=SC2317
    return 1 2>/dev/null || exit 1
fi
