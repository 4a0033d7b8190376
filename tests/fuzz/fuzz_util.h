/* tests/fuzz/fuzz_util.h - helpers shared by the libFuzzer targets: a
 * private scratch directory (made once per process, removed at exit),
 * writing the input to a file there, and gzip-compressing bytes with zlib
 * so a target can hand the readers valid gzip streams.  Not part of the
 * library; only the fuzz build (tests/fuzz/run.sh) compiles it. */
#ifndef NB_TESTS_FUZZ_UTIL_H
#define NB_TESTS_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

static char fz_dir[256];
static char fz_rmcmd[300];

static inline void fz_cleanup(void)
{
    if (fz_rmcmd[0] && system(fz_rmcmd) != 0)
        fprintf(stderr, "fuzz: could not remove %s\n", fz_dir);
}

/* The scratch directory (TMPDIR or /tmp, nb-fuzz.XXXXXX). */
static inline const char *fz_tmpdir(void)
{
    if (!fz_dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fz_dir, sizeof fz_dir, "%s/nb-fuzz.XXXXXX",
                 t && *t ? t : "/tmp");
        if (!mkdtemp(fz_dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        snprintf(fz_rmcmd, sizeof fz_rmcmd, "rm -rf '%s'", fz_dir);
        atexit(fz_cleanup);
    }
    return fz_dir;
}

/* Writes n bytes to dir/name (path into out); aborts on I/O errors (those
 * are the harness's, not the library's). */
static inline void fz_write(const char *name, const void *data, size_t n, char *out,
                     size_t size)
{
    snprintf(out, size, "%s/%s", fz_tmpdir(), name);
    FILE *fp = fopen(out, "wb");
    if (!fp || (n && fwrite(data, 1, n, fp) != n) || fclose(fp) != 0) {
        perror(out);
        abort();
    }
}

/* gzip-compresses n bytes into a malloc'd buffer (*len its size). */
static inline unsigned char *fz_gzip(const void *data, size_t n, size_t *len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    size_t cap = deflateBound(&z, (uLong)n) + 32;
    unsigned char *out = malloc(cap);
    if (!out)
        abort();
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        abort();
    *len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* Writes data to dir/name, gzip-compressed when gz; when cut > 0 (gz
 * only) the last cut bytes of the stream are dropped (a truncated gzip
 * file). */
static inline void fz_write_maybe_gz(const char *name, const void *data, size_t n,
                              int gz, size_t cut, char *out, size_t size)
{
    if (!gz) {
        fz_write(name, data, n, out, size);
        return;
    }
    size_t len;
    unsigned char *z = fz_gzip(data, n, &len);
    fz_write(name, z, cut < len ? len - cut : 0, out, size);
    free(z);
}

#endif
