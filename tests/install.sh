#!/bin/sh
# tests/install.sh - an installed normbench works from any directory, as
# TAP: `make install` into a DESTDIR puts the binary, the manual page (when
# help2man was found) and the plots, experiments and configs under
# share/normbench; the installed binary, run from an empty directory, finds
# them next to itself and `reproduce --quick` of the quickstart writes its
# report and draws its figures there; `make uninstall` takes the data
# away again.
set -u

. "${srcdir:-.}/tests/taplib.sh"
tap_init install
B=$(cd "$top_builddir" && pwd)
show() { sed 's/^/#   /' "$1" | tail -n 15; }
need_nb

D=$W/dest
${MAKE:-make} -C "$B" install DESTDIR="$D" >"$W/install.out" 2>&1
rc=$?
check "make install DESTDIR=... exits 0" [ $rc -eq 0 ]
[ $rc -eq 0 ] || show "$W/install.out"
bin=$(find "$D" -path '*/bin/normbench' -type f | head -n 1)
share=$(dirname "$(dirname "${bin:-x/x}")")/share/normbench
check "the binary is installed" [ -x "${bin:-/nonexistent}" ]
check "  with the gnuplot scripts next to it" [ -f "$share/plots/curves.gp" ]
check "  the experiments" [ -f "$share/experiments/quickstart.ini" ]
check "  and their configs" [ -f "$share/configs/quickstart.ini" ]
if grep -q '^HELP2MAN = ..*' "$B/Makefile"; then
    check "  and the manual page" sh -c "find '$D' -name normbench.1 | grep -q ."
else
    pass "# SKIP help2man not installed: no manual page"
fi

# from an empty directory, nothing of the source tree in reach
E=$W/empty
mkdir -p "$E"
(cd "$E" && "$bin" reproduce quickstart --quick -j 2 --progress none >"$W/repro.out" 2>"$W/repro.err")
rc=$?
check "the installed binary runs reproduce quickstart --quick from an empty directory" [ $rc -eq 0 ]
[ $rc -eq 0 ] || show "$W/repro.err"
check "  its report is written there" [ -s "$E/results/quick/quickstart/report.md" ]
if command -v "${GNUPLOT:-gnuplot}" >/dev/null 2>&1; then
    check "  and its figures are drawn" [ -s "$E/results/quick/quickstart/figures/curves.png" ]
else
    pass "# SKIP gnuplot not installed"
fi
(cd "$E" && "$bin" reproduce no_such_experiment >"$W/none.out" 2>"$W/none.err")
check "an unknown experiment still exits 2" [ $? -eq 2 ]

${MAKE:-make} -C "$B" uninstall DESTDIR="$D" >"$W/uninstall.out" 2>&1
check "make uninstall exits 0" [ $? -eq 0 ]
check "  and takes the data away" sh -c "[ ! -e '$share/plots' ] && [ ! -e '$share/experiments' ]"
rm -rf "$W"

echo "1..$n"
[ "$failed" -eq 0 ]
