/* src/probe/slice.c - filter-normalized loss slices (Li et al. 2018,
 * claims.md 5.4): L(theta + a d1) or L(theta + a d1 + b d2) on a grid,
 * directions Gaussian and filter-normalized with biases and norm
 * parameters zero (the paper's --xnorm filter --xignore biasbn), loss in
 * EVAL mode over the first slice_samples training samples, running
 * statistics as trained (dir_type weights) or recomputed at each point. */
#include "probe/probe_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "layers/norm.h"

void nb_probe_filter_normalize(const struct nb_model *m, const float *theta,
                               float *d)
{
    for (int i = 0; i < m->n_layers; i++) {
        const struct nb_layer *l = &m->layers[i];
        for (int k = 0; k < l->n_params; k++) {
            const struct nb_param *q = &l->params[k];
            float *dv = d + q->offset;
            if (!(q->flags & NB_PARAM_WEIGHT)) {
                memset(dv, 0, q->count * sizeof *dv);
                continue;
            }
            size_t rows = q->filters > 0 ? (size_t)q->filters : 1;
            NB_ASSERT(q->count % rows == 0);
            size_t len = q->count / rows;
            for (size_t r = 0; r < rows; r++) {
                float *dr = dv + r * len;
                const float *tr = theta + q->offset + r * len;
                double s = nbp_norm(tr, len) / (nbp_norm(dr, len) + 1e-10);
                for (size_t j = 0; j < len; j++)
                    dr[j] = (float)(dr[j] * s);
            }
        }
    }
}

void nb_probe_random_direction(const struct nb_model *m, gsl_rng *r,
                               const float *theta, float *d)
{
    for (size_t i = 0; i < m->params.count; i++)
        d[i] = nb_rng_normal(r);
    nb_probe_filter_normalize(m, theta, d);
}

/* The shortest of %.15g, %.16g, %.17g that reads back to v. */
static const char *num(double v, char *buf, size_t size)
{
    if (isnan(v))
        return "nan";
    if (isinf(v))
        return v > 0 ? "inf" : "-inf";
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

/* Grid coordinate i of P points on [-range, range]; the middle point of
 * an odd grid is exactly 0. */
static double coord(int i, int P, double range)
{
    return range * (double)(2 * i - (P - 1)) / (double)(P - 1);
}

/* Population statistics of every norm layer at the current parameters,
 * over the slice samples in chunks of the training batch (TRAIN forwards
 * in recomputation mode update nothing else; dropout draws come from the
 * probe's generator). */
static void recompute(struct nb_probe *p, struct nb_model *m, size_t count, int chunk)
{
    gsl_rng *drop = m->ctx.rng_dropout, *noise = m->ctx.rng_noise;
    m->ctx.rng_dropout = m->ctx.rng_noise = p->fwd;
    for (int i = 0; i < m->n_layers; i++)
        nb_norm_recompute_begin(&m->layers[i]);
    nbp_pass(p, m, count, chunk, NB_TRAIN, false, NULL);
    for (int i = 0; i < m->n_layers; i++)
        nb_norm_recompute_end(&m->layers[i], NB_POP_EXACT);
    m->ctx.rng_dropout = drop;
    m->ctx.rng_noise = noise;
}

double nbp_slice_curvature(double lm, double l0, double lp, double h)
{
    if (!(l0 > 0) || !(h > 0) || !isfinite(l0))
        return NAN;
    return (lm - 2.0 * l0 + lp) / (h * h) / l0;
}

static void slice(struct nb_probe *p, struct nb_model *m, const struct nbp_batch *b, long step)
{
    (void)b;
    const int P = p->o.slice_points, dim = p->o.slice_dim;
    const double range = p->o.slice_range;
    const bool recompute_bn = p->o.slice_recompute_bn;
    const char *bn = recompute_bn ? "recomputed" : "eval";
    int chunk, rchunk = 0;
    size_t N = nbp_pass_samples(p, m, p->o.slice_samples, NB_EVAL, &chunk);
    size_t NR = recompute_bn
                    ? nbp_pass_samples(p, m, p->o.slice_samples, NB_TRAIN, &rchunk)
                    : 0;
    bool classify = p->data->classes > 0;

    nb_probe_random_direction(m, p->rng, p->theta, p->d1);
    if (dim == 2)
        nb_probe_random_direction(m, p->rng, p->theta, p->d2);

    FILE *f = p->sink.slice;
    char b1[40], b2[40], b3[40], b4[40], bs[24];
    snprintf(bs, sizeof bs, "%ld", step);
    if (f && p->slices_written == 0) {
        for (int c = 0; c < NB_SLICE_COL_COUNT; c++)
            fprintf(f, "%s%s", c ? "," : "", nb_probe_slice_cols[c]);
        fputc('\n', f);
    } else if (f) {
        fputs("\n\n", f);
    }
    double lc = NAN, lmin = INFINITY, lmax = -INFINITY;
    /* the neighbours of the centre along a (at b = 0) and along b (at
     * a = 0): the second differences of an odd grid */
    double la[2] = {NAN, NAN}, lb[2] = {NAN, NAN};
    const int mid = P % 2 ? (P - 1) / 2 : -1;
    bool nan = false;
    int nb = dim == 2 ? P : 1;
    for (int i = 0; i < P; i++) {
        double a = coord(i, P, range);
        for (int j = 0; j < nb; j++) {
            double b = dim == 2 ? coord(j, P, range) : 0.0;
            nbp_set_params(p, m, a, p->d1, b, dim == 2 ? p->d2 : NULL);
            if (p->n_state)
                memcpy(m->state.data, p->state, p->n_state * sizeof(float));
            if (recompute_bn && NR > 0)
                recompute(p, m, NR, rchunk);
            long hits = 0;
            double loss = N ? nbp_pass(p, m, N, chunk, NB_EVAL, false, &hits) : NAN;
            double acc = (classify && N) ? (double)hits / (double)N : NAN;
            if (a == 0 && b == 0)
                lc = loss;
            if (mid > 0 && (dim == 1 || j == mid) && (i == mid - 1 || i == mid + 1))
                la[i > mid] = loss;
            if (mid > 0 && dim == 2 && i == mid && (j == mid - 1 || j == mid + 1))
                lb[j > mid] = loss;
            if (isnan(loss))
                nan = true;
            else {
                if (loss < lmin)
                    lmin = loss;
                if (loss > lmax)
                    lmax = loss;
            }
            if (f) {
                const char *v[NB_SLICE_COL_COUNT] = {
                    [NB_SLICE_STEP] = bs, [NB_SLICE_A] = num(a, b1, sizeof b1),
                    [NB_SLICE_B] = num(b, b2, sizeof b2),
                    [NB_SLICE_LOSS] = num(loss, b3, sizeof b3),
                    [NB_SLICE_ACC] = num(acc, b4, sizeof b4)};
                for (int c = 0; c < NB_SLICE_COL_COUNT; c++)
                    fprintf(f, "%s%s", c ? "," : "", v[c]);
                fputc('\n', f);
            }
        }
        if (f && dim == 2 && i + 1 < P)
            fputc('\n', f);
    }
    if (f)
        fflush(f);
    if (nan)
        lmax = NAN;
    if (lmin == INFINITY)
        lmin = NAN;
    struct nb_probe_row r = nbp_row(m, step, NB_PROBE_SLICE, -1, bn);
    r.param = "samples";
    r.param_value = (double)N;
    nbp_emit(p, &r, "dim", dim);
    nbp_emit(p, &r, "points", P);
    nbp_emit(p, &r, "range", range);
    nbp_emit(p, &r, "index", p->slices_written);
    nbp_emit(p, &r, "loss_center", lc);
    nbp_emit(p, &r, "loss_min", lmin);
    nbp_emit(p, &r, "loss_max", lmax);
    double h = coord(1, P, range) - coord(0, P, range);
    nbp_emit(p, &r, "curvature", nbp_slice_curvature(la[0], lc, la[1], h));
    if (dim == 2)
        nbp_emit(p, &r, "curvature_b", nbp_slice_curvature(lb[0], lc, lb[1], h));
    p->slices_written++;
}

const char *const nbp_slice_stats[] = {"dim",      "points",   "range",     "index",
                                       "loss_center", "loss_min", "loss_max", "curvature",
                                       "curvature_b", "seconds",  NULL};

const char *const nb_probe_slice_cols[NB_SLICE_COL_COUNT] = {
    [NB_SLICE_STEP] = "step", [NB_SLICE_A] = "a",     [NB_SLICE_B] = "b",
    [NB_SLICE_LOSS] = "loss", [NB_SLICE_ACC] = "acc",
};

static bool slice_due(const struct nb_probe_opts *o, long step)
{
    if (!o->slice)
        return false;
    for (int i = 0; i < o->n_slice_at; i++)
        if (o->slice_at[i] == step)
            return true;
    return false;
}

/* At the end, after `steps` updates: with no slice_at, or where slice_at
 * lists -1 or steps itself (the last step: nb_probe_step never sees it,
 * as the hook runs before each update). */
static bool slice_at_end(const struct nb_probe_opts *o, long steps)
{
    if (!o->slice)
        return false;
    if (o->n_slice_at == 0)
        return true;
    for (int i = 0; i < o->n_slice_at; i++)
        if (o->slice_at[i] < 0 || o->slice_at[i] == steps)
            return true;
    return false;
}

static const char *slice_mode(const struct nb_probe_opts *o)
{
    return o->slice_recompute_bn ? "recomputed" : "eval";
}

const struct nbp_ops nbp_slice_ops = {
    .phase = NBP_AT_THETA,
    .uses_data = true,
    .due = slice_due,
    .at_end = slice_at_end,
    .mode = slice_mode,
    .run = slice,
};
