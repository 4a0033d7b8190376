# plots/vs_batch.gp - a metric against the batch size (log2 axis), one
# line per series, seed spread as bands, runs that diverged marked.
#
#   gnuplot -c plots/vs_batch.gp IN.csv OUT.png|OUT.svg|OUT.pdf [auto|linear|log]
#
# The optional third argument is the y axis (a figure's yscale): auto,
# the default, is log where the values span a factor of 5; linear; log.
#
# IN (normbench's vs_batch figure table, sorted by sid then x): sid,
# series (label with n), xlabel, ylabel (axis titles, repeated), x, mean,
# std, min, max, n (finite values), n_diverged, n_runs.
if (ARGC < 2) { print "usage: gnuplot -c vs_batch.gp IN.csv OUT.{png,svg,pdf} [auto|linear|log]"; exit status 2 }
IN = ARG1
OUT = ARG2
YSCALE = (ARGC >= 3) ? ARG3 : "auto"
W = 1200
H = 680
XLOG = 2
_d = ARG0
_k = strlen(_d)
while (_k > 0 && _d[_k:_k] ne "/") { _k = _k - 1 }
_dir = (_k > 0) ? _d[1:_k] : ""
load _dir."common.gp"
load _dir."vs_common.gp"
