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

/* sdy = sum dy_i,  sdyx = sum dy_i * (x_i - mu), in double. */
void nb_normk_bwd_sums(double *sdy, double *sdyx, const float *dy,
                       const float *x, float mu, size_t m);

/* dx_i = A dy_i + B (x_i - mu) + C0. */
void nb_normk_bwd_dx(float *dx, const float *dy, const float *x, float A,
                     float B, float mu, float C0, size_t m);

/* dx_i = A dy_i + C0 + E sign(x_i)   (lp with p = 1; sign(0) = 0). */
void nb_normk_bwd_dx_sign(float *dx, const float *dy, const float *x, float A,
                          float C0, float E, size_t m);

/* ---- column kernels for (N, C) data: one row of C features; every
 * feature c has its own accumulator or coefficient. ---- */

/* acc_c += x_c. */
void nb_normk_col_add(double *acc, const float *x, size_t C);

/* acc_c += (x_c - mean_c)^2. */
void nb_normk_col_sqdev(double *acc, const float *x, const double *mean,
                        size_t C);

/* sdy_c += dy_c;  sdyx_c += dy_c (x_c - mu_c). */
void nb_normk_col_bwd(double *sdy, double *sdyx, const float *dy,
                      const float *x, const float *mu, size_t C);

/* y_c = a_c (x_c - mu_c) + b_c. */
void nb_normk_col_affine(float *y, const float *x, const float *a,
                         const float *mu, const float *b, size_t C);

/* dx_c = A_c dy_c + B_c (x_c - mu_c) + C0_c. */
void nb_normk_col_dx(float *dx, const float *dy, const float *x,
                     const float *A, const float *B, const float *mu,
                     const float *C0, size_t C);

/* ---- per-sample sets of (N, C) data (layer/group): m contiguous
 * features sharing (mu, rstd), each with its own gamma_j. ---- */

/* y_j = gamma_j a (x_j - mu) + beta_j. */
void nb_normk_gain_affine(float *y, const float *x, const float *gamma,
                          const float *beta, float a, float mu, size_t m);

/* With u_j = rstd (x_j - mu):  cdb_j += dy_j, cda_j += dy_j u_j,
 * *g1 += sum gamma_j dy_j, *g2 += sum gamma_j dy_j u_j. */
void nb_normk_gain_bwd(double *cdb, double *cda, double *g1, double *g2,
                       const float *dy, const float *x, const float *gamma,
                       float mu, double rstd, size_t m);

/* dx_j = gamma_j a dy_j + B (x_j - mu) + C0. */
void nb_normk_gain_dx(float *dx, const float *dy, const float *x,
                      const float *gamma, float a, float B, float mu,
                      float C0, size_t m);

/* rstd_i = 1 / sqrt(var_i + eps), in place allowed (rstd == var). */
void nb_normk_rstd(double *rstd, const double *var, double eps, size_t n);

/* out_i = a_i * b_i. */
void nb_normk_mul(float *out, const float *a, const float *b, size_t m);

#endif
