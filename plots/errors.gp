# plots/errors.gp - training error and test error per series, seed spread
# as bands (for claims stated in training accuracy: Santurkar's noisy BN).
#
#   gnuplot -c plots/errors.gp IN.csv OUT.png|OUT.svg|OUT.pdf
#
# IN (normbench's curves figure table, one row per series and evaluation,
# rows of a series contiguous): sid, series (label with n), step, epoch,
# n, ..., test_error_mean/min/max, ..., train_error_mean/min/max (percent).
# Left: training error (train mode: dropout and noise on, the batches
# since the previous evaluation); right: test error; both linear, lines
# are means over seeds, bands min..max.
if (ARGC < 2) { print "usage: gnuplot -c curves.gp IN.csv OUT.{png,svg,pdf}"; exit status 2 }
IN = ARG1
OUT = ARG2
W = 1400
H = 760
_d = ARG0
_k = strlen(_d)
while (_k > 0 && _d[_k:_k] ne "/") { _k = _k - 1 }
load ((_k > 0) ? _d[1:_k] : "")."common.gp"

set xrange [0:*]
set multiplot
set lmargin 9
set rmargin 2
set size 0.5, 0.76
set origin 0.0, 0.22
set title "training error (train mode)" font ",15"
set xlabel "epoch"
set ylabel "training error (%, over the evaluation interval)"
plot for [i=0:NS-1] IN using "epoch":(column("sid") == i ? column("train_error_min") : NaN):"train_error_max" with filledcurves lt (101+i) notitle, \
     for [i=0:NS-1] IN using "epoch":(column("sid") == i ? column("train_error_mean") : NaN) with linespoints lt (101+i) notitle
set origin 0.5, 0.22
set title "test error" font ",15"
set ylabel "test error (%)"
plot for [i=0:NS-1] IN using "epoch":(column("sid") == i ? column("test_error_min") : NaN):"test_error_max" with filledcurves lt (101+i) notitle, \
     for [i=0:NS-1] IN using "epoch":(column("sid") == i ? column("test_error_mean") : NaN) with linespoints lt (101+i) notitle
# the key in its own panel
# the key: a strip across the bottom, as many columns as fit
set origin 0.0, 0.0
set size 1.0, 0.22
unset title
unset border
unset tics
unset xlabel
unset ylabel
unset grid
unset logscale
set lmargin 2
set rmargin 2
set tmargin 0
set bmargin 0
set key center center horizontal Left reverse samplen 4 spacing 1.15 width 1 maxrows 4 title "lines: mean over seeds; bands: min-max over seeds" font ",13"
set xrange [0:1]
set yrange [0:1]
plot for [i=0:NS-1] NaN with linespoints lt (101+i) title LAB[i+1]
unset multiplot
set output
