/* src/config/selector.h - a run selector: which run of another experiment
 * a run starts from ([model] init_from).
 *
 *   EXPERIMENT                      the one run of EXPERIMENT that fits
 *   EXPERIMENT/RUN_ID               that run (16 hex digits)
 *   EXPERIMENT/KEY=VALUE,KEY=VALUE  the one run that fits and has these
 *                                   values
 *
 * EXPERIMENT is an [experiment] name (the folder under results_dir).  A
 * KEY is named as zip and exclude name keys: "section.key", or a bare key
 * when it is unique ("lr", "seeds"); its VALUE is checked against the key
 * and compared in canonical form, so lr=0.10 matches a run of lr = 0.1.
 * A run "fits" when it has every KEY=VALUE given and, unless a KEY is
 * [experiment] seeds, the seed of the run that selects (so fine-tuning
 * seed s starts from the pretraining of seed s).  Finding the runs and
 * the one that fits is the runner's (run/runner.h, nb_init_resolve); this
 * module parses, checks and matches.
 *
 * Canonical text (the value a resolved config holds, and so its run_id):
 * no spaces, the RUN_ID in lower case, every KEY as section.key, the
 * terms in the key table's order: " A / lr = 0.10, norm.type=batch" is
 * "A/norm.type=batch,optim.lr=0.1".
 *
 * Functions follow core/error.h: 0 or NB_EINVAL with err at file:line
 * (the config line of init_from; file NULL for none), "init_from: ...". */
#ifndef NB_CONFIG_SELECTOR_H
#define NB_CONFIG_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "config/sweep.h"

#define NB_SEL_MAX_TERMS 16
#define NB_SEL_NAME_MAX 128   /* experiment names, with the NUL */
#define NB_SEL_VALUE_MAX 256  /* a term's canonical value, with the NUL */
#define NB_SEL_TEXT_MAX 1024  /* canonical text, with the NUL */

struct nb_sel_term {
    int key;                        /* index in keys.h's flat list */
    char value[NB_SEL_VALUE_MAX];   /* canonical */
};

struct nb_selector {
    char experiment[NB_SEL_NAME_MAX];
    char run_id[17];                /* "" unless EXPERIMENT/RUN_ID */
    int n_terms;
    struct nb_sel_term terms[NB_SEL_MAX_TERMS]; /* key order, distinct keys */
    bool names_seed;                /* a term is experiment.seeds */
};

/* Parses text into sel.  NB_EINVAL (err at file:line) for an empty
 * text, an experiment name outside [A-Za-z0-9_.-] (or "." or ".."), a
 * RUN_ID that is not 16 hex digits, a term that is not KEY=VALUE, an
 * unknown, ambiguous or repeated KEY, a KEY that is itself a selector
 * (init_from) or a sweep-structure key, a VALUE its key refuses, more
 * than NB_SEL_MAX_TERMS terms, or a canonical text longer than
 * NB_SEL_TEXT_MAX - 1. */
int nb_selector_parse(const char *text, const char *file, int line, struct nb_selector *sel,
                      struct nb_error *err);

/* The canonical text of sel into buf (truncated to size); returns buf. */
const char *nb_selector_format(const struct nb_selector *sel, char *buf, size_t size);

/* The canonical text of text in a malloc'd *out (caller frees): "" for
 * "" (no selector), else parsed as nb_selector_parse.  The checker of
 * NB_KF_SELECTOR values (config.c). */
int nb_selector_canon(const char *text, const char *file, int line, char **out,
                      struct nb_error *err);

/* Whether a comma-separated piece of a list value continues the selector
 * before it: it is KEY=VALUE (an '=' with no '/' before it), which no
 * selector starts with. */
bool nb_selector_continues(const char *piece);

/* Whether run cand (a candidate source) has every term's value, and,
 * unless sel names the seed, the seed `seed` (that of the selecting
 * run).  sel->run_id is not looked at (a named run needs no match). */
bool nb_selector_match(const struct nb_selector *sel, const struct nb_run *cand, uint64_t seed);

#endif
