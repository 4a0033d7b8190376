/* src/layers/layer.h - the one interface every layer kind implements.
 *
 * A layer kind is a constant type table (struct nb_layer_ops).  Its life:
 *   1. the caller sets l->in (per-sample input shape), l->max_batch and
 *      l->name, then calls ops->setup(l, opts, err): fallible; it reads the
 *      kind-specific options, sets l->out, declares its parameters
 *      (nb_layer_add_param), non-trainable state (nb_layer_add_state) and
 *      the shared scratch it needs (l->scratch), and allocates its caches
 *      (sized for max_batch) behind l->priv;
 *   2. the owner allocates the arenas and binds param/state views
 *      (value/grad pointers) and l->ctx, initialises WEIGHT/BIAS params,
 *      then calls ops->init (if any) for the rest (gamma = 1, running
 *      variance = 1, ...);
 *   3. forward/backward run many times: infallible, no allocation, they
 *      only NB_ASSERT;
 *   4. ops->destroy frees l->priv only (views never free).
 *
 * Exact Hessian-vector products (Pearlmutter 1994, "Fast exact
 * multiplication by the Hessian"): R{f} = d/dt f(theta + t v) at t = 0 for
 * a direction v on the parameters.  A kind that implements the optional
 * pair rforward/rbackward propagates R{x} forward (R{y} = J_x R{x} +
 * J_theta v) and R{dL/dy} backward (R{dL/dx} and R{dL/dtheta}, the
 * latter being H v for the whole model), reading the caches of the
 * forward and the dy of the backward of the same samples; the owner
 * (model.h: nb_model_hvp) binds each parameter's direction (rdir) and
 * R-gradient (rgrad) views and ctx->rwork before the passes.  Storage is
 * float as in forward/backward; sums accumulate in double.
 *
 * Data layout is NCHW float32: a batch of n samples of shape l->in is
 * n * nb_shape_numel(&l->in) contiguous floats.  x, y, dy and dx never
 * alias (backward may need the original x and y).  ctx->scratch is shared
 * by all layers and does not survive from one call to the next: any
 * forward or backward may overwrite it.  ctx->labels / ctx->targets stay
 * bound from a forward to its backward. */
#ifndef NB_LAYERS_LAYER_H
#define NB_LAYERS_LAYER_H

#include <stdbool.h>
#include <stddef.h>

#include <gsl/gsl_rng.h>

#include "core/arena.h"
#include "core/comm.h"
#include "core/error.h"

/* Forward modes.
 *  TRAIN: batch statistics, running statistics and counters updated,
 *         dropout/noise drawn from the training streams.
 *  EVAL:  running (population) statistics, no dropout, no noise.
 *  PROBE: batch statistics as in TRAIN, but nothing is updated: no running
 *         statistics, no counters, no draws from training's RNG streams
 *         (stochastic layers draw from the probe stream instead). */
enum nb_mode { NB_TRAIN = 0, NB_EVAL, NB_PROBE, NB_MODE_COUNT };

const char *nb_mode_name(enum nb_mode m);

/* Parameter flags. */
enum {
    NB_PARAM_WEIGHT = 1u << 0, /* conv/linear weight: model's init scheme */
    NB_PARAM_BIAS = 1u << 1,   /* conv/linear bias: initialised to 0 */
    NB_PARAM_NORM = 1u << 2,   /* norm gain/shift: set by the layer's init */
};

struct nb_param {
    const char *name;   /* "weight", "bias", "gamma", "beta" */
    size_t count;
    size_t offset;      /* into the parameter and gradient arenas */
    unsigned flags;
    int fan_in, fan_out; /* for NB_PARAM_WEIGHT initialisation */
    int filters;        /* rows ("filters": output units) for WEIGHT */
    float *value;       /* bound by the owner */
    float *grad;        /* bound by the owner; backward ADDS into it */
    /* Bound by the owner of an R-pass (nb_model_hvp), NULL otherwise: the
     * direction v of this block, and R{dL/dtheta} (rbackward ADDS). */
    const float *rdir;
    float *rgrad;
};

struct nb_state {
    const char *name;   /* "running_mean", "running_var", "count", ... */
    size_t count;
    size_t offset;      /* into the state arena */
    float *value;       /* bound by the owner */
};

/* Run-time context shared by the layers of one model (owned by it). */
struct nb_ctx {
    gsl_rng *rng_dropout; /* TRAIN-mode dropout masks */
    gsl_rng *rng_noise;   /* TRAIN-mode noisy-BN draws */
    gsl_rng *rng_probe;   /* PROBE-mode draws of stochastic layers */
    long step;            /* optimizer steps completed before this forward */
    const int *labels;    /* (n) class labels, for classification losses */
    const float *targets; /* (n, numel) regression targets, for MSE */
    float *scratch;       /* shared workspace, see nb_layer.scratch */
    size_t scratch_count;
    /* Data parallelism (core/comm.h).  Set by the owner around the TRAIN
     * forward and backward of a step split over processes, cleared after
     * it: this process holds samples [part_start, part_start + n) of a
     * batch of part_total; batch-statistics norms exchange theirs over
     * comm, and stochastic layers draw for the whole batch (as one process
     * would) and keep their slice.  NULL and 0 otherwise: the n samples of
     * a forward are the whole batch. */
    const struct nb_comm *comm;
    int part_start, part_total;
    /* Workspace of the R-passes (bound with the parameters' rdir/rgrad):
     * rwork_count >= max_batch x the largest activation of the model, free
     * for any rforward/rbackward to overwrite. */
    float *rwork;
    size_t rwork_count;
    /* A profile (normbench bench): when not NULL, conv layers add the
     * seconds of their GEMMs here, so the rest of their time is im2col or
     * the Winograd transforms. */
    double *gemm_seconds;
};

#define NB_MAX_PARAMS 4
#define NB_MAX_STATE 8

struct nb_layer_ops;

struct nb_layer {
    const struct nb_layer_ops *ops;
    char name[32];           /* e.g. "conv2", "norm2" */
    struct nb_shape in, out; /* per-sample shapes */
    int max_batch;
    struct nb_param params[NB_MAX_PARAMS];
    int n_params;
    struct nb_state state[NB_MAX_STATE];
    int n_state;
    size_t scratch;          /* floats of ctx->scratch forward/backward use */
    /* Second input (residual add): shape set before setup; the buffers
     * are bound by the owner before each forward/backward.  backward
     * OVERWRITES dx2. */
    struct nb_shape in2;
    const float *x2;
    float *dx2;
    /* R{x2} and R{dL/dx2} of the R-passes, bound like x2 and dx2;
     * rbackward OVERWRITES rdx2. */
    const float *rx2;
    float *rdx2;
    struct nb_ctx *ctx;      /* bound by the owner */
    void *priv;              /* kind-specific state and caches */
};

struct nb_layer_ops {
    const char *kind; /* "linear", "conv2d", "norm", ... */
    /* See the life cycle above.  opts points to the kind's options struct
     * (may be NULL for kinds without options).  Returns 0 or a negative
     * status with err filled. */
    int (*setup)(struct nb_layer *l, const void *opts, struct nb_error *err);
    /* After binding: initialise non-WEIGHT/BIAS params and state.  May be
     * NULL. */
    void (*init)(struct nb_layer *l);
    /* y = f(x) for n <= max_batch samples; caches what backward needs. */
    void (*forward)(struct nb_layer *l, const float *x, float *y, int n,
                    enum nb_mode mode);
    /* Given x, y and dy of the most recent forward (same n, same mode),
     * OVERWRITES dx (skipped when dx is NULL) and ADDS into every
     * parameter gradient. */
    void (*backward)(struct nb_layer *l, const float *x, const float *y,
                     const float *dy, float *dx, int n);
    /* Frees l->priv; safe after a failed setup. */
    void (*destroy)(struct nb_layer *l);
    /* ---- the R-operator (see the top of this file); both NULL or both
     * set.  They run after a forward (same n, same mode, whose caches
     * they read) and a backward of it (that gave dy), at the same
     * parameters, and the R-values of the layers before them.
     * rforward: from rx = R{x} (n, in) (and l->rx2), OVERWRITES
     *   ry = R{y} (n, out) (a loss: R{L_n}).
     * rbackward: from dy (the backward's dL/dy) and rdy = R{dL/dy},
     *   OVERWRITES rdx = R{dL/dx} (skipped when NULL; and l->rdx2) and
     *   ADDS R{dL/dtheta} into every parameter's rgrad. */
    void (*rforward)(struct nb_layer *l, const float *x, const float *y,
                     const float *rx, float *ry, int n);
    void (*rbackward)(struct nb_layer *l, const float *x, const float *y,
                      const float *rx, const float *dy, const float *rdy,
                      float *rdx, int n);
    /* Whether the pair is exact after a forward in `mode` (its
     * statistics, its options); NULL: in every mode. */
    bool (*rsupports)(const struct nb_layer *l, enum nb_mode mode);
    /* The pair takes rx = NULL for R{x} = 0 (the model's input, which no
     * direction moves) and skips the terms it would feed, rdx then being
     * NULL too: the kinds a network starts with (linear, conv2d), whose
     * R-passes then cost what a forward and a backward do.  Others get a
     * buffer of zeros. */
    bool rx_null_ok;
};

/* Declares a parameter block; returns its index in l->params, or -1 (with
 * err filled) when the table is full. */
int nb_layer_add_param(struct nb_layer *l, const char *name, size_t count,
                       unsigned flags, struct nb_error *err);

/* Declares a state block; returns its index or -1. */
int nb_layer_add_state(struct nb_layer *l, const char *name, size_t count,
                       struct nb_error *err);

/* Convenience for owners: runs setup after filling in/max_batch/name. */
int nb_layer_setup(struct nb_layer *l, const struct nb_layer_ops *ops,
                   const char *name, const struct nb_shape *in, int max_batch,
                   const void *opts, struct nb_error *err);

/* Calls destroy (if set up) and zeroes l. */
void nb_layer_destroy(struct nb_layer *l);

/* Whether l has exact R-operators after a forward in mode. */
bool nb_layer_rsupports(const struct nb_layer *l, enum nb_mode mode);

/* rbackward of a kind without parameters whose Jacobian is constant
 * around x, given the forward's caches (relu's mask, max-pool's argmax,
 * dropout's mask, flatten, global average pooling): then R{dL/dx} =
 * J^T R{dL/dy} is its own backward applied to rdy. */
void nb_layer_rbackward_adjoint(struct nb_layer *l, const float *x,
                                const float *y, const float *rx,
                                const float *dy, const float *rdy,
                                float *rdx, int n);

/* ---- the kinds of the core (norm.h declares the normalization family) */

struct nb_linear_opts {
    int out;   /* output features */
    bool bias;
};
/* How a convolution computes: auto (Winograd F(2x2, 3x3) for 3x3,
 * stride-1, pad-1 convolutions with 8 or more input channels, im2col +
 * sgemm otherwise), im2col + sgemm, or Winograd (3x3, stride 1, pad 1
 * only; setup fails otherwise).  The two round differently, so the choice
 * is part of a run's arithmetic ([model] conv_algo). */
enum nb_conv_algo { NB_CONV_AUTO = 0, NB_CONV_IM2COL, NB_CONV_WINOGRAD, NB_CONV_ALGO_COUNT };
/* "auto", "im2col", "winograd" by enumerator, NULL-terminated (the config
 * key model.conv_algo takes its values from it). */
extern const char *const nb_conv_algo_names[];

struct nb_conv2d_opts {
    int out_c, k, stride, pad;
    bool bias;
    enum nb_conv_algo algo;
};
struct nb_pool_opts {
    int k, stride; /* max-pool window and stride */
};
struct nb_dropout_opts {
    float p; /* drop probability; inverted dropout scales by 1/(1-p) */
};

extern const struct nb_layer_ops nb_linear_ops;   /* (C,1,1)->(out,1,1); flattens */
extern const struct nb_layer_ops nb_conv2d_ops;   /* im2col + sgemm */
extern const struct nb_layer_ops nb_maxpool_ops;
extern const struct nb_layer_ops nb_gap_ops;      /* global average pool */
extern const struct nb_layer_ops nb_relu_ops;
extern const struct nb_layer_ops nb_sigmoid_ops;
extern const struct nb_layer_ops nb_tanh_ops;
extern const struct nb_layer_ops nb_dropout_ops;
extern const struct nb_layer_ops nb_flatten_ops;
/* The drop probability p of a dropout layer (its setup's option); 0 for a
 * layer of any other kind. */
double nb_dropout_rate(const struct nb_layer *l);
/* Residual add y = x + shortcut(x2).  When in2 differs from in (stride-2
 * stage transition), the shortcut is "option A" of He et al.: spatial
 * subsampling by in2.h/in.h and zero-padding of the extra channels. */
extern const struct nb_layer_ops nb_add_ops;
/* Losses: input read as D = C*H*W values per sample; output is the
 * per-sample loss, shape (1,1,1); the owner takes the mean and passes
 * dy = 1/n.  Softmax cross-entropy reads ctx->labels (n ints in [0, D)):
 * L_n = logsumexp(x_n) - x_n[label_n] (stable), dx = dy_n (softmax - onehot).
 * MSE reads ctx->targets (n, D): L_n = (1/D) sum_k (x_n[k] - t_n[k])^2, the
 * mean over the sample's values (no 0.5), dx = dy_n * 2 (x - t) / D; so the
 * batch mean equals PyTorch's MSELoss(reduction='mean'). */
extern const struct nb_layer_ops nb_xent_ops;
extern const struct nb_layer_ops nb_mse_ops;

#endif
