/* tests/t_core.c - errors, RNG streams, arenas, the communicator. */
#include <string.h>

#include "core/arena.h"
#include "core/comm.h"
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

/* ---- the communicator (core/comm.h) ------------------------------------ */

/* A stand-in for the other ranks of a run: allgather puts this rank's
 * values in its slot and the others' from `peers` (size x count, this
 * rank's row unused), so the rank-order reductions can be checked in one
 * process; a comm of size 1 must never call it. */
struct peers {
    const double *rows;
    size_t stride; /* doubles per rank row */
    size_t offset; /* of the current chunk within a row */
    int calls;
};

static void peers_allgather(const struct nb_comm *c, const double *send, double *recv,
                            size_t count)
{
    struct peers *p = c->impl;
    for (int k = 0; k < c->size; k++)
        for (size_t i = 0; i < count; i++)
            recv[(size_t)k * count + i] =
                k == c->rank ? send[i] : p->rows[(size_t)k * p->stride + p->offset + i];
    p->offset += count;
    p->calls++;
}

static void test_comm_single(void)
{
    int s = -1, e = -1;
    nb_comm_slice(NULL, 7, &s, &e);
    ok(s == 0 && e == 7, "comm NULL: the slice is the whole batch");
    struct peers p = {0};
    struct nb_comm one = {.rank = 0, .size = 1, .impl = &p, .allgather = peers_allgather};
    nb_comm_slice(&one, 7, &s, &e);
    ok(s == 0 && e == 7, "comm of size 1: the slice is the whole batch");
    ok(!nb_comm_active(NULL) && !nb_comm_active(&one), "NULL and size 1 are not active");
    double buf[3] = {1.5, -2.25, 3e300}, work[3];
    nb_comm_sum(NULL, buf, 3, work, 3);
    nb_comm_sum(&one, buf, 3, work, 3);
    ok(buf[0] == 1.5 && buf[1] == -2.25 && buf[2] == 3e300,
       "single process: nb_comm_sum leaves the values as they are");
    is_close(nb_comm_root(NULL, 4.5), 4.5, 0, 0, "single process: nb_comm_root is the value");
    is_int(nb_comm_first(&one, false), -1, "single process: nb_comm_first, none failed");
    is_int(nb_comm_first(NULL, true), 0, "single process: nb_comm_first, this one failed");
    is_int(p.calls, 0, "single process: the transport is never called");
}

static void test_comm_ranks(void)
{
    /* the slices are the devices' parts: contiguous, cover the batch,
     * sizes differ by at most one */
    int bad = 0;
    for (int K = 2; K <= 5; K++)
        for (int n = K; n <= 40; n++) {
            int prev = 0, lo = n, hi = 0;
            for (int r = 0; r < K; r++) {
                struct nb_comm c = {.rank = r, .size = K};
                int s, e;
                nb_comm_slice(&c, n, &s, &e);
                bad += s != prev;
                prev = e;
                lo = e - s < lo ? e - s : lo;
                hi = e - s > hi ? e - s : hi;
            }
            bad += prev != n || hi - lo > 1;
        }
    is_int(bad, 0, "slices of 2..5 ranks over 2..40 samples: contiguous, whole, "
                   "sizes within one");
    struct nb_comm c3 = {.rank = 1, .size = 3};
    int s, e;
    nb_comm_slice(&c3, 7, &s, &e);
    ok(s == 2 && e == 4, "rank 1 of 3 over 7 samples holds [2, 4)");

    /* sums in rank order, chunked: 1e16 + 1 - 1e16 is 0 in that order
     * (1 is lost) and 1 in any other */
    const double rows[3][5] = {{0, 0, 0, 0, 0},
                               {1, 2, 3, 4, 1},
                               {-1e16, 10, 20, 30, 0.5}};
    struct peers p = {.rows = &rows[0][0], .stride = 5};
    struct nb_comm c = {.rank = 0, .size = 3, .impl = &p, .allgather = peers_allgather};
    double buf[5] = {1e16, 100, 200, 300, 0.25}, work[3 * 2];
    nb_comm_sum(&c, buf, 5, work, 2);
    ok(buf[0] == 0.0, "nb_comm_sum adds in rank order ((1e16 + 1) - 1e16 = 0)");
    ok(buf[1] == 112 && buf[2] == 223 && buf[3] == 334 && buf[4] == 1.75,
       "nb_comm_sum: every value, over chunks of 2 (5 values)");
    is_int(p.calls, 3, "  three allgathers of at most 2 values");
    const double flags[3] = {0, 1, 1};
    struct peers q = {.rows = flags, .stride = 1};
    c.impl = &q;
    is_int(nb_comm_first(&c, false), 1, "nb_comm_first: the lowest rank that failed");
    q.offset = 0;
    is_close(nb_comm_root(&c, 7.25), 7.25, 0, 0, "nb_comm_root on rank 0: its own value");
    c.rank = 2;
    q.offset = 0;
    const double vals[3] = {-3.5, 0, 0};
    q.rows = vals;
    is_close(nb_comm_root(&c, 9), -3.5, 0, 0, "nb_comm_root on rank 2: rank 0's value");
}

int main(void)
{
    test_text();
    test_error_key();
    test_comm_single();
    test_comm_ranks();
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
