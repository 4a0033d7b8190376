/* src/layers/activation.c - element-wise layers: relu, sigmoid, tanh,
 * flatten and dropout.  Each keeps the input shape (flatten reshapes to
 * (C*H*W, 1, 1)) and works on the n * numel contiguous floats.
 *
 * R-operators (layer.h): every one of them has a diagonal Jacobian
 * D = diag(f'(x)) (flatten's and EVAL dropout's the identity, relu's and
 * dropout's a cached mask), so R{y} = D R{x} is the kind's own backward
 * applied to R{x}; R{dx} = D R{dy} + diag(f''(x) dy) R{x}, where f'' is 0
 * for the piecewise-linear ones (relu: exact, the kink has measure zero
 * and its mask is that of the forward). */
#include "layers/layer.h"
#include "core/vec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

static size_t batch_numel(const struct nb_layer *l, int n)
{
    return (size_t)n * nb_shape_numel(&l->in);
}

static int same_shape_setup(struct nb_layer *l, const void *opts,
                            struct nb_error *err)
{
    NB_UNUSED(opts);
    NB_UNUSED(err);
    l->out = l->in;
    return 0;
}

/* ---- relu ----------------------------------------------------------- */

/* y = max(x, 0);  dx = dy * [x > 0]  (the kink at 0 gets gradient 0, as
 * in PyTorch; NaN maps to 0).
 *
 * Speed: a plain loop compiles at -O2 to a compare and a branch per
 * element, which mispredicts on random signs (measured 40x slower than
 * a select, a third of a cnn training step); blocks of 8 in local arrays
 * vectorize but go through the stack.  The kernels select in generic
 * vectors (core/vec.h) of 8 floats, compiled for the build's target and
 * (x86-64) for AVX2, picked per call; the same bytes as the scalar tail
 * (compares and selects only).  In-place use (y == x) stays correct: each
 * block is loaded before it is stored. */
#if NB_VEC
#define RELU_KERNELS(NAME, ATTR)                                                    \
    static ATTR void relu_fwd_##NAME(const float *x, float *y, size_t m)            \
    {                                                                               \
        const wv8 zero = {0};                                                       \
        size_t i = 0;                                                               \
        for (; i + 8 <= m; i += 8) {                                                \
            const wv8 v = WV8_LD(x + i);                                            \
            WV8_ST(y + i, WV8_SEL(v > zero, v, zero));                              \
        }                                                                           \
        for (; i < m; i++)                                                          \
            y[i] = x[i] > 0.0f ? x[i] : 0.0f;                                       \
    }                                                                               \
    static ATTR void relu_bwd_##NAME(const float *x, const float *dy, float *dx,    \
                                     size_t m)                                      \
    {                                                                               \
        const wv8 zero = {0};                                                       \
        size_t i = 0;                                                               \
        for (; i + 8 <= m; i += 8) {                                                \
            const wv8 v = WV8_LD(x + i), g = WV8_LD(dy + i);                        \
            WV8_ST(dx + i, WV8_SEL(v > zero, g, zero));                             \
        }                                                                           \
        for (; i < m; i++)                                                          \
            dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;                                     \
    }
RELU_KERNELS(generic, )
#if NB_VEC_AVX2
RELU_KERNELS(avx2, __attribute__((target("avx2"))))
#endif
#define RELU_PICK(NAME) NB_VEC_PICK(NAME)
#else
static void relu_fwd_scalar(const float *x, float *y, size_t m)
{
    for (size_t i = 0; i < m; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
static void relu_bwd_scalar(const float *x, const float *dy, float *dx, size_t m)
{
    for (size_t i = 0; i < m; i++)
        dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}
#define RELU_PICK(NAME) NAME##_scalar
#endif

static void relu_forward(struct nb_layer *l, const float *x, float *y, int n,
                         enum nb_mode mode)
{
    NB_UNUSED(mode);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    RELU_PICK(relu_fwd)(x, y, batch_numel(l, n)); /* x, y: (n, C, H, W) */
}

static void relu_backward(struct nb_layer *l, const float *x, const float *y,
                          const float *dy, float *dx, int n)
{
    NB_UNUSED(y);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    if (!dx)
        return;
    RELU_PICK(relu_bwd)(x, dy, dx, batch_numel(l, n)); /* x, dy, dx: (n, C, H, W) */
}

/* R{y} = [x > 0] R{x}: the backward's mask applied to rx. */
static void relu_rforward(struct nb_layer *l, const float *x, const float *y,
                          const float *rx, float *ry, int n)
{
    relu_backward(l, x, y, rx, ry, n);
}

const struct nb_layer_ops nb_relu_ops = {
    .kind = "relu",
    .setup = same_shape_setup,
    .init = NULL,
    .forward = relu_forward,
    .backward = relu_backward,
    .destroy = NULL,
    .rforward = relu_rforward,
    .rbackward = nb_layer_rbackward_adjoint,
};

/* ---- sigmoid -------------------------------------------------------- */

/* y = 1 / (1 + exp(-x)), evaluated without overflow on either side;
 * dx = dy * y * (1 - y), from y alone. */
static void sigmoid_forward(struct nb_layer *l, const float *x, float *y,
                            int n, enum nb_mode mode)
{
    NB_UNUSED(mode);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    const size_t m = batch_numel(l, n); /* x, y: (n, C, H, W) */
    for (size_t i = 0; i < m; i++) {
        float v = x[i];
        if (v >= 0.0f) {
            y[i] = 1.0f / (1.0f + expf(-v));
        } else {
            float e = expf(v);
            y[i] = e / (1.0f + e);
        }
    }
}

static void sigmoid_backward(struct nb_layer *l, const float *x,
                             const float *y, const float *dy, float *dx,
                             int n)
{
    NB_UNUSED(x);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    if (!dx)
        return;
    const size_t m = batch_numel(l, n); /* y, dy, dx: (n, C, H, W) */
    for (size_t i = 0; i < m; i++)
        dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

/* R{y} = y (1 - y) R{x}. */
static void sigmoid_rforward(struct nb_layer *l, const float *x,
                             const float *y, const float *rx, float *ry,
                             int n)
{
    sigmoid_backward(l, x, y, rx, ry, n);
}

/* dx = dy s', s' = y (1 - y), s'' = s' (1 - 2y):
 * R{dx} = R{dy} s' + dy s'' R{x}. */
static void sigmoid_rbackward(struct nb_layer *l, const float *x,
                              const float *y, const float *rx,
                              const float *dy, const float *rdy, float *rdx,
                              int n)
{
    NB_UNUSED(x);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    if (!rdx)
        return;
    const size_t m = batch_numel(l, n); /* y, rx, dy, rdy, rdx: (n, C, H, W) */
    for (size_t i = 0; i < m; i++) {
        const double s1 = (double)y[i] * (1.0 - (double)y[i]);
        const double s2 = s1 * (1.0 - 2.0 * (double)y[i]);
        rdx[i] = (float)(rdy[i] * s1 + (double)dy[i] * s2 * rx[i]);
    }
}

const struct nb_layer_ops nb_sigmoid_ops = {
    .kind = "sigmoid",
    .setup = same_shape_setup,
    .init = NULL,
    .forward = sigmoid_forward,
    .backward = sigmoid_backward,
    .destroy = NULL,
    .rforward = sigmoid_rforward,
    .rbackward = sigmoid_rbackward,
};

/* ---- tanh ----------------------------------------------------------- */

/* y = tanh(x);  dx = dy (1 - y^2), from y alone. */
static void tanh_forward(struct nb_layer *l, const float *x, float *y, int n,
                         enum nb_mode mode)
{
    NB_UNUSED(mode);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    const size_t m = batch_numel(l, n); /* x, y: (n, C, H, W) */
    for (size_t i = 0; i < m; i++)
        y[i] = tanhf(x[i]);
}

static void tanh_backward(struct nb_layer *l, const float *x, const float *y,
                          const float *dy, float *dx, int n)
{
    NB_UNUSED(x);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    if (!dx)
        return;
    const size_t m = batch_numel(l, n); /* y, dy, dx: (n, C, H, W) */
    for (size_t i = 0; i < m; i++)
        dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

/* R{y} = (1 - y^2) R{x}. */
static void tanh_rforward(struct nb_layer *l, const float *x, const float *y,
                          const float *rx, float *ry, int n)
{
    tanh_backward(l, x, y, rx, ry, n);
}

/* t' = 1 - y^2, t'' = -2 y t':  R{dx} = R{dy} t' + dy t'' R{x}. */
static void tanh_rbackward(struct nb_layer *l, const float *x, const float *y,
                           const float *rx, const float *dy, const float *rdy,
                           float *rdx, int n)
{
    NB_UNUSED(x);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    if (!rdx)
        return;
    const size_t m = batch_numel(l, n); /* y, rx, dy, rdy, rdx: (n, C, H, W) */
    for (size_t i = 0; i < m; i++) {
        const double t1 = 1.0 - (double)y[i] * (double)y[i];
        const double t2 = -2.0 * (double)y[i] * t1;
        rdx[i] = (float)(rdy[i] * t1 + (double)dy[i] * t2 * rx[i]);
    }
}

const struct nb_layer_ops nb_tanh_ops = {
    .kind = "tanh",
    .setup = same_shape_setup,
    .init = NULL,
    .forward = tanh_forward,
    .backward = tanh_backward,
    .destroy = NULL,
    .rforward = tanh_rforward,
    .rbackward = tanh_rbackward,
};

/* ---- flatten -------------------------------------------------------- */

static int flatten_setup(struct nb_layer *l, const void *opts,
                         struct nb_error *err)
{
    NB_UNUSED(opts);
    size_t m = nb_shape_numel(&l->in);
    if (m > (size_t)1 << 30)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: flatten of %zu features is too large",
                            l->name, m);
    l->out = (struct nb_shape){(int)m, 1, 1};
    return 0;
}

/* y = x reshaped to (n, C*H*W): a copy (NCHW already is that layout). */
static void flatten_forward(struct nb_layer *l, const float *x, float *y,
                            int n, enum nb_mode mode)
{
    NB_UNUSED(mode);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    if (x != y)
        memmove(y, x, batch_numel(l, n) * sizeof *y);
}

static void flatten_backward(struct nb_layer *l, const float *x,
                             const float *y, const float *dy, float *dx,
                             int n)
{
    NB_UNUSED(x);
    NB_UNUSED(y);
    NB_ASSERT(n >= 0 && n <= l->max_batch);
    if (dx && dx != dy)
        memmove(dx, dy, batch_numel(l, n) * sizeof *dx);
}

/* R{y} = R{x}, reshaped. */
static void flatten_rforward(struct nb_layer *l, const float *x,
                             const float *y, const float *rx, float *ry,
                             int n)
{
    NB_UNUSED(y);
    NB_UNUSED(x);
    flatten_forward(l, rx, ry, n, NB_EVAL);
}

const struct nb_layer_ops nb_flatten_ops = {
    .kind = "flatten",
    .setup = flatten_setup,
    .init = NULL,
    .forward = flatten_forward,
    .backward = flatten_backward,
    .destroy = NULL,
    .rforward = flatten_rforward,
    .rbackward = nb_layer_rbackward_adjoint,
};

/* ---- dropout -------------------------------------------------------- */

/* Inverted dropout with drop probability p:
 *   TRAIN, PROBE: m_i = [u_i >= p] / (1 - p), u_i ~ U[0, 1) drawn from
 *                 ctx->rng_dropout (TRAIN) or ctx->rng_probe (PROBE);
 *                 y = m * x,  dx = m * dy;
 *   EVAL:         y = x,  dx = dy.
 * E[y] = x in every mode.  The mask of the last forward is kept in priv.
 * The slice of a batch split over processes (ctx->part_total) gets the
 * mask one process draws for the whole batch. */
struct dropout_priv {
    float p;
    float *mask;  /* mask: (max_batch, C, H, W) */
    int identity; /* last forward was EVAL (or p == 0): mask unused */
};

static int dropout_setup(struct nb_layer *l, const void *opts,
                         struct nb_error *err)
{
    const struct nb_dropout_opts *o = opts;
    if (!o)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: dropout needs options (p)", l->name);
    if (!(o->p >= 0.0f && o->p < 1.0f))
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: dropout probability must be in "
                            "[0, 1), not %g", l->name, (double)o->p);
    struct dropout_priv *p = calloc(1, sizeof *p);
    if (!p)
        return nb_error_set(err, NB_ENOMEM, NULL, 0,
                            "layer %s: out of memory", l->name);
    l->priv = p;
    p->p = o->p;
    p->identity = 1;
    size_t count = batch_numel(l, l->max_batch);
    p->mask = nb_alloc_floats(count);
    if (!p->mask)
        return nb_error_set(err, NB_ENOMEM, NULL, 0,
                            "layer %s: out of memory (%zu mask floats)",
                            l->name, count);
    l->out = l->in;
    return 0;
}

static void dropout_forward(struct nb_layer *l, const float *x, float *y,
                            int n, enum nb_mode mode)
{
    struct dropout_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    const size_t m = batch_numel(l, n); /* x, y, mask: (n, C, H, W) */
    if (mode == NB_EVAL || p->p == 0.0f) {
        p->identity = 1;
        if (x != y)
            memmove(y, x, m * sizeof *y);
        return;
    }
    NB_ASSERT(l->ctx);
    gsl_rng *r = mode == NB_TRAIN ? l->ctx->rng_dropout : l->ctx->rng_probe;
    NB_ASSERT(r);
    const double drop = p->p;
    const float keep = (float)(1.0 / (1.0 - drop));
    p->identity = 0;
    /* a slice of a batch split over processes: the draws of the samples
     * before and after it are made too, so the stream moves as it does
     * in one process */
    const struct nb_ctx *cx = l->ctx;
    size_t before = 0, after = 0;
    if (cx->part_total > 0) {
        NB_ASSERT(cx->part_start >= 0 && cx->part_start + n <= cx->part_total);
        before = batch_numel(l, cx->part_start);
        after = batch_numel(l, cx->part_total - cx->part_start - n);
    }
    for (size_t i = 0; i < before; i++)
        gsl_rng_uniform(r);
    for (size_t i = 0; i < m; i++) {
        float k = gsl_rng_uniform(r) >= drop ? keep : 0.0f;
        p->mask[i] = k;
        y[i] = k * x[i];
    }
    for (size_t i = 0; i < after; i++)
        gsl_rng_uniform(r);
}

static void dropout_backward(struct nb_layer *l, const float *x,
                             const float *y, const float *dy, float *dx,
                             int n)
{
    NB_UNUSED(x);
    NB_UNUSED(y);
    const struct dropout_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    if (!dx)
        return;
    const size_t m = batch_numel(l, n); /* dy, dx, mask: (n, C, H, W) */
    if (p->identity) {
        if (dx != dy)
            memmove(dx, dy, m * sizeof *dx);
        return;
    }
    for (size_t i = 0; i < m; i++)
        dx[i] = p->mask[i] * dy[i];
}

double nb_dropout_rate(const struct nb_layer *l)
{
    if (!l || l->ops != &nb_dropout_ops || !l->priv)
        return 0.0;
    return ((const struct dropout_priv *)l->priv)->p;
}

static void dropout_destroy(struct nb_layer *l)
{
    struct dropout_priv *p = l->priv;
    if (p)
        free(p->mask);
    free(p);
    l->priv = NULL;
}

/* R{y} = m R{x} with the forward's mask (EVAL: R{x}). */
static void dropout_rforward(struct nb_layer *l, const float *x,
                             const float *y, const float *rx, float *ry,
                             int n)
{
    dropout_backward(l, x, y, rx, ry, n);
}

const struct nb_layer_ops nb_dropout_ops = {
    .kind = "dropout",
    .setup = dropout_setup,
    .init = NULL,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .destroy = dropout_destroy,
    .rforward = dropout_rforward,
    .rbackward = nb_layer_rbackward_adjoint,
};
