/* src/layers/norm.h - the normalization family as one layer kind.
 *
 * Every scheme normalizes x over a set S of elements sharing a statistic,
 * then applies a per-channel affine (gamma_c, beta_c):
 *   batch:    S = (samples of the normalization batch) x H x W, per channel
 *   layer:    all channels of a sample (= group with G = 1)
 *   instance: one H x W plane (= group with G = C)
 *   group:    C/G contiguous channels of a sample
 *   lp:       batch sets, scale = mean|x|, sqrt(mean x^2) or max|x| of x
 *             before centering (Santurkar 3.3; our interpretation)
 * A (N, C) input (h = w = 1) is handled by the same code: batch and lp
 * normalize each feature over the samples, layer and group normalize over
 * the C (or C/G) features of a sample; instance is refused there.
 * See ../shared/claims.md sections 1, 2, 5, 6 for the exact semantics.
 *
 * Forward, per the design: per-(n, c) partial moments over the contiguous
 * H*W plane in double, merged into each scheme's sets (Chan's formula),
 * then one pass y = A_(n,c) * (x - mu_S) + B_(n,c).  Backward: per-plane
 * partial sums of dy and dy*(x - mu_S), merged per set, then one pass
 * dx = A*dy + B*(x - mu_S) + C0.  No allocation after setup.  The loops
 * (norm_kernels.c) use an AVX2 + FMA version chosen at run time on
 * x86-64, 16-byte vectors otherwise; accumulation is in double either
 * way, but the order of the additions (so the last bits of a result) can
 * differ between machines.
 *
 * Exact semantics, mode by mode (batch; lp alike with its own scale):
 *  - TRAIN: batch statistics (biased variance, eps inside the sqrt);
 *    running_mean/running_var updated with the PyTorch rule
 *    r = (1 - f) r + f stat, f = momentum (or 1 - momentum with
 *    momentum_keras, or 1/num_batches_tracked with momentum_cumulative);
 *    running_var gets the unbiased variance n/(n-1) unless
 *    running_var_biased; num_batches_tracked += 1 per update.
 *  - EVAL: running statistics (renorm: the renorm moving mean/std), no
 *    noise, nothing updated.
 *  - PROBE: computed as TRAIN would (batch statistics, or running ones
 *    when frozen; renorm r/d from the current moving statistics), but no
 *    state is written and noise is drawn from ctx->rng_probe only.
 *  - Ghost/local BN: with norm_batch = B > 0 the batch is cut into
 *    consecutive sub-batches of B samples; a final smaller sub-batch is
 *    allowed (n need not be a multiple of B; B larger than n means one
 *    sub-batch).  Statistics are per sub-batch.  Running statistics are
 *    updated once per sub-batch, in order (PyTorch bigBatch style), or with
 *    ghost_update_per_step once per forward with the count-weighted means
 *    of the sub-batch means and (estimator-corrected) variances (Keras
 *    virtual_batch_size style; the renorm std then comes from the averaged
 *    variance).
 *  - Devices: devices = K > 1 cuts the batch into K nearly equal parts
 *    (part k is samples [k*n/K, (k+1)*n/K)), so unequal device sizes occur
 *    whenever K does not divide n.  Without sync each part normalizes with
 *    its own statistics (local BN, like ghost BN); with sync the per-part
 *    (count, mean, M2) are merged in order with PyTorch SyncBatchNorm's
 *    pairwise formula into global statistics (= BN over the whole batch),
 *    running variance unbiased over the global count, one update per
 *    forward.  sync with norm_batch sub-batches merges those instead.
 *    norm_batch and devices > 1 together are refused.
 *  - Ranks: in a TRAIN forward with ctx->comm of size K (a run split over
 *    K processes, core/comm.h; K must equal devices) the ranks are the
 *    devices: each holds its part, the parts' statistics are gathered in
 *    rank order into the slots the simulation fills, and the merge and
 *    the running updates read them as above, so every rank keeps the
 *    simulation's running statistics; sync's backward sums its set sums
 *    over the ranks.  Noise is drawn for the whole batch
 *    (ctx->part_total) and each rank keeps its slice.
 *  - Renorm (batch only): r = clip(sigma_B / sigma, 1/r_max, r_max),
 *    d = clip((mu_B - mu) / sigma, -d_max, d_max) with mu, sigma the renorm
 *    moving mean and std (sigma floored at sqrt(eps)), sigma_B =
 *    sqrt(var_B + eps); y = gamma (xhat r + d) + beta; r and d are
 *    constants in backward (stop-gradient).  All sub-batches of a forward
 *    use the moving statistics as they were when it began.  The moving
 *    mean/std are updated with renorm_momentum (same convention as
 *    momentum) from mu_B and sigma_B, where the running mean/var are
 *    updated; EVAL uses them.  running_mean/running_var are maintained as
 *    well (momentum), for logging, folding and recomputation.
 *    r_max/d_max follow nb_norm_renorm_limits() of ctx->step.
 *  - Frozen: when frozen and ctx->step >= frozen_from, TRAIN
 *    (and PROBE) normalize with the running statistics as EVAL does and
 *    update nothing; backward is that of the affine map.
 *  - Noisy (any type, also none): after the full norm incl. affine,
 *    y <- s*y + m (Santurkar Alg. 1): per channel and per forward
 *    mu_c ~ U(-noise_mu, noise_mu), sigma_c ~ U(1, noise_sigma); per
 *    element m ~ U(mu_c - noise_rmu, mu_c + noise_rmu),
 *    s ~ N(sigma_c, noise_rsigma) (noise_rsigma a standard deviation).
 *    For conv inputs every (n, h, w) position is a sample and channels are
 *    units.  Draw order: (mu_c, sigma_c) for c = 0..C-1, then (m, s) per
 *    element in NCHW order.  TRAIN draws from ctx->rng_noise, PROBE from
 *    ctx->rng_probe.  EVAL draws nothing: with noise_eval_mean off
 *    (the default) it adds no noise; on, it applies the noise's expected
 *    value, y <- E[s] y + E[m] = (1 + n_sigma)/2 y (E[m] = 0: mu_c is
 *    symmetric about 0), the convention of dropout's expected-value
 *    scaling, so that the next layer sees in evaluation the mean scale it
 *    saw in training.  The recomputation's TRAIN forwards
 *    (nb_norm_recompute_begin) do what EVAL does.  Backward multiplies dy
 *    by s (by E[s] after a scaled EVAL forward).
 *  - layer/group/instance compute per-sample statistics in every mode and
 *    keep no running statistics (PyTorch InstanceNorm's default); the
 *    batch-only options (momentum, norm_batch, devices, sync, frozen) are
 *    ignored by them.  type none is the identity (no parameters), plus the
 *    noise when noisy is set: the "noise without BN" control.
 *
 * lp scale (with eps so that an all-zero set stays finite):
 *   D_1 = mean|x| + eps, D_2 = sqrt(mean x^2 + eps), D_inf = max|x| + eps;
 *   y = gamma (x - mean x) / D + beta.  The backward is exact, including
 *   the max (the gradient goes to the first element of largest |x|).
 *   lp keeps running_mean and running_scale (EMA of D; no correction).
 *
 * State blocks (state arena, set by ops->init):
 *   batch: running_mean (C) = 0, running_var (C) = 1,
 *          num_batches_tracked (1) = 0, with renorm also
 *          renorm_mean (C) = 0, renorm_std (C) = 1;
 *   lp:    running_mean (C) = 0, running_scale (C) = 1,
 *          num_batches_tracked (1) = 0.
 * Parameters (affine): "gamma" (C) = 1, "beta" (C) = 0, NB_PARAM_NORM. */
#ifndef NB_LAYERS_NORM_H
#define NB_LAYERS_NORM_H

#include <stdbool.h>
#include <stdio.h>

#include "core/opt.h"
#include "layers/layer.h"

enum nb_norm_type {
    NB_NORM_NONE = 0,
    NB_NORM_BATCH,
    NB_NORM_LAYER,
    NB_NORM_INSTANCE,
    NB_NORM_GROUP,
    NB_NORM_LP,
    NB_NORM_TYPE_COUNT
};

enum nb_norm_lp { NB_LP_1 = 0, NB_LP_2, NB_LP_INF, NB_LP_COUNT };

enum nb_norm_placement {
    NB_PLACE_PRE = 0, /* conv -> norm -> relu */
    NB_PLACE_POST,    /* conv -> relu -> norm */
    NB_PLACE_COUNT
};

/* Names by enumerator, NULL-terminated: the config keys norm.type,
 * norm.lp and model.placement take their values from these tables (keys.c),
 * and the enums map by index. */
extern const char *const nb_norm_type_names[];
extern const char *const nb_norm_lp_names[];
extern const char *const nb_norm_placement_names[];

struct nb_norm_opts {
    enum nb_norm_type type;
    int groups;        /* group: G, must divide C; 0 = per layer
                          nb_norm_default_groups(C) */
    enum nb_norm_lp lp;
    bool affine;       /* per-channel gamma/beta (default true) */
    double eps;        /* default 1e-5, inside the sqrt */
    /* Running statistics (batch family). */
    double momentum;          /* PyTorch meaning: weight of the new batch */
    bool momentum_cumulative; /* momentum = none: cumulative average */
    bool momentum_keras;      /* momentum (and renorm_momentum) given in
                                 Keras convention: 0.99 = PyTorch 0.01 */
    bool running_var_biased;  /* default false: unbiased n/(n-1) */
    /* Ghost / local BN and sync BN (see the header comment). */
    int norm_batch;           /* statistics over sub-batches of this size; 0 = whole batch */
    bool ghost_update_per_step; /* running stats once per step from averaged stats */
    bool sync;                /* statistics over all `devices` sub-batches */
    int devices;              /* K nearly equal parts; 1 (default) = none */
    /* Batch renormalization (Ioffe 2017). */
    bool renorm;
    double renorm_rmax, renorm_dmax;      /* final clip values */
    long renorm_warmup;                   /* steps of plain BN (r_max 1, d_max 0) */
    long renorm_rmax_steps, renorm_dmax_steps; /* step where the final value is reached */
                                          /* (each -1 = auto: nb_norm_resolve_auto) */
    double renorm_momentum;               /* rate of the moving mean / std */
    /* Frozen BN: with frozen, running statistics in training from step
     * frozen_from on (0 = from the start). */
    bool frozen;
    long frozen_from;
    /* Noisy BN (Santurkar Alg. 1), after the norm; also with type NONE. */
    bool noisy;
    double noise_mu, noise_sigma, noise_rmu, noise_rsigma;
    /* In EVAL (and the recomputation's forwards): false = no noise, true
     * = the noise at its expected value, y <- E[s] y + E[m] with
     * E[s] = (1 + noise_sigma) / 2, E[m] = 0 (config: noise_eval =
     * off|mean). */
    bool noise_eval_mean;
};

/* The [norm] config keys of struct nb_norm_opts (core/opt.h): name, type,
 * default, range, values and doc of each, and its member.  The defaults:
 * type none, groups 0 (the per-layer nb_norm_default_groups), lp 2,
 * affine, eps 1e-5, momentum 0.1 (PyTorch convention), unbiased running
 * variance, no ghost/devices/sync, renorm off with r_max 3, d_max 5 over
 * the paper's schedule scaled to the run (auto), renorm momentum 0.01,
 * not frozen, noise off with Santurkar's constants n_mu 0.5, n_sigma
 * 1.25, r_mu 0.1, r_sigma 0.1, and none of it in evaluation
 * (noise_eval = off; added after 0.1.0, NB_KF_ADDED). */
extern const struct nb_key nb_norm_keys[];
extern const int nb_norm_n_keys;

/* Fills o with the defaults of nb_norm_keys. */
void nb_norm_opts_default(struct nb_norm_opts *o);

/* Resolves renorm's auto steps (-1) for a run of total_steps updates: the
 * paper's 5k (warmup), 25k (d_max) and 40k (r_max) of 160k steps, scaled
 * to the run.  Steps already given are kept. */
void nb_norm_resolve_auto(struct nb_norm_opts *o, long total_steps);

/* The group count that groups = 0 stands for on a layer of `channels`
 * channels: the largest divisor of channels that is at most
 * min(8, channels / 4), and at least 1.  workloads.md: 4 on 16 channels,
 * 8 on 32 and 128; where min(8, C/4) does not divide C the next smaller
 * divisor (6 on 36, 3 on 18), and 1 below 8 channels.  channels >= 1. */
int nb_norm_default_groups(int channels);

/* Name of a norm type ("none", "batch", "layer", "instance", "group",
 * "lp"); NULL if out of range. */
const char *nb_norm_type_name(enum nb_norm_type t);

/* The PyTorch momentum (weight of the new value) equal to Keras momentum m
 * (weight of the old value): 1 - m rounded to 15 significant digits, so
 * that Keras 0.99 and PyTorch 0.01 are the same double.  A layer in the
 * Keras convention computes with these; the run identity (sweep.c) writes
 * them, so the two spellings are one run. */
double nb_norm_momentum_from_keras(double m);

/* Whether config key [section] key is a momentum that momentum_convention
 * spells (norm.momentum and norm.renorm_momentum). */
bool nb_norm_key_is_momentum(const char *section, const char *key);

/* Whether type t takes its statistics across the samples of a batch
 * (batch norm and lp norm: ghost sub-batches, devices, running
 * statistics apply) rather than within each sample. */
bool nb_norm_type_over_batch(enum nb_norm_type t);

/* Parses a norm type name; returns 0 or NB_EINVAL (t untouched). */
int nb_norm_type_parse(const char *s, enum nb_norm_type *t);

/* Name of an lp variant ("1", "2", "inf"); NULL if out of range. */
const char *nb_norm_lp_name(enum nb_norm_lp p);

/* Parses "1", "2" or "inf"; returns 0 or NB_EINVAL. */
int nb_norm_lp_parse(const char *s, enum nb_norm_lp *p);

/* The renorm clip limits at optimizer step `step`: r_max = 1 and
 * d_max = 0 up to renorm_warmup, then linear ramps reaching renorm_rmax at
 * renorm_rmax_steps and renorm_dmax at renorm_dmax_steps, constant after.
 * Independent of o->renorm (so it can be logged). */
void nb_norm_renorm_limits(const struct nb_norm_opts *o, long step,
                           double *rmax, double *dmax);

/* The layer kind.  Options: struct nb_norm_opts (NULL = defaults).
 * Setup refuses, with NB_EINVAL and a message naming the layer and the
 * numbers: a group count that does not divide C; instance norm where a
 * channel has one element ((N, C) inputs); per-sample sets of a single
 * element; batch statistics that can never have more than one value per
 * channel (max_batch x H x W = 1, or a norm batch / device part of one
 * value) unless frozen from step 0; norm_batch together with devices > 1;
 * renorm on a type other than batch; out-of-range numbers. */
extern const struct nb_layer_ops nb_norm_ops;

/* Checks that norm layer l can run a TRAIN forward on n samples: n in
 * [1, max_batch], and every set of batch statistics (the batch, each
 * sub-batch or device part; their union with sync) has more than one
 * value per channel.  Returns 0, or NB_EINVAL with err filled, e.g.
 * "layer norm1: batch norm needs more than one value per channel in
 * training (batch 1 x 1 x 1 = 1)".  Returns 0 for a layer of another
 * kind.  A TRAIN forward that violates it is a programmer error
 * (NB_ASSERT). */
int nb_norm_check_batch(const struct nb_layer *l, int n,
                        struct nb_error *err);

/* Population statistics ("precise BN", "recompute the statistics on this
 * data").  Between nb_norm_recompute_begin and nb_norm_recompute_end, a
 * TRAIN forward of the layer normalizes with batch statistics (per norm
 * batch or device part as in training, also when frozen or renorm is set),
 * draws no noise and updates nothing, but adds the statistics of every
 * normalization batch B (count m_B, mean mu_B, biased var var_B) to
 * accumulators kept behind l->priv (not in the state arena).  EVAL and
 * PROBE forwards are unaffected.  The weights must not change meanwhile.
 *
 * nb_norm_recompute_end ends the recomputation and writes
 * running_mean/running_var (and with renorm the renorm mean/std =
 * sqrt(var + eps)) by one of these formulas; it may be called again with
 * another formula, which rewrites them from the same statistics (until
 * the next begin). */
enum nb_pop_formula {
    /* sample-weighted: mu = E[mu_B], var = E[mu_B^2 + var_B] - E[mu_B]^2
     * (E weighted by m_B; = the variance over all samples seen), times
     * M/(M-1) with M the total count unless running_var_biased */
    NB_POP_EXACT = 0,
    /* the plain average over batches of mu_B and of the per-batch
     * running-variance estimate (m_B/(m_B-1) var_B unless
     * running_var_biased): fvcore's update_bn_stats, and Ioffe's
     * Algorithm 2 (E_B[mu_B], m/(m-1) E_B[var_B]) for an unbiased layer */
    NB_POP_BATCH_MEAN,
    /* the same with the biased var_B whatever running_var says: Ioffe's
     * Algorithm 2 without its m/(m-1) */
    NB_POP_BATCH_MEAN_BIASED,
    NB_POP_FORMULA_COUNT
};
/* lp: running_mean as above; running_scale = the scale of the pooled
 * samples (exact) or the average of the per-batch scales (both batch
 * means).  Returns the number of batches used; with 0 nothing is written.
 * Both are no-ops (returning 0) for layers without running statistics and
 * for layers of another kind, so an owner can call them on every layer. */
void nb_norm_recompute_begin(struct nb_layer *l);
int nb_norm_recompute_end(struct nb_layer *l, enum nb_pop_formula f);

/* The per-channel statistics norm layer l normalizes with in EVAL, as
 * the mean mu_c and the variance var_c of x such that
 * y = gamma_c (x - mu_c) / sqrt(var_c + eps) + beta_c: running_mean and
 * running_var, or with renorm the renorm mean and std^2 - eps (the std
 * floored at sqrt(eps), as EVAL does).  mean and var (either may be NULL:
 * a query) get C values.  Returns C, or 0 for a layer without such
 * statistics: another kind, or a norm of type none, layer, group,
 * instance (no running statistics) or lp (a scale, not a variance). */
int nb_norm_eval_moments(const struct nb_layer *l, double *mean, double *var);

/* Folds the EVAL-mode map of norm layer `norm` (batch, lp, or none)
 * y = s_c (x - mu_c) + beta_c, s_c = gamma_c / sqrt(var_c + eps) (lp:
 * gamma_c / scale_c; renorm: gamma_c / renorm_std_c; both times E[s] with
 * noisy and noise_eval_mean, type none too), into the preceding
 * conv/linear: w (out, per_out) row-major, one row per output channel,
 * becomes w * s_c, and b (out) becomes (b - mu_c) s_c + beta_c (the
 * caller provides b, zeroed if the layer had no bias).  Exact for
 * Conv -> BN (claims.md 6.5).  Returns 0, or NB_EINVAL (nothing changed)
 * when out differs from the layer's channels or the type is not foldable
 * (layer, group, instance).  type none changes nothing and returns 0
 * (unless its EVAL forward scales: then w and b are scaled by E[s]). */
int nb_norm_fold(const struct nb_layer *norm, float *w, float *b, int out,
                 size_t per_out);

/* Micro-benchmark (workloads.md, "Norm-layer micro-benchmark"): times
 * forward + backward in TRAIN mode with affine, for batch, group
 * (G = nb_norm_default_groups(C)), layer and instance on (32,16,28,28), (32,32,14,14),
 * (128,64,14,14) and (8,32,28,28), each for about seconds_per_case
 * (median of timed windows).  Prints one line per case with ns/element and
 * the effective GB/s against the minimum traffic of 5 x 4 bytes per
 * element (forward reads x, writes y; backward reads x and dy, writes
 * dx), then a measured single-thread memory bandwidth (copy and
 * STREAM-style triad over arrays of 64 MiB, bytes read + written) and the
 * ratio of each case to the triad figure.  Returns 0 or NB_ENOMEM. */
int nb_norm_bench(FILE *out, double seconds_per_case);

#endif
