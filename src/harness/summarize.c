/* src/harness/summarize.c - see summarize.h. */
#define _GNU_SOURCE /* qsort_r: comparators take their context, no globals */
#include "harness/summarize.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <csv.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#include "harness/config.h"
#include "harness/csvio.h"
#include "harness/train.h"

/* ======================================================================
 * Names
 * ====================================================================== */

/* Every per-run scalar: its column name and its axis title, tied to the
 * enum by designated initializers (a missing entry is caught by the
 * checks in nb_sum_scalar_name's users: a NULL name). */
static const struct {
    const char *name, *title;
} scalars[NB_SC_COUNT] = {
    [NB_SC_FINAL_TEST_ACC] = {"final_test_acc", "final test accuracy"},
    [NB_SC_FINAL_TEST_ERROR] = {"final_test_error", "final test error (%)"},
    [NB_SC_FINAL5_TEST_ERROR] = {"final5_test_error",
                                 "test error (%) - median of last 5 evaluations"},
    [NB_SC_BEST_TEST_ACC] = {"best_test_acc", "best test accuracy"},
    [NB_SC_BEST_TEST_ERROR] = {"best_test_error", "best test error (%)"},
    [NB_SC_SELECTED_TEST_ACC] = {"selected_test_acc",
                                 "test accuracy at the best validation accuracy"},
    [NB_SC_SELECTED_TEST_ERROR] = {"selected_test_error",
                                   "test error (%) at the best validation accuracy"},
    [NB_SC_FINAL_TEST_LOSS] = {"final_test_loss", "final test loss"},
    [NB_SC_FINAL_TRAIN_LOSS] = {"final_train_loss", "final training loss"},
    [NB_SC_FINAL_TRAIN_ACC] = {"final_train_acc", "final training accuracy"},
    [NB_SC_FINAL_TRAIN_ERROR] = {"final_train_error", "final training error (%)"},
    [NB_SC_MIN_TRAIN_LOSS] = {"min_train_loss", "lowest training loss"},
    [NB_SC_STEPS] = {"steps", "steps"},
    [NB_SC_EPOCHS] = {"epochs", "epochs"},
    [NB_SC_STEPS_TO_TARGET] = {"steps_to_target", "steps to target accuracy"},
    [NB_SC_EPOCHS_TO_TARGET] = {"epochs_to_target", "epochs to target accuracy"},
    [NB_SC_WALL_TIME] = {"wall_time", "wall time (s)"},
    [NB_SC_DIVERGED] = {"diverged", "fraction diverged"},
};

const char *nb_sum_scalar_name(int sc)
{
    return sc >= 0 && sc < NB_SC_COUNT ? scalars[sc].name : NULL;
}

int nb_sum_scalar_lookup(const char *name)
{
    for (int i = 0; i < NB_SC_COUNT; i++)
        if (!strcmp(scalars[i].name, name))
            return i;
    return -1;
}

static const char *const status_names[NB_SUM_STATUS_COUNT] = {
    "done", "diverged", "failed", "pending"};

const char *nb_sum_status_name(int st)
{
    return st >= 0 && st < NB_SUM_STATUS_COUNT ? status_names[st] : "?";
}

static const char *const cmp_names[NB_CMP_COUNT] = {"=", "!=", "<", "<=", ">", ">="};

const char *nb_cmp_str(enum nb_cmp op)
{
    return (int)op >= 0 && op < NB_CMP_COUNT ? cmp_names[op] : "?";
}

static const struct nb_fig_kind_info fig_kinds[NB_FIG_COUNT] = {
    /* name, default_x, takes_y, takes_param, paper_overlay */
    [NB_FIG_CURVES] = {"curves", NULL, false, false, false},
    [NB_FIG_VS_BATCH] = {"vs_batch", "train.batch", true, false, true},
    [NB_FIG_VS_LR] = {"vs_lr", "optim.lr", true, false, true},
    [NB_FIG_LANDSCAPE] = {"landscape", NULL, false, false, false},
    [NB_FIG_ICS] = {"ics", NULL, false, false, false},
    [NB_FIG_DIST] = {"dist", NULL, false, true, false},
    [NB_FIG_HESSIAN] = {"hessian", "model.depth", false, false, false},
    [NB_FIG_SLICE1D] = {"slice1d", NULL, false, false, false},
    [NB_FIG_SLICE2D] = {"slice2d", NULL, false, false, false},
};

const struct nb_fig_kind_info *nb_fig_kind_info(int k)
{
    return k >= 0 && k < NB_FIG_COUNT ? &fig_kinds[k] : NULL;
}

const char *nb_fig_kind_name(int k)
{
    return k >= 0 && k < NB_FIG_COUNT ? fig_kinds[k].name : NULL;
}

int nb_fig_kind_parse(const char *s)
{
    for (int i = 0; i < NB_FIG_COUNT; i++)
        if (!strcmp(fig_kinds[i].name, s))
            return i;
    return -1;
}

/* The per-step metrics a check may name: the metrics.csv columns
 * (train.h's nb_metrics_cols) but step and epoch, which are the x axes,
 * and the two derived here (100 (1 - *_acc), percent). */
static const char *const derived_step_metrics[] = {"train_error", "test_error", NULL};

/* Fills names with the per-step metrics (at most NB_METRICS_N_COLS + 2);
 * returns the count. */
static int step_metric_names(const char **names)
{
    int n = 0;
    for (int i = 0; i < NB_METRICS_N_COLS; i++)
        if (strcmp(nb_metrics_cols[i].name, "step") && strcmp(nb_metrics_cols[i].name, "epoch"))
            names[n++] = nb_metrics_cols[i].name;
    for (int i = 0; derived_step_metrics[i]; i++)
        names[n++] = derived_step_metrics[i];
    return n;
}

static bool is_step_metric(const char *name)
{
    const char *names[NB_METRICS_N_COLS + 2];
    int n = step_metric_names(names);
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name))
            return true;
    return false;
}

/* probes.csv stats by probe (probe.h), derived ones included. */
static const char *const probe_names[] = {"landscape", "ics", "dist",
                                          "gradstats", "hessian", "slice",
                                          NULL};
static const char *const probe_stats_landscape[] = {
    "loss", "grad_change", "beta", "loss0", "grad_norm", "loss_min",
    "loss_max", "grad_change_min", "grad_change_max", "beta_eff",
    "loss_range", "grad_change_range", "seconds", NULL};
static const char *const probe_stats_ics[] = {
    "l2", "cos", "grad_norm", "grad_norm_shifted", "seconds", NULL};
static const char *const probe_stats_dist[] = {
    "mean", "var", "p15", "p50", "p85", "dmean", "dvar", "seconds", NULL};
static const char *const probe_stats_gradstats[] = {
    "grad_norm", "weight_norm", "seconds", NULL};
static const char *const probe_stats_hessian[] = {
    "loss", "lambda_max", "lambda_iters", "lambda_converged", "trace",
    "trace_iters", "trace_converged", "trace_stderr", "fd_step", "seconds",
    NULL};
static const char *const probe_stats_slice[] = {
    "dim", "points", "range", "index", "loss_center", "loss_min", "loss_max",
    "seconds", NULL};
static const char *const *const probe_stats[] = {
    probe_stats_landscape, probe_stats_ics, probe_stats_dist,
    probe_stats_gradstats, probe_stats_hessian, probe_stats_slice};

static int list_find(const char *const *l, const char *s)
{
    for (int i = 0; l[i]; i++)
        if (!strcmp(l[i], s))
            return i;
    return -1;
}

static int list_len(const char *const *l)
{
    int n = 0;
    while (l[n])
        n++;
    return n;
}

/* ======================================================================
 * Small helpers
 * ====================================================================== */

static int oom(struct nb_error *err)
{
    return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
}

int nb_stats(double *v, size_t n, double *mean, double *std, double *min,
             double *max, double *median)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]))
            v[k++] = v[i];
    double m = NAN, s = NAN, lo = NAN, hi = NAN, med = NAN;
    if (k > 0) {
        m = gsl_stats_mean(v, 1, k);
        s = k > 1 ? gsl_stats_sd_m(v, 1, k, m) : 0.0;
        gsl_sort(v, 1, k);
        lo = v[0];
        hi = v[k - 1];
        med = gsl_stats_median_from_sorted_data(v, 1, k);
    }
    if (mean)
        *mean = m;
    if (std)
        *std = s;
    if (min)
        *min = lo;
    if (max)
        *max = hi;
    if (median)
        *median = med;
    return (int)k;
}

int nb_mkdirs(const char *path, struct nb_error *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return nb_error_set(err, NB_EINVAL, path, 0, "path too long");
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return nb_error_set(err, NB_EIO, buf, 0, "cannot create directory: %s",
                                strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return nb_error_set(err, NB_EIO, buf, 0, "cannot create directory: %s",
                            strerror(errno));
    return 0;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Parses s fully as a double; false when it is not a number. */
static bool parse_num(const char *s, double *v)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end)
        return false;
    *v = x;
    return true;
}

/* Compares two canonical values, numbers numerically. */
static int cmp_val(const char *a, const char *b)
{
    double x, y;
    if (parse_num(a, &x) && parse_num(b, &y))
        return x < y ? -1 : x > y;
    return strcmp(a, b);
}

/* ======================================================================
 * Init / free / string pool
 * ====================================================================== */

void nb_summary_init(struct nb_summary *s)
{
    memset(s, 0, sizeof *s);
}

static void table_free(struct nb_sum_table *t)
{
    for (int i = 0; i < t->ncols; i++)
        free(t->names[i]);
    free(t->names);
    free(t->v);
    memset(t, 0, sizeof *t);
}

static void run_free(struct nb_sum_run *r)
{
    free(r->dir);
    if (r->vals)
        for (int k = 0; k < nb_n_keys; k++)
            free(r->vals[k]);
    free(r->vals);
    table_free(&r->metrics);
    free(r->probes);
    for (int i = 0; i < r->n_slices; i++) {
        free(r->slices[i].a);
        free(r->slices[i].b);
        free(r->slices[i].loss);
        free(r->slices[i].acc);
    }
    free(r->slices);
}

void nb_summary_free(struct nb_summary *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_runs; i++)
        run_free(&s->runs[i]);
    free(s->runs);
    for (int g = 0; g < s->n_groups; g++) {
        free(s->groups[g].runs);
        free(s->groups[g].label);
        free(s->groups[g].title);
    }
    free(s->groups);
    free(s->vary);
    free(s->in_label);
    free(s->axis_order);
    for (int i = 0; i < s->n_strs; i++)
        free(s->strs[i]);
    free(s->strs);
    for (int i = 0; i < s->n_mcols; i++)
        free(s->mcols[i]);
    free(s->mcols);
    memset(s, 0, sizeof *s);
}

const char *nb_summary_str(const struct nb_summary *s, int id)
{
    return id >= 0 && id < s->n_strs ? s->strs[id] : "";
}

int nb_summary_str_find(const struct nb_summary *s, const char *str)
{
    for (int i = 0; i < s->n_strs; i++)
        if (!strcmp(s->strs[i], str))
            return i;
    return -1;
}

/* Interns str; -1 for NULL or "", -2 when out of memory. */
static int str_intern(struct nb_summary *s, const char *str)
{
    if (!str || !*str)
        return -1;
    int id = nb_summary_str_find(s, str);
    if (id >= 0)
        return id;
    if (s->n_strs == s->cap_strs) {
        int cap = s->cap_strs ? 2 * s->cap_strs : 32;
        char **p = realloc(s->strs, (size_t)cap * sizeof *p);
        if (!p)
            return -2;
        s->strs = p;
        s->cap_strs = cap;
    }
    if (!(s->strs[s->n_strs] = strdup(str)))
        return -2;
    return s->n_strs++;
}

static struct nb_sum_run *run_new(struct nb_summary *s, struct nb_error *err)
{
    if (s->n_runs == s->cap_runs) {
        size_t cap = s->cap_runs ? 2 * s->cap_runs : 16;
        struct nb_sum_run *p = realloc(s->runs, cap * sizeof *p);
        if (!p) {
            oom(err);
            return NULL;
        }
        s->runs = p;
        s->cap_runs = cap;
    }
    struct nb_sum_run *r = &s->runs[s->n_runs];
    memset(r, 0, sizeof *r);
    r->vals = calloc((size_t)nb_n_keys, sizeof *r->vals);
    if (!r->vals) {
        oom(err);
        return NULL;
    }
    for (int i = 0; i < NB_SC_COUNT; i++)
        r->sc[i] = NAN;
    r->steps_per_epoch = NAN;
    r->order = (long)s->n_runs;
    r->group = -1;
    s->n_runs++;
    return r;
}

/* ======================================================================
 * Reading one run directory
 * ====================================================================== */

/* The value of `key = value` (also `key: value`) in a small text file;
 * false when the file or the key is absent. */
static bool kv_file(const char *path, const char *key, char *out, size_t size)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return false;
    char line[1024];
    bool found = false;
    size_t kl = strlen(key);
    while (!found && fgets(line, sizeof line, fp)) {
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (strncmp(p, key, kl) != 0)
            continue;
        p += kl;
        if (*p && !isspace((unsigned char)*p) && *p != '=' && *p != ':')
            continue;
        while (isspace((unsigned char)*p) || *p == '=' || *p == ':')
            p++;
        size_t n = strlen(p);
        while (n && isspace((unsigned char)p[n - 1]))
            n--;
        snprintf(out, size, "%.*s", (int)n, p);
        found = true;
    }
    fclose(fp);
    return found;
}

/* The state of a run directory: DONE (naming this run_id, when it names
 * one) with status done or diverged; error.txt without DONE = failed;
 * anything else pending.  *wall gets DONE's wall_seconds (NaN if none). */
static int run_status_on_disk(const char *dir, const char *run_id, double *wall)
{
    char path[4200], v[128];
    *wall = NAN;
    snprintf(path, sizeof path, "%s/DONE", dir);
    if (file_exists(path)) {
        bool stale = run_id && kv_file(path, "run_id", v, sizeof v) && strcmp(v, run_id);
        if (!stale) {
            if (kv_file(path, "wall_seconds", v, sizeof v))
                parse_num(v, wall);
            if (kv_file(path, "status", v, sizeof v) && !strcmp(v, "diverged"))
                return NB_SUM_DIVERGED;
            return NB_SUM_DONE;
        }
    }
    snprintf(path, sizeof path, "%s/error.txt", dir);
    if (file_exists(path))
        return NB_SUM_FAILED;
    return NB_SUM_PENDING;
}

static int col_of(const struct nb_sum_table *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->names[i], name))
            return i;
    return -1;
}

static double tval(const struct nb_sum_table *t, size_t row, int col)
{
    return col < 0 ? NAN : t->v[row * (size_t)t->ncols + (size_t)col];
}

/* metrics.csv (the file at path, or text when not NULL) into a numeric table (columns that are not numbers are
 * left out), with train_error and test_error appended. */
static int read_metrics(const char *path, const char *text, size_t len,
                        struct nb_sum_table *out, struct nb_error *err)
{
    struct nb_csv_table t;
    int rc = text ? nb_csv_read_mem(text, len, path, &t, err) : nb_csv_read(path, &t, err);
    if (rc)
        return rc;
    int *keep = calloc((size_t)t.ncols + 1, sizeof *keep);
    if (!keep) {
        nb_csv_table_free(&t);
        return oom(err);
    }
    int nk = 0;
    for (int c = 0; c < t.ncols; c++) {
        const char *first = NULL;
        for (size_t r = 0; r < t.nrows && !first; r++)
            first = nb_csv_cell(&t, r, c);
        double v;
        if (first && !parse_num(first, &v))
            continue; /* a text column */
        keep[nk++] = c;
    }
    int c_tracc = nb_csv_col(&t, "train_acc"), c_teacc = nb_csv_col(&t, "test_acc");
    int extra = (c_tracc >= 0 && nb_csv_col(&t, "train_error") < 0) +
                (c_teacc >= 0 && nb_csv_col(&t, "test_error") < 0);
    memset(out, 0, sizeof *out);
    out->ncols = nk + extra;
    out->names = calloc((size_t)out->ncols, sizeof *out->names);
    out->nrows = t.nrows;
    out->v = malloc((t.nrows ? t.nrows : 1) * (size_t)out->ncols * sizeof *out->v);
    if (!out->names || !out->v) {
        rc = oom(err);
        goto done;
    }
    for (int i = 0; i < nk; i++)
        if (!(out->names[i] = strdup(t.header[keep[i]]))) {
            rc = oom(err);
            goto done;
        }
    int ci = nk;
    int d_tr = -1, d_te = -1;
    if (c_tracc >= 0 && nb_csv_col(&t, "train_error") < 0)
        out->names[d_tr = ci++] = strdup("train_error");
    if (c_teacc >= 0 && nb_csv_col(&t, "test_error") < 0)
        out->names[d_te = ci++] = strdup("test_error");
    for (int i = nk; i < out->ncols; i++)
        if (!out->names[i]) {
            rc = oom(err);
            goto done;
        }
    for (size_t r = 0; r < t.nrows; r++) {
        double *row = out->v + r * (size_t)out->ncols;
        for (int i = 0; i < nk; i++)
            if ((rc = nb_csv_double(&t, r, keep[i], true, path, &row[i], err)))
                goto done;
        double v;
        if (d_tr >= 0) {
            nb_csv_double(&t, r, c_tracc, true, path, &v, NULL);
            row[d_tr] = 100.0 * (1.0 - v);
        }
        if (d_te >= 0) {
            nb_csv_double(&t, r, c_teacc, true, path, &v, NULL);
            row[d_te] = 100.0 * (1.0 - v);
        }
    }
done:
    free(keep);
    nb_csv_table_free(&t);
    if (rc)
        table_free(out);
    return rc;
}

/* Wall time: the last value of timing.csv's time-like column. */
static double read_wall_time(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/timing.csv", dir);
    if (!file_exists(path))
        return NAN;
    struct nb_csv_table t;
    if (nb_csv_read(path, &t, NULL))
        return NAN;
    static const char *const names[] = {"seconds", "wall", "wall_s", "time",
                                        "wall_time", "elapsed", NULL};
    double v = NAN;
    for (int i = 0; names[i] && isnan(v); i++) {
        int c = nb_csv_col(&t, names[i]);
        if (c >= 0 && t.nrows > 0)
            nb_csv_double(&t, t.nrows - 1, c, true, path, &v, NULL);
    }
    nb_csv_table_free(&t);
    return v;
}

static void compute_scalars(struct nb_sum_run *r)
{
    const struct nb_sum_table *t = &r->metrics;
    int c_step = col_of(t, "step"), c_epoch = col_of(t, "epoch");
    int c_tacc = col_of(t, "test_acc"), c_tloss = col_of(t, "test_loss");
    int c_rloss = col_of(t, "train_loss"), c_racc = col_of(t, "train_acc");
    int c_time = col_of(t, "time"), c_vacc = col_of(t, "val_acc");
    for (int i = 0; i < NB_SC_COUNT; i++)
        r->sc[i] = NAN;
    r->sc[NB_SC_DIVERGED] = r->status == NB_SUM_DIVERGED;
    /* steps per epoch from the last row with a positive epoch */
    for (size_t i = t->nrows; i-- > 0;) {
        double st = tval(t, i, c_step), ep = tval(t, i, c_epoch);
        if (st > 0 && ep > 0) {
            r->steps_per_epoch = st / ep;
            break;
        }
    }
    if (t->nrows == 0)
        return;
    size_t last = t->nrows - 1;
    r->sc[NB_SC_STEPS] = tval(t, last, c_step);
    r->sc[NB_SC_EPOCHS] = tval(t, last, c_epoch);
    if (c_time >= 0)
        r->sc[NB_SC_WALL_TIME] = tval(t, last, c_time);
    if (r->status == NB_SUM_DIVERGED)
        return;
    double acc = tval(t, last, c_tacc);
    r->sc[NB_SC_FINAL_TEST_ACC] = acc;
    r->sc[NB_SC_FINAL_TEST_ERROR] = 100.0 * (1.0 - acc);
    r->sc[NB_SC_FINAL_TEST_LOSS] = tval(t, last, c_tloss);
    r->sc[NB_SC_FINAL_TRAIN_LOSS] = tval(t, last, c_rloss);
    r->sc[NB_SC_FINAL_TRAIN_ACC] = tval(t, last, c_racc);
    r->sc[NB_SC_FINAL_TRAIN_ERROR] = 100.0 * (1.0 - tval(t, last, c_racc));
    double best = NAN, minloss = NAN, tail[5];
    int nt = 0;
    for (size_t i = 0; i < t->nrows; i++) {
        double a = tval(t, i, c_tacc), l = tval(t, i, c_rloss);
        if (isfinite(a) && !(a <= best))
            best = a;
        if (isfinite(l) && !(l >= minloss))
            minloss = l;
    }
    for (size_t i = t->nrows; i-- > 0 && nt < 5;) {
        double a = tval(t, i, c_tacc);
        if (isfinite(a))
            tail[nt++] = 100.0 * (1.0 - a);
    }
    r->sc[NB_SC_BEST_TEST_ACC] = best;
    r->sc[NB_SC_BEST_TEST_ERROR] = 100.0 * (1.0 - best);
    /* model selection by validation: the first evaluation with the highest
     * val_acc */
    if (c_vacc >= 0) {
        double bv = NAN;
        for (size_t i = 0; i < t->nrows; i++) {
            double v = tval(t, i, c_vacc);
            if (isfinite(v) && !(v <= bv)) {
                bv = v;
                r->sc[NB_SC_SELECTED_TEST_ACC] = tval(t, i, c_tacc);
            }
        }
        r->sc[NB_SC_SELECTED_TEST_ERROR] = 100.0 * (1.0 - r->sc[NB_SC_SELECTED_TEST_ACC]);
    }
    r->sc[NB_SC_MIN_TRAIN_LOSS] = minloss;
    nb_stats(tail, (size_t)nt, NULL, NULL, NULL, NULL, &r->sc[NB_SC_FINAL5_TEST_ERROR]);
    int kt = nb_key_lookup("experiment", "target_accuracy");
    double target = 0;
    if (kt >= 0 && r->vals[kt])
        parse_num(r->vals[kt], &target);
    if (target > 0)
        for (size_t i = 0; i < t->nrows; i++)
            if (tval(t, i, c_tacc) >= target) {
                r->sc[NB_SC_STEPS_TO_TARGET] = tval(t, i, c_step);
                r->sc[NB_SC_EPOCHS_TO_TARGET] = tval(t, i, c_epoch);
                break;
            }
}

/* ---- probes.csv, streamed ------------------------------------------------ */

enum { PC_STEP, PC_PROBE, PC_LAYER, PC_PARAM, PC_PV, PC_STAT, PC_VALUE, PC_N };
static const char *const pcol_names[PC_N] = {"step", "probe", "layer", "param",
                                             "param_value", "stat", "value"};

struct preader {
    struct nb_summary *s;
    struct nb_sum_run *r;
    const char *path;
    long line;
    int ncols;          /* header fields */
    int col[PC_N];      /* header position of each needed column */
    int nf;             /* fields of the current row */
    char *f[PC_N];      /* the needed fields of the current row */
    bool header_done;
    bool unterminated;
    int status;
    struct nb_error *err;
    char **hdr;         /* header fields while reading the header */
    int nhdr, caphdr;
};

static void pr_fail(struct preader *p, int st, const char *fmt, const char *a)
{
    if (p->status)
        return;
    p->status = st;
    nb_error_set(p->err, st, p->path, (int)p->line, fmt, a);
}

static void pr_field(void *data, size_t len, void *user)
{
    struct preader *p = user;
    (void)len;
    if (p->status)
        return;
    int i = p->nf++;
    const char *s = data; /* NUL-terminated (CSV_APPEND_NULL); NULL if empty */
    if (!p->header_done) {
        if (p->nhdr == p->caphdr) {
            int cap = p->caphdr ? 2 * p->caphdr : 16;
            char **n = realloc(p->hdr, (size_t)cap * sizeof *n);
            if (!n) {
                pr_fail(p, NB_ENOMEM, "%s", "out of memory");
                return;
            }
            p->hdr = n;
            p->caphdr = cap;
        }
        p->hdr[p->nhdr++] = strdup(s ? s : "");
        return;
    }
    for (int c = 0; c < PC_N; c++)
        if (p->col[c] == i) {
            free(p->f[c]);
            p->f[c] = s ? strdup(s) : NULL;
            if (s && !p->f[c])
                pr_fail(p, NB_ENOMEM, "%s", "out of memory");
        }
}

static void pr_row(int c, void *user)
{
    struct preader *p = user;
    if (c == -1)
        p->unterminated = true;
    if (p->status)
        goto next;
    if (!p->header_done) {
        p->ncols = p->nhdr;
        for (int k = 0; k < PC_N; k++) {
            p->col[k] = -1;
            for (int j = 0; j < p->nhdr; j++)
                if (!strcmp(p->hdr[j], pcol_names[k]))
                    p->col[k] = j;
            if (p->col[k] < 0)
                pr_fail(p, NB_EFORMAT, "no column '%s' in the header", pcol_names[k]);
        }
        p->header_done = true;
        goto next;
    }
    if (p->nf != p->ncols) {
        char buf[64];
        snprintf(buf, sizeof buf, "%d fields, the header has %d", p->nf, p->ncols);
        pr_fail(p, NB_EFORMAT, "row with %s", buf);
        goto next;
    }
    struct nb_sum_prow row;
    double v;
    if (!parse_num(p->f[PC_STEP], &v)) {
        pr_fail(p, NB_EFORMAT, "step '%s' is not a number",
                p->f[PC_STEP] ? p->f[PC_STEP] : "");
        goto next;
    }
    row.step = (long)v;
    row.param_value = NAN;
    if (p->f[PC_PV] && !parse_num(p->f[PC_PV], &row.param_value)) {
        pr_fail(p, NB_EFORMAT, "param_value '%s' is not a number", p->f[PC_PV]);
        goto next;
    }
    row.value = NAN;
    if (p->f[PC_VALUE] && !parse_num(p->f[PC_VALUE], &row.value)) {
        pr_fail(p, NB_EFORMAT, "value '%s' is not a number", p->f[PC_VALUE]);
        goto next;
    }
    row.probe = str_intern(p->s, p->f[PC_PROBE]);
    row.layer = str_intern(p->s, p->f[PC_LAYER]);
    row.param = str_intern(p->s, p->f[PC_PARAM]);
    row.stat = str_intern(p->s, p->f[PC_STAT]);
    if (row.probe == -2 || row.layer == -2 || row.param == -2 || row.stat == -2) {
        pr_fail(p, NB_ENOMEM, "%s", "out of memory");
        goto next;
    }
    if (row.probe < 0 || row.stat < 0) {
        pr_fail(p, NB_EFORMAT, "%s", "empty probe or stat");
        goto next;
    }
    struct nb_sum_run *r = p->r;
    if (r->n_probes == r->cap_probes) {
        size_t cap = r->cap_probes ? 2 * r->cap_probes : 256;
        struct nb_sum_prow *n = realloc(r->probes, cap * sizeof *n);
        if (!n) {
            pr_fail(p, NB_ENOMEM, "%s", "out of memory");
            goto next;
        }
        r->probes = n;
        r->cap_probes = cap;
    }
    r->probes[r->n_probes++] = row;
next:
    for (int k = 0; k < PC_N; k++) {
        free(p->f[k]);
        p->f[k] = NULL;
    }
    p->nf = 0;
    p->line++;
}

/* Makes room for one more element of `size` bytes in arr, an array of
 * *cap elements holding n: doubles the capacity (first: `first`).
 * Returns the array (moved, perhaps), or NULL when out of memory (arr and
 * *cap are then unchanged). */
static void *grow(void *arr, size_t *cap, size_t n, size_t size, size_t first)
{
    if (n < *cap)
        return arr;
    size_t c = *cap ? 2 * *cap : first;
    void *p = realloc(arr, c * size);
    if (p)
        *cap = c;
    return p;
}

static int push_prow(struct nb_sum_run *r, const struct nb_sum_prow *row)
{
    void *g = grow(r->probes, &r->cap_probes, r->n_probes, sizeof *row, 256);
    if (!g)
        return NB_ENOMEM;
    r->probes = g;
    r->probes[r->n_probes++] = *row;
    return 0;
}

/* landscape loss_range and grad_change_range per step. */
static int derive_landscape(struct nb_summary *s, struct nb_sum_run *r,
                            struct nb_error *err)
{
    int land = nb_summary_str_find(s, "landscape");
    if (land < 0)
        return 0;
    int ids[4] = {nb_summary_str_find(s, "loss_min"), nb_summary_str_find(s, "loss_max"),
                  nb_summary_str_find(s, "grad_change_min"),
                  nb_summary_str_find(s, "grad_change_max")};
    int lr = str_intern(s, "loss_range"), gr = str_intern(s, "grad_change_range");
    if (lr == -2 || gr == -2)
        return oom(err);
    size_t n = r->n_probes;
    double v[4] = {NAN, NAN, NAN, NAN};
    long step = LONG_MIN;
    for (size_t i = 0; i <= n; i++) {
        const struct nb_sum_prow *p = i < n ? &r->probes[i] : NULL;
        if (p && p->probe != land)
            continue;
        if (!p || p->step != step) {
            if (step != LONG_MIN) {
                struct nb_sum_prow d = {.step = step, .probe = land, .layer = -1,
                                        .param = -1, .param_value = NAN};
                if (!isnan(v[0]) || !isnan(v[1])) {
                    d.stat = lr;
                    d.value = v[1] - v[0];
                    if (push_prow(r, &d))
                        return oom(err);
                }
                if (!isnan(v[2]) || !isnan(v[3])) {
                    d.stat = gr;
                    d.value = v[3] - v[2];
                    if (push_prow(r, &d))
                        return oom(err);
                }
            }
            if (!p)
                break;
            /* push_prow may have moved r->probes: take p afresh */
            p = &r->probes[i];
            step = p->step;
            v[0] = v[1] = v[2] = v[3] = NAN;
        }
        for (int k = 0; k < 4; k++)
            if (ids[k] >= 0 && p->stat == ids[k] && p->layer < 0)
                v[k] = p->value;
    }
    return 0;
}

/* probes.csv: the file at path, or text when not NULL. */
static int read_probes(struct nb_summary *s, struct nb_sum_run *r,
                       const char *path, const char *text, size_t len,
                       struct nb_error *err)
{
    FILE *fp = text ? fmemopen((void *)text, len, "rb") : fopen(path, "rb");
    if (!fp)
        return nb_error_set(err, NB_EIO, path, 0, "cannot open: %s", strerror(errno));
    struct csv_parser cp;
    struct preader p = {.s = s, .r = r, .path = path, .line = 1, .err = err};
    if (csv_init(&cp, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL | CSV_EMPTY_IS_NULL)) {
        fclose(fp);
        return oom(err);
    }
    char buf[65536];
    size_t n;
    while (!p.status && (n = fread(buf, 1, sizeof buf, fp)) > 0)
        if (csv_parse(&cp, buf, n, pr_field, pr_row, &p) != n && !p.status) {
            p.status = NB_EFORMAT;
            nb_error_set(err, NB_EFORMAT, path, (int)p.line, "malformed CSV (%s)",
                         csv_strerror(csv_error(&cp)));
        }
    if (!p.status && csv_fini(&cp, pr_field, pr_row, &p) && !p.status) {
        p.status = NB_EFORMAT;
        nb_error_set(err, NB_EFORMAT, path, (int)p.line, "malformed CSV (%s)",
                     csv_strerror(csv_error(&cp)));
    }
    csv_free(&cp);
    fclose(fp);
    for (int i = 0; i < p.nhdr; i++)
        free(p.hdr[i]);
    free(p.hdr);
    for (int k = 0; k < PC_N; k++)
        free(p.f[k]);
    if (!p.status && p.unterminated)
        p.status = nb_error_set(err, NB_EFORMAT, path, (int)p.line - 1,
                                "last row has no line end (the file was cut short)");
    if (!p.status && !p.header_done)
        p.status = nb_error_set(err, NB_EFORMAT, path, 0, "no header row (empty file)");
    if (!p.status)
        p.status = derive_landscape(s, r, err);
    return p.status;
}

/* ---- slice.csv ------------------------------------------------------------ */

struct slice_build {
    double *a, *b, *loss, *acc;
    size_t n, cap;
    int scans;        /* completed scans */
    int scan_len;     /* points in the first scan */
    size_t in_scan;   /* points in the current scan */
};

static int sb_push(struct slice_build *b, const double v[4])
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        double *p[4] = {realloc(b->a, cap * sizeof(double)), NULL, NULL, NULL};
        if (!p[0])
            return -1;
        b->a = p[0];
        if (!(p[1] = realloc(b->b, cap * sizeof(double))))
            return -1;
        b->b = p[1];
        if (!(p[2] = realloc(b->loss, cap * sizeof(double))))
            return -1;
        b->loss = p[2];
        if (!(p[3] = realloc(b->acc, cap * sizeof(double))))
            return -1;
        b->acc = p[3];
        b->cap = cap;
    }
    b->a[b->n] = v[0];
    b->b[b->n] = v[1];
    b->loss[b->n] = v[2];
    b->acc[b->n] = v[3];
    b->n++;
    b->in_scan++;
    return 0;
}

static void sb_end_scan(struct slice_build *b)
{
    if (b->in_scan == 0)
        return;
    if (b->scans == 0)
        b->scan_len = (int)b->in_scan;
    b->scans++;
    b->in_scan = 0;
}

/* Moves a finished slice into r; 0, or an error for a ragged grid. */
static int sb_finish(struct nb_sum_run *r, struct slice_build *b, const char *path,
                     int line, struct nb_error *err)
{
    sb_end_scan(b);
    if (b->n == 0)
        return 0;
    if ((size_t)b->scans * (size_t)b->scan_len != b->n) {
        free(b->a), free(b->b), free(b->loss), free(b->acc);
        memset(b, 0, sizeof *b);
        return nb_error_set(err, NB_EFORMAT, path, line,
                            "slice is not a grid (scans of different lengths)");
    }
    struct nb_sum_slice *n = realloc(r->slices, (size_t)(r->n_slices + 1) * sizeof *n);
    if (!n)
        return oom(err);
    r->slices = n;
    struct nb_sum_slice *sl = &r->slices[r->n_slices++];
    sl->na = b->scans;
    sl->nb = b->scan_len;
    sl->dim = sl->nb > 1 ? 2 : 1;
    sl->a = b->a, sl->b = b->b, sl->loss = b->loss, sl->acc = b->acc;
    memset(b, 0, sizeof *b);
    return 0;
}

/* slice.csv: the file at path, or text when not NULL. */
static int read_slices(struct nb_sum_run *r, const char *path, const char *text,
                       size_t len, struct nb_error *err)
{
    FILE *fp = text ? fmemopen((void *)text, len, "r") : fopen(path, "r");
    if (!fp)
        return nb_error_set(err, NB_EIO, path, 0, "cannot open: %s", strerror(errno));
    char line[1024];
    int lineno = 0, blanks = 0, rc = 0;
    struct slice_build b;
    memset(&b, 0, sizeof b);
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        char *p = line;
        size_t len = strlen(p);
        while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
            p[--len] = '\0';
        if (lineno == 1) {
            if (strncmp(p, "a,b,loss", 8)) {
                rc = nb_error_set(err, NB_EFORMAT, path, 1,
                                  "expected the header 'a,b,loss,acc'");
                break;
            }
            continue;
        }
        if (!len) {
            blanks++;
            sb_end_scan(&b);
            continue;
        }
        if (blanks >= 2 && b.n > 0 && (rc = sb_finish(r, &b, path, lineno, err)))
            break;
        blanks = 0;
        double v[4] = {NAN, NAN, NAN, NAN};
        char *q = p;
        for (int k = 0; k < 4; k++) {
            char *comma = strchr(q, ',');
            if (comma)
                *comma = '\0';
            if (*q && !parse_num(q, &v[k])) {
                rc = nb_error_set(err, NB_EFORMAT, path, lineno,
                                  "'%s' is not a number", q);
                break;
            }
            if (!comma) {
                if (k < 2)
                    rc = nb_error_set(err, NB_EFORMAT, path, lineno,
                                      "expected 4 fields a,b,loss,acc");
                break;
            }
            q = comma + 1;
        }
        if (rc)
            break;
        if (sb_push(&b, v)) {
            rc = oom(err);
            break;
        }
    }
    fclose(fp);
    if (!rc)
        rc = sb_finish(r, &b, path, lineno, err);
    free(b.a), free(b.b), free(b.loss), free(b.acc);
    return rc;
}

/* Reads the files of a finished run. */
static int load_run_files(struct nb_summary *s, struct nb_sum_run *r,
                          struct nb_error *err)
{
    char path[4200];
    int rc;
    snprintf(path, sizeof path, "%s/metrics.csv", r->dir);
    if (file_exists(path) && (rc = read_metrics(path, NULL, 0, &r->metrics, err)))
        return rc;
    double wall = r->sc[NB_SC_WALL_TIME];
    compute_scalars(r);
    if (!isnan(wall))
        r->sc[NB_SC_WALL_TIME] = wall;
    else if (isnan(r->sc[NB_SC_WALL_TIME]))
        r->sc[NB_SC_WALL_TIME] = read_wall_time(r->dir);
    snprintf(path, sizeof path, "%s/probes.csv", r->dir);
    if (file_exists(path) && (rc = read_probes(s, r, path, NULL, 0, err)))
        return rc;
    snprintf(path, sizeof path, "%s/slice.csv", r->dir);
    if (file_exists(path) && (rc = read_slices(r, path, NULL, 0, err)))
        return rc;
    return 0;
}

void nb_summary_set_fallback(struct nb_summary *s, nb_sum_fallback_fn fn, void *user)
{
    s->fallback = fn;
    s->fallback_user = user;
}

/* A run without a finished directory, from the fallback (the same
 * readers as load_run_files, over the texts the fallback gives). */
static int load_run_fallback(struct nb_summary *s, struct nb_sum_run *r,
                             struct nb_error *err)
{
    struct nb_sum_runsrc src;
    memset(&src, 0, sizeof src);
    int rc = s->fallback(s->fallback_user, r->run_id, &src, err);
    if (rc <= 0)
        return rc;
    char name[1200];
    r->archived = true;
    r->status = src.status;
    rc = 0;
    if (r->status == NB_SUM_DONE || r->status == NB_SUM_DIVERGED) {
        snprintf(name, sizeof name, "%s: run %s: metrics.csv", src.name ? src.name : "archive",
                 r->run_id);
        if (src.metrics && (rc = read_metrics(name, src.metrics, src.metrics_len,
                                              &r->metrics, err)))
            goto out;
        compute_scalars(r);
        r->sc[NB_SC_WALL_TIME] = src.wall_time;
        snprintf(name, sizeof name, "%s: run %s: probes.csv", src.name ? src.name : "archive",
                 r->run_id);
        if (src.probes && (rc = read_probes(s, r, name, src.probes, src.probes_len, err)))
            goto out;
        snprintf(name, sizeof name, "%s: run %s: slice.csv", src.name ? src.name : "archive",
                 r->run_id);
        if (src.slice && (rc = read_slices(r, name, src.slice, src.slice_len, err)))
            goto out;
    }
out:
    free(src.metrics), free(src.probes), free(src.slice);
    return rc;
}

static int add_axes(struct nb_summary *s, const int *keys, int n)
{
    for (int i = 0; i < n; i++) {
        int dup = 0;
        for (int j = 0; j < s->n_axis; j++)
            dup |= s->axis_order[j] == keys[i];
        if (dup)
            continue;
        int *p = realloc(s->axis_order, (size_t)(s->n_axis + 1) * sizeof *p);
        if (!p)
            return NB_ENOMEM;
        s->axis_order = p;
        s->axis_order[s->n_axis++] = keys[i];
    }
    return 0;
}

int nb_summary_add_sweep(struct nb_summary *s, const struct nb_sweep *sw,
                         const char *exp_dir, struct nb_error *err)
{
    if (add_axes(s, sw->swept, sw->n_swept))
        return oom(err);
    for (size_t i = 0; i < sw->n_runs; i++) {
        const struct nb_run *run = &sw->runs[i];
        struct nb_sum_run *r = run_new(s, err);
        if (!r)
            return NB_ENOMEM;
        memcpy(r->run_id, run->run_id, sizeof r->run_id);
        r->seed = run->seed;
        for (int k = 0; k < nb_n_keys; k++)
            if (run->vals[k] && !(r->vals[k] = strdup(run->vals[k]->text)))
                return oom(err);
        size_t len = strlen(exp_dir) + 20;
        if (!(r->dir = malloc(len)))
            return oom(err);
        snprintf(r->dir, len, "%s/%s", exp_dir, run->run_id);
        r->status = run_status_on_disk(r->dir, r->run_id, &r->sc[NB_SC_WALL_TIME]);
        if (r->status == NB_SUM_DONE || r->status == NB_SUM_DIVERGED) {
            int rc = load_run_files(s, r, err);
            if (rc)
                return rc;
        } else if (r->status == NB_SUM_PENDING && s->fallback) {
            int rc = load_run_fallback(s, r, err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int nb_summary_add_run_dir(struct nb_summary *s, const char *run_dir,
                           struct nb_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.ini", run_dir);
    struct nb_sweep sw;
    int rc = nb_sweep_load(path, &sw, err);
    if (rc)
        return rc;
    if (sw.n_runs != 1) {
        nb_sweep_free(&sw);
        return nb_error_set(err, NB_EFORMAT, path, 0,
                            "a run's config.ini must resolve to one run, not %zu",
                            sw.n_runs);
    }
    struct nb_sum_run *r = run_new(s, err);
    if (!r) {
        nb_sweep_free(&sw);
        return NB_ENOMEM;
    }
    const struct nb_run *run = &sw.runs[0];
    memcpy(r->run_id, run->run_id, sizeof r->run_id);
    r->seed = run->seed;
    for (int k = 0; k < nb_n_keys; k++)
        if (run->vals[k] && !(r->vals[k] = strdup(run->vals[k]->text))) {
            nb_sweep_free(&sw);
            return oom(err);
        }
    nb_sweep_free(&sw);
    if (!(r->dir = strdup(run_dir)))
        return oom(err);
    r->status = run_status_on_disk(run_dir, r->run_id, &r->sc[NB_SC_WALL_TIME]);
    if (r->status == NB_SUM_DONE || r->status == NB_SUM_DIVERGED)
        return load_run_files(s, r, err);
    return 0;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int nb_summary_add_dir(struct nb_summary *s, const char *dir,
                       struct nb_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return nb_error_set(err, NB_EIO, dir, 0, "cannot open directory: %s",
                            strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s/config.ini", dir, e->d_name);
        if (!file_exists(path))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                rc = oom(err);
                break;
            }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = oom(err);
            break;
        }
        n++;
    }
    closedir(d);
    if (!rc && names)
        qsort(names, n, sizeof *names, cmp_str_ptr);
    for (size_t i = 0; i < n && !rc; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        rc = nb_summary_add_run_dir(s, path, err);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    s->sort_runs = true;
    return rc;
}

/* ======================================================================
 * Grouping and labels
 * ====================================================================== */

static bool key_is_identity(int k)
{
    const struct nb_key *key = &nb_keys[k];
    if (key->flags & (NB_KF_META | NB_KF_STRUCT))
        return false;
    if (!strcmp(key->section, "experiment") && !strcmp(key->key, "seeds"))
        return false;
    return true;
}

static const char *rval(const struct nb_sum_run *r, int k)
{
    return r->vals[k] ? r->vals[k] : "";
}

/* qsort_r order of runs: by the varying keys' values, then seed, then
 * the order they were added in; ctx is the summary. */
static int cmp_runs(const void *pa, const void *pb, void *ctx)
{
    const struct nb_sum_run *a = pa, *b = pb;
    const struct nb_summary *s = ctx;
    for (int i = 0; i < s->n_vary; i++) {
        int c = cmp_val(rval(a, s->vary[i]), rval(b, s->vary[i]));
        if (c)
            return c;
    }
    if (a->seed != b->seed)
        return a->seed < b->seed ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

const char *nb_sum_key_short(int key)
{
    if (key < 0 || key >= nb_n_keys)
        return "?";
    const struct nb_key *k = &nb_keys[key];
    if (!strcmp(k->section, "train") && !strcmp(k->key, "batch"))
        return "bs";
    if (!strcmp(k->section, "optim") && !strcmp(k->key, "lr"))
        return "lr";
    if (!strcmp(k->section, "norm") && !strcmp(k->key, "groups"))
        return "G";
    if (nb_key_lookup_name(k->key) == key)
        return k->key;
    return k->full;
}

/* Keys whose value alone names the group: norm.type, model.arch, ... */
static bool key_bare_value(int key)
{
    const struct nb_key *k = &nb_keys[key];
    return (!strcmp(k->section, "norm") && !strcmp(k->key, "type")) ||
           (!strcmp(k->section, "model") && !strcmp(k->key, "arch")) ||
           (!strcmp(k->section, "data") && !strcmp(k->key, "source"));
}

/* Appends "key=value" (or the bare value) to buf; commas and quotes are
 * replaced so that labels are safe in CSV and gnuplot. */
static void label_append(char *buf, size_t size, int key, const char *val)
{
    size_t n = strlen(buf);
    char item[256];
    if (key_bare_value(key))
        snprintf(item, sizeof item, "%s", val);
    else if (!strcmp(nb_keys[key].section, "norm") && !strcmp(nb_keys[key].key, "groups") &&
             !strcmp(val, "0"))
        snprintf(item, sizeof item, "G=auto");
    else
        snprintf(item, sizeof item, "%s=%s", nb_sum_key_short(key), val);
    for (char *p = item; *p; p++)
        if (*p == ',' || *p == '"')
            *p = *p == ',' ? ';' : '\'';
    snprintf(buf + n, size > n ? size - n : 0, "%s%s", n ? " " : "", item);
}

/* Is key k (over the groups) a function of the keys in keep[0..nk)? */
static bool determined(const struct nb_summary *s, int k, const int *keep, int nk)
{
    for (int g = 0; g < s->n_groups; g++)
        for (int h = g + 1; h < s->n_groups; h++) {
            const struct nb_sum_run *a = &s->runs[s->groups[g].runs[0]];
            const struct nb_sum_run *b = &s->runs[s->groups[h].runs[0]];
            bool same = true;
            for (int i = 0; i < nk && same; i++)
                same = !strcmp(rval(a, keep[i]), rval(b, keep[i]));
            if (same && strcmp(rval(a, k), rval(b, k)))
                return false;
        }
    return true;
}

/* qsort_r order of run indices into the summary ctx: by seed, then order */
static int cmp_seed_ctx(const void *pa, const void *pb, void *ctx)
{
    const struct nb_summary *s = ctx;
    const struct nb_sum_run *a = &s->runs[*(const int *)pa];
    const struct nb_sum_run *b = &s->runs[*(const int *)pb];
    if (a->seed != b->seed)
        return a->seed < b->seed ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

int nb_summary_group(struct nb_summary *s, struct nb_error *err)
{
    if (s->groups)
        return nb_error_set(err, NB_EINVAL, NULL, 0, "summary already grouped");
    /* varying keys: those not in a sweep first (table order), then the
     * sweeps' axes in product order */
    int *vary = malloc(((size_t)nb_n_keys + 1) * sizeof *vary);
    bool *is_vary = calloc((size_t)nb_n_keys + 1, sizeof *is_vary);
    if (!vary || !is_vary) {
        free(vary);
        free(is_vary);
        return oom(err);
    }
    for (int k = 0; k < nb_n_keys; k++) {
        if (!key_is_identity(k))
            continue;
        for (size_t i = 1; i < s->n_runs && !is_vary[k]; i++)
            is_vary[k] = strcmp(rval(&s->runs[i], k), rval(&s->runs[0], k)) != 0;
    }
    int nv = 0;
    for (int k = 0; k < nb_n_keys; k++) {
        bool axis = false;
        for (int j = 0; j < s->n_axis; j++)
            axis |= s->axis_order[j] == k;
        if (is_vary[k] && !axis)
            vary[nv++] = k;
    }
    for (int j = 0; j < s->n_axis; j++)
        if (s->axis_order[j] >= 0 && s->axis_order[j] < nb_n_keys &&
            is_vary[s->axis_order[j]])
            vary[nv++] = s->axis_order[j];
    free(is_vary);
    s->vary = vary;
    s->n_vary = nv;
    if (s->sort_runs && s->n_runs > 1) {
        qsort_r(s->runs, s->n_runs, sizeof *s->runs, cmp_runs, s);
    }
    /* groups */
    s->groups = calloc(s->n_runs ? s->n_runs : 1, sizeof *s->groups);
    s->in_label = calloc((size_t)nv + 1, sizeof *s->in_label);
    if (!s->groups || !s->in_label)
        return oom(err);
    for (size_t i = 0; i < s->n_runs; i++) {
        struct nb_sum_run *r = &s->runs[i];
        int g;
        for (g = 0; g < s->n_groups; g++) {
            const struct nb_sum_run *q = &s->runs[s->groups[g].runs[0]];
            bool same = true;
            for (int j = 0; j < nv && same; j++)
                same = !strcmp(rval(r, vary[j]), rval(q, vary[j]));
            if (same)
                break;
        }
        struct nb_sum_group *G = &s->groups[g];
        if (g == s->n_groups)
            s->n_groups++;
        int *p = realloc(G->runs, (size_t)(G->n_runs + 1) * sizeof *p);
        if (!p)
            return oom(err);
        G->runs = p;
        G->runs[G->n_runs++] = (int)i;
        r->group = g;
    }
    /* label keys */
    int *keep = malloc(((size_t)nv + 1) * sizeof *keep);
    if (!keep)
        return oom(err);
    int nk = 0;
    for (int j = 0; j < nv; j++) {
        if (determined(s, vary[j], keep, nk))
            continue;
        keep[nk++] = vary[j];
        s->in_label[j] = true;
    }
    free(keep);
    /* replicates, labels, counts */
    s->max_reps = 0;
    for (int g = 0; g < s->n_groups; g++) {
        struct nb_sum_group *G = &s->groups[g];
        qsort_r(G->runs, (size_t)G->n_runs, sizeof *G->runs, cmp_seed_ctx, s);
        for (int i = 0; i < G->n_runs; i++) {
            struct nb_sum_run *r = &s->runs[G->runs[i]];
            r->rep = i;
            G->n_done += r->status == NB_SUM_DONE;
            G->n_diverged += r->status == NB_SUM_DIVERGED;
            G->n_missing += r->status == NB_SUM_FAILED || r->status == NB_SUM_PENDING;
        }
        if (G->n_runs > s->max_reps)
            s->max_reps = G->n_runs;
        char label[1024] = "";
        const struct nb_sum_run *r0 = &s->runs[G->runs[0]];
        for (int j = 0; j < nv; j++)
            if (s->in_label[j])
                label_append(label, sizeof label, vary[j], rval(r0, vary[j]));
        if (!label[0])
            snprintf(label, sizeof label, "all runs");
        char title[1200];
        int n = G->n_done + G->n_diverged;
        int len = snprintf(title, sizeof title, "%s (n=%d", label, n);
        if (G->n_diverged)
            len += snprintf(title + len, sizeof title - (size_t)len, "; %d diverged",
                            G->n_diverged);
        if (G->n_missing)
            len += snprintf(title + len, sizeof title - (size_t)len, "; %d missing",
                            G->n_missing);
        snprintf(title + len, sizeof title - (size_t)len, ")");
        if (!(G->label = strdup(label)) || !(G->title = strdup(title)))
            return oom(err);
    }
    /* per-step metric columns: the union, in first-seen order */
    for (size_t i = 0; i < s->n_runs; i++) {
        const struct nb_sum_table *t = &s->runs[i].metrics;
        for (int c = 0; c < t->ncols; c++) {
            bool seen = false;
            for (int j = 0; j < s->n_mcols && !seen; j++)
                seen = !strcmp(s->mcols[j], t->names[c]);
            if (seen)
                continue;
            char **p = realloc(s->mcols, (size_t)(s->n_mcols + 1) * sizeof *p);
            if (!p)
                return oom(err);
            s->mcols = p;
            if (!(s->mcols[s->n_mcols] = strdup(t->names[c])))
                return oom(err);
            s->n_mcols++;
        }
    }
    return 0;
}

const char *nb_summary_group_val(const struct nb_summary *s, int g, int key)
{
    return rval(&s->runs[s->groups[g].runs[0]], key);
}

/* ======================================================================
 * Filters and metrics
 * ====================================================================== */

void nb_sum_filter_free(struct nb_sum_filter *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n_vals; i++)
        free(f->vals[i]);
    free(f->vals);
    free(f->num);
    free(f->text);
    memset(f, 0, sizeof *f);
}

void nb_metric_free(struct nb_metric *m)
{
    if (!m)
        return;
    free(m->column);
    free(m->probe);
    free(m->stat);
    free(m->text);
    memset(m, 0, sizeof *m);
}

int nb_metric_parse(const char *name, const char *file, int line,
                    struct nb_metric *m, struct nb_error *err)
{
    memset(m, 0, sizeof *m);
    if (!(m->text = strdup(name)))
        return oom(err);
    int sc = nb_sum_scalar_lookup(name);
    if (sc >= 0) {
        m->kind = NB_MK_SCALAR;
        m->scalar = sc;
        return 0;
    }
    const char *dot = strchr(name, '.');
    if (!dot) {
        if (is_step_metric(name)) {
            m->kind = NB_MK_STEP;
            if (!(m->column = strdup(name)))
                return oom(err);
            return 0;
        }
        const char *cands[NB_SC_COUNT + NB_METRICS_N_COLS + 2];
        int nc = 0;
        for (int i = 0; i < NB_SC_COUNT; i++)
            cands[nc++] = scalars[i].name;
        nc += step_metric_names(cands + nc);
        const char *near = nb_closest(name, cands, nc);
        nb_error_set(err, NB_EINVAL, file, line,
                     "unknown metric '%s' (a run scalar such as final_test_error, "
                     "a metrics.csv column such as train_loss, or PROBE.STAT)",
                     name);
        if (near)
            nb_error_hint(err, "did you mean '%s'?", near);
        nb_metric_free(m);
        return NB_EINVAL;
    }
    char probe[64];
    size_t pl = (size_t)(dot - name);
    if (pl >= sizeof probe)
        pl = sizeof probe - 1;
    memcpy(probe, name, pl);
    probe[pl] = '\0';
    int p = list_find(probe_names, probe);
    if (p < 0) {
        nb_error_set(err, NB_EINVAL, file, line, "unknown probe '%s' in metric '%s'",
                     probe, name);
        const char *near = nb_closest(probe, probe_names, list_len(probe_names));
        if (near)
            nb_error_hint(err, "did you mean '%s'?", near);
        nb_metric_free(m);
        return NB_EINVAL;
    }
    if (list_find(probe_stats[p], dot + 1) < 0) {
        nb_error_set(err, NB_EINVAL, file, line,
                     "probe %s has no stat '%s'", probe, dot + 1);
        const char *near = nb_closest(dot + 1, probe_stats[p], list_len(probe_stats[p]));
        if (near)
            nb_error_hint(err, "did you mean '%s.%s'?", probe, near);
        nb_metric_free(m);
        return NB_EINVAL;
    }
    m->kind = NB_MK_PROBE;
    if (!(m->probe = strdup(probe)) || !(m->stat = strdup(dot + 1))) {
        nb_metric_free(m);
        return oom(err);
    }
    return 0;
}

/* Does text value v satisfy filter f? (config keys, layer, param) */
static bool filter_text(const struct nb_sum_filter *f, const char *v)
{
    double x;
    bool isnum = parse_num(v, &x);
    if (f->range) {
        bool in = isnum && x >= f->lo && x <= f->hi;
        return f->op == NB_CMP_NE ? !in : in;
    }
    if (f->op == NB_CMP_EQ || f->op == NB_CMP_NE) {
        bool any = false;
        for (int i = 0; i < f->n_vals && !any; i++)
            any = (isnum && !isnan(f->num[i])) ? x == f->num[i] : !strcmp(v, f->vals[i]);
        return f->op == NB_CMP_EQ ? any : !any;
    }
    if (!isnum || f->n_vals != 1 || isnan(f->num[0]))
        return false;
    double y = f->num[0];
    switch (f->op) {
    case NB_CMP_LT: return x < y;
    case NB_CMP_LE: return x <= y;
    case NB_CMP_GT: return x > y;
    case NB_CMP_GE: return x >= y;
    default: return false;
    }
}

static bool filter_num(const struct nb_sum_filter *f, double x)
{
    char buf[64];
    if (isnan(x))
        return false;
    return filter_text(f, nb_format_double(x, buf, sizeof buf));
}

bool nb_summary_group_matches(const struct nb_summary *s, int g,
                              const struct nb_sum_filter *f, int nf)
{
    for (int i = 0; i < nf; i++)
        if (f[i].key >= 0 && !filter_text(&f[i], nb_summary_group_val(s, g, f[i].key)))
            return false;
    return true;
}

/* Point filters (step, epoch, layer, param, param_value). */
static bool point_matches(const struct nb_summary *s, const struct nb_sum_filter *f,
                          int nf, long step, double epoch, int layer, int param,
                          double pv)
{
    for (int i = 0; i < nf; i++) {
        switch (f[i].key) {
        case NB_FK_STEP:
            if (!filter_num(&f[i], (double)step))
                return false;
            break;
        case NB_FK_EPOCH:
            if (!filter_num(&f[i], epoch))
                return false;
            break;
        case NB_FK_LAYER:
            if (!filter_text(&f[i], nb_summary_str(s, layer)))
                return false;
            break;
        case NB_FK_PARAM:
            if (!filter_text(&f[i], nb_summary_str(s, param)))
                return false;
            break;
        case NB_FK_PARAM_VALUE:
            if (!filter_num(&f[i], pv))
                return false;
            break;
        default:
            break;
        }
    }
    return true;
}

static double group_spe(const struct nb_summary *s, int g)
{
    const struct nb_sum_group *G = &s->groups[g];
    for (int i = 0; i < G->n_runs; i++) {
        double v = s->runs[G->runs[i]].steps_per_epoch;
        if (isfinite(v) && v > 0)
            return v;
    }
    return NAN;
}

/* A growable array of points. */
struct pts {
    struct nb_sum_point *p;
    size_t n, cap;
};

static int pts_push(struct pts *a, const struct nb_sum_point *p)
{
    void *g = grow(a->p, &a->cap, a->n, sizeof *p, 64);
    if (!g)
        return NB_ENOMEM;
    a->p = g;
    a->p[a->n++] = *p;
    return 0;
}

/* Raw per-run points of one group: (coordinates, value, replicate). */
struct rawpt {
    long step;
    int layer, param;
    double pv;
    int layer_key, param_key; /* sort keys: string order of the names */
    double value;
    int rep;
};

static int str_order(const struct nb_summary *s, int id)
{
    /* rank of the name among all pooled strings (stable, by strcmp) */
    if (id < 0)
        return -1;
    int rank = 0;
    for (int i = 0; i < s->n_strs; i++)
        if (strcmp(s->strs[i], s->strs[id]) < 0)
            rank++;
    return rank;
}

static int cmp_raw(const void *pa, const void *pb)
{
    const struct rawpt *a = pa, *b = pb;
    if (a->layer_key != b->layer_key)
        return a->layer_key < b->layer_key ? -1 : 1;
    if (a->param_key != b->param_key)
        return a->param_key < b->param_key ? -1 : 1;
    if (!(a->pv == b->pv || (isnan(a->pv) && isnan(b->pv)))) {
        if (isnan(a->pv))
            return -1;
        if (isnan(b->pv))
            return 1;
        return a->pv < b->pv ? -1 : 1;
    }
    if (a->step != b->step)
        return a->step < b->step ? -1 : 1;
    return a->rep - b->rep;
}

static bool same_point(const struct rawpt *a, const struct rawpt *b)
{
    return a->layer == b->layer && a->param == b->param && a->step == b->step &&
           (a->pv == b->pv || (isnan(a->pv) && isnan(b->pv)));
}

/* Collapses sorted raw points of group g into out (mode: mean or rep;
 * with w, the mean of the replicates weighted by w[rep]). */
static int collapse(const struct nb_summary *s, int g, struct rawpt *raw, size_t n,
                    int mode, const double *w, double spe, struct pts *out)
{
    double *vals = malloc((n ? n : 1) * sizeof *vals);
    double *wts = malloc((n ? n : 1) * sizeof *wts);
    if (!vals || !wts) {
        free(vals);
        free(wts);
        return NB_ENOMEM;
    }
    (void)s;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        size_t nv = 0;
        while (j < n && same_point(&raw[i], &raw[j])) {
            if (w) {
                if (w[raw[j].rep] > 0 && isfinite(raw[j].value)) {
                    wts[nv] = w[raw[j].rep];
                    vals[nv++] = raw[j].value;
                }
            } else if (mode == NB_SEL_MEAN || raw[j].rep == mode) {
                vals[nv++] = raw[j].value;
            }
            j++;
        }
        double mean = NAN;
        bool have = false;
        if (w) {
            have = nv > 0;
            if (have)
                mean = gsl_stats_wmean(wts, 1, vals, 1, nv);
        } else {
            have = nb_stats(vals, nv, &mean, NULL, NULL, NULL, NULL) > 0;
        }
        if (have) {
            struct nb_sum_point p = {.group = g, .step = raw[i].step,
                                     .epoch = raw[i].step >= 0 ? (double)raw[i].step / spe : NAN,
                                     .layer = raw[i].layer, .param = raw[i].param,
                                     .param_value = raw[i].pv, .value = mean};
            if (pts_push(out, &p)) {
                free(vals);
                free(wts);
                return NB_ENOMEM;
            }
        }
        i = j;
    }
    free(vals);
    free(wts);
    return 0;
}

struct rawbuf {
    struct rawpt *p;
    size_t n, cap;
};

static int raw_push(struct rawbuf *b, const struct rawpt *p)
{
    void *g = grow(b->p, &b->cap, b->n, sizeof *p, 256);
    if (!g)
        return NB_ENOMEM;
    b->p = g;
    b->p[b->n++] = *p;
    return 0;
}

/* The raw points of metric m in group g that pass the point filters. */
static int gather_raw(const struct nb_summary *s, const struct nb_metric *m, int g,
                      const struct nb_sum_filter *f, int nf, struct rawbuf *rb,
                      int *layer_rank, bool *found_col)
{
    const struct nb_sum_group *G = &s->groups[g];
    double spe = group_spe(s, g);
    int probe = -1, stat = -1;
    if (m->kind == NB_MK_PROBE) {
        probe = nb_summary_str_find(s, m->probe);
        stat = nb_summary_str_find(s, m->stat);
        if (probe < 0 || stat < 0)
            return 0;
    }
    for (int i = 0; i < G->n_runs; i++) {
        const struct nb_sum_run *r = &s->runs[G->runs[i]];
        if (r->status != NB_SUM_DONE && r->status != NB_SUM_DIVERGED)
            continue;
        if (m->kind == NB_MK_SCALAR) {
            struct rawpt p = {.step = -1, .layer = -1, .param = -1, .pv = NAN,
                              .layer_key = -1, .param_key = -1,
                              .value = r->sc[m->scalar], .rep = r->rep};
            if (raw_push(rb, &p))
                return NB_ENOMEM;
        } else if (m->kind == NB_MK_STEP) {
            const struct nb_sum_table *t = &r->metrics;
            int c = col_of(t, m->column), cs = col_of(t, "step");
            if (c < 0 || cs < 0)
                continue;
            *found_col = true;
            for (size_t k = 0; k < t->nrows; k++) {
                long step = (long)tval(t, k, cs);
                if (!point_matches(s, f, nf, step, (double)step / spe, -1, -1, NAN))
                    continue;
                struct rawpt p = {.step = step, .layer = -1, .param = -1, .pv = NAN,
                                  .layer_key = -1, .param_key = -1,
                                  .value = tval(t, k, c), .rep = r->rep};
                if (raw_push(rb, &p))
                    return NB_ENOMEM;
            }
        } else {
            for (size_t k = 0; k < r->n_probes; k++) {
                const struct nb_sum_prow *q = &r->probes[k];
                if (q->probe != probe || q->stat != stat)
                    continue;
                if (!point_matches(s, f, nf, q->step, (double)q->step / spe, q->layer,
                                   q->param, q->param_value))
                    continue;
                struct rawpt p = {.step = q->step, .layer = q->layer, .param = q->param,
                                  .pv = q->param_value,
                                  .layer_key = q->layer >= 0 ? layer_rank[q->layer] : -1,
                                  .param_key = q->param >= 0 ? layer_rank[q->param] : -1,
                                  .value = q->value, .rep = r->rep};
                if (raw_push(rb, &p))
                    return NB_ENOMEM;
            }
        }
    }
    return 0;
}

/* Ranks of the pooled strings (for sorting layers naturally: a layer
 * name's rank orders conv2 before conv10 only if named so; we sort by
 * the layer_index-free name, which the probe module makes zero-padded
 * or short). */
static int *string_ranks(const struct nb_summary *s)
{
    int *rank = malloc(((size_t)s->n_strs + 1) * sizeof *rank);
    if (!rank)
        return NULL;
    for (int i = 0; i < s->n_strs; i++)
        rank[i] = str_order(s, i);
    return rank;
}

static int select_impl(const struct nb_summary *s, const struct nb_metric *m,
                       const struct nb_sum_filter *f, int nf, int mode, const double *w,
                       struct nb_sum_point **out, size_t *n, struct nb_error *err);

int nb_summary_select(const struct nb_summary *s, const struct nb_metric *m,
                      const struct nb_sum_filter *f, int nf, int mode,
                      struct nb_sum_point **out, size_t *n,
                      struct nb_error *err)
{
    return select_impl(s, m, f, nf, mode, NULL, out, n, err);
}

int nb_summary_select_w(const struct nb_summary *s, const struct nb_metric *m,
                        const struct nb_sum_filter *f, int nf, const double *w,
                        struct nb_sum_point **out, size_t *n, struct nb_error *err)
{
    return select_impl(s, m, f, nf, NB_SEL_MEAN, w, out, n, err);
}

/* A selection's sorted raw points, kept for repeated weighted collapses
 * (the bootstrap evaluates one statement thousands of times). */
struct nb_sum_prepared {
    int n_groups;
    int *group;
    struct rawpt **raw;
    size_t *n_raw;
};

void nb_summary_prepared_free(struct nb_sum_prepared *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_groups; i++)
        free(p->raw[i]);
    free(p->raw);
    free(p->n_raw);
    free(p->group);
    free(p);
}

int nb_summary_select_prepare(const struct nb_summary *s, const struct nb_metric *m,
                              const struct nb_sum_filter *f, int nf,
                              struct nb_sum_prepared **out, struct nb_error *err)
{
    *out = NULL;
    /* the same errors as a selection (filters, a missing column) */
    struct nb_sum_point *pts;
    size_t np;
    int rc = select_impl(s, m, f, nf, NB_SEL_MEAN, NULL, &pts, &np, err);
    if (rc)
        return rc;
    free(pts);
    struct nb_sum_prepared *p = calloc(1, sizeof *p);
    int *rank = string_ranks(s);
    if (p) {
        p->group = calloc((size_t)s->n_groups + 1, sizeof *p->group);
        p->raw = calloc((size_t)s->n_groups + 1, sizeof *p->raw);
        p->n_raw = calloc((size_t)s->n_groups + 1, sizeof *p->n_raw);
    }
    if (!p || !rank || !p->group || !p->raw || !p->n_raw) {
        free(rank);
        nb_summary_prepared_free(p);
        return oom(err);
    }
    bool found_col = false;
    for (int g = 0; g < s->n_groups; g++) {
        if (!nb_summary_group_matches(s, g, f, nf))
            continue;
        struct rawbuf rb = {0};
        if ((rc = gather_raw(s, m, g, f, nf, &rb, rank, &found_col))) {
            free(rb.p);
            free(rank);
            nb_summary_prepared_free(p);
            return oom(err);
        }
        if (rb.n)
            qsort(rb.p, rb.n, sizeof *rb.p, cmp_raw);
        p->group[p->n_groups] = g;
        p->raw[p->n_groups] = rb.p;
        p->n_raw[p->n_groups] = rb.n;
        p->n_groups++;
    }
    free(rank);
    *out = p;
    return 0;
}

int nb_summary_select_prepared(const struct nb_summary *s, const struct nb_sum_prepared *p,
                               const double *w, struct nb_sum_point **out, size_t *n,
                               struct nb_error *err)
{
    struct pts acc = {0};
    for (int i = 0; i < p->n_groups; i++) {
        int g = p->group[i];
        if (collapse(s, g, p->raw[i], p->n_raw[i], NB_SEL_MEAN,
                     w ? w + (size_t)g * (size_t)s->max_reps : NULL, group_spe(s, g), &acc)) {
            free(acc.p);
            return oom(err);
        }
    }
    *out = acc.p;
    *n = acc.n;
    return 0;
}

static int select_impl(const struct nb_summary *s, const struct nb_metric *m,
                       const struct nb_sum_filter *f, int nf, int mode, const double *w,
                       struct nb_sum_point **out, size_t *n, struct nb_error *err)
{
    *out = NULL;
    *n = 0;
    for (int i = 0; i < nf; i++) {
        bool probe_key = f[i].key == NB_FK_LAYER || f[i].key == NB_FK_PARAM ||
                         f[i].key == NB_FK_PARAM_VALUE;
        bool step_key = f[i].key == NB_FK_STEP || f[i].key == NB_FK_EPOCH;
        if ((probe_key && m->kind != NB_MK_PROBE) || (step_key && m->kind == NB_MK_SCALAR))
            return nb_error_set(err, NB_EINVAL, NULL, 0,
                                "filter '%s' does not apply to %s (a %s)", f[i].text,
                                m->text,
                                m->kind == NB_MK_SCALAR ? "per-run scalar"
                                                        : "metrics.csv column");
    }
    int *rank = string_ranks(s);
    if (!rank)
        return oom(err);
    struct pts acc = {0};
    struct rawbuf rb = {0};
    bool found_col = false;
    int rc = 0;
    for (int g = 0; g < s->n_groups && !rc; g++) {
        if (!nb_summary_group_matches(s, g, f, nf))
            continue;
        rb.n = 0;
        if ((rc = gather_raw(s, m, g, f, nf, &rb, rank, &found_col)))
            break;
        if (rb.n) /* rb.p is NULL when nothing was gathered */
            qsort(rb.p, rb.n, sizeof *rb.p, cmp_raw);
        rc = collapse(s, g, rb.p, rb.n, mode, w ? w + (size_t)g * (size_t)s->max_reps : NULL,
                      group_spe(s, g), &acc);
    }
    free(rb.p);
    free(rank);
    if (rc) {
        free(acc.p);
        return oom(err);
    }
    if (m->kind == NB_MK_STEP && !found_col) {
        bool any_done = false;
        for (size_t i = 0; i < s->n_runs; i++)
            any_done |= s->runs[i].status == NB_SUM_DONE ||
                        s->runs[i].status == NB_SUM_DIVERGED;
        if (any_done) {
            free(acc.p);
            return nb_error_set(err, NB_EINVAL, NULL, 0,
                                "no run's metrics.csv has a column '%s'", m->column);
        }
    }
    *out = acc.p;
    *n = acc.n;
    return 0;
}

/* ======================================================================
 * Writing tables
 * ====================================================================== */

struct hdr {
    const char **h;
    char **own;
    int n, cap, nown;
};

static int hdr_add(struct hdr *h, const char *name, bool copy)
{
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 64;
        const char **p = realloc(h->h, (size_t)cap * sizeof *p);
        char **q = realloc(h->own, (size_t)cap * sizeof *q);
        if (p)
            h->h = p;
        if (q)
            h->own = q;
        if (!p || !q)
            return NB_ENOMEM;
        h->cap = cap;
    }
    if (copy) {
        char *c = strdup(name);
        if (!c)
            return NB_ENOMEM;
        h->own[h->nown++] = c;
        name = c;
    }
    h->h[h->n++] = name;
    return 0;
}

static void hdr_free(struct hdr *h)
{
    for (int i = 0; i < h->nown; i++)
        free(h->own[i]);
    free(h->own);
    free(h->h);
    memset(h, 0, sizeof *h);
}

static int hdr_keys(struct hdr *h, const struct nb_summary *s)
{
    for (int j = 0; j < s->n_vary; j++) {
        char name[160];
        snprintf(name, sizeof name, "%s.%s", nb_keys[s->vary[j]].section,
                 nb_keys[s->vary[j]].key);
        if (hdr_add(h, name, true))
            return NB_ENOMEM;
    }
    return 0;
}

static int hdr_suffixed(struct hdr *h, const char *base, const char *const *suf)
{
    for (int i = 0; suf[i]; i++) {
        char name[200];
        snprintf(name, sizeof name, "%s_%s", base, suf[i]);
        if (hdr_add(h, name, true))
            return NB_ENOMEM;
    }
    return 0;
}

static void w_keys(struct nb_csvw *w, const struct nb_summary *s, int g)
{
    for (int j = 0; j < s->n_vary; j++)
        nb_csvw_str(w, nb_summary_group_val(s, g, s->vary[j]));
}

/* A double, NaN as a missing field. */
static void w_num(struct nb_csvw *w, double v)
{
    if (isnan(v))
        nb_csvw_missing(w);
    else
        nb_csvw_double(w, v);
}

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int write_runs(const struct nb_summary *s, const char *path,
                      struct nb_error *err)
{
    struct hdr h = {0};
    static const char *const fixed[] = {"sid", "label", "run_id", "status", "seed"};
    int rc = 0;
    for (int i = 0; i < 5 && !rc; i++)
        rc = hdr_add(&h, fixed[i], false);
    if (!rc)
        rc = hdr_keys(&h, s);
    for (int i = 0; i < NB_SC_COUNT && !rc; i++)
        rc = hdr_add(&h, scalars[i].name, false);
    if (rc) {
        hdr_free(&h);
        return oom(err);
    }
    struct nb_csvw w;
    rc = nb_csvw_open(&w, path, h.h, h.n, err);
    hdr_free(&h);
    if (rc)
        return rc;
    for (int g = 0; g < s->n_groups && !rc; g++)
        for (int i = 0; i < s->groups[g].n_runs && !rc; i++) {
            const struct nb_sum_run *r = &s->runs[s->groups[g].runs[i]];
            nb_csvw_long(&w, g);
            nb_csvw_str(&w, s->groups[g].label);
            nb_csvw_str(&w, r->run_id);
            nb_csvw_str(&w, nb_sum_status_name(r->status));
            nb_csvw_long(&w, (long long)r->seed);
            w_keys(&w, s, g);
            for (int k = 0; k < NB_SC_COUNT; k++)
                w_num(&w, r->sc[k]);
            rc = nb_csvw_end_row(&w, err);
        }
    int rc2 = nb_csvw_close(&w, false, rc ? NULL : err);
    return rc ? rc : rc2;
}

static const char *const suf5[] = {"mean", "std", "min", "max", "median", "n", NULL};
static const char *const suf4[] = {"mean", "std", "min", "max", NULL};

static int write_groups(const struct nb_summary *s, const char *path,
                        struct nb_error *err)
{
    struct hdr h = {0};
    static const char *const fixed[] = {"sid", "label", "title"};
    static const char *const counts[] = {"n_runs", "n_done", "n_diverged", "n_missing"};
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++)
        rc = hdr_add(&h, fixed[i], false);
    if (!rc)
        rc = hdr_keys(&h, s);
    for (int i = 0; i < 4 && !rc; i++)
        rc = hdr_add(&h, counts[i], false);
    for (int i = 0; i < NB_SC_COUNT && !rc; i++)
        rc = hdr_suffixed(&h, scalars[i].name, suf5);
    if (rc) {
        hdr_free(&h);
        return oom(err);
    }
    struct nb_csvw w;
    rc = nb_csvw_open(&w, path, h.h, h.n, err);
    hdr_free(&h);
    if (rc)
        return rc;
    double *v = malloc(((size_t)s->max_reps + 1) * sizeof *v);
    if (!v) {
        nb_csvw_close(&w, false, NULL);
        return oom(err);
    }
    for (int g = 0; g < s->n_groups && !rc; g++) {
        const struct nb_sum_group *G = &s->groups[g];
        nb_csvw_long(&w, g);
        nb_csvw_str(&w, G->label);
        nb_csvw_str(&w, G->title);
        w_keys(&w, s, g);
        nb_csvw_long(&w, G->n_runs);
        nb_csvw_long(&w, G->n_done);
        nb_csvw_long(&w, G->n_diverged);
        nb_csvw_long(&w, G->n_missing);
        for (int k = 0; k < NB_SC_COUNT; k++) {
            size_t nv = 0;
            for (int i = 0; i < G->n_runs; i++) {
                const struct nb_sum_run *r = &s->runs[G->runs[i]];
                if (r->status == NB_SUM_DONE || r->status == NB_SUM_DIVERGED)
                    v[nv++] = r->sc[k];
            }
            double st[5];
            int cnt = nb_stats(v, nv, &st[0], &st[1], &st[2], &st[3], &st[4]);
            for (int i = 0; i < 5; i++)
                w_num(&w, st[i]);
            nb_csvw_long(&w, cnt);
        }
        rc = nb_csvw_end_row(&w, err);
    }
    free(v);
    int rc2 = nb_csvw_close(&w, false, rc ? NULL : err);
    return rc ? rc : rc2;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/* The sorted distinct evaluation steps of group g's finished runs. */
static long *group_steps(const struct nb_summary *s, int g, size_t *n)
{
    const struct nb_sum_group *G = &s->groups[g];
    size_t tot = 0;
    for (int i = 0; i < G->n_runs; i++)
        tot += s->runs[G->runs[i]].metrics.nrows;
    long *st = malloc((tot ? tot : 1) * sizeof *st);
    if (!st)
        return NULL;
    size_t k = 0;
    for (int i = 0; i < G->n_runs; i++) {
        const struct nb_sum_run *r = &s->runs[G->runs[i]];
        int cs = col_of(&r->metrics, "step");
        if (cs < 0)
            continue;
        for (size_t j = 0; j < r->metrics.nrows; j++)
            st[k++] = (long)tval(&r->metrics, j, cs);
    }
    qsort(st, k, sizeof *st, cmp_long);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || st[u - 1] != st[i])
            st[u++] = st[i];
    *n = u;
    return st;
}

/* Row of run r's metrics at step, or -1. */
static long row_at_step(const struct nb_sum_run *r, long step)
{
    const struct nb_sum_table *t = &r->metrics;
    int cs = col_of(t, "step");
    if (cs < 0)
        return -1;
    size_t lo = 0, hi = t->nrows;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        long v = (long)tval(t, mid, cs);
        if (v < step)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < t->nrows && (long)tval(t, lo, cs) == step)
        return (long)lo;
    for (size_t i = 0; i < t->nrows; i++) /* unsorted file */
        if ((long)tval(t, i, cs) == step)
            return (long)i;
    return -1;
}

static int write_curves(const struct nb_summary *s, const char *path,
                        struct nb_error *err)
{
    struct hdr h = {0};
    static const char *const fixed[] = {"sid", "label"};
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++)
        rc = hdr_add(&h, fixed[i], false);
    if (!rc)
        rc = hdr_keys(&h, s);
    static const char *const pos[] = {"step", "epoch", "n"};
    for (int i = 0; i < 3 && !rc; i++)
        rc = hdr_add(&h, pos[i], false);
    for (int c = 0; c < s->n_mcols && !rc; c++)
        if (strcmp(s->mcols[c], "step") && strcmp(s->mcols[c], "epoch"))
            rc = hdr_suffixed(&h, s->mcols[c], suf4);
    if (rc) {
        hdr_free(&h);
        return oom(err);
    }
    struct nb_csvw w;
    rc = nb_csvw_open(&w, path, h.h, h.n, err);
    hdr_free(&h);
    if (rc)
        return rc;
    double *v = malloc(((size_t)s->max_reps + 1) * sizeof *v);
    long *rows = malloc(((size_t)s->max_reps + 1) * sizeof *rows);
    if (!v || !rows)
        rc = oom(err);
    for (int g = 0; g < s->n_groups && !rc; g++) {
        const struct nb_sum_group *G = &s->groups[g];
        size_t ns;
        long *steps = group_steps(s, g, &ns);
        if (!steps) {
            rc = oom(err);
            break;
        }
        for (size_t k = 0; k < ns && !rc; k++) {
            int n = 0;
            for (int i = 0; i < G->n_runs; i++) {
                rows[i] = row_at_step(&s->runs[G->runs[i]], steps[k]);
                n += rows[i] >= 0;
            }
            nb_csvw_long(&w, g);
            nb_csvw_str(&w, G->label);
            w_keys(&w, s, g);
            nb_csvw_long(&w, steps[k]);
            size_t nv = 0;
            for (int i = 0; i < G->n_runs; i++)
                if (rows[i] >= 0) {
                    const struct nb_sum_run *r = &s->runs[G->runs[i]];
                    v[nv++] = tval(&r->metrics, (size_t)rows[i], col_of(&r->metrics, "epoch"));
                }
            double ep;
            nb_stats(v, nv, &ep, NULL, NULL, NULL, NULL);
            w_num(&w, ep);
            nb_csvw_long(&w, n);
            for (int c = 0; c < s->n_mcols; c++) {
                if (!strcmp(s->mcols[c], "step") || !strcmp(s->mcols[c], "epoch"))
                    continue;
                nv = 0;
                for (int i = 0; i < G->n_runs; i++)
                    if (rows[i] >= 0) {
                        const struct nb_sum_run *r = &s->runs[G->runs[i]];
                        v[nv++] = tval(&r->metrics, (size_t)rows[i],
                                       col_of(&r->metrics, s->mcols[c]));
                    }
                double st[4];
                nb_stats(v, nv, &st[0], &st[1], &st[2], &st[3], NULL);
                for (int i = 0; i < 4; i++)
                    w_num(&w, st[i]);
            }
            rc = nb_csvw_end_row(&w, err);
        }
        free(steps);
    }
    free(v);
    free(rows);
    int rc2 = nb_csvw_close(&w, false, rc ? NULL : err);
    return rc ? rc : rc2;
}

/* probes.csv aggregated: per group, sorted raw rows collapsed with stats. */
struct prow_ex {
    int probe, stat, layer, param;
    int kp, ks, kl, kq; /* string ranks */
    double pv;
    long step;
    double value;
};

static int cmp_prow_ex(const void *pa, const void *pb)
{
    const struct prow_ex *a = pa, *b = pb;
    if (a->kp != b->kp)
        return a->kp < b->kp ? -1 : 1;
    if (a->kl != b->kl)
        return a->kl < b->kl ? -1 : 1;
    if (a->kq != b->kq)
        return a->kq < b->kq ? -1 : 1;
    if (!(a->pv == b->pv || (isnan(a->pv) && isnan(b->pv)))) {
        if (isnan(a->pv))
            return -1;
        if (isnan(b->pv))
            return 1;
        return a->pv < b->pv ? -1 : 1;
    }
    if (a->ks != b->ks)
        return a->ks < b->ks ? -1 : 1;
    if (a->step != b->step)
        return a->step < b->step ? -1 : 1;
    return 0;
}

static bool prow_same(const struct prow_ex *a, const struct prow_ex *b)
{
    return a->probe == b->probe && a->stat == b->stat && a->layer == b->layer &&
           a->param == b->param && a->step == b->step &&
           (a->pv == b->pv || (isnan(a->pv) && isnan(b->pv)));
}

static int write_probes(const struct nb_summary *s, const char *path,
                        struct nb_error *err)
{
    struct hdr h = {0};
    int rc = 0;
    static const char *const fixed[] = {"sid", "label"};
    static const char *const rest[] = {"probe", "layer", "param", "param_value", "stat",
                                       "step", "epoch", "n", "mean", "std", "min", "max"};
    for (int i = 0; i < 2 && !rc; i++)
        rc = hdr_add(&h, fixed[i], false);
    if (!rc)
        rc = hdr_keys(&h, s);
    for (int i = 0; i < 12 && !rc; i++)
        rc = hdr_add(&h, rest[i], false);
    if (rc) {
        hdr_free(&h);
        return oom(err);
    }
    struct nb_csvw w;
    rc = nb_csvw_open(&w, path, h.h, h.n, err);
    hdr_free(&h);
    if (rc)
        return rc;
    int *rank = string_ranks(s);
    double *v = malloc(((size_t)s->max_reps + 1) * sizeof *v);
    if (!rank || !v)
        rc = oom(err);
    for (int g = 0; g < s->n_groups && !rc; g++) {
        const struct nb_sum_group *G = &s->groups[g];
        size_t tot = 0;
        for (int i = 0; i < G->n_runs; i++)
            tot += s->runs[G->runs[i]].n_probes;
        if (!tot)
            continue;
        struct prow_ex *x = malloc(tot * sizeof *x);
        if (!x) {
            rc = oom(err);
            break;
        }
        size_t k = 0;
        for (int i = 0; i < G->n_runs; i++) {
            const struct nb_sum_run *r = &s->runs[G->runs[i]];
            for (size_t j = 0; j < r->n_probes; j++) {
                const struct nb_sum_prow *q = &r->probes[j];
                x[k++] = (struct prow_ex){
                    .probe = q->probe, .stat = q->stat, .layer = q->layer,
                    .param = q->param, .kp = q->probe >= 0 ? rank[q->probe] : -1,
                    .ks = q->stat >= 0 ? rank[q->stat] : -1,
                    .kl = q->layer >= 0 ? rank[q->layer] : -1,
                    .kq = q->param >= 0 ? rank[q->param] : -1,
                    .pv = q->param_value, .step = q->step, .value = q->value};
            }
        }
        qsort(x, k, sizeof *x, cmp_prow_ex);
        double spe = group_spe(s, g);
        for (size_t i = 0; i < k && !rc;) {
            size_t j = i, nv = 0;
            while (j < k && prow_same(&x[i], &x[j])) {
                if (nv < (size_t)s->max_reps)
                    v[nv++] = x[j].value;
                j++;
            }
            double st[4];
            int n = nb_stats(v, nv, &st[0], &st[1], &st[2], &st[3], NULL);
            nb_csvw_long(&w, g);
            nb_csvw_str(&w, G->label);
            w_keys(&w, s, g);
            nb_csvw_str(&w, nb_summary_str(s, x[i].probe));
            nb_csvw_str(&w, x[i].layer >= 0 ? nb_summary_str(s, x[i].layer) : NULL);
            nb_csvw_str(&w, x[i].param >= 0 ? nb_summary_str(s, x[i].param) : NULL);
            w_num(&w, x[i].pv);
            nb_csvw_str(&w, nb_summary_str(s, x[i].stat));
            nb_csvw_long(&w, x[i].step);
            w_num(&w, (double)x[i].step / spe);
            nb_csvw_long(&w, n);
            for (int c = 0; c < 4; c++)
                w_num(&w, st[c]);
            rc = nb_csvw_end_row(&w, err);
            i = j;
        }
        free(x);
    }
    free(rank);
    free(v);
    int rc2 = nb_csvw_close(&w, false, rc ? NULL : err);
    return rc ? rc : rc2;
}

const char *const nb_sum_table_files[] = {"runs.csv", "groups.csv", "curves.csv",
                                          "probes.csv", NULL};

int nb_summary_write_tables(const struct nb_summary *s, const char *dir,
                            struct nb_error *err)
{
    int rc = nb_mkdirs(dir, err);
    if (rc)
        return rc;
    const char *const *names = nb_sum_table_files;
    int (*const fns[])(const struct nb_summary *, const char *, struct nb_error *) = {
        write_runs, write_groups, write_curves, write_probes};
    bool any_probes = false;
    for (size_t i = 0; i < s->n_runs; i++)
        any_probes |= s->runs[i].n_probes > 0;
    for (int i = 0; i < 4 && !rc; i++) {
        if (i == 3 && !any_probes)
            break;
        char *p = join_path(dir, names[i]);
        if (!p)
            return oom(err);
        rc = fns[i](s, p, err);
        free(p);
    }
    return rc;
}

/* ======================================================================
 * Figure tables
 * ====================================================================== */

/* Axis titles. */
static const char *key_axis_title(int key)
{
    const struct nb_key *k = &nb_keys[key];
    if (!strcmp(k->section, "train") && !strcmp(k->key, "batch"))
        return "batch size";
    if (!strcmp(k->section, "optim") && !strcmp(k->key, "lr"))
        return "learning rate";
    if (!strcmp(k->section, "norm") && !strcmp(k->key, "groups"))
        return "groups G";
    if (!strcmp(k->section, "model") && !strcmp(k->key, "depth"))
        return "depth";
    if (!strcmp(k->section, "model") && !strcmp(k->key, "dln_layers"))
        return "layers";
    return k->full;
}

static const char *scalar_axis_title(int sc)
{
    return sc >= 0 && sc < NB_SC_COUNT ? scalars[sc].title : NULL;
}

/* Series for figures with a key on x: groups that agree on every varying
 * key except x and the keys x determines.  series[g] = series index (-1
 * when g is filtered out); returns the count; labels in lab[] (malloc'd). */
static int make_series(const struct nb_summary *s, int x, const struct nb_fig_spec *f,
                       int *series, char ***lab_out, int **first_out)
{
    /* keys that define a series */
    int *sk = malloc(((size_t)s->n_vary + 1) * sizeof *sk);
    int nsk = 0;
    int *first = malloc(((size_t)s->n_groups + 1) * sizeof *first);
    char **lab = calloc((size_t)s->n_groups + 1, sizeof *lab);
    if (!sk || !first || !lab) {
        free(sk), free(first), free(lab);
        return -1;
    }
    for (int j = 0; j < s->n_vary; j++) {
        int k = s->vary[j];
        if (k == x || !s->in_label[j])
            continue;
        if (x >= 0 && determined(s, k, &x, 1))
            continue;
        sk[nsk++] = k;
    }
    int ns = 0;
    for (int g = 0; g < s->n_groups; g++) {
        series[g] = -1;
        if (!nb_summary_group_matches(s, g, f->where, f->n_where))
            continue;
        int k;
        for (k = 0; k < ns; k++) {
            bool same = true;
            for (int i = 0; i < nsk && same; i++)
                same = !strcmp(nb_summary_group_val(s, g, sk[i]),
                               nb_summary_group_val(s, first[k], sk[i]));
            if (same)
                break;
        }
        if (k == ns) {
            first[ns] = g;
            char label[1024] = "";
            for (int i = 0; i < nsk; i++)
                label_append(label, sizeof label, sk[i], nb_summary_group_val(s, g, sk[i]));
            if (!label[0])
                snprintf(label, sizeof label, "all runs");
            lab[ns] = strdup(label);
            ns++;
        }
        series[g] = k;
    }
    free(sk);
    *lab_out = lab;
    *first_out = first;
    return ns;
}

static void free_labels(char **lab, int n)
{
    if (!lab)
        return;
    for (int i = 0; i < n; i++)
        free(lab[i]);
    free(lab);
}

/* Replicate counts of a series: the largest n of its groups, and the
 * diverged runs summed. */
static void series_title(const struct nb_summary *s, const int *series, int k,
                         const char *label, char *buf, size_t size)
{
    int n = 0, div = 0, miss = 0;
    for (int g = 0; g < s->n_groups; g++) {
        if (series[g] != k)
            continue;
        int ng = s->groups[g].n_done + s->groups[g].n_diverged;
        if (ng > n)
            n = ng;
        div += s->groups[g].n_diverged;
        miss += s->groups[g].n_missing;
    }
    int len = snprintf(buf, size, "%s (n=%d", label, n);
    if (div)
        len += snprintf(buf + len, size - (size_t)len, "; %d run%s diverged", div,
                        div == 1 ? "" : "s");
    if (miss)
        len += snprintf(buf + len, size - (size_t)len, "; %d missing", miss);
    snprintf(buf + len, size - (size_t)len, ")");
}


/* Colour and dash ordinals of figure series, so that a scheme keeps its
 * colour across batch sizes: keys = the label keys that vary among the
 * n groups g[] (norm.type first when it is one of them); ci[i] = ordinal
 * of g[i]'s value of the first such key, di[i] = ordinal of its values
 * of the others (both in order of first appearance). */
static void style_ords(const struct nb_summary *s, const int *g, int n, const int *cand,
                       int ncand, int *ci, int *di)
{
    int keys[64], nk = 0;
    int nt = nb_key_lookup("norm", "type");
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < ncand && nk < 64; j++) {
            int k = cand[j];
            if ((pass == 0) != (k == nt))
                continue;
            bool varies = false;
            for (int i = 1; i < n && !varies; i++)
                varies = strcmp(nb_summary_group_val(s, g[i], k),
                                nb_summary_group_val(s, g[0], k)) != 0;
            if (varies)
                keys[nk++] = k;
        }
    int nci = 0, ndi = 0;
    for (int i = 0; i < n; i++) {
        if (nk == 0) {
            ci[i] = i;
            di[i] = 0;
            continue;
        }
        ci[i] = di[i] = -1;
        for (int j = 0; j < i; j++) {
            if (ci[i] < 0 && !strcmp(nb_summary_group_val(s, g[i], keys[0]),
                                     nb_summary_group_val(s, g[j], keys[0])))
                ci[i] = ci[j];
            bool same = true;
            for (int q = 1; q < nk && same; q++)
                same = !strcmp(nb_summary_group_val(s, g[i], keys[q]),
                               nb_summary_group_val(s, g[j], keys[q]));
            if (di[i] < 0 && same)
                di[i] = di[j];
        }
        if (ci[i] < 0)
            ci[i] = nci++;
        if (di[i] < 0)
            di[i] = ndi++;
    }
}

/* style_ords over the groups matching f's filters, by group index
 * (ci[g], di[g]; -1 for groups filtered out). */
static int group_styles(const struct nb_summary *s, const struct nb_fig_spec *f, int **ci_out,
                        int **di_out)
{
    int n = s->n_groups;
    int *g = calloc((size_t)n + 1, sizeof *g), *keys = calloc((size_t)s->n_vary + 1, sizeof *keys);
    int *ci = malloc(((size_t)n + 1) * sizeof *ci), *di = malloc(((size_t)n + 1) * sizeof *di);
    int *c2 = malloc(((size_t)n + 1) * sizeof *c2), *d2 = malloc(((size_t)n + 1) * sizeof *d2);
    if (!g || !keys || !ci || !di || !c2 || !d2) {
        free(g), free(keys), free(ci), free(di), free(c2), free(d2);
        return NB_ENOMEM;
    }
    int m = 0, nk = 0;
    for (int i = 0; i < n; i++) {
        ci[i] = di[i] = -1;
        if (nb_summary_group_matches(s, i, f->where, f->n_where))
            g[m++] = i;
    }
    for (int j = 0; j < s->n_vary; j++)
        if (s->in_label[j])
            keys[nk++] = s->vary[j];
    style_ords(s, g, m, keys, nk, c2, d2);
    for (int i = 0; i < m; i++) {
        ci[g[i]] = c2[i];
        di[g[i]] = d2[i];
    }
    free(g), free(keys), free(c2), free(d2);
    *ci_out = ci;
    *di_out = di;
    return 0;
}


/* style_ords for the series of a key-on-x figure (first[k] = a group of
 * series k): the label keys except x. */
static int series_styles(const struct nb_summary *s, int x, const int *first, int ns, int **ci,
                         int **di)
{
    int *keys = malloc(((size_t)s->n_vary + 1) * sizeof *keys);
    *ci = malloc(((size_t)ns + 1) * sizeof **ci);
    *di = malloc(((size_t)ns + 1) * sizeof **di);
    if (!keys || !*ci || !*di) {
        free(keys), free(*ci), free(*di);
        *ci = *di = NULL;
        return NB_ENOMEM;
    }
    int nk = 0;
    for (int j = 0; j < s->n_vary; j++)
        if (s->in_label[j] && s->vary[j] != x)
            keys[nk++] = s->vary[j];
    style_ords(s, first, ns, keys, nk, *ci, *di);
    free(keys);
    return 0;
}

struct xs_ctx {
    const struct nb_summary *s;
    int key;
};

/* qsort_r order of group indices by their value of ctx's key */
static int cmp_group_x(const void *pa, const void *pb, void *ctx)
{
    const struct xs_ctx *c = ctx;
    int a = *(const int *)pa, b = *(const int *)pb;
    return cmp_val(nb_summary_group_val(c->s, a, c->key), nb_summary_group_val(c->s, b, c->key));
}

/* Groups of series k sorted by x. */
static int series_groups(const struct nb_summary *s, const int *series, int k, int x,
                         int *out)
{
    int n = 0;
    for (int g = 0; g < s->n_groups; g++)
        if (series[g] == k)
            out[n++] = g;
    if (x >= 0) {
        struct xs_ctx c = {s, x};
        qsort_r(out, (size_t)n, sizeof *out, cmp_group_x, &c);
    }
    return n;
}

/* The series of a key-on-x figure with their styles: series[g] (from
 * make_series), labels lab[], a group first[k] and styles ci[k] / di[k]
 * of each series, and gl[] for series_groups. */
struct fig_series {
    int *series, *gl, *first, *ci, *di;
    char **lab;
    int ns;
};

static void fig_series_free(struct fig_series *fs)
{
    free(fs->series), free(fs->gl), free(fs->first), free(fs->ci), free(fs->di);
    free_labels(fs->lab, fs->ns < 0 ? 0 : fs->ns);
    memset(fs, 0, sizeof *fs);
}

/* Fills fs for figure f; on failure sets err and returns its code (fs
 * still wants fig_series_free, and has no series to walk). */
static int fig_series_init(struct fig_series *fs, const struct nb_summary *s,
                           const struct nb_fig_spec *f, struct nb_error *err)
{
    memset(fs, 0, sizeof *fs);
    fs->series = malloc(((size_t)s->n_groups + 1) * sizeof *fs->series);
    fs->gl = malloc(((size_t)s->n_groups + 1) * sizeof *fs->gl);
    if (!fs->series || !fs->gl)
        return oom(err);
    fs->ns = make_series(s, f->x, f, fs->series, &fs->lab, &fs->first);
    if (fs->ns < 0 || series_styles(s, f->x, fs->first, fs->ns, &fs->ci, &fs->di))
        return oom(err);
    return 0;
}

/* Series k's title into title[size] and its groups, sorted by x, into
 * fs->gl; returns their count. */
static int fig_series_at(const struct fig_series *fs, const struct nb_summary *s, int x, int k,
                         char *title, size_t size)
{
    series_title(s, fs->series, k, fs->lab[k], title, size);
    return series_groups(s, fs->series, k, x, fs->gl);
}

/* Stats of a scalar over group g's finished runs. */
static int group_scalar(const struct nb_summary *s, int g, int sc, double st[5])
{
    const struct nb_sum_group *G = &s->groups[g];
    double v[256];
    size_t nv = 0;
    for (int i = 0; i < G->n_runs && nv < 256; i++) {
        const struct nb_sum_run *r = &s->runs[G->runs[i]];
        if (r->status == NB_SUM_DONE || r->status == NB_SUM_DIVERGED)
            v[nv++] = r->sc[sc];
    }
    return nb_stats(v, nv, &st[0], &st[1], &st[2], &st[3], &st[4]);
}

/* A selection of metric text in group g (mean mode if rep < 0), with
 * stats over replicates at each point.  Fills parallel arrays per point:
 * mean / min / max over replicates; returns count. */
struct agg {
    long *step;
    double *epoch, *mean, *min, *max, *sd;
    int *n;
    int *layer, *param;
    size_t cnt;
};

static void agg_free(struct agg *a)
{
    free(a->step), free(a->epoch), free(a->mean), free(a->min), free(a->max);
    free(a->sd), free(a->n), free(a->layer), free(a->param);
    memset(a, 0, sizeof *a);
}

/* Aggregates probe stat PROBE.STAT of group g over its replicates at every
 * (layer, param, param_value, step) passing the point filters. */
static int aggregate(const struct nb_summary *s, int g, const char *probe,
                     const char *stat, const struct nb_sum_filter *f, int nf,
                     struct agg *a)
{
    memset(a, 0, sizeof *a);
    struct nb_metric m = {.kind = NB_MK_PROBE, .probe = (char *)probe,
                          .stat = (char *)stat, .text = (char *)stat};
    int *rank = string_ranks(s);
    struct rawbuf rb = {0};
    bool found = false;
    if (!rank)
        return NB_ENOMEM;
    int rc = gather_raw(s, &m, g, f, nf, &rb, rank, &found);
    free(rank);
    if (rc) {
        free(rb.p);
        return rc;
    }
    if (rb.n) /* rb.p is NULL when nothing was gathered */
        qsort(rb.p, rb.n, sizeof *rb.p, cmp_raw);
    size_t n = rb.n ? rb.n : 1;
    a->step = malloc(n * sizeof *a->step);
    a->epoch = malloc(n * sizeof(double));
    a->mean = malloc(n * sizeof(double));
    a->min = malloc(n * sizeof(double));
    a->max = malloc(n * sizeof(double));
    a->sd = malloc(n * sizeof(double));
    a->n = malloc(n * sizeof(int));
    a->layer = malloc(n * sizeof(int));
    a->param = malloc(n * sizeof(int));
    double *v = malloc(n * sizeof *v);
    if (!a->step || !a->epoch || !a->mean || !a->min || !a->max || !a->sd || !a->n ||
        !a->layer || !a->param || !v) {
        free(v);
        free(rb.p);
        agg_free(a);
        return NB_ENOMEM;
    }
    double spe = group_spe(s, g);
    for (size_t i = 0; i < rb.n;) {
        size_t j = i, nv = 0;
        while (j < rb.n && same_point(&rb.p[i], &rb.p[j]))
            v[nv++] = rb.p[j++].value;
        size_t c = a->cnt;
        a->n[c] = nb_stats(v, nv, &a->mean[c], &a->sd[c], &a->min[c], &a->max[c], NULL);
        a->step[c] = rb.p[i].step;
        a->epoch[c] = (double)rb.p[i].step / spe;
        a->layer[c] = rb.p[i].layer;
        a->param[c] = rb.p[i].param;
        a->cnt++;
        i = j;
    }
    free(v);
    free(rb.p);
    return 0;
}

/* Index of step in a (layer -1), or -1. */
static long agg_find(const struct agg *a, long step, int layer, size_t from)
{
    for (size_t i = from; i < a->cnt; i++)
        if (a->step[i] == step && a->layer[i] == layer)
            return (long)i;
    for (size_t i = 0; i < from && i < a->cnt; i++)
        if (a->step[i] == step && a->layer[i] == layer)
            return (long)i;
    return -1;
}

static int fig_vs(const struct nb_summary *s, const struct nb_fig_spec *f,
                  struct nb_csvw *w, struct nb_error *err)
{
    struct fig_series fs;
    int rc = fig_series_init(&fs, s, f, err);
    int sid = 0;
    for (int k = 0; k < fs.ns && !rc; k++) {
        char title[1200];
        int n = fig_series_at(&fs, s, f->x, k, title, sizeof title);
        bool any = false;
        for (int i = 0; i < n && !rc; i++) {
            int g = fs.gl[i];
            double x;
            if (!parse_num(nb_summary_group_val(s, g, f->x), &x))
                continue;
            double st[5];
            int cnt = group_scalar(s, g, f->scalar, st);
            if (cnt == 0 && s->groups[g].n_diverged == 0)
                continue; /* nothing finished here */
            nb_csvw_long(w, sid);
            nb_csvw_str(w, title);
            nb_csvw_long(w, fs.ci[k]);
            nb_csvw_long(w, fs.di[k]);
            nb_csvw_str(w, key_axis_title(f->x));
            nb_csvw_str(w, scalar_axis_title(f->scalar));
            nb_csvw_double(w, x);
            for (int c = 0; c < 4; c++)
                w_num(w, st[c]);
            nb_csvw_long(w, cnt);
            nb_csvw_long(w, s->groups[g].n_diverged);
            nb_csvw_long(w, s->groups[g].n_done + s->groups[g].n_diverged);
            rc = nb_csvw_end_row(w, err);
            any = true;
        }
        sid += any;
    }
    fig_series_free(&fs);
    if (!rc && sid == 0)
        return nb_error_set(err, NB_ENOENT, NULL, 0,
                            "no finished run with a numeric %s", key_axis_title(f->x));
    return rc;
}

static int fig_hessian(const struct nb_summary *s, const struct nb_fig_spec *f,
                       struct nb_csvw *w, struct nb_error *err)
{
    struct fig_series fs;
    int rc = fig_series_init(&fs, s, f, err);
    int sid = 0;
    for (int k = 0; k < fs.ns && !rc; k++) {
        char title[1200];
        int n = fig_series_at(&fs, s, f->x, k, title, sizeof title);
        bool any = false;
        for (int i = 0; i < n && !rc; i++) {
            int g = fs.gl[i];
            double x;
            if (!parse_num(nb_summary_group_val(s, g, f->x), &x))
                continue;
            /* each run's last hessian row of each stat */
            double st[2][4];
            int cnt = 0;
            static const char *const stats[2] = {"lambda_max", "trace"};
            for (int q = 0; q < 2; q++) {
                double v[256];
                size_t nv = 0;
                int probe = nb_summary_str_find(s, "hessian");
                int stat = nb_summary_str_find(s, stats[q]);
                const struct nb_sum_group *G = &s->groups[g];
                for (int r = 0; r < G->n_runs && nv < 256; r++) {
                    const struct nb_sum_run *run = &s->runs[G->runs[r]];
                    double last = NAN;
                    long lstep = -1;
                    for (size_t j = 0; j < run->n_probes; j++) {
                        const struct nb_sum_prow *p = &run->probes[j];
                        if (p->probe == probe && p->stat == stat && p->step >= lstep) {
                            lstep = p->step;
                            last = p->value;
                        }
                    }
                    if (probe >= 0 && stat >= 0 && lstep >= 0)
                        v[nv++] = last;
                }
                int c = nb_stats(v, nv, &st[q][0], &st[q][1], &st[q][2], &st[q][3], NULL);
                if (c > cnt)
                    cnt = c;
            }
            if (cnt == 0)
                continue;
            nb_csvw_long(w, sid);
            nb_csvw_str(w, title);
            nb_csvw_long(w, fs.ci[k]);
            nb_csvw_long(w, fs.di[k]);
            nb_csvw_str(w, key_axis_title(f->x));
            nb_csvw_double(w, x);
            for (int q = 0; q < 2; q++) {
                w_num(w, st[q][0]);
                w_num(w, st[q][2]);
                w_num(w, st[q][3]);
            }
            nb_csvw_long(w, cnt);
            rc = nb_csvw_end_row(w, err);
            any = true;
        }
        sid += any;
    }
    fig_series_free(&fs);
    if (!rc && sid == 0)
        return nb_error_set(err, NB_ENOENT, NULL, 0, "no hessian probe rows");
    return rc;
}

static int fig_curves(const struct nb_summary *s, const struct nb_fig_spec *f,
                      struct nb_csvw *w, struct nb_error *err)
{
    int rc = 0, sid = 0;
    double *v = malloc(((size_t)s->max_reps + 1) * sizeof *v);
    long *rows = malloc(((size_t)s->max_reps + 1) * sizeof *rows);
    if (!v || !rows) {
        free(v), free(rows);
        return oom(err);
    }
    static const char *const cols[] = {"train_loss", "test_error", "test_acc", "train_error"};
    int *ci = NULL, *di = NULL;
    if (group_styles(s, f, &ci, &di)) {
        free(v), free(rows);
        return oom(err);
    }
    for (int g = 0; g < s->n_groups && !rc; g++) {
        if (!nb_summary_group_matches(s, g, f->where, f->n_where))
            continue;
        const struct nb_sum_group *G = &s->groups[g];
        size_t ns;
        long *steps = group_steps(s, g, &ns);
        if (!steps) {
            rc = oom(err);
            break;
        }
        double spe = group_spe(s, g);
        bool any = false;
        for (size_t k = 0; k < ns && !rc; k++) {
            if (!point_matches(s, f->where, f->n_where, steps[k], (double)steps[k] / spe,
                               -1, -1, NAN))
                continue;
            int n = 0;
            for (int i = 0; i < G->n_runs; i++) {
                rows[i] = row_at_step(&s->runs[G->runs[i]], steps[k]);
                n += rows[i] >= 0;
            }
            nb_csvw_long(w, sid);
            nb_csvw_str(w, G->title);
            nb_csvw_long(w, ci[g]);
            nb_csvw_long(w, di[g]);
            nb_csvw_long(w, steps[k]);
            size_t nv = 0;
            for (int i = 0; i < G->n_runs; i++)
                if (rows[i] >= 0) {
                    const struct nb_sum_run *r = &s->runs[G->runs[i]];
                    v[nv++] = tval(&r->metrics, (size_t)rows[i], col_of(&r->metrics, "epoch"));
                }
            double ep;
            nb_stats(v, nv, &ep, NULL, NULL, NULL, NULL);
            w_num(w, ep);
            nb_csvw_long(w, n);
            for (int c = 0; c < 4; c++) {
                nv = 0;
                for (int i = 0; i < G->n_runs; i++)
                    if (rows[i] >= 0) {
                        const struct nb_sum_run *r = &s->runs[G->runs[i]];
                        v[nv++] = tval(&r->metrics, (size_t)rows[i],
                                       col_of(&r->metrics, cols[c]));
                    }
                double st[4];
                nb_stats(v, nv, &st[0], &st[1], &st[2], &st[3], NULL);
                w_num(w, st[0]);
                w_num(w, st[2]);
                w_num(w, st[3]);
            }
            rc = nb_csvw_end_row(w, err);
            any = true;
        }
        free(steps);
        sid += any;
    }
    free(v), free(rows), free(ci), free(di);
    if (!rc && sid == 0)
        return nb_error_set(err, NB_ENOENT, NULL, 0, "no evaluation rows");
    return rc;
}

static int fig_landscape(const struct nb_summary *s, const struct nb_fig_spec *f,
                         struct nb_csvw *w, struct nb_error *err)
{
    static const char *const stats[] = {"loss_min", "loss_max", "grad_change_min",
                                        "grad_change_max", "beta_eff", "loss0"};
    int rc = 0, sid = 0;
    int *ci = NULL, *di = NULL;
    if (group_styles(s, f, &ci, &di))
        return oom(err);
    for (int g = 0; g < s->n_groups && !rc; g++) {
        if (!nb_summary_group_matches(s, g, f->where, f->n_where))
            continue;
        struct agg a[6];
        int q;
        for (q = 0; q < 6; q++)
            if (aggregate(s, g, "landscape", stats[q], f->where, f->n_where, &a[q]))
                break;
        if (q < 6) {
            for (int i = 0; i < q; i++)
                agg_free(&a[i]);
            rc = oom(err);
            break;
        }
        for (size_t i = 0; i < a[0].cnt && !rc; i++) {
            if (a[0].layer[i] != -1)
                continue;
            long idx[6];
            for (int j = 0; j < 6; j++)
                idx[j] = agg_find(&a[j], a[0].step[i], -1, i);
            nb_csvw_long(w, sid);
            nb_csvw_str(w, s->groups[g].title);
            nb_csvw_long(w, ci[g]);
            nb_csvw_long(w, di[g]);
            nb_csvw_long(w, a[0].step[i]);
            w_num(w, a[0].epoch[i]);
            nb_csvw_long(w, a[0].n[i]);
            for (int j = 0; j < 4; j++)
                w_num(w, idx[j] >= 0 ? a[j].mean[idx[j]] : NAN);
            w_num(w, idx[4] >= 0 ? a[4].mean[idx[4]] : NAN);
            w_num(w, idx[4] >= 0 ? a[4].min[idx[4]] : NAN);
            w_num(w, idx[4] >= 0 ? a[4].max[idx[4]] : NAN);
            w_num(w, idx[5] >= 0 ? a[5].mean[idx[5]] : NAN);
            rc = nb_csvw_end_row(w, err);
        }
        sid += a[0].cnt > 0;
        for (int i = 0; i < 6; i++)
            agg_free(&a[i]);
    }
    free(ci), free(di);
    if (!rc && sid == 0)
        return nb_error_set(err, NB_ENOENT, NULL, 0, "no landscape probe rows");
    return rc;
}

/* ics and dist: one series per (group, layer). */
static int fig_layers(const struct nb_summary *s, const struct nb_fig_spec *f,
                      struct nb_csvw *w, struct nb_error *err)
{
    bool ics = f->kind == NB_FIG_ICS;
    const char *probe = ics ? "ics" : "dist";
    static const char *const ics_stats[] = {"l2", "cos"};
    static const char *const dist_stats[] = {"p15", "p50", "p85"};
    const char *const *stats = ics ? ics_stats : dist_stats;
    int nst = ics ? 2 : 3;
    const char *want_param = f->param ? f->param : "out";
    int pid = nb_summary_str_find(s, want_param);
    int rc = 0, sid = 0;
    int *ci = NULL, *di = NULL;
    if (group_styles(s, f, &ci, &di))
        return oom(err);
    for (int g = 0; g < s->n_groups && !rc; g++) {
        if (!nb_summary_group_matches(s, g, f->where, f->n_where))
            continue;
        struct agg a[3];
        int q;
        for (q = 0; q < nst; q++)
            if (aggregate(s, g, probe, stats[q], f->where, f->n_where, &a[q]))
                break;
        if (q < nst) {
            for (int i = 0; i < q; i++)
                agg_free(&a[i]);
            rc = oom(err);
            break;
        }
        /* points are sorted by layer then param then step: one series per
         * (layer, param) run of rows */
        int cur_layer = -2, cur_param = -2, nlayer = -1;
        bool open = false;
        for (size_t i = 0; i < a[0].cnt && !rc; i++) {
            if (!ics && a[0].param[i] != pid)
                continue;
            if (a[0].layer[i] != cur_layer || a[0].param[i] != cur_param) {
                if (open)
                    sid++;
                cur_layer = a[0].layer[i];
                cur_param = a[0].param[i];
                open = true;
                nlayer++;
            }
            char title[1400];
            const struct nb_sum_group *G = &s->groups[g];
            int n = G->n_done + G->n_diverged;
            snprintf(title, sizeof title, "%s %s%s%s (n=%d)", G->label,
                     nb_summary_str(s, a[0].layer[i]), ics ? "" : " ",
                     ics ? "" : want_param, n);
            nb_csvw_long(w, sid);
            nb_csvw_str(w, title);
            nb_csvw_long(w, ci[g]);
            nb_csvw_long(w, nlayer);
            nb_csvw_str(w, nb_summary_str(s, a[0].layer[i]));
            nb_csvw_long(w, a[0].step[i]);
            w_num(w, a[0].epoch[i]);
            nb_csvw_long(w, a[0].n[i]);
            for (int j = 0; j < nst; j++) {
                long idx = j == 0 ? (long)i : -1;
                if (j > 0)
                    for (size_t t = 0; t < a[j].cnt; t++)
                        if (a[j].step[t] == a[0].step[i] && a[j].layer[t] == a[0].layer[i] &&
                            a[j].param[t] == a[0].param[i]) {
                            idx = (long)t;
                            break;
                        }
                w_num(w, idx >= 0 ? a[j].mean[idx] : NAN);
                if (ics) {
                    w_num(w, idx >= 0 ? a[j].min[idx] : NAN);
                    w_num(w, idx >= 0 ? a[j].max[idx] : NAN);
                }
            }
            rc = nb_csvw_end_row(w, err);
        }
        if (open)
            sid++;
        for (int i = 0; i < nst; i++)
            agg_free(&a[i]);
    }
    free(ci), free(di);
    if (!rc && sid == 0)
        return nb_error_set(err, NB_ENOENT, NULL, 0, "no %s probe rows%s%s", probe,
                            ics ? "" : " with param ", ics ? "" : want_param);
    return rc;
}

/* The last slice of each finished run of group g with dimension dim, if
 * all have the same grid. */
static int group_slices(const struct nb_summary *s, int g, int dim,
                        const struct nb_sum_slice **out)
{
    const struct nb_sum_group *G = &s->groups[g];
    int n = 0;
    for (int i = 0; i < G->n_runs; i++) {
        const struct nb_sum_run *r = &s->runs[G->runs[i]];
        const struct nb_sum_slice *last = NULL;
        for (int k = 0; k < r->n_slices; k++)
            if (r->slices[k].dim == dim)
                last = &r->slices[k];
        if (!last)
            continue;
        if (n > 0 && (last->na != out[0]->na || last->nb != out[0]->nb))
            continue;
        out[n++] = last;
    }
    return n;
}

static int fig_slice(const struct nb_summary *s, const struct nb_fig_spec *f,
                     struct nb_csvw *w, struct nb_error *err)
{
    int dim = f->kind == NB_FIG_SLICE2D ? 2 : 1;
    const struct nb_sum_slice **sl = malloc(((size_t)s->max_reps + 1) * sizeof *sl);
    double *v = malloc(((size_t)s->max_reps + 1) * sizeof *v);
    if (!sl || !v) {
        free(sl), free(v);
        return oom(err);
    }
    int rc = 0, sid = 0;
    int *ci = NULL, *di = NULL;
    if (group_styles(s, f, &ci, &di)) {
        free(sl), free(v);
        return oom(err);
    }
    for (int g = 0; g < s->n_groups && !rc; g++) {
        if (!nb_summary_group_matches(s, g, f->where, f->n_where))
            continue;
        int n = group_slices(s, g, dim, sl);
        if (n == 0)
            continue;
        char title[1200];
        snprintf(title, sizeof title, "%s (n=%d)", s->groups[g].label, n);
        int na = sl[0]->na, nb = sl[0]->nb;
        for (int i = 0; i < na && !rc; i++) {
            for (int j = 0; j < nb && !rc; j++) {
                size_t p = (size_t)i * (size_t)nb + (size_t)j;
                for (int k = 0; k < n; k++)
                    v[k] = sl[k]->loss[p];
                double st[4];
                int cnt = nb_stats(v, (size_t)n, &st[0], &st[1], &st[2], &st[3], NULL);
                nb_csvw_long(w, sid);
                nb_csvw_str(w, title);
                nb_csvw_long(w, ci[g]);
                nb_csvw_long(w, di[g]);
                nb_csvw_double(w, sl[0]->a[p]);
                if (dim == 2)
                    nb_csvw_double(w, sl[0]->b[p]);
                w_num(w, st[0]);
                w_num(w, st[2]);
                w_num(w, st[3]);
                for (int k = 0; k < n; k++)
                    v[k] = sl[k]->acc[p];
                double am;
                nb_stats(v, (size_t)n, &am, NULL, NULL, NULL, NULL);
                w_num(w, am);
                nb_csvw_long(w, cnt);
                rc = nb_csvw_end_row(w, err);
            }
            if (dim == 2 && !rc && fputc('\n', w->fp) == EOF)
                rc = nb_error_set(err, NB_EIO, w->path, 0, "write error");
        }
        if (dim == 2 && !rc && fputc('\n', w->fp) == EOF)
            rc = nb_error_set(err, NB_EIO, w->path, 0, "write error");
        sid++;
    }
    free(sl), free(v), free(ci), free(di);
    if (!rc && sid == 0)
        return nb_error_set(err, NB_ENOENT, NULL, 0, "no %d-D slices", dim);
    return rc;
}

int nb_summary_figure_table(const struct nb_summary *s,
                            const struct nb_fig_spec *f, const char *path,
                            struct nb_error *err)
{
    static const char *const h_curves[] = {
        "sid", "series", "ci", "di", "step", "epoch", "n", "train_loss_mean", "train_loss_min",
        "train_loss_max", "test_error_mean", "test_error_min", "test_error_max",
        "test_acc_mean", "test_acc_min", "test_acc_max", "train_error_mean",
        "train_error_min", "train_error_max"};
    static const char *const h_vs[] = {"sid", "series", "ci", "di", "xlabel", "ylabel", "x",
                                       "mean", "std", "min", "max", "n",
                                       "n_diverged", "n_runs"};
    static const char *const h_land[] = {
        "sid", "series", "ci", "di", "step", "epoch", "n", "loss_min", "loss_max",
        "grad_change_min", "grad_change_max", "beta_eff_mean", "beta_eff_min",
        "beta_eff_max", "loss0"};
    static const char *const h_ics[] = {"sid", "series", "ci", "di", "layer", "step", "epoch", "n",
                                        "l2_mean", "l2_min", "l2_max", "cos_mean",
                                        "cos_min", "cos_max"};
    static const char *const h_dist[] = {"sid", "series", "ci", "di", "layer", "step", "epoch", "n",
                                         "p15", "p50", "p85"};
    static const char *const h_hess[] = {"sid", "series", "ci", "di", "xlabel", "x",
                                         "lambda_max_mean", "lambda_max_min",
                                         "lambda_max_max", "trace_mean", "trace_min",
                                         "trace_max", "n"};
    static const char *const h_s1[] = {"sid", "series", "ci", "di", "a", "loss_mean", "loss_min",
                                       "loss_max", "acc_mean", "n"};
    static const char *const h_s2[] = {"sid", "series", "ci", "di", "a", "b", "loss_mean", "loss_min",
                                       "loss_max", "acc_mean", "n"};
    const char *const *h;
    int nh;
    int (*fn)(const struct nb_summary *, const struct nb_fig_spec *, struct nb_csvw *,
              struct nb_error *);
#define H(a) (h = (a), nh = (int)(sizeof(a) / sizeof(a)[0]))
    switch (f->kind) {
    case NB_FIG_CURVES: H(h_curves); fn = fig_curves; break;
    case NB_FIG_VS_BATCH:
    case NB_FIG_VS_LR: H(h_vs); fn = fig_vs; break;
    case NB_FIG_LANDSCAPE: H(h_land); fn = fig_landscape; break;
    case NB_FIG_ICS: H(h_ics); fn = fig_layers; break;
    case NB_FIG_DIST: H(h_dist); fn = fig_layers; break;
    case NB_FIG_HESSIAN: H(h_hess); fn = fig_hessian; break;
    case NB_FIG_SLICE1D: H(h_s1); fn = fig_slice; break;
    case NB_FIG_SLICE2D: H(h_s2); fn = fig_slice; break;
    case NB_FIG_COUNT:
    default: /* f->kind is an int: anything else is no kind */
        return nb_error_set(err, NB_EINVAL, NULL, 0, "unknown figure kind %d", f->kind);
    }
#undef H
    if (fig_kinds[f->kind].default_x && (f->x < 0 || f->x >= nb_n_keys))
        return nb_error_set(err, NB_EINVAL, NULL, 0, "figure %s needs an x key",
                            nb_fig_kind_name(f->kind));
    struct nb_csvw w;
    int rc = nb_csvw_open(&w, path, h, nh, err);
    if (rc)
        return rc;
    rc = fn(s, f, &w, err);
    int rc2 = nb_csvw_close(&w, false, rc ? NULL : err);
    if (rc || rc2)
        remove(path);
    return rc ? rc : rc2;
}
