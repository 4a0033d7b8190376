/* tests/t_hvp.c - exact Hessian-vector products (model.h nb_model_hvp,
 * the layers' R-operators) against independent references:
 *  - the whole Hessian of small smooth nets (tanh and sigmoid mlps, with
 *    and without norms, in EVAL and PROBE mode), built column by column
 *    from central differences of the gradient;
 *  - H v along random directions on nets too large for that (a tiny cnn
 *    with tanh, im2col and Winograd; a resnet-8 with tanh and batch norm);
 *  - closed forms: a linear model with MSE (H = 2/(N D) blocks of X^T X)
 *    and a two-layer linear network (H v by hand, in double);
 *  - symmetry v^T H w = w^T H v, and R{loss} = grad . v;
 *  - PyTorch 1.13's double backward (torch.autograd.functional.hvp, as
 *    PyHessian) on an mlp with batch norm in eval mode and on the cnn with
 *    each norm type: none, batch (running and batch statistics), layer,
 *    group, instance (tests/data/hvp, written by
 *    tests/make_hvp_fixtures.py);
 *  - the ReLU net without norm: every diagonal entry e_i^T H e_i >= 0.
 *
 * The reference differences: the model computes in float, so a gradient
 * carries a rounding error of about 1e-7 of its terms.  The difference
 * quotient is formed in double from gradients at theta +- h v and
 * theta +- 2h v (Richardson: [8 (g(h) - g(-h)) - (g(2h) - g(-2h))] / 12h),
 * at points on an exact float grid (GRID), so its truncation error is
 * O(h^4) and its rounding error about 1e-7 |g| / h: with h = 2^-8 (2^-10
 * for ghost sets of 4, whose higher derivatives are larger) the whole
 * Hessians of the small nets come within 1.3e-5 - 5.2e-5 of max |H|, and
 * the tolerance is 2e-4.  On the large nets rounding and max-pool kinks
 * limit the differences to ~1e-3; check_dirs says how those are judged.
 * The exact product has no step at all: its error is float rounding
 * (PyTorch's float64 double backward agrees to 2e-7).  Every check prints
 * its measured error.
 *
 * `t_hvp --fd` runs the ReLU checks with the old finite-difference
 * product instead (probe.h's hessian_hvp = fd): they fail (the
 * demonstration of issue 17; not part of make check). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "core/rng.h"
#include "data/data.h"
#include "fixture.h"
#include "model/model.h"
#include "probe/probe.h"
#include "tap.h"

static bool use_fd; /* --fd: the ReLU checks on finite differences */

static void fill(float *x, size_t n, unsigned long seed, double scale)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * (2.0 * gsl_rng_uniform(r) - 1.0));
    gsl_rng_free(r);
}

/* ---- a model with a fixed batch ---------------------------------------- */

struct net {
    struct nb_model m;
    struct nb_hvp h;
    gsl_rng *r;     /* the PROBE-mode stream, restarted before each forward */
    float *x, *t;   /* n samples and their targets (mse) */
    int y[64];
    int n;
    enum nb_mode mode;
    size_t np;
    float *theta;   /* the point */
};

/* The differences are taken at points on a grid of 2^-22: every number of
 * magnitude below 4 on it is a float.  With steps a = +-2^-k h0 and a
 * direction whose entries are integer multiples of 2^-22 / (h0 / 2^7)
 * (int_dir), every theta + a v down to a = h0 / 128 is exact, and the
 * quotient sees exactly the step it divides by (unrounded, a float step
 * of 1e-7 relative in the parameters would alone contribute 1e-4
 * relative to H v when v spreads over 1e4 parameters). */
static const double GRID = 0x1p-22;

/* v[i] = k_i q, k_i uniform in {-2, ..., 2}, q = GRID / (h0 / 128) */
static void int_dir(float *v, size_t n, double h0, gsl_rng *r)
{
    const double q = GRID / (h0 / 128.0);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(q * ((double)gsl_rng_uniform_int(r, 5) - 2.0));
}

static void net_free(struct net *t)
{
    nb_hvp_free(&t->h);
    nb_model_free(&t->m);
    if (t->r)
        gsl_rng_free(t->r);
    free(t->x);
    free(t->t);
    free(t->theta);
    memset(t, 0, sizeof *t);
}

/* Builds d for n samples with random parameters (scale pscale), inputs
 * and labels/targets, and random running statistics for the norms. */
static int net_init(struct net *t, const struct nb_model_desc *d, int n, enum nb_mode mode,
                    double pscale, unsigned long seed)
{
    memset(t, 0, sizeof *t);
    struct nb_error e;
    if (nb_model_build(&t->m, d, n, seed, &e) || nb_hvp_init(&t->h, &t->m, &e)) {
        tap_diag("build: %s", e.msg);
        net_free(t);
        return -1;
    }
    t->n = n;
    t->mode = mode;
    t->np = t->m.n_params;
    t->r = gsl_rng_alloc(gsl_rng_mt19937);
    t->m.ctx.rng_probe = t->m.ctx.rng_dropout = t->m.ctx.rng_noise = t->r;
    size_t per = nb_shape_numel(&d->input), out = (size_t)d->outputs;
    t->x = malloc((size_t)n * per * sizeof *t->x);
    t->t = malloc((size_t)n * out * sizeof *t->t);
    t->theta = malloc((t->np ? t->np : 1) * sizeof *t->theta);
    fill(t->x, (size_t)n * per, seed + 1, 1.0);
    fill(t->t, (size_t)n * out, seed + 2, 1.0);
    for (int i = 0; i < n; i++)
        t->y[i] = (int)((i * 7 + seed) % (unsigned long)d->outputs);
    /* weights at their init scale plus noise; every norm gain, shift and
     * running statistic random (gamma = 1, beta = 0 would hide bugs) */
    float *noise = malloc((t->np ? t->np : 1) * sizeof *noise);
    fill(noise, t->np, seed + 3, pscale);
    for (size_t i = 0; i < t->np; i++)
        t->m.params.data[i] += noise[i];
    free(noise);
    for (int i = 0; i < t->m.n_layers; i++) {
        struct nb_layer *l = &t->m.layers[i];
        for (int s = 0; s < l->n_state; s++) {
            if (strstr(l->state[s].name, "num_batches"))
                continue;
            bool positive = strstr(l->state[s].name, "var") || strstr(l->state[s].name, "std") ||
                            strstr(l->state[s].name, "scale");
            fill(l->state[s].value, l->state[s].count, seed + 10 + (unsigned long)i, 0.5);
            for (size_t k = 0; k < l->state[s].count; k++)
                if (positive)
                    l->state[s].value[k] = 0.6f + fabsf(l->state[s].value[k]);
        }
    }
    /* the point on the grid of GRID: theta + a v exactly representable
     * for the steps a and directions v below (grid_dir) */
    for (size_t i = 0; i < t->np; i++) {
        float w = t->m.params.data[i];
        if (fabsf(w) >= 4.0f)
            tap_bail("parameter %zu = %g outside (-4, 4): the grid needs |theta| < 4", i, w);
        t->m.params.data[i] = (float)(nearbyint((double)w / GRID) * GRID);
    }
    memcpy(t->theta, t->m.params.data, t->np * sizeof *t->theta);
    return 0;
}

static double net_forward(struct net *t)
{
    gsl_rng_set(t->r, 1234);
    return nb_model_forward(&t->m, t->x, t->y, t->t, t->n, t->mode);
}

/* The kinks of the last forward: the sign of every ReLU input and the
 * argmax of every max-pool window (2x2, stride 2: the cnn's), as one
 * count of ReLU inputs > 0 plus a hash of both.  A difference quotient is
 * only a reference when its points all lie on one linear piece, i.e.
 * give the same pattern as theta. */
static unsigned long kinks(const struct net *t)
{
    const struct nb_model *m = &t->m;
    unsigned long hsh = 1469598103UL;
    for (int i = 0; i < m->n_layers; i++) {
        const struct nb_layer *l = &m->layers[i];
        const float *x = m->acts[m->in_idx[i]];
        if (l->ops == &nb_relu_ops) {
            size_t cnt = (size_t)t->n * nb_shape_numel(&l->in);
            for (size_t k = 0; k < cnt; k++)
                hsh = (hsh ^ (x[k] > 0.0f)) * 16777619UL;
        } else if (l->ops == &nb_maxpool_ops) {
            const int H = l->in.h, W = l->in.w;
            for (size_t pl = 0; pl < (size_t)t->n * l->in.c; pl++)
                for (int oh = 0; oh < l->out.h; oh++)
                    for (int ow = 0; ow < l->out.w; ow++) {
                        const float *b = x + pl * H * W + (size_t)oh * 2 * W + ow * 2;
                        int best = 0;
                        float mv = b[0];
                        for (int q = 1; q < 4; q++)
                            if (b[(q / 2) * W + q % 2] > mv) {
                                mv = b[(q / 2) * W + q % 2];
                                best = q;
                            }
                        hsh = (hsh ^ (unsigned long)best) * 16777619UL;
                    }
        }
    }
    return hsh;
}

/* the gradient at theta + a v (v may be NULL: at theta), in double;
 * returns the kink pattern of that point */
static unsigned long net_grad(struct net *t, double a, const float *v, double *g)
{
    for (size_t i = 0; i < t->np; i++)
        t->m.params.data[i] = (float)((double)t->theta[i] + (v ? a * (double)v[i] : 0.0));
    net_forward(t);
    unsigned long k = kinks(t);
    nb_model_backward(&t->m, t->n);
    for (size_t i = 0; i < t->np; i++)
        g[i] = t->m.grads.data[i];
    memcpy(t->m.params.data, t->theta, t->np * sizeof *t->theta);
    return k;
}

/* the exact H v at theta into hv; returns R{loss} */
static double net_hvp(struct net *t, const float *v, double *hv)
{
    memcpy(t->m.params.data, t->theta, t->np * sizeof *t->theta);
    net_forward(t);
    nb_model_backward(&t->m, t->n);
    memcpy(t->h.dir, v, t->np * sizeof *v);
    double rl = nb_model_hvp(&t->m, &t->h, t->n);
    for (size_t i = 0; i < t->np; i++)
        hv[i] = t->h.hv[i];
    return rl;
}

/* H v by Richardson-extrapolated central differences of the gradient
 * (header comment), with the step h along v, quartered (at most `tries`
 * times) until the four points lie on theta's linear piece (kinks()).
 * Returns the step taken, or 0 when no step stayed on the piece. */
static double net_hvp_fd(struct net *t, const float *v, double h, int tries, double *hv)
{
    size_t np = t->np;
    double *a = malloc(np * sizeof *a), *b = malloc(np * sizeof *b);
    double *c = malloc(np * sizeof *c), *d = malloc(np * sizeof *d);
    unsigned long k0 = net_grad(t, 0, NULL, a);
    for (;; h /= 4, tries--) {
        bool same = net_grad(t, h, v, a) == k0;
        same = (net_grad(t, -h, v, b) == k0) && same;
        same = (net_grad(t, 2 * h, v, c) == k0) && same;
        same = (net_grad(t, -2 * h, v, d) == k0) && same;
        if (same)
            break;
        if (tries == 0) {
            h = 0;
            break;
        }
    }
    for (size_t i = 0; i < np; i++)
        hv[i] = h > 0 ? (8.0 * (a[i] - b[i]) - (c[i] - d[i])) / (12.0 * h) : NAN;
    free(a);
    free(b);
    free(c);
    free(d);
    return h;
}

static double max_abs(const double *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

static double dot_d(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double dot_f(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* ||a - b|| / ||b|| */
static double rel_l2(const double *a, const double *b, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        s += b[i] * b[i];
    }
    return s > 0 ? sqrt(d / s) : sqrt(d);
}

/* max |a - b| / max |b| */
static double rel_err(const double *a, const double *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs(a[i] - b[i]));
    double s = max_abs(b, n);
    return s > 0 ? d / s : d;
}

static const double TOL = 2e-4; /* of the largest entry: see the header */

/* ---- the whole Hessian of a small net ----------------------------------- */

/* H column by column, exact and by differences (step h along e_i); the
 * largest difference relative to max |H|, and the exact H's asymmetry. */
static void check_full(const char *label, const struct nb_model_desc *d, int n,
                       enum nb_mode mode, double h)
{
    struct net t;
    if (net_init(&t, d, n, mode, 0.3, 17)) {
        ok(0, "%s: build", label);
        return;
    }
    int bad = nb_model_hvp_unsupported(&t.m, mode);
    ok(bad < 0, "%s: every layer has exact R-operators in %s mode%s%s", label,
       nb_mode_name(mode), bad >= 0 ? ": not " : "", bad >= 0 ? t.m.layers[bad].name : "");
    if (bad >= 0) {
        net_free(&t);
        return;
    }
    size_t P = t.np;
    double *He = calloc(P * P, sizeof *He), *Hf = calloc(P * P, sizeof *Hf);
    float *e = calloc(P, sizeof *e);
    for (size_t i = 0; i < P; i++) {
        e[i] = 1.0f;
        net_hvp(&t, e, He + i * P);
        net_hvp_fd(&t, e, h, 0, Hf + i * P);
        e[i] = 0.0f;
    }
    double err = rel_err(He, Hf, P * P), scale = max_abs(Hf, P * P), asym = 0;
    for (size_t i = 0; i < P; i++)
        for (size_t j = 0; j < i; j++)
            asym = fmax(asym, fabs(He[i * P + j] - He[j * P + i]));
    ok(err <= TOL, "%s: exact H (%zu x %zu) vs central differences: max error %.2g of max |H| "
       "= %.3g (tolerance %.0e)", label, P, P, err, scale, TOL);
    ok(asym <= 1e-5 * scale, "%s: exact H symmetric: max |H_ij - H_ji| = %.2g of max |H| (1e-5)",
       label, asym / scale);
    free(He);
    free(Hf);
    free(e);
    net_free(&t);
}

/* ---- H v along random directions ------------------------------------------ */

/* k random directions v (int_dir): exact H v vs differences, the
 * symmetry v^T H w = w^T H v, and R{loss} = g . v.
 *
 * On these nets (10^4 - 10^5 parameters, max-pool kinks a step of 1e-2
 * may cross) no step makes the differences much better than 1e-3: the
 * float gradient's rounding, divided by the step, is about that large
 * against H v.  So the reference calibrates itself: D(h) at the largest
 * kink-free step h <= h0 and D(h/2); their difference estimates D(h/2)'s
 * own error, and the exact product must agree with D(h/2) to within twice
 * that (and to 5e-2 in any case: a reference worse than that says nothing).  A missing or wrong term of an
 * R-operator shows as an error of order 1. */
static void check_dirs(const char *label, const struct nb_model_desc *d, int n,
                       enum nb_mode mode, double h0, int k)
{
    struct net t;
    if (net_init(&t, d, n, mode, 0.05, 23)) {
        ok(0, "%s: build", label);
        return;
    }
    int bad = nb_model_hvp_unsupported(&t.m, mode);
    ok(bad < 0, "%s: every layer has exact R-operators in %s mode", label, nb_mode_name(mode));
    if (bad >= 0) {
        net_free(&t);
        return;
    }
    size_t P = t.np;
    float *v = malloc(P * sizeof *v), *w = malloc(P * sizeof *w);
    double *hv = malloc(P * sizeof *hv), *f1 = malloc(P * sizeof *f1);
    double *f2 = malloc(P * sizeof *f2), *hw = malloc(P * sizeof *hw);
    double *g = malloc(P * sizeof *g);
    double worst = 0, wref = 0, sym = 0, rl_err = 0;
    bool pass = true;
    gsl_rng *r = nb_rng_alloc(5, NB_STREAM_PROBE);
    for (int j = 0; j < k; j++) {
        int_dir(v, P, h0, r);
        int_dir(w, P, h0, r);
        /* h0, h0/4, h0/16, h0/64, then half of it: down to h0/128 */
        double h = net_hvp_fd(&t, v, h0, 3, f1);
        double h2 = h > 0 ? net_hvp_fd(&t, v, h / 2, 0, f2) : 0;
        double rl = net_hvp(&t, v, hv);
        double err = h2 > 0 ? rel_l2(hv, f2, P) : INFINITY;
        double ref = h2 > 0 ? rel_l2(f1, f2, P) : INFINITY;
        tap_diag("%s: direction %d: steps %g and %g: ||exact - D|| = %.2g, ||D(h) - D(h/2)|| = "
                 "%.2g of ||D||", label, j, h, h2, err, ref);
        pass = pass && err <= 2 * ref + 1e-5 && err <= 5e-2;
        worst = fmax(worst, err);
        wref = fmax(wref, ref);
        net_grad(&t, 0, NULL, g);
        double gv = 0;
        for (size_t i = 0; i < P; i++)
            gv += g[i] * v[i];
        double vn = sqrt(dot_f(v, v, P));
        rl_err = fmax(rl_err, fabs(rl - gv) / (vn * sqrt(dot_d(g, g, P))));
        net_hvp(&t, w, hw);
        double vhw = 0, whv = 0;
        for (size_t i = 0; i < P; i++) {
            vhw += (double)v[i] * hw[i];
            whv += (double)w[i] * hv[i];
        }
        double wn = sqrt(dot_f(w, w, P));
        sym = fmax(sym, fabs(vhw - whv) / fmax(wn * sqrt(dot_d(hv, hv, P)),
                                               vn * sqrt(dot_d(hw, hw, P))));
    }
    gsl_rng_free(r);
    ok(pass, "%s: exact H v vs central differences along %d random directions (%zu "
       "parameters): ||error|| %.2g of ||H v||, within twice the differences' own %.2g", label,
       k, P, worst, wref);
    ok(sym <= 1e-5, "%s: v^T H w = w^T H v to %.2g of ||v|| ||H w|| (1e-5)", label, sym);
    ok(rl_err <= 1e-5, "%s: R{loss} = grad . v to %.2g of ||grad|| ||v|| (1e-5)", label, rl_err);
    free(v);
    free(w);
    free(hv);
    free(f1);
    free(f2);
    free(hw);
    free(g);
    net_free(&t);
}

static void mlp_desc(struct nb_model_desc *d, enum nb_act act, enum nb_norm_type norm, int in,
                     int w1, int w2, int out)
{
    nb_model_desc_default(d);
    d->arch = NB_ARCH_MLP;
    d->input = (struct nb_shape){in, 1, 1};
    d->outputs = out;
    d->n_widths = 2;
    d->widths[0] = w1;
    d->widths[1] = w2;
    d->act = act;
    d->norm.type = norm;
    d->norm.groups = norm == NB_NORM_GROUP ? 2 : 0;
}

static void test_mlps(void)
{
    struct nb_model_desc d;
    mlp_desc(&d, NB_ACT_TANH, NB_NORM_NONE, 6, 5, 4, 3);
    check_full("mlp tanh 6-5-4-3", &d, 8, NB_EVAL, 0x1p-8);
    mlp_desc(&d, NB_ACT_SIGMOID, NB_NORM_NONE, 6, 5, 4, 3);
    check_full("mlp sigmoid 6-5-4-3", &d, 8, NB_EVAL, 0x1p-8);
    mlp_desc(&d, NB_ACT_TANH, NB_NORM_BATCH, 5, 4, 4, 3);
    check_full("mlp tanh + batch norm, eval (running statistics)", &d, 8, NB_EVAL, 0x1p-8);
    check_full("mlp tanh + batch norm, probe (batch statistics)", &d, 8, NB_PROBE, 0x1p-8);
    d.norm.norm_batch = 4;
    check_full("mlp tanh + ghost batch norm (sets of 4), probe", &d, 8, NB_PROBE, 0x1p-10);
    d.norm.norm_batch = 0;
    d.placement = NB_PLACE_POST;
    check_full("mlp tanh + batch norm after the activation, probe", &d, 8, NB_PROBE, 0x1p-8);
    mlp_desc(&d, NB_ACT_SIGMOID, NB_NORM_LAYER, 5, 4, 4, 3);
    check_full("mlp sigmoid + layer norm", &d, 6, NB_EVAL, 0x1p-8);
    mlp_desc(&d, NB_ACT_TANH, NB_NORM_GROUP, 5, 4, 4, 3);
    check_full("mlp tanh + group norm (2 groups)", &d, 6, NB_EVAL, 0x1p-8);
    mlp_desc(&d, NB_ACT_TANH, NB_NORM_LP, 5, 4, 4, 3);
    check_full("mlp tanh + lp norm, eval (running scale)", &d, 6, NB_EVAL, 0x1p-8);
    mlp_desc(&d, NB_ACT_TANH, NB_NORM_BATCH, 5, 4, 4, 3);
    d.norm.noisy = true;
    d.dropout = 0.3;
    check_full("mlp tanh + noisy batch norm + dropout, probe (the call's draws)", &d, 8,
               NB_PROBE, 0x1p-8);
    d.norm.noise_eval_mean = true;
    check_full("mlp tanh + noisy batch norm (noise_eval = mean), eval", &d, 8, NB_EVAL, 0x1p-8);
    mlp_desc(&d, NB_ACT_TANH, NB_NORM_NONE, 5, 4, 4, 3);
    d.loss = NB_LOSS_MSE;
    check_full("mlp tanh, mse", &d, 6, NB_EVAL, 0x1p-8);
}

static void test_convnets(void)
{
    struct nb_model_desc d;
    nb_model_desc_default(&d);
    d.input = (struct nb_shape){1, 8, 8};
    d.outputs = 3;
    d.act = NB_ACT_TANH;
    d.init = NB_INIT_GLOROT; /* tanh's: Kaiming's gain saturates it */
    d.conv_algo = NB_CONV_IM2COL;
    check_dirs("cnn tanh (im2col)", &d, 3, NB_EVAL, 1.0, 3);
    d.conv_algo = NB_CONV_WINOGRAD;
    check_dirs("cnn tanh (winograd)", &d, 3, NB_EVAL, 1.0, 3);
    d.conv_algo = NB_CONV_AUTO;
    d.norm.type = NB_NORM_BATCH;
    check_dirs("cnn tanh + batch norm, eval", &d, 3, NB_EVAL, 1.0, 2);
    check_dirs("cnn tanh + batch norm, probe", &d, 3, NB_PROBE, 1.0, 2);
    d.norm.type = NB_NORM_GROUP;
    check_dirs("cnn tanh + group norm", &d, 3, NB_EVAL, 1.0, 2);
    nb_model_desc_default(&d);
    d.arch = NB_ARCH_RESNET;
    d.input = (struct nb_shape){3, 8, 8};
    d.outputs = 3;
    d.act = NB_ACT_TANH;
    d.init = NB_INIT_GLOROT;
    d.norm.type = NB_NORM_BATCH;
    check_dirs("resnet-8 tanh + batch norm, eval", &d, 3, NB_EVAL, 1.0, 2);
    check_dirs("resnet-8 tanh + batch norm, probe", &d, 3, NB_PROBE, 1.0, 2);
}

/* ---- closed forms ------------------------------------------------------------ */

static void dln_desc(struct nb_model_desc *d, int D, int layers)
{
    nb_model_desc_default(d);
    d->arch = NB_ARCH_DLN;
    d->input = (struct nb_shape){D, 1, 1};
    d->outputs = D;
    d->dln_layers = layers;
    d->loss = NB_LOSS_MSE;
}

/* A linear model y = W x with the mean over samples of (1/D) ||y - t||^2:
 * H[(k,i),(l,j)] = delta_kl 2/(N D) sum_n x_ni x_nj, whatever W and t. */
static void test_linear_mse(void)
{
    enum { D = 4, N = 16, P = D * D };
    struct nb_model_desc d;
    dln_desc(&d, D, 1);
    struct net t;
    if (net_init(&t, &d, N, NB_EVAL, 0.3, 31))
        tap_bail("linear model");
    double A[D * D] = {0}, He[P], err = 0, hmax = 0;
    for (int n = 0; n < N; n++)
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++)
                A[i * D + j] += (double)t.x[n * D + i] * t.x[n * D + j];
    float e[P] = {0};
    for (int c = 0; c < P; c++) {
        e[c] = 1.0f;
        net_hvp(&t, e, He);
        e[c] = 0.0f;
        int l = c / D, j = c % D;
        for (int r = 0; r < P; r++) {
            int k = r / D, i = r % D;
            double want = k == l ? 2.0 * A[i * D + j] / (double)(N * D) : 0.0;
            err = fmax(err, fabs(He[r] - want));
            hmax = fmax(hmax, fabs(want));
        }
    }
    ok(err <= 1e-6 * hmax, "linear model, mse: exact H = 2/(N D) blocks of X^T X: max error "
       "%.2g of max |H| = %.3g (1e-6)", err / hmax, hmax);
    net_free(&t);
}

/* A two-layer linear network e_n = W2 W1 x_n - t_n, L = (1/(N D)) sum
 * ||e_n||^2, with V1, V2 the direction:
 *   R{e} = (V2 W1 + W2 V1) x,
 *   H v |W1 = 2/(N D) sum_n (V2^T e + W2^T R{e}) x^T,
 *   H v |W2 = 2/(N D) sum_n (R{e} (W1 x)^T + e (V1 x)^T),
 * by hand in double: the cross-layer terms (V2^T e, e (V1 x)^T) that a
 * Gauss-Newton product would miss. */
static void test_two_layer_linear(void)
{
    enum { D = 3, N = 10 };
    struct nb_model_desc d;
    dln_desc(&d, D, 2);
    struct net t;
    if (net_init(&t, &d, N, NB_EVAL, 0.3, 37))
        tap_bail("two-layer linear network");
    const size_t o1 = t.m.layers[0].params[0].offset, o2 = t.m.layers[1].params[0].offset;
    float *v = malloc(t.np * sizeof *v);
    fill(v, t.np, 41, 1.0);
    double *hv = malloc(t.np * sizeof *hv), want[2 * D * D] = {0};
    const float *W1 = t.theta + o1, *W2 = t.theta + o2, *V1 = v + o1, *V2 = v + o2;
    for (int n = 0; n < N; n++) {
        const float *x = t.x + n * D, *tg = t.t + n * D;
        double h[D], e[D], vx[D], re[D];
        for (int i = 0; i < D; i++) {
            h[i] = vx[i] = 0;
            for (int j = 0; j < D; j++) {
                h[i] += (double)W1[i * D + j] * x[j];
                vx[i] += (double)V1[i * D + j] * x[j];
            }
        }
        for (int i = 0; i < D; i++) {
            e[i] = -(double)tg[i];
            re[i] = 0;
            for (int j = 0; j < D; j++) {
                e[i] += (double)W2[i * D + j] * h[j];
                re[i] += (double)V2[i * D + j] * h[j] + (double)W2[i * D + j] * vx[j];
            }
        }
        const double c = 2.0 / (N * D);
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
                double a = 0; /* (V2^T e + W2^T R{e})_i */
                for (int k = 0; k < D; k++)
                    a += (double)V2[k * D + i] * e[k] + (double)W2[k * D + i] * re[k];
                want[i * D + j] += c * a * x[j];
                want[D * D + i * D + j] += c * (re[i] * h[j] + e[i] * vx[j]);
            }
    }
    net_hvp(&t, v, hv);
    double got[2 * D * D];
    for (int k = 0; k < D * D; k++) {
        got[k] = hv[o1 + k];
        got[D * D + k] = hv[o2 + k];
    }
    double err = rel_err(got, want, 2 * D * D);
    ok(err <= 1e-6, "two-layer linear network, mse: exact H v = the product by hand in double "
       "(with the cross-layer terms): max error %.2g of max |H v| (1e-6)", err);
    free(v);
    free(hv);
    net_free(&t);
}

/* ---- ReLU without norm ---------------------------------------------------- */

/* The diagonal of H on a ReLU mlp without norm: the loss along one weight
 * is cross-entropy of logits that are linear in it on each piece, so
 * every e_i^T H e_i >= 0.  Exact products give that; the differences of
 * the Hessian probe before exact products (hessian_hvp = fd: step
 * h = 1e-3 max(1, ||theta||) along e_i) do not where the step flips a
 * unit (t_hvp --fd shows them failing). */
static void test_relu_diagonal(void)
{
    struct nb_model_desc d;
    mlp_desc(&d, NB_ACT_RELU, NB_NORM_NONE, 8, 6, 5, 3);
    struct net t;
    if (net_init(&t, &d, 64, NB_EVAL, 0.3, 43))
        tap_bail("relu mlp");
    size_t P = t.np;
    double *col = malloc(P * sizeof *col), *a = malloc(P * sizeof *a);
    double *b = malloc(P * sizeof *b), dmin = INFINITY, trace = 0;
    float *e = calloc(P, sizeof *e);
    double tn = 0;
    for (size_t i = 0; i < P; i++)
        tn += (double)t.theta[i] * t.theta[i];
    const double h = 1e-3 * fmax(1.0, sqrt(tn));
    size_t neg = 0;
    for (size_t i = 0; i < P; i++) {
        double hii;
        if (use_fd) {
            e[i] = 1.0f;
            net_grad(&t, h, e, a);
            net_grad(&t, -h, e, b);
            e[i] = 0.0f;
            float up = (float)((double)t.theta[i] + h), dn = (float)((double)t.theta[i] - h);
            hii = (a[i] - b[i]) / ((double)up - (double)dn);
        } else {
            e[i] = 1.0f;
            net_hvp(&t, e, col);
            e[i] = 0.0f;
            hii = col[i];
        }
        dmin = fmin(dmin, hii);
        neg += hii < -1e-6;
        trace += hii;
    }
    ok(dmin >= -1e-6, "relu mlp without norm, %s: every diagonal entry e_i^T H e_i >= -1e-6 "
       "(%zu parameters; smallest %.3g, %zu below; trace %.6g)",
       use_fd ? "central differences (fd)" : "exact", P, dmin, neg, trace);
    free(col);
    free(a);
    free(b);
    free(e);
    net_free(&t);
}

static int keep_row(void *user, const struct nb_probe_row *r)
{
    double *v = user;
    static const char *const stats[] = {"trace", "trace_ci_lo", "trace_ci_hi", "hvp_exact",
                                        "trace_iters", "lambda_max"};
    for (int k = 0; k < 6; k++)
        if (!strcmp(r->stat, stats[k]))
            v[k] = r->value;
    return 0;
}

/* Hutchinson's trace from the Hessian probe on a ReLU mlp without norm
 * (blobs, 256 samples): >= 0 within its 95 % interval, the interval
 * holding the trace summed from the exact diagonal; `--fd`: the same with
 * hessian_hvp = fd. */
static void test_relu_trace(void)
{
    struct nb_synth_opts so;
    nb_synth_opts_default(&so);
    so.n_train = 256;
    so.n_test = 16;
    so.shape = (struct nb_shape){1, 8, 8};
    so.classes = 4;
    so.seed = 11;
    struct nb_dataset tr, te;
    struct nb_error e;
    if (nb_synth_blobs(&so, &tr, &te, &e))
        tap_bail("blobs: %s", e.msg);
    struct nb_model_desc d;
    mlp_desc(&d, NB_ACT_RELU, NB_NORM_NONE, 64, 32, 32, 4);
    struct nb_model m;
    if (nb_model_build(&m, &d, 64, 5, &e))
        tap_bail("relu mlp: %s", e.msg);
    /* the exact trace: the sum of the exact diagonal over the 256 samples */
    struct nb_hvp hv;
    if (nb_hvp_init(&hv, &m, &e))
        tap_bail("hvp: %s", e.msg);
    size_t P = m.n_params;
    double *diag = calloc(P, sizeof *diag);
    float *x = malloc(64 * 64 * sizeof *x);
    int y[64];
    for (size_t off = 0; off < tr.n; off += 64) {
        size_t idx[64];
        for (int k = 0; k < 64; k++)
            idx[k] = off + (size_t)k;
        nb_dataset_gather(&tr, idx, 64, x, y, NULL);
        nb_model_forward(&m, x, y, NULL, 64, NB_EVAL);
        nb_model_backward(&m, 64);
        memset(hv.dir, 0, P * sizeof *hv.dir);
        for (size_t i = 0; i < P; i++) {
            hv.dir[i] = 1.0f;
            nb_model_hvp(&m, &hv, 64);
            hv.dir[i] = 0.0f;
            diag[i] += hv.hv[i] * 64.0 / (double)tr.n;
        }
    }
    double trace = 0;
    for (size_t i = 0; i < P; i++)
        trace += diag[i];

    struct nb_probe_opts o;
    nb_probe_opts_default(&o);
    o.hessian = true;
    o.hessian_samples = (long)tr.n;
    o.hessian_hvp = use_fd ? NB_HVP_FD : NB_HVP_AUTO;
    struct nb_probe p;
    if (nb_probe_init(&p, &o, &m, 7, &tr, NULL, &e))
        tap_bail("probe: %s", e.msg);
    double v[6] = {NAN, NAN, NAN, NAN, NAN, NAN};
    struct nb_probe_sink sink = {.user = v, .row = keep_row};
    nb_probe_set_sink(&p, &sink);
    nb_probe_finish(&p, &m, 0);
    ok(v[3] == (use_fd ? 0 : 1), "relu mlp without norm: hvp_exact %g", v[3]);
    ok(v[2] >= 0 && v[0] >= v[1] && v[0] <= v[2],
       "relu mlp without norm, %s: Hutchinson's trace %.4g in [%.4g, %.4g] (%g vectors), "
       ">= 0 within its interval", use_fd ? "fd" : "exact", v[0], v[1], v[2], v[4]);
    ok(v[1] <= trace && trace <= v[2],
       "relu mlp without norm, %s: the interval holds the trace of the exact diagonal %.4g",
       use_fd ? "fd" : "exact", trace);
    nb_probe_free(&p);
    free(diag);
    free(x);
    nb_hvp_free(&hv);
    nb_model_free(&m);
    nb_dataset_free(&tr);
    nb_dataset_free(&te);
}

/* hessian_hvp = exact is refused where a layer has no exact product (lp
 * norm with batch statistics); auto falls back to differences and says
 * so. */
static void test_fallback(void)
{
    struct nb_model_desc d;
    mlp_desc(&d, NB_ACT_TANH, NB_NORM_LP, 5, 4, 4, 3);
    struct nb_model m;
    struct nb_error e;
    if (nb_model_build(&m, &d, 8, 5, &e))
        tap_bail("lp mlp: %s", e.msg);
    int bad = nb_model_hvp_unsupported(&m, NB_PROBE);
    ok(bad >= 0 && !strcmp(m.layers[bad].ops->kind, "norm") &&
           nb_model_hvp_unsupported(&m, NB_EVAL) < 0,
       "lp norm: exact products in eval mode, none with batch statistics (layer %s)",
       bad >= 0 ? m.layers[bad].name : "-");
    struct nb_probe_opts o;
    nb_probe_opts_default(&o);
    o.hessian = true;
    o.hessian_mode = NB_HESSIAN_PROBE;
    o.hessian_hvp = NB_HVP_EXACT;
    int rc = nb_probe_check_model(&o, &m, &e);
    ok(rc == NB_EINVAL && strstr(e.msg, "norm1") && !strcmp(e.key, "probe.hessian_hvp"),
       "hessian_hvp = exact with lp norm in probe mode refused: %s", rc ? e.msg : "accepted");
    o.hessian_mode = NB_HESSIAN_EVAL;
    ok(nb_probe_check_model(&o, &m, &e) == 0, "hessian_hvp = exact with lp norm in eval mode");
    d.norm.type = NB_NORM_BATCH;
    d.norm.renorm = true;
    nb_norm_resolve_auto(&d.norm, 1000);
    struct nb_model m2;
    if (nb_model_build(&m2, &d, 8, 5, &e))
        tap_bail("renorm mlp: %s", e.msg);
    ok(nb_model_hvp_unsupported(&m2, NB_PROBE) >= 0 &&
           nb_model_hvp_unsupported(&m2, NB_EVAL) < 0,
       "batch renorm: exact products in eval mode only");
    nb_model_free(&m2);
    nb_model_free(&m);
}

/* ---- PyTorch 1.13 fixtures ------------------------------------------------------ */

/* make_hvp_fixtures.py's gen(): u in [0, 1) from (seed, k) */
static double gen(uint32_t seed, uint32_t k)
{
    uint32_t x = seed * 0x9E3779B9u + k;
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x / 4294967296.0;
}

/* The fixture's network (make_hvp_fixtures.py) against PyTorch's double
 * backward in float64: parameters, running statistics, inputs and v drawn
 * by gen() on both sides.  normbench computes in float: each number to 1e-5
 * of its scale (measured: 2.2e-7 at most). */
static void test_torch(const char *file, struct nb_model_desc *d, enum nb_mode mode,
                       double tol)
{
    struct fixture f;
    if (fx_load(&f, tap_srcpath(file))) {
        ok(0, "%s: fixture loads", file);
        fx_free(&f);
        return;
    }
    const double *sh = fx_get(&f, "shape", 4);
    const int N = (int)sh[0], classes = (int)fx_get(&f, "classes", 1)[0];
    d->input = (struct nb_shape){(int)sh[1], (int)sh[2], (int)sh[3]};
    d->outputs = classes;
    struct nb_model m;
    struct nb_hvp h;
    struct nb_error e;
    if (nb_model_build(&m, d, N, 1, &e) || nb_hvp_init(&h, &m, &e))
        tap_bail("%s: %s", file, e.msg);
    /* the blocks: the same sizes in the same order */
    size_t nb = fx_count(&f, "blocks"), b = 0;
    const double *bs = fx_get(&f, "blocks", 0);
    bool same = true;
    for (int i = 0; i < m.n_layers; i++)
        for (int p = 0; p < m.layers[i].n_params; p++, b++)
            same = same && b < nb && (size_t)bs[b] == m.layers[i].params[p].count;
    ok(same && b == nb, "%s: normbench's parameter blocks are PyTorch's (%zu blocks, %zu "
       "parameters)", file, b, m.n_params);
    if (!same || b != nb) {
        fx_free(&f);
        nb_hvp_free(&h);
        nb_model_free(&m);
        return;
    }
    for (int i = 0; i < m.n_layers; i++) {
        struct nb_layer *l = &m.layers[i];
        for (int p = 0; p < l->n_params; p++) {
            struct nb_param *pp = &l->params[p];
            for (size_t j = 0; j < pp->count; j++) {
                double u = gen(1, (uint32_t)(pp->offset + j)), v;
                if (pp->flags & NB_PARAM_WEIGHT)
                    v = (2 * u - 1) / sqrt((double)pp->fan_in);
                else if (pp->flags & NB_PARAM_BIAS)
                    v = 0.1 * (2 * u - 1);
                else if (!strcmp(pp->name, "gamma"))
                    v = 1 + 0.5 * (2 * u - 1);
                else
                    v = 0.3 * (2 * u - 1);
                pp->value[j] = (float)v;
            }
        }
        for (int s = 0; s < l->n_state; s++) {
            struct nb_state *st = &l->state[s];
            for (size_t j = 0; j < st->count; j++) {
                double u = gen(2, (uint32_t)(st->offset + j));
                if (!strcmp(st->name, "running_mean"))
                    st->value[j] = (float)(0.2 * (2 * u - 1));
                else if (!strcmp(st->name, "running_var"))
                    st->value[j] = (float)(0.5 + u);
            }
        }
    }
    size_t nx = (size_t)N * nb_shape_numel(&d->input);
    float *x = malloc(nx * sizeof *x);
    int *y = malloc((size_t)N * sizeof *y);
    for (size_t k = 0; k < nx; k++)
        x[k] = (float)(2 * gen(3, (uint32_t)k) - 1);
    for (int k = 0; k < N; k++)
        y[k] = k % classes;
    for (size_t k = 0; k < m.n_params; k++)
        h.dir[k] = (float)(2 * gen(4, (uint32_t)k) - 1);
    double loss = nb_model_forward(&m, x, y, NULL, N, mode);
    nb_model_backward(&m, N);
    double gv = nb_model_hvp(&m, &h, N);
    double vhv = 0;
    for (size_t k = 0; k < m.n_params; k++)
        vhv += (double)h.dir[k] * h.hv[k];
    is_close(loss, fx_get(&f, "loss", 1)[0], 0, tol, "%s: loss %.9g (PyTorch %.9g)", file,
             loss, fx_get(&f, "loss", 1)[0]);
    is_close(gv, fx_get(&f, "gv", 1)[0], 0, tol, "%s: R{loss} = grad . v %.9g (PyTorch %.9g)",
             file, gv, fx_get(&f, "gv", 1)[0]);
    is_close(vhv, fx_get(&f, "vhv", 1)[0], 0, tol, "%s: v^T H v %.9g (PyTorch %.9g)", file,
             vhv, fx_get(&f, "vhv", 1)[0]);
    const double *bsum = fx_get(&f, "block_sum", nb), *bnorm = fx_get(&f, "block_norm", nb);
    double worst = 0, scale = 0;
    size_t off = 0;
    for (size_t k = 0; k < nb; k++) {
        size_t cnt = (size_t)bs[k];
        double s = 0, q = 0;
        for (size_t j = 0; j < cnt; j++) {
            s += h.hv[off + j];
            q += (double)h.hv[off + j] * h.hv[off + j];
        }
        off += cnt;
        double sc = fmax(bnorm[k], 1e-12);
        worst = fmax(worst, fmax(fabs(s - bsum[k]) / (sc * sqrt((double)cnt)),
                                 fabs(sqrt(q) - bnorm[k]) / sc));
        scale = fmax(scale, bnorm[k]);
    }
    ok(worst <= tol, "%s: H v per block (sum and norm) = PyTorch's to %.2g of the block's "
       "norm (%g)", file, worst, tol);
    size_t ni = fx_count(&f, "idx");
    const double *idx = fx_get(&f, "idx", ni), *hvi = fx_get(&f, "hv_idx", ni);
    double ew = 0, hmax = 0;
    for (size_t k = 0; k < ni; k++) {
        ew = fmax(ew, fabs(h.hv[(size_t)idx[k]] - hvi[k]));
        hmax = fmax(hmax, fabs(hvi[k]));
    }
    ok(ew <= tol * hmax, "%s: H v at %zu parameters = PyTorch's to %.2g of the largest (%g)",
       file, ni, ew / hmax, tol);
    free(x);
    free(y);
    fx_free(&f);
    nb_hvp_free(&h);
    nb_model_free(&m);
}

static void test_torch_fixtures(void)
{
    struct nb_model_desc d;
    mlp_desc(&d, NB_ACT_TANH, NB_NORM_BATCH, 6, 5, 4, 3);
    test_torch("hvp/mlp_bn_eval.txt", &d, NB_EVAL, 1e-5);
    /* the cnn with each norm type (make_hvp_fixtures.py); batch norm with
     * running statistics and with the batch's (TRAIN: what hessian_mode =
     * probe runs).  Statistics over few values amplify the float forward's
     * rounding: with batch statistics (4 samples: 16 and 4 values per set
     * at the last convs and the linear layer) the worst relative difference
     * was 5.8e-6 to 1.1e-5 over OpenBLAS's SkylakeX, Haswell and Sandybridge
     * kernels, instance norm (4 values per set at the 2x2 convs) 1.25e-5
     * with the Prescott kernels, so 5e-5 for those two; an error in an
     * R-operator is of order 1. */
    static const struct {
        const char *file;
        enum nb_norm_type type;
        enum nb_mode mode;
        double tol;
    } cnn[] = {
        {"hvp/cnn_bn_eval.txt", NB_NORM_BATCH, NB_EVAL, 1e-5},
        {"hvp/cnn_bn_batch.txt", NB_NORM_BATCH, NB_TRAIN, 5e-5},
        {"hvp/cnn_none.txt", NB_NORM_NONE, NB_EVAL, 1e-5},
        {"hvp/cnn_layer.txt", NB_NORM_LAYER, NB_EVAL, 1e-5},
        {"hvp/cnn_group.txt", NB_NORM_GROUP, NB_EVAL, 1e-5},
        {"hvp/cnn_instance.txt", NB_NORM_INSTANCE, NB_EVAL, 5e-5},
    };
    for (size_t i = 0; i < sizeof cnn / sizeof cnn[0]; i++) {
        nb_model_desc_default(&d);
        d.norm.type = cnn[i].type;
        test_torch(cnn[i].file, &d, cnn[i].mode, cnn[i].tol);
    }
}

int main(int argc, char **argv)
{
    use_fd = argc > 1 && !strcmp(argv[1], "--fd");
    if (!use_fd) {
        test_mlps();
        test_convnets();
        test_linear_mse();
        test_two_layer_linear();
        test_fallback();
        test_torch_fixtures();
    }
    test_relu_diagonal();
    test_relu_trace();
    tap_done_testing();
    return tap_exit();
}
