/* src/probe/fold.c - the fold probe: at the end of training, every
 * eval-mode batch norm folded into the conv or linear layer it follows
 * (model.h nb_model_fold; claims.md 6.5, 8 row 23), the folded network
 * compared logit by logit with the trained one and timed against it,
 * interleaved (model/evaluate.h nb_fold_compare, nb_fold_time: the same
 * code as `normbench fold`), on the first fold_samples test samples.
 *
 * Unlike the other probes, a call allocates: the folded network (built
 * by nb_model_fold from the trained one) and the loaders of its passes,
 * freed before it returns.  It runs once, at the end of the run, so the
 * allocation is outside training.  A config it cannot fold (placement
 * post, a norm without running statistics, no norm) is refused before
 * any run by nb_probe_check_model, at the [model] placement or [norm]
 * type line. */
#include "probe/probe_impl.h"

#include <math.h>
#include <string.h>

#include "model/evaluate.h"

static void fold(struct nb_probe *p, struct nb_model *m, const struct nbp_batch *b, long step)
{
    (void)b;
    struct nb_probe_row row = nbp_row(m, step, NB_PROBE_FOLD, -1, "eval");
    row.param = "samples";
    struct nb_model f;
    struct nb_error e;
    double max_abs = NAN;
    size_t differ = 0, samples = 0;
    struct nb_fold_timing t = {.unfolded = NAN, .folded = NAN, .ratio = NAN};
    memset(&f, 0, sizeof f);
    int folded = nb_model_fold(m, &f, &e);
    int rc = folded < 0 ? folded : 0;
    if (!rc)
        rc = nb_fold_compare(m, &f, p->test, (int)p->o.fold_samples, &max_abs, &differ,
                             &samples, &e);
    if (!rc)
        nb_fold_time(m, &f, p->test, (int)p->o.fold_samples, (int)p->o.fold_rounds,
                     NB_FOLD_MIN_SECONDS, &t);
    nb_model_free(&f);
    /* a failure (out of memory: the config was checked) leaves NaN rows */
    row.param_value = rc ? NAN : (double)samples;
    nbp_emit(p, &row, "layers_folded", rc ? NAN : folded);
    nbp_emit(p, &row, "max_abs_logit_diff", rc ? NAN : max_abs);
    nbp_emit(p, &row, "predictions_differ", rc ? NAN : (double)differ);
    nbp_emit(p, &row, "seconds_unfolded", t.unfolded);
    nbp_emit(p, &row, "seconds_folded", t.folded);
    nbp_emit(p, &row, "time_ratio", t.ratio);
}

const char *const nbp_fold_stats[] = {"layers_folded", "max_abs_logit_diff", "predictions_differ",
                                      "seconds_unfolded", "seconds_folded", "time_ratio",
                                      "seconds", NULL};

static bool fold_due(const struct nb_probe_opts *o, long step)
{
    (void)o;
    (void)step;
    return false; /* at the end of training only */
}

static bool fold_at_end(const struct nb_probe_opts *o, long steps)
{
    (void)steps;
    return o->fold;
}

static const char *eval_mode(const struct nb_probe_opts *o)
{
    (void)o;
    return "eval";
}

const struct nbp_ops nbp_fold_ops = {
    .phase = NBP_AT_THETA,
    .uses_data = false,
    .due = fold_due,
    .at_end = fold_at_end,
    .mode = eval_mode,
    .run = fold,
};
