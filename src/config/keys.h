/* src/config/keys.h - the declarative key table (keys.c) and a config
 * file read against it (config.c).
 *
 * Three layers, each usable on its own:
 *
 *  1. the strict INI reader: config/ini.h (ini.c).
 *
 *  2. nb_keys[]: every key normbench knows, with type, default, range,
 *     allowed values and a doc line (nb_config_help prints it as a valid,
 *     commented INI file).  nb_key_canon checks one value against its key
 *     and returns its canonical text.
 *
 *  3. nb_config_load: reads a config file (and its includes) against the
 *     table, strictly: unknown section or key, duplicate key within one
 *     file, a line without '=' are errors "FILE:LINE: message" (status
 *     NB_EINVAL) with a hint where the fix is obvious.  Later assignments
 *     override earlier ones, also across includes.  Each value is split
 *     into its sweep elements here (top-level commas; lin/log generators
 *     and a..b ranges expanded) and every element is checked against its
 *     key and made canonical (struct nb_config_val), so a bad value fails
 *     at its own line; zip and exclude are parsed too.  Combining the axes
 *     into runs and the cross-key checks are sweep.c's (nb_sweep_load).
 *
 * All functions follow core/error.h: 0 or a negative enum nb_status, with
 * err (when non-NULL) filled. */
#ifndef NB_HARNESS_CONFIG_H
#define NB_HARNESS_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "core/error.h"
#include "config/ini.h"

/* ---- 2. the key table --------------------------------------------------- */

enum nb_key_type {
    NB_KEY_INT = 0,    /* integer (long long) */
    NB_KEY_FLOAT,      /* double */
    NB_KEY_BOOL,       /* true/false/yes/no/1/0; canonical true/false */
    NB_KEY_ENUM,       /* one of enum_values */
    NB_KEY_STRING,     /* free text (no ',' - that would be a list) */
    NB_KEY_INT_LIST,   /* integers separated by spaces, may be empty */
    NB_KEY_FLOAT_LIST, /* numbers separated by spaces, may be empty */
    NB_KEY_NAMES,      /* zip: key names, one zip group per line */
    NB_KEY_RULES,      /* exclude: rules, see sweep.h */
    NB_KEY_TYPE_COUNT
};

enum nb_key_flags {
    NB_KF_MIN_EXCL = 1 << 0, /* value > min (else >= min) */
    NB_KF_MAX_EXCL = 1 << 1, /* value < max (else <= max) */
    NB_KF_INF = 1 << 2,      /* "inf" allowed (FLOAT) */
    NB_KF_IDENT = 1 << 3,    /* STRING restricted to [A-Za-z0-9_.-] */
    NB_KF_META = 1 << 4,     /* not part of the run identity (run_id) */
    NB_KF_NOSWEEP = 1 << 5,  /* a list/generator is an error */
    NB_KF_REPEAT = 1 << 6,   /* may appear several times; accumulates */
    NB_KF_STRUCT = 1 << 7,   /* sweep structure, not in a resolved run */
    NB_KF_INCREASING = 1 << 8, /* list elements strictly increasing */
    NB_KF_ADDED = 1 << 9       /* added after 0.1.0: left out of the run
                                * identity while at its default, so runs
                                * made before it existed keep their run_id */
};

struct nb_key {
    const char *section, *key;
    enum nb_key_type type;
    const char *def;                 /* canonical default text */
    double min, max;                 /* numbers and list elements */
    const char *const *enum_values;  /* ENUM: NULL-terminated */
    const char *doc;
    unsigned flags;                  /* enum nb_key_flags */
    const char *word;       /* a word accepted instead of a number ("none") */
    double word_value;      /* what the numeric getters return for it */
    /* Extra constraint on a number: NULL when fine, else the requirement
     * ("must be 6n+2 (8, 14, 20, ...)"). */
    const char *(*check)(double v);
    const char *full;       /* "section.key" */
};

/* The table: sections in the order experiment, model, norm, optim, train,
 * data, probe, keys in a fixed order; that order is the canonical order
 * of resolved configs.  An enum key that picks a C enum takes the module's
 * own name table as its value list (model.arch: nb_arch_names, norm.type:
 * nb_norm_type_names, ...), so its index is the enumerator. */
extern const struct nb_key nb_keys[];
extern const int nb_n_keys;
extern const char *const nb_sections[]; /* NULL-terminated, table order */

/* Index of section.key in nb_keys, or -1. */
int nb_key_lookup(const char *section, const char *key);

/* Index for "section.key", or for a bare "key" that exists in exactly one
 * section; -1 when unknown, -2 when a bare key is ambiguous. */
int nb_key_lookup_name(const char *name);

/* Checks one value text (one element of a sweep, already trimmed) against
 * key k and stores its canonical text in a malloc'd *out (caller frees):
 * numbers in the shortest of %.15g/%.16g/%.17g that round-trips, "inf",
 * integers as %lld, booleans true/false, lists with single spaces.  On
 * error returns NB_EINVAL with err set at file:line (e.g. "value 0 is out
 * of range for [optim] lr (must be > 0)"), *out NULL. */
int nb_key_canon(const struct nb_key *k, const char *text, const char *file,
                 int line, char **out, struct nb_error *err);

/* The number parsers behind nb_key_canon: 0 ok, -1 malformed, -2 out of
 * the C type's range, -3 (doubles) infinite, with *v set. */
int nb_key_parse_double(const char *s, double *v);
int nb_key_parse_ll(const char *s, long long *v);

/* Formats a double canonically into buf (>= 32 bytes); returns buf. */
char *nb_format_double(double v, char *buf, size_t size);

/* Writes every key as a commented INI template (section, key = default,
 * and a comment with type, range or values, and the doc line) to out: the
 * text of `normbench config --help`.  The output is itself a valid config
 * that resolves to the defaults. */
void nb_config_help(FILE *out);

/* Did-you-mean: the candidate closest to word by edit distance (case-
 * insensitive, transpositions count 1), or NULL when none is close. */
const char *nb_closest(const char *word, const char *const *cands, int n);

/* ---- 3. a config file read against the table ---------------------------- */

/* The effective assignment of one key, already split into its sweep
 * elements (top-level commas; lin/log generators and a..b ranges
 * expanded) and each element checked and canonical. */
struct nb_config_val {
    char *value;      /* raw text (trimmed, comments stripped, joined) */
    const char *file; /* interned path, owned by the config */
    int line;         /* line of the key */
    long seq;         /* order of assignment (file order, includes
                         expanded): the order of sweep axes */
    int is_axis;      /* written as a list, generator or range */
    int n_items;
    char **items;     /* canonical values, distinct */
    int *item_line;   /* line of each value (continuation lines) */
};

/* zip = a, b, ...: one group of axes that advance together. */
struct nb_zip {
    int n;
    int *keys;        /* key indices */
    int *key_line;
    const char *file;
    int line;
};

/* exclude: a rule is a conjunction of terms; a term KEY=V1|V2 matches
 * when the run's value is one of the Vi (KEY!=... when it is none). */
struct nb_rule_term {
    int key;
    int negate;
    int n_vals;
    char **vals;      /* canonical */
};
struct nb_rule {
    int n_terms;
    struct nb_rule_term *terms;
    const char *file;
    int line;
};

struct nb_config {
    char *path;                 /* the top-level file */
    struct nb_config_val *set;  /* [nb_n_keys]: value NULL when not set */
    struct nb_zip *zips;
    int n_zips;
    struct nb_rule *rules;
    int n_rules;
    char **files;               /* interned paths */
    int n_files;
    long seq;
    struct nb_config_seen *seen; /* duplicate detection per file read */
    int n_seen, cap_seen;
};

/* Reads path into cfg (zeroed by the call).  Returns 0, or a negative
 * status with err set and cfg freed. */
int nb_config_load(const char *path, struct nb_config *cfg,
                   struct nb_error *err);
/* The same for a config held in memory (nb_ini_parse_text). */
int nb_config_load_text(const char *name, const char *text, struct nb_config *cfg,
                        struct nb_error *err);

/* Frees cfg; safe on a zeroed or freed config. */
void nb_config_free(struct nb_config *cfg);

#endif
