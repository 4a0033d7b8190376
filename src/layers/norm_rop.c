/* src/layers/norm_rop.c - the norm layer's R-operators (layer.h: exact
 * Hessian-vector products), after the forward and backward they
 * differentiate (norm.c), from the statistics that forward cached.
 *
 * Per set S of m elements (a channel of a batch part; a (sample, group)
 * of layer, group or instance norm; with fixed statistics, EVAL or frozen,
 * a channel with the running mu and rho = 1/sigma as constants):
 *   xh_i = (x_i - mu) rho,  z_i = gamma_c xh_i + beta_c,  y_i = s_i z_i + m_i
 * with s_i the forward's noise scale (1 without noise, E[s] for the
 * expected noise of evaluation).  With r = R{x}, V_gamma, V_beta the
 * direction and mean() over the set:
 *   R{xh_i} = rho (r_i - mean(r) - xh_i mean(xh r))        (fixed: rho r_i)
 *   R{y_i}  = s_i (V_gamma_c xh_i + gamma_c R{xh_i} + V_beta_c).
 * Backward: g_i = s_i dy_i, gh_i = gamma_c g_i,
 *   dx_i = rho (gh_i - mean(gh) - xh_i mean(gh xh))          (fixed: rho gh_i)
 *   dgamma_c = sum g_i xh_i,  dbeta_c = sum g_i;
 * so with R{g_i} = s_i R{dy_i}, R{gh_i} = V_gamma_c g_i + gamma_c R{g_i}
 * and R{rho} / rho = -rho mean(xh r):
 *   R{dx_i} = (R{rho}/rho) dx_i + rho (R{gh_i} - mean(R{gh})
 *             - R{xh_i} mean(gh xh) - xh_i mean(R{gh} xh + gh R{xh}))
 *                                                           (fixed: rho R{gh_i})
 *   R{dgamma_c} += sum (R{g_i} xh_i + g_i R{xh_i}),  R{dbeta_c} += sum R{g_i}.
 * Fixed statistics run per plane in float (sums in double); batch
 * statistics one set at a time in double (plain loops: the R-passes are a
 * probe's, not training's hot path).
 *
 * Not exact, so refused by norm_rsupports (the Hessian probe then takes
 * finite differences): batch statistics of lp norm (its scale) and of
 * renorm (whose backward holds r and d constant: not the gradient of the
 * forward), and a TRAIN forward whose statistics came over ranks. */
#include "layers/norm_impl.h"

#include <string.h>

bool norm_rsupports(const struct nb_layer *l, enum nb_mode mode)
{
    const struct norm_priv *P = l->priv;
    NB_ASSERT(P);
    if (P->o.type == NB_NORM_NONE || !P->bsets)
        return true;
    if (mode == NB_EVAL || frozen_active(P, l))
        return true;
    if (mode == NB_TRAIN && l->ctx && nb_comm_active(l->ctx->comm))
        return false;
    return P->moments && !P->o.renorm;
}

/* The noise scale s_i of element i of the last forward. */
static inline double noise_scale(const struct norm_priv *P, size_t i)
{
    if (P->noised)
        return P->ns[i];
    return P->escaled ? noise_mean_scale(&P->o) : 1.0;
}

/* The planes of set s of the last forward: planes first + j * stride,
 * j < count, each HW contiguous elements of channel plane % C. */
static size_t set_planes(const struct norm_priv *P, size_t s, size_t *first,
                         size_t *stride)
{
    if (P->fixed || P->bsets) {
        const int k = (int)(s / (size_t)P->C), c = (int)(s % (size_t)P->C);
        const int a = P->fixed ? 0 : P->pstart[k];
        const int b = P->fixed ? P->n : P->pstart[k + 1];
        *first = (size_t)a * P->C + c;
        *stride = (size_t)P->C;
        return (size_t)(b - a);
    }
    *first = s * (size_t)P->cpg;
    *stride = 1;
    return (size_t)P->cpg;
}

static size_t set_count(const struct norm_priv *P)
{
    if (P->fixed)
        return (size_t)P->C;
    return P->bsets ? (size_t)P->nparts * P->C : (size_t)P->n * P->G;
}

/* mean(r) and mean(xh r) over set s (mu, rho its statistics). */
static void set_rmoments(const struct norm_priv *P, size_t s, const float *x,
                         const float *rx, double mu, double rho, double *mr,
                         double *mxr)
{
    size_t first, stride, HW = (size_t)P->HW;
    size_t np = set_planes(P, s, &first, &stride);
    double a = 0, b = 0;
    for (size_t j = 0; j < np; j++) {
        const size_t off = (first + j * stride) * HW;
        for (size_t q = 0; q < HW; q++) {
            const double xh = ((double)x[off + q] - mu) * rho;
            a += rx[off + q];
            b += xh * rx[off + q];
        }
    }
    const double m = (double)np * (double)HW;
    *mr = m > 0 ? a / m : 0;
    *mxr = m > 0 ? b / m : 0;
}

/* Fixed statistics (EVAL, frozen): per channel an affine map in float,
 * R{y} = s (a1 x + a0 + a2 R{x}) with a1 = V_gamma rho,
 * a0 = V_beta - a1 mu, a2 = gamma rho; the coefficients go to the
 * backward's (C) temporaries coef_a, coef_b, coef_mu. */
static void fixed_rforward(struct norm_priv *P, const struct nb_layer *l, const float *x,
                           const float *rx, float *ry, const float *vg, const float *vb)
{
    const size_t HW = (size_t)P->HW, C = (size_t)P->C;
    const float es = P->escaled ? (float)noise_mean_scale(&P->o) : 1.0f;
    float *a1 = P->coef_a, *a0 = P->coef_b, *a2 = P->coef_mu; /* (C) */
    for (size_t c = 0; c < C; c++) {
        const double rho = P->srstd[c];
        a1[c] = (float)(vg[c] * rho);
        a2[c] = (float)(gamma_of(P, l, (int)c) * rho);
        a0[c] = (float)(vb[c] - vg[c] * rho * P->smean[c]);
    }
    for (size_t i = 0; i < (size_t)P->n; i++)
        for (size_t c = 0; c < (HW == 1 ? 1 : C); c++) {
            /* HW == 1: the whole (C) row at once, channel k = q */
            const size_t off = HW == 1 ? i * C : (i * C + c) * HW, m = HW == 1 ? C : HW;
            const float *xp = x + off, *rp = rx + off; /* (m) */
            const float *sp = P->noised ? P->ns + off : NULL;
            float *yp = ry + off;                      /* (m) */
            for (size_t q = 0; q < m; q++) {
                const size_t k = HW == 1 ? q : c;
                const float v = a1[k] * xp[q] + a0[k] + a2[k] * rp[q];
                yp[q] = (sp ? sp[q] : es) * v;
            }
        }
}

/* Fixed statistics: R{dx} = rho s (V_gamma dy + gamma R{dy});
 * R{dgamma} += rho sum s (R{dy} (x - mu) + dy R{x}), R{dbeta} += sum s R{dy}
 * (into P->cda, P->cdb, zeroed by the caller). */
static void fixed_rbackward(struct norm_priv *P, const struct nb_layer *l, const float *x,
                            const float *rx, const float *dy, const float *rdy, float *rdx,
                            const float *vg)
{
    const size_t HW = (size_t)P->HW, C = (size_t)P->C;
    const float es = P->escaled ? (float)noise_mean_scale(&P->o) : 1.0f;
    float *b1 = P->coef_a, *b2 = P->coef_b, *mu = P->coef_mu; /* (C) */
    for (size_t c = 0; c < C; c++) {
        const double rho = P->srstd[c];
        b1[c] = (float)(rho * vg[c]);
        b2[c] = (float)(rho * gamma_of(P, l, (int)c));
        mu[c] = (float)P->smean[c];
    }
    for (size_t i = 0; i < (size_t)P->n; i++)
        for (size_t c = 0; c < (HW == 1 ? 1 : C); c++) {
            const size_t off = HW == 1 ? i * C : (i * C + c) * HW, m = HW == 1 ? C : HW;
            const float *xp = x + off, *rp = rx + off, *gp = dy + off, *rgp = rdy + off;
            const float *sp = P->noised ? P->ns + off : NULL;
            if (HW == 1) {
                for (size_t q = 0; q < m; q++) {
                    const float sc = sp ? sp[q] : es, g = sc * gp[q], rg = sc * rgp[q];
                    P->cda[q] += (double)rg * (xp[q] - mu[q]) + (double)g * rp[q];
                    P->cdb[q] += rg;
                }
            } else {
                double sa = 0, sb = 0;
                for (size_t q = 0; q < m; q++) {
                    const float sc = sp ? sp[q] : es, g = sc * gp[q], rg = sc * rgp[q];
                    sa += (double)rg * (xp[q] - mu[c]) + (double)g * rp[q];
                    sb += rg;
                }
                P->cda[c] += sa;
                P->cdb[c] += sb;
            }
            if (!rdx)
                continue;
            float *op = rdx + off; /* (m) */
            for (size_t q = 0; q < m; q++) {
                const size_t k = HW == 1 ? q : c;
                op[q] = (sp ? sp[q] : es) * (b1[k] * gp[q] + b2[k] * rgp[q]);
            }
        }
    for (size_t c = 0; c < C; c++)
        P->cda[c] *= P->srstd[c];
}

void norm_rforward(struct nb_layer *l, const float *x, const float *y,
                   const float *rx, float *ry, int n)
{
    NB_UNUSED(y);
    struct norm_priv *P = l->priv;
    NB_ASSERT(P && n == P->n && !P->comm);
    const size_t total = (size_t)n * P->numel, HW = (size_t)P->HW;
    if (P->o.type == NB_NORM_NONE) {
        for (size_t i = 0; i < total; i++)
            ry[i] = (float)(noise_scale(P, i) * rx[i]);
        return;
    }
    NB_ASSERT(P->fixed || (P->moments && !P->o.renorm));
    const float *vg = P->p_gamma >= 0 ? l->params[P->p_gamma].rdir : P->zeros;
    const float *vb = P->p_beta >= 0 ? l->params[P->p_beta].rdir : P->zeros;
    NB_ASSERT(vg && vb);
    if (P->fixed) {
        fixed_rforward(P, l, x, rx, ry, vg, vb);
        return;
    }
    const size_t sets = set_count(P);
    for (size_t s = 0; s < sets; s++) {
        const double mu = P->smean[s], rho = P->srstd[s];
        double mr = 0, mxr = 0;
        if (!P->fixed)
            set_rmoments(P, s, x, rx, mu, rho, &mr, &mxr);
        size_t first, stride;
        const size_t np = set_planes(P, s, &first, &stride);
        for (size_t j = 0; j < np; j++) {
            const size_t pl = first + j * stride, off = pl * HW;
            const int c = (int)(pl % (size_t)P->C);
            const double g = gamma_of(P, l, c);
            for (size_t q = 0; q < HW; q++) {
                const size_t i = off + q;
                const double xh = ((double)x[i] - mu) * rho;
                const double rxh = P->fixed ? rho * rx[i] : rho * (rx[i] - mr - xh * mxr);
                ry[i] = (float)(noise_scale(P, i) * (vg[c] * xh + g * rxh + vb[c]));
            }
        }
    }
}

void norm_rbackward(struct nb_layer *l, const float *x, const float *y,
                    const float *rx, const float *dy, const float *rdy,
                    float *rdx, int n)
{
    NB_UNUSED(y);
    struct norm_priv *P = l->priv;
    NB_ASSERT(P && n == P->n && !P->comm);
    const size_t total = (size_t)n * P->numel, HW = (size_t)P->HW;
    if (P->o.type == NB_NORM_NONE) {
        if (rdx)
            for (size_t i = 0; i < total; i++)
                rdx[i] = (float)(noise_scale(P, i) * rdy[i]);
        return;
    }
    NB_ASSERT(P->fixed || (P->moments && !P->o.renorm));
    const float *vg = P->p_gamma >= 0 ? l->params[P->p_gamma].rdir : P->zeros;
    NB_ASSERT(vg);
    /* cda, cdb (backward's temporaries): R{dgamma}, R{dbeta} */
    for (int c = 0; c < P->C; c++)
        P->cda[c] = P->cdb[c] = 0;
    const size_t sets = P->fixed ? 0 : set_count(P);
    if (P->fixed)
        fixed_rbackward(P, l, x, rx, dy, rdy, rdx, vg);
    for (size_t s = 0; s < sets; s++) {
        const double mu = P->smean[s], rho = P->srstd[s];
        double mr = 0, mxr = 0;
        if (!P->fixed)
            set_rmoments(P, s, x, rx, mu, rho, &mr, &mxr);
        size_t first, stride;
        const size_t np = set_planes(P, s, &first, &stride);
        /* sums of gh, gh xh, R{gh}, R{gh} xh + gh R{xh} */
        double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
        for (size_t j = 0; j < np; j++) {
            const size_t pl = first + j * stride, off = pl * HW;
            const int c = (int)(pl % (size_t)P->C);
            const double gam = gamma_of(P, l, c);
            double ca = 0, cb = 0;
            for (size_t q = 0; q < HW; q++) {
                const size_t i = off + q;
                const double sc = noise_scale(P, i);
                const double xh = ((double)x[i] - mu) * rho;
                const double rxh = P->fixed ? rho * rx[i] : rho * (rx[i] - mr - xh * mxr);
                const double g = sc * dy[i], rg = sc * rdy[i];
                const double gh = gam * g, rgh = vg[c] * g + gam * rg;
                ca += rg * xh + g * rxh;
                cb += rg;
                s1 += gh;
                s2 += gh * xh;
                s3 += rgh;
                s4 += rgh * xh + gh * rxh;
            }
            P->cda[c] += ca;
            P->cdb[c] += cb;
        }
        if (!rdx)
            continue;
        const double m = (double)np * (double)HW;
        const double m1 = s1 / m, m2 = s2 / m, m3 = s3 / m, m4 = s4 / m;
        const double rr = -rho * mxr; /* R{rho} / rho */
        for (size_t j = 0; j < np; j++) {
            const size_t pl = first + j * stride, off = pl * HW;
            const int c = (int)(pl % (size_t)P->C);
            const double gam = gamma_of(P, l, c);
            for (size_t q = 0; q < HW; q++) {
                const size_t i = off + q;
                const double sc = noise_scale(P, i);
                const double g = sc * dy[i], rg = sc * rdy[i];
                const double gh = gam * g, rgh = vg[c] * g + gam * rg;
                if (P->fixed) {
                    rdx[i] = (float)(rho * rgh);
                    continue;
                }
                const double xh = ((double)x[i] - mu) * rho;
                const double rxh = rho * (rx[i] - mr - xh * mxr);
                const double dx = rho * (gh - m1 - xh * m2);
                rdx[i] = (float)(rr * dx + rho * (rgh - m3 - rxh * m2 - xh * m4));
            }
        }
    }
    if (P->p_gamma >= 0) {
        float *rg = l->params[P->p_gamma].rgrad, *rb = l->params[P->p_beta].rgrad;
        NB_ASSERT(rg && rb);
        for (int c = 0; c < P->C; c++) {
            rg[c] += (float)P->cda[c];
            rb[c] += (float)P->cdb[c];
        }
    }
}
