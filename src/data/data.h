/* src/data/data.h - data sets, their loaders and transforms, and batching.
 *
 * A data set (struct nb_dataset) is n samples of one per-sample shape
 * (NCHW, float32) with class labels (classification) or regression targets.
 * Its floats live in a reference-counted storage block, so a training
 * subset, a validation split or the cached copy that several runs share
 * are views of one decoded parent, not copies:
 *
 *   sample i  =  storage row rows[i]          (row i when rows is NULL)
 *   value     =  (stored value - mean) / std  (standardization on read)
 *
 * Read samples through nb_dataset_gather or a struct nb_loader (which do
 * both steps); ds->x[...] is the raw storage and equals the data only when
 * nb_dataset_is_dense(ds).  nb_dataset_dense makes a dense copy.
 *
 * Loaders check everything they read (magic number, dimensions, counts of
 * images and labels, label range, truncation, trailing data, gzip
 * integrity).  A bad file is an error naming the file and what was
 * expected: "FILE: what is wrong (expected ..., got ...)", with NB_ENOENT
 * (missing), NB_EIO (unreadable) or NB_EFORMAT (malformed).  Pixels are
 * scaled to [0,1] (byte / 255, as torchvision's ToTensor).
 *
 * Life cycle: nb_data_prepare turns a struct nb_data_opts and a run seed
 * into train / val / test sets; a struct nb_loader then batches one of
 * them with no allocation per batch.  Everything that can fail returns 0
 * or a negative enum nb_status with err filled; nothing calls exit(). */
#ifndef NB_DATA_DATA_H
#define NB_DATA_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/opt.h"

/* ---- data sets ---------------------------------------------------------- */

struct nb_data_store; /* private: reference-counted x / y / t buffers */

struct nb_dataset {
    char name[64];          /* "fashion-mnist/train", "blobs/test", ... */
    size_t n;               /* samples in this set */
    struct nb_shape shape;  /* per sample */
    int classes;            /* > 0: y holds labels in 0..classes-1 */
    int tdim;               /* > 0: t holds tdim targets per sample */
    bool pixels;            /* stored x are intensities in [0,1] */
    float *x;               /* storage: (rows, shape), shared by views */
    int *y;                 /* storage labels, or NULL */
    float *t;               /* storage targets (rows, tdim), or NULL */
    size_t *rows;           /* (n) storage rows of the samples (owned), or NULL */
    float mean, std;        /* standardization on read; 0 and 1 = none */
    struct nb_data_store *store; /* owner of x/y/t; NULL = caller's buffers */
};

/* True when sample i is x[i * numel ...] exactly (no row index, no
 * standardization on read). */
bool nb_dataset_is_dense(const struct nb_dataset *ds);

/* Sets ds up as an owned dense data set of n samples: x allocated but not
 * initialised, y when classes > 0, t when tdim > 0, pixels false, no
 * standardization.  Returns 0 or NB_ENOMEM / NB_EINVAL. */
int nb_dataset_init(struct nb_dataset *ds, const char *name, size_t n,
                     const struct nb_shape *shape, int classes, int tdim,
                     struct nb_error *err);

/* Drops this set's reference to its storage and frees its row index; the
 * storage goes when the last set (or the cache) lets go of it.  Safe on a
 * zeroed set; leaves ds zeroed. */
void nb_dataset_free(struct nb_dataset *ds);

/* Makes out a view of samples idx[0..k) of parent (indices into parent's
 * samples, not storage rows), sharing its storage and standardization;
 * idx NULL means the first k samples.  name NULL keeps parent's.  Returns
 * 0 or NB_ENOMEM / NB_ERANGE.  Free the view with nb_dataset_free. */
int nb_dataset_view(const struct nb_dataset *parent, const size_t *idx,
                    size_t k, const char *name, struct nb_dataset *out,
                    struct nb_error *err);

/* Makes out a dense, owned copy of src with its samples in order and the
 * standardization applied (out->mean = 0, out->std = 1). */
int nb_dataset_dense(const struct nb_dataset *src, const char *name,
                     struct nb_dataset *out, struct nb_error *err);

/* Makes ds own a private dense storage (copy-on-write before an in-place
 * transform); standardization stays pending.  No-op when it already does. */
int nb_dataset_make_private(struct nb_dataset *ds, struct nb_error *err);

/* Storage row of sample i. */
static inline size_t nb_dataset_row(const struct nb_dataset *ds, size_t i)
{
    return ds->rows ? ds->rows[i] : i;
}

/* Gathers samples idx[0..k) (idx NULL: samples 0..k-1) into x (k, shape),
 * standardized, y (k) and t (k, tdim); any output may be NULL to skip it.
 * Infallible: indices are asserted. */
void nb_dataset_gather(const struct nb_dataset *ds, const size_t *idx,
                       size_t k, float *x, int *y, float *t);

/* Mean and standard deviation (population, over all samples and elements)
 * of the values as read (standardized) when as_read, else as stored.
 * Accumulates in double.  n = 0 gives 0 and 0. */
void nb_dataset_moments(const struct nb_dataset *ds, bool as_read,
                        double *mean, double *std);

/* Per-class sample counts into counts[0..classes). */
void nb_dataset_class_counts(const struct nb_dataset *ds, size_t *counts);

/* ---- loaders ------------------------------------------------------------ */

/* The most classes nb_idx_load infers from the labels (MNIST's count):
 * a set with more must say how many. */
#define NB_IDX_INFER_MAX_CLASSES 10

/* Reads an MNIST-format IDX pair: images (magic 0x00000803: unsigned
 * bytes, dimensions count x rows x cols) and labels (magic 0x00000801,
 * count).  Each file may be gzip-compressed or plain (zlib's gzread reads
 * both).  classes > 0 bounds the labels (0..classes-1); classes = 0 takes
 * max label + 1, and a label >= NB_IDX_INFER_MAX_CLASSES is then an
 * error.  out gets shape (1, rows, cols), pixels in [0,1]. */
int nb_idx_load(const char *images_path, const char *labels_path,
                int classes, const char *name, struct nb_dataset *out,
                struct nb_error *err);

/* Standard MNIST file names, without ".gz". */
#define NB_MNIST_TRAIN_IMAGES "train-images-idx3-ubyte"
#define NB_MNIST_TRAIN_LABELS "train-labels-idx1-ubyte"
#define NB_MNIST_TEST_IMAGES "t10k-images-idx3-ubyte"
#define NB_MNIST_TEST_LABELS "t10k-labels-idx1-ubyte"

/* Finds dir/base.gz, else dir/base, into path.  Returns 0, or NB_ENOENT
 * (naming both candidates) when neither exists. */
int nb_idx_find(const char *dir, const char *base, char *path, size_t size,
                struct nb_error *err);

/* Loads the four standard MNIST-format files (10 classes) from dir,
 * .gz or plain: train (60000 for MNIST / Fashion-MNIST) and test. */
int nb_mnist_dir_load(const char *dir, struct nb_dataset *train,
                      struct nb_dataset *test, struct nb_error *err);

/* Loads CIFAR-10's binary batches data_batch_1.bin .. data_batch_5.bin
 * (train) and test_batch.bin (test) from dir or dir/cifar-10-batches-bin:
 * records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32).
 * Shape (3, 32, 32), 10 classes.  Files may also be gzip-compressed
 * (same names). */
int nb_cifar10_load(const char *dir, struct nb_dataset *train,
                    struct nb_dataset *test, struct nb_error *err);

/* ---- synthetic sets ----------------------------------------------------- */

struct nb_synth_opts {
    size_t n_train, n_test; /* 0: the set's default (see below) */
    int classes;            /* blobs; 0: 10 */
    struct nb_shape shape;  /* blobs: image shape (0: 1x28x28); dln: (d,1,1)
                               (0: d = 10) */
    uint64_t seed;          /* drawn from NB_STREAM_SYNTH of this seed */
    double spread;          /* blobs: std of the class centres' pixels */
    double noise;           /* blobs: std of a sample around its centre */
};

/* Defaults: 10000 train / 2000 test, 10 classes, 1x28x28, seed 1,
 * spread 0.015, noise 0.15. */
void nb_synth_opts_default(struct nb_synth_opts *s);

/* Gaussian class blobs in image shape: a centre per class with pixels
 * 0.5 + N(0, spread^2), each sample its class centre + N(0, noise^2) per
 * pixel, clipped to [0,1] so the set is "pixels" like the real ones (with
 * the defaults the clip touches ~0.1% of the pixels).  Labels are
 * balanced (sample i has class i mod classes).  With the defaults the
 * centres are ~4 noise-sds apart: learnable, not trivial. */
int nb_synth_blobs(const struct nb_synth_opts *s, struct nb_dataset *train,
                   struct nb_dataset *test, struct nb_error *err);

/* Santurkar et al. (2018)'s deep-linear-network regression data: a d x d
 * matrix A with N(0,1) entries, x ~ N(0, I_d), target t = A x; d = 10 and
 * 1000 train / 1000 test samples by default.  Shape (d,1,1), tdim = d. */
int nb_synth_dln(const struct nb_synth_opts *s, struct nb_dataset *train,
                 struct nb_dataset *test, struct nb_error *err);

/* ---- transforms --------------------------------------------------------- */

/* Splits src's samples, taken in an order drawn from rng (NULL: in
 * order), into two views with sorted rows: the first n_val go to val, then
 * train gets n_train of the rest (0 = all the rest); when balanced, train
 * gets n_train / classes of each class (the remainder to the lowest
 * classes).  Fails with NB_ERANGE when there are not enough samples (of a
 * class), NB_EINVAL for a balanced subset of a set without labels. */
int nb_data_split(const struct nb_dataset *src, size_t n_val, size_t n_train,
                  bool balanced, gsl_rng *rng, struct nb_dataset *train,
                  struct nb_dataset *val, struct nb_error *err);

/* Corruptions for domain-shift tests, after Hendrycks & Dietterich (2019),
 * at severity 1..5 on pixel data (clipped to [0,1]):
 *   noise           x + N(0, s^2),  s = .04 .06 .08 .09 .10   (CIFAR-10-C)
 *   blur            Gaussian blur,  sigma = .4 .6 .7 .8 1.0   (CIFAR-10-C;
 *                   kernel radius round(4 sigma), edges replicated)
 *   contrast        (x - m) c + m, m the image's per-channel mean,
 *                   c = .75 .5 .4 .3 .15                       (CIFAR-10-C)
 *   invert          1 - x on a fraction .2 .4 .6 .8 1 of the images,
 *                   chosen by rng */
enum nb_corruption {
    NB_CORRUPT_NONE = 0,
    NB_CORRUPT_GAUSSIAN_NOISE,
    NB_CORRUPT_BLUR,
    NB_CORRUPT_CONTRAST,
    NB_CORRUPT_INVERSION,
    NB_CORRUPT_COUNT
};

/* Corrupts ds in place (after nb_dataset_make_private, so shared parents
 * are untouched).  rng feeds noise and inversion choices. */
int nb_data_corrupt(struct nb_dataset *ds, enum nb_corruption kind,
                    int severity, gsl_rng *rng, struct nb_error *err);

/* The parameter of a corruption at a severity (sigma, c or fraction). */
double nb_corruption_level(enum nb_corruption kind, int severity);

enum nb_resize_mode {
    NB_RESIZE_PAD_CROP = 0, /* centre pad with 0 / centre crop, per axis */
    NB_RESIZE_BILINEAR,     /* PyTorch bilinear, align_corners=False */
    NB_RESIZE_COUNT
};

/* Replaces ds by a private copy resized to h x w (channels kept). */
int nb_data_resize(struct nb_dataset *ds, int h, int w,
                   enum nb_resize_mode mode, struct nb_error *err);

/* ---- preparation from options ------------------------------------------ */

enum nb_data_source {
    NB_SRC_FASHION_MNIST = 0, /* default: Debian's dataset-fashion-mnist */
    NB_SRC_MNIST,             /* standard MNIST files in dir */
    NB_SRC_IDX,               /* any MNIST-format IDX set (dir or paths) */
    NB_SRC_CIFAR10,           /* CIFAR-10 binary batches in dir */
    NB_SRC_BLOBS,             /* synthetic Gaussian class blobs */
    NB_SRC_DLN,               /* synthetic deep-linear-network regression */
    NB_SRC_COUNT
};

enum nb_std_mode {
    NB_STD_DEFAULT = 0, /* the source's published constants (fashion-mnist
                           0.2860/0.3530, mnist 0.1307/0.3081, cifar10
                           0.4734/0.2516); computed for idx and blobs; none
                           for dln */
    NB_STD_COMPUTED,    /* mean/std of the final training set */
    NB_STD_GIVEN,       /* opts mean/std */
    NB_STD_NONE,
    NB_STD_COUNT
};

/* Names by enumerator, NULL-terminated: the config's values of data.source,
 * data.standardize, data.corruption and data.resize_mode (keys.c reads
 * these tables; the enums map by index). */
extern const char *const nb_data_source_names[];
extern const char *const nb_std_mode_names[];
extern const char *const nb_corruption_names[];
extern const char *const nb_resize_mode_names[];

enum {
    NB_APPLY_TRAIN = 1u << 0, /* train and val */
    NB_APPLY_TEST = 1u << 1,
};

#define NB_DATA_PATH_MAX 1024

struct nb_data_opts {
    enum nb_data_source source;
    char dir[NB_DATA_PATH_MAX];   /* "": fashion-mnist's NB_FASHION_MNIST_DIR;
                                     required for mnist / cifar10 */
    /* idx: explicit files; "" = dir + standard MNIST name (.gz or plain) */
    char train_images[NB_DATA_PATH_MAX], train_labels[NB_DATA_PATH_MAX];
    char test_images[NB_DATA_PATH_MAX], test_labels[NB_DATA_PATH_MAX];
    int classes;                  /* idx: 0 = max label + 1, at most
                                     NB_IDX_INFER_MAX_CLASSES */

    size_t train_subset;          /* 0: all of the training samples */
    bool balanced;                /* subset with equal counts per class */
    double val_split;             /* 0: none; (0,1): fraction of train;
                                     >= 1: a count (integer) */
    uint64_t split_seed;          /* 0: derived from the run seed */

    enum nb_std_mode standardize;
    float mean, std;              /* for NB_STD_GIVEN */

    enum nb_corruption corruption; /* applied to the test set only */
    int severity;                  /* 1..5 */

    int resize_h, resize_w;        /* 0: no change of resolution */
    enum nb_resize_mode resize_mode;
    unsigned resize_apply;         /* NB_APPLY_TRAIN | NB_APPLY_TEST */

    struct nb_synth_opts synth;    /* blobs, dln, and the fallback */
    bool fallback_to_synthetic;    /* fashion-mnist missing -> blobs,
                                      unless dir names a missing directory */
};

/* The [data] config keys of struct nb_data_opts (core/opt.h), with their
 * defaults: fashion-mnist, its default directory, standardize with the
 * published mean/std, no subset / split / corruption / resize, no
 * fallback.  data.mean, data.std and data.resize have no one member (the
 * harness sets mean/std, resize_h/resize_w from them). */
extern const struct nb_key nb_data_keys[];
extern const int nb_data_n_keys;

/* nb_data_keys' defaults, mean 0 and std 1 (for standardize = given),
 * resize applied to both sets, synth defaults. */
void nb_data_opts_default(struct nb_data_opts *o);

struct nb_data {
    struct nb_dataset train, val, test; /* val.n == 0 when no split */
    enum nb_data_source source;         /* the source actually used */
    float mean, std;                    /* standardization in effect */
    enum nb_corruption corruption;      /* applied to test */
    int severity;
    char notice[1536];                  /* non-empty after a fallback:
                                           the caller prints it */
    double load_seconds;                /* decoding time (~0 from cache) */
    bool from_cache;
};

/* Builds the run's sets: the raw train/test pair (decoded once per process
 * and cached: later calls with the same source share it), then, in order,
 * the validation split and training subset (views, drawn from the split
 * stream), the change of resolution, the test corruption (in pixel space),
 * and the standardization (on read, the same for all three sets).  seed is
 * the run seed: the split uses NB_STREAM_DATA of a seed derived from it
 * (or split_seed), so it never shares draws with the run's shuffling.
 * When Fashion-MNIST is missing and fallback_to_synthetic is set, uses
 * the blobs set and explains in out->notice, except when o->dir names a
 * directory that does not exist; otherwise NB_ENOENT with the hint
 * "apt-get install dataset-fashion-mnist".  Free with nb_data_free. */
int nb_data_prepare(const struct nb_data_opts *o, uint64_t seed,
                    struct nb_data *out, struct nb_error *err);

/* Frees the three sets (the cache keeps its own reference); safe on a
 * zeroed struct. */
void nb_data_free(struct nb_data *d);

/* One line describing d for a run's meta.txt ("fashion-mnist train 54000
 * val 6000 test 10000 shape 1x28x28 classes 10 mean 0.286 std 0.353"). */
const char *nb_data_describe(const struct nb_data *d, char *buf, size_t size);

/* Drops the process's cache of decoded sets (sets still in use keep their
 * storage).  The cache is the module's one piece of global state: it is
 * not thread-safe; worker processes each have their own (and share the
 * parent's pages copy-on-write when the parent prepared before fork). */
void nb_data_cache_clear(void);

/* Names for configs and logs, and their parsers (-1 when unknown). */
const char *nb_data_source_name(enum nb_data_source s);
int nb_data_source_parse(const char *name);
const char *nb_std_mode_name(enum nb_std_mode m);
int nb_std_mode_parse(const char *name);
const char *nb_corruption_name(enum nb_corruption c);
int nb_corruption_parse(const char *name);
const char *nb_resize_mode_name(enum nb_resize_mode m);
int nb_resize_mode_parse(const char *name);

/* ---- batching ----------------------------------------------------------- */

/* Batches one data set.  Buffers are allocated once at init; each
 * nb_loader_next gathers into them (standardized), so nothing is
 * allocated per batch. */
struct nb_loader {
    const struct nb_dataset *ds; /* borrowed; must outlive the loader */
    size_t batch;
    bool drop_last;     /* drop the last partial batch of an epoch */
    bool shuffle;       /* rng != NULL */
    gsl_rng *rng;       /* borrowed: the run's data-order stream */
    size_t *perm;       /* (n) this epoch's order */
    size_t pos;         /* next position in perm */
    long epoch;         /* epochs started */
    float *x;           /* (batch, shape) */
    int *y;             /* (batch) or NULL */
    float *t;           /* (batch, tdim) or NULL */
};

/* Sets up batches of `batch` samples of ds (batch >= 1; any size,
 * including 1 and 2, and larger than n unless drop_last would leave no
 * batch).  rng NULL means no shuffling (evaluation: samples in order).
 * The order is the identity until nb_loader_epoch is called: call it at
 * the start of every epoch, the first included. */
int nb_loader_init(struct nb_loader *ld, const struct nb_dataset *ds,
                   int batch, bool drop_last, gsl_rng *rng,
                   struct nb_error *err);

/* Starts an epoch: rewinds and, when shuffling, draws a fresh uniform
 * permutation from rng (Fisher-Yates via gsl_ran_shuffle over the
 * identity, so the order depends only on the stream). */
void nb_loader_epoch(struct nb_loader *ld);

/* Gathers the next batch; returns its size (batch, or less for a kept
 * last partial batch), 0 at the end of the epoch.  Points *x, *y, *t
 * (each may be NULL) at the loader's buffers (NULL where the set has no
 * labels / targets), valid until the next call. */
int nb_loader_next(struct nb_loader *ld, const float **x, const int **y,
                   const float **t);

/* Batches per epoch. */
size_t nb_loader_batches(const struct nb_loader *ld);

/* Frees the loader's buffers; safe on a zeroed loader. */
void nb_loader_free(struct nb_loader *ld);

#endif
