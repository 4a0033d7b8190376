/* src/core/blas.h - which CBLAS the build links, and its thread count.
 * Kernels include <gsl/gsl_cblas.h>; OpenBLAS and GSL's libgslcblas export
 * the same cblas_* symbols, and configure picks one (--with-blas). */
#ifndef NB_CORE_BLAS_H
#define NB_CORE_BLAS_H

/* "openblas" or "gsl". */
const char *nb_blas_name(void);

/* Sets the BLAS thread count (OpenBLAS only; GSL's CBLAS is serial). */
void nb_blas_set_threads(int n);

/* The kernel set OpenBLAS picked for this CPU ("Haswell", "Cooperlake",
 * ...; the OPENBLAS_CORETYPE environment variable overrides it), or
 * "gsl". */
const char *nb_blas_core(void);

/* Current BLAS thread count (1 for GSL's CBLAS). */
int nb_blas_threads(void);

#endif
