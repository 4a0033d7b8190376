/* src/layers/pool.c - max pooling and global average pooling.
 *
 * maxpool (options struct nb_pool_opts: window k, stride; no padding, the
 * output size rounds down as in PyTorch's nn.MaxPool2d):
 *   y[n, c, oh, ow] = max_{i, j < k} x[n, c, oh*stride + i, ow*stride + j]
 * The position of the maximum (the first one in row-major window order on
 * ties) is recorded per output in l->priv, and backward routes dy there:
 *   dx[n, c, a(n, c, oh, ow)] += dy[n, c, oh, ow],  dx = 0 elsewhere.
 *
 * gap (no options): y[n, c] = mean_{h, w} x[n, c, h, w], output (C, 1, 1);
 *   dx[n, c, h, w] = dy[n, c] / (H W).
 *
 * R-operators (layer.h): both are linear around x (max-pool with the
 * forward's argmax fixed), so R{y} gathers R{x} at the argmax (gap:
 * averages it) and R{dx} is the backward of R{dy}. */
#include "layers/layer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- maxpool -------------------------------------------------------- */

struct maxpool_priv {
    int k, stride;
    int32_t *arg; /* arg: (max_batch, C, OH, OW) offsets into the x plane */
};

static int maxpool_setup(struct nb_layer *l, const void *opts,
                         struct nb_error *err)
{
    const struct nb_pool_opts *o = opts;
    if (!o)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: maxpool needs options (k, stride)",
                            l->name);
    if (o->k <= 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: maxpool window must be > 0, not %d",
                            l->name, o->k);
    if (o->stride <= 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: maxpool stride must be > 0, not %d",
                            l->name, o->stride);
    if (o->k > l->in.h || o->k > l->in.w)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: maxpool window %d is larger than the "
                            "input %dx%d", l->name, o->k, l->in.h, l->in.w);
    struct maxpool_priv *p = calloc(1, sizeof *p);
    if (!p)
        return nb_error_set(err, NB_ENOMEM, NULL, 0,
                            "layer %s: out of memory", l->name);
    l->priv = p;
    p->k = o->k;
    p->stride = o->stride;
    l->out = (struct nb_shape){l->in.c, (l->in.h - o->k) / o->stride + 1,
                               (l->in.w - o->k) / o->stride + 1};
    size_t count = (size_t)l->max_batch * nb_shape_numel(&l->out);
    p->arg = malloc(count * sizeof *p->arg);
    if (!p->arg)
        return nb_error_set(err, NB_ENOMEM, NULL, 0,
                            "layer %s: out of memory (%zu argmax entries)",
                            l->name, count);
    return 0;
}

static void maxpool_forward(struct nb_layer *l, const float *x, float *y,
                            int n, enum nb_mode mode)
{
    NB_UNUSED(mode);
    struct maxpool_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    const int H = l->in.h, W = l->in.w, OH = l->out.h, OW = l->out.w;
    const int k = p->k, s = p->stride;
    const size_t planes = (size_t)n * l->in.c;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * H * W;     /* xp: (H, W) */
        float *yp = y + pl * OH * OW;         /* yp: (OH, OW) */
        int32_t *ap = p->arg + pl * OH * OW;  /* ap: (OH, OW) */
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                const int base = oh * s * W + ow * s;
                int best = base;
                float m = xp[base];
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) {
                        /* branch-free select (conditional moves): random
                         * data makes a branch here mispredict; strict >
                         * keeps the first of tied maxima */
                        const int idx = base + i * W + j;
                        const float v = xp[idx];
                        const int gt = v > m;
                        best = gt ? idx : best;
                        m = gt ? v : m;
                    }
                yp[oh * OW + ow] = m;
                ap[oh * OW + ow] = best;
            }
    }
}

static void maxpool_backward(struct nb_layer *l, const float *x,
                             const float *y, const float *dy, float *dx,
                             int n)
{
    NB_UNUSED(x);
    NB_UNUSED(y);
    const struct maxpool_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    if (!dx)
        return;
    const size_t hw = (size_t)l->in.h * l->in.w;
    const size_t ohw = (size_t)l->out.h * l->out.w;
    const size_t planes = (size_t)n * l->in.c;
    memset(dx, 0, planes * hw * sizeof *dx);
    for (size_t pl = 0; pl < planes; pl++) {
        float *dxp = dx + pl * hw;                /* dxp: (H, W) */
        const float *dyp = dy + pl * ohw;         /* dyp: (OH, OW) */
        const int32_t *ap = p->arg + pl * ohw;    /* ap: (OH, OW) */
        for (size_t q = 0; q < ohw; q++)
            dxp[ap[q]] += dyp[q];
    }
}

static void maxpool_destroy(struct nb_layer *l)
{
    struct maxpool_priv *p = l->priv;
    if (p)
        free(p->arg);
    free(p);
    l->priv = NULL;
}

/* R{y}[n, c, q] = R{x}[n, c, a(n, c, q)]. */
static void maxpool_rforward(struct nb_layer *l, const float *x,
                             const float *y, const float *rx, float *ry,
                             int n)
{
    NB_UNUSED(x);
    NB_UNUSED(y);
    const struct maxpool_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    const size_t hw = (size_t)l->in.h * l->in.w;
    const size_t ohw = (size_t)l->out.h * l->out.w;
    const size_t planes = (size_t)n * l->in.c;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *rxp = rx + pl * hw;       /* rxp: (H, W) */
        float *ryp = ry + pl * ohw;            /* ryp: (OH, OW) */
        const int32_t *ap = p->arg + pl * ohw; /* ap: (OH, OW) */
        for (size_t q = 0; q < ohw; q++)
            ryp[q] = rxp[ap[q]];
    }
}

const struct nb_layer_ops nb_maxpool_ops = {
    .kind = "maxpool",
    .setup = maxpool_setup,
    .init = NULL,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .destroy = maxpool_destroy,
    .rforward = maxpool_rforward,
    .rbackward = nb_layer_rbackward_adjoint,
};

/* ---- global average pool -------------------------------------------- */

static int gap_setup(struct nb_layer *l, const void *opts,
                     struct nb_error *err)
{
    NB_UNUSED(opts);
    NB_UNUSED(err);
    l->out = (struct nb_shape){l->in.c, 1, 1};
    return 0;
}

static void gap_forward(struct nb_layer *l, const float *x, float *y, int n,
                        enum nb_mode mode)
{
    NB_UNUSED(mode);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    const size_t hw = (size_t)l->in.h * l->in.w;
    const size_t planes = (size_t)n * l->in.c;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * hw; /* xp: (H*W) */
        double acc = 0.0;
        for (size_t q = 0; q < hw; q++)
            acc += xp[q];
        y[pl] = (float)(acc / (double)hw); /* y: (n, C) */
    }
}

static void gap_backward(struct nb_layer *l, const float *x, const float *y,
                         const float *dy, float *dx, int n)
{
    NB_UNUSED(x);
    NB_UNUSED(y);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    if (!dx)
        return;
    const size_t hw = (size_t)l->in.h * l->in.w;
    const size_t planes = (size_t)n * l->in.c;
    const float inv = (float)(1.0 / (double)hw);
    for (size_t pl = 0; pl < planes; pl++) {
        float g = dy[pl] * inv;         /* dy: (n, C) */
        float *dxp = dx + pl * hw;      /* dxp: (H*W) */
        for (size_t q = 0; q < hw; q++)
            dxp[q] = g;
    }
}

static void gap_rforward(struct nb_layer *l, const float *x, const float *y,
                         const float *rx, float *ry, int n)
{
    NB_UNUSED(x);
    NB_UNUSED(y);
    gap_forward(l, rx, ry, n, NB_EVAL);
}

const struct nb_layer_ops nb_gap_ops = {
    .kind = "gap",
    .setup = gap_setup,
    .init = NULL,
    .forward = gap_forward,
    .backward = gap_backward,
    .destroy = NULL,
    .rforward = gap_rforward,
    .rbackward = nb_layer_rbackward_adjoint,
};
