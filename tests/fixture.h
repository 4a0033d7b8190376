/* tests/fixture.h - the text fixtures of tests/data (written by the
 * tests/make_*_fixtures.py scripts): '#' comment lines, then records
 *     NAME COUNT
 *     v1 v2 ... (COUNT numbers, whitespace separated)
 * read into doubles. */
#ifndef NB_TESTS_FIXTURE_H
#define NB_TESTS_FIXTURE_H

#include <stddef.h>

#define FX_MAX 32
struct fixture {
    int count;
    char name[FX_MAX][48];
    size_t n[FX_MAX];
    double *v[FX_MAX];
};

/* Parses the file at path into f; 0, or -1 (diagnosed with tap_diag) with
 * f safe to free. */
int fx_load(struct fixture *f, const char *path);

/* Record name's values, or NULL when absent; with want > 0 a record of
 * another size bails out. */
const double *fx_get(const struct fixture *f, const char *name, size_t want);

/* The size of record name (0 when absent). */
size_t fx_count(const struct fixture *f, const char *name);

void fx_free(struct fixture *f);

#endif
