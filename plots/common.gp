# plots/common.gp - the shared prelude of every figure script (loaded by
# them, never run on its own).
#
# In:  IN (the table), OUT (the figure; its suffix picks the terminal:
#      .png -> pngcairo, .svg -> svg, .pdf -> pdfcairo), W and H (size in
#      pixels at 100 per inch; defaults 1000 x 640).
# Out: the terminal and output set, CSV input (comma, header row, NaN as
#      missing), the colours, and unless NOLABELS is set NS (the number of
#      series, from the sid column) and LAB[1..NS] (their labels, from the
#      series column).
#
# Fonts: Liberation Sans (Debian fonts-liberation), so text metrics are
# the same on every machine; no timestamps, so PNG and SVG output is
# reproducible byte for byte.

if (!exists("W")) W = 1000
if (!exists("H")) H = 640
_n = strlen(OUT)
_sfx = (_n > 4) ? OUT[_n-3:_n] : ""
if (_sfx eq ".png") {
    set terminal pngcairo size W,H font "Liberation Sans,14" linewidth 1.5 noenhanced background "white"
} else {
    if (_sfx eq ".svg") {
        set terminal svg size W,H font "Liberation Sans,14" linewidth 1.5 noenhanced background "white"
    } else {
        if (_sfx eq ".pdf") {
            set terminal pdfcairo size (W/100.0),(H/100.0) font "Liberation Sans,10" linewidth 1.2 noenhanced
        } else {
            print sprintf("%s: the output must end in .png, .svg or .pdf, not '%s'", ARG0, OUT)
            exit status 2
        }
    }
}
set output OUT

set datafile separator comma
set datafile columnheaders
set datafile missing NaN

# Okabe-Ito colours (colour-blind safe, no yellow), then the same dashed.
set linetype 1 lc rgb "#0072B2" lw 2 pt 7 ps 1.1 dt solid
set linetype 2 lc rgb "#D55E00" lw 2 pt 5 ps 1.1 dt solid
set linetype 3 lc rgb "#009E73" lw 2 pt 9 ps 1.3 dt solid
set linetype 4 lc rgb "#CC79A7" lw 2 pt 11 ps 1.3 dt solid
set linetype 5 lc rgb "#E69F00" lw 2 pt 13 ps 1.3 dt solid
set linetype 6 lc rgb "#56B4E9" lw 2 pt 15 ps 1.2 dt solid
set linetype 7 lc rgb "#000000" lw 2 pt 3 ps 1.2 dt solid
set linetype 8 lc rgb "#0072B2" lw 2 pt 6 ps 1.1 dt (8,4)
set linetype 9 lc rgb "#D55E00" lw 2 pt 4 ps 1.1 dt (8,4)
set linetype 10 lc rgb "#009E73" lw 2 pt 8 ps 1.3 dt (8,4)
set linetype 11 lc rgb "#CC79A7" lw 2 pt 10 ps 1.3 dt (8,4)
set linetype 12 lc rgb "#E69F00" lw 2 pt 12 ps 1.3 dt (8,4)
set linetype 13 lc rgb "#56B4E9" lw 2 pt 14 ps 1.2 dt (8,4)
set linetype 14 lc rgb "#000000" lw 2 pt 1 ps 1.2 dt (8,4)
set linetype cycle 14

set style fill transparent solid 0.18 noborder
set grid lc rgb "#DDDDDD" lw 1
set border lw 1.2
set tics nomirror
set key noautotitle
set key samplen 2.5 spacing 1.1

# Series styles: the colour follows the table's ci column (the scheme,
# so a normalization keeps its colour across batch sizes), the dash
# pattern and the point type its di column; series k is linetype 101+k.
array PAL[7] = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
array PTS[7] = [7, 5, 9, 11, 13, 15, 3]
if (!exists("NOLABELS")) {
    stats IN using "sid" nooutput
    NS = int(STATS_max) + 1
    array LAB[NS]
    do for [_i = 0:NS-1] {
        _l = ""
        _c = _i
        _s = 0
        stats IN using (column("sid") == _i ? (_l = strcol("series"), _c = column("ci"), _s = column("di"), 0) : NaN) nooutput
        LAB[_i + 1] = _l
        _dt = int(_s) % 5 + 1
        _pt = PTS[int(_s) % 7 + 1]
        _lc = PAL[int(_c) % 7 + 1]
        set linetype (101 + _i) lc rgb _lc lw 2 dt _dt pt _pt ps 1.2
    }
}
