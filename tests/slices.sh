#!/bin/sh
# tests/slices.sh - loss slices end to end from real runs (issue 17): two
# tiny sweeps on the synthetic blobs (an mlp with batch norm, 64 training
# samples in batches of 16: 4 steps an epoch, 8 in all, 2 seeds), one
# taking 1-D slices and one 2-D, trained by `normbench run`; their
# slice.csv (steps, layout), `summarize --long` (slices.csv) and
# `normbench plot` of an experiment with a slice1d and a slice2d figure
# (tables, and the drawings when gnuplot is installed); and slice_at
# errors through the command line.  TAP.  Everything is written under
# tests/tmp/ of the build tree.
set -u

. "${srcdir:-.}/tests/taplib.sh"
tap_init slices
S=$(cd "$srcdir" && pwd)
need_nb
have_gnuplot=0
command -v "${GNUPLOT:-gnuplot}" >/dev/null 2>&1 && have_gnuplot=1

# config NAME SLICE-KEYS: a 2-seed sweep of 8 steps taking slices
config() {
    cat >"$W/$1.ini" <<EOF
[experiment]
name = $1
seeds = 0..1
[model]
arch = mlp
widths = 16
[norm]
type = batch
[train]
batch = 16
epochs = 2
eval_every = 4
eval_samples = 100
[data]
source = blobs
train_subset = 64
[probe]
slice = true
slice_samples = 32
$2
EOF
}
# -1 after another step, a duplicate, the last step (8) given both ways:
# slices at 3 and 8; the 2-D ones at 0 (the initial weights) and 8
config s1 'slice_at = 8 3 -1 3
slice_points = 5'
config s2 'slice_at = -1 0
slice_dim = 2
slice_points = 3'

# ---- the runs ---------------------------------------------------------------
R=$W/results
for c in s1 s2; do
    "$NB" run "$W/$c.ini" -q --results-dir "$R" >"$W/run-$c.out" 2>&1
    rc=$?
    is "$rc" 0 "run $c: exit 0"
    [ $rc -eq 0 ] || show "$W/run-$c.out"
done
ids1=$("$NB" list "$W/s1.ini" | cut -f2)
ids2=$("$NB" list "$W/s2.ini" | cut -f2)
id1=$(echo "$ids1" | head -n 1)
id2=$(echo "$ids2" | head -n 1)
F1=$R/s1/$id1/slice.csv
F2=$R/s2/$id2/slice.csv

# ---- slice.csv as the probe writes it ------------------------------------------
is "$(head -n 1 "$F1")" "step,a,b,loss,acc" "slice.csv: the header has a step column"
# the steps of the slices, in order, and the lines of each (blank lines apart)
blocks() { # blocks FILE: "STEP:LINES" per block of non-blank lines
    awk -F, 'NR == 1 { next }
             NF == 0 { if (n) printf "%s:%d ", s, n; n = 0; next }
             { s = $1; n++ }
             END { if (n) printf "%s:%d ", s, n }' "$1"
}
is "$(blocks "$F1")" "3:5 8:5 " "1-D: slices at 3 and at the last step 8, one block of 5 lines each"
is "$(awk -F, 'NR > 1 && NF && $3 != 0' "$F1" | wc -l | tr -d ' ')" 0 "1-D: b is 0 on every line"
check "1-D: two blank lines between the slices" \
    sh -c "awk 'NF == 0 { b++ } END { exit b != 2 }' '$F1'"
is "$(blocks "$F2")" "0:3 0:3 0:3 8:3 8:3 8:3 " \
    "2-D: slices at 0 and 8, 3 scans of 3 points each (a blank line between scans)"
is "$(cut -d, -f1,2 "$R/s1/$id1/probes.csv" | grep -c ',slice$')" 18 \
    "1-D: probes.csv has the 9 rows of each slice (curvature: an odd slice_points)"
is "$(awk -F, '$2 == "slice" && $7 == "curvature"' "$R/s1/$id1/probes.csv" | wc -l | tr -d ' ')" 2 \
    "1-D: a curvature row per slice"
is "$(grep ',slice,' "$R/s1/$id1/probes.csv" | grep ',index,' | cut -d, -f1 | tr '\n' ' ')" \
    "3 8 " "1-D: probes.csv's slice rows at steps 3 and 8"
# the slice at the last step is on the final weights: its centre's loss
# is the loss_center the probe reports at step 8
c8=$(awk -F, '$1 == 8 && $2 == 0 { print $4 }' "$F1")
lc8=$(grep '^8,slice,' "$R/s1/$id1/probes.csv" | grep ',loss_center,' | cut -d, -f8)
check "1-D: the centre line of the step-8 slice is its loss_center ($c8)" \
    awk -v a="$c8" -v b="$lc8" 'BEGIN { exit !(a != "" && a + 0 == b + 0) }'

# ---- summarize --long: slices.csv -------------------------------------------------
"$NB" summarize "$W/s1.ini" --results-dir "$R" --long "$W/long1" >"$W/sum1.out" 2>&1
is "$?" 0 "summarize --long s1: exit 0"
L=$W/long1/slices.csv
hdr=$(head -n 1 "$L")
case $hdr in
*,slice,scan,step,a,b,loss,acc) pass "slices.csv: slice, scan, step, a, b, loss, acc" ;;
*) fail "slices.csv: slice, scan, step, a, b, loss, acc"; diag "header: $hdr" ;;
esac
is "$(awk -F, 'NR > 1 { print $(NF-4) }' "$L" | sort -n | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')" \
    "3:10 8:10 " "slices.csv: 10 points (2 runs x 5) at each of steps 3 and 8"
is "$(awk -F, 'NR > 1 { print $(NF-5) }' "$L" | sort -u | tr '\n' ' ')" "0 " \
    "slices.csv: a 1-D slice is one scan"

# ---- plot: an experiment with both figures ---------------------------------------
cat >"$W/slices.ini" <<EOF
[experiment]
claim = loss slices from real runs
source = tests/slices.sh
config = s1.ini
config = s2.ini
[figure one]
kind = slice1d
[figure two]
kind = slice2d
EOF
"$NB" plot "$W/slices.ini" --results "$R" --plots "$S/plots" --format png,svg \
    >"$W/plot.out" 2>"$W/plot.err"
rc=$?
is "$rc" 0 "plot: exit 0"
[ $rc -eq 0 ] || show "$W/plot.err"
check "plot: no figure has nothing to draw" sh -c "! grep -q 'nothing to draw' '$W/plot.err'"
[ $rc -eq 0 ] || show "$W/plot.err"
G=$R/slices/figures
hdr1=$(head -n 1 "$G/one.csv" 2>/dev/null)
is "$hdr1" "sid,series,ci,di,step,a,loss_mean,loss_min,loss_max,acc_mean,n" \
    "slice1d table: a step column, no b"
is "$(awk -F, 'NR > 1 { print $5 ":" $NF }' "$G/one.csv" 2>/dev/null | sort | uniq -c | awk '{ printf "%s %s ", $1, $2 }')" \
    "5 8:2 " "slice1d table: the last slices (step 8), 5 points, each over 2 seeds"
is "$(awk -F, 'NR > 1 && NF { print $5 ":" $NF }' "$G/two.csv" 2>/dev/null | sort | uniq -c | awk '{ printf "%s %s ", $1, $2 }')" \
    "9 8:2 " "slice2d table: the last slices (step 8), 3 x 3 points, each over 2 seeds"
if [ $have_gnuplot -eq 1 ]; then
    for f in one two; do
        png=$(head -c 4 "$G/$f.png" 2>/dev/null | tail -c 3)
        check "plot: $f.png is drawn" [ "$png" = "PNG" ]
    done
    check "slice1d figure: titled with the slices' step" grep -q "1-D loss slice at step 8<" "$G/one.svg"
    check "slice2d figure: its panel names the slice's step" grep -q "(n=2) at step 8<" "$G/two.svg"
else
    for i in 1 2 3 4; do pass "# SKIP gnuplot not installed"; done
fi

# ---- slice_at errors before any run --------------------------------------------
config end 'slice_at = 3 9'
"$NB" run "$W/end.ini" -q --results-dir "$W/end-results" >"$W/end.out" 2>"$W/end.err"
is "$?" 2 "slice_at past the end: exit 2"
is "$(head -n 1 "$W/end.err")" \
    "$W/end.ini:20: [probe] slice_at: step 9 is past the end of training (the run has 8 steps, 2 epochs of 4 steps: 64 training samples in batches of 16) (run 0: experiment.seeds=0)" \
    "  FILE:LINE: message"
is "$(sed -n 2p "$W/end.err")" \
    "hint: slice_at takes steps 0 (the initial weights) to 8 (the final ones); -1 is the last step" \
    "  and a hint"
check "  and nothing ran" [ ! -d "$W/end-results/end" ]
config order 'slice_at = 8 -1 0'
"$NB" config --check "$W/order.ini" >"$W/order.out" 2>&1
is "$?" 0 "slice_at = 8 -1 0 (the last step twice, -1 not first) is accepted"
is "$("$NB" list "$W/order.ini" | cut -f2 | head -n 1)" \
    "$(sed 's/^slice_at = .*/slice_at = -1 0 8/' "$W/order.ini" >"$W/order2.ini" &&
        "$NB" list "$W/order2.ini" | cut -f2 | head -n 1)" \
    "  with the run_id of the same list sorted"

echo "1..$n"
[ "$failed" -eq 0 ]
