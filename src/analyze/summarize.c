/* src/analyze/summarize.c - see summarize.h: the names of scalars, the
 * summary's life cycle and string pool, grouping runs and labelling groups
 * (the rest: sum_read.c, sum_select.c, sum_tables.c, sum_figures.c; their
 * shared helpers in sum_impl.h). */
#define _GNU_SOURCE /* qsort_r */
#include "analyze/summarize.h"

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

#include "config/keys.h"
#include "run/csvio.h"
#include "run/train.h"

#include "analyze/sum_impl.h"

/* ======================================================================
 * Names
 * ====================================================================== */

/* Every per-run scalar: its column name and its axis title, tied to the
 * enum by designated initializers (a missing entry is caught by the
 * checks in nb_sum_scalar_name's users: a NULL name). */
static const struct {
    const char *name, *title;
    bool added; /* recorded since 0.1.0: a table column only where a run has it */
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
    [NB_SC_PARAMS] = {"params", "trainable parameters", true},
};

const char *nb_sum_scalar_name(int sc)
{
    return sc >= 0 && sc < NB_SC_COUNT ? scalars[sc].name : NULL;
}

bool nb_sum_scalar_tabled(const struct nb_summary *s, int sc)
{
    if (sc < 0 || sc >= NB_SC_COUNT)
        return false;
    if (!scalars[sc].added)
        return true;
    for (size_t i = 0; i < s->n_runs; i++)
        if (!isnan(s->runs[i].sc[sc]))
            return true;
    return false;
}

const char *nb_sum_scalar_title(int sc)
{
    return sc >= 0 && sc < NB_SC_COUNT ? scalars[sc].title : NULL;
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

/* ======================================================================
 * Small helpers
 * ====================================================================== */

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

/* Opens PATH.tmp for writing (the caller writes, then nb_atomic_end
 * renames). */
int nb_atomic_begin(const char *path, char *tmp, size_t n, FILE **fp,
                              struct nb_error *err)
{
    snprintf(tmp, n, "%s.tmp", path);
    *fp = fopen(tmp, "w");
    if (!*fp)
        return nb_error_set(err, NB_EIO, tmp, 0, "cannot create: %s", strerror(errno));
    return 0;
}

/* Closes fp and renames tmp to path; on a write error removes tmp and
 * leaves path as it was. */
int nb_atomic_end(const char *path, const char *tmp, FILE *fp, struct nb_error *err)
{
    int bad = ferror(fp);
    if (fclose(fp) != 0 || bad) {
        remove(tmp);
        return nb_error_set(err, NB_EIO, tmp, 0, "write error");
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return nb_error_set(err, NB_EIO, path, 0, "cannot rename into place: %s",
                            strerror(errno));
    }
    return 0;
}

bool sum_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Parses s fully as a double; false when it is not a number. */
bool sum_parse_num(const char *s, double *v)
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
int sum_cmp_val(const char *a, const char *b)
{
    double x, y;
    if (sum_parse_num(a, &x) && sum_parse_num(b, &y))
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

void sum_table_free(struct nb_sum_table *t)
{
    for (int i = 0; i < t->ncols; i++)
        free(t->names[i]);
    free(t->names);
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* Frees a run's directory name, key values, tables, probe points and
 * slices. */
static void run_free(struct nb_sum_run *r)
{
    free(r->dir);
    if (r->vals)
        for (int k = 0; k < nb_key_count(); k++)
            free(r->vals[k]);
    free(r->vals);
    sum_table_free(&r->metrics);
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
    for (int i = 0; i < s->n_keep; i++)
        free(s->keep[i]);
    free(s->keep);
    for (int i = 0; i < s->n_keep_layers; i++)
        free(s->keep_layers[i]);
    free(s->keep_layers);
    memset(s, 0, sizeof *s);
}

/* Replaces the list *list (*n_list names) by a copy of names[0..n). */
static int keep_list(char ***list, int *n_list, char *const *names, int n)
{
    char **k = n ? calloc((size_t)n, sizeof *k) : NULL;
    if (n && !k)
        return NB_ENOMEM;
    for (int i = 0; i < n; i++)
        if (!(k[i] = strdup(names[i]))) {
            while (i--)
                free(k[i]);
            free(k);
            return NB_ENOMEM;
        }
    for (int i = 0; i < *n_list; i++)
        free((*list)[i]);
    free(*list);
    *list = k;
    *n_list = n;
    return 0;
}

int nb_summary_keep_probes(struct nb_summary *s, char *const *names, int n)
{
    NB_ASSERT(s->n_runs == 0);
    return keep_list(&s->keep, &s->n_keep, names, n);
}

int nb_summary_keep_layers(struct nb_summary *s, char *const *names, int n)
{
    NB_ASSERT(s->n_runs == 0);
    return keep_list(&s->keep_layers, &s->n_keep_layers, names, n);
}

bool nb_summary_keeps_probe(const struct nb_summary *s, const char *probe, const char *stat,
                            const char *layer)
{
    if (s->n_keep_layers > 0 && layer && layer[0]) {
        bool kept = false;
        for (int i = 0; i < s->n_keep_layers && !kept; i++)
            kept = !strcmp(s->keep_layers[i], layer);
        if (!kept)
            return false;
    }
    if (s->n_keep == 0)
        return true;
    size_t pl = strlen(probe);
    for (int i = 0; i < s->n_keep; i++)
        if (!strncmp(s->keep[i], probe, pl) && s->keep[i][pl] == '.' &&
            !strcmp(s->keep[i] + pl + 1, stat))
            return true;
    return false;
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
int sum_str_intern(struct nb_summary *s, const char *str)
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

struct nb_sum_run *sum_run_new(struct nb_summary *s, struct nb_error *err)
{
    if (s->n_runs == s->cap_runs) {
        size_t cap = s->cap_runs ? 2 * s->cap_runs : 16;
        struct nb_sum_run *p = realloc(s->runs, cap * sizeof *p);
        if (!p) {
            nb_error_oom(err);
            return NULL;
        }
        s->runs = p;
        s->cap_runs = cap;
    }
    struct nb_sum_run *r = &s->runs[s->n_runs];
    memset(r, 0, sizeof *r);
    r->vals = calloc((size_t)nb_key_count(), sizeof *r->vals);
    if (!r->vals) {
        nb_error_oom(err);
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
 * Grouping and labels
 * ====================================================================== */

/* Is key k part of a run's identity (not meta, not sweep structure)? */
static bool key_is_identity(int k)
{
    const struct nb_key *key = nb_key_at(k);
    if (key->flags & (NB_KF_META | NB_KF_STRUCT))
        return false;
    if (!strcmp(key->section, "experiment") && !strcmp(key->key, "seeds"))
        return false;
    return true;
}

/* Run r's canonical value of key k ("" when unset). */
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
        int c = sum_cmp_val(rval(a, s->vary[i]), rval(b, s->vary[i]));
        if (c)
            return c;
    }
    if (a->seed != b->seed)
        return a->seed < b->seed ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

const char *nb_sum_key_short(int key)
{
    if (key < 0 || key >= nb_key_count())
        return "?";
    const struct nb_key *k = nb_key_at(key);
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
    const struct nb_key *k = nb_key_at(key);
    return (!strcmp(k->section, "experiment") && !strcmp(k->key, "arm")) ||
           (!strcmp(k->section, "norm") && !strcmp(k->key, "type")) ||
           (!strcmp(k->section, "model") && !strcmp(k->key, "arch")) ||
           (!strcmp(k->section, "data") && !strcmp(k->key, "source"));
}

/* Appends "key=value" (or the bare value) to buf; commas and quotes are
 * replaced so that labels are safe in CSV and gnuplot. */
void sum_label_append(char *buf, size_t size, int key, const char *val)
{
    size_t n = strlen(buf);
    char item[256];
    if (key_bare_value(key))
        snprintf(item, sizeof item, "%s", val);
    else if (!strcmp(nb_key_at(key)->section, "norm") && !strcmp(nb_key_at(key)->key, "groups") &&
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
bool sum_determined(const struct nb_summary *s, int k, const int *keep, int nk)
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

/* Does key k's value differ between s's runs? */
static bool key_varies(const struct nb_summary *s, int k)
{
    for (size_t i = 1; i < s->n_runs; i++)
        if (strcmp(rval(&s->runs[i], k), rval(&s->runs[0], k)))
            return true;
    return false;
}

/* The varying keys into s->vary: those not on a sweep axis first (in
 * table order), then the sweeps' axes in product order; returns a
 * status. */
static int find_vary(struct nb_summary *s, struct nb_error *err)
{
    int *vary = malloc(((size_t)nb_key_count() + 1) * sizeof *vary);
    bool *is_vary = calloc((size_t)nb_key_count() + 1, sizeof *is_vary);
    if (!vary || !is_vary) {
        free(vary);
        free(is_vary);
        return nb_error_oom(err);
    }
    for (int k = 0; k < nb_key_count(); k++)
        is_vary[k] = key_is_identity(k) && key_varies(s, k);
    int nv = 0;
    /* an experiment's arm labels (not part of the identity) lead: the
     * keys zipped with them are then determined and left out of labels */
    int arm = nb_key_lookup("experiment", "arm");
    if (arm >= 0 && key_varies(s, arm))
        vary[nv++] = arm; /* not an identity key: is_vary[arm] stays false */
    for (int k = 0; k < nb_key_count(); k++) {
        bool axis = false;
        for (int j = 0; j < s->n_axis; j++)
            axis |= s->axis_order[j] == k;
        if (is_vary[k] && !axis)
            vary[nv++] = k;
    }
    for (int j = 0; j < s->n_axis; j++)
        if (s->axis_order[j] >= 0 && s->axis_order[j] < nb_key_count() && is_vary[s->axis_order[j]])
            vary[nv++] = s->axis_order[j];
    free(is_vary);
    s->vary = vary;
    s->n_vary = nv;
    return 0;
}

/* Group G of s: its runs in replicate order (seed, then order), their
 * counts, its label (the label keys' values) and title; returns a
 * status. */
static int finish_group(struct nb_summary *s, struct nb_sum_group *G, struct nb_error *err)
{
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
    for (int j = 0; j < s->n_vary; j++)
        if (s->in_label[j])
            sum_label_append(label, sizeof label, s->vary[j], rval(r0, s->vary[j]));
    if (!label[0])
        snprintf(label, sizeof label, "all runs");
    char title[1200];
    int n = G->n_done + G->n_diverged;
    int len = snprintf(title, sizeof title, "%s (n=%d", label, n);
    if (G->n_diverged)
        len += snprintf(title + len, sizeof title - (size_t)len, "; %d diverged", G->n_diverged);
    if (G->n_missing)
        len += snprintf(title + len, sizeof title - (size_t)len, "; %d missing", G->n_missing);
    snprintf(title + len, sizeof title - (size_t)len, ")");
    if (!(G->label = strdup(label)) || !(G->title = strdup(title)))
        return nb_error_oom(err);
    return 0;
}

int nb_summary_group(struct nb_summary *s, struct nb_error *err)
{
    if (s->groups)
        return nb_error_set(err, NB_EINVAL, NULL, 0, "summary already grouped");
    int rc = find_vary(s, err);
    if (rc)
        return rc;
    const int *vary = s->vary;
    const int nv = s->n_vary;
    if (s->sort_runs && s->n_runs > 1) {
        qsort_r(s->runs, s->n_runs, sizeof *s->runs, cmp_runs, s);
    }
    /* groups */
    s->groups = calloc(s->n_runs ? s->n_runs : 1, sizeof *s->groups);
    s->in_label = calloc((size_t)nv + 1, sizeof *s->in_label);
    if (!s->groups || !s->in_label)
        return nb_error_oom(err);
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
            return nb_error_oom(err);
        G->runs = p;
        G->runs[G->n_runs++] = (int)i;
        r->group = g;
    }
    /* label keys */
    int *keep = malloc(((size_t)nv + 1) * sizeof *keep);
    if (!keep)
        return nb_error_oom(err);
    int nk = 0;
    for (int j = 0; j < nv; j++) {
        if (sum_determined(s, vary[j], keep, nk))
            continue;
        keep[nk++] = vary[j];
        s->in_label[j] = true;
    }
    free(keep);
    /* replicates, labels, counts */
    s->max_reps = 0;
    for (int g = 0; g < s->n_groups; g++)
        if ((rc = finish_group(s, &s->groups[g], err)))
            return rc;
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
                return nb_error_oom(err);
            s->mcols = p;
            if (!(s->mcols[s->n_mcols] = strdup(t->names[c])))
                return nb_error_oom(err);
            s->n_mcols++;
        }
    }
    return 0;
}

const char *nb_summary_group_val(const struct nb_summary *s, int g, int key)
{
    return rval(&s->runs[s->groups[g].runs[0]], key);
}

