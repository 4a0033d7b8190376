/* src/run/bench.c - see bench.h. */
#include "run/bench.h"

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "optim/optim.h"

void nb_bench_opts_default(struct nb_bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->arch = NB_ARCH_CNN;
    o->norms[0] = NB_NORM_NONE;
    o->norms[1] = NB_NORM_BATCH;
    o->norms[2] = NB_NORM_GROUP;
    o->n_norms = 3;
    static const int b[] = {2, 8, 32, 64, 128};
    memcpy(o->batches, b, sizeof b);
    o->n_batches = 5;
    o->windows = 5;
    o->steps = 50;
    o->warmup = 5;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench_one(FILE *out, const struct nb_bench_opts *o,
                     enum nb_norm_type norm, int batch, struct nb_error *err)
{
    struct nb_model_desc d;
    nb_model_desc_default(&d);
    d.arch = o->arch;
    d.norm.type = norm;
    d.conv_algo = o->conv_algo;
    if (o->arch == NB_ARCH_MLP)
        d.input = (struct nb_shape){784, 1, 1};
    struct nb_model m;
    int rc = nb_model_build(&m, &d, batch, 0, err);
    if (rc) {
        nb_model_free(&m);
        return rc;
    }
    size_t per = nb_shape_numel(&d.input);
    float *x = nb_alloc_floats((size_t)batch * per);
    int *y = malloc((size_t)batch * sizeof *y);
    gsl_rng *r = nb_rng_alloc(0, NB_STREAM_SYNTH);
    m.ctx.rng_dropout = m.ctx.rng_noise = m.ctx.rng_probe = r;
    for (size_t i = 0; i < (size_t)batch * per; i++)
        x[i] = nb_rng_normal(r);
    for (int i = 0; i < batch; i++)
        y[i] = (int)gsl_rng_uniform_int(r, 10);
    struct nb_sgd_opts so;
    nb_sgd_opts_default(&so);
    struct nb_sgd sgd;
    nb_sgd_init(&sgd, &so);

    long step = 0;
#define STEP()                                                     \
    do {                                                           \
        m.ctx.step = step++;                                       \
        nb_model_forward(&m, x, y, NULL, batch, NB_TRAIN);         \
        nb_model_backward(&m, batch);                              \
        nb_sgd_step(&sgd, &m, 0.01);                               \
    } while (0)
    for (int i = 0; i < o->warmup; i++)
        STEP();
    double rates[64];
    int nw = o->windows < 64 ? o->windows : 64;
    for (int w = 0; w < nw; w++) {
        double t0 = nb_now();
        for (int s = 0; s < o->steps; s++)
            STEP();
        rates[w] = (double)o->steps * batch / (nb_now() - t0);
    }
    /* one profiled window for the split */
    m.profile = true;
    double t0 = nb_now();
    for (int s = 0; s < o->steps; s++)
        STEP();
    double total = nb_now() - t0;
#undef STEP
    double conv = 0, nrm = 0;
    for (int i = 0; i < m.n_layers; i++) {
        double t = m.prof_fwd[i] + m.prof_bwd[i];
        if (m.layers[i].ops == &nb_conv2d_ops)
            conv += t;
        else if (m.layers[i].ops == &nb_norm_ops)
            nrm += t;
    }
    qsort(rates, (size_t)nw, sizeof rates[0], cmp_double);
    fprintf(out, "%-6s %-9s %6d %12.0f  %5.1f%% %5.1f%% %5.1f%%\n",
            nb_arch_name(o->arch), nb_norm_type_name(norm), batch, rates[nw / 2],
            100 * conv / total, 100 * nrm / total, 100 * (total - conv - nrm) / total);
    fflush(out);
    gsl_rng_free(r);
    free(x);
    free(y);
    nb_model_free(&m);
    return 0;
}

int nb_bench_throughput(FILE *out, const struct nb_bench_opts *o,
                        struct nb_error *err)
{
    fprintf(out, "# training throughput: full steps (forward, loss, backward, SGD) on one\n"
                 "# fixed random batch; %d warm-up steps, median of %d windows of %d steps\n",
            o->warmup, o->windows, o->steps);
    fprintf(out, "%-6s %-9s %6s %12s  %6s %6s %6s\n", "arch", "norm", "batch", "img/s",
            "conv", "norm", "rest");
    for (int i = 0; i < o->n_norms; i++)
        for (int j = 0; j < o->n_batches; j++) {
            int rc = bench_one(out, o, o->norms[i], o->batches[j], err);
            if (rc)
                return rc;
        }
    return 0;
}
