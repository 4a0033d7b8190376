#!/bin/sh
# tests/fuzz/run.sh [SECONDS] [TARGET...] - builds the libFuzzer targets
# (tests/fuzz/fuzz_TARGET.c; TARGET: ini idx cifar check, all by default)
# with clang, AddressSanitizer and UndefinedBehaviorSanitizer, and runs
# each for SECONDS (default 60) from its seed corpus tests/fuzz/corpus/TARGET.
#
# The build is a separate configure of this source tree with CC=clang in
# $FUZZ_BUILD (default ./build-fuzz): the library is compiled from its
# sources with the sanitizers there, never taken from the gcc build.  New
# inputs go to $FUZZ_BUILD/corpus/TARGET (kept between runs, so later runs
# go on from there), crashes, leaks, timeouts and out-of-memory inputs to
# $FUZZ_BUILD/crashes/TARGET/, the fuzzer's output to $FUZZ_BUILD/logs/.
# Prints per target: the seconds it ran, executions, executions per
# second, new corpus inputs, crashes.  Exit status 1 when anything crashed, 77 without clang.
# tests/fuzz/TARGET.dict, when there is one, is the target's dictionary.
# Extra libFuzzer options: FUZZ_FLAGS; another clang: FUZZ_CC.
# Not part of `make check` (`make fuzz FUZZ_SECONDS=60` calls this).
set -eu

secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-ini idx cifar check}
case $secs in ''|*[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2;; esac

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD:-$PWD/build-fuzz}
cc=${FUZZ_CC:-clang}
# NB_MAX_RUNS: sweeps of more than 2000 runs are refused here (10^5 elsewhere),
# so that "seeds = 1..65000" explores the refusal instead of timing out
cflags="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -DNB_MAX_RUNS=2000"

for t in $targets; do
    if [ ! -f "$here/fuzz_$t.c" ]; then
        echo "$0: no target '$t' (tests/fuzz/fuzz_$t.c)" >&2
        exit 2
    fi
done
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "$0: needs clang with libFuzzer (apt-get install clang)" >&2
    exit 77
fi

mkdir -p "$build"
build=$(cd "$build" && pwd)
cd "$build"
if [ ! -f Makefile ]; then
    echo "configuring $build (CC=$cc)"
    "$top/configure" -q CC="$cc" CFLAGS="-g -O1"
fi
make -s -j1 src/buildinfo.h
make -s -j1 CFLAGS="$cflags" NB_FUZZ_TARGETS="$targets" fuzz-targets

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OPENBLAS_NUM_THREADS=1
# the targets write their inputs to files: in memory where there is /dev/shm
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi
status=0
summary=""
for t in $targets; do
    work="$build/corpus/$t"
    art="$build/crashes/$t"
    log="$build/logs/$t.log"
    mkdir -p "$work" "$art" "$build/logs"
    before=$(ls "$art" | wc -l)
    echo "fuzzing $t for ${secs}s (log: $log)"
    dict=
    [ ! -f "$here/$t.dict" ] || dict="-dict=$here/$t.dict"
    rc=0
    t0=$(date +%s)
    # shellcheck disable=SC2086
    "./tests/fuzz/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 \
        -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$art/" \
        $dict ${FUZZ_FLAGS:-} "$work" "$here/corpus/$t" </dev/null >"$log" 2>&1 ||
        rc=$?
    took=$(($(date +%s) - t0))
    after=$(ls "$art" | wc -l)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    added=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)
    crashes=$((after - before))
    if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        status=1
        [ "$crashes" -gt 0 ] || crashes="? (exit $rc)"
        grep -m 3 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" || :
        ls -t "$art" | head -n 3 | sed "s|^|  artifact: $art/|"
    fi
    summary="$summary$(printf '%-6s %6ss %12s execs %8s exec/s %6s new %s crashes' \
        "$t" "$took" "${execs:-?}" "${rate:-?}" "${added:-?}" "$crashes")
"
done
printf '\n%s' "$summary"
exit $status
