#!/bin/sh
# bootstrap.sh - set-up, build and the two things a newcomer runs.
#
#   ./bootstrap.sh            install what is missing, build, run the quickstart
#   ./bootstrap.sh check      install what is missing, build, run the test suite
#   ./bootstrap.sh build      install what is missing, build
#   ./bootstrap.sh deps       install what is missing, print the package list
#   ./bootstrap.sh check-asan the test suite built with AddressSanitizer and
#                             UndefinedBehaviorSanitizer in ./build-asan
#                             (ASAN_BUILD_DIR=...); fails on any report
#   ./bootstrap.sh build-mpi  build with MPI (./configure --with-mpi) in
#                             ./build-mpi (MPI_BUILD_DIR=...): mpirun -np K
#                             build-mpi/normbench run CONFIG trains each run
#                             over K ranks
#   ./bootstrap.sh check-mpi  build-mpi, then its test, tests/mpi.sh (the
#                             library is the default build's, which check
#                             tests); NB_REQUIRE_MPI=1 makes a skip a failure
#
# Installing packages needs root: run as root, or as a user with sudo (the
# script calls sudo only for apt-get, and only when something is missing).
# The build goes to ./build (an out-of-tree Autotools build); override
# with BUILD_DIR=...; JOBS=N sets make's parallelism (default: nproc).
set -eu

# slurmctld, slurmd, slurm-client and munge: tests/slurm-cluster.sh starts
# a single-node cluster of its own with them (own config, key and ports;
# daemons the packages may start are left alone).  libopenmpi-dev and
# openmpi-bin: the MPI build (build-mpi) and tests/mpi.sh's mpirun.
PACKAGES="build-essential autoconf automake pkgconf libgsl-dev libcsv-dev \
zlib1g-dev libopenblas-dev gnuplot-nox fonts-liberation \
dataset-fashion-mnist parallel help2man slurmctld slurmd slurm-client munge \
libopenmpi-dev openmpi-bin"

here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD_DIR:-$here/build}
mbuild=${MPI_BUILD_DIR:-$here/build-mpi}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
what=${1:-quickstart}

install_packages() {
    missing=
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "bootstrap: installing:$missing" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >&2
}

# build [DIR [CONFIGURE-ARGS...]]: configure DIR (default $build) once, make
build() {
    dir=${1:-$build}
    [ $# -gt 0 ] && shift
    if [ ! -x "$here/configure" ] || [ "$here/configure.ac" -nt "$here/configure" ]; then
        (cd "$here" && autoreconf -fi) >&2
    fi
    mkdir -p "$dir"
    if [ ! -f "$dir/Makefile" ]; then
        (cd "$dir" && "$here/configure" -q "$@") >&2
    fi
    make -C "$dir" -j"$jobs" >&2
}

# summary DIR RC [EXTRA-FAILED]: Automake's summary in DIR/test-suite.log ->
# the plain line "N passed, N failed, N skipped"; returns non-zero on failure
summary() {
    log="$1/test-suite.log"
    rc=$2
    if [ ! -f "$log" ]; then
        echo "0 passed, 1 failed"
        return 1
    fi
    pass=$(sed -n 's/^# PASS: *//p' "$log" | head -n1)
    skip=$(sed -n 's/^# SKIP: *//p' "$log" | head -n1)
    fail=$(sed -n 's/^# FAIL: *//p' "$log" | head -n1)
    xpass=$(sed -n 's/^# XPASS: *//p' "$log" | head -n1)
    err=$(sed -n 's/^# ERROR: *//p' "$log" | head -n1)
    failed=$(( ${fail:-0} + ${xpass:-0} + ${err:-0} + ${3:-0} ))
    [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
    echo "${pass:-0} passed, $failed failed, ${skip:-0} skipped"
    [ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
}

case "$what" in
deps)
    install_packages
    echo $PACKAGES
    ;;
build)
    install_packages
    build
    ;;
check)
    install_packages
    build
    rc=0
    make -C "$build" -j"$jobs" check || rc=$?
    summary "$build" "$rc" || exit 1
    ;;
check-asan)
    # Every ASan report goes to a file under $abuild/sanitizer-logs, so one
    # from a process whose failure a test expects (exit 1 or 2) is not
    # lost.  UBSan in the combined runtime ignores log_path (GCC 12): it
    # prints to stderr, so it halts with exit status 97, which no test
    # expects (a report fails its test even where stderr is discarded),
    # and its reports are counted from the test logs.
    install_packages
    abuild=${ASAN_BUILD_DIR:-$here/build-asan}
    san="-fsanitize=address,undefined"
    build "$abuild" CFLAGS="-O1 -g $san -fno-omit-frame-pointer" LDFLAGS="$san"
    logs="$abuild/sanitizer-logs"
    rm -rf "$logs"
    mkdir -p "$logs"
    rc=0
    ASAN_OPTIONS="detect_leaks=1:log_path=$logs/asan" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=97:log_path=$logs/ubsan" \
        make -C "$abuild" -j"$jobs" check || rc=$?
    ub=$(cat "$abuild"/tests/*.log 2>/dev/null | grep -c 'runtime error:' || true)
    reports=$(( $(find "$logs" -type f | wc -l) + ub ))
    [ "$ub" -eq 0 ] || grep -h -A8 'runtime error:' "$abuild"/tests/*.log | head -n 40 >&2
    for f in $(find "$logs" -type f | head -n 5); do
        echo "--- $f" >&2
        head -n 40 "$f" >&2
    done
    printf 'sanitizers: %s report(s); ' "$reports"
    summary "$abuild" "$rc" "$reports" || exit 1
    ;;
build-mpi)
    install_packages
    build "$mbuild" --with-mpi
    ;;
check-mpi)
    install_packages
    build "$mbuild" --with-mpi
    rc=0
    make -C "$mbuild" check TESTS="tests/mpi.sh" || rc=$?
    summary "$mbuild" "$rc" || exit 1
    ;;
quickstart)
    install_packages
    build
    # The quickstart experiment: none / batch / group / layer norm at batch
    # 128 x 6 seeds on a Fashion-MNIST subset with the landscape probe, two
    # workers; then summaries, figures, checks with intervals and a report.
    # Re-running it skips the runs that are done.  It prints the verdict and
    # where the report is.
    cd "$here"
    exec "$build/normbench" reproduce quickstart -j 2
    ;;
*)
    echo "usage: $0 [quickstart|check|check-asan|check-mpi|build|build-mpi|deps]" >&2
    exit 2
    ;;
esac
