/* tests/t_norm.c - the normalization family (src/layers/norm.c).
 *
 *  1. names and setup errors (message names the layer and the numbers);
 *  2. PyTorch 1.13 fixtures (the text files in tests/data/norm, written by
 *     tests/make_norm_fixtures.py): outputs, dx, dgamma, dbeta, running
 *     statistics after 1 and 3 steps, eval outputs;
 *  3. backward of every scheme and option against central differences;
 *  4. identities (GN G=1 = LN, G=C = IN, sync = BN, one ghost batch = BN,
 *     Keras 0.99 = PyTorch 0.01, frozen = eval, fold = conv + BN);
 *  5. semantics: modes (PROBE writes nothing, EVAL uses running stats),
 *     running updates (biased, ghost per sub-batch / per step), renorm
 *     schedule and unclipped renorm, lp forward, noise streams, the
 *     noise in evaluation (noise_eval),
 *     population statistics, nb_norm_check_batch;
 *  6. the ranks of a run split over processes (core/comm.h, here threads):
 *     K layers, each on its slice of the batch, compute what one layer
 *     with devices = K computes on the whole batch (sync and local BN,
 *     unequal slices, (N, C) inputs, renorm, noise, lp). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "gradcheck.h"
#include "layers/norm.h"
#include "fixture.h"
#include "tap.h"
#include "threadcomm.h"

/* ---- small helpers ------------------------------------------------------ */

static struct nb_norm_opts opts_of(enum nb_norm_type type)
{
    struct nb_norm_opts o;
    nb_norm_opts_default(&o);
    o.type = type;
    return o;
}

static void must_setup(struct gc_layer *t, const struct nb_norm_opts *o,
                       struct nb_shape in, int max_batch, const char *name)
{
    struct nb_error err;
    nb_error_clear(&err);
    if (gc_setup(t, &nb_norm_ops, name, in, NULL, max_batch, o, 77, &err)) {
        char buf[1200];
        tap_bail("setup of %s failed: %s", name,
                 nb_error_format(&err, buf, sizeof buf));
    }
}

static float *param_of(struct gc_layer *t, const char *name, bool grad)
{
    for (int i = 0; i < t->l.n_params; i++)
        if (strcmp(t->l.params[i].name, name) == 0)
            return grad ? t->l.params[i].grad : t->l.params[i].value;
    tap_bail("layer %s has no parameter %s", t->l.name, name);
}

static float *state_of(struct gc_layer *t, const char *name)
{
    for (int i = 0; i < t->l.n_state; i++)
        if (strcmp(t->l.state[i].name, name) == 0)
            return t->l.state[i].value;
    tap_bail("layer %s has no state %s", t->l.name, name);
}

/* makes the current state arena the one gradcheck restores */
static void keep_state(struct gc_layer *t)
{
    if (t->state.count)
        memcpy(t->state0, t->state.data, t->state.count * sizeof(float));
}

static void fwd(struct gc_layer *t, const float *x, float *y, int n,
                enum nb_mode mode)
{
    t->l.ops->forward(&t->l, x, y, n, mode);
}

static void bwd(struct gc_layer *t, const float *x, const float *y,
                const float *dy, float *dx, int n)
{
    if (t->grads.count)
        memset(t->grads.data, 0, t->grads.count * sizeof(float));
    t->l.ops->backward(&t->l, x, y, dy, dx, n);
}

static size_t numel(struct gc_layer *t, int n)
{
    return (size_t)n * nb_shape_numel(&t->l.in);
}

static float *fbuf(size_t n)
{
    float *p = nb_alloc_floats(n);
    if (!p)
        tap_bail("out of memory");
    return p;
}

/* a float array as doubles, from a small pool of reused buffers */
static const double *dbl(const float *a, size_t n)
{
    static double *pool[4];
    static size_t cap[4];
    static int next;
    int k = next++ & 3;
    if (cap[k] < n) {
        free(pool[k]);
        pool[k] = malloc(n * sizeof(double));
        cap[k] = n;
        if (!pool[k])
            tap_bail("out of memory");
    }
    for (size_t i = 0; i < n; i++)
        pool[k][i] = a[i];
    return pool[k];
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = d;
    }
    return m;
}

static void copy_params(struct gc_layer *dst, struct gc_layer *src)
{
    NB_ASSERT(dst->params.count == src->params.count);
    if (src->params.count)
        memcpy(dst->params.data, src->params.data,
               src->params.count * sizeof(float));
}

/* double reference of batch statistics over samples [n0, n1) */
static void ref_batch_stats(const float *x, int n0, int n1, int C, int HW,
                            double *mean, double *var)
{
    for (int c = 0; c < C; c++) {
        double s = 0, q = 0, m = (double)(n1 - n0) * HW;
        for (int n = n0; n < n1; n++)
            for (int j = 0; j < HW; j++)
                s += x[((size_t)n * C + c) * HW + j];
        mean[c] = s / m;
        for (int n = n0; n < n1; n++)
            for (int j = 0; j < HW; j++) {
                double d = x[((size_t)n * C + c) * HW + j] - mean[c];
                q += d * d;
            }
        var[c] = q / m;
    }
}

/* ---- fixtures ----------------------------------------------------------- */

static void to_floats(float *dst, const double *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)src[i];
}

#define FX_RTOL 1e-5
#define FX_ATOL 1e-6

static void test_fixture(const char *file, enum nb_norm_type type)
{
    struct fixture f;
    if (fx_load(&f, tap_srcpath(file)) != 0) {
        ok(false, "%s: fixture loads", file);
        return;
    }
    const double *sh = fx_get(&f, "shape", 4);
    int N = (int)sh[0], C = (int)sh[1], H = (int)sh[2], W = (int)sh[3];
    struct nb_norm_opts o = opts_of(type);
    o.groups = (int)fx_get(&f, "groups", 1)[0];
    o.eps = fx_get(&f, "eps", 1)[0];
    double mom = fx_get(&f, "momentum", 1)[0];
    if (mom < 0)
        o.momentum_cumulative = true;
    else
        o.momentum = mom;
    struct gc_layer t;
    must_setup(&t, &o, (struct nb_shape){C, H, W}, N, "fx");
    size_t tot = (size_t)N * C * H * W;
    float *x = fbuf(tot), *y = fbuf(tot), *dy = fbuf(tot), *dx = fbuf(tot);
    to_floats(x, fx_get(&f, "x", tot), tot);
    to_floats(dy, fx_get(&f, "dy", tot), tot);
    to_floats(param_of(&t, "gamma", false), fx_get(&f, "gamma", C), C);
    to_floats(param_of(&t, "beta", false), fx_get(&f, "beta", C), C);
    t.ctx.step = 0;
    fwd(&t, x, y, N, NB_TRAIN);
    arrays_close(y, fx_get(&f, "y", tot), tot, FX_ATOL, FX_RTOL,
                 "%s: train output y vs PyTorch", file);
    bwd(&t, x, y, dy, dx, N);
    arrays_close(dx, fx_get(&f, "dx", tot), tot, FX_ATOL, FX_RTOL,
                 "%s: dx vs PyTorch", file);
    arrays_close(param_of(&t, "gamma", true), fx_get(&f, "dgamma", C), C,
                 FX_ATOL, FX_RTOL, "%s: dgamma vs PyTorch", file);
    arrays_close(param_of(&t, "beta", true), fx_get(&f, "dbeta", C), C,
                 FX_ATOL, FX_RTOL, "%s: dbeta vs PyTorch", file);
    if (fx_get(&f, "running_mean_1", 0)) {
        arrays_close(state_of(&t, "running_mean"),
                     fx_get(&f, "running_mean_1", C), C, FX_ATOL, FX_RTOL,
                     "%s: running_mean after 1 step", file);
        arrays_close(state_of(&t, "running_var"),
                     fx_get(&f, "running_var_1", C), C, FX_ATOL, FX_RTOL,
                     "%s: running_var after 1 step", file);
        float *x2 = fbuf(tot);
        to_floats(x2, fx_get(&f, "x2", tot), tot);
        fwd(&t, x2, y, N, NB_TRAIN);
        to_floats(x2, fx_get(&f, "x3", tot), tot);
        fwd(&t, x2, y, N, NB_TRAIN);
        arrays_close(state_of(&t, "running_mean"),
                     fx_get(&f, "running_mean_3", C), C, FX_ATOL, FX_RTOL,
                     "%s: running_mean after 3 steps", file);
        arrays_close(state_of(&t, "running_var"),
                     fx_get(&f, "running_var_3", C), C, FX_ATOL, FX_RTOL,
                     "%s: running_var after 3 steps", file);
        is_close(state_of(&t, "num_batches_tracked")[0],
                 fx_get(&f, "num_batches_tracked_3", 1)[0], 0, 0,
                 "%s: num_batches_tracked after 3 steps", file);
        fwd(&t, x, y, N, NB_EVAL);
        arrays_close(y, fx_get(&f, "y_eval", tot), tot, FX_ATOL, FX_RTOL,
                     "%s: eval output after 3 steps", file);
        free(x2);
    } else {
        fwd(&t, x, y, N, NB_EVAL);
        arrays_close(y, fx_get(&f, "y", tot), tot, FX_ATOL, FX_RTOL,
                     "%s: eval output = train output (per-sample statistics)",
                     file);
    }
    free(x);
    free(y);
    free(dy);
    free(dx);
    gc_free(&t);
    fx_free(&f);
}

/* ---- gradient checks ---------------------------------------------------- */

#ifndef GC_H
#define GC_H 3e-3
#endif
#ifndef GC_ATOL
#define GC_ATOL 5e-4
#endif
#ifndef GC_RTOL
#define GC_RTOL 2e-3
#endif

typedef void (*prep_fn)(struct gc_layer *t, float *x, int n);

static void gradcheck(const char *label, const struct nb_norm_opts *o,
                      struct nb_shape in, int n, enum nb_mode mode,
                      prep_fn prep)
{
    struct gc_layer t;
    must_setup(&t, o, in, n, label);
    size_t tot = numel(&t, n);
    float *x = fbuf(tot);
    gc_fill(x, tot, 1.0, 0.05, 1000 + tot);
    /* per-channel offsets so that means are not ~0 */
    for (int i = 0; i < n; i++)
        for (int c = 0; c < in.c; c++)
            for (int j = 0; j < in.h * in.w; j++)
                x[((size_t)i * in.c + c) * in.h * in.w + j] += 0.25f * (c % 3);
    if (prep)
        prep(&t, x, n);
    gc_check(&t, x, NULL, n, mode, GC_H, GC_ATOL, GC_RTOL, label);
    free(x);
    gc_free(&t);
}

/* lp inf: one clearly largest |x| per channel so that +-h never swaps it */
static void prep_lpinf(struct gc_layer *t, float *x, int n)
{
    int C = t->l.in.c, HW = t->l.in.h * t->l.in.w;
    for (int c = 0; c < C; c++) {
        int i = (c * 7 + 1) % n, j = (c * 5) % HW;
        x[((size_t)i * C + c) * HW + j] = c % 2 ? -2.1f : 2.3f;
    }
}

/* renorm with r and d clipped: moving std far above the batch std,
 * moving mean far from the batch mean */
static void prep_renorm_clipped(struct gc_layer *t, float *x, int n)
{
    NB_UNUSED(x);
    NB_UNUSED(n);
    for (int c = 0; c < t->l.in.c; c++) {
        state_of(t, "renorm_std")[c] = 10.0f + c;
        state_of(t, "renorm_mean")[c] = c % 2 ? 6.0f : -5.0f;
    }
    keep_state(t);
}

/* running statistics that differ from the init values */
static void prep_running(struct gc_layer *t, float *x, int n)
{
    NB_UNUSED(x);
    NB_UNUSED(n);
    float *m = state_of(t, "running_mean");
    float *v = state_of(t, t->l.state[1].name); /* running_var or _scale */
    for (int c = 0; c < t->l.in.c; c++) {
        m[c] = 0.3f * c - 0.4f;
        v[c] = 0.5f + 0.2f * c;
    }
    keep_state(t);
}

static void test_gradchecks(void)
{
    const struct nb_shape conv = {4, 3, 3}, dense = {6, 1, 1};
    struct nb_norm_opts o;

    o = opts_of(NB_NORM_BATCH);
    gradcheck("batch conv (3,4,3,3)", &o, conv, 3, NB_TRAIN, NULL);
    gradcheck("batch (N,C) (5,6)", &o, dense, 5, NB_TRAIN, NULL);
    gradcheck("batch conv PROBE", &o, conv, 3, NB_PROBE, NULL);
    gradcheck("batch conv EVAL (running stats)", &o, conv, 3, NB_EVAL,
              prep_running);
    o.affine = false;
    gradcheck("batch conv affine=false", &o, conv, 3, NB_TRAIN, NULL);

    o = opts_of(NB_NORM_LAYER);
    gradcheck("layer conv", &o, conv, 3, NB_TRAIN, NULL);
    gradcheck("layer (N,C)", &o, dense, 3, NB_TRAIN, NULL);
    o = opts_of(NB_NORM_INSTANCE);
    gradcheck("instance conv", &o, conv, 3, NB_TRAIN, NULL);
    o = opts_of(NB_NORM_GROUP);
    o.groups = 2;
    gradcheck("group G=2 conv", &o, conv, 3, NB_TRAIN, NULL);
    gradcheck("group G=2 EVAL conv", &o, conv, 3, NB_EVAL, NULL);
    o.groups = 3;
    gradcheck("group G=3 (N,C)", &o, dense, 3, NB_TRAIN, NULL);
    o.groups = 2;
    o.affine = false;
    gradcheck("group G=2 affine=false", &o, conv, 3, NB_TRAIN, NULL);

    static const char *const lpn[] = {"lp1", "lp2", "lpinf"};
    for (int p = 0; p < NB_LP_COUNT; p++) {
        char lab[64];
        o = opts_of(NB_NORM_LP);
        o.lp = (enum nb_norm_lp)p;
        prep_fn pr = p == NB_LP_INF ? prep_lpinf : NULL;
        snprintf(lab, sizeof lab, "%s conv", lpn[p]);
        gradcheck(lab, &o, conv, 3, NB_TRAIN, pr);
        snprintf(lab, sizeof lab, "%s (N,C)", lpn[p]);
        gradcheck(lab, &o, dense, 5, NB_TRAIN, pr);
        snprintf(lab, sizeof lab, "%s EVAL", lpn[p]);
        gradcheck(lab, &o, conv, 3, NB_EVAL, prep_running);
    }

    o = opts_of(NB_NORM_BATCH);
    o.renorm = true;
    o.renorm_rmax = 1.5;
    o.renorm_dmax = 0.1;
    o.renorm_warmup = 0;
    o.renorm_rmax_steps = o.renorm_dmax_steps = 1;
    gradcheck("renorm r,d clipped conv", &o, conv, 3, NB_TRAIN,
              prep_renorm_clipped);
    gradcheck("renorm r,d clipped (N,C)", &o, dense, 5, NB_TRAIN,
              prep_renorm_clipped);
    o.renorm_warmup = 100;
    o.renorm_rmax_steps = o.renorm_dmax_steps = 200;
    gradcheck("renorm in warmup (r=1, d=0)", &o, conv, 3, NB_TRAIN,
              prep_renorm_clipped);

    o = opts_of(NB_NORM_BATCH);
    o.norm_batch = 2;
    gradcheck("ghost norm_batch=2 on 6", &o, conv, 6, NB_TRAIN, NULL);
    o.norm_batch = 4;
    gradcheck("ghost norm_batch=4 on 6 (4+2)", &o, conv, 6, NB_TRAIN, NULL);
    gradcheck("ghost norm_batch=4 on 6 (N,C)", &o, dense, 6, NB_TRAIN, NULL);
    o = opts_of(NB_NORM_BATCH);
    o.devices = 3;
    o.sync = true;
    gradcheck("sync 3 devices on 7", &o, conv, 7, NB_TRAIN, NULL);
    gradcheck("sync 3 devices on 7 (N,C)", &o, dense, 7, NB_TRAIN, NULL);
    o.sync = false;
    gradcheck("local BN 3 devices on 7", &o, conv, 7, NB_TRAIN, NULL);

    o = opts_of(NB_NORM_BATCH);
    o.noisy = true;
    gradcheck("noisy batch TRAIN", &o, conv, 3, NB_TRAIN, NULL);
    gradcheck("noisy batch PROBE", &o, conv, 3, NB_PROBE, NULL);
    gradcheck("noisy batch (N,C)", &o, dense, 5, NB_TRAIN, NULL);
    o.type = NB_NORM_NONE;
    gradcheck("noise without norm", &o, conv, 3, NB_TRAIN, NULL);
    o.type = NB_NORM_GROUP;
    o.groups = 2;
    gradcheck("noisy group", &o, conv, 3, NB_TRAIN, NULL);
    /* noise_eval = mean: EVAL scales by E[s]; its backward (the Hessian's
     * eval mode runs one) scales dy alike */
    o = opts_of(NB_NORM_BATCH);
    o.noisy = true;
    o.noise_eval_mean = true;
    gradcheck("noisy batch EVAL, noise_eval mean", &o, conv, 3, NB_EVAL, prep_running);
    o.type = NB_NORM_NONE;
    gradcheck("noise without norm EVAL, noise_eval mean", &o, conv, 3, NB_EVAL, NULL);

    o = opts_of(NB_NORM_BATCH);
    o.frozen = true;
    o.frozen_from = 5; /* gradcheck runs at step 7 */
    gradcheck("frozen batch TRAIN", &o, conv, 3, NB_TRAIN, prep_running);
    o = opts_of(NB_NORM_LP);
    o.frozen = true;
    o.frozen_from = 0;
    gradcheck("frozen lp2 TRAIN", &o, conv, 3, NB_TRAIN, prep_running);
}

/* ---- identities --------------------------------------------------------- */

/* Runs forward (mode) and backward of two layers on the same x and dy and
 * compares y, dx and the parameter gradients. */
static void same_layers(const char *label, struct gc_layer *a,
                        struct gc_layer *b, int n, enum nb_mode mode,
                        double tol)
{
    size_t tot = numel(a, n);
    float *x = fbuf(tot), *ya = fbuf(tot), *yb = fbuf(tot), *dy = fbuf(tot);
    float *dxa = fbuf(tot), *dxb = fbuf(tot);
    gc_fill(x, tot, 2.0, 0.0, 31 + tot);
    gc_fill(dy, tot, 1.0, 0.0, 57 + tot);
    a->ctx.step = b->ctx.step = 3;
    fwd(a, x, ya, n, mode);
    fwd(b, x, yb, n, mode);
    double d = max_abs_diff(ya, yb, tot);
    ok(d <= tol, "%s: outputs agree (max abs diff %.3g)", label, d);
    bwd(a, x, ya, dy, dxa, n);
    bwd(b, x, yb, dy, dxb, n);
    d = max_abs_diff(dxa, dxb, tot);
    ok(d <= tol, "%s: dx agrees (max abs diff %.3g)", label, d);
    if (a->grads.count == b->grads.count && a->grads.count) {
        d = max_abs_diff(a->grads.data, b->grads.data, a->grads.count);
        ok(d <= tol * 10, "%s: dgamma, dbeta agree (max abs diff %.3g)", label,
           d);
    }
    free(x);
    free(ya);
    free(yb);
    free(dy);
    free(dxa);
    free(dxb);
}

static void test_identities(void)
{
    const struct nb_shape conv = {6, 3, 4};
    struct gc_layer a, b;
    struct nb_norm_opts oa, ob;

    oa = opts_of(NB_NORM_GROUP);
    oa.groups = 1;
    ob = opts_of(NB_NORM_LAYER);
    must_setup(&a, &oa, conv, 5, "gn1");
    must_setup(&b, &ob, conv, 5, "ln");
    copy_params(&b, &a);
    same_layers("group G=1 = layer", &a, &b, 5, NB_TRAIN, 1e-6);
    gc_free(&a);
    gc_free(&b);
    must_setup(&a, &oa, (struct nb_shape){6, 1, 1}, 5, "gn1d");
    must_setup(&b, &ob, (struct nb_shape){6, 1, 1}, 5, "ln1d");
    copy_params(&b, &a);
    same_layers("group G=1 = layer on (N,C)", &a, &b, 5, NB_TRAIN, 1e-6);
    gc_free(&a);
    gc_free(&b);

    oa.groups = 6;
    ob = opts_of(NB_NORM_INSTANCE);
    must_setup(&a, &oa, conv, 5, "gn6");
    must_setup(&b, &ob, conv, 5, "in");
    copy_params(&b, &a);
    same_layers("group G=C = instance", &a, &b, 5, NB_TRAIN, 1e-6);
    gc_free(&a);
    gc_free(&b);

    /* groups 0 = nb_norm_default_groups(16) = 4 */
    oa = opts_of(NB_NORM_GROUP);
    oa.groups = 0;
    ob = opts_of(NB_NORM_GROUP);
    ob.groups = 4;
    must_setup(&a, &oa, (struct nb_shape){16, 2, 2}, 3, "gn0");
    must_setup(&b, &ob, (struct nb_shape){16, 2, 2}, 3, "gn4");
    copy_params(&b, &a);
    same_layers("groups 0 on 16 channels = G=4", &a, &b, 3, NB_TRAIN, 0);
    gc_free(&a);
    gc_free(&b);

    /* sync over K devices = BN over the whole batch, also unequal parts */
    static const int Ks[] = {2, 3, 4};
    static const int ns[] = {8, 7, 10};
    for (int i = 0; i < 3; i++) {
        char lab[96];
        oa = opts_of(NB_NORM_BATCH);
        oa.devices = Ks[i];
        oa.sync = true;
        ob = opts_of(NB_NORM_BATCH);
        must_setup(&a, &oa, conv, ns[i], "sync");
        must_setup(&b, &ob, conv, ns[i], "bn");
        copy_params(&b, &a);
        snprintf(lab, sizeof lab, "sync %d devices on %d = batch", Ks[i],
                 ns[i]);
        same_layers(lab, &a, &b, ns[i], NB_TRAIN, 2e-6);
        double d = max_abs_diff(a.state.data, b.state.data, a.state.count);
        ok(d <= 1e-6, "%s: running stats agree (max abs diff %.3g)", lab, d);
        gc_free(&a);
        gc_free(&b);
    }

    /* ghost with one sub-batch = BN */
    oa = opts_of(NB_NORM_BATCH);
    oa.norm_batch = 6;
    ob = opts_of(NB_NORM_BATCH);
    must_setup(&a, &oa, conv, 6, "ghost6");
    must_setup(&b, &ob, conv, 6, "bn");
    copy_params(&b, &a);
    same_layers("ghost norm_batch = n is batch", &a, &b, 6, NB_TRAIN, 0);
    ok(max_abs_diff(a.state.data, b.state.data, a.state.count) == 0,
       "ghost norm_batch = n: running stats identical");
    gc_free(&a);
    gc_free(&b);
    oa.norm_batch = 64;
    must_setup(&a, &oa, conv, 6, "ghost64");
    must_setup(&b, &ob, conv, 6, "bn");
    copy_params(&b, &a);
    same_layers("ghost norm_batch > n is batch", &a, &b, 6, NB_TRAIN, 0);
    gc_free(&a);
    gc_free(&b);

    /* Keras m is PyTorch 1 - m, rounded to the double of the decimal */
    ok(nb_norm_momentum_from_keras(0.99) == 0.01 && nb_norm_momentum_from_keras(0.9) == 0.1 &&
           nb_norm_momentum_from_keras(0.999) == 0.001 &&
           nb_norm_momentum_from_keras(0.25) == 0.75,
       "keras 0.99, 0.9, 0.999, 0.25 are exactly pytorch 0.01, 0.1, 0.001, 0.75 "
       "(1 - 0.99 is 0.010000000000000009 in double)");

    /* Keras 0.99 = PyTorch 0.01 (incl. renorm momentum) */
    oa = opts_of(NB_NORM_BATCH);
    oa.momentum = 0.01;
    ob = oa;
    ob.momentum = 0.99;
    ob.momentum_keras = true;
    must_setup(&a, &oa, conv, 4, "torch");
    must_setup(&b, &ob, conv, 4, "keras");
    copy_params(&b, &a);
    {
        size_t tot = numel(&a, 4);
        float *x = fbuf(tot), *y = fbuf(tot);
        for (int s = 0; s < 3; s++) {
            gc_fill(x, tot, 1.5 + s, 0, 900 + s);
            for (size_t i = 0; i < tot; i++)
                x[i] += 1.0f + s;
            fwd(&a, x, y, 4, NB_TRAIN);
            fwd(&b, x, y, 4, NB_TRAIN);
        }
        arrays_close(a.state.data, dbl(b.state.data, b.state.count),
                     a.state.count, 0, 0,
                     "momentum 0.99 (keras) = 0.01 (pytorch) bit for bit after 3 steps");
        ok(fabs(state_of(&a, "running_mean")[0]) > 1e-4,
           "running mean moved from 0");
        free(x);
        free(y);
    }
    gc_free(&a);
    gc_free(&b);

    /* frozen BN in TRAIN = eval-mode BN, and updates nothing */
    oa = opts_of(NB_NORM_BATCH);
    oa.frozen = true;
    oa.frozen_from = 2;
    ob = opts_of(NB_NORM_BATCH);
    must_setup(&a, &oa, conv, 4, "frozen");
    must_setup(&b, &ob, conv, 4, "eval");
    prep_running(&a, NULL, 0);
    prep_running(&b, NULL, 0);
    copy_params(&b, &a);
    {
        size_t tot = numel(&a, 4);
        float *x = fbuf(tot), *ya = fbuf(tot), *yb = fbuf(tot);
        float *dy = fbuf(tot), *dxa = fbuf(tot), *dxb = fbuf(tot);
        float *st = fbuf(a.state.count);
        gc_fill(x, tot, 2, 0, 5);
        gc_fill(dy, tot, 1, 0, 6);
        memcpy(st, a.state.data, a.state.count * sizeof(float));
        a.ctx.step = 3;
        fwd(&a, x, ya, 4, NB_TRAIN);
        fwd(&b, x, yb, 4, NB_EVAL);
        ok(max_abs_diff(ya, yb, tot) == 0,
           "frozen (step 3 >= 2) TRAIN output = EVAL output");
        ok(memcmp(st, a.state.data, a.state.count * sizeof(float)) == 0,
           "frozen TRAIN updates no running statistic or counter");
        bwd(&a, x, ya, dy, dxa, 4);
        bwd(&b, x, yb, dy, dxb, 4);
        ok(max_abs_diff(dxa, dxb, tot) == 0 &&
               max_abs_diff(a.grads.data, b.grads.data, a.grads.count) == 0,
           "frozen TRAIN backward = EVAL backward");
        a.ctx.step = 1;
        fwd(&a, x, ya, 4, NB_TRAIN);
        ok(max_abs_diff(ya, yb, tot) > 1e-3 &&
               state_of(&a, "num_batches_tracked")[0] == 1.0f,
           "before frozen_from (step 1 < 2) TRAIN uses batch stats and updates");
        free(x);
        free(ya);
        free(yb);
        free(dy);
        free(dxa);
        free(dxb);
        free(st);
    }
    gc_free(&a);
    gc_free(&b);
}

/* conv 3x3, pad 1, stride 1, naive: y (n, O, H, W) from x (n, I, H, W) */
static void naive_conv(float *y, const float *x, const float *w,
                       const float *b, int n, int I, int O, int H, int W)
{
    for (int s = 0; s < n; s++)
        for (int o = 0; o < O; o++)
            for (int h = 0; h < H; h++)
                for (int v = 0; v < W; v++) {
                    double acc = b ? b[o] : 0;
                    for (int i = 0; i < I; i++)
                        for (int kh = 0; kh < 3; kh++)
                            for (int kw = 0; kw < 3; kw++) {
                                int hh = h + kh - 1, ww = v + kw - 1;
                                if (hh < 0 || hh >= H || ww < 0 || ww >= W)
                                    continue;
                                acc += (double)w[((o * I + i) * 3 + kh) * 3 + kw] *
                                       x[((size_t)(s * I + i) * H + hh) * W + ww];
                            }
                    y[((size_t)(s * O + o) * H + h) * W + v] = (float)acc;
                }
}

static void test_fold(void)
{
    const int n = 2, I = 3, O = 5, H = 6, W = 5;
    struct nb_norm_opts o = opts_of(NB_NORM_BATCH);
    struct gc_layer t;
    must_setup(&t, &o, (struct nb_shape){O, H, W}, n, "bn_fold");
    /* running statistics from a few training steps on conv outputs */
    size_t nx = (size_t)n * I * H * W, ny = (size_t)n * O * H * W;
    size_t nw = (size_t)O * I * 9;
    float *x = fbuf(nx), *w = fbuf(nw), *b = fbuf(O), *y = fbuf(ny);
    float *z = fbuf(ny), *y2 = fbuf(ny);
    gc_fill(w, nw, 0.5, 0, 11);
    gc_fill(b, O, 0.3, 0, 12);
    for (int s = 0; s < 4; s++) {
        gc_fill(x, nx, 2.0, 0, 100 + s);
        naive_conv(y, x, w, b, n, I, O, H, W);
        fwd(&t, y, z, n, NB_TRAIN);
    }
    gc_fill(x, nx, 2.0, 0, 200);
    naive_conv(y, x, w, b, n, I, O, H, W);
    fwd(&t, y, z, n, NB_EVAL);
    is_int(nb_norm_fold(&t.l, w, b, O, (size_t)I * 9), 0, "fold returns 0");
    naive_conv(y2, x, w, b, n, I, O, H, W);
    double d = max_abs_diff(z, y2, ny);
    ok(d < 1e-5, "conv+BN(eval) = folded conv (max abs diff %.3g)", d);
    is_int(nb_norm_fold(&t.l, w, b, O - 1, (size_t)I * 9), NB_EINVAL,
           "fold refuses out != channels");
    gc_free(&t);

    /* linear (N, C) -> BN without affine, with renorm (uses its moving
     * statistics in EVAL) */
    o.affine = false;
    o.renorm = true;
    nb_norm_resolve_auto(&o, 16000); /* the paper's schedule / 10 */
    must_setup(&t, &o, (struct nb_shape){O, 1, 1}, 8, "bn_fold1d");
    for (int c = 0; c < O; c++) {
        state_of(&t, "renorm_mean")[c] = 0.1f * c - 0.2f;
        state_of(&t, "renorm_std")[c] = 0.7f + 0.1f * c;
    }
    float *wl = fbuf((size_t)O * 4), *bl = fbuf(O), *xl = fbuf(8 * 4);
    float *yl = fbuf(8 * O), *zl = fbuf(8 * O);
    gc_fill(wl, (size_t)O * 4, 1, 0, 21);
    gc_fill(xl, 32, 1, 0, 22);
    memset(bl, 0, O * sizeof(float));
    for (int s = 0; s < 8; s++)
        for (int c = 0; c < O; c++) {
            double acc = 0;
            for (int j = 0; j < 4; j++)
                acc += (double)wl[c * 4 + j] * xl[s * 4 + j];
            yl[s * O + c] = (float)acc;
        }
    fwd(&t, yl, zl, 8, NB_EVAL);
    nb_norm_fold(&t.l, wl, bl, O, 4);
    double worst = 0;
    for (int s = 0; s < 8; s++)
        for (int c = 0; c < O; c++) {
            double acc = bl[c];
            for (int j = 0; j < 4; j++)
                acc += (double)wl[c * 4 + j] * xl[s * 4 + j];
            worst = fmax(worst, fabs(acc - zl[s * O + c]));
        }
    ok(worst < 1e-5, "linear+BN(eval, renorm, no affine) = folded linear "
                     "(max abs diff %.3g)", worst);
    gc_free(&t);

    struct nb_norm_opts og = opts_of(NB_NORM_GROUP);
    og.groups = 1;
    must_setup(&t, &og, (struct nb_shape){O, 2, 2}, 2, "gn_fold");
    is_int(nb_norm_fold(&t.l, w, b, O, 27), NB_EINVAL,
           "fold refuses group norm (per-sample statistics)");
    gc_free(&t);
    free(x);
    free(w);
    free(b);
    free(y);
    free(z);
    free(y2);
    free(wl);
    free(bl);
    free(xl);
    free(yl);
    free(zl);
}

/* ---- semantics ---------------------------------------------------------- */

static void test_names(void)
{
    enum nb_norm_type t;
    for (int i = 0; i < NB_NORM_TYPE_COUNT; i++) {
        const char *nm = nb_norm_type_name((enum nb_norm_type)i);
        ok(nm && nb_norm_type_parse(nm, &t) == 0 && (int)t == i,
           "norm type %d <-> '%s'", i, nm ? nm : "(null)");
    }
    is_int(nb_norm_type_parse("batchnorm", &t), NB_EINVAL,
           "unknown norm name is NB_EINVAL");
    ok(nb_norm_type_name(NB_NORM_TYPE_COUNT) == NULL, "type name out of range");
    enum nb_norm_lp p;
    ok(nb_norm_lp_parse("inf", &p) == 0 && p == NB_LP_INF &&
           strcmp(nb_norm_lp_name(NB_LP_1), "1") == 0,
       "lp names");
}

/* groups = 0: the largest divisor of C that is at most min(8, C/4), at
 * least 1, one definition for models and standalone layers. */
static void test_default_groups(void)
{
    static const struct {
        int c, g;
    } cases[] = {
        {1, 1},  {3, 1},  {4, 1},   {7, 1},   {8, 2},   {9, 1},   {10, 2},
        {12, 3}, {16, 4}, {18, 3},  {20, 5},  {24, 6},  {30, 6},  {32, 8},
        {36, 6}, {44, 4}, {64, 8},  {100, 5}, {128, 8}, {131, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        is_int(nb_norm_default_groups(cases[i].c), cases[i].g,
               "default groups on %d channels", cases[i].c);

    /* a standalone group norm with groups 0 where min(8, C/4) does not
     * divide C: set up as the explicit G (it was refused) */
    static const struct nb_shape shapes[] = {{36, 2, 2}, {18, 1, 1}, {3, 2, 2}};
    static const int want[] = {6, 3, 1};
    for (int i = 0; i < 3; i++) {
        struct gc_layer a, b;
        struct nb_norm_opts oa = opts_of(NB_NORM_GROUP), ob = oa;
        oa.groups = 0;
        ob.groups = want[i];
        char lab[64];
        snprintf(lab, sizeof lab, "groups 0 on %d channels = G=%d", shapes[i].c,
                 want[i]);
        struct nb_error err;
        nb_error_clear(&err);
        int rc = gc_setup(&a, &nb_norm_ops, "gn0", shapes[i], NULL, 3, &oa, 77, &err);
        if (!ok(rc == 0, "%s: setup accepted", lab)) {
            tap_diag("%s", err.msg);
            gc_free(&a);
            continue;
        }
        must_setup(&b, &ob, shapes[i], 3, "gnG");
        copy_params(&b, &a);
        same_layers(lab, &a, &b, 3, NB_TRAIN, 0);
        gc_free(&a);
        gc_free(&b);
    }
}

static void expect_setup_error(const char *label, const struct nb_norm_opts *o,
                               struct nb_shape in, int max_batch,
                               const char *n1, const char *n2)
{
    struct nb_layer l;
    struct nb_error err;
    memset(&l, 0, sizeof l);
    nb_error_clear(&err);
    int rc = nb_layer_setup(&l, &nb_norm_ops, "norm3", &in, max_batch, o, &err);
    is_int(rc, NB_EINVAL, "%s: setup fails with NB_EINVAL", label);
    contains(err.msg, "norm3", "%s: message names the layer", label);
    contains(err.msg, n1, "%s: message says '%s'", label, n1);
    if (n2)
        contains(err.msg, n2, "%s: message says '%s'", label, n2);
    nb_layer_destroy(&l);
}

static void test_setup_errors(void)
{
    struct nb_norm_opts o = opts_of(NB_NORM_GROUP);
    o.groups = 4;
    expect_setup_error("group G=4 on C=6", &o, (struct nb_shape){6, 3, 3}, 4,
                       "G = 4", "C = 6");
    o = opts_of(NB_NORM_INSTANCE);
    expect_setup_error("instance on (N,C)", &o, (struct nb_shape){6, 1, 1}, 4,
                       "instance norm", "H x W");
    o = opts_of(NB_NORM_GROUP);
    o.groups = 6;
    expect_setup_error("group G=C on (N,C)", &o, (struct nb_shape){6, 1, 1}, 4,
                       "one element per group", NULL);
    o = opts_of(NB_NORM_BATCH);
    expect_setup_error("batch with max_batch 1 on (N,C)", &o,
                       (struct nb_shape){6, 1, 1}, 1,
                       "more than one value per channel", "batch 1 x 1 x 1");
    o.norm_batch = 1;
    expect_setup_error("ghost norm_batch 1 on (N,C)", &o,
                       (struct nb_shape){6, 1, 1}, 8,
                       "more than one value per channel", "norm batch 1");
    o.devices = 2;
    expect_setup_error("norm_batch and devices", &o, (struct nb_shape){6, 2, 2},
                       8, "either norm_batch", NULL);
    o = opts_of(NB_NORM_GROUP);
    o.renorm = true;
    expect_setup_error("renorm on group", &o, (struct nb_shape){6, 2, 2}, 8,
                       "renorm", "batch norm only");
    /* renorm's schedule defaults to auto (-1): the caller resolves it for
     * the run's length, and setup refuses it unresolved */
    o = opts_of(NB_NORM_BATCH);
    o.renorm = true;
    expect_setup_error("renorm auto unresolved", &o, (struct nb_shape){6, 2, 2}, 8,
                       "renorm", "not resolved");
    nb_norm_resolve_auto(&o, 160000);
    ok(o.renorm_warmup == 5000 && o.renorm_dmax_steps == 25000 && o.renorm_rmax_steps == 40000,
       "nb_norm_resolve_auto: the paper's 5k, 25k, 40k of 160k steps");
    o.renorm_warmup = 7;
    o.renorm_dmax_steps = o.renorm_rmax_steps = -1;
    nb_norm_resolve_auto(&o, 16000);
    ok(o.renorm_warmup == 7 && o.renorm_dmax_steps == 2500 && o.renorm_rmax_steps == 4000,
       "nb_norm_resolve_auto: keeps a given step, scales the others (16k: 2500, 4000)");
    o = opts_of(NB_NORM_BATCH);
    o.momentum = 1.5;
    expect_setup_error("momentum 1.5", &o, (struct nb_shape){6, 2, 2}, 8,
                       "momentum", "1.5");
    /* frozen from the start never needs batch statistics */
    o = opts_of(NB_NORM_BATCH);
    o.frozen = true;
    o.frozen_from = 0;
    struct nb_layer l;
    struct nb_error err;
    memset(&l, 0, sizeof l);
    struct nb_shape one = {6, 1, 1};
    is_int(nb_layer_setup(&l, &nb_norm_ops, "fz", &one, 1, &o, &err), 0,
           "frozen-from-0 batch norm accepts max_batch 1 on (N,C)");
    nb_layer_destroy(&l);
}

static void expect_batch(struct gc_layer *t, int n, int want,
                         const char *needle, const char *label)
{
    struct nb_error err;
    nb_error_clear(&err);
    int rc = nb_norm_check_batch(&t->l, n, &err);
    is_int(rc, want, "%s: nb_norm_check_batch(n = %d)", label, n);
    if (needle)
        contains(err.msg, needle, "%s: message", label);
}

static void test_check_batch(void)
{
    struct gc_layer t;
    struct nb_norm_opts o = opts_of(NB_NORM_BATCH);
    must_setup(&t, &o, (struct nb_shape){6, 1, 1}, 64, "norm1");
    expect_batch(&t, 1, NB_EINVAL,
                 "norm1: batch norm needs more than one value per channel in "
                 "training (batch 1 x 1 x 1 = 1)", "BN (N,C), n = 1");
    expect_batch(&t, 2, 0, NULL, "BN (N,C), n = 2");
    expect_batch(&t, 65, NB_EINVAL, "outside 1..64", "BN, n > max_batch");
    expect_batch(&t, 0, NB_EINVAL, NULL, "BN, n = 0");
    gc_free(&t);
    must_setup(&t, &o, (struct nb_shape){6, 2, 1}, 64, "norm2");
    expect_batch(&t, 1, 0, NULL, "BN conv 2x1, n = 1");
    gc_free(&t);
    o.norm_batch = 3;
    must_setup(&t, &o, (struct nb_shape){6, 1, 1}, 64, "ghost");
    expect_batch(&t, 6, 0, NULL, "ghost 3 on 6");
    expect_batch(&t, 7, NB_EINVAL, "sub-batch 3 of 3", "ghost 3 on 7 (3+3+1)");
    gc_free(&t);
    o = opts_of(NB_NORM_BATCH);
    o.devices = 4;
    must_setup(&t, &o, (struct nb_shape){6, 1, 1}, 64, "local");
    expect_batch(&t, 5, NB_EINVAL, "device part", "4 local devices on 5");
    expect_batch(&t, 8, 0, NULL, "4 local devices on 8");
    gc_free(&t);
    o.sync = true;
    must_setup(&t, &o, (struct nb_shape){6, 1, 1}, 64, "sync");
    expect_batch(&t, 5, 0, NULL, "4 synced devices on 5");
    gc_free(&t);
    o = opts_of(NB_NORM_LAYER);
    must_setup(&t, &o, (struct nb_shape){6, 1, 1}, 64, "ln");
    expect_batch(&t, 1, 0, NULL, "layer norm, n = 1");
    gc_free(&t);
    o = opts_of(NB_NORM_BATCH);
    o.frozen = true;
    o.frozen_from = 0;
    must_setup(&t, &o, (struct nb_shape){6, 1, 1}, 64, "frozen0");
    expect_batch(&t, 1, 0, NULL, "frozen-from-0 BN, n = 1");
    gc_free(&t);
}

static void test_modes(void)
{
    const struct nb_shape in = {5, 3, 2};
    const int n = 4, C = 5, HW = 6;
    struct nb_norm_opts o = opts_of(NB_NORM_BATCH);
    o.renorm = true;
    nb_norm_resolve_auto(&o, 16000);
    o.noisy = true;
    struct gc_layer t;
    must_setup(&t, &o, in, n, "probe");
    prep_running(&t, NULL, 0);
    size_t tot = numel(&t, n);
    float *x = fbuf(tot), *y = fbuf(tot), *y2 = fbuf(tot);
    float *st = fbuf(t.state.count);
    gc_fill(x, tot, 2, 0, 3);
    gsl_rng_set(t.ctx.rng_noise, 99);
    gsl_rng_set(t.ctx.rng_probe, 98);
    gsl_rng *noise0 = gsl_rng_clone(t.ctx.rng_noise);
    gsl_rng *probe0 = gsl_rng_clone(t.ctx.rng_probe);
    memcpy(st, t.state.data, t.state.count * sizeof(float));
    t.ctx.step = 10;
    fwd(&t, x, y, n, NB_PROBE);
    ok(memcmp(st, t.state.data, t.state.count * sizeof(float)) == 0,
       "PROBE forward leaves the state arena byte-identical");
    ok(gsl_rng_get(noise0) == gsl_rng_get(t.ctx.rng_noise),
       "PROBE forward draws nothing from the noise stream");
    ok(gsl_rng_get(probe0) != gsl_rng_get(t.ctx.rng_probe),
       "PROBE forward draws its noise from the probe stream");
    fwd(&t, x, y2, n, NB_TRAIN);
    ok(memcmp(st, t.state.data, t.state.count * sizeof(float)) != 0,
       "TRAIN forward updates the state arena");
    gsl_rng_free(noise0);
    gsl_rng_free(probe0);
    gc_free(&t);

    /* PROBE = TRAIN output without noise; EVAL uses running stats */
    o = opts_of(NB_NORM_BATCH);
    must_setup(&t, &o, in, n, "eval");
    prep_running(&t, NULL, 0);
    fwd(&t, x, y, n, NB_PROBE);
    memcpy(st, t.state.data, t.state.count * sizeof(float));
    fwd(&t, x, y2, n, NB_TRAIN);
    ok(max_abs_diff(y, y2, tot) == 0, "PROBE output = TRAIN output (no noise)");
    memcpy(t.state.data, st, t.state.count * sizeof(float));
    fwd(&t, x, y, n, NB_EVAL);
    double *want = malloc(tot * sizeof(double));
    const float *rm = state_of(&t, "running_mean"), *rv = state_of(&t, "running_var");
    const float *g = param_of(&t, "gamma", false), *b = param_of(&t, "beta", false);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C; c++)
            for (int j = 0; j < HW; j++) {
                size_t k = ((size_t)i * C + c) * HW + j;
                want[k] = g[c] * (x[k] - (double)rm[c]) / sqrt(rv[c] + 1e-5) + b[c];
            }
    arrays_close(y, want, tot, 1e-6, 1e-6, "EVAL output uses the running statistics");
    ok(memcmp(st, t.state.data, t.state.count * sizeof(float)) == 0,
       "EVAL forward updates nothing");
    /* TRAIN invariant: per-channel mean = beta, variance = gamma^2 */
    fwd(&t, x, y, n, NB_TRAIN);
    double wm = 0, wv = 0, xm[5], xv[5], ym[5], yv[5];
    ref_batch_stats(x, 0, n, C, HW, xm, xv);
    ref_batch_stats(y, 0, n, C, HW, ym, yv);
    for (int c = 0; c < C; c++) {
        double ev = (double)g[c] * g[c] * xv[c] / (xv[c] + 1e-5);
        wm = fmax(wm, fabs(ym[c] - b[c]));
        wv = fmax(wv, fabs(yv[c] - ev) / ev);
    }
    ok(wm < 1e-6 && wv < 1e-5,
       "TRAIN output: channel mean = beta (%.2g), variance = gamma^2 (rel %.2g)",
       wm, wv);
    free(want);
    gc_free(&t);

    /* noise: EVAL adds none */
    o.noisy = true;
    struct gc_layer u;
    must_setup(&t, &o, in, n, "noisy");
    o.noisy = false;
    must_setup(&u, &o, in, n, "plain");
    copy_params(&u, &t);
    fwd(&t, x, y, n, NB_EVAL);
    fwd(&u, x, y2, n, NB_EVAL);
    ok(max_abs_diff(y, y2, tot) == 0, "noisy layer adds no noise in EVAL");
    gsl_rng_set(t.ctx.rng_noise, 5);
    fwd(&t, x, y, n, NB_TRAIN);
    fwd(&u, x, y2, n, NB_TRAIN);
    ok(max_abs_diff(y, y2, tot) > 0.05, "noisy layer perturbs TRAIN outputs");
    gc_free(&t);
    gc_free(&u);

    /* type none: identity; with noise, s*x + m in the documented ranges */
    o = opts_of(NB_NORM_NONE);
    must_setup(&t, &o, in, n, "none");
    is_int(t.l.n_params, 0, "none has no parameters");
    fwd(&t, x, y, n, NB_TRAIN);
    ok(memcmp(x, y, tot * sizeof(float)) == 0, "none is the identity");
    gc_free(&t);
    o.noisy = true;
    o.noise_rsigma = 0; /* s = sigma_c exactly */
    o.noise_rmu = 0;    /* m = mu_c exactly */
    must_setup(&t, &o, in, n, "noise");
    for (size_t i = 0; i < tot; i++)
        x[i] = 1.0f + (float)(i % HW); /* 1, 2, ... in every plane */
    fwd(&t, x, y, n, NB_TRAIN);
    /* y = s_c x + m_c: s_c = y(x=2) - y(x=1), m_c = y(x=1) - s_c */
    bool inrange = true;
    for (int c = 0; c < C; c++) {
        size_t k = (size_t)c * HW;
        double s = (double)y[k + 1] - y[k], m = y[k] - s * x[k];
        inrange = inrange && s >= 1.0 - 1e-5 && s <= 1.25 + 1e-5 &&
                  m >= -0.5 - 1e-5 && m <= 0.5 + 1e-5;
    }
    ok(inrange, "noise: sigma_c in [1, n_sigma], mu_c in [-n_mu, n_mu]");
    gc_free(&t);
    free(x);
    free(y);
    free(y2);
    free(st);
}

/* noise_eval = mean: EVAL applies the training noise's expected value
 * E[s] y + E[m] = (1 + n_sigma)/2 y and draws nothing; off adds none; the
 * recomputation's forwards do what EVAL does; folding includes E[s].
 * (EVAL-only behaviour: the gradient checks of test_gradchecks cover its
 * backward.) */
static void test_noise_eval(void)
{
    const struct nb_shape in = {4, 3, 3};
    const int n = 5, C = 4, HW = 9;
    struct nb_norm_opts o = opts_of(NB_NORM_BATCH);
    struct gc_layer t, u, v;
    o.noisy = true;
    o.noise_eval_mean = true;
    must_setup(&t, &o, in, n, "noisy_mean");
    o.noise_eval_mean = false;
    must_setup(&v, &o, in, n, "noisy_off");
    o.noisy = false;
    must_setup(&u, &o, in, n, "plain");
    prep_running(&u, NULL, 0);
    copy_params(&t, &u);
    copy_params(&v, &u);
    memcpy(t.state.data, u.state.data, u.state.count * sizeof(float));
    memcpy(v.state.data, u.state.data, u.state.count * sizeof(float));
    size_t tot = numel(&t, n);
    float *x = fbuf(tot), *y = fbuf(tot), *y2 = fbuf(tot), *y3 = fbuf(tot);
    gc_fill(x, tot, 1.5, 0.2, 31);
    gsl_rng *noise0 = gsl_rng_clone(t.ctx.rng_noise);
    gsl_rng *probe0 = gsl_rng_clone(t.ctx.rng_probe);
    fwd(&t, x, y, n, NB_EVAL);
    fwd(&u, x, y2, n, NB_EVAL);
    fwd(&v, x, y3, n, NB_EVAL);
    double es = (1.0 + o.noise_sigma) / 2.0, worst = 0;
    for (size_t i = 0; i < tot; i++)
        worst = fmax(worst, fabs(y[i] - es * y2[i]));
    ok(worst < 1e-6, "noise_eval mean: EVAL output = (1 + n_sigma)/2 x the noiseless one "
                     "(max abs diff %.2g)", worst);
    ok(max_abs_diff(y3, y2, tot) == 0, "noise_eval off: EVAL adds no noise");
    ok(gsl_rng_get(noise0) == gsl_rng_get(t.ctx.rng_noise) &&
           gsl_rng_get(probe0) == gsl_rng_get(t.ctx.rng_probe),
       "noise_eval mean: EVAL draws nothing from the noise or probe stream");
    gsl_rng_free(noise0);
    gsl_rng_free(probe0);
    /* TRAIN is the same whatever noise_eval says */
    gsl_rng_set(t.ctx.rng_noise, 17);
    gsl_rng_set(v.ctx.rng_noise, 17);
    fwd(&t, x, y, n, NB_TRAIN);
    fwd(&v, x, y3, n, NB_TRAIN);
    ok(max_abs_diff(y, y3, tot) == 0, "noise_eval changes nothing in TRAIN");
    /* the recomputation's TRAIN forward: batch statistics, no draws, E[s] */
    nb_norm_recompute_begin(&t.l);
    fwd(&t, x, y, n, NB_TRAIN);
    nb_norm_recompute_end(&t.l, NB_POP_EXACT);
    nb_norm_recompute_begin(&u.l);
    fwd(&u, x, y2, n, NB_TRAIN);
    nb_norm_recompute_end(&u.l, NB_POP_EXACT);
    worst = 0;
    for (size_t i = 0; i < tot; i++)
        worst = fmax(worst, fabs(y[i] - es * y2[i]));
    ok(worst < 1e-6, "noise_eval mean: a recomputation's forward applies E[s] as EVAL does "
                     "(max abs diff %.2g)", worst);
    gc_free(&t);
    gc_free(&u);
    gc_free(&v);

    /* E[s] y + E[m] is the mean of the training noise: type none, x = 0
     * and 1, averaged over 4000 TRAIN draws (sd of the mean about 0.003) */
    o = opts_of(NB_NORM_NONE);
    o.noisy = true;
    o.noise_eval_mean = true;
    must_setup(&t, &o, in, n, "none_noise");
    for (size_t i = 0; i < tot; i++)
        x[i] = (float)((i / HW) % 2); /* planes of 0 and 1 */
    double s0 = 0, s1 = 0;
    size_t c0 = 0, c1 = 0;
    for (int k = 0; k < 4000; k++) {
        fwd(&t, x, y, n, NB_TRAIN);
        for (size_t i = 0; i < tot; i++) {
            if (x[i] == 0)
                s0 += y[i], c0++;
            else
                s1 += y[i], c1++;
        }
    }
    fwd(&t, x, y2, n, NB_EVAL);
    double m0 = s0 / (double)c0, m1 = s1 / (double)c1;
    ok(fabs(m0) < 0.015 && fabs(m1 - es) < 0.015 && y2[0] == 0 && fabs(y2[HW] - es) < 1e-7,
       "the training noise averages to E[s] x + E[m] (x = 0: %.4f, x = 1: %.4f, E[s] = "
       "%.4f), which EVAL applies",
       m0, m1, es);
    NB_UNUSED(C);
    gc_free(&t);

    /* folding: conv + noisy BN (EVAL, mean) = the folded conv */
    const int I = 2, O = 4, H = 3, W = 3;
    o = opts_of(NB_NORM_BATCH);
    o.noisy = true;
    o.noise_eval_mean = true;
    must_setup(&t, &o, (struct nb_shape){O, H, W}, 2, "noisy_fold");
    prep_running(&t, NULL, 0);
    size_t nx = (size_t)2 * I * H * W, ny = (size_t)2 * O * H * W, nw = (size_t)O * I * 9;
    float *cx = fbuf(nx), *w = fbuf(nw), *b = fbuf(O), *cy = fbuf(ny), *z = fbuf(ny),
          *cy2 = fbuf(ny);
    gc_fill(cx, nx, 1.0, 0, 41);
    gc_fill(w, nw, 0.5, 0, 42);
    gc_fill(b, O, 0.3, 0, 43);
    naive_conv(cy, cx, w, b, 2, I, O, H, W);
    fwd(&t, cy, z, 2, NB_EVAL);
    is_int(nb_norm_fold(&t.l, w, b, O, (size_t)I * 9), 0, "fold of noisy BN returns 0");
    naive_conv(cy2, cx, w, b, 2, I, O, H, W);
    double d = max_abs_diff(z, cy2, ny);
    ok(d < 1e-5, "conv + noisy BN (EVAL, noise_eval mean) = folded conv (max abs diff %.3g)",
       d);
    gc_free(&t);
    o.type = NB_NORM_NONE;
    must_setup(&t, &o, (struct nb_shape){O, H, W}, 2, "noise_fold");
    gc_fill(w, nw, 0.5, 0, 42);
    gc_fill(b, O, 0.3, 0, 43);
    naive_conv(cy, cx, w, b, 2, I, O, H, W);
    fwd(&t, cy, z, 2, NB_EVAL);
    is_int(nb_norm_fold(&t.l, w, b, O, (size_t)I * 9), 0, "fold of noise without norm returns 0");
    naive_conv(cy2, cx, w, b, 2, I, O, H, W);
    d = max_abs_diff(z, cy2, ny);
    ok(d < 1e-5, "conv + noise without norm (EVAL, mean) = the conv scaled by E[s] "
                 "(max abs diff %.3g)", d);
    gc_free(&t);
    free(cx), free(w), free(b), free(cy), free(z), free(cy2);
    free(x), free(y), free(y2), free(y3);
}

/* running updates: biased estimator, ghost per sub-batch and per step */
static void test_running(void)
{
    const struct nb_shape in = {3, 2, 2};
    const int n = 6, C = 3, HW = 4;
    struct gc_layer t;
    size_t tot = (size_t)n * C * HW;
    float *x = fbuf(tot), *y = fbuf(tot);
    gc_fill(x, tot, 2, 0, 17);
    for (size_t i = 0; i < tot; i++)
        x[i] += (float)(i % 5) * 0.3f;
    double m1[3], v1[3], m2[3], v2[3], want_m[3], want_v[3];

    struct nb_norm_opts o = opts_of(NB_NORM_BATCH);
    o.running_var_biased = true;
    must_setup(&t, &o, in, n, "biased");
    fwd(&t, x, y, n, NB_TRAIN);
    ref_batch_stats(x, 0, n, C, HW, m1, v1);
    for (int c = 0; c < C; c++) {
        want_m[c] = 0.1 * m1[c];
        want_v[c] = 0.9 + 0.1 * v1[c];
    }
    arrays_close(state_of(&t, "running_var"), want_v, C, 1e-7, 1e-6,
                 "running_var_biased: 0.9 + 0.1 var_biased");
    gc_free(&t);

    /* ghost 4 on 6: sub-batches [0,4), [4,6), updated in order */
    o = opts_of(NB_NORM_BATCH);
    o.norm_batch = 4;
    must_setup(&t, &o, in, n, "ghost");
    fwd(&t, x, y, n, NB_TRAIN);
    ref_batch_stats(x, 0, 4, C, HW, m1, v1);
    ref_batch_stats(x, 4, 6, C, HW, m2, v2);
    for (int c = 0; c < C; c++) {
        double rm = 0.1 * m1[c], rv = 0.9 + 0.1 * v1[c] * 16 / 15;
        want_m[c] = 0.9 * rm + 0.1 * m2[c];
        want_v[c] = 0.9 * rv + 0.1 * v2[c] * 8 / 7;
    }
    arrays_close(state_of(&t, "running_mean"), want_m, C, 1e-7, 1e-6,
                 "ghost per sub-batch: running_mean updated twice in order");
    arrays_close(state_of(&t, "running_var"), want_v, C, 1e-7, 1e-6,
                 "ghost per sub-batch: running_var updated twice in order");
    is_close(state_of(&t, "num_batches_tracked")[0], 2, 0, 0,
             "ghost per sub-batch: num_batches_tracked += 2");
    /* the output normalizes each sub-batch with its own statistics */
    {
        const float *g = param_of(&t, "gamma", false), *b = param_of(&t, "beta", false);
        double *ref = malloc(tot * sizeof(double));
        for (int i = 0; i < n; i++)
            for (int c = 0; c < C; c++)
                for (int j = 0; j < HW; j++) {
                    size_t k = ((size_t)i * C + c) * HW + j;
                    double mm = i < 4 ? m1[c] : m2[c], vv = i < 4 ? v1[c] : v2[c];
                    ref[k] = g[c] * (x[k] - mm) / sqrt(vv + 1e-5) + b[c];
                }
        arrays_close(y, ref, tot, 1e-5, 1e-5,
                     "ghost 4 on 6: each sub-batch normalized by its own stats");
        free(ref);
    }
    gc_free(&t);

    o.ghost_update_per_step = true;
    must_setup(&t, &o, in, n, "ghost_step");
    fwd(&t, x, y, n, NB_TRAIN);
    for (int c = 0; c < C; c++) {
        double am = (4 * m1[c] + 2 * m2[c]) / 6;
        double av = (4 * v1[c] * 16 / 15 + 2 * v2[c] * 8 / 7) / 6;
        want_m[c] = 0.1 * am;
        want_v[c] = 0.9 + 0.1 * av;
    }
    arrays_close(state_of(&t, "running_mean"), want_m, C, 1e-7, 1e-6,
                 "ghost per step: running_mean from the averaged means");
    arrays_close(state_of(&t, "running_var"), want_v, C, 1e-7, 1e-6,
                 "ghost per step: running_var from the averaged variances");
    is_close(state_of(&t, "num_batches_tracked")[0], 1, 0, 0,
             "ghost per step: num_batches_tracked += 1");
    gc_free(&t);

    /* sync: unbiased over the global count */
    o = opts_of(NB_NORM_BATCH);
    o.devices = 4;
    o.sync = true;
    must_setup(&t, &o, in, n, "sync");
    fwd(&t, x, y, n, NB_TRAIN);
    ref_batch_stats(x, 0, n, C, HW, m1, v1);
    for (int c = 0; c < C; c++)
        want_v[c] = 0.9 + 0.1 * v1[c] * 24 / 23;
    arrays_close(state_of(&t, "running_var"), want_v, C, 1e-7, 1e-6,
                 "sync 4 devices on 6: running var unbiased over the global count");
    gc_free(&t);
    free(x);
    free(y);
}

static void test_renorm(void)
{
    struct nb_norm_opts o = opts_of(NB_NORM_BATCH);
    double r, d;
    nb_norm_resolve_auto(&o, 16000); /* auto over 16k steps: 500, 2500, 4000 */
    nb_norm_renorm_limits(&o, 0, &r, &d);
    ok(r == 1 && d == 0, "renorm default: r_max 1, d_max 0 at step 0");
    nb_norm_renorm_limits(&o, 500, &r, &d);
    ok(r == 1 && d == 0, "renorm default: r_max 1, d_max 0 at warmup (500)");
    nb_norm_renorm_limits(&o, 1500, &r, &d);
    is_close(d, 2.5, 1e-12, 0, "renorm default: d_max 2.5 at 1500 (linear)");
    is_close(r, 1 + 2.0 * 1000 / 3500, 1e-12, 0, "renorm default: r_max ramp at 1500");
    nb_norm_renorm_limits(&o, 100000, &r, &d);
    ok(r == 3 && d == 5, "renorm default: final r_max 3, d_max 5");

    /* unclipped renorm: the output is the moving-statistics affine map and
     * the gradient is r times BN's (r, d are constants) */
    const struct nb_shape in = {3, 2, 3};
    const int n = 4, C = 3, HW = 6;
    o.renorm = true;
    o.renorm_rmax = 100;
    o.renorm_dmax = 100;
    o.renorm_warmup = 0;
    o.renorm_rmax_steps = o.renorm_dmax_steps = 1;
    struct gc_layer t, u;
    must_setup(&t, &o, in, n, "renorm");
    struct nb_norm_opts ob = opts_of(NB_NORM_BATCH);
    must_setup(&u, &ob, in, n, "bn");
    copy_params(&u, &t);
    float *qm = state_of(&t, "renorm_mean"), *qs = state_of(&t, "renorm_std");
    for (int c = 0; c < C; c++) {
        qm[c] = 0.2f * c - 0.1f;
        qs[c] = 0.8f + 0.3f * c;
    }
    size_t tot = (size_t)n * C * HW;
    float *x = fbuf(tot), *y = fbuf(tot), *yb = fbuf(tot), *dy = fbuf(tot);
    float *dx = fbuf(tot), *dxb = fbuf(tot);
    gc_fill(x, tot, 1.5, 0, 41);
    gc_fill(dy, tot, 1, 0, 42);
    double mean[3], var[3], rr[3], dd[3];
    ref_batch_stats(x, 0, n, C, HW, mean, var);
    float qm0[3], qs0[3];
    memcpy(qm0, qm, sizeof qm0);
    memcpy(qs0, qs, sizeof qs0);
    t.ctx.step = 5;
    fwd(&t, x, y, n, NB_TRAIN);
    fwd(&u, x, yb, n, NB_TRAIN);
    const float *g = param_of(&t, "gamma", false), *b = param_of(&t, "beta", false);
    double *want = malloc(tot * sizeof(double));
    for (int c = 0; c < C; c++) {
        rr[c] = sqrt(var[c] + 1e-5) / qs0[c];
        dd[c] = (mean[c] - qm0[c]) / qs0[c];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < HW; j++) {
                size_t k = ((size_t)i * C + c) * HW + j;
                want[k] = g[c] * (x[k] - (double)qm0[c]) / qs0[c] + b[c];
            }
    }
    arrays_close(y, want, tot, 1e-5, 1e-5,
                 "unclipped renorm output = gamma (x - mu) / sigma + beta");
    bwd(&t, x, y, dy, dx, n);
    bwd(&u, x, yb, dy, dxb, n);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < HW; j++) {
                size_t k = ((size_t)i * C + c) * HW + j;
                want[k] = rr[c] * dxb[k];
            }
    arrays_close(dx, want, tot, 1e-6, 1e-5,
                 "unclipped renorm dx = r * BN dx (stop-gradient r, d)");
    {
        const float *dgb = param_of(&u, "gamma", true), *dbb = param_of(&u, "beta", true);
        double wg[3];
        for (int c = 0; c < C; c++)
            wg[c] = rr[c] * dgb[c] + dd[c] * dbb[c];
        arrays_close(param_of(&t, "gamma", true), wg, C, 1e-6, 1e-5,
                     "unclipped renorm dgamma = r dgamma_BN + d dbeta_BN");
    }
    /* moving statistics updated with renorm_momentum; EVAL uses them */
    double wmm[3], wms[3];
    for (int c = 0; c < C; c++) {
        wmm[c] = qm0[c] + 0.01 * (mean[c] - qm0[c]);
        wms[c] = qs0[c] + 0.01 * (sqrt(var[c] + 1e-5) - qs0[c]);
    }
    arrays_close(qm, wmm, C, 1e-7, 1e-6, "renorm moving mean update (0.01)");
    arrays_close(qs, wms, C, 1e-7, 1e-6, "renorm moving std update (0.01)");
    fwd(&t, x, y, n, NB_EVAL);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < HW; j++) {
                size_t k = ((size_t)i * C + c) * HW + j;
                want[k] = g[c] * (x[k] - (double)qm[c]) / qs[c] + b[c];
            }
    arrays_close(y, want, tot, 1e-5, 1e-5, "renorm EVAL uses the moving mean/std");
    free(want);
    free(x);
    free(y);
    free(yb);
    free(dy);
    free(dx);
    free(dxb);
    gc_free(&t);
    gc_free(&u);
}

static void test_lp_forward(void)
{
    const struct nb_shape in = {3, 2, 2};
    const int n = 5, C = 3, HW = 4;
    size_t tot = (size_t)n * C * HW;
    float *x = fbuf(tot), *y = fbuf(tot);
    gc_fill(x, tot, 2, 0.01, 61);
    for (int p = 0; p < NB_LP_COUNT; p++) {
        struct nb_norm_opts o = opts_of(NB_NORM_LP);
        o.lp = (enum nb_norm_lp)p;
        struct gc_layer t;
        must_setup(&t, &o, in, n, "lp");
        fwd(&t, x, y, n, NB_TRAIN);
        const float *g = param_of(&t, "gamma", false), *b = param_of(&t, "beta", false);
        double *want = malloc(tot * sizeof(double)), D[3], mu[3];
        for (int c = 0; c < C; c++) {
            double s = 0, q = 0, mx = 0, m = n * HW;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < HW; j++) {
                    double v = x[((size_t)i * C + c) * HW + j];
                    s += v;
                    q += p == NB_LP_1 ? fabs(v) : v * v;
                    mx = fmax(mx, fabs(v));
                }
            mu[c] = s / m;
            D[c] = p == NB_LP_1 ? q / m + 1e-5
                   : p == NB_LP_2 ? sqrt(q / m + 1e-5)
                                  : mx + 1e-5;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < HW; j++) {
                    size_t k = ((size_t)i * C + c) * HW + j;
                    want[k] = g[c] * (x[k] - mu[c]) / D[c] + b[c];
                }
        }
        arrays_close(y, want, tot, 1e-6, 1e-5,
                     "lp %s forward: gamma (x - mean) / D + beta",
                     nb_norm_lp_name(o.lp));
        double wm[3], ws[3];
        for (int c = 0; c < C; c++) {
            wm[c] = 0.1 * mu[c];
            ws[c] = 0.9 + 0.1 * D[c];
        }
        arrays_close(state_of(&t, "running_mean"), wm, C, 1e-7, 1e-6,
                     "lp %s: running_mean", nb_norm_lp_name(o.lp));
        arrays_close(state_of(&t, "running_scale"), ws, C, 1e-7, 1e-6,
                     "lp %s: running_scale (EMA of D)", nb_norm_lp_name(o.lp));
        free(want);
        gc_free(&t);
    }
    free(x);
    free(y);
}

static void test_recompute(void)
{
    const struct nb_shape in = {3, 2, 2};
    const int C = 3, HW = 4, sizes[3] = {4, 4, 6};
    struct nb_norm_opts o = opts_of(NB_NORM_BATCH);
    o.noisy = true;
    o.frozen = true;
    o.frozen_from = 0; /* recompute still uses batch statistics */
    struct gc_layer t;
    must_setup(&t, &o, in, 6, "precise");
    size_t tot = (size_t)6 * C * HW;
    float *x[3], *y = fbuf(tot);
    float *st = fbuf(t.state.count);
    double s1[3] = {0}, s2[3] = {0}, b1[3] = {0}, bv[3] = {0}, bb[3] = {0}, M = 0;
    for (int k = 0; k < 3; k++) {
        x[k] = fbuf(tot);
        gc_fill(x[k], tot, 1.0 + k, 0, 500 + k);
        for (size_t i = 0; i < tot; i++)
            x[k][i] += 0.5f * k;
        double m[3], v[3], cnt = sizes[k] * HW;
        ref_batch_stats(x[k], 0, sizes[k], C, HW, m, v);
        for (int c = 0; c < C; c++) {
            s1[c] += cnt * m[c];
            s2[c] += cnt * (m[c] * m[c] + v[c]);
            b1[c] += m[c];
            bv[c] += v[c] * cnt / (cnt - 1);
            bb[c] += v[c];
        }
        M += cnt;
    }
    memcpy(st, t.state.data, t.state.count * sizeof(float));
    static const char *const fname[NB_POP_FORMULA_COUNT] = {
        [NB_POP_EXACT] = "exact", [NB_POP_BATCH_MEAN] = "batch mean (fvcore, Ioffe Alg. 2)",
        [NB_POP_BATCH_MEAN_BIASED] = "batch mean, biased"};
    for (int pass = 0; pass < 2 * NB_POP_FORMULA_COUNT; pass++) {
        /* each formula after its own pass, then each again rewritten from
         * the last pass */
        enum nb_pop_formula f = (enum nb_pop_formula)(pass % NB_POP_FORMULA_COUNT);
        bool rewrite = pass >= NB_POP_FORMULA_COUNT;
        if (!rewrite) {
            nb_norm_recompute_begin(&t.l);
            for (int k = 0; k < 3; k++)
                fwd(&t, x[k], y, sizes[k], NB_TRAIN);
            if (f == NB_POP_EXACT)
                ok(memcmp(st, t.state.data, t.state.count * sizeof(float)) == 0,
                   "recompute: TRAIN forwards update no state until the end");
        }
        is_int(nb_norm_recompute_end(&t.l, f), 3, "recompute %s%s: 3 batches", fname[f],
               rewrite ? " (rewritten)" : "");
        double wm[3], wv[3];
        for (int c = 0; c < C; c++) {
            if (f != NB_POP_EXACT) {
                wm[c] = b1[c] / 3;
                wv[c] = (f == NB_POP_BATCH_MEAN ? bv[c] : bb[c]) / 3;
            } else {
                wm[c] = s1[c] / M;
                wv[c] = (s2[c] / M - wm[c] * wm[c]) * M / (M - 1);
            }
        }
        arrays_close(state_of(&t, "running_mean"), wm, C, 1e-6, 1e-5,
                     "recompute %s%s: running_mean", fname[f], rewrite ? " (rewritten)" : "");
        arrays_close(state_of(&t, "running_var"), wv, C, 1e-6, 1e-5,
                     "recompute %s%s: running_var", fname[f], rewrite ? " (rewritten)" : "");
    }
    /* exact = the unbiased variance of all samples pooled */
    {
        double pooled_m[3], pooled_v[3];
        size_t all = 0;
        float *cat = fbuf((size_t)14 * C * HW);
        for (int k = 0; k < 3; k++) {
            memcpy(cat + all, x[k], (size_t)sizes[k] * C * HW * sizeof(float));
            all += (size_t)sizes[k] * C * HW;
        }
        ref_batch_stats(cat, 0, 14, C, HW, pooled_m, pooled_v);
        nb_norm_recompute_begin(&t.l);
        for (int k = 0; k < 3; k++)
            fwd(&t, x[k], y, sizes[k], NB_TRAIN);
        nb_norm_recompute_end(&t.l, NB_POP_EXACT);
        for (int c = 0; c < C; c++)
            pooled_v[c] *= M / (M - 1);
        arrays_close(state_of(&t, "running_var"), pooled_v, C, 1e-6, 1e-5,
                     "recompute exact = unbiased variance of the pooled samples");
        free(cat);
    }
    {
        struct gc_layer u;
        must_setup(&u, &o, in, 6, "fresh");
        memcpy(st, u.state.data, u.state.count * sizeof(float));
        is_int(nb_norm_recompute_end(&u.l, NB_POP_EXACT), 0,
               "recompute_end without a begin does nothing");
        ok(memcmp(st, u.state.data, u.state.count * sizeof(float)) == 0,
           "  and leaves the running statistics");
        gc_free(&u);
    }
    for (int k = 0; k < 3; k++)
        free(x[k]);
    free(y);
    free(st);
    gc_free(&t);
}

/* ---- 6. data parallelism: the ranks (core/comm.h) as threads ----------- */

struct rank_job {
    struct gc_layer t;
    const float *x, *dy; /* the whole batch */
    float *y, *dx;       /* the whole batch: each rank writes its slice */
    int n, steps;
};

/* `steps` TRAIN forward + backward of the rank's slice, as the training
 * loop runs them (ctx->comm and the slice set around each) */
static void rank_steps(const struct nb_comm *c, void *arg)
{
    struct rank_job *j = arg;
    int s, e;
    nb_comm_slice(c, j->n, &s, &e);
    size_t off = numel(&j->t, s);
    for (int st = 0; st < j->steps; st++) {
        j->t.ctx.step = st;
        j->t.ctx.comm = c;
        j->t.ctx.part_start = s;
        j->t.ctx.part_total = j->n;
        fwd(&j->t, j->x + off, j->y + off, e - s, NB_TRAIN);
        bwd(&j->t, j->x + off, j->y + off, j->dy + off, j->dx + off, e - s);
        j->t.ctx.comm = NULL;
        j->t.ctx.part_start = j->t.ctx.part_total = 0;
    }
}

/* K ranks of layers with options o (devices = K) on their slices of n
 * samples vs one such layer on all n: outputs, running statistics (the
 * same bits), dx and the summed dgamma/dbeta (the sums reassociate). */
static void ranks_vs_devices(const char *lab, struct nb_norm_opts o, struct nb_shape in,
                             int K, int n, int steps)
{
    o.devices = K;
    struct gc_layer ref;
    must_setup(&ref, &o, in, n, "ref");
    size_t tot = numel(&ref, n);
    float *x = fbuf(tot), *dy = fbuf(tot), *y0 = fbuf(tot), *dx0 = fbuf(tot);
    float *y = fbuf(tot), *dx = fbuf(tot);
    gc_fill(x, tot, 2.0, 0, 11);
    gc_fill(dy, tot, 1.0, 0, 12);
    if (o.type == NB_NORM_LP && o.lp == NB_LP_INF && n >= 5) {
        /* a tie across ranks: the first holder takes the gradient */
        x[numel(&ref, n - 1)] = 9.5f;
        x[numel(&ref, n - 2)] = -9.5f;
        x[numel(&ref, n / 2)] = 9.5f;
    }
    gsl_rng_set(ref.ctx.rng_noise, 42);
    for (int st = 0; st < steps; st++) {
        ref.ctx.step = st;
        fwd(&ref, x, y0, n, NB_TRAIN);
        bwd(&ref, x, y0, dy, dx0, n);
    }
    struct rank_job *jobs = calloc((size_t)K, sizeof *jobs);
    void *args[8];
    if (!jobs || K > 8)
        tap_bail("out of memory");
    for (int k = 0; k < K; k++) {
        jobs[k] = (struct rank_job){.x = x, .dy = dy, .y = y, .dx = dx, .n = n, .steps = steps};
        must_setup(&jobs[k].t, &o, in, n, "rank");
        gsl_rng_set(jobs[k].t.ctx.rng_noise, 42);
        args[k] = &jobs[k];
    }
    if (tc_run(K, rank_steps, args))
        tap_bail("cannot start %d threads", K);
    ok(max_abs_diff(y, y0, tot) == 0, "%s: %d ranks' outputs = %d devices' (same bits)", lab,
       K, K);
    double ds = 0;
    for (int k = 0; k < K; k++)
        ds += max_abs_diff(jobs[k].t.state.data, ref.state.data, ref.state.count);
    ok(ds == 0, "%s: running statistics on every rank = the devices' (same bits)", lab);
    arrays_close(dx, dbl(dx0, tot), tot, 1e-6, 1e-5, "%s: dx", lab);
    for (int pi = 0; pi < ref.l.n_params; pi++) {
        size_t cnt = ref.l.params[pi].count;
        double *sum = calloc(cnt, sizeof *sum);
        if (!sum)
            tap_bail("out of memory");
        for (int k = 0; k < K; k++)
            for (size_t i = 0; i < cnt; i++)
                sum[i] += jobs[k].t.l.params[pi].grad[i];
        float *g = fbuf(cnt);
        for (size_t i = 0; i < cnt; i++)
            g[i] = (float)sum[i];
        arrays_close(g, dbl(ref.l.params[pi].grad, cnt), cnt, 1e-6, 1e-5,
                     "%s: d%s summed over the ranks", lab, ref.l.params[pi].name);
        free(g);
        free(sum);
    }
    for (int k = 0; k < K; k++)
        gc_free(&jobs[k].t);
    free(jobs);
    gc_free(&ref);
    free(x);
    free(dy);
    free(y0);
    free(dx0);
    free(y);
    free(dx);
}

static void test_ranks(void)
{
    const struct nb_shape conv = {4, 3, 3}, dense = {6, 1, 1};
    struct nb_norm_opts o = opts_of(NB_NORM_BATCH);
    o.sync = true;
    ranks_vs_devices("sync BN, 3 ranks on 7 (2+2+3)", o, conv, 3, 7, 2);
    ranks_vs_devices("sync BN, 2 ranks on 8", o, conv, 2, 8, 2);
    ranks_vs_devices("sync BN (N,C), 2 ranks on 6", o, dense, 2, 6, 2);
    ranks_vs_devices("sync BN (N,C), 3 ranks on 10 (3+3+4)", o, dense, 3, 10, 2);
    o.sync = false;
    ranks_vs_devices("local BN, 3 ranks on 7", o, conv, 3, 7, 2);
    ranks_vs_devices("local BN (N,C), 2 ranks on 8", o, dense, 2, 8, 2);
    o.ghost_update_per_step = true;
    ranks_vs_devices("local BN, running stats per step, 2 ranks on 6", o, conv, 2, 6, 2);
    o = opts_of(NB_NORM_BATCH);
    o.sync = true;
    o.renorm = true;
    o.renorm_warmup = 0;
    o.renorm_rmax_steps = o.renorm_dmax_steps = 1;
    o.renorm_rmax = 1.05;
    o.renorm_dmax = 0.05;
    o.renorm_momentum = 0.5;
    ranks_vs_devices("sync renorm, 2 ranks on 6, 3 steps", o, conv, 2, 6, 3);
    o.sync = false;
    ranks_vs_devices("local renorm, 3 ranks on 9, 3 steps", o, conv, 3, 9, 3);
    o = opts_of(NB_NORM_BATCH);
    o.sync = true;
    o.noisy = true;
    ranks_vs_devices("noisy sync BN, 3 ranks on 7", o, conv, 3, 7, 2);
    o = opts_of(NB_NORM_LP);
    o.sync = true;
    o.lp = NB_LP_1;
    ranks_vs_devices("sync lp 1, 2 ranks on 6", o, conv, 2, 6, 1);
    o.lp = NB_LP_2;
    ranks_vs_devices("sync lp 2, 3 ranks on 7", o, conv, 3, 7, 1);
    o.lp = NB_LP_INF;
    ranks_vs_devices("sync lp inf, 3 ranks on 7 (a tie over ranks)", o, conv, 3, 7, 1);
    o.sync = false;
    ranks_vs_devices("local lp inf, 2 ranks on 6", o, conv, 2, 6, 1);
}

int main(void)
{
    test_names();
    test_default_groups();
    test_setup_errors();
    test_check_batch();
    test_fixture("norm/bn2d_m01.txt", NB_NORM_BATCH);
    test_fixture("norm/bn2d_cum.txt", NB_NORM_BATCH);
    test_fixture("norm/bn1d.txt", NB_NORM_BATCH);
    test_fixture("norm/gn3.txt", NB_NORM_GROUP);
    test_fixture("norm/gn1.txt", NB_NORM_GROUP);
    test_fixture("norm/gn1.txt", NB_NORM_LAYER);
    test_fixture("norm/in2d.txt", NB_NORM_INSTANCE);
    test_gradchecks();
    test_identities();
    test_fold();
    test_modes();
    test_noise_eval();
    test_running();
    test_renorm();
    test_lp_forward();
    test_recompute();
    test_ranks();
    return tap_exit();
}
