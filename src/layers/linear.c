/* src/layers/linear.c - the fully connected layer.
 *
 * The input (C, H, W) of a sample is read as a flat vector of
 * in = C*H*W features (the NCHW layout makes that a no-op), the output has
 * shape (out, 1, 1).  Parameters: weight [out, in] row-major (PyTorch's
 * nn.Linear layout), bias [out] when opts->bias.  All products go through
 * CBLAS sgemm, with the batch as the M dimension.
 *
 * R-operators (layer.h), V and Vb the direction of W and b:
 *   R{Y}  = R{X} W^T + X V^T + 1 Vb^T
 *   R{dX} = R{dY} W + dY V
 *   R{dW} += R{dY}^T X + dY^T R{X},   R{db} += sum_n R{dY}[n, :]. */
#include "layers/layer.h"

#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>

struct linear_priv {
    int in, out;
    int w_idx; /* index of "weight" in l->params */
    int b_idx; /* index of "bias", or -1 */
};

static int linear_setup(struct nb_layer *l, const void *opts,
                        struct nb_error *err)
{
    const struct nb_linear_opts *o = opts;
    if (!o)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: linear needs options (out features)",
                            l->name);
    if (o->out <= 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: linear output features must be > 0, "
                            "not %d", l->name, o->out);
    size_t in = nb_shape_numel(&l->in);
    if (in > (size_t)1 << 30)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: linear input of %zu features is too "
                            "large", l->name, in);
    struct linear_priv *p = calloc(1, sizeof *p);
    if (!p)
        return nb_error_set(err, NB_ENOMEM, NULL, 0,
                            "layer %s: out of memory", l->name);
    l->priv = p;
    p->in = (int)in;
    p->out = o->out;
    p->b_idx = -1;
    p->w_idx = nb_layer_add_param(l, "weight", (size_t)p->out * in,
                                  NB_PARAM_WEIGHT, err);
    if (p->w_idx < 0)
        return err ? err->status : NB_EINVAL;
    l->params[p->w_idx].fan_in = p->in;
    l->params[p->w_idx].fan_out = p->out;
    l->params[p->w_idx].filters = p->out;
    if (o->bias) {
        p->b_idx = nb_layer_add_param(l, "bias", (size_t)p->out,
                                      NB_PARAM_BIAS, err);
        if (p->b_idx < 0)
            return err ? err->status : NB_EINVAL;
    }
    l->out = (struct nb_shape){p->out, 1, 1};
    l->scratch = 0;
    return 0;
}

/* y[n, o] = sum_i x[n, i] * w[o, i] + b[o]
 * i.e. Y = X W^T (+ 1 b^T). */
static void linear_forward(struct nb_layer *l, const float *x, float *y,
                           int n, enum nb_mode mode)
{
    NB_UNUSED(mode);
    const struct linear_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    if (n == 0)
        return;
    const float *w = l->params[p->w_idx].value; /* w: (out, in) */
    /* x: (n, in); y: (n, out) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, p->out, p->in,
                1.0f, x, p->in, w, p->in, 0.0f, y, p->out);
    if (p->b_idx >= 0) {
        const float *b = l->params[p->b_idx].value; /* b: (out) */
        for (int s = 0; s < n; s++) {
            float *ys = y + (size_t)s * p->out;
            for (int o = 0; o < p->out; o++)
                ys[o] += b[o];
        }
    }
}

/* dW += dY^T X,  db[o] += sum_n dy[n, o],  dX = dY W. */
static void linear_backward(struct nb_layer *l, const float *x,
                            const float *y, const float *dy, float *dx, int n)
{
    NB_UNUSED(y);
    const struct linear_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    if (n == 0)
        return;
    const float *w = l->params[p->w_idx].value; /* w: (out, in) */
    float *dw = l->params[p->w_idx].grad;       /* dw: (out, in) */
    /* x: (n, in); dy: (n, out); dx: (n, in) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p->out, p->in, n,
                1.0f, dy, p->out, x, p->in, 1.0f, dw, p->in);
    if (p->b_idx >= 0) {
        float *db = l->params[p->b_idx].grad; /* db: (out) */
        for (int o = 0; o < p->out; o++) {
            double s = 0.0;
            for (int i = 0; i < n; i++)
                s += dy[(size_t)i * p->out + o];
            db[o] += (float)s;
        }
    }
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, p->in,
                    p->out, 1.0f, dy, p->out, w, p->in, 0.0f, dx, p->in);
}

static void linear_rforward(struct nb_layer *l, const float *x,
                            const float *y, const float *rx, float *ry, int n)
{
    NB_UNUSED(y);
    const struct linear_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    if (n == 0)
        return;
    const float *w = l->params[p->w_idx].value; /* w: (out, in) */
    const float *v = l->params[p->w_idx].rdir;  /* v: (out, in) */
    NB_ASSERT(v);
    /* x, rx: (n, in); ry: (n, out); rx NULL: R{x} = 0 */
    if (rx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, p->out, p->in,
                    1.0f, rx, p->in, w, p->in, 0.0f, ry, p->out);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, p->out, p->in,
                1.0f, x, p->in, v, p->in, rx ? 1.0f : 0.0f, ry, p->out);
    if (p->b_idx >= 0) {
        const float *vb = l->params[p->b_idx].rdir; /* vb: (out) */
        NB_ASSERT(vb);
        for (int s = 0; s < n; s++) {
            float *ys = ry + (size_t)s * p->out;
            for (int o = 0; o < p->out; o++)
                ys[o] += vb[o];
        }
    }
}

static void linear_rbackward(struct nb_layer *l, const float *x,
                             const float *y, const float *rx, const float *dy,
                             const float *rdy, float *rdx, int n)
{
    NB_UNUSED(y);
    const struct linear_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    if (n == 0)
        return;
    const struct nb_param *pw = &l->params[p->w_idx];
    NB_ASSERT(pw->rdir && pw->rgrad);
    /* x, rx, rdx: (n, in); dy, rdy: (n, out); w, v, rdw: (out, in) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p->out, p->in, n,
                1.0f, rdy, p->out, x, p->in, 1.0f, pw->rgrad, p->in);
    if (rx) /* NULL: R{x} = 0 */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p->out, p->in, n,
                    1.0f, dy, p->out, rx, p->in, 1.0f, pw->rgrad, p->in);
    NB_ASSERT(rx || !rdx);
    if (p->b_idx >= 0) {
        float *rdb = l->params[p->b_idx].rgrad; /* rdb: (out) */
        NB_ASSERT(rdb);
        for (int o = 0; o < p->out; o++) {
            double s = 0.0;
            for (int i = 0; i < n; i++)
                s += rdy[(size_t)i * p->out + o];
            rdb[o] += (float)s;
        }
    }
    if (rdx) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, p->in,
                    p->out, 1.0f, rdy, p->out, pw->value, p->in, 0.0f, rdx,
                    p->in);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, p->in,
                    p->out, 1.0f, dy, p->out, pw->rdir, p->in, 1.0f, rdx,
                    p->in);
    }
}

static void linear_destroy(struct nb_layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

const struct nb_layer_ops nb_linear_ops = {
    .kind = "linear",
    .setup = linear_setup,
    .init = NULL,
    .forward = linear_forward,
    .backward = linear_backward,
    .destroy = linear_destroy,
    .rforward = linear_rforward,
    .rbackward = linear_rbackward,
    .rx_null_ok = true,
};
