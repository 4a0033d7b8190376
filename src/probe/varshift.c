/* src/probe/varshift.c - the varshift probe: Li, Chen, Hu & Yang's
 * "variance shift" between dropout and batch norm (CVPR 2019; claims.md
 * 5.3, 8 row 18).  A dropout directly before a batch norm makes the
 * variance the norm sees in training, and so its running variance,
 * larger than the variance of the same input at test time, when dropout
 * is off; the norm then divides by the wrong standard deviation.
 *
 * One call takes, for every norm layer with population statistics
 * (nb_norm_eval_moments), the per-channel mean c_j and unbiased variance
 * v_j of the layer's input over the first varshift_samples test samples
 * in EVAL forwards (the network as used at test time), and compares the
 * variance the layer normalizes with, r_j, with v_j; and the formula for
 * a unit x with E[x] = c, Var[x] = v behind an inverted dropout of keep
 * probability q (X = a x / q, a ~ Bernoulli(q) independent of x):
 *
 *   Var_train(X) = E[X^2] - E[X]^2 = (c^2 + v) / q - c^2,  Var_test = v,
 *   Var_train / Var_test = ((c^2 + v) / q - c^2) / v  (1 when q = 1).
 *
 * Rows and their direction (Var_train / Var_test): probe.h.  The moments
 * are merged chunk by chunk with Chan's formula (two passes within a
 * chunk, in double), so a large mean does not cancel the variance. */
#include "probe/probe_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of x[0..n) (the mean of the middle two when n is even); reorders
 * x.  NaN when n = 0. */
static double median(double *x, int n)
{
    if (n < 1)
        return NAN;
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* Merges the moments of channel c of a chunk x (k samples of C channels
 * of hw values, NCHW) into (mean, m2) over `before` earlier values. */
static void merge_channel(const float *x, int k, int C, size_t hw, int c, double before,
                          double *mean, double *m2)
{
    double s = 0;
    for (int n = 0; n < k; n++) {
        const float *v = x + ((size_t)n * (size_t)C + (size_t)c) * hw;
        for (size_t i = 0; i < hw; i++)
            s += v[i];
    }
    double nb = (double)k * (double)hw, mb = s / nb, q = 0;
    for (int n = 0; n < k; n++) {
        const float *v = x + ((size_t)n * (size_t)C + (size_t)c) * hw;
        for (size_t i = 0; i < hw; i++) {
            double d = v[i] - mb;
            q += d * d;
        }
    }
    double tot = before + nb, delta = mb - *mean;
    *mean += delta * nb / tot;
    *m2 += q + delta * delta * before * nb / tot;
}

/* The keep probability of the dropout directly before layer i (the layer
 * that writes its input), 1 without one. */
static double keep_before(const struct nb_model *m, int i)
{
    int a = m->in_idx[i];
    return a >= 1 ? 1.0 - nb_dropout_rate(&m->layers[a - 1]) : 1.0;
}

static void varshift(struct nb_probe *p, struct nb_model *m, const struct nbp_batch *b,
                     long step)
{
    (void)b;
    const struct nb_dataset *ds = p->test;
    size_t n = ds->n;
    if ((size_t)p->o.varshift_samples < n)
        n = (size_t)p->o.varshift_samples;
    int chunk = p->cap < m->max_batch ? p->cap : m->max_batch;
    int *y = ds->classes > 0 ? p->by : NULL;
    float *t = ds->tdim > 0 ? p->bt : NULL;
    memset(p->vs_acc, 0, 2 * (size_t)p->vs_channels * sizeof *p->vs_acc);
    double seen = 0; /* samples merged so far */
    for (size_t off = 0; off < n; off += (size_t)chunk) {
        int k = (int)(n - off < (size_t)chunk ? n - off : (size_t)chunk);
        for (int i = 0; i < k; i++)
            p->tidx[i] = off + (size_t)i;
        nb_dataset_gather(ds, p->tidx, (size_t)k, p->bx, y, t);
        nb_model_forward(m, p->bx, y, t, k, NB_EVAL);
        double *acc = p->vs_acc;
        for (int i = 0; i < m->n_layers; i++) {
            const struct nb_layer *l = &m->layers[i];
            int C = nb_norm_eval_moments(l, NULL, NULL);
            if (C == 0)
                continue;
            size_t hw = (size_t)l->in.h * (size_t)l->in.w;
            const float *x = m->acts[m->in_idx[i]]; /* (k, C, H, W) */
            for (int c = 0; c < C; c++)
                merge_channel(x, k, C, hw, c, seen * (double)hw, &acc[c], &acc[C + c]);
            acc += 2 * (size_t)C;
        }
        seen += k;
    }

    const double *acc = p->vs_acc;
    double *rm = p->vs_work, *rv = rm + p->vs_cmax, *meas = rv + p->vs_cmax,
           *pred = meas + p->vs_cmax;
    for (int i = 0; i < m->n_layers; i++) {
        const struct nb_layer *l = &m->layers[i];
        int C = nb_norm_eval_moments(l, rm, rv);
        if (C == 0)
            continue;
        double cnt = seen * (double)l->in.h * (double)l->in.w, q = keep_before(m, i);
        double s_meas = 0, s_pred = 0, s_c2v = 0;
        int u = 0;
        for (int c = 0; c < C; c++) {
            double mu = acc[c], v = cnt > 1 ? acc[C + c] / (cnt - 1) : NAN;
            if (!(v > 0) || !isfinite(v))
                continue; /* a constant unit: no ratio */
            /* the formula as 1/q + (1/q - 1) c^2/v: no cancellation of
             * c^2 against itself, and exactly 1 when q = 1 */
            double r = rv[c] / v, c2 = mu * mu / v, e = 1.0 / q + (1.0 / q - 1.0) * c2;
            meas[u] = r;
            pred[u] = e;
            s_meas += r;
            s_pred += e;
            s_c2v += c2;
            u++;
        }
        acc += 2 * (size_t)C;
        struct nb_probe_row row = nbp_row(m, step, NB_PROBE_VARSHIFT, i, "eval");
        row.param = "measured";
        nbp_emit(p, &row, "ratio", u ? s_meas / u : NAN);
        nbp_emit(p, &row, "ratio_median", median(meas, u));
        row.param = "predicted";
        nbp_emit(p, &row, "ratio", u ? s_pred / u : NAN);
        nbp_emit(p, &row, "ratio_median", median(pred, u));
        row.param = "";
        nbp_emit(p, &row, "keep", q);
        nbp_emit(p, &row, "c2v", u ? s_c2v / u : NAN);
        nbp_emit(p, &row, "units", u);
    }
    struct nb_probe_row row = nbp_row(m, step, NB_PROBE_VARSHIFT, -1, "eval");
    nbp_emit(p, &row, "samples", (double)seen);
}

const char *const nbp_varshift_stats[] = {"ratio", "ratio_median", "keep", "c2v", "units",
                                          "samples", "seconds", NULL};

static bool varshift_due(const struct nb_probe_opts *o, long step)
{
    return o->varshift && o->varshift_every > 0 && step % o->varshift_every == 0;
}

static bool varshift_at_end(const struct nb_probe_opts *o, long steps)
{
    (void)steps;
    return o->varshift;
}

static const char *eval_mode(const struct nb_probe_opts *o)
{
    (void)o;
    return "eval";
}

const struct nbp_ops nbp_varshift_ops = {
    .phase = NBP_AT_THETA,
    .uses_data = false,
    .due = varshift_due,
    .at_end = varshift_at_end,
    .mode = eval_mode,
    .run = varshift,
};
