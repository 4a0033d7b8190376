/* src/analyze/prereg.h - pre-registration of an experiment's checks.
 *
 * Before the first run of an experiment, `normbench reproduce` records
 * its checks in RESULTS/NAME/preregistration.txt (committed with the
 * report): the date, the normbench revision, the experiment file and a
 * hash of its text, how many of its runs were already done, and every
 * check's statement with its hash:
 *
 *   # comment lines
 *   experiment = experiments/quickstart.ini
 *   experiment_hash = 0123456789abcdef     nb_text_hash of the file's bytes
 *   date = 2026-12-06 18:40 UTC
 *   revision = 6d0bbdc
 *   runs_before = 0
 *
 *   [check bn_trains_faster]
 *   hash = 0123456789abcdef                nb_text_hash of the statement
 *   expect = at(final_train_loss, ...) < at(...)
 *
 * Statements are compared with their whitespace collapsed (one space
 * between tokens), so re-wrapping a line changes nothing.  The file is
 * never rewritten while it exists: to start an experiment afresh, delete
 * it with the runs.  A check is POST HOC when its statement differs from
 * the registered one, when it was not registered, when the registration
 * was written after runs existed (runs_before > 0), or when there is no
 * registration at all; post hoc checks are reported but do not count
 * toward the verdict (check.h). */
#ifndef NB_HARNESS_PREREG_H
#define NB_HARNESS_PREREG_H

#include <stdbool.h>

#include "core/error.h"
#include "analyze/check.h"

struct nb_prereg_check {
    char *name;
    char *expect;  /* whitespace collapsed */
};

struct nb_prereg {
    bool present;            /* the file exists */
    char experiment[1024];
    char experiment_hash[17];
    /* nb_prereg_file_hashes' before_runs of the file at registration; ""
     * in registrations written before it was recorded */
    char experiment_hash_before_runs[17];
    char date[64];
    char revision[128];
    long runs_before;
    struct nb_prereg_check *checks;
    int n_checks;
};

/* A 64-bit FNV-1a-style hash of n bytes, continuing from h (start with
 * NB_TEXT_HASH_SEED).  The seed is not FNV's standard offset basis (that
 * is core/rng.h's nb_fnv1a64, the run identity); registrations committed
 * with this one keep their hashes, and the check language seeds each
 * check's bootstrap with it. */
#define NB_TEXT_HASH_SEED 1469598103934665603ULL
unsigned long long nb_text_hash(unsigned long long h, const void *buf, size_t n);

/* The file name inside an experiment's results folder. */
#define NB_PREREG_FILE "preregistration.txt"

/* Reads path into p.  A missing file is not an error (p->present is
 * false); a malformed one is "PATH:LINE: message". */
int nb_prereg_read(const char *path, struct nb_prereg *p, struct nb_error *err);
void nb_prereg_free(struct nb_prereg *p);

/* Writes path (atomically) for the n checks c of the experiment file
 * exp_path.  Refuses (NB_EINVAL) when path exists. */
int nb_prereg_write(const char *path, const char *exp_path, const struct nb_check *c,
                    int n, const char *date, const char *revision, long runs_before,
                    struct nb_error *err);

/* The nb_text_hash of a file's bytes, and of the file without the keys
 * written after the runs (nb_experiment_after_runs_key) and their
 * continuation lines (the same as at registration when those keys are
 * the only edit since), as 16 hex digits each, in one read; 0 or NB_EIO. */
int nb_prereg_file_hashes(const char *path, char whole[17], char before_runs[17],
                          struct nb_error *err);
/* The first of the two. */
int nb_prereg_file_hash(const char *path, char hex[17], struct nb_error *err);

/* How the experiment file at path compares with the one registered in
 * p: unchanged, changed only in the keys written after the runs, edited,
 * or unreadable. */
enum nb_prereg_file { NB_PREREG_SAME, NB_PREREG_AFTER_RUNS_ONLY, NB_PREREG_EDITED,
                      NB_PREREG_UNREADABLE };
enum nb_prereg_file nb_prereg_file_compare(const struct nb_prereg *p, const char *path);

enum nb_reg {
    NB_REG_OK = 0,     /* registered before the runs, unchanged */
    NB_REG_CHANGED,    /* its statement changed after the registration */
    NB_REG_ADDED,      /* not in the registration */
    NB_REG_LATE,       /* registered when runs already existed */
    NB_REG_NONE,       /* no registration */
    NB_REG_COUNT
};
/* "pre-registered", "post hoc: changed after the runs", ... */
const char *nb_reg_name(int reg);

/* The registration status of check c under p (p->present may be false). */
int nb_prereg_status(const struct nb_prereg *p, const struct nb_check *c);

#endif
