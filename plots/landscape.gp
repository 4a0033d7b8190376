# plots/landscape.gp - Santurkar et al.'s loss landscape along the
# gradient over training (Fig. 4 / 10): per series (a) the range of the
# loss over the step sizes eta, (b) the range of the l2 change of the
# gradient, (c) the effective beta-smoothness.
#
#   gnuplot -c plots/landscape.gp IN.csv OUT.png|OUT.svg|OUT.pdf
#
# IN (normbench's landscape figure table, series contiguous, by step):
# sid, series (label with n), step, epoch, n, loss_min, loss_max,
# grad_change_min, grad_change_max (each the mean over seeds of the
# per-step min / max over eta), beta_eff_mean, beta_eff_min,
# beta_eff_max (over seeds), loss0.  Bands (a), (b) are the eta ranges as
# in the paper; band (c) is the seed spread.  Log y where a panel's
# values span more than a decade and a half.
if (ARGC < 2) { print "usage: gnuplot -c landscape.gp IN.csv OUT.{png,svg,pdf}"; exit status 2 }
IN = ARG1
OUT = ARG2
W = 1800
H = 760
_d = ARG0
_k = strlen(_d)
while (_k > 0 && _d[_k:_k] ne "/") { _k = _k - 1 }
load ((_k > 0) ? _d[1:_k] : "")."common.gp"

stats IN using (column("loss_min") > 0 ? column("loss_min") : NaN) name "A" nooutput
stats IN using "loss_max" name "B" nooutput
LOG1 = (A_records > 0 && B_max / A_min > 30) ? 1 : 0
stats IN using (column("grad_change_min") > 0 ? column("grad_change_min") : NaN) name "C" nooutput
stats IN using "grad_change_max" name "D" nooutput
LOG2 = (C_records > 0 && D_max / C_min > 30) ? 1 : 0
stats IN using (column("beta_eff_min") > 0 ? column("beta_eff_min") : NaN) name "E" nooutput
stats IN using "beta_eff_max" name "F" nooutput
LOG3 = (E_records > 0 && F_max / E_min > 30) ? 1 : 0

set multiplot
set lmargin 10
set rmargin 2
set size 0.3333, 0.76
set xlabel "training step"
set format y "%g"

set origin 0.0, 0.22
set title "(a) loss along the gradient: min-max over eta" font ",14"
set ylabel "loss"
if (LOG1) { set logscale y }
plot for [i=0:NS-1] IN using "step":(column("sid") == i ? column("loss_min") : NaN):"loss_max" with filledcurves lt (101+i) notitle, \
     for [i=0:NS-1] IN using "step":(column("sid") == i ? column("loss_min") : NaN) with lines lt (101+i) lw 1 notitle, \
     for [i=0:NS-1] IN using "step":(column("sid") == i ? column("loss_max") : NaN) with lines lt (101+i) lw 1 notitle
unset logscale y

set origin 0.3333, 0.22
set title "(b) gradient change ||g(w - eta g) - g(w)||" font ",14"
set ylabel "l2 change of the gradient"
if (LOG2) { set logscale y }
plot for [i=0:NS-1] IN using "step":(column("sid") == i ? column("grad_change_min") : NaN):"grad_change_max" with filledcurves lt (101+i) notitle, \
     for [i=0:NS-1] IN using "step":(column("sid") == i ? column("grad_change_min") : NaN) with lines lt (101+i) lw 1 notitle, \
     for [i=0:NS-1] IN using "step":(column("sid") == i ? column("grad_change_max") : NaN) with lines lt (101+i) lw 1 notitle
unset logscale y

set origin 0.6667, 0.22
set title "(c) effective beta-smoothness (band: seeds)" font ",14"
set ylabel "max over eta of gradient change / (eta ||g||)"
if (LOG3) { set logscale y }
plot for [i=0:NS-1] IN using "step":(column("sid") == i ? column("beta_eff_min") : NaN):"beta_eff_max" with filledcurves lt (101+i) notitle, \
     for [i=0:NS-1] IN using "step":(column("sid") == i ? column("beta_eff_mean") : NaN) with lines lt (101+i) notitle
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
set key center center horizontal Left reverse samplen 4 spacing 1.15 width 1 maxrows 4 title "means over seeds; (a), (b): band = range over the step sizes eta" font ",13"
set xrange [0:1]
set yrange [0:1]
plot for [i=0:NS-1] NaN with lines lw 8 lt (101+i) title LAB[i+1]
unset multiplot
set output
