/* src/run/train.h - the training loop every run shares.
 *
 * One run: build the model, then for each step take a batch from the
 * training loader, forward (TRAIN), backward, let the step hook look at
 * the model (probes: they must leave parameters, state, gradients and the
 * training RNG streams as they found them), update with SGD, and every
 * eval interval evaluate on the test set (EVAL) and emit a metrics row. */
#ifndef NB_HARNESS_TRAIN_H
#define NB_HARNESS_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "data/data.h"
#include "model/checkpoint.h"
#include "model/evaluate.h"
#include "model/model.h"
#include "optim/optim.h"

/* Population statistics for evaluation ([norm] eval_stats): the running
 * averages training keeps, recomputed on training data before each
 * evaluation (precise BN), or on the evaluation data (target). */
enum nb_eval_stats { NB_EVAL_STATS_EMA = 0, NB_EVAL_STATS_PRECISE, NB_EVAL_STATS_TARGET,
                     NB_EVAL_STATS_COUNT };
extern const char *const nb_eval_stats_names[]; /* by enumerator, NULL-terminated */

struct nb_train_spec {
    struct nb_model_desc model;
    struct nb_sgd_opts sgd;
    struct nb_schedule sched; /* lr and schedule; steps_per_epoch and
                                 total_steps are filled by nb_train */
    uint64_t seed;
    int batch;
    int epochs;
    long max_steps;           /* > 0: stop after this many updates */
    long eval_every;          /* > 0: evaluate every this many steps */
    bool eval_every_epoch;    /* evaluate at the end of every epoch */
    int eval_samples;         /* > 0: evaluate on the first N test samples */
    bool drop_last;
    double diverge_loss;      /* stop when the training loss exceeds this */
    enum nb_eval_stats eval_stats; /* precise, target: recompute the BN
                                      statistics before each evaluation */
    int precise_samples;      /* samples the recomputation uses */
    /* NULL, or a checkpoint whose parameters and running statistics
     * replace the initial ones once the model is built and initialised,
     * before the first step (a layout other than the model's fails the
     * run); the optimizer's buffers and the random streams start fresh.
     * Not a key: the runner reads it ([model] init_from). */
    const struct nb_ckpt *init;
};

/* The [train] config keys of struct nb_train_spec (core/opt.h; train.threads
 * and train.save_weights have no member: the worker sets the BLAS threads
 * and writes the weights), and the [norm] keys
 * that belong to the loop (eval_stats, precise_samples).  Defaults: batch
 * 128, 10 epochs, evaluation every epoch on the whole test set,
 * drop_last, no divergence limit, EMA statistics (1000 samples when
 * recomputed). */
extern const struct nb_key nb_train_keys[], nb_train_norm_keys[];
extern const int nb_train_n_keys, nb_train_norm_n_keys;

/* Every default from the tables: nb_train_keys', nb_train_norm_keys',
 * nb_model_desc_default, nb_optim_opts_default. */
void nb_train_spec_default(struct nb_train_spec *s);

/* One row of metrics.csv. */
struct nb_metrics {
    long step;        /* updates done */
    double epoch;     /* fractional epochs done */
    double lr;        /* learning rate of the last update */
    double train_loss, train_acc; /* over the interval since the last row */
    double test_loss, test_acc;   /* NaN when no test set */
    double val_loss, val_acc;     /* NaN when no validation set */
    double grad_norm; /* mean gradient l2 norm over the interval */
    double time;      /* seconds since the start of training */
};

/* The columns of a run's metrics.csv, in file order: one per field of
 * struct nb_metrics but time (timing.csv has it, so metrics.csv is
 * byte-identical between repeats); the val_only columns are written only
 * when the run has a validation set.  The one list of them: the runner
 * writes them, summarize reads them. */
struct nb_metrics_col {
    const char *name;
    size_t offset;  /* of the field in struct nb_metrics */
    bool is_long;   /* a long (step); else a double */
    bool val_only;
};
enum { NB_METRICS_N_COLS = 10 };
extern const struct nb_metrics_col nb_metrics_cols[NB_METRICS_N_COLS];

enum nb_train_status { NB_TRAIN_DONE = 0, NB_TRAIN_DIVERGED, NB_TRAIN_STOPPED };

struct nb_train_result {
    enum nb_train_status status;
    long steps;
    struct nb_metrics last;
    double best_test_acc;
    long steps_to_target; /* -1 if never reached */
    double seconds;
    size_t params;        /* trainable parameters of the model (0: not built) */
};

struct nb_train_hooks {
    void *user;
    /* Called after backward and before the update of every step. */
    void (*on_step)(void *user, struct nb_model *m, const float *x,
                    const int *y, const float *t, int n, long step, double lr);
    /* Called for every metrics row; return non-zero to stop (an I/O error
     * writing the row, say). */
    int (*on_metrics)(void *user, const struct nb_metrics *row);
    /* Called once after the last update (also after a divergence or a
     * stop), with the final model, before it is freed; may be NULL.
     * End-of-run probes (Hessian, slices) run here. */
    void (*on_end)(void *user, struct nb_model *m,
                   const struct nb_train_result *res);
};

/* The largest batch a run of training batch `batch` builds its model
 * for, and so the batch its evaluations take: a multiple of the training
 * batch of at least 128, so evaluation runs in big chunks and any ghost
 * batch that divides the training batch divides it too. */
int nb_train_model_batch(int batch);

/* Runs a whole training.  train must be non-empty; test may be NULL.
 * target_acc > 0 fills steps_to_target.  Returns 0 (see res->status for
 * diverged/stopped) or a negative status with err filled (bad spec, ...);
 * with eval_stats precise or target, population statistics that cannot be
 * recomputed for an evaluation (a set smaller than one batch) fail the
 * run there, before that evaluation's row. */
int nb_train(const struct nb_train_spec *spec, const struct nb_dataset *train,
             const struct nb_dataset *test, const struct nb_train_hooks *hooks,
             double target_acc, struct nb_train_result *res,
             struct nb_error *err);

/* The same with a validation set (may be NULL or empty): every
 * evaluation also measures val_loss and val_acc on it (at most
 * eval_samples of it, like the test set), with the same statistics. */
int nb_train_val(const struct nb_train_spec *spec, const struct nb_dataset *train,
                 const struct nb_dataset *val, const struct nb_dataset *test,
                 const struct nb_train_hooks *hooks, double target_acc,
                 struct nb_train_result *res, struct nb_error *err);

/* nb_train_val split over the ranks of comm (core/comm.h; NULL or size 1
 * is nb_train_val): data-parallel training of one run.  Every rank calls
 * it with the same spec and data sets and builds the same model from the
 * same seed; each draws the same batches (the data order stream), takes
 * its slice of each (nb_comm_slice), runs the forward and backward of the
 * slice with the norms exchanging their statistics (norm.h, "Ranks"),
 * and the gradients, the loss and the hits are summed over the ranks in
 * rank order before the update, which is then the same on every rank:
 * the gradient of the batch's mean loss, as one process computes it.
 * Rank 0 alone evaluates and calls the hooks; on_step gets its slice,
 * which the model's activations hold (so probes, which read them, are
 * for one process: the runner refuses them on ranks); the other ranks
 * pass hooks NULL, and learn after each evaluation whether rank 0 stopped
 * (diverged, a hook asked, an error: then they return NB_EIO saying so).  Refuses
 * with NB_EINVAL, before training: a batch (or a last partial batch)
 * smaller than the rank count, and batch or lp norm whose devices differ
 * from the rank count (the ranks are the devices). */
int nb_train_comm(const struct nb_train_spec *spec, const struct nb_dataset *train,
                  const struct nb_dataset *val, const struct nb_dataset *test,
                  const struct nb_train_hooks *hooks, const struct nb_comm *comm,
                  double target_acc, struct nb_train_result *res, struct nb_error *err);

#endif
