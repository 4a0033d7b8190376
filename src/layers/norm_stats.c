/* src/layers/norm_stats.c - the norm layer's helpers outside training: the
 * batch check, recomputing the population statistics (Ioffe's Algorithm
 * 2, precise BN), folding batch norm into the layer before it,
 * renorm's schedule (its auto steps and its r_max/d_max ramps) and a Keras
 * momentum in PyTorch's convention; see norm.h. */
#include "layers/norm_impl.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- public helpers ----------------------------------------------------- */

int nb_norm_check_batch(const struct nb_layer *l, int n, struct nb_error *err)
{
    if (!l || l->ops != &nb_norm_ops || !l->priv)
        return NB_OK;
    const struct norm_priv *P = l->priv;
    if (n < 1 || n > l->max_batch)
        return EINVAL_K("train.batch", "layer %s: a batch of %d samples is outside 1..%d "
                       "(the batch size the model was built for)", l->name, n,
                       l->max_batch);
    if (!P->bsets || (P->o.frozen && P->o.frozen_from == 0))
        return NB_OK;
    const char *tn = nb_norm_type_name(P->o.type);
    const long HW = P->HW;
    if (P->o.sync || part_count(&P->o, n) == 1) {
        if ((long)n * HW <= 1)
            return EINVAL_K("train.batch", "layer %s: %s norm needs more than one value per "
                           "channel in training (batch %d x %d x %d = %ld)",
                           l->name, tn, n, l->in.h, l->in.w, (long)n * HW);
        return NB_OK;
    }
    int K = part_count(&P->o, n);
    for (int k = 0; k < K; k++) {
        int s, e;
        part_range(&P->o, n, k, &s, &e);
        if (e > s && (long)(e - s) * HW <= 1)
            return EINVAL_K(P->o.devices > 1 ? "norm.devices" : "norm.norm_batch",
                            "layer %s: %s norm needs more than one value per "
                           "channel in training (batch %d: %s %d of %d has "
                           "%d x %d x %d = %ld)", l->name, tn, n,
                           P->o.devices > 1 ? "device part" : "sub-batch",
                           k + 1, K, e - s, l->in.h, l->in.w,
                           (long)(e - s) * HW);
    }
    return NB_OK;
}

void nb_norm_recompute_begin(struct nb_layer *l)
{
    if (!l || l->ops != &nb_norm_ops || !l->priv)
        return;
    struct norm_priv *P = l->priv;
    if (!P->bsets)
        return;
    P->pop_on = true;
    P->pop_batches = 0;
    P->pop_count = 0;
    for (int c = 0; c < P->C; c++)
        P->pop_sum[c] = P->pop_sum2[c] = P->pop_mean_sum[c] =
            P->pop_var_sum[c] = P->pop_bvar_sum[c] = 0;
}

int nb_norm_recompute_end(struct nb_layer *l, enum nb_pop_formula f)
{
    if (!l || l->ops != &nb_norm_ops || !l->priv)
        return 0;
    struct norm_priv *P = l->priv;
    if (!P->bsets)
        return 0;
    P->pop_on = false;
    if (P->pop_batches == 0)
        return 0;
    float *rm = state_of(l, P->s_mean), *rv = state_of(l, P->s_var);
    const double M = P->pop_count, B = (double)P->pop_batches, eps = P->o.eps;
    for (int c = 0; c < P->C; c++) {
        double mu, v;
        if (f != NB_POP_EXACT) {
            mu = P->pop_mean_sum[c] / B;
            v = (f == NB_POP_BATCH_MEAN ? P->pop_var_sum[c] : P->pop_bvar_sum[c]) / B;
        } else if (P->moments) {
            mu = P->pop_sum[c] / M;
            v = P->pop_sum2[c] / M - mu * mu;
            v = v > 0 ? v : 0;
            if (!P->o.running_var_biased && M > 1)
                v *= M / (M - 1);
        } else {
            mu = P->pop_sum[c] / M;
            double q = P->pop_sum2[c];
            v = P->lp_p == 1 ? q / M + eps
                : P->lp_p == 2 ? sqrt(q / M + eps)
                               : q + eps;
        }
        rm[c] = (float)mu;
        rv[c] = (float)v;
        if (P->o.renorm) {
            l->state[P->s_rn_mean].value[c] = (float)mu;
            l->state[P->s_rn_std].value[c] = (float)sqrt(v + eps);
        }
    }
    return (int)P->pop_batches;
}

int nb_norm_fold(const struct nb_layer *norm, float *w, float *b, int out,
                 size_t per_out)
{
    if (!norm || norm->ops != &nb_norm_ops || !norm->priv)
        return NB_EINVAL;
    const struct norm_priv *P = norm->priv;
    /* EVAL's expected noise scale (noise_eval_mean), else 1 */
    double es = P->o.noisy && P->o.noise_eval_mean ? noise_mean_scale(&P->o) : 1.0;
    if (P->o.type == NB_NORM_NONE) {
        if (es == 1.0)
            return NB_OK;
        if (out != P->C)
            return NB_EINVAL;
        for (size_t j = 0; j < (size_t)out * per_out; j++)
            w[j] = (float)(w[j] * es);
        for (int c = 0; c < out; c++)
            b[c] = (float)(b[c] * es);
        return NB_OK;
    }
    if (!P->bsets || out != P->C)
        return NB_EINVAL;
    for (int c = 0; c < out; c++) {
        double mu, rstd;
        eval_stats(P, norm, c, &mu, &rstd);
        double s = (double)gamma_of(P, norm, c) * rstd;
        float *row = w + (size_t)c * per_out;
        for (size_t j = 0; j < per_out; j++)
            row[j] = (float)(row[j] * s * es);
        b[c] = (float)((((double)b[c] - mu) * s + beta_of(P, norm, c)) * es);
    }
    return NB_OK;
}

int nb_norm_eval_moments(const struct nb_layer *l, double *mean, double *var)
{
    if (!l || l->ops != &nb_norm_ops || !l->priv)
        return 0;
    const struct norm_priv *P = l->priv;
    if (!P->bsets || !P->moments || P->s_mean < 0 || P->s_var < 0)
        return 0;
    for (int c = 0; c < P->C; c++) {
        double mu, rstd;
        eval_stats(P, l, c, &mu, &rstd);
        if (mean)
            mean[c] = mu;
        if (var)
            var[c] = P->o.renorm ? 1.0 / (rstd * rstd) - P->o.eps
                                 : (double)l->state[P->s_var].value[c];
    }
    return P->C;
}

/* ---- renorm's schedule ---------------------------------------------------- */

/* renorm's schedule in the paper: 5k, 25k and 40k of 160k steps */
#define RENORM_PAPER_STEPS 160000.0

bool nb_norm_key_is_momentum(const char *section, const char *key)
{
    return !strcmp(section, "norm") &&
           (!strcmp(key, "momentum") || !strcmp(key, "renorm_momentum"));
}

double nb_norm_momentum_from_keras(double m)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.15g", 1.0 - m);
    return strtod(buf, NULL);
}

void nb_norm_resolve_auto(struct nb_norm_opts *o, long total_steps)
{
    double t = (double)total_steps;
    if (o->renorm_warmup < 0)
        o->renorm_warmup = lround(t * 5000.0 / RENORM_PAPER_STEPS);
    if (o->renorm_dmax_steps < 0)
        o->renorm_dmax_steps = lround(t * 25000.0 / RENORM_PAPER_STEPS);
    if (o->renorm_rmax_steps < 0)
        o->renorm_rmax_steps = lround(t * 40000.0 / RENORM_PAPER_STEPS);
}

/* value of a linear ramp from v0 (at step a) to v1 (at step b) */
static double ramp(long step, long a, long b, double v0, double v1)
{
    if (step <= a)
        return v0;
    if (step >= b)
        return v1;
    return v0 + (v1 - v0) * (double)(step - a) / (double)(b - a);
}

void nb_norm_renorm_limits(const struct nb_norm_opts *o, long step,
                           double *rmax, double *dmax)
{
    *rmax = ramp(step, o->renorm_warmup, o->renorm_rmax_steps, 1.0,
                 o->renorm_rmax);
    *dmax = ramp(step, o->renorm_warmup, o->renorm_dmax_steps, 0.0,
                 o->renorm_dmax);
}
