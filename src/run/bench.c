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

const char *const nb_bench_part_names[NB_BENCH_PARTS] = {
    [NB_BENCH_CONV_GEMM] = "c.gemm", [NB_BENCH_CONV] = "c.xfrm",
    [NB_BENCH_NORM] = "norm",     [NB_BENCH_ACT] = "act",
    [NB_BENCH_POOL] = "pool",     [NB_BENCH_LINEAR] = "linear", [NB_BENCH_OPTIM] = "optim",
    [NB_BENCH_OTHER] = "other"};

/* The part of the step a layer's time counts to. */
static enum nb_bench_part bench_part(const struct nb_layer_ops *ops)
{
    if (ops == &nb_conv2d_ops)
        return NB_BENCH_CONV;
    if (ops == &nb_norm_ops)
        return NB_BENCH_NORM;
    if (ops == &nb_relu_ops || ops == &nb_sigmoid_ops || ops == &nb_tanh_ops)
        return NB_BENCH_ACT;
    if (ops == &nb_maxpool_ops || ops == &nb_gap_ops)
        return NB_BENCH_POOL;
    if (ops == &nb_linear_ops)
        return NB_BENCH_LINEAR;
    return NB_BENCH_OTHER; /* loss, flatten, dropout, add */
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
    /* one training step; with opt not NULL, the optimizer's seconds are
     * added there */
#define STEP(opt)                                                  \
    do {                                                           \
        m.ctx.step = step++;                                       \
        nb_model_forward(&m, x, y, NULL, batch, NB_TRAIN);         \
        nb_model_backward(&m, batch);                              \
        double *opt_ = (opt), t1 = opt_ ? nb_now() : 0.0;          \
        nb_sgd_step(&sgd, &m, 0.01);                               \
        if (opt_)                                                  \
            *opt_ += nb_now() - t1;                                \
    } while (0)
    for (int i = 0; i < o->warmup; i++)
        STEP(NULL);
    double rates[64];
    int nw = o->windows < 64 ? o->windows : 64;
    for (int w = 0; w < nw; w++) {
        double t0 = nb_now();
        for (int s = 0; s < o->steps; s++)
            STEP(NULL);
        rates[w] = (double)o->steps * batch / (nb_now() - t0);
    }
    /* one profiled window for the split: each layer's forward and
     * backward by kind, the optimizer timed around its step */
    m.profile = true;
    double part[NB_BENCH_PARTS] = {0};
    m.ctx.gemm_seconds = &part[NB_BENCH_CONV_GEMM];
    double t0 = nb_now();
    for (int s = 0; s < o->steps; s++)
        STEP(&part[NB_BENCH_OPTIM]);
    double total = nb_now() - t0;
    m.ctx.gemm_seconds = NULL;
#undef STEP
    double layers = 0;
    for (int i = 0; i < m.n_layers; i++) {
        double t = m.prof_fwd[i] + m.prof_bwd[i];
        part[bench_part(m.layers[i].ops)] += t;
        layers += t;
    }
    part[NB_BENCH_CONV] -= part[NB_BENCH_CONV_GEMM]; /* the conv layers' time held both */
    /* what no layer or the optimizer took: the model's own passes
     * (zeroing gradients, copying the batch) */
    part[NB_BENCH_OTHER] += total - layers - part[NB_BENCH_OPTIM];
    qsort(rates, (size_t)nw, sizeof rates[0], cmp_double);
    fprintf(out, "%-6s %-9s %6d %12.0f ", nb_arch_name(o->arch), nb_norm_type_name(norm),
            batch, rates[nw / 2]);
    for (int k = 0; k < NB_BENCH_PARTS; k++)
        fprintf(out, " %5.1f%%", 100 * part[k] / total);
    fputc('\n', out);
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
    fprintf(out, "%-6s %-9s %6s %12s ", "arch", "norm", "batch", "img/s");
    for (int k = 0; k < NB_BENCH_PARTS; k++)
        fprintf(out, " %6s", nb_bench_part_names[k]);
    fputc('\n', out);
    for (int i = 0; i < o->n_norms; i++)
        for (int j = 0; j < o->n_batches; j++) {
            int rc = bench_one(out, o, o->norms[i], o->batches[j], err);
            if (rc)
                return rc;
        }
    return 0;
}
