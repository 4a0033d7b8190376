# tests/taplib.sh - the TAP helpers every shell test sources (after setting
# srcdir): pass and fail count and print one test line; check DESCRIPTION
# COMMAND... passes when the command succeeds; is GOT WANT DESCRIPTION
# compares two strings and shows both when they differ; diag prints a
# comment.  A script ends with: echo "1..$n"; [ "$failed" -eq 0 ]
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
