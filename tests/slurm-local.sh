#!/bin/sh
# tests/slurm-local.sh - a throwaway single-node Slurm cluster on this
# machine, for tests/slurm-cluster.sh and for trying `normbench slurm
# --submit` by hand:
#
#   tests/slurm-local.sh start DIR   write DIR/slurm.conf for this host, start
#                                    munged, slurmctld and slurmd, wait until
#                                    the node is idle
#   tests/slurm-local.sh stop DIR    cancel the cluster's jobs, stop its daemons
#   . DIR/env                        SLURM_CONF for sbatch, squeue, scancel
#
# Everything lives in DIR (an empty or new directory; a short path, since
# the sockets' paths must fit 108 bytes): its own munge key, socket and
# seed, its own ports (free ones, picked at random), state, spool, pid and
# log files; nothing is written outside it, and the system's munged,
# slurmctld or slurmd (which Debian's packages may have started) are
# neither used nor touched.  Needs root (slurmd runs jobs as their user)
# and Debian's slurmctld, slurmd, slurm-client and munge.  start exits 0
# when the node is idle; 1 with the reason on stderr (and the daemons it
# started stopped) otherwise.
set -u

what=${1:-}
D=${2:-}
case "$what" in start | stop) ;; *) D= ;; esac
if [ -z "$D" ]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi

say() { echo "slurm-local: $*" >&2; }
# the last lines of the files that exist, on one line
logtail() { for f; do [ -f "$f" ] && tail -n 2 "$f"; done | tr '\n' ' '; }

# a TCP port from 20000-59999 that no socket uses (/proc/net/tcp*: the
# local address is field 2, HEX-IP:HEX-PORT)
free_port() {
    while :; do
        r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
        p=$((20000 + r % 40000))
        hex=$(printf '%04X' "$p")
        cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
            awk -v h="$hex" '{ split($2, a, ":"); if (a[2] == h) f = 1 } END { exit !f }' ||
            break
    done
    echo "$p"
}

# the pid of daemon NAME (DIR/NAME.pid) while it runs: a live process
# whose command line names DIR (a reused pid is someone else's)
daemon_pid() {
    [ -f "$D/$1.pid" ] || return 1
    pid=$(cat "$D/$1.pid")
    [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$D/" &&
        echo "$pid"
}

# waits for daemon NAME, sent SIGTERM, to exit (SIGKILL after 10 s)
wait_daemon() {
    i=0
    while pid=$(daemon_pid "$1"); do
        i=$((i + 1))
        if [ $i -eq 100 ]; then
            say "$1 ($pid) ignores SIGTERM: SIGKILL"
            kill -9 "$pid" 2>/dev/null
        fi
        [ $i -gt 150 ] && { say "$1 ($pid) does not stop"; return 1; }
        sleep 0.1
    done
    rm -f "$D/$1.pid"
}

stop() {
    D=$(cd "$D" 2>/dev/null && pwd) || return 0
    if [ -f "$D/env" ] && daemon_pid slurmctld >/dev/null; then
        . "$D/env"
        # the cluster's jobs first: their slurmstepd processes outlive slurmd
        jobs=$(squeue -h -o %A 2>/dev/null | sort -u)
        if [ -n "$jobs" ]; then
            scancel $jobs 2>/dev/null # one word each
            i=0
            while [ -n "$(squeue -h -o %A 2>/dev/null)" ] && [ $i -lt 300 ]; do
                i=$((i + 1))
                sleep 0.1
            done
        fi
    fi
    # SIGTERM to all three at once, then wait for each
    rc=0
    for dmn in slurmd slurmctld munged; do
        pid=$(daemon_pid $dmn) && kill "$pid" 2>/dev/null
    done
    for dmn in slurmd slurmctld munged; do
        wait_daemon $dmn || rc=1
    done
    return $rc
}

# the node's state as sinfo says (idle, mixed, down, ...), "" before slurmctld answers
node_state() { sinfo -h -N -n "$host" -o %T 2>/dev/null | head -n 1; }

start() {
    for c in munged mungekey slurmctld slurmd sinfo squeue sbatch scancel; do
        command -v "$c" >/dev/null 2>&1 || { say "$c is not installed"; return 1; }
    done
    if [ "$(id -u)" -ne 0 ]; then
        say "needs root (slurmd runs jobs as their user)"
        return 1
    fi
    mkdir -p "$D" || return 1
    D=$(cd "$D" && pwd)
    if [ "$(printf %s "$D/munge.socket" | wc -c)" -gt 100 ]; then
        say "$D is too long a path for a socket"
        return 1
    fi
    mkdir -p "$D/state" "$D/spool" "$D/munge" || return 1
    # munged wants its socket's directory searchable by all (mktemp -d's is
    # not); the key stays private in DIR/munge
    chmod a+x "$D" && chmod 700 "$D/munge" || return 1
    host=$(uname -n | cut -d. -f1) # slurmd's own name for its node
    cpus=$(nproc 2>/dev/null || echo 1)
    ctld_port=$(free_port)
    slurmd_port=$(free_port)
    while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done

    # munge: a key of its own, a socket of its own
    mungekey --create --keyfile="$D/munge/munge.key" >/dev/null 2>&1 || {
        say "mungekey cannot create a key"
        return 1
    }
    munged -F --socket="$D/munge.socket" --key-file="$D/munge/munge.key" \
        --pid-file="$D/munge/munged.pidfile" --seed-file="$D/munge/munged.seed" \
        --log-file="$D/munged.log" >"$D/munged.out" 2>&1 &
    echo $! >"$D/munged.pid"

    cat >"$D/slurm.conf" <<EOF
# written by tests/slurm-local.sh: a single-node cluster in $D
ClusterName=nb$$
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge.socket
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pidfile
SlurmdPidFile=$D/slurmd.pidfile
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
# start a job when one ends, not at the next 3-s tick (a throttled array waits)
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
PropagateResourceLimits=NONE
MailProg=/bin/true
ReturnToService=2
KillWait=5
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=100 State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    printf 'SLURM_CONF=%s; export SLURM_CONF\n' "$D/slurm.conf" >"$D/env"
    . "$D/env"

    i=0
    until [ -S "$D/munge.socket" ]; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! kill -0 "$(cat "$D/munged.pid")" 2>/dev/null; then
            say "munged did not start: $(logtail "$D/munged.out" "$D/munged.log")"
            stop
            return 1
        fi
        sleep 0.1
    done
    slurmctld -D -f "$D/slurm.conf" >"$D/slurmctld.out" 2>&1 &
    echo $! >"$D/slurmctld.pid"
    slurmd -D -f "$D/slurm.conf" >"$D/slurmd.out" 2>&1 &
    echo $! >"$D/slurmd.pid"

    # up to 30 s for the node to register and be idle
    i=0
    while [ "$(node_state)" != idle ]; do
        i=$((i + 1))
        for dmn in slurmctld slurmd; do
            kill -0 "$(cat "$D/$dmn.pid")" 2>/dev/null && continue
            say "$dmn exited: $(logtail "$D/$dmn.out" "$D/$dmn.log")"
            stop
            return 1
        done
        if [ $i -gt 300 ]; then
            say "the node is '$(node_state)', not idle, after 30 s:" \
                "$(logtail "$D/slurmctld.log" "$D/slurmd.log")"
            stop
            return 1
        fi
        sleep 0.1
    done
    return 0
}

case "$what" in
start) start ;;
stop) stop ;;
esac
