#!/bin/sh
# tests/pins.sh - what a refactoring must not change, pinned (issue 13's
# safety rails), as TAP:
#
#   1. `normbench config --help` byte for byte (tests/data/pins/config-help.txt):
#      every key, its default, range and doc, and their order, which is the
#      order of the canonical text a run_id hashes;
#   2. the run_id of every committed experiment's runs: each run_id in
#      results/NAME/archive/runs.csv is one that `normbench list` of its
#      config gives today (a run whose id changed would be run again and
#      its committed result orphaned);
#   3. a tiny sweep's metrics (configs/test-tiny.ini, 12 runs on the
#      synthetic blobs): the same run_ids, steps and columns, every value
#      within a relative 1e-4 of tests/data/pins/test-tiny-metrics.csv
#      (OpenBLAS's AVX2 and AVX-512 kernels differ by about 4e-7; a change
#      in behaviour moves them by far more);
#   4. a tiny cnn with batch norm on blobs (tests/data/pins/cnn-metrics.csv:
#      its run_id, then its metrics.csv), within the same tolerance.
#
# When a change is meant to alter one of them (a new key, a new metric),
# regenerate the pin in the same commit and say so:
#   normbench config --help >tests/data/pins/config-help.txt
#   normbench run configs/test-tiny.ini -q --results-dir /tmp/p &&
#   normbench summarize configs/test-tiny.ini --results-dir /tmp/p --long /tmp/p/long &&
#   cp /tmp/p/long/metrics.csv tests/data/pins/test-tiny-metrics.csv
set -u

. "${srcdir:-.}/tests/taplib.sh"
tap_init pins
S=$(cd "$srcdir" && pwd)
P=$S/tests/data/pins
need_nb

# 1. config --help
"$NB" config --help >"$W/help.txt" 2>&1
check "config --help exits 0" [ $? -eq 0 ]
if cmp -s "$P/config-help.txt" "$W/help.txt"; then
    pass "config --help is byte-identical to the pin"
else
    fail "config --help is byte-identical to the pin"
    diff "$P/config-help.txt" "$W/help.txt" | head -n 20 | sed 's/^/#   /'
fi

# 2. committed run_ids
found=0
for runs in "$S"/results/*/archive/runs.csv; do
    [ -f "$runs" ] || continue
    exp=$(basename "$(dirname "$(dirname "$runs")")")
    for cfg in $(awk -F, 'NR > 1 { print $2 }' "$runs" | sort -u); do
        found=1
        conf=$S/configs/$cfg.ini
        if [ ! -f "$conf" ]; then
            fail "$exp: the config of its runs, configs/$cfg.ini, exists"
            continue
        fi
        "$NB" list "$conf" 2>/dev/null | cut -f2 | sort >"$W/ids"
        awk -F, -v c="$cfg" 'NR > 1 && $2 == c { print $1 }' "$runs" | sort >"$W/want"
        k=$(wc -l <"$W/want" | tr -d ' ')
        lost=$(comm -23 "$W/want" "$W/ids" | wc -l | tr -d ' ')
        check "$exp: the $k committed run_ids of $cfg are the ones list gives ($lost lost)" \
            [ "$lost" -eq 0 -a "$k" -gt 0 ]
    done
done
[ $found -eq 1 ] || pass "# SKIP no committed archive (a distribution tarball)"

# 3. a tiny sweep's metrics
"$NB" run "$S/configs/test-tiny.ini" -j 1 -q --results-dir "$W/r" >/dev/null 2>"$W/run.err"
check "the tiny sweep runs" [ $? -eq 0 ]
"$NB" summarize "$S/configs/test-tiny.ini" --results-dir "$W/r" --long "$W/long" >/dev/null 2>&1
check "  and summarizes" [ -f "$W/long/metrics.csv" ]
check "  with the pinned header" \
    [ "$(head -n 1 "$W/long/metrics.csv")" = "$(head -n 1 "$P/test-tiny-metrics.csv")" ]
check "  the pinned rows (run_id, keys, step, epoch)" \
    [ "$(cut -d, -f1-5 "$W/long/metrics.csv")" = "$(cut -d, -f1-5 "$P/test-tiny-metrics.csv")" ]
paste -d '\n' "$P/test-tiny-metrics.csv" "$W/long/metrics.csv" | awk -F, '
    NR % 2 == 1 { split($0, want, ","); next }
    NR > 2 {
        for (i = 6; i <= NF; i++) {
            a = want[i] + 0; b = $i + 0; d = a - b; if (d < 0) d = -d
            s = a < 0 ? -a : a; if (s < 1e-12) s = 1e-12
            if (d / s > m) { m = d / s; where = "row " (NR / 2) " column " i }
        }
    }
    END { printf "# largest relative difference %.3g (%s)\n", m, where; exit m <= 1e-4 ? 0 : 1 }
' >"$W/cmp.out"
rc=$?
cat "$W/cmp.out"
check "  every value within a relative 1e-4 of the pin" [ $rc -eq 0 ]

# 4. a tiny cnn with batch norm (convolutions by im2col and Winograd, the
# norm's forward and backward): its metrics within the same tolerance
printf '[experiment]\nname = cnnpin\n[model]\narch = cnn\n[norm]\ntype = batch\n[optim]\nlr = 0.02\n[train]\nbatch = 16\nmax_steps = 6\neval_every = 3\neval_samples = 100\n[data]\nsource = blobs\ntrain_subset = 128\n' >"$W/cnnpin.ini"
"$NB" run "$W/cnnpin.ini" -q --results-dir "$W/rc" >/dev/null 2>&1
check "the tiny cnn runs" [ $? -eq 0 ]
got=$(ls "$W"/rc/cnnpin/*/metrics.csv 2>/dev/null | head -n 1)
check "  under its pinned run_id" [ "$(basename "$(dirname "${got:-x/x}")")" = "$(sed -n 1p "$P/cnn-metrics.csv")" ]
check "  with the pinned steps" \
    [ "$(cut -d, -f1-2 "${got:-/dev/null}")" = "$(tail -n +2 "$P/cnn-metrics.csv" | cut -d, -f1-2)" ]
tail -n +2 "$P/cnn-metrics.csv" | paste -d '\n' - "${got:-/dev/null}" | awk -F, '
    NR % 2 == 1 { split($0, want, ","); next }
    NR > 2 {
        for (i = 3; i <= NF; i++) {
            a = want[i] + 0; b = $i + 0; d = a - b; if (d < 0) d = -d
            s = a < 0 ? -a : a; if (s < 1e-12) s = 1e-12
            if (d / s > m) { m = d / s; where = "row " (NR / 2) " column " i }
        }
    }
    END { printf "# cnn: largest relative difference %.3g (%s)\n", m, where; exit m <= 1e-4 ? 0 : 1 }
' >"$W/cmpc.out"
rc=$?
cat "$W/cmpc.out"
check "  every value within a relative 1e-4 of the pin" [ $rc -eq 0 ]

echo "1..$n"
[ "$failed" -eq 0 ]
