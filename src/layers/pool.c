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
 * averages it) and R{dx} is the backward of R{dy}.
 *
 * Speed: the 2x2, stride-2 window (every pool of the workloads) has its
 * own kernels, 8 or 4 outputs at a time in generic vectors (core/vec.h,
 * AVX2 where the CPU has it, twice the speed of the build's SSE2): the
 * forward deinterleaves two input rows and runs the general code's
 * compares lane by lane (the same maxima, argmaxima, ties and NaNs); the
 * backward writes each window's four dx at once (dy at the argmax, 0
 * elsewhere) instead of zeroing dx and scattering, when the windows tile
 * the plane (even H and W).  Both give the general code's bytes. */
#include "layers/layer.h"
#include "core/vec.h"

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

#if NB_VEC
/* One step of the 2x2, stride-2 window: the VW (8 or 4) outputs ow ..
 * ow + VW - 1 of output row oh of one plane (suffixes: V the vector
 * macros' width prefix, WV8 or WV4; T its float, TI its int type). */
#define MAXPOOL2_FWD(V, T, TI, VW)                                                  \
    do {                                                                            \
        const float *r0 = xp + (size_t)2 * oh * W + 2 * ow, *r1 = r0 + W;           \
        const T a = V##_LD(r0), b = V##_LD(r0 + VW);                                \
        const T c = V##_LD(r1), d = V##_LD(r1 + VW);                                \
        const T x00 = V##_EVEN(a, b), x01 = V##_ODD(a, b);                          \
        const T x10 = V##_EVEN(c, d), x11 = V##_ODD(c, d);                          \
        const TI base = lane2_##VW + (2 * oh * W + 2 * ow);                         \
        T m = x00;                                                                  \
        TI best = base, gt;                                                         \
        gt = x01 > m;                                                               \
        best = (gt & (base + 1)) | (~gt & best);                                    \
        m = V##_SEL(gt, x01, m);                                                    \
        gt = x10 > m;                                                               \
        best = (gt & (base + W)) | (~gt & best);                                    \
        m = V##_SEL(gt, x10, m);                                                    \
        gt = x11 > m;                                                               \
        best = (gt & (base + W + 1)) | (~gt & best);                                \
        m = V##_SEL(gt, x11, m);                                                    \
        V##_ST(yp + oh * OW + ow, m);                                               \
        V##I_ST(ap + oh * OW + ow, best);                                           \
    } while (0)

/* dx of the VW windows ow .. ow + VW - 1 of output row oh: dy at the
 * argmax, +0 elsewhere (as the general code's zeroed dx plus dy). */
#define MAXPOOL2_BWD(V, T, TI, VW)                                                  \
    do {                                                                            \
        const T zero = {0};                                                         \
        const T g = V##_LD(dyp + oh * OW + ow) + zero; /* -0 -> +0 */               \
        const TI a = V##I_LD(ap + oh * OW + ow);                                    \
        const TI base = lane2_##VW + (2 * oh * W + 2 * ow);                         \
        const T d00 = V##_SEL(a == base, g, zero);                                  \
        const T d01 = V##_SEL(a == base + 1, g, zero);                              \
        const T d10 = V##_SEL(a == base + W, g, zero);                              \
        const T d11 = V##_SEL(a == base + W + 1, g, zero);                          \
        float *r0 = dxp + (size_t)2 * oh * W + 2 * ow, *r1 = r0 + W;                \
        V##_ST(r0, V##_ZIPLO(d00, d01));                                            \
        V##_ST(r0 + VW, V##_ZIPHI(d00, d01));                                       \
        V##_ST(r1, V##_ZIPLO(d10, d11));                                            \
        V##_ST(r1 + VW, V##_ZIPHI(d10, d11));                                       \
    } while (0)

static const wv8i lane2_8 = {0, 2, 4, 6, 8, 10, 12, 14};
static const wv4i lane2_4 = {0, 2, 4, 6};

/* Runs STEP over the outputs 0 .. OW - 1 of a row, 8 or 4 at a time (OW
 * >= 4); a last step that would pass OW is moved back to OW - width, so
 * it computes some outputs again (the same values) and stays in the row. */
#define MAXPOOL2_ROW(STEP)                                                          \
    do {                                                                            \
        if (OW >= 8)                                                                \
            for (int ow = 0; ow < OW; ow += 8) {                                    \
                ow = ow > OW - 8 ? OW - 8 : ow;                                     \
                STEP(WV8, wv8, wv8i, 8);                                            \
            }                                                                       \
        else                                                                        \
            for (int ow = 0; ow < OW; ow += 4) {                                    \
                ow = ow > OW - 4 ? OW - 4 : ow;                                     \
                STEP(WV4, wv4, wv4i, 4);                                            \
            }                                                                       \
    } while (0)

/* Whether the vector kernels take a max-pool: 2x2, stride 2, at least 4
 * outputs a row, and (for the backward's writes) windows that tile the
 * plane: even H and W. */
static bool maxpool2_vec(const struct nb_layer *l, const struct maxpool_priv *p)
{
    return p->k == 2 && p->stride == 2 && l->out.w >= 4 && l->in.h % 2 == 0 &&
           l->in.w % 2 == 0;
}

/* The kernels, compiled for the build's target and (x86-64) for AVX2,
 * picked per call; the two give the same bytes (compares, selects and
 * moves only). */
#define MAXPOOL2_KERNELS(NAME, ATTR)                                                \
    static ATTR void maxpool2_forward_##NAME(const float *x, float *y, int32_t *arg, \
                                             size_t planes, int W, int OH, int OW)  \
    {                                                                               \
        for (size_t pl = 0; pl < planes; pl++) {                                    \
            const float *xp = x + pl * (size_t)4 * OH * OW; /* (2 OH, 2 OW) */       \
            float *yp = y + pl * OH * OW;                   /* (OH, OW) */          \
            int32_t *ap = arg + pl * OH * OW;               /* (OH, OW) */          \
            for (int oh = 0; oh < OH; oh++)                                         \
                MAXPOOL2_ROW(MAXPOOL2_FWD);                                         \
        }                                                                           \
    }                                                                               \
    static ATTR void maxpool2_backward_##NAME(const int32_t *arg, const float *dy,  \
                                              float *dx, size_t planes, int W,      \
                                              int OH, int OW)                       \
    {                                                                               \
        for (size_t pl = 0; pl < planes; pl++) {                                    \
            const float *dyp = dy + pl * OH * OW;       /* (OH, OW) */              \
            const int32_t *ap = arg + pl * OH * OW;     /* (OH, OW) */              \
            float *dxp = dx + pl * (size_t)4 * OH * OW; /* (2 OH, 2 OW) */          \
            for (int oh = 0; oh < OH; oh++)                                         \
                MAXPOOL2_ROW(MAXPOOL2_BWD);                                         \
        }                                                                           \
    }

MAXPOOL2_KERNELS(generic, )
#if NB_VEC_AVX2
MAXPOOL2_KERNELS(avx2, __attribute__((target("avx2"))))
#endif
#define maxpool2_forward NB_VEC_PICK(maxpool2_forward)
#define maxpool2_backward NB_VEC_PICK(maxpool2_backward)
#else
static bool maxpool2_vec(const struct nb_layer *l, const struct maxpool_priv *p)
{
    NB_UNUSED(l);
    NB_UNUSED(p);
    return false;
}
#define maxpool2_forward(...) NB_ASSERT(0)
#define maxpool2_backward(...) NB_ASSERT(0)
#endif

static void maxpool_forward(struct nb_layer *l, const float *x, float *y,
                            int n, enum nb_mode mode)
{
    NB_UNUSED(mode);
    struct maxpool_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    const int H = l->in.h, W = l->in.w, OH = l->out.h, OW = l->out.w;
    const int k = p->k, s = p->stride;
    const size_t planes = (size_t)n * l->in.c;
    if (maxpool2_vec(l, p)) {
        maxpool2_forward(x, y, p->arg, planes, W, OH, OW);
        return;
    }
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
    if (maxpool2_vec(l, p)) {
        maxpool2_backward(p->arg, dy, dx, planes, l->in.w, l->out.h, l->out.w);
        return;
    }
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
