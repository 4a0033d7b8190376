#!/bin/sh
# tests/mpi.sh - one run trained over the ranks of an MPI job, `mpirun -np K
# normbench run CONFIG --index LIST` (a build with ./configure --with-mpi),
# as TAP, on this machine:
#
#  - sync BN over 2 and 3 ranks (dropout and noisy BN on, so every random
#    stream is split; a last batch of 8 in slices of 4/4 and 2/3/3): every
#    metrics.csv column equals the one-process simulation of the same run
#    ([norm] devices = K, sync = true: the same run_id) to 1e-6 relative;
#  - local BN over 2 and 3 ranks equals ghost BN of 24 and 16 in one
#    process to 1e-6;
#  - rank 0 alone writes: the results hold exactly the files of the runs;
#  - a config that cannot be split (devices 3 on 2 ranks) is a FILE:LINE
#    error, said once, exit 2, nothing run;
#  - rank 1 SIGKILLed mid-run, then rank 0: mpirun exits non-zero within
#    a minute, the run is recorded failed (error.txt, meta.txt), no
#    normbench process is left; rank 1 stopped (SIGSTOP) with
#    --rank-timeout 2: rank 0 aborts the job, the same; then the same
#    command finishes the failed runs.
#
# Ranks add the slices' gradients in rank order where one process adds
# the batch's at once, and training carries that rounding (~1e-8 here)
# along like any other; where a ReLU or max-pool decision flips, it moves
# the run further (an lr one float ulp larger does the same in one
# process), so the comparisons use a smooth net.
#
# Skips (1..0 # SKIP) when normbench was built without MPI or mpirun is
# missing; NB_REQUIRE_MPI=1 (CI) makes that a failure.  The mpirun flags:
# --allow-run-as-root as root; --oversubscribe for 3 ranks on fewer
# cores; --bind-to none (other jobs share the cores); the shared-memory
# transport without its single-copy mechanism (CMA needs ptrace rights
# that containers often lack).
set -u

. "${srcdir:-.}/tests/taplib.sh"
tap_init mpi

# no MPI: a skip, or with NB_REQUIRE_MPI=1 a failure
no_mpi() {
    if [ "${NB_REQUIRE_MPI:-0}" = 1 ]; then
        fail "MPI runs here (NB_REQUIRE_MPI=1): $*"
        echo "1..$n"
        exit 1
    fi
    echo "1..0 # SKIP $*"
    exit 0
}
[ -x "$NB" ] || no_mpi "$NB not built"
case $("$NB" version) in
*", MPI "*) ;;
*) no_mpi "normbench was built without MPI (./configure --with-mpi)" ;;
esac
command -v mpirun >/dev/null 2>&1 || no_mpi "mpirun not found (apt-get install openmpi-bin)"

root=
[ "$(id -u)" -eq 0 ] && root=--allow-run-as-root
# mpirun -np K ARGS...: normbench ARGS over K ranks on this machine
mpi() {
    k=$1
    shift
    mpirun $root --oversubscribe --bind-to none \
        --mca btl_vader_single_copy_mechanism none -np "$k" "$NB" "$@"
}

# relerr A B: the largest relative difference between two metrics.csv
# files (same header, same rows; every column), or "mismatch"
relerr() {
    awk -F, 'NR == FNR { a[FNR] = $0; na = FNR; next }
        FNR == 1 { if ($0 != a[1]) bad = 1; next }
        { split(a[FNR], x, ",")
          for (i = 1; i <= NF; i++) {
              d = x[i] - $i; d = d < 0 ? -d : d; s = $i < 0 ? -$i : $i
              r = d / (s > 1e-300 ? s : 1e-300); if (d > 0 && r > m) m = r } }
        END { if (bad || FNR != na || na < 2) print "mismatch"; else printf "%.2g\n", m }' "$1" "$2"
}
# close A B DESCRIPTION: relerr within 1e-6
close() {
    e=$(relerr "$1" "$2" 2>/dev/null || echo mismatch)
    case $e in
    mismatch) fail "$3 (rows or columns differ)" ;;
    *) if awk -v e="$e" 'BEGIN { exit !(e <= 1e-6) }'; then pass "$3 ($e)"; else fail "$3 ($e)"; fi ;;
    esac
}
# metrics RESULTS EXP INDEX CONFIG: the metrics.csv of run INDEX
metrics() {
    echo "$1/$2/$("$NB" list "$4" | awk -F'\t' -v i="$3" '$1 == i { print $2 }')/metrics.csv"
}

# ---- sync and local BN: ranks vs one process ----------------------------
# runs 0-3: sync 2, sync 3 (drop_last false: a last batch of 8, in slices
# of 4/4 and 2/3/3), local 2, local 3 (drop_last true, so that every batch
# splits as ghost batches do).  resnet-8 on 12 x 12 images: norms over
# planes, shortcuts, the classifier's dropout; sigmoid, so that no ReLU
# or max-pool decision turns a rounding difference into a different step
# (with ReLU the cnn's grad_norm moves by 5e-5 at step 3 from an lr one
# float ulp larger, in one process).
cat >"$W/ranks.ini" <<'EOF'
[experiment]
name = ranks
seeds = 0
zip = norm.sync, train.drop_last
[model]
arch = resnet
activation = sigmoid
dropout = 0.2
[norm]
type = batch
noisy = true
sync = true, false
devices = 2, 3
[optim]
lr = 0.05
[train]
batch = 48
max_steps = 8
eval_every = 2
eval_samples = 200
drop_last = false, true
[data]
train_subset = 200
resize = 12
resize_mode = bilinear
EOF
sed -e 's/^devices = .*/norm_batch = 24, 16/' -e 's/^sync = .*/sync = false/' \
    -e 's/^zip = .*//' -e 's/^drop_last = .*/drop_last = true/' -e 's/^name = .*/name = ghost/' \
    "$W/ranks.ini" >"$W/ghost.ini"
R1=$W/one R=$W/ranks
"$NB" run "$W/ranks.ini" --results-dir "$R1" -q >"$W/one.out" 2>&1 &&
    "$NB" run "$W/ghost.ini" --results-dir "$R1" -q >>"$W/one.out" 2>&1
is "$?" 0 "one process: the simulations (devices = 2, 3) and ghost BN run"

mpi 2 run "$W/ranks.ini" --index 0,2 --results-dir "$R" -q >"$W/np2.out" 2>"$W/np2.err"
is "$?" 0 "mpirun -np 2: sync and local BN over 2 ranks (runs 0 and 2) exit 0"
mpi 3 run "$W/ranks.ini" --index 1,3 --results-dir "$R" -q >"$W/np3.out" 2>"$W/np3.err"
is "$?" 0 "mpirun -np 3: sync and local BN over 3 ranks (runs 1 and 3) exit 0"
[ "$failed" -eq 0 ] || { cat "$W"/*.err | sed 's/^/# /'; }
close "$(metrics "$R" ranks 0 "$W/ranks.ini")" "$(metrics "$R1" ranks 0 "$W/ranks.ini")" \
    "  sync BN over 2 ranks = devices 2 in one process"
close "$(metrics "$R" ranks 1 "$W/ranks.ini")" "$(metrics "$R1" ranks 1 "$W/ranks.ini")" \
    "  sync BN over 3 ranks (last batch 2/3/3) = devices 3 in one process"
close "$(metrics "$R" ranks 2 "$W/ranks.ini")" "$(metrics "$R1" ghost 0 "$W/ghost.ini")" \
    "  local BN over 2 ranks = ghost BN of 24 in one process"
close "$(metrics "$R" ranks 3 "$W/ranks.ini")" "$(metrics "$R1" ghost 1 "$W/ghost.ini")" \
    "  local BN over 3 ranks = ghost BN of 16 in one process"
id0=$("$NB" list "$W/ranks.ini" | sed -n 1p | cut -f2)
check "  meta.txt says 2 ranks" grep -q "^ranks = 2$" "$R/ranks/$id0/meta.txt"
# rank 0 alone writes: the run directories, events.log, summary.csv and
# the empty lock directory, nothing else
files=$(cd "$R/ranks" && find . -type f | sed 's|^\./[0-9a-f]\{16\}/|RUN/|' | sort | uniq -c |
    awk '{ printf "%s%s:%s", sep, $2, $1; sep = " " }')
is "$files" "./events.log:1 ./summary.csv:1 RUN/DONE:4 RUN/config.ini:4 RUN/meta.txt:4 RUN/metrics.csv:4 RUN/timing.csv:4" \
    "  rank 0 alone wrote: four run directories, events.log, summary.csv"
is "$(grep -c ' start ' "$R/ranks/events.log")" 4 "  each run started once"

# ---- a config that cannot be split -------------------------------------
mpi 2 run "$W/ranks.ini" --index 1 --results-dir "$W/bad" -q >"$W/bad.out" 2>"$W/bad.err"
is "$?" 2 "devices 3 on 2 ranks: exit 2"
line=$(grep -n '^devices' "$W/ranks.ini" | cut -d: -f1)
check "  FILE:LINE of devices, said once" \
    test "$(grep -c "ranks.ini:$line: \[norm\] devices = 3, but the run has 2 MPI ranks" "$W/bad.err")" = 1
check "  with a hint" grep -q "^hint: set devices = 2" "$W/bad.err"
check "  and nothing ran" test ! -e "$W/bad/ranks"

# ---- killed and stuck ranks --------------------------------------------
cat >"$W/kill.ini" <<'EOF'
[experiment]
name = kill
seeds = 0..2
[model]
arch = mlp
widths = 64 64
[norm]
type = batch
sync = true
devices = 2
[train]
batch = 32
max_steps = 12000
eval_every = 100
eval_samples = 100
[data]
train_subset = 2000
EOF
# 12000 steps take ~4 s on an idle core here (a first metrics row after
# 0.03 s): the signal, sent within 0.05 s of that row, lands mid-run even
# on a machine many times faster.  With 300 steps the whole run ended
# before the signal on an idle machine, and the test failed there.
K=$W/kill
# nb_pids: the normbench processes of this test's kill.ini (/proc, no procps)
nb_pids() {
    for d in /proc/[0-9]*; do
        { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null | grep -q "normbench run $W/kill.ini" &&
            echo "${d#/proc/}"
    done
}
# whatever a failed check left running goes with the test
trap 'for p in $(nb_pids); do kill -KILL "$p"; done 2>/dev/null' EXIT
# rank_pid R: the pid of rank R
rank_pid() {
    for p in $(nb_pids); do
        { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" &&
            echo "$p" && return
    done
}
# hit INDEX SIGNAL RANK [ARGS]: runs run INDEX over 2 ranks, sends SIGNAL to
# rank RANK once its metrics.csv has a row; sets rc and secs
hit() {
    id=$("$NB" list "$W/kill.ini" | awk -F'\t' -v i="$1" '$1 == i { print $2 }')
    t0=$(date +%s)
    mpi 2 run "$W/kill.ini" --index "$1" --results-dir "$K" -q ${4:-} >"$W/hit$1.out" 2>"$W/hit$1.err" &
    mp=$!
    # the rank's pid first (it exists before it trains), so that the
    # signal follows the first metrics row at once
    i=0
    p=
    while [ "$i" -lt 300 ] && [ -z "$p" ]; do
        p=$(rank_pid "$3")
        [ -n "$p" ] || sleep 0.1
        i=$((i + 1))
    done
    i=0
    while [ "$i" -lt 600 ] && [ "$({ wc -l <"$K/kill/$id/metrics.csv"; } 2>/dev/null || echo 0)" -lt 2 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    [ -n "$p" ] && kill "-$2" "$p"
    # a minute at most, then the test ends it (and fails)
    i=0
    while kill -0 "$mp" 2>/dev/null && [ "$i" -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -0 "$mp" 2>/dev/null && kill -KILL "$mp"
    wait "$mp"
    rc=$?
    secs=$(($(date +%s) - t0))
    sleep 0.5 # the watcher's record, and the zombies' reaping
}
# recorded INDEX WHAT: run INDEX failed on disk, nothing left running
recorded() {
    d=$K/kill/$id
    check "  mpirun exits non-zero ($rc) within a minute (${secs} s)" \
        test "$rc" -ne 0 -a "$secs" -lt 60
    check "  error.txt says $2" grep -Eq "^error = MPI rank 0 ($2)" "$d/error.txt"
    check "  meta.txt: status failed, no DONE" \
        sh -c "grep -q '^status = failed$' '$d/meta.txt' && test ! -e '$d/DONE'"
    is "$(nb_pids | wc -l | tr -d ' ')" 0 "  no normbench process left"
}
hit 0 KILL 1
recorded 0 "was stopped by signal 15|ended mid-run"
hit 1 KILL 0
recorded 1 "ended mid-run"
hit 2 STOP 1 "--rank-timeout 2"
# rank 0 aborts the job: it may see mpirun's SIGTERM before it exits
recorded 2 "ended mid-run|was stopped by signal 15"
check "  the stuck rank's timeout is on mpirun's stderr" \
    grep -q "waited [0-9]* s for the other ranks (--rank-timeout): aborting" "$W/hit2.err"
"$NB" status "$W/kill.ini" --results-dir "$K" >"$W/status.out"
check "status counts the three failed" grep -q "^failed *3$" "$W/status.out"
mpi 2 run "$W/kill.ini" --results-dir "$K" -q >"$W/again.out" 2>"$W/again.err"
is "$?" 0 "the same mpirun command finishes the failed runs"
is "$(ls "$K"/kill/*/DONE | wc -l | tr -d ' ')" 3 "  every run is done"
is "$(nb_pids | wc -l | tr -d ' ')" 0 "  no normbench process left"

echo "1..$n"
[ "$failed" -eq 0 ]
