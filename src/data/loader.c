/* src/data/loader.c - batches of a data set, shuffled per epoch.
 *
 * Everything is allocated in nb_loader_init; nb_loader_next only gathers
 * (with the set's standardization) into the preallocated buffers. */
#include "data/data.h"
#include "data/data_impl.h"

#include <stdlib.h>
#include <string.h>

int nb_loader_init(struct nb_loader *ld, const struct nb_dataset *ds,
                   int batch, bool drop_last, gsl_rng *rng,
                   struct nb_error *err)
{
    memset(ld, 0, sizeof *ld);
    if (batch < 1)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "%s: batch size must be at least 1 (got %d)",
                            ds->name, batch);
    if (drop_last && (size_t)batch > ds->n)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "%s: batch size %d with the last partial batch "
                            "dropped leaves no batch (the set has %zu "
                            "samples)", ds->name, batch, ds->n);
    const size_t numel = nb_shape_numel(&ds->shape);
    const size_t rows = (size_t)batch < ds->n ? (size_t)batch : ds->n;
    ld->ds = ds;
    ld->batch = (size_t)batch;
    ld->drop_last = drop_last;
    ld->rng = rng;
    ld->shuffle = rng != NULL;
    ld->perm = malloc((ds->n ? ds->n : 1) * sizeof *ld->perm);
    ld->x = nb_alloc_floats(rows * numel);
    if (ds->y)
        ld->y = malloc((rows ? rows : 1) * sizeof *ld->y);
    if (ds->t)
        ld->t = nb_alloc_floats(rows * (size_t)ds->tdim);
    if (!ld->perm || !ld->x || (ds->y && !ld->y) || (ds->t && !ld->t)) {
        nb_loader_free(ld);
        return nb_error_set(err, NB_ENOMEM, NULL, 0,
                            "%s: cannot allocate batches of %d samples",
                            ds->name, batch);
    }
    for (size_t i = 0; i < ds->n; i++)
        ld->perm[i] = i;
    return NB_OK;
}

void nb_loader_epoch(struct nb_loader *ld)
{
    ld->pos = 0;
    ld->epoch++;
    if (ld->shuffle)
        nb_data_permutation(ld->perm, ld->ds->n, ld->rng);
}

int nb_loader_next(struct nb_loader *ld, const float **x, const int **y,
                   const float **t)
{
    const size_t n = ld->ds->n;
    size_t k = n - ld->pos < ld->batch ? n - ld->pos : ld->batch;
    if (k == 0 || (k < ld->batch && ld->drop_last)) {
        ld->pos = n;
        k = 0;
    } else {
        nb_dataset_gather(ld->ds, ld->perm + ld->pos, k, ld->x, ld->y, ld->t);
        ld->pos += k;
    }
    if (x)
        *x = ld->x;
    if (y)
        *y = ld->y;
    if (t)
        *t = ld->t;
    return (int)k;
}

size_t nb_loader_batches(const struct nb_loader *ld)
{
    const size_t n = ld->ds ? ld->ds->n : 0;
    if (ld->batch == 0)
        return 0;
    return ld->drop_last ? n / ld->batch : (n + ld->batch - 1) / ld->batch;
}

void nb_loader_free(struct nb_loader *ld)
{
    if (!ld)
        return;
    free(ld->perm);
    free(ld->x);
    free(ld->y);
    free(ld->t);
    memset(ld, 0, sizeof *ld);
}
