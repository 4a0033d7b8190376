# plots/dist.gp - activation percentiles over training (Ioffe & Szegedy
# Fig. 1; Santurkar Fig. 2): per series the 15th-85th percentile band and
# the median (50th) line, each averaged over seeds.
#
#   gnuplot -c plots/dist.gp IN.csv OUT.png|OUT.svg|OUT.pdf
#
# IN (normbench's dist figure table): sid, series (label, layer, in/out,
# n), layer, step, epoch, n, p15, p50, p85.
if (ARGC < 2) { print "usage: gnuplot -c dist.gp IN.csv OUT.{png,svg,pdf}"; exit status 2 }
IN = ARG1
OUT = ARG2
W = 1200
H = 680
_d = ARG0
_k = strlen(_d)
while (_k > 0 && _d[_k:_k] ne "/") { _k = _k - 1 }
load ((_k > 0) ? _d[1:_k] : "")."common.gp"
set xlabel "training step"
set ylabel "activation (15th, 50th, 85th percentile)"
set title "activation distribution over training: band p15-p85, line p50 (means over seeds)" font ",14"
set key outside right top reverse Left samplen 4 spacing 1.2 width -1 font ",12"
plot for [i=0:NS-1] IN using "step":(column("sid") == i ? column("p15") : NaN):"p85" with filledcurves lt (101+i) notitle, \
     for [i=0:NS-1] IN using "step":(column("sid") == i ? column("p50") : NaN) with lines lt (101+i) title LAB[i+1]
set output
