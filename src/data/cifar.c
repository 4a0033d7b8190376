/* src/data/cifar.c - CIFAR-10 binary batches.
 *
 * Each of data_batch_1.bin .. data_batch_5.bin and test_batch.bin is a
 * sequence of 3073-byte records: a label byte (0..9), then 1024 red, 1024
 * green and 1024 blue pixels of a 32x32 image in row-major order (which is
 * already CHW).  There is no header, so the checks are: the file is a
 * whole, non-zero number of records, and every label is in range. */
#include "data/data.h"
#include "data/data_impl.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_CLASSES 10
#define CIFAR_TRAIN_FILES 5

struct cifar_file {
    char path[NB_DATA_PATH_MAX + 64];
    unsigned char *bytes;
    size_t records;
};

/* Reads a whole file (gzip or plain) into f->bytes and checks its
 * records. */
static int cifar_read(struct cifar_file *f, struct nb_error *err)
{
    void *g = NULL;
    size_t cap = 0, len = 0;
    struct stat st;
    int rc = nb_gz_open(f->path, &g, err);
    if (rc)
        return rc;
    /* the plain size is a good first guess (the standard files are plain) */
    cap = (stat(f->path, &st) == 0 && st.st_size > 0) ? (size_t)st.st_size + 1
                                                       : (size_t)1 << 22;
    for (;;) {
        if (len == cap || !f->bytes) {
            size_t ncap = f->bytes ? cap * 2 : cap;
            unsigned char *p = realloc(f->bytes, ncap);
            if (!p) {
                rc = nb_error_set(err, NB_ENOMEM, f->path, 0,
                                  "cannot allocate %zu bytes to read it", ncap);
                goto out;
            }
            f->bytes = p;
            cap = ncap;
        }
        size_t got;
        const char *eof;
        rc = nb_gz_read(g, f->path, f->bytes + len, cap - len, &got, &eof,
                        err);
        if (rc)
            goto out;
        len += got;
        if (*eof) {
            rc = nb_error_set(err, NB_EFORMAT, f->path, 0,
                              "truncated (%s after %zu bytes)", eof, len);
            goto out;
        }
        if (len < cap)
            break; /* end of file */
    }
    if (len == 0 || len % CIFAR_RECORD != 0) {
        rc = nb_error_set(err, NB_EFORMAT, f->path, 0,
                          "%s (expected a whole number of %d-byte records: "
                          "1 label byte + %d pixel bytes; got %zu bytes, "
                          "%zu records and %zu bytes over)",
                          len == 0 ? "empty" : "truncated", CIFAR_RECORD,
                          CIFAR_PIXELS, len, len / CIFAR_RECORD,
                          len % CIFAR_RECORD);
        if (len % 3074 == 0 && len > 0)
            nb_error_hint(err, "records of 3074 bytes look like CIFAR-100, "
                               "which is not supported");
        goto out;
    }
    f->records = len / CIFAR_RECORD;
    for (size_t r = 0; r < f->records; r++) {
        unsigned lab = f->bytes[r * CIFAR_RECORD];
        if (lab >= CIFAR_CLASSES) {
            rc = nb_error_set(err, NB_EFORMAT, f->path, 0,
                              "label out of range (expected 0..%d, got %u in "
                              "record %zu at byte %zu)", CIFAR_CLASSES - 1,
                              lab, r, r * CIFAR_RECORD);
            goto out;
        }
    }
out:
    nb_gz_close(g);
    return rc;
}

/* Decodes files[0..nf) into one data set. */
static int cifar_build(struct cifar_file *files, int nf, const char *name,
                       struct nb_dataset *out, struct nb_error *err)
{
    size_t n = 0;
    for (int i = 0; i < nf; i++)
        n += files[i].records;
    struct nb_shape shape = {3, CIFAR_SIDE, CIFAR_SIDE};
    int rc = nb_dataset_init(out, name, n, &shape, CIFAR_CLASSES, 0, err);
    if (rc)
        return rc;
    out->pixels = true;
    float lut[256];
    nb_byte_lut(lut);
    size_t k = 0;
    for (int i = 0; i < nf; i++)
        for (size_t r = 0; r < files[i].records; r++, k++) {
            const unsigned char *rec = files[i].bytes + r * CIFAR_RECORD;
            out->y[k] = rec[0];
            float *dst = out->x + k * CIFAR_PIXELS;
            for (int e = 0; e < CIFAR_PIXELS; e++)
                dst[e] = lut[rec[1 + e]];
        }
    return NB_OK;
}

/* dir itself, or dir/cifar-10-batches-bin (as the tarball unpacks). */
static int cifar_dir(const char *dir, char *out, size_t size,
                     struct nb_error *err)
{
    struct stat st;
    char probe[NB_DATA_PATH_MAX + 64];
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return nb_error_set(err, NB_ENOENT, dir, 0,
                            "no such directory (expected the CIFAR-10 binary "
                            "batches data_batch_1.bin ... test_batch.bin)");
    snprintf(probe, sizeof probe, "%s/data_batch_1.bin", dir);
    if (stat(probe, &st) == 0) {
        snprintf(out, size, "%s", dir);
        return NB_OK;
    }
    snprintf(probe, sizeof probe, "%s/cifar-10-batches-bin/data_batch_1.bin",
             dir);
    if (stat(probe, &st) == 0) {
        snprintf(out, size, "%s/cifar-10-batches-bin", dir);
        return NB_OK;
    }
    return nb_error_set(err, NB_ENOENT, dir, 0,
                        "missing CIFAR-10 file (expected data_batch_1.bin "
                        "here or in cifar-10-batches-bin/)");
}

int nb_cifar10_load(const char *dir, struct nb_dataset *train,
                    struct nb_dataset *test, struct nb_error *err)
{
    struct cifar_file files[CIFAR_TRAIN_FILES + 1];
    char base[NB_DATA_PATH_MAX];
    memset(files, 0, sizeof files);
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    int rc = cifar_dir(dir, base, sizeof base, err);
    if (rc)
        return rc;
    for (int i = 0; i <= CIFAR_TRAIN_FILES; i++) {
        if (i < CIFAR_TRAIN_FILES)
            snprintf(files[i].path, sizeof files[i].path,
                     "%s/data_batch_%d.bin", base, i + 1);
        else
            snprintf(files[i].path, sizeof files[i].path, "%s/test_batch.bin",
                     base);
        rc = cifar_read(&files[i], err);
        if (rc)
            goto out;
    }
    rc = cifar_build(files, CIFAR_TRAIN_FILES, "cifar10/train", train, err);
    if (rc == 0)
        rc = cifar_build(files + CIFAR_TRAIN_FILES, 1, "cifar10/test", test,
                         err);
    if (rc) {
        nb_dataset_free(train);
        nb_dataset_free(test);
    }
out:
    for (int i = 0; i <= CIFAR_TRAIN_FILES; i++)
        free(files[i].bytes);
    return rc;
}
