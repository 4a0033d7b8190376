/* src/probe/probe_impl.h - what the probe files share; not installed,
 * not for other modules.  Every function here runs inside a probe call:
 * the caller (probe.c) has saved the arenas into p->theta, p->g, p->opt,
 * p->state, swapped the model's probe stream for p->fwd, and restores
 * everything afterwards, so these functions may freely overwrite the
 * parameter and gradient arenas, the running statistics and the
 * activations. */
#ifndef NB_PROBE_PROBE_IMPL_H
#define NB_PROBE_PROBE_IMPL_H

#include "probe/probe.h"

/* The fixed part of a probe's rows: kind at step, layer (< 0: none; the
 * name is m's layer name), bn_mode, and no parameter ("" and NaN) until
 * the caller sets param and param_value; stat and value come with each
 * nbp_emit. */
struct nb_probe_row nbp_row(const struct nb_model *m, long step,
                            enum nb_probe_kind kind, int layer,
                            const char *bn_mode);

/* Sends r with this stat and value to the sink (dropped after a sink
 * failure, which stops the probes: p->status). */
void nbp_emit(struct nb_probe *p, const struct nb_probe_row *r,
              const char *stat, double value);

/* A forward whose random draws (PROBE-mode dropout and noise) restart
 * from the call's seed: the same n and mode give the same draws. */
double nbp_forward(struct nb_probe *p, struct nb_model *m, const float *x,
                   const int *y, const float *t, int n, enum nb_mode mode);

/* params = theta + a * d1 (+ b * d2 when d2), in double, rounded once. */
void nbp_set_params(struct nb_probe *p, struct nb_model *m, double a,
                    const float *d1, double b, const float *d2);

/* l2 norm and dot product of float vectors, double accumulation. */
double nbp_norm(const float *x, size_t n);
double nbp_dot(const float *x, const float *y, size_t n);

/* The slice probe's curvature at the centre: the second difference
 * (lm - 2 l0 + lp) / h^2 of the losses at -h, 0, +h along a direction,
 * divided by l0 (relative to the loss level, so that nets at different
 * losses compare); NaN when l0 <= 0, l0 is not finite or h <= 0. */
double nbp_slice_curvature(double lm, double l0, double lp, double h);

/* Number of samples of p->data a pass uses in `mode` with up to `want`
 * samples (0 = all): all of them in EVAL; in PROBE or TRAIN whole chunks
 * of the training batch only (a batch-norm set of one sample is refused),
 * at least one chunk when the data have two samples.  *chunk gets the
 * chunk size. */
size_t nbp_pass_samples(const struct nb_probe *p, const struct nb_model *m,
                        long want, enum nb_mode mode, int *chunk);

/* Mean loss over samples [0, count) of p->data in chunks of `chunk`
 * (mode forwards); with grad, also the gradient of that mean into
 * p->acc (double).  hits (may be NULL) gets the number of correct
 * argmax predictions (classification). */
double nbp_pass(struct nb_probe *p, struct nb_model *m, size_t count,
                int chunk, enum nb_mode mode, bool grad, long *hits);

/* The same passes with exact Hessian-vector products: the mean loss,
 * its gradient into p->acc and H v into p->acc2 (double), H the Hessian
 * of the mean loss over samples [0, count) at the current parameters and
 * v (n_params floats) the direction.  Needs p->hvp (nb_probe_init made it:
 * Hessian on, hessian_hvp not fd) and exact R-operators in every layer in
 * `mode` (nb_model_hvp_unsupported). */
double nbp_pass_hvp(struct nb_probe *p, struct nb_model *m, const float *v, size_t count,
                    int chunk, enum nb_mode mode);

/* The batch of the training step a probe call comes with (probe.c's
 * nb_probe_step): inputs x, labels y or targets t (NULL when the other),
 * n samples, the step's learning rate, and the loss at theta on it (the
 * training loss, or the probe-mode loss with stochastic layers). */
struct nbp_batch {
    const float *x;
    const int *y;
    const float *t;
    int n;
    double lr;
    double loss0;
};

/* When a probe runs within a call, and on what; the driver runs the
 * phases in this order, and the kinds within a phase in enum order. */
enum nbp_phase {
    /* first, on the training step's own forward and backward: its
     * activations (m->acts) and gradient (p->g) are still there */
    NBP_ON_TRAINING_PASS,
    /* after p->gref, the probe-mode gradient at theta on the batch, is
     * computed (its cost charged to the first of the phase's probes) */
    NBP_ON_REFERENCE_GRADIENT,
    /* with the parameters reset to theta first; the only phase that may
     * run at the end of training, where there is no batch (b == NULL) */
    NBP_AT_THETA,
};

/* What the driver needs of a probe kind.  All run on the saved state:
 * p->theta (parameters), p->g (the training gradient of this step),
 * p->gref (NBP_ON_REFERENCE_GRADIENT: the probe-mode gradient at theta on
 * the same batch; == p->g without stochastic layers). */
struct nbp_ops {
    enum nbp_phase phase;
    /* whether it passes over the training set p->data (not only the
     * step's batch): probe set-up then requires one */
    bool uses_data;
    /* whether the probe runs at this training step */
    bool (*due)(const struct nb_probe_opts *o, long step);
    /* whether it runs once more at the end of training, after `steps`
     * updates (NULL: never; NBP_AT_THETA only) */
    bool (*at_end)(const struct nb_probe_opts *o, long steps);
    /* the bn_mode column of its rows */
    const char *(*mode)(const struct nb_probe_opts *o);
    /* the probe: writes its rows with nbp_emit; b is NULL at the end */
    void (*run)(struct nb_probe *p, struct nb_model *m, const struct nbp_batch *b, long step);
};

/* Each kind's stats (NULL-terminated, "seconds" included: probe.h's
 * nb_probe_kinds) and ops, defined in the kind's own file. */
#define NBP_DECLARE_(U, l)                                                               \
    extern const char *const nbp_##l##_stats[];                                          \
    extern const struct nbp_ops nbp_##l##_ops;
NB_PROBE_KINDS(NBP_DECLARE_)
#undef NBP_DECLARE_

/* Tensors the dist probe tracks: for each, the activation index and the
 * layer it belongs to, and whether it is the layer's input.  Returns the
 * count (at most 2 * n_layers); out arrays may be NULL. */
int nbp_dist_tensors(const struct nb_model *m, int *act, int *layer,
                     bool *is_input);

#endif
