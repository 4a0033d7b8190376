/* src/data/prepare.c - the run's train / val / test sets from options,
 * over a small per-process cache of decoded raw sets. */
#include <config.h> /* autoconf's */

#include "data/data.h"
#include "data/data_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/rng.h"

#define FASHION_HINT "apt-get install dataset-fashion-mnist"

#define NB_STR_(x) #x
#define NB_STR(x) NB_STR_(x)
#define INF HUGE_VAL
#define AT(m) NB_KEY_AT(struct nb_data_opts, m)
const struct nb_key nb_data_keys[] = {
    { NB_K_ENUM("data", "source", "fashion-mnist", nb_data_source_names,
                "data set; blobs and dln are synthetic"),
      AT(source) },
    { NB_K_STR("data", "dir", "", 0, "directory of the data files; empty = the source's default"),
      AT(dir) },
    { NB_K_INT("data", "classes", "0", 0, 256, NB_KF_ADDED,
               "idx: number of classes (labels 0..classes-1); 0 = the largest "
               "training label + 1, at most " NB_STR(NB_IDX_INFER_MAX_CLASSES)),
      AT(classes) },
    { NB_K_INT("data", "train_subset", "0", 0, 1e9, 0, "use this many training samples; 0 = all"),
      AT(train_subset) },
    { NB_K_BOOL("data", "balanced", "false", "train_subset takes the same count from every class"),
      AT(balanced) },
    { NB_K_FLT("data", "val_split", "0", 0, 1, NB_KF_MAX_EXCL,
               "fraction of the training set held out for validation"),
      AT(val_split) },
    { NB_K_ENUM("data", "standardize", "dataset", nb_std_mode_names,
                "dataset: published mean/std; computed: from the training set; "
                "given: mean and std below; none"),
      AT(standardize) },
    { NB_K_FLIST("data", "mean", "", -INF, INF, 0,
                 "standardize = given: per-channel means, space-separated") },
    { NB_K_FLIST("data", "std", "", 0, INF, NB_KF_MIN_EXCL,
                 "standardize = given: per-channel stds, space-separated") },
    { NB_K_ENUM("data", "corruption", "none", nb_corruption_names,
                "corruption of the test set (domain shift)"),
      AT(corruption) },
    { NB_K_INT("data", "severity", "3", 1, 5, 0, "corruption severity"), AT(severity) },
    { NB_K_INT("data", "resize", "0", 0, 4096, 0,
               "resize images to this side length; 0 = native") },
    { NB_K_ENUM("data", "resize_mode", "padcrop", nb_resize_mode_names,
                "how to resize: zero padding / center crop, or bilinear"),
      AT(resize_mode) },
    { NB_K_BOOL("data", "fallback", "false", "use synthetic data when the data files are missing"),
      AT(fallback_to_synthetic) },
};
#undef AT
const int nb_data_n_keys = (int)(sizeof nb_data_keys / sizeof nb_data_keys[0]);

void nb_data_opts_default(struct nb_data_opts *o)
{
    memset(o, 0, sizeof *o);
    o->mean = 0.0f;
    o->std = 1.0f;
    o->resize_apply = NB_APPLY_TRAIN | NB_APPLY_TEST;
    nb_synth_opts_default(&o->synth);
    nb_keys_default(nb_data_keys, nb_data_n_keys, o);
}

/* ---- cache -------------------------------------------------------------- */

#define CACHE_SLOTS 4
#define CACHE_KEY_MAX (5 * NB_DATA_PATH_MAX + 256)

struct cache_entry {
    char key[CACHE_KEY_MAX];
    struct nb_dataset train, test; /* the cache's references */
    unsigned long stamp;           /* 0: empty */
};

/* The module's one piece of global state; see nb_data_cache_clear. */
static struct cache_entry cache[CACHE_SLOTS];
static unsigned long cache_clock;

void nb_data_cache_clear(void)
{
    for (int i = 0; i < CACHE_SLOTS; i++) {
        nb_dataset_free(&cache[i].train);
        nb_dataset_free(&cache[i].test);
        cache[i].key[0] = '\0';
        cache[i].stamp = 0;
    }
}

static struct cache_entry *cache_find(const char *key)
{
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (cache[i].stamp && strcmp(cache[i].key, key) == 0)
            return &cache[i];
    return NULL;
}

/* Takes ownership of train/test (the cache keeps them, and the caller gets
 * fresh references through cache_get). */
static void cache_put(const char *key, struct nb_dataset *train,
                      struct nb_dataset *test)
{
    struct cache_entry *e = &cache[0];
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (!cache[i].stamp) {
            e = &cache[i];
            break;
        }
        if (cache[i].stamp < e->stamp)
            e = &cache[i];
    }
    nb_dataset_free(&e->train);
    nb_dataset_free(&e->test);
    snprintf(e->key, sizeof e->key, "%s", key);
    e->train = *train;
    e->test = *test;
    e->stamp = ++cache_clock;
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
}

static int cache_get(struct cache_entry *e, struct nb_dataset *train,
                     struct nb_dataset *test, struct nb_error *err)
{
    int rc = nb_dataset_view(&e->train, NULL, e->train.n, NULL, train, err);
    if (rc == 0)
        rc = nb_dataset_view(&e->test, NULL, e->test.n, NULL, test, err);
    if (rc)
        nb_dataset_free(train);
    e->stamp = ++cache_clock;
    return rc;
}

/* ---- raw sets ----------------------------------------------------------- */

struct raw_req {
    enum nb_data_source src;
    const char *dir;
    const struct nb_data_opts *o;
};

static void raw_key(const struct raw_req *q, char *key, size_t size)
{
    const struct nb_synth_opts *s = &q->o->synth;
    switch (q->src) {
    case NB_SRC_IDX:
        snprintf(key, size, "idx|%s|%s|%s|%s|%s|%d", q->dir,
                 q->o->train_images, q->o->train_labels, q->o->test_images,
                 q->o->test_labels, q->o->classes);
        break;
    case NB_SRC_BLOBS:
    case NB_SRC_DLN:
        snprintf(key, size, "%s|%zu|%zu|%d|%dx%dx%d|%llu|%.17g|%.17g",
                 nb_data_source_name(q->src), s->n_train, s->n_test,
                 s->classes, s->shape.c, s->shape.h, s->shape.w,
                 (unsigned long long)s->seed, s->spread, s->noise);
        break;
    case NB_SRC_FASHION_MNIST:
    case NB_SRC_MNIST:
    case NB_SRC_CIFAR10:
        snprintf(key, size, "%s|%s", nb_data_source_name(q->src), q->dir);
        break;
    case NB_SRC_COUNT:
        NB_ASSERT(!"source refused by check_opts");
        break;
    }
}

static int idx_path(const struct raw_req *q, const char *given,
                    const char *base, char *path, size_t size,
                    struct nb_error *err)
{
    if (given[0]) {
        snprintf(path, size, "%s", given);
        return NB_OK;
    }
    if (!q->dir[0])
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "source idx needs a directory or the four file "
                            "paths (expected %s.gz or %s)", base, base);
    return nb_idx_find(q->dir, base, path, size, err);
}

static int raw_decode(const struct raw_req *q, struct nb_dataset *train,
                      struct nb_dataset *test, struct nb_error *err)
{
    const struct nb_data_opts *o = q->o;
    switch (q->src) {
    case NB_SRC_FASHION_MNIST:
    case NB_SRC_MNIST:
        return nb_mnist_dir_load(q->dir, train, test, err);
    case NB_SRC_CIFAR10:
        return nb_cifar10_load(q->dir, train, test, err);
    case NB_SRC_BLOBS:
        return nb_synth_blobs(&o->synth, train, test, err);
    case NB_SRC_DLN:
        return nb_synth_dln(&o->synth, train, test, err);
    case NB_SRC_IDX: {
        char ti[NB_DATA_PATH_MAX + 64], tl[NB_DATA_PATH_MAX + 64];
        char vi[NB_DATA_PATH_MAX + 64], vl[NB_DATA_PATH_MAX + 64];
        int rc;
        if ((rc = idx_path(q, o->train_images, NB_MNIST_TRAIN_IMAGES, ti,
                           sizeof ti, err)) ||
            (rc = idx_path(q, o->train_labels, NB_MNIST_TRAIN_LABELS, tl,
                           sizeof tl, err)) ||
            (rc = idx_path(q, o->test_images, NB_MNIST_TEST_IMAGES, vi,
                           sizeof vi, err)) ||
            (rc = idx_path(q, o->test_labels, NB_MNIST_TEST_LABELS, vl,
                           sizeof vl, err)))
            return rc;
        rc = nb_idx_load(ti, tl, o->classes, "idx/train", train, err);
        if (rc)
            return rc;
        /* the test labels must fall in the training set's classes */
        rc = nb_idx_load(vi, vl, train->classes, "idx/test", test, err);
        if (rc == 0 && (test->shape.h != train->shape.h ||
                        test->shape.w != train->shape.w))
            rc = nb_error_set(err, NB_EFORMAT, vi, 0,
                              "image size differs from the training images "
                              "(expected %dx%d as in %s, got %dx%d)",
                              train->shape.h, train->shape.w, ti,
                              test->shape.h, test->shape.w);
        if (rc) {
            nb_dataset_free(train);
            nb_dataset_free(test);
        }
        return rc;
    }
    case NB_SRC_COUNT:
        break;
    }
    return nb_error_set(err, NB_EINVAL, NULL, 0, "unknown data source %d",
                        (int)q->src);
}

/* Fresh references to the raw pair, decoding it on a cache miss. */
static int raw_get(const struct raw_req *q, struct nb_data *out,
                   struct nb_error *err)
{
    char key[CACHE_KEY_MAX];
    raw_key(q, key, sizeof key);
    struct cache_entry *e = cache_find(key);
    if (e) {
        out->from_cache = true;
        out->load_seconds = 0.0;
        return cache_get(e, &out->train, &out->test, err);
    }
    struct nb_dataset train, test;
    double t0 = nb_now();
    int rc = raw_decode(q, &train, &test, err);
    if (rc)
        return rc;
    out->load_seconds = nb_now() - t0;
    out->from_cache = false;
    cache_put(key, &train, &test);
    return cache_get(cache_find(key), &out->train, &out->test, err);
}

/* ---- preparation -------------------------------------------------------- */

static int check_opts(const struct nb_data_opts *o, struct nb_error *err)
{
    if ((int)o->source < 0 || o->source >= NB_SRC_COUNT)
        return nb_error_set(err, NB_EINVAL, NULL, 0, "unknown data source %d",
                            (int)o->source);
    if (!(o->val_split >= 0.0) || !isfinite(o->val_split) ||
        (o->val_split >= 1.0 && o->val_split != floor(o->val_split)))
        return nb_error_set(err, NB_ERANGE, NULL, 0,
                            "bad validation split (expected a fraction in "
                            "[0,1) or a whole count, got %g)", o->val_split);
    if ((int)o->standardize < 0 || o->standardize >= NB_STD_COUNT)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "unknown standardization %d", (int)o->standardize);
    if (o->standardize == NB_STD_GIVEN &&
        (!isfinite(o->mean) || !(o->std > 0.0f) || !isfinite(o->std)))
        return nb_error_set(err, NB_ERANGE, NULL, 0,
                            "bad standardization (expected a finite mean and "
                            "std > 0, got mean %g std %g)", (double)o->mean,
                            (double)o->std);
    if ((int)o->corruption < 0 || o->corruption >= NB_CORRUPT_COUNT)
        return nb_error_set(err, NB_EINVAL, NULL, 0, "unknown corruption %d",
                            (int)o->corruption);
    if (o->corruption != NB_CORRUPT_NONE && (o->severity < 1 || o->severity > 5))
        return nb_error_set(err, NB_ERANGE, NULL, 0,
                            "corruption severity out of range (expected 1..5, "
                            "got %d)", o->severity);
    if (o->resize_h || o->resize_w) {
        if (o->resize_h < 1 || o->resize_w < 1 || o->resize_h > 16384 ||
            o->resize_w > 16384)
            return nb_error_set(err, NB_ERANGE, NULL, 0,
                                "bad resolution (expected 1..16384 per side, "
                                "got %dx%d)", o->resize_h, o->resize_w);
        if ((int)o->resize_mode < 0 || o->resize_mode >= NB_RESIZE_COUNT)
            return nb_error_set(err, NB_EINVAL, NULL, 0,
                                "unknown resize mode %d", (int)o->resize_mode);
        if (!(o->resize_apply & (NB_APPLY_TRAIN | NB_APPLY_TEST)))
            return nb_error_set(err, NB_EINVAL, NULL, 0,
                                "a change of resolution must apply to train, "
                                "test or both");
    }
    return NB_OK;
}

static void default_standardization(enum nb_data_source s, int *mode,
                                    float *mean, float *std)
{
    switch (s) {
    case NB_SRC_FASHION_MNIST:
        *mode = NB_STD_GIVEN, *mean = 0.2860f, *std = 0.3530f;
        break;
    case NB_SRC_MNIST:
        *mode = NB_STD_GIVEN, *mean = 0.1307f, *std = 0.3081f;
        break;
    case NB_SRC_CIFAR10:
        *mode = NB_STD_GIVEN, *mean = 0.4734f, *std = 0.2516f;
        break;
    case NB_SRC_DLN:
        *mode = NB_STD_NONE, *mean = 0.0f, *std = 1.0f;
        break;
    case NB_SRC_IDX:
    case NB_SRC_BLOBS:
        *mode = NB_STD_COMPUTED, *mean = 0.0f, *std = 1.0f;
        break;
    case NB_SRC_COUNT:
        NB_ASSERT(!"source refused by check_opts");
        break;
    }
}

static void rename_set(struct nb_dataset *ds, enum nb_data_source s,
                       const char *part)
{
    snprintf(ds->name, sizeof ds->name, "%s/%s", nb_data_source_name(s), part);
}

static int fallback_notice(const struct nb_data_opts *o,
                           const struct nb_error *why, struct nb_data *out,
                           struct nb_error *err)
{
    char msg[1024];
    nb_error_format(why, msg, sizeof msg);
    struct raw_req q = {NB_SRC_BLOBS, "", o};
    int rc = raw_get(&q, out, err);
    if (rc)
        return rc;
    const struct nb_shape *sh = &out->train.shape;
    snprintf(out->notice, sizeof out->notice,
             "Fashion-MNIST not found (to install it: %s).\n"
             "Using the synthetic 'blobs' set instead: %zu train / %zu test "
             "images %dx%dx%d, %d classes, synth seed %llu.\n"
             "(%s)",
             FASHION_HINT, out->train.n, out->test.n, sh->c, sh->h, sh->w,
             out->train.classes, (unsigned long long)o->synth.seed, msg);
    out->source = NB_SRC_BLOBS;
    return NB_OK;
}

static gsl_rng *derived_rng(uint64_t seed, uint64_t purpose)
{
    return nb_rng_alloc(nb_seed_mix(seed, purpose), NB_STREAM_DATA);
}

/* purposes of the derived data streams (arbitrary, fixed forever) */
#define PURPOSE_SPLIT 0x73706c6974ULL   /* "split" */
#define PURPOSE_CORRUPT 0x636f7272ULL   /* "corr" */

/* Step 1: the raw train and test pair of o's source into out, decoded
 * once per process (Fashion-MNIST missing: the synthetic set, when
 * allowed, else a hint); returns a status. */
static int load_raw(const struct nb_data_opts *o, struct nb_data *out, struct nb_error *err)
{
    const char *dir = o->dir;
    if (o->source == NB_SRC_FASHION_MNIST && !dir[0])
        dir = NB_FASHION_MNIST_DIR;
    if ((o->source == NB_SRC_MNIST || o->source == NB_SRC_CIFAR10) && !dir[0])
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "data source %s needs a directory (none given)",
                            nb_data_source_name(o->source));
    struct raw_req q = { o->source, dir, o };
    int rc = raw_get(&q, out, err);
    if (rc == NB_ENOENT && o->source == NB_SRC_FASHION_MNIST) {
        struct nb_error why = *err;
        struct stat st;
        /* a directory the user named that does not exist is a mistake,
         * never a reason for synthetic data */
        bool named_missing = o->dir[0] && (stat(o->dir, &st) || !S_ISDIR(st.st_mode));
        if (o->fallback_to_synthetic && !named_missing) {
            nb_error_clear(err);
            rc = fallback_notice(o, &why, out, err);
        } else {
            nb_error_hint(err, "%s%s", FASHION_HINT,
                          strcmp(dir, NB_FASHION_MNIST_DIR) == 0
                              ? ""
                              : " (or point the data directory at the "
                                "Fashion-MNIST files)");
        }
    }
    return rc;
}

/* Step 2: the validation split and the training subset, views of the raw
 * training set (with a subset, the validation set comes out of it: a
 * subset of 1000 with val_split 0.1 is 900 training and 100 validation
 * samples); returns a status. */
static int split_train(const struct nb_data_opts *o, uint64_t seed, struct nb_data *out,
                       struct nb_error *err)
{
    size_t ntrain_all = o->train_subset ? o->train_subset : out->train.n;
    size_t n_val = 0, n_sub = o->train_subset;
    if (o->val_split > 0.0 && o->val_split < 1.0)
        n_val = (size_t)floor(o->val_split * (double)ntrain_all + 0.5);
    else if (o->val_split >= 1.0)
        n_val = (size_t)o->val_split;
    if (n_sub && n_val >= n_sub)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "val_split %g leaves no training sample of train_subset %zu",
                            o->val_split, n_sub);
    if (n_sub)
        n_sub -= n_val;
    if (!n_val && !o->train_subset)
        return 0;
    struct nb_dataset raw = out->train, tr, va;
    gsl_rng *rng = derived_rng(o->split_seed ? o->split_seed : seed, PURPOSE_SPLIT);
    if (!rng)
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    int rc = nb_data_split(&raw, n_val, n_sub, o->balanced, rng, &tr, &va, err);
    gsl_rng_free(rng);
    if (rc)
        return rc;
    nb_dataset_free(&out->train);
    out->train = tr;
    out->val = va;
    if (n_val)
        rename_set(&out->val, out->source, "val");
    return 0;
}

/* Step 3: the change of resolution of the sets it applies to; returns a
 * status. */
static int resize_sets(const struct nb_data_opts *o, struct nb_data *out, struct nb_error *err)
{
    int rc;
    if (o->resize_apply & NB_APPLY_TRAIN) {
        if ((rc = nb_data_resize(&out->train, o->resize_h, o->resize_w, o->resize_mode, err)))
            return rc;
        if (out->val.n &&
            (rc = nb_data_resize(&out->val, o->resize_h, o->resize_w, o->resize_mode, err)))
            return rc;
    }
    if ((o->resize_apply & NB_APPLY_TEST) &&
        (rc = nb_data_resize(&out->test, o->resize_h, o->resize_w, o->resize_mode, err)))
        return rc;
    return 0;
}

/* Step 5: the standardization on read (given, the source's default,
 * computed from the training set, or none), the same for all three
 * sets; returns a status. */
static int standardize(const struct nb_data_opts *o, struct nb_data *out, struct nb_error *err)
{
    int mode = o->standardize;
    float mean = o->mean, std = o->std;
    if (mode == NB_STD_DEFAULT)
        default_standardization(out->source, &mode, &mean, &std);
    if (mode == NB_STD_COMPUTED) {
        double m, s;
        nb_dataset_moments(&out->train, false, &m, &s);
        if (!(s > 0.0))
            return nb_error_set(err, NB_ERANGE, NULL, 0,
                                "%s: cannot standardize: the training data "
                                "have standard deviation %g",
                                out->train.name, s);
        mean = (float)m;
        std = (float)s;
    } else if (mode == NB_STD_NONE) {
        mean = 0.0f;
        std = 1.0f;
    }
    out->mean = mean;
    out->std = std;
    out->train.mean = out->val.mean = out->test.mean = mean;
    out->train.std = out->val.std = out->test.std = std;
    return 0;
}

int nb_data_prepare(const struct nb_data_opts *o, uint64_t seed,
                    struct nb_data *out, struct nb_error *err)
{
    struct nb_error local;
    int rc;
    if (!err)
        err = &local;
    memset(out, 0, sizeof *out);
    out->std = 1.0f;
    if ((rc = check_opts(o, err)))
        return rc;
    out->source = o->source;
    out->corruption = o->corruption;
    out->severity = o->corruption != NB_CORRUPT_NONE ? o->severity : 0;

    /* 1. the raw pair, decoded once per process */
    if ((rc = load_raw(o, out, err)))
        goto fail;
    rename_set(&out->train, out->source, "train");
    rename_set(&out->test, out->source, "test");

    /* 2. validation split and training subset: views of the raw train */
    if ((rc = split_train(o, seed, out, err)))
        goto fail;

    /* 3. change of resolution */
    if (o->resize_h && (rc = resize_sets(o, out, err)))
        goto fail;

    /* 4. test corruption, in pixel space */
    if (o->corruption != NB_CORRUPT_NONE) {
        gsl_rng *rng = derived_rng(seed, PURPOSE_CORRUPT);
        if (!rng) {
            rc = nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
            goto fail;
        }
        rc = nb_data_corrupt(&out->test, o->corruption, o->severity, rng, err);
        gsl_rng_free(rng);
        if (rc)
            goto fail;
    }

    /* 5. standardization on read, the same for all three sets */
    if ((rc = standardize(o, out, err)))
        goto fail;
    return NB_OK;
fail:
    nb_data_free(out);
    return rc;
}

void nb_data_free(struct nb_data *d)
{
    if (!d)
        return;
    nb_dataset_free(&d->train);
    nb_dataset_free(&d->val);
    nb_dataset_free(&d->test);
}

const char *nb_data_describe(const struct nb_data *d, char *buf, size_t size)
{
    const struct nb_shape *a = &d->train.shape, *b = &d->test.shape;
    char shapes[96], kind[32], corr[48] = "";
    if (a->c == b->c && a->h == b->h && a->w == b->w)
        snprintf(shapes, sizeof shapes, "shape %dx%dx%d", a->c, a->h, a->w);
    else
        snprintf(shapes, sizeof shapes, "shape %dx%dx%d test %dx%dx%d", a->c,
                 a->h, a->w, b->c, b->h, b->w);
    if (d->train.classes)
        snprintf(kind, sizeof kind, "classes %d", d->train.classes);
    else
        snprintf(kind, sizeof kind, "targets %d", d->train.tdim);
    if (d->corruption != NB_CORRUPT_NONE)
        snprintf(corr, sizeof corr, " corruption %s severity %d",
                 nb_corruption_name(d->corruption), d->severity);
    snprintf(buf, size, "%s train %zu val %zu test %zu %s %s mean %.4f "
             "std %.4f%s", nb_data_source_name(d->source), d->train.n,
             d->val.n, d->test.n, shapes, kind, (double)d->mean,
             (double)d->std, corr);
    return buf;
}
