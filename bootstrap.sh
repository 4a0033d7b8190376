#!/bin/sh
# bootstrap.sh - set-up, build and the two things a newcomer runs.
#
#   ./bootstrap.sh            install what is missing, build, run the quickstart
#   ./bootstrap.sh check      install what is missing, build, run the test suite
#   ./bootstrap.sh build      install what is missing, build
#
# Installing packages needs root: run as root, or as a user with sudo (the
# script calls sudo only for apt-get, and only when something is missing).
# The build goes to ./build (an out-of-tree Autotools build); override
# with BUILD_DIR=...; JOBS=N sets make's parallelism (default: nproc).
set -eu

PACKAGES="build-essential autoconf automake pkgconf libgsl-dev libcsv-dev \
zlib1g-dev libinih-dev libopenblas-dev gnuplot-nox fonts-liberation \
dataset-fashion-mnist parallel"

here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD_DIR:-$here/build}
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

build() {
    if [ ! -x "$here/configure" ] || [ "$here/configure.ac" -nt "$here/configure" ]; then
        (cd "$here" && autoreconf -fi) >&2
    fi
    mkdir -p "$build"
    if [ ! -f "$build/Makefile" ]; then
        (cd "$build" && "$here/configure" -q) >&2
    fi
    make -C "$build" -j"$jobs" >&2
}

case "$what" in
build)
    install_packages
    build
    ;;
check)
    install_packages
    build
    rc=0
    make -C "$build" -j"$jobs" check || rc=$?
    log="$build/test-suite.log"
    if [ -f "$log" ]; then
        # Automake's summary -> the plain closing line CI reads.
        pass=$(sed -n 's/^# PASS: *//p' "$log" | head -n1)
        skip=$(sed -n 's/^# SKIP: *//p' "$log" | head -n1)
        fail=$(sed -n 's/^# FAIL: *//p' "$log" | head -n1)
        xpass=$(sed -n 's/^# XPASS: *//p' "$log" | head -n1)
        err=$(sed -n 's/^# ERROR: *//p' "$log" | head -n1)
        failed=$(( ${fail:-0} + ${xpass:-0} + ${err:-0} ))
        [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
        echo "${pass:-0} passed, $failed failed, ${skip:-0} skipped"
    else
        echo "0 passed, 1 failed"
        rc=1
    fi
    exit "$rc"
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
    echo "usage: $0 [quickstart|check|build]" >&2
    exit 2
    ;;
esac
