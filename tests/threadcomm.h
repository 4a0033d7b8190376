/* tests/threadcomm.h - K threads as the ranks of one run (core/comm.h), so
 * that the data-parallel paths (the norm layers' exchange, the training
 * loop's sums) are tested in every build, without MPI.
 *
 * tc_run starts K threads; thread k calls fn(comm_k, args[k]) with a comm
 * of rank k and size K whose allgather meets the other threads at a
 * barrier.  It returns when every thread has returned.  fn must make the
 * same collective calls on every rank, like the processes of an MPI job. */
#ifndef NB_TESTS_THREADCOMM_H
#define NB_TESTS_THREADCOMM_H

#include "core/comm.h"

/* Returns 0, or -1 when the threads could not be started (nothing ran). */
int tc_run(int K, void (*fn)(const struct nb_comm *c, void *arg), void *const *args);

#endif
