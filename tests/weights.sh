#!/bin/sh
# tests/weights.sh - weight checkpoints end to end, as TAP: experiment A
# trains an mlp with batch norm on the synthetic blobs over two seeds with
# [train] save_weights = true; experiment B starts from A ([model]
# init_from = A) with its batch norm frozen and a learning rate of 1e-30,
# so that B's first evaluation must equal the final evaluation of the A
# run it loaded, bit for bit: it does for each seed, with the seed's own
# run (meta.txt's init_from_run_id and init_from_checksum say which).  A
# missing source experiment is refused before anything runs (run and
# reproduce, exit 2); a source without weights, a damaged checkpoint, an
# ambiguous selector or another architecture fail their runs alone, with
# the reason in error.txt; a run from A with no steps is one evaluation of
# A's weights (without init_from, no steps is refused); run_ids of configs
# without the new keys are unchanged.  Everything is written under
# tests/tmp/ of the build tree.
set -u

. "${srcdir:-.}/tests/taplib.sh"
tap_init weights
R=$W/results
need_nb

# the run directory of seed S in experiment folder DIR
run_of() { dirname "$(grep -l "^seed = $2\$" "$1"/*/meta.txt)"; }
# meta.txt's KEY of run directory DIR
meta() { sed -n "s/^$2 = //p" "$1/meta.txt"; }
# test_loss,test_acc of line N (a number, or $ for the last) of DIR's metrics.csv
evalrow() { sed -n "${2}p" "$1/metrics.csv" | cut -d, -f6,7; }
# the checksum at the end of a checkpoint, as 16 hex digits
tailsum() {
    size=$(wc -c <"$1" | tr -d ' ')
    od -An -tx1 -j $((size - 8)) -N 8 "$1" | tr -s ' \n' ' ' |
        awk '{ for (i = NF; i > 0; i--) printf "%s", $i; print "" }'
}

# ---- A: two seeds, weights saved -----------------------------------------
cat >"$W/pre.ini" <<EOF
[experiment]
name = pre
seeds = 0, 1
[model]
arch = mlp
widths = 16
[norm]
type = batch
[optim]
lr = 0.05
[train]
batch = 16
epochs = 2
eval_every = 4
eval_samples = 200
save_weights = true
[data]
source = blobs
train_subset = 128
EOF
"$NB" run "$W/pre.ini" -q --results-dir "$R" >"$W/pre.out" 2>"$W/pre.err"
rc=$?
is "$rc" 0 "A (save_weights = true): run exits 0"
[ "$rc" -eq 0 ] || show "$W/pre.err"
A0=$(run_of "$R/pre" 0)
A1=$(run_of "$R/pre" 1)
check "A: every done run has weights.nbw" test -f "$A0/weights.nbw" -a -f "$A1/weights.nbw"
check "A: no temporary file left" sh -c "! ls '$R'/pre/*/weights.nbw.tmp.* >/dev/null 2>&1"
is "$(meta "$A0" weights_checksum)" "$(tailsum "$A0/weights.nbw")" \
    "A: meta.txt's weights_checksum is the file's checksum"
is "$(od -An -c -N 4 "$A0/weights.nbw" | tr -d ' ')" '211NBW' "A: the file starts with the magic"
a0=$(evalrow "$A0" '$')
a1=$(evalrow "$A1" '$')
check "A: the two seeds end differently ($a0 / $a1)" [ "$a0" != "$a1" ]

# ---- E: from A with no steps: one evaluation of the loaded weights -------
cat >"$W/evalonly.ini" <<EOF
include = $W/pre.ini
[experiment]
name = evalonly
[model]
init_from = pre
[train]
save_weights = false
epochs = 0
max_steps = 0
EOF
"$NB" run "$W/evalonly.ini" -q --results-dir "$R" >"$W/evalonly.out" 2>"$W/evalonly.err"
rc=$?
is "$rc" 0 "E (init_from, epochs = max_steps = 0): run exits 0"
[ "$rc" -eq 0 ] || show "$W/evalonly.err"
for s in 0 1; do
    A=$(run_of "$R/pre" $s)
    E=$(run_of "$R/evalonly" $s)
    is "$(sed 1d "$E/metrics.csv" | wc -l | tr -d ' ')" 1 "E seed $s: one evaluation"
    is "$(evalrow "$E" 2)" "$(evalrow "$A" '$')" \
        "E seed $s: at step 0, A's final test loss and accuracy"
done
sed -e '/^init_from/d' -e 's/^name = evalonly$/name = noinit/' "$W/evalonly.ini" >"$W/noinit.ini"
"$NB" run "$W/noinit.ini" -q --results-dir "$R" >"$W/noinit.out" 2>"$W/noinit.err"
rc=$?
is "$rc" 2 "no steps without init_from: refused (exit 2)"
check "  saying there is nothing to train, with the hint" \
    sh -c "grep -q 'nothing to train' '$W/noinit.err' && grep -q 'init_from, a run of no steps' '$W/noinit.err'"

# ---- B: from A, nothing learnt: B's evaluations are A's final one --------
cat >"$W/fine.ini" <<EOF
include = $W/pre.ini
[experiment]
name = fine
[model]
init_from = pre
[norm]
frozen = true
frozen_from = 0
[optim]
lr = 1e-30
[train]
save_weights = false
epochs = 1
EOF
"$NB" run "$W/fine.ini" -q --results-dir "$R" >"$W/fine.out" 2>"$W/fine.err"
rc=$?
is "$rc" 0 "B (init_from = pre): run exits 0"
[ "$rc" -eq 0 ] || show "$W/fine.err"
for s in 0 1; do
    A=$(run_of "$R/pre" $s)
    B=$(run_of "$R/fine" $s)
    is "$(meta "$B" init_from_experiment)" pre "B seed $s: meta.txt names the source experiment"
    is "$(meta "$B" init_from_run_id)" "$(basename "$A")" "B seed $s: ... and A's run of seed $s"
    is "$(meta "$B" init_from_checksum)" "$(meta "$A" weights_checksum)" \
        "B seed $s: ... and the checksum of the file it loaded"
    is "$(evalrow "$B" 2)" "$(evalrow "$A" '$')" \
        "B seed $s: its first evaluation is A seed $s's final one, bit for bit"
done
check "B: no weights of its own (save_weights = false)" \
    sh -c "! ls '$R'/fine/*/weights.nbw >/dev/null 2>&1"

# a named seed: every run of B2 starts from A's seed 1
sed -e 's/^name = fine$/name = fine1/' -e 's|^init_from = pre$|init_from = pre/seeds=1|' \
    "$W/fine.ini" >"$W/fine1.ini"
"$NB" run "$W/fine1.ini" -q --results-dir "$R" >/dev/null 2>&1
is "$?" 0 "init_from = pre/seeds=1: run exits 0"
is "$(cat "$R"/fine1/*/meta.txt | sed -n 's/^init_from_run_id = //p' | sort -u)" \
    "$(basename "$A1")" "  both seeds start from A's seed 1"
# a named run
sed -e 's/^name = fine$/name = fine2/' -e "s|^init_from = pre\$|init_from = pre/$(basename "$A0")|" \
    "$W/fine.ini" >"$W/fine2.ini"
"$NB" run "$W/fine2.ini" -q --results-dir "$R" >/dev/null 2>&1
is "$?" 0 "init_from = pre/RUN_ID: run exits 0"
is "$(cat "$R"/fine2/*/meta.txt | sed -n 's/^init_from_run_id = //p' | sort -u)" \
    "$(basename "$A0")" "  both seeds start from that run"

# ---- a missing source: refused up front, nothing run --------------------
sed -e 's/^name = fine$/name = orphan/' -e 's|^init_from = pre$|init_from = nosuch|' \
    "$W/fine.ini" >"$W/orphan.ini"
"$NB" run "$W/orphan.ini" -q --results-dir "$R" >"$W/orphan.out" 2>"$W/orphan.err"
is "$?" 2 "init_from = nosuch (no such experiment): run exits 2"
is "$(head -n 1 "$W/orphan.err")" \
    "$W/orphan.ini:5: init_from = nosuch: experiment nosuch has no results ($R/nosuch does not exist)" \
    "  FILE:LINE: names the experiment and where it looked"
is "$(sed -n 2p "$W/orphan.err")" \
    "hint: run \`normbench reproduce nosuch\` first (or \`normbench run\` on its config), with the same results directory" \
    "  the hint says what to run first"
check "  nothing ran" test ! -e "$R/orphan"
cat >"$W/orphan-exp.ini" <<EOF
[experiment]
claim = weights carry over
source = tests/weights.sh
config = $W/pre.ini, $W/orphan.ini
EOF
"$NB" reproduce "$W/orphan-exp.ini" --results "$W/rr" --progress none >"$W/rr.out" 2>"$W/rr.err"
is "$?" 2 "reproduce with an init_from naming no experiment: exits 2"
check "  before running anything (not even its first config)" test ! -e "$W/rr/pre"
cat >"$W/chain-exp.ini" <<EOF
[experiment]
claim = weights carry over
source = tests/weights.sh
config = $W/pre.ini, $W/fine.ini
EOF
"$NB" reproduce "$W/chain-exp.ini" --results "$W/rc" --progress none >"$W/rc.out" 2>"$W/rc.err"
rc=$?
is "$rc" 0 "reproduce of [pre, fine]: fine's source is made by the experiment's first config"
[ "$rc" -eq 0 ] || show "$W/rc.err"
is "$(cat "$W"/rc/fine/*/DONE | grep -c '^status = done')" 2 "  both fine runs done"

# ---- sources that fail their runs alone ----------------------------------
# an experiment without weights
sed -e 's/^name = pre$/name = noweights/' -e 's/^save_weights = true$/save_weights = false/' \
    "$W/pre.ini" >"$W/noweights.ini"
"$NB" run "$W/noweights.ini" -q --results-dir "$R" >/dev/null 2>&1
sed -e 's/^name = fine$/name = from-noweights/' -e 's|^init_from = pre$|init_from = noweights|' \
    "$W/fine.ini" >"$W/from-noweights.ini"
"$NB" run "$W/from-noweights.ini" -q --results-dir "$R" >"$W/fnw.out" 2>&1
is "$?" 1 "a source experiment without weights: run exits 1 (its runs failed)"
E=$(ls "$R"/from-noweights/*/error.txt | head -n 1)
is "$(sed -n 's/^error = //p' "$E")" \
    "$R/noweights: init_from = noweights: 0 runs of experiment noweights match: none of its 2 done runs has a weights.nbw" \
    "  error.txt: names the experiment, the selector and how many matched"
is "$(sed -n 's/^hint = //p' "$E")" "run noweights with [train] save_weights = true" "  and a hint"
# a damaged checkpoint fails its run; the other seed's run goes on
cp -R "$R/pre" "$R/damaged"
D0=$(run_of "$R/damaged" 0)
printf 'X' | dd of="$D0/weights.nbw" bs=1 seek=1000 conv=notrunc 2>/dev/null
sed -e 's/^name = fine$/name = from-damaged/' -e 's|^init_from = pre$|init_from = damaged|' \
    "$W/fine.ini" >"$W/from-damaged.ini"
"$NB" run "$W/from-damaged.ini" -q --results-dir "$R" >"$W/fd.out" 2>&1
is "$?" 1 "a damaged checkpoint: run exits 1"
is "$(cat "$R"/from-damaged/*/DONE 2>/dev/null | grep -c '^status = done')" 1 \
    "  the run of the other seed is done"
E=$(ls "$R"/from-damaged/*/error.txt)
check "  error.txt names the file and says checksum mismatch" \
    grep -q "^error = $D0/weights.nbw: checksum mismatch (stored " "$E"
# another architecture
sed -e 's/^name = fine$/name = wider/' -e 's/^\[norm\]$/[model]\nwidths = 24\n[norm]/' \
    "$W/fine.ini" >"$W/wider.ini"
"$NB" run "$W/wider.ini" -q --results-dir "$R" >"$W/wider.out" 2>&1
is "$?" 1 "a checkpoint of another architecture: run exits 1"
E=$(ls "$R"/wider/*/error.txt | head -n 1)
check "  error.txt: layout mismatch, naming the file and the tensor" \
    grep -q "^error = $R/pre/[0-9a-f]*/weights.nbw: layout mismatch: parameter tensor 0 is layer 0 (linear) weight of 12544 values in the checkpoint, layer 0 (linear) weight of 18816 values in the model" "$E"
# several matches
sed -e 's/^name = pre$/name = twolr/' -e 's/^lr = 0.05$/lr = 0.05, 0.1/' -e 's/^seeds = 0, 1$/seeds = 0/' \
    "$W/pre.ini" >"$W/twolr.ini"
"$NB" run "$W/twolr.ini" -q --results-dir "$R" >/dev/null 2>&1
sed -e 's/^name = fine$/name = from-twolr/' -e 's|^init_from = pre$|init_from = twolr|' \
    -e 's/^lr = 1e-30$/lr = 1e-30\n[experiment]\nseeds = 0/' "$W/fine.ini" >"$W/from-twolr.ini"
"$NB" run "$W/from-twolr.ini" -q --results-dir "$R" >/dev/null 2>&1
is "$?" 1 "a selector that two runs match: run exits 1"
E=$(ls "$R"/from-twolr/*/error.txt)
check "  error.txt: 2 runs match" grep -q '^error = .*: init_from = twolr: 2 runs of experiment twolr match (' "$E"
is "$(sed -n 's/^hint = //p' "$E")" "add KEY=VALUE for a key they differ in: optim.lr, or give twolr/RUN_ID" \
    "  the hint names the key they differ in"
sed -i 's|^init_from = twolr$|init_from = twolr/lr=0.1|' "$W/from-twolr.ini"
"$NB" run "$W/from-twolr.ini" -q --results-dir "$R" >/dev/null 2>&1
is "$?" 0 "  with init_from = twolr/lr=0.1: done"

# ---- the train verb has no run directories ---------------------------------
"$NB" train model.init_from=pre data.source=blobs >/dev/null 2>"$W/train.err"
is "$?" 2 "train with init_from: exit 2 (it has no run directories to take weights from)"
is "$(head -n 1 "$W/train.err")" \
    "command line:2: train: init_from = pre takes its weights from the run directories of \`normbench run\`, which train does not use" \
    "  the message says why"

# ---- run_ids of configs without the new keys: unchanged -------------------
"$NB" list "$CONF/test-tiny.ini" >"$W/ids1"
printf 'include = %s/test-tiny.ini\n[model]\ninit_from =\n[train]\nsave_weights = false\n' "$CONF" \
    >"$W/tiny-explicit.ini"
"$NB" list "$W/tiny-explicit.ini" >"$W/ids2"
check "the new keys at their defaults: the same run_ids as without them" cmp -s "$W/ids1" "$W/ids2"

echo "1..$n"
[ "$failed" -eq 0 ]
