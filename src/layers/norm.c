/* src/layers/norm.c - the normalization family as one layer kind.
 *
 * See norm.h for the semantics of every option and mode.  The layout:
 *
 *   forward:  1. statistics: per-(n, c) plane partials (mean, M2 or the lp
 *                quantity) in double, merged into the scheme's sets;
 *             2. one pass y = A * (x - mu) + B per plane (A, B from the
 *                set's statistics and the channel's gamma/beta, renorm
 *                r/d folded in);
 *             3. noise (optional) y <- s*y + m per element.
 *   backward: 1. per-plane partials sum dy, sum dy*(x - mu) (dy times the
 *                noise scale s when noise was applied), merged per set and
 *                per channel (dgamma, dbeta);
 *             2. one pass dx = A*dy + B*(x - mu) + C0 per plane.
 *
 * "Sets" are indexed in one of two ways:
 *   batch sets (batch, lp):     s = k*C + c, k the sub-batch ("part");
 *                               planes n in [pstart[k], pstart[k+1]);
 *   sample sets (layer, group,  s = n*G + g; planes c in [g*cpg, (g+1)*cpg)
 *   instance):                  of sample n, contiguous in memory, so the
 *                               set's moments are taken over that run.
 * In EVAL (and frozen) the batch sets collapse to one part with the
 * running statistics as constants ("fixed").
 *
 * Backward of a set S with m elements, g_i = gamma_c r dy_i (dL/dxhat),
 * rstd = 1/sigma_S:
 *   dx_i = rstd (g_i - G1/m - xhat_i G2/m),  G1 = sum g, G2 = sum g xhat
 * (Ioffe & Szegedy 2015; gamma inside the sums because group sets span
 * channels with different gamma). */
#include "layers/norm.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "layers/norm_impl.h"
#include "layers/norm_kernels.h"

/* Names by enumerator, sized by the initializer: the assertions fail when
 * an enum grows and its table does not. */
const char *const nb_norm_type_names[NB_NORM_TYPE_COUNT + 1] = {
    [NB_NORM_NONE] = "none",
    [NB_NORM_BATCH] = "batch",
    [NB_NORM_LAYER] = "layer",
    [NB_NORM_INSTANCE] = "instance",
    [NB_NORM_GROUP] = "group",
    [NB_NORM_LP] = "lp",
    [NB_NORM_TYPE_COUNT] = NULL,
};

bool nb_norm_type_over_batch(enum nb_norm_type t)
{
    return t == NB_NORM_BATCH || t == NB_NORM_LP;
}

const char *const nb_norm_lp_names[NB_LP_COUNT + 1] = {
    [NB_LP_1] = "1", [NB_LP_2] = "2", [NB_LP_INF] = "inf", [NB_LP_COUNT] = NULL,
};

const char *const nb_norm_placement_names[NB_PLACE_COUNT + 1] = {
    [NB_PLACE_PRE] = "pre", [NB_PLACE_POST] = "post", [NB_PLACE_COUNT] = NULL,
};

int nb_norm_default_groups(int channels)
{
    int g = channels / 4 < 8 ? channels / 4 : 8;
    if (g < 1)
        g = 1;
    while (channels % g)
        g--;
    return g;
}

/* The [norm] keys' value lists that map to bools (the first value is
 * false). */
static const char *const v_conv[] = {"pytorch", "keras", NULL};
static const char *const v_rvar[] = {"unbiased", "biased", NULL};
static const char *const v_ghost[] = {"per_subbatch", "per_step", NULL};
static const char *const v_noise_eval[] = {"off", "mean", NULL};

#define INF HUGE_VAL
#define AT(m) NB_KEY_AT(struct nb_norm_opts, m)
const struct nb_key nb_norm_keys[] = {
    { NB_K_ENUM("norm", "type", "none", nb_norm_type_names, "normalization scheme"), AT(type) },
    { NB_K_INT("norm", "groups", "0", 0, 65536, 0,
               "group norm: groups G (must divide the channels); 0 = per layer "
               "the largest divisor of C that is at most min(8, C/4) "
               "(workloads.md)"),
      AT(groups) },
    { NB_K_ENUM("norm", "lp", "2", nb_norm_lp_names, "lp norm: which norm of x scales it"),
      AT(lp) },
    { NB_K_BOOL("norm", "affine", "true", "per-channel gamma and beta"), AT(affine) },
    { NB_K_FLT("norm", "eps", "1e-05", 0, INF, NB_KF_MIN_EXCL,
               "added to the variance inside the square root"),
      AT(eps) },
    { NB_K_FLT("norm", "momentum", "0.1", 0, 1, 0,
               "running statistics update rate (see momentum_convention); none = "
               "cumulative average"),
      .word = "none", .word_value = NAN, AT(momentum),
      NB_KEY_WORD_FLAG(struct nb_norm_opts, momentum_cumulative) },
    { NB_K_ENUM("norm", "momentum_convention", "pytorch", v_conv,
                "pytorch: momentum weighs the new batch; keras: weighs the old "
                "value (0.99 = pytorch 0.01)"),
      AT(momentum_keras) },
    { NB_K_ENUM("norm", "running_var", "unbiased", v_rvar,
                "running variance estimator: n/(n-1) (PyTorch) or biased"),
      AT(running_var_biased) },
    { NB_K_INT("norm", "norm_batch", "0", 0, 1e7, 0,
               "ghost BN: statistics over sub-batches of this many samples; "
               "0 = the whole batch"),
      AT(norm_batch) },
    { NB_K_ENUM("norm", "ghost_update", "per_subbatch", v_ghost,
                "ghost BN running statistics: once per sub-batch (PyTorch "
                "chunks) or once per step from averaged statistics (Keras)"),
      AT(ghost_update_per_step) },
    { NB_K_BOOL("norm", "sync", "false",
                "synchronized BN: statistics over all devices' sub-batches"),
      AT(sync) },
    { NB_K_INT("norm", "devices", "1", 1, 4096, 0,
               "number of (simulated) devices the batch is split over"),
      AT(devices) },
    { NB_K_BOOL("norm", "renorm", "false", "batch renormalization (Ioffe 2017)"), AT(renorm) },
    { NB_K_FLT("norm", "renorm_rmax", "3", 1, INF, 0, "final r_max"), AT(renorm_rmax) },
    { NB_K_FLT("norm", "renorm_dmax", "5", 0, INF, 0, "final d_max"), AT(renorm_dmax) },
    { NB_K_INT("norm", "renorm_warmup", "auto", 0, 1e12, 0,
               "steps of plain BN (r_max 1, d_max 0); auto = 5k/160k of the run"),
      .word = "auto", .word_value = -1, AT(renorm_warmup) },
    { NB_K_INT("norm", "renorm_rmax_steps", "auto", 0, 1e12, 0,
               "step at which r_max reaches its final value; auto = 40k/160k of "
               "the run"),
      .word = "auto", .word_value = -1, AT(renorm_rmax_steps) },
    { NB_K_INT("norm", "renorm_dmax_steps", "auto", 0, 1e12, 0,
               "step at which d_max reaches its final value; auto = 25k/160k of "
               "the run"),
      .word = "auto", .word_value = -1, AT(renorm_dmax_steps) },
    { NB_K_FLT("norm", "renorm_momentum", "0.01", 0, 1, NB_KF_MIN_EXCL,
               "update rate of renorm's moving mean and std (weight of the new "
               "batch)"),
      AT(renorm_momentum) },
    { NB_K_BOOL("norm", "frozen", "false",
                "frozen BN: use running statistics in training from frozen_from"),
      AT(frozen) },
    { NB_K_INT("norm", "frozen_from", "0", 0, 1e12, 0,
               "first step of frozen BN (with frozen = true)"),
      AT(frozen_from) },
    { NB_K_BOOL("norm", "noisy", "false",
                "noisy BN (Santurkar Alg. 1): per-step random shift and scale "
                "after the norm"),
      AT(noisy) },
    { NB_K_FLT("norm", "noise_mu", "0.5", 0, INF, 0, "noisy BN: n_mu"), AT(noise_mu) },
    { NB_K_FLT("norm", "noise_sigma", "1.25", 0, INF, 0, "noisy BN: n_sigma"), AT(noise_sigma) },
    { NB_K_FLT("norm", "noise_rmu", "0.1", 0, INF, 0, "noisy BN: r_mu"), AT(noise_rmu) },
    { NB_K_FLT("norm", "noise_rsigma", "0.1", 0, INF, 0, "noisy BN: r_sigma"), AT(noise_rsigma) },
    { NB_K_("norm", "noise_eval", NB_KEY_ENUM, "off", 0, 0, NB_KF_ADDED,
            "noisy BN in evaluation: off (no noise), or mean: the noise at its "
            "expected value, y <- (1 + n_sigma)/2 y (E[m] = 0)"),
      .enum_values = v_noise_eval, AT(noise_eval_mean) },
};
#undef AT
const int nb_norm_n_keys = (int)(sizeof nb_norm_keys / sizeof nb_norm_keys[0]);

void nb_norm_opts_default(struct nb_norm_opts *o)
{
    memset(o, 0, sizeof *o);
    nb_keys_default(nb_norm_keys, nb_norm_n_keys, o);
}

const char *nb_norm_type_name(enum nb_norm_type t)
{
    return (t >= 0 && t < NB_NORM_TYPE_COUNT) ? nb_norm_type_names[t] : NULL;
}

int nb_norm_type_parse(const char *s, enum nb_norm_type *t)
{
    int i = nb_name_index(nb_norm_type_names, s);
    if (i >= 0)
        *t = (enum nb_norm_type)i;
    return i >= 0 ? NB_OK : NB_EINVAL;
}

const char *nb_norm_lp_name(enum nb_norm_lp p)
{
    return (p >= 0 && p < NB_LP_COUNT) ? nb_norm_lp_names[p] : NULL;
}

int nb_norm_lp_parse(const char *s, enum nb_norm_lp *p)
{
    int i = nb_name_index(nb_norm_lp_names, s);
    if (i >= 0)
        *p = (enum nb_norm_lp)i;
    return i >= 0 ? NB_OK : NB_EINVAL;
}

/* ---- setup -------------------------------------------------------------- */

static void norm_destroy(struct nb_layer *l)
{
    struct norm_priv *P = l->priv;
    if (!P)
        return;
    void *bufs[] = {P->pa,      P->pb,      P->smean,   P->svar,
                    P->scnt,    P->srstd,   P->sr,      P->sd,
                    P->g1,      P->g2,      P->sarg,    P->pstart,
                    P->cda,     P->cdb,     P->tmu,     P->tv,
                    P->ts,      P->coef_a,  P->coef_mu, P->coef_b,
                    P->coef_c0, P->ns,      P->dyn,     P->nmu,
                    P->nsig,    P->pop_sum, P->pop_sum2, P->pop_mean_sum,
                    P->pop_var_sum, P->pop_bvar_sum, P->ones, P->zeros, P->xsend, P->xrecv};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(P);
    l->priv = NULL;
}


static int check_opts(const struct nb_layer *l, const struct nb_norm_opts *o,
                      struct nb_error *err)
{
    const char *nm = l->name;
    const char *tn = nb_norm_type_name(o->type);
    if (!tn)
        return EINVAL_K("norm.type", "layer %s: unknown norm type %d", nm, (int)o->type);
    if (!(o->eps >= 0) || !isfinite(o->eps))
        return EINVAL_K("norm.eps", "layer %s: eps must be finite and >= 0 (got %g)", nm,
                       o->eps);
    if (o->type == NB_NORM_LP && (o->lp < 0 || o->lp >= NB_LP_COUNT))
        return EINVAL_K("norm.lp", "layer %s: unknown lp variant %d", nm, (int)o->lp);
    if (!(o->momentum >= 0 && o->momentum <= 1))
        return EINVAL_K("norm.momentum", "layer %s: momentum must be in [0, 1] (got %g)", nm,
                       o->momentum);
    if (o->norm_batch < 0)
        return EINVAL_K("norm.norm_batch", "layer %s: norm_batch must be >= 0 (got %d)", nm,
                       o->norm_batch);
    if (o->devices < 1)
        return EINVAL_K("norm.devices", "layer %s: devices must be >= 1 (got %d)", nm,
                       o->devices);
    if (o->norm_batch > 0 && o->devices > 1)
        return EINVAL_K("norm.devices", "layer %s: give either norm_batch (%d) or devices "
                       "(%d), not both", nm, o->norm_batch, o->devices);
    if (o->renorm) {
        if (o->type != NB_NORM_BATCH)
            return EINVAL_K("norm.renorm", "layer %s: renorm is defined for batch norm only "
                           "(type %s)", nm, tn);
        if (!(o->renorm_rmax >= 1) || !(o->renorm_dmax >= 0))
            return EINVAL_K("norm.renorm", "layer %s: renorm needs r_max >= 1 and d_max >= 0 "
                           "(got %g, %g)", nm, o->renorm_rmax, o->renorm_dmax);
        if (o->renorm_warmup < 0 || o->renorm_rmax_steps < 0 || o->renorm_dmax_steps < 0)
            return EINVAL_K("norm.renorm_warmup", "layer %s: renorm's auto schedule is not "
                            "resolved (nb_norm_resolve_auto)", nm);
        if (o->renorm_rmax_steps < o->renorm_warmup || o->renorm_dmax_steps < o->renorm_warmup)
            return EINVAL_K("norm.renorm", "layer %s: renorm schedule needs 0 <= warmup (%ld) "
                           "<= rmax_steps (%ld) and <= dmax_steps (%ld)", nm,
                           o->renorm_warmup, o->renorm_rmax_steps,
                           o->renorm_dmax_steps);
        if (!(o->renorm_momentum >= 0 && o->renorm_momentum <= 1))
            return EINVAL_K("norm.renorm_momentum", "layer %s: renorm_momentum must be in [0, 1] "
                           "(got %g)", nm, o->renorm_momentum);
    }
    if (o->noisy && (!(o->noise_mu >= 0) || !(o->noise_sigma >= 1) ||
                     !(o->noise_rmu >= 0) || !(o->noise_rsigma >= 0)))
        return EINVAL_K("norm.noisy", "layer %s: noise needs n_mu >= 0, n_sigma >= 1, "
                       "r_mu >= 0, r_sigma >= 0 (got %g, %g, %g, %g)", nm,
                       o->noise_mu, o->noise_sigma, o->noise_rmu,
                       o->noise_rsigma);
    return NB_OK;
}

/* Checks the options o and that they fit layer l's input (the group
 * count, more than one element per group, more than one value per
 * channel in training); returns a status, with the group count in
 * *groups. */
static int norm_validate(const struct nb_layer *l, const struct nb_norm_opts *o, int *groups,
                         struct nb_error *err)
{
    int rc = check_opts(l, o, err);
    if (rc)
        return rc;

    const char *nm = l->name, *tn = nb_norm_type_name(o->type);
    const int C = l->in.c, HW = l->in.h * l->in.w, mb = l->max_batch;
    int G = 1;
    switch (o->type) {
    case NB_NORM_INSTANCE:
        if (HW == 1)
            return EINVAL_K("norm.type",
                            "layer %s: instance norm needs more than one "
                            "element per channel (input %dx%dx%d has H x W "
                            "= 1); use layer or group norm on (N, C) outputs",
                            nm, C, l->in.h, l->in.w);
        G = C;
        break;
    case NB_NORM_GROUP:
        G = o->groups ? o->groups : nb_norm_default_groups(C);
        if (G < 1 || C % G != 0)
            return EINVAL_K("norm.groups",
                            "layer %s: group norm needs the group count to "
                            "divide the channels (G = %d, C = %d)",
                            nm, G, C);
        break;
    case NB_NORM_NONE:
    case NB_NORM_BATCH:
    case NB_NORM_LAYER:
    case NB_NORM_LP: break;
    case NB_NORM_TYPE_COUNT: NB_ASSERT(!"type refused by check_opts"); break;
    }
    bool bsets = nb_norm_type_over_batch(o->type);
    bool sampled =
        o->type == NB_NORM_LAYER || o->type == NB_NORM_GROUP || o->type == NB_NORM_INSTANCE;
    if (sampled && (C / G) * HW == 1)
        return EINVAL_K(o->type == NB_NORM_GROUP ? "norm.groups" : "norm.type",
                        "layer %s: %s norm over one element per group (C/G = "
                        "%d, H x W = %d) would map every value to beta",
                        nm, tn, C / G, HW);
    if (bsets && !(o->frozen && o->frozen_from == 0)) {
        if ((long)mb * HW == 1)
            return EINVAL_K("train.batch",
                            "layer %s: %s norm needs more than one value per "
                            "channel in training (batch %d x %d x %d = 1)",
                            nm, tn, mb, l->in.h, l->in.w);
        if (!o->sync && o->norm_batch > 0 && (long)o->norm_batch * HW == 1)
            return EINVAL_K("norm.norm_batch",
                            "layer %s: %s norm needs more than one value per "
                            "channel in training (norm batch %d x %d x %d = 1)",
                            nm, tn, o->norm_batch, l->in.h, l->in.w);
        if (!o->sync && o->devices > 1 && (long)(mb / o->devices) * HW <= 1)
            return EINVAL_K("norm.devices",
                            "layer %s: %s norm needs more than one value per "
                            "channel in training (%d devices share a batch of "
                            "%d, parts of %d x %d x %d)",
                            nm, tn, o->devices, mb, mb / o->devices, l->in.h, l->in.w);
    }
    *groups = G;
    return NB_OK;
}

/* Declares l's parameters (gamma and beta with affine) and state (the
 * running statistics of batch and Lp norm, renorm's), their indices
 * into P; returns a status. */
static int norm_declare(struct nb_layer *l, struct norm_priv *P, struct nb_error *err)
{
    const struct nb_norm_opts *o = &P->o;
    const int C = P->C;
    if (o->type != NB_NORM_NONE && o->affine) {
        if ((P->p_gamma = nb_layer_add_param(l, "gamma", C, NB_PARAM_NORM, err)) < 0 ||
            (P->p_beta = nb_layer_add_param(l, "beta", C, NB_PARAM_NORM, err)) < 0)
            return NB_EINVAL;
    }
    if (P->bsets) {
        if ((P->s_mean = nb_layer_add_state(l, "running_mean", C, err)) < 0 ||
            (P->s_var = nb_layer_add_state(
                 l, o->type == NB_NORM_LP ? "running_scale" : "running_var", C, err)) < 0 ||
            (P->s_nbt = nb_layer_add_state(l, "num_batches_tracked", 1, err)) < 0)
            return NB_EINVAL;
        if (o->renorm && ((P->s_rn_mean = nb_layer_add_state(l, "renorm_mean", C, err)) < 0 ||
                          (P->s_rn_std = nb_layer_add_state(l, "renorm_std", C, err)) < 0))
            return NB_EINVAL;
    }
    return NB_OK;
}

/* Allocates P's caches for batches of up to l->max_batch (those its type
 * and options use; ones and zeros filled); returns a status. */
static int norm_allocate(const struct nb_layer *l, struct norm_priv *P, struct nb_error *err)
{
    const struct nb_norm_opts *o = &P->o;
    const int C = P->C, HW = P->HW, mb = l->max_batch;
    const bool bsets = P->bsets;
    size_t planes = (size_t)mb * C, S = P->max_sets;
    bool okay = true;
#define ALLOC_(ptr, count)                                                                         \
    do {                                                                                           \
        (ptr) = zalloc((count), sizeof *(ptr));                                                    \
        okay = okay && (ptr) != NULL;                                                              \
    } while (0)
    if (bsets && (HW > 1 || !P->moments)) {
        ALLOC_(P->pa, planes);
        ALLOC_(P->pb, planes);
    }
    if (o->type != NB_NORM_NONE) {
        ALLOC_(P->smean, S);
        ALLOC_(P->svar, S);
        ALLOC_(P->srstd, S);
        ALLOC_(P->g1, S);
        ALLOC_(P->g2, S);
        ALLOC_(P->cda, C);
        ALLOC_(P->cdb, C);
        ALLOC_(P->coef_a, C);
        ALLOC_(P->coef_mu, C);
        ALLOC_(P->coef_b, C);
        ALLOC_(P->coef_c0, C);
        ALLOC_(P->ones, C);
        ALLOC_(P->zeros, C);
    }
    if (o->type == NB_NORM_LP && P->lp_p == 0)
        ALLOC_(P->sarg, S);
    if (bsets) {
        ALLOC_(P->scnt, S);
        ALLOC_(P->sr, S);
        ALLOC_(P->sd, S);
        ALLOC_(P->pstart, (size_t)P->max_parts + 1);
        ALLOC_(P->tmu, C);
        ALLOC_(P->tv, C);
        ALLOC_(P->ts, C);
        ALLOC_(P->pop_sum, C);
        ALLOC_(P->pop_sum2, C);
        ALLOC_(P->pop_mean_sum, C);
        ALLOC_(P->pop_var_sum, C);
        ALLOC_(P->pop_bvar_sum, C);
        if (o->devices > 1) {
            ALLOC_(P->xsend, (size_t)3 * C);
            ALLOC_(P->xrecv, (size_t)3 * C * (size_t)o->devices);
        }
    }
    if (o->noisy) {
        size_t total = (size_t)mb * P->numel;
        okay = okay && (P->ns = nb_alloc_floats(total)) != NULL;
        okay = okay && (P->dyn = nb_alloc_floats(total)) != NULL;
        ALLOC_(P->nmu, C);
        ALLOC_(P->nsig, C);
    }
#undef ALLOC_
    if (okay && P->ones)
        for (int c = 0; c < C; c++)
            P->ones[c] = 1.0f;
    if (!okay)
        return nb_error_set(err, NB_ENOMEM, NULL, 0,
                            "layer %s: out of memory for the norm caches "
                            "(batch %d, %d x %d x %d)",
                            l->name, mb, C, l->in.h, l->in.w);
    return NB_OK;
}

/* Setup: validate the options, lay out the private state, declare the
 * parameters and state, allocate the caches. */
static int norm_setup(struct nb_layer *l, const void *opts, struct nb_error *err)
{
    struct nb_norm_opts o;
    if (opts)
        o = *(const struct nb_norm_opts *)opts;
    else
        nb_norm_opts_default(&o);
    int G = 1;
    int rc = norm_validate(l, &o, &G, err);
    if (rc)
        return rc;

    const char *nm = l->name;
    const int C = l->in.c, HW = l->in.h * l->in.w, mb = l->max_batch;
    bool bsets = nb_norm_type_over_batch(o.type);
    struct norm_priv *P = zalloc(1, sizeof *P);
    if (!P)
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "layer %s: out of memory", nm);
    l->priv = P;
    P->o = o;
    if (o.momentum_keras) { /* the layer computes in PyTorch's convention */
        P->o.momentum = nb_norm_momentum_from_keras(o.momentum);
        P->o.renorm_momentum = nb_norm_momentum_from_keras(o.renorm_momentum);
        P->o.momentum_keras = false;
    }
    P->o.groups = G;
    P->C = C;
    P->HW = HW;
    P->G = G;
    P->cpg = C / G;
    P->numel = (size_t)C * HW;
    P->bsets = bsets;
    P->moments = o.type != NB_NORM_LP;
    P->lp_p = o.lp == NB_LP_1 ? 1 : o.lp == NB_LP_2 ? 2 : 0;
    P->p_gamma = P->p_beta = -1;
    P->s_mean = P->s_var = P->s_nbt = P->s_rn_mean = P->s_rn_std = -1;
    P->max_parts = 1;
    if (bsets) {
        if (o.devices > 1)
            P->max_parts = o.devices;
        else if (o.norm_batch > 0)
            P->max_parts = (mb + o.norm_batch - 1) / o.norm_batch;
    }
    P->max_sets = bsets ? (size_t)P->max_parts * C : (size_t)mb * G;
    l->out = l->in;
    l->scratch = 0;
    if ((rc = norm_declare(l, P, err)))
        return rc;
    return norm_allocate(l, P, err);
}

static void norm_init(struct nb_layer *l)
{
    struct norm_priv *P = l->priv;
    const int C = P->C;
    for (int c = 0; c < C; c++) {
        if (P->p_gamma >= 0) {
            l->params[P->p_gamma].value[c] = 1.0f;
            l->params[P->p_beta].value[c] = 0.0f;
        }
        if (P->s_mean >= 0) {
            l->state[P->s_mean].value[c] = 0.0f;
            l->state[P->s_var].value[c] = 1.0f;
        }
        if (P->s_rn_mean >= 0) {
            l->state[P->s_rn_mean].value[c] = 0.0f;
            l->state[P->s_rn_std].value[c] = 1.0f;
        }
    }
    if (P->s_nbt >= 0)
        l->state[P->s_nbt].value[0] = 0.0f;
    P->pop_on = false;
}

/* ---- forward ------------------------------------------------------------ */

/* Plane partials of batch sets: pa = plane mean, pb = M2 (moments) or the
 * lp quantity (sum |x|, sum x^2, max |x|). */
static void plane_partials(struct norm_priv *P, const float *x, int n)
{
    const size_t planes = (size_t)n * P->C, HW = (size_t)P->HW;
    if (HW == 1) {
        for (size_t p = 0; p < planes; p++) {
            double v = x[p];
            P->pa[p] = v;
            P->pb[p] = P->moments ? 0.0 : P->lp_p == 2 ? v * v : fabs(v);
        }
        return;
    }
    for (size_t p = 0; p < planes; p++) {
        if (P->moments)
            nb_normk_moments(&P->pa[p], &P->pb[p], x + p * HW, HW);
        else
            nb_normk_lp_partial(&P->pa[p], &P->pb[p], x + p * HW, HW,
                                P->lp_p);
    }
}

/* Batch sets of part k: merge the plane partials of samples [s, e). */
static void part_sets(struct norm_priv *P, int k, int s, int e)
{
    const int C = P->C;
    const double HW = P->HW, np = e - s;
    double *mean = P->smean + (size_t)k * C, *var = P->svar + (size_t)k * C;
    double *cnt = P->scnt + (size_t)k * C;
    for (int c = 0; c < C; c++) {
        mean[c] = 0;
        var[c] = 0;
        cnt[c] = np * HW;
    }
    if (e <= s)
        return;
    for (int n = s; n < e; n++)
        for (int c = 0; c < C; c++)
            mean[c] += P->pa[(size_t)n * C + c];
    for (int c = 0; c < C; c++)
        mean[c] /= np;
    if (P->moments) { /* Chan: M2 = sum_p [M2_p + HW (mean_p - mean)^2] */
        for (int n = s; n < e; n++)
            for (int c = 0; c < C; c++) {
                double d = P->pa[(size_t)n * C + c] - mean[c];
                var[c] += P->pb[(size_t)n * C + c] + HW * d * d;
            }
        for (int c = 0; c < C; c++)
            var[c] /= cnt[c]; /* biased variance */
    } else if (P->lp_p == 0) {
        for (int n = s; n < e; n++)
            for (int c = 0; c < C; c++) {
                double q = P->pb[(size_t)n * C + c];
                var[c] = q > var[c] ? q : var[c];
            }
    } else {
        for (int n = s; n < e; n++)
            for (int c = 0; c < C; c++)
                var[c] += P->pb[(size_t)n * C + c];
    }
}

/* Batch sets of part k for (N, C) data (H*W = 1, moments): mean and
 * biased variance of each feature over samples [s, e), by columns (two
 * passes over the part, contiguous rows). */
static void part_sets_dense(struct norm_priv *P, const float *x, int k, int s,
                            int e)
{
    const int C = P->C;
    const double np = e - s;
    double *mean = P->smean + (size_t)k * C, *var = P->svar + (size_t)k * C;
    double *cnt = P->scnt + (size_t)k * C;
    for (int c = 0; c < C; c++) {
        mean[c] = 0;
        var[c] = 0;
        cnt[c] = np;
    }
    if (e <= s)
        return;
    for (int n = s; n < e; n++)
        nb_normk_col_add(mean, x + (size_t)n * C, C);
    for (int c = 0; c < C; c++)
        mean[c] /= np;
    for (int n = s; n < e; n++)
        nb_normk_col_sqdev(var, x + (size_t)n * C, mean, C);
    for (int c = 0; c < C; c++)
        var[c] /= np;
}

/* 1/sigma (1/D for lp) of set s from its mean/var/quantity. */
static double set_rstd(const struct norm_priv *P, size_t s)
{
    double eps = P->o.eps, v = P->svar[s], m = P->scnt[s];
    if (P->moments)
        return 1.0 / sqrt(v + eps);
    switch (P->o.lp) {
    case NB_LP_1:
        return 1.0 / (v / m + eps);
    case NB_LP_2:
        return 1.0 / sqrt(v / m + eps);
    case NB_LP_INF:
        return 1.0 / (v + eps);
    case NB_LP_COUNT:
        break;
    }
    NB_ASSERT(!"lp refused by check_opts");
    return NAN;
}

/* Running-statistics update with per-channel mean mu, estimate est (the
 * running variance estimate, or the lp scale) and sigma_B (renorm; may be
 * NULL when renorm is off). */
static void running_update(struct norm_priv *P, struct nb_layer *l,
                           const double *mu, const double *est,
                           const double *sig)
{
    float *rm = state_of(l, P->s_mean), *rv = state_of(l, P->s_var);
    float *nbt = state_of(l, P->s_nbt);
    nbt[0] += 1.0f;
    double f = P->o.momentum_cumulative ? 1.0 / (double)nbt[0]
                                        : P->o.momentum;
    for (int c = 0; c < P->C; c++) {
        rm[c] = (float)((1 - f) * rm[c] + f * mu[c]);
        rv[c] = (float)((1 - f) * rv[c] + f * est[c]);
    }
    if (P->o.renorm) {
        double a = P->o.renorm_momentum;
        float *qm = state_of(l, P->s_rn_mean), *qs = state_of(l, P->s_rn_std);
        for (int c = 0; c < P->C; c++) {
            qm[c] = (float)(qm[c] + a * (mu[c] - qm[c]));
            qs[c] = (float)(qs[c] + a * (sig[c] - qs[c]));
        }
    }
}

/* The running estimate of part set s: unbiased or biased variance, or the
 * lp scale D. */
static double set_estimate(const struct norm_priv *P, size_t s)
{
    if (!P->moments)
        return 1.0 / P->srstd[s];
    double v = P->svar[s], m = P->scnt[s];
    /* m = 1 only reaches here in a recomputation (TRAIN asserts m > 1) */
    return P->o.running_var_biased || m <= 1 ? v : v * m / (m - 1.0);
}

/* TRAIN statistics bookkeeping of the final sets: running updates or
 * recompute accumulation. */
static void train_bookkeeping(struct norm_priv *P, struct nb_layer *l,
                              int nparts)
{
    const int C = P->C;
    if (P->pop_on) {
        for (int k = 0; k < nparts; k++) {
            size_t s0 = (size_t)k * C;
            double m = P->scnt[s0];
            if (m <= 0)
                continue;
            P->pop_batches++;
            P->pop_count += m;
            for (int c = 0; c < C; c++) {
                size_t s = s0 + c;
                double mu = P->smean[s];
                P->pop_sum[c] += m * mu;
                if (P->moments)
                    P->pop_sum2[c] += m * (mu * mu + P->svar[s]);
                else if (P->lp_p == 0)
                    P->pop_sum2[c] = P->svar[s] > P->pop_sum2[c]
                                         ? P->svar[s]
                                         : P->pop_sum2[c];
                else
                    P->pop_sum2[c] += P->svar[s];
                P->pop_mean_sum[c] += mu;
                P->pop_var_sum[c] += set_estimate(P, s);
                P->pop_bvar_sum[c] += P->moments ? P->svar[s] : set_estimate(P, s);
            }
        }
        return;
    }
    const double eps = P->o.eps;
    if (nparts > 1 && P->o.ghost_update_per_step) {
        double W = 0;
        for (int c = 0; c < C; c++)
            P->tmu[c] = P->tv[c] = P->ts[c] = 0;
        for (int k = 0; k < nparts; k++) {
            size_t s0 = (size_t)k * C;
            double w = P->scnt[s0];
            if (w <= 0)
                continue;
            W += w;
            for (int c = 0; c < C; c++) {
                P->tmu[c] += w * P->smean[s0 + c];
                P->tv[c] += w * set_estimate(P, s0 + c);
                P->ts[c] += w * P->svar[s0 + c];
            }
        }
        for (int c = 0; c < C; c++) {
            P->tmu[c] /= W;
            P->tv[c] /= W;
            P->ts[c] = sqrt(P->ts[c] / W + eps);
        }
        running_update(P, l, P->tmu, P->tv, P->ts);
        return;
    }
    for (int k = 0; k < nparts; k++) {
        size_t s0 = (size_t)k * C;
        if (P->scnt[s0] <= 0)
            continue;
        for (int c = 0; c < C; c++) {
            P->tv[c] = set_estimate(P, s0 + c);
            P->ts[c] = sqrt(P->svar[s0 + c] + eps);
        }
        running_update(P, l, P->smean + s0, P->tv, P->ts);
    }
}

/* Renorm r, d of the final sets from the moving statistics as they are. */
static void renorm_rd(struct norm_priv *P, struct nb_layer *l, int nparts)
{
    double rmax, dmax;
    nb_norm_renorm_limits(&P->o, l->ctx ? l->ctx->step : 0, &rmax, &dmax);
    const float *qm = state_of(l, P->s_rn_mean), *qs = state_of(l, P->s_rn_std);
    const double fl = sqrt(P->o.eps);
    for (int k = 0; k < nparts; k++)
        for (int c = 0; c < P->C; c++) {
            size_t s = (size_t)k * P->C + c;
            double sig = qs[c] > fl ? qs[c] : fl;
            double sb = sqrt(P->svar[s] + P->o.eps);
            double r = sb / sig, d = (P->smean[s] - qm[c]) / sig;
            r = r < 1.0 / rmax ? 1.0 / rmax : r > rmax ? rmax : r;
            d = d < -dmax ? -dmax : d > dmax ? dmax : d;
            P->sr[s] = r;
            P->sd[s] = d;
        }
}

/* lp inf: flat index of the first element of largest |x| of every set;
 * SIZE_MAX where this process does not hold it (a part of another rank,
 * or a set merged over ranks whose first such element is another's). */
static void lp_argmax(struct norm_priv *P, const float *x, int nparts)
{
    const int C = P->C;
    const size_t HW = P->HW;
    for (int k = 0; k < nparts; k++) {
        int s0 = P->pstart[k], e0 = P->pstart[k + 1];
        for (int c = 0; c < C; c++) {
            size_t s = (size_t)k * C + c;
            P->sarg[s] = SIZE_MAX;
            if (P->comm && norm_lower_rank_has_max(P, P->comm, c, P->svar[s]))
                continue;
            for (int n = s0; n < e0; n++) {
                size_t p = (size_t)n * C + c;
                if (P->pb[p] == P->svar[s]) {
                    P->sarg[s] = p * HW + nb_normk_argabs(x + p * HW, HW,
                                                         (float)P->svar[s]);
                    break;
                }
            }
        }
    }
}

/* y = gamma_c (r (x - mu) rstd + d) + beta_c over batch sets. */
static void apply_bsets(struct norm_priv *P, const struct nb_layer *l,
                        const float *x, float *y, int nparts)
{
    const int C = P->C;
    const size_t HW = P->HW;
    const float *gam = gammas(P, l), *bet = betas(P, l);
    for (int k = 0; k < nparts; k++) {
        for (int c = 0; c < C; c++) {
            size_t s = (size_t)k * C + c;
            double g = gam[c];
            P->coef_a[c] = (float)(g * P->sr[s] * P->srstd[s]);
            P->coef_mu[c] = (float)P->smean[s];
            P->coef_b[c] = (float)(bet[c] + g * P->sd[s]);
        }
        for (int n = P->pstart[k]; n < P->pstart[k + 1]; n++) {
            size_t base = (size_t)n * P->numel;
            if (HW == 1) {
                nb_normk_col_affine(y + base, x + base, P->coef_a, P->coef_mu,
                                    P->coef_b, C);
                continue;
            }
            for (int c = 0; c < C; c++)
                nb_normk_affine(y + base + c * HW, x + base + c * HW,
                                P->coef_a[c], P->coef_mu[c], P->coef_b[c], HW);
        }
    }
}

static void forward_bsets(struct norm_priv *P, struct nb_layer *l,
                          const float *x, float *y, int n, enum nb_mode mode)
{
    const int C = P->C;
    /* a TRAIN forward that accumulates population statistics */
    const bool recomputing = P->pop_on && mode == NB_TRAIN;
    P->fixed = mode == NB_EVAL || (frozen_active(P, l) && !recomputing);
    P->comm = NULL;
    if (P->fixed) {
        for (int c = 0; c < C; c++) {
            eval_stats(P, l, c, &P->smean[c], &P->srstd[c]);
            P->sr[c] = 1;
            P->sd[c] = 0;
        }
        P->nparts = 1;
        P->pstart[0] = 0;
        P->pstart[1] = n;
        apply_bsets(P, l, x, y, 1);
        return;
    }
    /* a slice of a batch split over ranks (the devices): its statistics
     * are one part, and the other ranks' come over the comm */
    const struct nb_comm *cm = l->ctx && mode == NB_TRAIN && !recomputing ? l->ctx->comm : NULL;
    if (!nb_comm_active(cm))
        cm = NULL;
    NB_ASSERT(!cm || cm->size == P->max_parts);
    int nparts = cm ? 1 : part_count(&P->o, n);
    const bool dense = P->HW == 1 && P->moments;
    if (!dense)
        plane_partials(P, x, n);
    for (int k = 0; k < nparts; k++) {
        int s = 0, e = n;
        if (!cm)
            part_range(&P->o, n, k, &s, &e);
        P->pstart[k] = s;
        P->pstart[k + 1] = e;
        if (dense)
            part_sets_dense(P, x, k, s, e);
        else
            part_sets(P, k, s, e);
    }
    if (cm)
        nparts = norm_gather_parts(P, cm, n);
    P->comm = cm && P->o.sync ? cm : NULL;
    if (P->o.sync && nparts > 1) {
        norm_unite_parts(P, nparts);
        nparts = 1;
        P->pstart[0] = 0;
        P->pstart[1] = n;
    }
    P->nparts = nparts;
    for (int k = 0; k < nparts; k++)
        for (int c = 0; c < C; c++) {
            size_t s = (size_t)k * C + c;
            P->srstd[s] = set_rstd(P, s);
            P->sr[s] = 1;
            P->sd[s] = 0;
        }
    if (mode == NB_TRAIN && P->moments && !recomputing)
        for (int k = 0; k < nparts; k++) {
            double m = P->scnt[(size_t)k * C];
            /* callers check with nb_norm_check_batch first */
            NB_ASSERT(m == 0 || m > 1);
        }
    if (P->o.renorm && !recomputing)
        renorm_rd(P, l, nparts);
    if (mode == NB_TRAIN)
        train_bookkeeping(P, l, nparts);
    if (!P->moments && P->lp_p == 0)
        lp_argmax(P, x, nparts);
    apply_bsets(P, l, x, y, nparts);
}

/* layer / group / instance: statistics of each (n, g) over its contiguous
 * run of C/G planes.  Three passes over the batch (all moments, all
 * scales, then the affine pass), like the batch sets: the scales' sqrt and
 * divide latencies overlap, and the passes stream through memory (chunking
 * per sample was slower once the data leaves the caches). */
static void forward_ssets(struct norm_priv *P, struct nb_layer *l,
                          const float *x, float *y, int n)
{
    const int G = P->G, cpg = P->cpg;
    const size_t HW = P->HW, run = (size_t)cpg * HW, sets = (size_t)n * G;
    const double inv_run = 1.0 / (double)run, eps = P->o.eps;
    P->fixed = false;
    for (size_t s = 0; s < sets; s++)
        nb_normk_moments(&P->smean[s], &P->svar[s], x + s * run, run);
    for (size_t s = 0; s < sets; s++)
        P->svar[s] *= inv_run; /* M2 -> biased variance */
    nb_normk_rstd(P->srstd, P->svar, eps, sets);
    const float *gam = gammas(P, l), *bet = betas(P, l);
    for (int i = 0; i < n; i++) {
        for (int g = 0; g < G; g++) {
            const size_t s = (size_t)i * G + g, off = s * run;
            const int c0 = g * cpg;
            const float mu = (float)P->smean[s];
            const double a = P->srstd[s];
            if (HW == 1) { /* (N, C): the group's features are contiguous */
                nb_normk_gain_affine(y + off, x + off, gam + c0, bet + c0,
                                     (float)a, mu, cpg);
                continue;
            }
            for (int j = 0; j < cpg; j++)
                nb_normk_affine(y + off + j * HW, x + off + j * HW,
                                (float)(gam[c0 + j] * a), mu, bet[c0 + j],
                                HW);
        }
    }
}

static void norm_forward(struct nb_layer *l, const float *x, float *y, int n,
                         enum nb_mode mode)
{
    struct norm_priv *P = l->priv;
    NB_ASSERT(P && n >= 1 && n <= l->max_batch);
    NB_ASSERT(mode >= 0 && mode < NB_MODE_COUNT);
    P->n = n;
    P->fixed = false;
    switch (P->o.type) {
    case NB_NORM_NONE:
        if (y != x)
            memcpy(y, x, (size_t)n * P->numel * sizeof *y);
        break;
    case NB_NORM_BATCH:
    case NB_NORM_LP:
        forward_bsets(P, l, x, y, n, mode);
        break;
    case NB_NORM_LAYER:
    case NB_NORM_INSTANCE:
    case NB_NORM_GROUP:
        forward_ssets(P, l, x, y, n);
        break;
    case NB_NORM_TYPE_COUNT:
        NB_ASSERT(!"type refused by check_opts");
        break;
    }
    P->noised = P->o.noisy && mode != NB_EVAL &&
                !(P->pop_on && mode == NB_TRAIN);
    /* EVAL and the recomputation's forwards: no draws; the expected
     * noise y <- E[s] y (E[m] = 0) with noise_eval_mean */
    P->escaled = P->o.noisy && !P->noised && P->o.noise_eval_mean;
    if (P->noised) {
        NB_ASSERT(l->ctx);
        gsl_rng *r = mode == NB_TRAIN ? l->ctx->rng_noise : l->ctx->rng_probe;
        NB_ASSERT(r);
        const struct nb_ctx *cx = l->ctx;
        bool part = cx->part_total > 0;
        NB_ASSERT(!part || (cx->part_start >= 0 && cx->part_start + n <= cx->part_total));
        norm_apply_noise(P, r, y, n, part ? cx->part_start : 0, part ? cx->part_total : n);
    } else if (P->escaled) {
        norm_scale_noise_mean(P, y, n);
    }
}

/* ---- backward ----------------------------------------------------------- */

/* Per-plane sums of dy and dy*(x - mu_S) into pa/pb; channel sums of
 * dgamma/dbeta; set sums G1/G2 (non-fixed). setof(n, c) gives the set. */
static void bwd_partials_plane(struct norm_priv *P, const struct nb_layer *l,
                               const float *x, const float *dy, size_t p,
                               int c, size_t s)
{
    const size_t HW = P->HW;
    double sdy, sdyx;
    float mu = (float)P->smean[s];
    if (HW == 1) {
        sdy = dy[p];
        sdyx = (double)dy[p] * ((double)x[p] - (double)mu);
    } else {
        nb_normk_bwd_sums(&sdy, &sdyx, dy + p * HW, x + p * HW, mu, HW);
    }
    double xh = P->srstd[s] * sdyx; /* sum dy * xhat over the plane */
    /* renorm: dL/dxhat = gamma r dy, dgamma = sum dy (r xhat + d) */
    double r = P->o.renorm ? P->sr[s] : 1.0, d = P->o.renorm ? P->sd[s] : 0.0;
    P->cdb[c] += sdy;
    P->cda[c] += r * xh + d * sdy;
    if (!P->fixed) {
        double gr = (double)gamma_of(P, l, c) * r;
        P->g1[s] += gr * sdy;
        P->g2[s] += gr * xh;
    }
}

/* dx coefficients of plane (c, set s): dx = A dy + B (x - mu) + C0, and E
 * (times sign(x), lp 1). */
static void bwd_coeffs(const struct norm_priv *P, const struct nb_layer *l,
                       int c, size_t s, float *A, float *B, float *C0,
                       float *E)
{
    double rstd = P->srstd[s], g = gamma_of(P, l, c);
    double m = P->scnt[s];
    *A = (float)(g * P->sr[s] * rstd);
    *B = *C0 = *E = 0;
    if (P->fixed)
        return;
    double G1 = P->g1[s], G2 = P->g2[s];
    *C0 = (float)(-rstd * G1 / m);
    if (P->moments) {
        *B = (float)(-rstd * rstd * G2 / m);
    } else if (P->lp_p == 2) { /* dD/dx_i = x_i / (m D) */
        double b = -rstd * rstd * G2 / m;
        *B = (float)b;
        *C0 = (float)(-rstd * G1 / m + b * (double)(float)P->smean[s]);
    } else if (P->lp_p == 1) { /* dD/dx_i = sign(x_i) / m */
        *E = (float)(-rstd * G2 / m);
    }
}

static void backward_bsets(struct norm_priv *P, const struct nb_layer *l,
                           const float *x, const float *dy, float *dx)
{
    const int C = P->C, nparts = P->nparts;
    const size_t HW = P->HW;
    for (int k = 0; k < nparts; k++) {
        for (int c = 0; c < C; c++)
            P->g1[(size_t)k * C + c] = P->g2[(size_t)k * C + c] = 0;
        if (HW > 1) {
            for (int n = P->pstart[k]; n < P->pstart[k + 1]; n++)
                for (int c = 0; c < C; c++)
                    bwd_partials_plane(P, l, x, dy, (size_t)n * C + c, c,
                                       (size_t)k * C + c);
            continue;
        }
        /* (N, C): column sums of dy and dy (x - mu), then per feature */
        double *sdy = P->tmu, *sdyx = P->tv;
        for (int c = 0; c < C; c++) {
            sdy[c] = sdyx[c] = 0;
            P->coef_mu[c] = (float)P->smean[(size_t)k * C + c];
        }
        for (int n = P->pstart[k]; n < P->pstart[k + 1]; n++)
            nb_normk_col_bwd(sdy, sdyx, dy + (size_t)n * C, x + (size_t)n * C,
                             P->coef_mu, C);
        const float *gam = gammas(P, l);
        for (int c = 0; c < C; c++) {
            size_t s = (size_t)k * C + c;
            double xh = P->srstd[s] * sdyx[c];
            double r = P->o.renorm ? P->sr[s] : 1.0;
            double d = P->o.renorm ? P->sd[s] : 0.0;
            P->cdb[c] += sdy[c];
            P->cda[c] += r * xh + d * sdy[c];
            if (!P->fixed) {
                P->g1[s] = gam[c] * r * sdy[c];
                P->g2[s] = gam[c] * r * xh;
            }
        }
    }
    if (!dx)
        return;
    if (P->comm) /* sync over ranks: the sums of the whole batch */
        norm_sum_backward(P, P->comm);
    for (int k = 0; k < nparts; k++) {
        /* lp 1 (not fixed) has B = 0 and a sign term: its E takes B's slot */
        const bool sign = !P->fixed && !P->moments && P->lp_p == 1;
        for (int c = 0; c < C; c++) {
            float E;
            bwd_coeffs(P, l, c, (size_t)k * C + c, &P->coef_a[c],
                       &P->coef_b[c], &P->coef_c0[c], &E);
            P->coef_mu[c] = (float)P->smean[(size_t)k * C + c];
            if (sign)
                P->coef_b[c] = E;
        }
        for (int n = P->pstart[k]; n < P->pstart[k + 1]; n++) {
            size_t base = (size_t)n * P->numel;
            if (sign) {
                for (int c = 0; c < C; c++)
                    nb_normk_bwd_dx_sign(dx + base + c * HW, dy + base + c * HW,
                                         x + base + c * HW, P->coef_a[c],
                                         P->coef_c0[c], P->coef_b[c], HW);
            } else if (HW == 1) {
                nb_normk_col_dx(dx + base, dy + base, x + base, P->coef_a,
                                P->coef_b, P->coef_mu, P->coef_c0, C);
            } else {
                for (int c = 0; c < C; c++)
                    nb_normk_bwd_dx(dx + base + c * HW, dy + base + c * HW,
                                    x + base + c * HW, P->coef_a[c],
                                    P->coef_b[c], P->coef_mu[c], P->coef_c0[c],
                                    HW);
            }
        }
        if (!P->fixed && !P->moments && P->lp_p == 0) /* lp inf: the max */
            for (int c = 0; c < C; c++) {
                size_t s = (size_t)k * C + c, i = P->sarg[s];
                if (i == SIZE_MAX) /* another rank holds it */
                    continue;
                float sg = x[i] > 0 ? 1.0f : x[i] < 0 ? -1.0f : 0.0f;
                dx[i] += (float)(-P->srstd[s] * P->g2[s]) * sg;
            }
    }
}

/* Three passes like forward_ssets: plane partial sums, the per-set
 * coefficients, then the dx pass.  Set s covers channels
 * [c0, c0 + cpg) of sample s / G, contiguous at x + s * cpg * HW. */
static void backward_ssets(struct norm_priv *P, const struct nb_layer *l,
                           const float *x, const float *dy, float *dx, int n)
{
    const int G = P->G, cpg = P->cpg;
    const size_t HW = P->HW, run = (size_t)cpg * HW;
    const double inv_m = 1.0 / ((double)run);
    const float *gam = gammas(P, l);
    for (int i = 0; i < n; i++) {
        for (int g = 0; g < G; g++) {
            const size_t s = (size_t)i * G + g;
            const int c0 = g * cpg;
            P->g1[s] = P->g2[s] = 0;
            if (HW > 1) {
                for (int j = 0; j < cpg; j++)
                    bwd_partials_plane(P, l, x, dy, s * cpg + j, c0 + j, s);
                continue;
            }
            /* (N, C): one element per channel */
            nb_normk_gain_bwd(P->cdb + c0, P->cda + c0, &P->g1[s], &P->g2[s],
                              dy + s * run, x + s * run, gam + c0,
                              (float)P->smean[s], P->srstd[s], cpg);
        }
    }
    if (!dx)
        return;
    /* dx = gamma_c rstd dy + B (x - mu) + C0, B and C0 per set */
    for (int i = 0; i < n; i++) {
        for (int g = 0; g < G; g++) {
            const size_t s = (size_t)i * G + g, off = s * run;
            const int c0 = g * cpg;
            const double rstd = P->srstd[s];
            const float C0 = (float)(-rstd * P->g1[s] * inv_m);
            const float B = (float)(-rstd * rstd * P->g2[s] * inv_m);
            const float mu = (float)P->smean[s];
            if (HW == 1) {
                nb_normk_gain_dx(dx + off, dy + off, x + off, gam + c0,
                                 (float)rstd, B, mu, C0, cpg);
                continue;
            }
            for (int j = 0; j < cpg; j++)
                nb_normk_bwd_dx(dx + off + j * HW, dy + off + j * HW,
                                x + off + j * HW, (float)(gam[c0 + j] * rstd),
                                B, mu, C0, HW);
        }
    }
}

static void norm_backward(struct nb_layer *l, const float *x, const float *y,
                          const float *dy, float *dx, int n)
{
    NB_UNUSED(y);
    struct norm_priv *P = l->priv;
    NB_ASSERT(P && n == P->n);
    size_t total = (size_t)n * P->numel;
    if (P->noised) {
        nb_normk_mul(P->dyn, dy, P->ns, total);
        dy = P->dyn;
    } else if (P->escaled) {
        float es = (float)noise_mean_scale(&P->o);
        for (size_t i = 0; i < total; i++)
            P->dyn[i] = es * dy[i];
        dy = P->dyn;
    }
    if (P->o.type == NB_NORM_NONE) {
        if (dx)
            memcpy(dx, dy, total * sizeof *dx);
        return;
    }
    bool grads = P->p_gamma >= 0;
    if (!dx && !grads)
        return;
    for (int c = 0; c < P->C; c++)
        P->cda[c] = P->cdb[c] = 0;
    if (P->bsets)
        backward_bsets(P, l, x, dy, dx);
    else
        backward_ssets(P, l, x, dy, dx, n);
    if (grads) {
        float *dg = l->params[P->p_gamma].grad, *db = l->params[P->p_beta].grad;
        for (int c = 0; c < P->C; c++) {
            dg[c] += (float)P->cda[c];
            db[c] += (float)P->cdb[c];
        }
    }
}

const struct nb_layer_ops nb_norm_ops = {
    .kind = "norm",
    .setup = norm_setup,
    .init = norm_init,
    .forward = norm_forward,
    .backward = norm_backward,
    .destroy = norm_destroy,
    .rforward = norm_rforward,
    .rbackward = norm_rbackward,
    .rsupports = norm_rsupports,
};

