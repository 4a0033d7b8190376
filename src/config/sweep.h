/* src/config/sweep.h - sweep expansion and resolved runs.
 *
 * nb_sweep_load reads a config (config.h) and expands it into runs:
 *
 *  - every key written as a comma list, lin(a, b, n), log(a, b, n) or an
 *    integer range a..b is an axis; axes form a Cartesian product in file
 *    order (order of the effective assignment, includes expanded), the
 *    first axis outermost;
 *  - `zip = K1, K2, ...` ([experiment], repeatable) makes the listed axes
 *    advance together (equal lengths); the group sits where its first
 *    axis would;
 *  - `exclude = K=V & K2=V2|V3 & K3!=V4` ([experiment], repeatable; rules
 *    also separated by ',') drops the combinations a rule matches;
 *  - `seeds` ([experiment]) is the replicate axis, always innermost.
 *  Keys in zip/exclude are "section.key", or a bare key when it is unique
 *  ("lr"; "momentum" is ambiguous).
 *
 * Every value is checked against the key table while the file is read,
 * and every combination goes through the built-in cross-key checks and an
 * optional hook, all before nb_sweep_load returns: no run starts from a
 * config with an error.
 *
 * A sweep may have at most 100000 combinations (before exclude).
 *
 * A run's identity is its resolved config, never its index: run_id is the
 * 64-bit FNV-1a hash (16 hex digits) of the canonical text of every key
 * that affects training (nb_run_canonical: `[section]` then `key = value`
 * lines in table order, sections separated by a blank line; [experiment]
 * name, results_dir and target_accuracy are left out, and so are keys
 * flagged NB_KF_ADDED while they hold their default).  Adding a value to
 * an axis adds runs and shifts indices but keeps every other run_id. */
#ifndef NB_HARNESS_SWEEP_H
#define NB_HARNESS_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "core/rng.h"
#include "config/keys.h"

/* One resolved value and where it came from (file NULL never: a default
 * points at the top-level config with line 0). */
struct nb_val {
    const char *text; /* canonical */
    const char *file;
    int line;
};

struct nb_run {
    size_t index;            /* position in the sweep (after exclude) */
    uint64_t hash;           /* FNV-1a 64 of nb_run_canonical */
    char run_id[17];         /* hash as 16 lowercase hex digits */
    uint64_t seed;           /* [experiment] seeds of this run */
    const struct nb_val **vals; /* [nb_key_count()]; NULL for zip/exclude */
    int n_swept;             /* the sweep's axes, seeds last if swept */
    const int *swept;        /* key indices */
};

struct nb_sweep_store;

struct nb_sweep {
    char *path;       /* the config file */
    size_t n_runs;
    struct nb_run *runs;
    int n_swept;
    int *swept;       /* key indices of the axes, product order */
    struct nb_sweep_store *store; /* private */
};

/* Cross-key check: returns 0 if run is possible, else a negative status
 * with err filled (use nb_run_error to point at the offending key). */
typedef int (*nb_run_check_fn)(const struct nb_run *run, struct nb_error *err);

/* Reads and expands path into sweep (zeroed first).  Returns 0, or a
 * negative status with err set ("FILE:LINE: message" and maybe a hint)
 * and sweep left freed.  nb_sweep_load_checked also calls check (when
 * non-NULL) on every run after the built-in checks. */
int nb_sweep_load(const char *path, struct nb_sweep *sweep,
                  struct nb_error *err);
int nb_sweep_load_checked(const char *path, nb_run_check_fn check,
                          struct nb_sweep *sweep, struct nb_error *err);
/* The same for a config held in memory, read as the file called name
 * (nb_ini_parse_text): `normbench train`'s command line. */
int nb_sweep_load_text(const char *name, const char *text, nb_run_check_fn check,
                       struct nb_sweep *sweep, struct nb_error *err);

/* Frees sweep; safe on a zeroed or freed sweep. */
void nb_sweep_free(struct nb_sweep *sweep);

/* Prints one line per run: "INDEX<TAB>RUN_ID" then "<TAB>section.key=value"
 * for every swept key.  A pure function of the config text. */
void nb_sweep_print_list(FILE *fp, const struct nb_sweep *sweep);

/* Index of the run with this run_id, or -1. */
long nb_sweep_find(const struct nb_sweep *sweep, const char *run_id);

/* The built-in cross-key checks (called by nb_sweep_load): nothing to
 * train (epochs = max_steps = 0), probe.eta_min > eta_max, standardize =
 * given without matching mean/std lists, instance norm on an mlp,
 * schedule = multistep without milestones. */
int nb_run_check_builtin(const struct nb_run *run, struct nb_error *err);

/* Fills err with status NB_EINVAL at the file:line where section.key got
 * its value in this run, message from fmt; returns NB_EINVAL. */
int nb_run_error(const struct nb_run *run, struct nb_error *err,
                 const char *section, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Typed getters.  Each asserts (NB_ASSERT) that section.key is in the
 * table and has a fitting type.  get_double takes INT and FLOAT keys;
 * for a key's special word ("none", "auto") the numeric getters return the
 * table's word_value (NAN for norm.momentum = none, -1 for auto); test
 * with nb_run_is_word.  get_enum returns the index in the key's value
 * list (the order of the C enums).  get_str returns the canonical text of
 * any key, owned by the sweep. */
long long nb_run_get_int(const struct nb_run *run, const char *section,
                         const char *key);
double nb_run_get_double(const struct nb_run *run, const char *section,
                         const char *key);
bool nb_run_get_bool(const struct nb_run *run, const char *section,
                     const char *key);
int nb_run_get_enum(const struct nb_run *run, const char *section,
                    const char *key);
const char *nb_run_get_str(const struct nb_run *run, const char *section,
                           const char *key);
bool nb_run_is_word(const struct nb_run *run, const char *section,
                    const char *key);
/* List keys: stores up to max elements in out and returns the element
 * count (which may exceed max). */
int nb_run_get_int_list(const struct nb_run *run, const char *section,
                        const char *key, long long *out, int max);
int nb_run_get_double_list(const struct nb_run *run, const char *section,
                           const char *key, double *out, int max);

/* Writes the resolved config (every key but zip/exclude, table order,
 * canonical values) to fp: the run directory's config.ini, which
 * nb_sweep_load reads back as one run with the same run_id.  Returns 0 or
 * NB_EIO. */
int nb_run_write_ini(FILE *fp, const struct nb_run *run);

/* The hashed text (as nb_run_write_ini without the [experiment] name,
 * results_dir and target_accuracy lines); malloc'd, NULL when out of
 * memory. */
char *nb_run_canonical(const struct nb_run *run);

/* The run identity's hash, nb_fnv1a64, is core/rng.h's (included here
 * for its callers). */

#endif
