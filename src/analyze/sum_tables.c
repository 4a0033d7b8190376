/* src/analyze/sum_tables.c - writing the tidy tables runs.csv, groups.csv,
 * curves.csv and probes.csv; see summarize.h. */
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
 * Writing tables
 * ====================================================================== */

struct hdr {
    const char **h;
    char **own;
    int n, cap, nown;
};

/* Appends a column name to h (copied when copy, else borrowed); 0 or
 * NB_ENOMEM. */
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

/* Frees h's names it owns and its arrays; leaves h zeroed. */
static void hdr_free(struct hdr *h)
{
    for (int i = 0; i < h->nown; i++)
        free(h->own[i]);
    free(h->own);
    free(h->h);
    memset(h, 0, sizeof *h);
}

/* Appends the summary's varying keys as section.key columns; 0 or
 * NB_ENOMEM. */
static int hdr_keys(struct hdr *h, const struct nb_summary *s)
{
    for (int j = 0; j < s->n_vary; j++) {
        char name[160];
        snprintf(name, sizeof name, "%s.%s", nb_key_at(s->vary[j])->section,
                 nb_key_at(s->vary[j])->key);
        if (hdr_add(h, name, true))
            return NB_ENOMEM;
    }
    return 0;
}

/* Appends BASE_SUFFIX for every suffix in suf (NULL-terminated); 0 or
 * NB_ENOMEM. */
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

/* Writes group g's values of the varying keys. */
static void w_keys(struct nb_csvw *w, const struct nb_summary *s, int g)
{
    for (int j = 0; j < s->n_vary; j++)
        nb_csvw_str(w, nb_summary_group_val(s, g, s->vary[j]));
}

/* A double, NaN as a missing field. */
void sum_w_num(struct nb_csvw *w, double v)
{
    if (isnan(v))
        nb_csvw_missing(w);
    else
        nb_csvw_double(w, v);
}

/* DIR/NAME, malloc'd (NULL when out of memory). */
static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* runs.csv: one row per run with its keys, status, seed and every per-run
 * scalar. */
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
        if (nb_sum_scalar_tabled(s, i))
            rc = hdr_add(&h, nb_sum_scalar_name(i), false);
    if (rc) {
        hdr_free(&h);
        return nb_error_oom(err);
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
                if (nb_sum_scalar_tabled(s, k))
                    sum_w_num(&w, r->sc[k]);
            rc = nb_csvw_end_row(&w, err);
        }
    int rc2 = nb_csvw_close(&w, false, rc ? NULL : err);
    return rc ? rc : rc2;
}

static const char *const suf5[] = {"mean", "std", "min", "max", "median", "n", NULL};
static const char *const suf4[] = {"mean", "std", "min", "max", NULL};

/* groups.csv: one row per group with its keys, counts and mean, std, min,
 * max and n of every scalar over its seeds. */
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
        if (nb_sum_scalar_tabled(s, i))
            rc = hdr_suffixed(&h, nb_sum_scalar_name(i), suf5);
    if (rc) {
        hdr_free(&h);
        return nb_error_oom(err);
    }
    struct nb_csvw w;
    rc = nb_csvw_open(&w, path, h.h, h.n, err);
    hdr_free(&h);
    if (rc)
        return rc;
    double *v = malloc(((size_t)s->max_reps + 1) * sizeof *v);
    if (!v) {
        nb_csvw_close(&w, false, NULL);
        return nb_error_oom(err);
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
            if (!nb_sum_scalar_tabled(s, k))
                continue;
            size_t nv = 0;
            for (int i = 0; i < G->n_runs; i++) {
                const struct nb_sum_run *r = &s->runs[G->runs[i]];
                if (r->status == NB_SUM_DONE || r->status == NB_SUM_DIVERGED)
                    v[nv++] = r->sc[k];
            }
            double st[5];
            int cnt = nb_stats(v, nv, &st[0], &st[1], &st[2], &st[3], &st[4]);
            for (int i = 0; i < 5; i++)
                sum_w_num(&w, st[i]);
            nb_csvw_long(&w, cnt);
        }
        rc = nb_csvw_end_row(&w, err);
    }
    free(v);
    int rc2 = nb_csvw_close(&w, false, rc ? NULL : err);
    return rc ? rc : rc2;
}

/* qsort order of longs, ascending. */
static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/* The sorted distinct evaluation steps of group g's finished runs. */
long *sum_group_steps(const struct nb_summary *s, int g, size_t *n)
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
        int cs = sum_col_of(&r->metrics, "step");
        if (cs < 0)
            continue;
        for (size_t j = 0; j < r->metrics.nrows; j++)
            st[k++] = (long)sum_tval(&r->metrics, j, cs);
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
long sum_row_at_step(const struct nb_sum_run *r, long step)
{
    const struct nb_sum_table *t = &r->metrics;
    int cs = sum_col_of(t, "step");
    if (cs < 0)
        return -1;
    size_t lo = 0, hi = t->nrows;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        long v = (long)sum_tval(t, mid, cs);
        if (v < step)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < t->nrows && (long)sum_tval(t, lo, cs) == step)
        return (long)lo;
    for (size_t i = 0; i < t->nrows; i++) /* unsorted file */
        if ((long)sum_tval(t, i, cs) == step)
            return (long)i;
    return -1;
}

/* curves.csv: per group and evaluation step (aligned across seeds), mean,
 * std, min and max of every metrics.csv column and the derived errors. */
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
        return nb_error_oom(err);
    }
    struct nb_csvw w;
    rc = nb_csvw_open(&w, path, h.h, h.n, err);
    hdr_free(&h);
    if (rc)
        return rc;
    double *v = malloc(((size_t)s->max_reps + 1) * sizeof *v);
    long *rows = malloc(((size_t)s->max_reps + 1) * sizeof *rows);
    if (!v || !rows)
        rc = nb_error_oom(err);
    for (int g = 0; g < s->n_groups && !rc; g++) {
        const struct nb_sum_group *G = &s->groups[g];
        size_t ns;
        long *steps = sum_group_steps(s, g, &ns);
        if (!steps) {
            rc = nb_error_oom(err);
            break;
        }
        for (size_t k = 0; k < ns && !rc; k++) {
            int n = 0;
            for (int i = 0; i < G->n_runs; i++) {
                rows[i] = sum_row_at_step(&s->runs[G->runs[i]], steps[k]);
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
                    v[nv++] = sum_tval(&r->metrics, (size_t)rows[i], sum_col_of(&r->metrics, "epoch"));
                }
            double ep;
            nb_stats(v, nv, &ep, NULL, NULL, NULL, NULL);
            sum_w_num(&w, ep);
            nb_csvw_long(&w, n);
            for (int c = 0; c < s->n_mcols; c++) {
                if (!strcmp(s->mcols[c], "step") || !strcmp(s->mcols[c], "epoch"))
                    continue;
                nv = 0;
                for (int i = 0; i < G->n_runs; i++)
                    if (rows[i] >= 0) {
                        const struct nb_sum_run *r = &s->runs[G->runs[i]];
                        v[nv++] = sum_tval(&r->metrics, (size_t)rows[i],
                                       sum_col_of(&r->metrics, s->mcols[c]));
                    }
                double st[4];
                nb_stats(v, nv, &st[0], &st[1], &st[2], &st[3], NULL);
                for (int i = 0; i < 4; i++)
                    sum_w_num(&w, st[i]);
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

/* qsort order of probe rows: probe, layer, param, param value, stat, step
 * (by the string ranks precomputed in the row). */
static int cmp_prow_ex(const void *pa, const void *pb)
{
    const struct prow_ex *a = pa, *b = pb;
    if (a->kp != b->kp)
        return a->kp < b->kp ? -1 : 1;
    if (a->kl != b->kl)
        return a->kl < b->kl ? -1 : 1;
    if (a->kq != b->kq)
        return a->kq < b->kq ? -1 : 1;
    int c = sum_cmp_pv(a->pv, b->pv);
    if (c)
        return c;
    if (a->ks != b->ks)
        return a->ks < b->ks ? -1 : 1;
    if (a->step != b->step)
        return a->step < b->step ? -1 : 1;
    return 0;
}

/* Do a and b aggregate into one probes.csv row (same probe, stat, layer,
 * param and value, step)? */
static bool prow_same(const struct prow_ex *a, const struct prow_ex *b)
{
    return a->probe == b->probe && a->stat == b->stat && a->layer == b->layer &&
           a->param == b->param && a->step == b->step && !sum_cmp_pv(a->pv, b->pv);
}

/* probes.csv: per group, probe, layer, parameter, stat and step, the mean,
 * std, min and max over seeds. */
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
        return nb_error_oom(err);
    }
    struct nb_csvw w;
    rc = nb_csvw_open(&w, path, h.h, h.n, err);
    hdr_free(&h);
    if (rc)
        return rc;
    int *rank = sum_string_ranks(s);
    double *v = malloc(((size_t)s->max_reps + 1) * sizeof *v);
    if (!rank || !v)
        rc = nb_error_oom(err);
    for (int g = 0; g < s->n_groups && !rc; g++) {
        const struct nb_sum_group *G = &s->groups[g];
        size_t tot = 0;
        for (int i = 0; i < G->n_runs; i++)
            tot += s->runs[G->runs[i]].n_probes;
        if (!tot)
            continue;
        struct prow_ex *x = malloc(tot * sizeof *x);
        if (!x) {
            rc = nb_error_oom(err);
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
        double spe = sum_group_spe(s, g);
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
            sum_w_num(&w, x[i].pv);
            nb_csvw_str(&w, nb_summary_str(s, x[i].stat));
            nb_csvw_long(&w, x[i].step);
            sum_w_num(&w, (double)x[i].step / spe);
            nb_csvw_long(&w, n);
            for (int c = 0; c < 4; c++)
                sum_w_num(&w, st[c]);
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
            return nb_error_oom(err);
        rc = fns[i](s, p, err);
        free(p);
    }
    return rc;
}

