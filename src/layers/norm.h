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
 * A (N, C) input (h = w = 1) is handled by the same code.
 * See ../shared/claims.md sections 1, 2, 5, 6 for the exact semantics. */
#ifndef NB_LAYERS_NORM_H
#define NB_LAYERS_NORM_H

#include <stdbool.h>

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

enum nb_norm_lp { NB_LP_1 = 0, NB_LP_2, NB_LP_INF };

enum nb_norm_placement {
    NB_PLACE_PRE = 0, /* conv -> norm -> relu */
    NB_PLACE_POST     /* conv -> relu -> norm */
};

struct nb_norm_opts {
    enum nb_norm_type type;
    int groups;        /* group: G, must divide C */
    enum nb_norm_lp lp;
    bool affine;       /* per-channel gamma/beta (default true) */
    double eps;        /* default 1e-5, inside the sqrt */
    /* Running statistics (batch family). */
    double momentum;          /* PyTorch meaning: weight of the new batch */
    bool momentum_cumulative; /* momentum = none: cumulative average */
    bool momentum_keras;      /* momentum given in Keras convention (0.99) */
    bool running_var_biased;  /* default false: unbiased n/(n-1) */
    /* Ghost / local BN and sync BN. */
    int norm_batch;           /* statistics over sub-batches of this size; 0 = whole batch */
    bool ghost_update_per_step; /* running stats once per step from averaged stats */
    bool sync;                /* statistics over all `devices` sub-batches */
    int devices;
    /* Batch renormalization (Ioffe 2017). */
    bool renorm;
    double renorm_rmax, renorm_dmax;      /* final clip values */
    long renorm_warmup;                   /* steps of plain BN (r_max 1, d_max 0) */
    long renorm_rmax_steps, renorm_dmax_steps; /* step where the final value is reached */
    double renorm_momentum;               /* rate of the moving mean / std */
    /* Frozen BN: running statistics in training from step frozen_from on
     * (0 = from the start; -1 = never). */
    long frozen_from;
    /* Noisy BN (Santurkar Alg. 1), after the norm; also with type NONE. */
    bool noisy;
    double noise_mu, noise_sigma, noise_rmu, noise_rsigma;
};

/* Fills o with the defaults (type NONE, affine, eps 1e-5, momentum 0.1,
 * unbiased running variance, renorm 3/5 over a scaled schedule, frozen
 * never, noise constants 0.5/1.25/0.1/0.1). */
void nb_norm_opts_default(struct nb_norm_opts *o);

/* Name of a norm type ("none", "batch", ...); NULL if out of range. */
const char *nb_norm_type_name(enum nb_norm_type t);

/* Parses a norm type name; returns 0 or NB_EINVAL. */
int nb_norm_type_parse(const char *s, enum nb_norm_type *t);

/* The layer kind.  Options: struct nb_norm_opts.  Setup refuses, with a
 * clear message, a group count that does not divide C, instance norm where
 * a channel has one element, a norm batch that does not divide max_batch,
 * ... */
extern const struct nb_layer_ops nb_norm_ops;

#endif
