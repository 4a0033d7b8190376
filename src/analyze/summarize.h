/* src/analyze/summarize.h - an experiment's runs as tidy tables.
 *
 * A summary is built from run directories (runner.h's layout:
 * RUN_ID/config.ini, metrics.csv, probes.csv, slice.csv, meta.txt, DONE),
 * either the runs of a sweep (nb_summary_add_sweep: sweep order, a run
 * without DONE counts as pending or failed) or every run directory found
 * under a folder (nb_summary_add_dir: for results nobody has the config
 * of any more, and for tests).  Several sweeps may go into one summary
 * (an experiment that runs a cnn and a deep linear net).
 *
 * nb_summary_group then splits the runs into groups: runs whose resolved
 * configs differ only in [experiment] seeds (and the META keys: name,
 * results_dir, target_accuracy) form one group, the seeds being its
 * replicates.  The keys that differ between groups are the summary's
 * "varying" keys (the swept axes, and keys that differ between configs);
 * every table repeats them as section.key columns, so gnuplot, R and
 * pandas need no joins.  A group's label names its varying keys in a few
 * words ("batch bs=8"); keys fixed by the others (a learning rate zipped
 * to the batch size) are left out of it.  Group order: the order of
 * the group's first run (sweep order; for a directory, sorted by the
 * varying keys, numbers numerically).
 *
 * Per run it computes the scalars below from metrics.csv (the last
 * evaluation is "final"), and params from meta.txt; a diverged run keeps
 * steps, wall_time, params and diverged = 1 and has every other scalar
 * NaN, so it drops out of means (n counts finite values) and shows in the
 * n_diverged columns instead.
 *
 * Tables (nb_summary_write_tables, into DIR):
 *   runs.csv    one row per run: sid, label, run_id, status, seed,
 *               varying keys, the scalars
 *   groups.csv  one row per group: sid, label, title, varying keys,
 *               n_runs, n_done, n_diverged, n_missing, then for each
 *               scalar S: S_mean, S_std, S_min, S_max, S_median, S_n
 *   curves.csv  per group and evaluation step (steps aligned across the
 *               replicates): sid, label, keys, step, epoch, n, and for
 *               each metrics.csv column C (and the derived train_error,
 *               test_error in percent): C_mean, C_std, C_min, C_max
 *   probes.csv  (when any run has probes) per group, probe, layer, param,
 *               param_value, stat and step: sid, label, keys, probe,
 *               layer, param, param_value, stat, step, epoch, n, mean,
 *               std, min, max.  Landscape rows gain two derived stats:
 *               loss_range = loss_max - loss_min and grad_change_range.
 * Every table is sorted by sid first, so each series is contiguous.
 *
 * The figure tables (nb_summary_figure_table) are narrower: one per
 * figure, with fixed column names that plots/ *.gp read (see the comment
 * at the top of each script): sid (the series, contiguous), series (its
 * label with n), ci and di (colour and dash ordinals: the colour follows
 * the normalization, the dash the other label keys), then the figure's
 * columns.
 *
 * Statistics over replicates (GSL's gsl_stats_*): mean, sample standard
 * deviation (n - 1; 0 for one value), min, max, median, n = number of
 * finite values.
 *
 * All functions return 0 or a negative status with err filled
 * ("FILE:LINE: message" for a malformed file). */
#ifndef NB_HARNESS_SUMMARIZE_H
#define NB_HARNESS_SUMMARIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/error.h"
#include "config/sweep.h"

/* ---- per-run scalars ----------------------------------------------------- */

enum nb_sum_scalar {
    NB_SC_FINAL_TEST_ACC = 0, /* test_acc of the last evaluation (0..1) */
    NB_SC_FINAL_TEST_ERROR,   /* 100 * (1 - final_test_acc), percent */
    NB_SC_FINAL5_TEST_ERROR,  /* median test error of the last 5 evaluations */
    NB_SC_BEST_TEST_ACC,      /* max test_acc over evaluations */
    NB_SC_BEST_TEST_ERROR,    /* 100 * (1 - best_test_acc) */
    NB_SC_SELECTED_TEST_ACC,  /* model selection by validation: test_acc
                                 at the evaluation with the highest
                                 val_acc (the first of ties); NaN without
                                 a validation split */
    NB_SC_SELECTED_TEST_ERROR, /* 100 * (1 - selected_test_acc) */
    NB_SC_FINAL_TEST_LOSS,
    NB_SC_FINAL_TRAIN_LOSS,
    NB_SC_FINAL_TRAIN_ACC,
    NB_SC_FINAL_TRAIN_ERROR,  /* percent */
    NB_SC_MIN_TRAIN_LOSS,
    NB_SC_STEPS,              /* step of the last evaluation */
    NB_SC_EPOCHS,             /* epoch of the last evaluation */
    NB_SC_STEPS_TO_TARGET,    /* first step with test_acc >= the run's
                                 [experiment] target_accuracy; NaN when
                                 never reached or no target */
    NB_SC_EPOCHS_TO_TARGET,
    NB_SC_WALL_TIME,          /* seconds: the time column's last value */
    NB_SC_DIVERGED,           /* 1 diverged, 0 not */
    NB_SC_PARAMS,             /* trainable parameters (meta.txt's params;
                                 NaN for runs made before it was recorded) */
    NB_SC_COUNT
};

/* "final_test_acc", ...; NULL when out of range. */
const char *nb_sum_scalar_name(int sc);
/* Its axis title ("final test error (%)"); NULL when out of range. */
const char *nb_sum_scalar_title(int sc);
/* Index of a scalar name, or -1. */
int nb_sum_scalar_lookup(const char *name);

/* ---- the data ------------------------------------------------------------ */

enum nb_sum_status {
    NB_SUM_DONE = 0,
    NB_SUM_DIVERGED,
    NB_SUM_FAILED,   /* error.txt, no DONE */
    NB_SUM_PENDING,  /* not run (yet), or killed */
    NB_SUM_STATUS_COUNT
};
const char *nb_sum_status_name(int st);

/* A numeric table (metrics.csv of one run): ncols names, nrows rows. */
struct nb_sum_table {
    int ncols;
    char **names;
    size_t nrows;
    double *v; /* row-major */
};

/* One probes.csv row; strings are ids in the summary's string pool
 * (nb_summary_str), -1 for an empty field. */
struct nb_sum_prow {
    long step;
    int probe, layer, param, stat;
    double param_value; /* NaN when none */
    double value;
};

/* One slice of slice.csv: na x nb grid points (nb = 1 for a 1-D slice),
 * a in the outer loop, taken at step (-1 when unknown: a slice.csv
 * written before its step column). */
struct nb_sum_slice {
    int dim;
    int na, nb;
    long step;
    double *a, *b, *loss, *acc; /* na * nb each */
};

struct nb_sum_run {
    char run_id[17];
    char *dir;
    char **vals;          /* [nb_key_count()] canonical values */
    unsigned long long seed;
    int status;           /* enum nb_sum_status */
    int group;            /* after nb_summary_group */
    int rep;              /* replicate position in its group (seed order) */
    long order;           /* insertion order */
    double sc[NB_SC_COUNT];
    double steps_per_epoch; /* NaN when unknown */
    struct nb_sum_table metrics;
    struct nb_sum_prow *probes;
    size_t n_probes, cap_probes;
    struct nb_sum_slice *slices;
    int n_slices;
    bool archived;        /* read through the summary's fallback (an
                             archive), not from its run directory */
};

struct nb_sum_group {
    int *runs;            /* run indices, seed order */
    int n_runs;
    char *label;          /* varying keys in words, e.g. "batch bs=8" */
    char *title;          /* label + " (n=3)" or " (n=3, 1 diverged)" */
    int n_done, n_diverged, n_missing; /* missing: failed + pending */
};

/* A run's data from somewhere other than its run directory (archive.h):
 * the texts its metrics.csv, probes.csv and slice.csv had (NULL when the
 * run had no such file), its status and its wall_time and params
 * scalars. */
struct nb_sum_runsrc {
    int status;           /* NB_SUM_DONE, NB_SUM_DIVERGED or NB_SUM_FAILED */
    double wall_time;
    double params;        /* NaN when unknown */
    char *metrics, *probes, *slice; /* malloc'd, freed by the summary */
    size_t metrics_len, probes_len, slice_len;
    const char *name;     /* names the texts in messages */
};

/* Looks run_id up: 1 with *src filled, 0 when it has no data for it, or
 * a negative status with err filled. */
typedef int (*nb_sum_fallback_fn)(void *user, const char *run_id,
                                  struct nb_sum_runsrc *src,
                                  struct nb_error *err);

struct nb_summary {
    nb_sum_fallback_fn fallback; /* NULL: run directories only */
    void *fallback_user;
    struct nb_sum_run *runs;
    size_t n_runs, cap_runs;
    struct nb_sum_group *groups;
    int n_groups;
    int *vary;            /* key indices of the varying keys, label order */
    int n_vary;
    bool *in_label;       /* [n_vary]: key shown in labels */
    int max_reps;         /* most runs in a group */
    /* key order hints from the sweeps (swept axes in product order) */
    int *axis_order;
    int n_axis;
    bool sort_runs;       /* set by add_dir: sort runs before grouping */
    /* the string pool (probe, layer, param, stat names) */
    char **strs;
    int n_strs, cap_strs;
    /* per-step metric columns: the union over runs, derived ones last */
    char **mcols;
    int n_mcols;
    /* the probe rows kept (nb_summary_keep_probes): PROBE.STAT names;
     * n_keep 0: every row */
    char **keep;
    int n_keep;
    /* the probe layers kept (nb_summary_keep_layers); n_keep_layers 0:
     * every layer */
    char **keep_layers;
    int n_keep_layers;
};

/* Whether scalar sc has a column in s's tables (runs.csv, groups.csv):
 * always, but for a scalar recorded since 0.1.0 (params) only when some
 * run of s has it, so the tables of runs made before it regenerate byte
 * for byte. */
bool nb_sum_scalar_tabled(const struct nb_summary *s, int sc);

void nb_summary_init(struct nb_summary *s);
void nb_summary_free(struct nb_summary *s);

/* Keeps only the probe rows whose PROBE.STAT is one of names[0..n) (an
 * experiment's probe_stats): the others are not read, so they leave the
 * tables and the archive built from s (the run directories keep them).
 * n 0: every row.  Call before adding runs; 0 or NB_ENOMEM. */
int nb_summary_keep_probes(struct nb_summary *s, char *const *names, int n);

/* Keeps only the probe rows of the layers names[0..n) (an experiment's
 * probe_layers) and those of no layer (the whole model's probes); the
 * others leave the tables and the archive as with nb_summary_keep_probes.
 * n 0: every layer.  Call before adding runs; 0 or NB_ENOMEM. */
int nb_summary_keep_layers(struct nb_summary *s, char *const *names, int n);

/* Whether s keeps the rows of probe's stat at layer (NULL or empty: of
 * no layer). */
bool nb_summary_keeps_probe(const struct nb_summary *s, const char *probe, const char *stat,
                            const char *layer);

/* Adds the runs of sw, reading them from exp_dir/RUN_ID; a run whose
 * directory has neither DONE nor error.txt is looked up through the
 * fallback (when set: nb_summary_set_fallback) and is pending when that
 * has no data for it either. */
int nb_summary_add_sweep(struct nb_summary *s, const struct nb_sweep *sw,
                         const char *exp_dir, struct nb_error *err);

/* Where add_sweep looks for runs without a finished run directory (an
 * experiment's archive, archive.h); fn NULL: nowhere. */
void nb_summary_set_fallback(struct nb_summary *s, nb_sum_fallback_fn fn,
                             void *user);

/* Adds every subdirectory of dir that holds a config.ini. */
int nb_summary_add_dir(struct nb_summary *s, const char *dir,
                       struct nb_error *err);

/* Adds one run directory (config.ini read with nb_sweep_load; exactly
 * one run). */
int nb_summary_add_run_dir(struct nb_summary *s, const char *run_dir,
                           struct nb_error *err);

/* Groups the runs (see above).  Call once, after the adds. */
int nb_summary_group(struct nb_summary *s, struct nb_error *err);

/* The pooled string with this id ("" for -1), and the id of a string
 * (-1 when absent). */
const char *nb_summary_str(const struct nb_summary *s, int id);
int nb_summary_str_find(const struct nb_summary *s, const char *str);

/* The files nb_summary_write_tables writes (NULL-terminated). */
extern const char *const nb_sum_table_files[];

/* Writes runs.csv, groups.csv, curves.csv and (when any run has probe
 * rows) probes.csv into dir (created when missing). */
int nb_summary_write_tables(const struct nb_summary *s, const char *dir,
                            struct nb_error *err);

/* Display name of a key in labels and axis titles: "bs" for train.batch,
 * "lr", "G" for norm.groups, the bare key where unique, else
 * section.key. */
const char *nb_sum_key_short(int key);

/* ---- selections (the check language's data access) ---------------------- */

enum nb_cmp { NB_CMP_EQ = 0, NB_CMP_NE, NB_CMP_LT, NB_CMP_LE, NB_CMP_GT,
              NB_CMP_GE, NB_CMP_COUNT };
const char *nb_cmp_str(enum nb_cmp op); /* "=", "!=", "<", ... */

/* Filter keys besides the config keys (key >= 0, an index of keys.h's flat key list). */
enum nb_fkey {
    NB_FK_STEP = -1,        /* the evaluation / probe step */
    NB_FK_EPOCH = -2,       /* step / steps per epoch */
    NB_FK_LAYER = -3,       /* probes: layer name */
    NB_FK_PARAM = -4,       /* probes: param name (eta, in, out, ...) */
    NB_FK_PARAM_VALUE = -5, /* probes: param value (eta for landscape) */
    NB_FK_MIN_ = -6
};

/* KEY OP VALUE: values are alternatives (a|b: = any of them, != none of
 * them); a range lo..hi (with =: lo <= v <= hi; with !=: outside).  A
 * value that reads as a number compares numerically with a numeric
 * field, otherwise as text; <, <=, >, >= need numbers. */
struct nb_sum_filter {
    int key;
    enum nb_cmp op;
    int n_vals;
    char **vals;
    double *num;       /* [n_vals], NaN when the value is not a number */
    bool range;
    double lo, hi;
    char *text;        /* as written, for messages */
};
void nb_sum_filter_free(struct nb_sum_filter *f);

/* A metric: a per-run scalar (above), a metrics.csv column (per step;
 * train_error and test_error are derived, percent) or PROBE.STAT from
 * probes.csv (per step, and per layer / param where the probe has them). */
enum nb_metric_kind { NB_MK_SCALAR = 0, NB_MK_STEP, NB_MK_PROBE };
struct nb_metric {
    int kind;
    int scalar;        /* NB_MK_SCALAR */
    char *column;      /* NB_MK_STEP */
    char *probe, *stat; /* NB_MK_PROBE */
    char *text;        /* as written */
};
void nb_metric_free(struct nb_metric *m);

/* Parses a metric name strictly: a scalar name, a known metrics.csv
 * column, or PROBE.STAT with a known probe and stat (the lists in the
 * check language's documentation).  Returns 0 or NB_EINVAL with err at
 * file:line ("unknown metric 'x'", did-you-mean hint). */
int nb_metric_parse(const char *name, const char *file, int line,
                    struct nb_metric *m, struct nb_error *err);

/* The landscape stats the summary derives per step (sum_read.c: loss_max -
 * loss_min, and the same for grad_change), NULL-terminated: a check may
 * name them; no probe writes them. */
extern const char *const nb_sum_derived_stats[];

/* One selected value: its group, and the coordinates of the point inside
 * the group (step -1, layer/param -1 and param_value NaN for scalars). */
struct nb_sum_point {
    int group;
    long step;
    double epoch;
    int layer, param;
    double param_value;
    double value;
};

/* Mode of a selection: NB_SEL_MEAN takes, at each point, the mean of the
 * group's replicates that have a finite value there; a mode k >= 0 takes
 * the value of replicate k (the group's k-th seed) and skips groups
 * without one. */
#define NB_SEL_MEAN (-1)

/* Selects the values of m at every point of every group that passes all
 * filters (config keys are tested on the group, step/epoch/layer/param on
 * the point), in group order then layer, param, param_value, step.
 * Points without a finite value are left out.  *out is malloc'd (may be
 * NULL when *n is 0).  Errors: a filter that does not apply to the
 * metric's kind (layer on a scalar), a metrics column no run has. */
int nb_summary_select(const struct nb_summary *s, const struct nb_metric *m,
                      const struct nb_sum_filter *f, int nf, int mode,
                      struct nb_sum_point **out, size_t *n,
                      struct nb_error *err);

/* The same selection with each group's replicates weighted: at each
 * point, the weighted mean over the replicates k with w[g * max_reps + k]
 * > 0 and a finite value (w has n_groups * max_reps entries).  Integer
 * weights are a resample of the seeds (the check language's bootstrap). */
int nb_summary_select_w(const struct nb_summary *s, const struct nb_metric *m,
                        const struct nb_sum_filter *f, int nf, const double *w,
                        struct nb_sum_point **out, size_t *n,
                        struct nb_error *err);

/* The same selection prepared once (its points gathered and sorted) and
 * collapsed many times with different weights: what nb_summary_select_w
 * returns, at a fraction of the cost.  prepare reports the errors a
 * selection would. */
struct nb_sum_prepared;
int nb_summary_select_prepare(const struct nb_summary *s, const struct nb_metric *m,
                              const struct nb_sum_filter *f, int nf,
                              struct nb_sum_prepared **out, struct nb_error *err);
int nb_summary_select_prepared(const struct nb_summary *s, const struct nb_sum_prepared *p,
                               const double *w, struct nb_sum_point **out, size_t *n,
                               struct nb_error *err);
void nb_summary_prepared_free(struct nb_sum_prepared *p);

/* The value of probe metric m for replicate k of group g at that run's
 * last step among the points that pass f (and, when param is not NULL,
 * name that param): the mean of those points there; NaN when none.  The
 * "final" value of a probe, as report tables and figures show it. */
double nb_summary_last_value(const struct nb_summary *s, const struct nb_metric *m,
                             const struct nb_sum_filter *f, int nf, int g, int k,
                             const char *param);

/* The param names of m's points that pass f, in order of first
 * appearance ("" for rows without one): *out is malloc'd, its strings the
 * summary's.  Returns the count, or a negative status. */
int nb_summary_params(const struct nb_summary *s, const struct nb_metric *m,
                      const struct nb_sum_filter *f, int nf, const char ***out);

/* Does group g pass the config-key filters among f? */
bool nb_summary_group_matches(const struct nb_summary *s, int g,
                              const struct nb_sum_filter *f, int nf);

/* The value of config key k in group g (canonical text). */
const char *nb_summary_group_val(const struct nb_summary *s, int g, int key);

/* ---- figure tables ------------------------------------------------------- */

enum nb_fig_kind {
    NB_FIG_CURVES = 0, /* train loss and test error over epochs */
    NB_FIG_VS_BATCH,   /* a scalar vs a key (log2 x), one line per series */
    NB_FIG_VS_LR,      /* a scalar vs a key (log10 x), diverged marked */
    NB_FIG_LANDSCAPE,  /* Santurkar bands over training */
    NB_FIG_ICS,        /* ICS l2 and cosine per layer over training */
    NB_FIG_DIST,       /* activation percentiles over training */
    NB_FIG_HESSIAN,    /* lambda_max and trace vs a key */
    NB_FIG_SLICE1D,    /* 1-D slice curves */
    NB_FIG_SLICE2D,    /* 2-D slice heat maps with contours */
    NB_FIG_ERRORS,     /* training error and test error over epochs (the
                          curves table, linear axes) */
    NB_FIG_TRACE,      /* y = PROBE.STAT over training, a line per group,
                          param (and value) and layer */
    NB_FIG_COUNT
};
/* "curves", "vs_batch", ... = the script plots/NAME.gp; parse: 0 or -1. */
const char *nb_fig_kind_name(int k);
int nb_fig_kind_parse(const char *s);

/* What a figure kind takes in an experiment file (the one table of them:
 * report.c checks a [figure] against it, summarize.c writes its CSV). */
struct nb_fig_kind_info {
    const char *name;      /* = plots/NAME.gp */
    const char *default_x; /* the x key when none is given; NULL: no x */
    bool takes_y;          /* y = a per-run scalar */
    bool takes_param;      /* param = in|out */
    bool paper_overlay;    /* paper = TABLE draws the paper's values */
};
/* NULL when k is not a kind. */
const struct nb_fig_kind_info *nb_fig_kind_info(int k);

struct nb_fig_spec {
    int kind;
    int x;                 /* vs_batch, vs_lr, hessian: the x key */
    int scalar;            /* vs_*: the scalar on y */
    const struct nb_metric *probe; /* vs_*: y = this PROBE.STAT instead (each
                              run's value at its last probed step,
                              nb_summary_last_value), a line per series and
                              param; NULL: the scalar */
    const struct nb_sum_filter *where; /* groups (and points) kept */
    int n_where;
    const char *param;     /* dist: "in" or "out" (NULL: out) */
    const int *series;     /* key-on-x figures: the keys whose values make a
                              series; NULL: every varying key in the
                              labels but x and the keys x determines */
    int n_series;
};

/* Writes the table figure f reads to path.  Returns 0, NB_ENOENT when
 * the summary has nothing to draw (no probe rows of that kind, no
 * slices: the caller skips the figure and says why in err), or an
 * error. */
int nb_summary_figure_table(const struct nb_summary *s,
                            const struct nb_fig_spec *f, const char *path,
                            struct nb_error *err);

/* ---- small helpers shared with the check language and the report -------- */

/* mean, sample std, min, max, median of the finite values of v[0..n);
 * returns the count of finite values (all NaN when 0).  Reorders v. */
int nb_stats(double *v, size_t n, double *mean, double *std, double *min,
             double *max, double *median);

/* mkdir -p; 0 or NB_EIO. */
int nb_mkdirs(const char *path, struct nb_error *err);

/* Writing a file whole or not at all: nb_atomic_begin opens PATH.tmp
 * (its name into tmp) for the caller to write; nb_atomic_end closes it and
 * renames it to path, or on a write error removes it and leaves path as it
 * was.  0 or NB_EIO. */
int nb_atomic_begin(const char *path, char *tmp, size_t n, FILE **fp, struct nb_error *err);
int nb_atomic_end(const char *path, const char *tmp, FILE *fp, struct nb_error *err);

#endif
