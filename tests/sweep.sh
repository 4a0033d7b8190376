#!/bin/sh
# tests/sweep.sh - the sweep runner through the command line, as TAP.
#
# Config errors (exit 2, FILE:LINE), byte-identical metrics with -j 1 and
# -j 2, skipping done runs, status --missing, diverging and failing runs,
# a pool killed with SIGKILL and re-run, SIGTERM, two concurrent
# invocations, and a sweep driven by GNU parallel.  Everything is written
# under tests/tmp/ of the build tree.
set -u

. "${srcdir:-.}/tests/taplib.sh"
tap_init sweep
need_nb

count_files() { # count_files DIR NAME: files called NAME one level below DIR
    find "$1" -mindepth 2 -maxdepth 2 -name "$2" 2>/dev/null | wc -l | tr -d ' '
}

# waits until DIR has at least K files NAME (max ~60 s); returns 1 on timeout
wait_files() {
    i=0
    while [ "$(count_files "$1" "$2")" -lt "$3" ]; do
        i=$((i + 1))
        [ $i -gt 600 ] && return 1
        sleep 0.1
    done
    return 0
}

# every metrics.csv of an experiment dir: header + rows with 8 fields, rows
# as many as DONE says
metrics_whole() {
    for d in "$1"/*/; do
        [ -f "$d/DONE" ] || continue
        rows=$(sed -n 's/^metrics_rows = //p' "$d/DONE")
        got=$(awk -F, 'NR > 1 && NF == 8 { n++ } NF != 8 { bad = 1 } END { print bad ? -1 : n + 0 }' "$d/metrics.csv")
        [ "$rows" = "$got" ] || { echo "# $d: metrics_rows $rows, whole rows $got"; return 1; }
    done
    return 0
}

# ---- list ---------------------------------------------------------------
"$NB" list "$CONF/test-tiny.ini" >"$W/list1"
is "$?" 0 "list exits 0"
is "$(wc -l <"$W/list1" | tr -d ' ')" 12 "list prints 12 runs"
is "$(head -n 1 "$W/list1")" "$(printf '0\t%s\tnorm.type=none\ttrain.batch=16\texperiment.seeds=0' "$(head -n 1 "$W/list1" | cut -f2)")" \
    "list: INDEX TAB RUN_ID TAB swept keys, seeds last"
(cd "$W" && cp "$CONF/test-tiny.ini" . && "$NB" list test-tiny.ini >"$W/list2")
check "list: the same from another directory and path" cmp -s "$W/list1" "$W/list2"
is "$("$NB" list --count "$CONF/test-tiny.ini")" 12 "list --count"

# ---- config errors: exit 2 with FILE:LINE before anything runs ----------
bad() { # bad NAME TEXT LINE MESSAGE
    printf '%s' "$2" >"$W/$1.ini"
    "$NB" run "$W/$1.ini" -q --results-dir "$W/bad-results" >"$W/$1.out" 2>"$W/$1.err"
    rc=$?
    is "$rc" 2 "config error $1: exit status 2"
    is "$(head -n 1 "$W/$1.err")" "$W/$1.ini:$3: $4" "config error $1: FILE:LINE: message"
}
bad groups '[norm]
type = group
groups = 3
[data]
source = blobs
' 3 'layer norm1: group norm needs the group count to divide the channels (G = 3, C = 16)'
bad ghost '[norm]
type = none, batch
norm_batch = 12
[train]
batch = 32
' 3 'ghost batch norm_batch = 12 does not divide [train] batch = 32 (run 1: norm.type=batch)'
bad devices '[norm]
type = batch
sync = true
devices = 5
' 4 'devices = 5 does not divide [train] batch = 128 (every device gets the same share)'
bad bn-batch1 '[model]
arch = mlp

[norm]
type = batch

[train]
batch = 1
' 8 'layer norm1: batch norm needs more than one value per channel in training (batch 1 x 1 x 1 = 1)'
bad instance-mlp '[model]
arch = mlp
[norm]
type = instance
' 4 'instance norm is undefined on an mlp (one element per channel)'
bad dln-data '[model]
arch = dln
' 2 'dln layers are square: outputs (10) must equal the input size (784)'
bad unknown-key '[train]
batch = 32
lerning_rate = 0.1
' 3 "unknown key 'lerning_rate' in [train]"
check "config errors: no results written" test ! -e "$W/bad-results"
is "$(sed -n 2p "$W/groups.err")" \
    "hint: the norm layers have 16, 32, 128 channels; groups that divide them all: 1 2 4 8 16 (or 0: per layer the largest divisor <= min(8, C/4))" \
    "config error groups: the hint lists the group counts that fit"
"$NB" run >/dev/null 2>&1
is "$?" 2 "run without a config: exit status 2"
"$NB" run "$CONF/test-tiny.ini" --index 12 -q --results-dir "$W/x" >/dev/null 2>&1
is "$?" 2 "run --index out of range: exit status 2"

# ---- what is not a text config: exit 2 with FILE:LINE, never a hang ------
{ printf '[train]\nmax_steps = 4'; printf '\000'; printf '0\n'; } >"$W/nul.ini"
"$NB" config --check "$W/nul.ini" >/dev/null 2>"$W/nul.err"
is "$?" 2 "a NUL byte in a value: exit status 2"
is "$(head -n 1 "$W/nul.err")" "$W/nul.ini:2: NUL byte in column 14 (not a text file?)" \
    "a NUL byte in a value: FILE:LINE: message"
timeout 20 "$NB" config --check /dev/zero >/dev/null 2>"$W/zero.err"
is "$?" 2 "config --check /dev/zero ends: exit status 2"
is "$(head -n 1 "$W/zero.err")" "/dev/zero:1: NUL byte in column 1 (not a text file?)" \
    "config --check /dev/zero: FILE:LINE: message"
tr '\000' x </dev/zero 2>/dev/null | timeout 20 "$NB" config --check /dev/stdin >/dev/null 2>"$W/long.err"
is "$?" 2 "an endless line ends: exit status 2"
is "$(head -n 1 "$W/long.err")" "/dev/stdin:1: line longer than 65536 bytes" \
    "an endless line: FILE:LINE: message"

# ---- -j 1 and -j 2: byte-identical metrics -------------------------------
R1=$W/r1
R2=$W/r2
"$NB" run "$CONF/test-tiny.ini" -j 1 --results-dir "$R1" >"$W/j1.out" 2>"$W/j1.err"
is "$?" 0 "run -j 1 exits 0"
"$NB" run "$CONF/test-tiny.ini" -j 2 --results-dir "$R2" >"$W/j2.out" 2>"$W/j2.err"
is "$?" 0 "run -j 2 exits 0"
is "$(count_files "$R1/test-tiny" DONE)" 12 "-j 1: 12 DONE"
is "$(count_files "$R2/test-tiny" DONE)" 12 "-j 2: 12 DONE"
same=0
for d in "$R1"/test-tiny/*/; do
    id=$(basename "$d")
    cmp -s "$d/metrics.csv" "$R2/test-tiny/$id/metrics.csv" && same=$((same + 1))
done
is "$same" 12 "metrics.csv byte-identical between -j 1 and -j 2 for every run"
is "$(head -n 1 "$R1/test-tiny/$(head -n 1 "$W/list1" | cut -f2)/metrics.csv")" \
    "step,epoch,lr,train_loss,train_acc,test_loss,test_acc,grad_norm" "metrics.csv header"
check "stdout is the closing table" grep -q '^total 12: 12 done, 0 diverged, 0 failed' "$W/j2.out"
is "$(head -n 1 "$W/j2.out" | awk '{print $1, $2, $3, $4}')" "status index run_id path" "table header"
check "stderr without a terminal: no carriage returns or escapes" \
    sh -c "! grep -q \"\$(printf '[\r\033]')\" '$W/j2.err'"
check "stderr without a terminal: plain progress lines" grep -q '^normbench: 12/12 runs' "$W/j2.err"
is "$(wc -l <"$R2/test-tiny/summary.csv" | tr -d ' ')" 13 "summary.csv: header + 12 rows"
check "metrics.csv files are whole" metrics_whole "$R2/test-tiny"
check "every run has config.ini, meta.txt, timing.csv" sh -c "
    for d in '$R2'/test-tiny/*/; do
        test -f \"\$d/config.ini\" && test -f \"\$d/meta.txt\" && test -f \"\$d/timing.csv\" || exit 1
        grep -q '^status = done' \"\$d/meta.txt\" || exit 1
    done"
is "$(cat "$R2"/test-tiny/*/meta.txt | grep -c '^jobs = 2$')" 12 "meta.txt: every run says it ran with -j 2"
id0=$(head -n 1 "$W/list1" | cut -f2)
"$NB" list "$R2/test-tiny/$id0/config.ini" >"$W/list-back"
is "$(cut -f2 "$W/list-back")" "$id0" "config.ini of a run reads back to its run_id"
check "no claims left behind" sh -c "test -z \"\$(ls -A '$R2/test-tiny/.locks')\""

# ---- done runs are skipped ----------------------------------------------
starts=$(grep -c ' start ' "$R2/test-tiny/events.log")
"$NB" run "$CONF/test-tiny.ini" -j 2 -q --results-dir "$R2" >"$W/again.out"
is "$?" 0 "re-run of a finished sweep exits 0"
is "$(grep -c ' start ' "$R2/test-tiny/events.log")" "$starts" "re-run starts nothing"
check "re-run: the table says 12 already done" grep -q '(12 already done before)' "$W/again.out"
"$NB" run "$CONF/test-tiny.ini" --index 3 -q --results-dir "$R2" >/dev/null
is "$?" 0 "run --index of a done run exits 0"
is "$(grep -c ' start ' "$R2/test-tiny/events.log")" "$starts" "run --index of a done run starts nothing"

# ---- status --------------------------------------------------------------
R3=$W/r3
"$NB" run "$CONF/test-tiny.ini" --index 0-2 --index 5 -q --results-dir "$R3" >/dev/null
is "$?" 0 "run --index 0-2 --index 5 exits 0"
is "$(count_files "$R3/test-tiny" DONE)" 4 "exactly those 4 runs ran"
is "$("$NB" status "$CONF/test-tiny.ini" --results-dir "$R3" | sed -n 's/^done *//p')" 4 "status: 4 done"
is "$("$NB" status "$CONF/test-tiny.ini" --results-dir "$R3" | sed -n 's/^pending *//p')" 8 "status: 8 pending"
is "$("$NB" status "$CONF/test-tiny.ini" --missing --results-dir "$R3")" "3-4,6-11" "status --missing: Slurm --array ranges"
is "$("$NB" status "$CONF/test-tiny.ini" --missing --format lines --results-dir "$R3" | tr '\n' ' ')" \
    "3 4 6 7 8 9 10 11 " "status --missing --format lines: one per line"
is "$("$NB" status "$CONF/test-tiny.ini" --missing --results-dir "$R2")" "" "status --missing: nothing when all done"

# ---- diverging runs -------------------------------------------------------
"$NB" run "$CONF/test-diverge.ini" -q --results-dir "$W/r-div" >"$W/div.out" 2>"$W/div.err"
is "$?" 0 "a sweep of diverging runs exits 0"
is "$(cat "$W"/r-div/test-diverge/*/DONE | grep -c '^status = diverged')" 2 "both runs: DONE with status diverged"
is "$(grep -c '^status = diverged' "$W"/r-div/test-diverge/*/meta.txt | awk -F: '{s += $2} END {print s}')" 2 "meta.txt: status diverged"
check "diverged runs keep their rows, ending in nan" sh -c "tail -n 1 '$W'/r-div/test-diverge/*/metrics.csv | grep -q nan"
is "$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "diverged") c = i } NR > 1 { s += $c } END { print s }' "$W/r-div/test-diverge/summary.csv")" 2 \
    "summary.csv: diverged = 1 for both"
check "the table lists them as diverged" grep -q '^diverged' "$W/div.out"

# ---- failing runs ---------------------------------------------------------
cat >"$W/fail.ini" <<EOF
[experiment]
name = fails
seeds = 0, 1
[data]
source = mnist
dir = $W/no-such-dir
EOF
"$NB" run "$W/fail.ini" -q -j 2 --results-dir "$W/r-fail" >"$W/fail.out" 2>"$W/fail.err"
is "$?" 1 "failing runs: exit status 1"
is "$(count_files "$W/r-fail/fails" error.txt)" 2 "failing runs: error.txt each"
is "$(count_files "$W/r-fail/fails" DONE)" 0 "failing runs: no DONE"
check "failing runs: the table names the error" grep -q '^failed .*error.txt' "$W/fail.out"
is "$("$NB" status "$W/fail.ini" --results-dir "$W/r-fail" | sed -n 's/^failed *//p')" 2 "status: 2 failed"
is "$("$NB" status "$W/fail.ini" --missing --results-dir "$W/r-fail")" "0-1" "status --missing lists failed runs"
"$NB" run "$W/fail.ini" -q --results-dir "$W/r-fail" >/dev/null 2>&1
is "$(grep -c ' start ' "$W/r-fail/fails/events.log")" 4 "run tries failed runs again"

# ---- SIGKILL mid-way, then run again -------------------------------------
R4=$W/r4
"$NB" run "$CONF/test-slow.ini" -j 2 -q --results-dir "$R4" >/dev/null 2>&1 &
pid=$!
wait_files "$R4/test-slow" DONE 3
workers=$(cat "$R4"/test-slow/.locks/*/owner 2>/dev/null | sed -n 's/^worker = //p' | tr '\n' ' ')
kill -KILL $pid
wait $pid 2>/dev/null
sleep 0.5
ndone=$(count_files "$R4/test-slow" DONE)
diag "killed with $ndone of 12 runs done; workers in flight: $workers"
check "SIGKILL hit the sweep mid-way" test "$ndone" -lt 12
# alive WORKERS...: how many exist and are not zombies waiting for init
alive_count() {
    a=0
    for w in "$@"; do
        [ "$w" -gt 0 ] && kill -0 "$w" 2>/dev/null &&
            ! sed 's/.*) //' "/proc/$w/stat" 2>/dev/null | grep -q '^[ZX]' && a=$((a + 1))
    done
    echo $a
}
# the workers notice the parent's death (PDEATHSIG) at once, but on a
# loaded machine they may be scheduled late: allow them 20 s
k=0
while [ "$(alive_count $workers)" -gt 0 ] && [ $k -lt 200 ]; do
    sleep 0.1
    k=$((k + 1))
done
is "$(alive_count $workers)" 0 "the workers died with the pool"
"$NB" run "$CONF/test-slow.ini" -j 2 -q --results-dir "$R4" >"$W/resume.out" 2>"$W/resume.err"
is "$?" 0 "re-run after SIGKILL exits 0"
is "$(count_files "$R4/test-slow" DONE)" 12 "after the re-run all 12 runs are done"
is "$(awk '$4 == "done" { print $6 }' "$R4/test-slow/events.log" | sort | uniq -d | wc -l | tr -d ' ')" 0 \
    "no run finished twice"
is "$(awk '$4 == "done" { print $6 }' "$R4/test-slow/events.log" | sort -u | wc -l | tr -d ' ')" 12 \
    "every run finished once"
diag "runs started twice (lost in flight): $(awk '$4 == "start" { print $6 }' "$R4/test-slow/events.log" | sort | uniq -d | wc -l)"
check "after the re-run every metrics.csv is whole" metrics_whole "$R4/test-slow"
check "summary.csv has final metrics for all 12" sh -c "
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if (\$i == \"final_test_acc\") c = i }
             NR > 1 && \$c != \"\" { n++ } END { exit n == 12 ? 0 : 1 }' '$R4/test-slow/summary.csv'"
check "no claims left behind" sh -c "test -z \"\$(ls -A '$R4/test-slow/.locks')\""

# ---- two invocations at once never run a run twice ------------------------
R5=$W/r5
"$NB" run "$CONF/test-slow.ini" -j 2 -q --results-dir "$R5" >"$W/c1.out" 2>&1 &
p1=$!
"$NB" run "$CONF/test-slow.ini" -j 2 -q --results-dir "$R5" >"$W/c2.out" 2>&1 &
p2=$!
wait $p1
rc1=$?
wait $p2
rc2=$?
is "$rc1 $rc2" "0 0" "two concurrent runs both exit 0"
is "$(count_files "$R5/test-slow" DONE)" 12 "concurrent: 12 DONE"
is "$(awk '$4 == "start" { print $6 }' "$R5/test-slow/events.log" | sort | uniq -d | wc -l | tr -d ' ')" 0 \
    "concurrent: no run started twice"
is "$(awk '$4 == "start" { print $5 }' "$R5/test-slow/events.log" | sort -u | wc -l | tr -d ' ')" 12 \
    "concurrent: every run started once"
check "concurrent: the work was shared" test "$(grep -c '(by another process)' "$W/c1.out" "$W/c2.out" | awk -F: '{s += $2} END {print s}')" -gt 0

# ---- SIGTERM stops the pool cleanly ---------------------------------------
R7=$W/r7
"$NB" run "$CONF/test-slow.ini" -j 2 -q --results-dir "$R7" >/dev/null 2>"$W/term.err" &
pid=$!
wait_files "$R7/test-slow" DONE 1
kill -TERM $pid
wait $pid
is "$?" 143 "SIGTERM: exit status 128+15"
check "SIGTERM: claims released" sh -c "test -z \"\$(ls -A '$R7/test-slow/.locks')\""
# every run the pool had started and not finished when the signal came is
# logged interrupted (none were in flight only if the signal fell between
# two runs, which a loaded machine makes possible)
check "SIGTERM: every run in flight is logged interrupted" sh -c "awk '
    \$4 == \"start\" { open[\$6] = 1 }
    \$4 == \"done\" || \$4 == \"diverged\" || \$4 == \"failed\" || \$4 == \"interrupted\" { delete open[\$6] }
    END { for (r in open) { print \"# not logged: \" r; bad = 1 } exit bad }' '$R7/test-slow/events.log'"
"$NB" run "$CONF/test-slow.ini" -j 2 -q --results-dir "$R7" >/dev/null 2>&1
is "$?" 0 "after SIGTERM the same command finishes the rest"
is "$(count_files "$R7/test-slow" DONE)" 12 "after SIGTERM: 12 DONE"

# ---- stale claims are taken over ------------------------------------------
R8=$W/r8
id5=$(sed -n '6p' "$W/list1" | cut -f2)
id6=$(sed -n '7p' "$W/list1" | cut -f2)
mkdir -p "$R8/test-tiny/.locks/$id5" "$R8/test-tiny/.locks/$id6"
sh -c 'exit 0' &
deadpid=$!
wait $deadpid
printf 'host = %s\npid = %s\nworker = 0\nnonce = x\n' "$(uname -n)" "$deadpid" \
    >"$R8/test-tiny/.locks/$id5/owner"
printf 'host = elsewhere.example\npid = 1\nworker = 0\nnonce = y\n' \
    >"$R8/test-tiny/.locks/$id6/owner"
is "$("$NB" status "$CONF/test-tiny.ini" --results-dir "$R8" | sed -n 's/^running *//p')" 1 \
    "status: a fresh claim of another host is running, one of a dead local process is not"
is "$("$NB" status "$CONF/test-tiny.ini" --missing --results-dir "$R8")" "0-5,7-11" \
    "status --missing: the run of a dead local process is missing"
"$NB" run "$CONF/test-tiny.ini" --index 5 -q --results-dir "$R8" >/dev/null 2>&1
is "$?" 0 "a claim whose local process is gone is taken over at once"
check "... and the run is done" test -f "$R8/test-tiny/$id5/DONE"
"$NB" run "$CONF/test-tiny.ini" --index 6 -q --stale-after 2 --results-dir "$R8" >/dev/null 2>&1
is "$?" 0 "a claim of another host is taken over once its heartbeat is older than --stale-after"
check "... and the run is done" test -f "$R8/test-tiny/$id6/DONE"
check "... and no claim is left" sh -c "test -z \"\$(ls -A '$R8/test-tiny/.locks')\""

# a same-host claim whose pid now belongs to an unrelated live process
# (pid 1 here): with a start time that does not match, taken over at once;
# without one (an older owner file), once its heartbeat is older than
# 4 x --stale-after; never a wait without bound
R9=$W/r9
id7=$(sed -n '8p' "$W/list1" | cut -f2)
id8=$(sed -n '9p' "$W/list1" | cut -f2)
mkdir -p "$R9/test-tiny/.locks/$id7" "$R9/test-tiny/.locks/$id8"
printf 'host = %s\npid = 1\nworker = 0\npid_start = 12345678901\nworker_start = 0\nnonce = z\n' \
    "$(uname -n)" >"$R9/test-tiny/.locks/$id7/owner"
printf 'host = %s\npid = 1\nworker = 0\nnonce = w\n' "$(uname -n)" >"$R9/test-tiny/.locks/$id8/owner"
touch -d '1 hour ago' "$R9/test-tiny/.locks/$id8/owner" "$R9/test-tiny/.locks/$id8"
timeout 120 "$NB" run "$CONF/test-tiny.ini" --index 7 -q --results-dir "$R9" >/dev/null 2>&1
is "$?" 0 "a local claim whose pid was reused (start time differs) is taken over at once"
check "... and the run is done" test -f "$R9/test-tiny/$id7/DONE"
timeout 120 "$NB" run "$CONF/test-tiny.ini" --index 8 -q --stale-after 60 --results-dir "$R9" >/dev/null 2>&1
is "$?" 0 "a local claim of a live unrelated pid without a start time is taken over after 4 x --stale-after"
check "... and the run is done" test -f "$R9/test-tiny/$id8/DONE"

# ---- a run killed between DONE and its end event -------------------------
# SIGKILL (the pool's death signal to its workers, a crash, power loss)
# can fall after a worker wrote DONE and before it logged the end and
# released the claim: the next run takes the claim over and logs the end
# once, and leaves a live process's claim alone
R10=$W/r10
cp -r "$R2" "$R10"
rm -rf "$R10/test-tiny/.locks"
sh -c 'exit 0' &
deadpid=$!
wait $deadpid
for k in 1 2 3; do
    idk=$(sed -n "${k}p" "$W/list1" | cut -f2)
    mkdir -p "$R10/test-tiny/.locks/$idk"
    printf 'host = %s\npid = %s\nworker = 0\nnonce = d%s\n' "$(uname -n)" \
        "$([ $k = 3 ] && echo $$ || echo $deadpid)" "$k" >"$R10/test-tiny/.locks/$idk/owner"
done
ida=$(sed -n 1p "$W/list1" | cut -f2)
idb=$(sed -n 2p "$W/list1" | cut -f2)
idc=$(sed -n 3p "$W/list1" | cut -f2)
# run a never got to log its end; run b did (killed before the release)
awk -v id="$ida" '!($4 == "done" && $6 == id)' "$R10/test-tiny/events.log" >"$W/ev" &&
    cat "$W/ev" >"$R10/test-tiny/events.log"
ends() { awk -v id="$1" '($4 == "done" || $4 == "diverged") && $6 == id { n++ } END { print n + 0 }' \
    "$R10/test-tiny/events.log"; }
"$NB" run "$CONF/test-tiny.ini" -j 2 -q --results-dir "$R10" >/dev/null 2>&1
is "$?" 0 "a done run with a dead process's claim: run exits 0"
is "$(grep -c ' start ' "$R10/test-tiny/events.log")" "$starts" "... and starts nothing"
check "... its claim is taken over" test ! -e "$R10/test-tiny/.locks/$ida"
is "$(ends "$ida")" 1 "... the end it missed is logged once"
check "... and says so" grep -q " done [0-9]* $ida recovered" "$R10/test-tiny/events.log"
check "a claim left after the end was logged is taken over" test ! -e "$R10/test-tiny/.locks/$idb"
is "$(ends "$idb")" 1 "... and the end is not logged twice"
check "the claim of a live process on a done run is left alone" test -f "$R10/test-tiny/.locks/$idc/owner"
is "$(ends "$idc")" 1 "... and nothing is logged for it"
"$NB" run "$CONF/test-tiny.ini" -q --results-dir "$R10" >/dev/null 2>&1
is "$(ends "$ida")" 1 "a second run logs nothing more"

# ---- probes leave training untouched; their files are written ----------
cat >"$W/probe-off.ini" <<EOF
[experiment]
name = probes
[model]
arch = mlp
widths = 32
[norm]
type = batch
[train]
batch = 16
epochs = 1
eval_every = 4
eval_samples = 100
[data]
source = blobs
train_subset = 128
EOF
cat "$W/probe-off.ini" - >"$W/probe-on.ini" <<EOF
[probe]
landscape = true
landscape_every = 2
dist = true
dist_every = 4
hessian = true
hessian_samples = 64
slice = true
slice_points = 5
slice_samples = 64
EOF
"$NB" run "$W/probe-off.ini" -q --results-dir "$W/r-probe" >/dev/null 2>&1 &&
    "$NB" run "$W/probe-on.ini" -q --results-dir "$W/r-probe" >/dev/null 2>&1
is "$?" 0 "probes: runs with and without probes exit 0"
on_id=$("$NB" list "$W/probe-on.ini" | cut -f2)
off_id=$("$NB" list "$W/probe-off.ini" | cut -f2)
check "probes: metrics.csv identical with probes on and off" \
    cmp -s "$W/r-probe/probes/$on_id/metrics.csv" "$W/r-probe/probes/$off_id/metrics.csv"
check "probes: probes.csv and slice.csv written" \
    test -s "$W/r-probe/probes/$on_id/probes.csv" -a -s "$W/r-probe/probes/$on_id/slice.csv"
is "$(cut -d, -f2 "$W/r-probe/probes/$on_id/probes.csv" | sort -u | tr '\n' ' ')" \
    "dist hessian landscape probe slice " "probes: every probe asked for has rows"
check "probes: the cost is in meta.txt" grep -q '^probe_seconds = ' "$W/r-probe/probes/$on_id/meta.txt"
check "probes: the Hessian's products were exact (meta.txt)" \
    grep -q '^probe_hessian_hvp = exact$' "$W/r-probe/probes/$on_id/meta.txt"
check "probes: the Hessian's rows say so (hvp_exact 1)" \
    grep -q ',hessian,"",-1,samples,64,hvp_exact,1,eval$' "$W/r-probe/probes/$on_id/probes.csv"

# ---- GNU parallel drives list / run --index --------------------------------
if command -v parallel >/dev/null 2>&1 && parallel --version 2>/dev/null | grep -q 'GNU parallel'; then
    R6=$W/r6
    HOME=$W "$NB" list "$CONF/test-tiny.ini" | cut -f1 |
        HOME=$W parallel --will-cite -j 2 "$NB" run "$CONF/test-tiny.ini" --index {} -q --no-summary \
            --results-dir "$R6" >"$W/parallel.out" 2>&1
    is "$?" 0 "GNU parallel: every run --index exits 0"
    is "$(count_files "$R6/test-tiny" DONE)" 12 "GNU parallel: 12 DONE"
    is "$("$NB" status "$CONF/test-tiny.ini" --missing --results-dir "$R6")" "" "GNU parallel: nothing missing"
    same=0
    for d in "$R1"/test-tiny/*/; do
        id=$(basename "$d")
        cmp -s "$d/metrics.csv" "$R6/test-tiny/$id/metrics.csv" && same=$((same + 1))
    done
    is "$same" 12 "GNU parallel: metrics identical to the pool's"
else
    for i in 1 2 3 4; do n=$((n + 1)); echo "ok $n # SKIP GNU parallel not installed"; done
fi

echo "1..$n"
[ "$failed" -eq 0 ]
