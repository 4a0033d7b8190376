/* src/run/mpi.c - see mpi.h: the one file of normbench that includes
 * mpi.h (compiled with ./configure --with-mpi only).
 *
 * The allgather of core/comm.h is MPI_Iallgather on MPI_COMM_WORLD,
 * waited for with MPI_Test: spinning for a moment (an exchange inside a
 * training step is short), then yielding the core for up to 20 ms (other
 * ranks or jobs may need it), then sleeping in growing steps up to 1 ms,
 * so a rank that waits while rank 0 evaluates leaves its CPU to others,
 * and giving up after the rank timeout with MPI_Abort, which ends every
 * rank of the job.  MPI's default error handler (MPI_ERRORS_ARE_FATAL)
 * ends the job on any transport error; mpirun ends it when a rank dies. */
#include <config.h>

#include "run/mpi.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include "core/arena.h"
#include "core/comm.h"

struct mpi_impl {
    double timeout; /* seconds; 0 = none */
};

static char library[MPI_MAX_LIBRARY_VERSION_STRING];

const char *nb_mpi_library(void)
{
    int len = 0;
    if (!library[0] && MPI_Get_library_version(library, &len) == MPI_SUCCESS) {
        /* the first line up to its first comma: "Open MPI v4.1.4" */
        library[strcspn(library, ",\n")] = '\0';
    }
    return library[0] ? library : "MPI";
}

static void mpi_allgather(const struct nb_comm *c, const double *send, double *recv,
                          size_t count)
{
    const struct mpi_impl *im = c->impl;
    NB_ASSERT(count <= INT_MAX);
    MPI_Request rq;
    MPI_Iallgather(send, (int)count, MPI_DOUBLE, recv, (int)count, MPI_DOUBLE,
                   MPI_COMM_WORLD, &rq);
    double t0 = nb_now(), pause = 20e-6;
    for (;;) {
        int done = 0;
        MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
        if (done)
            return;
        double waited = nb_now() - t0;
        if (im->timeout > 0 && waited > im->timeout) {
            fprintf(stderr,
                    "normbench: MPI rank %d waited %.0f s for the other ranks "
                    "(--rank-timeout): aborting the job\n", c->rank, waited);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        if (waited < 50e-6)
            continue; /* spin: most exchanges end within microseconds */
        if (waited < 20e-3) {
            sched_yield(); /* the other ranks may need this core */
            continue;
        }
        struct timespec ts = {0, (long)(pause * 1e9)};
        nanosleep(&ts, NULL);
        pause = pause < 1e-3 ? 2 * pause : 1e-3;
    }
}

int nb_mpi_run(const struct nb_sweep *sw, const struct nb_runner_opts *o,
               struct nb_runner_report *rep, struct nb_error *err)
{
    int rank = 0, size = 0;
    memset(rep, 0, sizeof *rep);
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS)
        return nb_error_set(err, NB_EIO, NULL, 0, "MPI_Init failed");
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int rc;
    struct mpi_impl im = {.timeout = o->rank_timeout};
    struct nb_comm comm = {.rank = rank, .size = size, .name = nb_mpi_library(),
                           .impl = &im, .allgather = mpi_allgather};
    if (size > NB_COMM_MAX_RANKS)
        rc = nb_error_set(err, NB_EIO, NULL, 0, "an MPI job of %d ranks: at most %d", size,
                          NB_COMM_MAX_RANKS);
    else if (size < 2)
        rc = nb_runner_run(sw, o, rep, err);
    else
        rc = nb_runner_run_ranks(sw, o, &comm, rep, err);
    MPI_Finalize();
    return rc;
}
