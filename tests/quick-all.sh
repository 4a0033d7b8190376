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
    # probe_layers: the archive keeps the listed layers' probe rows (and
    # those of no layer) only, the run directories every layer
    layers=$(sed -n 's/^probe_layers *= *//p' "$e")
    if [ -n "$layers" ]; then
        players() { # the layer column's non-empty values, sorted and unique
            { gzip -dc "$1" 2>/dev/null || cat "$1"; } | awk -F, '
                NR == 1 { for (i = 1; i <= NF; i++) if ($i == "layer") l = i; next }
                $l != "" { print $l }' | sort -u
        }
        kept=$(players "$(ls "$Q"/archive/probes.csv* | head -n1)" | tr '\n' ' ')
        extra=$(for l in $kept; do case " $layers " in *" $l "*) ;; *) echo "$l" ;; esac; done)
        check "  probe_layers: the archive keeps only $layers ($kept)" \
            sh -c "[ -n '$kept' ] && [ -z '$extra' ]"
        all=$(awk -F, '
            FNR == 1 { l = 0; for (i = 1; i <= NF; i++) if ($i == "layer") l = i; next }
            l && $l != "" { print $l }' "$R"/quick/"$name"*/*/probes.csv 2>/dev/null |
            sort -u | wc -l)
        check "  the run directories keep every layer ($all)" \
            [ "$all" -gt "$(echo $kept | wc -w)" ]
    fi
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
