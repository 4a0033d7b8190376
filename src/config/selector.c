/* src/config/selector.c - see selector.h. */
#include "config/selector.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"

#define SYNTAX "expected EXPERIMENT, EXPERIMENT/RUN_ID or EXPERIMENT/KEY=VALUE,KEY=VALUE"

/* Copies s[0..n) into buf (size bytes) trimmed of blanks; false when it
 * does not fit. */
static bool copy_trimmed(char *buf, size_t size, const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= size)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return true;
}

/* Whether s is an experiment name: [A-Za-z0-9_.-]+, not "." or "..". */
static bool is_name(const char *s)
{
    if (!*s || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
            return false;
    return true;
}

/* Whether s is a run_id: 16 hex digits (either case). */
static bool is_run_id(const char *s)
{
    size_t n = strlen(s);
    if (n != 16)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* Parses one term "KEY=VALUE" into t; 0 or NB_EINVAL with err. */
static int parse_term(const char *s, const char *file, int line, struct nb_sel_term *t,
                      struct nb_error *err)
{
    const char *eq = strchr(s, '=');
    char name[128], value[NB_SEL_VALUE_MAX];
    if (!eq || !copy_trimmed(name, sizeof name, s, (size_t)(eq - s)) || !name[0] ||
        !copy_trimmed(value, sizeof value, eq + 1, strlen(eq + 1)))
        return nb_error_set(err, NB_EINVAL, file, line,
                            "init_from: expected KEY=VALUE after the experiment, got '%s'", s);
    int k = nb_key_resolve_name(name, "init_from", file, line, err);
    if (k < 0)
        return NB_EINVAL;
    if (nb_key_at(k)->flags & NB_KF_SELECTOR)
        return nb_error_set(err, NB_EINVAL, file, line,
                            "init_from: [%s] %s cannot select a run", nb_key_at(k)->section,
                            nb_key_at(k)->key);
    char *canon = NULL;
    if (nb_key_canon(nb_key_at(k), value, file, line, &canon, err))
        return NB_EINVAL;
    bool fits = strlen(canon) < sizeof t->value;
    if (fits)
        memcpy(t->value, canon, strlen(canon) + 1);
    free(canon);
    if (!fits)
        return nb_error_set(err, NB_EINVAL, file, line,
                            "init_from: the value of %s is longer than %d bytes", name,
                            NB_SEL_VALUE_MAX - 1);
    t->key = k;
    return 0;
}

/* Orders terms by key index (the key table's order). */
static int cmp_term(const void *a, const void *b)
{
    const struct nb_sel_term *x = a, *y = b;
    return (x->key > y->key) - (x->key < y->key);
}

/* Parses the terms of "KEY=VALUE,KEY=VALUE" into sel; 0 or NB_EINVAL. */
static int parse_terms(const char *s, const char *file, int line, struct nb_selector *sel,
                       struct nb_error *err)
{
    const int seeds = nb_key_lookup("experiment", "seeds");
    while (true) {
        size_t n = strcspn(s, ",");
        char piece[NB_SEL_TEXT_MAX];
        if (!copy_trimmed(piece, sizeof piece, s, n) || !piece[0])
            return nb_error_set(err, NB_EINVAL, file, line,
                                "init_from: %s, got an empty or overlong term", SYNTAX);
        if (sel->n_terms == NB_SEL_MAX_TERMS)
            return nb_error_set(err, NB_EINVAL, file, line,
                                "init_from: more than %d KEY=VALUE terms", NB_SEL_MAX_TERMS);
        struct nb_sel_term *t = &sel->terms[sel->n_terms];
        if (parse_term(piece, file, line, t, err))
            return NB_EINVAL;
        for (int i = 0; i < sel->n_terms; i++)
            if (sel->terms[i].key == t->key)
                return nb_error_set(err, NB_EINVAL, file, line,
                                    "init_from: %s.%s is given twice", nb_key_at(t->key)->section,
                                    nb_key_at(t->key)->key);
        sel->names_seed |= t->key == seeds;
        sel->n_terms++;
        if (!s[n])
            break;
        s += n + 1;
    }
    qsort(sel->terms, (size_t)sel->n_terms, sizeof sel->terms[0], cmp_term);
    return 0;
}

int nb_selector_parse(const char *text, const char *file, int line, struct nb_selector *sel,
                      struct nb_error *err)
{
    memset(sel, 0, sizeof *sel);
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    if (!copy_trimmed(sel->experiment, sizeof sel->experiment, text, n) ||
        !is_name(sel->experiment)) {
        nb_error_set(err, NB_EINVAL, file, line, "init_from: %s, got '%s'", SYNTAX, text);
        return nb_error_hint(err, "EXPERIMENT is an [experiment] name: A-Z a-z 0-9 _ . -");
    }
    if (slash) {
        char rest[NB_SEL_TEXT_MAX];
        if (!copy_trimmed(rest, sizeof rest, slash + 1, strlen(slash + 1)) || !rest[0])
            return nb_error_set(err, NB_EINVAL, file, line, "init_from: %s, got '%s'",
                                SYNTAX, text);
        if (!strchr(rest, '=')) {
            if (!is_run_id(rest))
                return nb_error_set(err, NB_EINVAL, file, line,
                                    "init_from: '%s' is not a RUN_ID (16 hex digits) or "
                                    "KEY=VALUE terms", rest);
            for (int i = 0; i < 16; i++)
                sel->run_id[i] = (char)tolower((unsigned char)rest[i]);
        } else if (parse_terms(rest, file, line, sel, err)) {
            return NB_EINVAL;
        }
    }
    char buf[NB_SEL_TEXT_MAX + 1];
    nb_selector_format(sel, buf, sizeof buf);
    if (strlen(buf) >= NB_SEL_TEXT_MAX)
        return nb_error_set(err, NB_EINVAL, file, line,
                            "init_from: longer than %d bytes", NB_SEL_TEXT_MAX - 1);
    return 0;
}

const char *nb_selector_format(const struct nb_selector *sel, char *buf, size_t size)
{
    struct nb_text t = {0};
    nb_text_puts(&t, sel->experiment);
    if (sel->run_id[0])
        nb_text_printf(&t, "/%s", sel->run_id);
    for (int i = 0; i < sel->n_terms; i++) {
        const struct nb_key *k = nb_key_at(sel->terms[i].key);
        nb_text_printf(&t, "%c%s.%s=%s", i ? ',' : '/', k->section, k->key,
                       sel->terms[i].value);
    }
    snprintf(buf, size, "%s", t.s && !t.failed ? t.s : "");
    nb_text_free(&t);
    return buf;
}

int nb_selector_canon(const char *text, const char *file, int line, char **out,
                      struct nb_error *err)
{
    *out = NULL;
    struct nb_selector sel;
    char buf[NB_SEL_TEXT_MAX];
    if (!*text)
        buf[0] = '\0';
    else if (nb_selector_parse(text, file, line, &sel, err))
        return NB_EINVAL;
    else
        nb_selector_format(&sel, buf, sizeof buf);
    *out = strdup(buf);
    return *out ? 0 : nb_error_oom(err);
}

bool nb_selector_continues(const char *piece)
{
    const char *eq = strchr(piece, '='), *slash = strchr(piece, '/');
    return eq && (!slash || slash > eq);
}

bool nb_selector_match(const struct nb_selector *sel, const struct nb_run *cand, uint64_t seed)
{
    for (int i = 0; i < sel->n_terms; i++)
        if (strcmp(cand->vals[sel->terms[i].key]->text, sel->terms[i].value))
            return false;
    return sel->names_seed || cand->seed == seed;
}
