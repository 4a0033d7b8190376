/* src/core/blas.c - see blas.h. */
#include <config.h> /* autoconf's */

#include "core/blas.h"

#ifdef NB_HAVE_OPENBLAS
/* Declared here rather than through OpenBLAS's cblas.h, whose cblas_*
 * prototypes would clash with GSL's gsl_cblas.h in the same build. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);
#endif

const char *nb_blas_core(void)
{
#ifdef NB_HAVE_OPENBLAS
    return openblas_get_corename();
#else
    return "gsl";
#endif
}

const char *nb_blas_name(void)
{
    return NB_BLAS_NAME;
}

void nb_blas_set_threads(int n)
{
#ifdef NB_HAVE_OPENBLAS
    openblas_set_num_threads(n < 1 ? 1 : n);
#else
    (void)n;
#endif
}

int nb_blas_threads(void)
{
#ifdef NB_HAVE_OPENBLAS
    return openblas_get_num_threads();
#else
    return 1;
#endif
}
