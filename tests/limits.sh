#!/bin/sh
# tests/limits.sh - the size limits the code base keeps (issue 13): no file
# under src/ over 1200 lines, no function over 120 lines from its opening
# brace to its closing one.  Functions are found by the layout .clang-format
# gives them: the opening brace alone on a line at column 0 (BreakBeforeBraces:
# Linux), the closing one at column 0.  The measure is checked first on
# made-up files, so that a broken measure cannot pass everything.
. "${srcdir:-.}/tests/taplib.sh"
tap_init limits
src=$(cd "$srcdir/src" && pwd)
MAX_FILE=1200
MAX_FUNC=120

# funcs FILE...: "LINES FILE:LINE" for every function, LINE its brace's
funcs() {
    awk '/^\{/ { start = FNR; name = prev }
         { prev = $0 }
         /^\}/ && start { print FNR - start + 1, FILENAME ":" start; start = 0 }' "$@"
}

# the measure, on made-up files
{
    echo 'static int small(void)'; echo '{'; echo '    return 0;'; echo '}'
    echo 'static const int table[] = {'; echo '    1, 2,'; echo '};'
    echo 'int big(int x)'; echo '{'
    i=0; while [ $i -lt 119 ]; do echo '    x += 1;'; i=$((i + 1)); done
    echo '    return x;'; echo '}'
} > "$W/made.c"
is "$(funcs "$W/made.c" | awk '{print $1}' | tr '\n' ' ')" "3 122 " \
   "the measure: a 3-line function and a 122-line one, the table not counted"

n_files=0; over_files=""
for f in $(find "$src" -name '*.[ch]' | sort); do
    n_files=$((n_files + 1))
    l=$(wc -l < "$f")
    [ "$l" -le $MAX_FILE ] || over_files="$over_files ${f#$src/}($l)"
done
check "found the sources ($n_files files)" test "$n_files" -gt 50
is "${over_files# }" "" "no file under src/ is over $MAX_FILE lines"

all=$(funcs $(find "$src" -name '*.c' | sort))
n_funcs=$(printf '%s\n' "$all" | grep -c .)
check "found the functions ($n_funcs)" test "$n_funcs" -gt 500
over=$(printf '%s\n' "$all" | awk -v m=$MAX_FUNC '$1 > m { sub(/.*\/src\//, "", $2); printf " %s(%d)", $2, $1 }')
is "${over# }" "" "no function is over $MAX_FUNC lines"
diag "largest: $(printf '%s\n' "$all" | sort -n | tail -1 | sed "s|$src/||")"

echo "1..$n"
[ "$failed" -eq 0 ]
