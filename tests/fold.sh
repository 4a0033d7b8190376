#!/bin/sh
# tests/fold.sh - `normbench fold` end to end, as TAP: an mlp (two hidden
# layers) and the cnn with batch norm train on the synthetic blobs with
# [train] save_weights = true; folding a run's weights.nbw folds 2 and 5
# layers, the folded logits are within 1e-4 of the unfolded ones on the
# run's eval_samples, the unfolded network reproduces the run's final
# evaluation, the timing has both times and their ratio, and -o writes a
# checkpoint whose checksum is the one printed.  A run is named by its
# directory or by a selector as init_from takes it.  Refused: placement
# post and group norm (exit 2, at the config.ini line), norm none, a run
# without weights, a path that is neither a run nor a selector, an -o
# onto the run's own checkpoint, usage errors (exit 2); a damaged
# checkpoint fails (exit 1).  Everything is written under tests/tmp/ of
# the build tree.
set -u

. "${srcdir:-.}/tests/taplib.sh"
tap_init fold
R=$W/results
need_nb

# the run directory of seed S in experiment folder DIR
run_of() { dirname "$(grep -l "^seed = $2\$" "$1"/*/meta.txt)"; }
# KEY of fold's report in FILE
val() { sed -n "s/^$2 = //p" "$1"; }
# whether awk's expression over A and B holds
holds() { awk -v a="$1" -v b="$2" "BEGIN { exit !($3) }"; }
# the checksum at the end of a checkpoint, as 16 hex digits
tailsum() {
    size=$(wc -c <"$1" | tr -d ' ')
    od -An -tx1 -j $((size - 8)) -N 8 "$1" | tr -s ' \n' ' ' |
        awk '{ for (i = NF; i > 0; i--) printf "%s", $i; print "" }'
}
# the line of config.ini in DIR that sets KEY
line_of() { grep -n "^$2 = " "$1/config.ini" | cut -d: -f1; }

# ---- an mlp with batch norm, two seeds, weights saved ---------------------
cat >"$W/pre.ini" <<EOF
[experiment]
name = pre
seeds = 0, 1
[model]
arch = mlp
widths = 16 16
[norm]
type = batch
[optim]
lr = 0.05
[train]
batch = 16
epochs = 3
eval_every = 8
eval_samples = 200
save_weights = true
[data]
source = blobs
train_subset = 128
EOF
"$NB" run "$W/pre.ini" -q --results-dir "$R" >"$W/pre.out" 2>"$W/pre.err"
rc=$?
is "$rc" 0 "mlp with batch norm (save_weights = true): run exits 0"
[ "$rc" -eq 0 ] || show "$W/pre.err"
A0=$(run_of "$R/pre" 0)
A1=$(run_of "$R/pre" 1)

"$NB" fold "$A0" -o "$W/folded.nbw" >"$W/a0.out" 2>"$W/a0.err"
rc=$?
is "$rc" 0 "fold RUN_DIR -o FILE: exit 0"
[ "$rc" -eq 0 ] || show "$W/a0.err"
show "$W/a0.out"
is "$(val "$W/a0.out" run_dir)" "$A0" "  run_dir is the run directory"
is "$(val "$W/a0.out" layers_folded)" 2 "  2 layers folded (the batch norms after the 2 hidden linear layers)"
is "$(val "$W/a0.out" layers_unfolded_net) - $(val "$W/a0.out" layers_folded_net)" "8 - 6" \
    "  the folded network has 2 layers fewer"
is "$(val "$W/a0.out" samples)" 200 "  compared on the run's eval_samples (200)"
d=$(val "$W/a0.out" max_abs_logit_diff)
check "  max abs logit difference < 1e-4 ($d)" holds "$d" 0 'a != "" && a + 0 < 1e-4'
is "$(val "$W/a0.out" predictions_differ)" 0 "  no prediction differs"
last=$(tail -n 1 "$A0/metrics.csv" | cut -d, -f6,7)
check "  the unfolded network's loss and accuracy are the run's final evaluation ($last)" \
    holds "$(val "$W/a0.out" loss_unfolded),$(val "$W/a0.out" accuracy_unfolded)" "$last" \
    'split(a, x, ",") && split(b, y, ",") && (x[1] - y[1])^2 < 1e-10 && x[2] == y[2]'
is "$(val "$W/a0.out" accuracy_folded)" "$(val "$W/a0.out" accuracy_unfolded)" \
    "  the folded network's accuracy is the same"
is "$(val "$W/a0.out" rounds)" 5 "  timing: 5 interleaved rounds (the default)"
tu=$(val "$W/a0.out" seconds_unfolded)
tf=$(val "$W/a0.out" seconds_folded)
ratio=$(val "$W/a0.out" time_ratio)
check "  both times positive ($tu s, $tf s per pass)" holds "$tu" "$tf" 'a > 0 && b > 0'
check "  time_ratio = folded / unfolded ($ratio)" holds "$ratio" "$tf" \
    "(a - b / $tu)^2 < (1e-3 * b / $tu)^2"
is "$(val "$W/a0.out" out)" "$W/folded.nbw" "  -o: the file is named"
is "$(od -An -c -N 4 "$W/folded.nbw" | tr -d ' ')" '211NBW' "  the folded checkpoint starts with the magic"
is "$(tailsum "$W/folded.nbw")" "$(val "$W/a0.out" out_checksum)" \
    "  its checksum is the one printed"
check "  no temporary file left" sh -c "! ls '$W'/folded.nbw.tmp.* >/dev/null 2>&1"
"$NB" fold "$A0/" --rounds 2 >"$W/a0b.out" 2>&1
is "$(val "$W/a0b.out" max_abs_logit_diff) $(val "$W/a0b.out" rounds)" "$d 2" \
    "RUN_DIR/ and --rounds 2: the same difference, 2 rounds"

# ---- a selector, as init_from takes it ------------------------------------
"$NB" fold pre/seeds=1 --results-dir "$R" >"$W/sel.out" 2>"$W/sel.err"
is "$?" 0 "fold pre/seeds=1 --results-dir R: exit 0"
is "$(val "$W/sel.out" run_dir)" "$R/pre/$(basename "$A1")" "  the run of seed 1"
is "$(val "$W/sel.out" seed)" 1 "  seed 1"
"$NB" fold pre --results-dir "$R" >/dev/null 2>"$W/two.err"
is "$?" 2 "fold pre (two seeds fit): exit 2"
check "  normbench: fold: ... 2 runs of experiment pre match" \
    grep -q "^normbench: fold: $R/pre: pre: 2 runs of experiment pre match (" "$W/two.err"
is "$(sed -n 2p "$W/two.err")" \
    "hint: add KEY=VALUE for a key they differ in: experiment.seeds, or give pre/RUN_ID" \
    "  the hint names the seeds"

# ---- the cnn: convolutions and the hidden linear layer --------------------
sed -e 's/^name = pre$/name = cnn/' -e 's/^arch = mlp$/arch = cnn/' -e '/^widths/d' \
    -e 's/^seeds = 0, 1$/seeds = 0/' -e 's/^epochs = 3$/epochs = 1/' "$W/pre.ini" >"$W/cnn.ini"
"$NB" run "$W/cnn.ini" -q --results-dir "$R" >/dev/null 2>"$W/cnn.err"
rc=$?
is "$rc" 0 "cnn with batch norm: run exits 0"
[ "$rc" -eq 0 ] || show "$W/cnn.err"
"$NB" fold "$(run_of "$R/cnn" 0)" >"$W/cnn.out" 2>&1
is "$?" 0 "fold the cnn: exit 0"
show "$W/cnn.out"
is "$(val "$W/cnn.out" layers_folded)" 5 "  5 layers folded (4 convolutions, the hidden linear layer)"
d=$(val "$W/cnn.out" max_abs_logit_diff)
check "  max abs logit difference < 1e-4 ($d)" holds "$d" 0 'a != "" && a + 0 < 1e-4'

# ---- refusals ---------------------------------------------------------------
one() { # NAME SED-EXPRESSION...: a one-seed variant of pre.ini, run
    name=$1
    shift
    sed -e "s/^name = pre\$/name = $name/" -e 's/^seeds = 0, 1$/seeds = 0/' "$@" "$W/pre.ini" \
        >"$W/$name.ini"
    "$NB" run "$W/$name.ini" -q --results-dir "$R" >/dev/null 2>&1
    run_of "$R/$name" 0
}
P=$(one post -e 's/^\[norm\]$/[model]\nplacement = post\n[norm]/')
"$NB" fold "$P" >"$W/post.out" 2>"$W/post.err"
is "$?" 2 "placement post: exit 2"
is "$(head -n 1 "$W/post.err")" \
    "$P/config.ini:$(line_of "$P" placement): fold: placement = post puts a ReLU between each conv or linear layer and its norm (Conv -> ReLU -> BN): there is nothing to fold the norm into" \
    "  CONFIG:LINE at the placement line, saying why"
is "$(sed -n 2p "$W/post.err")" \
    "hint: folding needs placement = pre (Conv -> BN -> ReLU), where the norm directly follows the layer" \
    "  and a hint"
check "  nothing on stdout" test ! -s "$W/post.out"

G=$(one gn -e 's/^type = batch$/type = group\ngroups = 4/')
"$NB" fold "$G" >/dev/null 2>"$W/gn.err"
is "$?" 2 "group norm: exit 2"
is "$(head -n 1 "$W/gn.err")" \
    "$G/config.ini:$(line_of "$G" type): fold: norm type = group normalizes each sample with its own statistics, computed anew for every input in eval mode too: there are no constants to fold into the weights" \
    "  CONFIG:LINE at the norm type line, saying why"
is "$(sed -n 2p "$W/gn.err")" \
    "hint: fold takes batch norm (type = batch, or lp), whose eval mode uses the running statistics, fixed after training" \
    "  and a hint"

N=$(one none -e 's/^type = batch$/type = none/')
"$NB" fold "$N" >/dev/null 2>"$W/none.err"
is "$?" 2 "norm none: exit 2"
is "$(head -n 1 "$W/none.err")" \
    "$N/config.ini:$(line_of "$N" type): fold: norm type = none: the network has no norm layer to fold" \
    "  CONFIG:LINE: nothing to fold"

U=$(one noweights -e 's/^save_weights = true$/save_weights = false/')
"$NB" fold "$U" >/dev/null 2>"$W/nw.err"
is "$?" 2 "a run without weights.nbw: exit 2"
is "$(head -n 1 "$W/nw.err")" \
    "normbench: fold: $U has no weights.nbw: the run was made without [train] save_weights = true" \
    "  normbench: fold: names the run directory and why"
is "$(sed -n 2p "$W/nw.err")" \
    "hint: run its config again with [train] save_weights = true (a new run, with its own run_id) and fold that run" \
    "  and a hint"

"$NB" fold "$W/nosuch/dir" >/dev/null 2>"$W/nosuch.err"
is "$?" 2 "neither a run directory nor a selector: exit 2"
check "  normbench: fold: PATH: no such run directory, nor a selector" \
    grep -q "^normbench: fold: $W/nosuch/dir: no such run directory, nor a selector (" "$W/nosuch.err"
check "  with a hint" grep -q '^hint: name a run directory' "$W/nosuch.err"
"$NB" fold "$R/pre" >/dev/null 2>"$W/expdir.err"
is "$?" 2 "an experiment's folder: exit 2"
is "$(head -n 1 "$W/expdir.err")" \
    "normbench: fold: $R/pre is not a run directory: it has no config.ini" "  saying so"

"$NB" fold "$A0" -o "$A0/weights.nbw" >/dev/null 2>"$W/self.err"
is "$?" 2 "-o onto the run's own checkpoint: exit 2"
check "  refused, saying why" grep -q "is the run's own checkpoint" "$W/self.err"
is "$(tailsum "$A0/weights.nbw")" "$(sed -n 's/^weights_checksum = //p' "$A0/meta.txt")" \
    "  the run's checkpoint intact (meta.txt's weights_checksum)"

cp -R "$R/pre" "$R/damaged"
D0=$R/damaged/$(basename "$A0")
printf 'X' | dd of="$D0/weights.nbw" bs=1 seek=1000 conv=notrunc 2>/dev/null
"$NB" fold "$D0" >/dev/null 2>"$W/dmg.err"
is "$?" 1 "a damaged checkpoint: exit 1"
check "  normbench: fold: FILE: checksum mismatch" \
    grep -q "^normbench: fold: $D0/weights.nbw: checksum mismatch (stored " "$W/dmg.err"

# ---- usage ---------------------------------------------------------------
"$NB" fold >/dev/null 2>"$W/u1.err"
is "$?" 2 "no argument: exit 2"
is "$(head -n 1 "$W/u1.err")" "normbench: fold: expected one RUN_DIR or SELECTOR" "  saying so"
"$NB" fold "$A0" --rounds 0 >/dev/null 2>"$W/u2.err"
is "$?" 2 "--rounds 0: exit 2"
"$NB" fold --help >"$W/help.out" 2>&1
is "$?" 0 "fold --help: exit 0"
check "  it shows the usage line and the options" sh -c \
    "grep -q '^usage: normbench fold RUN_DIR|SELECTOR' '$W/help.out' && grep -q -- '--rounds N' '$W/help.out'"
"$NB" --help | grep -q '^  fold RUN_DIR|SELECTOR'
is "$?" 0 "normbench --help lists the verb"

echo "1..$n"
[ "$failed" -eq 0 ]
