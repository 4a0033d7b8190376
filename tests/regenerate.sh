#!/bin/sh
# tests/regenerate.sh - an experiment's archive (ROOT/NAME/archive/, see
# src/analyze/archive.h): `reproduce --quick` of the quickstart writes it;
# with the run directories gone, `reproduce --no-run`, `plot` and
# `summarize` regenerate every table, figure (CSV and PNG), report.md,
# verdict.txt and index.md byte for byte from it; with the archive gone
# too they refuse, exit non-zero and change no file; an archive with more
# finished runs is never replaced by one with fewer.  TAP.  Everything is written
# under tests/tmp/ of the build tree.
set -u

. "${srcdir:-.}/tests/taplib.sh"
tap_init regenerate
need_nb
have_gnuplot=0
command -v "${GNUPLOT:-gnuplot}" >/dev/null 2>&1 && have_gnuplot=1

R=$W/results
Q=$R/quick/quickstart
A=$Q/archive
S=$W/saved
repro() { "$NB" reproduce "$EXP/quickstart.ini" --quick --results "$R" --progress none "$@"; }

# every file a reader gets from the repository: tables, figures, report,
# verdict, index (and the archive itself)
files() {
    (cd "$Q" && ls tables/*.csv figures/*.csv figures/*.png archive/*.csv* report.md \
        verdict.txt 2>/dev/null)
}
save() {
    rm -rf "$S" && mkdir -p "$S/tables" "$S/figures" "$S/archive"
    for f in $(files); do cp -p "$Q/$f" "$S/$f"; done
    cp -p "$R/quick/index.md" "$S/index.md"
}
# same [PATH...]: every saved file (but those named or under a directory
# named) is byte-identical to the one in place
same() {
    bad=0
    for f in $(cd "$S" && ls tables/* figures/* archive/* report.md verdict.txt); do
        skip=0
        for x in "$@"; do
            case "$f" in "$x" | "$x"/*) skip=1 ;; esac
        done
        [ $skip -eq 1 ] && continue
        cmp -s "$S/$f" "$Q/$f" || { echo "#   differs: $f"; bad=1; }
    done
    case " $* " in
    *" index.md "*) ;;
    *) cmp -s "$S/index.md" "$R/quick/index.md" || { echo "#   differs: index.md"; bad=1; } ;;
    esac
    [ $bad -eq 0 ]
}

# 1. a quick reproduction writes the archive
repro -j 2 >"$W/out1" 2>"$W/err1"
rc=$?
check "reproduce --quick exits 0" [ $rc -eq 0 ]
[ $rc -eq 0 ] || { show "$W/out1"; show "$W/err1"; }
nruns=$(sed -n 's|^runs = [0-9]*/||p' "$Q/verdict.txt")
check "archive/runs.csv has a row per run ($nruns)" \
    [ "$(($(wc -l <"$A/runs.csv") - 1))" -eq "${nruns:-0}" ]
check "  its header: run_id, config, status, seed, the keys, wall_time, meta" \
    grep -Eq '^run_id,config,status,seed,norm.type,(train.batch,)?wall_time,git_revision,' "$A/runs.csv"
check "the metrics are archived" sh -c "ls '$A'/metrics.csv* >/dev/null 2>&1"
check "the probes are archived" sh -c "ls '$A'/probes.csv* >/dev/null 2>&1"
kb=$(du -sk "$A" | cut -f1)
check "the archive is small ($kb KiB)" [ "$kb" -lt 4096 ]
check "the report says when and by what the runs were made" grep -q '^- [0-9]* runs made by normbench' "$Q/report.md"
check "  and on which machine, from the runs' meta" grep -q '^- machine: .*(each run.s meta.txt' "$Q/report.md"
check "  not when the report was written" sh -c "! grep -q 'where this report was written' '$Q/report.md'"
[ $have_gnuplot -eq 1 ] && check "the figures are drawn" [ -s "$Q/figures/curves.png" ]
save
# summarize --long: the long-format tables, run_id and keys on every row
"$NB" summarize "$Q/configs/quickstart.ini" --long "$W/long1" >"$W/out1l" 2>"$W/err1l"
check "summarize --long from the run directories exits 0" [ $? -eq 0 ]
check "  metrics.csv starts run_id, the swept keys, step" \
    grep -Eq '^run_id,norm.type,(train.batch,)?step,' "$W/long1/metrics.csv"
nm=$(tail -n +2 "$W/long1/metrics.csv" | wc -l)
nr=0
for d in "$Q"/*/; do
    [ -f "$d/config.ini" ] && [ -f "$d/metrics.csv" ] && nr=$((nr + $(tail -n +2 "$d/metrics.csv" | wc -l)))
done
check "  with every run's evaluations ($nm rows, $nr in the runs)" [ "$nm" -eq "$nr" -a "$nm" -gt 0 ]
check "  and the same rows as the archive" cmp -s "$W/long1/metrics.csv" "$A/metrics.csv"
check "  and no other file is written" same

# 2. an archive with more finished runs is not replaced by one with fewer
tail -n 1 "$A/runs.csv" | sed 's/^[0-9a-f]*,/ffffffffffffffff,/' >>"$A/runs.csv"
cp -p "$A/runs.csv" "$W/runs17.csv"
repro -j 2 >"$W/out2" 2>"$W/err2"
check "a reproduce with fewer runs than the archive exits 0" [ $? -eq 0 ]
check "  keeps the archive as it is" cmp -s "$W/runs17.csv" "$A/runs.csv"
check "  and says so" grep -q "kept as it is: it has $((nruns + 1)) finished runs, these results $nruns" "$W/err2"
cp -p "$S/archive/runs.csv" "$A/runs.csv"
# runs that failed (error.txt, no DONE: the run directory wins) are no data
k=0
for d in "$Q"/*/; do
    [ -f "$d/DONE" ] && [ $k -lt 2 ] || continue
    mv "$d/DONE" "$d/DONE.saved" && echo "error = made to fail" >"$d/error.txt"
    k=$((k + 1))
done
repro --no-run >"$W/out2b" 2>"$W/err2b"
check "a report with 2 failed runs is written" grep -q "2 failed" "$Q/report.md"
check "  but the archive of finished runs is kept" same tables figures report.md verdict.txt index.md
check "  and says so" grep -q "kept as it is: it has $nruns finished runs, these results $((nruns - 2))" "$W/err2b"
for d in "$Q"/*/; do
    [ -f "$d/DONE.saved" ] && mv "$d/DONE.saved" "$d/DONE" && rm -f "$d/error.txt"
done

# 3. without the run directories: everything again from the archive
mkdir -p "$W/runs"
for d in "$Q"/*/; do
    [ -f "$d/config.ini" ] && mv "$d" "$W/runs/"
done
check "the run directories are gone" [ "$(ls "$W/runs" | wc -l)" -eq "$nruns" ]
repro --no-run >"$W/out3" 2>"$W/err3"
rc=$?
check "reproduce --no-run from the archive exits 0" [ $rc -eq 0 ]
[ $rc -eq 0 ] || show "$W/err3"
for f in $(cd "$S" && ls tables/* figures/* report.md verdict.txt) index.md; do
    g=$Q/$f
    [ "$f" = index.md ] && g=$R/quick/index.md
    check "  $f is byte-identical" cmp -s "$S/$f" "$g"
done
check "  and so is the archive" same
if [ $have_gnuplot -eq 1 ]; then
    "$NB" plot "$EXP/quickstart.ini" --quick --results "$R" >"$W/out4" 2>"$W/err4"
    check "plot from the archive exits 0" [ $? -eq 0 ]
    check "  and draws the same figures" same
else
    pass "# SKIP gnuplot not installed"
    pass "# SKIP gnuplot not installed"
fi
"$NB" summarize "$Q/configs/quickstart.ini" >"$W/out5" 2>"$W/err5"
check "summarize from the archive exits 0" [ $? -eq 0 ]
check "  and writes the same tables" same
"$NB" summarize "$Q/configs/quickstart.ini" --long "$W/long3" >"$W/out5l" 2>"$W/err5l"
check "summarize --long from the archive exits 0" [ $? -eq 0 ]
check "  and writes the same long-format metrics" cmp -s "$W/long1/metrics.csv" "$W/long3/metrics.csv"

# 4. without the archive either: refusals that change nothing
mv "$A" "$W/archive"
repro --no-run >"$W/out6" 2>"$W/err6"
check "reproduce --no-run without runs or archive exits non-zero" [ $? -ne 0 ]
check "  says which runs are missing" grep -q "$nruns of $nruns runs have neither a finished run directory nor an entry in $A" "$W/err6"
check "  and the command that makes them" grep -q "make them with .normbench reproduce quickstart --quick --results $R" "$W/err6"
check "  and leaves every file as it was" same archive
"$NB" plot "$EXP/quickstart.ini" --quick --results "$R" >"$W/out7" 2>"$W/err7"
check "plot without runs or archive exits non-zero" [ $? -ne 0 ]
check "  and leaves every file as it was" same archive
"$NB" summarize "$Q/configs/quickstart.ini" >"$W/out8" 2>"$W/err8"
check "summarize without runs or archive exits non-zero" [ $? -ne 0 ]
check "  names the command that makes the runs" grep -q "make them with .normbench run " "$W/err8"
check "  and leaves every file as it was" same archive
check "no staging directory is left behind" sh -c "! ls -a '$Q' | grep -q staging"

# 5. plot that draws nothing exits non-zero and keeps the figures
mv "$W/archive" "$A"
"$NB" plot "$EXP/quickstart.ini" --quick --results "$R" --plots "$W/no-plots" \
    >"$W/out9" 2>"$W/err9"
check "plot that draws nothing exits non-zero" [ $? -ne 0 ]
check "  says so" grep -q "no figure drawn" "$W/err9"
check "  and leaves every file as it was" same
# the environment main reads and hands down (core/env.h): $GNUPLOT names
# the binary
GNUPLOT=/nonexistent/gnuplot "$NB" plot "$EXP/quickstart.ini" --quick --results "$R" \
    >"$W/out10" 2>"$W/err10"
check "plot with GNUPLOT naming no binary exits non-zero" [ $? -ne 0 ]
check "  says gnuplot is not found" grep -q "gnuplot not found" "$W/err10"
check "  and leaves every file as it was" same

echo "1..$n"
[ $failed -eq 0 ]
