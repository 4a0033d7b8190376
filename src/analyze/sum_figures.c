/* src/analyze/sum_figures.c - figure kinds and the CSV each figure script
 * plots (plots/KIND.gp); see summarize.h. */
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
#include "layers/norm.h"
#include "run/csvio.h"
#include "run/train.h"

#include "analyze/sum_impl.h"

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
    [NB_FIG_ERRORS] = {"errors", NULL, false, false, false},
    [NB_FIG_TRACE] = {"trace", NULL, true, false, false},
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

/* ======================================================================
 * Figure tables
 * ====================================================================== */

/* Axis titles. */
static const char *key_axis_title(int key)
{
    const struct nb_key *k = nb_key_at(key);
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
    if (nb_norm_key_is_momentum(k->section, k->key))
        /* no comma: gnuplot reads the CSV */
        return strcmp(k->key, "momentum") ? "renorm momentum m (PyTorch; Keras: 1 - m)"
                                          : "BN momentum m (PyTorch; Keras: 1 - m)";
    return k->full;
}

/* Group g's x value for key x (false when it is not a number); a norm
 * momentum in PyTorch's convention whatever the group wrote (a Keras
 * momentum m is PyTorch's 1 - m, nb_norm_momentum_from_keras), so that
 * the two spellings of one momentum draw at one x. */
static bool fig_x(const struct nb_summary *s, int g, int x, double *out)
{
    if (!sum_parse_num(nb_summary_group_val(s, g, x), out))
        return false;
    const struct nb_key *k = nb_key_at(x);
    int conv = nb_key_lookup("norm", "momentum_convention");
    if (nb_norm_key_is_momentum(k->section, k->key) && conv >= 0) {
        const char *c = nb_summary_group_val(s, g, conv);
        if (c && !strcmp(c, "keras"))
            *out = nb_norm_momentum_from_keras(*out);
    }
    return true;
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
        if (x >= 0 && sum_determined(s, k, &x, 1))
            continue;
        if (f->n_series > 0) { /* only the keys the figure names */
            bool named = false;
            for (int i = 0; i < f->n_series; i++)
                named |= f->series[i] == k;
            if (!named)
                continue;
        }
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
                sum_label_append(label, sizeof label, sk[i], nb_summary_group_val(s, g, sk[i]));
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

/* Frees n series labels and the array (NULL is fine). */
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
    return sum_cmp_val(nb_summary_group_val(c->s, a, c->key), nb_summary_group_val(c->s, b, c->key));
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

/* Frees a figure's series assignment, labels and styles; leaves fs zeroed. */
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
        return nb_error_oom(err);
    fs->ns = make_series(s, f->x, f, fs->series, &fs->lab, &fs->first);
    if (fs->ns < 0 || series_styles(s, f->x, fs->first, fs->ns, &fs->ci, &fs->di))
        return nb_error_oom(err);
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
    double *epoch, *mean, *min, *max, *sd, *pv;
    int *n;
    int *layer, *param;
    size_t cnt;
};

/* Frees an aggregate's arrays; leaves a zeroed. */
static void agg_free(struct agg *a)
{
    free(a->step), free(a->epoch), free(a->mean), free(a->min), free(a->max);
    free(a->sd), free(a->n), free(a->layer), free(a->param), free(a->pv);
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
    int *rank = sum_string_ranks(s);
    struct rawbuf rb = {0};
    bool found = false;
    if (!rank)
        return NB_ENOMEM;
    int rc = sum_gather_raw(s, &m, g, f, nf, &rb, rank, &found);
    free(rank);
    if (rc) {
        free(rb.p);
        return rc;
    }
    if (rb.n) /* rb.p is NULL when nothing was gathered */
        qsort(rb.p, rb.n, sizeof *rb.p, sum_cmp_raw);
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
    a->pv = malloc(n * sizeof(double));
    double *v = malloc(n * sizeof *v);
    if (!a->step || !a->epoch || !a->mean || !a->min || !a->max || !a->sd || !a->n ||
        !a->layer || !a->param || !a->pv || !v) {
        free(v);
        free(rb.p);
        agg_free(a);
        return NB_ENOMEM;
    }
    double spe = sum_group_spe(s, g);
    for (size_t i = 0; i < rb.n;) {
        size_t j = i, nv = 0;
        while (j < rb.n && sum_same_point(&rb.p[i], &rb.p[j]))
            v[nv++] = rb.p[j++].value;
        size_t c = a->cnt;
        a->n[c] = nb_stats(v, nv, &a->mean[c], &a->sd[c], &a->min[c], &a->max[c], NULL);
        a->step[c] = rb.p[i].step;
        a->epoch[c] = (double)rb.p[i].step / spe;
        a->layer[c] = rb.p[i].layer;
        a->param[c] = rb.p[i].param;
        a->pv[c] = rb.p[i].pv;
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

/* vs_batch / vs_lr with a probe on y: per series, param and x, the mean,
 * sd, min, max and n over seeds of each run's last value (colour by param
 * when there is one series, else a colour per series and dashes by
 * param). */
static int fig_vs_probe(const struct nb_summary *s, const struct nb_fig_spec *f,
                        struct nb_csvw *w, struct nb_error *err)
{
    struct fig_series fs;
    const char **params = NULL;
    int rc = fig_series_init(&fs, s, f, err);
    int np = rc ? 0 : nb_summary_params(s, f->probe, f->where, f->n_where, &params);
    int sid = 0;
    for (int k = 0; k < fs.ns && !rc; k++) {
        char title[1200], line[1400];
        int n = fig_series_at(&fs, s, f->x, k, title, sizeof title);
        for (int q = 0; q < np && !rc; q++) {
            bool any = false;
            /* no comma: gnuplot reads the CSV */
            snprintf(line, sizeof line, "%s%s%s", params[q], params[q][0] ? ": " : "", title);
            for (int i = 0; i < n && !rc; i++) {
                int g = fs.gl[i];
                double x, v[256], st[5];
                size_t nv = 0;
                if (!fig_x(s, g, f->x, &x))
                    continue;
                for (int r = 0; r < s->groups[g].n_runs && nv < 256; r++) {
                    double y = nb_summary_last_value(s, f->probe, f->where, f->n_where, g, r,
                                                     params[q]);
                    if (isfinite(y))
                        v[nv++] = y;
                }
                int cnt = nb_stats(v, nv, &st[0], &st[1], &st[2], &st[3], &st[4]);
                if (cnt == 0)
                    continue;
                nb_csvw_long(w, sid);
                nb_csvw_str(w, line);
                /* one series: a colour per param; several: a colour per
                 * series, dashes and points by param */
                nb_csvw_long(w, fs.ns > 1 ? k : q);
                nb_csvw_long(w, fs.ns > 1 ? q : 0);
                nb_csvw_str(w, key_axis_title(f->x));
                nb_csvw_str(w, f->probe->text);
                nb_csvw_double(w, x);
                for (int c = 0; c < 4; c++)
                    sum_w_num(w, st[c]);
                nb_csvw_long(w, cnt);
                nb_csvw_long(w, 0);
                nb_csvw_long(w, s->groups[g].n_done + s->groups[g].n_diverged);
                rc = nb_csvw_end_row(w, err);
                any = true;
            }
            sid += any;
        }
    }
    free(params);
    fig_series_free(&fs);
    if (!rc && sid == 0)
        return nb_error_set(err, NB_ENOENT, NULL, 0, "no run with a value of %s",
                            f->probe->text);
    return rc;
}

/* vs_batch / vs_lr: per series and x, the scalar's mean, sd, min, max and n
 * over seeds (diverged runs counted apart). */
static int fig_vs(const struct nb_summary *s, const struct nb_fig_spec *f,
                  struct nb_csvw *w, struct nb_error *err)
{
    if (f->probe)
        return fig_vs_probe(s, f, w, err);
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
            if (!fig_x(s, g, f->x, &x))
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
            nb_csvw_str(w, nb_sum_scalar_title(f->scalar));
            nb_csvw_double(w, x);
            for (int c = 0; c < 4; c++)
                sum_w_num(w, st[c]);
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

/* hessian: per series and x (model.depth by default), lambda_max and trace,
 * mean, min and max over seeds. */
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
            if (!fig_x(s, g, f->x, &x))
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
                sum_w_num(w, st[q][0]);
                sum_w_num(w, st[q][2]);
                sum_w_num(w, st[q][3]);
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

/* curves and errors: per group and evaluation step, training loss, test
 * error and accuracy, training error, mean and band over seeds. */
static int fig_curves(const struct nb_summary *s, const struct nb_fig_spec *f,
                      struct nb_csvw *w, struct nb_error *err)
{
    int rc = 0, sid = 0;
    double *v = malloc(((size_t)s->max_reps + 1) * sizeof *v);
    long *rows = malloc(((size_t)s->max_reps + 1) * sizeof *rows);
    if (!v || !rows) {
        free(v), free(rows);
        return nb_error_oom(err);
    }
    static const char *const cols[] = {"train_loss", "test_error", "test_acc", "train_error"};
    int *ci = NULL, *di = NULL;
    if (group_styles(s, f, &ci, &di)) {
        free(v), free(rows);
        return nb_error_oom(err);
    }
    for (int g = 0; g < s->n_groups && !rc; g++) {
        if (!nb_summary_group_matches(s, g, f->where, f->n_where))
            continue;
        const struct nb_sum_group *G = &s->groups[g];
        size_t ns;
        long *steps = sum_group_steps(s, g, &ns);
        if (!steps) {
            rc = nb_error_oom(err);
            break;
        }
        double spe = sum_group_spe(s, g);
        bool any = false;
        for (size_t k = 0; k < ns && !rc; k++) {
            if (!sum_point_matches(s, f->where, f->n_where, steps[k], (double)steps[k] / spe,
                               -1, -1, NAN))
                continue;
            int n = 0;
            for (int i = 0; i < G->n_runs; i++) {
                rows[i] = sum_row_at_step(&s->runs[G->runs[i]], steps[k]);
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
                    v[nv++] = sum_tval(&r->metrics, (size_t)rows[i], sum_col_of(&r->metrics, "epoch"));
                }
            double ep;
            nb_stats(v, nv, &ep, NULL, NULL, NULL, NULL);
            sum_w_num(w, ep);
            nb_csvw_long(w, n);
            for (int c = 0; c < 4; c++) {
                nv = 0;
                for (int i = 0; i < G->n_runs; i++)
                    if (rows[i] >= 0) {
                        const struct nb_sum_run *r = &s->runs[G->runs[i]];
                        v[nv++] = sum_tval(&r->metrics, (size_t)rows[i],
                                       sum_col_of(&r->metrics, cols[c]));
                    }
                double st[4];
                nb_stats(v, nv, &st[0], &st[1], &st[2], &st[3], NULL);
                sum_w_num(w, st[0]);
                sum_w_num(w, st[2]);
                sum_w_num(w, st[3]);
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

/* landscape: per group and probe step, the loss and gradient-change bands,
 * beta_eff and the loss, mean over seeds with their ranges. */
static int fig_landscape(const struct nb_summary *s, const struct nb_fig_spec *f,
                         struct nb_csvw *w, struct nb_error *err)
{
    static const char *const stats[] = {"loss_min", "loss_max", "grad_change_min",
                                        "grad_change_max", "beta_eff", "loss0"};
    int rc = 0, sid = 0;
    int *ci = NULL, *di = NULL;
    if (group_styles(s, f, &ci, &di))
        return nb_error_oom(err);
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
            rc = nb_error_oom(err);
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
            sum_w_num(w, a[0].epoch[i]);
            nb_csvw_long(w, a[0].n[i]);
            for (int j = 0; j < 4; j++)
                sum_w_num(w, idx[j] >= 0 ? a[j].mean[idx[j]] : NAN);
            sum_w_num(w, idx[4] >= 0 ? a[4].mean[idx[4]] : NAN);
            sum_w_num(w, idx[4] >= 0 ? a[4].min[idx[4]] : NAN);
            sum_w_num(w, idx[4] >= 0 ? a[4].max[idx[4]] : NAN);
            sum_w_num(w, idx[5] >= 0 ? a[5].mean[idx[5]] : NAN);
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

/* trace: probe stat y over training, one series per group and (layer,
 * param, param value) in the aggregate's order; colour by that line's
 * ordinal within its group (an estimator keeps its colour across groups),
 * dashes by group. */
static int fig_trace(const struct nb_summary *s, const struct nb_fig_spec *f,
                     struct nb_csvw *w, struct nb_error *err)
{
    if (!f->probe)
        return nb_error_set(err, NB_EINVAL, NULL, 0, "a trace figure needs y = PROBE.STAT");
    int rc = 0, sid = -1, gi = 0;
    char title[1400];
    for (int g = 0; g < s->n_groups && !rc; g++) {
        if (!nb_summary_group_matches(s, g, f->where, f->n_where))
            continue;
        struct agg a;
        if (aggregate(s, g, f->probe->probe, f->probe->stat, f->where, f->n_where, &a)) {
            rc = nb_error_oom(err);
            break;
        }
        int line = -1;
        for (size_t i = 0; i < a.cnt && !rc; i++) {
            bool fresh = i == 0 || a.layer[i] != a.layer[i - 1] || a.param[i] != a.param[i - 1] ||
                         !(a.pv[i] == a.pv[i - 1] || (isnan(a.pv[i]) && isnan(a.pv[i - 1])));
            char num[64];
            if (fresh) {
                line++;
                sid++;
                const char *pn = nb_summary_str(s, a.param[i]);
                const char *ln = a.layer[i] >= 0 ? nb_summary_str(s, a.layer[i]) : NULL;
                snprintf(num, sizeof num, isnan(a.pv[i]) ? "" : " %g", a.pv[i]);
                snprintf(title, sizeof title, "%s%s%s%s%s%s", pn ? pn : "", num,
                         ln ? " " : "", ln ? ln : "", (pn || ln) ? ": " : "",
                         s->groups[g].title);
                for (char *c = title; *c; c++) /* gnuplot reads the CSV */
                    if (*c == ',')
                        *c = ';';
            }
            nb_csvw_long(w, sid);
            nb_csvw_str(w, title);
            nb_csvw_long(w, line);
            nb_csvw_long(w, gi);
            nb_csvw_str(w, f->probe->text);
            nb_csvw_long(w, a.step[i]);
            sum_w_num(w, a.epoch[i]);
            nb_csvw_long(w, a.n[i]);
            sum_w_num(w, a.mean[i]);
            sum_w_num(w, a.min[i]);
            sum_w_num(w, a.max[i]);
            rc = nb_csvw_end_row(w, err);
        }
        gi += a.cnt > 0;
        agg_free(&a);
    }
    if (!rc && gi == 0)
        return nb_error_set(err, NB_ENOENT, NULL, 0, "no %s rows", f->probe->text);
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
        return nb_error_oom(err);
    /* the dash: the group's (noisy BN vs BN, both batch) and the layer's,
     * di = layer ordinal * nd + the group's di */
    int nd = 1;
    for (int g = 0; g < s->n_groups; g++)
        if (di[g] + 1 > nd)
            nd = di[g] + 1;
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
            rc = nb_error_oom(err);
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
            nb_csvw_long(w, (long)nlayer * nd + di[g]);
            nb_csvw_str(w, nb_summary_str(s, a[0].layer[i]));
            nb_csvw_long(w, a[0].step[i]);
            sum_w_num(w, a[0].epoch[i]);
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
                sum_w_num(w, idx >= 0 ? a[j].mean[idx] : NAN);
                if (ics) {
                    sum_w_num(w, idx >= 0 ? a[j].min[idx] : NAN);
                    sum_w_num(w, idx >= 0 ? a[j].max[idx] : NAN);
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
 * all have the same grid and step as the first such run's. */
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
        if (n > 0 && (last->na != out[0]->na || last->nb != out[0]->nb ||
                      last->step != out[0]->step))
            continue;
        out[n++] = last;
    }
    return n;
}

/* slice1d / slice2d: per group and slice, the step it was taken at and
 * the loss (and accuracy) along the slice's grid, mean, min and max over
 * seeds. */
static int fig_slice(const struct nb_summary *s, const struct nb_fig_spec *f,
                     struct nb_csvw *w, struct nb_error *err)
{
    int dim = f->kind == NB_FIG_SLICE2D ? 2 : 1;
    const struct nb_sum_slice **sl = malloc(((size_t)s->max_reps + 1) * sizeof *sl);
    double *v = malloc(((size_t)s->max_reps + 1) * sizeof *v);
    if (!sl || !v) {
        free(sl), free(v);
        return nb_error_oom(err);
    }
    int rc = 0, sid = 0;
    int *ci = NULL, *di = NULL;
    if (group_styles(s, f, &ci, &di)) {
        free(sl), free(v);
        return nb_error_oom(err);
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
                if (sl[0]->step >= 0)
                    nb_csvw_long(w, sl[0]->step);
                else
                    nb_csvw_missing(w);
                nb_csvw_double(w, sl[0]->a[p]);
                if (dim == 2)
                    nb_csvw_double(w, sl[0]->b[p]);
                sum_w_num(w, st[0]);
                sum_w_num(w, st[2]);
                sum_w_num(w, st[3]);
                for (int k = 0; k < n; k++)
                    v[k] = sl[k]->acc[p];
                double am;
                nb_stats(v, (size_t)n, &am, NULL, NULL, NULL, NULL);
                sum_w_num(w, am);
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
    static const char *const h_s1[] = {"sid", "series", "ci", "di", "step", "a", "loss_mean",
                                       "loss_min", "loss_max", "acc_mean", "n"};
    static const char *const h_s2[] = {"sid", "series", "ci", "di", "step", "a", "b", "loss_mean",
                                       "loss_min", "loss_max", "acc_mean", "n"};
    static const char *const h_trace[] = {"sid", "series", "ci", "di", "ylabel", "step",
                                          "epoch", "n", "mean", "min", "max"};
    const char *const *h;
    int nh;
    int (*fn)(const struct nb_summary *, const struct nb_fig_spec *, struct nb_csvw *,
              struct nb_error *);
#define H(a) (h = (a), nh = (int)(sizeof(a) / sizeof(a)[0]))
    switch (f->kind) {
    case NB_FIG_CURVES:
    case NB_FIG_ERRORS: H(h_curves); fn = fig_curves; break;
    case NB_FIG_VS_BATCH:
    case NB_FIG_VS_LR: H(h_vs); fn = fig_vs; break;
    case NB_FIG_LANDSCAPE: H(h_land); fn = fig_landscape; break;
    case NB_FIG_ICS: H(h_ics); fn = fig_layers; break;
    case NB_FIG_DIST: H(h_dist); fn = fig_layers; break;
    case NB_FIG_HESSIAN: H(h_hess); fn = fig_hessian; break;
    case NB_FIG_SLICE1D: H(h_s1); fn = fig_slice; break;
    case NB_FIG_SLICE2D: H(h_s2); fn = fig_slice; break;
    case NB_FIG_TRACE: H(h_trace); fn = fig_trace; break;
    case NB_FIG_COUNT:
    default: /* f->kind is an int: anything else is no kind */
        return nb_error_set(err, NB_EINVAL, NULL, 0, "unknown figure kind %d", f->kind);
    }
#undef H
    if (fig_kinds[f->kind].default_x && (f->x < 0 || f->x >= nb_key_count()))
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

