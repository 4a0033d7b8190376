/* tests/t_layers.c - the core layer kinds: linear, conv2d, maxpool, gap,
 * relu, sigmoid, flatten, dropout, add, xent, mse.
 *
 * Three kinds of check per kind:
 *  - backward against central differences (tests/gradcheck.h) for dx, dx2
 *    and every parameter;
 *  - forward (and for conv2d also backward) against a direct reference
 *    computed here in double;
 *  - invariants and contracts: shapes, parameter metadata, dx overwritten,
 *    parameter gradients accumulated, dropout modes and RNG streams,
 *    numerical stability of the loss, error paths of setup. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "gradcheck.h"
#include "layers/layer.h"
#include "tap.h"

/* Tolerances of the finite-difference checks.  Piecewise-linear layers
 * (conv, linear, pooling, add, relu, dropout) have exact central
 * differences up to float rounding; smooth ones (sigmoid, the losses) add
 * the O(h^2) truncation error. */
#define GC_H 1e-2
#define GC_ATOL_LIN 3e-4
#define GC_RTOL_LIN 1e-3
#define GC_ATOL 1e-3
#define GC_RTOL 5e-3

static float *fvec(size_t n)
{
    float *v = nb_alloc_floats(n ? n : 1);
    if (!v)
        tap_bail("out of memory");
    return v;
}

static double *dvec(size_t n)
{
    double *v = calloc(n ? n : 1, sizeof *v);
    if (!v)
        tap_bail("out of memory");
    return v;
}

static void setup_or_bail(struct gc_layer *t, const struct nb_layer_ops *ops,
                          const char *name, struct nb_shape in,
                          const struct nb_shape *in2, int max_batch,
                          const void *opts, unsigned long seed)
{
    struct nb_error e;
    nb_error_clear(&e);
    if (gc_setup(t, ops, name, in, in2, max_batch, opts, seed, &e))
        tap_bail("%s: setup failed: %s", name, e.msg);
}

/* Runs the gradient check of one layer on n samples of random input
 * (uniform in +-1, at least `gap` from 0). */
static void gradcheck(const struct nb_layer_ops *ops, const char *name,
                      struct nb_shape in, const struct nb_shape *in2,
                      const void *opts, int n, enum nb_mode mode, double gap,
                      double atol, double rtol)
{
    struct gc_layer t;
    setup_or_bail(&t, ops, name, in, in2, n, opts, 11);
    size_t nx = (size_t)n * nb_shape_numel(&in);
    size_t nx2 = in2 ? (size_t)n * nb_shape_numel(in2) : 0;
    float *x = fvec(nx), *x2 = fvec(nx2);
    gc_fill(x, nx, 1.0, gap, 21);
    gc_fill(x2, nx2, 1.0, gap, 22);
    gc_check(&t, x, in2 ? x2 : NULL, n, mode, GC_H, atol, rtol, name);
    free(x);
    free(x2);
    gc_free(&t);
}

/* ---- linear ---------------------------------------------------------- */

static void test_linear(void)
{
    struct nb_linear_opts o = {.out = 5, .bias = true};
    struct gc_layer t;
    setup_or_bail(&t, &nb_linear_ops, "fc1", (struct nb_shape){3, 2, 2},
                  NULL, 4, &o, 1);
    ok(t.l.out.c == 5 && t.l.out.h == 1 && t.l.out.w == 1,
       "linear: output shape (5,1,1) from (3,2,2)");
    ok(t.l.n_params == 2 && strcmp(t.l.params[0].name, "weight") == 0 &&
           t.l.params[0].count == 60 && t.l.params[0].flags == NB_PARAM_WEIGHT &&
           t.l.params[0].fan_in == 12 && t.l.params[0].fan_out == 5 &&
           t.l.params[0].filters == 5,
       "linear: weight [5, 12] with fan_in 12, fan_out 5, filters 5");
    ok(strcmp(t.l.params[1].name, "bias") == 0 && t.l.params[1].count == 5 &&
           t.l.params[1].flags == NB_PARAM_BIAS,
       "linear: bias [5] flagged BIAS");

    /* forward against the double reference */
    int n = 4;
    float *x = fvec(48), *y = fvec(20);
    double *ref = dvec(20);
    gc_fill(x, 48, 1.0, 0.0, 3);
    gc_forward(&t, x, NULL, y, n, NB_TRAIN);
    const float *w = t.l.params[0].value, *b = t.l.params[1].value;
    for (int s = 0; s < n; s++)
        for (int o2 = 0; o2 < 5; o2++) {
            double acc = b[o2];
            for (int i = 0; i < 12; i++)
                acc += (double)w[o2 * 12 + i] * x[s * 12 + i];
            ref[s * 5 + o2] = acc;
        }
    arrays_close(y, ref, 20, 1e-5, 1e-5, "linear: forward vs double reference");
    free(x);
    free(y);
    free(ref);
    gc_free(&t);

    gradcheck(&nb_linear_ops, "linear 12->5 bias", (struct nb_shape){3, 2, 2},
              NULL, &o, 3, NB_TRAIN, 0.0, GC_ATOL_LIN, GC_RTOL_LIN);
    o = (struct nb_linear_opts){.out = 7, .bias = false};
    gradcheck(&nb_linear_ops, "linear 9->7 no bias", (struct nb_shape){9, 1, 1},
              NULL, &o, 2, NB_TRAIN, 0.0, GC_ATOL_LIN, GC_RTOL_LIN);
}

/* ---- conv2d ---------------------------------------------------------- */

struct conv_case {
    int c, h, w, o, k, s, p, bias, n;
};

/* Direct convolution in double.
 *   y[n,o,a,b] = bias[o] + sum_{c,i,j} w[o,c,i,j] x[n,c,a*s-p+i,b*s-p+j]
 * x: (n, C, H, W), w: (O, C, k, k), y: (n, O, OH, OW). */
static void naive_conv(const struct conv_case *cc, int oh, int ow,
                       const float *x, const float *w, const float *b,
                       double *y)
{
    for (int n = 0; n < cc->n; n++)
        for (int o = 0; o < cc->o; o++)
            for (int a = 0; a < oh; a++)
                for (int bb = 0; bb < ow; bb++) {
                    double acc = b ? b[o] : 0.0;
                    for (int c = 0; c < cc->c; c++)
                        for (int i = 0; i < cc->k; i++)
                            for (int j = 0; j < cc->k; j++) {
                                int ih = a * cc->s - cc->p + i;
                                int iw = bb * cc->s - cc->p + j;
                                if (ih < 0 || ih >= cc->h || iw < 0 ||
                                    iw >= cc->w)
                                    continue;
                                acc += (double)w[((o * cc->c + c) * cc->k + i) *
                                                     cc->k + j] *
                                       x[((size_t)(n * cc->c + c) * cc->h + ih) *
                                             cc->w + iw];
                            }
                    y[((size_t)(n * cc->o + o) * oh + a) * ow + bb] = acc;
                }
}

/* The adjoint of naive_conv, in double: dx (overwritten), dw, db (added to
 * the given start values). */
static void naive_conv_backward(const struct conv_case *cc, int oh, int ow,
                                const float *x, const float *w,
                                const float *dy, double *dx, double *dw,
                                double *db)
{
    memset(dx, 0, (size_t)cc->n * cc->c * cc->h * cc->w * sizeof *dx);
    for (int n = 0; n < cc->n; n++)
        for (int o = 0; o < cc->o; o++)
            for (int a = 0; a < oh; a++)
                for (int bb = 0; bb < ow; bb++) {
                    double g = dy[((size_t)(n * cc->o + o) * oh + a) * ow + bb];
                    if (db)
                        db[o] += g;
                    for (int c = 0; c < cc->c; c++)
                        for (int i = 0; i < cc->k; i++)
                            for (int j = 0; j < cc->k; j++) {
                                int ih = a * cc->s - cc->p + i;
                                int iw = bb * cc->s - cc->p + j;
                                if (ih < 0 || ih >= cc->h || iw < 0 ||
                                    iw >= cc->w)
                                    continue;
                                size_t wi = ((size_t)(o * cc->c + c) * cc->k + i) *
                                                cc->k + j;
                                size_t xi = ((size_t)(n * cc->c + c) * cc->h + ih) *
                                                cc->w + iw;
                                dx[xi] += g * w[wi];
                                dw[wi] += g * x[xi];
                            }
                }
}

/* Forward and backward of one case against the double reference, with
 * the given algorithm (nb_conv2d_opts.algo).  The gradient arena starts
 * non-zero to check that backward ADDS; dx starts as NaN to check that it
 * is OVERWRITTEN. */
static void conv_vs_naive(const struct conv_case *cc, int max_batch,
                          int algo)
{
    struct nb_conv2d_opts o = {.out_c = cc->o, .k = cc->k, .stride = cc->s,
                               .pad = cc->p, .bias = cc->bias, .algo = algo};
    char name[96];
    snprintf(name, sizeof name, "conv (%d,%d,%d)->%d k%d s%d p%d n%d%s%s",
             cc->c, cc->h, cc->w, cc->o, cc->k, cc->s, cc->p, cc->n,
             cc->bias ? " bias" : "", algo == 2 ? " winograd" : "");
    struct gc_layer t;
    setup_or_bail(&t, &nb_conv2d_ops, name,
                  (struct nb_shape){cc->c, cc->h, cc->w}, NULL, max_batch, &o,
                  5);
    int oh = (cc->h + 2 * cc->p - cc->k) / cc->s + 1;
    int ow = (cc->w + 2 * cc->p - cc->k) / cc->s + 1;
    ok(t.l.out.c == cc->o && t.l.out.h == oh && t.l.out.w == ow,
       "%s: output shape (%d,%d,%d)", name, cc->o, oh, ow);
    size_t nx = (size_t)cc->n * cc->c * cc->h * cc->w;
    size_t ny = (size_t)cc->n * cc->o * oh * ow;
    size_t nw = (size_t)cc->o * cc->c * cc->k * cc->k;
    float *x = fvec(nx), *y = fvec(ny), *dy = fvec(ny), *dx = fvec(nx);
    double *ry = dvec(ny), *rdx = dvec(nx), *rdw = dvec(nw), *rdb = dvec(cc->o);
    gc_fill(x, nx, 1.0, 0.0, 31);
    gc_fill(dy, ny, 1.0, 0.0, 32);
    const float *w = t.l.params[0].value;
    const float *b = cc->bias ? t.l.params[1].value : NULL;

    gc_forward(&t, x, NULL, y, cc->n, NB_TRAIN);
    naive_conv(cc, oh, ow, x, w, b, ry);
    arrays_close(y, ry, ny, 1e-5, 1e-5, "%s: forward vs direct convolution",
                 name);

    /* grads start at 0.25 (accumulation), dx at NaN (overwrite) */
    for (size_t i = 0; i < t.grads.count; i++)
        t.grads.data[i] = 0.25f;
    for (size_t i = 0; i < nx; i++)
        dx[i] = NAN;
    for (size_t i = 0; i < nw; i++)
        rdw[i] = 0.25;
    for (int i = 0; i < cc->o; i++)
        rdb[i] = 0.25;
    t.l.ops->backward(&t.l, x, y, dy, dx, cc->n);
    naive_conv_backward(cc, oh, ow, x, w, dy, rdx, rdw, rdb);
    arrays_close(dx, rdx, nx, 1e-5, 1e-5, "%s: dx vs direct adjoint", name);
    arrays_close(t.l.params[0].grad, rdw, nw, 1e-4, 1e-5,
                 "%s: dweight accumulated vs direct", name);
    if (cc->bias)
        arrays_close(t.l.params[1].grad, rdb, cc->o, 1e-4, 1e-5,
                     "%s: dbias accumulated vs direct", name);
    /* dx == NULL: weight gradients alone, same values */
    for (size_t i = 0; i < t.grads.count; i++)
        t.grads.data[i] = 0.25f;
    t.l.ops->backward(&t.l, x, y, dy, NULL, cc->n);
    arrays_close(t.l.params[0].grad, rdw, nw, 1e-4, 1e-5,
                 "%s: dweight with dx = NULL", name);
    free(x);
    free(y);
    free(dy);
    free(dx);
    free(ry);
    free(rdx);
    free(rdw);
    free(rdb);
    gc_free(&t);
}

static void test_conv2d(void)
{
    /* against the direct reference, batch > 1.  The first three are the
     * cnn workload's shapes: (1,28,28) and (16,14,14) put several samples
     * in one im2col tile (with a partial last one), (16,28,28) splits each
     * sample into row tiles; the (48,20,20) and (128,21,21) cases split
     * samples into row tiles off the stride-1 "same" fast path.  All on
     * the im2col path (the Winograd block below covers the other). */
    static const struct conv_case big[] = {
        {1, 28, 28, 16, 3, 1, 1, 0, 3},
        {16, 28, 28, 16, 3, 1, 1, 1, 5},
        {16, 14, 14, 32, 3, 1, 1, 0, 7},
        {48, 20, 20, 3, 3, 1, 0, 1, 2},
        {128, 21, 21, 3, 3, 2, 1, 0, 2},
        {3, 7, 9, 4, 5, 2, 2, 1, 3},
        {6, 5, 4, 8, 1, 1, 0, 1, 3},   /* 1x1 stride 1: no im2col */
        {6, 7, 6, 5, 1, 2, 0, 0, 2},   /* 1x1 stride 2: im2col */
        {2, 9, 8, 3, 3, 3, 0, 1, 2},   /* stride = k */
        {2, 6, 5, 3, 4, 1, 3, 0, 2},   /* pad larger than k/2 */
        {3, 4, 4, 2, 4, 1, 0, 1, 1},   /* kernel = input: 1x1 output */
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        conv_vs_naive(&big[i], big[i].n + 1, 1);

    /* central differences, small shapes */
    static const struct conv_case gcs[] = {
        {2, 5, 6, 3, 3, 1, 1, 1, 2},
        {3, 4, 5, 2, 1, 1, 0, 1, 2},
        {2, 7, 9, 3, 5, 2, 2, 1, 2},
        {2, 6, 6, 2, 3, 2, 0, 0, 2},
        {2, 5, 4, 2, 2, 1, 0, 1, 3},
    };
    for (size_t i = 0; i < sizeof gcs / sizeof gcs[0]; i++) {
        const struct conv_case *cc = &gcs[i];
        struct nb_conv2d_opts o = {.out_c = cc->o, .k = cc->k,
                                   .stride = cc->s, .pad = cc->p,
                                   .bias = cc->bias, .algo = 1};
        char name[96];
        snprintf(name, sizeof name, "conv gradcheck (%d,%d,%d)->%d k%d s%d p%d",
                 cc->c, cc->h, cc->w, cc->o, cc->k, cc->s, cc->p);
        gradcheck(&nb_conv2d_ops, name, (struct nb_shape){cc->c, cc->h, cc->w},
                  NULL, &o, cc->n, NB_TRAIN, 0.0, GC_ATOL_LIN, GC_RTOL_LIN);
    }

    /* metadata */
    struct nb_conv2d_opts o = {.out_c = 8, .k = 3, .stride = 1, .pad = 1};
    struct gc_layer t;
    setup_or_bail(&t, &nb_conv2d_ops, "conv_meta", (struct nb_shape){4, 6, 6},
                  NULL, 2, &o, 1);
    ok(t.l.n_params == 1 && t.l.params[0].count == 8 * 36 &&
           t.l.params[0].flags == NB_PARAM_WEIGHT &&
           t.l.params[0].fan_in == 36 && t.l.params[0].fan_out == 72 &&
           t.l.params[0].filters == 8,
       "conv2d: weight [8, 4*3*3], fan_in 36, fan_out 72, filters 8, no bias");
    gc_free(&t);
}

static void expect_einval(const struct nb_layer_ops *ops, const char *name,
                          struct nb_shape in, const struct nb_shape *in2,
                          const void *opts, const char *what);

/* ---- conv2d: Winograd F(2x2, 3x3) ------------------------------------ */

/* max_i |got_i - ref_i| / max_i |ref_i|: the error relative to the scale
 * of the output (F(2x2, 3x3) in float: about 1e-7 .. 1e-6). */
static double scaled_err(const float *got, const double *ref, size_t n)
{
    double e = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        e = d > e ? d : e;
        s = fabs(ref[i]) > s ? fabs(ref[i]) : s;
    }
    return s > 0.0 ? e / s : e;
}

static double *to_double(const float *a, size_t n)
{
    double *d = dvec(n);
    for (size_t i = 0; i < n; i++)
        d[i] = a[i];
    return d;
}

/* One 3x3 stride-1 pad-1 case through algo 2 (Winograd) and algo 1
 * (im2col) with the same weights and inputs: forward, dx, dW, db against
 * the direct double reference, scaled by the largest reference value
 * (tolerance 1e-5 of the scale), and against each other (float rounding
 * only, 2e-5 of the scale); the Winograd forward twice is bitwise
 * identical; backward with dx = NULL gives the same dW.  Returns the
 * worst scaled error of the Winograd results. */
static double wino_case(const struct conv_case *cc)
{
    const double tol = 1e-5;
    const int oh = cc->h, ow = cc->w;
    char name[96];
    snprintf(name, sizeof name, "winograd (%d,%d,%d)->%d n%d%s", cc->c, cc->h,
             cc->w, cc->o, cc->n, cc->bias ? " bias" : "");
    struct gc_layer t[2]; /* [0] Winograd, [1] im2col */
    for (int a = 0; a < 2; a++) {
        struct nb_conv2d_opts o = {.out_c = cc->o, .k = 3, .stride = 1,
                                   .pad = 1, .bias = cc->bias,
                                   .algo = a == 0 ? 2 : 1};
        setup_or_bail(&t[a], &nb_conv2d_ops, name,
                      (struct nb_shape){cc->c, cc->h, cc->w}, NULL,
                      cc->n + 1, &o, 5);
    }
    size_t nx = (size_t)cc->n * cc->c * cc->h * cc->w;
    size_t ny = (size_t)cc->n * cc->o * oh * ow;
    size_t nw = (size_t)cc->o * cc->c * 9;
    float *x = fvec(nx), *dy = fvec(ny);
    float *y[2] = {fvec(ny), fvec(ny)}, *dx[2] = {fvec(nx), fvec(nx)};
    float *y2 = fvec(ny);
    double *ry = dvec(ny), *rdx = dvec(nx), *rdw = dvec(nw), *rdb = dvec(cc->o);
    gc_fill(x, nx, 1.0, 0.0, 41);
    gc_fill(dy, ny, 1.0, 0.0, 42);
    const float *w = t[0].l.params[0].value;
    const float *b = cc->bias ? t[0].l.params[1].value : NULL;
    ok(memcmp(t[0].params.data, t[1].params.data,
              t[0].params.count * sizeof(float)) == 0,
       "%s: same parameters in both algorithms", name);

    naive_conv(cc, oh, ow, x, w, b, ry);
    for (size_t i = 0; i < nw; i++)
        rdw[i] = 0.25;
    for (int i = 0; i < cc->o; i++)
        rdb[i] = 0.25;
    naive_conv_backward(cc, oh, ow, x, w, dy, rdx, rdw, rdb);
    double sy = 1e-30, sx = 1e-30, sw = 1e-30; /* the scales */
    for (size_t i = 0; i < ny; i++)
        sy = fmax(sy, fabs(ry[i]));
    for (size_t i = 0; i < nx; i++)
        sx = fmax(sx, fabs(rdx[i]));
    for (size_t i = 0; i < nw; i++)
        sw = fmax(sw, fabs(rdw[i]));

    for (int a = 0; a < 2; a++) {
        for (size_t i = 0; i < t[a].grads.count; i++)
            t[a].grads.data[i] = 0.25f;
        for (size_t i = 0; i < nx; i++)
            dx[a][i] = NAN;
        gc_forward(&t[a], x, NULL, y[a], cc->n, NB_TRAIN);
        t[a].l.ops->backward(&t[a].l, x, y[a], dy, dx[a], cc->n);
    }
    double worst = 0.0, e;
    arrays_close(y[0], ry, ny, tol * sy, 0.0,
                 "%s: forward vs direct convolution", name);
    e = scaled_err(y[0], ry, ny);
    worst = fmax(worst, e);
    arrays_close(dx[0], rdx, nx, tol * sx, 0.0, "%s: dx vs direct adjoint",
                 name);
    worst = fmax(worst, scaled_err(dx[0], rdx, nx));
    arrays_close(t[0].l.params[0].grad, rdw, nw, tol * sw, 0.0,
                 "%s: dweight accumulated vs direct", name);
    worst = fmax(worst, scaled_err(t[0].l.params[0].grad, rdw, nw));
    if (cc->bias)
        arrays_close(t[0].l.params[1].grad, rdb, cc->o, 1e-4, 1e-5,
                     "%s: dbias accumulated vs direct", name);
    tap_diag("%s: scaled error y %.2g dx %.2g dW %.2g (im2col: %.2g %.2g "
             "%.2g)", name, e, scaled_err(dx[0], rdx, nx),
             scaled_err(t[0].l.params[0].grad, rdw, nw),
             scaled_err(y[1], ry, ny), scaled_err(dx[1], rdx, nx),
             scaled_err(t[1].l.params[0].grad, rdw, nw));

    /* against the im2col path on the same inputs */
    double *d;
    d = to_double(y[1], ny);
    arrays_close(y[0], d, ny, 2 * tol * sy, 0.0, "%s: forward = im2col's",
                 name);
    free(d);
    d = to_double(dx[1], nx);
    arrays_close(dx[0], d, nx, 2 * tol * sx, 0.0, "%s: dx = im2col's", name);
    free(d);
    d = to_double(t[1].grads.data, t[1].grads.count);
    arrays_close(t[0].grads.data, d, t[0].grads.count, 2 * tol * sw, 0.0,
                 "%s: dweight and dbias = im2col's", name);
    free(d);

    /* determinism; dW alone */
    gc_forward(&t[0], x, NULL, y2, cc->n, NB_TRAIN);
    ok(memcmp(y2, y[0], ny * sizeof *y2) == 0,
       "%s: forward repeated is bitwise identical", name);
    for (size_t i = 0; i < t[0].grads.count; i++)
        t[0].grads.data[i] = 0.25f;
    t[0].l.ops->backward(&t[0].l, x, y[0], dy, NULL, cc->n);
    arrays_close(t[0].l.params[0].grad, rdw, nw, tol * sw, 0.0,
                 "%s: dweight with dx = NULL", name);

    free(x);
    free(dy);
    free(y2);
    for (int a = 0; a < 2; a++) {
        free(y[a]);
        free(dx[a]);
        gc_free(&t[a]);
    }
    free(ry);
    free(rdx);
    free(rdw);
    free(rdb);
    return worst;
}

/* y of one forward of a fresh conv layer (seeded weights and input) */
static float *conv_output(struct nb_shape in, int out_c, int algo, size_t *ny)
{
    struct nb_conv2d_opts o = {.out_c = out_c, .k = 3, .stride = 1, .pad = 1,
                               .algo = algo};
    struct gc_layer t;
    setup_or_bail(&t, &nb_conv2d_ops, "conv_pick", in, NULL, 2, &o, 9);
    size_t nx = 2 * nb_shape_numel(&in);
    *ny = 2 * nb_shape_numel(&t.l.out);
    float *x = fvec(nx), *y = fvec(*ny);
    gc_fill(x, nx, 1.0, 0.0, 43);
    gc_forward(&t, x, NULL, y, 2, NB_TRAIN);
    free(x);
    gc_free(&t);
    return y;
}

/* Whether auto (algo 0) computes bitwise what algo `want` computes, and
 * not what the other one computes. */
static bool auto_is(struct nb_shape in, int out_c, int want)
{
    size_t n0, n1, n2;
    float *y0 = conv_output(in, out_c, 0, &n0);
    float *y1 = conv_output(in, out_c, want, &n1);
    float *y2 = conv_output(in, out_c, 3 - want, &n2);
    bool same = n0 == n1 && memcmp(y0, y1, n0 * sizeof *y0) == 0 &&
                memcmp(y0, y2, n0 * sizeof *y0) != 0;
    free(y0);
    free(y1);
    free(y2);
    return same;
}

static void test_conv2d_winograd(void)
{
    /* c, h, w, o, (k, s, p = 3, 1, 1), bias, n.  Widths (and numbers of
     * tiles and kernels) exercise the kernels' 8-wide steps (with and
     * without an overlapping last step), 4-wide steps and scalar code;
     * odd H and W crop the last tiles;
     * (16,14,14)->32 and (16,28,28)->16 (the cnn's shapes) run several
     * chunks with a partial last one; (40,33,35)->40 does not fit one
     * sample in a chunk and runs in bands of tile rows. */
    static const struct conv_case cases[] = {
        {3, 5, 7, 4, 3, 1, 1, 1, 3},
        {8, 6, 9, 5, 3, 1, 1, 0, 2},
        {16, 28, 28, 16, 3, 1, 1, 0, 3},
        {16, 14, 14, 32, 3, 1, 1, 0, 5},
        {32, 14, 14, 32, 3, 1, 1, 1, 2},
        {7, 16, 17, 9, 3, 1, 1, 1, 4},
        {40, 33, 35, 40, 3, 1, 1, 0, 2},
        {3, 1, 1, 3, 3, 1, 1, 1, 2},
        {5, 2, 3, 7, 3, 1, 1, 0, 3},
        {4, 9, 4, 6, 3, 1, 1, 1, 2},
        {12, 11, 30, 3, 3, 1, 1, 0, 2},
        {1, 5, 5, 2, 3, 1, 1, 1, 2}, /* O C = 2 kernels: scalar transforms */
    };
    double worst = 0.0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        worst = fmax(worst, wino_case(&cases[i]));
    tap_diag("winograd: largest error relative to the output scale %.2g",
             worst);
    /* the generic conv_vs_naive checks (shapes, NaN dx, accumulation) */
    conv_vs_naive(&cases[0], cases[0].n, 2);
    conv_vs_naive(&cases[3], cases[3].n + 2, 2);

    /* central differences through the Winograd path */
    static const struct conv_case gcs[] = {
        {2, 5, 6, 3, 3, 1, 1, 1, 2},
        {3, 4, 4, 2, 3, 1, 1, 0, 2},
        {4, 3, 5, 3, 3, 1, 1, 1, 3},
    };
    for (size_t i = 0; i < sizeof gcs / sizeof gcs[0]; i++) {
        const struct conv_case *cc = &gcs[i];
        struct nb_conv2d_opts o = {.out_c = cc->o, .k = 3, .stride = 1,
                                   .pad = 1, .bias = cc->bias, .algo = 2};
        char name[96];
        snprintf(name, sizeof name, "winograd gradcheck (%d,%d,%d)->%d",
                 cc->c, cc->h, cc->w, cc->o);
        gradcheck(&nb_conv2d_ops, name, (struct nb_shape){cc->c, cc->h, cc->w},
                  NULL, &o, cc->n, NB_TRAIN, 0.0, GC_ATOL_LIN, GC_RTOL_LIN);
    }

    /* the auto rule: Winograd from 8 input channels on (3x3, stride 1,
     * pad 1), im2col below and for other shapes */
    ok(auto_is((struct nb_shape){16, 14, 14}, 32, 2),
       "conv2d auto: (16,14,14)->32 runs Winograd");
    ok(auto_is((struct nb_shape){8, 6, 6}, 4, 2),
       "conv2d auto: (8,6,6)->4 runs Winograd");
    ok(auto_is((struct nb_shape){1, 28, 28}, 16, 1),
       "conv2d auto: (1,28,28)->16 runs im2col");
    ok(auto_is((struct nb_shape){4, 9, 9}, 8, 1),
       "conv2d auto: (4,9,9)->8 runs im2col");

    /* explicit Winograd on a shape it does not cover, unknown algo */
    struct nb_shape img = {2, 6, 6};
    struct nb_conv2d_opts w5 = {.out_c = 4, .k = 5, .stride = 1, .pad = 2,
                                .algo = 2};
    expect_einval(&nb_conv2d_ops, "conv_wino_k5", img, NULL, &w5,
                  "Winograd with a 5x5 kernel");
    struct nb_conv2d_opts ws = {.out_c = 4, .k = 3, .stride = 2, .pad = 1,
                                .algo = 2};
    expect_einval(&nb_conv2d_ops, "conv_wino_s2", img, NULL, &ws,
                  "Winograd with stride 2");
    struct nb_conv2d_opts wp = {.out_c = 4, .k = 3, .stride = 1, .pad = 0,
                                .algo = 2};
    expect_einval(&nb_conv2d_ops, "conv_wino_p0", img, NULL, &wp,
                  "Winograd without padding");
    struct nb_conv2d_opts a3 = {.out_c = 4, .k = 3, .stride = 1, .pad = 1,
                                .algo = 3};
    expect_einval(&nb_conv2d_ops, "conv_algo3", img, NULL, &a3, "algo 3");
}

/* ---- pooling --------------------------------------------------------- */

/* x gets the values 0.05 * (a random permutation of 0..n-1) - 1: distinct
 * and at least 0.05 apart, so a perturbation of h < 0.025 cannot move a
 * maximum. */
static void fill_distinct(float *x, size_t n, unsigned long seed)
{
    size_t *perm = malloc(n * sizeof *perm);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!perm || !r)
        tap_bail("out of memory");
    gsl_rng_set(r, seed);
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    gsl_ran_shuffle(r, perm, n, sizeof *perm);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(0.05 * (double)perm[i] - 1.0);
    gsl_rng_free(r);
    free(perm);
}

static void maxpool_gradcheck(struct nb_shape in, int k, int s, int n)
{
    struct nb_pool_opts o = {.k = k, .stride = s};
    char name[80];
    snprintf(name, sizeof name, "maxpool (%d,%d,%d) k%d s%d", in.c, in.h,
             in.w, k, s);
    struct gc_layer t;
    setup_or_bail(&t, &nb_maxpool_ops, name, in, NULL, n, &o, 1);
    size_t nx = (size_t)n * nb_shape_numel(&in);
    float *x = fvec(nx);
    fill_distinct(x, nx, 77);
    gc_check(&t, x, NULL, n, NB_TRAIN, 1e-3, GC_ATOL_LIN, GC_RTOL_LIN, name);
    free(x);
    gc_free(&t);
}

/* The 2x2, stride-2 kernels (vectors, 8 or 4 outputs a step, the last
 * step moved back) give the bytes of the general code's definition, here
 * written out: ties (values on a grid of 4), NaNs in x, -0 and NaN in dy. */
static void maxpool2_bytes(struct nb_shape in, int n)
{
    struct nb_pool_opts o = {.k = 2, .stride = 2};
    char name[80];
    snprintf(name, sizeof name, "maxpool (%d,%d,%d) k2 s2", in.c, in.h, in.w);
    struct gc_layer t;
    setup_or_bail(&t, &nb_maxpool_ops, name, in, NULL, n, &o, 1);
    const int H = in.h, W = in.w, OH = t.l.out.h, OW = t.l.out.w;
    const size_t planes = (size_t)n * in.c, nx = planes * H * W, ny = planes * OH * OW;
    float *x = fvec(nx), *y = fvec(ny), *dy = fvec(ny), *dx = fvec(nx);
    float *yr = fvec(ny), *dxr = fvec(nx);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 11);
    for (size_t i = 0; i < nx; i++)
        x[i] = i % 97 == 5 ? NAN : (float)gsl_rng_uniform_int(r, 4) - 1.5f;
    for (size_t i = 0; i < ny; i++)
        dy[i] = i % 13 == 3 ? -0.0f : i % 41 == 7 ? NAN : (float)gsl_rng_uniform(r) - 0.5f;
    gsl_rng_free(r);
    memset(dxr, 0, nx * sizeof *dxr);
    for (size_t pl = 0; pl < planes; pl++)
        for (int a = 0; a < OH; a++)
            for (int b = 0; b < OW; b++) {
                const float *xp = x + pl * H * W;
                int best = 2 * a * W + 2 * b;
                float m = xp[best];
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 2; j++) {
                        const int idx = (2 * a + i) * W + 2 * b + j;
                        if (xp[idx] > m) {
                            m = xp[idx];
                            best = idx;
                        }
                    }
                yr[pl * OH * OW + a * OW + b] = m;
                dxr[pl * H * W + best] += dy[pl * OH * OW + a * OW + b];
            }
    for (size_t i = 0; i < nx; i++)
        dx[i] = 7.0f; /* overwritten */
    gc_forward(&t, x, NULL, y, n, NB_TRAIN);
    t.l.ops->backward(&t.l, x, y, dy, dx, n);
    ok(!memcmp(y, yr, ny * sizeof *y), "%s: forward, the bytes of the definition", name);
    ok(!memcmp(dx, dxr, nx * sizeof *dx), "%s: backward, the bytes of the definition", name);
    free(x);
    free(y);
    free(dy);
    free(dx);
    free(yr);
    free(dxr);
    gc_free(&t);
}

static void test_pool(void)
{
    maxpool2_bytes((struct nb_shape){16, 28, 28}, 3); /* the cnn's pools: OW 14 */
    maxpool2_bytes((struct nb_shape){32, 14, 14}, 3); /* OW 7 */
    maxpool2_bytes((struct nb_shape){2, 6, 16}, 2);   /* OW 8 */
    maxpool2_bytes((struct nb_shape){2, 4, 8}, 2);    /* OW 4 */
    maxpool2_bytes((struct nb_shape){2, 6, 6}, 2);    /* OW 3: the general code */

    struct nb_pool_opts o = {.k = 2, .stride = 2};
    struct gc_layer t;
    setup_or_bail(&t, &nb_maxpool_ops, "pool1", (struct nb_shape){3, 7, 6},
                  NULL, 2, &o, 1);
    ok(t.l.out.c == 3 && t.l.out.h == 3 && t.l.out.w == 3 && t.l.n_params == 0,
       "maxpool k2 s2: (3,7,6) -> (3,3,3), rounding down, no params");
    /* forward against a direct maximum */
    size_t nx = 2 * 3 * 7 * 6, ny = 2 * 3 * 3 * 3;
    float *x = fvec(nx), *y = fvec(ny), *dy = fvec(ny), *dx = fvec(nx);
    double *ref = dvec(ny);
    gc_fill(x, nx, 1.0, 0.0, 5);
    gc_forward(&t, x, NULL, y, 2, NB_TRAIN);
    for (int pl = 0; pl < 6; pl++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) {
                double m = -INFINITY;
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 2; j++)
                        m = fmax(m, x[pl * 42 + (2 * a + i) * 6 + 2 * b + j]);
                ref[pl * 9 + a * 3 + b] = m;
            }
    arrays_close(y, ref, ny, 0, 0, "maxpool: forward equals the window maxima");
    gc_free(&t);

    /* ties go to the first maximum in row-major window order */
    setup_or_bail(&t, &nb_maxpool_ops, "pool_ties", (struct nb_shape){1, 2, 4},
                  NULL, 1, &o, 1);
    float xt[8] = {0.5f, 0.5f, 2.0f, 1.0f, 0.5f, 0.5f, 2.0f, 2.0f};
    float dyt[2] = {3.0f, 4.0f}, dxt[8], yt[2];
    double want[8] = {3, 0, 4, 0, 0, 0, 0, 0};
    for (int i = 0; i < 8; i++)
        dxt[i] = NAN;
    gc_forward(&t, xt, NULL, yt, 1, NB_TRAIN);
    t.l.ops->backward(&t.l, xt, yt, dyt, dxt, 1);
    arrays_close(dxt, want, 8, 0, 0,
                 "maxpool: tied maxima route dy to the first, dx overwritten");
    gc_free(&t);

    maxpool_gradcheck((struct nb_shape){2, 6, 7}, 2, 2, 2);
    maxpool_gradcheck((struct nb_shape){2, 8, 14}, 2, 2, 2); /* vector kernels */
    maxpool_gradcheck((struct nb_shape){2, 7, 7}, 3, 2, 2); /* overlapping */
    maxpool_gradcheck((struct nb_shape){1, 5, 8}, 3, 1, 2);

    /* global average pool */
    setup_or_bail(&t, &nb_gap_ops, "gap1", (struct nb_shape){3, 5, 4}, NULL,
                  2, NULL, 1);
    ok(t.l.out.c == 3 && t.l.out.h == 1 && t.l.out.w == 1,
       "gap: (3,5,4) -> (3,1,1)");
    nx = 2 * 60;
    gc_fill(x, nx, 1.0, 0.0, 6);
    gc_forward(&t, x, NULL, y, 2, NB_TRAIN);
    for (int pl = 0; pl < 6; pl++) {
        double acc = 0;
        for (int q = 0; q < 20; q++)
            acc += x[pl * 20 + q];
        ref[pl] = acc / 20;
    }
    arrays_close(y, ref, 6, 1e-7, 1e-6, "gap: forward equals the plane means");
    gc_free(&t);
    gradcheck(&nb_gap_ops, "gap (3,5,4)", (struct nb_shape){3, 5, 4}, NULL,
              NULL, 2, NB_TRAIN, 0.0, GC_ATOL_LIN, GC_RTOL_LIN);
    free(x);
    free(y);
    free(dy);
    free(dx);
    free(ref);
}

/* ---- element-wise ---------------------------------------------------- */

static void test_activations(void)
{
    struct nb_shape in = {3, 4, 5};
    /* 150 values: the 8-wide blocks and a tail */
    gradcheck(&nb_relu_ops, "relu (3,5,5)", (struct nb_shape){3, 5, 5}, NULL,
              NULL, 2, NB_TRAIN, 0.1, GC_ATOL_LIN, GC_RTOL_LIN);
    gradcheck(&nb_sigmoid_ops, "sigmoid (3,4,5)", in, NULL, NULL, 2, NB_TRAIN,
              0.0, GC_ATOL, GC_RTOL);
    gradcheck(&nb_flatten_ops, "flatten (3,4,5)", in, NULL, NULL, 2, NB_TRAIN,
              0.0, GC_ATOL_LIN, GC_RTOL_LIN);

    struct gc_layer t;
    setup_or_bail(&t, &nb_flatten_ops, "flat1", in, NULL, 2, NULL, 1);
    ok(t.l.out.c == 60 && t.l.out.h == 1 && t.l.out.w == 1,
       "flatten: (3,4,5) -> (60,1,1)");
    gc_free(&t);

    /* sigmoid: forward values, saturation without overflow */
    setup_or_bail(&t, &nb_sigmoid_ops, "sig1", (struct nb_shape){6, 1, 1},
                  NULL, 1, NULL, 1);
    float xs[6] = {-200.0f, -3.0f, 0.0f, 0.5f, 3.0f, 200.0f}, ys[6];
    double want[6];
    for (int i = 0; i < 6; i++)
        want[i] = 1.0 / (1.0 + exp(-(double)xs[i]));
    gc_forward(&t, xs, NULL, ys, 1, NB_TRAIN);
    arrays_close(ys, want, 6, 1e-7, 1e-6,
                 "sigmoid: forward values, saturating at +-200");
    gc_free(&t);

    /* relu: forward */
    setup_or_bail(&t, &nb_relu_ops, "relu1", (struct nb_shape){4, 1, 1}, NULL,
                  1, NULL, 1);
    float xr[4] = {-1.5f, 0.0f, 0.25f, 3.0f}, yr[4];
    double wr[4] = {0, 0, 0.25, 3.0};
    gc_forward(&t, xr, NULL, yr, 1, NB_TRAIN);
    arrays_close(yr, wr, 4, 0, 0, "relu: forward values");
    gc_free(&t);

    /* relu's vector kernels (blocks of 8, a scalar tail) give the bytes of
     * the definition: -0, NaN, +-inf and random signs, 3 x 37 floats */
    setup_or_bail(&t, &nb_relu_ops, "relu2", (struct nb_shape){37, 1, 1}, NULL, 3, NULL, 1);
    float xb[111], dyb[111], yb[111], dxb[111], yw[111], dxw[111];
    gc_fill(xb, 111, 1.0, 0.0, 23);
    gc_fill(dyb, 111, 1.0, 0.0, 29);
    xb[3] = -0.0f, xb[9] = NAN, xb[17] = INFINITY, xb[40] = -INFINITY, xb[110] = NAN;
    xb[20] = 0.0f, dyb[5] = -0.0f, dyb[21] = NAN;
    for (int i = 0; i < 111; i++) {
        yw[i] = xb[i] > 0.0f ? xb[i] : 0.0f;
        dxw[i] = xb[i] > 0.0f ? dyb[i] : 0.0f;
    }
    gc_forward(&t, xb, NULL, yb, 3, NB_TRAIN);
    t.l.ops->backward(&t.l, xb, yb, dyb, dxb, 3);
    ok(!memcmp(yb, yw, sizeof yb), "relu: forward, the bytes of the definition");
    ok(!memcmp(dxb, dxw, sizeof dxb), "relu: backward, the bytes of the definition");
    gc_free(&t);
}

/* ---- dropout --------------------------------------------------------- */

/* A batch split over 3 processes (ctx->part_start, part_total, as the
 * training loop sets them): each slice gets the mask one process draws
 * for the whole batch, and every stream ends where that one's does. */
static void test_dropout_slices(void)
{
    struct nb_dropout_opts o = {.p = 0.4f};
    const struct nb_shape in = {3, 2, 2};
    const int n = 7, K = 3, per = 12;
    struct gc_layer whole, part[3];
    setup_or_bail(&whole, &nb_dropout_ops, "drop", in, NULL, n, &o, 1);
    float *x = fvec(n * per), *y0 = fvec(n * per), *y = fvec(n * per);
    gc_fill(x, (size_t)n * per, 1.0, 0.1, 5);
    gsl_rng_set(whole.ctx.rng_dropout, 77);
    whole.l.ops->forward(&whole.l, x, y0, n, NB_TRAIN);
    bool same_next = true;
    for (int k = 0; k < K; k++) {
        setup_or_bail(&part[k], &nb_dropout_ops, "drop", in, NULL, n, &o, 1);
        gsl_rng_set(part[k].ctx.rng_dropout, 77);
        int s = k * n / K, e = (k + 1) * n / K;
        part[k].ctx.part_start = s;
        part[k].ctx.part_total = n;
        part[k].l.ops->forward(&part[k].l, x + s * per, y + s * per, e - s, NB_TRAIN);
    }
    unsigned long want = gsl_rng_get(whole.ctx.rng_dropout);
    for (int k = 0; k < K; k++) {
        same_next &= gsl_rng_get(part[k].ctx.rng_dropout) == want;
        gc_free(&part[k]);
    }
    ok(memcmp(y, y0, (size_t)n * per * sizeof *y) == 0,
       "dropout: 3 slices of a batch of 7 (2+2+3) get the whole batch's mask");
    ok(same_next, "dropout: every slice leaves its stream where the whole batch does");
    gc_free(&whole);
    free(x);
    free(y0);
    free(y);
}

static void test_dropout(void)
{
    struct nb_dropout_opts o = {.p = 0.3f};
    struct nb_shape in = {2, 3, 4};
    gradcheck(&nb_dropout_ops, "dropout p=0.3 TRAIN", in, NULL, &o, 3,
              NB_TRAIN, 0.0, GC_ATOL_LIN, GC_RTOL_LIN);
    gradcheck(&nb_dropout_ops, "dropout p=0.3 PROBE", in, NULL, &o, 3,
              NB_PROBE, 0.0, GC_ATOL_LIN, GC_RTOL_LIN);

    /* statistics on one big sample of ones */
    const int m = 200000;
    struct gc_layer t;
    setup_or_bail(&t, &nb_dropout_ops, "drop1", (struct nb_shape){m, 1, 1},
                  NULL, 1, &o, 1);
    float *x = fvec(m), *y = fvec(m), *dy = fvec(m), *dx = fvec(m);
    for (int i = 0; i < m; i++) {
        x[i] = 1.0f;
        dy[i] = 2.0f;
    }
    gsl_rng_set(t.ctx.rng_dropout, 123);
    gsl_rng_set(t.ctx.rng_probe, 456);

    /* EVAL: identity, no draws */
    gsl_rng *before = gsl_rng_clone(t.ctx.rng_dropout);
    gc_fill(x, (size_t)m, 1.0, 0.0, 9);
    t.l.ops->forward(&t.l, x, y, 1, NB_EVAL);
    t.l.ops->backward(&t.l, x, y, dy, dx, 1);
    ok(memcmp(x, y, (size_t)m * sizeof *x) == 0 &&
           memcmp(dx, dy, (size_t)m * sizeof *dx) == 0,
       "dropout: EVAL forward and backward are the identity");
    for (int i = 0; i < m; i++)
        x[i] = 1.0f;

    /* TRAIN: fraction dropped ~ p, mean preserved */
    t.l.ops->forward(&t.l, x, y, 1, NB_TRAIN);
    double zeros = 0, sum = 0;
    int scaled_ok = 1;
    for (int i = 0; i < m; i++) {
        zeros += y[i] == 0.0f;
        sum += y[i];
        scaled_ok &= y[i] == 0.0f || fabsf(y[i] - 1.0f / 0.7f) < 1e-6f;
    }
    double sd = sqrt(0.3 * 0.7 / m);
    is_close(zeros / m, 0.3, 5 * sd, 0, "dropout: TRAIN drops a fraction p "
             "(%.4f)", zeros / m);
    is_close(sum / m, 1.0, 5 * sd / 0.7, 0,
             "dropout: TRAIN preserves the mean (%.4f)", sum / m);
    ok(scaled_ok, "dropout: TRAIN keeps x / (1 - p) or 0");
    t.l.ops->backward(&t.l, x, y, dy, dx, 1);
    int bw_ok = 1;
    for (int i = 0; i < m; i++)
        bw_ok &= dx[i] == 2.0f * y[i];
    ok(bw_ok, "dropout: TRAIN backward applies the same mask");
    ok(gsl_rng_get(before) != gsl_rng_get(t.ctx.rng_dropout),
       "dropout: TRAIN draws from rng_dropout");
    gsl_rng_free(before);

    /* PROBE: draws from rng_probe, leaves rng_dropout untouched */
    before = gsl_rng_clone(t.ctx.rng_dropout);
    gsl_rng *probe_before = gsl_rng_clone(t.ctx.rng_probe);
    t.l.ops->forward(&t.l, x, y, 1, NB_PROBE);
    zeros = 0;
    for (int i = 0; i < m; i++)
        zeros += y[i] == 0.0f;
    int same = 1;
    for (int i = 0; i < 64; i++)
        same &= gsl_rng_get(before) == gsl_rng_get(t.ctx.rng_dropout);
    ok(same, "dropout: PROBE leaves the state of rng_dropout unchanged");
    ok(gsl_rng_get(probe_before) != gsl_rng_get(t.ctx.rng_probe),
       "dropout: PROBE draws from rng_probe");
    is_close(zeros / m, 0.3, 5 * sd, 0, "dropout: PROBE drops a fraction p");
    gsl_rng_free(before);
    gsl_rng_free(probe_before);
    free(x);
    free(y);
    free(dy);
    free(dx);
    gc_free(&t);
    test_dropout_slices();
}

/* ---- residual add ---------------------------------------------------- */

static void test_add(void)
{
    struct nb_shape in = {3, 4, 4};
    gradcheck(&nb_add_ops, "add identity (3,4,4)", in, &in, NULL, 2,
              NB_TRAIN, 0.0, GC_ATOL_LIN, GC_RTOL_LIN);
    struct nb_shape in2 = {2, 8, 8}, in3 = {4, 4, 4};
    gradcheck(&nb_add_ops, "add option A (2,8,8)->(4,4,4)", in3, &in2, NULL,
              2, NB_TRAIN, 0.0, GC_ATOL_LIN, GC_RTOL_LIN);
    struct nb_shape in4 = {2, 7, 7}, in5 = {3, 4, 4};
    gradcheck(&nb_add_ops, "add option A (2,7,7)->(3,4,4)", in5, &in4, NULL,
              2, NB_TRAIN, 0.0, GC_ATOL_LIN, GC_RTOL_LIN);
    struct nb_shape in6 = {2, 4, 4};
    gradcheck(&nb_add_ops, "add channel pad (2,4,4)->(3,4,4)", in5, &in6,
              NULL, 2, NB_TRAIN, 0.0, GC_ATOL_LIN, GC_RTOL_LIN);

    /* option A forward against its definition, dx2 overwritten */
    struct gc_layer t;
    setup_or_bail(&t, &nb_add_ops, "add1", in3, &in2, 2, NULL, 1);
    size_t nx = 2 * 64, nx2 = 2 * 128;
    float *x = fvec(nx), *x2 = fvec(nx2), *y = fvec(nx), *dx2 = fvec(nx2);
    double *ref = dvec(nx), *rdx2 = dvec(nx2);
    gc_fill(x, nx, 1.0, 0.0, 1);
    gc_fill(x2, nx2, 1.0, 0.0, 2);
    gc_forward(&t, x, x2, y, 2, NB_TRAIN);
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 4; c++)
            for (int h = 0; h < 4; h++)
                for (int w = 0; w < 4; w++) {
                    size_t i = ((size_t)(n * 4 + c) * 4 + h) * 4 + w;
                    float sc = c < 2 ? x2[((n * 2 + c) * 8 + 2 * h) * 8 + 2 * w]
                                     : 0.0f;
                    ref[i] = x[i] + sc; /* the same float addition */
                    if (c < 2)
                        rdx2[((n * 2 + c) * 8 + 2 * h) * 8 + 2 * w] = y[i];
                }
    arrays_close(y, ref, nx, 0, 0,
                 "add option A: y = x + x2[:, :, ::2, ::2] padded with zero "
                 "channels");
    for (size_t i = 0; i < nx2; i++)
        dx2[i] = NAN;
    t.l.dx2 = dx2;
    t.l.ops->backward(&t.l, x, y, y, NULL, 2); /* dy = y, dx skipped */
    arrays_close(dx2, rdx2, nx2, 0, 0,
                 "add option A: dx2 overwritten, dy at the sampled positions");
    free(x);
    free(x2);
    free(y);
    free(dx2);
    free(ref);
    free(rdx2);
    gc_free(&t);
}

/* ---- losses ---------------------------------------------------------- */

static void test_losses(void)
{
    /* xent: gradient check, labels in ctx */
    struct gc_layer t;
    const int n = 3, d = 7;
    int labels[3] = {4, 0, 6};
    setup_or_bail(&t, &nb_xent_ops, "xent", (struct nb_shape){d, 1, 1}, NULL,
                  n, NULL, 1);
    ok(t.l.out.c == 1 && t.l.out.h == 1 && t.l.out.w == 1,
       "xent: output is the per-sample loss (1,1,1)");
    t.ctx.labels = labels;
    float x[21], y[3];
    gc_fill(x, 21, 3.0, 0.0, 8);
    gc_check(&t, x, NULL, n, NB_TRAIN, GC_H, GC_ATOL, GC_RTOL,
             "xent 7 classes");
    gc_forward(&t, x, NULL, y, n, NB_TRAIN);
    double ref[3];
    for (int s = 0; s < n; s++) {
        double z = 0;
        for (int k = 0; k < d; k++)
            z += exp((double)x[s * d + k]);
        ref[s] = log(z) - x[s * d + labels[s]];
    }
    arrays_close(y, ref, 3, 1e-6, 1e-6, "xent: forward = log sum exp - x[label]");
    gc_free(&t);

    /* stability at logits of 1e4 */
    setup_or_bail(&t, &nb_xent_ops, "xent_big", (struct nb_shape){4, 1, 1},
                  NULL, 2, NULL, 1);
    int lab2[2] = {1, 3};
    t.ctx.labels = lab2;
    float xb[8] = {1e4f, 9999.0f, -1e4f, 0.0f, -1e4f, -1e4f, -1e4f, 1e4f};
    float yb[2], dyb[2] = {0.5f, 0.5f}, dxb[8];
    gc_forward(&t, xb, NULL, yb, 2, NB_TRAIN);
    t.l.ops->backward(&t.l, xb, yb, dyb, dxb, 2);
    double e1 = exp(-1.0);
    double want_y[2] = {1.0 + log1p(e1), 0.0};
    ok(isfinite(yb[0]) && isfinite(yb[1]), "xent: finite loss at logits 1e4");
    arrays_close(yb, want_y, 2, 1e-6, 1e-6,
                 "xent: loss at logits 1e4 equals 1 + log(1 + e^-1) and 0");
    double p0 = 1.0 / (1.0 + e1);
    double want_dx[8] = {0.5 * p0, 0.5 * (1.0 - p0 - 1.0), 0, 0, 0, 0, 0, 0};
    int fin = 1;
    for (int i = 0; i < 8; i++)
        fin &= isfinite(dxb[i]);
    ok(fin, "xent: finite gradient at logits 1e4");
    arrays_close(dxb, want_dx, 8, 1e-7, 1e-6,
                 "xent: gradient at logits 1e4 = dy (softmax - onehot)");
    gc_free(&t);

    /* mse */
    setup_or_bail(&t, &nb_mse_ops, "mse", (struct nb_shape){2, 2, 2}, NULL, 3,
                  NULL, 1);
    float tg[24], xm[24], ym[3];
    gc_fill(tg, 24, 1.0, 0.0, 12);
    gc_fill(xm, 24, 1.0, 0.0, 13);
    t.ctx.targets = tg;
    gc_check(&t, xm, NULL, 3, NB_TRAIN, GC_H, GC_ATOL, GC_RTOL, "mse (2,2,2)");
    gc_forward(&t, xm, NULL, ym, 3, NB_TRAIN);
    double batch = 0, all = 0;
    for (int s = 0; s < 3; s++)
        batch += ym[s] / 3.0;
    for (int i = 0; i < 24; i++)
        all += ((double)xm[i] - tg[i]) * ((double)xm[i] - tg[i]);
    is_close(batch, all / 24.0, 1e-7, 1e-6,
             "mse: batch mean of per-sample losses = MSELoss(mean)");
    gc_free(&t);
}

/* ---- setup error paths ----------------------------------------------- */

static void expect_einval(const struct nb_layer_ops *ops, const char *name,
                          struct nb_shape in, const struct nb_shape *in2,
                          const void *opts, const char *what)
{
    struct nb_layer l;
    struct nb_error e;
    memset(&l, 0, sizeof l);
    nb_error_clear(&e);
    if (in2)
        l.in2 = *in2;
    int rc = nb_layer_setup(&l, ops, name, &in, 4, opts, &e);
    is_int(rc, NB_EINVAL, "%s: %s refused with NB_EINVAL", name, what);
    contains(e.msg, name, "%s: message names the layer (%s)", name, e.msg);
    nb_layer_destroy(&l);
}

static void test_errors(void)
{
    struct nb_shape img = {2, 6, 6};
    struct nb_conv2d_opts c0 = {.out_c = 4, .k = 3, .stride = 0, .pad = 1};
    expect_einval(&nb_conv2d_ops, "conv_s0", img, NULL, &c0, "stride 0");
    struct nb_conv2d_opts c1 = {.out_c = 4, .k = 9, .stride = 1, .pad = 1};
    expect_einval(&nb_conv2d_ops, "conv_k9", img, NULL, &c1,
                  "kernel larger than the padded input");
    struct nb_conv2d_opts c2 = {.out_c = 0, .k = 3, .stride = 1, .pad = 1};
    expect_einval(&nb_conv2d_ops, "conv_o0", img, NULL, &c2, "0 channels");
    struct nb_conv2d_opts c3 = {.out_c = 4, .k = 3, .stride = 1, .pad = -1};
    expect_einval(&nb_conv2d_ops, "conv_pneg", img, NULL, &c3,
                  "negative padding");
    expect_einval(&nb_conv2d_ops, "conv_noopt", img, NULL, NULL, "no options");
    struct nb_linear_opts l0 = {.out = 0};
    expect_einval(&nb_linear_ops, "fc_o0", img, NULL, &l0, "0 outputs");
    struct nb_pool_opts p0 = {.k = 7, .stride = 2};
    expect_einval(&nb_maxpool_ops, "pool_k7", img, NULL, &p0,
                  "window larger than the input");
    struct nb_pool_opts p1 = {.k = 2, .stride = -1};
    expect_einval(&nb_maxpool_ops, "pool_sneg", img, NULL, &p1,
                  "negative stride");
    struct nb_dropout_opts d0 = {.p = 1.0f};
    expect_einval(&nb_dropout_ops, "drop_p1", img, NULL, &d0, "p = 1");
    struct nb_dropout_opts d1 = {.p = -0.1f};
    expect_einval(&nb_dropout_ops, "drop_pneg", img, NULL, &d1, "p < 0");
    struct nb_shape wide = {4, 6, 6};
    expect_einval(&nb_add_ops, "add_chan", img, &wide, NULL,
                  "shortcut with more channels than the branch");
    struct nb_shape six = {2, 6, 6}, four = {2, 4, 4};
    expect_einval(&nb_add_ops, "add_hw", four, &six, NULL,
                  "6x6 shortcut onto 4x4 (no stride fits)");
    expect_einval(&nb_add_ops, "add_up", six, &four, NULL,
                  "shortcut smaller than the branch");
    expect_einval(&nb_add_ops, "add_noin2", six, NULL, NULL,
                  "second input shape not set");
}

int main(void)
{
    test_linear();
    test_conv2d();
    test_conv2d_winograd();
    test_pool();
    test_activations();
    test_dropout();
    test_add();
    test_losses();
    test_errors();
    tap_done_testing();
    return tap_exit();
}
