/* tests/threadcomm.c - see threadcomm.h. */
#include "threadcomm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

struct tc_group {
    int K;
    pthread_barrier_t bar;
    const double **sends; /* [K]: each rank's send buffer of this call */
};

struct tc_rank {
    struct nb_comm comm;
    struct tc_group *g;
    void (*fn)(const struct nb_comm *, void *);
    void *arg;
    pthread_t th;
};

/* every rank posts its buffer, waits for all, copies all, then waits
 * again so that no buffer changes while another rank still reads it */
static void tc_allgather(const struct nb_comm *c, const double *send, double *recv,
                         size_t count)
{
    struct tc_group *g = c->impl;
    g->sends[c->rank] = send;
    pthread_barrier_wait(&g->bar);
    for (int k = 0; k < g->K; k++)
        memcpy(recv + (size_t)k * count, g->sends[k], count * sizeof *recv);
    pthread_barrier_wait(&g->bar);
}

static void *tc_main(void *p)
{
    struct tc_rank *r = p;
    r->fn(&r->comm, r->arg);
    return NULL;
}

int tc_run(int K, void (*fn)(const struct nb_comm *c, void *arg), void *const *args)
{
    NB_ASSERT(K >= 1);
    struct tc_group g = {.K = K};
    struct tc_rank *ranks = calloc((size_t)K, sizeof *ranks);
    g.sends = calloc((size_t)K, sizeof *g.sends);
    if (!ranks || !g.sends || pthread_barrier_init(&g.bar, NULL, (unsigned)K)) {
        free(ranks);
        free(g.sends);
        return -1;
    }
    for (int k = 0; k < K; k++)
        ranks[k] = (struct tc_rank){.comm = {.rank = k, .size = K, .name = "threads",
                                             .impl = &g, .allgather = tc_allgather},
                                    .g = &g, .fn = fn, .arg = args[k]};
    int started = 0;
    for (; started < K; started++)
        if (pthread_create(&ranks[started].th, NULL, tc_main, &ranks[started]))
            break;
    /* a thread that did not start would leave the others at a barrier */
    NB_ASSERT(started == K);
    for (int k = 0; k < started; k++)
        pthread_join(ranks[k].th, NULL);
    pthread_barrier_destroy(&g.bar);
    free(ranks);
    free(g.sends);
    return 0;
}
