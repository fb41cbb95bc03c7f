#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine (127.0.0.1): munge, slurmctld and slurmd from Debian's slurm-wlm,
# for the SLURM sweep test and benchmark (docs/sweeps.md). Needs root (it installs packages and runs the daemons).
#
#   bash benchmarks/slurm_local.sh             cluster up, the sweep round (benchmarks/slurm_round.py), cluster down
#   bash benchmarks/slurm_local.sh up DIR      cluster up with its files in DIR; leaves it running; prints
#                                              `export SLURM_CONF=DIR/slurm.conf` for sbatch/squeue/submitit
#   bash benchmarks/slurm_local.sh down DIR    cancels the cluster's jobs, stops what `up DIR` started
#
# Everything lives in DIR (config, state, logs, munge key and socket, pids): nothing under /etc is touched, and
# `down` stops only the processes `up` started (their pids are in DIR/pids). The node gets this machine's CPUs and
# memory (as `slurmd -C` reads them); no cgroups (proctrack/linuxproc, task/none), no accounting daemon.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"

install_if_missing() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    echo "installing slurm-wlm and munge (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

write_conf() {  # $1 = DIR
    local dir=$1 node host ctld_port slurmd_port
    host=$(hostname -s)
    # This machine as slurmd sees it (CPUs, sockets, cores, threads, RealMemory); addressed on 127.0.0.1.
    node=$(/usr/sbin/slurmd -C | head -1 | sed "s/^NodeName=[^ ]*/NodeName=$host NodeAddr=127.0.0.1/")
    ctld_port=$(free_port)
    slurmd_port=$(free_port)
    cat >"$dir/slurm.conf" <<EOF
ClusterName=apexlocal
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
KillWait=5
MinJobAge=300
$node State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

up() {  # $1 = DIR
    local dir=$1
    install_if_missing
    mkdir -p "$dir/state" "$dir/spool"
    chmod 700 "$dir"
    : >"$dir/pids"
    dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge.key"
    /usr/sbin/munged -F -f --key-file="$dir/munge.key" --socket="$dir/munge.socket" \
        --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" \
        >>"$dir/munged.out" 2>&1 &
    echo $! >>"$dir/pids"
    for _ in $(seq 50); do [ -S "$dir/munge.socket" ] && break; sleep 0.2; done
    write_conf "$dir"
    export SLURM_CONF="$dir/slurm.conf"
    /usr/sbin/slurmctld -D -i -f "$SLURM_CONF" >>"$dir/slurmctld.out" 2>&1 &
    echo $! >>"$dir/pids"
    /usr/sbin/slurmd -D -f "$SLURM_CONF" >>"$dir/slurmd.out" 2>&1 &
    echo $! >>"$dir/pids"
    local state=""
    for _ in $(seq 120); do
        state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
        [ "$state" = "idle" ] && break
        sleep 0.5
    done
    if [ "$state" != "idle" ]; then
        echo "slurm did not come up (node state: '${state:-none}'); logs in $dir" >&2
        tail -5 "$dir"/slurmctld.log "$dir"/slurmd.log >&2 || true
        down "$dir"
        exit 1
    fi
    echo "SLURM cluster up: $(sinfo -h -o '%P %D node(s) %c CPUs %m MB %T' | head -1) (files in $dir)"
    echo "export SLURM_CONF=$SLURM_CONF"
}

down() {  # $1 = DIR
    local dir=$1 pid
    export SLURM_CONF="$dir/slurm.conf"
    if [ -f "$SLURM_CONF" ] && command -v squeue >/dev/null; then
        local jobs
        jobs=$(squeue -h -o %A 2>/dev/null || true)  # every job of this private cluster is ours
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for _ in $(seq 60); do [ -z "$(squeue -h -o %A 2>/dev/null || true)" ] && break; sleep 0.5; done
        fi
    fi
    [ -f "$dir/pids" ] || return 0
    tac "$dir/pids" | while read -r pid; do  # slurmd, slurmctld, then munged
        kill -TERM "$pid" 2>/dev/null || true
    done
    for _ in $(seq 40); do
        alive=0
        while read -r pid; do kill -0 "$pid" 2>/dev/null && alive=1; done <"$dir/pids"
        [ $alive = 0 ] && break
        sleep 0.25
    done
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$dir/pids"
    rm -f "$dir/pids"
    echo "SLURM cluster down (stopped munged, slurmctld, slurmd it started)"
}

case "${1:-round}" in
up) up "${2:?usage: slurm_local.sh up DIR}" ;;
down) down "${2:?usage: slurm_local.sh down DIR}" ;;
round)
    DIR=$(mktemp -d /tmp/apex-slurm-XXXXXX)
    trap 'down "$DIR"' EXIT
    up "$DIR"
    PYTHON=${PYTHON:-$REPO/.venv/bin/python}
    [ -x "$PYTHON" ] || PYTHON=python3
    SLURM_CONF="$DIR/slurm.conf" "$PYTHON" "$REPO/benchmarks/slurm_round.py" "${@:2}"
    ;;
*) echo "usage: slurm_local.sh [up DIR | down DIR]" >&2; exit 2 ;;
esac
