#!/bin/sh
# tests/slurm-cluster.sh - `normbench slurm --submit` against a real
# single-node Slurm cluster, as TAP: tests/slurm-local.sh starts munged,
# slurmctld and slurmd of their own (own config, key, socket and ports, in a
# temporary directory) and stops them at the end.
#
# A six-run sweep in arrays of two (--max-array 2): every run done exactly
# once, by the cluster, and nothing submitted afterwards.  A four-run
# sweep, one task at a time (--throttle 1), with task 1 cancelled by
# scancel and task 2's worker SIGKILLed mid-run: the other runs finish, the
# two lost ones are missing (no DONE), a resubmission submits exactly them
# and then every run is done exactly once.
#
# Skips (1..0 # SKIP) without Slurm and munge (Debian's slurmctld, slurmd,
# slurm-client, munge), without root, or when the daemons do not start;
# NB_REQUIRE_SLURM=1 (CI) makes those a failure instead.  Takes ~20 s
# (~35 s built with ASan).
set -u

. "${srcdir:-.}/tests/taplib.sh"
tap_init slurm-cluster
LOCAL=$(cd "$srcdir/tests" && pwd)/slurm-local.sh

# no cluster: a skip, or with NB_REQUIRE_SLURM=1 a failure
no_cluster() {
    if [ "${NB_REQUIRE_SLURM:-0}" = 1 ]; then
        fail "a local Slurm cluster runs (NB_REQUIRE_SLURM=1): $*"
        echo "1..$n"
        exit 1
    fi
    echo "1..0 # SKIP $*"
    exit 0
}

if [ ! -x "$NB" ]; then
    echo "1..0 # SKIP $NB not built"
    exit 0
fi
for c in munged mungekey slurmctld slurmd sbatch squeue scancel sinfo; do
    command -v "$c" >/dev/null 2>&1 ||
        no_cluster "$c not installed (Debian: slurmctld slurmd slurm-client munge)"
done
[ "$(id -u)" -eq 0 ] || no_cluster "needs root (slurmd runs jobs as their user)"

# the caller's Slurm settings (inside a job, SBATCH_* options) stay out
for v in $(env | sed -n 's/^\(\(SLURM\|SBATCH\|SQUEUE\|SINFO\|SCANCEL\)_[A-Za-z0-9_]*\)=.*/\1/p')
do
    unset "$v"
done

# the cluster lives in a short temporary directory (socket paths are short)
C=$(mktemp -d "${TMPDIR:-/tmp}/nb-slurm.XXXXXX") || no_cluster "mktemp -d failed"
cluster_stop() {
    sh "$LOCAL" stop "$C" 2>>"$W/stop.err"
    rc=$?
    mkdir -p "$W/cluster"
    cp "$C"/*.log "$C"/*.out "$C/slurm.conf" "$W/cluster/" 2>/dev/null
    rm -rf "$C"
    return $rc
}
trap 'cluster_stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! sh "$LOCAL" start "$C" 2>"$W/start.err"; then
    why=$(head -n 1 "$W/start.err" | sed 's/^slurm-local: //')
    no_cluster "the local Slurm cluster does not start: $why"
fi
. "$C/env"
diag "a single-node cluster in $C: $(sinfo -h -o '%N %c CPUs %T')"

# ---- helpers ------------------------------------------------------------
# waits until CMD... succeeds, every 0.1 s, at most 90 s; 1 on timeout
wait_for() {
    i=0
    until "$@"; do
        i=$((i + 1))
        [ $i -gt 900 ] && return 1
        sleep 0.1
    done
    return 0
}
queue_empty() { [ -z "$(squeue -h -o %A 2>/dev/null)" ]; }
# the tasks of array jobs ID,... as "TASK STATE" lines, by task (all states)
task_states() { squeue -h -t all -j "$1" -o '%K %T' | sort -n; }
# how many jobs (array tasks) slurmctld knows, finished ones included
jobs_known() { squeue -h -t all -o %i | wc -l | tr -d ' '; }
# the job ids sbatch printed in FILE, comma-separated
job_ids() { sed -n 's/^Submitted batch job //p' "$1" | paste -sd, -; }
# how many runs of EXP have DONE
n_done() { find "$1" -mindepth 2 -maxdepth 2 -name DONE | wc -l | tr -d ' '; }
# how many EVENT lines events.log of EXP has, and for how many runs
events() { awk -v e="$2" '$4 == e { print $5 }' "$1/events.log" 2>/dev/null | sort -n; }
# the run_id of run INDEX in LIST (`normbench list`)
run_id() { sed -n "$(($2 + 1))p" "$1" | cut -f2; }
# run INDEX of EXP (LIST) has started and written a metrics row: mid-run
running() {
    rd=$1/$(run_id "$2" "$3")
    events "$1" start | grep -qx "$3" && [ -f "$rd/metrics.csv" ] &&
        [ "$(wc -l <"$rd/metrics.csv")" -ge 2 ] && [ ! -f "$rd/DONE" ]
}
# every DONE run's metrics.csv: whole rows, as many as DONE says (not $d:
# check keeps its description there)
metrics_whole() {
    for rd in "$1"/*/; do
        [ -f "$rd/DONE" ] || continue
        rows=$(sed -n 's/^metrics_rows = //p' "$rd/DONE")
        got=$(awk -F, 'NR > 1 && NF == 8 { n++ } NF != 8 { bad = 1 } END { print bad ? -1 : n + 0 }' "$rd/metrics.csv")
        [ "$rows" = "$got" ] || { diag "$rd: metrics_rows $rows, whole rows $got"; return 1; }
    done
    return 0
}

# ---- six runs in arrays of two ------------------------------------------
cat >"$W/six.ini" <<'EOF'
[experiment]
name = six
seeds = 0..1

[model]
arch = mlp
widths = 32 32

[norm]
type = none, batch, group
groups = 4

[optim]
lr = 0.05

[train]
batch = 16
epochs = 2
eval_every = 5
eval_samples = 200

[data]
source = blobs
train_subset = 256
EOF
R=$W/r
E=$R/six
cd "$W" || exit 1
"$NB" slurm six.ini --submit --max-array 2 --results-dir "$R" >sub6.out 2>sub6.err
is "$?" 0 "six runs: slurm --submit --max-array 2 exits 0"
is "$(grep -c '^normbench: sbatch --array=0-1%32 ' sub6.err)" 3 "  three arrays of two"
check "  offset by 2 and by 4" \
    sh -c "grep -q 'NB_OFFSET=2 ' sub6.err && grep -q 'NB_OFFSET=4 ' sub6.err"
ids6=$(job_ids sub6.out)
is "$(echo "$ids6" | tr ',' '\n' | grep -c .)" 3 "  Slurm accepts three jobs"
check "  the queue drains" wait_for queue_empty
is "$(task_states "$ids6" | awk '{ print $2 }' | sort | uniq -c | tr -s ' ')" " 6 COMPLETED" \
    "  Slurm: six tasks COMPLETED"
is "$(ls "$E"/slurm/*_*.out 2>/dev/null | wc -l | tr -d ' ')" 6 "  six task logs from slurmstepd"
is "$(n_done "$E")" 6 "  every run is done"
is "$("$NB" status six.ini --results-dir "$R" --missing)" "" "  status --missing: none"
is "$(events "$E" start | uniq | wc -l | tr -d ' ')/$(events "$E" start | wc -l | tr -d ' ')" \
    6/6 "  each run started once"
is "$(events "$E" "done" | uniq | wc -l | tr -d ' ')/$(events "$E" "done" | wc -l | tr -d ' ')" \
    6/6 "  and finished once"
check "  every metrics.csv whole" metrics_whole "$E"
known=$(jobs_known)
"$NB" slurm six.ini --submit --max-array 2 --results-dir "$R" >again6.out 2>&1
is "$?" 0 "submitting again exits 0"
check "  nothing to submit" grep -q "nothing to submit: all 6 runs are done" again6.out
is "$(jobs_known)" "$known" "  and Slurm got no job"

# ---- four runs, one cancelled, one SIGKILLed ----------------------------
cat >"$W/four.ini" <<'EOF'
[experiment]
name = four
seeds = 0..3

[model]
arch = mlp
widths = 256 256

[norm]
type = batch

[optim]
lr = 0.05

[train]
batch = 16
epochs = 48
eval_every = 20
eval_samples = 200

[data]
source = blobs
train_subset = 2000
EOF
# 6000 steps, ~5 s on an idle core here: the scancel and the SIGKILL,
# sent within a 0.1 s poll of a run's first metrics row, land mid-run on a
# faster machine too (8 epochs took 0.8 s, too close)
E=$R/four
"$NB" list four.ini >four.list
"$NB" slurm four.ini --submit --throttle 1 --results-dir "$R" >sub4.out 2>sub4.err
is "$?" 0 "four runs: slurm --submit --throttle 1 exits 0"
check "  one array, a task at a time" grep -q '^normbench: sbatch --array=0-3%1 ' sub4.err
id4=$(job_ids sub4.out)
if wait_for running "$E" four.list 1; then
    scancel "${id4}_1"
    is "$?" 0 "  scancel task 1 while its run trains"
else
    fail "  run 1 starts"
fi
if wait_for running "$E" four.list 2; then
    lock=$E/.locks/$(run_id four.list 2)/owner
    wait_for sh -c "sed -n 's/^worker = //p' '$lock' 2>/dev/null | grep -q '^[1-9]'"
    wk=$(sed -n 's/^worker = //p' "$lock")
    kill -9 "$wk"
    is "$?" 0 "  SIGKILL task 2's worker while its run trains"
else
    fail "  run 2 starts"
fi
check "  the queue drains" wait_for queue_empty
is "$(task_states "$id4" | tr '\n' ' ')" "0 COMPLETED 1 CANCELLED 2 FAILED 3 COMPLETED " \
    "  Slurm: tasks 0 and 3 COMPLETED, 1 CANCELLED, 2 FAILED"
check "  task 1's log says it was cancelled" grep -q "CANCELLED" "$E/slurm/${id4}_1.out"
is "$(n_done "$E")" 2 "  the other two runs are done"
is "$("$NB" status four.ini --results-dir "$R" --missing)" 1-2 \
    "  status --missing: the cancelled and the killed run"
check "  neither has a DONE" \
    sh -c "! ls '$E/$(run_id four.list 1)/DONE' '$E/$(run_id four.list 2)/DONE' 2>/dev/null"
check "  run 1 was interrupted by its SIGTERM" \
    grep -Eq " (interrupted 1 .*signal 15|failed 1 .*signal 15)" "$E/events.log"
check "  run 2 failed: its worker was killed by signal 9" \
    grep -q " failed 2 .*killed by signal 9" "$E/events.log"
"$NB" slurm four.ini --submit --throttle 1 --results-dir "$R" >re4.out 2>re4.err
is "$?" 0 "resubmitting exits 0"
is "$(grep -c '^normbench: sbatch ' re4.err)" 1 "  one sbatch command"
check "  for exactly the two missing runs" grep -q '^normbench: sbatch --array=1-2%1 ' re4.err
re4=$(job_ids re4.out)
check "  the queue drains" wait_for queue_empty
is "$(task_states "$re4" | tr '\n' ' ')" "1 COMPLETED 2 COMPLETED " "  Slurm: both tasks COMPLETED"
is "$(n_done "$E")" 4 "  every run is done"
is "$("$NB" status four.ini --results-dir "$R" --missing)" "" "  status --missing: none"
is "$(events "$E" "done" | tr '\n' ' ')" "0 1 2 3 " "  each run finished exactly once"
is "$(events "$E" start | tr '\n' ' ')" "0 1 1 2 2 3 " \
    "  the two lost runs started twice, the others once"
check "  every metrics.csv whole (the lost runs' rows are not doubled)" metrics_whole "$E"
known=$(jobs_known)
"$NB" slurm four.ini --submit --results-dir "$R" >again4.out 2>&1
is "$?" 0 "submitting again exits 0"
check "  nothing to submit" grep -q "nothing to submit: all 4 runs are done" again4.out
is "$(jobs_known)" "$known" "  and Slurm got no job"

# ---- the cluster stops, and nothing of it stays --------------------------
trap - EXIT
cluster_stop
is "$?" 0 "the cluster stops"
# (the command lines from /proc, as a fresh Debian may lack ps; into a
# file first, so the grep is not among them)
for p in /proc/[0-9]*; do tr '\0' ' ' 2>/dev/null <"$p/cmdline"; echo; done >"$W/procs"
left=$(grep -F "$C/" "$W/procs")
is "$left" "" "  no daemon of it left running"
check "  its directory is gone" [ ! -e "$C" ]

echo "1..$n"
[ "$failed" -eq 0 ]
