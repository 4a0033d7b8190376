/* src/layers/norm_bench.c - the norm-layer micro-benchmark (workloads.md).
 *
 * Each case builds one norm layer outside any model (its own arenas and
 * context), fills x and dy with random values, and times forward (TRAIN)
 * + backward (dx and the gamma/beta gradients) in windows of about 20 ms
 * for about seconds_per_case; the reported time per element is the median
 * window.  The reference bandwidth is measured in the same process, one
 * thread, over arrays much larger than the caches: memcpy (copy) and
 * a = b + s*c (triad, with the same vector code as the norm kernels). */
#include "layers/norm.h"

#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "core/arena.h"
#include "layers/norm_kernels.h"

struct bench_layer {
    struct nb_layer l;
    struct nb_arena params, grads, state;
    struct nb_ctx ctx;
};

static void bench_free(struct bench_layer *b)
{
    nb_layer_destroy(&b->l);
    nb_arena_free(&b->params);
    nb_arena_free(&b->grads);
    nb_arena_free(&b->state);
    if (b->ctx.rng_noise)
        gsl_rng_free(b->ctx.rng_noise);
    if (b->ctx.rng_probe)
        gsl_rng_free(b->ctx.rng_probe);
}

static int bench_setup(struct bench_layer *b, const struct nb_norm_opts *o,
                       struct nb_shape in, int batch, struct nb_error *err)
{
    memset(b, 0, sizeof *b);
    int rc = nb_layer_setup(&b->l, &nb_norm_ops, "bench", &in, batch, o, err);
    if (rc)
        return rc;
    size_t np = 0, ns = 0;
    for (int i = 0; i < b->l.n_params; i++) {
        b->l.params[i].offset = np;
        np += b->l.params[i].count;
    }
    for (int i = 0; i < b->l.n_state; i++) {
        b->l.state[i].offset = ns;
        ns += b->l.state[i].count;
    }
    if ((rc = nb_arena_init(&b->params, np, err)) ||
        (rc = nb_arena_init(&b->grads, np, err)) ||
        (rc = nb_arena_init(&b->state, ns, err)))
        return rc;
    for (int i = 0; i < b->l.n_params; i++) {
        b->l.params[i].value = b->params.data + b->l.params[i].offset;
        b->l.params[i].grad = b->grads.data + b->l.params[i].offset;
    }
    for (int i = 0; i < b->l.n_state; i++)
        b->l.state[i].value = b->state.data + b->l.state[i].offset;
    b->ctx.rng_noise = gsl_rng_alloc(gsl_rng_mt19937);
    b->ctx.rng_probe = gsl_rng_alloc(gsl_rng_mt19937);
    if (!b->ctx.rng_noise || !b->ctx.rng_probe)
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "bench: out of memory");
    b->l.ctx = &b->ctx;
    if (b->l.ops->init)
        b->l.ops->init(&b->l);
    return NB_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Best-of-reps bandwidth (GB/s, bytes read + written) of copy and triad. */
static int measure_bandwidth(double *copy_gbs, double *triad_gbs)
{
    const size_t n = (size_t)16 << 20; /* 64 MiB of floats per array */
    float *a = nb_alloc_floats(n), *b = nb_alloc_floats(n),
          *c = nb_alloc_floats(n);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return NB_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        b[i] = (float)(i & 1023) * 0.001f;
        c[i] = 1.0f - b[i];
    }
    double best_copy = 1e30, best_triad = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = nb_now();
        memcpy(a, b, n * sizeof *a);
        double t1 = nb_now();
        /* a = b + s c through the vectorized kernel (a plain loop is not
         * vectorized at -O2 and would understate the bandwidth) */
        nb_normk_bwd_dx(a, b, c, 1.0f, 0.5f + (float)rep, 0.0f, 0.0f, n);
        double t2 = nb_now();
        best_copy = t1 - t0 < best_copy ? t1 - t0 : best_copy;
        best_triad = t2 - t1 < best_triad ? t2 - t1 : best_triad;
    }
    volatile float sink = a[n / 3];
    (void)sink;
    *copy_gbs = 2.0 * n * sizeof(float) / best_copy * 1e-9;
    *triad_gbs = 3.0 * n * sizeof(float) / best_triad * 1e-9;
    free(a);
    free(b);
    free(c);
    return NB_OK;
}

/* Median seconds per forward+backward of one case. */
static int time_case(const struct nb_norm_opts *o, struct nb_shape in,
                     int batch, double seconds, double *per_iter,
                     struct nb_error *err)
{
    struct bench_layer b;
    int rc = bench_setup(&b, o, in, batch, err);
    size_t total = (size_t)batch * nb_shape_numel(&in);
    float *x = NULL, *y = NULL, *dy = NULL, *dx = NULL;
    enum { MAXW = 512 };
    double win[MAXW];
    if (!rc) {
        x = nb_alloc_floats(total);
        y = nb_alloc_floats(total);
        dy = nb_alloc_floats(total);
        dx = nb_alloc_floats(total);
        if (!x || !y || !dy || !dx)
            rc = nb_error_set(err, NB_ENOMEM, NULL, 0, "bench: out of memory");
    }
    if (!rc) {
        gsl_rng *r = b.ctx.rng_probe;
        gsl_rng_set(r, 12345);
        for (size_t i = 0; i < total; i++) {
            x[i] = (float)(2.0 * gsl_rng_uniform(r) - 0.7);
            dy[i] = (float)(gsl_rng_uniform(r) - 0.5);
        }
        const struct nb_layer_ops *ops = b.l.ops;
        for (int i = 0; i < 3; i++) { /* warm up */
            ops->forward(&b.l, x, y, batch, NB_TRAIN);
            ops->backward(&b.l, x, y, dy, dx, batch);
        }
        /* iterations per window of about 20 ms */
        double t0 = nb_now();
        ops->forward(&b.l, x, y, batch, NB_TRAIN);
        ops->backward(&b.l, x, y, dy, dx, batch);
        double one = nb_now() - t0;
        long reps = one > 0 ? (long)(0.02 / one) : 1000;
        if (reps < 1)
            reps = 1;
        int nw = 0;
        double start = nb_now();
        while (nw < MAXW && (nw < 3 || nb_now() - start < seconds)) {
            double w0 = nb_now();
            for (long i = 0; i < reps; i++) {
                b.ctx.step++;
                ops->forward(&b.l, x, y, batch, NB_TRAIN);
                ops->backward(&b.l, x, y, dy, dx, batch);
            }
            win[nw++] = (nb_now() - w0) / (double)reps;
        }
        qsort(win, (size_t)nw, sizeof win[0], cmp_double);
        *per_iter = win[nw / 2];
    }
    free(x);
    free(y);
    free(dy);
    free(dx);
    bench_free(&b);
    return rc;
}

int nb_norm_bench(FILE *out, double seconds_per_case)
{
    static const struct {
        int n, c, h, w;
    } shapes[] = {{32, 16, 28, 28}, {32, 32, 14, 14}, {128, 64, 14, 14},
                  {8, 32, 28, 28}};
    static const enum nb_norm_type types[] = {NB_NORM_BATCH, NB_NORM_GROUP,
                                              NB_NORM_LAYER, NB_NORM_INSTANCE};
    double copy_gbs, triad_gbs;
    if (measure_bandwidth(&copy_gbs, &triad_gbs))
        return NB_ENOMEM;
    fprintf(out, "# norm micro-benchmark: forward + backward, TRAIN, affine, "
                 "float32 NCHW, one thread\n");
    fprintf(out, "# minimum traffic 20 bytes/element (forward reads x, writes "
                 "y; backward reads x, dy, writes dx)\n");
    fprintf(out, "# measured memory bandwidth (64 MiB arrays, best of 5): "
                 "copy %.1f GB/s, triad %.1f GB/s\n", copy_gbs, triad_gbs);
    fprintf(out, "%-9s %-16s %4s %10s %8s %9s\n", "scheme", "shape", "G",
            "ns/elem", "GB/s", "x_triad");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            struct nb_norm_opts o;
            nb_norm_opts_default(&o);
            o.type = types[ti];
            int C = shapes[si].c;
            o.groups = nb_norm_default_groups(C);
            struct nb_shape in = {C, shapes[si].h, shapes[si].w};
            struct nb_error err;
            double t = 0;
            nb_error_clear(&err);
            int rc = time_case(&o, in, shapes[si].n, seconds_per_case, &t,
                               &err);
            if (rc) {
                char buf[1024];
                fprintf(out, "# %s\n", nb_error_format(&err, buf, sizeof buf));
                return rc;
            }
            double elems = (double)shapes[si].n * (double)nb_shape_numel(&in);
            double ns = t / elems * 1e9, gbs = 20.0 * elems / t * 1e-9;
            char shp[32];
            snprintf(shp, sizeof shp, "%dx%dx%dx%d", shapes[si].n, C,
                     shapes[si].h, shapes[si].w);
            int G = types[ti] == NB_NORM_GROUP ? o.groups
                    : types[ti] == NB_NORM_LAYER ? 1
                    : types[ti] == NB_NORM_INSTANCE ? C : 0;
            fprintf(out, "%-9s %-16s %4d %10.3f %8.1f %9.2f\n",
                    nb_norm_type_name(types[ti]), shp, G, ns, gbs,
                    gbs / triad_gbs);
            fflush(out);
        }
    return NB_OK;
}
