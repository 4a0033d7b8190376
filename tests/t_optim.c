/* tests/t_optim.c - SGD (momentum, Nesterov, weight decay, norm/bias
 * exclusion, clipping) against hand-computed steps; LR schedules. */
#include <math.h>
#include <string.h>

#include "optim/optim.h"
#include "tap.h"

/* A tiny model: mlp 3 -> 2 -> 2 with batch norm, so there are weight,
 * bias and norm parameters. */
static void build(struct nb_model *m)
{
    struct nb_model_desc d;
    struct nb_error e;
    nb_model_desc_default(&d);
    d.arch = NB_ARCH_MLP;
    d.input = (struct nb_shape){3, 1, 1};
    d.outputs = 2;
    d.n_widths = 1;
    d.widths[0] = 2;
    d.norm.type = NB_NORM_BATCH;
    if (nb_model_build(m, &d, 4, 1, &e))
        tap_bail("model build failed: %s", e.msg);
}

/* Reference: PyTorch's SGD on one scalar, three steps, gradient g(w). */
static double ref_sgd(double w, double lr, double mom, double wd, int nesterov,
                      int steps, double gscale)
{
    double buf = 0;
    for (int t = 0; t < steps; t++) {
        double g = gscale * (t + 1) + wd * w; /* grad = gscale*(t+1) */
        if (mom != 0) {
            buf = t == 0 ? g : mom * buf + g;
            g = nesterov ? g + mom * buf : buf;
        }
        w -= lr * g;
    }
    return w;
}

static void check_variant(double mom, int nesterov, double wd, int decay_nb)
{
    struct nb_model m;
    build(&m);
    struct nb_sgd_opts o;
    nb_sgd_opts_default(&o);
    o.momentum = mom;
    o.nesterov = nesterov;
    o.weight_decay = wd;
    o.decay_norm_and_bias = decay_nb;
    struct nb_sgd s;
    nb_sgd_init(&s, &o);
    float w0[64];
    size_t np = m.params.count;
    memcpy(w0, m.params.data, np * sizeof(float));
    for (int t = 0; t < 3; t++) {
        for (size_t i = 0; i < np; i++)
            m.grads.data[i] = (float)(0.1 * (double)(i + 1) * (t + 1));
        nb_sgd_step(&s, &m, 0.05);
    }
    double worst = 0;
    for (int l = 0; l < m.n_layers; l++)
        for (int p = 0; p < m.layers[l].n_params; p++) {
            const struct nb_param *pp = &m.layers[l].params[p];
            int decays = (pp->flags & NB_PARAM_WEIGHT) || decay_nb;
            for (size_t k = 0; k < pp->count; k++) {
                size_t i = pp->offset + k;
                double want = ref_sgd(w0[i], 0.05, mom, decays ? wd : 0, nesterov, 3,
                                      0.1 * (double)(i + 1));
                double d = fabs(want - m.params.data[i]);
                if (d > worst)
                    worst = d;
            }
        }
    ok(worst < 1e-6, "sgd momentum %.1f nesterov %d wd %.2f decay_norm_and_bias %d "
                     "matches PyTorch's update over 3 steps (max diff %.2g)",
       mom, nesterov, wd, decay_nb, worst);
    nb_model_free(&m);
}

int main(void)
{
    check_variant(0.0, 0, 0.0, 0);
    check_variant(0.9, 0, 0.0, 0);
    check_variant(0.9, 1, 0.0, 0);
    check_variant(0.9, 0, 0.01, 0);
    check_variant(0.9, 1, 0.01, 1);

    /* weight decay really is excluded from norm and bias parameters */
    {
        struct nb_model m;
        build(&m);
        struct nb_sgd_opts o;
        nb_sgd_opts_default(&o);
        o.momentum = 0;
        o.weight_decay = 0.5;
        struct nb_sgd s;
        nb_sgd_init(&s, &o);
        float before[64];
        memcpy(before, m.params.data, m.params.count * sizeof(float));
        memset(m.grads.data, 0, m.grads.count * sizeof(float));
        nb_sgd_step(&s, &m, 1.0);
        int moved_w = 0, moved_other = 0;
        for (int l = 0; l < m.n_layers; l++)
            for (int p = 0; p < m.layers[l].n_params; p++) {
                const struct nb_param *pp = &m.layers[l].params[p];
                for (size_t k = 0; k < pp->count; k++) {
                    int moved = m.params.data[pp->offset + k] != before[pp->offset + k];
                    if (pp->flags & NB_PARAM_WEIGHT)
                        moved_w += moved;
                    else
                        moved_other += moved;
                }
            }
        ok(moved_w > 0 && moved_other == 0,
           "weight decay moves weights (%d) but not biases/norm params (%d)", moved_w,
           moved_other);
        nb_model_free(&m);
    }

    /* clipping: the gradient norm is scaled to clip_norm */
    {
        struct nb_model m;
        build(&m);
        struct nb_sgd_opts o;
        nb_sgd_opts_default(&o);
        o.momentum = 0;
        o.clip_norm = 1.0;
        struct nb_sgd s;
        nb_sgd_init(&s, &o);
        for (size_t i = 0; i < m.grads.count; i++)
            m.grads.data[i] = 3.0f;
        float w0[64];
        memcpy(w0, m.params.data, m.params.count * sizeof(float));
        double before = nb_sgd_step(&s, &m, 0.1);
        is_close(before, 3.0 * sqrt((double)m.grads.count), 1e-5, 1e-6,
                 "sgd step returns the norm before clipping");
        /* plain SGD moved the weights by lr times the clipped gradient */
        double ss = 0;
        for (size_t i = 0; i < m.params.count; i++)
            ss += ((double)w0[i] - m.params.data[i]) * ((double)w0[i] - m.params.data[i]);
        is_close(sqrt(ss) / 0.1, 1.0, 1e-5, 1e-5, "the step used a gradient of norm clip_norm");
        nb_model_free(&m);
    }

    /* nb_sgd_step consumes the gradient: every gradient is 0 after it and
     * grads_zero says so, so the next backward skips its clearing pass;
     * that backward gives the bytes of one after the clearing pass */
    {
        struct nb_model m;
        build(&m);
        struct nb_sgd_opts o;
        nb_sgd_opts_default(&o);
        struct nb_sgd s;
        nb_sgd_init(&s, &o);
        float x[12];
        int y[4] = {0, 1, 1, 0};
        for (int i = 0; i < 12; i++)
            x[i] = (float)sin(1.3 * i);
        nb_model_forward(&m, x, y, NULL, 4, NB_TRAIN);
        nb_model_backward(&m, 4);
        ok(!m.grads_zero && nb_grad_norm(&m) > 0, "a backward leaves a gradient");
        nb_sgd_step(&s, &m, 0.1);
        ok(m.grads_zero && nb_grad_norm(&m) == 0, "nb_sgd_step leaves every gradient 0 and says so");
        float g1[64], g2[64];
        nb_model_forward(&m, x, y, NULL, 4, NB_TRAIN);
        nb_model_backward(&m, 4);
        memcpy(g1, m.grads.data, m.grads.count * sizeof(float));
        for (size_t i = 0; i < m.grads.count; i++)
            m.grads.data[i] = 123.0f;
        nb_model_forward(&m, x, y, NULL, 4, NB_TRAIN);
        nb_model_backward(&m, 4);
        memcpy(g2, m.grads.data, m.grads.count * sizeof(float));
        ok(m.grads.count <= 64 && !memcmp(g1, g2, m.grads.count * sizeof(float)) &&
               nb_grad_norm(&m) > 0,
           "the backward after a step: the bytes of one after a clearing pass");
        nb_model_free(&m);
    }

    /* without clipping the update's own pass takes the norm: the same as
     * nb_grad_norm's pass before it, to double rounding, with momentum
     * (first step and later) and without */
    for (int mom = 0; mom < 2; mom++) {
        struct nb_model m;
        build(&m);
        struct nb_sgd_opts o;
        nb_sgd_opts_default(&o);
        o.momentum = mom ? 0.9 : 0.0;
        struct nb_sgd s;
        nb_sgd_init(&s, &o);
        bool same = true;
        double worst = 0;
        for (int step = 0; step < 3; step++) {
            for (size_t i = 0; i < m.grads.count; i++)
                m.grads.data[i] = (float)sin(0.7 * (double)i + step) * (float)(1 + i % 5);
            double want = nb_grad_norm(&m), got = nb_sgd_step(&s, &m, 0.1);
            worst = fmax(worst, fabs(got - want) / want);
            same = same && fabs(got - want) <= 1e-12 * want;
        }
        ok(same, "momentum %g: the norm nb_sgd_step returns = nb_grad_norm before it "
           "(relative %.2g, 1e-12)", o.momentum, worst);
        nb_model_free(&m);
    }

    /* schedules */
    struct nb_schedule sc;
    nb_schedule_default(&sc, 0.1);
    sc.steps_per_epoch = 10;
    is_close(nb_schedule_lr(&sc, 55), 0.1, 0, 1e-12, "constant schedule");
    sc.kind = NB_SCHED_STEP;
    sc.step_size = 2;
    sc.gamma = 0.5;
    is_close(nb_schedule_lr(&sc, 19), 0.1, 0, 1e-12, "step schedule before the first drop");
    is_close(nb_schedule_lr(&sc, 45), 0.025, 0, 1e-12, "step schedule after two drops");
    sc.kind = NB_SCHED_MULTISTEP;
    sc.milestones[0] = 1;
    sc.milestones[1] = 3;
    sc.n_milestones = 2;
    sc.gamma = 0.1;
    is_close(nb_schedule_lr(&sc, 15), 0.01, 0, 1e-12, "multistep after the first milestone");
    is_close(nb_schedule_lr(&sc, 30), 0.001, 0, 1e-12, "multistep after the second milestone");
    sc.kind = NB_SCHED_COSINE;
    sc.total_steps = 100;
    sc.eta_min = 0;
    is_close(nb_schedule_lr(&sc, 50), 0.05, 0, 1e-12, "cosine at half way");
    is_close(nb_schedule_lr(&sc, 100), 0.0, 1e-15, 0, "cosine at the end");
    sc.kind = NB_SCHED_CONSTANT;
    sc.warmup_steps = 10;
    sc.warmup_start = 0.1;
    is_close(nb_schedule_lr(&sc, 0), 0.01, 0, 1e-12, "warm-up starts at warmup_start * lr");
    is_close(nb_schedule_lr(&sc, 5), 0.055, 0, 1e-12, "warm-up is linear");
    is_close(nb_schedule_lr(&sc, 10), 0.1, 0, 1e-12, "warm-up ends at lr");
    return tap_exit();
}
