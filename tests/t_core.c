/* tests/t_core.c - errors, RNG streams, arenas. */
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/rng.h"
#include "tap.h"

int main(void)
{
    struct nb_error e;
    char buf[2048];

    nb_error_clear(&e);
    int rc = nb_error_set(&e, NB_EINVAL, "configs/x.ini", 14,
                          "unknown key '%s' in [%s]", "lerning_rate", "optim");
    is_int(rc, NB_EINVAL, "nb_error_set returns the status");
    is_str(nb_error_format(&e, buf, sizeof buf),
           "configs/x.ini:14: unknown key 'lerning_rate' in [optim]",
           "error formats as FILE:LINE: message");
    nb_error_set(&e, NB_EIO, "data.idx", 0, "truncated");
    is_str(nb_error_format(&e, buf, sizeof buf), "data.idx: truncated",
           "line 0 formats as FILE: message");
    is_str(nb_status_str(NB_ENOMEM), "out of memory", "status names");

    /* streams: deterministic, distinct per purpose and per seed */
    unsigned long a = nb_stream_seed(1, NB_STREAM_INIT);
    ok(a == nb_stream_seed(1, NB_STREAM_INIT), "stream seed is a pure function");
    ok(a != nb_stream_seed(1, NB_STREAM_DATA), "purposes get distinct seeds");
    ok(a != nb_stream_seed(2, NB_STREAM_INIT), "seeds get distinct seeds");
    gsl_rng *r1 = nb_rng_alloc(5, NB_STREAM_DROPOUT);
    gsl_rng *r2 = nb_rng_alloc(5, NB_STREAM_DROPOUT);
    int same = 1;
    for (int i = 0; i < 100; i++)
        same &= gsl_rng_get(r1) == gsl_rng_get(r2);
    ok(same, "same (seed, purpose) gives the same sequence");
    gsl_rng_free(r1);
    gsl_rng_free(r2);

    struct nb_arena ar;
    ok(nb_arena_init(&ar, 1000, &e) == 0 && ar.data != NULL, "arena allocates");
    int zero = 1;
    for (size_t i = 0; i < ar.count; i++)
        zero &= ar.data[i] == 0.0f;
    ok(zero && ((uintptr_t)ar.data % 64) == 0, "arena is zeroed and 64-byte aligned");
    nb_arena_free(&ar);
    return tap_exit();
}
