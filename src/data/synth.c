/* src/data/synth.c - seeded synthetic data sets. */
#include "data/data.h"
#include "data/data_impl.h"

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

void nb_synth_opts_default(struct nb_synth_opts *s)
{
    memset(s, 0, sizeof *s);
    s->seed = 1;
    s->spread = 0.015;
    s->noise = 0.15;
}

static int synth_rng(const struct nb_synth_opts *s, gsl_rng **r,
                     struct nb_error *err)
{
    *r = nb_rng_alloc(s->seed, NB_STREAM_SYNTH);
    if (!*r)
        return nb_error_set(err, NB_ENOMEM, NULL, 0,
                            "cannot allocate a random generator");
    return NB_OK;
}

static float clip01(double v)
{
    return v < 0.0 ? 0.0f : v > 1.0 ? 1.0f : (float)v;
}

static void blobs_fill(struct nb_dataset *ds, const float *centres,
                       double noise, gsl_rng *r)
{
    const size_t numel = nb_shape_numel(&ds->shape);
    for (size_t i = 0; i < ds->n; i++) {
        int c = (int)(i % (size_t)ds->classes);
        const float *mu = centres + (size_t)c * numel;
        float *x = ds->x + i * numel;
        ds->y[i] = c;
        for (size_t e = 0; e < numel; e++)
            x[e] = clip01(mu[e] + noise * nb_rng_normal(r));
    }
}

int nb_synth_blobs(const struct nb_synth_opts *s, struct nb_dataset *train,
                   struct nb_dataset *test, struct nb_error *err)
{
    struct nb_shape shape = s->shape;
    size_t ntr = s->n_train ? s->n_train : 10000;
    size_t nte = s->n_test ? s->n_test : 2000;
    int classes = s->classes ? s->classes : 10;
    gsl_rng *r = NULL;
    float *centres = NULL;
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (shape.c == 0 && shape.h == 0 && shape.w == 0)
        shape = (struct nb_shape){1, 28, 28};
    if (classes < 2 || shape.c < 1 || shape.h < 1 || shape.w < 1 ||
        !(s->spread >= 0.0) || !(s->noise >= 0.0))
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "blobs: bad parameters (expected classes >= 2, a "
                            "positive shape and spread, noise >= 0; got %d "
                            "classes, %dx%dx%d, spread %g, noise %g)",
                            classes, shape.c, shape.h, shape.w, s->spread,
                            s->noise);
    const size_t numel = nb_shape_numel(&shape);
    int rc = synth_rng(s, &r, err);
    if (rc)
        return rc;
    centres = nb_alloc_floats((size_t)classes * numel);
    if (!centres) {
        rc = nb_error_set(err, NB_ENOMEM, NULL, 0,
                          "blobs: cannot allocate %d class centres", classes);
        goto out;
    }
    for (size_t e = 0; e < (size_t)classes * numel; e++)
        centres[e] = (float)(0.5 + s->spread * nb_rng_normal(r));
    if ((rc = nb_dataset_init(train, "blobs/train", ntr, &shape, classes, 0,
                               err)) ||
        (rc = nb_dataset_init(test, "blobs/test", nte, &shape, classes, 0,
                               err)))
        goto out;
    train->pixels = test->pixels = true;
    blobs_fill(train, centres, s->noise, r);
    blobs_fill(test, centres, s->noise, r);
out:
    if (rc) {
        nb_dataset_free(train);
        nb_dataset_free(test);
    }
    free(centres);
    gsl_rng_free(r);
    return rc;
}

static void dln_fill(struct nb_dataset *ds, const double *a, int d,
                     gsl_rng *r)
{
    for (size_t i = 0; i < ds->n; i++) {
        float *x = ds->x + i * (size_t)d;
        float *t = ds->t + i * (size_t)d;
        for (int k = 0; k < d; k++)
            x[k] = nb_rng_normal(r);
        for (int j = 0; j < d; j++) {
            double acc = 0.0;
            for (int k = 0; k < d; k++)
                acc += a[j * d + k] * (double)x[k];
            t[j] = (float)acc;
        }
    }
}

int nb_synth_dln(const struct nb_synth_opts *s, struct nb_dataset *train,
                 struct nb_dataset *test, struct nb_error *err)
{
    size_t ntr = s->n_train ? s->n_train : 1000;
    size_t nte = s->n_test ? s->n_test : 1000;
    int d = (int)nb_shape_numel(&s->shape);
    gsl_rng *r = NULL;
    double *a = NULL;
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (s->shape.c == 0 && s->shape.h == 0 && s->shape.w == 0)
        d = 10;
    if (d < 1 || d > 4096)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "dln: bad dimension (expected 1..4096, got %d)", d);
    struct nb_shape shape = {d, 1, 1};
    int rc = synth_rng(s, &r, err);
    if (rc)
        return rc;
    a = malloc((size_t)d * (size_t)d * sizeof *a);
    if (!a) {
        rc = nb_error_set(err, NB_ENOMEM, NULL, 0,
                          "dln: cannot allocate a %dx%d matrix", d, d);
        goto out;
    }
    for (int i = 0; i < d * d; i++)
        a[i] = nb_rng_normal(r);
    if ((rc = nb_dataset_init(train, "dln/train", ntr, &shape, 0, d, err)) ||
        (rc = nb_dataset_init(test, "dln/test", nte, &shape, 0, d, err)))
        goto out;
    dln_fill(train, a, d, r);
    dln_fill(test, a, d, r);
out:
    if (rc) {
        nb_dataset_free(train);
        nb_dataset_free(test);
    }
    free(a);
    gsl_rng_free(r);
    return rc;
}
