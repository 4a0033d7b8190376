/* src/layers/conv2d.c - 2-D convolution (cross-correlation, as PyTorch's
 * nn.Conv2d) by im2col + sgemm, and by Winograd F(2x2, 3x3) for 3x3,
 * stride-1, pad-1 convolutions (see its section below; nb_conv2d_opts.algo
 * chooses).
 *
 * Shapes: x (N, C, H, W) -> y (N, O, OH, OW) with
 *   OH = (H + 2 pad - k) / stride + 1,   OW likewise,
 * weight [O, C*k*k] row-major (= PyTorch's (O, C, k, k)), optional bias [O].
 *
 *   y[n, o, oh, ow] = b[o] + sum_{c, i, j} w[o, c, i, j]
 *                         * x[n, c, oh*stride - pad + i, ow*stride - pad + j]
 * (x read as 0 outside the image).
 *
 * The hot loop of the project.  With K = C*k*k and P = OH*OW, a tile of
 * nb samples (or, when one sample's columns exceed the budget, a band of
 * output rows of one sample; then P below is the band's rows * OW) is
 * unrolled into one column matrix
 *   col (K, nb*P),  col[(c*k + i)*k + j, s*P + q] = x[s, c, ih(q, i), iw(q, j)]
 * and the three products are sgemms on its column blocks col_s (K, P)
 * (leading dimension nb*P):
 *   forward   y_s (O, P)    = W (O, K) col_s (K, P)
 *   weights   dW (O, K)    += dy_s (O, P) col_s^T (P, K), computed as
 *             dWt (K, O)    = sum_s col_s (K, P) dy_s^T (P, O) in scratch and
 *             added transposed once per backward (this orientation of the
 *             product runs 12-20% faster in OpenBLAS for M = O = 16, 32)
 *   input     dcol_s (K, P) = W^T (K, O) dy_s (O, P),  dx_s += col2im(dcol_s)
 * y_s and dy_s are used in place (NCHW, leading dimension OH*OW), so there
 * are no transposing copies.  The gemms run per sample: M = O is small but
 * N = P and K are not, and OpenBLAS runs these shapes as fast per sample
 * as on a whole tile (one (O, nb*P) product measured no faster and needs
 * the copies).  The tile bounds the scratch and keeps col in cache between
 * im2col and the gemms; col and dWt live in the model's shared scratch
 * (l->scratch floats, sized at setup), so forward and backward never
 * allocate.
 *
 * Stride-1 convolutions with OW == W ("same" padding, the cnn workload)
 * take fast paths: im2col copies each kernel row (c, i, j) as one block
 * (the plane shifted by (i - pad, j - pad)) and zeroes the wrapped border
 * columns; col2im adds each row back as one block (vectorizable at -O2).
 * A 1x1, stride-1, unpadded convolution skips im2col: col is x itself.
 * (Tried and dropped: computing dx as a correlation of dy with the flipped
 * kernel, which avoids col2im's scatter-add; it measured no faster.  The
 * Winograd path does compute dx that way, where it pays.)
 *
 * R-operators (layer.h): the convolution is bilinear in (x, W), so with V
 * and Vb the direction of W and b
 *   R{y}  = conv(R{x}; W) + conv(x; V) + Vb
 *   R{dx} = conv^T(R{dy}; W) + conv^T(dy; V)
 *   R{dW} += dW(x, R{dy}) + dW(R{x}, dy),   R{db} += sum R{dy},
 * each term one call of this layer's own forward or backward (so the
 * layer's algorithm, im2col or Winograd, with its rounding) on a shallow
 * copy of the layer whose weight/bias views point at V, Vb or the
 * R-gradients; the second term of a sum goes through ctx->rwork. */
#include "layers/conv_impl.h"

#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>

/* Floats of one tile's column matrix (measured on the cnn workload with
 * OpenBLAS on a 1 MiB L2: 64K to 128K floats are equally good, 256K and
 * more a few percent slower). */
#ifndef CONV_COL_BUDGET
#define CONV_COL_BUDGET ((size_t)96 * 1024)
#endif

const char *const nb_conv_algo_names[NB_CONV_ALGO_COUNT + 1] = {
    [NB_CONV_AUTO] = "auto", [NB_CONV_IM2COL] = "im2col", [NB_CONV_WINOGRAD] = "winograd",
    [NB_CONV_ALGO_COUNT] = NULL,
};


/* ---- im2col / col2im ------------------------------------------------- */

/* Output positions o in [0, n_out) whose input position o*s + off lies in
 * [0, n_in): the range [*lo, *hi). */
static void valid_range(int n_out, int n_in, int s, int off, int *lo, int *hi)
{
    int a = off < 0 ? (-off + s - 1) / s : 0;
    int b = n_in - off <= 0 ? 0 : (n_in - off + s - 1) / s;
    if (a > n_out)
        a = n_out;
    if (b > n_out)
        b = n_out;
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}

/* Unrolls output rows [ra, rb) of one sample into columns
 * [0, (rb - ra)*OW) of a column matrix with leading dimension ld:
 *   col[(c*k + i)*k + j, (oh - ra)*OW + ow]
 *       = x[c, oh*s - pad + i, ow*s - pad + j]   (0 outside the image). */
static void im2col(const struct conv_geom *g,
                   const float *x, /* x: (C, H, W) */
                   float *col,     /* col: (C*k*k, ld), columns [0, T) */
                   size_t ld, int ra, int rb)
{
    const int k = g->k, s = g->s, H = g->h, W = g->w, OW = g->ow;
    const size_t T = (size_t)(rb - ra) * OW;
    for (int c = 0; c < g->c; c++) {
        const float *xc = x + (size_t)c * H * W; /* xc: (H, W) */
        for (int i = 0; i < k; i++) {
            int oh0, oh1; /* rows of the tile that read inside the image */
            valid_range(g->oh, H, s, i - g->pad, &oh0, &oh1);
            oh0 = oh0 > ra ? oh0 : ra;
            oh1 = oh1 < rb ? oh1 : rb;
            for (int j = 0; j < k; j++) {
                float *row = col + (size_t)((c * k + i) * k + j) * ld; /* (T) */
                const int off = j - g->pad; /* iw = ow*s + off */
                int ow0, ow1;
                valid_range(OW, W, s, off, &ow0, &ow1);
                if (oh0 >= oh1 || ow0 == ow1) {
                    memset(row, 0, T * sizeof *row);
                    continue;
                }
                memset(row, 0, (size_t)(oh0 - ra) * OW * sizeof *row);
                memset(row + (size_t)(oh1 - ra) * OW, 0,
                       (size_t)(rb - oh1) * OW * sizeof *row);
                if (s == 1 && OW == W) {
                    /* rows are contiguous in both: one block copy of the
                     * plane shifted by (i - pad, j - pad), then zero the
                     * ow0 / OW - ow1 columns that wrapped around */
                    size_t d0 = (size_t)(oh0 - ra) * OW + ow0;
                    size_t d1 = (size_t)(oh1 - 1 - ra) * OW + ow1;
                    const float *src =
                        xc + (size_t)(oh0 - g->pad + i) * W + (ow0 + off);
                    memcpy(row + d0, src, (d1 - d0) * sizeof *row);
                    for (int oh = oh0; oh < oh1; oh++) {
                        float *r = row + (size_t)(oh - ra) * OW;
                        for (int ow = 0; ow < ow0; ow++)
                            r[ow] = 0.0f;
                        for (int ow = ow1; ow < OW; ow++)
                            r[ow] = 0.0f;
                    }
                    continue;
                }
                for (int oh = oh0; oh < oh1; oh++) {
                    float *r = row + (size_t)(oh - ra) * OW; /* r: (OW) */
                    const float *xr = xc + (size_t)(oh * s - g->pad + i) * W;
                    for (int ow = 0; ow < ow0; ow++)
                        r[ow] = 0.0f;
                    if (s == 1)
                        memcpy(r + ow0, xr + ow0 + off,
                               (size_t)(ow1 - ow0) * sizeof *r);
                    else
                        for (int ow = ow0; ow < ow1; ow++)
                            r[ow] = xr[ow * s + off];
                    for (int ow = ow1; ow < OW; ow++)
                        r[ow] = 0.0f;
                }
            }
        }
    }
}

/* d[i] += a[i], i < n; the fixed 8-wide inner loop lets -O2 vectorize. */
static void add_block(float *restrict d, const float *restrict a, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++)
            d[i + t] += a[i + t];
    for (; i < n; i++)
        d[i] += a[i];
}

/* a[i] += b, i < n (blocked like add_block). */
static void add_scalar(float *a, /* a: (n) */
                       float b, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++)
            a[i + t] += b;
    for (; i < n; i++)
        a[i] += b;
}

/* sum_i a[i] in double, over 4 independent accumulators: a single
 * accumulator is bound by the latency of one addition per element. */
static double sum_floats(const float *a, /* a: (n) */
                         size_t n)
{
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 += a[i];
        a1 += a[i + 1];
        a2 += a[i + 2];
        a3 += a[i + 3];
    }
    for (; i < n; i++)
        a0 += a[i];
    return (a0 + a1) + (a2 + a3);
}

/* The adjoint of im2col for output rows [ra, rb) of one sample, ADDING
 * into dx:
 *   dx[c, ih, iw] += sum over (i, j, oh in [ra, rb), ow) with
 *                    oh*s - pad + i = ih and ow*s - pad + j = iw of
 *                    dcol[(c*k + i)*k + j, (oh - ra)*OW + ow].
 * dcol is scratch: the stride-1 path zeroes its entries that fall outside
 * the image, so that each kernel row is one contiguous block addition. */
static void col2im(const struct conv_geom *g,
                   float *dcol, /* dcol: (C*k*k, ld), columns [0, T) */
                   size_t ld,
                   float *dx,   /* dx: (C, H, W) */
                   int ra, int rb)
{
    const int k = g->k, s = g->s, H = g->h, W = g->w, OW = g->ow;
    for (int c = 0; c < g->c; c++) {
        float *dxc = dx + (size_t)c * H * W; /* dxc: (H, W) */
        for (int i = 0; i < k; i++) {
            int oh0, oh1;
            valid_range(g->oh, H, s, i - g->pad, &oh0, &oh1);
            oh0 = oh0 > ra ? oh0 : ra;
            oh1 = oh1 < rb ? oh1 : rb;
            for (int j = 0; j < k; j++) {
                float *row = dcol + (size_t)((c * k + i) * k + j) * ld;
                const int off = j - g->pad;
                int ow0, ow1;
                valid_range(OW, W, s, off, &ow0, &ow1);
                if (oh0 >= oh1 || ow0 == ow1)
                    continue;
                if (s == 1 && OW == W) {
                    /* mirror of im2col's block copy */
                    for (int oh = oh0; oh < oh1; oh++) {
                        float *r = row + (size_t)(oh - ra) * OW;
                        for (int ow = 0; ow < ow0; ow++)
                            r[ow] = 0.0f;
                        for (int ow = ow1; ow < OW; ow++)
                            r[ow] = 0.0f;
                    }
                    size_t d0 = (size_t)(oh0 - ra) * OW + ow0;
                    size_t d1 = (size_t)(oh1 - 1 - ra) * OW + ow1;
                    add_block(dxc + (size_t)(oh0 - g->pad + i) * W + (ow0 + off),
                              row + d0, d1 - d0);
                    continue;
                }
                for (int oh = oh0; oh < oh1; oh++) {
                    const float *r = row + (size_t)(oh - ra) * OW; /* (OW) */
                    float *dr = dxc + (size_t)(oh * s - g->pad + i) * W; /* (W) */
                    for (int ow = ow0; ow < ow1; ow++)
                        dr[ow * s + off] += r[ow];
                }
            }
        }
    }
}

/* ---- the layer ------------------------------------------------------ */

/* Resolves opts->algo (see nb_conv2d_opts) to NB_CONV_IM2COL or
 * NB_CONV_WINOGRAD.  The auto rule depends on the shapes only, so a model
 * picks the same algorithm on every run. */
static int conv_pick_algo(const struct nb_layer *l,
                          const struct nb_conv2d_opts *o, int *algo,
                          struct nb_error *err)
{
    const bool wino_ok = o->k == 3 && o->stride == 1 && o->pad == 1;
    int a = (int)o->algo;
    if (a < NB_CONV_AUTO || a >= NB_CONV_ALGO_COUNT)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d algo must be 0 (auto), "
                            "1 (im2col) or 2 (winograd), not %d", l->name, a);
    if (a == NB_CONV_WINOGRAD && !wino_ok)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d Winograd needs a 3x3 kernel, "
                            "stride 1 and padding 1 (got k %d, stride %d, "
                            "pad %d)", l->name, o->k, o->stride, o->pad);
    if (a == NB_CONV_AUTO)
        a = wino_ok && l->in.c >= CONV_WINO_MIN_C ? NB_CONV_WINOGRAD : NB_CONV_IM2COL;
    *algo = a;
    return 0;
}

/* Winograd tiles, chunks and scratch (replaces the im2col sizing). */
static void wino_setup(struct nb_layer *l, struct conv_priv *p)
{
    struct wino_geom *g = &p->wg;
    const size_t O = (size_t)p->o, C = (size_t)p->g.c;
    g->h = p->g.h;
    g->w = p->g.w;
    g->th = (g->h + 1) / 2;
    g->tw = (g->w + 1) / 2;
    p->wk = conv_wino_pick_kernels();
    /* chunk buffers per tile: V (C) and, in backward, Da and Vb (O each);
     * forward's M uses Da's space */
    const size_t per_tile = 16 * (C + 2 * O);
    const size_t ts = (size_t)g->th * g->tw;
    /* tiles per chunk: as many as the budget holds, but at least
     * CONV_WINO_MIN_T (wide layers) */
    size_t tiles = CONV_WINO_BUDGET / per_tile;
    tiles = tiles > CONV_WINO_MIN_T ? tiles : CONV_WINO_MIN_T;
    size_t chunk = tiles / ts, rows = (size_t)g->th;
    if (chunk < 1) {
        chunk = 1;
        rows = tiles / g->tw;
        rows = rows < 1 ? 1 : rows > (size_t)g->th ? (size_t)g->th : rows;
        size_t bands = ((size_t)g->th + rows - 1) / rows;
        rows = ((size_t)g->th + bands - 1) / bands;
    }
    if (chunk > (size_t)l->max_batch)
        chunk = (size_t)l->max_batch;
    p->chunk = (int)chunk;
    p->rows = (int)rows;
    const size_t tmax = chunk * rows * g->tw;
#define UP16(v) (((v) + 15) / 16 * 16)
    /* the 8 sub-planes of a band, each with 8 floats of slack before and
     * after */
    g->sp = UP16((rows + 1) * g->tw + 16);
    /* scratch: U, dU (16, O, C) each; V (16, C, tmax); Da (16, O, tmax);
     * Vb (16, O, tmax); the kernel work space */
    p->wino_off[0] = UP16(32 * O * C);
    p->wino_off[1] = p->wino_off[0] + UP16(16 * C * tmax);
    p->wino_off[2] = p->wino_off[1] + UP16(16 * O * tmax);
    p->wino_off[3] = p->wino_off[2] + UP16(16 * O * tmax);
#undef UP16
    l->scratch = p->wino_off[3] + 8 * g->sp;
}

static int conv_setup(struct nb_layer *l, const void *opts,
                      struct nb_error *err)
{
    const struct nb_conv2d_opts *o = opts;
    if (!o)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d needs options", l->name);
    if (o->out_c <= 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d output channels must be > 0, "
                            "not %d", l->name, o->out_c);
    if (o->k <= 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d kernel size must be > 0, not %d",
                            l->name, o->k);
    if (o->stride <= 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d stride must be > 0, not %d",
                            l->name, o->stride);
    if (o->pad < 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d padding must be >= 0, not %d",
                            l->name, o->pad);
    const struct nb_shape *in = &l->in;
    if (o->k > in->h + 2 * o->pad || o->k > in->w + 2 * o->pad)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "layer %s: conv2d kernel %d is larger than the "
                            "padded input %dx%d (pad %d)", l->name, o->k,
                            in->h + 2 * o->pad, in->w + 2 * o->pad, o->pad);
    struct conv_priv *p = calloc(1, sizeof *p);
    if (!p)
        return nb_error_set(err, NB_ENOMEM, NULL, 0,
                            "layer %s: out of memory", l->name);
    l->priv = p;
    const int k = o->k;
    p->o = o->out_c;
    p->g = (struct conv_geom){
        .c = in->c, .h = in->h, .w = in->w, .k = k, .s = o->stride,
        .pad = o->pad,
        .oh = (in->h + 2 * o->pad - k) / o->stride + 1,
        .ow = (in->w + 2 * o->pad - k) / o->stride + 1,
    };
    p->kk = in->c * k * k;
    p->p = p->g.oh * p->g.ow;
    p->hw = in->h * in->w;
    p->direct = k == 1 && o->stride == 1 && o->pad == 0;
    p->b_idx = -1;
    int rc = conv_pick_algo(l, o, &p->algo, err);
    if (rc)
        return rc;

    /* tiles: as many whole samples as fit the column budget or, when one
     * sample does not fit, as many output rows of one sample */
    size_t per = (size_t)p->kk * (size_t)p->p;
    size_t chunk = CONV_COL_BUDGET / per, rows = (size_t)p->g.oh;
    if (chunk < 1) {
        chunk = 1;
        rows = CONV_COL_BUDGET / ((size_t)p->kk * p->g.ow);
        rows = rows < 1 ? 1 : rows > (size_t)p->g.oh ? (size_t)p->g.oh : rows;
        size_t tiles = ((size_t)p->g.oh + rows - 1) / rows; /* balance them */
        rows = ((size_t)p->g.oh + tiles - 1) / tiles;
    }
    if (chunk > (size_t)l->max_batch)
        chunk = (size_t)l->max_batch;
    p->chunk = (int)chunk;
    p->rows = (int)rows;
    p->col_floats = chunk * (size_t)p->kk * rows * p->g.ow;
    /* scratch: col (K, chunk*rows*OW), then dWt (K, O) */
    l->scratch = p->direct ? 0 : p->col_floats + (size_t)p->kk * p->o;
    if (p->algo == NB_CONV_WINOGRAD)
        wino_setup(l, p);

    p->w_idx = nb_layer_add_param(l, "weight", (size_t)p->o * p->kk,
                                  NB_PARAM_WEIGHT, err);
    if (p->w_idx < 0)
        return err ? err->status : NB_EINVAL;
    l->params[p->w_idx].fan_in = p->kk;
    l->params[p->w_idx].fan_out = p->o * k * k;
    l->params[p->w_idx].filters = p->o;
    if (o->bias) {
        p->b_idx = nb_layer_add_param(l, "bias", (size_t)p->o, NB_PARAM_BIAS,
                                      err);
        if (p->b_idx < 0)
            return err ? err->status : NB_EINVAL;
    }
    l->out = (struct nb_shape){p->o, p->g.oh, p->g.ow};
    return 0;
}

static void conv_forward(struct nb_layer *l, const float *x, float *y, int n,
                         enum nb_mode mode)
{
    NB_UNUSED(mode);
    const struct conv_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    const int O = p->o, K = p->kk, P = p->p;
    const size_t xs = (size_t)p->g.c * p->hw;   /* floats per x sample */
    const size_t ys = (size_t)O * P;            /* floats per y sample */
    const float *w = l->params[p->w_idx].value; /* w: (O, K) */

    if (p->algo == NB_CONV_WINOGRAD) {
        NB_ASSERT(l->ctx && l->ctx->scratch_count >= l->scratch);
        conv_wino_forward(l, x, y, n); /* adds the bias */
        return;
    }
    if (p->direct) {
        /* y_s (O, P) = W (O, C) x_s (C, P) */
        double t0 = conv_gemm_on(l);
        for (int s = 0; s < n; s++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, O, P, K,
                        1.0f, w, K, x + s * xs, P, 0.0f, y + s * ys, P);
        conv_gemm_off(l, t0);
    } else {
        NB_ASSERT(l->ctx && l->ctx->scratch_count >= l->scratch);
        float *col = l->ctx->scratch; /* col: (K, nb*T) */
        const int OW = p->g.ow;
        for (int s0 = 0; s0 < n; s0 += p->chunk) {
            int nb = n - s0 < p->chunk ? n - s0 : p->chunk;
            for (int ra = 0; ra < p->g.oh; ra += p->rows) {
                int rb = ra + p->rows < p->g.oh ? ra + p->rows : p->g.oh;
                const int T = (rb - ra) * OW; /* columns per sample */
                const size_t ld = (size_t)nb * T;
                for (int s = 0; s < nb; s++)
                    im2col(&p->g, x + (s0 + s) * xs, col + (size_t)s * T, ld,
                           ra, rb);
                /* y_s[:, tile] (O, T) = W (O, K) col_s (K, T) */
                double t0 = conv_gemm_on(l);
                for (int s = 0; s < nb; s++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, O,
                                T, K, 1.0f, w, K, col + (size_t)s * T,
                                (int)ld, 0.0f,
                                y + (s0 + s) * ys + (size_t)ra * OW, P);
                conv_gemm_off(l, t0);
            }
        }
    }
    if (p->b_idx >= 0) {
        const float *b = l->params[p->b_idx].value; /* b: (O) */
        for (int s = 0; s < n; s++)
            for (int o = 0; o < O; o++) {
                add_scalar(y + s * ys + (size_t)o * P, b[o], (size_t)P);
            }
    }
}

static void conv_backward(struct nb_layer *l, const float *x, const float *y,
                          const float *dy, float *dx, int n)
{
    NB_UNUSED(y);
    const struct conv_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    const int O = p->o, K = p->kk, P = p->p, HW = p->hw, C = p->g.c;
    const size_t xs = (size_t)C * HW;
    const size_t ys = (size_t)O * P;
    const float *w = l->params[p->w_idx].value; /* w: (O, K) */
    float *dw = l->params[p->w_idx].grad;       /* dw: (O, K) */

    /* db[o] += sum_{s, q} dy[s, o, q] */
    if (p->b_idx >= 0) {
        float *db = l->params[p->b_idx].grad; /* db: (O) */
        for (int o = 0; o < O; o++) {
            double acc = 0.0;
            for (int s = 0; s < n; s++)
                acc += sum_floats(dy + s * ys + (size_t)o * P, (size_t)P);
            db[o] += (float)acc;
        }
    }

    if (p->algo == NB_CONV_WINOGRAD) {
        NB_ASSERT(l->ctx && l->ctx->scratch_count >= l->scratch);
        conv_wino_backward(l, x, dy, dx, n);
        return;
    }
    if (p->direct) {
        double t0 = conv_gemm_on(l);
        for (int s = 0; s < n; s++) {
            const float *xsmp = x + s * xs; /* xsmp: (C, P) */
            const float *dys = dy + s * ys; /* dys: (O, P) */
            /* dW (O, C) += dy_s (O, P) x_s^T (P, C) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, O, K, P,
                        1.0f, dys, P, xsmp, P, 1.0f, dw, K);
            /* dx_s (C, P) = W^T (C, O) dy_s (O, P) */
            if (dx)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, O,
                            1.0f, w, K, dys, P, 0.0f, dx + s * xs, P);
        }
        conv_gemm_off(l, t0);
        return;
    }

    NB_ASSERT(l->ctx && l->ctx->scratch_count >= l->scratch);
    float *col = l->ctx->scratch;      /* col: (K, nb*T) */
    float *dwt = col + p->col_floats;  /* dwt: (K, O) */
    const int OW = p->g.ow;
    float beta = 0.0f; /* the first product initialises dWt */
    for (int s0 = 0; s0 < n; s0 += p->chunk) {
        int nb = n - s0 < p->chunk ? n - s0 : p->chunk;
        if (dx)
            memset(dx + s0 * xs, 0, (size_t)nb * xs * sizeof *dx);
        for (int ra = 0; ra < p->g.oh; ra += p->rows) {
            int rb = ra + p->rows < p->g.oh ? ra + p->rows : p->g.oh;
            const int T = (rb - ra) * OW; /* columns per sample */
            const size_t ld = (size_t)nb * T;
            for (int s = 0; s < nb; s++)
                im2col(&p->g, x + (s0 + s) * xs, col + (size_t)s * T, ld, ra,
                       rb);
            /* dWt (K, O) (+)= col_s (K, T) dy_s[:, tile]^T (T, O) */
            double t0 = conv_gemm_on(l);
            for (int s = 0; s < nb; s++) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, O, T,
                            1.0f, col + (size_t)s * T, (int)ld,
                            dy + (s0 + s) * ys + (size_t)ra * OW, P, beta,
                            dwt, O);
                beta = 1.0f;
            }
            conv_gemm_off(l, t0);
            if (!dx)
                continue;
            /* dcol_s (K, T) = W^T (K, O) dy_s[:, tile] (O, T), into col's
             * space; then dx_s += col2im(dcol_s) */
            t0 = conv_gemm_on(l);
            for (int s = 0; s < nb; s++)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, T, O,
                            1.0f, w, K, dy + (s0 + s) * ys + (size_t)ra * OW,
                            P, 0.0f, col + (size_t)s * T, (int)ld);
            conv_gemm_off(l, t0);
            for (int s = 0; s < nb; s++)
                col2im(&p->g, col + (size_t)s * T, ld, dx + (s0 + s) * xs, ra,
                       rb);
        }
    }
    /* dW[o, r] += dWt[r, o] */
    if (n > 0)
        for (int o = 0; o < O; o++)
            for (int r = 0; r < K; r++)
                dw[(size_t)o * K + r] += dwt[(size_t)r * O + o];
}

/* The shallow copy of l that the R-operators run the layer's own passes
 * on: *lv and *pv are l and its priv, lv->priv = pv. */
static void conv_view(const struct nb_layer *l, struct nb_layer *lv,
                      struct conv_priv *pv)
{
    *lv = *l;
    *pv = *(const struct conv_priv *)l->priv;
    lv->priv = pv;
}

static void conv_rforward(struct nb_layer *l, const float *x, const float *y,
                          const float *rx, float *ry, int n)
{
    NB_UNUSED(y);
    const struct conv_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    struct nb_layer lv;
    struct conv_priv pv;
    conv_view(l, &lv, &pv);
    const size_t m = (size_t)n * nb_shape_numel(&l->out);
    float *work = l->ctx ? l->ctx->rwork : NULL; /* work: (n, O, OH, OW) */
    NB_ASSERT(work && l->ctx->rwork_count >= m);
    NB_ASSERT(l->params[p->w_idx].rdir);
    /* ry = conv(rx; W), no bias (rx NULL: R{x} = 0, no term) */
    pv.b_idx = -1;
    if (rx)
        conv_forward(&lv, rx, ry, n, NB_EVAL);
    /* work (ry itself without the first term) = conv(x; V) + Vb */
    lv.params[p->w_idx].value = (float *)l->params[p->w_idx].rdir;
    if (p->b_idx >= 0) {
        NB_ASSERT(l->params[p->b_idx].rdir);
        pv.b_idx = p->b_idx;
        lv.params[p->b_idx].value = (float *)l->params[p->b_idx].rdir;
    }
    conv_forward(&lv, x, rx ? work : ry, n, NB_EVAL);
    if (rx)
        add_block(ry, work, m);
}

static void conv_rbackward(struct nb_layer *l, const float *x, const float *y,
                           const float *rx, const float *dy, const float *rdy,
                           float *rdx, int n)
{
    NB_UNUSED(y);
    const struct conv_priv *p = l->priv;
    NB_ASSERT(p && n >= 0 && n <= l->max_batch);
    struct nb_layer lv;
    struct conv_priv pv;
    conv_view(l, &lv, &pv);
    for (int i = 0; i < l->n_params; i++) {
        NB_ASSERT(l->params[i].rdir && l->params[i].rgrad);
        lv.params[i].grad = l->params[i].rgrad;
    }
    const size_t m = (size_t)n * nb_shape_numel(&l->in);
    float *work = l->ctx ? l->ctx->rwork : NULL; /* work: (n, C, H, W) */
    NB_ASSERT(work && l->ctx->rwork_count >= m);
    /* rdx = conv^T(rdy; W); R{dW} += dW(x, rdy); R{db} += sum rdy */
    conv_backward(&lv, x, NULL, rdy, rdx, n);
    /* work = conv^T(dy; V); R{dW} += dW(rx, dy) (rx NULL: R{x} = 0, and
     * no rdx is asked for) */
    NB_ASSERT(rx || !rdx);
    if (!rx)
        return;
    pv.b_idx = -1;
    lv.params[p->w_idx].value = (float *)l->params[p->w_idx].rdir;
    conv_backward(&lv, rx, NULL, dy, rdx ? work : NULL, n);
    if (rdx)
        add_block(rdx, work, m);
}

static void conv_destroy(struct nb_layer *l)
{
    free(l->priv);
    l->priv = NULL;
}

const struct nb_layer_ops nb_conv2d_ops = {
    .kind = "conv2d",
    .setup = conv_setup,
    .init = NULL,
    .forward = conv_forward,
    .backward = conv_backward,
    .destroy = conv_destroy,
    .rforward = conv_rforward,
    .rbackward = conv_rbackward,
    .rx_null_ok = true,
};
