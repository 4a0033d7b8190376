# tests/taplib.sh - the TAP helpers every shell test sources (as
# "${srcdir:-.}/tests/taplib.sh"): pass and fail count and print one test
# line; check DESCRIPTION COMMAND... passes when the command succeeds; is
# GOT WANT DESCRIPTION compares two strings and shows both when they
# differ; diag prints a comment.  A script ends with: echo "1..$n"; [ "$failed" -eq 0 ]
#
# tap_init NAME, the set-up every test of the built binary shares: NB (the
# binary), CONF, EXP (the source tree's configs/ and experiments/), W (a
# fresh absolute work folder tests/tmp/NAME-PID of the build tree), one
# BLAS thread; need_nb then skips the script when the binary is not built.
# show FILE prints a file as TAP comments.
n=0
failed=0
pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() {
    _check_desc=$1   # a name of its own: the command may set any other
    shift
    if "$@"; then pass "$_check_desc"; else fail "$_check_desc"; fi
}
is() {
    if [ "$1" = "$2" ]; then pass "$3"; else fail "$3"; echo "#   got:  '$1'"; echo "#   want: '$2'"; fi
}
diag() { echo "# $*"; }
tap_init() {
    srcdir=${srcdir:-.}
    top_builddir=${top_builddir:-.}
    NB=$(cd "$top_builddir" && pwd)/normbench
    CONF=$(cd "$srcdir/configs" && pwd)
    EXP=$(cd "$srcdir/experiments" && pwd)
    W=tests/tmp/$1-$$
    rm -rf "$W" # left by an earlier run under a recycled pid
    mkdir -p "$W"
    W=$(cd "$W" && pwd)
    export OPENBLAS_NUM_THREADS=1
}
need_nb() {
    if [ ! -x "$NB" ]; then
        echo "1..0 # SKIP $NB not built"
        exit 0
    fi
}
show() { sed 's/^/#   /' "$1"; }
