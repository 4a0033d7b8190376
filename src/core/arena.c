/* src/core/arena.c - see arena.h. */
#include "core/arena.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

float *nb_alloc_floats(size_t count)
{
    void *p = NULL;
    size_t bytes = count * sizeof(float);
    if (bytes == 0)
        bytes = 64;
    bytes = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes) != 0)
        return NULL;
    memset(p, 0, bytes);
    return p;
}

int nb_arena_init(struct nb_arena *a, size_t count, struct nb_error *err)
{
    a->data = NULL;
    a->count = count;
    if (count == 0)
        return NB_OK;
    a->data = nb_alloc_floats(count);
    if (!a->data)
        return nb_error_set(err, NB_ENOMEM, NULL, 0,
                            "cannot allocate an arena of %zu floats", count);
    return NB_OK;
}

void nb_arena_free(struct nb_arena *a)
{
    free(a->data);
    a->data = NULL;
    a->count = 0;
}

double nb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
