/* src/data/dataset.c - data sets: storage, views, gathering, names. */
#include "data/data.h"
#include "data/data_impl.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <gsl/gsl_randist.h>

struct nb_data_store {
    atomic_int refs;
    float *x;
    int *y;
    float *t;
};

/* Large blocks (a decoded data set is ~200 MB) are 2 MiB aligned and,
 * where the kernel offers transparent huge pages on request, asked for
 * them: first-touch page faults are a good part of the decoding time. */
#define HUGE_BLOCK ((size_t)2 << 20)

void *nb_data_alloc_aligned(size_t bytes)
{
    void *p = NULL;
    size_t align = bytes >= 2 * HUGE_BLOCK ? HUGE_BLOCK : 64;
    if (bytes == 0)
        bytes = 64;
    bytes = (bytes + align - 1) & ~(align - 1);
    if (posix_memalign(&p, align, bytes) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (align == HUGE_BLOCK)
        (void)madvise(p, bytes, MADV_HUGEPAGE); /* advice only */
#endif
    return p;
}

void nb_data_store_ref(struct nb_data_store *s)
{
    if (s)
        atomic_fetch_add(&s->refs, 1);
}

int nb_data_store_refs(const struct nb_data_store *s)
{
    return s ? atomic_load(&((struct nb_data_store *)s)->refs) : 0;
}

static void store_unref(struct nb_data_store *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    free(s->x);
    free(s->y);
    free(s->t);
    free(s);
}

bool nb_dataset_is_dense(const struct nb_dataset *ds)
{
    return ds->rows == NULL && ds->mean == 0.0f && ds->std == 1.0f;
}

/* n * per * elem without overflow; 0 on overflow. */
static size_t mul_bytes(size_t n, size_t per, size_t elem)
{
    if (per && n > SIZE_MAX / per)
        return 0;
    if (elem && n * per > SIZE_MAX / elem / 2)
        return 0;
    return n * per * elem;
}

int nb_dataset_init(struct nb_dataset *ds, const char *name, size_t n,
                     const struct nb_shape *shape, int classes, int tdim,
                     struct nb_error *err)
{
    memset(ds, 0, sizeof *ds);
    snprintf(ds->name, sizeof ds->name, "%s", name ? name : "");
    if (shape->c < 1 || shape->h < 1 || shape->w < 1 || classes < 0 ||
        tdim < 0)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "%s: bad data set shape %dx%dx%d (classes %d, "
                            "targets %d)", ds->name, shape->c, shape->h,
                            shape->w, classes, tdim);
    size_t numel = nb_shape_numel(shape);
    size_t xb = mul_bytes(n, numel, sizeof(float));
    size_t tb = mul_bytes(n, (size_t)tdim, sizeof(float));
    if ((n && numel && !xb) || (n && tdim && !tb))
        return nb_error_set(err, NB_ENOMEM, NULL, 0,
                            "%s: %zu samples of %zu floats do not fit in memory",
                            ds->name, n, numel);
    struct nb_data_store *s = calloc(1, sizeof *s);
    if (!s)
        goto nomem;
    atomic_init(&s->refs, 1);
    s->x = nb_data_alloc_aligned(xb);
    if (classes > 0)
        s->y = malloc(n ? n * sizeof(int) : 1);
    if (tdim > 0)
        s->t = nb_data_alloc_aligned(tb);
    if (!s->x || (classes > 0 && !s->y) || (tdim > 0 && !s->t)) {
        store_unref(s);
        goto nomem;
    }
    ds->store = s;
    ds->x = s->x;
    ds->y = s->y;
    ds->t = s->t;
    ds->n = n;
    ds->shape = *shape;
    ds->classes = classes;
    ds->tdim = tdim;
    ds->mean = 0.0f;
    ds->std = 1.0f;
    return NB_OK;
nomem:
    return nb_error_set(err, NB_ENOMEM, NULL, 0,
                        "%s: cannot allocate %zu samples of %dx%dx%d floats "
                        "(%.1f MB)", ds->name, n, shape->c, shape->h,
                        shape->w, (double)xb / 1e6);
}

void nb_dataset_free(struct nb_dataset *ds)
{
    if (!ds)
        return;
    store_unref(ds->store);
    free(ds->rows);
    memset(ds, 0, sizeof *ds);
}

int nb_dataset_view(const struct nb_dataset *parent, const size_t *idx,
                    size_t k, const char *name, struct nb_dataset *out,
                    struct nb_error *err)
{
    size_t *rows = NULL;
    if (k > parent->n && !idx)
        return nb_error_set(err, NB_ERANGE, NULL, 0,
                            "%s: view of %zu samples of a set of %zu",
                            parent->name, k, parent->n);
    if (idx || parent->rows || k != parent->n) {
        rows = malloc(k ? k * sizeof *rows : 1);
        if (!rows)
            return nb_error_set(err, NB_ENOMEM, NULL, 0,
                                "%s: cannot allocate a view of %zu samples",
                                parent->name, k);
        for (size_t j = 0; j < k; j++) {
            size_t i = idx ? idx[j] : j;
            if (i >= parent->n) {
                free(rows);
                return nb_error_set(err, NB_ERANGE, NULL, 0,
                                    "%s: sample %zu out of range (expected "
                                    "< %zu)", parent->name, i, parent->n);
            }
            rows[j] = nb_dataset_row(parent, i);
        }
    }
    struct nb_dataset v = *parent;
    snprintf(v.name, sizeof v.name, "%s", name ? name : parent->name);
    v.n = k;
    v.rows = rows;
    nb_data_store_ref(v.store);
    *out = v;
    return NB_OK;
}

void nb_dataset_gather(const struct nb_dataset *ds, const size_t *idx,
                       size_t k, float *x, int *y, float *t)
{
    const size_t numel = nb_shape_numel(&ds->shape);
    const size_t tdim = (size_t)ds->tdim;
    const bool affine = !(ds->mean == 0.0f && ds->std == 1.0f);
    const float mean = ds->mean, std = ds->std;
    for (size_t j = 0; j < k; j++) {
        size_t i = idx ? idx[j] : j;
        NB_ASSERT(i < ds->n);
        size_t r = nb_dataset_row(ds, i);
        if (x) {
            const float *src = ds->x + r * numel;
            float *dst = x + j * numel;
            if (affine)
                for (size_t e = 0; e < numel; e++)
                    dst[e] = (src[e] - mean) / std;
            else
                memcpy(dst, src, numel * sizeof *dst);
        }
        if (y && ds->y)
            y[j] = ds->y[r];
        if (t && ds->t)
            memcpy(t + j * tdim, ds->t + r * tdim, tdim * sizeof *t);
    }
}

int nb_dataset_dense(const struct nb_dataset *src, const char *name,
                     struct nb_dataset *out, struct nb_error *err)
{
    struct nb_dataset d;
    int rc = nb_dataset_init(&d, name ? name : src->name, src->n,
                              &src->shape, src->classes, src->tdim, err);
    if (rc)
        return rc;
    nb_dataset_gather(src, NULL, src->n, d.x, d.y, d.t);
    d.pixels = src->pixels && src->mean == 0.0f && src->std == 1.0f;
    *out = d;
    return NB_OK;
}

int nb_dataset_make_private(struct nb_dataset *ds, struct nb_error *err)
{
    if (ds->store && nb_data_store_refs(ds->store) == 1 && !ds->rows)
        return NB_OK;
    struct nb_dataset d;
    int rc = nb_dataset_init(&d, ds->name, ds->n, &ds->shape, ds->classes,
                              ds->tdim, err);
    if (rc)
        return rc;
    /* copy the stored values (no standardization: it stays pending) */
    struct nb_dataset raw = *ds;
    raw.mean = 0.0f;
    raw.std = 1.0f;
    nb_dataset_gather(&raw, NULL, ds->n, d.x, d.y, d.t);
    d.pixels = ds->pixels;
    d.mean = ds->mean;
    d.std = ds->std;
    nb_dataset_free(ds);
    *ds = d;
    return NB_OK;
}

void nb_dataset_moments(const struct nb_dataset *ds, bool as_read,
                        double *mean, double *std)
{
    const size_t numel = nb_shape_numel(&ds->shape);
    const double cnt = (double)ds->n * (double)numel;
    double sum = 0.0, ss = 0.0;
    if (ds->n == 0 || numel == 0) {
        *mean = 0.0;
        *std = 0.0;
        return;
    }
    for (size_t i = 0; i < ds->n; i++) {
        const float *p = ds->x + nb_dataset_row(ds, i) * numel;
        double s = 0.0;
        for (size_t e = 0; e < numel; e++)
            s += p[e];
        sum += s;
    }
    double m = sum / cnt;
    for (size_t i = 0; i < ds->n; i++) {
        const float *p = ds->x + nb_dataset_row(ds, i) * numel;
        double s = 0.0;
        for (size_t e = 0; e < numel; e++) {
            double d = p[e] - m;
            s += d * d;
        }
        ss += s;
    }
    double sd = sqrt(ss / cnt);
    if (as_read) {
        m = (m - ds->mean) / ds->std;
        sd = sd / ds->std;
    }
    *mean = m;
    *std = sd;
}

void nb_dataset_class_counts(const struct nb_dataset *ds, size_t *counts)
{
    for (int c = 0; c < ds->classes; c++)
        counts[c] = 0;
    if (!ds->y)
        return;
    for (size_t i = 0; i < ds->n; i++) {
        int c = ds->y[nb_dataset_row(ds, i)];
        NB_ASSERT(c >= 0 && c < ds->classes);
        counts[c]++;
    }
}

void nb_data_permutation(size_t *perm, size_t n, gsl_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    if (n > 1)
        gsl_ran_shuffle(rng, perm, n, sizeof *perm);
}

/* ---- names -------------------------------------------------------------- */

/* Names by enumerator, NULL-terminated: the config's values of data.source,
 * data.standardize, data.corruption and data.resize_mode (keys.c reads
 * these tables), so they are also the names in run_ids and meta.txt. */
const char *const nb_data_source_names[NB_SRC_COUNT + 1] = {
    [NB_SRC_FASHION_MNIST] = "fashion-mnist",
    [NB_SRC_MNIST] = "mnist",
    [NB_SRC_IDX] = "idx",
    [NB_SRC_CIFAR10] = "cifar10",
    [NB_SRC_BLOBS] = "blobs",
    [NB_SRC_DLN] = "dln",
    [NB_SRC_COUNT] = NULL,
};

const char *const nb_std_mode_names[NB_STD_COUNT + 1] = {
    [NB_STD_DEFAULT] = "dataset",
    [NB_STD_COMPUTED] = "computed",
    [NB_STD_GIVEN] = "given",
    [NB_STD_NONE] = "none",
    [NB_STD_COUNT] = NULL,
};

const char *const nb_corruption_names[NB_CORRUPT_COUNT + 1] = {
    [NB_CORRUPT_NONE] = "none",
    [NB_CORRUPT_GAUSSIAN_NOISE] = "noise",
    [NB_CORRUPT_BLUR] = "blur",
    [NB_CORRUPT_CONTRAST] = "contrast",
    [NB_CORRUPT_INVERSION] = "invert",
    [NB_CORRUPT_COUNT] = NULL,
};

const char *const nb_resize_mode_names[NB_RESIZE_COUNT + 1] = {
    [NB_RESIZE_PAD_CROP] = "padcrop", [NB_RESIZE_BILINEAR] = "bilinear",
    [NB_RESIZE_COUNT] = NULL,
};

static int parse_name(const char *const *names, int count, const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < count; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

#define NAME_OF(table, count, v) \
    ((int)(v) >= 0 && (int)(v) < (count) ? (table)[(int)(v)] : "?")

const char *nb_data_source_name(enum nb_data_source s)
{
    return NAME_OF(nb_data_source_names, NB_SRC_COUNT, s);
}
int nb_data_source_parse(const char *name)
{
    return parse_name(nb_data_source_names, NB_SRC_COUNT, name);
}
const char *nb_std_mode_name(enum nb_std_mode m)
{
    return NAME_OF(nb_std_mode_names, NB_STD_COUNT, m);
}
int nb_std_mode_parse(const char *name)
{
    return parse_name(nb_std_mode_names, NB_STD_COUNT, name);
}
const char *nb_corruption_name(enum nb_corruption c)
{
    return NAME_OF(nb_corruption_names, NB_CORRUPT_COUNT, c);
}
int nb_corruption_parse(const char *name)
{
    return parse_name(nb_corruption_names, NB_CORRUPT_COUNT, name);
}
const char *nb_resize_mode_name(enum nb_resize_mode m)
{
    return NAME_OF(nb_resize_mode_names, NB_RESIZE_COUNT, m);
}
int nb_resize_mode_parse(const char *name)
{
    return parse_name(nb_resize_mode_names, NB_RESIZE_COUNT, name);
}
