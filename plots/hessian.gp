# plots/hessian.gp - Hessian curvature against depth (or another key):
# left the top eigenvalue (power iteration), right the trace (Hutchinson),
# one line per series, seed spread as bands.
#
#   gnuplot -c plots/hessian.gp IN.csv OUT.png|OUT.svg|OUT.pdf
#
# IN (normbench's hessian figure table): sid, series (label with n),
# xlabel, x, lambda_max_mean, lambda_max_min, lambda_max_max, trace_mean,
# trace_min, trace_max, n (the last Hessian probe of each run).
if (ARGC < 2) { print "usage: gnuplot -c hessian.gp IN.csv OUT.{png,svg,pdf}"; exit status 2 }
IN = ARG1
OUT = ARG2
W = 1400
H = 760
_d = ARG0
_k = strlen(_d)
while (_k > 0 && _d[_k:_k] ne "/") { _k = _k - 1 }
load ((_k > 0) ? _d[1:_k] : "")."common.gp"
XL = ""
stats IN using (XL = strcol("xlabel"), 0) nooutput
stats IN using (column("lambda_max_min") > 0 ? column("lambda_max_min") : NaN) name "A" nooutput
stats IN using "lambda_max_max" name "B" nooutput
LOG1 = (A_records > 0 && B_max / A_min > 30) ? 1 : 0
stats IN using (column("trace_min") > 0 ? column("trace_min") : NaN) name "C" nooutput
stats IN using "trace_max" name "D" nooutput
LOG2 = (C_records > 0 && D_max / C_min > 30) ? 1 : 0
set multiplot
set lmargin 10
set rmargin 2
set size 0.5, 0.76
set xlabel XL
set format y "%g"
set autoscale xfix
set offsets graph 0.04, graph 0.04, 0, 0
set xtics () nomirror
set origin 0.0, 0.22
set title "top Hessian eigenvalue" font ",14"
set ylabel "lambda_max"
if (LOG1) { set logscale y }
plot for [i=0:NS-1] IN using "x":(column("sid") == i ? column("lambda_max_min") : NaN):"lambda_max_max" with filledcurves lt (101+i) notitle, \
     for [i=0:NS-1] IN using "x":(column("sid") == i ? column("lambda_max_mean") : NaN):xtic(sprintf("%g", column("x"))) with linespoints lt (101+i) notitle
unset logscale y
set origin 0.5, 0.22
set title "Hessian trace" font ",14"
set ylabel "trace"
if (LOG2) { set logscale y }
plot for [i=0:NS-1] IN using "x":(column("sid") == i ? column("trace_min") : NaN):"trace_max" with filledcurves lt (101+i) notitle, \
     for [i=0:NS-1] IN using "x":(column("sid") == i ? column("trace_mean") : NaN):xtic(sprintf("%g", column("x"))) with linespoints lt (101+i) notitle
unset logscale y
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
