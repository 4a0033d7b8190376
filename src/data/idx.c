/* src/data/idx.c - MNIST-format IDX files, gzip-compressed or plain.
 *
 * IDX (LeCun et al.): a 4-byte big-endian magic 0x0000TTDD (TT the element
 * type, 0x08 for unsigned bytes; DD the number of dimensions), DD 4-byte
 * big-endian sizes, then the elements.  Everything is checked: magic,
 * dimensions, image/label counts, label range, truncation and trailing
 * data (unlike readers that seek past a fixed 16-byte header). */
#include "data/data.h"
#include "data/data_impl.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
#define IDX_MAX_SIDE 16384u
#define IDX_MAX_COUNT (1u << 28)
#define READ_CHUNK (1u << 20)

/* ---- gzip-or-plain reading ---------------------------------------------- */

int nb_gz_open(const char *path, void **f, struct nb_error *err)
{
    errno = 0;
    gzFile g = gzopen(path, "rb");
    if (!g) {
        int e = errno;
        if (e == 0)
            return nb_error_set(err, NB_ENOMEM, path, 0,
                                "cannot open (zlib out of memory)");
        return nb_error_set(err, e == ENOENT ? NB_ENOENT : NB_EIO, path, 0,
                            "cannot open: %s", strerror(e));
    }
    gzbuffer(g, 1u << 18);
    *f = g;
    return NB_OK;
}

void nb_gz_close(void *f)
{
    if (f)
        gzclose((gzFile)f);
}

int nb_gz_read(void *f, const char *path, void *buf, size_t len, size_t *got,
               const char **eof_msg, struct nb_error *err)
{
    gzFile g = f;
    unsigned char *p = buf;
    size_t done = 0;
    *eof_msg = "";
    while (done < len) {
        size_t want = len - done;
        if (want > (size_t)INT_MAX / 2)
            want = (size_t)INT_MAX / 2;
        int r = gzread(g, p + done, (unsigned)want);
        int errnum = Z_OK;
        const char *msg = gzerror(g, &errnum);
        if (r < 0 || (errnum != Z_OK && errnum != Z_BUF_ERROR)) {
            *got = done;
            if (errnum == Z_ERRNO)
                return nb_error_set(err, NB_EIO, path, 0, "read error: %s",
                                    strerror(errno));
            /* zlib prefixes its message with the path: drop it */
            size_t pl = strlen(path);
            if (msg && strncmp(msg, path, pl) == 0 && msg[pl] == ':')
                msg += pl + (msg[pl + 1] == ' ' ? 2 : 1);
            return nb_error_set(err, NB_EFORMAT, path, 0,
                                "corrupt gzip data (zlib: %s)",
                                msg ? msg : "?");
        }
        done += (size_t)r;
        if (r == 0 || errnum == Z_BUF_ERROR) {
            if (errnum == Z_BUF_ERROR)
                *eof_msg = "gzip stream ends early";
            break;
        }
    }
    *got = done;
    return NB_OK;
}

int nb_gz_expect_end(void *f, const char *path, const char *what,
                     struct nb_error *err)
{
    unsigned char extra[16];
    size_t got;
    const char *eof;
    int rc = nb_gz_read(f, path, extra, sizeof extra, &got, &eof, err);
    if (rc)
        return rc;
    if (got > 0)
        return nb_error_set(err, NB_EFORMAT, path, 0,
                            "unexpected data after the end (expected %s "
                            "and nothing more, got %s%zu more bytes)", what,
                            got == sizeof extra ? "at least " : "", got);
    if (*eof)
        return nb_error_set(err, NB_EFORMAT, path, 0,
                            "truncated gzip trailer (%s after %s)", eof,
                            what);
    return NB_OK;
}

void nb_byte_lut(float lut[256])
{
    for (int b = 0; b < 256; b++)
        lut[b] = (float)b / 255.0f;
}

/* ---- IDX ---------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

/* Reads and checks the magic and the ndims sizes of an unsigned-byte IDX
 * file.  what: "images" / "labels". */
static int idx_header(void *f, const char *path, int ndims, const char *what,
                      uint32_t *dims, struct nb_error *err)
{
    unsigned char h[4 + 4 * 3];
    size_t hlen = 4 + 4 * (size_t)ndims, got;
    const char *eof;
    uint32_t want = (uint32_t)IDX_TYPE_UBYTE << 8 | (uint32_t)ndims;
    int rc = nb_gz_read(f, path, h, 4, &got, &eof, err);
    if (rc)
        return rc;
    if (got < 4)
        return nb_error_set(err, NB_EFORMAT, path, 0,
                            "truncated header (expected an IDX %s file "
                            "starting with magic 0x%08x, got %zu byte%s)",
                            what, (unsigned)want, got, got == 1 ? "" : "s");
    uint32_t magic = be32(h);
    if (magic != want)
        return nb_error_set(err, NB_EFORMAT, path, 0,
                            "bad magic number (expected 0x%08x for IDX %s: "
                            "unsigned bytes, %d dimension%s; got 0x%08x)",
                            (unsigned)want, what, ndims, ndims == 1 ? "" : "s",
                            (unsigned)magic);
    rc = nb_gz_read(f, path, h + 4, hlen - 4, &got, &eof, err);
    if (rc)
        return rc;
    if (got < hlen - 4)
        return nb_error_set(err, NB_EFORMAT, path, 0,
                            "truncated header (expected %zu bytes, got %zu)",
                            hlen, 4 + got);
    for (int d = 0; d < ndims; d++)
        dims[d] = be32(h + 4 + 4 * d);
    return NB_OK;
}

static int read_labels(const char *path, uint32_t n_images,
                       const char *images_path, int classes, int **labels,
                       int *max_label, struct nb_error *err)
{
    void *f = NULL;
    unsigned char *buf = NULL;
    int *y = NULL;
    uint32_t count;
    int rc = nb_gz_open(path, &f, err);
    if (rc)
        return rc;
    rc = idx_header(f, path, 1, "labels", &count, err);
    if (rc)
        goto out;
    if (count != n_images) {
        rc = nb_error_set(err, NB_EFORMAT, path, 0,
                          "label count does not match the images (expected "
                          "%u labels for the %u images of %s, got %u)",
                          (unsigned)n_images, (unsigned)n_images, images_path,
                          (unsigned)count);
        goto out;
    }
    /* grown as the bytes arrive (see the pixels in nb_idx_load) */
    size_t cap = 0, done = 0;
    while (done < count) {
        if (done == cap) {
            size_t ncap = cap ? (cap > count / 2 ? count : cap * 2)
                              : (count < READ_CHUNK ? count : READ_CHUNK);
            unsigned char *p = realloc(buf, ncap);
            if (!p) {
                rc = nb_error_set(err, NB_ENOMEM, path, 0,
                                  "cannot allocate %u labels", (unsigned)count);
                goto out;
            }
            buf = p;
            cap = ncap;
        }
        size_t want = cap - done, got;
        const char *eof;
        rc = nb_gz_read(f, path, buf + done, want, &got, &eof, err);
        if (rc)
            goto out;
        done += got;
        if (got < want) {
            rc = nb_error_set(err, NB_EFORMAT, path, 0,
                              "truncated (expected %u label bytes after the "
                              "8-byte header, got %zu%s%s)", (unsigned)count,
                              done, *eof ? "; " : "", eof);
            goto out;
        }
    }
    char what[64];
    snprintf(what, sizeof what, "%u labels", (unsigned)count);
    rc = nb_gz_expect_end(f, path, what, err);
    if (rc)
        goto out;
    y = malloc((size_t)count * sizeof *y);
    if (!y) {
        rc = nb_error_set(err, NB_ENOMEM, path, 0,
                          "cannot allocate %u labels", (unsigned)count);
        goto out;
    }
    int mx = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (classes > 0 && buf[i] >= classes) {
            rc = nb_error_set(err, NB_EFORMAT, path, 0,
                              "label out of range (expected 0..%d, got %u "
                              "at index %u)", classes - 1, (unsigned)buf[i],
                              (unsigned)i);
            goto out;
        }
        y[i] = buf[i];
        if (y[i] > mx)
            mx = y[i];
    }
    *labels = y;
    *max_label = mx;
    y = NULL;
out:
    free(buf);
    free(y);
    nb_gz_close(f);
    return rc;
}

int nb_idx_load(const char *images_path, const char *labels_path,
                int classes, const char *name, struct nb_dataset *out,
                struct nb_error *err)
{
    void *f = NULL;
    unsigned char *buf = NULL;
    int *labels = NULL;
    struct nb_dataset ds;
    uint32_t dims[3];
    int max_label = 0;
    memset(&ds, 0, sizeof ds);
    memset(out, 0, sizeof *out);
    if (classes < 0 || classes > 256)
        return nb_error_set(err, NB_EINVAL, NULL, 0,
                            "IDX labels are bytes: classes must be 0..256, "
                            "not %d", classes);

    int rc = nb_gz_open(images_path, &f, err);
    if (rc)
        return rc;
    rc = idx_header(f, images_path, 3, "images", dims, err);
    if (rc)
        goto out;
    if (dims[0] < 1 || dims[0] > IDX_MAX_COUNT || dims[1] < 1 ||
        dims[1] > IDX_MAX_SIDE || dims[2] < 1 || dims[2] > IDX_MAX_SIDE) {
        rc = nb_error_set(err, NB_EFORMAT, images_path, 0,
                          "bad dimensions (expected 1..%u images of at "
                          "most %ux%u pixels, got %u x %u x %u)",
                          IDX_MAX_COUNT, IDX_MAX_SIDE, IDX_MAX_SIDE,
                          (unsigned)dims[0], (unsigned)dims[1],
                          (unsigned)dims[2]);
        goto out;
    }
    /* labels first: a count mismatch or bad label fails before decoding */
    rc = read_labels(labels_path, dims[0], images_path,
                     classes ? classes : NB_IDX_INFER_MAX_CLASSES, &labels,
                     &max_label, err);
    if (rc) {
        if (!classes && err && err->status == NB_EFORMAT && strstr(err->msg, "label out of range"))
            nb_error_hint(err, "no class count given, and at most %d are inferred: give "
                          "it ([data] classes) when the set has more",
                          NB_IDX_INFER_MAX_CLASSES);
        goto out;
    }
    if (classes == 0)
        classes = max_label + 1;

    /* The pixels are read into a byte buffer that grows (doubling from
     * READ_CHUNK) only as data arrives, and the float set is allocated
     * once all of them are there: a header that claims far more than the
     * file holds (a 25-byte file can claim 255 images of 16384x16384) is
     * a "truncated" error, never an allocation of the claimed size. */
    const size_t total = (size_t)dims[0] * dims[1] * dims[2];
    size_t cap = 0, done = 0;
    while (done < total) {
        if (done == cap) {
            size_t ncap = cap ? (cap > total / 2 ? total : cap * 2)
                              : (total < READ_CHUNK ? total : READ_CHUNK);
            unsigned char *p = realloc(buf, ncap);
            if (!p) {
                rc = nb_error_set(err, NB_ENOMEM, images_path, 0,
                                  "cannot allocate %zu bytes for the pixels "
                                  "of %u images of %ux%u", ncap,
                                  (unsigned)dims[0], (unsigned)dims[1],
                                  (unsigned)dims[2]);
                goto out;
            }
            buf = p;
            cap = ncap;
        }
        size_t want = cap - done, got;
        const char *eof;
        rc = nb_gz_read(f, images_path, buf + done, want, &got, &eof, err);
        if (rc)
            goto out;
        done += got;
        if (got < want) {
            rc = nb_error_set(err, NB_EFORMAT, images_path, 0,
                              "truncated (expected %zu bytes of pixels for "
                              "%u images of %ux%u after the 16-byte header, "
                              "got %zu%s%s)", total, (unsigned)dims[0],
                              (unsigned)dims[1], (unsigned)dims[2], done,
                              *eof ? "; " : "", eof);
            goto out;
        }
    }
    char what[96];
    snprintf(what, sizeof what, "%u images of %ux%u", (unsigned)dims[0],
             (unsigned)dims[1], (unsigned)dims[2]);
    rc = nb_gz_expect_end(f, images_path, what, err);
    if (rc)
        goto out;

    struct nb_shape shape = {1, (int)dims[1], (int)dims[2]};
    rc = nb_dataset_init(&ds, name, dims[0], &shape, classes, 0, err);
    if (rc)
        goto out;
    ds.pixels = true;
    memcpy(ds.y, labels, (size_t)dims[0] * sizeof *labels);
    float lut[256];
    nb_byte_lut(lut);
    for (size_t i = 0; i < total; i++)
        ds.x[i] = lut[buf[i]];
    *out = ds;
    memset(&ds, 0, sizeof ds);
out:
    nb_dataset_free(&ds);
    free(buf);
    free(labels);
    nb_gz_close(f);
    return rc;
}

int nb_idx_find(const char *dir, const char *base, char *path, size_t size,
                struct nb_error *err)
{
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return nb_error_set(err, NB_ENOENT, dir, 0,
                            "no such directory (expected the IDX files %s.gz "
                            "or %s in it)", base, base);
    snprintf(path, size, "%s/%s.gz", dir, base);
    if (stat(path, &st) == 0)
        return NB_OK;
    snprintf(path, size, "%s/%s", dir, base);
    if (stat(path, &st) == 0)
        return NB_OK;
    return nb_error_set(err, NB_ENOENT, dir, 0,
                        "missing IDX file (expected %s.gz or %s here)", base,
                        base);
}

int nb_mnist_dir_load(const char *dir, struct nb_dataset *train,
                      struct nb_dataset *test, struct nb_error *err)
{
    char ti[NB_DATA_PATH_MAX + 64], tl[NB_DATA_PATH_MAX + 64];
    char vi[NB_DATA_PATH_MAX + 64], vl[NB_DATA_PATH_MAX + 64];
    int rc;
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if ((rc = nb_idx_find(dir, NB_MNIST_TRAIN_IMAGES, ti, sizeof ti, err)) ||
        (rc = nb_idx_find(dir, NB_MNIST_TRAIN_LABELS, tl, sizeof tl, err)) ||
        (rc = nb_idx_find(dir, NB_MNIST_TEST_IMAGES, vi, sizeof vi, err)) ||
        (rc = nb_idx_find(dir, NB_MNIST_TEST_LABELS, vl, sizeof vl, err)))
        return rc;
    rc = nb_idx_load(ti, tl, 10, "idx/train", train, err);
    if (rc)
        return rc;
    rc = nb_idx_load(vi, vl, 10, "idx/test", test, err);
    if (rc == 0 && (test->shape.h != train->shape.h ||
                    test->shape.w != train->shape.w))
        rc = nb_error_set(err, NB_EFORMAT, vi, 0,
                          "image size differs from the training images "
                          "(expected %dx%d as in %s, got %dx%d)",
                          train->shape.h, train->shape.w, ti, test->shape.h,
                          test->shape.w);
    if (rc) {
        nb_dataset_free(train);
        nb_dataset_free(test);
    }
    return rc;
}
