/* src/model/evaluate.c - EVAL-mode passes of a model over a data set
 * (model/evaluate.h): loss and accuracy, and two networks compared and
 * timed, as folding batch norm needs (normbench fold, the fold probe). */
#include "model/evaluate.h"

#include <math.h>
#include <stdlib.h>

#include "core/arena.h"

void nb_evaluate(struct nb_model *m, const struct nb_dataset *ds, int limit,
                 double *loss, double *acc)
{
    struct nb_loader ld;
    struct nb_error err;
    *loss = *acc = NAN;
    if (nb_loader_init(&ld, ds, m->max_batch, false, NULL, &err))
        return;
    nb_loader_epoch(&ld);
    size_t want = (limit > 0 && (size_t)limit < ds->n) ? (size_t)limit : ds->n;
    size_t done = 0;
    double sl = 0;
    long hits = 0;
    const float *x, *t;
    const int *y;
    int n;
    while (done < want && (n = nb_loader_next(&ld, &x, &y, &t)) > 0) {
        if ((size_t)n > want - done)
            n = (int)(want - done);
        sl += nb_model_forward(m, x, y, t, n, NB_EVAL) * n;
        if (y)
            hits += nb_model_correct(m, y, n);
        done += (size_t)n;
    }
    nb_loader_free(&ld);
    if (done) {
        *loss = sl / (double)done;
        *acc = ds->y ? (double)hits / (double)done : NAN;
    }
}

int nb_fold_compare(struct nb_model *a, struct nb_model *b, const struct nb_dataset *ds, int limit,
                    double *max_abs, size_t *argmax_differ, size_t *samples, struct nb_error *err)
{
    *max_abs = 0;
    *argmax_differ = *samples = 0;
    NB_ASSERT(b->max_batch >= a->max_batch && a->desc.outputs == b->desc.outputs);
    struct nb_loader ld;
    int rc = nb_loader_init(&ld, ds, a->max_batch, false, NULL, err);
    if (rc)
        return rc;
    nb_loader_epoch(&ld);
    size_t want = (limit > 0 && (size_t)limit < ds->n) ? (size_t)limit : ds->n;
    int k = a->desc.outputs, n;
    const float *x, *t;
    const int *y;
    while (*samples < want && (n = nb_loader_next(&ld, &x, &y, &t)) > 0) {
        if ((size_t)n > want - *samples)
            n = (int)(want - *samples);
        nb_model_forward(a, x, y, t, n, NB_EVAL);
        nb_model_forward(b, x, y, t, n, NB_EVAL);
        const float *za = nb_model_logits(a), *zb = nb_model_logits(b);
        for (int i = 0; i < n; i++) {
            const float *ra = za + (size_t)i * (size_t)k, *rb = zb + (size_t)i * (size_t)k;
            int ia = 0, ib = 0;
            for (int j = 0; j < k; j++) {
                double d = fabs((double)ra[j] - (double)rb[j]);
                if (d > *max_abs || isnan(d))
                    *max_abs = d; /* a NaN stays: nothing compares above it */
                ia = ra[j] > ra[ia] ? j : ia;
                ib = rb[j] > rb[ib] ? j : ib;
            }
            *argmax_differ += y && ia != ib;
        }
        *samples += (size_t)n;
    }
    nb_loader_free(&ld);
    return 0;
}

static int cmp_double(const void *p, const void *q)
{
    double a = *(const double *)p, b = *(const double *)q;
    return (a > b) - (a < b);
}

/* The median of v[0..n) (sorted in place). */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Seconds per pass of `passes` evaluations of m; the last pass's loss
 * and accuracy in *loss, *acc. */
static double time_passes(struct nb_model *m, const struct nb_dataset *ds, int limit, int passes,
                          double *loss, double *acc)
{
    double t0 = nb_now();
    for (int p = 0; p < passes; p++)
        nb_evaluate(m, ds, limit, loss, acc);
    return (nb_now() - t0) / passes;
}

void nb_fold_time(struct nb_model *a, struct nb_model *b, const struct nb_dataset *ds, int limit,
                  int rounds, double min_seconds, struct nb_fold_timing *t)
{
    NB_ASSERT(rounds >= 1 && rounds <= NB_FOLD_MAX_ROUNDS && min_seconds > 0);
    double ta[NB_FOLD_MAX_ROUNDS], tb[NB_FOLD_MAX_ROUNDS];
    /* one pass of each to warm up (caches, page faults), then one more of
     * a to size the rounds: each network's share of a round lasts
     * min_seconds */
    (void)time_passes(a, ds, limit, 1, &t->loss_unfolded, &t->acc_unfolded);
    (void)time_passes(b, ds, limit, 1, &t->loss_folded, &t->acc_folded);
    double one = time_passes(a, ds, limit, 1, &t->loss_unfolded, &t->acc_unfolded);
    double p = ceil(min_seconds / fmax(one, 1e-7));
    t->passes = p < 1 ? 1 : p > 1e6 ? 1000000 : (int)p;
    t->rounds = rounds;
    for (int r = 0; r < rounds; r++) {
        ta[r] = time_passes(a, ds, limit, t->passes, &t->loss_unfolded, &t->acc_unfolded);
        tb[r] = time_passes(b, ds, limit, t->passes, &t->loss_folded, &t->acc_folded);
    }
    t->unfolded = median(ta, rounds);
    t->folded = median(tb, rounds);
    t->ratio = t->unfolded > 0 ? t->folded / t->unfolded : NAN;
}

