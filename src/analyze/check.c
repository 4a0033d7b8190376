/* src/analyze/check.c - evaluating checks: effects, bootstrap intervals
 * over seeds, outcomes and verdicts; see check.h (parsing: check_parse.c). */
#include "analyze/check.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#include "config/keys.h"
#include "analyze/prereg.h"

#include "analyze/check_impl.h"

/* ======================================================================
 * Evaluation
 * ====================================================================== */

struct evalctx {
    const struct nb_summary *s;
    int mode;
    const double *w; /* replicate weights (a bootstrap resample), or NULL */
    struct nb_error *err;
};

/* rankcorr's value: Spearman's rank correlation (average ranks for ties;
 * NaN when one side is constant) of the points' values with the call's key
 * (a config key's value, the step or the epoch), over the points where
 * that is finite; x and v have room for np values.  0 or an error. */
static int rank_correlation(const struct nb_check_node *n, const struct evalctx *ec,
                            const struct nb_sum_point *pts, size_t np, double *x, double *v,
                            double *out)
{
    size_t k = 0;
    for (size_t i = 0; i < np; i++) {
        double xv;
        if (n->xkey == NB_FK_STEP)
            xv = (double)pts[i].step;
        else if (n->xkey == NB_FK_EPOCH)
            xv = pts[i].epoch;
        else {
            char *end;
            const char *t = nb_summary_group_val(ec->s, pts[i].group, n->xkey);
            xv = strtod(t, &end);
            if (end == t || *end)
                return nb_error_set(ec->err, NB_EINVAL, NULL, 0,
                                    "%s: key value '%s' is not a number", n->text, t);
        }
        if (isfinite(xv)) {
            x[k] = xv;
            v[k] = pts[i].value;
            k++;
        }
    }
    if (k < 3) {
        return nb_error_set(ec->err, NB_ENOENT, NULL, 0,
                            "%s needs at least 3 values, has %zu", n->text, k);
    }
    double *work = malloc(2 * k * sizeof *work);
    if (!work) {
        return nb_error_set(ec->err, NB_ENOMEM, NULL, 0, "out of memory");
    }
    /* Spearman's rho with average ranks for ties; NaN when one side
     * is constant */
    bool xc = true, vc = true;
    for (size_t i = 1; i < k; i++)
        xc &= x[i] == x[0], vc &= v[i] == v[0];
    *out = xc || vc ? NAN : gsl_stats_spearman(x, 1, v, 1, k, work);
    free(work);
    return 0;
}

/* The points of n's metric through the nf filters f (one side of a
 * contrast, or of above), under the evaluation's mode or weights (prep:
 * the prepared selection for the bootstrap's weights, when there is one). */
static int select_side(const struct nb_check_node *n, const struct nb_sum_filter *f, int nf,
                       const struct nb_sum_prepared *prep, struct evalctx *ec,
                       struct nb_sum_point **pts, size_t *np)
{
    return ec->w && prep ? nb_summary_select_prepared(ec->s, prep, ec->w, pts, np, ec->err)
           : ec->w ? nb_summary_select_w(ec->s, &n->metric, f, nf, ec->w, pts, np, ec->err)
                   : nb_summary_select(ec->s, &n->metric, f, nf, ec->mode, pts, np, ec->err);
}

/* Orders points by group, layer, param, param_value (NaN first), step. */
static int cmp_point(const void *pa, const void *pb)
{
    const struct nb_sum_point *a = pa, *b = pb;
    if (a->group != b->group)
        return a->group < b->group ? -1 : 1;
    if (a->layer != b->layer)
        return a->layer < b->layer ? -1 : 1;
    if (a->param != b->param)
        return a->param < b->param ? -1 : 1;
    bool an = isnan(a->param_value), bn = isnan(b->param_value);
    if (an != bn)
        return an ? -1 : 1;
    if (!an && a->param_value != b->param_value)
        return a->param_value < b->param_value ? -1 : 1;
    return (a->step > b->step) - (a->step < b->step);
}

/* The group of the contrast's B side that group g (of the A side) is
 * compared with: the one that passes the B filters and has g's value in
 * every varying key but the contrast's; -1 when there is none. */
static int contrast_partner(const struct nb_check_node *n, const struct nb_summary *s, int g)
{
    int key = n->f[n->vs].key;
    for (int h = 0; h < s->n_groups; h++) {
        if (!nb_summary_group_matches(s, h, n->fb, n->nf))
            continue;
        bool same = true;
        for (int v = 0; v < s->n_vary && same; v++)
            same = s->vary[v] == key || !strcmp(nb_summary_group_val(s, g, s->vary[v]),
                                                nb_summary_group_val(s, h, s->vary[v]));
        if (same)
            return h;
    }
    return -1;
}

/* A contrast's points: each point of the A side (pts, np) whose partner
 * group (contrast_partner) has a value at the same step, layer, param and
 * param value, with that value subtracted; the A side's other points are
 * left out.  Replaces *pts / *np; 0 or an error (no partner group). */
static int contrast_pair(const struct nb_check_node *n, struct evalctx *ec,
                         struct nb_sum_point **pts, size_t *np)
{
    struct nb_sum_point *b;
    size_t nbp;
    int rc = select_side(n, n->fb, n->nf, n->prep_b, ec, &b, &nbp);
    if (rc)
        return rc;
    const struct nb_summary *s = ec->s;
    int *partner = malloc((size_t)(s->n_groups ? s->n_groups : 1) * sizeof *partner);
    if (!partner) {
        free(b);
        return nb_error_set(ec->err, NB_ENOMEM, NULL, 0, "out of memory");
    }
    for (int g = 0; g < s->n_groups; g++)
        partner[g] = -2; /* not looked up yet */
    if (nbp)
        qsort(b, nbp, sizeof *b, cmp_point);
    struct nb_sum_point *a = *pts;
    size_t k = 0;
    for (size_t i = 0; i < *np; i++) {
        int g = a[i].group;
        if (partner[g] == -2)
            partner[g] = contrast_partner(n, s, g);
        if (partner[g] < 0) {
            rc = nb_error_set(ec->err, NB_EINVAL, NULL, 0,
                              "%s: no group with %s matches '%s' in the other keys",
                              n->text, n->fb[n->vs].text, s->groups[g].label);
            break;
        }
        struct nb_sum_point key = a[i];
        key.group = partner[g];
        const struct nb_sum_point *m =
            nbp ? bsearch(&key, b, nbp, sizeof *b, cmp_point) : NULL;
        if (!m)
            continue;
        a[k] = a[i];
        a[k].value = a[i].value - m->value;
        k++;
    }
    free(partner);
    free(b);
    *np = k;
    return rc;
}

/* Does a OP b hold? */
static bool compare(double a, enum nb_cmp op, double b);

/* largest's / smallest's value: the largest (smallest) value of the call's
 * key over the groups the filters keep in which every run taken into
 * account meets the condition METRIC OP NUMBER on its own value.  Taken
 * into account: the group's finished runs (done or diverged); under the
 * bootstrap's weights those drawn (weight > 0); in a per-seed evaluation
 * (mode k) run k alone.  A run without a finite value (a diverged run, for
 * every scalar but diverged and steps) does not meet it.  An error when no
 * group qualifies. */
static int eval_extreme(const struct nb_check_node *n, struct evalctx *ec, double *out)
{
    const struct nb_summary *s = ec->s;
    bool found = false;
    double best = NAN;
    for (int g = 0; g < s->n_groups; g++) {
        if (!nb_summary_group_matches(s, g, n->f, n->nf))
            continue;
        const struct nb_sum_group *G = &s->groups[g];
        int taken = 0;
        bool all = true;
        for (int i = 0; i < G->n_runs && all; i++) {
            const struct nb_sum_run *r = &s->runs[G->runs[i]];
            if (r->status != NB_SUM_DONE && r->status != NB_SUM_DIVERGED)
                continue;
            if (ec->w ? !(ec->w[(size_t)g * (size_t)s->max_reps + (size_t)r->rep] > 0)
                      : ec->mode != NB_SEL_MEAN && r->rep != ec->mode)
                continue;
            taken++;
            double v = r->sc[n->metric.scalar];
            all = isfinite(v) && compare(v, n->pop, n->pval);
        }
        if (!taken || !all)
            continue;
        char *end;
        const char *t = nb_summary_group_val(s, g, n->xkey);
        double x = strtod(t, &end);
        if (end == t || *end || !isfinite(x))
            return nb_error_set(ec->err, NB_EINVAL, NULL, 0, "%s: key value '%s' is not a number",
                                n->text, t);
        if (!found || (n->agg == A_LARGEST ? x > best : x < best))
            best = x;
        found = true;
    }
    if (!found)
        return nb_error_set(ec->err, NB_ENOENT, NULL, 0,
                            "%s: no group meets the condition on every run", n->text);
    *out = best;
    return 0;
}

/* Orders points by layer, param, param value (NaN first) and step: the
 * points two groups have in common compare equal. */
static int cmp_at(const void *pa, const void *pb)
{
    const struct nb_sum_point *a = pa, *b = pb;
    if (a->layer != b->layer)
        return a->layer < b->layer ? -1 : 1;
    if (a->param != b->param)
        return a->param < b->param ? -1 : 1;
    bool na = isnan(a->param_value), nb = isnan(b->param_value);
    if (na != nb)
        return na ? -1 : 1;
    if (!na && a->param_value != b->param_value)
        return a->param_value < b->param_value ? -1 : 1;
    return (a->step > b->step) - (a->step < b->step);
}

/* An error unless the np points are all of one group (and there are some);
 * side names the filter (KEY=A) in the message. */
static int one_group(const struct nb_check_node *n, const struct nb_sum_point *pts, size_t np,
                     const char *side, struct evalctx *ec)
{
    if (np == 0)
        return nb_error_set(ec->err, NB_ENOENT, NULL, 0, "%s: %s selects no values", n->text,
                            side);
    for (size_t i = 1; i < np; i++)
        if (pts[i].group != pts[0].group)
            return nb_error_set(ec->err, NB_EINVAL, NULL, 0,
                                "%s: %s selects more than one group ('%s', '%s'); add filters",
                                n->text, side, ec->s->groups[pts[0].group].label,
                                ec->s->groups[pts[i].group].label);
    return 0;
}

/* above's value: the share of the points the two groups have in common
 * (the same step, layer, param and param value) at which the first group's
 * value is higher than the second's; an error when either side is not one
 * group or they have no point in common. */
static int eval_above(const struct nb_check_node *n, struct evalctx *ec, double *out)
{
    struct nb_sum_point *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    int rc = select_side(n, n->f, n->nf, n->prep, ec, &a, &na);
    if (!rc)
        rc = select_side(n, n->f2, n->nf2, n->prep2, ec, &b, &nb);
    if (!rc)
        rc = one_group(n, a, na, n->f[n->nf - 1].text, ec);
    if (!rc)
        rc = one_group(n, b, nb, n->f2[n->nf2 - 1].text, ec);
    if (rc) {
        free(a), free(b);
        return rc;
    }
    qsort(a, na, sizeof *a, cmp_at);
    qsort(b, nb, sizeof *b, cmp_at);
    size_t pairs = 0, wins = 0;
    for (size_t i = 0, j = 0; i < na && j < nb;) {
        int c = cmp_at(&a[i], &b[j]);
        if (c < 0) {
            i++;
        } else if (c > 0) {
            j++;
        } else {
            pairs++;
            wins += a[i].value > b[j].value;
            i++, j++;
        }
    }
    free(a), free(b);
    if (pairs == 0)
        return nb_error_set(ec->err, NB_ENOENT, NULL, 0,
                            "%s: the two groups have no point in common", n->text);
    *out = (double)wins / (double)pairs;
    return 0;
}

/* An aggregate call's value: the metric's points through its filters
 * (prepared ones under the bootstrap's weights), with a contrast the
 * differences of paired points, reduced by the aggregate; an error when
 * there are none. */
static int eval_agg(const struct nb_check_node *n, struct evalctx *ec, double *out)
{
    if (n->agg == A_LARGEST || n->agg == A_SMALLEST)
        return eval_extreme(n, ec, out);
    if (n->agg == A_ABOVE)
        return eval_above(n, ec, out);
    struct nb_sum_point *pts = NULL;
    size_t np = 0;
    int rc = select_side(n, n->f, n->nf, n->prep, ec, &pts, &np);
    if (!rc && n->vs >= 0)
        rc = contrast_pair(n, ec, &pts, &np);
    if (rc) {
        free(pts);
        return rc;
    }
    if (n->agg == A_COUNT) {
        *out = (double)np;
        free(pts);
        return 0;
    }
    if (np == 0) {
        free(pts);
        return nb_error_set(ec->err, NB_ENOENT, NULL, 0, "%s selects no values", n->text);
    }
    if (n->agg == A_AT && np != 1) {
        char groups[300] = "";
        size_t len = 0;
        int shown = 0, last = -1;
        for (size_t i = 0; i < np && shown < 4; i++)
            if (pts[i].group != last) {
                last = pts[i].group;
                len += (size_t)snprintf(groups + len, len < sizeof groups ? sizeof groups - len : 0,
                                        "%s'%s'", shown ? ", " : "",
                                        ec->s->groups[pts[i].group].label);
                shown++;
            }
        free(pts);
        return nb_error_set(ec->err, NB_EINVAL, NULL, 0,
                            "%s selects %zu values, not one (groups %s%s); add filters",
                            n->text, np, groups, shown >= 4 ? ", ..." : "");
    }
    double *v = malloc(np * sizeof *v);
    double *x = malloc(np * sizeof *x);
    if (!v || !x) {
        free(v), free(x), free(pts);
        return nb_error_set(ec->err, NB_ENOMEM, NULL, 0, "out of memory");
    }
    for (size_t i = 0; i < np; i++)
        v[i] = pts[i].value;
    double mean, sd, mn, mx, med;
    switch (n->agg) {
    case A_AT: *out = v[0]; break;
    case A_FIRST: *out = v[0]; break;
    case A_LAST: *out = v[np - 1]; break;
    case A_SUM: {
        double t = 0;
        for (size_t i = 0; i < np; i++)
            t += v[i];
        *out = t;
        break;
    }
    case A_RANKCORR:
        if ((rc = rank_correlation(n, ec, pts, np, x, v, out))) {
            free(v), free(x), free(pts);
            return rc;
        }
        break;
    case A_LARGEST: /* evaluated above */
    case A_SMALLEST:
    case A_ABOVE:
    case A_MEAN:
    case A_MEDIAN:
    case A_MIN:
    case A_MAX:
    case A_STD:
    case A_RANGE:
    case A_COUNT: /* returned above */
    case A_COUNT_:
        nb_stats(v, np, &mean, &sd, &mn, &mx, &med);
        *out = n->agg == A_MEAN     ? mean
               : n->agg == A_MEDIAN ? med
               : n->agg == A_MIN    ? mn
               : n->agg == A_MAX    ? mx
               : n->agg == A_STD    ? sd
               : n->agg == A_RANGE  ? mx - mn
                                    : NAN;
        break;
    }
    free(v), free(x), free(pts);
    return 0;
}

/* The value of the tree under n. */
static int eval_node(const struct nb_check_node *n, struct evalctx *ec, double *out)
{
    double a = 0, b = 0;
    int rc;
    switch (n->type) {
    case N_NUM:
        *out = n->num;
        return 0;
    case N_AGG:
        return eval_agg(n, ec, out);
    case N_NEG:
    case N_ABS:
        if ((rc = eval_node(n->a, ec, &a)))
            return rc;
        *out = n->type == N_NEG ? -a : fabs(a);
        return 0;
    case N_ADD:
    case N_SUB:
    case N_MUL:
    case N_DIV:
        break;
    }
    if ((rc = eval_node(n->a, ec, &a)) || (rc = eval_node(n->b, ec, &b)))
        return rc;
    switch (n->type) {
    case N_ADD: *out = a + b; break;
    case N_SUB: *out = a - b; break;
    case N_MUL: *out = a * b; break;
    case N_DIV:
        if (b == 0)
            return nb_error_set(ec->err, NB_ERANGE, NULL, 0, "division by zero (%g / 0)", a);
        *out = a / b;
        break;
    case N_NUM: /* handled above */
    case N_AGG:
    case N_NEG:
    case N_ABS: *out = NAN; break;
    }
    return 0;
}

/* Does a OP b hold? */
static bool compare(double a, enum nb_cmp op, double b)
{
    switch (op) {
    case NB_CMP_EQ: return a == b;
    case NB_CMP_NE: return a != b;
    case NB_CMP_LT: return a < b;
    case NB_CMP_LE: return a <= b;
    case NB_CMP_GT: return a > b;
    case NB_CMP_GE: return a >= b;
    case NB_CMP_COUNT: break;
    }
    return false;
}

/* Both sides of check c and whether the statement holds; 0, an error (in
 * ec's err) when a side cannot be evaluated, or NB_ENOMEM. */
static int eval_sides(const struct nb_check *c, struct evalctx *ec, double *lhs, double *rhs,
                      bool *holds)
{
    *lhs = *rhs = NAN;
    *holds = false;
    int rc = eval_node(c->lhs, ec, lhs);
    if (!rc)
        rc = eval_node(c->rhs, ec, rhs);
    if (rc)
        return rc;
    if (isnan(*lhs) || isnan(*rhs))
        return nb_error_set(ec->err, NB_ERANGE, NULL, 0, "the statement evaluates to NaN");
    *holds = compare(*lhs, c->op, *rhs);
    return 0;
}

int nb_check_eval_mode(const struct nb_check *c, const struct nb_summary *s,
                       int mode, double *lhs, double *rhs, bool *holds,
                       struct nb_error *err)
{
    struct evalctx ec = {.s = s, .mode = mode, .err = err};
    return eval_sides(c, &ec, lhs, rhs, holds);
}

bool nb_check_effect_is_diff(const struct nb_check *c)
{
    return nb_check_node_has_agg(c->rhs);
}

/* The effect of one evaluation (see check.h). */
static double effect_of(const struct nb_check *c, double lhs, double rhs)
{
    return nb_check_effect_is_diff(c) ? lhs - rhs : lhs;
}

/* Prepares (or, with s NULL, frees) the selections of every aggregate of
 * the tree for the bootstrap's repeated evaluations; a selection that
 * cannot be prepared is left to the plain path. */
static void prepare_tree(struct nb_check_node *n, const struct nb_summary *s)
{
    if (!n)
        return;
    if (n->type == N_AGG) {
        nb_summary_prepared_free(n->prep);
        nb_summary_prepared_free(n->prep_b);
        nb_summary_prepared_free(n->prep2);
        n->prep = n->prep_b = n->prep2 = NULL;
        if (s && n->agg != A_LARGEST && n->agg != A_SMALLEST) {
            struct nb_error e;
            nb_error_clear(&e);
            if (nb_summary_select_prepare(s, &n->metric, n->f, n->nf, &n->prep, &e))
                n->prep = NULL;
            if (n->fb &&
                nb_summary_select_prepare(s, &n->metric, n->fb, n->nf, &n->prep_b, &e))
                n->prep_b = NULL;
            nb_error_clear(&e);
            if (n->agg == A_ABOVE &&
                nb_summary_select_prepare(s, &n->metric, n->f2, n->nf2, &n->prep2, &e))
                n->prep2 = NULL;
        }
    }
    prepare_tree(n->a, s);
    prepare_tree(n->b, s);
}

static const char *const outcome_names[NB_OUT_COUNT] = {"pass", "fail", "inconclusive",
                                                        "n/a"};

const char *nb_outcome_name(int o)
{
    return o >= 0 && o < NB_OUT_COUNT ? outcome_names[o] : "?";
}

void nb_check_result_free(struct nb_check_result *r)
{
    if (!r)
        return;
    free(r->rep_lhs);
    free(r->rep_rhs);
    free(r->rep_holds);
    memset(r, 0, sizeof *r);
}

/* Are the groups paired: does replicate k have the same seed in every
 * group that has it? */
static bool seeds_paired(const struct nb_summary *s)
{
    for (int k = 0; k < s->max_reps; k++) {
        bool have = false;
        unsigned long long seed = 0;
        for (int g = 0; g < s->n_groups; g++) {
            const struct nb_sum_group *G = &s->groups[g];
            if (k >= G->n_runs)
                continue;
            unsigned long long sk = s->runs[G->runs[k]].seed;
            if (have && sk != seed)
                return false;
            have = true;
            seed = sk;
        }
    }
    return true;
}

/* The old per-seed evaluation into r: every group's k-th seed alone, for
 * each k.  0, or NB_ENOMEM. */
static int eval_per_seed(const struct nb_check *c, const struct nb_summary *s,
                         struct nb_check_result *r, struct nb_error *e)
{
    struct evalctx ec = {.s = s, .err = e};
    for (int k = 0; k < r->n_reps; k++) {
        bool h;
        nb_error_clear(e);
        ec.mode = k;
        int rk = eval_sides(c, &ec, &r->rep_lhs[k], &r->rep_rhs[k], &h);
        if (rk == NB_ENOMEM)
            return NB_ENOMEM;
        r->rep_holds[k] = rk ? -1 : h;
        r->n_hold += !rk && h;
        r->n_fail += !rk && !h;
        r->n_na += rk != 0;
    }
    return 0;
}

/* One bootstrap draw's weights w[g * max_reps + k]: the replicates resampled
 * with replacement, the same draw for every group when paired (the groups
 * share their seeds), else each group on its own; cnt has max_reps room. */
static void resample(const struct nb_summary *s, bool paired, gsl_rng *rng, int *cnt, double *w)
{
    if (paired) {
        for (int k = 0; k < s->max_reps; k++)
            cnt[k] = 0;
        for (int k = 0; k < s->max_reps; k++)
            cnt[gsl_rng_uniform_int(rng, (unsigned long)s->max_reps)]++;
        for (int g = 0; g < s->n_groups; g++)
            for (int k = 0; k < s->max_reps; k++)
                w[(size_t)g * (size_t)s->max_reps + (size_t)k] = cnt[k];
        return;
    }
    for (int g = 0; g < s->n_groups; g++) {
        int ng = s->groups[g].n_runs;
        double *wg = w + (size_t)g * (size_t)s->max_reps;
        for (int k = 0; k < s->max_reps; k++)
            wg[k] = 0;
        for (int k = 0; k < ng; k++)
            wg[gsl_rng_uniform_int(rng, (unsigned long)ng)] += 1;
    }
}

/* The interval from the sorted bootstrap effects boot[0..nb) and the
 * outcome: Hesterberg's expanded percentile interval (the percentile
 * bootstrap's tails taken at the level a t-interval would use, with the
 * sqrt(n/(n-1)) widening, which corrects the percentile interval's
 * narrowness with few seeds); pass or fail when it lies on one side of the
 * threshold and the point statement agrees, else inconclusive with about
 * the seeds that would decide it. */
static void decide(const struct nb_check *c, struct nb_check_result *r, bool holds,
                   const double *boot, int nb)
{
    double nn = (double)r->n;
    double tq = gsl_cdf_tdist_Pinv(1 - (1 - NB_CHECK_CI_LEVEL) / 2, nn - 1);
    double a2 = gsl_cdf_ugaussian_P(-sqrt(nn / (nn - 1)) * tq);
    r->lo = gsl_stats_quantile_from_sorted_data(boot, 1, (size_t)nb, a2);
    r->hi = gsl_stats_quantile_from_sorted_data(boot, 1, (size_t)nb, 1 - a2);
    bool below = c->op == NB_CMP_LT || c->op == NB_CMP_LE; /* the claim: effect < thr */
    bool on_side = below ? (c->op == NB_CMP_LT ? r->hi < r->threshold : r->hi <= r->threshold)
                         : (c->op == NB_CMP_GT ? r->lo > r->threshold : r->lo >= r->threshold);
    bool off_side = below ? (c->op == NB_CMP_LT ? r->lo >= r->threshold : r->lo > r->threshold)
                          : (c->op == NB_CMP_GT ? r->hi <= r->threshold : r->hi < r->threshold);
    if (on_side && holds) {
        r->outcome = NB_OUT_PASS;
    } else if (off_side && !holds) {
        r->outcome = NB_OUT_FAIL;
    } else {
        r->outcome = NB_OUT_INCONCLUSIVE;
        /* the interval narrows as 1/sqrt(n): the seeds at which its half
         * width would equal the distance of the effect from the threshold */
        double d = fabs(r->effect - r->threshold), h = (r->hi - r->lo) / 2;
        double need = d > 0 ? ceil(nn * (h / d) * (h / d)) : INFINITY;
        r->seeds_needed = need > 10000 || !isfinite(need) ? -1
                          : need <= nn                   ? r->n + 1
                                                         : (int)need;
    }
}

int nb_check_eval(const struct nb_check *c, const struct nb_summary *s,
                  struct nb_check_result *r, struct nb_error *err)
{
    memset(r, 0, sizeof *r);
    r->n_reps = s->max_reps;
    r->effect = r->lo = r->hi = r->threshold = NAN;
    size_t n = (size_t)(r->n_reps > 0 ? r->n_reps : 1);
    r->rep_lhs = malloc(n * sizeof *r->rep_lhs);
    r->rep_rhs = malloc(n * sizeof *r->rep_rhs);
    r->rep_holds = malloc(n * sizeof *r->rep_holds);
    size_t nw = (size_t)s->n_groups * (size_t)(s->max_reps > 0 ? s->max_reps : 1);
    double *w = malloc((nw ? nw : 1) * sizeof *w);
    double *boot = malloc(NB_CHECK_N_BOOT * sizeof *boot);
    int *cnt = malloc(n * sizeof *cnt);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    int rc = 0;
    if (!r->rep_lhs || !r->rep_rhs || !r->rep_holds || !w || !boot || !cnt || !rng) {
        rc = nb_error_oom(err);
        goto out;
    }
    struct nb_error e;
    nb_error_clear(&e);
    bool holds;
    struct evalctx ec = {.s = s, .mode = NB_SEL_MEAN, .err = &e};
    int rm = eval_sides(c, &ec, &r->lhs, &r->rhs, &holds);
    if (rm == NB_ENOMEM) {
        rc = nb_error_oom(err);
        goto out;
    }
    if (rm)
        snprintf(r->why, sizeof r->why, "%.590s", e.msg);
    if (eval_per_seed(c, s, r, &e) == NB_ENOMEM) {
        rc = nb_error_oom(err);
        goto out;
    }
    r->n = r->n_hold + r->n_fail;
    r->paired = seeds_paired(s);
    if (rm) {
        r->outcome = NB_OUT_NA;
        goto out;
    }
    r->effect = effect_of(c, r->lhs, r->rhs);
    r->threshold = nb_check_effect_is_diff(c) ? 0.0 : r->rhs;
    if (c->op == NB_CMP_EQ || c->op == NB_CMP_NE) {
        r->outcome = NB_OUT_NA;
        snprintf(r->why, sizeof r->why,
                 "%s cannot be decided by an interval; state an equivalence as "
                 "abs(A - B) <= MARGIN",
                 nb_cmp_str(c->op));
        goto out;
    }
    if (r->n < 2) {
        r->outcome = NB_OUT_NA;
        snprintf(r->why, sizeof r->why,
                 "an interval needs at least 2 seeds on which the statement can be "
                 "evaluated (has %d)",
                 r->n);
        goto out;
    }
    /* The bootstrap over seeds: resample the replicates, evaluate the
     * whole statement on the weighted means. */
    gsl_rng_set(rng, (unsigned long)(nb_text_hash(NB_TEXT_HASH_SEED, c->name, strlen(c->name)) ^
                                      0x9e3779b97f4a7c15ULL));
    prepare_tree(c->lhs, s);
    prepare_tree(c->rhs, s);
    int nb = 0, bad = 0;
    for (int b = 0; b < NB_CHECK_N_BOOT; b++) {
        resample(s, r->paired, rng, cnt, w);
        double l, rr;
        bool h;
        nb_error_clear(&e);
        struct evalctx eb = {.s = s, .mode = NB_SEL_MEAN, .w = w, .err = &e};
        int rb = eval_sides(c, &eb, &l, &rr, &h);
        if (rb == NB_ENOMEM) {
            rc = nb_error_oom(err);
            goto out;
        }
        if (rb || !isfinite(effect_of(c, l, rr)))
            bad++;
        else
            boot[nb++] = effect_of(c, l, rr);
    }
    r->n_boot = nb;
    if (bad * 10 > NB_CHECK_N_BOOT) {
        r->outcome = NB_OUT_NA;
        snprintf(r->why, sizeof r->why,
                 "the statement cannot be evaluated on %d of %d resamples of the seeds (%.400s)",
                 bad, NB_CHECK_N_BOOT, e.msg);
        goto out;
    }
    gsl_sort(boot, 1, (size_t)nb);
    decide(c, r, holds, boot, nb);
out:
    prepare_tree(c->lhs, NULL);
    prepare_tree(c->rhs, NULL);
    free(w);
    free(boot);
    free(cnt);
    if (rng)
        gsl_rng_free(rng);
    if (rc)
        nb_check_result_free(r);
    return rc;
}

static const char *const verdict_names[NB_VERDICT_COUNT] = {
    "reproduced", "partly reproduced", "not reproduced", "inconclusive", "no verdict"};

const char *nb_verdict_name(int v)
{
    return v >= 0 && v < NB_VERDICT_COUNT ? verdict_names[v] : "?";
}

int nb_verdict_of(const struct nb_check *c, const struct nb_check_result *r, int n,
                  bool complete)
{
    if (!complete)
        return NB_VERDICT_INCONCLUSIVE;
    int counted = 0, pass = 0, fail = 0, min_n = -1;
    bool central_fails = false;
    int central = nb_check_central(c, n);
    for (int i = 0; i < n; i++) {
        if (r[i].post_hoc)
            continue;
        counted++;
        pass += r[i].outcome == NB_OUT_PASS;
        fail += r[i].outcome == NB_OUT_FAIL;
        if (r[i].outcome != NB_OUT_NA && (min_n < 0 || r[i].n < min_n))
            min_n = r[i].n;
        central_fails |= i == central && r[i].outcome == NB_OUT_FAIL;
    }
    if (counted > 0 && min_n >= 0 && min_n < NB_VERDICT_MIN_SEEDS)
        return NB_VERDICT_NONE;
    if (counted == 0)
        return NB_VERDICT_INCONCLUSIVE;
    if (pass == counted)
        return NB_VERDICT_REPRODUCED;
    if (central_fails)
        return NB_VERDICT_NOT_REPRODUCED;
    if (pass > 0 && fail > 0)
        return NB_VERDICT_PARTLY;
    if (fail == counted)
        return NB_VERDICT_NOT_REPRODUCED;
    return NB_VERDICT_INCONCLUSIVE;
}

int nb_outcome_agree(int a, int b)
{
    return a == b ? a : NB_OUT_INCONCLUSIVE;
}

int nb_check_central(const struct nb_check *c, int n)
{
    for (int i = 0; i < n; i++)
        if (c[i].central)
            return i;
    return n > 0 ? 0 : -1;
}

