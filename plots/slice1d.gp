# plots/slice1d.gp - 1-D filter-normalized loss slices (Li et al. 2018):
# the loss at theta + a d against a, per series (mean over seeds, each
# seed with its own random direction; band min-max).
#
#   gnuplot -c plots/slice1d.gp IN.csv OUT.png|OUT.svg|OUT.pdf
#
# IN (normbench's slice1d figure table): sid, series (label with n), ci,
# di, step (of the slices: the last of each run; empty when the runs'
# slice.csv has no step column), a, loss_mean, loss_min, loss_max,
# acc_mean, n.
if (ARGC < 2) { print "usage: gnuplot -c slice1d.gp IN.csv OUT.{png,svg,pdf}"; exit status 2 }
IN = ARG1
OUT = ARG2
W = 1200
H = 680
_d = ARG0
_k = strlen(_d)
while (_k > 0 && _d[_k:_k] ne "/") { _k = _k - 1 }
load ((_k > 0) ? _d[1:_k] : "")."common.gp"
stats IN using (column("loss_min") > 0 ? column("loss_min") : NaN) name "A" nooutput
stats IN using "loss_max" name "B" nooutput
if (A_records > 0 && B_max / A_min > 30) { set logscale y }
set format y "%g"
set xlabel "a (distance along a filter-normalized random direction)"
set ylabel "loss (eval mode)"
# the title names the slices' step: one, or the range when the series
# differ (read as text: the column is empty for runs without one)
SMIN = NaN
SMAX = NaN
stats IN using (_t = strcol("step"), (_t ne "") ? (_v = _t + 0, \
    SMIN = (SMIN <= _v) ? SMIN : _v, SMAX = (SMAX >= _v) ? SMAX : _v) : 0, 0) nooutput
AT = (SMIN != SMIN) ? " (the last slice of each run)" : \
     (SMIN == SMAX) ? sprintf(" at step %d", SMIN) : \
     sprintf(" at steps %d-%d (the last slice of each run)", SMIN, SMAX)
set title "1-D loss slice".AT font ",14"
set key outside right top reverse Left samplen 4 spacing 1.2 width -1 title "mean over seeds,\nband: min-max" font ",12"
plot for [i=0:NS-1] IN using "a":(column("sid") == i ? column("loss_min") : NaN):"loss_max" with filledcurves lt (101+i) notitle, \
     for [i=0:NS-1] IN using "a":(column("sid") == i ? column("loss_mean") : NaN) with lines lt (101+i) title LAB[i+1]
set output
