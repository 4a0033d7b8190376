/* src/analyze/rerun.h - the same runs made again elsewhere, and how they
 * enter an experiment's verdict.
 *
 * A rerun is an experiment's runs (the same configs, so the same run_ids)
 * made again in another environment: with an OpenBLAS kernel set that
 * rounds differently (OPENBLAS_CORETYPE=Haswell where the default picks
 * AVX-512, Sandybridge where it picks Haswell or Zen), another
 * conv_algo, another machine.  Its runs' archive (archive.h), committed as
 *
 *   ROOT/NAME/reruns/LABEL/archive/     runs.csv, metrics.csv, ...
 *
 * (LABEL: any name, e.g. avx2; `normbench reproduce NAME --results DIR`
 * in that environment writes DIR/NAME/archive), is read by every
 * `reproduce` of NAME, --no-run included: the checks are evaluated on the
 * rerun's runs alone, and a check counts toward the verdict with its
 * outcome only when every rerun gives the same one; where they differ it
 * counts as inconclusive (check.h's nb_outcome_agree), and a rerun that
 * lacks runs leaves the verdict inconclusive, as missing runs do.  So a
 * verdict that would flip with the BLAS kernels shows as inconclusive, and
 * the report (its Reruns section), verdict.txt and the index show what
 * each rerun found. */
#ifndef NB_HARNESS_RERUN_H
#define NB_HARNESS_RERUN_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "analyze/archive.h"
#include "analyze/check.h"
#include "analyze/summarize.h"
#include "config/sweep.h"

/* The directory under an experiment's results directory that holds them. */
#define NB_RERUN_DIR "reruns"

struct nb_rerun {
    char label[256];
    char dir[4608];                   /* REPORT_DIR/reruns/LABEL */
    struct nb_archive a;
    struct nb_summary s;
    struct nb_archive_facts facts;    /* when, by what and where it ran */
    struct nb_check_result *results;  /* one per check, on its runs alone */
    int verdict;                      /* of results, on its own */
    int pass;                         /* results that pass (counted ones) */
    size_t total, missing;            /* runs of the configs; without data */
    /* Set by reproduce once it has these runs' archive: every metrics.csv
     * value of the rerun is the runs' own (nb_archive_same_table), so its
     * environment computed the same numbers (OpenBLAS's Zen kernels give
     * Haswell's bytes, for one) and it does not test the verdict's
     * dependence on it. */
    bool same_metrics;
};

struct nb_experiment; /* report.h */

/* Loads every REPORT_DIR/reruns/LABEL/archive (in LABEL order; none when
 * there is no reruns directory): each rerun's runs are the n_sw sweeps'
 * (sw[i] the experiment's i-th config, as reproduce loaded it), read
 * from its archive alone, keeping the probe rows e keeps (probe_stats,
 * probe_layers), and e's checks are evaluated on them, post_hoc as given
 * (one per check).  A LABEL directory without archive/runs.csv or
 * with a damaged archive is an error naming the file.  Returns 0 or a
 * negative status; *out (n_out of them) is freed with nb_reruns_free. */
int nb_reruns_load(const char *report_dir, const struct nb_experiment *e,
                   const bool *post_hoc, const struct nb_sweep *const *sw, int n_sw,
                   struct nb_rerun **out, int *n_out, struct nb_error *err);
void nb_reruns_free(struct nb_rerun *r, int n, int n_checks);

#endif
