# plots/slice2d.gp - 2-D filter-normalized loss slices (Li et al. 2018):
# one panel per series, the loss at theta + a d1 + b d2 as a heat map
# (log colour scale) with contour lines.
#
#   gnuplot -c plots/slice2d.gp IN.csv OUT.png|OUT.svg|OUT.pdf
#
# IN (normbench's slice2d figure table) in gnuplot grid order: one header
# row, then per series its grid, a in the outer loop and b in the inner,
# a blank line after each scan and a second blank line after each series
# (so series k is `index k`).  Columns: 1 sid, 2 series, 3 ci, 4 di,
# 5 step (of the slice: the last of each run; empty when the runs'
# slice.csv has no step column), 6 a, 7 b, 8 loss_mean, 9 loss_min,
# 10 loss_max, 11 acc_mean, 12 n.  gnuplot would take the first row of
# every block as a header, so this script reads columns by number with
# the header skipped.
if (ARGC < 2) { print "usage: gnuplot -c slice2d.gp IN.csv OUT.{png,svg,pdf}"; exit status 2 }
IN = ARG1
OUT = ARG2
NOLABELS = 1
_d = ARG0
_k = strlen(_d)
while (_k > 0 && _d[_k:_k] ne "/") { _k = _k - 1 }
_dir = (_k > 0) ? _d[1:_k] : ""
# size from the number of panels (at most 3 per row)
set datafile separator comma
stats IN skip 1 using 1 nooutput
NS = int(STATS_max) + 1
NC = (NS < 3) ? NS : 3
NR = int((NS + NC - 1) / NC)
W = 560 * NC + 40
H = 500 * NR + 40
load _dir."common.gp"
unset datafile columnheaders
# panel titles: the series and the slice's step
array LAB[NS]
do for [i = 0:NS-1] {
    _l = ""
    _s = ""
    stats IN index i skip 1 using (_l = strcol(2), _s = strcol(5), 0) nooutput
    LAB[i + 1] = (_s eq "") ? _l : sprintf("%s at step %s", _l, _s)
}
stats IN skip 1 using (column(8) > 0 ? column(8) : NaN) name "L" nooutput
LOGC = (L_records > 0 && L_max / L_min > 30) ? 1 : 0
set multiplot layout NR, NC title "2-D loss slices (eval mode; mean over seeds)" font ",15"
set view map
set size ratio -1
set xlabel "a"
set ylabel "b"
set cblabel "loss"
set palette defined (0 "#440154", 0.25 "#3B528B", 0.5 "#21908C", 0.75 "#5DC963", 1 "#FDE725")
if (LOGC) { set logscale cb; set format cb "%g" }
set cbrange [L_min:L_max]
set autoscale xfix
set autoscale yfix
unset grid
set contour base
set cntrparam levels 9
unset surface
do for [i = 0:NS-1] {
    set title LAB[i + 1] font ",13"
    set table $C
    splot IN index i skip 1 using 6:7:8 with lines notitle
    unset table
    # the contour table is whitespace-separated: rewrite it with commas
    set print $CC
    do for [j = 1:|$C|] {
        _s = $C[j]
        if (words(_s) >= 2 && _s[1:1] ne "#") { print sprintf("%s,%s", word(_s, 1), word(_s, 2)) } else { print "" }
    }
    unset print
    plot IN index i skip 1 using 6:7:8 with image notitle, \
         $CC using 1:2 with lines lc rgb "#202020" lw 1 notitle
}
unset multiplot
set output
