/* tests/gradcheck.c - see gradcheck.h. */
#include "gradcheck.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "tap.h"

int gc_setup(struct gc_layer *t, const struct nb_layer_ops *ops,
             const char *name, struct nb_shape in,
             const struct nb_shape *in2, int max_batch, const void *opts,
             unsigned long seed, struct nb_error *err)
{
    memset(t, 0, sizeof *t);
    if (in2)
        t->l.in2 = *in2;
    int rc = nb_layer_setup(&t->l, ops, name, &in, max_batch, opts, err);
    if (rc)
        return rc;
    size_t np = 0, ns = 0;
    for (int i = 0; i < t->l.n_params; i++) {
        t->l.params[i].offset = np;
        np += t->l.params[i].count;
    }
    for (int i = 0; i < t->l.n_state; i++) {
        t->l.state[i].offset = ns;
        ns += t->l.state[i].count;
    }
    if ((rc = nb_arena_init(&t->params, np, err)) ||
        (rc = nb_arena_init(&t->grads, np, err)) ||
        (rc = nb_arena_init(&t->state, ns, err)))
        return rc;
    for (int i = 0; i < t->l.n_params; i++) {
        t->l.params[i].value = t->params.data + t->l.params[i].offset;
        t->l.params[i].grad = t->grads.data + t->l.params[i].offset;
    }
    for (int i = 0; i < t->l.n_state; i++)
        t->l.state[i].value = t->state.data + t->l.state[i].offset;
    t->state0 = nb_alloc_floats(ns ? ns : 1);
    t->ctx.scratch_count = t->l.scratch;
    t->ctx.scratch = nb_alloc_floats(t->l.scratch ? t->l.scratch : 1);
    t->ctx.rng_dropout = gsl_rng_alloc(gsl_rng_mt19937);
    t->ctx.rng_noise = gsl_rng_alloc(gsl_rng_mt19937);
    t->ctx.rng_probe = gsl_rng_alloc(gsl_rng_mt19937);
    if (!t->state0 || !t->ctx.scratch || !t->ctx.rng_dropout ||
        !t->ctx.rng_noise || !t->ctx.rng_probe)
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "gradcheck: out of memory");
    for (int i = 0; i < 3; i++)
        t->seeds[i] = seed * 3 + (unsigned long)i + 1;
    t->l.ctx = &t->ctx;
    if (t->l.ops->init)
        t->l.ops->init(&t->l);
    gc_fill(t->params.data, np, 1.0, 0.05, seed + 101);
    /* keep norm gains away from 0 so the scale is well conditioned */
    for (int i = 0; i < t->l.n_params; i++)
        if (t->l.params[i].flags & NB_PARAM_NORM &&
            strcmp(t->l.params[i].name, "gamma") == 0)
            for (size_t k = 0; k < t->l.params[i].count; k++)
                t->l.params[i].value[k] = 0.5f + fabsf(t->l.params[i].value[k]);
    if (ns)
        memcpy(t->state0, t->state.data, ns * sizeof(float));
    return 0;
}

void gc_free(struct gc_layer *t)
{
    nb_layer_destroy(&t->l);
    nb_arena_free(&t->params);
    nb_arena_free(&t->grads);
    nb_arena_free(&t->state);
    free(t->state0);
    free(t->ctx.scratch);
    if (t->ctx.rng_dropout)
        gsl_rng_free(t->ctx.rng_dropout);
    if (t->ctx.rng_noise)
        gsl_rng_free(t->ctx.rng_noise);
    if (t->ctx.rng_probe)
        gsl_rng_free(t->ctx.rng_probe);
    memset(t, 0, sizeof *t);
}

void gc_fill(float *x, size_t n, double scale, double gap, unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    for (size_t i = 0; i < n; i++) {
        double u = gsl_rng_uniform(r) * 2.0 - 1.0;
        double v = gap + (scale - gap) * fabs(u);
        x[i] = (float)(u < 0 ? -v : v);
    }
    gsl_rng_free(r);
}

void gc_forward(struct gc_layer *t, const float *x, const float *x2, float *y,
                int n, enum nb_mode mode)
{
    if (t->state.count)
        memcpy(t->state.data, t->state0, t->state.count * sizeof(float));
    t->ctx.step = 7;
    gsl_rng_set(t->ctx.rng_dropout, t->seeds[0]);
    gsl_rng_set(t->ctx.rng_noise, t->seeds[1]);
    gsl_rng_set(t->ctx.rng_probe, t->seeds[2]);
    t->l.x2 = x2;
    t->l.ops->forward(&t->l, x, y, n, mode);
}

static double objective(struct gc_layer *t, const float *x, const float *x2,
                        float *y, const double *r, size_t ny, int n,
                        enum nb_mode mode)
{
    gc_forward(t, x, x2, y, n, mode);
    double s = 0;
    for (size_t i = 0; i < ny; i++)
        s += r[i] * (double)y[i];
    return s;
}

/* Central differences of the objective w.r.t. v[0..count); compares with
 * analytic[]. */
static int check_tensor(struct gc_layer *t, float *v, size_t count,
                        const float *analytic, float *x, float *x2, float *y,
                        const double *r, size_t ny, int n, enum nb_mode mode,
                        double h, double atol, double rtol, const char *what,
                        const char *label)
{
    double *num = malloc((count ? count : 1) * sizeof *num);
    for (size_t i = 0; i < count; i++) {
        float saved = v[i];
        double hh = h * fmax(1.0, fabs(saved));
        v[i] = (float)(saved + hh);
        double up = (double)v[i] - saved;
        double fp = objective(t, x, x2, y, r, ny, n, mode);
        v[i] = (float)(saved - hh);
        double dn = saved - (double)v[i];
        double fm = objective(t, x, x2, y, r, ny, n, mode);
        v[i] = saved;
        num[i] = (fp - fm) / (up + dn);
    }
    bool okay = arrays_close(analytic, num, count, atol, rtol,
                             "%s: %s vs central differences (%zu values)",
                             label, what, count);
    free(num);
    return okay ? 0 : 1;
}

int gc_check(struct gc_layer *t, float *x, float *x2, int n,
             enum nb_mode mode, double h, double atol, double rtol,
             const char *label)
{
    size_t nx = (size_t)n * nb_shape_numel(&t->l.in);
    size_t nx2 = x2 ? (size_t)n * nb_shape_numel(&t->l.in2) : 0;
    size_t ny = (size_t)n * nb_shape_numel(&t->l.out);
    float *y = nb_alloc_floats(ny);
    float *dy = nb_alloc_floats(ny);
    float *dx = nb_alloc_floats(nx);
    float *dx2 = nb_alloc_floats(nx2 ? nx2 : 1);
    double *r = malloc(ny * sizeof *r);
    float *rf = nb_alloc_floats(ny);
    gc_fill(rf, ny, 1.0, 0.1, 4242);
    for (size_t i = 0; i < ny; i++) {
        r[i] = rf[i];
        dy[i] = rf[i];
    }
    /* analytic */
    gc_forward(t, x, x2, y, n, mode);
    if (t->grads.count)
        memset(t->grads.data, 0, t->grads.count * sizeof(float));
    t->l.dx2 = x2 ? dx2 : NULL;
    t->l.ops->backward(&t->l, x, y, dy, dx, n);
    float *pgrad = nb_alloc_floats(t->grads.count ? t->grads.count : 1);
    if (t->grads.count)
        memcpy(pgrad, t->grads.data, t->grads.count * sizeof(float));

    int fails = 0;
    fails += check_tensor(t, x, nx, dx, x, x2, y, r, ny, n, mode, h, atol,
                          rtol, "dx", label);
    if (x2)
        fails += check_tensor(t, x2, nx2, dx2, x, x2, y, r, ny, n, mode, h,
                              atol, rtol, "dx2", label);
    for (int p = 0; p < t->l.n_params; p++) {
        char what[64];
        snprintf(what, sizeof what, "d%s", t->l.params[p].name);
        fails += check_tensor(t, t->l.params[p].value, t->l.params[p].count,
                              pgrad + t->l.params[p].offset, x, x2, y, r, ny,
                              n, mode, h, atol, rtol, what, label);
    }
    free(pgrad);
    free(y);
    free(dy);
    free(dx);
    free(dx2);
    free(r);
    free(rf);
    return fails;
}
