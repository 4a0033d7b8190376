/* tests/fuzz/fuzz_idx.c - libFuzzer target: the IDX reader (nb_idx_load)
 * on plain and gzip-compressed images and labels files.
 *
 * Input layout:
 *   byte 0     flags: bit 0 gzip the images file, bit 1 gzip the labels
 *              file (with zlib, here), bit 2 subtract 64 from classes
 *   byte 1     classes (0 = inferred from the labels)
 *   byte 2     bytes cut off the end of each gzip stream (0: none)
 *   bytes 3-4  length L of the labels file (little endian, clamped)
 *   then L bytes of the labels file and the rest: the images file.
 * Without the gzip flags the bytes reach zlib's gzread as they are, so a
 * gzip stream in the input itself is read too. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/data.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    unsigned flags = data[0];
    int classes = (int)data[1] - (flags & 4 ? 64 : 0);
    size_t cut = data[2];
    size_t lab_len = (size_t)data[3] | (size_t)data[4] << 8;
    data += 5;
    size -= 5;
    if (lab_len > size)
        lab_len = size;
    char img[512], lab[512];
    fz_write_maybe_gz(flags & 1 ? "images.gz" : "images", data + lab_len,
                      size - lab_len, flags & 1, cut, img, sizeof img);
    fz_write_maybe_gz(flags & 2 ? "labels.gz" : "labels", data, lab_len,
                      flags & 2, cut, lab, sizeof lab);

    struct nb_dataset ds;
    struct nb_error err;
    nb_error_clear(&err);
    int rc = nb_idx_load(img, lab, classes, "fuzz", &ds, &err);
    if (rc == 0) {
        /* every label in range, every pixel in [0,1] */
        size_t numel = (size_t)ds.shape.c * ds.shape.h * ds.shape.w;
        for (size_t i = 0; i < ds.n; i++)
            if (ds.y[i] < 0 || ds.y[i] >= ds.classes)
                abort();
        for (size_t i = 0; i < ds.n * numel; i++)
            if (!(ds.x[i] >= 0.0f && ds.x[i] <= 1.0f))
                abort();
        nb_dataset_free(&ds);
    } else if (err.status != rc || !err.msg[0]) {
        abort(); /* an error must say what went wrong */
    }
    return 0;
}
