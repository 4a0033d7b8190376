/* src/probe/evalstats.c - the evalstats probe: the test error of the
 * current weights under each way of giving the norm layers their
 * statistics at evaluation (Ioffe & Szegedy Alg. 2; Wu & Johnson 2021,
 * Sec. 3-5; claims.md 8 rows 6, 13, 14, 15).  One call evaluates the
 * whole test set once per estimator, on the same weights, so estimators
 * compare within a run.  Rows (probe.h): layer -1, stats test_error (%,
 * NaN without labels) and test_loss, param the estimator:
 *
 *   param         param_value  statistics the norm layers use
 *   ema           NaN          the running averages training keeps
 *   batch         b            none kept: every test batch of b samples
 *                              (the training batch) is normalized with its
 *                              own statistics, as in training (PROBE
 *                              mode; the last partial batch left out)
 *   exact         N            recomputed over the first N training
 *                              samples in training batches (at least N:
 *                              whole batches; all of them when fewer),
 *                              weights frozen: the exact moments
 *                              (precise BN)
 *   ioffe         N            the same pass: E_B[mu_B] and the batches'
 *                              mean variance estimate (m/(m-1) var_B for
 *                              the default unbiased layer: Alg. 2)
 *   ioffe_biased  N            the same pass: E_B[mu_B], E_B[var_B]
 *   target        N            exact moments over the first N test
 *                              samples (evalstats_target: domain shift)
 *
 * for every N of evalstats_samples (the count asked for, so that a filter
 * param_value = N means one setting at every batch size; the recomputed
 * rows' stat samples is the number a pass used).  Evaluations use the
 * run's eval_samples test images (0: all), as the training loop's do.
 * norm.h's nb_pop_formula has the formulas. */
#include "probe/probe_impl.h"

#include <math.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "layers/norm.h"

/* Mean loss and error (%) over the test set in `mode` in chunks of chunk
 * samples; PROBE mode over whole chunks only, each chunk with its own
 * draws (as nbp_pass). */
static void eval_test(struct nb_probe *p, struct nb_model *m, enum nb_mode mode, int chunk,
                      double *loss, double *error)
{
    const struct nb_dataset *ds = p->test;
    size_t n = ds->n;
    if (p->o.eval_samples > 0 && (size_t)p->o.eval_samples < n)
        n = (size_t)p->o.eval_samples;
    if (mode != NB_EVAL)
        n -= n % (size_t)chunk;
    int *y = ds->classes > 0 ? p->by : NULL;
    float *t = ds->tdim > 0 ? p->bt : NULL;
    double sl = 0;
    long hits = 0;
    size_t c = 0;
    for (size_t off = 0; off < n; off += (size_t)chunk, c++) {
        int k = (int)(n - off < (size_t)chunk ? n - off : (size_t)chunk);
        for (int i = 0; i < k; i++)
            p->tidx[i] = off + (size_t)i;
        nb_dataset_gather(ds, p->tidx, (size_t)k, p->bx, y, t);
        gsl_rng_set(p->fwd, (p->fwd_seed + 0x9e3779b9UL * c) & 0xffffffffUL);
        sl += nb_model_forward(m, p->bx, y, t, k, mode) * k;
        if (y)
            hits += nb_model_correct(m, y, k);
    }
    *loss = n ? sl / (double)n : NAN;
    *error = n && y ? 100.0 * (1.0 - (double)hits / (double)n) : NAN;
}

/* Evaluates and writes the rows of one estimator (used > 0: the samples
 * its statistics were recomputed over, a row of its own). */
static void emit(struct nb_probe *p, struct nb_model *m, long step, const char *est,
                 double value, int used, enum nb_mode mode, int chunk)
{
    double loss, error;
    eval_test(p, m, mode, chunk, &loss, &error);
    struct nb_probe_row r = nbp_row(m, step, NB_PROBE_EVALSTATS, -1, nb_mode_name(mode));
    r.param = est;
    r.param_value = value;
    nbp_emit(p, &r, "test_error", error);
    nbp_emit(p, &r, "test_loss", loss);
    if (used > 0)
        nbp_emit(p, &r, "samples", used);
}

/* Recomputes over the first `want` samples of ds in batches of `batch`
 * by formula f; returns the samples used, 0 when ds is smaller than one
 * batch (nothing changed). */
static int recompute(struct nb_model *m, const struct nb_dataset *ds, int batch, long want,
                     enum nb_pop_formula f)
{
    struct nb_error e;
    int used = nb_model_recompute_bn(m, ds, batch, (size_t)want, f, &e);
    return used > 0 ? used : 0;
}

static void evalstats(struct nb_probe *p, struct nb_model *m, const struct nbp_batch *b,
                     long step)
{
    (void)b;
    const struct nb_probe_opts *o = &p->o;
    int eval_chunk = p->cap < m->max_batch ? p->cap : m->max_batch;
    int batch = p->train_batch > 0 && p->train_batch <= eval_chunk ? p->train_batch : eval_chunk;
    emit(p, m, step, "ema", NAN, 0, NB_EVAL, eval_chunk);
    struct nb_error e;
    if (nb_model_check_batch(m, batch, &e) == 0)
        emit(p, m, step, "batch", batch, 0, NB_PROBE, batch);
    for (int i = 0; i < o->n_evalstats_samples; i++) {
        double asked = o->evalstats_samples[i];
        int used = recompute(m, p->data, batch, o->evalstats_samples[i], NB_POP_EXACT);
        if (!used)
            continue;
        emit(p, m, step, "exact", asked, used, NB_EVAL, eval_chunk);
        nb_model_recompute_write(m, NB_POP_BATCH_MEAN);
        emit(p, m, step, "ioffe", asked, used, NB_EVAL, eval_chunk);
        nb_model_recompute_write(m, NB_POP_BATCH_MEAN_BIASED);
        emit(p, m, step, "ioffe_biased", asked, used, NB_EVAL, eval_chunk);
        if (o->evalstats_target &&
            (used = recompute(m, p->test, batch, o->evalstats_samples[i], NB_POP_EXACT)))
            emit(p, m, step, "target", asked, used, NB_EVAL, eval_chunk);
    }
}

const char *const nbp_evalstats_stats[] = {"test_error", "test_loss", "samples", "seconds", NULL};

static bool evalstats_due(const struct nb_probe_opts *o, long step)
{
    return o->evalstats && o->evalstats_every > 0 && step % o->evalstats_every == 0;
}

static bool evalstats_at_end(const struct nb_probe_opts *o, long steps)
{
    (void)steps;
    return o->evalstats;
}

static const char *eval_mode(const struct nb_probe_opts *o)
{
    (void)o;
    return "eval";
}

const struct nbp_ops nbp_evalstats_ops = {
    .phase = NBP_AT_THETA,
    .uses_data = true,
    .due = evalstats_due,
    .at_end = evalstats_at_end,
    .mode = eval_mode,
    .run = evalstats,
};
