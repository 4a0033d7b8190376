/* src/layers/norm_noise.c - noisy BN (Santurkar Alg. 1, norm.h): the
 * per-step draws of TRAIN and PROBE forwards, and the noise's expected
 * value that evaluation applies with noise_eval = mean. */
#include "layers/norm_impl.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

/* Santurkar Alg. 1 on y (n samples): y <- s*y + m; keeps s for backward.
 * y holds samples [first, first + n) of a batch of total: the draws go
 * over the whole batch, in order, and the slice keeps its own. */
void norm_apply_noise(struct norm_priv *P, gsl_rng *r, float *y, int n, int first, int total)
{
    const struct nb_norm_opts *o = &P->o;
    const size_t HW = P->HW;
    for (int c = 0; c < P->C; c++) {
        P->nmu[c] = o->noise_mu * (2.0 * gsl_rng_uniform(r) - 1.0);
        P->nsig[c] = 1.0 + (o->noise_sigma - 1.0) * gsl_rng_uniform(r);
    }
    for (int i = 0; i < total; i++)
        for (int c = 0; c < P->C; c++) {
            bool mine = i >= first && i < first + n;
            size_t off = (size_t)(i - first) * P->numel + (size_t)c * HW;
            for (size_t j = 0; j < HW; j++) {
                double m = P->nmu[c] + o->noise_rmu * (2.0 * gsl_rng_uniform(r) - 1.0);
                double s = P->nsig[c] + gsl_ran_gaussian_ziggurat(r, o->noise_rsigma);
                if (!mine)
                    continue;
                P->ns[off + j] = (float)s;
                y[off + j] = (float)(s * y[off + j] + m);
            }
        }
}


void norm_scale_noise_mean(struct norm_priv *P, float *y, int n)
{
    float es = (float)noise_mean_scale(&P->o);
    size_t total = (size_t)n * P->numel;
    for (size_t i = 0; i < total; i++)
        y[i] *= es;
}
