/* src/layers/norm_impl.h - the norm layer's private state and its small
 * accessors, shared by norm.c (setup, forward, backward) and norm_stats.c
 * (the batch check, population statistics, folding) and included by
 * nothing else. */
#ifndef NB_LAYERS_NORM_IMPL_H
#define NB_LAYERS_NORM_IMPL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "layers/norm.h"

/* ---- private state ------------------------------------------------------ */

struct norm_priv {
    struct nb_norm_opts o; /* momenta in PyTorch's convention (momentum_keras false) */
    int C, HW, G, cpg;   /* channels, plane size, groups, channels/group */
    size_t numel;        /* C * HW */
    bool bsets;          /* batch or lp: statistics over samples */
    bool moments;        /* mean/variance (not the lp scale) */
    int lp_p;            /* 1, 2, or 0 for inf */
    int max_parts;
    size_t max_sets;
    int p_gamma, p_beta;                          /* -1 when absent */
    int s_mean, s_var, s_nbt, s_rn_mean, s_rn_std; /* -1 when absent */

    /* caches, sized at setup */
    double *pa, *pb;     /* (max_batch, C): plane partials (batch sets
                            on planes, and lp) */
    double *smean;       /* (max_sets): set mean */
    double *svar;        /* (max_sets): biased var (lp: sum/max quantity) */
    double *srstd;       /* (max_sets): 1/sigma (lp: 1/D) */
    double *g1, *g2;     /* (max_sets): backward set sums */
    double *scnt;        /* batch sets (max_sets): elements in the set */
    double *sr, *sd;     /* batch sets (max_sets): renorm r, d (1, 0
                            otherwise) */
    size_t *sarg;        /* (max_sets): lp inf, flat index of the max */
    int *pstart;         /* (max_parts + 1): part bounds */
    double *cda, *cdb;   /* (C): dgamma, dbeta accumulators */
    double *tmu, *tv, *ts; /* (C): running-update temporaries */
    /* (C): per-channel coefficients of one part's elementwise pass */
    float *coef_a;  /* forward: a in y = a (x - mu) + b; backward: A */
    float *coef_mu; /* the set mean mu, as float */
    float *coef_b;  /* forward: b; backward: B in dx = A dy + B (x - mu) + C0
                       (lp 1: E, the sign term's coefficient) */
    float *coef_c0; /* backward: C0 */
    float *ones, *zeros; /* (C): gamma and beta when affine is off */
    float *ns, *dyn;     /* (max_batch, C, H, W): noise scale s, dy * s */
    double *nmu, *nsig;  /* (C): noise distribution of this forward */
    /* batch sets over devices > 1 (norm_sync.c): what a rank sends, (3C),
     * and every rank's, (devices, 3C): count, mean, var per channel */
    double *xsend, *xrecv;

    /* what the most recent forward did (backward repeats it) */
    int n;
    bool fixed;  /* statistics were constants (EVAL, frozen) */
    bool noised; /* noise was applied */
    bool escaled; /* the noise's expected scale was applied (EVAL with
                     noise_eval_mean, or a recomputation's forward) */
    int nparts;  /* batch sets: parts of the final sets */
    const struct nb_comm *comm; /* the ranks it merged statistics over
                                   (sync; NULL: none), for backward */

    /* population statistics (nb_norm_recompute_*) */
    bool pop_on;       /* TRAIN forwards accumulate (begin .. end) */
    long pop_batches;  /* parts accumulated (each sub-batch of a forward) */
    double pop_count;  /* elements per channel accumulated (M) */
    double *pop_sum;   /* (C): sum of m mu over the sets */
    double *pop_sum2;  /* (C): sum of m (mu^2 + var); lp: of the quantity
                          (inf: its max) */
    double *pop_mean_sum; /* (C): sum of the set means (fvcore average) */
    double *pop_var_sum;  /* (C): sum of the sets' variance estimates
                             (running_var's; lp: scales) */
    double *pop_bvar_sum; /* (C): sum of the sets' biased variances (lp:
                             as pop_var_sum) */
};

static inline void *zalloc(size_t n, size_t size)
{
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX / size)
        return NULL;
    return calloc(n, size);
}

static inline float *state_of(struct nb_layer *l, int i)
{
    return i >= 0 ? l->state[i].value : NULL;
}

static inline bool frozen_active(const struct norm_priv *P, const struct nb_layer *l)
{
    return P->o.frozen && l->ctx && l->ctx->step >= P->o.frozen_from;
}

/* Number of parts and the range [*s, *e) of part k for a batch of n. */
static inline int part_count(const struct nb_norm_opts *o, int n)
{
    if (o->devices > 1)
        return o->devices;
    if (o->norm_batch > 0)
        return (n + o->norm_batch - 1) / o->norm_batch;
    return 1;
}

static inline void part_range(const struct nb_norm_opts *o, int n, int k, int *s,
                       int *e)
{
    if (o->devices > 1) {
        *s = (int)((long)k * n / o->devices);
        *e = (int)((long)(k + 1) * n / o->devices);
    } else if (o->norm_batch > 0) {
        *s = k * o->norm_batch;
        *e = *s + o->norm_batch < n ? *s + o->norm_batch : n;
    } else {
        *s = 0;
        *e = n;
    }
}

/* EVAL statistics of channel c as (mu, 1/sigma). */
static inline void eval_stats(const struct norm_priv *P, const struct nb_layer *l,
                       int c, double *mu, double *rstd)
{
    const float *m = l->state[P->s_mean].value;
    if (P->o.type == NB_NORM_LP) {
        *mu = m[c];
        *rstd = 1.0 / (double)l->state[P->s_var].value[c];
    } else if (P->o.renorm) {
        double sd = l->state[P->s_rn_std].value[c];
        double fl = sqrt(P->o.eps);
        *mu = l->state[P->s_rn_mean].value[c];
        *rstd = 1.0 / (sd > fl ? sd : fl);
    } else {
        *mu = m[c];
        *rstd = 1.0 / sqrt((double)l->state[P->s_var].value[c] + P->o.eps);
    }
}

/* The noise's expected scale E[s] = E[sigma_c] = (1 + n_sigma) / 2 that
 * an EVAL forward applies with noise_eval_mean (E[m] = 0). */
static inline double noise_mean_scale(const struct nb_norm_opts *o)
{
    return (1.0 + o->noise_sigma) / 2.0;
}

/* ---- norm_noise.c ------------------------------------------------------- */

/* Santurkar Alg. 1 on y (n samples): y <- s*y + m with per-channel
 * (mu_c, sigma_c) and per-element (m, s) drawn from r; keeps s in P->ns
 * for backward.  y holds samples [first, first + n) of a batch of total:
 * the draws go over the whole batch, in order, and the slice keeps its
 * own. */
void norm_apply_noise(struct norm_priv *P, gsl_rng *r, float *y, int n, int first, int total);

/* The expected noise of evaluation (noise_eval = mean): y <- E[s] y for
 * n samples (E[m] = 0). */
void norm_scale_noise_mean(struct norm_priv *P, float *y, int n);

/* ---- norm_sync.c: the parts of a batch ---------------------------------- */

/* Sync: merges the statistics of parts 0..nparts-1 into part 0, in order,
 * with SyncBatchNorm's pairwise formula; empty parts are skipped. */
void norm_unite_parts(struct norm_priv *P, int nparts);

/* The parts of the ranks of cm (size = devices): this rank's statistics of
 * its n samples, in part 0, go to every rank, and every rank's come back
 * into parts 0..size-1; pstart then gives this rank's part all n samples
 * and the others none.  Returns the part count (cm->size). */
int norm_gather_parts(struct norm_priv *P, const struct nb_comm *cm, int n);

/* lp inf over ranks: whether a rank before this one had max as its
 * largest |x| of channel c in the last gather (then that rank holds the
 * first element of largest |x|, which takes the gradient). */
bool norm_lower_rank_has_max(const struct norm_priv *P, const struct nb_comm *cm,
                             int c, double max);

/* Sync over ranks: the backward sums g1, g2 of part 0 become their sums
 * over the ranks, added in rank order. */
void norm_sum_backward(struct norm_priv *P, const struct nb_comm *cm);

/* ---- norm_rop.c: the R-operators (layer.h) ------------------------------ */

/* Exact after a forward in mode: type none, layer/group/instance, and
 * batch/lp with fixed statistics (EVAL, frozen) always; batch statistics
 * of batch norm (not renorm, not over ranks); never lp's batch scale. */
bool norm_rsupports(const struct nb_layer *l, enum nb_mode mode);
void norm_rforward(struct nb_layer *l, const float *x, const float *y,
                   const float *rx, float *ry, int n);
void norm_rbackward(struct nb_layer *l, const float *x, const float *y,
                    const float *rx, const float *dy, const float *rdy,
                    float *rdx, int n);

/* Setup errors: NB_EINVAL with a message, or naming the config key it is
 * about (core/error.h); err must be in scope. */
#define EINVAL_(...) nb_error_set(err, NB_EINVAL, NULL, 0, __VA_ARGS__)
/* the same, naming the config key the error is about (core/error.h) */
#define EINVAL_K(key, ...) (EINVAL_(__VA_ARGS__), nb_error_key(err, key))

/* ---- parameters ------------------------------------------------------ */

static inline float gamma_of(const struct norm_priv *P,
                             const struct nb_layer *l, int c)
{
    return P->p_gamma >= 0 ? l->params[P->p_gamma].value[c] : 1.0f;
}

static inline float beta_of(const struct norm_priv *P,
                            const struct nb_layer *l, int c)
{
    return P->p_beta >= 0 ? l->params[P->p_beta].value[c] : 0.0f;
}

/* (C) gamma and beta, or ones and zeros without affine */
static inline const float *gammas(const struct norm_priv *P,
                                  const struct nb_layer *l)
{
    return P->p_gamma >= 0 ? l->params[P->p_gamma].value : P->ones;
}

static inline const float *betas(const struct norm_priv *P,
                                 const struct nb_layer *l)
{
    return P->p_beta >= 0 ? l->params[P->p_beta].value : P->zeros;
}

#endif
