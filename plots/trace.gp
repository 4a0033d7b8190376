# plots/trace.gp - a probe's stat over training (a figure of kind trace,
# y = PROBE.STAT): one line per group and probe param (and param value,
# layer), the mean over seeds with the seed range as a band.
#
#   gnuplot -c plots/trace.gp IN.csv OUT.png|OUT.svg|OUT.pdf [auto|linear|log]
#
# The optional third argument is the y axis (a figure's yscale): auto,
# the default, is log where the values span a factor of 30; linear; log.
#
# IN (normbench's trace figure table, series contiguous, by step): sid,
# series (label with n), ci (colour: the line's ordinal in its group), di
# (dashes: the group), ylabel (repeated), step, epoch, n, mean, min, max.
if (ARGC < 2) { print "usage: gnuplot -c trace.gp IN.csv OUT.{png,svg,pdf} [auto|linear|log]"; exit status 2 }
IN = ARG1
OUT = ARG2
YSCALE = (ARGC >= 3) ? ARG3 : "auto"
W = 1200
H = 680
_d = ARG0
_k = strlen(_d)
while (_k > 0 && _d[_k:_k] ne "/") { _k = _k - 1 }
load ((_k > 0) ? _d[1:_k] : "")."common.gp"

YL = ""
stats IN using (YL = strcol("ylabel"), 0) nooutput
stats IN using "max" name "Y" nooutput
stats IN using (column("min") > 0 ? column("min") : NaN) name "YLO" nooutput
YLOG = (YLO_records > 0 && YLO_min > 0 && (YSCALE eq "log" || (YSCALE ne "linear" && Y_max >= 30 * YLO_min))) ? 1 : 0
if (YLOG) {
    set logscale y 10
    set format y "%g"
    set ylabel YL." (log scale)"
} else {
    set ylabel YL
}
set xlabel "epoch"
set offsets graph 0.02, graph 0.02, graph 0.04, graph 0.04
set key outside right top reverse Left samplen 4 spacing 1.2 width -1 title "mean over seeds,\nband: min-max" font ",12"
plot for [i=0:NS-1] IN using "epoch":(column("sid") == i ? column("min") : NaN):"max" with filledcurves lt (101+i) notitle, \
     for [i=0:NS-1] IN using "epoch":(column("sid") == i ? column("mean") : NaN) with linespoints lt (101+i) title LAB[i+1]
set output
