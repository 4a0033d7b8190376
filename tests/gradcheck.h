/* tests/gradcheck.h - a layer under test, standalone, and its
 * finite-difference checks.
 *
 * gc_setup builds one layer outside any model: it runs setup, allocates
 * the parameter, gradient and state arenas, binds the views, runs the
 * kind's init and then fills every parameter with high-entropy random
 * values (so gamma = 1, beta = 0 cannot hide a bug).
 *
 * gc_check compares the analytic backward of the scalar
 *   L = sum_i r_i * y_i   (r fixed random weights, accumulated in double)
 * with central differences (L(v + h) - L(v - h)) / 2h, for every element
 * of dx, of dx2 (second input, if any) and of every parameter.  Before
 * each forward the state arena, ctx->step and every RNG stream are
 * restored, so stochastic layers and running statistics give the same
 * function each time.  One TAP line per tensor. */
#ifndef NB_TESTS_GRADCHECK_H
#define NB_TESTS_GRADCHECK_H

#include "layers/layer.h"

struct gc_layer {
    struct nb_layer l;
    struct nb_arena params, grads, state;
    struct nb_ctx ctx;
    float *state0;         /* snapshot of the state arena */
    unsigned long seeds[3];
};

/* Returns 0 or a status with err filled.  in2 may be NULL. */
int gc_setup(struct gc_layer *t, const struct nb_layer_ops *ops,
             const char *name, struct nb_shape in,
             const struct nb_shape *in2, int max_batch, const void *opts,
             unsigned long seed, struct nb_error *err);
void gc_free(struct gc_layer *t);

/* Fills x with values uniform in +-scale, kept at least `gap` away from 0
 * (away from ReLU kinks); seed-determined. */
void gc_fill(float *x, size_t n, double scale, double gap, unsigned long seed);

/* Runs the checks described above; returns the number of failed tensors.
 * x (and x2 when the layer has a second input) hold n samples; they are
 * perturbed and restored. */
int gc_check(struct gc_layer *t, float *x, float *x2, int n,
             enum nb_mode mode, double h, double atol, double rtol,
             const char *label);

/* Restores state, step and RNG streams, then runs one forward into y. */
void gc_forward(struct gc_layer *t, const float *x, const float *x2, float *y,
                int n, enum nb_mode mode);

#endif
