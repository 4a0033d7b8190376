/* src/optim/optim.c - see optim.h. */
#include "optim/optim.h"

#include "core/vec.h" /* NB_VEC_AVX2 */

#include <math.h>
#include <string.h>

void nb_sgd_opts_default(struct nb_sgd_opts *o)
{
    struct nb_optim_opts d;
    nb_optim_opts_default(&d);
    *o = d.sgd;
}

void nb_sgd_init(struct nb_sgd *s, const struct nb_sgd_opts *o)
{
    s->o = *o;
    s->steps = 0;
}

double nb_grad_norm(const struct nb_model *m)
{
    /* Eight independent double accumulators: a single running sum is
     * bound by the latency of one add per element (a third of a batch-2
     * step of the cnn); the order is fixed, so the result is still
     * deterministic. */
    const float *g = m->grads.data;
    size_t n = m->grads.count, i = 0;
    double acc[8] = {0};
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += (double)g[i + k] * g[i + k];
    for (; i < n; i++)
        acc[0] += (double)g[i] * g[i];
    double ss = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    return sqrt(ss);
}

/* The update of one contiguous parameter block.  One loop per case, so
 * each is branch-free, in chunks of 8 with a constant trip count so that
 * GCC's -O2 (very cheap cost model) vectorizes them.  Each gradient is
 * zeroed once used (nb_sgd_step consumes the gradient). */
#define SGD_LOOP(BODY)                                                      \
    do {                                                                    \
        size_t i = 0;                                                       \
        for (; i + 8 <= n; i += 8)                                          \
            for (size_t j = i; j < i + 8; j++) {                            \
                BODY;                                                       \
                grad[j] = 0.0f;                                             \
            }                                                               \
        for (size_t j = i; j < n; j++) {                                    \
            BODY;                                                           \
            grad[j] = 0.0f;                                                 \
        }                                                                   \
    } while (0)

/* With acc not NULL, the same update also adds each gradient's square to
 * acc[k] (k = its index mod 8 within the block, in double): the gradient
 * norm in the update's own pass over the gradients (nb_sgd_step without
 * clipping) instead of a pass of its own.  The sums run in a local copy
 * (registers: acc itself would go through memory every element). */
#define SGD_NORM_LOOP(BODY) SGD_LOOP(a8[j - i] += (double)grad[j] * grad[j]; BODY)

/* sgd_block_NAME, compiled for the build's target and (x86-64) for AVX2,
 * picked per call: the same bytes (the build does not contract a * b + c
 * into FMAs, -std=c11, and each sum keeps its lane and order). */
#define SGD_BLOCK(NAME, ATTR)                                                            \
    static ATTR void sgd_block_##NAME(float *restrict w, float *restrict grad,           \
                                      float *restrict buf, size_t n, float lr, float wd, \
                                      float mom, bool nesterov, bool first,              \
                                      double *restrict acc)                              \
    {                                                                                    \
        double a8[8] = {0};                                                              \
        if (acc) {                                                                       \
            for (int k = 0; k < 8; k++)                                                  \
                a8[k] = acc[k];                                                          \
            SGD_CASES(SGD_NORM_LOOP);                                                    \
            for (int k = 0; k < 8; k++)                                                  \
                acc[k] = a8[k];                                                          \
        } else {                                                                         \
            SGD_CASES(SGD_LOOP);                                                         \
        }                                                                                \
    }
#define SGD_CASES(LOOP)                                                                  \
    do {                                                                                 \
        if (mom == 0.0f) {                                                               \
            LOOP(w[j] -= lr * (grad[j] + wd * w[j]));                                    \
        } else if (first) { /* buf = g */                                                \
            float m2 = nesterov ? mom : 0.0f; /* PyTorch: g + mom * buf, buf = g */      \
            LOOP(float g = grad[j] + wd * w[j]; buf[j] = g; w[j] -= lr * (g + m2 * g));  \
        } else if (nesterov) { /* buf = mom buf + g; step g + mom buf */                 \
            LOOP(float g = grad[j] + wd * w[j]; float b = mom * buf[j] + g; buf[j] = b;  \
                 w[j] -= lr * (g + mom * b));                                            \
        } else { /* buf = mom buf + g; step buf */                                       \
            LOOP(float b = mom * buf[j] + (grad[j] + wd * w[j]); buf[j] = b;             \
                 w[j] -= lr * b);                                                        \
        }                                                                                \
    } while (0)
SGD_BLOCK(generic, )
#if NB_VEC_AVX2
SGD_BLOCK(avx2, __attribute__((target("avx2"))))
#endif
#define sgd_block NB_VEC_PICK(sgd_block)
#undef SGD_CASES
#undef SGD_NORM_LOOP
#undef SGD_LOOP

double nb_sgd_step(struct nb_sgd *s, struct nb_model *m, double lr)
{
    /* clipping needs the norm before the update; otherwise the update's
     * pass over the gradients takes it (acc) */
    const bool clip = s->o.clip_norm > 0;
    double norm = clip ? nb_grad_norm(m) : 0.0;
    double acc[8] = {0};
    if (clip) {
        /* torch.nn.utils.clip_grad_norm_: scale by max/(norm + 1e-6) */
        double coef = s->o.clip_norm / (norm + 1e-6);
        if (coef < 1.0)
            for (size_t i = 0; i < m->grads.count; i++)
                m->grads.data[i] = (float)(m->grads.data[i] * coef);
    }
    bool first = s->steps == 0;
    for (int i = 0; i < m->n_layers; i++) {
        const struct nb_layer *l = &m->layers[i];
        for (int p = 0; p < l->n_params; p++) {
            const struct nb_param *pp = &l->params[p];
            bool decay = (pp->flags & NB_PARAM_WEIGHT) || s->o.decay_norm_and_bias;
            size_t off = pp->offset;
            sgd_block(m->params.data + off, m->grads.data + off, m->opt.data + off,
                      pp->count, (float)lr, decay ? (float)s->o.weight_decay : 0.0f,
                      (float)s->o.momentum, s->o.nesterov, first, clip ? NULL : acc);
        }
    }
    s->steps++;
    m->grads_zero = true;
    if (!clip)
        norm = sqrt(((acc[0] + acc[1]) + (acc[2] + acc[3])) +
                    ((acc[4] + acc[5]) + (acc[6] + acc[7])));
    return norm;
}

const char *const nb_sched_names[NB_SCHED_COUNT + 1] = {
    [NB_SCHED_CONSTANT] = "constant",
    [NB_SCHED_STEP] = "step",
    [NB_SCHED_MULTISTEP] = "multistep",
    [NB_SCHED_COSINE] = "cosine",
    [NB_SCHED_COUNT] = NULL,
};

const char *nb_sched_name(enum nb_sched_kind k)
{
    return (k >= 0 && k < NB_SCHED_COUNT) ? nb_sched_names[k] : "?";
}

void nb_schedule_default(struct nb_schedule *s, double lr)
{
    struct nb_optim_opts d;
    nb_optim_opts_default(&d);
    *s = d.sched;
    s->lr = lr;
}

#define INF HUGE_VAL
#define AT(m) NB_KEY_AT(struct nb_optim_opts, m)
#define AT_ARRAY(m, n) NB_KEY_AT_ARRAY(struct nb_optim_opts, m, n)
const struct nb_key nb_optim_keys[] = {
    { NB_K_FLT("optim", "lr", "0.1", 0, INF, NB_KF_MIN_EXCL,
               "learning rate (peak value with warmup and schedules)"),
      AT(sched.lr) },
    { NB_K_FLT("optim", "momentum", "0.9", 0, 1, NB_KF_MAX_EXCL, "SGD momentum; 0 = plain SGD"),
      AT(sgd.momentum) },
    { NB_K_BOOL("optim", "nesterov", "false", "Nesterov momentum"), AT(sgd.nesterov) },
    { NB_K_FLT("optim", "weight_decay", "0", 0, INF, 0, "L2 weight decay"), AT(sgd.weight_decay) },
    { NB_K_BOOL("optim", "decay_norm_and_bias", "false",
                "apply weight decay to norm gains/biases and layer biases too"),
      AT(sgd.decay_norm_and_bias) },
    { NB_K_FLT("optim", "clip_norm", "0", 0, INF, 0,
               "clip the global gradient norm to this; 0 = off"),
      AT(sgd.clip_norm) },
    { NB_K_ENUM("optim", "schedule", "constant", nb_sched_names,
                "learning-rate schedule after the warmup"),
      AT(sched.kind) },
    { NB_K_INT("optim", "step_size", "30", 1, 1e9, 0, "schedule = step: epochs between decays"),
      AT(sched.step_size) },
    { NB_K_FLT("optim", "gamma", "0.1", 0, 1, NB_KF_MIN_EXCL, "step and multistep: decay factor"),
      AT(sched.gamma) },
    { NB_K_ILIST("optim", "milestones", "", 1, 1e9, NB_KF_INCREASING,
                 "schedule = multistep: epochs of the decays, space-separated "
                 "in one value"),
      AT_ARRAY(sched.milestones, sched.n_milestones) },
    { NB_K_INT("optim", "warmup_steps", "0", 0, 1e12, 0, "linear warmup steps; 0 = none"),
      AT(sched.warmup_steps) },
    { NB_K_FLT("optim", "warmup_start", "0", 0, 1, 0,
               "learning-rate factor at step 0 of the warmup"),
      AT(sched.warmup_start) },
};
#undef AT
#undef AT_ARRAY
const int nb_optim_n_keys = (int)(sizeof nb_optim_keys / sizeof nb_optim_keys[0]);

void nb_optim_opts_default(struct nb_optim_opts *o)
{
    memset(o, 0, sizeof *o);
    o->sched.steps_per_epoch = 1;
    nb_keys_default(nb_optim_keys, nb_optim_n_keys, o);
}

double nb_schedule_lr(const struct nb_schedule *s, long step)
{
    double lr = s->lr;
    long spe = s->steps_per_epoch > 0 ? s->steps_per_epoch : 1;
    long epoch = step / spe;
    switch (s->kind) {
    case NB_SCHED_STEP:
        if (s->step_size > 0)
            lr *= pow(s->gamma, (double)(epoch / s->step_size));
        break;
    case NB_SCHED_MULTISTEP: {
        int passed = 0;
        for (int i = 0; i < s->n_milestones; i++)
            passed += epoch >= s->milestones[i];
        lr *= pow(s->gamma, passed);
        break;
    }
    case NB_SCHED_COSINE:
        if (s->total_steps > 0) {
            double t = (double)(step < s->total_steps ? step : s->total_steps);
            lr = s->eta_min + (s->lr - s->eta_min) * 0.5 *
                                  (1.0 + cos(M_PI * t / (double)s->total_steps));
        }
        break;
    case NB_SCHED_CONSTANT:
        break;
    case NB_SCHED_COUNT:
        NB_ASSERT(!"not a schedule");
        break;
    }
    if (s->warmup_steps > 0 && step < s->warmup_steps)
        lr *= s->warmup_start + (1.0 - s->warmup_start) * (double)step / (double)s->warmup_steps;
    return lr;
}
