# plots/vs_common.gp - the body of vs_batch.gp and vs_lr.gp (loaded after
# common.gp with XLOG = 2 or 10).  When IN is NAME.csv and NAME.paper.csv
# exists beside it (pid, series, x, value: a figure's `paper = TABLE`),
# the paper's numbers are drawn as dashed reference lines on a second y
# axis.
# the paper's numbers, when reproduce wrote IN's sibling NAME.paper.csv
# (pid, series, x, value): dashed grey reference lines on a second y axis
# (stats first: they must not see the log axes set below)
PAPER = IN[1:strlen(IN) - 4].".paper.csv"
NP = int(system(sprintf("test -s '%s' && echo 1 || echo 0", PAPER)))
if (NP) {
    stats PAPER using "pid" name "P" nooutput
    NP = int(P_max) + 1
    array PLAB[NP]
    do for [_j = 0:NP-1] {
        _l = ""
        stats PAPER using (column("pid") == _j ? (_l = strcol("series"), 0) : NaN) nooutput
        PLAB[_j + 1] = _l
    }
    stats PAPER using "value" name "PV" nooutput
    PSPAN = (PV_max > PV_min) ? (PV_max - PV_min) : (abs(PV_max) > 0 ? abs(PV_max) : 1)
}
XL = ""
YL = ""
stats IN using (XL = strcol("xlabel"), YL = strcol("ylabel"), 0) nooutput
stats IN using "max" name "Y" nooutput
stats IN using "min" name "YLO" nooutput
stats IN using "n_diverged" name "D" nooutput
YSPAN = (Y_max > YLO_min) ? (Y_max - YLO_min) : (abs(Y_max) > 0 ? abs(Y_max) : 1)
YTOP = Y_max + 0.08 * YSPAN
# a log y axis where the values span a factor of 5 or more (one scheme
# failing at one batch size would squash every other line otherwise),
# unless YSCALE (the script's third argument, the figure's yscale) says
# linear or log (log only where every value is positive)
if (!exists("YSCALE")) { YSCALE = "auto" }
YLOG = (YLO_min > 0 && (YSCALE eq "log" || (YSCALE ne "linear" && Y_max >= 5 * YLO_min))) ? 1 : 0
if (YLOG) {
    YTOP = Y_max * 1.3
    set logscale y 10
    set yrange [YLO_min / 1.15:Y_max * 1.15]
    # 1-2-5 tics over each decade, or 1..9 where the span is below 30x
    do for [e=-6:6] {
        if (Y_max < 30 * YLO_min) {
            do for [m=2:9] { set ytics add (m * 10.0**e) }
        } else {
            set ytics add (2 * 10.0**e, 5 * 10.0**e)
        }
    }
    set format y "%g"
    set ylabel YL." (log scale)"
}
set logscale x XLOG
# tics at the x values of the data (batch sizes, learning rates)
set xtics () nomirror
set xlabel XL
if (!YLOG) { set ylabel YL }
set autoscale xfix
set offsets graph 0.03, graph 0.03, 0, 0
if (D_max > 0) { if (YLOG) { set yrange [YLO_min / 1.15:YTOP * 1.1] } else { set yrange [*:YTOP + 0.04 * YSPAN] } }
if (NP) {
    set y2range [PV_min - 0.08 * PSPAN:PV_max + 0.08 * PSPAN]
    set y2tics nomirror
    set y2label "the paper's value (dashed, right axis)"
}
set key outside right top reverse Left samplen 4 spacing 1.2 width -1 title "mean over seeds,\nband: min-max" font ",12"
plot for [i=0:NS-1] IN using "x":(column("sid") == i ? column("min") : NaN):"max" with filledcurves lt (101+i) notitle, \
     for [i=0:NS-1] IN using "x":(column("sid") == i ? column("mean") : NaN):xtic(sprintf("%g", column("x"))) with linespoints lt (101+i) title LAB[i+1], \
     for [i=0:(D_max > 0 ? NS-1 : -1)] IN using "x":(column("sid") == i && column("n_diverged") > 0 ? (column("mean") == column("mean") ? column("mean") : YTOP) : NaN) with points lt (101+i) pt 2 ps 3 lw 3 notitle, \
     NaN with points lc rgb "#000000" pt 2 ps 2 lw 3 title (D_max > 0 ? "x: runs diverged (at the top edge: all of them)" : ""), \
     for [j=0:NP-1] PAPER using "x":(column("pid") == j ? column("value") : NaN) axes x1y2 with linespoints lc rgb "#555555" dt 2 lw 1.5 pt (4 + 2 * j) ps 1.3 title PLAB[j+1]
set output
