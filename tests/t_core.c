/* tests/t_core.c - errors, RNG streams, arenas. */
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/text.h"
#include "tap.h"

/* nb_text: appends in order, grows past its first allocation, keeps the
 * NUL, and frees to a zeroed text */
static void test_text(void)
{
    struct nb_text t = {0};
    nb_text_puts(&t, "[train]\n");
    nb_text_put(&t, "batch = 128xyz", 11);
    nb_text_printf(&t, "\n%s = %d\n", "epochs", 10);
    is_str(t.s, "[train]\nbatch = 128\nepochs = 10\n", "nb_text: puts, put, printf in order");
    is_int((long long)t.n, (long long)strlen(t.s), "nb_text: n is the length");
    size_t n0 = t.n;
    for (int i = 0; i < 1000; i++)
        nb_text_printf(&t, "%04d", i);
    is_int((long long)t.n, (long long)n0 + 4000, "nb_text: grows past its first allocation");
    ok(!t.failed && t.s[t.n] == '\0' && !strncmp(t.s + t.n - 4, "0999", 4),
       "nb_text: ends with the last append and a NUL");
    nb_text_free(&t);
    ok(!t.s && !t.n && !t.cap && !t.failed, "nb_text_free zeroes the text");
}

/* nb_error_key names the key after nb_error_set, which clears it */
static void test_error_key(void)
{
    struct nb_error e;
    nb_error_clear(&e);
    ok(e.key[0] == '\0', "a cleared error names no key");
    int rc = (nb_error_set(&e, NB_EINVAL, NULL, 0, "bad"), nb_error_key(&e, "norm.groups"));
    is_int(rc, NB_EINVAL, "nb_error_key returns the status");
    is_str(e.key, "norm.groups", "nb_error_key names the key");
    nb_error_set(&e, NB_EIO, "x", 0, "other");
    is_str(e.key, "", "the next nb_error_set clears the key");
    is_int(nb_error_key(NULL, "x.y"), NB_EINVAL, "nb_error_key(NULL) is harmless");
}

int main(void)
{
    test_text();
    test_error_key();
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
