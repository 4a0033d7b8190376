#!/bin/sh
# tests/plots.sh - every figure script of plots/ renders its fixture
# (tests/data/plots/KIND.csv, a figure table as normbench writes it) into
# PNG, SVG and PDF, each a non-empty file of the right type; bad
# invocations fail.  TAP; skipped when gnuplot is not installed.
set -u

srcdir=${srcdir:-.}
GP=${GNUPLOT:-gnuplot}
if ! command -v "$GP" >/dev/null 2>&1; then
    echo "1..0 # SKIP gnuplot not installed (apt-get install gnuplot-nox fonts-liberation)"
    exit 0
fi
PLOTS=$srcdir/plots
FIX=$srcdir/tests/data/plots
W=tests/tmp/plots-$$
mkdir -p "$W"

. "$srcdir/tests/taplib.sh"

kinds="curves vs_batch vs_lr landscape ics dist hessian slice1d slice2d errors trace"
echo "1..$((11 * 4 + 10))"
for k in $kinds; do
    for f in png svg pdf; do
        out=$W/$k.$f
        if "$GP" -d -c "$PLOTS/$k.gp" "$FIX/$k.csv" "$out" >"$W/$k.$f.log" 2>&1 && [ -s "$out" ]; then
            pass "$k.gp draws $f ($(wc -c <"$out" | tr -d ' ') bytes)"
        else
            fail "$k.gp draws $f"
            sed 's/^/#   /' "$W/$k.$f.log"
        fi
    done
    # the file types
    png=$(head -c 4 "$W/$k.png" 2>/dev/null | tail -c 3)
    pdf=$(head -c 4 "$W/$k.pdf" 2>/dev/null)
    if [ "$png" = "PNG" ] && [ "$pdf" = "%PDF" ] && grep -q "<svg" "$W/$k.svg" 2>/dev/null; then
        pass "$k: the files are PNG, SVG and PDF"
    else
        fail "$k: the files are PNG, SVG and PDF"
    fi
done

# vs figures: a log y axis where the values span 5x or more (BN's error
# at batch 2 is 10x the rest in wu_he_batch), linear otherwise
if "$GP" -d -c "$PLOTS/vs_batch.gp" "$FIX/vs_batch_wide.csv" "$W/wide.svg" >"$W/wide.log" 2>&1 &&
    grep -q "(log scale)" "$W/wide.svg"; then
    pass "vs_batch.gp: a log y axis for values spanning 10x"
else
    fail "vs_batch.gp: a log y axis for values spanning 10x"
    sed 's/^/#   /' "$W/wide.log"
fi
if grep -q "(log scale)" "$W/vs_batch.svg"; then
    fail "vs_batch.gp: a linear y axis for values within 5x"
else
    pass "vs_batch.gp: a linear y axis for values within 5x"
fi
# a figure's yscale, the third argument, overrides the rule either way
if "$GP" -d -c "$PLOTS/vs_lr.gp" "$FIX/vs_batch_wide.csv" "$W/wide-lin.svg" linear \
    >"$W/wide-lin.log" 2>&1 && [ -s "$W/wide-lin.svg" ] && ! grep -q "(log scale)" "$W/wide-lin.svg"; then
    pass "vs_lr.gp linear: a linear y axis for values spanning 10x"
else
    fail "vs_lr.gp linear: a linear y axis for values spanning 10x"
    sed 's/^/#   /' "$W/wide-lin.log"
fi
if "$GP" -d -c "$PLOTS/vs_batch.gp" "$FIX/vs_batch.csv" "$W/narrow-log.svg" log \
    >"$W/narrow-log.log" 2>&1 && grep -q "(log scale)" "$W/narrow-log.svg"; then
    pass "vs_batch.gp log: a log y axis for values within 5x"
else
    fail "vs_batch.gp log: a log y axis for values within 5x"
    sed 's/^/#   /' "$W/narrow-log.log"
fi

# slice figures name the step of their slices (the table's step column);
# a table of runs whose slice.csv has no step (an empty column) draws too
check "slice1d.gp: the title names the slices' step" grep -q "1-D loss slice at step 100<" "$W/slice1d.svg"
check "slice2d.gp: each panel names its slice's step" grep -q "none bs=32 (n=3) at step 200<" "$W/slice2d.svg"
sed 's/,100,/,,/' "$FIX/slice1d.csv" >"$W/slice1d-nostep.csv"
if "$GP" -d -c "$PLOTS/slice1d.gp" "$W/slice1d-nostep.csv" "$W/nostep.svg" >"$W/nostep.log" 2>&1 &&
    grep -q "1-D loss slice (the last slice of each run)<" "$W/nostep.svg"; then
    pass "slice1d.gp: a table without steps draws, its title without a step"
else
    fail "slice1d.gp: a table without steps draws, its title without a step"
    sed 's/^/#   /' "$W/nostep.log"
fi

# the terminal comes from the suffix: anything else is an error
if "$GP" -d -c "$PLOTS/curves.gp" "$FIX/curves.csv" "$W/x.gif" >"$W/gif.log" 2>&1; then
    fail "an unknown output suffix fails"
else
    pass "an unknown output suffix fails"
fi
if grep -q "must end in .png, .svg or .pdf" "$W/gif.log"; then
    pass "  and says which suffixes work"
else
    fail "  and says which suffixes work"
    sed 's/^/#   /' "$W/gif.log"
fi
if "$GP" -d -c "$PLOTS/vs_batch.gp" >"$W/usage.log" 2>&1; then
    fail "missing arguments fail"
else
    pass "missing arguments fail"
fi
[ $failed -eq 0 ]
