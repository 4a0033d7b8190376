/* src/core/opt.c - see opt.h: checking a value against its key and
 * making it canonical, binding it into the owner's struct, the defaults,
 * and the small text helpers behind them (nb_closest for did-you-mean). */
#include "core/opt.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/text.h"

/* ======================================================================
 * Small helpers
 * ====================================================================== */

/* Appends p to b; 0, or NB_ENOMEM once an allocation has failed. */
static int sb_puts(struct nb_text *b, const char *p)
{
    nb_text_puts(b, p);
    return b->failed ? NB_ENOMEM : 0;
}

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return INT_MAX;
    int d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]);
            int cb = tolower((unsigned char)b[j - 1]);
            int cost = ca != cb;
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb];
}

const char *nb_closest(const char *word, const char *const *cands, int n)
{
    const char *best = NULL;
    int bestd = INT_MAX;
    size_t lw = strlen(word);
    for (int i = 0; i < n; i++) {
        int d = edit_distance(word, cands[i]);
        size_t lc = strlen(cands[i]);
        size_t lmax = lw > lc ? lw : lc;
        int close = d <= 2 || (size_t)d * 3 <= lmax;
        /* "batch_size" -> "batch", "optimizer" -> "optim" */
        if (!close && lw >= 3 && lc >= 3 &&
            (strncasecmp(word, cands[i], lc) == 0 ||
             strncasecmp(word, cands[i], lw) == 0))
            close = 1, d = (int)(lmax - (lw < lc ? lw : lc));
        if (close && d < bestd && d < (int)lmax) {
            bestd = d;
            best = cands[i];
        }
    }
    return best;
}

const char *nb_key_type_name(const struct nb_key *k)
{
    switch (k->type) {
    case NB_KEY_INT: return "int";
    case NB_KEY_FLOAT: return "float";
    case NB_KEY_BOOL: return "bool";
    case NB_KEY_ENUM: return "enum";
    case NB_KEY_STRING: return "string";
    case NB_KEY_INT_LIST: return "int list";
    case NB_KEY_FLOAT_LIST: return "float list";
    case NB_KEY_NAMES: return "key names";
    case NB_KEY_RULES: return "rules";
    case NB_KEY_TYPE_COUNT: break;
    }
    return "?";
}

char *nb_format_double(double v, char *buf, size_t size)
{
    if (isinf(v)) {
        snprintf(buf, size, "%s", v > 0 ? "inf" : "-inf");
        return buf;
    }
    if (v == 0) { /* also -0 */
        snprintf(buf, size, "0");
        return buf;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

static void fmt_bound(const struct nb_key *k, double v, char *buf, size_t size)
{
    if (k->type == NB_KEY_INT || k->type == NB_KEY_INT_LIST)
        snprintf(buf, size, "%.0f", v);
    else
        nb_format_double(v, buf, size);
}

/* "> 0", "in [0, 1)", "" when unbounded. */
void nb_key_range_text(const struct nb_key *k, int full, char *buf, size_t size)
{
    char lo[40], hi[40];
    fmt_bound(k, k->min, lo, sizeof lo);
    fmt_bound(k, k->max, hi, sizeof hi);
    int has_lo = !isinf(k->min), has_hi = !isinf(k->max);
    /* integer keys with huge maxima read better as ">= 0" */
    if (!full && (k->type == NB_KEY_INT || k->type == NB_KEY_INT_LIST) &&
        k->max >= 1e6)
        has_hi = 0;
    if (has_lo && has_hi)
        snprintf(buf, size, "in %c%s, %s%c", k->flags & NB_KF_MIN_EXCL ? '(' : '[',
                 lo, hi, k->flags & NB_KF_MAX_EXCL ? ')' : ']');
    else if (has_lo)
        snprintf(buf, size, "%s %s", k->flags & NB_KF_MIN_EXCL ? ">" : ">=", lo);
    else if (has_hi)
        snprintf(buf, size, "%s %s", k->flags & NB_KF_MAX_EXCL ? "<" : "<=", hi);
    else
        buf[0] = '\0';
}

void nb_key_enum_list(const struct nb_key *k, const char *sep, char *buf,
                      size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; k->enum_values[i]; i++)
        n += (size_t)snprintf(buf + (n < size ? n : size - 1),
                              n < size ? size - n : 1, "%s%s", i ? sep : "",
                              k->enum_values[i]);
}

/* ======================================================================
 * Values
 * ====================================================================== */

/* 0 ok, -1 malformed, -2 out of the range of the C type, -3 infinite. */
int nb_key_parse_double(const char *s, double *v)
{
    if (!*s || isspace((unsigned char)*s))
        return -1;
    for (const char *p = s; *p; p++)
        if (*p == 'x' || *p == 'X')
            return -1; /* no hex floats */
    const char *q = s + (*s == '+' || *s == '-');
    if (!strcasecmp(q, "inf") || !strcasecmp(q, "infinity")) {
        *v = *s == '-' ? -HUGE_VAL : HUGE_VAL;
        return -3;
    }
    if (!isdigit((unsigned char)*q) && *q != '.')
        return -1; /* nan, words */
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end)
        return -1;
    if (errno == ERANGE)
        return -2;
    *v = d;
    return 0;
}

/* 0 ok, -1 malformed, -2 out of range of long long. */
int nb_key_parse_ll(const char *s, long long *v)
{
    if (!*s || isspace((unsigned char)*s))
        return -1;
    const char *q = s + (*s == '+' || *s == '-');
    if (!isdigit((unsigned char)*q))
        return -1;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (*end)
        return -1;
    if (errno == ERANGE)
        return -2;
    *v = x;
    return 0;
}

static int parse_bool(const char *s, int *b)
{
    if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcmp(s, "1"))
        *b = 1;
    else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcmp(s, "0"))
        *b = 0;
    else
        return -1;
    return 0;
}

static int out_of_range(const struct nb_key *k, double v)
{
    if (v < k->min || (v == k->min && (k->flags & NB_KF_MIN_EXCL)))
        return 1;
    if (v > k->max || (v == k->max && (k->flags & NB_KF_MAX_EXCL)))
        return 1;
    return 0;
}

/* Checks one number (text s, element of a list when in_list) and appends
 * its canonical form to out. */
static int canon_number(const struct nb_key *k, const char *s, int is_int,
                        const char *file, int line, struct nb_text *out,
                        struct nb_error *err)
{
    char buf[64];
    double v;
    const char *what = is_int ? "integer" : "number";
    const char *where = (k->type == NB_KEY_INT_LIST || k->type == NB_KEY_FLOAT_LIST)
                            ? " in" : " for";
    if (is_int) {
        long long x;
        int rc = nb_key_parse_ll(s, &x);
        if (rc == -1)
            return nb_error_set(err, NB_EINVAL, file, line,
                                "malformed integer '%s'%s [%s] %s", s, where,
                                k->section, k->key);
        if (rc == -2 || fabs((double)x) > 9007199254740992.0 ||
            out_of_range(k, (double)x)) {
            char r[96];
            nb_key_range_text(k, rc == -2 || (double)x >= k->max, r, sizeof r);
            return nb_error_set(err, NB_EINVAL, file, line,
                                "value %s is out of range%s [%s] %s (must be %s)",
                                s, where, k->section, k->key, r);
        }
        v = (double)x;
        snprintf(buf, sizeof buf, "%lld", x);
    } else {
        int rc = nb_key_parse_double(s, &v);
        if (rc == -1)
            return nb_error_set(err, NB_EINVAL, file, line,
                                "malformed %s '%s'%s [%s] %s", what, s, where,
                                k->section, k->key);
        if (rc == -3 && !(k->flags & NB_KF_INF))
            return nb_error_set(err, NB_EINVAL, file, line,
                                "infinite value '%s' not allowed%s [%s] %s", s,
                                where, k->section, k->key);
        if (rc == -2 || out_of_range(k, v)) {
            char r[96];
            nb_key_range_text(k, rc == -2 || v >= k->max, r, sizeof r);
            return nb_error_set(err, NB_EINVAL, file, line,
                                "value %s is out of range%s [%s] %s (must be %s)",
                                s, where, k->section, k->key, r);
        }
        nb_format_double(v, buf, sizeof buf);
    }
    if (k->check) {
        const char *why = k->check(v);
        if (why)
            return nb_error_set(err, NB_EINVAL, file, line,
                                "bad value %s for [%s] %s (%s)", s, k->section,
                                k->key, why);
    }
    return sb_puts(out, buf) ? nb_error_oom(err) : 0;
}

/* Checks that text is one of k's enum values and appends it to out;
 * returns a status (the hint names the closest value, or them all). */
static int canon_enum(const struct nb_key *k, const char *text, const char *file, int line,
                      struct nb_text *out, struct nb_error *err)
{
    int found = 0;
    for (int i = 0; k->enum_values[i]; i++)
        if (!strcmp(text, k->enum_values[i]))
            found = 1;
    if (!found) {
        char list[200];
        int n = 0;
        while (k->enum_values[n])
            n++;
        nb_key_enum_list(k, ", ", list, sizeof list);
        int rc = nb_error_set(err, NB_EINVAL, file, line, "bad value '%s' for [%s] %s", text,
                              k->section, k->key);
        const char *c = nb_closest(text, k->enum_values, n);
        if (c)
            nb_error_hint(err, "did you mean '%s'? allowed values: %s", c, list);
        else
            nb_error_hint(err, "allowed values: %s", list);
        return rc;
    }
    return sb_puts(out, text) ? nb_error_oom(err) : 0;
}

struct list_item {
    double v;
    size_t at, len; /* its canonical text in the list's buffer */
};

static int item_cmp(const void *a, const void *b)
{
    double x = ((const struct list_item *)a)->v, y = ((const struct list_item *)b)->v;
    return (x > y) - (x < y);
}

/* Appends the items of buf to out in increasing order of value, each
 * value once, one space apart; returns a status. */
static int put_sorted(struct list_item *it, size_t n, const char *buf, struct nb_text *out,
                      struct nb_error *err)
{
    if (n > 1) /* an empty list has no array (qsort's pointer must not be NULL) */
        qsort(it, n, sizeof *it, item_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && it[i].v == it[i - 1].v)
            continue;
        if (i > 0)
            nb_text_put(out, " ", 1);
        nb_text_put(out, buf + it[i].at, it[i].len);
    }
    return out->failed ? nb_error_oom(err) : 0;
}

/* Checks every number of the list text (strictly increasing when k says
 * so) and appends their canonical forms, one space apart, to out (sorted
 * and without duplicates when k says NB_KF_SORTED); returns a status. */
static int canon_list(const struct nb_key *k, const char *text, const char *file, int line,
                      struct nb_text *out, struct nb_error *err)
{
    char *copy = strdup(text), *save = NULL;
    double prev = -HUGE_VAL;
    int first = 1, rc = 0;
    bool sorted = k->flags & NB_KF_SORTED;
    struct nb_text tmp = {0}, *dst = sorted ? &tmp : out;
    struct list_item *it = NULL;
    size_t n = 0, cap = 0;
    if (!copy)
        return nb_error_oom(err);
    for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        size_t at = dst->n;
        if (!first && sb_puts(dst, " ")) {
            rc = nb_error_oom(err);
            break;
        }
        rc = canon_number(k, tok, k->type == NB_KEY_INT_LIST, file, line, dst, err);
        if (rc)
            break;
        at += !first;
        double v = strtod(dst->s + at, NULL);
        if ((k->flags & NB_KF_INCREASING) && v <= prev) {
            rc = nb_error_set(err, NB_EINVAL, file, line,
                              "[%s] %s must be strictly increasing ('%s')", k->section, k->key,
                              text);
            break;
        }
        if (sorted) {
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                struct list_item *p = realloc(it, cap * sizeof *p);
                if (!p) {
                    rc = nb_error_oom(err);
                    break;
                }
                it = p;
            }
            it[n++] = (struct list_item){v, at, dst->n - at};
        }
        prev = v;
        first = 0;
    }
    if (!rc && sorted)
        rc = put_sorted(it, n, tmp.s, out, err);
    free(it);
    nb_text_free(&tmp);
    free(copy);
    return rc;
}

int nb_key_canon(const struct nb_key *k, const char *text, const char *file,
                 int line, char **out, struct nb_error *err)
{
    struct nb_text b = {0};
    int rc = 0;
    *out = NULL;
    if (sb_puts(&b, ""))
        return nb_error_oom(err);
    for (const char *p = text; *p; p++)
        if (iscntrl((unsigned char)*p) && *p != '\t') {
            free(b.s);
            return nb_error_set(err, NB_EINVAL, file, line,
                                "control character in the value of [%s] %s",
                                k->section, k->key);
        }
    if (k->word && !strcmp(text, k->word)) {
        rc = sb_puts(&b, k->word) ? nb_error_oom(err) : 0;
        goto done;
    }
    switch (k->type) {
    case NB_KEY_INT:
    case NB_KEY_FLOAT:
        if (!*text) {
            rc = nb_error_set(err, NB_EINVAL, file, line,
                              "missing value for [%s] %s", k->section, k->key);
            break;
        }
        rc = canon_number(k, text, k->type == NB_KEY_INT, file, line, &b, err);
        if (rc && k->word && err && err->status && strstr(err->msg, "malformed"))
            nb_error_hint(err, "a number or '%s'", k->word);
        break;
    case NB_KEY_BOOL: {
        int v;
        if (parse_bool(text, &v) != 0) {
            rc = nb_error_set(err, NB_EINVAL, file, line,
                              "bad value '%s' for [%s] %s (expected a boolean)",
                              text, k->section, k->key);
            nb_error_hint(err, "allowed values: true, false, yes, no, 1, 0");
            break;
        }
        rc = sb_puts(&b, v ? "true" : "false") ? nb_error_oom(err) : 0;
        break;
    }
    case NB_KEY_ENUM:
        rc = canon_enum(k, text, file, line, &b, err);
        break;
    case NB_KEY_STRING:
        if (k->flags & NB_KF_IDENT)
            for (const char *p = text; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("_.-", *p)) {
                    rc = nb_error_set(err, NB_EINVAL, file, line,
                                      "bad value '%s' for [%s] %s (only "
                                      "A-Z a-z 0-9 _ . - allowed)",
                                      text, k->section, k->key);
                    goto done;
                }
        rc = sb_puts(&b, text) ? nb_error_oom(err) : 0;
        break;
    case NB_KEY_INT_LIST:
    case NB_KEY_FLOAT_LIST:
        rc = canon_list(k, text, file, line, &b, err);
        break;
    case NB_KEY_NAMES: /* zip and exclude: parsed by config.c */
    case NB_KEY_RULES:
    case NB_KEY_TYPE_COUNT:
        rc = nb_error_set(err, NB_EINVAL, file, line,
                          "[%s] %s takes no plain value", k->section, k->key);
        break;
    }
done:
    if (rc) {
        free(b.s);
        return rc;
    }
    *out = b.s;
    return 0;
}

/* ======================================================================
 * Binding
 * ====================================================================== */

int nb_name_index(const char *const *names, const char *s)
{
    for (int i = 0; names && s && names[i]; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

/* Stores the number v into k's member of base (int, long, size_t or
 * double; a bool takes v != 0). */
static void store_number(const struct nb_key *k, double v, long long x, char *at)
{
    switch (k->field) {
    case NB_FIELD_INT: *(int *)(void *)at = (int)x; break;
    case NB_FIELD_LONG: *(long *)(void *)at = (long)x; break;
    case NB_FIELD_SIZE: *(size_t *)(void *)at = (size_t)x; break;
    case NB_FIELD_DOUBLE: *(double *)(void *)at = v; break;
    case NB_FIELD_BOOL: *(bool *)(void *)at = v != 0; break;
    case NB_FIELD_ENUM: *(int *)(void *)at = (int)x; break;
    case NB_FIELD_NONE:
    case NB_FIELD_INT_ARRAY:
    case NB_FIELD_CHARS: NB_ASSERT(!"a number into a member that is not one"); break;
    }
}

/* The integer list text into k's int array and its count. */
static int store_int_list(const struct nb_key *k, const char *text, char *base,
                          struct nb_error *err)
{
    int *a = (int *)(void *)(base + k->off);
    size_t cap = k->cap / sizeof *a, n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long long x = strtoll(p, &end, 10);
        if (end == p)
            break;
        if (n < cap)
            a[n] = (int)x;
        n++;
        p = end + strspn(end, " ");
    }
    if (n > cap)
        return nb_error_set(err, NB_EINVAL, NULL, 0, "[%s] %s takes at most %zu values (got %zu)",
                            k->section, k->key, cap, n);
    *(int *)(void *)(base + k->count_off) = (int)n;
    return 0;
}

int nb_key_store(const struct nb_key *k, const char *text, void *base,
                 struct nb_error *err)
{
    char *at = (char *)base + k->off;
    if (k->field == NB_FIELD_NONE)
        return 0;
    NB_ASSERT(k->field != NB_FIELD_ENUM || k->cap == sizeof(int));
    if (k->word && !strcmp(text, k->word)) {
        if (k->word_flag)
            *(bool *)(void *)((char *)base + k->word_off) = true;
        else
            store_number(k, k->word_value, (long long)k->word_value, at);
        return 0;
    }
    if (k->word_flag)
        *(bool *)(void *)((char *)base + k->word_off) = false;
    switch (k->type) {
    case NB_KEY_INT:
    case NB_KEY_FLOAT: {
        double v = strtod(text, NULL);
        store_number(k, v, strtoll(text, NULL, 10), at);
        return 0;
    }
    case NB_KEY_BOOL:
        store_number(k, !strcmp(text, "true"), !strcmp(text, "true"), at);
        return 0;
    case NB_KEY_ENUM: {
        int i = nb_name_index(k->enum_values, text);
        NB_ASSERT(i >= 0);
        store_number(k, i > 0, i, at);
        return 0;
    }
    case NB_KEY_STRING:
        NB_ASSERT(k->field == NB_FIELD_CHARS);
        if (strlen(text) >= k->cap)
            return nb_error_set(err, NB_EINVAL, NULL, 0,
                                "[%s] %s is longer than %zu bytes", k->section, k->key,
                                k->cap - 1);
        memcpy(at, text, strlen(text) + 1);
        return 0;
    case NB_KEY_INT_LIST:
        NB_ASSERT(k->field == NB_FIELD_INT_ARRAY);
        return store_int_list(k, text, base, err);
    case NB_KEY_FLOAT_LIST:
    case NB_KEY_NAMES:
    case NB_KEY_RULES:
    case NB_KEY_TYPE_COUNT:
        break;
    }
    NB_ASSERT(!"no binding for this key type");
    return NB_EINVAL;
}

void nb_keys_default(const struct nb_key *keys, int n, void *base)
{
    for (int i = 0; i < n; i++) {
        int rc = nb_key_store(&keys[i], keys[i].def, base, NULL);
        NB_ASSERT(rc == 0);
    }
}
