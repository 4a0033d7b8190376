/* tests/fuzz/fuzz_cifar.c - libFuzzer target: the CIFAR-10 binary batch
 * reader (nb_cifar10_load) on plain and gzip-compressed files.
 *
 * Input layout:
 *   byte 0       flags: bit k (0..5) gzip file k (data_batch_1.bin ..
 *                data_batch_5.bin, test_batch.bin) with zlib, here;
 *                bit 6 put the files in DIR/cifar-10-batches-bin/;
 *                bit 7 leave test_batch.bin out (a missing file)
 *   byte 1       bytes cut off the end of each gzip stream (0: none)
 *   bytes 2-11   lengths of data_batch_1..5 (16-bit little endian each,
 *                clamped to what is left)
 *   then the five files' bytes in order, and the rest: test_batch.bin.
 * A record is 3073 bytes (a label byte and 3072 pixels). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "data/data.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 12)
        return 0;
    unsigned flags = data[0];
    size_t cut = data[1];
    size_t len[6];
    for (int i = 0; i < 5; i++)
        len[i] = (size_t)data[2 + 2 * i] | (size_t)data[3 + 2 * i] << 8;
    data += 12;
    size -= 12;

    char dir[512], sub[512], path[512];
    const char *top = flags & 64 ? "nested" : "flat";
    snprintf(dir, sizeof dir, "%s/%s", fz_tmpdir(), top);
    mkdir(dir, 0700);
    if (flags & 64) {
        snprintf(path, sizeof path, "%s/cifar-10-batches-bin", dir);
        mkdir(path, 0700);
        snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", top);
    } else {
        snprintf(sub, sizeof sub, "%s", top);
    }
    size_t off = 0;
    for (int i = 0; i < 6; i++) {
        size_t n = i < 5 ? len[i] : size - off;
        if (n > size - off)
            n = size - off;
        char name[600];
        if (i < 5)
            snprintf(name, sizeof name, "%s/data_batch_%d.bin", sub, i + 1);
        else
            snprintf(name, sizeof name, "%s/test_batch.bin", sub);
        if (i == 5 && (flags & 128)) {
            snprintf(path, sizeof path, "%s/%s", fz_tmpdir(), name);
            unlink(path);
            break;
        }
        fz_write_maybe_gz(name, data + off, n, (flags >> i) & 1, cut, path,
                          sizeof path);
        off += n;
    }

    struct nb_dataset train, test;
    struct nb_error err;
    nb_error_clear(&err);
    int rc = nb_cifar10_load(dir, &train, &test, &err);
    if (rc == 0) {
        for (size_t i = 0; i < train.n; i++)
            if (train.y[i] < 0 || train.y[i] >= 10)
                abort();
        for (size_t i = 0; i < test.n; i++)
            if (test.y[i] < 0 || test.y[i] >= 10)
                abort();
        if (train.shape.c != 3 || train.shape.h != 32 || train.shape.w != 32)
            abort();
        nb_dataset_free(&train);
        nb_dataset_free(&test);
    } else if (err.status != rc || !err.msg[0]) {
        abort(); /* an error must say what went wrong */
    }
    return 0;
}
