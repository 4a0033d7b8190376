/* src/analyze/archive.h - an experiment's runs as a compact, committed
 * archive (ROOT/NAME/archive/), from which reproduce --no-run, plot and
 * summarize regenerate the tables, figures and report byte for byte when
 * the run directories are gone (a fresh clone).
 *
 * Files (CSV in csvio.h's dialect; a file whose text is over
 * NB_ARCHIVE_GZIP_MIN bytes is written gzip-compressed as NAME.csv.gz
 * instead of NAME.csv; readers take either):
 *
 *   runs.csv     one row per run with data (done, diverged or failed):
 *                run_id, config (the config's [experiment] name), status,
 *                seed, the summary's varying keys as section.key columns,
 *                wall_time (the summary's scalar), then the meta.txt facts
 *                the report shows (archive.c's meta_keys: git_revision,
 *                package, start_utc, end_utc, host, cpu, cpus_online,
 *                blas, conv_algo, openblas_coretype, threads, wall_seconds,
 *                cpu_seconds, data, params; empty when a run's meta.txt
 *                lacks one; params, the trainable parameters, is also the
 *                summary's per-run scalar of that name)
 *   metrics.csv  one row per evaluation: run_id, the key columns, then the
 *                run's metrics.csv columns (runner.c writes them)
 *   probes.csv   one row per probe value: run_id, the key columns, then
 *                the run's probes.csv columns (runner.c)
 *   slices.csv   one row per slice point: run_id, the key columns, slice
 *                and scan (0-based: which slice of the run, which scan of
 *                the slice), then slice.csv's columns (probe.h's
 *                nb_probe_slice_cols: step, a, b, loss, acc; a run whose
 *                slice.csv predates the step column has it empty)
 *
 * Rows of a run are contiguous, runs in the summary's order.  Every value
 * of a run file is kept as the text the runner wrote, so the summary read
 * from the archive holds the very doubles it holds when read from the run
 * directories; wall_time is written by nb_format_double (reads back to the
 * same double).  The key columns are for readers (R, pandas, gnuplot):
 * the summary takes each run's keys from its config, by run_id. */
#ifndef NB_HARNESS_ARCHIVE_H
#define NB_HARNESS_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "run/csvio.h"
#include "analyze/summarize.h"

#define NB_ARCHIVE_GZIP_MIN (256 * 1024)

enum { NB_AR_RUNS = 0, NB_AR_METRICS, NB_AR_PROBES, NB_AR_SLICES, NB_AR_COUNT };

struct nb_ar_run; /* archive.c: a run's rows */

struct nb_archive {
    char dir[4096];                   /* where it was read ("" when built) */
    int n_keys;
    char **keys;                      /* the key columns, section.key */
    struct nb_csv_table t[NB_AR_COUNT]; /* zeroed when a file is absent */
    char *text[NB_AR_COUNT];          /* built archives: the files' text */
    size_t len[NB_AR_COUNT];
    size_t n_runs;                    /* rows of runs.csv */
    struct nb_ar_run *runs;
};

/* Reads dir/{runs,metrics,probes,slices}.csv[.gz].  Returns 0, NB_ENOENT
 * when dir has no runs.csv (no archive; err says so), or NB_EFORMAT
 * ("FILE:LINE: message") for a damaged one. */
int nb_archive_load(const char *dir, struct nb_archive *a,
                    struct nb_error *err);
void nb_archive_free(struct nb_archive *a);

/* Its runs that finished (done or diverged; not failed). */
size_t nb_archive_finished(const struct nb_archive *a);

/* Do a and b hold the same rows of table (NB_AR_METRICS, ...), the same
 * header and every cell the same text, in the same order?  False when a
 * has no rows of it. */
bool nb_archive_same_table(const struct nb_archive *a, const struct nb_archive *b, int table);

/* Has the archive data for run_id? */
bool nb_archive_has(const struct nb_archive *a, const char *run_id);

/* nb_summary_set_fallback's function over an nb_archive (user). */
int nb_archive_fallback(void *user, const char *run_id,
                        struct nb_sum_runsrc *src, struct nb_error *err);

/* Builds the archive of the grouped summary s in memory: every run that
 * is not pending, from its run directory, or from old (may be NULL) for a
 * run the summary read through the fallback. */
int nb_archive_build(const struct nb_summary *s, const struct nb_archive *old,
                     struct nb_archive *out, struct nb_error *err);

/* Writes a built archive into dir (created when missing): each file
 * through a temporary and a rename, and only when its content changed
 * (an unchanged file keeps its bytes and its time stamp); a file of the
 * other compression, or of a table without rows, is removed. */
int nb_archive_save(const struct nb_archive *a, const char *dir,
                    struct nb_error *err);

/* What the report says about the runs, from runs.csv's meta columns. */
struct nb_archive_facts {
    size_t n_runs;        /* runs with meta facts */
    char when[96];        /* "2026-11-25 01:58 to 2026-11-25 02:21 UTC" */
    char version[512];    /* which normbench made them, total CPU and wall */
    char machine[768];    /* CPU, hosts, BLAS kernels, conv algorithm */
    long n_test;          /* test images in the data set (0: unknown or
                             different between runs) */
};
void nb_archive_facts(const struct nb_archive *a, struct nb_archive_facts *f);

/* Moves the file tmp to path unless path already has the same bytes (then
 * tmp is removed and path left untouched).  0 or NB_EIO. */
int nb_commit_file(const char *tmp, const char *path, struct nb_error *err);

#endif
