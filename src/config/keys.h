/* src/config/keys.h - the declarative key table (keys.c) and a config
 * file read against it (config.c).
 *
 * Three layers, each usable on its own:
 *
 *  1. the strict INI reader: config/ini.h (ini.c).
 *
 *  2. the key table: every key normbench knows, with type, default,
 *     range, allowed values and a doc line, declared by the module whose
 *     struct it sets (core/opt.h) and listed here in canonical order
 *     (nb_config_help prints it as a valid, commented INI file).
 *     core/opt.h's nb_key_canon checks one value against its key and
 *     returns its canonical text.
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
#include "core/opt.h"
#include "config/ini.h"

/* ---- 2. the key table --------------------------------------------------- */

/* Every key normbench knows, as one flat list in canonical order: the
 * [experiment] keys (keys.c), then each module's table (core/opt.h; model.h
 * nb_model_keys, norm.h nb_norm_keys, train.h nb_train_norm_keys, optim.h
 * nb_optim_keys, train.h nb_train_keys, data.h nb_data_keys, probe.h
 * nb_probe_keys), sections in the order experiment, model, norm, optim,
 * train, data, probe.  That order is the canonical order of resolved
 * configs.  A key's index in this list indexes struct nb_config's set[] and
 * struct nb_run's vals[]. */
int nb_key_count(void);
const struct nb_key *nb_key_at(int i); /* 0 <= i < nb_key_count() */
extern const char *const nb_sections[]; /* NULL-terminated, table order */

/* The index of a module table's first row in the flat list, with its row
 * count in *n; -1 (and *n = 0) when keys is not a registered table. */
int nb_key_table_index(const struct nb_key *keys, int *n);

/* Index of section.key, or -1. */
int nb_key_lookup(const char *section, const char *key);

/* Index for "section.key", or for a bare "key" that exists in exactly one
 * section; -1 when unknown, -2 when a bare key is ambiguous. */
int nb_key_lookup_name(const char *name);

/* The index of a key named as zip, exclude and a run selector's terms
 * name keys (nb_key_lookup_name): -1 with err at file:line, "WHAT: ...",
 * when it is unknown (with a did-you-mean hint), ambiguous (the hint
 * lists the section.key spellings) or a sweep-structure key (zip,
 * exclude).  what is "zip", "exclude", "init_from". */
int nb_key_resolve_name(const char *name, const char *what, const char *file, int line,
                        struct nb_error *err);

/* Writes every key as a commented INI template (section, key = default,
 * and a comment with type, range or values, and the doc line) to out: the
 * text of `normbench config --help`.  The output is itself a valid config
 * that resolves to the defaults. */
void nb_config_help(FILE *out);

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
    char **items;     /* canonical values (distinct, or distinct
                         combinations when zipped: sweep.c checks) */
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
    struct nb_config_val *set;  /* [nb_key_count()]: value NULL when not set */
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
