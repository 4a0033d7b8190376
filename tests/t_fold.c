/* tests/t_fold.c - the library of `normbench fold` (run/fold.h): the
 * logit comparison of an unfolded and a folded network (and that it sees
 * a difference), the interleaved timing, the folded network's checkpoint
 * loaded into the network of norm type none (and refused by the
 * unfolded one), lp norm folded like batch norm.  The verb end to end,
 * with its refusals, is tests/fold.sh. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/checkpoint.h"
#include "run/fold.h"
#include "tap.h"

static void fill(float *x, size_t n, unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(2.385 * gsl_rng_uniform(r) - 1.1);
    gsl_rng_free(r);
}

/* Blobs of 1x8x8 in 4 classes: 64 training and 96 test samples. */
static void blobs(struct nb_dataset *tr, struct nb_dataset *te)
{
    struct nb_synth_opts so;
    struct nb_error e;
    nb_synth_opts_default(&so);
    so.n_train = 64;
    so.n_test = 96;
    so.shape = (struct nb_shape){ 1, 8, 8 };
    so.classes = 4;
    so.seed = 7;
    so.spread = 0.1;
    if (nb_synth_blobs(&so, tr, te, &e))
        tap_bail("blobs: %s", e.msg);
}

/* The cnn on 1x8x8 inputs with norm type t (placement pre), built for
 * batches of 16, its running statistics moved by a few TRAIN forwards on
 * tr and its norms' affine parameters random; returns its norm layers. */
static int trained(struct nb_model *m, enum nb_norm_type t, const struct nb_dataset *tr)
{
    struct nb_model_desc d;
    struct nb_error e;
    nb_model_desc_default(&d);
    d.input = (struct nb_shape){ 1, 8, 8 };
    d.outputs = 4;
    d.norm.type = t;
    if (nb_model_build(m, &d, 16, 5, &e))
        tap_bail("build: %s", e.msg);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    m->ctx.rng_dropout = m->ctx.rng_noise = m->ctx.rng_probe = r;
    struct nb_loader ld;
    if (nb_loader_init(&ld, tr, 16, true, NULL, &e))
        tap_bail("loader: %s", e.msg);
    nb_loader_epoch(&ld);
    const float *x, *t2;
    const int *y;
    int n;
    while ((n = nb_loader_next(&ld, &x, &y, &t2)) > 0)
        nb_model_forward(m, x, y, t2, n, NB_TRAIN);
    nb_loader_free(&ld);
    m->ctx.rng_dropout = m->ctx.rng_noise = m->ctx.rng_probe = NULL;
    gsl_rng_free(r);
    int norms = 0;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].ops == &nb_norm_ops) {
            norms++;
            for (int p = 0; p < m->layers[i].n_params; p++)
                fill(m->layers[i].params[p].value, m->layers[i].params[p].count,
                     300 + (unsigned long)i);
        }
    return norms;
}

/* The bias of the last linear layer of m. */
static float *last_bias(struct nb_model *m)
{
    for (int i = m->n_layers - 1; i >= 0; i--)
        if (m->layers[i].ops == &nb_linear_ops)
            for (int p = 0; p < m->layers[i].n_params; p++)
                if (m->layers[i].params[p].flags & NB_PARAM_BIAS)
                    return m->layers[i].params[p].value;
    tap_bail("no linear layer with a bias");
    return NULL;
}

/* The samples of ds that m (EVAL) puts in class 0. */
static size_t class0(struct nb_model *m, const struct nb_dataset *ds)
{
    struct nb_loader ld;
    struct nb_error e;
    if (nb_loader_init(&ld, ds, 16, false, NULL, &e))
        tap_bail("loader: %s", e.msg);
    nb_loader_epoch(&ld);
    const float *x, *t;
    const int *y;
    int n, k = m->desc.outputs;
    size_t c = 0;
    while ((n = nb_loader_next(&ld, &x, &y, &t)) > 0) {
        nb_model_forward(m, x, y, t, n, NB_EVAL);
        const float *z = nb_model_logits(m);
        for (int i = 0; i < n; i++) {
            int a = 0;
            for (int j = 1; j < k; j++)
                a = z[i * k + j] > z[i * k + a] ? j : a;
            c += a == 0;
        }
    }
    nb_loader_free(&ld);
    return c;
}

static void test_compare(const struct nb_dataset *tr, const struct nb_dataset *te)
{
    struct nb_model m, f;
    struct nb_error e;
    int norms = trained(&m, NB_NORM_BATCH, tr);
    is_int(nb_model_fold(&m, &f, &e), norms, "batch norm cnn: %d norm layers folded", norms);
    double md;
    size_t differ, n;
    is_int(nb_fold_compare(&m, &f, te, 50, &md, &differ, &n, &e), 0, "compare returns 0");
    is_int((long long)n, 50, "... over the first eval_samples (50) samples");
    ok(md < 1e-5, "... the folded logits are the unfolded ones (max abs diff %.2g)", md);
    is_int((long long)differ, 0, "... and no prediction differs");
    nb_fold_compare(&m, &f, te, 0, &md, &differ, &n, &e);
    is_int((long long)n, (long long)te->n, "limit 0: the whole test set (%zu)", te->n);
    /* a difference is seen: class 0's logit of the folded net raised by 100 */
    float *b = last_bias(&f);
    b[0] += 100.0f;
    nb_fold_compare(&m, &f, te, 0, &md, &differ, &n, &e);
    ok(fabs(md - 100.0) < 1e-3, "a bias raised by 100 shows as a max abs diff of 100 (%.6g)", md);
    size_t zero = class0(&m, te);
    is_int((long long)differ, (long long)(te->n - zero),
           "... and every prediction that was not class 0 changes (%zu of %zu)", differ, te->n);
    b[0] -= 100.0f;
    nb_model_free(&f);
    nb_model_free(&m);
}

static void test_time(const struct nb_dataset *tr, const struct nb_dataset *te)
{
    struct nb_model m, f;
    struct nb_error e;
    trained(&m, NB_NORM_BATCH, tr);
    nb_model_fold(&m, &f, &e);
    struct nb_fold_timing t;
    nb_fold_time(&m, &f, te, 64, 3, 0.002, &t);
    is_int(t.rounds, 3, "timing: 3 rounds");
    ok(t.passes >= 1, "... of %d pass(es) each", t.passes);
    ok(t.unfolded > 0 && t.folded > 0, "... both times positive (%.3g s, %.3g s per pass)",
       t.unfolded, t.folded);
    is_close(t.ratio, t.folded / t.unfolded, 0, 1e-12, "... ratio = folded / unfolded (%.3f)",
             t.ratio);
    is_close(t.loss_folded, t.loss_unfolded, 1e-5, 0, "... the same loss from both (%.6f)",
             t.loss_unfolded);
    is_close(t.acc_folded, t.acc_unfolded, 0, 0, "... and the same accuracy (%.4f)",
             t.acc_unfolded);
    nb_model_free(&f);
    nb_model_free(&m);
}

/* The folded network's checkpoint is the format's, with the layout of
 * the same description at norm type none. */
static void test_checkpoint(const struct nb_dataset *tr, const struct nb_dataset *te)
{
    struct nb_model m, f, g;
    struct nb_error e;
    trained(&m, NB_NORM_BATCH, tr);
    nb_model_fold(&m, &f, &e);
    unsigned char *buf;
    size_t len;
    struct nb_ckpt ck;
    is_int(nb_ckpt_encode(&f, &buf, &len, NULL, &e), 0, "encode the folded network");
    is_int(nb_ckpt_decode(buf, len, "folded.nbw", &ck, &e), 0, "... which decodes");
    free(buf);
    struct nb_model_desc d = m.desc;
    d.norm.type = NB_NORM_NONE;
    if (nb_model_build(&g, &d, 16, 99, &e))
        tap_bail("build norm none: %s", e.msg);
    is_int(nb_ckpt_apply(&ck, &g, &e), 0, "... and loads into the network of norm type none");
    double md;
    size_t differ, n;
    nb_fold_compare(&f, &g, te, 0, &md, &differ, &n, &e);
    ok(md == 0, "... which then gives the folded logits exactly (max abs diff %.2g)", md);
    is_int(nb_ckpt_apply(&ck, &m, &e), NB_EINVAL, "the unfolded network refuses it");
    contains(e.msg, "layout mismatch", "... a layout mismatch");
    nb_ckpt_free(&ck);
    nb_model_free(&g);
    nb_model_free(&f);
    nb_model_free(&m);
}

static void test_lp(const struct nb_dataset *tr, const struct nb_dataset *te)
{
    struct nb_model m, f;
    struct nb_error e;
    int norms = trained(&m, NB_NORM_LP, tr);
    is_int(nb_model_fold(&m, &f, &e), norms, "lp norm cnn: %d norm layers folded", norms);
    double md;
    size_t differ, n;
    nb_fold_compare(&m, &f, te, 0, &md, &differ, &n, &e);
    ok(md < 1e-5, "... the same logits (max abs diff %.2g)", md);
    nb_model_free(&f);
    nb_model_free(&m);
}

int main(void)
{
    struct nb_dataset tr, te;
    blobs(&tr, &te);
    test_compare(&tr, &te);
    test_time(&tr, &te);
    test_checkpoint(&tr, &te);
    test_lp(&tr, &te);
    nb_dataset_free(&tr);
    nb_dataset_free(&te);
    return tap_exit();
}
