/* tests/t_data.c - data: IDX and CIFAR-10 loaders (good and bad files,
 * written here, plain and gzip), synthetic sets, splits, corruptions,
 * changes of resolution, preparation from options, batching; and the real
 * Fashion-MNIST when it is installed (skipped with a reason otherwise). */
#include <config.h> /* autoconf's */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gsl/gsl_linalg.h>
#include <zlib.h>

#include "core/rng.h"
#include "data/data.h"
#include "tap.h"

static const char *tmp;
static char scratch[4096];

/* tmp/name into a static buffer (one at a time is enough here). */
static const char *tpath(const char *name)
{
    snprintf(scratch, sizeof scratch, "%s/%s", tmp, name);
    return scratch;
}

static void write_file(const char *path, bool gz, const unsigned char *buf,
                       size_t len)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f || (len && gzwrite(f, buf, (unsigned)len) != (int)len) ||
            gzclose(f) != Z_OK)
            tap_bail("cannot write %s", path);
    } else {
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
            tap_bail("cannot write %s", path);
    }
}

static size_t put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return 4;
}

/* Pixel (i, r, c) of the test images: high-entropy but reproducible. */
static unsigned char pix(size_t i, int r, int c)
{
    return (unsigned char)((i * 37u + (unsigned)r * 11u + (unsigned)c * 5u +
                            (i * r * c) % 7u) & 0xffu);
}

/* An IDX image file of n images rows x cols; cut bytes removed from the
 * end, extra bytes appended. */
static void write_images(const char *path, bool gz, uint32_t magic,
                         uint32_t n, uint32_t rows, uint32_t cols, size_t cut,
                         size_t extra)
{
    size_t len = 16 + (size_t)n * rows * cols + extra;
    unsigned char *b = calloc(len, 1);
    size_t k = put_be32(b, magic);
    k += put_be32(b + k, n);
    k += put_be32(b + k, rows);
    k += put_be32(b + k, cols);
    for (size_t i = 0; i < n; i++)
        for (uint32_t r = 0; r < rows; r++)
            for (uint32_t c = 0; c < cols; c++)
                b[k++] = pix(i, (int)r, (int)c);
    write_file(path, gz, b, len - (cut < len ? cut : len));
    free(b);
}

static void write_labels(const char *path, bool gz, uint32_t magic,
                         uint32_t n, const unsigned char *labels, size_t cut)
{
    size_t len = 8 + n;
    unsigned char *b = calloc(len, 1);
    put_be32(b, magic);
    put_be32(b + 4, n);
    memcpy(b + 8, labels, n);
    write_file(path, gz, b, len - cut);
    free(b);
}

/* Loads an (images, labels) pair expecting an error; returns the
 * formatted message (static) and the status in *rc. */
static const char *load_err(const char *images, const char *labels,
                            int classes, int *rc)
{
    static char msg[2048];
    struct nb_dataset ds;
    struct nb_error e;
    nb_error_clear(&e);
    *rc = nb_idx_load(images, labels, classes, "t", &ds, &e);
    if (*rc == 0) {
        nb_dataset_free(&ds);
        return "(no error)";
    }
    return nb_error_format(&e, msg, sizeof msg);
}

static const unsigned char LABELS6[6] = {3, 1, 4, 1, 5, 9};

/* ---- IDX ---------------------------------------------------------------- */

static void test_idx(void)
{
    char img[4096], lab[4096], imgz[4096], labz[4096];
    struct nb_error e;
    struct nb_dataset a, b;
    int rc;
    snprintf(img, sizeof img, "%s/img", tmp);
    snprintf(lab, sizeof lab, "%s/lab", tmp);
    snprintf(imgz, sizeof imgz, "%s/img.gz", tmp);
    snprintf(labz, sizeof labz, "%s/lab.gz", tmp);
    write_images(img, false, 0x803, 6, 4, 5, 0, 0);
    write_labels(lab, false, 0x801, 6, LABELS6, 0);
    write_images(imgz, true, 0x803, 6, 4, 5, 0, 0);
    write_labels(labz, true, 0x801, 6, LABELS6, 0);

    rc = nb_idx_load(img, lab, 10, "plain", &a, &e);
    is_int(rc, 0, "IDX plain: loads");
    is_int((long long)a.n, 6, "IDX plain: 6 images");
    ok(a.shape.c == 1 && a.shape.h == 4 && a.shape.w == 5,
       "IDX plain: shape 1x4x5");
    is_int(a.classes, 10, "IDX plain: classes as given");
    bool px = true, lb = true;
    for (size_t i = 0; i < 6; i++) {
        lb &= a.y[i] == LABELS6[i];
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 5; c++)
                px &= a.x[i * 20 + (size_t)r * 5 + (size_t)c] ==
                      (float)pix(i, r, c) / 255.0f;
    }
    ok(px, "IDX plain: pixels are byte / 255 in row-major order");
    ok(lb, "IDX plain: labels in order");
    ok(a.pixels && nb_dataset_is_dense(&a), "IDX plain: dense pixel set");

    rc = nb_idx_load(imgz, labz, 0, "gz", &b, &e);
    is_int(rc, 0, "IDX gzip: loads");
    ok(rc == 0 && b.n == a.n &&
           memcmp(a.x, b.x, a.n * 20 * sizeof(float)) == 0 &&
           memcmp(a.y, b.y, a.n * sizeof(int)) == 0,
       "IDX gzip: same content as plain");
    is_int(b.classes, 10, "IDX: classes 0 infers max label + 1");
    nb_dataset_free(&a);
    nb_dataset_free(&b);

    /* mixed: gzip images with plain labels */
    rc = nb_idx_load(imgz, lab, 10, "mixed", &a, &e);
    is_int(rc, 0, "IDX: gzip images with plain labels");
    nb_dataset_free(&a);

    /* errors, each with its text */
    const char *m;
    write_images(tpath("trunc"), false, 0x803, 6, 4, 5, 7, 0);
    m = load_err(scratch, lab, 10, &rc);
    is_int(rc, NB_EFORMAT, "truncated images: NB_EFORMAT");
    contains(m, "trunc: truncated (expected 120 bytes of pixels for 6 "
                "images of 4x5", "truncated images: names file and expectation");
    contains(m, "got 113", "truncated images: says how much it got");

    write_images(tpath("trunc.gz"), true, 0x803, 6, 4, 5, 7, 0);
    m = load_err(scratch, lab, 10, &rc);
    is_int(rc, NB_EFORMAT, "truncated gzip content: NB_EFORMAT");
    contains(m, "trunc.gz: truncated (expected 120 bytes", "truncated gzip content: text");

    /* a gzip file cut short (the compressed stream itself) */
    {
        FILE *f = fopen(imgz, "rb");
        unsigned char buf[4096];
        size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f)
            fclose(f);
        write_file(tpath("cut.gz"), false, buf, len > 20 ? len - 20 : 0);
        m = load_err(scratch, lab, 10, &rc);
        is_int(rc, NB_EFORMAT, "gzip stream cut short: NB_EFORMAT");
        contains(m, "truncated", "gzip stream cut short: says truncated");
        contains(m, "cut.gz", "gzip stream cut short: names the file");
        /* corrupt the deflate data in the middle */
        if (len > 40) {
            for (size_t i = 20; i < 30; i++)
                buf[i] ^= 0x5a;
            write_file(tpath("bad.gz"), false, buf, len);
            m = load_err(scratch, lab, 10, &rc);
            is_int(rc, NB_EFORMAT, "corrupt gzip data: NB_EFORMAT");
            ok(strstr(m, "gzip") != NULL || strstr(m, "truncated") != NULL,
               "corrupt gzip data: reported (%s)", m);
        }
    }

    write_images(tpath("hdr"), false, 0x803, 6, 4, 5, 16 + 120 - 10, 0);
    m = load_err(scratch, lab, 10, &rc);
    is_int(rc, NB_EFORMAT, "truncated header: NB_EFORMAT");
    contains(m, "hdr: truncated header (expected 16 bytes, got 10)",
             "truncated header: text");

    /* found by tests/fuzz/fuzz_idx (issue 12): a header that claims far
     * more than the file holds is "truncated", and the reader never
     * allocates the claimed size first (255 images of 16384x16384 would be
     * 274 GB of floats: NB_ENOMEM before the fix) */
    {
        static const unsigned char lab3[3] = {0, 1, 2};
        unsigned char lab255[255] = {0};
        unsigned char h[20];
        size_t k = put_be32(h, 0x803);
        k += put_be32(h + k, 3);
        k += put_be32(h + k, 12802);
        k += put_be32(h + k, 15103);
        memcpy(h + k, "\x02\x00\x00\x3a", 4);
        write_file(tpath("huge3"), false, h, sizeof h);
        char labp[4096];
        snprintf(labp, sizeof labp, "%s", tpath("lab3"));
        write_labels(labp, false, 0x801, 3, lab3, 0);
        m = load_err(tpath("huge3"), labp, 3, &rc);
        is_int(rc, NB_EFORMAT, "fuzz: 3 images of 12802x15103 in 4 bytes: NB_EFORMAT");
        contains(m, "huge3: truncated (expected 580045818 bytes of pixels for 3 "
                    "images of 12802x15103 after the 16-byte header, got 4)",
                 "  says truncated, with what it got");
        put_be32(h + 4, 255);
        put_be32(h + 8, 16384);
        put_be32(h + 12, 16384);
        write_file(tpath("huge255"), false, h, sizeof h);
        snprintf(labp, sizeof labp, "%s", tpath("lab255"));
        write_labels(labp, false, 0x801, 255, lab255, 0);
        m = load_err(tpath("huge255"), labp, 0, &rc);
        is_int(rc, NB_EFORMAT, "fuzz: 255 images of 16384x16384 in 4 bytes: NB_EFORMAT");
        contains(m, "huge255: truncated (expected 68451041280 bytes of pixels",
                 "  says truncated (no 274 GB allocation)");
        /* the labels likewise: 2^28 claimed, none there */
        put_be32(h + 4, 1u << 28);
        put_be32(h + 8, 1);
        put_be32(h + 12, 1);
        write_file(tpath("many"), false, h, 16);
        unsigned char lh[8];
        put_be32(lh, 0x801);
        put_be32(lh + 4, 1u << 28);
        write_file(labp, true, lh, sizeof lh);
        m = load_err(tpath("many"), labp, 0, &rc);
        is_int(rc, NB_EFORMAT, "fuzz: 2^28 labels claimed, none there: NB_EFORMAT");
        contains(m, "lab255: truncated (expected 268435456 label bytes after "
                    "the 8-byte header, got 0", "  says truncated");
    }

    write_images(tpath("magic"), false, 0x801, 6, 4, 5, 0, 0);
    m = load_err(scratch, lab, 10, &rc);
    is_int(rc, NB_EFORMAT, "wrong magic: NB_EFORMAT");
    contains(m, "magic: bad magic number (expected 0x00000803",
             "wrong magic: names file and expected magic");
    contains(m, "got 0x00000801", "wrong magic: says what it got");

    write_images(tpath("float"), false, 0xd03, 6, 4, 5, 0, 0);
    m = load_err(scratch, lab, 10, &rc);
    contains(m, "got 0x00000d03", "IDX of floats refused by its magic");

    m = load_err(img, img, 10, &rc);
    is_int(rc, NB_EFORMAT, "images given as labels: NB_EFORMAT");
    contains(m, "bad magic number (expected 0x00000801 for IDX labels",
             "images given as labels: expected labels magic");

    write_images(tpath("dims"), false, 0x803, 6, 0, 5, 0, 0);
    m = load_err(scratch, lab, 10, &rc);
    is_int(rc, NB_EFORMAT, "zero rows: NB_EFORMAT");
    contains(m, "bad dimensions (expected 1..", "zero rows: text");
    contains(m, "got 6 x 0 x 5", "zero rows: the dimensions read");

    write_images(tpath("extra"), false, 0x803, 6, 4, 5, 0, 3);
    m = load_err(scratch, lab, 10, &rc);
    is_int(rc, NB_EFORMAT, "trailing data: NB_EFORMAT");
    contains(m, "extra: unexpected data after the end (expected 6 images of "
                "4x5 and nothing more, got 3 more bytes)",
             "trailing data: text");

    write_labels(tpath("lab5"), false, 0x801, 5, LABELS6, 0);
    m = load_err(img, scratch, 10, &rc);
    is_int(rc, NB_EFORMAT, "label/image count mismatch: NB_EFORMAT");
    contains(m, "lab5: label count does not match the images (expected 6 "
                "labels for the 6 images of",
             "label/image count mismatch: names labels file and expectation");
    contains(m, "got 5)", "label/image count mismatch: got 5");

    write_labels(tpath("labt"), true, 0x801, 6, LABELS6, 2);
    m = load_err(img, scratch, 10, &rc);
    is_int(rc, NB_EFORMAT, "truncated labels: NB_EFORMAT");
    contains(m, "labt: truncated (expected 6 label bytes after the 8-byte "
                "header, got 4", "truncated labels: text");

    unsigned char badlab[6] = {3, 1, 4, 12, 5, 9};
    write_labels(tpath("lab12"), false, 0x801, 6, badlab, 0);
    m = load_err(img, scratch, 10, &rc);
    is_int(rc, NB_EFORMAT, "label out of range: NB_EFORMAT");
    contains(m, "lab12: label out of range (expected 0..9, got 12 at index 3)",
             "label out of range: text");

    /* no class count given: at most NB_IDX_INFER_MAX_CLASSES are inferred,
     * so a stray label 200 is an error, not a 201-class set */
    unsigned char lab200[6] = {3, 1, 4, 200, 5, 9};
    char lab200p[4096];
    snprintf(lab200p, sizeof lab200p, "%s", tpath("lab200"));
    write_labels(lab200p, false, 0x801, 6, lab200, 0);
    {
        struct nb_dataset ds;
        nb_error_clear(&e);
        rc = nb_idx_load(img, lab200p, 0, "t", &ds, &e);
        is_int(rc, NB_EFORMAT, "label 200, classes inferred: NB_EFORMAT");
        char buf[2048];
        contains(nb_error_format(&e, buf, sizeof buf),
                 "lab200: label out of range (expected 0..9, got 200 at index 3)",
                 "... the label and its index");
        contains(e.hint, "[data] classes", "... the hint says how to give the count");
        if (rc == 0)
            nb_dataset_free(&ds);
        rc = nb_idx_load(img, lab200p, 201, "t", &ds, &e);
        ok(rc == 0 && ds.classes == 201, "label 200 with 201 classes given: loads");
        if (rc == 0)
            nb_dataset_free(&ds);
    }

    m = load_err(tpath("nonexistent"), lab, 10, &rc);
    is_int(rc, NB_ENOENT, "missing file: NB_ENOENT");
    contains(m, "nonexistent: cannot open: No such file or directory",
             "missing file: names it");

    /* standard MNIST directory, .gz and plain mixed */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/mnistdir", tmp);
    mkdir(dir, 0777);
    unsigned char lab10[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    snprintf(img, sizeof img, "%s/" NB_MNIST_TRAIN_IMAGES ".gz", dir);
    write_images(img, true, 0x803, 10, 6, 6, 0, 0);
    snprintf(img, sizeof img, "%s/" NB_MNIST_TRAIN_LABELS, dir);
    write_labels(img, false, 0x801, 10, lab10, 0);
    snprintf(img, sizeof img, "%s/" NB_MNIST_TEST_IMAGES, dir);
    write_images(img, false, 0x803, 4, 6, 6, 0, 0);
    snprintf(img, sizeof img, "%s/" NB_MNIST_TEST_LABELS ".gz", dir);
    write_labels(img, true, 0x801, 4, lab10, 0);
    rc = nb_mnist_dir_load(dir, &a, &b, &e);
    is_int(rc, 0, "MNIST directory: loads (.gz and plain)");
    ok(rc == 0 && a.n == 10 && b.n == 4 && a.shape.h == 6 && b.shape.w == 6,
       "MNIST directory: train 10, test 4, 6x6");
    nb_dataset_free(&a);
    nb_dataset_free(&b);
    char buf[2048];
    rc = nb_mnist_dir_load(tpath("nodir"), &a, &b, &e);
    is_int(rc, NB_ENOENT, "MNIST directory missing: NB_ENOENT");
    contains(nb_error_format(&e, buf, sizeof buf), "nodir: no such directory",
             "MNIST directory missing: text");
    rc = nb_mnist_dir_load(tmp, &a, &b, &e);
    is_int(rc, NB_ENOENT, "MNIST file missing: NB_ENOENT");
    contains(nb_error_format(&e, buf, sizeof buf),
             "missing IDX file (expected train-images-idx3-ubyte.gz or "
             "train-images-idx3-ubyte here)", "MNIST file missing: text");
}

/* ---- CIFAR-10 ----------------------------------------------------------- */

#define REC 3073

static void write_cifar(const char *dir, const char *name, bool gz, size_t n,
                        int first_label, size_t cut, int bad_record)
{
    char path[4096];
    unsigned char *b = malloc(n * REC + 1);
    for (size_t r = 0; r < n; r++) {
        b[r * REC] = (unsigned char)((first_label + (int)r) % 10);
        if ((int)r == bad_record)
            b[r * REC] = 10;
        for (int e = 0; e < 3072; e++)
            b[r * REC + 1 + (size_t)e] = (unsigned char)((e * 7 + (int)r) & 0xff);
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file(path, gz, b, n * REC - cut);
    free(b);
}

static void cifar_dir(const char *dir, int bad_file, size_t cut,
                      int bad_record)
{
    mkdir(dir, 0777);
    for (int i = 1; i <= 5; i++) {
        char name[64];
        snprintf(name, sizeof name, "data_batch_%d.bin", i);
        write_cifar(dir, name, i == 2, (size_t)i, i, i == bad_file ? cut : 0,
                    i == bad_file ? bad_record : -1);
    }
    write_cifar(dir, "test_batch.bin", false, 3, 0, 0, -1);
}

static void test_cifar(void)
{
    char dir[2048], buf[2048];
    struct nb_dataset a, b;
    struct nb_error e;
    snprintf(dir, sizeof dir, "%s/cifar", tmp);
    cifar_dir(dir, 0, 0, -1);
    int rc = nb_cifar10_load(dir, &a, &b, &e);
    is_int(rc, 0, "CIFAR-10: loads (one batch gzip)");
    is_int((long long)a.n, 15, "CIFAR-10: 1+2+3+4+5 training records");
    is_int((long long)b.n, 3, "CIFAR-10: 3 test records");
    ok(a.shape.c == 3 && a.shape.h == 32 && a.shape.w == 32,
       "CIFAR-10: shape 3x32x32");
    /* record 1 of data_batch_2 is sample 2: label (2 + 1) % 10 */
    ok(rc == 0 && a.y[2] == 3 && a.y[0] == 1 && b.y[2] == 2,
       "CIFAR-10: labels in file order");
    ok(rc == 0 && a.x[2 * 3072 + 1024] == (float)((1024 * 7 + 1) & 0xff) / 255.0f &&
           a.x[2 * 3072 + 3071] == (float)((3071 * 7 + 1) & 0xff) / 255.0f,
       "CIFAR-10: pixels in R, G, B planes, scaled to [0,1]");
    nb_dataset_free(&a);
    nb_dataset_free(&b);

    /* the tarball's sub-directory is found */
    char parent[1024];
    snprintf(parent, sizeof parent, "%s/cifarp", tmp);
    mkdir(parent, 0777);
    snprintf(dir, sizeof dir, "%s/cifar-10-batches-bin", parent);
    cifar_dir(dir, 0, 0, -1);
    rc = nb_cifar10_load(parent, &a, &b, &e);
    is_int(rc, 0, "CIFAR-10: finds cifar-10-batches-bin/");
    nb_dataset_free(&a);
    nb_dataset_free(&b);

    snprintf(dir, sizeof dir, "%s/cifar_trunc", tmp);
    cifar_dir(dir, 3, 100, -1);
    rc = nb_cifar10_load(dir, &a, &b, &e);
    is_int(rc, NB_EFORMAT, "CIFAR-10 truncated: NB_EFORMAT");
    contains(nb_error_format(&e, buf, sizeof buf),
             "data_batch_3.bin: truncated (expected a whole number of "
             "3073-byte records: 1 label byte + 3072 pixel bytes; got 9119 "
             "bytes", "CIFAR-10 truncated: names file and expectation");

    snprintf(dir, sizeof dir, "%s/cifar_label", tmp);
    cifar_dir(dir, 4, 0, 2);
    rc = nb_cifar10_load(dir, &a, &b, &e);
    is_int(rc, NB_EFORMAT, "CIFAR-10 bad label: NB_EFORMAT");
    contains(nb_error_format(&e, buf, sizeof buf),
             "data_batch_4.bin: label out of range (expected 0..9, got 10 in "
             "record 2", "CIFAR-10 bad label: text");

    snprintf(dir, sizeof dir, "%s/cifar_gzcut", tmp);
    cifar_dir(dir, 0, 0, -1);
    {
        char p[4096];
        snprintf(p, sizeof p, "%s/data_batch_2.bin", dir);
        FILE *f = fopen(p, "rb");
        static unsigned char raw[1 << 16];
        size_t len = f ? fread(raw, 1, sizeof raw, f) : 0;
        if (f)
            fclose(f);
        write_file(p, false, raw, len / 2);
    }
    rc = nb_cifar10_load(dir, &a, &b, &e);
    is_int(rc, NB_EFORMAT, "CIFAR-10 gzip cut short: NB_EFORMAT");
    contains(nb_error_format(&e, buf, sizeof buf), "data_batch_2.bin: truncated",
             "CIFAR-10 gzip cut short: text");

    snprintf(dir, sizeof dir, "%s/cifar_empty", tmp);
    cifar_dir(dir, 1, REC, -1);
    rc = nb_cifar10_load(dir, &a, &b, &e);
    contains(nb_error_format(&e, buf, sizeof buf), "data_batch_1.bin: empty",
             "CIFAR-10 empty batch: text");

    rc = nb_cifar10_load(tmp, &a, &b, &e);
    is_int(rc, NB_ENOENT, "CIFAR-10 missing: NB_ENOENT");
    contains(nb_error_format(&e, buf, sizeof buf),
             "missing CIFAR-10 file (expected data_batch_1.bin",
             "CIFAR-10 missing: text");
}

/* ---- synthetic ---------------------------------------------------------- */

static void test_synth(void)
{
    struct nb_synth_opts s;
    struct nb_dataset a, b, c, d;
    struct nb_error e;
    nb_synth_opts_default(&s);
    s.n_train = 200;
    s.n_test = 50;
    s.shape = (struct nb_shape){2, 6, 5};
    s.classes = 4;
    s.seed = 7;
    s.spread = 0.05; /* 60 pixels: centres ~3.6 noise-sds apart */
    int rc = nb_synth_blobs(&s, &a, &b, &e);
    is_int(rc, 0, "blobs: generated");
    ok(a.n == 200 && b.n == 50 && a.shape.c == 2 && a.shape.h == 6 &&
           a.shape.w == 5 && a.classes == 4,
       "blobs: sizes, shape and classes as asked");
    size_t counts[4];
    nb_dataset_class_counts(&a, counts);
    ok(counts[0] == 50 && counts[1] == 50 && counts[2] == 50 && counts[3] == 50,
       "blobs: balanced labels");
    bool in01 = true;
    for (size_t i = 0; i < a.n * 60; i++)
        in01 &= a.x[i] >= 0.0f && a.x[i] <= 1.0f;
    ok(in01 && a.pixels, "blobs: pixels in [0,1]");
    nb_synth_blobs(&s, &c, &d, &e);
    ok(memcmp(a.x, c.x, a.n * 60 * sizeof(float)) == 0 &&
           memcmp(b.x, d.x, b.n * 60 * sizeof(float)) == 0,
       "blobs: same seed, same data");
    nb_dataset_free(&c);
    nb_dataset_free(&d);
    s.seed = 8;
    nb_synth_blobs(&s, &c, &d, &e);
    ok(memcmp(a.x, c.x, a.n * 60 * sizeof(float)) != 0,
       "blobs: another seed, other data");
    nb_dataset_free(&c);
    nb_dataset_free(&d);
    /* nearest class mean (from train) classifies test well above chance */
    {
        double mu[4][60] = {{0}};
        for (size_t i = 0; i < a.n; i++)
            for (int k = 0; k < 60; k++)
                mu[a.y[i]][k] += a.x[i * 60 + (size_t)k] / 50.0;
        int right = 0;
        for (size_t i = 0; i < b.n; i++) {
            int best = 0;
            double bd = INFINITY;
            for (int cl = 0; cl < 4; cl++) {
                double dd = 0;
                for (int k = 0; k < 60; k++) {
                    double t = b.x[i * 60 + (size_t)k] - mu[cl][k];
                    dd += t * t;
                }
                if (dd < bd)
                    bd = dd, best = cl;
            }
            right += best == b.y[i];
        }
        ok(right >= 40, "blobs: classes are separable (%d/50 by nearest mean)",
           right);
    }
    nb_dataset_free(&a);
    nb_dataset_free(&b);

    s.classes = 1;
    rc = nb_synth_blobs(&s, &a, &b, &e);
    is_int(rc, NB_EINVAL, "blobs: one class refused");

    /* deep-linear-network regression */
    nb_synth_opts_default(&s);
    rc = nb_synth_dln(&s, &a, &b, &e);
    is_int(rc, 0, "dln: generated");
    ok(a.n == 1000 && b.n == 1000 && a.shape.c == 10 && a.shape.h == 1 &&
           a.tdim == 10 && a.classes == 0 && a.y == NULL && a.t != NULL,
       "dln: 1000 samples of x in R^10, targets in R^10");
    /* recover A from 10 training samples and check it predicts the test
     * targets: t = A x exactly (up to float rounding) */
    {
        gsl_matrix *X = gsl_matrix_alloc(10, 10);
        gsl_vector *rhs = gsl_vector_alloc(10), *row = gsl_vector_alloc(10);
        gsl_permutation *p = gsl_permutation_alloc(10);
        double A[10][10];
        int sgn;
        for (int i = 0; i < 10; i++)
            for (int k = 0; k < 10; k++)
                gsl_matrix_set(X, (size_t)i, (size_t)k, a.x[i * 10 + k]);
        gsl_linalg_LU_decomp(X, p, &sgn);
        for (int j = 0; j < 10; j++) {
            for (int i = 0; i < 10; i++)
                gsl_vector_set(rhs, (size_t)i, a.t[i * 10 + j]);
            gsl_linalg_LU_solve(X, p, rhs, row);
            for (int k = 0; k < 10; k++)
                A[j][k] = gsl_vector_get(row, (size_t)k);
        }
        double worst = 0;
        for (size_t i = 0; i < b.n; i++)
            for (int j = 0; j < 10; j++) {
                double t = 0;
                for (int k = 0; k < 10; k++)
                    t += A[j][k] * b.x[i * 10 + (size_t)k];
                double dd = fabs(t - b.t[i * 10 + (size_t)j]);
                if (dd > worst)
                    worst = dd;
            }
        ok(worst < 1e-3, "dln: test targets are A x with the training A "
                         "(worst %.2g)", worst);
        gsl_matrix_free(X);
        gsl_vector_free(rhs);
        gsl_vector_free(row);
        gsl_permutation_free(p);
    }
    nb_dataset_free(&a);
    nb_dataset_free(&b);
}

/* ---- splits, corruptions, resizing -------------------------------------- */

static bool sorted_unique(const size_t *r, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (r[i] <= r[i - 1])
            return false;
    return true;
}

static void test_transforms(void)
{
    struct nb_synth_opts s;
    struct nb_dataset a, b, tr, va, tr2, va2;
    struct nb_error e;
    char buf[2048];
    nb_synth_opts_default(&s);
    s.n_train = 300;
    s.n_test = 40;
    s.shape = (struct nb_shape){1, 8, 6};
    s.classes = 3;
    nb_synth_blobs(&s, &a, &b, &e);

    gsl_rng *r1 = nb_rng_alloc(3, NB_STREAM_DATA);
    gsl_rng *r2 = nb_rng_alloc(3, NB_STREAM_DATA);
    int rc = nb_data_split(&a, 30, 60, true, r1, &tr, &va, &e);
    is_int(rc, 0, "split: 30 val + 60 balanced train");
    ok(tr.n == 60 && va.n == 30, "split: sizes");
    ok(tr.shape.h == 8 && tr.shape.w == 6 && va.shape.h == 8,
       "split: shapes kept");
    ok(tr.x == a.x && va.x == a.x, "split: views share the parent's storage");
    size_t counts[3];
    nb_dataset_class_counts(&tr, counts);
    ok(counts[0] == 20 && counts[1] == 20 && counts[2] == 20,
       "split: balanced subset has 20 per class");
    ok(sorted_unique(tr.rows, tr.n) && sorted_unique(va.rows, va.n),
       "split: rows sorted and distinct");
    bool disjoint = true;
    for (size_t i = 0; i < tr.n; i++)
        for (size_t j = 0; j < va.n; j++)
            disjoint &= tr.rows[i] != va.rows[j];
    ok(disjoint, "split: validation held out of training");
    {
        float x1[48], x2[48];
        int y1;
        nb_dataset_gather(&tr, (size_t[]){5}, 1, x1, &y1, NULL);
        memcpy(x2, a.x + tr.rows[5] * 48, sizeof x2);
        ok(y1 == a.y[tr.rows[5]] && memcmp(x1, x2, sizeof x1) == 0,
           "split: a view's sample is its parent's row, label kept");
    }
    rc = nb_data_split(&a, 30, 60, true, r2, &tr2, &va2, &e);
    ok(rc == 0 && memcmp(tr.rows, tr2.rows, 60 * sizeof(size_t)) == 0 &&
           memcmp(va.rows, va2.rows, 30 * sizeof(size_t)) == 0,
       "split: same seed, same split");
    nb_dataset_free(&tr2);
    nb_dataset_free(&va2);
    rc = nb_data_split(&a, 30, 60, true, r2, &tr2, &va2, &e);
    ok(rc == 0 && memcmp(tr.rows, tr2.rows, 60 * sizeof(size_t)) != 0,
       "split: later draws give another split");
    nb_dataset_free(&tr2);
    nb_dataset_free(&va2);
    /* a view of a view composes rows */
    rc = nb_dataset_view(&tr, (size_t[]){0, 59}, 2, "vv", &tr2, &e);
    ok(rc == 0 && tr2.rows[0] == tr.rows[0] && tr2.rows[1] == tr.rows[59],
       "view of a view maps to the parent's rows");
    nb_dataset_free(&tr2);

    rc = nb_data_split(&a, 300, 0, false, r1, &tr2, &va2, &e);
    is_int(rc, NB_ERANGE, "split: all samples to validation refused");
    contains(nb_error_format(&e, buf, sizeof buf),
             "a validation split of 300 samples leaves no training samples",
             "split: text of the refusal");
    rc = nb_data_split(&a, 100, 250, false, r1, &tr2, &va2, &e);
    is_int(rc, NB_ERANGE, "subset larger than what is left: NB_ERANGE");
    {
        /* classes 1 and 2 complete, 10 samples of class 0 */
        size_t idx[300], k = 0, zeros = 0;
        for (size_t i = 0; i < a.n; i++)
            if (a.y[i] != 0 || zeros++ < 10)
                idx[k++] = i;
        struct nb_dataset u;
        nb_dataset_view(&a, idx, k, "u", &u, &e);
        rc = nb_data_split(&u, 0, 60, true, r1, &tr2, &va2, &e);
        is_int(rc, NB_ERANGE, "balanced subset beyond a class: NB_ERANGE");
        contains(nb_error_format(&e, buf, sizeof buf),
                 "u: a class-balanced subset of 60 samples needs 20 of class "
                 "0 (got only 10)", "balanced subset beyond a class: text");
        rc = nb_data_split(&u, 0, 30, true, r1, &tr2, &va2, &e);
        nb_dataset_class_counts(&tr2, counts);
        ok(rc == 0 && counts[0] == 10 && counts[1] == 10 && counts[2] == 10,
           "balanced subset from an unbalanced set: 10 per class");
        nb_dataset_free(&tr2);
        nb_dataset_free(&va2);
        nb_dataset_free(&u);
    }

    /* corruption on a view: copy-on-write, parent untouched */
    float *before = malloc(a.n * 48 * sizeof(float));
    memcpy(before, a.x, a.n * 48 * sizeof(float));
    struct nb_dataset cv;
    for (int kind = 1; kind < NB_CORRUPT_COUNT; kind++) {
        nb_dataset_view(&va, NULL, va.n, "cv", &cv, &e);
        rc = nb_data_corrupt(&cv, (enum nb_corruption)kind, 3, r1, &e);
        bool same_lab = true, in01 = true, changed = false;
        for (size_t i = 0; i < cv.n; i++) {
            same_lab &= cv.y[nb_dataset_row(&cv, i)] ==
                        va.y[nb_dataset_row(&va, i)];
            const float *p = cv.x + nb_dataset_row(&cv, i) * 48;
            const float *q = va.x + nb_dataset_row(&va, i) * 48;
            for (int k = 0; k < 48; k++) {
                in01 &= p[k] >= 0.0f && p[k] <= 1.0f;
                changed |= p[k] != q[k];
            }
        }
        ok(rc == 0 && cv.n == va.n && cv.shape.h == 8 && cv.shape.w == 6 &&
               same_lab && in01 && changed,
           "corruption %s: shape and labels kept, pixels changed, in [0,1]",
           nb_corruption_name((enum nb_corruption)kind));
        nb_dataset_free(&cv);
    }
    ok(memcmp(before, a.x, a.n * 48 * sizeof(float)) == 0,
       "corruptions leave the shared parent untouched");
    free(before);

    /* corruption arithmetic on a hand-made set */
    {
        struct nb_shape sh = {1, 4, 4};
        struct nb_dataset h;
        nb_dataset_init(&h, "hand", 2, &sh, 2, 0, &e);
        h.pixels = true;
        for (int k = 0; k < 32; k++)
            h.x[k] = 0.25f + 0.03f * (float)(k % 16);
        h.y[0] = 0;
        h.y[1] = 1;
        struct nb_dataset g;
        nb_dataset_view(&h, NULL, 2, "g", &g, &e);
        nb_data_corrupt(&g, NB_CORRUPT_CONTRAST, 2, r1, &e);
        double m = 0.0;
        for (int k = 0; k < 16; k++)
            m += h.x[k] / 16.0;
        is_close(g.x[3], (h.x[3] - m) * 0.5 + m, 1e-6, 0,
                 "contrast severity 2: (x - mean) * 0.5 + mean");
        nb_dataset_free(&g);
        nb_dataset_view(&h, NULL, 2, "g", &g, &e);
        nb_data_corrupt(&g, NB_CORRUPT_INVERSION, 5, r1, &e);
        is_close(g.x[7], 1.0 - h.x[7], 1e-7, 0,
                 "inversion severity 5: every image is 1 - x");
        nb_dataset_free(&g);
        nb_dataset_view(&h, NULL, 2, "g", &g, &e);
        for (int k = 0; k < 16; k++)
            g.x[k] = 0.5f; /* g still shares h: this writes h */
        nb_data_corrupt(&g, NB_CORRUPT_BLUR, 5, r1, &e);
        is_close(g.x[5], 0.5, 1e-6, 0, "blur keeps a constant image");
        nb_dataset_free(&g);
        rc = nb_data_corrupt(&h, NB_CORRUPT_BLUR, 6, r1, &e);
        is_int(rc, NB_ERANGE, "severity 6 refused");
        nb_dataset_free(&h);
    }
    is_close(nb_corruption_level(NB_CORRUPT_GAUSSIAN_NOISE, 5), 0.10, 0, 0,
             "gaussian_noise severity 5 is sigma 0.10 (CIFAR-10-C)");

    /* resizing */
    {
        struct nb_shape sh = {2, 4, 5};
        struct nb_dataset h, g;
        nb_dataset_init(&h, "hand", 3, &sh, 3, 0, &e);
        h.pixels = true;
        for (int k = 0; k < 60; k++)
            h.x[k] = (float)k / 60.0f;
        for (int i = 0; i < 3; i++)
            h.y[i] = 2 - i;
        nb_dataset_view(&h, (size_t[]){2, 0}, 2, "g", &g, &e);
        rc = nb_data_resize(&g, 6, 7, NB_RESIZE_PAD_CROP, &e);
        ok(rc == 0 && g.n == 2 && g.shape.c == 2 && g.shape.h == 6 &&
               g.shape.w == 7 && g.y[0] == 0 && g.y[1] == 2,
           "pad: shape 2x6x7, labels kept in view order");
        ok(g.x[0] == 0.0f && g.x[1 * 7 + 1] == h.x[2 * 40] &&
               g.x[42 + 4 * 7 + 5] == h.x[2 * 40 + 20 + 3 * 5 + 4] &&
               g.x[42 + 5 * 7 + 6] == 0.0f && g.x[84 + 1 * 7 + 1] == h.x[0],
           "pad: zeros around, content centred");
        rc = nb_data_resize(&g, 4, 5, NB_RESIZE_PAD_CROP, &e);
        ok(rc == 0 && memcmp(g.x, h.x + 80, 40 * sizeof(float)) == 0 &&
               memcmp(g.x + 40, h.x, 40 * sizeof(float)) == 0,
           "crop back: the original image");
        nb_dataset_free(&g);
        nb_dataset_view(&h, NULL, 3, "g", &g, &e);
        rc = nb_data_resize(&g, 4, 5, NB_RESIZE_BILINEAR, &e);
        ok(rc == 0 && memcmp(g.x, h.x, 60 * sizeof(float)) == 0,
           "bilinear to the same size: identity");
        nb_dataset_free(&g);
        nb_dataset_view(&h, NULL, 3, "g", &g, &e);
        rc = nb_data_resize(&g, 2, 2, NB_RESIZE_BILINEAR, &e);
        /* 4x5 -> 2x2: rows at src 0.5, 2.5; cols at 0.75, 3.25 */
        double want = 0.5 * ((0.25 * h.x[0] + 0.75 * h.x[1]) +
                             (0.25 * h.x[5] + 0.75 * h.x[6]));
        is_close(g.x[0], want, 1e-6, 0, "bilinear 4x5 -> 2x2, corner tap "
                                        "(align_corners=False)");
        nb_dataset_free(&g);
        nb_dataset_view(&h, NULL, 3, "g", &g, &e);
        rc = nb_data_resize(&g, 8, 10, NB_RESIZE_BILINEAR, &e);
        /* 2x upsampling: dst 1 <- src 0.25 */
        want = 0.75 * (0.75 * h.x[0] + 0.25 * h.x[1]) +
               0.25 * (0.75 * h.x[5] + 0.25 * h.x[6]);
        is_close(g.x[1 * 10 + 1], want, 1e-6, 0, "bilinear 2x upsampling tap");
        is_close(g.x[0], h.x[0], 1e-7, 0, "bilinear: corner clamps");
        nb_dataset_free(&g);
        nb_dataset_free(&h);
    }
    gsl_rng_free(r1);
    gsl_rng_free(r2);
    nb_dataset_free(&tr);
    nb_dataset_free(&va);
    nb_dataset_free(&a);
    nb_dataset_free(&b);
}

/* ---- batching ----------------------------------------------------------- */

static void test_loader(void)
{
    struct nb_synth_opts s;
    struct nb_dataset a, b;
    struct nb_error e;
    struct nb_loader ld;
    nb_synth_opts_default(&s);
    s.n_train = 23;
    s.n_test = 5;
    s.shape = (struct nb_shape){1, 3, 3};
    s.classes = 3;
    nb_synth_blobs(&s, &a, &b, &e);
    a.mean = 0.5f;
    a.std = 0.25f;

    static const int sizes[] = {1, 2, 5, 23, 30};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        for (int drop = 0; drop < 2; drop++) {
            int bs = sizes[si];
            gsl_rng *r = nb_rng_alloc(11, NB_STREAM_DATA);
            int rc = nb_loader_init(&ld, &a, bs, drop, r, &e);
            if (drop && bs > 23) {
                is_int(rc, NB_EINVAL, "batch %d > n with drop_last refused", bs);
                gsl_rng_free(r);
                continue;
            }
            size_t want_batches = drop ? 23 / (size_t)bs : (23 + (size_t)bs - 1) / (size_t)bs;
            is_int((long long)nb_loader_batches(&ld), (long long)want_batches,
                   "batch %d drop_last %d: %zu batches", bs, drop, want_batches);
            int seen[23] = {0};
            size_t batches = 0, total = 0, last = 0;
            bool stable = true, values = true;
            const float *x0 = ld.x;
            nb_loader_epoch(&ld);
            const float *x;
            const int *y;
            int k;
            size_t start = 0;
            while ((k = nb_loader_next(&ld, &x, &y, NULL)) > 0) {
                stable &= x == x0;
                for (int j = 0; j < k; j++) {
                    size_t idx = ld.perm[start + (size_t)j];
                    seen[idx]++;
                    values &= y[j] == a.y[idx] &&
                              x[j * 9 + 4] == (a.x[idx * 9 + 4] - 0.5f) / 0.25f;
                }
                start += (size_t)k;
                batches++;
                total += (size_t)k;
                last = (size_t)k;
            }
            bool perm_ok = true;
            for (int i = 0; i < 23; i++)
                perm_ok &= drop ? seen[i] <= 1 : seen[i] == 1;
            ok(batches == want_batches && total == (drop ? want_batches * (size_t)bs : 23) &&
                   last == (drop || 23 % bs == 0 ? (size_t)(bs < 23 ? bs : 23)
                                                 : (size_t)(23 % bs)),
               "batch %d drop_last %d: batch sizes and count", bs, drop);
            ok(perm_ok, "batch %d drop_last %d: each sample at most/exactly once",
               bs, drop);
            ok(values && stable, "batch %d drop_last %d: samples standardized "
                                 "into the same buffer", bs, drop);
            nb_loader_free(&ld);
            gsl_rng_free(r);
        }
    }

    /* the permutation: a permutation, seeded, fresh every epoch */
    gsl_rng *r1 = nb_rng_alloc(5, NB_STREAM_DATA);
    gsl_rng *r2 = nb_rng_alloc(5, NB_STREAM_DATA);
    struct nb_loader l2;
    nb_loader_init(&ld, &a, 4, false, r1, &e);
    nb_loader_init(&l2, &a, 4, false, r2, &e);
    nb_loader_epoch(&ld);
    nb_loader_epoch(&l2);
    size_t e1[23];
    memcpy(e1, ld.perm, sizeof e1);
    int cnt[23] = {0};
    for (int i = 0; i < 23; i++)
        cnt[e1[i]]++;
    bool isperm = true, identity = true;
    for (int i = 0; i < 23; i++) {
        isperm &= cnt[i] == 1;
        identity &= e1[i] == (size_t)i;
    }
    ok(isperm && !identity, "shuffle: a permutation, not the identity");
    ok(memcmp(ld.perm, l2.perm, sizeof e1) == 0, "shuffle: same seed, same order");
    nb_loader_epoch(&ld);
    ok(memcmp(ld.perm, e1, sizeof e1) != 0, "shuffle: a new order each epoch");
    nb_loader_free(&ld);
    nb_loader_free(&l2);
    gsl_rng_free(r1);
    gsl_rng_free(r2);

    /* no shuffling for evaluation */
    nb_loader_init(&ld, &b, 2, false, NULL, &e);
    nb_loader_epoch(&ld);
    bool inorder = true;
    const int *y;
    int k, i = 0;
    while ((k = nb_loader_next(&ld, NULL, &y, NULL)) > 0)
        for (int j = 0; j < k; j++, i++)
            inorder &= y[j] == b.y[i];
    ok(inorder && i == 5, "rng NULL: samples in order, last partial kept");
    is_int(nb_loader_next(&ld, NULL, NULL, NULL), 0, "0 at the end of an epoch");
    nb_loader_free(&ld);
    is_int(nb_loader_init(&ld, &b, 0, false, NULL, &e), NB_EINVAL,
           "batch 0 refused");

    /* regression targets */
    struct nb_dataset da, db;
    nb_synth_opts_default(&s);
    nb_synth_dln(&s, &da, &db, &e);
    nb_loader_init(&ld, &da, 3, false, NULL, &e);
    nb_loader_epoch(&ld);
    const float *t;
    const int *yy;
    k = nb_loader_next(&ld, NULL, &yy, &t);
    ok(k == 3 && yy == NULL && t && t[10 + 4] == da.t[10 + 4],
       "regression batches carry targets, no labels");
    nb_loader_free(&ld);
    nb_dataset_free(&da);
    nb_dataset_free(&db);
    nb_dataset_free(&a);
    nb_dataset_free(&b);
}

/* ---- preparation from options ------------------------------------------- */

static void test_prepare(void)
{
    struct nb_data_opts o;
    struct nb_data d, d2;
    struct nb_error e;
    char buf[2048];
    int rc;

    nb_data_opts_default(&o);
    o.source = NB_SRC_BLOBS;
    o.synth.n_train = 500;
    o.synth.n_test = 100;
    o.val_split = 0.1;
    o.train_subset = 300;
    o.balanced = true;
    o.standardize = NB_STD_COMPUTED;
    rc = nb_data_prepare(&o, 42, &d, &e);
    is_int(rc, 0, "prepare blobs: ok");
    ok(d.train.n == 270 && d.val.n == 30 && d.test.n == 100,
       "prepare: subset 300 = 270 training + validation 10%% of it (30), test 100");
    double m, sd;
    nb_dataset_moments(&d.train, true, &m, &sd);
    ok(fabs(m) < 1e-4 && fabs(sd - 1.0) < 1e-4,
       "prepare: computed standardization gives mean 0, std 1 on train "
       "(%.2g, %.6f)", m, sd);
    ok(d.val.mean == d.train.mean && d.test.std == d.train.std,
       "prepare: the same standardization on val and test");
    ok(d.notice[0] == '\0', "prepare: no notice without a fallback");
    is_str(d.train.name, "blobs/train", "prepare: set names");
    nb_data_describe(&d, buf, sizeof buf);
    contains(buf, "blobs train 270 val 30 test 100 shape 1x28x28 classes 10",
             "describe: one line for meta.txt");

    rc = nb_data_prepare(&o, 42, &d2, &e);
    ok(rc == 0 && d2.from_cache && d2.train.x == d.train.x,
       "prepare again: from the cache, sharing storage");
    ok(memcmp(d.train.rows, d2.train.rows, 270 * sizeof(size_t)) == 0,
       "prepare: same seed, same split");
    nb_data_free(&d2);
    rc = nb_data_prepare(&o, 43, &d2, &e);
    ok(rc == 0 && memcmp(d.train.rows, d2.train.rows, 270 * sizeof(size_t)) != 0,
       "prepare: another seed, another split");
    nb_data_free(&d2);
    o.split_seed = 9;
    nb_data_prepare(&o, 43, &d2, &e);
    struct nb_data d3;
    nb_data_prepare(&o, 44, &d3, &e);
    ok(memcmp(d3.train.rows, d2.train.rows, 270 * sizeof(size_t)) == 0,
       "prepare: split_seed fixes the split across run seeds");
    nb_data_free(&d2);
    nb_data_free(&d3);
    o.split_seed = 0;

    /* the cache may go while sets still use its storage */
    nb_data_cache_clear();
    float probe[784];
    nb_dataset_gather(&d.train, (size_t[]){269}, 1, probe, NULL, NULL);
    ok(isfinite(probe[0]), "sets outlive a cleared cache");
    nb_data_free(&d);

    /* corruption + resolution */
    o.corruption = NB_CORRUPT_GAUSSIAN_NOISE;
    o.severity = 5;
    o.resize_h = 32;
    o.resize_w = 32;
    o.resize_apply = NB_APPLY_TEST;
    o.resize_mode = NB_RESIZE_BILINEAR;
    rc = nb_data_prepare(&o, 42, &d, &e);
    ok(rc == 0 && d.test.shape.h == 32 && d.train.shape.h == 28 &&
           d.val.shape.w == 28,
       "prepare: test-only resize to 32x32, train stays 28x28");
    nb_data_describe(&d, buf, sizeof buf);
    contains(buf, "test 1x32x32", "describe: both shapes");
    contains(buf, "corruption noise severity 5",
             "describe: the corruption");
    nb_data_free(&d);
    o.corruption = NB_CORRUPT_NONE;
    o.resize_h = o.resize_w = 0;

    o.severity = 9;
    o.corruption = NB_CORRUPT_BLUR;
    rc = nb_data_prepare(&o, 1, &d, &e);
    is_int(rc, NB_ERANGE, "prepare: severity 9 refused");
    o.corruption = NB_CORRUPT_NONE;
    o.val_split = 2.5;
    rc = nb_data_prepare(&o, 1, &d, &e);
    is_int(rc, NB_ERANGE, "prepare: fractional count > 1 refused");
    o.val_split = 300;
    o.train_subset = 300;
    rc = nb_data_prepare(&o, 1, &d, &e);
    is_int(rc, NB_EINVAL, "prepare: a validation count that takes the whole subset refused");
    contains(e.msg, "leaves no training sample of train_subset 300", "  and says why");
    o.train_subset = 0;
    o.val_split = 0;

    /* dln: no standardization by default, balanced refused */
    nb_data_opts_default(&o);
    o.source = NB_SRC_DLN;
    rc = nb_data_prepare(&o, 1, &d, &e);
    ok(rc == 0 && d.train.n == 1000 && d.train.tdim == 10 && d.std == 1.0f &&
           d.mean == 0.0f, "prepare dln: 1000 samples, not standardized");
    nb_data_free(&d);
    o.train_subset = 100;
    o.balanced = true;
    rc = nb_data_prepare(&o, 1, &d, &e);
    is_int(rc, NB_EINVAL, "prepare dln: a balanced subset needs labels");

    /* idx from the test's MNIST-format directory */
    nb_data_opts_default(&o);
    o.source = NB_SRC_IDX;
    snprintf(o.dir, sizeof o.dir, "%s/mnistdir", tmp);
    rc = nb_data_prepare(&o, 1, &d, &e);
    ok(rc == 0 && d.train.n == 10 && d.test.n == 4 && d.train.classes == 10,
       "prepare idx: standard names in a directory");
    nb_data_free(&d);
    nb_data_opts_default(&o);
    o.source = NB_SRC_MNIST;
    rc = nb_data_prepare(&o, 1, &d, &e);
    is_int(rc, NB_EINVAL, "prepare mnist without a directory refused");

    /* Fashion-MNIST absent: fallback with a notice, or an error with a hint */
    nb_data_opts_default(&o);
    ok(!o.fallback_to_synthetic, "no fallback unless asked for (as [data] fallback)");
    snprintf(o.dir, sizeof o.dir, "%s/no-fashion", tmp);
    o.synth.n_train = 200;
    o.synth.n_test = 50;
    o.fallback_to_synthetic = true;
    nb_error_clear(&e);
    rc = nb_data_prepare(&o, 1, &d, &e);
    is_int(rc, NB_ENOENT, "a named directory that does not exist: an error, even with "
                          "fallback");
    contains(nb_error_format(&e, buf, sizeof buf), "no-fashion: no such directory",
             "... naming the directory");
    ok(rc != 0 || d.source != NB_SRC_BLOBS, "... and no synthetic data");
    if (!rc)
        nb_data_free(&d);
    mkdir(o.dir, 0777); /* exists, without the files */
    rc = nb_data_prepare(&o, 1, &d, &e);
    ok(rc == 0 && d.source == NB_SRC_BLOBS && d.train.n == 200,
       "fashion-mnist missing, fallback asked for: falls back to blobs");
    contains(d.notice, "apt-get install dataset-fashion-mnist",
             "fallback notice: how to install");
    contains(d.notice, "synthetic 'blobs' set instead: 200 train / 50 test "
                       "images 1x28x28, 10 classes",
             "fallback notice: which synthetic set");
    if (d.notice[0])
        tap_diag("notice: %s", d.notice);
    nb_data_free(&d);
    o.fallback_to_synthetic = false;
    nb_error_clear(&e);
    rc = nb_data_prepare(&o, 1, &d, &e);
    is_int(rc, NB_ENOENT, "fashion-mnist missing, no fallback: NB_ENOENT");
    contains(e.hint, "apt-get install dataset-fashion-mnist",
             "no fallback: the hint says how to install");
    contains(nb_error_format(&e, buf, sizeof buf), "no-fashion: missing IDX file",
             "no fallback: the error names the directory");
    nb_data_cache_clear();
}

/* ---- the real Fashion-MNIST --------------------------------------------- */

#define FASHION_TESTS 11

static void test_fashion(void)
{
    char probe[4096];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/" NB_MNIST_TRAIN_IMAGES ".gz",
             NB_FASHION_MNIST_DIR);
    if (stat(probe, &st) != 0) {
        tap_skip(FASHION_TESTS, "Fashion-MNIST not found in %s "
                 "(apt-get install dataset-fashion-mnist)",
                 NB_FASHION_MNIST_DIR);
        return;
    }
    struct nb_data_opts o;
    struct nb_data d, d2;
    struct nb_error e;
    nb_data_opts_default(&o);
    o.fallback_to_synthetic = false;
    double t0 = nb_now();
    int rc = nb_data_prepare(&o, 1, &d, &e);
    double first = nb_now() - t0;
    if (rc) {
        char buf[2048];
        tap_diag("%s", nb_error_format(&e, buf, sizeof buf));
    }
    is_int(rc, 0, "Fashion-MNIST: loads");
    if (rc) {
        tap_skip(FASHION_TESTS - 1, "Fashion-MNIST did not load");
        return;
    }
    t0 = nb_now();
    rc = nb_data_prepare(&o, 2, &d2, &e);
    double second = nb_now() - t0;
    tap_diag("Fashion-MNIST load: first %.3f s (decoding %.3f s), cached "
             "%.6f s; %.1f MB of float32", first, d.load_seconds, second,
             (double)(d.train.n + d.test.n) * 784 * 4 / 1e6);
    ok(rc == 0 && d2.from_cache && !d.from_cache,
       "Fashion-MNIST: second prepare comes from the cache");
    ok(second < 0.05, "Fashion-MNIST: cached prepare well under a second "
                      "(%.6f s)", second);
    nb_data_free(&d2);
    is_int((long long)d.train.n, 60000, "Fashion-MNIST: 60000 training images");
    is_int((long long)d.test.n, 10000, "Fashion-MNIST: 10000 test images");
    ok(d.train.shape.c == 1 && d.train.shape.h == 28 && d.train.shape.w == 28,
       "Fashion-MNIST: 1x28x28");
    size_t c1[10], c2[10];
    nb_dataset_class_counts(&d.train, c1); /* asserts the range */
    nb_dataset_class_counts(&d.test, c2);
    bool even = true;
    for (int c = 0; c < 10; c++)
        even &= c1[c] == 6000 && c2[c] == 1000;
    ok(d.train.classes == 10 && even,
       "Fashion-MNIST: labels 0..9, 6000 / 1000 per class");
    double m, sd;
    nb_dataset_moments(&d.train, false, &m, &sd);
    ok(fabs(m - 0.2860) < 5e-4 && fabs(sd - 0.3530) < 5e-4,
       "Fashion-MNIST: raw pixel mean %.4f std %.4f (0.2860, 0.3530)", m, sd);
    nb_dataset_moments(&d.train, true, &m, &sd);
    ok(fabs(m) < 0.01 && fabs(sd - 1.0) < 0.01,
       "Fashion-MNIST: standardized mean %.4f std %.4f near 0, 1", m, sd);
    nb_dataset_moments(&d.test, true, &m, &sd);
    ok(fabs(m) < 0.02 && fabs(sd - 1.0) < 0.02,
       "Fashion-MNIST test: standardized mean %.4f std %.4f near 0, 1", m, sd);

    /* one shuffled epoch at batch 128 */
    gsl_rng *r = nb_rng_alloc(1, NB_STREAM_DATA);
    struct nb_loader ld;
    rc = nb_loader_init(&ld, &d.train, 128, false, r, &e);
    t0 = nb_now();
    nb_loader_epoch(&ld);
    size_t total = 0;
    int k;
    const float *x;
    while ((k = nb_loader_next(&ld, &x, NULL, NULL)) > 0)
        total += (size_t)k;
    double ep = nb_now() - t0;
    tap_diag("Fashion-MNIST: one shuffled epoch of batches of 128 gathered "
             "in %.3f s", ep);
    ok(rc == 0 && total == 60000, "Fashion-MNIST: an epoch covers 60000");
    nb_loader_free(&ld);
    gsl_rng_free(r);
    nb_data_free(&d);
    nb_data_cache_clear();
}

int main(void)
{
    tmp = tap_tmpdir("t_data");
    test_idx();
    test_cifar();
    test_synth();
    test_transforms();
    test_loader();
    test_prepare();
    test_fashion();
    return tap_exit();
}
