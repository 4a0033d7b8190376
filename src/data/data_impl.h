/* src/data/data_impl.h - private helpers shared by the data module's
 * sources; not part of the public interface (see data.h). */
#ifndef NB_DATA_DATA_IMPL_H
#define NB_DATA_DATA_IMPL_H

#include <stddef.h>

#include "data/data.h"

/* Adds a reference to ds's storage (no-op when ds has none). */
void nb_data_store_ref(struct nb_data_store *s);

/* Current reference count (0 for NULL). */
int nb_data_store_refs(const struct nb_data_store *s);

/* 64-byte aligned allocation without zeroing (pages are touched once by
 * the decoder); free with free().  NULL on failure; count 0 allowed. */
void *nb_data_alloc_aligned(size_t bytes);

/* Draws a permutation of 0..n-1 into perm using rng. */
void nb_data_permutation(size_t *perm, size_t n, gsl_rng *rng);

/* ---- gzip-or-plain reading (zlib's gzread reads both) ---------------- */

/* Opens path for reading; NB_ENOENT / NB_EIO naming it on failure. */
int nb_gz_open(const char *path, void **f, struct nb_error *err);

/* Reads up to len bytes; *got gets the count.  Returns 0 (also on a
 * short read at the end of the file; *eof_msg then says why, "" for a
 * clean end, or zlib's message such as "unexpected end of file"), or
 * NB_EFORMAT naming path when the gzip data are corrupt. */
int nb_gz_read(void *f, const char *path, void *buf, size_t len, size_t *got,
               const char **eof_msg, struct nb_error *err);

/* After the expected payload: fails with NB_EFORMAT when more data
 * follow, or when the gzip trailer is missing or its check fails.  what
 * names the payload ("20 images of 28x28"). */
int nb_gz_expect_end(void *f, const char *path, const char *what,
                     struct nb_error *err);

void nb_gz_close(void *f);

/* lut[b] = b / 255.0f for every byte value (as torchvision's ToTensor). */
void nb_byte_lut(float lut[256]);

#endif
