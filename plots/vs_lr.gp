# plots/vs_lr.gp - a metric against the learning rate (log10 axis), one
# line per series, seed spread as bands; where runs diverged a cross is
# drawn (at the top of the plot when every run there diverged).
#
#   gnuplot -c plots/vs_lr.gp IN.csv OUT.png|OUT.svg|OUT.pdf [auto|linear|log]
#
# The optional third argument is the y axis (a figure's yscale): auto,
# the default, is log where the values span a factor of 5; linear; log.
#
# IN: as vs_batch.gp (sid, series, xlabel, ylabel, x, mean, std, min, max,
# n, n_diverged, n_runs).
if (ARGC < 2) { print "usage: gnuplot -c vs_lr.gp IN.csv OUT.{png,svg,pdf} [auto|linear|log]"; exit status 2 }
IN = ARG1
OUT = ARG2
YSCALE = (ARGC >= 3) ? ARG3 : "auto"
W = 1200
H = 680
XLOG = 10
_d = ARG0
_k = strlen(_d)
while (_k > 0 && _d[_k:_k] ne "/") { _k = _k - 1 }
_dir = (_k > 0) ? _d[1:_k] : ""
load _dir."common.gp"
load _dir."vs_common.gp"
