/* src/run/mpi.h - the runs of `normbench run` over the ranks of an MPI job
 * (mpirun -np K normbench run CONFIG [--index LIST]): run/mpi.c, built
 * only with ./configure --with-mpi (NB_HAVE_MPI in config.h).  This
 * header includes no MPI header: the rest of normbench sees the ranks
 * only as core/comm.h's struct nb_comm. */
#ifndef NB_RUN_MPI_H
#define NB_RUN_MPI_H

#include "core/error.h"
#include "run/runner.h"
#include "config/sweep.h"

/* Initializes MPI, makes MPI_COMM_WORLD the comm of nb_runner_run_ranks
 * (its allgather waits at most o->rank_timeout seconds for the other
 * ranks, then aborts the whole job: no rank waits forever for one that
 * is stuck), runs the selected runs of sw over it and finalizes MPI.
 * Every rank calls it with the same sw and o.  Returns what
 * nb_runner_run_ranks returns (NB_EIO when MPI could not start, or the
 * job is larger than NB_COMM_MAX_RANKS). */
int nb_mpi_run(const struct nb_sweep *sw, const struct nb_runner_opts *o,
               struct nb_runner_report *rep, struct nb_error *err);

/* The MPI library's name and version ("Open MPI v4.1.4"), for version. */
const char *nb_mpi_library(void);

#endif
