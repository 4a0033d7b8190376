/* src/layers/add.c - the residual add  y = x + shortcut(x2).
 *
 * x has the layer's input shape in = (C, H, W); the second input x2
 * (l->x2, shape l->in2 = (C2, H2, W2), set before setup and bound before
 * each forward/backward) goes through the shortcut:
 *  - identity when in2 == in;
 *  - otherwise "option A" of He et al. (2016, CIFAR ResNets): spatial
 *    subsampling with stride s, x2[:, :, ::s, ::s], and zero padding of
 *    the extra channels, which are appended after the C2 channels of x2:
 *      shortcut(x2)[c, h, w] = x2[c, h*s, w*s]  for c < C2,  0 for c >= C2.
 *    s is the smallest stride with ceil(H2/s) = H and ceil(W2/s) = W (so
 *    s = H2/H when that divides, and a 7x7 map subsampled to 4x4 works).
 * Backward: dx = dy; dx2 = the adjoint of the shortcut applied to dy,
 * i.e. dx2[c, h*s, w*s] = dy[c, h, w] for c < C2 and 0 at every position
 * the subsampling skips.  Both are OVERWRITTEN (each skipped when NULL).
 * R-operators (layer.h): the add is linear, so R{y} = R{x} +
 * shortcut(R{x2}) and (R{dx}, R{dx2}) is the backward of R{dy}. */
#include "layers/layer.h"

#include <stdlib.h>
#include <string.h>

struct add_priv {
    int s; /* spatial stride of the shortcut (1 = none) */
};

static int add_setup(struct nb_layer *l, const void *opts,
                     struct nb_error *err)
{
    NB_UNUSED(opts);
    const struct nb_shape *a = &l->in, *b = &l->in2;
    if (b->c <= 0 || b->h <= 0 || b->w <= 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: residual add needs the shape of its "
                            "second input (in2), got (%d,%d,%d)", l->name,
                            b->c, b->h, b->w);
    int s = 0;
    for (int t = 1; t <= b->h && t <= b->w; t++)
        if ((b->h + t - 1) / t == a->h && (b->w + t - 1) / t == a->w) {
            s = t;
            break;
        }
    if (b->c > a->c || s == 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: residual add cannot map the shortcut "
                            "(%d,%d,%d) onto (%d,%d,%d): option A needs at "
                            "least as many channels in the branch and a "
                            "spatial size ceil(in2/s) for one stride s",
                            l->name, b->c, b->h, b->w, a->c, a->h, a->w);
    struct add_priv *p = calloc(1, sizeof *p);
    if (!p)
        return nb_error_set(err, NB_ENOMEM, NULL, 0,
                            "layer %s: out of memory", l->name);
    l->priv = p;
    p->s = s;
    l->out = l->in;
    return 0;
}

/* y = x + shortcut(x2). */
static void add_apply(const struct nb_layer *l, const float *x,
                      const float *x2, /* x2: (n, C2, H2, W2) */
                      float *y, int n)
{
    const struct add_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    NB_ASSERT(x2 || n == 0);
    const int C = l->in.c, H = l->in.h, W = l->in.w;
    const int C2 = l->in2.c, H2 = l->in2.h, W2 = l->in2.w, s = p->s;
    const size_t xs = nb_shape_numel(&l->in), x2s = nb_shape_numel(&l->in2);
    if (s == 1 && C2 == C) {
        /* y = x + x2; x: (n, C, H, W), y: (n, C, H, W) */
        const size_t m = (size_t)n * xs;
        for (size_t i = 0; i < m; i++)
            y[i] = x[i] + x2[i];
        return;
    }
    for (int smp = 0; smp < n; smp++) {
        const float *xn = x + smp * xs;    /* xn: (C, H, W) */
        const float *x2n = x2 + smp * x2s; /* x2n: (C2, H2, W2) */
        float *yn = y + smp * xs;          /* yn: (C, H, W) */
        for (int c = 0; c < C; c++) {
            const float *xc = xn + (size_t)c * H * W;
            float *yc = yn + (size_t)c * H * W;
            if (c >= C2) {
                if (yc != xc)
                    memmove(yc, xc, (size_t)H * W * sizeof *yc);
                continue;
            }
            const float *x2c = x2n + (size_t)c * H2 * W2;
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    yc[h * W + w] = xc[h * W + w] +
                                    x2c[(size_t)h * s * W2 + (size_t)w * s];
        }
    }
}

static void add_forward(struct nb_layer *l, const float *x, float *y, int n,
                        enum nb_mode mode)
{
    NB_UNUSED(mode);
    add_apply(l, x, l->x2, y, n);
}

/* dx = dy, dx2 = the shortcut's adjoint of dy (each skipped when NULL). */
static void add_adjoint(const struct nb_layer *l, const float *dy, float *dx,
                        float *dx2, /* dx2: (n, C2, H2, W2) */
                        int n)
{
    const struct add_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    const int C = l->in.c, H = l->in.h, W = l->in.w;
    const int C2 = l->in2.c, H2 = l->in2.h, W2 = l->in2.w, s = p->s;
    const size_t xs = nb_shape_numel(&l->in), x2s = nb_shape_numel(&l->in2);
    if (dx && dx != dy)
        memmove(dx, dy, (size_t)n * xs * sizeof *dx);
    if (!dx2)
        return;
    if (s == 1 && C2 == C) {
        if (dx2 != dy)
            memmove(dx2, dy, (size_t)n * xs * sizeof *dx2);
        return;
    }
    if (s > 1)
        memset(dx2, 0, (size_t)n * x2s * sizeof *dx2);
    for (int smp = 0; smp < n; smp++) {
        const float *dyn = dy + smp * xs; /* dyn: (C, H, W) */
        float *dx2n = dx2 + smp * x2s;    /* dx2n: (C2, H2, W2) */
        for (int c = 0; c < C2; c++) {
            const float *dyc = dyn + (size_t)c * H * W;
            float *dx2c = dx2n + (size_t)c * H2 * W2;
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    dx2c[(size_t)h * s * W2 + (size_t)w * s] = dyc[h * W + w];
        }
    }
}

static void add_backward(struct nb_layer *l, const float *x, const float *y,
                         const float *dy, float *dx, int n)
{
    NB_UNUSED(x);
    NB_UNUSED(y);
    add_adjoint(l, dy, dx, l->dx2, n);
}

static void add_rforward(struct nb_layer *l, const float *x, const float *y,
                         const float *rx, float *ry, int n)
{
    NB_UNUSED(x);
    NB_UNUSED(y);
    add_apply(l, rx, l->rx2, ry, n);
}

static void add_rbackward(struct nb_layer *l, const float *x, const float *y,
                          const float *rx, const float *dy, const float *rdy,
                          float *rdx, int n)
{
    NB_UNUSED(x);
    NB_UNUSED(y);
    NB_UNUSED(rx);
    NB_UNUSED(dy);
    add_adjoint(l, rdy, rdx, l->rdx2, n);
}

static void add_destroy(struct nb_layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

const struct nb_layer_ops nb_add_ops = {
    .kind = "add",
    .setup = add_setup,
    .init = NULL,
    .forward = add_forward,
    .backward = add_backward,
    .destroy = add_destroy,
    .rforward = add_rforward,
    .rbackward = add_rbackward,
};
