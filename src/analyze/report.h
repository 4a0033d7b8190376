/* src/analyze/report.h - experiment definitions (experiments/NAME.ini)
 * and what reproduce writes from them: report.md, verdict.txt and the
 * results index.
 *
 * An experiment file is strict INI (config.h's reader: comments, includes,
 * continuation lines) with these sections; an unknown section or key, a
 * repeated single key, a bad key or value is "FILE:LINE: message":
 *
 *   [experiment]
 *   name     = NAME        default: the file's base name
 *   claim    = one sentence: what the paper says
 *   source   = paper, figure or table
 *   paper    = the paper's numbers in words (from claims.md), or "none"
 *   config   = PATH        repeatable; relative to this file
 *   estimate = the full run's CPU time, in words
 *   notes    = anything the report should say about the setting
 *   caveats  = what a reader must know before trusting the verdict, in a
 *              few words (results/index.md shows it)
 *   robustness = how the verdict was checked against the BLAS kernels
 *              (OPENBLAS_CORETYPE) or [model] conv_algo, written after those
 *              runs ("not checked" when absent and there are no reruns);
 *              the numbers, and what counts, come from the committed
 *              reruns (rerun.h), which the report shows in its own section
 *   discussion = a paragraph written after the runs (repeatable, one
 *              paragraph each): how to read the results, what might
 *              explain a claim that does not reproduce; the report prints
 *              it under its own heading, apart from the computed verdict
 *   probe_stats = PROBE.STAT ...  the probe rows the summary keeps: its
 *              tables/probes.csv and the archive hold these stats only (the
 *              run directories every row), to keep a probe-heavy
 *              experiment's archive small; each a stat a probe writes (not
 *              loss_range or grad_change_range, which the summary derives
 *              from loss_min/max and grad_change_min/max), once; the report
 *              lists them; default: every row
 *   probe_layers = LAYER ...  likewise the layers whose probe rows the
 *              summary keeps (rows of no layer, the whole model's, are
 *              always kept): for a probe that writes every layer when the
 *              figures and checks read a few; each once; default: every
 *              layer
 *
 *   [quick SECTION]        overrides for --quick, applied to every config
 *   KEY = VALUE            (SECTION.KEY must be a config key; a list
 *                          makes a sweep axis, as in a config)
 *
 *   [figure NAME]          a figure: plots/KIND.gp over a table
 *   kind    = curves | vs_batch | vs_lr | landscape | ics | dist |
 *             hessian | slice1d | slice2d
 *   x       = KEY          vs_batch, vs_lr, hessian (default train.batch,
 *                          optim.lr, model.depth)
 *   y       = SCALAR       vs_batch, vs_lr (default final_test_error)
 *   where   = FILTERS      which groups / points (check-language filters)
 *   param   = in | out     dist (default out)
 *   paper   = TABLE        vs_batch, vs_lr: overlay that [table]'s paper
 *                          numbers (its rows the series, its columns the
 *                          figure's x) as dashed reference lines on a
 *                          second y axis: figures/NAME.paper.csv
 *   paper_label = text     appended to each reference series' name
 *                          (default "paper"), e.g. "paper, ImageNet"
 *   caption = text
 *
 *   [table NAME]           measured numbers next to the paper's
 *   metric  = SCALAR       (mean +- std over seeds in each cell)
 *   rows    = KEY
 *   columns = KEY          optional
 *   where   = FILTERS      optional
 *   paper   = ROW: VALUE             repeatable; one cell without columns
 *   paper   = ROW: COL=VALUE, ...    with columns
 *   caption = text
 *
 *   [check NAME]
 *   expect  = STATEMENT    the check language (check.h)
 *   about   = text         what it tests, in words
 *   central = true|false   the claim's central check (at most one; the
 *                          first check when none is): the verdict is
 *                          "not reproduced" when it fails (check.h)
 *
 * Paths in the report are relative to the report's directory. */
#ifndef NB_HARNESS_REPORT_H
#define NB_HARNESS_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/error.h"
#include "analyze/check.h"
#include "analyze/prereg.h"
#include "analyze/rerun.h"
#include "analyze/summarize.h"

struct nb_exp_override {
    char *section, *key, *value;
    int line;
};

struct nb_exp_figure {
    char *name;
    int line;
    int kind;                 /* enum nb_fig_kind */
    int x;                    /* key index, -1 when none */
    int scalar;               /* y: a per-run scalar, or -1: probe below */
    struct nb_metric probe;   /* vs_*: y = PROBE.STAT, each run's value at
                                 its last probed step, a line per param */
    struct nb_sum_filter *where;
    int n_where;
    char *param;              /* dist: in / out (NULL: out) */
    char *caption;
    int paper_table;          /* vs_*: the [table] whose paper numbers are
                                 overlaid (-1: none) */
    char *paper_label;        /* "paper" when NULL */
    int *series;              /* key-on-x figures: the keys that make a
                                 series (NULL: every varying key but x) */
    int n_series;
    char *yscale;             /* vs_*: auto (NULL), linear or log: the y
                                 axis (auto: log from a factor of 5) */
};

struct nb_exp_paper {
    char *row, *col;          /* canonical key values; col NULL without columns */
    double value;
    int line;
};

/* cols of a probe table whose columns are the rows' param names */
#define NB_TABLE_COLS_PARAM (-2)

struct nb_exp_table {
    char *name;
    int line;
    int scalar;               /* a per-run scalar, or -1: probe below */
    struct nb_metric probe;   /* scalar -1: PROBE.STAT, each run's value at
                                 its last probed step (the mean over the
                                 rows there that pass the filters) */
    int rows, cols;           /* key indices; cols -1 when none,
                                 NB_TABLE_COLS_PARAM: the rows' param */
    struct nb_sum_filter *where;
    int n_where;
    struct nb_exp_paper *paper;
    int n_paper;
    char *caption;
};

struct nb_experiment {
    char *path;
    char *name, *claim, *source, *paper, *estimate, *notes, *caveats, *robustness;
    char **discussion;        /* paragraphs, in file order */
    int n_discussion;
    char **probe_stats;       /* PROBE.STAT the summary keeps; none: all */
    int n_probe_stats;
    char **probe_layers;      /* layers whose probe rows it keeps; none: all */
    int n_probe_layers;
    char **configs;           /* as written */
    char **config_paths;      /* resolved against the file's directory */
    int n_configs;
    struct nb_exp_override *quick;
    int n_quick;
    struct nb_exp_figure *figs;
    int n_figs;
    struct nb_exp_table *tables;
    int n_tables;
    struct nb_check *checks;
    int n_checks;
};

/* Reads and checks an experiment file.  Returns 0 or a negative status
 * with err at FILE:LINE; e is freed on error. */
int nb_experiment_load(const char *path, struct nb_experiment *e,
                       struct nb_error *err);
void nb_experiment_free(struct nb_experiment *e);

/* Makes s, before any run is added, keep only the probe rows e keeps
 * (probe_stats, probe_layers): the one place that applies the keys, for
 * the runs and for each rerun alike.  0 or NB_ENOMEM. */
int nb_experiment_keep_probes(const struct nb_experiment *e, struct nb_summary *s);

/* Whether key of section is one of those written after the runs (the
 * [experiment] keys robustness and discussion): a registration's record
 * of the experiment file does not cover them. */
bool nb_experiment_after_runs_key(const char *section, const char *key);

/* ---- the report ----------------------------------------------------------- */

/* One figure as reproduce rendered it. */
struct nb_report_fig {
    const char *file;   /* image path relative to the report dir; NULL: not drawn */
    const char *table;  /* its data, relative to the report dir; may be NULL */
    const char *why;    /* when not drawn */
};

/* One config of the experiment as it ran. */
struct nb_report_cfg {
    const char *path;   /* the config used (the quick overlay in --quick) */
    const char *exp_dir;
    size_t total, done, diverged, failed, pending;
};

struct nb_report_in {
    const struct nb_experiment *e;
    const struct nb_summary *s;
    const struct nb_check_result *results;  /* e->n_checks */
    const struct nb_report_fig *figs;       /* e->n_figs */
    const struct nb_report_cfg *cfgs;       /* e->n_configs */
    bool quick;
    int verdict;                            /* enum nb_verdict */
    bool complete;                          /* no run missing */
    const char *tables_dir;                 /* relative to the report dir */
    const char *command;                    /* how to reproduce it */
    const char *when;                       /* when the runs were made (UTC) */
    const char *version;                    /* which normbench made them, costs */
    const char *machine;                    /* where (CPU, BLAS kernels) */
    long n_test;                            /* test images (0: unknown) */
    const int *reg;                         /* e->n_checks: enum nb_reg (NULL:
                                               none registered) */
    const struct nb_prereg *prereg;         /* may be NULL */
    const struct nb_rerun *reruns;          /* n_reruns of them (rerun.h) */
    int n_reruns;
    const int *own;                         /* with reruns: each check's
                                               outcome on these runs alone
                                               (results[] has the counted
                                               one, nb_outcome_agree) */
};

/* Writes report.md to path (atomically: a temporary file, then rename). */
int nb_report_write(const char *path, const struct nb_report_in *in,
                    struct nb_error *err);

/* Writes the one-line-per-key verdict file that the index reads:
 * name, claim, source, caveats, verdict, quick, checks (pass/total),
 * runs (done/total), date; the central check (central, effect, ci,
 * threshold, n, outcome) and post_hoc (the post hoc checks' names, or
 * "none"). */
int nb_verdict_write(const char *path, const struct nb_report_in *in,
                     struct nb_error *err);

/* Writes root/index.md: every experiment of experiments_dir (*.ini that
 * load) and every root/NAME/verdict.txt, with verdict, checks, runs and a
 * link to the report ("not run" when there is none).  quick marks the
 * index of quick runs. */
int nb_index_write(const char *root, const char *experiments_dir, bool quick,
                   struct nb_error *err);

#endif
