/* src/optim/optim.h - SGD in PyTorch's formulation, gradient clipping and
 * learning-rate schedules, over the model's flat arenas.
 *
 * PyTorch's torch.optim.SGD (dampening 0):
 *   g = grad + wd * w                     (wd only where decay applies)
 *   buf = g                  on the first step,
 *   buf = momentum * buf + g afterwards
 *   g = g + momentum * buf   (Nesterov)  or  g = buf
 *   w = w - lr * g */
#ifndef NB_OPTIM_OPTIM_H
#define NB_OPTIM_OPTIM_H

#include <stdbool.h>

#include "core/opt.h"
#include "model/model.h"

struct nb_sgd_opts {
    double momentum;
    bool nesterov;
    double weight_decay;
    bool decay_norm_and_bias; /* false: no decay on biases and norm params */
    double clip_norm;         /* > 0: clip the global gradient l2 norm */
};

/* The SGD part of nb_optim_opts_default. */
void nb_sgd_opts_default(struct nb_sgd_opts *o);

struct nb_sgd {
    struct nb_sgd_opts o;
    long steps;
};

void nb_sgd_init(struct nb_sgd *s, const struct nb_sgd_opts *o);

/* l2 norm of the whole gradient arena (double accumulation). */
double nb_grad_norm(const struct nb_model *m);

/* One update of m->params from m->grads at learning rate lr, using
 * m->opt as the momentum buffer.  Clips first when clip_norm > 0 (the
 * gradient arena is scaled in place).  Consumes the gradient: leaves
 * every gradient 0 (in the update's own pass) and sets m->grads_zero, so
 * the next backward skips its clearing pass.  Returns the gradient norm
 * before clipping. */
double nb_sgd_step(struct nb_sgd *s, struct nb_model *m, double lr);

enum nb_sched_kind {
    NB_SCHED_CONSTANT = 0,
    NB_SCHED_STEP,      /* lr * gamma^floor(epoch / step_size) */
    NB_SCHED_MULTISTEP, /* lr * gamma^(milestones passed) */
    NB_SCHED_COSINE,    /* eta_min + (lr - eta_min)(1 + cos(pi t / T)) / 2 */
    NB_SCHED_COUNT
};

/* Names by enumerator, NULL-terminated: the config key optim.schedule takes
 * its values from this table (keys.c), and the enum maps by index. */
extern const char *const nb_sched_names[];

#define NB_MAX_MILESTONES 16

struct nb_schedule {
    enum nb_sched_kind kind;
    double lr;          /* base learning rate */
    double gamma;
    int step_size;      /* epochs */
    int milestones[NB_MAX_MILESTONES]; /* epochs, increasing */
    int n_milestones;
    double eta_min;
    long total_steps;   /* cosine horizon */
    long steps_per_epoch;
    long warmup_steps;  /* linear warm-up from warmup_start * lr */
    double warmup_start;
};

/* The schedule part of nb_optim_opts_default, with learning rate lr. */
void nb_schedule_default(struct nb_schedule *s, double lr);

/* Learning rate for the update with index step (0-based). */
double nb_schedule_lr(const struct nb_schedule *s, long step);

const char *nb_sched_name(enum nb_sched_kind k);

/* The [optim] section: SGD and its learning-rate schedule. */
struct nb_optim_opts {
    struct nb_sgd_opts sgd;
    struct nb_schedule sched;
};

/* The [optim] config keys of struct nb_optim_opts (core/opt.h), with their
 * defaults: lr 0.1, momentum 0.9, no Nesterov, no weight decay (and none
 * on norm parameters and biases when there is), no clipping, a constant
 * schedule (step: every 30 epochs, gamma 0.1), no warmup. */
extern const struct nb_key nb_optim_keys[];
extern const int nb_optim_n_keys;

/* Fills o with nb_optim_keys' defaults (steps_per_epoch 1). */
void nb_optim_opts_default(struct nb_optim_opts *o);

#endif
