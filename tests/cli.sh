#!/bin/sh
# tests/cli.sh - the command line's usage errors, as TAP.
#
# Every verb exits 2 on a usage error (a bad option value, an empty path, a
# data directory that does not exist) and says what is wrong; nothing is
# trained or written first.  Everything runs in tests/tmp/ of the build
# tree, so a stray write into the working directory shows.
set -u

. "${srcdir:-.}/tests/taplib.sh"
tap_init cli
need_nb

# usage DESCRIPTION MESSAGE ARGS...: exit status 2, MESSAGE on stderr,
# nothing on stdout, nothing written in the working directory
usage() {
    d=$1
    msg=$2
    shift 2
    mkdir -p "$W/cwd"
    (cd "$W/cwd" && "$NB" "$@" >"$W/out" 2>"$W/err")
    rc=$?
    is "$rc" 2 "$d: exit status 2"
    if grep -qF -- "$msg" "$W/err"; then
        pass "$d: says '$msg'"
    else
        fail "$d: says '$msg'"
        sed 's/^/#   /' "$W/err" | head -n 5
    fi
    is "$(cat "$W/out")$(ls -A "$W/cwd")" "" "$d: no output, nothing written"
    rm -rf "$W/cwd"
}

# ---- option values: the ranges of the config keys ------------------------
usage "train --batch 0" "--batch 0: value 0 is out of range for [train] batch" \
    train --data blobs --batch 0
usage "train --lr -1" "--lr -1: value -1 is out of range for [optim] lr" \
    train --data blobs --lr -1
usage "train --epochs x" "--epochs x: malformed integer 'x'" train --data blobs --epochs x
usage "train --threads 0" "--threads 0: value 0 is out of range for [train] threads" \
    train --data blobs --threads 0
usage "train --seed -1" "--seed -1: value -1 is out of range" train --data blobs --seed -1
usage "train: an extra argument" "unexpected argument 'extra'" train --data blobs extra
usage "train: batch larger than the data" "batch 200 is larger than the training set" \
    train --data blobs --arch mlp --subset 100 --batch 200
usage "bench --steps 5x" "--steps takes a count >= 1, not '5x'" bench --steps 5x
usage "bench --windows 0" "--windows takes a count >= 1, not '0'" bench --windows 0
# bench's table: the parts of a step (bench.h's nb_bench_part) as columns,
# and on each row their shares of the profiled window, adding up to 100 %
"$NB" bench --no-norm-bench --norms none,batch --batches 2 --windows 1 --steps 2 >"$W/bench.out" 2>&1
is "$?" 0 "bench on the cnn at batch 2 exits 0"
is "$(grep '^arch' "$W/bench.out" | tr -s ' ')" "arch norm batch img/s c.gemm c.xfrm norm act pool linear optim other" \
    "  its columns: the parts of a step"
is "$(awk '$1 == "cnn" { s = 0; for (i = 5; i <= NF; i++) s += $i; if (s < 99 || s > 101) bad++; n++ }
    END { print n + 0, bad + 0 }' "$W/bench.out")" "2 0" \
    "  two rows, each row's shares add up to 100 % (+-1 of rounding)"
check "  the conv GEMMs take a share of the cnn's step" \
    sh -c "awk '\$1 == \"cnn\" && \$5 + 0 <= 0 { bad = 1 } END { exit bad }' '$W/bench.out'"
usage "fold --rounds x" "--rounds takes a count 1..1000, not 'x'" fold somerun --rounds x
usage "fold: two runs" "expected one RUN_DIR or SELECTOR" fold a b
usage "fold nosuch (no results)" "fold: results/nosuch: nosuch: experiment nosuch has no results" \
    fold nosuch

# ---- empty paths (an unset variable) -------------------------------------
usage "run --results-dir ''" "--results-dir is an empty string" \
    run "$CONF/test-tiny.ini" -q --results-dir ""
usage "status --results-dir ''" "--results-dir is an empty string" \
    status "$CONF/test-tiny.ini" --results-dir ""
usage "summarize --results-dir ''" "--results-dir is an empty string" \
    summarize "$CONF/test-tiny.ini" --results-dir ""
usage "summarize -o ''" "--out is an empty string" summarize "$CONF/test-tiny.ini" -o ""
usage "summarize --long ''" "--long is an empty string" summarize "$CONF/test-tiny.ini" --long ""
usage "plot --results ''" "--results is an empty string" plot quickstart --results ""
usage "reproduce --plots ''" "--plots is an empty string" reproduce quickstart --plots ""
usage "train --dir ''" "--dir is an empty string" train --dir ""
usage "run ''" "CONFIG is an empty string" run ""
usage "list ''" "CONFIG is an empty string" list ""
usage "status ''" "CONFIG is an empty string" status ""
usage "config --check ''" "CONFIG is an empty string" config --check ""
usage "summarize ''" "CONFIG|DIR is an empty string" summarize ""
usage "reproduce ''" "EXPERIMENT is an empty string" reproduce ""
usage "fold ''" "RUN_DIR|SELECTOR is an empty string" fold ""
usage "fold -o ''" "-o is an empty string" fold somerun -o ""
usage "fold --results-dir ''" "--results-dir is an empty string" fold somerun --results-dir ""

# ---- a data directory that does not exist: an error, never synthetic data
usage "train --dir /nonexistent" "/nonexistent/fashion: no such directory" \
    train --dir /nonexistent/fashion
usage "train --dir /nonexistent --fallback" "/nonexistent/fashion: no such directory" \
    train --dir /nonexistent/fashion --fallback
usage "train --data mnist --dir /nonexistent" "/nonexistent/mnist: no such directory" \
    train --data mnist --dir /nonexistent/mnist

# ---- a combination in which a setting would do nothing: refused ----------
printf '[model]\ndropout = 0.5\ndropout_place = before_norm\n[norm]\ntype = none\n' >"$W/dplace.ini"
usage "config --check: dropout before a norm without a norm" \
    "dplace.ini:3: dropout_place = before_norm with norm type none: there is no norm to put dropout before" \
    config --check "$W/dplace.ini"

# ---- a validation split is evaluated, and taken from the subset ----------
printf '[experiment]\nname = val\nresults_dir = %s\n[model]\narch = mlp\nwidths = 16\n[train]\nbatch = 16\nmax_steps = 8\neval_every = 2\n[optim]\nlr = 0.02\n[data]\nsource = blobs\ntrain_subset = 200\nval_split = 0.25\n' \
    "$W/valres" >"$W/val.ini"
"$NB" run "$W/val.ini" -q --no-summary >/dev/null 2>&1
is "$?" 0 "a run with val_split: exit status 0"
vm=$(ls "$W"/valres/val/*/metrics.csv 2>/dev/null | head -n1)
is "$(head -n1 "$vm" 2>/dev/null)" "step,epoch,lr,train_loss,train_acc,test_loss,test_acc,grad_norm,val_loss,val_acc" \
    "  metrics.csv has val_loss and val_acc"
is "$(awk -F, 'NR > 1 && $9 + 0 > 0 && $10 >= 0 && $10 <= 1' "$vm" 2>/dev/null | wc -l | tr -d ' ')" 4 \
    "  measured at every evaluation"
check "  the validation set is a quarter of the subset" \
    grep -q '^data = blobs train 150 val 50 ' "$(dirname "$vm")/meta.txt"
# the trainable parameters: 784 x 16 + 16 + 16 x 10 + 10 = 12730
check "  meta.txt records the trainable parameters" \
    grep -qx 'params = 12730' "$(dirname "$vm")/meta.txt"
# model selection by validation: selected_test_acc is test_acc at the first
# evaluation with the highest val_acc
"$NB" summarize "$W/val.ini" -o "$W/valtab" >/dev/null 2>&1
is "$?" 0 "  summarize exits 0"
want=$(awk -F, 'NR > 1 && (best == "" || $10 + 0 > best + 0) { best = $10; acc = $7 } END { print acc + 0 }' "$vm")
got=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "selected_test_acc") c = i } NR == 2 { print $c + 0 }' "$W/valtab/runs.csv")
is "$got" "$want" "  selected_test_acc is the test accuracy at the best val_acc"
got=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "params") c = i } NR == 2 { print $c }' "$W/valtab/runs.csv")
is "$got" 12730 "  the summary's params column is meta.txt's"

# meta.txt records $OPENBLAS_CORETYPE, which main reads and hands down
OPENBLAS_CORETYPE=Haswell "$NB" run "$CONF/test-tiny.ini" --index 3 -q --no-summary \
    --results-dir "$W/coretype" >/dev/null 2>&1
check "meta.txt records OPENBLAS_CORETYPE" \
    sh -c "grep -q '^openblas_coretype = Haswell\$' '$W'/coretype/test-tiny/*/meta.txt"

# ---- train: one run of the config keys, with their defaults ---------------
help=$("$NB" config --help)
dbatch=$(printf '%s\n' "$help" | sed -n '/^\[train\]/,/^\[/s/^batch = //p')
dlr=$(printf '%s\n' "$help" | sed -n '/^\[optim\]/,/^\[/s/^lr = //p')
"$NB" train --data blobs --arch mlp --subset 256 --max-steps 1 >/dev/null 2>"$W/tdef.err"
is "$?" 0 "train with the table's defaults: exit status 0"
check "  trains at the config table's batch ($dbatch) and lr ($dlr)" \
    grep -q "batch=$dbatch lr=$dlr " "$W/tdef.err"
"$NB" run "$CONF/test-tiny.ini" --index 3 -q --no-summary --results-dir "$W/tiny" >/dev/null 2>&1
tid=$("$NB" list "$CONF/test-tiny.ini" | sed -n '4p' | cut -f2)
want=$(awk -F, 'END { printf "%.4f", $7 }' "$W/tiny/test-tiny/$tid/metrics.csv" 2>/dev/null)
"$NB" train "$CONF/test-tiny.ini" norm.type=none train.batch=32 experiment.seeds=1 \
    >"$W/ttiny.out" 2>"$W/ttiny.err"
is "$?" 0 "train CONFIG KEY=VALUE...: exit status 0"
is "$(sed -n 's/^final: .* test accuracy \([0-9.]*\) .*/\1/p' "$W/ttiny.out")" "$want" \
    "  the same final test accuracy as run's run of those keys"
"$NB" train --data blobs --arch mlp --subset 64 --max-steps 1 train.batch=16 --batch 32 \
    >/dev/null 2>"$W/tlast.err"
is "$?" 0 "train: a key given twice: exit status 0"
check "  the later value wins" grep -q " batch=32 " "$W/tlast.err"
usage "train KEY=VALUE out of range" "command line:2: value 0 is out of range for [train] batch" \
    train train.batch=0
usage "train an unknown key" "unknown key 'norm.typo'" train norm.typo=1
usage "train a sweep" "the config is a sweep of 12 runs" train "$CONF/test-tiny.ini"
usage "train a list value" "malformed integer '16,32'" train --batch 16,32
usage "train a config that does not exist" "cannot open included file" train /nonexistent/x.ini

# ---- and a good command still trains -------------------------------------
"$NB" train --data blobs --arch mlp --subset 64 --batch 16 --max-steps 2 >"$W/ok.out" 2>"$W/ok.err"
is "$?" 0 "train on blobs: exit status 0"
is "$(grep -c '^final: steps 2 ' "$W/ok.out")" 1 "train on blobs: 2 steps"

# ---- renorm's ramp as trained: "auto" resolved from the run length -------
# 320 steps: the paper's 5k / 40k / 25k of 160k steps are 10 / 80 / 50
printf '[experiment]\nname = rn\nresults_dir = %s\n[model]\narch = mlp\nwidths = 16\n[norm]\ntype = batch\nrenorm = true\n[train]\nbatch = 16\nmax_steps = 320\neval_every = 160\n[data]\nsource = blobs\ntrain_subset = 200\n' \
    "$W/rnres" >"$W/rn.ini"
"$NB" run "$W/rn.ini" -q --no-summary >/dev/null 2>&1
is "$?" 0 "a renorm run with the auto ramp: exit status 0"
check "  meta.txt records the resolved ramp" \
    grep -qx 'renorm_schedule = warmup 10 rmax_steps 80 dmax_steps 50' "$(ls -d "$W"/rnres/rn/*/ | head -n1)meta.txt"

# ---- arms: experiment.arm labels the groups, the rest is determined ------
printf '[experiment]\nname = arms\nresults_dir = %s\nzip = arm, optim.lr, train.batch\narm = small, big\n[model]\narch = mlp\nwidths = 16\n[optim]\nlr = 0.05, 0.2\n[train]\nbatch = 16, 64\nmax_steps = 4\n[data]\nsource = blobs\ntrain_subset = 256\n' \
    "$W/armres" >"$W/arms.ini"
"$NB" run "$W/arms.ini" -q >/dev/null 2>&1
is "$?" 0 "a sweep of two named arms: exit status 0"
"$NB" summarize "$W/arms.ini" -o "$W/armtab" >/dev/null 2>&1
is "$(cut -d, -f2 "$W/armtab/groups.csv" 2>/dev/null | tr '\n' ' ')" "label small big " \
    "  the summary's groups are labelled by the arm alone"

# the two spellings of one momentum are one run (the identity writes a
# Keras momentum as PyTorch's 1 - m): the momentum_conventions twins list
# the same run ids
"$NB" list "$CONF/momentum_conventions.ini" | cut -f2 >"$W/mc_torch.ids"
"$NB" list "$CONF/momentum_conventions_keras.ini" | cut -f2 >"$W/mc_keras.ids"
check "momentum_conventions: the Keras twin lists the PyTorch config's 20 run ids" sh -c "
    test \"\$(wc -l <'$W/mc_torch.ids')\" -eq 20 && cmp -s '$W/mc_torch.ids' '$W/mc_keras.ids'"

echo "1..$n"
[ "$failed" -eq 0 ]
