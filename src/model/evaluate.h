/* src/model/evaluate.h - EVAL-mode passes of a model over a data set:
 * its mean loss and accuracy (every evaluation of a run), and two
 * networks of the same inputs and outputs compared logit by logit and
 * timed against each other, interleaved, as folding batch norm into the
 * layers before it needs (model.h nb_model_fold; `normbench fold`,
 * run/fold.h, and the fold probe, probe/fold.c, both use these).
 *
 * Nothing here allocates beyond the data loader of a pass; nothing prints
 * or exits. */
#ifndef NB_MODEL_EVALUATE_H
#define NB_MODEL_EVALUATE_H

#include <stddef.h>

#include "core/error.h"
#include "data/data.h"
#include "model/model.h"

/* Evaluates m on the first `limit` samples of ds (all when limit <= 0) in
 * EVAL mode; returns mean loss and accuracy. */
void nb_evaluate(struct nb_model *m, const struct nb_dataset *ds, int limit,
                 double *loss, double *acc);

/* Timing rounds by default, and at most. */
#define NB_FOLD_ROUNDS 5
#define NB_FOLD_MAX_ROUNDS 1000
/* Each network's share of a round lasts at least this many seconds by
 * default: a pass over a small evaluation set is repeated until it does. */
#define NB_FOLD_MIN_SECONDS 0.05

/* Inference time of the unfolded and the folded network over the same
 * samples: `rounds` rounds of `passes` passes of the unfolded network,
 * then `passes` passes of the folded one (A/B/A/B...). */
struct nb_fold_timing {
    int rounds, passes;
    double unfolded, folded;           /* median over the rounds, seconds per pass */
    double ratio;                      /* folded / unfolded (of the medians) */
    double loss_unfolded, loss_folded; /* mean loss over the samples */
    double acc_unfolded, acc_folded;   /* accuracy (NaN for regression) */
};

/* EVAL-mode forwards of a and b (networks of the same input and outputs)
 * over the first `limit` samples of ds (all when limit <= 0), in batches
 * of a's max_batch (b's must be as large): the largest absolute
 * difference of their logits in *max_abs, the samples whose argmax
 * differs in *argmax_differ (0 without labels), the samples in
 * *samples.  Returns 0, or a status from the loader (ds empty). */
int nb_fold_compare(struct nb_model *a, struct nb_model *b, const struct nb_dataset *ds, int limit,
                    double *max_abs, size_t *argmax_differ, size_t *samples, struct nb_error *err);

/* Times nb_evaluate of a (unfolded) and b (folded) over the same samples
 * (limit as nb_fold_compare), interleaved: after one pass of each to warm
 * up and one more of a that sets the passes per round (enough for
 * min_seconds), `rounds` (1..NB_FOLD_MAX_ROUNDS) rounds of a's passes
 * then b's; fills t. */
void nb_fold_time(struct nb_model *a, struct nb_model *b, const struct nb_dataset *ds, int limit,
                  int rounds, double min_seconds, struct nb_fold_timing *t);

#endif
