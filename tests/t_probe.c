/* tests/t_probe.c - the probes against closed forms and independent
 * references: the landscape probe on a quadratic (linear least squares),
 * ICS on a two-layer linear net by hand, power iteration and Hutchinson
 * against GSL's symmetric eigensolver and the exact trace, filter
 * normalization, the distribution statistics against sorting, the slice
 * file's gnuplot layout, the evaluation statistics and the variance shift
 * by hand (and the shift against the dropout formula), and the guarantee
 * that probes never change training (bit-identical metrics with probes on
 * and off). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_eigen.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_vector.h>

#include "core/rng.h"
#include "run/train.h"
#include "model/model.h"
#include "model/evaluate.h"
#include "probe/probe.h"
#include "tap.h"

/* ---- a sink that keeps every row ----------------------------------------- */

struct row {
    long step;
    char probe[16], layer[32], param[16], stat[24], mode[16];
    int layer_index;
    double pv, value;
};

struct rows {
    struct row *r;
    size_t n, cap;
};

/* Every row any test sees is checked against probe.h's table of what each
 * probe writes: unlisted (probe, stat) pairs and the kinds seen. */
static int n_unlisted;
static bool kind_seen[NB_PROBE_KIND_COUNT];

static void check_listed(const struct nb_probe_row *r)
{
    for (int k = 0; k < NB_PROBE_KIND_COUNT; k++) {
        if (strcmp(nb_probe_kinds[k].name, r->probe))
            continue;
        kind_seen[k] = true;
        for (int i = 0; nb_probe_kinds[k].stats[i]; i++)
            if (!strcmp(nb_probe_kinds[k].stats[i], r->stat))
                return;
    }
    if (n_unlisted++ < 5)
        tap_diag("probe %s wrote stat %s, which nb_probe_kinds does not list", r->probe,
                 r->stat);
}

static int keep(void *user, const struct nb_probe_row *r)
{
    struct rows *rs = user;
    check_listed(r);
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? 2 * rs->cap : 256;
        struct row *nr = realloc(rs->r, cap * sizeof *nr);
        if (!nr)
            return -1;
        rs->r = nr;
        rs->cap = cap;
    }
    struct row *w = &rs->r[rs->n++];
    memset(w, 0, sizeof *w);
    w->step = r->step;
    snprintf(w->probe, sizeof w->probe, "%s", r->probe);
    snprintf(w->layer, sizeof w->layer, "%s", r->layer);
    snprintf(w->param, sizeof w->param, "%s", r->param);
    snprintf(w->stat, sizeof w->stat, "%s", r->stat);
    snprintf(w->mode, sizeof w->mode, "%s", r->bn_mode);
    w->layer_index = r->layer_index;
    w->pv = r->param_value;
    w->value = r->value;
    return 0;
}

/* Value of the first row matching; NaN when none.  layer/param NULL:
 * any; k >= 0: the k-th match. */
static double find_k(const struct rows *rs, const char *probe, const char *layer,
                     const char *param, const char *stat, int k, double *pv)
{
    for (size_t i = 0; i < rs->n; i++) {
        const struct row *w = &rs->r[i];
        if (strcmp(w->probe, probe) || strcmp(w->stat, stat))
            continue;
        if (layer && strcmp(w->layer, layer))
            continue;
        if (param && strcmp(w->param, param))
            continue;
        if (k-- > 0)
            continue;
        if (pv)
            *pv = w->pv;
        return w->value;
    }
    return NAN;
}

static double find(const struct rows *rs, const char *probe, const char *layer,
                   const char *param, const char *stat)
{
    return find_k(rs, probe, layer, param, stat, 0, NULL);
}

static size_t count_rows(const struct rows *rs, const char *probe, const char *stat)
{
    size_t c = 0;
    for (size_t i = 0; i < rs->n; i++)
        if (!strcmp(rs->r[i].probe, probe) && (!stat || !strcmp(rs->r[i].stat, stat)))
            c++;
    return c;
}

/* tap_tmpdir creates the directory: once per program */
static const char *tmpdir(void)
{
    static char dir[512];
    if (!dir[0])
        snprintf(dir, sizeof dir, "%s", tap_tmpdir("t_probe"));
    return dir;
}

static void fill(float *x, size_t n, unsigned long seed, double scale)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * (2.0 * gsl_rng_uniform(r) - 1.0));
    gsl_rng_free(r);
}

static void dln_desc(struct nb_model_desc *d, int dim, int layers)
{
    nb_model_desc_default(d);
    d->arch = NB_ARCH_DLN;
    d->input = (struct nb_shape){dim, 1, 1};
    d->outputs = dim;
    d->dln_layers = layers;
    d->loss = NB_LOSS_MSE;
    d->init = NB_INIT_GLOROT;
}

/* ---- linear least squares in double -------------------------------------- */

/* L(W) = 1/(N D) sum_n ||W x_n - t_n||^2 with W (D, D) row-major float. */
static double lsq_loss(const float *W, const float *x, const float *t, int N, int D)
{
    double s = 0;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < D; k++) {
            double r = -(double)t[n * D + k];
            for (int i = 0; i < D; i++)
                r += (double)W[k * D + i] * x[n * D + i];
            s += r * r;
        }
    return s / ((double)N * D);
}

/* grad L(W) = 2/(N D) sum_n (W x_n - t_n) x_n^T into g (D, D). */
static void lsq_grad(const float *W, const float *x, const float *t, int N, int D,
                     double *g)
{
    memset(g, 0, (size_t)D * D * sizeof *g);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < D; k++) {
            double r = -(double)t[n * D + k];
            for (int i = 0; i < D; i++)
                r += (double)W[k * D + i] * x[n * D + i];
            for (int i = 0; i < D; i++)
                g[k * D + i] += 2.0 * r * x[n * D + i] / ((double)N * D);
        }
}

static void test_landscape_quadratic(void)
{
    enum { D = 5, N = 16, P = 5 };
    struct nb_model_desc d;
    dln_desc(&d, D, 1);
    struct nb_model m;
    struct nb_error e;
    if (nb_model_build(&m, &d, N, 3, &e))
        tap_bail("dln build: %s", e.msg);
    float x[N * D], t[N * D];
    fill(x, N * D, 1, 1.0);
    fill(t, N * D, 2, 1.0);
    nb_model_forward(&m, x, NULL, t, N, NB_TRAIN);
    nb_model_backward(&m, N);
    float W[D * D], G[D * D];
    memcpy(W, m.params.data, sizeof W);
    memcpy(G, m.grads.data, sizeof G);

    struct nb_probe_opts o;
    nb_probe_opts_default(&o);
    o.landscape = true;
    o.eta_points = P;
    o.eta_spacing = NB_SPACING_LOG;
    struct nb_probe p;
    struct rows rs = {0};
    int rc = nb_probe_init(&p, &o, &m, 5, NULL, NULL, &e);
    ok(rc == 0, "landscape: init without data");
    struct nb_probe_sink sink = {.user = &rs, .row = keep};
    nb_probe_set_sink(&p, &sink);
    const double lr = 0.1;
    nb_probe_step(&p, &m, x, NULL, t, N, 0, lr);

    ok(memcmp(W, m.params.data, sizeof W) == 0 && memcmp(G, m.grads.data, sizeof G) == 0,
       "landscape: parameters and gradient restored bit for bit");
    is_int((long long)count_rows(&rs, "landscape", "loss"), P, "landscape: one loss row per eta");

    /* closed forms: the loss is quadratic, grad L(W - eta G) = grad L(W) -
     * eta H[G] with H[V] = 2/(N D) V X^T X, so ||dg|| = eta ||H[G]|| and
     * beta = ||H[G]|| / ||G|| whatever eta */
    double A[D * D] = {0};
    for (int n = 0; n < N; n++)
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++)
                A[i * D + j] += (double)x[n * D + i] * x[n * D + j];
    double hg2 = 0, g2 = 0;
    for (int k = 0; k < D; k++)
        for (int j = 0; j < D; j++) {
            double s = 0;
            for (int i = 0; i < D; i++)
                s += (double)G[k * D + i] * A[i * D + j];
            s *= 2.0 / ((double)N * D);
            hg2 += s * s;
            g2 += (double)G[k * D + j] * G[k * D + j];
        }
    double beta_exact = sqrt(hg2 / g2);

    double lmin = INFINITY, lmax = -INFINITY, dmin = INFINITY, dmax = -INFINITY;
    double worst_l = 0, worst_d = 0, worst_b = 0, worst_eta = 0;
    for (int k = 0; k < P; k++) {
        double eta_want = lr * 0.5 * pow(8.0, k / (double)(P - 1)), eta;
        double L = find_k(&rs, "landscape", NULL, "eta", "loss", k, &eta);
        double DG = find_k(&rs, "landscape", NULL, "eta", "grad_change", k, NULL);
        double B = find_k(&rs, "landscape", NULL, "eta", "beta", k, NULL);
        worst_eta = fmax(worst_eta, fabs(eta - eta_want) / eta_want);
        float Wp[D * D];
        for (int i = 0; i < D * D; i++)
            Wp[i] = (float)((double)W[i] - eta * (double)G[i]);
        double Lx = lsq_loss(Wp, x, t, N, D);
        double gp[D * D], s = 0;
        lsq_grad(Wp, x, t, N, D, gp);
        for (int i = 0; i < D * D; i++)
            s += (gp[i] - G[i]) * (gp[i] - G[i]);
        double DGx = sqrt(s);
        worst_l = fmax(worst_l, fabs(L - Lx) / Lx);
        worst_d = fmax(worst_d, fabs(DG - DGx) / DGx);
        worst_b = fmax(worst_b, fabs(B - beta_exact) / beta_exact);
        lmin = fmin(lmin, Lx);
        lmax = fmax(lmax, Lx);
        dmin = fmin(dmin, DGx);
        dmax = fmax(dmax, DGx);
    }
    ok(worst_eta < 1e-12, "landscape: log grid over [0.5, 4] x lr (worst rel %.2g)", worst_eta);
    ok(worst_l < 1e-5, "landscape: L(w - eta g) matches the quadratic (worst rel %.2g)", worst_l);
    ok(worst_d < 2e-3, "landscape: ||grad change|| matches eta ||H g|| (worst rel %.2g)", worst_d);
    ok(worst_b < 2e-3, "landscape: beta = ||H g|| / ||g|| at every eta (worst rel %.2g)", worst_b);
    is_close(find(&rs, "landscape", NULL, NULL, "loss_min"), lmin, 0, 1e-5, "landscape: loss_min");
    is_close(find(&rs, "landscape", NULL, NULL, "loss_max"), lmax, 0, 1e-5, "landscape: loss_max");
    is_close(find(&rs, "landscape", NULL, NULL, "grad_change_min"), dmin, 0, 2e-3,
             "landscape: grad_change_min");
    is_close(find(&rs, "landscape", NULL, NULL, "grad_change_max"), dmax, 0, 2e-3,
             "landscape: grad_change_max");
    is_close(find(&rs, "landscape", NULL, NULL, "beta_eff"), beta_exact, 0, 2e-3,
             "landscape: beta_eff = ||H g|| / ||g|| (%.6g)", beta_exact);
    is_close(find(&rs, "landscape", NULL, NULL, "loss0"), lsq_loss(W, x, t, N, D), 0, 1e-6,
             "landscape: loss0 = L(w)");
    is_close(find(&rs, "landscape", NULL, NULL, "grad_norm"), sqrt(g2), 0, 1e-12,
             "landscape: grad_norm = ||g||");
    is_str(rs.r[0].mode, "probe", "landscape: rows say bn_mode probe");
    ok(count_rows(&rs, "landscape", "seconds") == 1 && p.cost[NB_PROBE_LANDSCAPE].calls == 1 &&
           p.seconds > 0,
       "landscape: its cost is recorded (%.3g s)", p.seconds);
    /* a step not due does nothing */
    o.landscape_every = 2;
    nb_probe_free(&p);
    nb_probe_init(&p, &o, &m, 5, NULL, NULL, &e);
    nb_probe_set_sink(&p, &sink);
    size_t before = rs.n;
    nb_probe_step(&p, &m, x, NULL, t, N, 3, lr);
    ok(rs.n == before && p.calls == 0, "landscape_every 2: step 3 runs nothing");
    nb_probe_free(&p);
    free(rs.r);
    nb_model_free(&m);
}

/* ---- ICS on a two-layer linear net ---------------------------------------- */

static void test_ics(void)
{
    enum { D = 4, N = 12 };
    struct nb_model_desc d;
    dln_desc(&d, D, 2);
    struct nb_model m;
    struct nb_error e;
    if (nb_model_build(&m, &d, N, 4, &e))
        tap_bail("dln build: %s", e.msg);
    float x[N * D], t[N * D];
    fill(x, N * D, 3, 1.0);
    fill(t, N * D, 4, 1.0);
    nb_model_forward(&m, x, NULL, t, N, NB_TRAIN);
    nb_model_backward(&m, N);
    const struct nb_param *w1 = &m.layers[0].params[0], *w2 = &m.layers[1].params[0];
    float W1[D * D], W2[D * D], G1[D * D], G2[D * D];
    memcpy(W1, w1->value, sizeof W1);
    memcpy(W2, w2->value, sizeof W2);
    memcpy(G1, w1->grad, sizeof G1);
    memcpy(G2, w2->grad, sizeof G2);

    struct nb_probe_opts o;
    nb_probe_opts_default(&o);
    o.ics = true;
    o.ics_every = 1;
    struct nb_probe p;
    struct rows rs = {0};
    nb_probe_init(&p, &o, &m, 5, NULL, NULL, &e);
    struct nb_probe_sink sink = {.user = &rs, .row = keep};
    nb_probe_set_sink(&p, &sink);
    const double lr = 0.3;
    nb_probe_step(&p, &m, x, NULL, t, N, 0, lr);

    /* by hand: W1' = W1 - lr G1; G2' = 2/(N D) sum_n (W2 W1' x - t)(W1' x)^T */
    float W1s[D * D];
    for (int i = 0; i < D * D; i++)
        W1s[i] = (float)((double)W1[i] - lr * (double)G1[i]);
    double G2s[D * D] = {0};
    for (int n = 0; n < N; n++) {
        double h[D], r[D];
        for (int k = 0; k < D; k++) {
            h[k] = 0;
            for (int i = 0; i < D; i++)
                h[k] += (double)W1s[k * D + i] * x[n * D + i];
        }
        for (int k = 0; k < D; k++) {
            r[k] = -(double)t[n * D + k];
            for (int i = 0; i < D; i++)
                r[k] += (double)W2[k * D + i] * h[i];
        }
        for (int k = 0; k < D; k++)
            for (int i = 0; i < D; i++)
                G2s[k * D + i] += 2.0 * r[k] * h[i] / ((double)N * D);
    }
    double dd = 0, gg = 0, ss = 0, gs = 0;
    for (int i = 0; i < D * D; i++) {
        dd += (G2[i] - G2s[i]) * (G2[i] - G2s[i]);
        gg += (double)G2[i] * G2[i];
        ss += G2s[i] * G2s[i];
        gs += G2[i] * G2s[i];
    }
    is_close(find(&rs, "ics", "linear1", "lr", "l2"), 0, 0, 0, "ics: first layer l2 = 0");
    is_close(find(&rs, "ics", "linear1", "lr", "cos"), 1, 1e-12, 0, "ics: first layer cos = 1");
    is_close(find(&rs, "ics", "linear2", "lr", "l2"), sqrt(dd), 0, 1e-4,
             "ics: second layer ||G - G'|| by hand (%.6g)", sqrt(dd));
    is_close(find(&rs, "ics", "linear2", "lr", "cos"), gs / sqrt(gg * ss), 1e-6, 0,
             "ics: second layer cos(G, G') by hand (%.6g)", gs / sqrt(gg * ss));
    is_close(find(&rs, "ics", "linear2", "lr", "grad_norm"), sqrt(gg), 0, 1e-12,
             "ics: ||G|| of the second layer");
    is_close(find(&rs, "ics", "linear2", "lr", "grad_norm_shifted"), sqrt(ss), 0, 1e-5,
             "ics: ||G'|| of the second layer");
    double pv = NAN;
    find_k(&rs, "ics", "linear2", "lr", "l2", 0, &pv);
    ok(pv == lr && rs.r[0].layer_index == 0, "ics: param lr and layer_index recorded");
    ok(memcmp(W1, w1->value, sizeof W1) == 0 && memcmp(G2, w2->grad, sizeof G2) == 0,
       "ics: parameters and gradients restored");
    nb_probe_free(&p);
    free(rs.r);
    nb_model_free(&m);
}

/* ---- Hessian on linear least squares --------------------------------------- */

static void test_hessian(void)
{
    enum { D = 4, N = 64, NP = D * D };
    struct nb_model_desc d;
    dln_desc(&d, D, 1);
    struct nb_model m;
    struct nb_error e;
    if (nb_model_build(&m, &d, 32, 6, &e))
        tap_bail("dln build: %s", e.msg);
    struct nb_dataset ds;
    struct nb_shape sh = {D, 1, 1};
    if (nb_dataset_init(&ds, "lsq", N, &sh, 0, D, &e))
        tap_bail("dataset: %s", e.msg);
    /* anisotropic inputs: distinct eigenvalues */
    static const double scale[D] = {2.0, 1.2, 0.7, 0.3};
    fill(ds.x, (size_t)N * D, 7, 1.0);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < D; i++)
            ds.x[n * D + i] *= (float)scale[i];
    fill(ds.t, (size_t)N * D, 8, 1.0);

    /* the exact Hessian: H[(k,i),(l,j)] = delta_kl 2/(N D) A_ij */
    double A[D * D] = {0};
    for (int n = 0; n < N; n++)
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++)
                A[i * D + j] += (double)ds.x[n * D + i] * ds.x[n * D + j];
    gsl_matrix *H = gsl_matrix_calloc(NP, NP);
    double trace = 0, off2 = 0;
    for (int k = 0; k < D; k++)
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++)
                gsl_matrix_set(H, k * D + i, k * D + j, 2.0 * A[i * D + j] / ((double)N * D));
    for (int a = 0; a < NP; a++)
        for (int b = 0; b < NP; b++) {
            double h = gsl_matrix_get(H, a, b);
            if (a == b)
                trace += h;
            else
                off2 += h * h;
        }
    gsl_vector *ev = gsl_vector_alloc(NP);
    gsl_eigen_symm_workspace *ws = gsl_eigen_symm_alloc(NP);
    gsl_eigen_symm(H, ev, ws);
    double lmax = gsl_vector_max(ev);
    gsl_eigen_symm_free(ws);
    gsl_vector_free(ev);
    gsl_matrix_free(H);

    struct nb_probe_opts o;
    nb_probe_opts_default(&o);
    o.hessian = true;
    o.hessian_samples = N;
    struct nb_probe p;
    struct rows rs = {0};
    int rc = nb_probe_init(&p, &o, &m, 9, &ds, NULL, &e);
    ok(rc == 0, "hessian: init (%s)", rc ? e.msg : "ok");
    struct nb_probe_sink sink = {.user = &rs, .row = keep};
    nb_probe_set_sink(&p, &sink);
    float W[NP];
    memcpy(W, m.params.data, sizeof W);
    nb_probe_finish(&p, &m, 0);
    double lam = find(&rs, "hessian", NULL, "samples", "lambda_max");
    double it = find(&rs, "hessian", NULL, "samples", "lambda_iters");
    is_close(lam, lmax, 0, 5e-3,
             "hessian: power iteration (tol 1e-3) vs gsl_eigen_symm: %.6g vs %.6g (%g iterations)",
             lam, lmax, it);
    ok(it >= 2 && it <= 100 && find(&rs, "hessian", NULL, "samples", "lambda_converged") == 1,
       "hessian: power iteration converged within 100 iterations");
    double tr = find(&rs, "hessian", NULL, "samples", "trace");
    double tit = find(&rs, "hessian", NULL, "samples", "trace_iters");
    /* Var(z^T H z) = 2 sum_{i != j} H_ij^2 for Rademacher z */
    double tol = 5.0 * sqrt(2.0 * off2 / tit) + 1e-4 * trace;
    is_close(tr, trace, tol, 0,
             "hessian: Hutchinson trace %.6g vs exact %.6g (%g Rademacher vectors, 5 sd = %.3g)",
             tr, trace, tit, tol);
    ok(tit >= 2 && tit <= 100, "hessian: trace iterations recorded (%g)", tit);
    double lo = find(&rs, "hessian", NULL, "samples", "trace_ci_lo");
    double hi = find(&rs, "hessian", NULL, "samples", "trace_ci_hi");
    ok(tit < 2 || (lo < tr && tr < hi), "hessian: trace interval [%.6g, %.6g] around %.6g", lo,
       hi, tr);
    ok(find(&rs, "hessian", NULL, "samples", "hvp_exact") == 1 &&
           isnan(find(&rs, "hessian", NULL, "samples", "fd_step")),
       "hessian: exact Hessian-vector products by default (hvp_exact 1, fd_step NaN)");
    double pv = NAN;
    find_k(&rs, "hessian", NULL, "samples", "loss", 0, &pv);
    ok(pv == N && !strcmp(rs.r[0].mode, "eval"), "hessian: samples %g, bn_mode eval", pv);
    ok(memcmp(W, m.params.data, sizeof W) == 0, "hessian: parameters restored");
    nb_probe_free(&p);

    /* tight tolerance: the eigenvalue to 1e-5 */
    o.hessian_tol = 1e-9;
    o.hessian_max_iter = 400;
    rs.n = 0;
    nb_probe_init(&p, &o, &m, 9, &ds, NULL, &e);
    nb_probe_set_sink(&p, &sink);
    nb_probe_finish(&p, &m, 0);
    lam = find(&rs, "hessian", NULL, "samples", "lambda_max");
    is_close(lam, lmax, 0, 1e-5, "hessian: tol 1e-9: lambda_max %.9g vs %.9g", lam, lmax);
    tr = find(&rs, "hessian", NULL, "samples", "trace");
    tit = find(&rs, "hessian", NULL, "samples", "trace_iters");
    tol = 5.0 * sqrt(2.0 * off2 / tit) + 1e-4 * trace;
    is_close(tr, trace, tol, 0, "hessian: tol 1e-9: trace %.6g vs %.6g (%g vectors)", tr, trace,
             tit);
    double res = find(&rs, "hessian", NULL, "samples", "lambda_residual");
    ok(res < 1e-3, "hessian: tol 1e-9: lambda_residual ||H v - lambda v|| / lambda = %.2g", res);
    lo = find(&rs, "hessian", NULL, "samples", "trace_ci_lo");
    hi = find(&rs, "hessian", NULL, "samples", "trace_ci_hi");
    ok(lo <= trace && trace <= hi, "hessian: tol 1e-9: the exact trace %.6g in [%.6g, %.6g]",
       trace, lo, hi);
    nb_probe_free(&p);

    /* the same by central differences (hessian_hvp = fd): exact on a
     * quadratic up to rounding */
    o.hessian_hvp = NB_HVP_FD;
    rs.n = 0;
    nb_probe_init(&p, &o, &m, 9, &ds, NULL, &e);
    nb_probe_set_sink(&p, &sink);
    nb_probe_finish(&p, &m, 0);
    lam = find(&rs, "hessian", NULL, "samples", "lambda_max");
    is_close(lam, lmax, 0, 1e-5, "hessian: fd, tol 1e-9: lambda_max %.9g vs %.9g", lam, lmax);
    double wn = 0;
    for (int i = 0; i < NP; i++)
        wn += (double)W[i] * W[i];
    is_close(find(&rs, "hessian", NULL, "samples", "fd_step"), 1e-3 * fmax(1.0, sqrt(wn)), 0,
             1e-12, "hessian: fd: fd_step = 1e-3 max(1, ||theta||) recorded");
    ok(find(&rs, "hessian", NULL, "samples", "hvp_exact") == 0 && p.hessian_fd == 1 &&
           p.hessian_exact == 0,
       "hessian: fd: hvp_exact 0, one call by differences");
    nb_probe_free(&p);

    /* hessian_max_iter caps each estimate; the cap is not convergence */
    o.hessian_hvp = NB_HVP_AUTO;
    o.hessian_max_iter = 2;
    rs.n = 0;
    nb_probe_init(&p, &o, &m, 9, &ds, NULL, &e);
    nb_probe_set_sink(&p, &sink);
    nb_probe_finish(&p, &m, 0);
    ok(find(&rs, "hessian", NULL, "samples", "lambda_iters") == 2 &&
           find(&rs, "hessian", NULL, "samples", "trace_iters") == 2 &&
           find(&rs, "hessian", NULL, "samples", "lambda_converged") == 0 &&
           find(&rs, "hessian", NULL, "samples", "trace_converged") == 0,
       "hessian: max_iter 2 with tol 1e-9: two products each, neither converged");
    nb_probe_free(&p);

    /* probe mode with chunks of the training batch: same Hessian here */
    nb_probe_opts_default(&o);
    o.hessian = true;
    o.hessian_every = 1;
    o.hessian_samples = N;
    o.hessian_mode = NB_HESSIAN_PROBE;
    o.hessian_tol = 1e-9;
    o.hessian_max_iter = 400;
    rs.n = 0;
    nb_probe_init(&p, &o, &m, 9, &ds, NULL, &e);
    nb_probe_set_sink(&p, &sink);
    float x[16 * D], t[16 * D];
    nb_dataset_gather(&ds, NULL, 16, x, NULL, t);
    nb_model_forward(&m, x, NULL, t, 16, NB_TRAIN);
    nb_model_backward(&m, 16);
    nb_probe_step(&p, &m, x, NULL, t, 16, 0, 0.1);
    lam = find(&rs, "hessian", NULL, "samples", "lambda_max");
    is_close(lam, lmax, 0, 1e-5, "hessian: probe mode in chunks of 16: lambda_max %.9g", lam);
    ok(!strcmp(rs.r[0].mode, "probe"), "hessian: bn_mode probe");
    nb_probe_free(&p);

    free(rs.r);
    nb_dataset_free(&ds);
    nb_model_free(&m);
}

/* ---- filter normalization ------------------------------------------------ */

static void test_filter_norm(void)
{
    struct nb_model_desc d;
    nb_model_desc_default(&d);
    d.input = (struct nb_shape){1, 8, 8};
    d.outputs = 3;
    d.norm.type = NB_NORM_BATCH;
    struct nb_model m;
    struct nb_error e;
    if (nb_model_build(&m, &d, 4, 2, &e))
        tap_bail("cnn build: %s", e.msg);
    /* non-trivial biases and norm parameters, so zeroing shows */
    for (int i = 0; i < m.n_layers; i++)
        for (int k = 0; k < m.layers[i].n_params; k++)
            if (!(m.layers[i].params[k].flags & NB_PARAM_WEIGHT))
                fill(m.layers[i].params[k].value, m.layers[i].params[k].count, 5 + i, 1.0);
    float *dir = malloc(m.n_params * sizeof *dir);
    gsl_rng *r = nb_rng_alloc(1, NB_STREAM_PROBE);
    nb_probe_random_direction(&m, r, m.params.data, dir);
    size_t filters = 0, bad = 0, zeros = 0, nonzero = 0;
    double worst = 0;
    for (int i = 0; i < m.n_layers; i++)
        for (int k = 0; k < m.layers[i].n_params; k++) {
            const struct nb_param *q = &m.layers[i].params[k];
            if (q->flags & NB_PARAM_WEIGHT) {
                size_t len = q->count / (size_t)q->filters;
                for (int f = 0; f < q->filters; f++) {
                    double a = 0, b = 0;
                    for (size_t j = 0; j < len; j++) {
                        double dv = dir[q->offset + f * len + j];
                        double tv = q->value[f * len + j];
                        a += dv * dv;
                        b += tv * tv;
                    }
                    double rel = fabs(sqrt(a) - sqrt(b)) / sqrt(b);
                    worst = fmax(worst, rel);
                    if (rel > 1e-6)
                        bad++;
                    filters++;
                }
            } else {
                for (size_t j = 0; j < q->count; j++) {
                    if (dir[q->offset + j] == 0.0f)
                        zeros++;
                    else
                        nonzero++;
                }
            }
        }
    ok(filters == 16 + 16 + 32 + 32 + 128 + 3 && bad == 0,
       "filter norm: each of %zu filters has its weights' norm (worst rel %.2g)", filters, worst);
    ok(zeros > 0 && nonzero == 0, "filter norm: %zu bias and norm entries are zero", zeros);
    gsl_rng_free(r);
    free(dir);
    nb_model_free(&m);
}

/* ---- percentiles and the distribution probe ------------------------------- */

static int cmpf(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double sorted_pct(const float *s, size_t n, double q)
{
    double pos = q * (double)(n - 1);
    size_t k = (size_t)floor(pos);
    double f = pos - (double)k;
    return k + 1 < n ? s[k] + f * ((double)s[k + 1] - s[k]) : s[k];
}

/* Compares the dist rows of every norm layer's input and output with
 * statistics of the activations left in m; returns the mismatches. */
static int dist_check(const struct nb_model *mm, const struct rows *rsp, int N, int *ntensors)
{
    const struct nb_model m = *mm;
    const struct rows rs = *rsp;
    int bad_stats = 0, tensors = 0;
    for (int i = 0; i < m.n_layers; i++) {
        if (m.layers[i].ops != &nb_norm_ops)
            continue;
        for (int in = 0; in < 2; in++) {
            int a = in ? m.in_idx[i] : i + 1;
            size_t cnt = (size_t)N * nb_shape_numel(&m.layers[a - 1].out);
            float *s = malloc(cnt * sizeof *s);
            memcpy(s, m.acts[a], cnt * sizeof *s);
            double mean = 0, var = 0;
            for (size_t j = 0; j < cnt; j++)
                mean += s[j];
            mean /= (double)cnt;
            for (size_t j = 0; j < cnt; j++)
                var += (s[j] - mean) * (s[j] - mean);
            var /= (double)cnt;
            qsort(s, cnt, sizeof *s, cmpf);
            const char *which = in ? "in" : "out";
            const char *ln = m.layers[i].name;
            if (fabs(find(&rs, "dist", ln, which, "mean") - mean) > 1e-6 ||
                fabs(find(&rs, "dist", ln, which, "var") - var) > 1e-6 * (1 + var) ||
                find(&rs, "dist", ln, which, "p15") != sorted_pct(s, cnt, 0.15) ||
                find(&rs, "dist", ln, which, "p50") != sorted_pct(s, cnt, 0.50) ||
                find(&rs, "dist", ln, which, "p85") != sorted_pct(s, cnt, 0.85))
                bad_stats++;
            tensors++;
            free(s);
        }
    }
    *ntensors = tensors;
    return bad_stats;
}

/* Per-channel (unit) means and population variances of every norm
 * layer's input and output left in m (N samples), into cm/cv: tensor t's
 * channel c at [t * 256 + c]. */
static void chan_stats(const struct nb_model *m, int N, double *cm, double *cv)
{
    int t = 0;
    for (int i = 0; i < m->n_layers; i++) {
        if (m->layers[i].ops != &nb_norm_ops)
            continue;
        for (int in = 0; in < 2; in++, t++) {
            int a = in ? m->in_idx[i] : i + 1;
            const struct nb_shape *sh = &m->layers[a - 1].out;
            size_t HW = (size_t)sh->h * sh->w;
            if (t >= 16 || sh->c > 256)
                tap_bail("chan_stats: more than 16 tensors or 256 channels");
            for (int c = 0; c < sh->c; c++) {
                double s = 0, s2 = 0, cnt = (double)N * (double)HW;
                for (int k = 0; k < N; k++)
                    for (size_t j = 0; j < HW; j++)
                        s += m->acts[a][((size_t)k * sh->c + c) * HW + j];
                double mu = s / cnt;
                for (int k = 0; k < N; k++)
                    for (size_t j = 0; j < HW; j++) {
                        double d = m->acts[a][((size_t)k * sh->c + c) * HW + j] - mu;
                        s2 += d * d;
                    }
                cm[t * 256 + c] = mu;
                cv[t * 256 + c] = s2 / cnt;
            }
        }
    }
}

/* The cdmean / cdvar rows of every norm tensor against the channel
 * statistics of two consecutive calls (a: the first, b: the second);
 * returns the mismatches. */
static int cdist_check(const struct nb_model *m, const struct rows *rs, const double *am,
                       const double *av, const double *bm, const double *bv)
{
    int bad = 0, t = 0;
    for (int i = 0; i < m->n_layers; i++) {
        if (m->layers[i].ops != &nb_norm_ops)
            continue;
        for (int in = 0; in < 2; in++, t++) {
            int a = in ? m->in_idx[i] : i + 1, C = m->layers[a - 1].out.c;
            double dm = 0, dv = 0;
            for (int c = 0; c < C; c++) {
                dm += fabs(bm[t * 256 + c] - am[t * 256 + c]);
                dv += fabs(bv[t * 256 + c] - av[t * 256 + c]);
            }
            const char *which = in ? "in" : "out";
            double gm = find(rs, "dist", m->layers[i].name, which, "cdmean");
            double gv = find(rs, "dist", m->layers[i].name, which, "cdvar");
            if (!(fabs(gm - dm / C) <= 1e-6 * (1 + dm / C)) ||
                !(fabs(gv - dv / C) <= 1e-6 * (1 + dv / C)))
                bad++;
        }
    }
    return bad;
}

static void test_dist(void)
{
    static double am[16 * 256], av[16 * 256], bm[16 * 256], bv[16 * 256]; /* 16 tensors */
    /* percentiles vs sorting, with many ties */
    size_t sizes[] = {1, 2, 7, 100, 1001};
    int bad = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        float *a = malloc(n * sizeof *a), *s = malloc(n * sizeof *s), *w = malloc(n * sizeof *w);
        fill(a, n, 10 + si, 3.0);
        for (size_t i = 0; i < n; i += 3)
            a[i] = 0; /* ties */
        memcpy(s, a, n * sizeof *s);
        qsort(s, n, sizeof *s, cmpf);
        for (double q = 0; q <= 1.0001; q += 0.05) {
            memcpy(w, a, n * sizeof *w);
            double got = nb_probe_percentile(w, n, q > 1 ? 1 : q);
            if (got != sorted_pct(s, n, q > 1 ? 1 : q))
                bad++;
        }
        free(a);
        free(s);
        free(w);
    }
    ok(bad == 0, "percentiles (linear interpolation) equal those of the sorted data");

    /* the dist and gradstats probes on an mlp with batch norm */
    struct nb_model_desc d;
    nb_model_desc_default(&d);
    d.arch = NB_ARCH_MLP;
    d.input = (struct nb_shape){1, 4, 4};
    d.outputs = 3;
    d.n_widths = 2;
    d.widths[0] = 8;
    d.widths[1] = 6;
    d.norm.type = NB_NORM_BATCH;
    struct nb_model m;
    struct nb_error e;
    enum { N = 10 };
    if (nb_model_build(&m, &d, N, 2, &e))
        tap_bail("mlp build: %s", e.msg);
    float x[N * 16];
    int y[N];
    fill(x, N * 16, 3, 1.0);
    for (int i = 0; i < N; i++)
        y[i] = i % 3;
    struct nb_probe_opts o;
    nb_probe_opts_default(&o);
    o.dist = true;
    o.dist_every = 1;
    o.gradstats = true;
    struct nb_probe p;
    struct rows rs = {0};
    nb_probe_init(&p, &o, &m, 5, NULL, NULL, &e);
    struct nb_probe_sink sink = {.user = &rs, .row = keep};
    nb_probe_set_sink(&p, &sink);
    nb_model_forward(&m, x, y, NULL, N, NB_TRAIN);
    nb_model_backward(&m, N);
    nb_probe_step(&p, &m, x, y, NULL, N, 0, 0.1);
    /* layers: linear1 norm1 relu1 linear2 norm2 relu2 linear3 xent */
    int tensors = 0, bad_stats = dist_check(&m, &rs, N, &tensors);
    ok(tensors == 4 && bad_stats == 0,
       "dist: mean, var, p15/p50/p85 of the pre- and post-norm activations of %d tensors", tensors);
    ok(count_rows(&rs, "dist", "dmean") == 0 && count_rows(&rs, "dist", "cdmean") == 0,
       "dist: no change rows at the first call");
    chan_stats(&m, N, am, av);
    is_close(find(&rs, "dist", "norm1", "out", "mean"), 0, 1e-6, 0,
             "dist: batch norm output has mean 0 (gamma 1, beta 0)");
    /* gradstats: the whole-model gradient norm */
    double g = 0;
    for (size_t i = 0; i < m.n_params; i++)
        g += (double)m.grads.data[i] * m.grads.data[i];
    double got = NAN;
    for (size_t i = 0; i < rs.n; i++)
        if (!strcmp(rs.r[i].probe, "gradstats") && !strcmp(rs.r[i].stat, "grad_norm") &&
            rs.r[i].layer_index < 0)
            got = rs.r[i].value;
    is_close(got, sqrt(g), 0, 1e-12, "gradstats: model gradient norm");
    ok(count_rows(&rs, "gradstats", "grad_norm") == 6,
       "gradstats: one grad_norm per layer with parameters, and the total");
    /* a second call: dmean and dvar appear */
    nb_model_forward(&m, x + 16, y, NULL, N - 1, NB_TRAIN);
    nb_model_backward(&m, N - 1);
    nb_probe_step(&p, &m, x + 16, y, NULL, N - 1, 1, 0.1);
    ok(count_rows(&rs, "dist", "dmean") == 4 && count_rows(&rs, "dist", "dvar") == 4,
       "dist: the second call reports dmean and dvar for each tensor");
    chan_stats(&m, N - 1, bm, bv);
    ok(count_rows(&rs, "dist", "cdmean") == 4 && count_rows(&rs, "dist", "cdvar") == 4 &&
           cdist_check(&m, &rs, am, av, bm, bv) == 0,
       "dist: cdmean, cdvar = the mean over the features of the change of each feature's "
       "mean and variance over the samples");

    /* a cnn: per channel over the samples and the H x W positions */
    {
        nb_probe_free(&p);
        struct nb_model_desc dc;
        nb_model_desc_default(&dc);
        dc.arch = NB_ARCH_CNN;
        dc.norm.type = NB_NORM_BATCH;
        dc.norm.noisy = true; /* every channel shifted on its own */
        struct nb_model mc;
        enum { NC = 3 };
        if (nb_model_build(&mc, &dc, NC, 2, &e))
            tap_bail("cnn build: %s", e.msg);
        gsl_rng *nr = gsl_rng_alloc(gsl_rng_mt19937);
        mc.ctx.rng_noise = mc.ctx.rng_probe = nr;
        float *xc = malloc(2 * NC * 784 * sizeof *xc);
        int yc[NC] = {0, 1, 2};
        fill(xc, 2 * NC * 784, 4, 1.0);
        struct rows rc = {0};
        struct nb_probe_sink sc = {.user = &rc, .row = keep};
        o.gradstats = false;
        nb_probe_init(&p, &o, &mc, 5, NULL, NULL, &e);
        nb_probe_set_sink(&p, &sc);
        nb_model_forward(&mc, xc, yc, NULL, NC, NB_TRAIN);
        nb_model_backward(&mc, NC);
        nb_probe_step(&p, &mc, xc, yc, NULL, NC, 0, 0.1);
        chan_stats(&mc, NC, am, av);
        nb_model_forward(&mc, xc + NC * 784, yc, NULL, NC, NB_TRAIN);
        nb_model_backward(&mc, NC);
        nb_probe_step(&p, &mc, xc + NC * 784, yc, NULL, NC, 1, 0.1);
        chan_stats(&mc, NC, bm, bv);
        ok(count_rows(&rc, "dist", "cdmean") == 10 && cdist_check(&mc, &rc, am, av, bm, bv) == 0,
           "dist, cnn: cdmean, cdvar per channel over the samples and positions (10 tensors)");
        ok(find(&rc, "dist", "norm1", "out", "cdmean") > find(&rc, "dist", "norm1", "out", "dmean"),
           "dist, noisy BN: the per-channel shifts exceed the shift of the whole tensor's mean");
        o.gradstats = true;
        nb_probe_free(&p);
        nb_model_free(&mc);
        gsl_rng_free(nr);
        free(xc);
        free(rc.r);
        nb_probe_init(&p, &o, &m, 5, NULL, NULL, &e);
    }
    {
        /* drift: |percentile - the same percentile at the first call| */
        static const char *const qs[3] = {"p15", "p50", "p85"};
        static const char *const ds[3] = {"p15_drift", "p50_drift", "p85_drift"};
        int bad_drift = 0, zero_first = 0;
        for (int q = 0; q < 3; q++) {
            zero_first += find_k(&rs, "dist", "norm2", "in", ds[q], 0, NULL) == 0;
            double want = fabs(find_k(&rs, "dist", "norm2", "in", qs[q], 1, NULL) -
                               find_k(&rs, "dist", "norm2", "in", qs[q], 0, NULL));
            bad_drift += !(find_k(&rs, "dist", "norm2", "in", ds[q], 1, NULL) == want);
        }
        ok(count_rows(&rs, "dist", "p50_drift") == 8 && zero_first == 3 && bad_drift == 0,
           "dist: p15/p50/p85_drift, 0 at the first call, then |p - p at the first call|");
    }

    /* dist_unit: one unit (channel) of each tensor, over the batch */
    nb_probe_free(&p);
    o.dist_unit = 1;
    rs.n = 0;
    nb_probe_init(&p, &o, &m, 5, NULL, NULL, &e);
    nb_probe_set_sink(&p, &sink);
    nb_model_forward(&m, x, y, NULL, N, NB_TRAIN);
    nb_model_backward(&m, N);
    nb_probe_step(&p, &m, x, y, NULL, N, 0, 0.1);
    {
        int bad_unit = 0, nt = 0, bad_pv = 0;
        for (int i = 0; i < m.n_layers; i++) {
            if (m.layers[i].ops != &nb_norm_ops)
                continue;
            for (int in = 0; in < 2; in++) {
                int a = in ? m.in_idx[i] : i + 1;
                int C = m.layers[a - 1].out.c;
                float s[N];
                double mean = 0;
                for (int j = 0; j < N; j++)
                    mean += s[j] = m.acts[a][j * C + 1];
                mean /= N;
                qsort(s, N, sizeof *s, cmpf);
                const char *which = in ? "in" : "out";
                const char *ln = m.layers[i].name;
                double pv = NAN;
                if (fabs(find_k(&rs, "dist", ln, which, "mean", 0, &pv) - mean) > 1e-6 ||
                    find(&rs, "dist", ln, which, "p15") != sorted_pct(s, N, 0.15) ||
                    find(&rs, "dist", ln, which, "p50") != sorted_pct(s, N, 0.50) ||
                    find(&rs, "dist", ln, which, "p85") != sorted_pct(s, N, 0.85))
                    bad_unit++;
                bad_pv += pv != 1;
                nt++;
            }
        }
        ok(nt == 4 && bad_unit == 0 && bad_pv == 0 && count_rows(&rs, "dist", "mean") == 4,
           "dist_unit = 1: statistics of unit 1 of each of %d tensors, param_value 1", nt);
    }
    nb_probe_free(&p);
    o.dist_unit = 7; /* norm1 has 8 units, norm2 6 */
    rs.n = 0;
    nb_probe_init(&p, &o, &m, 5, NULL, NULL, &e);
    nb_probe_set_sink(&p, &sink);
    nb_probe_step(&p, &m, x, y, NULL, N, 0, 0.1);
    ok(count_rows(&rs, "dist", "mean") == 2 && !isnan(find(&rs, "dist", "norm1", "out", "p50")) &&
           isnan(find(&rs, "dist", "norm2", "out", "p50")),
       "dist_unit = 7: the 6-unit tensors have no rows, the 8-unit ones do");
    o.dist_unit = -1;

    /* post placement: the norm inputs are ReLU outputs, many ties at 0 */
    nb_probe_free(&p);
    nb_model_free(&m);
    d.placement = NB_PLACE_POST;
    nb_model_build(&m, &d, N, 2, &e);
    rs.n = 0;
    nb_probe_init(&p, &o, &m, 5, NULL, NULL, &e);
    nb_probe_set_sink(&p, &sink);
    nb_model_forward(&m, x, y, NULL, N, NB_TRAIN);
    nb_model_backward(&m, N);
    nb_probe_step(&p, &m, x, y, NULL, N, 0, 0.1);
    bad_stats = dist_check(&m, &rs, N, &tensors);
    ok(tensors == 4 && bad_stats == 0 && find(&rs, "dist", "norm1", "in", "p15") == 0,
       "dist, post placement: statistics of ReLU outputs with ties (p15 = 0)");
    d.placement = NB_PLACE_PRE;

    /* without norm: the conv/linear outputs */
    nb_probe_free(&p);
    nb_model_free(&m);
    d.norm.type = NB_NORM_NONE;
    nb_model_build(&m, &d, N, 2, &e);
    rs.n = 0;
    nb_probe_init(&p, &o, &m, 5, NULL, NULL, &e);
    nb_probe_set_sink(&p, &sink);
    nb_model_forward(&m, x, y, NULL, N, NB_TRAIN);
    nb_model_backward(&m, N);
    nb_probe_step(&p, &m, x, y, NULL, N, 0, 0.1);
    ok(count_rows(&rs, "dist", "mean") == 3 && !isnan(find(&rs, "dist", "linear3", "out", "p85")),
       "dist without norm: the output of each linear layer");
    nb_probe_free(&p);
    nb_model_free(&m);
    free(rs.r);
}

/* ---- slices --------------------------------------------------------------- */

static int read_lines(const char *path, char lines[][128], int max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0;
    while (n < max && fgets(lines[n], 128, f)) {
        lines[n][strcspn(lines[n], "\n")] = 0;
        n++;
    }
    fclose(f);
    return n;
}

static void test_slice(void)
{
    enum { D = 3, N = 40 };
    struct nb_model_desc d;
    dln_desc(&d, D, 1);
    struct nb_model m;
    struct nb_error e;
    nb_model_build(&m, &d, 16, 6, &e);
    struct nb_dataset ds;
    struct nb_shape sh = {D, 1, 1};
    nb_dataset_init(&ds, "lsq", N, &sh, 0, D, &e);
    fill(ds.x, N * D, 17, 1.0);
    fill(ds.t, N * D, 18, 1.0);

    char path[1024];
    snprintf(path, sizeof path, "%s/slice.csv", tmpdir());
    FILE *f = fopen(path, "w");
    if (!f)
        tap_bail("cannot write %s", path);
    struct nb_probe_opts o;
    nb_probe_opts_default(&o);
    o.slice = true;
    o.slice_dim = 2;
    o.slice_points = 3;
    o.slice_samples = 30;
    long at[2] = {4, -1};
    o.slice_at = at;
    o.n_slice_at = 2;
    struct nb_probe p;
    struct rows rs = {0};
    int rc = nb_probe_init(&p, &o, &m, 3, &ds, NULL, &e);
    ok(rc == 0, "slice: init");
    struct nb_probe_sink sink = {.user = &rs, .row = keep, .slice = f};
    nb_probe_set_sink(&p, &sink);
    float x[16 * D], t[16 * D];
    nb_dataset_gather(&ds, NULL, 16, x, NULL, t);
    nb_model_forward(&m, x, NULL, t, 16, NB_TRAIN);
    nb_model_backward(&m, 16);
    nb_probe_step(&p, &m, x, NULL, t, 16, 3, 0.1); /* not a slice step */
    ok(p.slices_written == 0, "slice: nothing at step 3");
    nb_probe_step(&p, &m, x, NULL, t, 16, 4, 0.1);
    nb_probe_finish(&p, &m, 10);
    fclose(f);
    char lines[64][128];
    int n = read_lines(path, lines, 64);
    /* header, 3 scans of 3 separated by blank lines, 2 blank lines, again */
    ok(n == 1 + 11 + 2 + 11, "slice: %d lines in slice.csv", n);
    is_str(lines[0], "step,a,b,loss,acc", "slice: header");
    ok(n >= 12 && lines[4][0] == 0 && lines[8][0] == 0 && lines[12][0] == 0 && lines[13][0] == 0,
       "slice: blank line between scans, two between slices");
    ok(n >= 2 && !strncmp(lines[1], "4,-1,-1,", 8), "slice: grid starts at (-1, -1): '%s'",
       n >= 2 ? lines[1] : "");
    ok(n >= 25 && !strncmp(lines[14], "10,-1,-1,", 9) && !strncmp(lines[24], "10,1,1,", 7),
       "slice: the end slice's lines have its step (10): '%s'", n >= 15 ? lines[14] : "");
    double a, b, loss;
    long sstep;
    char accs[32];
    ok(n >= 6 && sscanf(lines[6], "%ld,%lf,%lf,%lf,%31s", &sstep, &a, &b, &loss, accs) == 5 &&
           sstep == 4 && a == 0 && b == 0 && !strcmp(accs, "nan"),
       "slice: centre point (0, 0) in the middle, at step 4; acc nan for regression");
    is_close(loss, lsq_loss(m.params.data, ds.x, ds.t, 30, D), 0, 1e-6,
             "slice: the loss at the centre is L(theta) over 30 samples");
    is_close(find(&rs, "slice", NULL, "samples", "loss_center"), loss, 0, 1e-15,
             "slice: loss_center row");
    ok(count_rows(&rs, "slice", "index") == 2 &&
           find_k(&rs, "slice", NULL, NULL, "index", 1, NULL) == 1,
       "slice: two slices, indices 0 and 1");
    {
        /* the curvature rows: second differences at the centre over h^2
         * (h = 1 here), relative to the centre's loss, along a at b = 0
         * (lines 2, 6, 10) and along b at a = 0 (lines 5, 6, 7) */
        double l[12];
        for (int i = 1; i <= 11; i++)
            l[i] = lines[i][0] && sscanf(lines[i], "%ld,%lf,%lf,%lf", &sstep, &a, &b, &l[i]) == 4
                       ? l[i]
                       : NAN;
        is_close(find(&rs, "slice", NULL, "samples", "curvature"),
                 (l[2] - 2 * l[6] + l[10]) / l[6], 1e-12, 1e-12,
                 "slice 2-D: curvature = (L(-h, 0) - 2 L(0) + L(h, 0)) / h^2 / L(0)");
        is_close(find(&rs, "slice", NULL, "samples", "curvature_b"),
                 (l[5] - 2 * l[6] + l[7]) / l[6], 1e-12, 1e-12,
                 "slice 2-D: curvature_b the same along b");
    }
    ok(rs.n > 0 && rs.r[rs.n - 1].step == 10, "slice: the end slice has the final step");
    nb_probe_free(&p);

    /* 1-D: one scan, b = 0 */
    f = fopen(path, "w");
    o.slice_dim = 1;
    o.slice_points = 5;
    o.slice_range = 0.5;
    o.n_slice_at = 0; /* the end only */
    nb_probe_init(&p, &o, &m, 3, &ds, NULL, &e);
    sink.slice = f;
    nb_probe_set_sink(&p, &sink);
    nb_probe_finish(&p, &m, 10);
    fclose(f);
    n = read_lines(path, lines, 64);
    ok(n == 6 && !strncmp(lines[1], "10,-0.5,0,", 10) && !strncmp(lines[3], "10,0,0,", 7) &&
           !strncmp(lines[5], "10,0.5,0,", 9),
       "slice 1-D: 5 points from -0.5 to 0.5 with b = 0 at step 10, no blank lines");
    {
        /* a least-squares loss is quadratic along a line: the second
         * difference over the neighbours (h = 0.25) equals the one over
         * the ends (2h), and is the exact second derivative */
        double l[6];
        for (int i = 1; i <= 5; i++)
            if (sscanf(lines[i], "%ld,%lf,%lf,%lf", &sstep, &a, &b, &l[i]) != 4)
                l[i] = NAN;
        double c = find_k(&rs, "slice", NULL, NULL, "curvature", (int)count_rows(&rs, "slice", "curvature") - 1, NULL);
        is_close(c, (l[2] - 2 * l[3] + l[4]) / (0.25 * 0.25) / l[3], 1e-12, 1e-12,
                 "slice 1-D: curvature from the centre's neighbours, h = 0.25 (%g)", c);
        is_close(c, (l[1] - 2 * l[3] + l[5]) / (0.5 * 0.5) / l[3], 1e-4, 1e-6,
                 "  = the second difference over the ends (2h): quadratic along the line");
        ok(isnan(find(&rs, "slice", NULL, NULL, "curvature_b")) ||
               count_rows(&rs, "slice", "curvature_b") == 2,
           "  no curvature_b row for a 1-D slice");
    }
    nb_probe_free(&p);

    /* an even grid has no point at 0: curvature NaN */
    f = fopen(path, "w");
    o.slice_points = 4;
    rs.n = 0;
    nb_probe_init(&p, &o, &m, 3, &ds, NULL, &e);
    sink.slice = f;
    nb_probe_set_sink(&p, &sink);
    nb_probe_finish(&p, &m, 10);
    fclose(f);
    ok(count_rows(&rs, "slice", "curvature") == 1 &&
           isnan(find(&rs, "slice", NULL, NULL, "curvature")),
       "slice with 4 points: curvature NaN (no grid point at 0)");
    nb_probe_free(&p);

    /* the last step: slice_at = the run's length is the final weights,
     * taken by finish (the hook never sees that step); with -1 as well,
     * still one slice; a step past the end is never taken */
    static const struct {
        long at[3];
        int n;
        int slices, at_end;
        const char *what;
    } last[] = {
        {{4, 10}, 2, 2, 1, "slice_at = 4 10 with 10 steps: both"},
        {{10, -1}, 2, 1, 1, "slice_at = 10 -1 with 10 steps: one slice at the end"},
        {{-1}, 1, 1, 1, "slice_at = -1: the end"},
        {{4, 11}, 2, 1, 0, "slice_at = 4 11 with 10 steps: 11 is never taken"},
    };
    o.slice_points = 3;
    for (size_t k = 0; k < sizeof last / sizeof *last; k++) {
        f = fopen(path, "w");
        o.slice_at = last[k].at;
        o.n_slice_at = last[k].n;
        rs.n = 0;
        nb_probe_init(&p, &o, &m, 3, &ds, NULL, &e);
        sink.slice = f;
        nb_probe_set_sink(&p, &sink);
        for (long st = 0; st < 10; st++)
            nb_probe_step(&p, &m, x, NULL, t, 16, st, 0.1);
        nb_probe_finish(&p, &m, 10);
        fclose(f);
        n = read_lines(path, lines, 64);
        long end_rows = 0;
        for (size_t i = 0; i < rs.n; i++)
            end_rows += !strcmp(rs.r[i].probe, "slice") && !strcmp(rs.r[i].stat, "index") &&
                        rs.r[i].step == 10;
        ok(p.slices_written == last[k].slices && end_rows == last[k].at_end &&
               n == 1 + 3 * last[k].slices + 2 * (last[k].slices - 1) &&
               !strncmp(lines[n - 1], last[k].at_end ? "10," : "4,", last[k].at_end ? 3 : 2),
           "%s (%d written, %ld at step 10, %d lines)", last[k].what, p.slices_written,
           end_rows, n);
        nb_probe_free(&p);
    }
    free(rs.r);
    nb_dataset_free(&ds);
    nb_model_free(&m);
}

/* ---- evaluation statistics ------------------------------------------------ */

/* Mean loss and error (%) of m over ds in `mode`, chunks of `chunk`
 * (PROBE: whole chunks only), by hand. */
static void eval_by_hand_n(struct nb_model *m, const struct nb_dataset *ds, size_t limit,
                           enum nb_mode mode, int chunk, double *loss, double *error)
{
    size_t n = limit && limit < ds->n ? limit : ds->n, numel = nb_shape_numel(&ds->shape);
    if (mode != NB_EVAL)
        n -= n % (size_t)chunk;
    float *x = malloc((size_t)chunk * numel * sizeof *x);
    int *y = malloc((size_t)chunk * sizeof *y);
    size_t idx[64];
    double sl = 0;
    long hits = 0;
    for (size_t off = 0; off < n; off += (size_t)chunk) {
        int k = (int)(n - off < (size_t)chunk ? n - off : (size_t)chunk);
        for (int i = 0; i < k; i++)
            idx[i] = off + (size_t)i;
        nb_dataset_gather(ds, idx, (size_t)k, x, y, NULL);
        sl += nb_model_forward(m, x, y, NULL, k, mode) * k;
        hits += nb_model_correct(m, y, k);
    }
    *loss = sl / (double)n;
    *error = 100.0 * (1.0 - (double)hits / (double)n);
    free(x);
    free(y);
}

static void eval_by_hand(struct nb_model *m, const struct nb_dataset *ds, enum nb_mode mode,
                         int chunk, double *loss, double *error)
{
    eval_by_hand_n(m, ds, 0, mode, chunk, loss, error);
}

/* One estimator's two rows against the same evaluation by hand. */
static void same_eval(const struct rows *rs, const char *est, double pv_want, double loss,
                      double error)
{
    double pv = NAN;
    double got_e = NAN, got_l = NAN;
    for (size_t i = 0; i < rs->n; i++) {
        const struct row *w = &rs->r[i];
        if (strcmp(w->probe, "evalstats") || strcmp(w->param, est))
            continue;
        if (!isnan(pv_want) && w->pv != pv_want)
            continue;
        if (!strcmp(w->stat, "test_error"))
            got_e = w->value, pv = w->pv;
        else if (!strcmp(w->stat, "test_loss"))
            got_l = w->value;
    }
    ok(got_e == error && got_l == loss && (isnan(pv_want) ? isnan(pv) : pv == pv_want),
       "evalstats %s (%g): test error %g %% and loss %.6f as by hand (rows: %g, %.6f)", est,
       pv_want, error, loss, got_e, got_l);
}

/* Synthetic blobs of side x side images into tr and te (bails on error). */
static void blobs(size_t n_train, size_t n_test, int side, int classes, unsigned long seed,
                  double spread, struct nb_dataset *tr, struct nb_dataset *te)
{
    struct nb_synth_opts so;
    struct nb_error e;
    nb_synth_opts_default(&so);
    so.n_train = n_train;
    so.n_test = n_test;
    so.shape = (struct nb_shape){1, side, side};
    so.classes = classes;
    so.seed = seed;
    so.spread = spread;
    if (nb_synth_blobs(&so, tr, te, &e))
        tap_bail("blobs: %s", e.msg);
}

static void test_evalstats(void)
{
    struct nb_error e;
    struct nb_dataset tr, te;
    blobs(64, 30, 4, 3, 21, 0.5, &tr, &te);
    struct nb_model_desc d;
    nb_model_desc_default(&d);
    d.arch = NB_ARCH_MLP;
    d.input = tr.shape;
    d.outputs = 3;
    d.n_widths = 1;
    d.widths[0] = 8;
    d.norm.type = NB_NORM_BATCH;
    enum { B = 2 }; /* batch 2: the biased and unbiased estimates differ 2x */
    struct nb_model m;
    if (nb_model_build(&m, &d, B, 7, &e))
        tap_bail("model: %s", e.msg);
    /* running statistics away from their initial values */
    float x[B * 16];
    int y[B];
    size_t idx[B];
    for (int s = 0; s < 5; s++) {
        for (int i = 0; i < B; i++)
            idx[i] = (size_t)(B * s + i);
        nb_dataset_gather(&tr, idx, B, x, y, NULL);
        nb_model_forward(&m, x, y, NULL, B, NB_TRAIN);
    }

    struct nb_probe_opts o;
    nb_probe_opts_default(&o);
    o.evalstats = true;
    o.evalstats_samples[0] = 7;  /* whole batches: 8 samples */
    o.evalstats_samples[1] = 40;
    o.n_evalstats_samples = 2;
    o.evalstats_target = true;
    struct nb_probe p;
    struct rows rs = {0};
    ok(nb_probe_init(&p, &o, &m, 3, &tr, NULL, &e) == NB_EINVAL,
       "evalstats without a test set refused");
    contains(e.msg, "test set", "  saying so");
    nb_probe_free(&p);
    ok(nb_probe_init(&p, &o, &m, 3, &tr, &te, &e) == 0, "evalstats: init");
    struct nb_probe_sink sink = {.user = &rs, .row = keep};
    nb_probe_set_sink(&p, &sink);
    float *st = malloc(m.state.count * sizeof *st);
    memcpy(st, m.state.data, m.state.count * sizeof *st);
    nb_probe_finish(&p, &m, 5);
    ok(memcmp(st, m.state.data, m.state.count * sizeof *st) == 0,
       "evalstats leaves the running statistics as found");
    ok(count_rows(&rs, "evalstats", "test_error") == 2 + 2 * 4,
       "evalstats: ema, batch, and exact, ioffe, ioffe_biased, target for 2 counts");

    double loss, err;
    eval_by_hand(&m, &te, NB_EVAL, B, &loss, &err);
    same_eval(&rs, "ema", NAN, loss, err);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng *keep_probe = m.ctx.rng_probe;
    m.ctx.rng_probe = r;
    eval_by_hand(&m, &te, NB_PROBE, B, &loss, &err);
    same_eval(&rs, "batch", B, loss, err);
    static const char *const est[3] = {"exact", "ioffe", "ioffe_biased"};
    const long counts[2] = {7, 40};
    const double used[2] = {8, 40};
    double v_ioffe = 0, v_biased = 0;
    for (int c = 0; c < 2; c++) {
        for (int f = 0; f < 3; f++) {
            ok(nb_model_recompute_bn(&m, &tr, B, (size_t)counts[c], (enum nb_pop_formula)f, &e) ==
                   (int)used[c],
               "recompute over %ld samples in batches of %d uses %g", counts[c], B, used[c]);
            eval_by_hand(&m, &te, NB_EVAL, B, &loss, &err);
            same_eval(&rs, est[f], (double)counts[c], loss, err);
            const float *rv = NULL;
            for (int li = 0; li < m.n_layers && !rv; li++)
                for (int si = 0; si < m.layers[li].n_state; si++)
                    if (!strcmp(m.layers[li].state[si].name, "running_var"))
                        rv = m.layers[li].state[si].value;
            if (c == 1 && f == 1)
                v_ioffe = rv[0];
            if (c == 1 && f == 2)
                v_biased = rv[0];
        }
        /* the test set has 30 samples: all of them for 40 */
        double tused = used[c] < 30 ? used[c] : 30;
        ok(nb_model_recompute_bn(&m, &te, B, (size_t)counts[c], NB_POP_EXACT, &e) == (int)tused,
           "recompute over %ld test samples uses %g", counts[c], tused);
        eval_by_hand(&m, &te, NB_EVAL, B, &loss, &err);
        same_eval(&rs, "target", (double)counts[c], loss, err);
        double pv_s = NAN, got_used = NAN, got_tused = NAN;
        for (size_t i = 0; i < rs.n; i++)
            if (!strcmp(rs.r[i].probe, "evalstats") && !strcmp(rs.r[i].stat, "samples") &&
                rs.r[i].pv == (double)counts[c]) {
                pv_s = rs.r[i].pv;
                if (!strcmp(rs.r[i].param, "exact"))
                    got_used = rs.r[i].value;
                if (!strcmp(rs.r[i].param, "target"))
                    got_tused = rs.r[i].value;
            }
        ok(got_used == used[c] && got_tused == tused && pv_s == (double)counts[c],
           "evalstats: %ld asked (param_value), %g training and %g test samples used (stat "
           "samples: %g, %g)", counts[c], used[c], tused, got_used, got_tused);
        memcpy(m.state.data, st, m.state.count * sizeof *st);
    }
    is_close(v_ioffe / v_biased, 2.0, 1e-6, 0,
             "at batch 2 Ioffe's m/(m-1) doubles the biased estimate (%g / %g)", v_ioffe,
             v_biased);
    /* the run's eval_samples: the first 10 test images */
    nb_probe_free(&p);
    o.eval_samples = 10;
    o.n_evalstats_samples = 0;
    struct rows r10 = {0};
    sink.user = &r10;
    ok(nb_probe_init(&p, &o, &m, 3, &tr, &te, &e) == 0, "evalstats with eval_samples 10: init");
    nb_probe_set_sink(&p, &sink);
    nb_probe_finish(&p, &m, 5);
    eval_by_hand_n(&m, &te, 10, NB_EVAL, B, &loss, &err);
    same_eval(&r10, "ema", NAN, loss, err);
    free(r10.r);
    m.ctx.rng_probe = keep_probe;
    gsl_rng_free(r);
    nb_probe_free(&p);
    free(st);
    free(rs.r);
    nb_model_free(&m);
    nb_dataset_free(&tr);
    nb_dataset_free(&te);
}

/* ---- variance shift -------------------------------------------------------- */

/* What the varshift probe should write for one norm layer, by hand: two
 * passes of EVAL forwards over the first n samples of te, the moments of
 * the layer's input per channel, the layer's running_var by its state
 * name, the formula with keep probability q. */
struct vs_want {
    double meas, meas_med, pred, pred_med, c2v, units;
};

static double med_sorted(double *x, int n)
{
    for (int i = 1; i < n; i++) /* insertion sort: a few dozen values */
        for (int j = i; j > 0 && x[j - 1] > x[j]; j--) {
            double t = x[j];
            x[j] = x[j - 1];
            x[j - 1] = t;
        }
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static void vs_by_hand(struct nb_model *m, const struct nb_dataset *te, size_t n, int li,
                       double q, struct vs_want *w)
{
    const struct nb_layer *l = &m->layers[li];
    const int C = l->in.c;
    const size_t hw = (size_t)l->in.h * (size_t)l->in.w, numel = nb_shape_numel(&te->shape);
    const float *rv = NULL;
    for (int si = 0; si < l->n_state; si++)
        if (!strcmp(l->state[si].name, "running_var"))
            rv = l->state[si].value;
    double *sum = calloc((size_t)C, sizeof *sum), *sq = calloc((size_t)C, sizeof *sq);
    double *meas = calloc((size_t)C, sizeof *meas), *pred = calloc((size_t)C, sizeof *pred);
    float *x = malloc((size_t)m->max_batch * numel * sizeof *x);
    int *y = malloc((size_t)m->max_batch * sizeof *y);
    size_t idx[256];
    for (int pass = 0; pass < 2; pass++)
        for (size_t off = 0; off < n; off += (size_t)m->max_batch) {
            int k = (int)(n - off < (size_t)m->max_batch ? n - off : (size_t)m->max_batch);
            for (int i = 0; i < k; i++)
                idx[i] = off + (size_t)i;
            nb_dataset_gather(te, idx, (size_t)k, x, y, NULL);
            nb_model_forward(m, x, y, NULL, k, NB_EVAL);
            const float *a = m->acts[m->in_idx[li]];
            for (int s = 0; s < k; s++)
                for (int c = 0; c < C; c++)
                    for (size_t j = 0; j < hw; j++) {
                        double v = a[((size_t)s * C + c) * hw + j];
                        if (pass == 0)
                            sum[c] += v;
                        else
                            sq[c] += (v - sum[c]) * (v - sum[c]);
                    }
            if (pass == 0 && off + (size_t)k >= n)
                for (int c = 0; c < C; c++)
                    sum[c] /= (double)n * (double)hw;
        }
    double cnt = (double)n * (double)hw;
    int u = 0;
    memset(w, 0, sizeof *w);
    for (int c = 0; c < C; c++) {
        double v = sq[c] / (cnt - 1), mu = sum[c];
        if (!(v > 0))
            continue;
        meas[u] = rv[c] / v;
        pred[u] = ((mu * mu + v) / q - mu * mu) / v;
        w->meas += meas[u];
        w->pred += pred[u];
        w->c2v += mu * mu / v;
        u++;
    }
    w->meas /= u;
    w->pred /= u;
    w->c2v /= u;
    w->units = u;
    w->meas_med = med_sorted(meas, u);
    w->pred_med = med_sorted(pred, u);
    free(sum), free(sq), free(meas), free(pred), free(x), free(y);
}

/* The probe's rows of layer `layer` against vs_by_hand, to rtol. */
static void vs_same(const struct rows *rs, const char *label, const char *layer,
                    const struct vs_want *w, double q, double rtol)
{
    double got[7] = {find(rs, "varshift", layer, "measured", "ratio"),
                     find(rs, "varshift", layer, "measured", "ratio_median"),
                     find(rs, "varshift", layer, "predicted", "ratio"),
                     find(rs, "varshift", layer, "predicted", "ratio_median"),
                     find(rs, "varshift", layer, "", "c2v"),
                     find(rs, "varshift", layer, "", "units"),
                     find(rs, "varshift", layer, "", "keep")};
    double want[7] = {w->meas, w->meas_med, w->pred, w->pred_med, w->c2v, w->units, q};
    bool all = true;
    int worst = 0;
    for (int k = 0; k < 7; k++) {
        bool good = fabs(got[k] - want[k]) <= rtol * fabs(want[k]);
        if (!good && all)
            worst = k;
        all = all && good;
    }
    ok(all, "varshift %s %s: measured %.6g (median %.6g), predicted %.6g (median %.6g), "
            "c2v %.6g, %g units, keep %g as by hand", label, layer, got[0], got[1], got[2],
       got[3], got[4], got[5], got[6]);
    if (!all)
        tap_diag("  value %d: %.17g, by hand %.17g", worst, got[worst], want[worst]);
}

/* A one- or two-layer mlp with batch norm on blobs, dropout p at place. */
static void vs_model(struct nb_model *m, const struct nb_dataset *tr, int widths, double p,
                     enum nb_dropout_place place, int max_batch, bool cumulative)
{
    struct nb_model_desc d;
    struct nb_error e;
    nb_model_desc_default(&d);
    d.arch = NB_ARCH_MLP;
    d.input = tr->shape;
    d.outputs = 3;
    d.n_widths = widths;
    d.widths[0] = 16;
    d.widths[1] = 12;
    d.norm.type = NB_NORM_BATCH;
    d.norm.momentum_cumulative = cumulative;
    d.norm.momentum = 1.0;
    d.dropout = p;
    d.dropout_place = place;
    if (nb_model_build(m, &d, max_batch, 9, &e))
        tap_bail("model: %s", e.msg);
}

/* Runs the varshift probe once at the end into rs (over all of te). */
static void vs_probe(struct nb_model *m, const struct nb_dataset *te, struct rows *rs,
                     bool *state_kept)
{
    struct nb_probe_opts o;
    struct nb_probe p;
    struct nb_error e;
    nb_probe_opts_default(&o);
    o.varshift = true;
    if (nb_probe_init(&p, &o, m, 3, NULL, te, &e))
        tap_bail("varshift init: %s", e.msg);
    struct nb_probe_sink sink = {.user = rs, .row = keep};
    nb_probe_set_sink(&p, &sink);
    float *st = malloc(m->state.count * sizeof *st), *pa = malloc(m->params.count * sizeof *pa);
    memcpy(st, m->state.data, m->state.count * sizeof *st);
    memcpy(pa, m->params.data, m->params.count * sizeof *pa);
    nb_probe_finish(&p, m, 1);
    *state_kept = memcmp(st, m->state.data, m->state.count * sizeof *st) == 0 &&
                  memcmp(pa, m->params.data, m->params.count * sizeof *pa) == 0;
    free(st), free(pa);
    nb_probe_free(&p);
}

/* n TRAIN forwards (weights frozen: no update) of random batches of b
 * samples of ds, dropout masks from r. */
static void vs_train_forwards(struct nb_model *m, const struct nb_dataset *ds, int b, int n,
                              gsl_rng *r)
{
    size_t numel = nb_shape_numel(&ds->shape), idx[256];
    float *x = malloc((size_t)b * numel * sizeof *x);
    int *y = malloc((size_t)b * sizeof *y);
    size_t *perm = malloc(ds->n * sizeof *perm);
    for (size_t i = 0; i < ds->n; i++)
        perm[i] = i;
    m->ctx.rng_dropout = r;
    for (int s = 0; s < n; s++) {
        gsl_ran_shuffle(r, perm, ds->n, sizeof *perm);
        memcpy(idx, perm, (size_t)b * sizeof *idx);
        nb_dataset_gather(ds, idx, (size_t)b, x, y, NULL);
        nb_model_forward(m, x, y, NULL, b, NB_TRAIN);
    }
    m->ctx.rng_dropout = NULL;
    free(x), free(y), free(perm);
}

/* The fold probe: rows equal nb_model_fold + nb_fold_compare by hand, the
 * folded logits within float rounding, the state as found; refusals of
 * what cannot be folded, keyed to the config line at fault. */
static void test_fold(void)
{
    struct nb_dataset tr, te;
    struct nb_error e;
    blobs(256, 200, 4, 3, 41, 0.3, &tr, &te);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 19);
    struct nb_model m;
    vs_model(&m, &tr, 2, 0.0, NB_DROPOUT_BEFORE_NORM, 64, false);
    vs_train_forwards(&m, &tr, 64, 3, r); /* running statistics away from 0 and 1 */
    for (size_t i = 0; i < m.params.count; i++) /* gamma and beta away from 1 and 0 */
        m.params.data[i] += (float)(0.1 * sin((double)i));

    /* by hand: the library's fold and comparison */
    struct nb_model f;
    int folded = nb_model_fold(&m, &f, &e);
    double max_abs;
    size_t differ, samples;
    ok(folded == 2 && nb_fold_compare(&m, &f, &te, 0, &max_abs, &differ, &samples, &e) == 0,
       "fold by hand: 2 norms folded, compared over the test set");
    nb_model_free(&f);

    for (int lim = 0; lim < 2; lim++) {
        struct nb_probe_opts o;
        struct nb_probe p;
        nb_probe_opts_default(&o);
        o.fold = true;
        o.fold_rounds = 3;
        if (lim)
            o.fold_samples = 50;
        if (nb_probe_init(&p, &o, &m, 3, NULL, &te, &e))
            tap_bail("fold init: %s", e.msg);
        struct rows rs = {0};
        struct nb_probe_sink sink = {.user = &rs, .row = keep};
        nb_probe_set_sink(&p, &sink);
        float *st = malloc(m.state.count * sizeof *st), *pa = malloc(m.params.count * sizeof *pa);
        memcpy(st, m.state.data, m.state.count * sizeof *st);
        memcpy(pa, m.params.data, m.params.count * sizeof *pa);
        nb_probe_finish(&p, &m, 7);
        ok(memcmp(st, m.state.data, m.state.count * sizeof *st) == 0 &&
               memcmp(pa, m.params.data, m.params.count * sizeof *pa) == 0,
           "fold leaves parameters and running statistics as found");
        free(st), free(pa);
        double su = find(&rs, "fold", "", "samples", "seconds_unfolded"),
               sf = find(&rs, "fold", "", "samples", "seconds_folded"),
               ratio = find(&rs, "fold", "", "samples", "time_ratio"),
               d = find(&rs, "fold", "", "samples", "max_abs_logit_diff");
        if (!lim) {
            ok(find(&rs, "fold", "", "samples", "layers_folded") == 2 &&
                   d == max_abs &&
                   find(&rs, "fold", "", "samples", "predictions_differ") == (double)differ &&
                   rs.r[0].pv == 200 && rs.r[0].step == 7,
               "fold rows: 2 layers, max |logit diff| %.3g and %zu predictions changed as by "
               "hand, over 200 samples, at step 7",
               d, differ);
            ok(d < 1e-5 && differ == 0, "  the folded logits within float rounding (%.3g)", d);
        } else {
            ok(rs.r[0].pv == 50 && d <= max_abs,
               "fold_samples 50: 50 samples compared (max diff %.3g)", d);
        }
        ok(su > 0 && sf > 0 && ratio == sf / su,
           "  timed: %.3g s unfolded, %.3g s folded per pass, ratio %.3f", su, sf, ratio);
        free(rs.r);
        nb_probe_free(&p);
    }
    nb_model_free(&m);

    /* refused: placement post, norms without running statistics, none */
    struct {
        enum nb_norm_type t;
        enum nb_norm_placement pl;
        const char *key, *what;
    } bad[] = {
        {NB_NORM_BATCH, NB_PLACE_POST, "model.placement", "placement post"},
        {NB_NORM_GROUP, NB_PLACE_PRE, "norm.type", "group norm"},
        {NB_NORM_LAYER, NB_PLACE_PRE, "norm.type", "layer norm"},
        {NB_NORM_NONE, NB_PLACE_PRE, "norm.type", "no norm"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        struct nb_model_desc d;
        nb_model_desc_default(&d);
        d.arch = NB_ARCH_MLP;
        d.input = tr.shape;
        d.outputs = 3;
        d.n_widths = 1;
        d.widths[0] = 8;
        d.norm.type = bad[k].t;
        d.norm.groups = 1;
        d.placement = bad[k].pl;
        struct nb_probe_opts o;
        struct nb_probe p;
        nb_probe_opts_default(&o);
        o.fold = true;
        int rc = nb_probe_init_desc(&p, &o, &d, 16, 1, &tr, &te, &e);
        ok(rc == NB_EINVAL && !strcmp(e.key, bad[k].key), "fold refuses %s, keyed %s (%s)",
           bad[k].what, e.key, e.msg);
        nb_probe_free(&p);
    }
    gsl_rng_free(r);
    nb_dataset_free(&tr);
    nb_dataset_free(&te);
}

static void test_varshift(void)
{
    struct nb_dataset tr, te;
    struct nb_error e;
    blobs(256, 200, 4, 3, 31, 0.3, &tr, &te);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 17);
    struct nb_model m;
    struct vs_want w;
    bool kept;

    /* no test set: refused */
    {
        struct nb_probe_opts o;
        struct nb_probe p;
        nb_probe_opts_default(&o);
        o.varshift = true;
        vs_model(&m, &tr, 1, 0.5, NB_DROPOUT_BEFORE_NORM, 64, false);
        ok(nb_probe_init(&p, &o, &m, 3, &tr, NULL, &e) == NB_EINVAL,
           "varshift without a test set refused");
        contains(e.msg, "test set", "  saying so");
        nb_probe_free(&p);
        nb_model_free(&m);
    }

    /* 1. Exact: the rows equal the computation by hand (two passes over
     * the 200 test samples in chunks of 64; the probe merges chunks with
     * Chan's formula), two norms behind dropout 0.5, running statistics
     * moved by a few TRAIN forwards at momentum 1; the state is left as
     * found. */
    vs_model(&m, &tr, 2, 0.5, NB_DROPOUT_BEFORE_NORM, 64, false);
    vs_train_forwards(&m, &tr, 64, 3, r);
    struct rows rs = {0};
    vs_probe(&m, &te, &rs, &kept);
    ok(kept, "varshift leaves parameters and running statistics as found");
    vs_by_hand(&m, &te, te.n, 2, 0.5, &w);
    vs_same(&rs, "dropout 0.5 before each norm", "norm1", &w, 0.5, 1e-9);
    vs_by_hand(&m, &te, te.n, 6, 0.5, &w);
    vs_same(&rs, "dropout 0.5 before each norm", "norm2", &w, 0.5, 1e-9);
    ok(find(&rs, "varshift", "", "", "samples") == 200 &&
           count_rows(&rs, "varshift", "ratio") == 4,
       "varshift: 200 test samples, measured and predicted ratio for 2 norms");
    free(rs.r);
    nb_model_free(&m);

    /* dropout before the classifier only: no dropout before a norm, the
     * prediction is 1 */
    vs_model(&m, &tr, 2, 0.5, NB_DROPOUT_CLASSIFIER, 64, false);
    vs_train_forwards(&m, &tr, 64, 3, r);
    rs = (struct rows){0};
    vs_probe(&m, &te, &rs, &kept);
    vs_by_hand(&m, &te, te.n, 4, 1.0, &w);
    vs_same(&rs, "dropout before the classifier", "norm2", &w, 1.0, 1e-9);
    ok(find(&rs, "varshift", "norm1", "predicted", "ratio") == 1 &&
           find(&rs, "varshift", "norm2", "predicted", "ratio_median") == 1,
       "  predicted ratio exactly 1 without dropout before the norm");
    free(rs.r);
    nb_model_free(&m);

    /* a cnn: per channel over the samples and the H x W positions, four
     * conv norms and the linear one */
    {
        struct nb_dataset ctr, cte;
        blobs(64, 40, 8, 3, 32, 0.3, &ctr, &cte);
        struct nb_model_desc d;
        nb_model_desc_default(&d);
        d.arch = NB_ARCH_CNN;
        d.input = ctr.shape;
        d.outputs = 3;
        d.norm.type = NB_NORM_BATCH;
        d.dropout = 0.3;
        d.dropout_place = NB_DROPOUT_BEFORE_NORM;
        if (nb_model_build(&m, &d, 16, 9, &e))
            tap_bail("cnn: %s", e.msg);
        vs_train_forwards(&m, &ctr, 16, 3, r);
        rs = (struct rows){0};
        vs_probe(&m, &cte, &rs, &kept);
        ok(kept, "varshift on a cnn leaves the state as found");
        int found = 0;
        for (int i = 0; i < m.n_layers; i++) {
            if (m.layers[i].ops != &nb_norm_ops)
                continue;
            vs_by_hand(&m, &cte, cte.n, i, 1.0 - (double)0.3f, &w);
            vs_same(&rs, "cnn, dropout 0.3 before each norm", m.layers[i].name, &w,
                    1.0 - (double)0.3f, 1e-9);
            found++;
        }
        is_int(found, 5, "  the cnn's five norms (four conv, one linear)");
        free(rs.r);
        nb_model_free(&m);
        nb_dataset_free(&ctr);
        nb_dataset_free(&cte);
    }

    /* 2. Without dropout, momentum 1, the test set = the one batch the
     * running statistics come from: the measured ratio is 1 up to the
     * float rounding of running_var (both are the unbiased variance of
     * the same values). */
    {
        struct nb_dataset one, unused;
        blobs(64, 64, 4, 3, 33, 0.3, &one, &unused);
        vs_model(&m, &one, 1, 0.0, NB_DROPOUT_CLASSIFIER, 64, false);
        size_t idx[64], numel = nb_shape_numel(&one.shape);
        float *x = malloc(64 * numel * sizeof *x);
        int y[64];
        for (int i = 0; i < 64; i++)
            idx[i] = (size_t)i;
        nb_dataset_gather(&one, idx, 64, x, y, NULL);
        nb_model_forward(&m, x, y, NULL, 64, NB_TRAIN);
        free(x);
        rs = (struct rows){0};
        vs_probe(&m, &one, &rs, &kept);
        is_close(find(&rs, "varshift", "norm1", "measured", "ratio"), 1.0, 0, 1e-5,
                 "no dropout, momentum 1, the same batch: measured ratio 1");
        is_close(find(&rs, "varshift", "norm1", "measured", "ratio_median"), 1.0, 0, 1e-5,
                 "  and its median");
        free(rs.r);
        nb_model_free(&m);
        nb_dataset_free(&one);
        nb_dataset_free(&unused);
    }

    /* 3. The formula: weights frozen, the running variance the
     * cumulative average over 1000 TRAIN batches of 32 drawn from the
     * test set itself (so the dropout's input is the same population in
     * training and at test, the formula's assumption): with dropout p =
     * 0.5 and 0.2 the measured ratio is within 3 % of the prediction (the
     * expected departure is the finite population's 1/(N-1), 0.5 %, and
     * the masks' noise, about 0.3 %); without dropout within 2 % of 1. */
    static const double ps[3] = {0.5, 0.2, 0.0};
    for (int k = 0; k < 3; k++) {
        vs_model(&m, &te, 1, ps[k], NB_DROPOUT_BEFORE_NORM, 32, true);
        vs_train_forwards(&m, &te, 32, 1000, r);
        rs = (struct rows){0};
        vs_probe(&m, &te, &rs, &kept);
        double meas = find(&rs, "varshift", "norm1", "measured", "ratio");
        double pred = find(&rs, "varshift", "norm1", "predicted", "ratio");
        double q = 1.0 - (double)(float)ps[k];
        if (ps[k] > 0) {
            ok(fabs(meas / pred - 1) <= 0.03 && pred > 1.0 / q,
               "dropout %g before the norm: measured ratio %.4f within 3 %% of the formula's "
               "%.4f (> 1/q = %.4f: the units are not centred, c2v %.3f)", ps[k], meas, pred,
               1.0 / q, find(&rs, "varshift", "norm1", "", "c2v"));
        } else {
            ok(fabs(meas - 1) <= 0.02 && pred == 1,
               "no dropout: measured ratio %.4f within 2 %% of 1, predicted %g", meas, pred);
        }
        ok(kept, "  the probe left the state as found");
        free(rs.r);
        nb_model_free(&m);
    }

    /* nb_norm_eval_moments: batch norm's running mean and variance,
     * renorm's moving mean and std^2 - eps, nothing for group and lp
     * norm (no variance) */
    static const enum nb_norm_type types[4] = {NB_NORM_BATCH, NB_NORM_BATCH, NB_NORM_GROUP,
                                               NB_NORM_LP};
    for (int k = 0; k < 4; k++) {
        struct nb_model_desc d;
        nb_model_desc_default(&d);
        d.arch = NB_ARCH_MLP;
        d.input = tr.shape;
        d.outputs = 3;
        d.n_widths = 1;
        d.widths[0] = 8;
        d.norm.type = types[k];
        d.norm.groups = 2;
        d.norm.renorm = k == 1;
        d.norm.renorm_warmup = d.norm.renorm_rmax_steps = d.norm.renorm_dmax_steps = 0;
        if (nb_model_build(&m, &d, 16, 9, &e))
            tap_bail("model: %s", e.msg);
        vs_train_forwards(&m, &tr, 16, 3, r);
        const struct nb_layer *l = &m.layers[1];
        double mean[8], var[8];
        int C = nb_norm_eval_moments(l, mean, var);
        const char *mn = k == 1 ? "renorm_mean" : "running_mean";
        const char *vn = k == 1 ? "renorm_std" : "running_var";
        const float *sm = NULL, *sv = NULL;
        for (int si = 0; si < l->n_state; si++) {
            if (!strcmp(l->state[si].name, mn))
                sm = l->state[si].value;
            if (!strcmp(l->state[si].name, vn))
                sv = l->state[si].value;
        }
        if (k >= 2) {
            ok(C == 0 && nb_norm_eval_moments(&m.layers[0], mean, var) == 0,
               "eval moments: none for %s norm, nor for a linear layer",
               nb_norm_type_name(types[k]));
        } else {
            bool same = C == 8 && sm && sv;
            for (int c = 0; same && c < 8; c++) {
                double want = k == 1 ? (double)sv[c] * sv[c] - d.norm.eps : sv[c];
                same = mean[c] == sm[c] && fabs(var[c] - want) <= 1e-12 * fabs(want);
            }
            ok(same, "eval moments of %s: %s and %s%s", k ? "renorm" : "batch norm", mn, vn,
               k ? "^2 - eps" : "");
        }
        nb_model_free(&m);
    }
    gsl_rng_free(r);
    nb_dataset_free(&tr);
    nb_dataset_free(&te);
}

/* ---- probes never change training ---------------------------------------- */

struct run {
    struct nb_probe *p; /* NULL: probes off */
    struct nb_metrics rows[32];
    int n;
};

static void on_step(void *user, struct nb_model *m, const float *x, const int *y,
                    const float *t, int n, long step, double lr)
{
    struct run *r = user;
    if (r->p)
        nb_probe_step(r->p, m, x, y, t, n, step, lr);
}

/* End-of-run probes (fold, and the Hessian and slices at the end). */
static void on_end(void *user, struct nb_model *m, const struct nb_train_result *res)
{
    struct run *r = user;
    if (r->p)
        nb_probe_finish(r->p, m, res->steps);
}

static int on_metrics(void *user, const struct nb_metrics *row)
{
    struct run *r = user;
    if (r->n < 32)
        r->rows[r->n++] = *row;
    return 0;
}

/* Every field of every row but the wall time, bit for bit. */
static bool same_metrics(const struct run *a, const struct run *b)
{
    if (a->n != b->n || a->n == 0)
        return false;
    for (int i = 0; i < a->n; i++) {
        struct nb_metrics x = a->rows[i], y = b->rows[i];
        x.time = y.time = 0;
        if (memcmp(&x, &y, sizeof x))
            return false;
    }
    return true;
}

static bool same_rows(const struct rows *a, const struct rows *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        struct row x = a->r[i], y = b->r[i];
        if (!strcmp(x.stat, "seconds") || !strncmp(x.stat, "seconds_", 8) ||
            !strcmp(x.stat, "time_ratio"))
            continue; /* wall times (fold's timing among them) */
        if (x.step != y.step || strcmp(x.probe, y.probe) || strcmp(x.stat, y.stat) ||
            memcmp(&x.value, &y.value, sizeof x.value))
            return false;
    }
    return true;
}

static void untouched(const char *label, const struct nb_train_spec *spec,
                      const struct nb_dataset *tr, const struct nb_dataset *te,
                      enum nb_mode hmode, bool recompute)
{
    struct nb_error e;
    struct nb_train_result res;
    struct run off = {0}, on = {0};
    struct nb_train_hooks h = {.user = &off, .on_step = on_step, .on_metrics = on_metrics,
                               .on_end = on_end};
    int rc = nb_train(spec, tr, te, &h, 0, &res, &e);
    ok(rc == 0 && res.status == NB_TRAIN_DONE && off.n >= 2, "%s: trains without probes (%d rows)",
       label, off.n);

    struct nb_probe_opts o;
    nb_probe_opts_default(&o);
    o.landscape = true;
    o.landscape_every = 3;
    o.eta_points = 3;
    o.ics = true;
    o.ics_every = 4;
    o.dist = true;
    o.dist_every = 5;
    o.gradstats = true;
    o.hessian = true;
    o.hessian_every = 7;
    o.hessian_samples = 64;
    o.hessian_mode = hmode == NB_PROBE ? NB_HESSIAN_PROBE : NB_HESSIAN_EVAL;
    o.hessian_max_iter = 5;
    o.slice = true;
    long at[1] = {6};
    o.slice_at = at;
    o.n_slice_at = 1;
    o.slice_dim = 2;
    o.slice_points = 3;
    o.slice_samples = 64;
    o.slice_recompute_bn = recompute;
    o.evalstats = true;
    o.evalstats_every = 9;
    o.evalstats_samples[0] = 64;
    o.n_evalstats_samples = 1;
    o.evalstats_target = true;
    o.varshift = true;
    o.varshift_every = 8;
    o.varshift_samples = 50;
    o.fold = true;
    o.fold_samples = 50;
    o.fold_rounds = 1;
    struct rows rows[2] = {{0}, {0}};
    for (int k = 0; k < 2; k++) {
        struct nb_probe p;
        rc = nb_probe_init_desc(&p, &o, &spec->model, spec->batch, spec->seed, tr, te, &e);
        if (rc) {
            ok(0, "%s: probe init (%s)", label, e.msg);
            return;
        }
        char path[1024];
        snprintf(path, sizeof path, "%s/slice-%s-%d.csv", tmpdir(), label, k);
        for (char *c = strrchr(path, '/'); *c; c++)
            if (*c == ' ' || *c == '+')
                *c = '_';
        FILE *f = fopen(path, "w");
        struct nb_probe_sink sink = {.user = &rows[k], .row = keep, .slice = f};
        nb_probe_set_sink(&p, &sink);
        on.p = &p;
        on.n = 0;
        h.user = &on;
        rc = nb_train(spec, tr, te, &h, 0, &res, &e);
        if (f)
            fclose(f);
        if (k == 0) {
            ok(rc == 0 && same_metrics(&off, &on),
               "%s: every metric bit-identical with all probes on (%d rows)", label, on.n);
            bool all = true;
            for (int q = 0; q < NB_PROBE_KIND_COUNT; q++)
                all = all && p.cost[q].calls > 0;
            ok(all && p.status == 0, "%s: every probe ran (%ld calls, %.3f s of %.3f s)", label,
               p.calls, p.seconds, res.seconds);
            ok(count_rows(&rows[0], "slice", "index") == 1 &&
                   isfinite(find(&rows[0], "landscape", NULL, NULL, "beta_eff")) &&
                   isfinite(find(&rows[0], "ics", NULL, "lr", "cos")) &&
                   isfinite(find(&rows[0], "hessian", NULL, "samples", "lambda_max")),
               "%s: finite landscape, ICS and Hessian values", label);
        }
        nb_probe_free(&p);
    }
    ok(same_rows(&rows[0], &rows[1]), "%s: the probes' own rows are reproducible (%zu rows)",
       label, rows[0].n);
    free(rows[0].r);
    free(rows[1].r);
}

static void test_untouched(void)
{
    struct nb_dataset tr, te;
    blobs(256, 64, 8, 4, 11, 0.1, &tr, &te);

    struct nb_train_spec spec;
    nb_train_spec_default(&spec);
    spec.model.arch = NB_ARCH_MLP;
    spec.model.input = tr.shape;
    spec.model.outputs = 4;
    spec.model.n_widths = 2;
    spec.model.widths[0] = 32;
    spec.model.widths[1] = 16;
    spec.model.norm.type = NB_NORM_BATCH;
    spec.model.dropout = 0.3;
    spec.model.dropout_place = NB_DROPOUT_BEFORE_NORM;
    spec.sgd.momentum = 0.9;
    spec.batch = 32;
    spec.max_steps = 30;
    spec.eval_every = 10;
    spec.eval_every_epoch = false;
    spec.eval_stats = NB_EVAL_STATS_PRECISE; /* draws dropout masks from the model's probe stream */
    spec.precise_samples = 96;
    spec.sched.lr = 0.1;
    spec.seed = 5;
    untouched("mlp+bn+dropout+precise", &spec, &tr, &te, NB_PROBE, true);

    nb_train_spec_default(&spec);
    spec.model.arch = NB_ARCH_CNN;
    spec.model.input = tr.shape;
    spec.model.outputs = 4;
    spec.model.norm.type = NB_NORM_BATCH;
    spec.model.norm.noisy = true;
    spec.model.dropout = 0.2;
    spec.sgd.momentum = 0.9;
    spec.batch = 16;
    spec.max_steps = 14;
    spec.eval_every = 7;
    spec.eval_every_epoch = false;
    spec.sched.lr = 0.05;
    spec.seed = 6;
    untouched("cnn+noisy bn+dropout", &spec, &tr, &te, NB_EVAL, true);

    nb_dataset_free(&tr);
    nb_dataset_free(&te);
}

static void test_opts(void)
{
    struct nb_probe_opts o;
    struct nb_error e;
    nb_probe_opts_default(&o);
    ok(nb_probe_opts_check(&o, &e) == 0 && o.eta_min == 0.5 && o.eta_max == 4 &&
           o.hessian_tol == 1e-3 && o.hessian_max_iter == 100,
       "defaults: [0.5, 4] x lr, PyHessian tol 1e-3 and 100 iterations");
    o.slice_dim = 3;
    ok(nb_probe_opts_check(&o, &e) == NB_EINVAL, "slice_dim 3 refused");
    contains(e.msg, "slice_dim", "... naming the key");
    nb_probe_opts_default(&o);
    o.eta_max = 0.1;
    ok(nb_probe_opts_check(&o, &e) == NB_EINVAL, "eta_max < eta_min refused");
    enum nb_probe_spacing s;
    ok(nb_probe_spacing_parse("log", &s) == 0 && s == NB_SPACING_LOG &&
           nb_probe_spacing_parse("cubic", &s) == NB_EINVAL,
       "spacing names parse");
    /* the Hessian needs data */
    nb_probe_opts_default(&o);
    o.hessian = true;
    struct nb_model_desc d;
    dln_desc(&d, 3, 1);
    struct nb_probe p;
    ok(nb_probe_init_desc(&p, &o, &d, 4, 1, NULL, NULL, &e) == NB_EINVAL,
       "hessian without a data set refused");
    nb_probe_free(&p);
}

int main(void)
{
    test_opts();
    test_landscape_quadratic();
    test_ics();
    test_hessian();
    test_filter_norm();
    test_dist();
    test_slice();
    test_evalstats();
    test_varshift();
    test_fold();
    test_untouched();
    is_int(n_unlisted, 0, "every row names a stat its probe lists in nb_probe_kinds");
    int seen = 0;
    for (int k = 0; k < NB_PROBE_KIND_COUNT; k++)
        seen += kind_seen[k];
    is_int(seen, NB_PROBE_KIND_COUNT, "  rows of every probe kind were checked");
    tap_done_testing();
    return tap_exit();
}
