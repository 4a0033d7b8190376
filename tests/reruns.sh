#!/bin/sh
# tests/reruns.sh - an experiment's reruns (src/analyze/rerun.h): the same
# runs made again elsewhere, kept as ROOT/NAME/reruns/LABEL/archive/.
# From a copy of the committed quickstart (6 seeds, a real verdict),
# `reproduce --no-run`: without reruns the report is as before; an
# identical rerun keeps the verdict and shows its own; a rerun whose
# batch-norm and no-norm runs are swapped (every check fails there) makes
# the checks it disagrees on count as inconclusive; a rerun that lacks a
# run leaves no verdict; a rerun without an archive, or with a damaged
# one, is an error that names the file and changes nothing.  TAP.
# Everything is written under tests/tmp/ of the build tree.
set -u

. "${srcdir:-.}/tests/taplib.sh"
tap_init reruns
need_nb
RES=$(cd "$srcdir/results" && pwd)
if [ ! -f "$RES/quickstart/archive/runs.csv" ]; then
    echo "1..0 # SKIP no committed quickstart archive (a distribution tarball)"
    exit 0
fi

R=$W/results
Q=$R/quickstart
mkdir -p "$R"
cp -R "$RES/quickstart" "$R/"
rm -rf "$Q/reruns"
repro() {
    "$NB" reproduce "$EXP/quickstart.ini" --no-run --results "$R" --progress none \
        >"$W/out.$1" 2>"$W/err.$1"
}
keep() { mkdir -p "$W/$1" && cp -p "$Q/report.md" "$Q/verdict.txt" "$R/index.md" "$W/$1/"; }
unchanged() {
    cmp -s "$W/$1/report.md" "$Q/report.md" && cmp -s "$W/$1/verdict.txt" "$Q/verdict.txt" &&
        cmp -s "$W/$1/index.md" "$R/index.md"
}

# 1. no reruns: the report as before
repro base
check "reproduce --no-run of the committed quickstart exits 0" [ $? -eq 0 ]
v0=$(sed -n 's/^verdict = //p' "$Q/verdict.txt")
check "  its verdict is reproduced" [ "$v0" = reproduced ]
check "  the report has no Reruns section" sh -c "! grep -q '^## Reruns' '$Q/report.md'"
check "  verdict.txt has no reruns line" sh -c "! grep -q '^reruns = ' '$Q/verdict.txt'"
check "  the index says - for its reruns" grep -q '^| \[quickstart\].* | 6 | - | none |' "$R/index.md"
keep base

# 2. an identical rerun
mkdir -p "$Q/reruns/same"
cp -R "$Q/archive" "$Q/reruns/same/"
repro same
check "with an identical rerun reproduce exits 0" [ $? -eq 0 ]
check "  the verdict is the same" grep -qx "verdict = $v0" "$Q/verdict.txt"
check "  verdict.txt gives the rerun's own verdict" grep -qx "reruns = same: reproduced 2/2" "$Q/verdict.txt"
check "  the verdict paragraph says every check agrees, and that the rerun is no test of the kernels" \
    grep -q "The same runs were made again (a rerun, \`same\`: reproduced on its own, 2 of 2 checks pass, every metric identical to these runs' (no test of the kernels); see Reruns): every counted check has the same outcome in each\.\$" "$Q/report.md"
check "  the report has a Reruns section" grep -q '^## Reruns' "$Q/report.md"
check "  that says where and how the rerun ran, and that it computed the same numbers" grep -q '^- `same`: 24 runs made by normbench .*; machine: .*BLAS .*On its own: \*\*reproduced\*\*, 2 of 2 counted checks pass\. Every metric value is these runs. own, to the last digit: .* does not test whether the verdict depends on the BLAS kernels\.$' "$Q/report.md"
check "  and gives each check's effect on both" \
    grep -Eq '^\| bn_trains_faster \| (-?[0-9.]+ \[[^]]*\]) \| pass \| \1 \| pass \| \*\*pass\*\* \|$' "$Q/report.md"
check "  the index shows it" grep -q '^| \[quickstart\].* | 6 | same: reproduced 2/2 | none |' "$R/index.md"
for f in tables/runs.csv tables/groups.csv archive/runs.csv; do
    check "  $f is unchanged" cmp -s "$RES/quickstart/$f" "$Q/$f"
done

# 3. a rerun that disagrees: no-norm's runs carry batch norm's data and
# the other way round, seed by seed
F=$Q/reruns/flip/archive
mkdir -p "$F"
map=$(awk -F, 'NR > 1 && ($5 == "none" || $5 == "batch") { id[$4, $5] = $1; s[$4] = 1 }
    END { for (k in s) if (id[k, "none"] != "" && id[k, "batch"] != "")
        printf "s/%s/X%s/g;s/%s/%s/g;s/X%s/%s/g;", id[k, "none"], id[k, "none"],
            id[k, "batch"], id[k, "none"], id[k, "none"], id[k, "batch"] }' "$Q/archive/runs.csv")
check "the swap covers 6 seeds" [ "$(printf '%s' "$map" | tr ';' '\n' | grep -c '^s/X')" -eq 6 ]
for f in runs metrics probes; do
    if [ -f "$Q/archive/$f.csv.gz" ]; then
        gzip -dc "$Q/archive/$f.csv.gz" | sed "$map" >"$F/$f.csv"
    else
        sed "$map" "$Q/archive/$f.csv" >"$F/$f.csv"
    fi
done
repro flip
check "with a disagreeing rerun reproduce exits 0" [ $? -eq 0 ]
check "  the rerun on its own: not reproduced, 0 of 2" grep -q "^reruns = flip: not reproduced 0/2; same: reproduced 2/2$" "$Q/verdict.txt"
check "  the checks it disagrees on count as inconclusive: the verdict is inconclusive" \
    grep -qx "verdict = inconclusive" "$Q/verdict.txt"
check "  and 0 of 2 pass" grep -qx "checks = 0/2" "$Q/verdict.txt"
check "  the central check's effect is still these runs'" \
    grep -qxF "$(grep '^effect = ' "$W/base/verdict.txt")" "$Q/verdict.txt"
check "  the verdict paragraph names them" \
    grep -q "checks whose outcome differs between them count as inconclusive: \`bn_trains_faster\`, \`bn_generalizes\`\.\$" "$Q/report.md"
check "  the checks table says why a passing check counts as inconclusive" \
    grep -q '^| bn_trains_faster (central) |.*| \*\*inconclusive\*\* (pass on these runs, another outcome in a rerun: see Reruns) |$' "$Q/report.md"
check "  the Reruns table has both reruns, in label order" \
    grep -Eq '^\| bn_generalizes \| [^|]* \| pass \| [^|]* \| fail \| [^|]* \| pass \| \*\*inconclusive\*\* \|$' "$Q/report.md"
check "  the index shows both" grep -q '| flip: not reproduced 0/2; same: reproduced 2/2 |' "$R/index.md"
check "  the swapped rerun is not called identical" \
    grep -q '^- `flip`: .*counted checks pass\.$' "$Q/report.md"
check "  nor is the identical one's sameness lost beside it" \
    grep -q '^- `same`: .*does not test whether the verdict depends on the BLAS kernels\.$' "$Q/report.md"
rm -rf "$Q/reruns/flip"

# 3b. a rerun that differs from these runs in one metric value, in its last
# digit, is no longer called identical (the verdict is unaffected)
D=$Q/reruns/same/archive
cp -R "$D" "$W/same-archive"
if [ -f "$D/metrics.csv.gz" ]; then gzip -dc "$D/metrics.csv.gz" >"$D/metrics.csv"; rm "$D/metrics.csv.gz"; fi
cp "$D/metrics.csv" "$W/base-metrics.csv"
awk -F, -v OFS=, 'NR == 2 { n = split($NF, d, ""); $NF = substr($NF, 1, length($NF) - 1) (d[n] == "1" ? "2" : "1") } 1' \
    "$D/metrics.csv" >"$W/m.csv" && mv "$W/m.csv" "$D/metrics.csv"
check "the one-digit change took" sh -c "! cmp -s '$D/metrics.csv' '$W/base-metrics.csv'"
repro digit
check "with a rerun one digit off reproduce exits 0" [ $? -eq 0 ]
check "  the rerun is not called identical" grep -q '^- `same`: .*counted checks pass\.$' "$Q/report.md"
check "  nor in the verdict paragraph" sh -c "! grep -q 'no test of the kernels' '$Q/report.md'"
check "  the verdict is unchanged" grep -qx "verdict = $v0" "$Q/verdict.txt"
rm -rf "$D" && cp -R "$W/same-archive" "$D"

# 4. a rerun that lacks a run: no verdict
P=$Q/reruns/part/archive
mkdir -p "$P"
gone=$(sed -n 2p "$Q/archive/runs.csv" | cut -d, -f1)
for f in runs metrics probes; do
    if [ -f "$Q/archive/$f.csv.gz" ]; then
        gzip -dc "$Q/archive/$f.csv.gz" | grep -v "^$gone," >"$P/$f.csv"
    else
        grep -v "^$gone," "$Q/archive/$f.csv" >"$P/$f.csv"
    fi
done
repro part
check "with a rerun that lacks a run reproduce exits 0" [ $? -eq 0 ]
check "  the verdict is inconclusive" grep -qx "verdict = inconclusive" "$Q/verdict.txt"
check "  the report says why" grep -q "The rerun \`part\` lacks 1 of the 24 runs, so no verdict is drawn\. " "$Q/report.md"
check "  and the Reruns section too" grep -q '^- `part`: .*; 1 of its 24 runs are missing\.$' "$Q/report.md"
rm -rf "$Q/reruns/part"
repro same2
keep same

# 5. errors that change nothing
mkdir -p "$Q/reruns/empty"
repro empty
check "a rerun directory without an archive is an error" [ $? -ne 0 ]
check "  that names the missing archive" grep -q "$Q/reruns/empty/archive.*a rerun needs its runs' archive" "$W/err.empty"
check "  and changes no file" unchanged same
rmdir "$Q/reruns/empty"
mkdir -p "$Q/reruns/bad/archive"
printf 'run_id,config\n"unterminated\n' >"$Q/reruns/bad/archive/runs.csv"
repro bad
check "a damaged rerun archive is an error" [ $? -ne 0 ]
check "  that names the file" grep -q "$Q/reruns/bad/archive/runs.csv" "$W/err.bad"
check "  and changes no file" unchanged same
rm -rf "$Q/reruns/bad"
check "no staging directory is left behind" sh -c "! ls -a '$Q' | grep -q staging"

# 6. the reruns gone: the report is the one without
rm -rf "$Q/reruns"
repro gone
check "with the reruns removed the report, verdict and index are as before" unchanged base

echo "1..$n"
[ $failed -eq 0 ]
