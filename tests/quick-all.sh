#!/bin/sh
# tests/quick-all.sh - `normbench reproduce --quick` of every experiment of
# experiments/ but the quickstart (tests/reproduce.sh runs that one and
# much more): each runs end to end, writes its report marked as a smoke
# test with every check evaluated, and its figures.  TAP.  Everything is
# written under tests/tmp/ of the build tree.
set -u

. "${srcdir:-.}/tests/taplib.sh"
tap_init quick-all
need_nb
have_gnuplot=0
command -v "${GNUPLOT:-gnuplot}" >/dev/null 2>&1 && have_gnuplot=1

R=$W/results
for e in "$EXP"/*.ini; do
    name=$(basename "$e" .ini)
    [ "$name" = quickstart ] && continue
    Q=$R/quick/$name
    t0=$(date +%s)
    "$NB" reproduce "$e" --quick -j 2 --results "$R" --progress none >"$W/$name.out" 2>"$W/$name.err"
    rc=$?
    t1=$(date +%s)
    check "$name: reproduce --quick exits 0 ($((t1 - t0)) s)" [ $rc -eq 0 ]
    [ $rc -eq 0 ] || { show "$W/$name.out"; show "$W/$name.err"; }
    check "  its report is a smoke test, no verdict" \
        grep -q '^\*\*Verdict: no verdict\*\* (quick run: a smoke test)' "$Q/report.md"
    nchecks=$(grep -c '^\[check ' "$e")
    nrows=$(grep -Ec '^\| [a-z0-9_]+( \(central\))? \| .*\| -?[0-9.e+-]+ \[-?[0-9.e+-]+, -?[0-9.e+-]+\]' "$Q/report.md")
    check "  every check ($nchecks) has an effect with an interval" [ "$nrows" -eq "$nchecks" ]
    [ "$nrows" -eq "$nchecks" ] || grep '^| ' "$Q/report.md" | sed 's/^/#   /' | head -20
    nfigs=$(grep -c '^\[figure ' "$e")
    if [ $have_gnuplot -eq 1 ]; then
        npng=$(ls "$Q"/figures/*.png 2>/dev/null | wc -l)
        check "  its figures are drawn ($npng png, $nfigs figures)" [ "$npng" -ge "$nfigs" ]
    else
        pass "# SKIP gnuplot not installed"
    fi
done

echo "1..$n"
[ $failed -eq 0 ]
