/* src/probe/probe.h - measurements of the training run that never change
 * it: Santurkar's loss-landscape probe and ICS, activation and gradient
 * statistics, Hessian curvature (PyHessian), filter-normalized loss
 * slices (Li et al.), evaluation statistics, the dropout/BN variance
 * shift (Li et al. 2019).  See ../shared/claims.md 1.a-1.e, 5.3, 5.4,
 * 5.5, 7.6.
 *
 * Life of a run:
 *
 *   struct nb_probe p;
 *   nb_probe_init(&p, &opts, model, seed, train, eval_set, &err);  // or
 *   nb_probe_init_desc(&p, &opts, &spec.model, spec.batch, ...);   // before nb_train
 *   nb_probe_set_sink(&p, &sink);            // probes.csv rows, slice.csv
 *   ... in the training hook (after backward, before the update):
 *   nb_probe_step(&p, m, x, y, t, n, step, lr);
 *   ... after the last update, with the final model:
 *   nb_probe_finish(&p, m, steps);           // end-of-run Hessian, slices
 *   nb_probe_cost_report(&p, stderr, run_seconds);
 *   nb_probe_free(&p);
 *
 * Every buffer is allocated by init; a probe call allocates nothing.
 *
 * The guarantee (must): a probe call leaves training exactly as it found
 * it.  It saves the parameter, gradient, optimizer and state arenas and
 * restores them bit for bit; it runs only NB_PROBE and NB_EVAL forwards
 * (and, for slice_recompute_bn, the TRAIN forwards of
 * nb_norm_recompute_begin/end, which update nothing but the running
 * statistics it restores); it never draws from the model's streams: for
 * the duration of a call m->ctx.rng_probe (and, during a recomputation,
 * rng_dropout / rng_noise) point at a generator of the probe module, and
 * are put back afterwards.  So with probes on and off every training
 * metric is bit-identical (tests/t_probe.c checks it, with batch norm,
 * dropout, noisy BN and precise BN).  What a call does overwrite: the
 * model's activations, their gradients and the layers' forward caches,
 * which the training loop does not read between the hook and the next
 * forward.
 *
 * Common random numbers: all forwards of one probe call that draw random
 * numbers (PROBE-mode dropout and noisy BN) restart a private generator
 * from the same seed, so that within a call the loss is one deterministic
 * function of the parameters (the same dropout mask at every eta, at
 * theta + h v and theta - h v, ...).  The seed of each call comes from the
 * probe stream nb_rng_alloc(seed, NB_STREAM_PROBE), which also gives the
 * random directions (power iteration start, Rademacher vectors, slice
 * directions).
 *
 * probes.csv: one row per (step, probe, layer, param, stat), columns
 *
 *   step        optimizer updates done before the probe (the hook's step;
 *               nb_probe_finish's steps at the end of the run)
 *   probe       landscape | ics | dist | gradstats | hessian | slice |
 *               evalstats | varshift | fold
 *   layer       layer name ("conv3", "norm2", "linear1"); empty when the
 *               row is about the whole model
 *   layer_index index of that layer in the model (0-based), -1 if none
 *   param       name of the row's parameter: "eta" (landscape, per step
 *               size), "lr" (ics), "in" / "out" (dist: the input or the
 *               output of the layer), "samples" (hessian, slice),
 *               evalstats' estimators, "measured" / "predicted"
 *               (varshift); empty when none
 *   param_value numeric value of param (eta, lr, sample count); NaN
 *               (written as an empty field) when param is not a number
 *   stat        the quantity (below)
 *   value       its value (NaN/inf when the probe saw a diverged loss)
 *   bn_mode     the forward mode the numbers come from: train (read off
 *               the training forward/backward of this step), probe (batch
 *               statistics, nothing updated), eval (running statistics),
 *               recomputed (eval after recomputing the population
 *               statistics at that point)
 *
 * stats by probe (every probe also writes a row "seconds": the wall time
 * of that call of that probe, with layer and param empty; the reference
 * gradient grad L(w) that landscape and ics share - one PROBE forward and
 * backward, needed only with dropout, noisy BN or renorm, else the
 * training gradient itself - is charged to landscape, or to ics when
 * landscape is not due):
 *  landscape (bn_mode probe; claims 1.a-1.c), on the training batch,
 *    g = the training gradient of this step (the direction), grad L in
 *    PROBE mode with the call's draws (= g without stochastic layers):
 *    per eta (param eta = multiplier x lr, the absolute step):
 *      loss         L(w - eta g)
 *      grad_change  ||grad L(w - eta g) - grad L(w)||_2
 *      beta         grad_change / (eta ||g||_2)
 *    per call: loss0 (L(w)), grad_norm (||g||_2), loss_min, loss_max,
 *      grad_change_min, grad_change_max, beta_eff (max over eta of beta)
 *  ics (bn_mode probe; claims 1.d), per conv/linear layer, param lr:
 *      l2 (||G - G'||_2), cos (<G, G'> / (||G|| ||G'||)),
 *      grad_norm (||G||), grad_norm_shifted (||G'||), where G is the
 *      gradient of the layer's weight and G' the same gradient on the same
 *      batch after every earlier layer's parameters took the plain SGD
 *      step w - lr g (the first layer has G' = G: l2 0, cos 1).
 *  dist (bn_mode train; claims 1.e, Ioffe Fig. 1), over all elements of a
 *    tensor of the training forward of this step: for each norm layer its
 *    input (param in, pre-norm) and output (param out, post-norm); in a
 *    model without norm layers the output (param out) of each conv/linear
 *    (the pre-activation).  So the input of the k-th hidden nonlinearity
 *    is norm K's output with norms (placement pre), linear/conv K's
 *    output without.  With dist_unit = k >= 0, only unit (channel) k of
 *    each tensor, over the batch and its positions (param_value = k;
 *    tensors with k or fewer units write no rows); else every element
 *    (param_value empty).  mean, var (population), p15, p50, p85
 *    (percentiles with linear interpolation, numpy's default),
 *    p15_drift, p50_drift, p85_drift = |the percentile - the same
 *    percentile at the run's first dist call| (0 at that call: how far the
 *    distribution has moved since the start, never cancelling between
 *    seeds that move in opposite directions), and from the second call on
 *    dmean = |mean - mean at the previous dist call|, dvar likewise, and
 *    per channel (unit): cdmean = the mean over the channels c of
 *    |mean_c - mean_c at the previous call|, with mean_c over the samples
 *    and the H x W positions (Santurkar's convention for conv; a (N, C)
 *    tensor's features over the samples), cdvar likewise for the
 *    population variance var_c (Santurkar Fig. 8's per-step changes when
 *    dist_every = 1; a shift of one channel that the whole-tensor dmean
 *    averages away shows here); with dist_unit = k, over channel k alone.
 *  gradstats (bn_mode train), per layer with parameters: grad_norm and
 *    weight_norm over all its parameters; layer empty: grad_norm of the
 *    whole model.  Runs at the dist steps (dist_every).
 *  hessian (bn_mode eval or probe; claims 5.5), param samples = number of
 *    training samples used: loss; lambda_max (power iteration),
 *    lambda_iters, lambda_converged (1/0: the relative change fell below
 *    tol), lambda_residual (||H v - lambda v|| / |lambda| at the last
 *    iterate: how far it is from an eigenpair); trace (Hutchinson,
 *    Rademacher), trace_iters (vectors used, k), trace_converged,
 *    trace_stderr (sd / sqrt(k) of the k values z^T H z), trace_ci_lo,
 *    trace_ci_hi (trace -+ t_{0.975, k-1} trace_stderr: a 95 % interval,
 *    NaN for k = 1); hvp_exact (1: Hessian-vector products by the exact
 *    R-operator, model.h nb_model_hvp; 0: by central differences of the
 *    gradient), fd_step (h of the central differences
 *    H v = (g(w + h v) - g(w - h v)) / 2h, |v| = 1; NaN when exact).
 *  slice (bn_mode eval or recomputed; claims 5.4), param samples: dim,
 *    points, range, index (the gnuplot index of its block in slice.csv),
 *    loss_center (at a = b = 0), loss_min, loss_max; curvature: the
 *    second difference at the centre along d1 (b = 0),
 *    (L(-h) - 2 L(0) + L(h)) / h^2 with h the grid spacing
 *    2 range / (points - 1), divided by L(0) (relative to the loss
 *    level), NaN for an even number of points (no grid point at 0) or
 *    L(0) <= 0; curvature_b (2-D slices): the same along d2 (a = 0).
 *  evalstats (bn_mode eval): evalstats.c's header.
 *  varshift (bn_mode eval; claims 5.3, Li et al. 2019), per norm layer
 *    with population statistics (nb_norm_eval_moments: batch norm, not
 *    lp, layer, group, instance), over the first varshift_samples test
 *    samples (all when fewer) in EVAL mode, as the network is used at
 *    test time (no dropout, every norm with its running statistics): for
 *    unit (channel) j of the layer's input, c_j and v_j its mean and its
 *    unbiased variance there (over samples x H x W), r_j the variance
 *    the layer normalizes with in EVAL (running_var: what training saw),
 *    q the keep probability 1 - p of a dropout directly before the
 *    layer (1 without one).  Every ratio is Var_train / Var_test (> 1
 *    when training saw the larger variance; claims.md 5.3's
 *    Delta(p) = Var_test / Var_train is its inverse), per unit, over the
 *    units with v_j > 0:
 *      param measured:  ratio = the mean over units of r_j / v_j,
 *                       ratio_median = their median;
 *      param predicted: ratio, ratio_median of the formula for dropout
 *                       directly before the norm,
 *                       ((c_j^2 + v_j) / q - c_j^2) / v_j (1 when q = 1);
 *      no param:        keep (q), c2v (the mean over units of
 *                       c_j^2 / v_j: the formula is 1/q + (1/q - 1) c2v
 *                       averaged), units (those averaged);
 *    layer empty: samples (test samples used).  The formula assumes the
 *    dropout's input is distributed in training as at test; a dropout or
 *    batch norm upstream changes that (the shift accumulates), so below
 *    the first norm the measured ratio may depart from the prediction.
 *  fold (bn_mode eval; claims 6.5, 8 row 23), at the end of training
 *    only, param samples = test samples compared and timed (the first
 *    fold_samples): every norm layer folded into the conv or linear
 *    layer before it (model.h nb_model_fold, as `normbench fold`):
 *    layers_folded, max_abs_logit_diff (the largest |logit folded -
 *    logit unfolded| over the samples, EVAL), predictions_differ
 *    (samples whose argmax differs), seconds_unfolded, seconds_folded
 *    (the median over fold_rounds interleaved rounds of one pass's wall
 *    seconds, model/evaluate.h nb_fold_time) and time_ratio (folded /
 *    unfolded).  Refused at the config's [model] placement line for
 *    placement post and at its [norm] type line for a norm without
 *    running statistics (nb_probe_check_model).
 *
 * slice.csv: the header "step,a,b,loss,acc" (nb_probe_slice_cols; written
 * before the first slice), then one line per grid point in gnuplot grid
 * order.  step is the step of the slice (updates done: 0 = the initial
 * weights, the run's length = the final ones), the same on every line of
 * a slice.  A 2-D slice is P scans of P points, a in the outer loop and b
 * in the inner, a blank line between scans (one per a); a 1-D slice is
 * one scan of P points along a, b = 0, with no blank line inside.  loss
 * and acc are the EVAL (or recomputed) loss and accuracy (NaN for
 * regression) over the slice samples at theta + a d1 + b d2.  A run with
 * several slices separates them by two blank lines (gnuplot `index k`;
 * the slice's probes.csv rows, at the same step, give its index).
 * Numbers use the shortest form that reads back to the same double.
 * Files written before the step column have the header "a,b,loss,acc";
 * the summary still reads them (step unknown). */
#ifndef NB_PROBE_PROBE_H
#define NB_PROBE_PROBE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <gsl/gsl_rng.h>

#include "core/error.h"
#include "data/data.h"
#include "layers/layer.h"
#include "model/model.h"

enum nb_probe_spacing { NB_SPACING_LIN = 0, NB_SPACING_LOG, NB_SPACING_COUNT };

/* Names by enumerator, NULL-terminated: the config key probe.eta_spacing
 * takes its values from this table (keys.c), and the enum maps by index. */
extern const char *const nb_probe_spacing_names[];

/* The probe kinds, one line each: X(ENUMERATOR, name), the name being the
 * probes.csv probe column.  Each kind's file defines nbp_NAME_stats and
 * nbp_NAME_ops (probe_impl.h), which probe.c's tables collect; a new probe
 * is a line here, its options in struct nb_probe_opts and its keys in
 * probe.c's table, its file (added to Makefile.am) and its test. */
#define NB_PROBE_KINDS(X)                                                                \
    X(LANDSCAPE, landscape) X(ICS, ics) X(DIST, dist) X(GRADSTATS, gradstats)           \
    X(HESSIAN, hessian) X(SLICE, slice) X(EVALSTATS, evalstats) X(VARSHIFT, varshift)        \
    X(FOLD, fold)

enum nb_probe_kind {
#define NB_PROBE_ENUMERATOR_(U, l) NB_PROBE_##U,
    NB_PROBE_KINDS(NB_PROBE_ENUMERATOR_)
#undef NB_PROBE_ENUMERATOR_
    NB_PROBE_KIND_COUNT
};

/* "landscape", "ics", ... (the probes.csv probe column); NULL if out of
 * range. */
const char *nb_probe_kind_name(enum nb_probe_kind k);

/* What each probe writes to probes.csv: its name and the stats of its rows
 * (NULL-terminated, "seconds" included), as documented above.  The one
 * list of them: the summary checks a metric PROBE.STAT against it, and
 * t_probe checks that every row a probe writes names a stat listed here. */
struct nb_probe_kind_info {
    const char *name;
    const char *const *stats;
};
extern const struct nb_probe_kind_info nb_probe_kinds[NB_PROBE_KIND_COUNT];

/* slice.csv's columns in file order, the one list of them: the probe
 * writes its header from it, the summary finds its columns by these
 * names. */
enum nb_probe_slice_col {
    NB_SLICE_STEP = 0,
    NB_SLICE_A,
    NB_SLICE_B,
    NB_SLICE_LOSS,
    NB_SLICE_ACC,
    NB_SLICE_COL_COUNT
};
extern const char *const nb_probe_slice_cols[NB_SLICE_COL_COUNT];

/* The [probe] section.  Steps are the hook's step numbers (updates done
 * before the probe); "every K" runs at steps 0, K, 2K, ... */
/* The norm statistics the Hessian probe uses: the running ones (EVAL) or
 * the batch's (PROBE mode). */
enum nb_hessian_mode { NB_HESSIAN_EVAL = 0, NB_HESSIAN_PROBE, NB_HESSIAN_MODE_COUNT };
extern const char *const nb_hessian_mode_names[]; /* by enumerator, NULL-terminated */
/* How the Hessian probe multiplies by the Hessian: auto (the exact
 * R-operator where every layer of the model has one in the probe's mode,
 * central differences of the gradient otherwise), exact (refused when a
 * layer has none: nb_probe_check_model), fd (central differences). */
enum nb_hessian_hvp { NB_HVP_AUTO = 0, NB_HVP_EXACT, NB_HVP_FD, NB_HVP_COUNT };
extern const char *const nb_hessian_hvp_names[]; /* by enumerator, NULL-terminated */

struct nb_probe_opts {
    /* Santurkar landscape (1.a-1.c): eta on a grid of eta_points values
     * in [eta_min, eta_max] x lr, linear or log spacing. */
    bool landscape;
    long landscape_every;
    double eta_min, eta_max;
    int eta_points;
    enum nb_probe_spacing eta_spacing;
    /* ICS (1.d). */
    bool ics;
    long ics_every;
    /* activation distributions (1.e), and gradient statistics at the
     * same steps. */
    bool dist;
    long dist_every;
    long dist_unit;         /* -1: whole tensors; k >= 0: unit k alone */
    bool gradstats;
    /* Hessian (5.5): every hessian_every steps (0: none during training)
     * and at nb_probe_finish; over the first hessian_samples training
     * samples, in NB_EVAL or NB_PROBE mode. */
    bool hessian;
    long hessian_every;
    long hessian_samples;
    enum nb_hessian_mode hessian_mode;
    enum nb_hessian_hvp hessian_hvp;
    double hessian_tol;     /* PyHessian: 1e-3 (power iteration and trace) */
    int hessian_max_iter;   /* PyHessian: 100 (each) */
    double hessian_fd_rel;  /* h = hessian_fd_rel * max(1, ||theta||) */
    /* Filter-normalized slices (5.4) at the steps slice_at (borrowed,
     * copied by init; each once, in any order).  A step s < the run's
     * length is taken by nb_probe_step at s; s = the run's length, and -1,
     * by nb_probe_finish on the final weights (so are all slices when the
     * list is empty); a step past the end is never taken (config/runcfg.h
     * refuses it).  slice_points per axis on
     * [-slice_range, slice_range], over the first slice_samples training
     * samples (0 = all), EVAL mode, optionally recomputing the
     * population statistics (over the same samples) at every point. */
    bool slice;
    const long *slice_at;
    int n_slice_at;
    int slice_dim;          /* 1 or 2 */
    int slice_points;
    double slice_range;
    long slice_samples;
    bool slice_recompute_bn;
    /* Evaluation statistics (evalstats.c): the test error with each way
     * of giving the norm layers statistics, every evalstats_every steps (0:
     * none during training) and at nb_probe_finish; recomputed over each
     * count of evalstats_samples training samples. */
    bool evalstats;
    long evalstats_every;
    int evalstats_samples[8];
    int n_evalstats_samples;
    bool evalstats_target;   /* also recomputed on the test data */
    /* Variance shift (varshift.c, claims 5.3): every varshift_every
     * steps (0: none during training) and at nb_probe_finish, over the
     * first varshift_samples test samples in EVAL mode. */
    bool varshift;
    long varshift_every;
    long varshift_samples;
    /* BN folding (fold.c, claims 6.5): at the end of training only, on
     * the first fold_samples test samples, fold_rounds timing rounds. */
    bool fold;
    long fold_samples;
    long fold_rounds;
    /* Not a [probe] key: the run's [train] eval_samples (test samples an
     * evaluation uses, 0: all), which evalstats' evaluations follow. */
    long eval_samples;
};

/* The [probe] config keys of struct nb_probe_opts (core/opt.h), with their
 * defaults: everything off; landscape every 50 steps on [0.5, 4] x lr, 8
 * points, linear; ics and dist every 100; Hessian at the end only on 1000
 * samples in eval mode; slices at the end, 1-D, 51 points on [-1, 1],
 * 1000 training samples, no recomputation.  probe.slice_at has no one
 * member (the harness owns the array slice_at points into). */
extern const struct nb_key nb_probe_keys[];
extern const int nb_probe_n_keys;

/* nb_probe_keys' defaults, and the Hessian's internal constants: tol
 * 1e-3, 100 iterations, fd step 1e-3. */
void nb_probe_opts_default(struct nb_probe_opts *o);

/* Whether any probe is on (each kind's bool key [probe] NAME). */
bool nb_probe_opts_any(const struct nb_probe_opts *o);

/* Checks ranges and combinations (eta_min > 0, eta_max >= eta_min,
 * eta_points >= 1, every >= 1, hessian_every >= 0, samples >= 1 (slices:
 * >= 0), hessian_mode eval or probe, slice_dim 1 or 2, slice_points >= 2,
 * slice_range > 0, slice_at entries >= -1).  Returns 0 or NB_EINVAL with
 * a message naming the key. */
int nb_probe_opts_check(const struct nb_probe_opts *o, struct nb_error *err);

/* "lin"/"log"; parse returns 0 or NB_EINVAL. */
const char *nb_probe_spacing_name(enum nb_probe_spacing s);
int nb_probe_spacing_parse(const char *s, enum nb_probe_spacing *out);

/* One probes.csv row; strings are valid during the callback only. */
struct nb_probe_row {
    long step;
    const char *probe;
    const char *layer;     /* "" when none */
    int layer_index;       /* -1 when none */
    const char *param;     /* "" when none */
    double param_value;    /* NaN when none */
    const char *stat;
    double value;
    const char *bn_mode;
};

/* Where the results go.  row may be NULL (rows dropped); a non-zero
 * return stops the probes: no further probe runs (see p->status).  slice
 * is the open slice.csv (may be NULL); the probe writes the header and
 * the points and never closes it. */
struct nb_probe_sink {
    void *user;
    int (*row)(void *user, const struct nb_probe_row *r);
    FILE *slice;
};

struct nb_probe_cost {
    long calls;
    double seconds;
};

/* Caller-owned; the fields below the line are private. */
struct nb_probe {
    struct nb_probe_opts o;
    double seconds;       /* wall time of all probe calls, save/restore included */
    long calls;           /* nb_probe_step / finish calls that ran a probe */
    struct nb_probe_cost cost[NB_PROBE_KIND_COUNT];
    long hessian_exact, hessian_fd; /* Hessian calls by each product */
    int status;           /* 0, or the sink's failure (probes stopped) */
    struct nb_error err;  /* when status != 0 */
    /* ---- private ---- */
    struct nb_probe_sink sink;
    long *slice_at;
    int slices_written;
    const struct nb_dataset *data; /* Hessian and slices */
    gsl_rng *rng;         /* the probe stream: directions, per-call seeds */
    gsl_rng *fwd;         /* restarted per forward: PROBE-mode draws */
    unsigned long fwd_seed;
    /* sizes of the model the buffers were made for */
    size_t n_params, n_state;
    int n_layers, cap, train_batch;
    size_t in_numel, tdim;
    bool stochastic;
    /* saved arenas and work vectors (n_params floats unless noted) */
    float *theta, *g, *gref, *opt, *grads_out, *state; /* state: n_state */
    float *v, *d1, *d2;
    double *acc, *acc2;   /* n_params doubles */
    float *scratch;       /* cap * largest tracked activation */
    size_t scratch_count;
    double *prev_mean, *prev_var; /* 2 * n_layers: dist of the last call */
    double *prev_cmean, *prev_cvar; /* 2 * n_layers * dist_cmax: per channel */
    int dist_cmax;        /* most channels of a dist tensor */
    bool *prev_valid;
    double *first_q;      /* 3 * 2 * n_layers: p15, p50, p85 of the first call */
    bool *first_valid;
    size_t *idx;          /* identity sample index for gathers */
    const struct nb_dataset *test; /* evalstats, varshift, fold: the evaluation set */
    size_t *tidx;         /* evalstats, varshift: cap sample indices of one test chunk */
    int vs_channels;      /* varshift: channels of every norm layer it reads */
    int vs_cmax;          /* varshift: the most channels of one */
    double *vs_acc;       /* varshift: 2 x vs_channels: mean, M2 (Chan) */
    double *vs_work;      /* varshift: 4 x vs_cmax */
    size_t n_idx;
    float *bx, *bt;       /* one chunk of samples: cap x input, cap x tdim */
    int *by;
    struct nb_hvp hvp;    /* the exact products' buffers (Hessian on) */
    double *eta;          /* eta_points */
    double *lscratch;     /* 3 * eta_points */
};

/* Sets p up for models like m (m is read for its sizes and layers only:
 * it may be a throwaway model built from the same description, with
 * max_batch at least the training batch; nb_train builds its own).  opts
 * is copied (slice_at too).  seed: the run seed; the probe stream is
 * nb_rng_alloc(seed, NB_STREAM_PROBE).  train: the training set (the
 * Hessian and slices use its first samples; may be NULL when neither is
 * on); eval_set: used instead when train is NULL.  Returns 0 or a
 * negative status with err filled; p is then safe to free. */
int nb_probe_init(struct nb_probe *p, const struct nb_probe_opts *opts,
                  const struct nb_model *m, uint64_t seed,
                  const struct nb_dataset *train,
                  const struct nb_dataset *eval_set, struct nb_error *err);

/* The same from a model description: builds a temporary model of
 * max_batch samples (the training batch) for the sizes, then frees it. */
int nb_probe_init_desc(struct nb_probe *p, const struct nb_probe_opts *opts,
                       const struct nb_model_desc *d, int max_batch,
                       uint64_t seed, const struct nb_dataset *train,
                       const struct nb_dataset *eval_set,
                       struct nb_error *err);

/* Whether the options fit model m: with hessian_hvp = exact, every layer
 * must have exact R-operators in the Hessian's mode (as m stands, at step
 * 0: frozen statistics only ever add support); with fold, m must be
 * foldable (placement pre, a norm with running statistics: batch or lp).
 * Returns 0, or NB_EINVAL with a message keyed probe.hessian_hvp (naming
 * the layer), model.placement or norm.type. */
int nb_probe_check_model(const struct nb_probe_opts *o, const struct nb_model *m,
                         struct nb_error *err);

/* Sets where rows and slice points go (copied); before the first step. */
void nb_probe_set_sink(struct nb_probe *p, const struct nb_probe_sink *s);

/* The hook: runs the probes due at `step` on model m (which must hold the
 * gradient of the mean loss of the batch x/y/t of n samples, as after
 * nb_model_backward) with the learning rate lr of this step's update.
 * Signature-compatible with nb_train_hooks.on_step (pass p as user
 * through a one-line wrapper).  Leaves parameters, gradients, optimizer
 * buffers, state and the model's RNG streams exactly as found.  Asserts
 * that m matches the model p was made for and n <= its max_batch. */
void nb_probe_step(struct nb_probe *p, struct nb_model *m, const float *x,
                   const int *y, const float *t, int n, long step, double lr);

/* End of run, on the final parameters (after the last update): the
 * Hessian (when on) and the slice at steps (one slice, when slice_at
 * lists -1 or steps, or is empty), rows with step = steps.  Leaves m as
 * found. */
void nb_probe_finish(struct nb_probe *p, struct nb_model *m, long steps);

/* Prints a table: per probe kind calls, total seconds, seconds per call
 * and share of run_seconds (the run's wall time, probes included; <= 0:
 * shares omitted), then the total. */
void nb_probe_cost_report(const struct nb_probe *p, FILE *out,
                          double run_seconds);

/* Frees everything; safe on a zeroed or failed p. */
void nb_probe_free(struct nb_probe *p);

/* ---- pieces, exposed for tests and other tools ---------------------- */

/* Li et al.'s filter normalization in place: for every NB_PARAM_WEIGHT
 * parameter of m, each filter (one of its `filters` rows) of d is scaled
 * to the l2 norm of the same row of theta (d_row * ||theta_row|| /
 * (||d_row|| + 1e-10)); entries of biases and norm parameters are set to
 * 0.  d and theta: m->n_params floats in the parameter arena's layout. */
void nb_probe_filter_normalize(const struct nb_model *m, const float *theta,
                               float *d);

/* A filter-normalized Gaussian direction: d ~ N(0, I) drawn from r, then
 * nb_probe_filter_normalize. */
void nb_probe_random_direction(const struct nb_model *m, gsl_rng *r,
                               const float *theta, float *d);

/* Percentile q in [0, 1] of x[0..n) with linear interpolation between
 * order statistics (numpy's default): reorders x. */
double nb_probe_percentile(float *x, size_t n, double q);

#endif
