/* src/layers/loss.c - per-sample losses: softmax cross-entropy and MSE.
 *
 * Both read a sample's input (C, H, W) as a flat vector of D = C*H*W
 * values and output the per-sample loss, shape (1, 1, 1).  The owner
 * averages over the batch and passes dy[n] = 1/n, so the batch loss is
 * PyTorch's mean reduction in both cases.
 *
 * xent (labels from ctx->labels, each in [0, D)):
 *   L_n = logsumexp(x_n) - x_n[label_n]
 *       = m + log sum_k exp(x_n[k] - m) - x_n[label_n],  m = max_k x_n[k]
 *   (max subtraction and the sum in double: finite at logits of 1e4);
 *   dx_n[k] = dy[n] * (softmax(x_n)[k] - [k == label_n]).
 *
 * mse (targets from ctx->targets, (n, D)):
 *   L_n = (1/D) sum_k (x_n[k] - t_n[k])^2   (mean over the sample's values)
 *   dx_n[k] = dy[n] * 2 (x_n[k] - t_n[k]) / D.
 *   The batch mean of L_n equals PyTorch's MSELoss(reduction='mean').
 *
 * R-operators (layer.h), r = R{x_n}, p = softmax(x_n), e = onehot(label):
 *   xent: R{L_n} = (p - e) . r,
 *         R{dx_n} = R{dy[n]} (p - e) + dy[n] (diag(p) - p p^T) r
 *                 = R{dy[n]} (p - e) + dy[n] p * (r - p . r);
 *   mse:  R{L_n} = (2/D) (x_n - t_n) . r,
 *         R{dx_n} = (2/D) (R{dy[n]} (x_n - t_n) + dy[n] r).
 * (The owner's dy = 1/n is a constant: R{dy} = 0 there.)  Per sample in
 * double. */
#include "layers/layer.h"

#include <math.h>

static int loss_setup(struct nb_layer *l, const void *opts,
                      struct nb_error *err)
{
    NB_UNUSED(opts);
    size_t d = nb_shape_numel(&l->in);
    if (d > (size_t)1 << 30)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: loss input of %zu values is too large",
                            l->name, d);
    l->out = (struct nb_shape){1, 1, 1};
    return 0;
}

/* ---- softmax cross-entropy ------------------------------------------ */

/* Returns logsumexp(x) = m + log sum_k exp(x[k] - m), m = max_k x[k]. */
static double xent_lse(const float *x, /* x: (D) */
                       size_t d)
{
    double m = x[0];
    for (size_t k = 1; k < d; k++)
        if (x[k] > m)
            m = x[k];
    double sum = 0.0;
    for (size_t k = 0; k < d; k++)
        sum += exp((double)x[k] - m);
    return m + log(sum);
}

static int xent_label(const struct nb_layer *l, int n, size_t d)
{
    NB_ASSERT(l->ctx && l->ctx->labels);
    int lab = l->ctx->labels[n];
    NB_ASSERT(lab >= 0 && (size_t)lab < d);
    return lab;
}

static void xent_forward(struct nb_layer *l, const float *x, float *y, int n,
                         enum nb_mode mode)
{
    NB_UNUSED(mode);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    const size_t d = nb_shape_numel(&l->in);
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * d; /* xs: (D) logits */
        const double lse = xent_lse(xs, d);
        y[s] = (float)(lse - (double)xs[xent_label(l, s, d)]); /* y: (n) */
    }
}

static void xent_backward(struct nb_layer *l, const float *x, const float *y,
                          const float *dy, float *dx, int n)
{
    NB_UNUSED(y);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    if (!dx)
        return;
    const size_t d = nb_shape_numel(&l->in);
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * d; /* xs: (D) */
        float *dxs = dx + (size_t)s * d;     /* dxs: (D) */
        const double lse = xent_lse(xs, d);
        const double g = dy[s]; /* dy: (n) */
        for (size_t k = 0; k < d; k++)
            dxs[k] = (float)(g * exp((double)xs[k] - lse));
        int lab = xent_label(l, s, d);
        dxs[lab] = (float)(g * (exp((double)xs[lab] - lse) - 1.0));
    }
}

static void xent_rforward(struct nb_layer *l, const float *x, const float *y,
                          const float *rx, float *ry, int n)
{
    NB_UNUSED(y);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    const size_t d = nb_shape_numel(&l->in);
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * d, *rs = rx + (size_t)s * d; /* (D) */
        const double lse = xent_lse(xs, d);
        double acc = 0.0;
        for (size_t k = 0; k < d; k++)
            acc += exp((double)xs[k] - lse) * (double)rs[k];
        ry[s] = (float)(acc - (double)rs[xent_label(l, s, d)]); /* ry: (n) */
    }
}

static void xent_rbackward(struct nb_layer *l, const float *x, const float *y,
                           const float *rx, const float *dy, const float *rdy,
                           float *rdx, int n)
{
    NB_UNUSED(y);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    if (!rdx)
        return;
    const size_t d = nb_shape_numel(&l->in);
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * d, *rs = rx + (size_t)s * d; /* (D) */
        float *out = rdx + (size_t)s * d;                               /* (D) */
        const double lse = xent_lse(xs, d);
        double pr = 0.0; /* p . r */
        for (size_t k = 0; k < d; k++)
            pr += exp((double)xs[k] - lse) * (double)rs[k];
        const double g = dy[s], rg = rdy[s];
        const int lab = xent_label(l, s, d);
        for (size_t k = 0; k < d; k++) {
            const double pk = exp((double)xs[k] - lse);
            const double e = (int)k == lab ? 1.0 : 0.0;
            out[k] = (float)(rg * (pk - e) + g * pk * ((double)rs[k] - pr));
        }
    }
}

const struct nb_layer_ops nb_xent_ops = {
    .kind = "xent",
    .setup = loss_setup,
    .init = NULL,
    .forward = xent_forward,
    .backward = xent_backward,
    .destroy = NULL,
    .rforward = xent_rforward,
    .rbackward = xent_rbackward,
};

/* ---- mean squared error --------------------------------------------- */

static void mse_forward(struct nb_layer *l, const float *x, float *y, int n,
                        enum nb_mode mode)
{
    NB_UNUSED(mode);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    NB_ASSERT(n == 0 || (l->ctx && l->ctx->targets));
    const size_t d = nb_shape_numel(&l->in);
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * d;               /* xs: (D) */
        const float *ts = l->ctx->targets + (size_t)s * d; /* ts: (D) */
        double acc = 0.0;
        for (size_t k = 0; k < d; k++) {
            double e = (double)xs[k] - (double)ts[k];
            acc += e * e;
        }
        y[s] = (float)(acc / (double)d); /* y: (n) */
    }
}

static void mse_backward(struct nb_layer *l, const float *x, const float *y,
                         const float *dy, float *dx, int n)
{
    NB_UNUSED(y);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    if (!dx)
        return;
    NB_ASSERT(n == 0 || (l->ctx && l->ctx->targets));
    const size_t d = nb_shape_numel(&l->in);
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * d;               /* xs: (D) */
        const float *ts = l->ctx->targets + (size_t)s * d; /* ts: (D) */
        float *dxs = dx + (size_t)s * d;                   /* dxs: (D) */
        const float g = (float)(2.0 * (double)dy[s] / (double)d);
        for (size_t k = 0; k < d; k++)
            dxs[k] = g * (xs[k] - ts[k]);
    }
}

static void mse_rforward(struct nb_layer *l, const float *x, const float *y,
                         const float *rx, float *ry, int n)
{
    NB_UNUSED(y);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    NB_ASSERT(n == 0 || (l->ctx && l->ctx->targets));
    const size_t d = nb_shape_numel(&l->in);
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * d, *rs = rx + (size_t)s * d; /* (D) */
        const float *ts = l->ctx->targets + (size_t)s * d;              /* (D) */
        double acc = 0.0;
        for (size_t k = 0; k < d; k++)
            acc += ((double)xs[k] - (double)ts[k]) * (double)rs[k];
        ry[s] = (float)(2.0 * acc / (double)d); /* ry: (n) */
    }
}

static void mse_rbackward(struct nb_layer *l, const float *x, const float *y,
                          const float *rx, const float *dy, const float *rdy,
                          float *rdx, int n)
{
    NB_UNUSED(y);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    if (!rdx)
        return;
    NB_ASSERT(n == 0 || (l->ctx && l->ctx->targets));
    const size_t d = nb_shape_numel(&l->in);
    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * d, *rs = rx + (size_t)s * d; /* (D) */
        const float *ts = l->ctx->targets + (size_t)s * d;              /* (D) */
        float *out = rdx + (size_t)s * d;                               /* (D) */
        const double c = 2.0 / (double)d, g = dy[s], rg = rdy[s];
        for (size_t k = 0; k < d; k++)
            out[k] = (float)(c * (rg * ((double)xs[k] - (double)ts[k]) +
                                  g * (double)rs[k]));
    }
}

const struct nb_layer_ops nb_mse_ops = {
    .kind = "mse",
    .setup = loss_setup,
    .init = NULL,
    .forward = mse_forward,
    .backward = mse_backward,
    .destroy = NULL,
    .rforward = mse_rforward,
    .rbackward = mse_rbackward,
};
