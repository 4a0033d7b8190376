/* src/core/opt.h - options declared once, next to the struct they set.
 *
 * A module that takes options exports a table of struct nb_key rows, one
 * per config key of its section, beside its options struct: the key's
 * name, type, default text, range, value names (the module's own name
 * table), doc line, flags, and where its value goes (the member's offset,
 * its C type and size, found by NB_KEY_AT from the member itself).  From
 * that one table come the struct's defaults (nb_keys_default), the
 * canonical text of a value (nb_key_canon), binding a resolved value into
 * the struct (nb_key_store), and `normbench config --help`
 * (config/keys.c, which lists the tables in their canonical order).
 *
 *   norm.c:   const struct nb_key nb_norm_keys[] = {
 *                 {NB_K_FLT("norm", "eps", "1e-05", 0, HUGE_VAL,
 *                           NB_KF_MIN_EXCL, "added to the variance ..."),
 *                  NB_KEY_AT(struct nb_norm_opts, eps)},
 *                 ...};
 *
 * A row whose value has no one member (the harness's own keys, a value
 * spread over several members) has field NB_FIELD_NONE; its reader reads
 * it by name (config/sweep.h's nb_run_get_*).
 *
 * Binding rules (nb_key_store): numbers into int, long, size_t or double
 * members; booleans into bool; an enum key into an enum member (its
 * value's index in enum_values, which is the enumerator when enum_values
 * is the module's name table) or into a bool (true for every value but
 * the first: "pytorch"/"keras" -> momentum_keras); an integer list into
 * an int array with its count member (count_off); a string into a char
 * array.  A key's `word` ("none", "auto") stores word_value, or sets the
 * bool at word_off instead when word_flag is set.
 *
 * Functions follow core/error.h: 0 or a negative enum nb_status. */
#ifndef NB_CORE_OPT_H
#define NB_CORE_OPT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

enum nb_key_type {
    NB_KEY_INT = 0,    /* integer (long long) */
    NB_KEY_FLOAT,      /* double */
    NB_KEY_BOOL,       /* true/false/yes/no/1/0; canonical true/false */
    NB_KEY_ENUM,       /* one of enum_values */
    NB_KEY_STRING,     /* free text (no ',' - that would be a list) */
    NB_KEY_INT_LIST,   /* integers separated by spaces, may be empty */
    NB_KEY_FLOAT_LIST, /* numbers separated by spaces, may be empty */
    NB_KEY_NAMES,      /* zip: key names, one zip group per line */
    NB_KEY_RULES,      /* exclude: rules, see config/sweep.h */
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
    NB_KF_ADDED = 1 << 9,      /* added after 0.1.0: left out of the run
                                * identity while at its default, so runs
                                * made before it existed keep their run_id */
    NB_KF_SELECTOR = 1 << 10,  /* STRING: a run selector (config/selector.h),
                                * checked and made canonical by it; in a
                                * list, an element KEY=VALUE continues the
                                * selector before it, so "E/k=v,k2=v2" is
                                * one value */
    NB_KF_SORTED = 1 << 11     /* list elements in any order: the canonical
                                * text has them sorted, duplicates dropped
                                * (a list that was strictly increasing keeps
                                * its text, and so its run_id) */
};

/* The C type of the member a key sets (NB_FIELD_OF finds it). */
enum nb_key_field {
    NB_FIELD_NONE = 0, /* no member: read by name where it is used */
    NB_FIELD_INT,
    NB_FIELD_LONG,
    NB_FIELD_SIZE,     /* size_t */
    NB_FIELD_DOUBLE,
    NB_FIELD_BOOL,
    NB_FIELD_ENUM,     /* an enum of int size */
    NB_FIELD_INT_ARRAY, /* int[cap], the count in the int at count_off */
    NB_FIELD_CHARS     /* char[cap], NUL-terminated */
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
    /* where the value goes in the owner's struct */
    enum nb_key_field field;
    size_t off, cap;        /* offset and size of the member */
    size_t count_off;       /* INT_ARRAY: offset of its int count */
    bool word_flag;         /* the word sets the bool at word_off ... */
    size_t word_off;        /* ... instead of storing word_value */
};

/* Row builders: the descriptive part of a row (designated initializers,
 * so a row adds NB_KEY_AT and, where it has them, .word = ..., .check =
 * ...). */
#define NB_K_(s, k, t, d, lo, hi, fl, doc_)                                 \
    .section = s, .key = k, .full = s "." k, .type = t, .def = d, .min = lo, \
    .max = hi, .flags = fl, .doc = doc_
#define NB_K_INT(s, k, d, lo, hi, fl, doc_) NB_K_(s, k, NB_KEY_INT, d, lo, hi, fl, doc_)
#define NB_K_FLT(s, k, d, lo, hi, fl, doc_) NB_K_(s, k, NB_KEY_FLOAT, d, lo, hi, fl, doc_)
#define NB_K_BOOL(s, k, d, doc_) NB_K_(s, k, NB_KEY_BOOL, d, 0, 0, 0, doc_)
#define NB_K_ENUM(s, k, d, vals, doc_) \
    NB_K_(s, k, NB_KEY_ENUM, d, 0, 0, 0, doc_), .enum_values = vals
#define NB_K_STR(s, k, d, fl, doc_) NB_K_(s, k, NB_KEY_STRING, d, 0, 0, fl, doc_)
#define NB_K_ILIST(s, k, d, lo, hi, fl, doc_) \
    NB_K_(s, k, NB_KEY_INT_LIST, d, lo, hi, fl, doc_)
#define NB_K_FLIST(s, k, d, lo, hi, fl, doc_) \
    NB_K_(s, k, NB_KEY_FLOAT_LIST, d, lo, hi, fl, doc_)

/* The field kind of member m of struct type T, from its C type (arrays
 * decay: int[] is an int array, char[] a string). */
#define NB_FIELD_OF(T, m)                                         \
    _Generic(((T *)0)->m, int: NB_FIELD_INT, long: NB_FIELD_LONG, \
             size_t: NB_FIELD_SIZE, double: NB_FIELD_DOUBLE,      \
             bool: NB_FIELD_BOOL, int *: NB_FIELD_INT_ARRAY,      \
             char *: NB_FIELD_CHARS, default: NB_FIELD_ENUM)

/* Where a row's value goes: member m of T. */
#define NB_KEY_AT(T, m) \
    .field = NB_FIELD_OF(T, m), .off = offsetof(T, m), .cap = sizeof(((T *)0)->m)
/* ... an int array m with its count member n. */
#define NB_KEY_AT_ARRAY(T, m, n) NB_KEY_AT(T, m), .count_off = offsetof(T, n)
/* ... and the key's word sets bool member f instead. */
#define NB_KEY_WORD_FLAG(T, f) .word_flag = true, .word_off = offsetof(T, f)

/* Sets every member of base that a row of keys[0..n) names to the row's
 * default.  The defaults are the table's own, so this cannot fail on a
 * table t_config checks; a default that does not bind asserts. */
void nb_keys_default(const struct nb_key *keys, int n, void *base);

/* Stores the canonical value text (nb_key_canon's output) of key k into
 * its member of base; nothing for NB_FIELD_NONE.  Returns 0, or NB_EINVAL
 * with err's message ("[model] widths takes at most 16 values (got 20)") when a list does not
 * fit the member or a string is too long for it. */
int nb_key_store(const struct nb_key *k, const char *text, void *base,
                 struct nb_error *err);

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

/* k's range as text: "> 0", "in [0, 1)", "" when unbounded; full = 0
 * leaves out the huge maxima of integer keys (">= 0"). */
void nb_key_range_text(const struct nb_key *k, int full, char *buf, size_t size);

/* k's enum values joined by sep into buf (truncated to size). */
void nb_key_enum_list(const struct nb_key *k, const char *sep, char *buf,
                      size_t size);

/* The name of k's type ("int", "float list", ...). */
const char *nb_key_type_name(const struct nb_key *k);

/* The index of s in the NULL-terminated name table names (a module's
 * enum names, a key's values), or -1. */
int nb_name_index(const char *const *names, const char *s);

/* Did-you-mean: the candidate closest to word by edit distance (case-
 * insensitive, transpositions count 1), or NULL when none is close. */
const char *nb_closest(const char *word, const char *const *cands, int n);

#endif
