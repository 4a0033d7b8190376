/* src/analyze/reproduce.h - an experiment end to end: run its sweeps
 * (resuming), summarize, draw its figures, evaluate its checks, write
 * its report, verdict and the results index.
 *
 * Where things go.  ROOT is --results DIR, else the first config's
 * [experiment] results_dir ("results"); with --quick, ROOT/quick.  The
 * runs of each config go where the runner puts them (ROOT/CONFIG_NAME/
 * RUN_ID/); the experiment's own files go to ROOT/NAME/:
 *
 *   report.md     claim, source, the paper's numbers, the measured ones,
 *                 the figures, each check with its values, the verdict
 *   verdict.txt   key = value lines the index reads
 *   tables/       runs.csv groups.csv curves.csv probes.csv (summarize.h)
 *   figures/      NAME.csv (the figure's data), NAME.png (and .svg/.pdf
 *                 when asked), NAME.log (gnuplot's messages)
 *   configs/      --quick (or --results): the overlay configs that were
 *                 run, each `include`-ing the original and overriding
 *                 the [quick ...] keys
 *   archive/      the runs' data the report needs (archive.h: runs.csv,
 *                 metrics.csv, probes.csv, slices.csv, gzipped when
 *                 large), committed; written with every report, never
 *                 replaced by one with fewer finished runs
 * and ROOT/index.md lists every experiment with its verdict.
 *
 * Regeneration.  A run whose directory has no DONE and no error.txt is
 * read from archive/ (a finished run directory wins), so in a fresh
 * clone --no-run (and plot) rewrite tables/, figures/, report.md,
 * verdict.txt and index.md byte for byte: the report's when, version and
 * machine lines come from the runs' meta facts in the archive, not from
 * the clock or the host.  Without running, a run with neither a
 * directory nor an archive entry is an error (nb_repro_missing) before
 * anything is written.  Everything is written into NAME/.staging-PID/
 * first and moved into place at the end, a file only when its bytes
 * changed; plot that draws no figure is an error and writes nothing.
 *
 * gnuplot: $GNUPLOT, else configure's path, else `gnuplot` on PATH; the
 * scripts: --plots DIR, else $NORMBENCH_PLOTS, else plots/ next to the
 * experiments directory.  Without gnuplot the figures are skipped and the
 * report says why; everything else still runs. */
#ifndef NB_HARNESS_REPRODUCE_H
#define NB_HARNESS_REPRODUCE_H

#include <stdbool.h>
#include <stdio.h>

#include "core/env.h"
#include "core/error.h"
#include "analyze/check.h" /* nb_verdict_name for the result */
#include "run/progress.h"
#include "analyze/summarize.h"

struct nb_repro_opts {
    int jobs;                 /* worker processes (>= 1) */
    bool quick;               /* apply the [quick ...] overrides */
    bool run;                 /* run the sweeps (false: report what is on disk) */
    bool figures;             /* draw the figures */
    bool report;              /* evaluate checks, write report/verdict/index */
    const char *results;      /* ROOT override (NULL: the config's) */
    const char *plots_dir;    /* NULL: see above */
    const char *formats;      /* "png", "png,svg", ... (NULL: png) */
    enum nb_progress_mode progress;
    FILE *out;                /* messages (stderr when NULL) */
    const struct nb_env *env; /* GNUPLOT, PATH, NORMBENCH_PLOTS, and the
                                 runner's (NULL: unset) */
};

void nb_repro_opts_default(struct nb_repro_opts *o);

struct nb_repro_result {
    int verdict;              /* enum nb_verdict (-1 when no report) */
    char report[2048];        /* path of report.md */
    char figures[2048];       /* the figures directory */
    char index[2048];         /* ROOT/index.md */
    int figs_drawn, figs_total;
    int figs_failed;          /* gnuplot ran and failed (not: nothing to
                                 draw, gnuplot missing) */
    int checks_pass, checks_total;
    bool complete;
};

/* Finds an experiment: an existing path, else experiments/NAME.ini (and
 * NAME as given + ".ini").  Returns 0 with the path in buf, or NB_ENOENT
 * with the experiments that exist in the hint. */
int nb_experiment_find(const char *name, char *buf, size_t size,
                       struct nb_error *err);

/* Runs experiment (a path or a name, see nb_experiment_find).  Returns 0
 * when the report (or the figures, for report = false) was written, or a
 * negative status with err filled.  Failed runs do not fail the call:
 * they make the verdict inconclusive. */
int nb_reproduce(const char *experiment, const struct nb_repro_opts *o,
                 struct nb_repro_result *res, struct nb_error *err);

/* Writes s's tables into dir as nb_summary_write_tables does, through a
 * staging directory beside it: each file is moved into place only when
 * its bytes changed, and a failure leaves dir as it was. */
int nb_repro_write_tables(const struct nb_summary *s, const char *dir,
                          struct nb_error *err);

/* The runs of s that have no data (pending: neither a finished run
 * directory nor an archive entry): 0 when there is none, else NB_ENOENT
 * with err naming where (a path), a few of them, the archive consulted
 * and, as the hint, the command that makes them. */
int nb_repro_missing(const struct nb_summary *s, const char *where,
                     const char *archive, const char *command,
                     struct nb_error *err);

/* Runs one gnuplot script with the binary gp (nb_gnuplot_path's; NULL:
 * not installed): gnuplot -c SCRIPT IN OUT [ARG3] (arg3 NULL: none; a
 * vs_* figure's yscale), its messages to log (may be NULL).  Returns 0 when gnuplot exited 0 and OUT is a non-empty file,
 * NB_ENOENT when gnuplot is not installed, NB_EIO else (err says why and
 * points at the log). */
int nb_gnuplot_run(const char *gp, const char *script, const char *in, const char *out,
                   const char *arg3, const char *log, struct nb_error *err);

/* The gnuplot binary reproduce uses, or NULL when none is found: env's
 * GNUPLOT (a path, or a name looked for on env's PATH), configure's path,
 * or the first gnuplot on env's PATH (/usr/bin:/bin when unset; then
 * written into buf). */
const char *nb_gnuplot_path(const struct nb_env *env, char *buf, size_t size);

#endif
