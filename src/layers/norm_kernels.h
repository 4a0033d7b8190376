/* src/layers/norm_kernels.h - the inner loops of the normalization family.
 *
 * Every kernel works on one contiguous run of m floats (an H*W plane of
 * NCHW data, or a single element for (N, C) data).  Reductions accumulate
 * in double; element-wise maps compute in float.  Arguments go outputs,
 * inputs, coefficients, sizes (style.md 14).  No allocation, no failure.
 * Internal to src/layers (norm.c, norm_bench.c). */
#ifndef NB_LAYERS_NORM_KERNELS_H
#define NB_LAYERS_NORM_KERNELS_H

#include <stddef.h>

/* Mean and sum of squared deviations of x (m > 0):
 *   mean = (1/m) sum x_i,  m2 = sum (x_i - mean)^2
 * computed from sums of (x_i - x_0) in double (shifted data, so a large
 * common offset does not cancel). */
void nb_normk_moments(double *mean, double *m2, const float *x, size_t m);

/* lp partials of x (m > 0): mean = (1/m) sum x_i and
 *   p = 1: q = sum |x_i|;  p = 2: q = sum x_i^2;  p = 0 (inf): q = max |x_i|. */
void nb_normk_lp_partial(double *mean, double *q, const float *x, size_t m,
                         int p);

/* Index of the first element with |x_i| == amax (m > 0; the element that
 * gave amax in nb_normk_lp_partial). */
size_t nb_normk_argabs(const float *x, size_t m, float amax);

/* y_i = a * (x_i - mu) + b. */
void nb_normk_affine(float *y, const float *x, float a, float mu, float b,
                     size_t m);

/* y_i = s_i * y_i + t_i (noise), in place. */
void nb_normk_scale_shift(float *y, const float *s, const float *t, size_t m);

/* sdy = sum dy_i,  sdyx = sum dy_i * (x_i - mu), in double. */
void nb_normk_bwd_sums(double *sdy, double *sdyx, const float *dy,
                       const float *x, float mu, size_t m);

/* dx_i = A dy_i + B (x_i - mu) + C0. */
void nb_normk_bwd_dx(float *dx, const float *dy, const float *x, float A,
                     float B, float mu, float C0, size_t m);

/* dx_i = A dy_i + C0 + E sign(x_i)   (lp with p = 1; sign(0) = 0). */
void nb_normk_bwd_dx_sign(float *dx, const float *dy, const float *x, float A,
                          float C0, float E, size_t m);

/* out_i = a_i * b_i. */
void nb_normk_mul(float *out, const float *a, const float *b, size_t m);

#endif
