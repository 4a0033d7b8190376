/* src/run/fold.h - `normbench fold`: the weights of a finished run with
 * every eval-mode batch norm folded into the conv or linear layer it
 * follows (model.h's nb_model_fold: W' = W s, b' = (b - mu) s + beta with
 * s = gamma / sqrt(var + eps), per output channel), checked against the
 * unfolded network on the run's evaluation data and timed against it.
 *
 * The run is named by a run directory (RESULTS_DIR/EXPERIMENT/RUN_ID: the
 * config.ini every run writes and the weights.nbw of a run with [train]
 * save_weights = true), or by a selector as [model] init_from takes it
 * (config/selector.h: EXPERIMENT, EXPERIMENT/RUN_ID,
 * EXPERIMENT/KEY=VALUE,...), resolved under a results directory by
 * nb_init_resolve_any: the one done run with weights that fits, of any
 * seed.  An argument that is a directory is a run directory; anything
 * else is a selector.
 *
 * The run's config.ini says how to build the network and what it was
 * evaluated on: its test set (the first [train] eval_samples samples when
 * that is set), prepared from the run's seed exactly as the run did, in
 * batches of nb_train_model_batch(batch) as its evaluations.  The
 * statistics folded are the checkpoint's running averages, which EVAL
 * uses ([norm] eval_stats = precise or target recomputed them for each
 * of the run's evaluations; fold does not).
 *
 * Folding needs placement pre (Conv -> BN -> ReLU: with post a ReLU sits
 * between the layer and its norm) and a norm with population statistics
 * (type batch, with any of its options, or lp); a config that has neither
 * is refused at the config.ini line of [model] placement or [norm] type.
 *
 * Functions follow core/error.h: 0 or a negative status with err filled;
 * nothing prints, nothing exits.  The status says whose fault a failure
 * is: NB_EINVAL (a refusal, an option, a selector that fits several runs)
 * and NB_ENOENT (no such run directory, config.ini or checkpoint) are the
 * caller's input; NB_EFORMAT (a damaged checkpoint, or one that does not
 * fit its run's config), NB_EIO and NB_ENOMEM are not. */
#ifndef NB_RUN_FOLD_H
#define NB_RUN_FOLD_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "data/data.h"
#include "layers/norm.h"
#include "model/evaluate.h"
#include "model/model.h"

struct nb_fold_opts {
    const char *run;         /* RUN_DIR, or a SELECTOR */
    const char *results_dir; /* where a selector's experiment folder is;
                                NULL: [experiment] results_dir's default */
    const char *out;         /* NULL, or a file for the folded checkpoint */
    int rounds;              /* timing rounds, 1..NB_FOLD_MAX_ROUNDS */
    double min_seconds;      /* see NB_FOLD_MIN_SECONDS (> 0) */
};

/* run NULL, results_dir NULL, out NULL, NB_FOLD_ROUNDS,
 * NB_FOLD_MIN_SECONDS. */
void nb_fold_opts_default(struct nb_fold_opts *o);

struct nb_fold_report {
    char run_dir[2048];
    char run_id[17];
    uint64_t seed;
    char checkpoint[2100]; /* the weights.nbw read */
    uint64_t checksum;     /* its checksum */
    enum nb_norm_type norm;
    int layers, layers_folded_net; /* layers of the two networks */
    int folded;                    /* norm layers folded */
    size_t samples;                /* evaluation samples compared and timed */
    double max_abs_diff;           /* max |logit folded - logit unfolded| */
    size_t argmax_differ;          /* samples whose predicted class differs */
    struct nb_fold_timing time;
    uint64_t out_checksum; /* of the written file (with opts out) */
    char data[512];        /* nb_data_describe of the run's data */
    char notice[1536];     /* the data's fallback notice, or "" */
};

/* Folds the run o->run names (see the top) and fills rep; with o->out,
 * writes the folded network's checkpoint there (model/checkpoint.h's
 * format, written atomically; its layout is the network of the run's
 * config with [norm] type = none).  Returns 0, or a negative status with
 * err filled: "CONFIG:LINE: fold: ..." for a refusal at a config.ini
 * line, "fold: ..." otherwise (a file involved is named in the message),
 * each with a hint where the fix is obvious. */
int nb_fold_run(const struct nb_fold_opts *o, struct nb_fold_report *rep, struct nb_error *err);

#endif
