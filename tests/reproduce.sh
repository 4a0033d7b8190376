#!/bin/sh
# tests/reproduce.sh - `normbench reproduce --quick` of the quickstart
# end to end (runs, tables, figures, checks, report, verdict, index), its
# resumption, `plot`, `reproduce --no-run`, and every experiment of
# experiments/ loading and planning its quick runs.  TAP.  Everything is
# written under tests/tmp/ of the build tree.
set -u

. "${srcdir:-.}/tests/taplib.sh"
tap_init reproduce
need_nb
have_gnuplot=0
command -v "${GNUPLOT:-gnuplot}" >/dev/null 2>&1 && have_gnuplot=1

R=$W/results
Q=$R/quick/quickstart
nchecks=$(grep -c '^\[check ' "$EXP/quickstart.ini")

# 1. the quick reproduction, from scratch
"$NB" reproduce "$EXP/quickstart.ini" --quick -j 2 --results "$R" --progress none \
    >"$W/out1" 2>"$W/err1"
rc=$?
check "reproduce --quick exits 0" [ $rc -eq 0 ]
[ $rc -eq 0 ] || { show "$W/out1"; show "$W/err1"; }
check "it prints the verdict" grep -q "^verdict: .*quick run" "$W/out1"
check "it prints where the report is" grep -qx "report:  $Q/report.md" "$W/out1"
check "it prints where the figures are" grep -q "^figures: $Q/figures/" "$W/out1"
check "report.md is written" [ -s "$Q/report.md" ]
check "the report names the claim" grep -q '^\*\*Claim\.\*\*' "$Q/report.md"
check "the report is marked quick" grep -q "Quick run" "$Q/report.md"
check "a quick run (2 seeds) has no verdict" grep -q '^\*\*Verdict: no verdict\*\* (quick run: a smoke test)\. Smoke test: the checks rest on 2 seeds' "$Q/report.md"
check "every check has an effect with a 95% interval" [ "$(grep -Ec '^\| bn_[a-z_]+( \(central\))? \|.*\| -?[0-9.]+ \[-?[0-9.]+, -?[0-9.]+\]' "$Q/report.md")" -eq "$nchecks" ]
check "the test error table gives the test set's binomial standard error (N = eval_samples)" \
    grep -q "^Test-set noise: at the mean error of this table, [0-9.]* %, one run's test error on N = 500 test images has a binomial standard error of [0-9.]* points" "$Q/report.md"
check "the checks were pre-registered before the first run" grep -qx "runs_before = 0" "$Q/preregistration.txt"
check "  every check is registered" [ "$(grep -c '^\[check ' "$Q/preregistration.txt")" -eq "$nchecks" ]
check "  and the report says so" [ "$(grep -c '| pre-registered |' "$Q/report.md")" -eq "$nchecks" ]
check "  and that the experiment file is unchanged since" \
    grep -q "^- pre-registration: .*; the experiment file is unchanged since\$" "$Q/report.md"
check "the report lists every check" [ "$(grep -c '^| bn_' "$Q/report.md")" -eq "$nchecks" ]
check "verdict.txt says quick" grep -qx "quick = true" "$Q/verdict.txt"
check "the quick index lists the experiment" grep -q '\[quickstart\](quickstart/report.md)' "$R/quick/index.md"
check "the index lists the other experiments as not run" grep -q '| not run |' "$R/quick/index.md"
for t in runs groups curves; do
    check "tables/$t.csv is written" [ -s "$Q/tables/$t.csv" ]
done
ng=$(($(wc -l <"$Q/tables/groups.csv") - 1))
check "groups.csv has one row per group ($ng)" [ "$ng" -ge 4 ]
check "every group has 2 seeds" [ "$(grep -c '(n=2)' "$Q/tables/groups.csv")" -eq "$ng" ]
check "the overlay config includes the original" grep -q "^include = .*configs/quickstart.ini" "$Q/configs/quickstart.ini"
check "the overlay applies the quick overrides" grep -qx "train_subset = 1024" "$Q/configs/quickstart.ini"
if [ $have_gnuplot -eq 1 ]; then
    check "figures/curves.png is drawn" [ -s "$Q/figures/curves.png" ]
    check "figures/landscape.png is drawn" [ -s "$Q/figures/landscape.png" ]
    check "the report shows the figures" grep -q '^!\[.*\](figures/curves.png)' "$Q/report.md"
else
    check "without gnuplot the report says why figures are missing" grep -q "gnuplot is not installed" "$Q/report.md"
    pass "# SKIP gnuplot not installed"
    pass "# SKIP gnuplot not installed"
fi
check "the figure data is written" [ -s "$Q/figures/curves.csv" ]
check "the report says how many runs ran at once (-j 2)" \
    grep -q "^- machine: .*; runs at once (-j) 2 (each run's meta.txt" "$Q/report.md"

# 2. again: every run is done, nothing is trained, same verdict
v1=$(sed -n 's/^verdict = //p' "$Q/verdict.txt")
"$NB" reproduce "$EXP/quickstart.ini" --quick -j 2 --results "$R" --progress none \
    >"$W/out2" 2>"$W/err2"
check "a second reproduce exits 0" [ $? -eq 0 ]
check "  and trains nothing" grep -Eq ": ([0-9]+) done, 0 diverged, 0 failed \\(\\1 were done before\\)" "$W/err2"
check "  and reaches the same verdict" [ "$(sed -n 's/^verdict = //p' "$Q/verdict.txt")" = "$v1" ]

# 3. --no-run and plot work from the runs on disk
rm -f "$Q/report.md"
"$NB" reproduce quickstart --quick --no-run --results "$R" --progress none \
    >"$W/out3" 2>"$W/err3" </dev/null
rc=$?
if [ $rc -ne 0 ]; then
    # NAME lookup needs experiments/ in the working directory: use the path
    (cd "$srcdir" && "$NB" reproduce quickstart --quick --no-run --results "$R" \
        --progress none) >"$W/out3" 2>"$W/err3"
    rc=$?
fi
check "reproduce NAME --no-run rewrites the report" [ $rc -eq 0 ] && [ -s "$Q/report.md" ]
check "  naming the experiment the same way however it was given" \
    grep -qF -- "- reproduce with \`normbench reproduce quickstart --quick --results $R\`" "$Q/report.md"
# discussion paragraphs (repeatable, continued lines joined) under their
# own heading; the experiment file includes the real one and adds them
mkdir -p "$W/disc"
printf 'include = %s/quickstart.ini\n[experiment]\ndiscussion = First one,\n  continued.\ndiscussion = Second one.\n' \
    "$EXP" >"$W/disc/quickstart.ini"
"$NB" reproduce "$W/disc/quickstart.ini" --quick --no-run --results "$R" --progress none \
    >"$W/out3b" 2>"$W/err3b"
check "an experiment with discussion paragraphs reports" [ $? -eq 0 ]
check "  under a Discussion heading, after the checks" \
    sh -c "sed -n '/^## Checks/,\$p' '$Q/report.md' | grep -q '^## Discussion'"
check "  one paragraph each, continuation joined" \
    sh -c "grep -A1 -x 'First one, continued.' '$Q/report.md' | tail -1 | grep -qx '' && grep -qx 'Second one.' '$Q/report.md'"
# probe_stats: the tables and the archive keep the listed probe stats
# only, and what reads them (figures, checks) is unchanged; in a copy of
# the results, so the quick runs stay whole for what follows
K=$W/keep
mkdir -p "$K/exp"
cp -R "$R" "$K/results"
keep='landscape.loss_min landscape.loss_max landscape.grad_change_min landscape.grad_change_max landscape.beta_eff landscape.loss0 landscape.grad_norm'
printf 'include = %s/quickstart.ini\n[experiment]\nprobe_stats = %s\n' "$EXP" "$keep" \
    >"$K/exp/quickstart.ini"
"$NB" reproduce "$K/exp/quickstart.ini" --quick --no-run --results "$K/results" --progress none \
    >"$K/out" 2>"$K/err"
check "probe_stats: the report is written" [ $? -eq 0 ]
KQ=$K/results/quick/quickstart
# the probe and stat columns of a probes table (archive or tables/), as
# PROBE.STAT lines, sorted and unique
pstats() {
    { gzip -dc "$1" 2>/dev/null || cat "$1"; } | awk -F, '
        NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "probe") p = i; if ($i == "stat") s = i } next }
        { print $p "." $s }' | sort -u
}
a=$(ls "$KQ"/archive/probes.csv* | head -n1)
is "$(pstats "$a" | tr '\n' ' ')" "$(printf '%s\n' $keep | sort | tr '\n' ' ')" \
    "  the archive keeps exactly the listed stats"
check "  the unfiltered archive had more" \
    test "$(pstats "$(ls "$Q"/archive/probes.csv* | head -n1)" | wc -l)" -gt "$(pstats "$a" | wc -l)"
is "$(pstats "$KQ/tables/probes.csv" | tr '\n' ' ')" \
    "$(printf '%s\n' $keep landscape.loss_range landscape.grad_change_range | sort | tr '\n' ' ')" \
    "  tables/probes.csv: the listed stats and the two derived from them"
same=1
for f in $(cd "$Q" && ls figures/*.csv verdict.txt); do
    cmp -s "$Q/$f" "$KQ/$f" || { same=0; diag "differs: $f"; }
done
check "  figures and verdict as without probe_stats" [ $same -eq 1 ]
check "  the report says what was kept" grep -q "^The tables and the archive keep the probe stats \`landscape.loss_min\`" "$KQ/report.md"
"$NB" reproduce "$K/exp/quickstart.ini" --quick --no-run --results "$K/results" --progress none \
    >"$K/out2" 2>"$K/err2"
check "  regenerating from the kept archive gives the same archive" cmp -s "$a" "$(ls "$KQ"/archive/probes.csv* | head -n1)"
# its errors: FILE:LINE, exit 2
kerr() { # kerr KEY DESCRIPTION MESSAGE VALUE: [experiment] KEY = VALUE fails so
    printf 'include = %s/quickstart.ini\n[experiment]\n%s = %s\n' "$EXP" "$1" "$4" >"$K/bad.ini"
    "$NB" reproduce "$K/bad.ini" --quick --no-run --results "$K/results" >"$K/outb" 2>"$K/errb"
    rc=$?
    check "$1 $2: exit 2 and '$3'" sh -c "[ $rc -eq 2 ] && grep -q \"$3\" '$K/errb'"
    [ $rc -eq 2 ] || show "$K/errb"
}
perr() { kerr probe_stats "$@"; }
perr "naming an unknown stat" "bad.ini:3: probe landscape has no stat 'los_min'" "landscape.los_min"
check "  with a did-you-mean" grep -q "did you mean 'landscape.loss_min'" "$K/errb"
perr "naming a derived stat" "bad.ini:3: probe_stats: 'landscape.loss_range' is not a stat a probe writes" "landscape.loss_range"
check "  with a hint" grep -q "the summary derives it" "$K/errb"
perr "naming a scalar" "bad.ini:3: probe_stats: 'final_test_error' is not a stat a probe writes" "final_test_error"
perr "naming a stat twice" "bad.ini:3: probe_stats: 'landscape.loss0' is listed twice" "landscape.loss0 landscape.loss0"
# probe_layers: rows of no layer (the landscape probe's) are kept whatever
# it lists, so the quickstart's figures and verdict are unchanged
printf 'include = %s/quickstart.ini\n[experiment]\nprobe_layers = conv3 linear1\n' "$EXP" \
    >"$K/exp/layers.ini"
"$NB" reproduce "$K/exp/layers.ini" --quick --no-run --results "$K/results" --progress none \
    >"$K/outl" 2>"$K/errl"
check "probe_layers: the report is written" [ $? -eq 0 ]
same=1
for f in $(cd "$KQ" && ls figures/*.csv); do
    cmp -s "$KQ/$f" "$K/results/quick/layers/$f" || { same=0; diag "differs: $f"; }
done
check "  the rows of no layer are kept: the figures' data unchanged" [ $same -eq 1 ]
check "  the report says what was kept" grep -q "^The tables and the archive keep the probe rows of the layers \`conv3\`, \`linear1\`" "$K/results/quick/layers/report.md"
lerr() { kerr probe_layers "$@"; }
lerr "naming a layer twice" "bad.ini:3: probe_layers: 'conv3' is listed twice" "conv3 linear1 conv3"
lerr "naming none" "bad.ini:3: empty value for 'probe_layers'" ""
# robustness and discussion, written after the runs, are no edit of what
# was registered; anything else is, with the command that shows it
mkdir -p "$W/after/experiments"
ln -s "$EXP/../configs" "$W/after/configs"
sed -e '/^\[experiment\]$/a\
discussion = written after the runs,\
  on two lines' "$EXP/quickstart.ini" >"$W/after/experiments/quickstart.ini"
"$NB" reproduce "$W/after/experiments/quickstart.ini" --quick --no-run --results "$R" --progress none \
    >"$W/out3a" 2>"$W/err3a"
check "an experiment file with a discussion paragraph added reports" [ $? -eq 0 ]
check "  the file is unchanged since but for it" grep -q "^- pre-registration: .*; the experiment file is unchanged since but for its robustness and discussion, written after the runs\$" "$Q/report.md"
check "  the discussion is in the report" grep -qx "written after the runs, on two lines" "$Q/report.md"
sed -i 's/^  on two lines$/  on two lines; and a caption edited/; s/^caption = /caption = (edited) /' "$W/after/experiments/quickstart.ini"
"$NB" reproduce "$W/after/experiments/quickstart.ini" --quick --no-run --results "$R" --progress none \
    >"$W/out3b" 2>"$W/err3b"
rev=$(sed -n 's/^revision = //p' "$Q/preregistration.txt")
check "a caption edited too: the file is edited since, with the git command that shows how" \
    grep -qF "; the experiment file is edited since (captions, notes or checks: see each check's registration; \`git diff $rev -- experiments/quickstart.ini\` shows the edits)" "$Q/report.md"
# a check edited after the runs is post hoc, in the report and the index
mkdir -p "$W/edit"
first=$(sed -n 's/^\[check \(.*\)\]$/\1/p' "$EXP/quickstart.ini" | head -n1)
sed -e '0,/^expect = /s/^expect = /expect = 0 + /' -e "s|^config = \.\./|config = $EXP/../|" \
    "$EXP/quickstart.ini" >"$W/edit/quickstart.ini"
check "(the edited copy differs in one check)" [ "$(diff "$EXP/quickstart.ini" "$W/edit/quickstart.ini" | grep -c '^> expect')" -eq 1 ]
cp "$Q/preregistration.txt" "$W/prereg.before"
"$NB" reproduce "$W/edit/quickstart.ini" --quick --no-run --results "$R" --progress none \
    >"$W/out3c" 2>"$W/err3c"
check "an edited check reports" [ $? -eq 0 ]
check "  marked post hoc in its row" grep -q "^| $first .*| post hoc: changed after the runs | .*(post hoc: not counted) |\$" "$Q/report.md"
check "  and in the verdict line" grep -q "^\*\*Verdict: .*post hoc (reported, not counted): \`$first\`" "$Q/report.md"
check "  and in the index" grep -q "| \`$first\` |" "$R/quick/index.md"
check "  the registration is left as it was" cmp -s "$Q/preregistration.txt" "$W/prereg.before"
# a vs_batch figure with the paper's numbers of a table overlaid
mkdir -p "$W/paper"
printf '%s\n' '[experiment]' 'claim = x' 'source = y' \
    "config = $EXP/../configs/quickstart.ini" \
    '[figure err]' 'kind = vs_batch' 'paper = t' 'paper_label = paper, ImageNet' \
    '[table t]' 'metric = final_test_error' 'rows = norm.type' 'columns = train.batch' \
    'paper = batch: 2=34.7, 128=23.6' 'paper = group: 2=24.1, 128=24.0' \
    '[table p]' 'metric = params' 'rows = norm.type' \
    '[table lp]' 'metric = landscape.beta_eff' 'rows = norm.type' \
    '[figure lpf]' 'kind = vs_lr' 'y = landscape.beta_eff' \
    '[figure lpt]' 'kind = trace' 'y = landscape.beta_eff' 'where = norm.type=batch|none' \
    '[table lq]' 'metric = landscape.loss' 'rows = norm.type' 'columns = param' \
    '[check c]' 'expect = at(final_test_error, norm.type=batch) < 100' >"$W/paper/quickstart.ini"
sed -n '/^\[quick /,/^$/p' "$EXP/quickstart.ini" >>"$W/paper/quickstart.ini"  # the same quick runs
"$NB" reproduce "$W/paper/quickstart.ini" --quick --no-run --results "$R" --progress none --plots "$EXP/../plots" \
    >"$W/out3d" 2>"$W/err3d"
check "a figure with paper = TABLE reports" [ $? -eq 0 ]
check "  its reference series go to NAME.paper.csv" \
    [ "$(sed -n 2p "$Q/figures/err.paper.csv")" = "0,batch (paper; ImageNet),2,34.7" ]
check "  one row per paper number" [ "$(wc -l <"$Q/figures/err.paper.csv")" -eq 5 ]
# params: the trainable parameters of meta.txt, a count written with every digit
check "a table of params gives each norm's parameter count in full" \
    grep -Eq '^\| batch \| [0-9]{6} ± 0\.00 \(n=2\) \|' "$Q/report.md"
# a probe's stat as a table: each run's value at its last probed step
check "a table of a probe stat says what it shows" \
    grep -q '^\*\*lp\*\* - landscape.beta_eff (each run.s value at its last probed step)' "$Q/report.md"
check "  with a value per norm over the 2 seeds" \
    grep -Eq '^\| batch \| [0-9.]+ ± [0-9.]+ \(n=2\) \|$' "$Q/report.md"
check "  columns = param: one column per probe param" \
    grep -q '^| norm.type | param = eta |$' "$Q/report.md"
check "a vs_lr figure of a probe stat: one line per norm" \
    [ "$(grep -c ',landscape.beta_eff,' "$Q/figures/lpf.csv")" -eq 4 ]
check "a trace figure: the stat over training, two lines (sid 0 and 1)" \
    [ "$(cut -d, -f1 "$Q/figures/lpt.csv" | sort -u | tr '\n' ' ')" = "0 1 sid " ]
sed 's/^y = landscape.beta_eff$/y = final_test_error/' "$W/paper/quickstart.ini" >"$W/paper/bad00.ini"
"$NB" reproduce "$W/paper/bad00.ini" --quick --no-run --results "$R" >"$W/out3h" 2>"$W/err3h"
check "a trace figure of a per-run scalar is an error" \
    grep -q "bad00.ini:[0-9]*: figure lpf: .*\|bad00.ini:[0-9]*: figure lpt: kind trace needs y = PROBE.STAT" "$W/err3h"
sed 's/^metric = landscape.beta_eff$/&\npaper = batch=1/' "$W/paper/quickstart.ini" >"$W/paper/bad0.ini"
"$NB" reproduce "$W/paper/bad0.ini" --quick --no-run --results "$R" >"$W/out3g" 2>"$W/err3g"
check "a probe table with paper numbers is an error" \
    grep -q "bad0.ini:[0-9]*: table lp: paper numbers go with a per-run scalar, not a probe's" "$W/err3g"
if [ $have_gnuplot -eq 1 ]; then
    check "  and the figure is drawn" [ -s "$Q/figures/err.png" ]
else
    pass "# SKIP gnuplot not installed"
fi
sed 's/^kind = vs_batch$/kind = curves/' "$W/paper/quickstart.ini" >"$W/paper/bad1.ini"
"$NB" reproduce "$W/paper/bad1.ini" --quick --no-run --results "$R" >"$W/out3e" 2>"$W/err3e"
check "paper = TABLE on a curves figure is an error (exit 2)" [ $? -eq 2 ]
check "  with FILE:LINE" grep -q "bad1.ini:[0-9]*: figure err: paper overlays are for vs_batch and vs_lr figures" "$W/err3e"
sed 's/^paper = t$/paper = nosuch/' "$W/paper/quickstart.ini" >"$W/paper/bad2.ini"
"$NB" reproduce "$W/paper/bad2.ini" --quick --no-run --results "$R" >"$W/out3f" 2>"$W/err3f"
check "paper = TABLE naming no table is an error" grep -q "bad2.ini:[0-9]*: figure err: paper = nosuch names no \[table\]" "$W/err3f"
"$NB" plot "$EXP/quickstart.ini" --quick --results "$R" --format png,svg >"$W/out4" 2>"$W/err4"
check "plot exits 0" [ $? -eq 0 ]
if [ $have_gnuplot -eq 1 ]; then
    check "plot --format png,svg draws both" [ -s "$Q/figures/curves.svg" ]
else
    pass "# SKIP gnuplot not installed"
fi

# 4. errors
"$NB" reproduce no_such_experiment >"$W/out5" 2>"$W/err5"
check "an unknown experiment exits 2" [ $? -eq 2 ]
check "  and says so" grep -q "no experiment 'no_such_experiment'" "$W/err5"
printf '[experiment]\nclaim = x\nsource = y\nconfig = %s/../configs/quickstart.ini\n[check c]\nexpect = mean(final_test_eror) < 1\n' \
    "$EXP" >"$W/bad.ini"
"$NB" reproduce "$W/bad.ini" --results "$R" >"$W/out6" 2>"$W/err6"
check "a bad check exits 2" [ $? -eq 2 ]
check "  with FILE:LINE and a hint" grep -q "bad.ini:6: check c: unknown metric 'final_test_eror'" "$W/err6"
check "  and a did-you-mean" grep -q "did you mean 'final_test_error'" "$W/err6"
# what a figure kind takes (summarize.h's nb_fig_kind_info)
figerr() { # figerr DESCRIPTION MESSAGE FIGURE-LINES...
    d=$1
    msg=$2
    shift 2
    printf '[experiment]\nclaim = x\nsource = y\nconfig = %s/../configs/quickstart.ini\n[figure f]\n' \
        "$EXP" >"$W/fig.ini"
    printf '%s\n' "$@" >>"$W/fig.ini"
    "$NB" reproduce "$W/fig.ini" --results "$R" >"$W/outf" 2>"$W/errf"
    rc=$?
    check "$d: exit 2 and '$msg'" sh -c "[ $rc -eq 2 ] && grep -q \"$msg\" '$W/errf'"
    [ $rc -eq 2 ] || show "$W/errf"
}
figerr "an unknown figure kind" "fig.ini:6: figure f: unknown kind 'vs_btach' (curves, vs_batch, vs_lr, landscape, ics, dist, hessian, slice1d, slice2d, errors, trace)" 'kind = vs_btach'
check "  with a did-you-mean" grep -q "did you mean 'vs_batch'" "$W/errf"
figerr "x on a curves figure" "fig.ini:7: figure f: kind curves takes no x" 'kind = curves' 'x = train.batch'
figerr "y on a landscape figure" "fig.ini:7: figure f: kind landscape takes no y" 'kind = landscape' 'y = final_test_error'
figerr "param on a curves figure" "figure f: param is for kind dist only" 'kind = curves' 'param = in'
figerr "series on a curves figure" "fig.ini:7: figure f: series is for figures with a key on x" 'kind = curves' 'series = norm.type'
figerr "series naming no key" "fig.ini:7: figure f: " 'kind = vs_batch' 'series = nosuchkey'
figerr "a non-numeric x" "fig.ini:7: figure f: x = model.arch is not a numeric key" 'kind = vs_lr' 'x = model.arch'
figerr "a bad yscale" "fig.ini:7: yscale must be auto, linear or log, not 'lin'" 'kind = vs_lr' 'yscale = lin'
figerr "yscale on a curves figure" "fig.ini:7: figure f: yscale is for vs_batch and vs_lr figures" 'kind = curves' 'yscale = log'

# 5. every experiment loads, its configs expand and its quick runs plan:
# plot --quick on no runs gets as far as counting the runs it lacks, and
# refuses (tests/regenerate.sh: the archive)
for e in "$EXP"/*.ini; do
    name=$(basename "$e" .ini)
    "$NB" plot "$e" --quick --results "$W/plan" >"$W/plan-$name.out" 2>"$W/plan-$name.err"
    rc=$?
    check "experiment $name loads and plans (plot --quick on no runs refuses)" \
        sh -c "[ $rc -ne 0 ] && grep -q ': \([0-9]*\) of \1 runs have neither a finished run directory' '$W/plan-$name.err'"
    [ $rc -ne 0 ] || show "$W/plan-$name.err"
done

echo "1..$n"
[ $failed -eq 0 ]
