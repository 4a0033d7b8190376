/* src/run/train.c - see train.h. */
#include "run/train.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/comm.h"
#include "core/rng.h"

/* Gradients summed over the ranks at most this many doubles at a time in
 * all (the workspace: 32 MiB), and at least GRAD_CHUNK_MIN per rank. */
#define GRAD_WORK ((size_t)1 << 22)
#define GRAD_CHUNK_MIN ((size_t)1 << 16)

#define MCOL(f, is_long, val) {#f, offsetof(struct nb_metrics, f), is_long, val}
const struct nb_metrics_col nb_metrics_cols[NB_METRICS_N_COLS] = {
    MCOL(step, true, false),        MCOL(epoch, false, false),
    MCOL(lr, false, false),         MCOL(train_loss, false, false),
    MCOL(train_acc, false, false),  MCOL(test_loss, false, false),
    MCOL(test_acc, false, false),   MCOL(grad_norm, false, false),
    MCOL(val_loss, false, true),    MCOL(val_acc, false, true)};
#undef MCOL

const char *const nb_eval_stats_names[NB_EVAL_STATS_COUNT + 1] = {
    [NB_EVAL_STATS_EMA] = "ema", [NB_EVAL_STATS_PRECISE] = "precise",
    [NB_EVAL_STATS_TARGET] = "target", [NB_EVAL_STATS_COUNT] = NULL,
};

#define INF HUGE_VAL
#define AT(m) NB_KEY_AT(struct nb_train_spec, m)
const struct nb_key nb_train_norm_keys[] = {
    { NB_K_ENUM("norm", "eval_stats", "ema", nb_eval_stats_names,
                "population statistics for evaluation: running averages (ema), "
                "recomputed on training data before each evaluation (precise "
                "BN), or recomputed on the evaluation data itself (target: "
                "domain shift)"),
      AT(eval_stats) },
    { NB_K_INT("norm", "precise_samples", "1000", 1, 1e9, 0,
               "precise/target BN: samples used to recompute the statistics "
               "(training or evaluation data), in whole batches of train.batch"),
      AT(precise_samples) },
};
const int nb_train_norm_n_keys =
    (int)(sizeof nb_train_norm_keys / sizeof nb_train_norm_keys[0]);

const struct nb_key nb_train_keys[] = {
    { NB_K_INT("train", "batch", "128", 1, 1e7, 0, "SGD batch size"), AT(batch) },
    { NB_K_INT("train", "epochs", "10", 0, 1e6, 0, "epochs of training"), AT(epochs) },
    { NB_K_INT("train", "max_steps", "0", 0, 1e12, 0, "steps of training; 0 = from epochs"),
      AT(max_steps) },
    { NB_K_INT("train", "eval_every", "0", 0, 1e12, 0,
               "evaluate every this many steps; 0 = only per epoch"),
      AT(eval_every) },
    { NB_K_BOOL("train", "eval_every_epoch", "true", "evaluate at the end of every epoch"),
      AT(eval_every_epoch) },
    { NB_K_INT("train", "eval_samples", "0", 0, 1e9, 0,
               "test samples per evaluation; 0 = the whole test set"),
      AT(eval_samples) },
    { NB_K_BOOL("train", "drop_last", "true", "drop the last incomplete batch of an epoch"),
      AT(drop_last) },
    { NB_K_FLT("train", "diverge_loss", "inf", 0, INF, NB_KF_MIN_EXCL | NB_KF_INF,
               "stop as diverged when the loss exceeds this (or is not finite)"),
      AT(diverge_loss) },
    { NB_K_INT("train", "threads", "1", 1, 256, 0, "BLAS threads per run") },
    { NB_K_("train", "save_weights", NB_KEY_BOOL, "false", 0, 0, NB_KF_ADDED,
            "a run that finishes training writes its parameters and running "
            "statistics to weights.nbw in its directory (for [model] init_from)") },
};
#undef AT
const int nb_train_n_keys = (int)(sizeof nb_train_keys / sizeof nb_train_keys[0]);

void nb_train_spec_default(struct nb_train_spec *s)
{
    memset(s, 0, sizeof *s);
    nb_model_desc_default(&s->model);
    struct nb_optim_opts o;
    nb_optim_opts_default(&o);
    s->sgd = o.sgd;
    s->sched = o.sched;
    nb_keys_default(nb_train_norm_keys, nb_train_norm_n_keys, s);
    nb_keys_default(nb_train_keys, nb_train_n_keys, s);
}

int nb_train_model_batch(int batch)
{
    int k = (128 + batch - 1) / batch;
    return batch * (k < 1 ? 1 : k);
}

/* Puts what failed in front of the reason nb_model_recompute_bn left in
 * err: evaluation with precise or target statistics cannot go on. */
static void recompute_failed(struct nb_error *err, const struct nb_train_spec *spec,
                             long step)
{
    if (!err)
        return;
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err->msg);
    snprintf(err->msg, sizeof err->msg,
             "%s BN: cannot recompute the population statistics for the "
             "evaluation at step %ld: %.600s",
             spec->eval_stats == NB_EVAL_STATS_TARGET ? "target" : "precise", step, why);
    if (!err->hint[0])
        nb_error_hint(err, "the recomputation takes whole batches of %d "
                      "(the training batch) from the %s set",
                      spec->batch,
                      spec->eval_stats == NB_EVAL_STATS_TARGET ? "test" : "training");
}

int nb_train(const struct nb_train_spec *spec, const struct nb_dataset *train,
             const struct nb_dataset *test, const struct nb_train_hooks *hooks,
             double target_acc, struct nb_train_result *res,
             struct nb_error *err)
{
    return nb_train_val(spec, train, NULL, test, hooks, target_acc, res, err);
}

/* The state of one nb_train_val call, shared by its steps. */
struct trainer {
    const struct nb_train_spec *spec;
    const struct nb_dataset *train, *val, *test;
    const struct nb_train_hooks *hooks;
    double target_acc;
    struct nb_train_result *res;
    const struct nb_comm *comm; /* the ranks (NULL: one process) */
    double *gsum, *gwork;       /* ranks: gradients, loss and hits to sum, and
                                   the workspace of the sum */
    size_t gchunk;              /* doubles per rank per exchange */
    struct nb_model m;
    gsl_rng *data_rng;
    struct nb_loader ld;
    float *saved_state; /* the running statistics while an evaluation recomputes them */
    struct nb_schedule sched;
    struct nb_sgd sgd;
    long spe, total; /* steps per epoch, steps planned */
    long step;       /* steps taken */
    double t0, lr;   /* the start, the last step's learning rate */
    /* since the last evaluation */
    double acc_loss, acc_gn;
    long acc_hits, acc_samples, acc_steps;
};

/* Builds T->m, loads spec->init into it when set, and checks that batch
 * norm gets more than one value per channel in training, in the regular
 * batch and a final partial one; returns a status (the model freed on
 * failure). */
static int trainer_build(struct trainer *T, struct nb_error *err)
{
    const struct nb_train_spec *spec = T->spec;
    int rc = nb_model_build(&T->m, &spec->model, nb_train_model_batch(spec->batch), spec->seed,
                            err);
    if (!rc && spec->init)
        rc = nb_ckpt_apply(spec->init, &T->m, err);
    if (rc) {
        nb_model_free(&T->m);
        return rc;
    }
    int rem = spec->drop_last ? 0 : (int)(T->train->n % (size_t)spec->batch);
    if ((rc = nb_model_check_batch(&T->m, spec->batch, err)) ||
        (rem && (rc = nb_model_check_batch(&T->m, rem, err)))) {
        if (rem && rc)
            nb_error_hint(err, "the last batch has %d sample(s): set drop_last = true", rem);
        nb_model_free(&T->m);
        return rc;
    }
    return 0;
}

/* The random streams, the buffer of the saved state and the loader of T;
 * returns a status (trainer_free frees what was made). */
static int trainer_alloc(struct trainer *T, struct nb_error *err)
{
    const struct nb_train_spec *spec = T->spec;
    struct nb_model *m = &T->m;
    T->data_rng = nb_rng_alloc(spec->seed, NB_STREAM_DATA);
    m->ctx.rng_dropout = nb_rng_alloc(spec->seed, NB_STREAM_DROPOUT);
    m->ctx.rng_noise = nb_rng_alloc(spec->seed, NB_STREAM_NOISE);
    m->ctx.rng_probe = nb_rng_alloc(spec->seed, NB_STREAM_PROBE);
    T->saved_state = nb_alloc_floats(m->state.count ? m->state.count : 1);
    if (T->comm) {
        size_t K = (size_t)T->comm->size, n = m->grads.count + 2;
        T->gchunk = GRAD_WORK / K > GRAD_CHUNK_MIN ? GRAD_WORK / K : GRAD_CHUNK_MIN;
        T->gchunk = T->gchunk < n ? T->gchunk : n;
        T->gsum = malloc(n * sizeof *T->gsum);
        T->gwork = malloc(K * T->gchunk * sizeof *T->gwork);
    }
    if (!T->data_rng || !m->ctx.rng_dropout || !m->ctx.rng_noise || !m->ctx.rng_probe ||
        !T->saved_state || (T->comm && (!T->gsum || !T->gwork)))
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    return nb_loader_init(&T->ld, T->train, spec->batch, spec->drop_last, T->data_rng, err);
}

/* Frees what trainer_build and trainer_alloc made. */
static void trainer_free(struct trainer *T)
{
    free(T->saved_state);
    free(T->gsum);
    free(T->gwork);
    nb_loader_free(&T->ld);
    if (T->data_rng)
        gsl_rng_free(T->data_rng);
    if (T->m.ctx.rng_dropout)
        gsl_rng_free(T->m.ctx.rng_dropout);
    if (T->m.ctx.rng_noise)
        gsl_rng_free(T->m.ctx.rng_noise);
    if (T->m.ctx.rng_probe)
        gsl_rng_free(T->m.ctx.rng_probe);
    nb_model_free(&T->m);
}

/* The evaluation after step T->step (labels: the last batch had labels):
 * the metrics row, from population statistics recomputed for it when
 * asked, into the result and on_metrics; then the accumulators restart.
 * Sets *stop on divergence or when on_metrics asks; returns a status
 * (the statistics could not be recomputed). */
static int train_evaluate(struct trainer *T, bool labels, bool *stop, struct nb_error *err)
{
    const struct nb_train_spec *spec = T->spec;
    const struct nb_dataset *test = T->test, *val = T->val;
    const struct nb_train_hooks *hooks = T->hooks;
    struct nb_train_result *res = T->res;
    struct nb_model *m = &T->m;
    /* Population statistics recomputed for this evaluation only:
     * the running statistics training keeps (EMA) are put back
     * afterwards, so training is the same whatever eval_stats is. */
    bool target = spec->eval_stats == NB_EVAL_STATS_TARGET;
    bool recompute = spec->eval_stats == NB_EVAL_STATS_PRECISE || (target && test && test->n > 0);
    if (recompute) {
        memcpy(T->saved_state, m->state.data, m->state.count * sizeof(float));
        int rc = nb_model_recompute_bn(m, target ? test : T->train, spec->batch,
                                       (size_t)spec->precise_samples, NB_POP_EXACT, err);
        if (rc < 0) {
            /* evaluating with the training EMA instead would
             * measure something other than what was asked */
            recompute_failed(err, spec, T->step);
            return rc;
        }
    }
    struct nb_metrics row = {
        .step = T->step,
        .epoch = (double)T->step / (double)T->spe,
        .lr = T->lr,
        .train_loss = T->acc_samples ? T->acc_loss / T->acc_samples : NAN,
        .train_acc = (T->acc_samples && labels) ? (double)T->acc_hits / T->acc_samples : NAN,
        .test_loss = NAN,
        .test_acc = NAN,
        .val_loss = NAN,
        .val_acc = NAN,
        .grad_norm = T->acc_steps ? T->acc_gn / T->acc_steps : NAN,
    };
    if (test && test->n > 0)
        nb_evaluate(m, test, spec->eval_samples, &row.test_loss, &row.test_acc);
    if (val && val->n > 0)
        nb_evaluate(m, val, spec->eval_samples, &row.val_loss, &row.val_acc);
    if (recompute)
        memcpy(m->state.data, T->saved_state, m->state.count * sizeof(float));
    row.time = nb_now() - T->t0;
    if (!isfinite(row.test_loss) && test && test->n > 0) {
        res->status = NB_TRAIN_DIVERGED;
        *stop = true;
    }
    if (isfinite(row.test_acc) && row.test_acc > res->best_test_acc)
        res->best_test_acc = row.test_acc;
    if (T->target_acc > 0 && res->steps_to_target < 0 && row.test_acc >= T->target_acc)
        res->steps_to_target = T->step;
    res->last = row;
    if (hooks && hooks->on_metrics && hooks->on_metrics(hooks->user, &row)) {
        res->status = NB_TRAIN_STOPPED;
        *stop = true;
    }
    T->acc_loss = T->acc_gn = 0;
    T->acc_hits = T->acc_samples = T->acc_steps = 0;
    return 0;
}

/* A step split over the ranks: the forward and backward of this rank's
 * slice of the n samples, then the gradients, the loss sum and the hits
 * summed over the ranks in rank order; returns the batch's mean loss,
 * the hits in *hits. */
static double comm_step(struct trainer *T, const float *x, const int *y, const float *t,
                        int n, long *hits)
{
    struct nb_model *m = &T->m;
    int s, e;
    nb_comm_slice(T->comm, n, &s, &e);
    NB_ASSERT(e > s); /* nb_train_comm refuses batches smaller than the ranks */
    size_t in = nb_shape_numel(&m->desc.input), out = (size_t)m->desc.outputs;
    m->ctx.comm = T->comm;
    m->ctx.part_start = s;
    m->ctx.part_total = n;
    double sum = nb_model_forward(m, x + (size_t)s * in, y ? y + s : NULL,
                                  t ? t + (size_t)s * out : NULL, e - s, NB_TRAIN) * (e - s);
    long h = y ? nb_model_correct(m, y + s, e - s) : 0;
    nb_model_backward_part(m, e - s, n);
    m->ctx.comm = NULL;
    m->ctx.part_start = m->ctx.part_total = 0;
    const size_t P = m->grads.count;
    for (size_t i = 0; i < P; i++)
        T->gsum[i] = m->grads.data[i];
    T->gsum[P] = sum;
    T->gsum[P + 1] = (double)h;
    nb_comm_sum(T->comm, T->gsum, P + 2, T->gwork, T->gchunk);
    for (size_t i = 0; i < P; i++)
        m->grads.data[i] = (float)T->gsum[i];
    *hits = (long)T->gsum[P + 1];
    return T->gsum[P] / n;
}

/* After an evaluation that rank 0 alone made: every rank learns whether
 * it stopped the run, and how; rc is rank 0's status. */
static int comm_agree(struct trainer *T, int rc, bool *stop, struct nb_error *err)
{
    enum { GO = 0, DIVERGED, STOPPED, FAILED };
    double code = rc ? FAILED
                  : !*stop ? GO
                  : T->res->status == NB_TRAIN_DIVERGED ? DIVERGED : STOPPED;
    code = nb_comm_root(T->comm, code);
    if (T->comm->rank == 0)
        return rc;
    *stop = code != GO;
    if (code == DIVERGED)
        T->res->status = NB_TRAIN_DIVERGED;
    else if (code == STOPPED)
        T->res->status = NB_TRAIN_STOPPED;
    else if (code == FAILED)
        return nb_error_set(err, NB_EIO, NULL, 0,
                            "rank 0 failed at the evaluation after step %ld "
                            "(its error.txt says why)", T->step);
    return 0;
}

/* Trains until the planned steps are taken, the loss diverges or a hook
 * stops it, evaluating when due; returns a status (an evaluation that
 * failed). */
static int train_loop(struct trainer *T, struct nb_error *err)
{
    const struct nb_train_spec *spec = T->spec;
    const struct nb_train_hooks *hooks = T->hooks;
    struct nb_model *m = &T->m;
    bool stop = false;
    if (T->total == 0) { /* no steps: the network evaluated as it is (init_from) */
        int rc = 0;
        if (!T->comm || T->comm->rank == 0)
            rc = train_evaluate(T, false, &stop, err);
        if (T->comm)
            rc = comm_agree(T, rc, &stop, err);
        return rc;
    }
    for (int epoch = 0; !stop && T->step < T->total; epoch++) {
        nb_loader_epoch(&T->ld);
        const float *x, *t;
        const int *y;
        int n;
        long in_epoch = 0;
        while (!stop && T->step < T->total && (n = nb_loader_next(&T->ld, &x, &y, &t)) > 0) {
            m->ctx.step = T->step;
            long hits = 0;
            double loss = T->comm ? comm_step(T, x, y, t, n, &hits)
                                  : nb_model_forward(m, x, y, t, n, NB_TRAIN);
            if (!isfinite(loss) || loss > spec->diverge_loss) {
                T->res->status = NB_TRAIN_DIVERGED;
                T->acc_loss += loss * n;
                T->acc_samples += n;
                stop = true;
                break;
            }
            if (T->comm) {
                T->acc_hits += hits;
            } else {
                if (y)
                    T->acc_hits += nb_model_correct(m, y, n);
                nb_model_backward(m, n);
            }
            T->lr = nb_schedule_lr(&T->sched, T->step);
            if (hooks && hooks->on_step && T->comm) { /* rank 0's slice */
                int s, e;
                nb_comm_slice(T->comm, n, &s, &e);
                size_t in = nb_shape_numel(&m->desc.input), out = (size_t)m->desc.outputs;
                hooks->on_step(hooks->user, m, x + (size_t)s * in, y ? y + s : NULL,
                               t ? t + (size_t)s * out : NULL, e - s, T->step, T->lr);
            } else if (hooks && hooks->on_step) {
                hooks->on_step(hooks->user, m, x, y, t, n, T->step, T->lr);
            }
            T->acc_gn += nb_sgd_step(&T->sgd, m, T->lr);
            T->acc_loss += loss * n;
            T->acc_samples += n;
            T->acc_steps++;
            T->step++;
            bool end_epoch = ++in_epoch == T->spe;
            bool last = T->step >= T->total;
            bool due = (spec->eval_every > 0 && T->step % spec->eval_every == 0) ||
                       (spec->eval_every_epoch && end_epoch) || last;
            if (!due)
                continue;
            int rc = 0;
            if (!T->comm || T->comm->rank == 0)
                rc = train_evaluate(T, y != NULL, &stop, err);
            if (T->comm)
                rc = comm_agree(T, rc, &stop, err);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int nb_train_val(const struct nb_train_spec *spec, const struct nb_dataset *train,
                 const struct nb_dataset *val, const struct nb_dataset *test,
                 const struct nb_train_hooks *hooks, double target_acc,
                 struct nb_train_result *res, struct nb_error *err)
{
    return nb_train_comm(spec, train, val, test, hooks, NULL, target_acc, res, err);
}

/* What a run split over K ranks cannot do: batches with fewer samples
 * than ranks, and batch statistics over parts other than the ranks. */
static int comm_check(const struct nb_train_spec *spec, size_t ntrain, int K,
                      struct nb_error *err)
{
    const struct nb_norm_opts *o = &spec->model.norm;
    int rem = spec->drop_last ? 0 : (int)(ntrain % (size_t)spec->batch);
    if (spec->batch < K)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "batch %d is smaller than the %d ranks of the run "
                            "(every rank needs a sample of every batch)", spec->batch, K);
    if (rem > 0 && rem < K)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "the last batch of an epoch has %d sample(s), fewer than "
                            "the %d ranks of the run", rem, K);
    if (nb_norm_type_over_batch(o->type) && o->devices != K)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "[norm] devices = %d, but the run has %d ranks: the ranks "
                            "are the devices of %s norm", o->devices, K,
                            nb_norm_type_name(o->type));
    return 0;
}

int nb_train_comm(const struct nb_train_spec *spec, const struct nb_dataset *train,
                  const struct nb_dataset *val, const struct nb_dataset *test,
                  const struct nb_train_hooks *hooks, const struct nb_comm *comm,
                  double target_acc, struct nb_train_result *res, struct nb_error *err)
{
    memset(res, 0, sizeof *res);
    res->steps_to_target = -1;
    if (spec->batch < 1)
        return nb_error_set(err, NB_EINVAL, NULL, 0, "batch must be >= 1, not %d", spec->batch);
    if (!train || train->n < 1)
        return nb_error_set(err, NB_EINVAL, NULL, 0, "the training set is empty");
    if ((size_t)spec->batch > train->n)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "batch %d is larger than the training set (%zu samples)",
                            spec->batch, train->n);
    if (!nb_comm_active(comm))
        comm = NULL;
    int rc = comm ? comm_check(spec, train->n, comm->size, err) : 0;
    if (rc)
        return rc;

    struct trainer T = { .spec = spec,
                         .train = train,
                         .val = val,
                         .test = test,
                         .hooks = hooks,
                         .target_acc = target_acc,
                         .res = res,
                         .comm = comm };
    rc = trainer_build(&T, err);
    if (rc)
        return rc;
    res->params = T.m.n_params;
    if ((rc = trainer_alloc(&T, err)))
        goto out;

    T.spe = (long)nb_loader_batches(&T.ld);
    T.sched = spec->sched;
    T.sched.steps_per_epoch = T.spe;
    T.total = spec->max_steps > 0 ? spec->max_steps : T.spe * spec->epochs;
    T.sched.total_steps = T.total;
    nb_sgd_init(&T.sgd, &spec->sgd);
    T.t0 = nb_now();
    T.lr = T.sched.lr;
    rc = train_loop(&T, err);
    if (!rc && res->status == NB_TRAIN_DIVERGED) {
        /* keep a row that shows the divergence */
        struct nb_metrics row = {
            .step = T.step,
            .epoch = (double)T.step / (double)T.spe,
            .lr = T.lr,
            .train_loss = T.acc_samples ? T.acc_loss / T.acc_samples : NAN,
            .train_acc = NAN,
            .test_loss = NAN,
            .test_acc = NAN,
            .val_loss = NAN,
            .val_acc = NAN,
            .grad_norm = T.acc_steps ? T.acc_gn / T.acc_steps : NAN,
            .time = nb_now() - T.t0,
        };
        res->last = row;
        if (hooks && hooks->on_metrics)
            hooks->on_metrics(hooks->user, &row);
    }
    res->steps = T.step;
    res->seconds = nb_now() - T.t0;
    if (!rc && hooks && hooks->on_end)
        hooks->on_end(hooks->user, &T.m, res);
out:
    trainer_free(&T);
    return rc;
}
