#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine (127.0.0.1): munge, slurmctld and slurmd from Debian's slurm-wlm,
# with accounting (slurmdbd on a private MariaDB: submitit reads job states with `sacct`, and without it a cancelled
# task is never seen to end), for the SLURM sweep test and benchmark (docs/sweeps.md). Needs root (it installs
# packages and runs the daemons).
#
#   bash benchmarks/slurm_local.sh             cluster up, the sweep round (benchmarks/slurm_round.py), cluster down
#   bash benchmarks/slurm_local.sh up DIR      cluster up with its files in DIR; leaves it running; prints
#                                              `export SLURM_CONF=DIR/slurm.conf` for sbatch/squeue/submitit
#   bash benchmarks/slurm_local.sh down DIR    cancels the cluster's jobs, stops what `up DIR` started
#
# Everything lives in DIR (config, state, logs, munge key and socket, database, pids): nothing under /etc is touched,
# and `down` stops only the processes `up` started (their pids are in DIR/pids). The node gets this machine's CPUs
# and memory (as `slurmd -C` reads them); no cgroups (proctrack/linuxproc, task/none).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"

install_if_missing() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null; then
        return
    fi
    echo "installing slurm-wlm, slurmdbd, munge and mariadb-server (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm slurmdbd munge mariadb-server >/dev/null
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_accounting() {  # $1 = DIR: MariaDB (private datadir, TCP on 127.0.0.1) and slurmdbd, on free ports
    local dir=$1 db_port dbd_port password
    db_port=$(free_port)
    dbd_port=$(free_port)
    password=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')  # a throwaway, for this DIR only
    mariadb-install-db --no-defaults --user=root --datadir="$dir/mysql" --auth-root-authentication-method=socket \
        --skip-test-db >"$dir/mysql-install.log" 2>&1
    /usr/sbin/mariadbd --no-defaults --user=root --datadir="$dir/mysql" --socket="$dir/mysql.sock" \
        --bind-address=127.0.0.1 --port="$db_port" --pid-file="$dir/mysql.pid" --skip-log-bin \
        --innodb-buffer-pool-size=64M >>"$dir/mysql.log" 2>&1 &
    echo $! >>"$dir/pids"
    for _ in $(seq 120); do
        mariadb --no-defaults -S "$dir/mysql.sock" -e 'select 1' >/dev/null 2>&1 && break
        sleep 0.5
    done
    mariadb --no-defaults -S "$dir/mysql.sock" -e "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$password';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
    {
        echo "AuthType=auth/munge"
        echo "AuthInfo=socket=$dir/munge.socket"
        echo "DbdHost=localhost"
        echo "DbdAddr=127.0.0.1"
        echo "DbdPort=$dbd_port"
        echo "SlurmUser=root"
        echo "PidFile=$dir/slurmdbd.pid"
        echo "LogFile=$dir/slurmdbd.log"
        echo "StorageType=accounting_storage/mysql"
        echo "StorageHost=127.0.0.1"
        echo "StoragePort=$db_port"
        echo "StorageUser=slurm"
        echo "StoragePass=$password"
        echo "StorageLoc=slurm_acct_db"
    } >"$dir/slurmdbd.conf"
    chmod 600 "$dir/slurmdbd.conf"
    SLURM_CONF="$dir/slurm.conf" /usr/sbin/slurmdbd -D >>"$dir/slurmdbd.out" 2>&1 &
    echo $! >>"$dir/pids"
    for _ in $(seq 120); do
        (echo >"/dev/tcp/127.0.0.1/$dbd_port") 2>/dev/null && break
        sleep 0.5
    done
    echo "$dbd_port"
}

write_conf() {  # $1 = DIR, $2 = slurmdbd's port
    local dir=$1 dbd_port=$2 node host ctld_port slurmd_port
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
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
AccountingStoragePass=$dir/munge.socket
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
    local dbd_port
    write_conf "$dir" 0  # slurmdbd reads the slurmdbd.conf beside the slurm.conf that SLURM_CONF names
    dbd_port=$(start_accounting "$dir" | tail -1)
    write_conf "$dir" "$dbd_port"
    export SLURM_CONF="$dir/slurm.conf"
    sacctmgr -i add cluster apexlocal >/dev/null 2>&1 || true
    /usr/sbin/slurmctld -D -i -f "$SLURM_CONF" >>"$dir/slurmctld.out" 2>&1 &
    echo $! >>"$dir/pids"
    /usr/sbin/slurmd -D -f "$SLURM_CONF" >>"$dir/slurmd.out" 2>&1 &
    echo $! >>"$dir/pids"
    local state="" deadline=$((SECONDS + 120))
    while [ $SECONDS -lt $deadline ]; do
        kill -0 "$(sed -n 4p "$dir/pids")" 2>/dev/null || break  # slurmctld died: its log says why
        state=$(timeout 10 sinfo -h -o %T 2>/dev/null | head -1 || true)
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
    tac "$dir/pids" | while read -r pid; do  # slurmd, slurmctld, slurmdbd, mariadbd, then munged
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
    echo "SLURM cluster down (stopped the munged, mariadbd, slurmdbd, slurmctld and slurmd it started)"
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
