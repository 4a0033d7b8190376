/* src/core/env.h - the environment variables normbench heeds.
 *
 * Only main (src/normbench.c) reads the environment: it fills one struct
 * nb_env with getenv and hands it down in the options of the runner and of
 * reproduce, so what a function depends on is in its arguments.  A NULL
 * struct, or a NULL member, is "unset". */
#ifndef NB_CORE_ENV_H
#define NB_CORE_ENV_H

struct nb_env {
    const char *term;              /* $TERM: "dumb" turns the progress bar off */
    const char *gnuplot;           /* $GNUPLOT: the gnuplot binary (a path) or its name */
    const char *path;              /* $PATH: where a bare gnuplot name is looked for */
    const char *plots;             /* $NORMBENCH_PLOTS: the gnuplot scripts' directory */
    const char *openblas_coretype; /* $OPENBLAS_CORETYPE: OpenBLAS reads it itself;
                                      meta.txt records it */
    const char *mpi_size, *mpi_rank; /* set by mpirun ($OMPI_COMM_WORLD_SIZE and
                                        _RANK, or $PMI_SIZE and _RANK): this
                                        process is one rank of an MPI job */
};

#endif
