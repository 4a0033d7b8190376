#!/bin/sh
# tests/committed.sh - every committed report regenerates from the
# repository: for each experiment with a committed archive under
# results/, `reproduce --no-run` into a copy of results/ rewrites the same
# tables, figures, archive and report (the name of the results directory
# and the "reproduce with" line aside).  TAP.  Everything is written under tests/tmp/
# of the build tree.
set -u

. "${srcdir:-.}/tests/taplib.sh"
tap_init committed
RES=$(cd "$srcdir/results" && pwd)
need_nb
have_gnuplot=0
command -v "${GNUPLOT:-gnuplot}" >/dev/null 2>&1 && have_gnuplot=1

for a in "$RES"/*/archive/runs.csv*; do
    [ -f "$a" ] || continue
    name=$(basename "$(dirname "$(dirname "$a")")")
    [ -f "$EXP/$name.ini" ] || continue
    R=$W/$name
    mkdir -p "$R"
    cp -R "$RES/$name" "$R/"
    "$NB" reproduce "$EXP/$name.ini" --no-run --results "$R" --progress none \
        >"$W/$name.out" 2>"$W/$name.err"
    check "$name: reproduce --no-run from the committed archive exits 0" [ $? -eq 0 ]
    bad=""
    for f in $(cd "$RES/$name" && find tables archive -type f) report.md verdict.txt; do
        case "$f" in
        report.md)
            # the copy names its own results directory where the
            # committed report names results/
            grep -v "^- reproduce with" "$RES/$name/$f" >"$W/a.md"
            grep -v "^- reproduce with" "$R/$name/$f" | sed "s|$R|results|g" >"$W/b.md"
            cmp -s "$W/a.md" "$W/b.md" || bad="$bad $f" ;;
        *) cmp -s "$RES/$name/$f" "$R/$name/$f" || bad="$bad $f" ;;
        esac
    done
    check "  its tables, archive, verdict and report are byte-identical${bad:+ (differ:$bad)}" [ -z "$bad" ]
    if [ $have_gnuplot -eq 1 ]; then
        badf=""
        for f in $(cd "$RES/$name" && ls figures/*.png figures/*.csv 2>/dev/null); do
            cmp -s "$RES/$name/$f" "$R/$name/$f" || badf="$badf $f"
        done
        check "  and so are its figures${badf:+ (differ:$badf)}" [ -z "$badf" ]
    else
        pass "# SKIP gnuplot not installed"
    fi
done

echo "1..$n"
[ $failed -eq 0 ]
