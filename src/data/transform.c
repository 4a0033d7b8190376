/* src/data/transform.c - splits, corruptions and changes of resolution.
 *
 * Splits are views (index arrays over the parent's storage); corruptions
 * and resizing write a private copy, so a shared parent (the per-process
 * cache) is never modified. */
#include "data/data.h"
#include "data/data_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

/* ---- split / subset ----------------------------------------------------- */

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

int nb_data_split(const struct nb_dataset *src, size_t n_val, size_t n_train,
                  bool balanced, gsl_rng *rng, struct nb_dataset *train,
                  struct nb_dataset *val, struct nb_error *err)
{
    const size_t n = src->n;
    size_t *perm = NULL, *pick = NULL, *taken = NULL;
    int rc = NB_OK;
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    if (n_val >= n)
        return nb_error_set(err, NB_ERANGE, NULL, 0,
                            "%s: a validation split of %zu samples leaves no "
                            "training samples (expected fewer than %zu)",
                            src->name, n_val, n);
    const size_t nrest = n - n_val;
    if (n_train == 0)
        n_train = nrest;
    if (n_train > nrest)
        return nb_error_set(err, NB_ERANGE, NULL, 0,
                            "%s: a training subset of %zu samples is larger "
                            "than the %zu training samples%s (expected at "
                            "most %zu)", src->name, n_train, nrest,
                            n_val ? " left after the validation split" : "",
                            nrest);
    if (balanced && n_train < nrest && (src->classes < 1 || !src->y))
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "%s: a class-balanced subset needs class labels",
                            src->name);
    perm = malloc(n * sizeof *perm);
    pick = malloc((n_train ? n_train : 1) * sizeof *pick);
    if (!perm || !pick) {
        rc = nb_error_set(err, NB_ENOMEM, NULL, 0,
                          "%s: cannot allocate a split of %zu samples",
                          src->name, n);
        goto out;
    }
    if (rng)
        nb_data_permutation(perm, n, rng);
    else
        for (size_t i = 0; i < n; i++)
            perm[i] = i;
    const size_t *rest = perm + n_val;
    if (balanced && n_train < nrest) {
        const int k = src->classes;
        taken = calloc((size_t)k, sizeof *taken);
        if (!taken) {
            rc = nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
            goto out;
        }
        size_t m = 0;
        for (size_t j = 0; j < nrest && m < n_train; j++) {
            int c = src->y[nb_dataset_row(src, rest[j])];
            size_t quota = n_train / (size_t)k + ((size_t)c < n_train % (size_t)k);
            if (taken[c] < quota) {
                taken[c]++;
                pick[m++] = rest[j];
            }
        }
        if (m < n_train) {
            for (int c = 0; c < k; c++) {
                size_t quota = n_train / (size_t)k + ((size_t)c < n_train % (size_t)k);
                if (taken[c] < quota) {
                    rc = nb_error_set(err, NB_ERANGE, NULL, 0,
                                      "%s: a class-balanced subset of %zu "
                                      "samples needs %zu of class %d (got "
                                      "only %zu%s)", src->name, n_train,
                                      quota, c, taken[c],
                                      n_val ? " after the validation split"
                                            : "");
                    goto out;
                }
            }
        }
    } else {
        memcpy(pick, rest, n_train * sizeof *pick);
    }
    /* sorted rows read the parent's storage in order */
    qsort(pick, n_train, sizeof *pick, cmp_size);
    qsort(perm, n_val, sizeof *perm, cmp_size);
    char name[64];
    snprintf(name, sizeof name, "%s", src->name);
    rc = nb_dataset_view(src, pick, n_train, name, train, err);
    if (rc == 0 && n_val) {
        char *slash = strrchr(name, '/');
        if (slash)
            snprintf(slash, sizeof name - (size_t)(slash - name), "/val");
        else
            snprintf(name, sizeof name, "val");
        rc = nb_dataset_view(src, perm, n_val, name, val, err);
    }
    if (rc)
        nb_dataset_free(train);
out:
    free(perm);
    free(pick);
    free(taken);
    return rc;
}

/* ---- corruptions -------------------------------------------------------- */

/* Hendrycks & Dietterich (2019), CIFAR-10-C (make_cifar_c.py). */
static const double level_table[][5] = {
    [NB_CORRUPT_NONE] = {0, 0, 0, 0, 0},
    [NB_CORRUPT_GAUSSIAN_NOISE] = {0.04, 0.06, 0.08, 0.09, 0.10},
    [NB_CORRUPT_BLUR] = {0.4, 0.6, 0.7, 0.8, 1.0},
    [NB_CORRUPT_CONTRAST] = {0.75, 0.5, 0.4, 0.3, 0.15},
    [NB_CORRUPT_INVERSION] = {0.2, 0.4, 0.6, 0.8, 1.0},
};
_Static_assert(sizeof level_table / sizeof level_table[0] == NB_CORRUPT_COUNT,
               "level_table out of sync with enum nb_corruption");

double nb_corruption_level(enum nb_corruption kind, int severity)
{
    if ((int)kind < 0 || kind >= NB_CORRUPT_COUNT || severity < 1 ||
        severity > 5)
        return 0.0;
    return level_table[kind][severity - 1];
}

static float clip01(float v)
{
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

/* Separable Gaussian blur of one h x w plane, edges replicated (skimage's
 * mode "nearest"); tmp holds h * w floats, k the 2r+1 weights. */
static void blur_plane(float *p, float *tmp, int h, int w, const float *k,
                       int r)
{
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            float acc = 0.0f;
            for (int d = -r; d <= r; d++) {
                int jj = j + d < 0 ? 0 : j + d >= w ? w - 1 : j + d;
                acc += k[d + r] * p[i * w + jj];
            }
            tmp[i * w + j] = acc;
        }
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            float acc = 0.0f;
            for (int d = -r; d <= r; d++) {
                int ii = i + d < 0 ? 0 : i + d >= h ? h - 1 : i + d;
                acc += k[d + r] * tmp[ii * w + j];
            }
            p[i * w + j] = clip01(acc);
        }
}

int nb_data_corrupt(struct nb_dataset *ds, enum nb_corruption kind,
                    int severity, gsl_rng *rng, struct nb_error *err)
{
    if ((int)kind < 0 || kind >= NB_CORRUPT_COUNT)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "unknown corruption %d", (int)kind);
    if (kind == NB_CORRUPT_NONE)
        return NB_OK;
    if (severity < 1 || severity > 5)
        return nb_error_set(err, NB_ERANGE, NULL, 0,
                            "%s: corruption severity out of range (expected "
                            "1..5, got %d)", nb_corruption_name(kind), severity);
    if (!ds->pixels)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "%s: the %s corruption needs image data with "
                            "pixels in [0,1]", ds->name,
                            nb_corruption_name(kind));
    if ((kind == NB_CORRUPT_GAUSSIAN_NOISE || kind == NB_CORRUPT_INVERSION) &&
        !rng)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "%s: the %s corruption needs a random stream",
                            ds->name, nb_corruption_name(kind));
    int rc = nb_dataset_make_private(ds, err);
    if (rc)
        return rc;
    const double lv = nb_corruption_level(kind, severity);
    const int c = ds->shape.c, h = ds->shape.h, w = ds->shape.w;
    const size_t plane = (size_t)h * (size_t)w;
    const size_t numel = nb_shape_numel(&ds->shape);
    switch (kind) {
    case NB_CORRUPT_GAUSSIAN_NOISE:
        for (size_t e = 0; e < ds->n * numel; e++)
            ds->x[e] = clip01(ds->x[e] + (float)lv * nb_rng_normal(rng));
        break;
    case NB_CORRUPT_BLUR: {
        int r = (int)(4.0 * lv + 0.5);
        float k[2 * 16 + 1], ksum = 0.0f;
        if (r > 16)
            r = 16;
        for (int d = -r; d <= r; d++) {
            k[d + r] = (float)exp(-0.5 * d * d / (lv * lv));
            ksum += k[d + r];
        }
        for (int d = 0; d <= 2 * r; d++)
            k[d] /= ksum;
        float *tmp = nb_alloc_floats(plane);
        if (!tmp)
            return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
        for (size_t i = 0; i < ds->n * (size_t)c; i++)
            blur_plane(ds->x + i * plane, tmp, h, w, k, r);
        free(tmp);
        break;
    }
    case NB_CORRUPT_CONTRAST:
        for (size_t i = 0; i < ds->n * (size_t)c; i++) {
            float *p = ds->x + i * plane;
            double m = 0.0;
            for (size_t e = 0; e < plane; e++)
                m += p[e];
            const float mf = (float)(m / (double)plane);
            for (size_t e = 0; e < plane; e++)
                p[e] = clip01((p[e] - mf) * (float)lv + mf);
        }
        break;
    case NB_CORRUPT_INVERSION: {
        size_t *perm = malloc((ds->n ? ds->n : 1) * sizeof *perm);
        if (!perm)
            return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
        nb_data_permutation(perm, ds->n, rng);
        size_t k = (size_t)floor(lv * (double)ds->n + 0.5);
        for (size_t j = 0; j < k; j++) {
            float *p = ds->x + perm[j] * numel;
            for (size_t e = 0; e < numel; e++)
                p[e] = 1.0f - p[e];
        }
        free(perm);
        break;
    }
    case NB_CORRUPT_NONE:
    case NB_CORRUPT_COUNT:
        NB_ASSERT(!"returned or refused above");
        break;
    }
    return NB_OK;
}

/* ---- change of resolution ----------------------------------------------- */

/* One bilinear tap along an axis, PyTorch's align_corners=False. */
struct tap {
    int i0, i1;
    float l0, l1;
};

static void bilinear_taps(struct tap *t, int in, int out)
{
    const double scale = (double)in / (double)out;
    for (int j = 0; j < out; j++) {
        double s = scale * (j + 0.5) - 0.5;
        if (s < 0.0)
            s = 0.0;
        int i0 = (int)s;
        if (i0 > in - 1)
            i0 = in - 1;
        int i1 = i0 < in - 1 ? i0 + 1 : i0;
        float l1 = (float)(s - i0);
        t[j] = (struct tap){i0, i1, 1.0f - l1, l1};
    }
}

int nb_data_resize(struct nb_dataset *ds, int h, int w,
                   enum nb_resize_mode mode, struct nb_error *err)
{
    if (h < 1 || w < 1 || h > 16384 || w > 16384)
        return nb_error_set(err, NB_ERANGE, NULL, 0,
                            "%s: target resolution out of range (expected "
                            "1..16384 per side, got %dx%d)", ds->name, h, w);
    if ((int)mode < 0 || mode >= NB_RESIZE_COUNT)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "unknown resize mode %d", (int)mode);
    const int c = ds->shape.c, ih = ds->shape.h, iw = ds->shape.w;
    struct nb_shape shape = {c, h, w};
    struct nb_dataset d;
    struct tap *th = NULL, *tw = NULL;
    int rc = nb_dataset_init(&d, ds->name, ds->n, &shape, ds->classes,
                              ds->tdim, err);
    if (rc)
        return rc;
    th = malloc((size_t)h * sizeof *th);
    tw = malloc((size_t)w * sizeof *tw);
    if (!th || !tw) {
        rc = nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
        goto out;
    }
    if (mode == NB_RESIZE_BILINEAR) {
        bilinear_taps(th, ih, h);
        bilinear_taps(tw, iw, w);
    } else {
        /* centre pad (offset floor((out - in) / 2), zeros) or crop
         * (offset floor((in - out) / 2)); i0 = -1 marks padding */
        int ph = h > ih ? (h - ih) / 2 : 0, ch = ih > h ? (ih - h) / 2 : 0;
        int pw = w > iw ? (w - iw) / 2 : 0, cw = iw > w ? (iw - w) / 2 : 0;
        for (int j = 0; j < h; j++) {
            int s = j - ph + ch;
            th[j] = (struct tap){s >= 0 && s < ih ? s : -1, 0, 1.0f, 0.0f};
        }
        for (int j = 0; j < w; j++) {
            int s = j - pw + cw;
            tw[j] = (struct tap){s >= 0 && s < iw ? s : -1, 0, 1.0f, 0.0f};
        }
    }
    const size_t in_numel = nb_shape_numel(&ds->shape);
    const size_t out_numel = nb_shape_numel(&shape);
    for (size_t i = 0; i < ds->n; i++) {
        size_t r = nb_dataset_row(ds, i);
        if (d.y)
            d.y[i] = ds->y[r];
        if (d.t)
            memcpy(d.t + i * (size_t)ds->tdim, ds->t + r * (size_t)ds->tdim,
                   (size_t)ds->tdim * sizeof *d.t);
        for (int ch_ = 0; ch_ < c; ch_++) {
            const float *src = ds->x + r * in_numel + (size_t)ch_ * ih * iw;
            float *dst = d.x + i * out_numel + (size_t)ch_ * h * w;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    const struct tap *a = &th[y], *b = &tw[x];
                    float v;
                    if (mode == NB_RESIZE_BILINEAR)
                        v = a->l0 * (b->l0 * src[a->i0 * iw + b->i0] +
                                     b->l1 * src[a->i0 * iw + b->i1]) +
                            a->l1 * (b->l0 * src[a->i1 * iw + b->i0] +
                                     b->l1 * src[a->i1 * iw + b->i1]);
                    else
                        v = (a->i0 < 0 || b->i0 < 0) ? 0.0f
                                                     : src[a->i0 * iw + b->i0];
                    dst[(size_t)y * w + x] = v;
                }
        }
    }
    d.pixels = ds->pixels;
    d.mean = ds->mean;
    d.std = ds->std;
    nb_dataset_free(ds);
    *ds = d;
    memset(&d, 0, sizeof d);
out:
    nb_dataset_free(&d);
    free(th);
    free(tw);
    return rc;
}
