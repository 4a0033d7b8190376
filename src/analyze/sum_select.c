/* src/analyze/sum_select.c - filters and metrics: parsing `where` filters
 * and metric names (run scalars, metrics.csv columns, PROBE.STAT), and
 * selecting and aggregating values per group; see summarize.h. */
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
#include "probe/probe.h"

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

/* Is name a per-step metric a check may name? */
static bool is_step_metric(const char *name)
{
    const char *names[NB_METRICS_N_COLS + 2];
    int n = step_metric_names(names);
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name))
            return true;
    return false;
}

/* The stats a check may name for a probe: what the probe writes
 * (probe.h's nb_probe_kinds) and, for landscape, the two the summary
 * derives per step (sum_read.c: loss_max - loss_min, and the same for
 * grad_change). */
const char *const nb_sum_derived_stats[] = {"loss_range", "grad_change_range", NULL};

/* Index of probe in nb_probe_kinds, or -1. */
static int probe_kind(const char *probe)
{
    for (int k = 0; k < NB_PROBE_KIND_COUNT; k++)
        if (!strcmp(nb_probe_kinds[k].name, probe))
            return k;
    return -1;
}

/* Fills names (room for 32) with probe k's stats, derived ones included;
 * returns the count. */
static int probe_stat_names(int k, const char **names)
{
    int n = 0;
    for (int i = 0; nb_probe_kinds[k].stats[i] && n < 32; i++)
        names[n++] = nb_probe_kinds[k].stats[i];
    if (k == NB_PROBE_LANDSCAPE)
        for (int i = 0; nb_sum_derived_stats[i] && n < 32; i++)
            names[n++] = nb_sum_derived_stats[i];
    return n;
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
        return nb_error_oom(err);
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
                return nb_error_oom(err);
            return 0;
        }
        const char *cands[NB_SC_COUNT + NB_METRICS_N_COLS + 2];
        int nc = 0;
        for (int i = 0; i < NB_SC_COUNT; i++)
            cands[nc++] = nb_sum_scalar_name(i);
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
    int p = probe_kind(probe);
    if (p < 0) {
        nb_error_set(err, NB_EINVAL, file, line, "unknown probe '%s' in metric '%s'",
                     probe, name);
        const char *kinds[NB_PROBE_KIND_COUNT];
        for (int k = 0; k < NB_PROBE_KIND_COUNT; k++)
            kinds[k] = nb_probe_kinds[k].name;
        const char *near = nb_closest(probe, kinds, NB_PROBE_KIND_COUNT);
        if (near)
            nb_error_hint(err, "did you mean '%s'?", near);
        nb_metric_free(m);
        return NB_EINVAL;
    }
    const char *stats[32];
    int ns = probe_stat_names(p, stats);
    bool known = false;
    for (int i = 0; i < ns; i++)
        known |= !strcmp(stats[i], dot + 1);
    if (!known) {
        nb_error_set(err, NB_EINVAL, file, line,
                     "probe %s has no stat '%s'", probe, dot + 1);
        const char *near = nb_closest(dot + 1, stats, ns);
        if (near)
            nb_error_hint(err, "did you mean '%s.%s'?", probe, near);
        nb_metric_free(m);
        return NB_EINVAL;
    }
    m->kind = NB_MK_PROBE;
    if (!(m->probe = strdup(probe)) || !(m->stat = strdup(dot + 1))) {
        nb_metric_free(m);
        return nb_error_oom(err);
    }
    return 0;
}

/* Does text value v satisfy filter f? (config keys, layer, param) */
static bool filter_text(const struct nb_sum_filter *f, const char *v)
{
    double x;
    bool isnum = sum_parse_num(v, &x);
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
    case NB_CMP_EQ: /* handled above */
    case NB_CMP_NE:
    case NB_CMP_COUNT: break;
    }
    return false;
}

/* Does the number x (as its canonical text) pass filter f? NaN never does. */
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
bool sum_point_matches(const struct nb_summary *s, const struct nb_sum_filter *f,
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
        default: /* a config key (>= 0): a group filter, not a point's */
            break;
        }
    }
    return true;
}

double sum_group_spe(const struct nb_summary *s, int g)
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

/* Appends a selected point; 0 or NB_ENOMEM. */
static int pts_push(struct pts *a, const struct nb_sum_point *p)
{
    void *g = sum_grow(a->p, &a->cap, a->n, sizeof *p, 64);
    if (!g)
        return NB_ENOMEM;
    a->p = g;
    a->p[a->n++] = *p;
    return 0;
}


/* The rank of pooled string id among all pooled strings by strcmp (-1 for
 * none): a stable sort key. */
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

int sum_cmp_pv(double a, double b)
{
    if (a == b || (isnan(a) && isnan(b)))
        return 0;
    if (isnan(a))
        return -1;
    if (isnan(b))
        return 1;
    return a < b ? -1 : 1;
}

int sum_cmp_raw(const void *pa, const void *pb)
{
    const struct rawpt *a = pa, *b = pb;
    if (a->layer_key != b->layer_key)
        return a->layer_key < b->layer_key ? -1 : 1;
    if (a->param_key != b->param_key)
        return a->param_key < b->param_key ? -1 : 1;
    int c = sum_cmp_pv(a->pv, b->pv);
    if (c)
        return c;
    if (a->step != b->step)
        return a->step < b->step ? -1 : 1;
    return a->rep - b->rep;
}

bool sum_same_point(const struct rawpt *a, const struct rawpt *b)
{
    return a->layer == b->layer && a->param == b->param && a->step == b->step &&
           !sum_cmp_pv(a->pv, b->pv);
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
        while (j < n && sum_same_point(&raw[i], &raw[j])) {
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


/* Appends a raw point; 0 or NB_ENOMEM. */
static int raw_push(struct rawbuf *b, const struct rawpt *p)
{
    void *g = sum_grow(b->p, &b->cap, b->n, sizeof *p, 256);
    if (!g)
        return NB_ENOMEM;
    b->p = g;
    b->p[b->n++] = *p;
    return 0;
}

/* The raw points of metric m in group g that pass the point filters. */
int sum_gather_raw(const struct nb_summary *s, const struct nb_metric *m, int g,
                      const struct nb_sum_filter *f, int nf, struct rawbuf *rb,
                      int *layer_rank, bool *found_col)
{
    const struct nb_sum_group *G = &s->groups[g];
    double spe = sum_group_spe(s, g);
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
            int c = sum_col_of(t, m->column), cs = sum_col_of(t, "step");
            if (c < 0 || cs < 0)
                continue;
            *found_col = true;
            for (size_t k = 0; k < t->nrows; k++) {
                long step = (long)sum_tval(t, k, cs);
                if (!sum_point_matches(s, f, nf, step, (double)step / spe, -1, -1, NAN))
                    continue;
                struct rawpt p = {.step = step, .layer = -1, .param = -1, .pv = NAN,
                                  .layer_key = -1, .param_key = -1,
                                  .value = sum_tval(t, k, c), .rep = r->rep};
                if (raw_push(rb, &p))
                    return NB_ENOMEM;
            }
        } else {
            for (size_t k = 0; k < r->n_probes; k++) {
                const struct nb_sum_prow *q = &r->probes[k];
                if (q->probe != probe || q->stat != stat)
                    continue;
                if (!sum_point_matches(s, f, nf, q->step, (double)q->step / spe, q->layer,
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
int *sum_string_ranks(const struct nb_summary *s)
{
    int *rank = malloc(((size_t)s->n_strs + 1) * sizeof *rank);
    if (!rank)
        return NULL;
    for (int i = 0; i < s->n_strs; i++)
        rank[i] = str_order(s, i);
    return rank;
}

/* nb_summary_select_w's work: gathers metric m's raw points per group
 * through the filters and collapses them by mode (mean over seeds, one
 * replicate, or weighted by w). */
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
    int *rank = sum_string_ranks(s);
    if (p) {
        p->group = calloc((size_t)s->n_groups + 1, sizeof *p->group);
        p->raw = calloc((size_t)s->n_groups + 1, sizeof *p->raw);
        p->n_raw = calloc((size_t)s->n_groups + 1, sizeof *p->n_raw);
    }
    if (!p || !rank || !p->group || !p->raw || !p->n_raw) {
        free(rank);
        nb_summary_prepared_free(p);
        return nb_error_oom(err);
    }
    bool found_col = false;
    for (int g = 0; g < s->n_groups; g++) {
        if (!nb_summary_group_matches(s, g, f, nf))
            continue;
        struct rawbuf rb = {0};
        if ((rc = sum_gather_raw(s, m, g, f, nf, &rb, rank, &found_col))) {
            free(rb.p);
            free(rank);
            nb_summary_prepared_free(p);
            return nb_error_oom(err);
        }
        if (rb.n)
            qsort(rb.p, rb.n, sizeof *rb.p, sum_cmp_raw);
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
                     w ? w + (size_t)g * (size_t)s->max_reps : NULL, sum_group_spe(s, g), &acc)) {
            free(acc.p);
            return nb_error_oom(err);
        }
    }
    *out = acc.p;
    *n = acc.n;
    return 0;
}

/* (Declared above, with its contract.) */
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
    int *rank = sum_string_ranks(s);
    if (!rank)
        return nb_error_oom(err);
    struct pts acc = {0};
    struct rawbuf rb = {0};
    bool found_col = false;
    int rc = 0;
    for (int g = 0; g < s->n_groups && !rc; g++) {
        if (!nb_summary_group_matches(s, g, f, nf))
            continue;
        rb.n = 0;
        if ((rc = sum_gather_raw(s, m, g, f, nf, &rb, rank, &found_col)))
            break;
        if (rb.n) /* rb.p is NULL when nothing was gathered */
            qsort(rb.p, rb.n, sizeof *rb.p, sum_cmp_raw);
        rc = collapse(s, g, rb.p, rb.n, mode, w ? w + (size_t)g * (size_t)s->max_reps : NULL,
                      sum_group_spe(s, g), &acc);
    }
    free(rb.p);
    free(rank);
    if (rc) {
        free(acc.p);
        return nb_error_oom(err);
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

double nb_summary_last_value(const struct nb_summary *s, const struct nb_metric *m,
                             const struct nb_sum_filter *f, int nf, int g, int k,
                             const char *param)
{
    struct nb_sum_point *pts = NULL;
    size_t np = 0;
    struct nb_error e;
    if (g < 0 || g >= s->n_groups || k < 0 || k >= s->groups[g].n_runs ||
        nb_summary_select(s, m, f, nf, k, &pts, &np, &e))
        return NAN;
    long last = -1;
    double sum = 0;
    int n = 0;
    for (size_t i = 0; i < np; i++) {
        const struct nb_sum_point *p = &pts[i];
        const char *pn = nb_summary_str(s, p->param);
        if (p->group != g || (param && strcmp(pn ? pn : "", param)))
            continue;
        if (p->step > last)
            last = p->step, sum = 0, n = 0;
        if (p->step == last)
            sum += p->value, n++;
    }
    free(pts);
    return n ? sum / n : NAN;
}

int nb_summary_params(const struct nb_summary *s, const struct nb_metric *m,
                      const struct nb_sum_filter *f, int nf, const char ***out)
{
    struct nb_sum_point *pts = NULL;
    size_t np = 0;
    struct nb_error e;
    *out = NULL;
    int rc = nb_summary_select(s, m, f, nf, NB_SEL_MEAN, &pts, &np, &e);
    if (rc)
        return rc;
    const char **v = malloc((np + 1) * sizeof *v);
    int n = 0;
    for (size_t i = 0; v && i < np; i++) {
        const char *x = nb_summary_str(s, pts[i].param);
        if (!x)
            x = ""; /* rows without a param */
        bool dup = false;
        for (int j = 0; j < n && !dup; j++)
            dup = !strcmp(v[j], x);
        if (!dup)
            v[n++] = x;
    }
    free(pts);
    *out = v;
    return v ? n : NB_ENOMEM;
}
