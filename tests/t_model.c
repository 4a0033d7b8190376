/* tests/t_model.c - the model builder, whole-network gradients, init
 * streams, training on a synthetic set, determinism, BN folding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "run/train.h"
#include "model/model.h"
#include "tap.h"
#include "threadcomm.h"

static void fill(float *x, size_t n, unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(2.0 * gsl_rng_uniform(r) - 1.0);
    gsl_rng_free(r);
}

/* Whole-model gradient vs central differences of the mean loss, on a
 * sample of parameters (every `stride`-th) and the analytic gradient. */
static void check_model_grad(const struct nb_model_desc *d, int n, int stride,
                             const char *label)
{
    struct nb_model m;
    struct nb_error e;
    if (nb_model_build(&m, d, n, 3, &e)) {
        ok(0, "%s: build (%s)", label, e.msg);
        return;
    }
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    m.ctx.rng_dropout = m.ctx.rng_noise = m.ctx.rng_probe = r;
    /* random norm parameters so gamma = 1 / beta = 0 hide nothing */
    fill(m.params.data, m.params.count, 77);
    for (size_t i = 0; i < m.params.count; i++)
        m.params.data[i] *= 0.7f;
    size_t per = nb_shape_numel(&d->input);
    float *x = malloc((size_t)n * per * sizeof *x);
    fill(x, (size_t)n * per, 5);
    int labels[16];
    float targets[256];
    for (int i = 0; i < n; i++)
        labels[i] = (i * 3) % d->outputs;
    fill(targets, sizeof targets / sizeof targets[0], 9);
    nb_model_forward(&m, x, labels, targets, n, NB_TRAIN);
    nb_model_backward(&m, n);
    float *g = malloc(m.grads.count * sizeof *g);
    memcpy(g, m.grads.data, m.grads.count * sizeof *g);
    double worst = 0;
    size_t worst_i = 0, checked = 0, bad = 0;
    for (size_t i = 0; i < m.params.count; i += (size_t)stride) {
        float w = m.params.data[i];
        double h = 1e-2 * fmax(1.0, fabs(w));
        m.params.data[i] = (float)(w + h);
        double up = m.params.data[i] - (double)w;
        double fp = nb_model_forward(&m, x, labels, targets, n, NB_TRAIN);
        m.params.data[i] = (float)(w - h);
        double dn = (double)w - m.params.data[i];
        double fm = nb_model_forward(&m, x, labels, targets, n, NB_TRAIN);
        m.params.data[i] = w;
        double num = (fp - fm) / (up + dn);
        double err = fabs(num - g[i]) - (2e-3 + 2e-2 * fabs(num));
        checked++;
        if (err > 0)
            bad++;
        if (err > worst || checked == 1) {
            worst = err;
            worst_i = i;
        }
    }
    ok(bad == 0, "%s: whole-model gradient vs central differences (%zu params checked)",
       label, checked);
    if (bad)
        tap_diag("  %zu bad; worst at param %zu: analytic %.6g", bad, worst_i, g[worst_i]);
    free(g);
    free(x);
    gsl_rng_free(r);
    nb_model_free(&m);
}

/* A learnable synthetic classification set: class blobs. */
static int make_blobs(struct nb_dataset *tr, struct nb_dataset *te)
{
    struct nb_synth_opts so;
    struct nb_error e;
    nb_synth_opts_default(&so);
    so.n_train = 512;
    so.n_test = 256;
    so.shape = (struct nb_shape){1, 8, 8};
    so.classes = 4;
    so.seed = 11;
    so.spread = 0.1; /* well separated in 64 pixels: learnable in a few steps */
    return nb_synth_blobs(&so, tr, te, &e);
}

struct trace {
    double loss[64];
    int n;
};

static int record(void *user, const struct nb_metrics *row)
{
    struct trace *t = user;
    if (t->n < 64)
        t->loss[t->n++] = row->train_loss;
    return 0;
}

/* The cnn's loss on a fixed batch with conv_algo a (same parameters). */
static double cnn_loss(enum nb_conv_algo a)
{
    struct nb_model_desc d;
    nb_model_desc_default(&d);
    d.conv_algo = a;
    struct nb_model m;
    struct nb_error e;
    if (nb_model_build(&m, &d, 2, 3, &e)) {
        tap_diag("cnn with conv_algo %s: %s", nb_conv_algo_names[a], e.msg);
        return NAN;
    }
    fill(m.params.data, m.params.count, 77);
    for (size_t i = 0; i < m.params.count; i++)
        m.params.data[i] *= 0.3f;
    float x[2 * 28 * 28];
    fill(x, sizeof x / sizeof x[0], 5);
    int labels[2] = {3, 7};
    double loss = nb_model_forward(&m, x, labels, NULL, 2, NB_EVAL);
    nb_model_free(&m);
    return loss;
}

/* [model] conv_algo reaches the conv layers: im2col and Winograd round
 * differently (not bit-identical) but agree closely; auto mixes them (the
 * first conv has one input channel: im2col; the rest Winograd) */
static void test_conv_algo(void)
{
    double la = cnn_loss(NB_CONV_AUTO), li = cnn_loss(NB_CONV_IM2COL),
           lw = cnn_loss(NB_CONV_WINOGRAD);
    ok(isfinite(la) && isfinite(li) && isfinite(lw), "conv_algo: all three build and run");
    ok(li != lw && la != li && la != lw,
       "conv_algo: auto, im2col and winograd give three different roundings "
       "(%.17g, %.17g, %.17g)", la, li, lw);
    ok(fabs(li - lw) <= 1e-4 * fabs(li), "conv_algo: im2col and winograd agree to 1e-4 (%.3g)",
       fabs(li - lw) / fabs(li));
}

/* ---- data parallelism: nb_train_comm over threads as ranks -------------
 *
 * The ranks add each slice's gradient in rank order where one process
 * adds the whole batch's at once: the sums round differently (~1e-8), and
 * training carries that difference along like any other.  Where a ReLU
 * or max-pool decision flips it moves the run further (the cnn's test
 * loss by 2e-4 at step 12 from an lr changed by 1e-7 relative, in one
 * process), so these nets are smooth (sigmoid; the resnet has no
 * max-pool) and 1e-6 is a test of the arithmetic. */

struct rows {
    struct nb_metrics r[64];
    int n;
};

static int record_row(void *user, const struct nb_metrics *row)
{
    struct rows *t = user;
    if (t->n < 64)
        t->r[t->n++] = *row;
    return 0;
}

struct rank_train {
    const struct nb_train_spec *spec;
    const struct nb_dataset *tr, *te;
    struct rows *rows; /* rank 0's */
    int rc;
    struct nb_error err;
};

static void rank_train(const struct nb_comm *c, void *arg)
{
    struct rank_train *j = arg;
    struct nb_train_hooks h = {.user = j->rows, .on_metrics = record_row};
    struct nb_train_result res;
    j->rc = nb_train_comm(j->spec, j->tr, NULL, j->te, c->rank == 0 ? &h : NULL, c, 0,
                          &res, &j->err);
}

/* The largest relative difference of the metrics rows a and b (every
 * column but time); 1 when they have different steps or counts. */
static double rows_diff(const struct rows *a, const struct rows *b)
{
    if (a->n != b->n || a->n == 0)
        return 1;
    double m = 0;
    for (int i = 0; i < a->n; i++) {
        const struct nb_metrics *x = &a->r[i], *y = &b->r[i];
        double v[][2] = {{x->train_loss, y->train_loss}, {x->train_acc, y->train_acc},
                         {x->test_loss, y->test_loss},   {x->test_acc, y->test_acc},
                         {x->grad_norm, y->grad_norm},   {x->lr, y->lr}};
        if (x->step != y->step)
            return 1;
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
            double d = fabs(v[k][0] - v[k][1]) / fmax(fabs(v[k][1]), 1e-12);
            m = d > m ? d : m;
        }
    }
    return m;
}

/* spec on K thread ranks (rank 0's rows) vs ref in one process */
static void ranks_vs_one(const char *lab, const struct nb_train_spec *spec,
                         const struct nb_train_spec *ref, int K, const struct nb_dataset *tr,
                         const struct nb_dataset *te)
{
    struct rows one = {0}, ranks = {0};
    struct nb_train_hooks h = {.user = &one, .on_metrics = record_row};
    struct nb_train_result res;
    struct nb_error e;
    int rc = nb_train(ref, tr, te, &h, 0, &res, &e);
    struct rank_train jobs[4];
    void *args[4];
    for (int k = 0; k < K; k++) {
        jobs[k] = (struct rank_train){.spec = spec, .tr = tr, .te = te, .rows = &ranks};
        args[k] = &jobs[k];
    }
    if (tc_run(K, rank_train, args))
        tap_bail("cannot start %d threads", K);
    int bad = rc;
    for (int k = 0; k < K; k++)
        bad |= jobs[k].rc;
    double d = rows_diff(&ranks, &one);
    ok(!bad && d <= 1e-6, "%s: %d ranks' metrics = one process's to 1e-6 (%d rows, max "
       "relative difference %.2g)", lab, K, one.n, d);
}

static void test_ranks_training(void)
{
    struct nb_dataset tr, te;
    if (make_blobs(&tr, &te))
        tap_bail("synthetic blobs failed");
    tr.n = 104; /* 104 = 8 x 12 + 8: a last batch of 8, in slices of 2, 3, 3 */
    struct nb_train_spec spec, ref;
    nb_train_spec_default(&spec);
    spec.model.arch = NB_ARCH_MLP;
    spec.model.input = tr.shape;
    spec.model.outputs = 4;
    spec.model.n_widths = 2;
    spec.model.widths[0] = spec.model.widths[1] = 16;
    spec.model.act = NB_ACT_SIGMOID;
    spec.model.norm.type = NB_NORM_BATCH;
    spec.model.norm.sync = true;
    spec.batch = 12;
    spec.epochs = 2;
    spec.eval_every = 6;
    spec.drop_last = false;
    spec.sched.lr = 0.05;
    spec.seed = 3;
    for (int K = 2; K <= 3; K++) {
        spec.model.norm.devices = K;
        char lab[96];
        snprintf(lab, sizeof lab, "mlp, sync BN, devices = %d", K);
        ranks_vs_one(lab, &spec, &spec, K, &tr, &te);
    }
    /* dropout and noise: the ranks draw what one process draws */
    spec.model.dropout = 0.2;
    spec.model.norm.noisy = true;
    ranks_vs_one("mlp, noisy sync BN and dropout", &spec, &spec, 3, &tr, &te);
    spec.model.dropout = 0;
    spec.model.norm.noisy = false;
    /* local BN over 2 ranks = ghost BN over half batches */
    spec.model.norm.sync = false;
    spec.model.norm.devices = 2;
    spec.drop_last = true;
    ref = spec;
    ref.model.norm.devices = 1;
    ref.model.norm.norm_batch = 6;
    ranks_vs_one("mlp, local BN = ghost BN of 6", &spec, &ref, 2, &tr, &te);
    /* resnet-8 (norms over planes, shortcuts), sync BN */
    spec.model.arch = NB_ARCH_RESNET;
    spec.model.depth = 8;
    spec.model.norm.sync = true;
    spec.max_steps = 12;
    spec.eval_every = 4;
    ranks_vs_one("resnet-8, sync BN", &spec, &spec, 2, &tr, &te);
    /* group norm needs no exchange: any batch, devices left at 1 */
    spec.model.norm.type = NB_NORM_GROUP;
    spec.model.norm.devices = 1;
    spec.batch = 10;
    ranks_vs_one("resnet-8, group norm, batch 10", &spec, &spec, 3, &tr, &te);

    /* what cannot be split: refused before any exchange */
    struct nb_comm two = {.rank = 0, .size = 2};
    struct nb_train_result res;
    struct nb_error e;
    spec.model.norm.type = NB_NORM_BATCH;
    spec.model.norm.devices = 3;
    spec.batch = 12;
    int rc = nb_train_comm(&spec, &tr, NULL, &te, NULL, &two, 0, &res, &e);
    ok(rc == NB_EINVAL && strstr(e.msg, "devices = 3, but the run has 2 ranks"),
       "batch norm with devices 3 on 2 ranks is refused (%s)", e.msg);
    spec.model.norm.type = NB_NORM_GROUP;
    spec.batch = 1;
    rc = nb_train_comm(&spec, &tr, NULL, &te, NULL, &two, 0, &res, &e);
    ok(rc == NB_EINVAL && strstr(e.msg, "smaller than the 2 ranks"),
       "a batch of 1 on 2 ranks is refused (%s)", e.msg);
    spec.batch = 11;
    spec.drop_last = false;
    tr.n = 100; /* a last batch of 1 */
    rc = nb_train_comm(&spec, &tr, NULL, &te, NULL, &two, 0, &res, &e);
    ok(rc == NB_EINVAL && strstr(e.msg, "last batch of an epoch has 1 sample"),
       "a last batch of 1 on 2 ranks is refused (%s)", e.msg);
    tr.n = 512;
    nb_dataset_free(&tr);
    nb_dataset_free(&te);
}

/* nb_model_fold refuses what it cannot fold, with NB_EINVAL and why. */
static void test_fold_refusals(void)
{
    static const struct {
        enum nb_norm_type type;
        enum nb_norm_placement placement;
        bool noisy;
        const char *why, *label;
    } cases[] = {
        {NB_NORM_BATCH, NB_PLACE_POST, false, "placement pre", "batch norm at placement post"},
        {NB_NORM_GROUP, NB_PLACE_PRE, false, "cannot be folded", "group norm"},
        {NB_NORM_LAYER, NB_PLACE_PRE, false, "cannot be folded", "layer norm"},
        /* norm none at post with noise: noise layers after each ReLU */
        {NB_NORM_NONE, NB_PLACE_POST, true, "not a conv or linear layer",
         "noise without norm after the ReLU"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct nb_model_desc d;
        struct nb_model m, f;
        struct nb_error e;
        nb_model_desc_default(&d);
        d.input = (struct nb_shape){1, 8, 8};
        d.outputs = 4;
        d.norm.type = cases[k].type;
        d.norm.groups = 2;
        d.norm.noisy = cases[k].noisy;
        d.norm.noise_eval_mean = cases[k].noisy;
        d.placement = cases[k].placement;
        if (nb_model_build(&m, &d, 8, 5, &e))
            tap_bail("fold refusal model (%s): %s", cases[k].label, e.msg);
        nb_error_clear(&e);
        is_int(nb_model_fold(&m, &f, &e), NB_EINVAL, "fold refuses %s", cases[k].label);
        contains(e.msg, cases[k].why, "... saying why");
        nb_model_free(&f); /* zeroed or freed by the refusal: safe */
        nb_model_free(&m);
    }
}

int main(void)
{
    struct nb_model_desc d;
    struct nb_error e;

    test_conv_algo();
    test_ranks_training();

    /* --- builder shapes: the cnn of workloads.md */
    nb_model_desc_default(&d);
    struct nb_model m;
    if (nb_model_build(&m, &d, 4, 1, &e))
        tap_bail("cnn build: %s", e.msg);
    size_t want = 16 * 9 + 16 + 16 * 16 * 9 + 16 + 32 * 16 * 9 + 32 + 32 * 32 * 9 + 32 +
                  1568 * 128 + 128 + 128 * 10 + 10;
    is_int((long long)m.n_params, (long long)want, "cnn without norm: parameter count");
    is_int(m.layers[m.n_layers - 2].out.c, 10, "cnn ends in 10 logits");
    nb_model_free(&m);

    d.norm.type = NB_NORM_BATCH;
    if (nb_model_build(&m, &d, 4, 1, &e))
        tap_bail("cnn+bn build: %s", e.msg);
    want = 16 * 9 + 16 * 16 * 9 + 32 * 16 * 9 + 32 * 32 * 9 + 1568 * 128 + 128 * 10 + 10 +
           2 * (16 + 16 + 32 + 32 + 128);
    is_int((long long)m.n_params, (long long)want,
           "cnn with batch norm: no bias before a norm, 2C affine params per norm");
    nb_model_free(&m);

    d.bias_before_norm = true;
    if (nb_model_build(&m, &d, 4, 1, &e))
        tap_bail("cnn+bn+bias build: %s", e.msg);
    is_int((long long)m.n_params, (long long)(want + 16 + 16 + 32 + 32 + 128),
           "bias_before_norm keeps the biases");
    nb_model_free(&m);

    /* linear_norm = false: the convs keep their norms, the hidden linear
     * layer has none and keeps its bias */
    d.bias_before_norm = false;
    d.linear_norm = false;
    if (nb_model_build(&m, &d, 4, 1, &e))
        tap_bail("cnn+bn convs only build: %s", e.msg);
    is_int((long long)m.n_params, (long long)(want - 2 * 128 + 128),
           "linear_norm = false: no norm on the linear layer, its bias kept");
    int n_norms = 0;
    for (int i = 0; i < m.n_layers; i++)
        n_norms += strncmp(m.layers[i].name, "norm", 4) == 0;
    is_int(n_norms, 4, "linear_norm = false: one norm per conv, four in all");
    nb_model_free(&m);
    d.arch = NB_ARCH_MLP;
    d.input = (struct nb_shape){784, 1, 1};
    ok(nb_model_build(&m, &d, 4, 1, &e) == NB_EINVAL &&
           strstr(e.msg, "without any norm") != NULL,
       "linear_norm = false with a norm on an mlp is refused: %s", e.msg);
    nb_model_free(&m);
    d.linear_norm = true;

    /* instance norm on an mlp is refused with a clear message */
    nb_model_desc_default(&d);
    d.arch = NB_ARCH_MLP;
    d.input = (struct nb_shape){784, 1, 1};
    d.norm.type = NB_NORM_INSTANCE;
    int rc = nb_model_build(&m, &d, 4, 1, &e);
    ok(rc == NB_EINVAL, "mlp with instance norm is refused");
    contains(e.msg, "instance norm", "... and the message says why");
    nb_model_free(&m);

    /* resnet depth check */
    nb_model_desc_default(&d);
    d.arch = NB_ARCH_RESNET;
    d.depth = 10;
    rc = nb_model_build(&m, &d, 4, 1, &e);
    ok(rc == NB_EINVAL, "resnet depth 10 (not 6n+2) is refused");
    contains(e.msg, "6n+2", "... naming the rule");
    nb_model_free(&m);

    /* values outside the enums are refused, not read as a default */
    nb_model_desc_default(&d);
    d.init = NB_INIT_COUNT;
    rc = nb_model_build(&m, &d, 4, 1, &e);
    ok(rc == NB_EINVAL, "init scheme out of range is refused (not Kaiming)");
    contains(e.msg, "unknown init scheme", "... naming it");
    nb_model_free(&m);
    nb_model_desc_default(&d);
    d.arch = NB_ARCH_COUNT;
    rc = nb_model_build(&m, &d, 4, 1, &e);
    ok(rc == NB_EINVAL, "architecture out of range is refused");
    contains(e.msg, "unknown architecture", "... naming it");
    nb_model_free(&m);

    /* --- the initial weights do not depend on the batch size */
    nb_model_desc_default(&d);
    d.norm.type = NB_NORM_BATCH;
    struct nb_model m2;
    nb_model_build(&m, &d, 2, 42, &e);
    nb_model_build(&m2, &d, 64, 42, &e);
    ok(m.params.count == m2.params.count &&
           memcmp(m.params.data, m2.params.data, m.params.count * sizeof(float)) == 0,
       "same seed, batch 2 vs 64: identical initial weights");
    /* Kaiming normal: std of conv2 weights ~ sqrt(2 / 144) */
    {
        const struct nb_param *w = &m.layers[3].params[0];
        double s = 0;
        for (size_t k = 0; k < w->count; k++)
            s += (double)w->value[k] * w->value[k];
        is_close(sqrt(s / (double)w->count), sqrt(2.0 / 144.0), 0, 0.1,
                 "Kaiming-normal std of %s (fan_in 144)", m.layers[3].name);
    }
    nb_model_free(&m);
    nb_model_free(&m2);

    /* --- whole-model gradients, including residual branches */
    nb_model_desc_default(&d);
    d.arch = NB_ARCH_RESNET;
    d.depth = 8;
    d.input = (struct nb_shape){2, 8, 8};
    d.outputs = 3;
    d.act = NB_ACT_SIGMOID; /* smooth: no ReLU kinks for the differences to straddle */
    check_model_grad(&d, 2, 7, "resnet-8 (sigmoid) without norm");
    d.norm.type = NB_NORM_BATCH;
    check_model_grad(&d, 3, 7, "resnet-8 (sigmoid) with batch norm");
    d.placement = NB_PLACE_POST;
    check_model_grad(&d, 3, 7, "resnet-8 (sigmoid) with batch norm, post placement");
    nb_model_desc_default(&d);
    d.arch = NB_ARCH_MLP;
    d.input = (struct nb_shape){5, 1, 1};
    d.outputs = 3;
    d.n_widths = 2;
    d.widths[0] = 6;
    d.widths[1] = 4;
    d.act = NB_ACT_SIGMOID;
    d.norm.type = NB_NORM_LAYER;
    check_model_grad(&d, 4, 1, "mlp sigmoid with layer norm");
    nb_model_desc_default(&d);
    d.arch = NB_ARCH_DLN;
    d.input = (struct nb_shape){4, 1, 1};
    d.outputs = 4;
    d.dln_layers = 4;
    d.loss = NB_LOSS_MSE;
    d.norm.type = NB_NORM_BATCH;
    check_model_grad(&d, 5, 1, "deep linear net with batch norm, mse");

    /* --- a tiny net learns, deterministically */
    struct nb_dataset tr, te;
    if (make_blobs(&tr, &te))
        tap_bail("synthetic blobs failed");
    struct nb_train_spec spec;
    nb_train_spec_default(&spec);
    spec.model.arch = NB_ARCH_MLP;
    spec.model.input = tr.shape;
    spec.model.outputs = 4;
    spec.model.n_widths = 1;
    spec.model.widths[0] = 32;
    spec.model.norm.type = NB_NORM_BATCH;
    spec.batch = 16;
    spec.epochs = 3;
    spec.eval_every = 8;
    spec.eval_every_epoch = false;
    spec.sched.lr = 0.05;
    spec.seed = 7;
    spec.drop_last = false;    /* the last-batch and divergence tests below */
    spec.diverge_loss = 1e6;   /* rely on these two */
    /* tp, tt live as long as h: the later nb_train calls still record into tt */
    struct trace t1 = {0}, t2 = {0}, tp = {0}, tt = {0};
    struct nb_train_hooks h = {.user = &t1, .on_metrics = record};
    struct nb_train_result res;
    rc = nb_train(&spec, &tr, &te, &h, 0.9, &res, &e);
    ok(rc == 0 && res.status == NB_TRAIN_DONE, "tiny mlp+bn trains on blobs");
    ok(t1.n >= 3 && t1.loss[t1.n - 1] < t1.loss[0] / 4,
       "training loss falls by 4x in %ld steps (%.4f -> %.4f)", res.steps, t1.loss[0],
       t1.n ? t1.loss[t1.n - 1] : NAN);
    ok(res.last.test_acc > 0.9, "test accuracy above 90%% (%.3f)", res.last.test_acc);
    h.user = &t2;
    nb_train(&spec, &tr, &te, &h, 0.9, &res, &e);
    ok(t1.n == t2.n && memcmp(t1.loss, t2.loss, sizeof t1.loss) == 0,
       "same seed: bit-identical losses twice");

    /* precise / target population statistics change the evaluation only */
    {
        double test_ema = res.last.test_loss, test_p, test_t;
        spec.eval_stats = NB_EVAL_STATS_PRECISE;
        spec.precise_samples = 256;
        h.user = &tp;
        nb_train(&spec, &tr, &te, &h, 0.9, &res, &e);
        test_p = res.last.test_loss;
        spec.eval_stats = NB_EVAL_STATS_TARGET;
        h.user = &tt;
        nb_train(&spec, &tr, &te, &h, 0.9, &res, &e);
        test_t = res.last.test_loss;
        spec.eval_stats = NB_EVAL_STATS_EMA;
        ok(tp.n == t1.n && memcmp(tp.loss, t1.loss, sizeof tp.loss) == 0 &&
               tt.n == t1.n && memcmp(tt.loss, t1.loss, sizeof tt.loss) == 0,
           "eval_stats precise / target: training losses bit-identical to ema");
        ok(test_p != test_ema && test_t != test_ema && test_p != test_t,
           "... while the test losses differ (ema %.6f, precise %.6f, target %.6f)",
           test_ema, test_p, test_t);
    }

    /* target statistics on a test set smaller than the batch cannot be
     * recomputed (the recomputation takes whole batches): the run fails
     * and says why, instead of evaluating with the EMA statistics */
    {
        struct nb_dataset small = te;
        small.n = (size_t)spec.batch - 1;
        struct trace ts = {0};
        spec.eval_stats = NB_EVAL_STATS_TARGET;
        h.user = &ts;
        nb_error_clear(&e);
        rc = nb_train(&spec, &tr, &small, &h, 0, &res, &e);
        spec.eval_stats = NB_EVAL_STATS_EMA;
        ok(rc == NB_EINVAL, "target BN on a test set smaller than the batch: the run fails");
        contains(e.msg, "target BN: cannot recompute the population statistics",
                 "... saying what failed");
        contains(e.msg, "leaves no batch", "... and why (the loader's reason)");
        is_int(ts.n, 0, "... before any metrics row is written");
        h.user = &tt;
    }

    /* a batch-norm run with a final batch of one sample is refused */
    spec.batch = tr.n - 1 > 0 ? 511 : 2;
    rc = nb_train(&spec, &tr, &te, &h, 0, &res, &e);
    ok(rc == NB_EINVAL, "batch norm with a last batch of 1 sample is refused");
    contains(e.hint, "drop_last", "... with a hint to drop the last batch");

    /* a diverging run ends with status diverged */
    spec.batch = 16;
    spec.model.norm.type = NB_NORM_NONE;
    spec.sched.lr = 1e4;
    rc = nb_train(&spec, &tr, &te, &h, 0, &res, &e);
    ok(rc == 0 && res.status == NB_TRAIN_DIVERGED, "lr 1e4 without norm: status diverged");

    /* --- folding an eval-mode BN gives the same logits */
    nb_model_desc_default(&d);
    d.input = (struct nb_shape){1, 8, 8};
    d.norm.type = NB_NORM_BATCH;
    spec.model = d;
    spec.model.outputs = 4;
    if (nb_model_build(&m, &spec.model, 8, 5, &e))
        tap_bail("fold model: %s", e.msg);
    {
        gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
        m.ctx.rng_dropout = m.ctx.rng_noise = m.ctx.rng_probe = r;
        float x[8 * 64];
        int y[8] = {0, 1, 2, 3, 0, 1, 2, 3};
        /* a few train steps' worth of running statistics, random affine */
        for (int k = 0; k < 5; k++) {
            fill(x, 8 * 64, 100 + k);
            nb_model_forward(&m, x, y, NULL, 8, NB_TRAIN);
        }
        for (int i = 0; i < m.n_layers; i++)
            if (m.layers[i].ops == &nb_norm_ops)
                for (int p = 0; p < m.layers[i].n_params; p++)
                    fill(m.layers[i].params[p].value, m.layers[i].params[p].count, 200 + i);
        struct nb_model f;
        int norms = 0;
        for (int i = 0; i < m.n_layers; i++)
            norms += m.layers[i].ops == &nb_norm_ops;
        rc = nb_model_fold(&m, &f, &e);
        ok(norms > 0 && rc == norms, "fold conv->BN net: returns its %d norm layers (%d)", norms,
           rc);
        is_int(f.n_layers, m.n_layers - norms, "... and the folded net has no norm layer");
        fill(x, 8 * 64, 999);
        nb_model_forward(&m, x, y, NULL, 8, NB_EVAL);
        float z1[32];
        memcpy(z1, nb_model_logits(&m), sizeof z1);
        nb_model_forward(&f, x, y, NULL, 8, NB_EVAL);
        const float *z2 = nb_model_logits(&f);
        double md = 0;
        for (int i = 0; i < 32; i++)
            md = fmax(md, fabs((double)z1[i] - z2[i]));
        ok(md < 1e-5, "folded net gives the same eval logits (max abs diff %.2g)", md);
        nb_model_free(&f);
        gsl_rng_free(r);
    }
    nb_model_free(&m);
    test_fold_refusals();
    nb_dataset_free(&tr);
    nb_dataset_free(&te);
    return tap_exit();
}
