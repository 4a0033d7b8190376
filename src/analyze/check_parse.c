/* src/analyze/check_parse.c - the check language's syntax tree, filters
 * and parser; see check.h (evaluation: check.c). */
#include "analyze/check.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#include "config/keys.h"
#include "analyze/prereg.h"

#include "analyze/check_impl.h"

/* ======================================================================
 * AST
 * ====================================================================== */

const char *const nb_check_agg_names[A_COUNT_ + 1] = {
    "at", "mean", "median", "min", "max", "sum", "std", "range", "count",
    "first", "last", "rankcorr", "largest", "smallest", "above"};



/* Frees the tree under n (NULL is fine). */
static void node_free(struct nb_check_node *n)
{
    if (!n)
        return;
    node_free(n->a);
    node_free(n->b);
    nb_metric_free(&n->metric);
    if (n->fb)
        nb_filters_free(n->fb, n->nf);
    nb_filters_free(n->f, n->nf);
    nb_filters_free(n->f2, n->nf2);
    nb_summary_prepared_free(n->prep);
    nb_summary_prepared_free(n->prep_b);
    nb_summary_prepared_free(n->prep2);
    free(n->text);
    free(n);
}

void nb_check_free(struct nb_check *c)
{
    if (!c)
        return;
    free(c->name);
    free(c->about);
    free(c->text);
    free(c->file);
    node_free(c->lhs);
    node_free(c->rhs);
    memset(c, 0, sizeof *c);
}

void nb_filters_free(struct nb_sum_filter *f, int n)
{
    if (!f)
        return;
    for (int i = 0; i < n; i++)
        nb_sum_filter_free(&f[i]);
    free(f);
}

/* ======================================================================
 * Filters
 * ====================================================================== */

static const struct {
    const char *name;
    int key;
} pseudo_keys[] = {{"step", NB_FK_STEP},
                   {"epoch", NB_FK_EPOCH},
                   {"layer", NB_FK_LAYER},
                   {"param", NB_FK_PARAM},
                   {"param_value", NB_FK_PARAM_VALUE}};
#define N_PSEUDO ((int)(sizeof pseudo_keys / sizeof pseudo_keys[0]))

/* May c be part of a metric or key name (letters, digits, '_' and '.')? */
static bool is_ident_char(int c)
{
    return isalnum(c) || c == '_' || c == '.';
}

/* The n bytes at s without surrounding white space, malloc'd (NULL when out
 * of memory). */
static char *trim_dup(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Resolves a key name; returns 0 with *key set, or NB_EINVAL. */
static int resolve_key(const char *name, const char *ctx, const char *file, int line,
                       int *key, struct nb_error *err)
{
    for (int i = 0; i < N_PSEUDO; i++)
        if (!strcmp(name, pseudo_keys[i].name)) {
            *key = pseudo_keys[i].key;
            return 0;
        }
    int k = nb_key_lookup_name(name);
    /* the short names of labels: bs, G (lr is unique anyway) */
    if (!strcmp(name, "bs"))
        k = nb_key_lookup("train", "batch");
    else if (!strcmp(name, "G"))
        k = nb_key_lookup("norm", "groups");
    if (k >= 0) {
        *key = k;
        return 0;
    }
    if (k == -2) {
        char alts[256] = "";
        size_t n = 0;
        for (int i = 0; i < nb_key_count(); i++)
            if (!strcmp(nb_key_at(i)->key, name))
                n += (size_t)snprintf(alts + n, n < sizeof alts ? sizeof alts - n : 0,
                                      "%s%s.%s", n ? " or " : "", nb_key_at(i)->section,
                                      nb_key_at(i)->key);
        return nb_error_set(err, NB_EINVAL, file, line, "%s: ambiguous key '%s' (%s)",
                            ctx, name, alts);
    }
    nb_error_set(err, NB_EINVAL, file, line, "%s: unknown key '%s'", ctx, name);
    const char *cands[512];
    char full[512][96];
    int nc = 0;
    for (int i = 0; i < nb_key_count() && nc < 500; i++) {
        snprintf(full[nc], sizeof full[nc], "%s.%s", nb_key_at(i)->section, nb_key_at(i)->key);
        cands[nc] = full[nc];
        nc++;
    }
    for (int i = 0; i < N_PSEUDO; i++)
        cands[nc++] = pseudo_keys[i].name;
    const char *near = nb_closest(name, cands, nc);
    if (near)
        nb_error_hint(err, "did you mean '%s'?", near);
    return NB_EINVAL;
}

/* Parses s fully as a finite double; false when it is not one. */
static bool parse_number(const char *s, double *v)
{
    if (!*s)
        return false;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end)
        return false;
    *v = x;
    return true;
}

/* Does filter key `key` (a config key or step, epoch, param_value) take
 * numbers? */
static bool key_numeric(int key)
{
    if (key == NB_FK_STEP || key == NB_FK_EPOCH || key == NB_FK_PARAM_VALUE)
        return true;
    if (key < 0)
        return false;
    return nb_key_at(key)->type == NB_KEY_INT || nb_key_at(key)->type == NB_KEY_FLOAT;
}

/* The comparison at *p ("<=", "=", ...), advancing *p past it; false when
 * there is none. */
static bool parse_cmp(const char **p, enum nb_cmp *op)
{
    static const struct {
        const char *text;
        enum nb_cmp op;
    } ops[] = {{"<=", NB_CMP_LE}, {">=", NB_CMP_GE}, {"!=", NB_CMP_NE}, {"==", NB_CMP_EQ},
               {"=", NB_CMP_EQ},  {"<", NB_CMP_LT},  {">", NB_CMP_GT}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!strncmp(*p, ops[i].text, strlen(ops[i].text))) {
            *op = ops[i].op;
            *p += strlen(ops[i].text);
            return true;
        }
    return false;
}

/* f's value "LO..HI" (val, which this frees; dots points at its ".."):
 * 0, or an error with f freed. */
static int filter_range(struct nb_sum_filter *f, char *val, char *dots, int k, enum nb_cmp op,
                        const char *ctx, const char *file, int line, struct nb_error *err)
{
    *dots = '\0';
    double lo, hi;
    char *a = trim_dup(val, strlen(val)), *b = trim_dup(dots + 2, strlen(dots + 2));
    bool ok = a && b && parse_number(a, &lo) && parse_number(b, &hi);
    free(a);
    free(b);
    free(val);
    if (!ok || (op != NB_CMP_EQ && op != NB_CMP_NE) || !key_numeric(k) || lo > hi) {
        int r = nb_error_set(err, NB_EINVAL, file, line,
                             "%s: bad range in filter '%s' (KEY=LO..HI with numbers "
                             "LO <= HI, on a numeric key)",
                             ctx, f->text);
        nb_sum_filter_free(f);
        return r;
    }
    f->range = true;
    f->lo = lo;
    f->hi = hi;
    return 0;
}

/* f's value "A|B|..." (val, which this frees), each checked and made
 * canonical against key k: 0, or an error with f freed. */
static int filter_alternatives(struct nb_sum_filter *f, char *val, int k, enum nb_cmp op,
                               const char *ctx, const char *file, int line,
                               struct nb_error *err)
{
    int n = 1;
    for (char *q = val; *q; q++)
        n += *q == '|';
    if (n > 1 && op != NB_CMP_EQ && op != NB_CMP_NE) {
        free(val);
        int r = nb_error_set(err, NB_EINVAL, file, line,
                             "%s: alternatives (a|b) need = or != in filter '%s'", ctx,
                             f->text);
        nb_sum_filter_free(f);
        return r;
    }
    f->vals = calloc((size_t)n, sizeof *f->vals);
    f->num = calloc((size_t)n, sizeof *f->num);
    if (!f->vals || !f->num) {
        free(val);
        nb_sum_filter_free(f);
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    }
    char *q = val;
    for (int i = 0; i < n; i++) {
        char *bar = strchr(q, '|');
        size_t len = bar ? (size_t)(bar - q) : strlen(q);
        char *v = trim_dup(q, len);
        if (!v || !*v) {
            free(v);
            free(val);
            int r = nb_error_set(err, NB_EINVAL, file, line,
                                 "%s: empty value in filter '%s'", ctx, f->text);
            nb_sum_filter_free(f);
            return r;
        }
        if (k >= 0) { /* check and canonicalize against the key table */
            char *canon = NULL;
            struct nb_error e2;
            nb_error_clear(&e2);
            if (nb_key_canon(nb_key_at(k), v, file, line, &canon, &e2)) {
                nb_error_set(err, NB_EINVAL, file, line, "%s: filter '%s': %s", ctx,
                             f->text, e2.msg);
                if (e2.hint[0])
                    nb_error_hint(err, "%s", e2.hint);
                free(v);
                free(val);
                nb_sum_filter_free(f);
                return NB_EINVAL;
            }
            free(v);
            v = canon;
        }
        f->vals[i] = v;
        f->n_vals = i + 1;
        if (!parse_number(v, &f->num[i]))
            f->num[i] = NAN;
        if (op != NB_CMP_EQ && op != NB_CMP_NE && (isnan(f->num[i]) || !key_numeric(k))) {
            free(val);
            int r = nb_error_set(err, NB_EINVAL, file, line,
                                 "%s: '%s' compares with %s, which needs a number on a "
                                 "numeric key",
                                 ctx, f->text, nb_cmp_str(op));
            nb_sum_filter_free(f);
            return r;
        }
        q = bar ? bar + 1 : q + len;
    }
    free(val);
    return 0;
}

/* One filter KEY OP VALUE (VALUE: a value, A|B alternatives or a LO..HI
 * range) into f: 0, or an error with f left freed. */
int nb_filter_parse(const char *text, const char *ctx, const char *file,
                    int line, struct nb_sum_filter *f, struct nb_error *err)
{
    memset(f, 0, sizeof *f);
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    const char *k0 = p;
    while (is_ident_char((unsigned char)*p))
        p++;
    if (p == k0)
        return nb_error_set(err, NB_EINVAL, file, line,
                            "%s: expected a filter KEY=VALUE, got '%s'", ctx, text);
    char key[128];
    snprintf(key, sizeof key, "%.*s", (int)(p - k0), k0);
    while (isspace((unsigned char)*p))
        p++;
    enum nb_cmp op;
    if (!parse_cmp(&p, &op))
        return nb_error_set(err, NB_EINVAL, file, line,
                            "%s: filter '%s' needs an operator (=, !=, <, <=, >, >=) "
                            "after '%s'",
                            ctx, text, key);
    int k;
    int rc = resolve_key(key, ctx, file, line, &k, err);
    if (rc)
        return rc;
    char *val = trim_dup(p, strlen(p));
    if (!val)
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    f->key = k;
    f->op = op;
    f->text = trim_dup(text, strlen(text));
    if (!f->text) {
        free(val);
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    }
    if (!*val) {
        free(val);
        nb_sum_filter_free(f);
        return nb_error_set(err, NB_EINVAL, file, line, "%s: filter '%s' has no value",
                            ctx, text);
    }
    char *dots = strstr(val, "..");
    if (dots)
        return filter_range(f, val, dots, k, op, ctx, file, line, err);
    return filter_alternatives(f, val, k, op, ctx, file, line, err);
}

/* Splits at top-level commas (not inside parentheses). */
int nb_filters_parse(const char *text, const char *ctx, const char *file,
                     int line, struct nb_sum_filter **f, int *n,
                     struct nb_error *err)
{
    *f = NULL;
    *n = 0;
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (!*p)
        return 0;
    int cap = 1;
    for (const char *q = p; *q; q++)
        cap += *q == ',';
    struct nb_sum_filter *arr = calloc((size_t)cap, sizeof *arr);
    if (!arr)
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    int cnt = 0;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char *part = trim_dup(p, len);
        if (!part) {
            nb_filters_free(arr, cnt);
            return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
        }
        int rc = nb_filter_parse(part, ctx, file, line, &arr[cnt], err);
        free(part);
        if (rc) {
            nb_filters_free(arr, cnt);
            return rc;
        }
        cnt++;
        if (!comma)
            break;
        p = comma + 1;
    }
    *f = arr;
    *n = cnt;
    return 0;
}

/* ======================================================================
 * The parser
 * ====================================================================== */

struct parser {
    const char *src;
    const char *p;
    const char *ctx;   /* "check NAME" */
    const char *file;
    int line;
    struct nb_error *err;
    int status;
    int depth;         /* nesting of unary operators and parentheses */
};

/* Nesting deeper than this is an error, not a stack overflow (found by
 * fuzz_check). */
#define MAX_NESTING 100

/* Advances the parser past white space. */
static void skip_ws(struct parser *ps)
{
    while (isspace((unsigned char)*ps->p))
        ps->p++;
}

/* Sets the parser's first error ("FILE:LINE: CHECK: message at column N,
 * near ..." or "at the end"); returns NULL so callers can `return perr(...)`. */
__attribute__((format(printf, 2, 3))) static struct nb_check_node *
perr(struct parser *ps, const char *fmt, ...)
{
    if (ps->status)
        return NULL;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int col = (int)(ps->p - ps->src) + 1;
    if (*ps->p)
        nb_error_set(ps->err, NB_EINVAL, ps->file, ps->line, "%s: %s at column %d, near '%.30s'",
                     ps->ctx, msg, col, ps->p);
    else
        nb_error_set(ps->err, NB_EINVAL, ps->file, ps->line, "%s: %s at the end", ps->ctx,
                     msg);
    ps->status = NB_EINVAL;
    return NULL;
}

/* A zeroed node of type t, or NULL with the parser's error set. */
static struct nb_check_node *new_node(struct parser *ps, enum ntype t)
{
    struct nb_check_node *n = calloc(1, sizeof *n);
    if (!n && !ps->status) {
        nb_error_set(ps->err, NB_ENOMEM, NULL, 0, "out of memory");
        ps->status = NB_ENOMEM;
    }
    if (n) {
        n->type = t;
        n->xkey = -1000;
        n->vs = -1;
    }
    return n;
}

static struct nb_check_node *parse_expr(struct parser *ps);

/* The raw text of one argument: up to a top-level ',' or ')'. */
static char *take_arg(struct parser *ps)
{
    skip_ws(ps);
    const char *s = ps->p;
    int depth = 0;
    while (*ps->p && !(depth == 0 && (*ps->p == ',' || *ps->p == ')'))) {
        if (*ps->p == '(')
            depth++;
        else if (*ps->p == ')')
            depth--;
        ps->p++;
    }
    return trim_dup(s, (size_t)(ps->p - s));
}

/* Parses metric (malloc'd; freed here) into n->metric: 0, or -1 with the
 * error set at the check's line. */
static int take_metric(struct parser *ps, struct nb_check_node *n, char *metric)
{
    struct nb_error e2;
    nb_error_clear(&e2);
    int rc = nb_metric_parse(metric, ps->file, ps->line, &n->metric, &e2);
    free(metric);
    if (!rc)
        return 0;
    nb_error_set(ps->err, e2.status, ps->file, ps->line, "%s: %s", ps->ctx, e2.msg);
    if (e2.hint[0])
        nb_error_hint(ps->err, "%s", e2.hint);
    ps->status = e2.status;
    return -1;
}

/* The first argument of an aggregate call, its metric, into n->metric;
 * 0, or -1 with the error set (n is the caller's to free). */
static int parse_call_metric(struct parser *ps, struct nb_check_node *n, const char *name)
{
    skip_ws(ps);
    const char *arg0 = ps->p;
    while (is_ident_char((unsigned char)*ps->p))
        ps->p++;
    char *metric = trim_dup(arg0, (size_t)(ps->p - arg0));
    if (!metric) {
        perr(ps, "out of memory");
        return -1;
    }
    if (!*metric) {
        free(metric);
        perr(ps, "%s( needs a metric as its first argument", name);
        return -1;
    }
    skip_ws(ps);
    if (*ps->p != ',' && *ps->p != ')') {
        free(metric);
        perr(ps, "expected ',' or ')' after the metric");
        return -1;
    }
    if (take_metric(ps, n, metric))
        return -1;
    return 0;
}

/* rankcorr's second argument, the key its values are ranked against, into
 * n->xkey; 0, or -1 with the error set. */
static int parse_call_rankkey(struct parser *ps, struct nb_check_node *n)
{
    if (*ps->p != ',') {
        perr(ps, "rankcorr(METRIC, KEY, ...) needs a key after the metric");
        return -1;
    }
    ps->p++;
    char *key = take_arg(ps);
    if (!key) {
        perr(ps, "out of memory");
        return -1;
    }
    int k;
    if (!*key || strpbrk(key, "=<>!")) {
        free(key);
        perr(ps, "rankcorr's second argument must be a key (train.batch, step, ...)");
        return -1;
    }
    if (resolve_key(key, ps->ctx, ps->file, ps->line, &k, ps->err)) {
        free(key);
        ps->status = NB_EINVAL;
        return -1;
    }
    free(key);
    if (!(k >= 0 || k == NB_FK_STEP || k == NB_FK_EPOCH)) {
        perr(ps, "rankcorr's key must be a config key, step or epoch");
        return -1;
    }
    n->xkey = k;
    return 0;
}

/* The position of a contrast's " vs " in filter text t (the word vs
 * between white space), or NULL. */
static const char *find_vs(const char *t)
{
    for (const char *q = strstr(t, "vs"); q; q = strstr(q + 1, "vs"))
        if (q > t && isspace((unsigned char)q[-1]) &&
            (isspace((unsigned char)q[2]) || !q[2]))
            return q;
    return NULL;
}

/* largest's and smallest's first two arguments, KEY, METRIC OP NUMBER:
 * the key into n->xkey (a numeric config key), the per-run condition into
 * n->metric (a per-run scalar), n->pop and n->pval; 0, or -1 with the
 * error set (n is the caller's to free). */
static int parse_call_extreme(struct parser *ps, struct nb_check_node *n, const char *name)
{
    const char *k0 = ps->p;
    char *key = take_arg(ps);
    if (!key) {
        perr(ps, "out of memory");
        return -1;
    }
    if (!*key || strpbrk(key, "=<>!")) {
        free(key);
        ps->p = k0;
        perr(ps, "%s(KEY, METRIC OP NUMBER, ...) needs a key as its first argument", name);
        return -1;
    }
    int k;
    if (resolve_key(key, ps->ctx, ps->file, ps->line, &k, ps->err)) {
        free(key);
        ps->status = NB_EINVAL;
        return -1;
    }
    free(key);
    if (k < 0 || !key_numeric(k)) {
        perr(ps, "%s's key must be a numeric config key (optim.lr, train.batch, ...)", name);
        return -1;
    }
    n->xkey = k;
    if (*ps->p != ',') {
        perr(ps, "%s(KEY, METRIC OP NUMBER, ...) needs a condition after the key", name);
        return -1;
    }
    ps->p++;
    skip_ws(ps);
    const char *m0 = ps->p;
    while (is_ident_char((unsigned char)*ps->p))
        ps->p++;
    char *metric = trim_dup(m0, (size_t)(ps->p - m0));
    if (!metric) {
        perr(ps, "out of memory");
        return -1;
    }
    skip_ws(ps);
    if (!*metric || !parse_cmp(&ps->p, &n->pop)) {
        free(metric);
        perr(ps, "%s's condition must be METRIC OP NUMBER (final_test_error <= 20)", name);
        return -1;
    }
    if (take_metric(ps, n, metric))
        return -1;
    if (n->metric.kind != NB_MK_SCALAR) {
        ps->p = m0;
        perr(ps, "%s's condition needs a per-run scalar (final_test_error, diverged, ...), "
                 "not %s",
             name, n->metric.text);
        return -1;
    }
    skip_ws(ps);
    char *end;
    errno = 0;
    n->pval = strtod(ps->p, &end);
    if (end == ps->p || !isfinite(n->pval)) {
        perr(ps, "%s's condition needs a number after %s", name, nb_cmp_str(n->pop));
        return -1;
    }
    ps->p = end;
    skip_ws(ps);
    if (*ps->p != ',' && *ps->p != ')') {
        perr(ps, "expected ',' or ')' after %s's condition", name);
        return -1;
    }
    return 0;
}

/* above's key and its two values (", KEY, A, B" after the metric): the
 * texts KEY=A and KEY=B into fa and fb (malloc'd, the key by its full
 * name, each value checked against the key table by the caller's filter
 * parse); 0, or -1 with the error set. */
static int parse_call_pair(struct parser *ps, char **fa, char **fb)
{
    char *part[3] = {NULL, NULL, NULL};
    static const char *const what[3] = {"a key", "the first group's value",
                                        "the second group's value"};
    for (int i = 0; i < 3; i++) {
        if (*ps->p != ',') {
            for (int j = 0; j < i; j++)
                free(part[j]);
            perr(ps, "above(METRIC, KEY, A, B, ...) needs %s here", what[i]);
            return -1;
        }
        ps->p++;
        const char *a0 = ps->p;
        part[i] = take_arg(ps);
        if (!part[i] || !*part[i] || strpbrk(part[i], "=<>!|")) {
            bool oom = !part[i];
            for (int j = 0; j <= i; j++)
                free(part[j]);
            ps->p = a0;
            perr(ps, oom ? "out of memory"
                         : "above(METRIC, KEY, A, B, ...) needs %s here (a plain value)",
                 what[i]);
            return -1;
        }
    }
    int k;
    int rc = resolve_key(part[0], ps->ctx, ps->file, ps->line, &k, ps->err);
    if (rc || k < 0) {
        if (rc)
            ps->status = rc;
        else
            perr(ps, "above's key must be a config key (norm.type, optim.lr, ...), not '%s'",
                 part[0]);
        for (int j = 0; j < 3; j++)
            free(part[j]);
        return -1;
    }
    const struct nb_key *key = nb_key_at(k);
    size_t la = strlen(key->section) + strlen(key->key) + strlen(part[1]) + 3;
    size_t lb = strlen(key->section) + strlen(key->key) + strlen(part[2]) + 3;
    *fa = malloc(la);
    *fb = malloc(lb);
    if (*fa)
        snprintf(*fa, la, "%s.%s=%s", key->section, key->key, part[1]);
    if (*fb)
        snprintf(*fb, lb, "%s.%s=%s", key->section, key->key, part[2]);
    for (int j = 0; j < 3; j++)
        free(part[j]);
    if (!*fa || !*fb) {
        free(*fa), free(*fb);
        *fa = *fb = NULL;
        perr(ps, "out of memory");
        return -1;
    }
    return 0;
}

/* Appends the filter text to the list f of *nf filters; 0, or -1 with the
 * error set. */
static int append_filter(struct parser *ps, struct nb_sum_filter **f, int *nf, const char *text)
{
    struct nb_sum_filter *g = realloc(*f, (size_t)(*nf + 1) * sizeof *g);
    if (!g) {
        perr(ps, "out of memory");
        return -1;
    }
    *f = g;
    int rc = nb_filter_parse(text, ps->ctx, ps->file, ps->line, &g[*nf], ps->err);
    if (rc) {
        ps->status = rc;
        return -1;
    }
    (*nf)++;
    return 0;
}

/* above's two filter lists from the call's filters (n->f) and KEY=A /
 * KEY=B: n->f gets KEY=A, n->f2 a copy of the call's filters and KEY=B;
 * 0, or -1 with the error set. */
static int above_filters(struct parser *ps, struct nb_check_node *n, const char *fa,
                         const char *fb)
{
    int common = n->nf;
    for (int i = 0; i < common; i++)
        if (append_filter(ps, &n->f2, &n->nf2, n->f[i].text))
            return -1;
    if (append_filter(ps, &n->f, &n->nf, fa) || append_filter(ps, &n->f2, &n->nf2, fb))
        return -1;
    return 0;
}

/* A contrast filter "KEY=A vs B" (text ft, the call's filter i) into
 * n->f[i] (KEY=A), remembering B's text in *b_text: 0, or -1 with the
 * error set. */
static int parse_contrast(struct parser *ps, struct nb_check_node *n, const char *ft,
                          const char *vs, char **b_text)
{
    if (n->vs >= 0) {
        perr(ps, "one contrast (KEY=A vs B) per call");
        return -1;
    }
    const char *eq = strchr(ft, '=');
    char *a = trim_dup(ft, (size_t)(vs - ft));
    char *b = trim_dup(vs + 2, strlen(vs + 2));
    if (!a || !b) {
        free(a), free(b);
        perr(ps, "out of memory");
        return -1;
    }
    size_t klen = eq ? (size_t)(eq - ft) : 0;
    bool bad = !eq || eq > vs || strpbrk(ft, "<>!") || eq[1] == '=' || !*b ||
               strpbrk(a + klen + 1, "|") || strstr(a, "..") || strpbrk(b, "|=<>!") ||
               strstr(b, "..") || find_vs(b);
    if (bad) {
        free(a), free(b);
        nb_error_set(ps->err, NB_EINVAL, ps->file, ps->line,
                     "%s: a contrast is KEY=A vs B with one value on each side, not '%s'",
                     ps->ctx, ft);
        ps->status = NB_EINVAL;
        return -1;
    }
    int rc = nb_filter_parse(a, ps->ctx, ps->file, ps->line, &n->f[n->nf], ps->err);
    free(a);
    if (rc) {
        free(b);
        ps->status = rc;
        return -1;
    }
    if (n->f[n->nf].key < 0) {
        nb_sum_filter_free(&n->f[n->nf]);
        free(b);
        nb_error_set(ps->err, NB_EINVAL, ps->file, ps->line,
                     "%s: a contrast compares groups: its key must be a config key, not "
                     "'%.*s'", ps->ctx, (int)klen, ft);
        ps->status = NB_EINVAL;
        return -1;
    }
    /* B's text: KEY=B */
    *b_text = malloc(klen + strlen(b) + 2);
    if (!*b_text) {
        nb_sum_filter_free(&n->f[n->nf]);
        free(b);
        perr(ps, "out of memory");
        return -1;
    }
    sprintf(*b_text, "%.*s=%s", (int)klen, ft, b);
    free(b);
    n->vs = n->nf;
    return 0;
}

/* The B side of a contrast: n->f with KEY=B (b_text) at index n->vs,
 * into n->fb; 0, or -1 with the error set. */
static int contrast_b_side(struct parser *ps, struct nb_check_node *n, const char *b_text)
{
    n->fb = calloc((size_t)n->nf, sizeof *n->fb);
    if (!n->fb) {
        perr(ps, "out of memory");
        return -1;
    }
    for (int i = 0; i < n->nf; i++) {
        int rc = nb_filter_parse(i == n->vs ? b_text : n->f[i].text, ps->ctx, ps->file,
                                 ps->line, &n->fb[i], ps->err);
        if (rc) {
            for (int j = 0; j < i; j++)
                nb_sum_filter_free(&n->fb[j]);
            free(n->fb);
            n->fb = NULL;
            ps->status = rc;
            return -1;
        }
    }
    const struct nb_sum_filter *fa = &n->f[n->vs], *fb = &n->fb[n->vs];
    if (!strcmp(fa->vals[0], fb->vals[0])) {
        nb_error_set(ps->err, NB_EINVAL, ps->file, ps->line,
                     "%s: the contrast '%s vs %s' compares a value with itself", ps->ctx,
                     fa->text, fb->vals[0]);
        ps->status = NB_EINVAL;
        return -1;
    }
    return 0;
}

/* The call's filters (", KEY=VALUE" ...) into n->f, and with a contrast
 * (", KEY=A vs B") its B side into n->fb; 0, or -1 with the error set. */
static int parse_call_filters(struct parser *ps, struct nb_check_node *n)
{
    char *b_text = NULL;
    while (*ps->p == ',') {
        ps->p++;
        const char *fs = ps->p;
        char *ft = take_arg(ps);
        if (!ft) {
            perr(ps, "out of memory");
            return -1;
        }
        struct nb_sum_filter *nf = realloc(n->f, (size_t)(n->nf + 1) * sizeof *nf);
        if (!nf) {
            free(ft);
            perr(ps, "out of memory");
            return -1;
        }
        n->f = nf;
        if (!*ft) {
            free(ft);
            free(b_text);
            ps->p = fs;
            perr(ps, "empty filter");
            return -1;
        }
        const char *vs = find_vs(ft);
        if (vs) {
            int rc = parse_contrast(ps, n, ft, vs, &b_text);
            free(ft);
            if (rc) {
                free(b_text);
                return -1;
            }
            n->nf++;
            continue;
        }
        int rc = nb_filter_parse(ft, ps->ctx, ps->file, ps->line, &n->f[n->nf], ps->err);
        free(ft);
        if (rc) {
            free(b_text);
            ps->status = rc;
            return -1;
        }
        n->nf++;
    }
    int rc = n->vs >= 0 ? contrast_b_side(ps, n, b_text) : 0;
    free(b_text);
    return rc;
}

/* Filters and a rankcorr key that cannot apply to the call's metric are
 * parse errors: 0, or -1 with the error set. */
static int check_call_applies(struct parser *ps, const struct nb_check_node *n)
{
    for (int i = 0; i < n->nf; i++) {
        int k = n->f[i].key;
        bool probe_key = k == NB_FK_LAYER || k == NB_FK_PARAM || k == NB_FK_PARAM_VALUE;
        bool step_key = k == NB_FK_STEP || k == NB_FK_EPOCH;
        if ((probe_key && n->metric.kind != NB_MK_PROBE) ||
            (step_key && n->metric.kind == NB_MK_SCALAR)) {
            nb_error_set(ps->err, NB_EINVAL, ps->file, ps->line,
                         "%s: filter '%s' does not apply to %s (a %s)", ps->ctx,
                         n->f[i].text, n->metric.text,
                         n->metric.kind == NB_MK_SCALAR ? "per-run scalar"
                                                        : "per-step metrics column");
            ps->status = NB_EINVAL;
            return -1;
        }
    }
    if (n->agg == A_RANKCORR && (n->xkey == NB_FK_STEP || n->xkey == NB_FK_EPOCH) &&
        n->metric.kind == NB_MK_SCALAR) {
        perr(ps, "rankcorr over %s needs a per-step metric",
             n->xkey == NB_FK_STEP ? "step" : "epoch");
        return -1;
    }
    return 0;
}

/* A call NAME( ... ): abs(EXPR), or an aggregate over the runs
 * AGG(METRIC[, KEY for rankcorr][, FILTER...]).  ps->p is just after '(';
 * start is where NAME begins.  NULL with the error set on failure. */
static struct nb_check_node *parse_call(struct parser *ps, const char *name,
                                        const char *start)
{
    if (!strcmp(name, "abs")) {
        struct nb_check_node *n = new_node(ps, N_ABS);
        if (!n)
            return NULL;
        n->a = parse_expr(ps);
        skip_ws(ps);
        if (!n->a || *ps->p != ')') {
            node_free(n);
            return perr(ps, "expected ')' to close abs(");
        }
        ps->p++;
        return n;
    }
    int agg = -1;
    for (int i = 0; i < A_COUNT_; i++)
        if (!strcmp(nb_check_agg_names[i], name))
            agg = i;
    if (agg < 0) {
        const char *cands[A_COUNT_ + 1];
        for (int i = 0; i < A_COUNT_; i++)
            cands[i] = nb_check_agg_names[i];
        cands[A_COUNT_] = "abs";
        const char *near = nb_closest(name, cands, A_COUNT_ + 1);
        ps->p = start;
        perr(ps, "unknown function '%s' (at mean median min max sum std range count "
                 "first last rankcorr largest smallest above abs)",
             name);
        if (near)
            nb_error_hint(ps->err, "did you mean '%s'?", near);
        return NULL;
    }
    struct nb_check_node *n = new_node(ps, N_AGG);
    if (!n)
        return NULL;
    n->agg = agg;
    bool extreme = agg == A_LARGEST || agg == A_SMALLEST;
    char *fa = NULL, *fb = NULL;
    if ((extreme ? parse_call_extreme(ps, n, name)
                 : parse_call_metric(ps, n, name) ||
                       (agg == A_RANKCORR && parse_call_rankkey(ps, n)) ||
                       (agg == A_ABOVE && parse_call_pair(ps, &fa, &fb))) ||
        parse_call_filters(ps, n) || (agg == A_ABOVE && above_filters(ps, n, fa, fb))) {
        free(fa), free(fb);
        node_free(n);
        return NULL;
    }
    free(fa), free(fb);
    if (n->vs >= 0 && (extreme || agg == A_ABOVE)) {
        node_free(n);
        return perr(ps, "%s( takes no contrast (KEY=A vs B): it compares its own groups",
                    name);
    }
    if (*ps->p != ')') {
        node_free(n);
        return perr(ps, "expected ')' to close %s(", name);
    }
    ps->p++;
    n->text = trim_dup(start, (size_t)(ps->p - start));
    if (check_call_applies(ps, n)) {
        node_free(n);
        return NULL;
    }
    return n;
}

/* A number, a parenthesized expression or a call NAME(...). */
static struct nb_check_node *parse_primary(struct parser *ps)
{
    skip_ws(ps);
    const char *start = ps->p;
    if (*ps->p == '(') {
        ps->p++;
        struct nb_check_node *n = parse_expr(ps);
        skip_ws(ps);
        if (!n)
            return NULL;
        if (*ps->p != ')') {
            node_free(n);
            return perr(ps, "expected ')'");
        }
        ps->p++;
        return n;
    }
    if (isdigit((unsigned char)*ps->p) || *ps->p == '.') {
        char *end;
        double v = strtod(ps->p, &end);
        if (end == ps->p)
            return perr(ps, "bad number");
        ps->p = end;
        struct nb_check_node *n = new_node(ps, N_NUM);
        if (n)
            n->num = v;
        return n;
    }
    if (isalpha((unsigned char)*ps->p) || *ps->p == '_') {
        while (is_ident_char((unsigned char)*ps->p))
            ps->p++;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(ps->p - start), start);
        skip_ws(ps);
        if (*ps->p != '(') {
            ps->p = start;
            return perr(ps, "expected a number or a function call such as "
                            "mean(METRIC, KEY=VALUE), not a bare name");
        }
        ps->p++;
        return parse_call(ps, name, start);
    }
    if (!*ps->p)
        return perr(ps, "expected a number or a function call");
    return perr(ps, "unexpected character '%c'", *ps->p);
}

static struct nb_check_node *parse_unary_(struct parser *ps);

/* A unary expression, counting the nesting so a deep input is an error, not
 * a stack overflow. */
static struct nb_check_node *parse_unary(struct parser *ps)
{
    if (ps->depth >= MAX_NESTING)
        return perr(ps, "nested more than %d deep", MAX_NESTING);
    ps->depth++;
    struct nb_check_node *n = parse_unary_(ps);
    ps->depth--;
    return n;
}

/* '-' UNARY or a primary (parse_unary's body). */
static struct nb_check_node *parse_unary_(struct parser *ps)
{
    skip_ws(ps);
    if (*ps->p == '-') {
        ps->p++;
        struct nb_check_node *a = parse_unary(ps);
        if (!a)
            return NULL;
        struct nb_check_node *n = new_node(ps, N_NEG);
        if (!n) {
            node_free(a);
            return NULL;
        }
        n->a = a;
        return n;
    }
    if (*ps->p == '+')
        ps->p++;
    return parse_primary(ps);
}

/* A left-associative chain of operand (op1 | op2) operand ..., the
 * operands parsed by sub, the operators making nodes t1 and t2. */
static struct nb_check_node *parse_binary(struct parser *ps,
                                          struct nb_check_node *(*sub)(struct parser *),
                                          char op1, enum ntype t1, char op2, enum ntype t2)
{
    struct nb_check_node *l = sub(ps);
    while (l) {
        skip_ws(ps);
        enum ntype t;
        if (*ps->p == op1)
            t = t1;
        else if (*ps->p == op2)
            t = t2;
        else
            break;
        ps->p++;
        struct nb_check_node *r = sub(ps);
        if (!r) {
            node_free(l);
            return NULL;
        }
        struct nb_check_node *n = new_node(ps, t);
        if (!n) {
            node_free(l);
            node_free(r);
            return NULL;
        }
        n->a = l;
        n->b = r;
        l = n;
    }
    return l;
}

/* Products and quotients of unary expressions. */
static struct nb_check_node *parse_term(struct parser *ps)
{
    return parse_binary(ps, parse_unary, '*', N_MUL, '/', N_DIV);
}

/* Sums and differences of terms: a whole expression. */
static struct nb_check_node *parse_expr(struct parser *ps)
{
    return parse_binary(ps, parse_term, '+', N_ADD, '-', N_SUB);
}

bool nb_check_node_has_agg(const struct nb_check_node *n)
{
    return n && (n->type == N_AGG || nb_check_node_has_agg(n->a) || nb_check_node_has_agg(n->b));
}

int nb_check_parse(const char *name, const char *text, const char *file,
                   int line, struct nb_check *c, struct nb_error *err)
{
    memset(c, 0, sizeof *c);
    char ctx[200];
    snprintf(ctx, sizeof ctx, "check %s", name);
    struct parser ps = {.src = text, .p = text, .ctx = ctx, .file = file, .line = line,
                        .err = err};
    c->name = strdup(name);
    c->text = trim_dup(text, strlen(text));
    c->file = strdup(file ? file : "");
    c->line = line;
    if (!c->name || !c->text || !c->file) {
        nb_check_free(c);
        return nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
    }
    skip_ws(&ps);
    if (!*ps.p) {
        nb_check_free(c);
        return nb_error_set(err, NB_EINVAL, file, line, "%s: empty statement", ctx);
    }
    c->lhs = parse_expr(&ps);
    if (c->lhs) {
        skip_ws(&ps);
        const char *p = ps.p;
        if (!strncmp(p, "<=", 2))
            c->op = NB_CMP_LE, ps.p += 2;
        else if (!strncmp(p, ">=", 2))
            c->op = NB_CMP_GE, ps.p += 2;
        else if (!strncmp(p, "==", 2))
            c->op = NB_CMP_EQ, ps.p += 2;
        else if (!strncmp(p, "!=", 2))
            c->op = NB_CMP_NE, ps.p += 2;
        else if (*p == '<')
            c->op = NB_CMP_LT, ps.p++;
        else if (*p == '>')
            c->op = NB_CMP_GT, ps.p++;
        else if (*p == '=')
            perr(&ps, "use '==' to compare for equality");
        else
            perr(&ps, "expected a comparison (<, <=, >, >=, ==, !=)");
        if (!ps.status) {
            c->rhs = parse_expr(&ps);
            skip_ws(&ps);
            if (c->rhs && *ps.p) {
                if (strchr("<>=!", *ps.p))
                    perr(&ps, "only one comparison per check");
                else
                    perr(&ps, "unexpected text after the statement");
            }
        }
    }
    if (!ps.status && !nb_check_node_has_agg(c->lhs) && !nb_check_node_has_agg(c->rhs))
        perr(&ps, "the statement measures nothing (no function over a metric)");
    if (ps.status) {
        nb_check_free(c);
        return ps.status;
    }
    return 0;
}

