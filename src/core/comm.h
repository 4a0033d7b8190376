/* src/core/comm.h - the processes one training run is split over.
 *
 * Data-parallel training of one run: `size` processes ("ranks") each hold
 * a contiguous slice of every batch (nb_comm_slice), keep identical copies
 * of the model, and exchange numbers only through this table: the
 * batch-norm statistics of every rank (layers/norm_sync.c), the backward
 * sums of sync BN, and the gradients and loss of each step (run/train.c).
 * The library never sees the transport: run/mpi.c (built with ./configure
 * --with-mpi) fills the table from MPI_COMM_WORLD, tests fill it with
 * threads.  A NULL comm, or one of size 1, is a single process: every
 * function below then works on the local values alone.
 *
 * Determinism: a reduction is an allgather followed by a sum (or merge) in
 * rank order that every rank does itself, so all ranks get the same bits
 * (their copies of the model never drift apart) and a run gives the same
 * numbers every time, whatever order the transport would reduce in.
 *
 * Every function is collective: all ranks call it in the same order with
 * the same counts.  They are infallible, like forward and backward: a
 * transport that fails ends the whole job (MPI's default error handler
 * aborts every rank), so no rank waits for one that is gone. */
#ifndef NB_CORE_COMM_H
#define NB_CORE_COMM_H

#include <stdbool.h>
#include <stddef.h>

/* The most ranks a run may have: [norm] devices' upper bound, and the
 * size of the stack buffers of nb_comm_root / nb_comm_first. */
#define NB_COMM_MAX_RANKS 4096

struct nb_comm {
    int rank, size;   /* this process, and how many there are (>= 1) */
    const char *name; /* the transport, for meta.txt ("Open MPI v4.1.4") */
    void *impl;       /* the transport's own state */
    /* recv (size * count doubles) <- send (count doubles) of every rank,
     * rank 0's first.  send and recv do not overlap. */
    void (*allgather)(const struct nb_comm *c, const double *send, double *recv,
                      size_t count);
};

/* True when c splits a run over more than one process. */
static inline bool nb_comm_active(const struct nb_comm *c)
{
    return c && c->size > 1;
}

/* The slice of a batch of n samples that c's rank holds: samples
 * [*start, *end) with start = rank * n / size (integer division), the
 * split of [norm] devices, so the sizes differ by at most one; [0, n)
 * for a single process. */
void nb_comm_slice(const struct nb_comm *c, int n, int *start, int *end);

/* Replaces buf (count doubles) on every rank with the sum over the ranks,
 * added in rank order ((b_0 + b_1) + b_2 ...), chunk doubles at a time
 * through work (size * chunk doubles; chunk >= 1).  A single process
 * leaves buf as it is. */
void nb_comm_sum(const struct nb_comm *c, double *buf, size_t count, double *work,
                 size_t chunk);

/* Rank 0's v, on every rank (a single process: v). */
double nb_comm_root(const struct nb_comm *c, double v);

/* The lowest rank whose `failed` is true, on every rank, or -1 when none
 * is: how the ranks agree that all of them are ready (a single process:
 * 0 or -1). */
int nb_comm_first(const struct nb_comm *c, bool failed);

#endif
