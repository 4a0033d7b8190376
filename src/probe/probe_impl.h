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

/* The probes.  All run on the saved state: p->theta (parameters), p->g
 * (the training gradient of this step), p->gref (the probe-mode gradient
 * at theta on the same batch; == p->g without stochastic layers). */
void nbp_landscape(struct nb_probe *p, struct nb_model *m, const float *x,
                   const int *y, const float *t, int n, long step, double lr,
                   double loss0);
void nbp_ics(struct nb_probe *p, struct nb_model *m, const float *x,
             const int *y, const float *t, int n, long step, double lr);
void nbp_dist(struct nb_probe *p, struct nb_model *m, int n, long step);
void nbp_gradstats(struct nb_probe *p, struct nb_model *m, long step);
void nbp_hessian(struct nb_probe *p, struct nb_model *m, long step);
void nbp_slice(struct nb_probe *p, struct nb_model *m, long step);

/* Tensors the dist probe tracks: for each, the activation index and the
 * layer it belongs to, and whether it is the layer's input.  Returns the
 * count (at most 2 * n_layers); out arrays may be NULL. */
int nbp_dist_tensors(const struct nb_model *m, int *act, int *layer,
                     bool *is_input);

#endif
