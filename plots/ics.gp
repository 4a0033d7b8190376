# plots/ics.gp - internal covariate shift per layer over training
# (Santurkar Fig. 3): left the l2 difference ||G - G'|| (ideal 0), right
# the cosine of G and G' (ideal 1); one series per group and layer.
#
#   gnuplot -c plots/ics.gp IN.csv OUT.png|OUT.svg|OUT.pdf
#
# IN (normbench's ics figure table): sid, series (label, layer, n), layer,
# step, epoch, n, l2_mean, l2_min, l2_max, cos_mean, cos_min, cos_max
# (over seeds; bands min-max).
if (ARGC < 2) { print "usage: gnuplot -c ics.gp IN.csv OUT.{png,svg,pdf}"; exit status 2 }
IN = ARG1
OUT = ARG2
W = 1400
H = 760
_d = ARG0
_k = strlen(_d)
while (_k > 0 && _d[_k:_k] ne "/") { _k = _k - 1 }
load ((_k > 0) ? _d[1:_k] : "")."common.gp"

stats IN using (column("l2_min") > 0 ? column("l2_min") : NaN) name "A" nooutput
stats IN using "l2_max" name "B" nooutput
LOG1 = (A_records > 0 && B_max / A_min > 30) ? 1 : 0

set multiplot
set lmargin 10
set rmargin 2
set size 0.5, 0.76
set xlabel "training step"
set format y "%g"
set origin 0.0, 0.22
set title "l2 difference ||G - G'|| (ideal 0)" font ",14"
set ylabel "||G - G'||"
if (LOG1) { set logscale y }
plot for [i=0:NS-1] IN using "step":(column("sid") == i ? column("l2_min") : NaN):"l2_max" with filledcurves lt (101+i) notitle, \
     for [i=0:NS-1] IN using "step":(column("sid") == i ? column("l2_mean") : NaN) with linespoints lt (101+i) notitle
unset logscale y
set origin 0.5, 0.22
set title "cosine of G and G' (ideal 1)" font ",14"
set ylabel "cos(G, G')"
plot for [i=0:NS-1] IN using "step":(column("sid") == i ? column("cos_min") : NaN):"cos_max" with filledcurves lt (101+i) notitle, \
     for [i=0:NS-1] IN using "step":(column("sid") == i ? column("cos_mean") : NaN) with linespoints lt (101+i) notitle
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
