/* src/analyze/check.c - see check.h. */
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

/* ======================================================================
 * AST
 * ====================================================================== */

enum ntype { N_NUM, N_NEG, N_ADD, N_SUB, N_MUL, N_DIV, N_ABS, N_AGG };

enum agg {
    A_AT = 0, A_MEAN, A_MEDIAN, A_MIN, A_MAX, A_SUM, A_STD, A_RANGE, A_COUNT,
    A_FIRST, A_LAST, A_RANKCORR, A_COUNT_
};
static const char *const agg_names[A_COUNT_] = {
    "at", "mean", "median", "min", "max", "sum", "std", "range", "count",
    "first", "last", "rankcorr"};

struct nb_check_node {
    enum ntype type;
    double num;
    struct nb_check_node *a, *b;
    int agg;
    struct nb_metric metric;
    int xkey;                 /* rankcorr: config key, NB_FK_STEP or NB_FK_EPOCH */
    struct nb_sum_filter *f;
    int nf;
    char *text;               /* the call as written */
    struct nb_sum_prepared *prep; /* during the bootstrap: its points */
};

static void node_free(struct nb_check_node *n)
{
    if (!n)
        return;
    node_free(n->a);
    node_free(n->b);
    nb_metric_free(&n->metric);
    nb_filters_free(n->f, n->nf);
    nb_summary_prepared_free(n->prep);
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

static bool is_ident_char(int c)
{
    return isalnum(c) || c == '_' || c == '.';
}

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
        for (int i = 0; i < nb_n_keys; i++)
            if (!strcmp(nb_keys[i].key, name))
                n += (size_t)snprintf(alts + n, n < sizeof alts ? sizeof alts - n : 0,
                                      "%s%s.%s", n ? " or " : "", nb_keys[i].section,
                                      nb_keys[i].key);
        return nb_error_set(err, NB_EINVAL, file, line, "%s: ambiguous key '%s' (%s)",
                            ctx, name, alts);
    }
    nb_error_set(err, NB_EINVAL, file, line, "%s: unknown key '%s'", ctx, name);
    const char *cands[512];
    char full[512][96];
    int nc = 0;
    for (int i = 0; i < nb_n_keys && nc < 500; i++) {
        snprintf(full[nc], sizeof full[nc], "%s.%s", nb_keys[i].section, nb_keys[i].key);
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

static bool key_numeric(int key)
{
    if (key == NB_FK_STEP || key == NB_FK_EPOCH || key == NB_FK_PARAM_VALUE)
        return true;
    if (key < 0)
        return false;
    return nb_keys[key].type == NB_KEY_INT || nb_keys[key].type == NB_KEY_FLOAT;
}

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
    if (!strncmp(p, "<=", 2))
        op = NB_CMP_LE, p += 2;
    else if (!strncmp(p, ">=", 2))
        op = NB_CMP_GE, p += 2;
    else if (!strncmp(p, "!=", 2))
        op = NB_CMP_NE, p += 2;
    else if (!strncmp(p, "==", 2))
        op = NB_CMP_EQ, p += 2;
    else if (*p == '=')
        op = NB_CMP_EQ, p++;
    else if (*p == '<')
        op = NB_CMP_LT, p++;
    else if (*p == '>')
        op = NB_CMP_GT, p++;
    else
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
    if (dots) {
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
    /* alternatives */
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
            if (nb_key_canon(&nb_keys[k], v, file, line, &canon, &e2)) {
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

static void skip_ws(struct parser *ps)
{
    while (isspace((unsigned char)*ps->p))
        ps->p++;
}

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

static struct nb_check_node *parse_call(struct parser *ps, const char *name,
                                        const char *start)
{
    /* ps->p is just after '(' */
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
        if (!strcmp(agg_names[i], name))
            agg = i;
    if (agg < 0) {
        const char *cands[A_COUNT_ + 1];
        for (int i = 0; i < A_COUNT_; i++)
            cands[i] = agg_names[i];
        cands[A_COUNT_] = "abs";
        const char *near = nb_closest(name, cands, A_COUNT_ + 1);
        ps->p = start;
        perr(ps, "unknown function '%s' (at mean median min max sum std range count "
                 "first last rankcorr abs)",
             name);
        if (near)
            nb_error_hint(ps->err, "did you mean '%s'?", near);
        return NULL;
    }
    struct nb_check_node *n = new_node(ps, N_AGG);
    if (!n)
        return NULL;
    n->agg = agg;
    skip_ws(ps);
    const char *arg0 = ps->p;
    while (is_ident_char((unsigned char)*ps->p))
        ps->p++;
    char *metric = trim_dup(arg0, (size_t)(ps->p - arg0));
    if (!metric) {
        node_free(n);
        return perr(ps, "out of memory");
    }
    if (!*metric) {
        free(metric);
        node_free(n);
        return perr(ps, "%s( needs a metric as its first argument", name);
    }
    skip_ws(ps);
    if (*ps->p != ',' && *ps->p != ')') {
        free(metric);
        node_free(n);
        return perr(ps, "expected ',' or ')' after the metric");
    }
    struct nb_error e2;
    nb_error_clear(&e2);
    if (nb_metric_parse(metric, ps->file, ps->line, &n->metric, &e2)) {
        free(metric);
        node_free(n);
        nb_error_set(ps->err, e2.status, ps->file, ps->line, "%s: %s", ps->ctx, e2.msg);
        if (e2.hint[0])
            nb_error_hint(ps->err, "%s", e2.hint);
        ps->status = e2.status;
        return NULL;
    }
    free(metric);
    if (agg == A_RANKCORR) {
        if (*ps->p != ',') {
            node_free(n);
            return perr(ps, "rankcorr(METRIC, KEY, ...) needs a key after the metric");
        }
        ps->p++;
        char *key = take_arg(ps);
        if (!key) {
            node_free(n);
            return perr(ps, "out of memory");
        }
        int k;
        if (!*key || strpbrk(key, "=<>!")) {
            free(key);
            node_free(n);
            return perr(ps, "rankcorr's second argument must be a key (train.batch, step, ...)");
        }
        if (resolve_key(key, ps->ctx, ps->file, ps->line, &k, ps->err)) {
            free(key);
            node_free(n);
            ps->status = NB_EINVAL;
            return NULL;
        }
        free(key);
        if (!(k >= 0 || k == NB_FK_STEP || k == NB_FK_EPOCH)) {
            node_free(n);
            return perr(ps, "rankcorr's key must be a config key, step or epoch");
        }
        n->xkey = k;
    }
    while (*ps->p == ',') {
        ps->p++;
        const char *fs = ps->p;
        char *ft = take_arg(ps);
        if (!ft) {
            node_free(n);
            return perr(ps, "out of memory");
        }
        struct nb_sum_filter *nf = realloc(n->f, (size_t)(n->nf + 1) * sizeof *nf);
        if (!nf) {
            free(ft);
            node_free(n);
            return perr(ps, "out of memory");
        }
        n->f = nf;
        if (!*ft) {
            free(ft);
            node_free(n);
            ps->p = fs;
            return perr(ps, "empty filter");
        }
        int rc = nb_filter_parse(ft, ps->ctx, ps->file, ps->line, &n->f[n->nf], ps->err);
        free(ft);
        if (rc) {
            ps->status = rc;
            node_free(n);
            return NULL;
        }
        n->nf++;
    }
    if (*ps->p != ')') {
        node_free(n);
        return perr(ps, "expected ')' to close %s(", name);
    }
    ps->p++;
    n->text = trim_dup(start, (size_t)(ps->p - start));
    /* filters that cannot apply to the metric are parse errors */
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
            node_free(n);
            return NULL;
        }
    }
    if (agg == A_RANKCORR && (n->xkey == NB_FK_STEP || n->xkey == NB_FK_EPOCH) &&
        n->metric.kind == NB_MK_SCALAR) {
        const char *what = n->xkey == NB_FK_STEP ? "step" : "epoch";
        node_free(n);
        return perr(ps, "rankcorr over %s needs a per-step metric", what);
    }
    return n;
}

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

static struct nb_check_node *parse_unary(struct parser *ps)
{
    if (ps->depth >= MAX_NESTING)
        return perr(ps, "nested more than %d deep", MAX_NESTING);
    ps->depth++;
    struct nb_check_node *n = parse_unary_(ps);
    ps->depth--;
    return n;
}

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

static struct nb_check_node *parse_term(struct parser *ps)
{
    return parse_binary(ps, parse_unary, '*', N_MUL, '/', N_DIV);
}

static struct nb_check_node *parse_expr(struct parser *ps)
{
    return parse_binary(ps, parse_term, '+', N_ADD, '-', N_SUB);
}

static bool contains_agg(const struct nb_check_node *n)
{
    return n && (n->type == N_AGG || contains_agg(n->a) || contains_agg(n->b));
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
    if (!ps.status && !contains_agg(c->lhs) && !contains_agg(c->rhs))
        perr(&ps, "the statement measures nothing (no function over a metric)");
    if (ps.status) {
        nb_check_free(c);
        return ps.status;
    }
    return 0;
}

/* ======================================================================
 * Evaluation
 * ====================================================================== */

struct evalctx {
    const struct nb_summary *s;
    int mode;
    const double *w; /* replicate weights (a bootstrap resample), or NULL */
    struct nb_error *err;
};

static int eval_agg(const struct nb_check_node *n, struct evalctx *ec, double *out)
{
    struct nb_sum_point *pts;
    size_t np;
    int rc = ec->w && n->prep ? nb_summary_select_prepared(ec->s, n->prep, ec->w, &pts, &np,
                                                           ec->err)
             : ec->w ? nb_summary_select_w(ec->s, &n->metric, n->f, n->nf, ec->w, &pts, &np,
                                           ec->err)
                     : nb_summary_select(ec->s, &n->metric, n->f, n->nf, ec->mode, &pts, &np,
                                         ec->err);
    if (rc)
        return rc;
    if (n->agg == A_COUNT) {
        *out = (double)np;
        free(pts);
        return 0;
    }
    if (np == 0) {
        free(pts);
        return nb_error_set(ec->err, NB_ENOENT, NULL, 0, "%s selects no values", n->text);
    }
    if (n->agg == A_AT && np != 1) {
        char groups[300] = "";
        size_t len = 0;
        int shown = 0, last = -1;
        for (size_t i = 0; i < np && shown < 4; i++)
            if (pts[i].group != last) {
                last = pts[i].group;
                len += (size_t)snprintf(groups + len, len < sizeof groups ? sizeof groups - len : 0,
                                        "%s'%s'", shown ? ", " : "",
                                        ec->s->groups[pts[i].group].label);
                shown++;
            }
        free(pts);
        return nb_error_set(ec->err, NB_EINVAL, NULL, 0,
                            "%s selects %zu values, not one (groups %s%s); add filters",
                            n->text, np, groups, shown >= 4 ? ", ..." : "");
    }
    double *v = malloc(np * sizeof *v);
    double *x = malloc(np * sizeof *x);
    if (!v || !x) {
        free(v), free(x), free(pts);
        return nb_error_set(ec->err, NB_ENOMEM, NULL, 0, "out of memory");
    }
    for (size_t i = 0; i < np; i++)
        v[i] = pts[i].value;
    double mean, sd, mn, mx, med;
    switch (n->agg) {
    case A_AT: *out = v[0]; break;
    case A_FIRST: *out = v[0]; break;
    case A_LAST: *out = v[np - 1]; break;
    case A_SUM: {
        double t = 0;
        for (size_t i = 0; i < np; i++)
            t += v[i];
        *out = t;
        break;
    }
    case A_RANKCORR: {
        size_t k = 0;
        for (size_t i = 0; i < np; i++) {
            double xv;
            if (n->xkey == NB_FK_STEP)
                xv = (double)pts[i].step;
            else if (n->xkey == NB_FK_EPOCH)
                xv = pts[i].epoch;
            else {
                char *end;
                const char *t = nb_summary_group_val(ec->s, pts[i].group, n->xkey);
                xv = strtod(t, &end);
                if (end == t || *end) {
                    free(v), free(x), free(pts);
                    return nb_error_set(ec->err, NB_EINVAL, NULL, 0,
                                        "%s: key value '%s' is not a number", n->text, t);
                }
            }
            if (isfinite(xv)) {
                x[k] = xv;
                v[k] = pts[i].value;
                k++;
            }
        }
        if (k < 3) {
            free(v), free(x), free(pts);
            return nb_error_set(ec->err, NB_ENOENT, NULL, 0,
                                "%s needs at least 3 values, has %zu", n->text, k);
        }
        double *work = malloc(2 * k * sizeof *work);
        if (!work) {
            free(v), free(x), free(pts);
            return nb_error_set(ec->err, NB_ENOMEM, NULL, 0, "out of memory");
        }
        /* Spearman's rho with average ranks for ties; NaN when one side
         * is constant */
        bool xc = true, vc = true;
        for (size_t i = 1; i < k; i++)
            xc &= x[i] == x[0], vc &= v[i] == v[0];
        *out = xc || vc ? NAN : gsl_stats_spearman(x, 1, v, 1, k, work);
        free(work);
        break;
    }
    default:
        nb_stats(v, np, &mean, &sd, &mn, &mx, &med);
        switch (n->agg) {
        case A_MEAN: *out = mean; break;
        case A_MEDIAN: *out = med; break;
        case A_MIN: *out = mn; break;
        case A_MAX: *out = mx; break;
        case A_STD: *out = sd; break;
        case A_RANGE: *out = mx - mn; break;
        default: *out = NAN; break;
        }
    }
    free(v), free(x), free(pts);
    return 0;
}

static int eval_node(const struct nb_check_node *n, struct evalctx *ec, double *out)
{
    double a = 0, b = 0;
    int rc;
    switch (n->type) {
    case N_NUM:
        *out = n->num;
        return 0;
    case N_AGG:
        return eval_agg(n, ec, out);
    case N_NEG:
    case N_ABS:
        if ((rc = eval_node(n->a, ec, &a)))
            return rc;
        *out = n->type == N_NEG ? -a : fabs(a);
        return 0;
    default:
        break;
    }
    if ((rc = eval_node(n->a, ec, &a)) || (rc = eval_node(n->b, ec, &b)))
        return rc;
    switch (n->type) {
    case N_ADD: *out = a + b; break;
    case N_SUB: *out = a - b; break;
    case N_MUL: *out = a * b; break;
    case N_DIV:
        if (b == 0)
            return nb_error_set(ec->err, NB_ERANGE, NULL, 0, "division by zero (%g / 0)", a);
        *out = a / b;
        break;
    default: *out = NAN; break;
    }
    return 0;
}

static bool compare(double a, enum nb_cmp op, double b)
{
    switch (op) {
    case NB_CMP_EQ: return a == b;
    case NB_CMP_NE: return a != b;
    case NB_CMP_LT: return a < b;
    case NB_CMP_LE: return a <= b;
    case NB_CMP_GT: return a > b;
    case NB_CMP_GE: return a >= b;
    default: return false;
    }
}

static int eval_sides(const struct nb_check *c, struct evalctx *ec, double *lhs, double *rhs,
                      bool *holds)
{
    *lhs = *rhs = NAN;
    *holds = false;
    int rc = eval_node(c->lhs, ec, lhs);
    if (!rc)
        rc = eval_node(c->rhs, ec, rhs);
    if (rc)
        return rc;
    if (isnan(*lhs) || isnan(*rhs))
        return nb_error_set(ec->err, NB_ERANGE, NULL, 0, "the statement evaluates to NaN");
    *holds = compare(*lhs, c->op, *rhs);
    return 0;
}

int nb_check_eval_mode(const struct nb_check *c, const struct nb_summary *s,
                       int mode, double *lhs, double *rhs, bool *holds,
                       struct nb_error *err)
{
    struct evalctx ec = {.s = s, .mode = mode, .err = err};
    return eval_sides(c, &ec, lhs, rhs, holds);
}

bool nb_check_effect_is_diff(const struct nb_check *c)
{
    return contains_agg(c->rhs);
}

/* The effect of one evaluation (see check.h). */
static double effect_of(const struct nb_check *c, double lhs, double rhs)
{
    return nb_check_effect_is_diff(c) ? lhs - rhs : lhs;
}

/* Prepares (or, with s NULL, frees) the selections of every aggregate of
 * the tree for the bootstrap's repeated evaluations; a selection that
 * cannot be prepared is left to the plain path. */
static void prepare_tree(struct nb_check_node *n, const struct nb_summary *s)
{
    if (!n)
        return;
    if (n->type == N_AGG) {
        nb_summary_prepared_free(n->prep);
        n->prep = NULL;
        if (s) {
            struct nb_error e;
            nb_error_clear(&e);
            if (nb_summary_select_prepare(s, &n->metric, n->f, n->nf, &n->prep, &e))
                n->prep = NULL;
        }
    }
    prepare_tree(n->a, s);
    prepare_tree(n->b, s);
}

static const char *const outcome_names[NB_OUT_COUNT] = {"pass", "fail", "inconclusive",
                                                        "n/a"};

const char *nb_outcome_name(int o)
{
    return o >= 0 && o < NB_OUT_COUNT ? outcome_names[o] : "?";
}

void nb_check_result_free(struct nb_check_result *r)
{
    if (!r)
        return;
    free(r->rep_lhs);
    free(r->rep_rhs);
    free(r->rep_holds);
    memset(r, 0, sizeof *r);
}

/* Are the groups paired: does replicate k have the same seed in every
 * group that has it? */
static bool seeds_paired(const struct nb_summary *s)
{
    for (int k = 0; k < s->max_reps; k++) {
        bool have = false;
        unsigned long long seed = 0;
        for (int g = 0; g < s->n_groups; g++) {
            const struct nb_sum_group *G = &s->groups[g];
            if (k >= G->n_runs)
                continue;
            unsigned long long sk = s->runs[G->runs[k]].seed;
            if (have && sk != seed)
                return false;
            have = true;
            seed = sk;
        }
    }
    return true;
}

int nb_check_eval(const struct nb_check *c, const struct nb_summary *s,
                  struct nb_check_result *r, struct nb_error *err)
{
    memset(r, 0, sizeof *r);
    r->n_reps = s->max_reps;
    r->effect = r->lo = r->hi = r->threshold = NAN;
    size_t n = (size_t)(r->n_reps > 0 ? r->n_reps : 1);
    r->rep_lhs = malloc(n * sizeof *r->rep_lhs);
    r->rep_rhs = malloc(n * sizeof *r->rep_rhs);
    r->rep_holds = malloc(n * sizeof *r->rep_holds);
    size_t nw = (size_t)s->n_groups * (size_t)(s->max_reps > 0 ? s->max_reps : 1);
    double *w = malloc((nw ? nw : 1) * sizeof *w);
    double *boot = malloc(NB_CHECK_N_BOOT * sizeof *boot);
    int *cnt = malloc(n * sizeof *cnt);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    int rc = 0;
    if (!r->rep_lhs || !r->rep_rhs || !r->rep_holds || !w || !boot || !cnt || !rng) {
        rc = nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
        goto out;
    }
    struct nb_error e;
    nb_error_clear(&e);
    bool holds;
    struct evalctx ec = {.s = s, .mode = NB_SEL_MEAN, .err = &e};
    int rm = eval_sides(c, &ec, &r->lhs, &r->rhs, &holds);
    if (rm == NB_ENOMEM) {
        rc = nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
        goto out;
    }
    if (rm)
        snprintf(r->why, sizeof r->why, "%.590s", e.msg);
    /* the old per-seed evaluation: every group's k-th seed alone */
    for (int k = 0; k < r->n_reps; k++) {
        bool h;
        nb_error_clear(&e);
        ec.mode = k;
        int rk = eval_sides(c, &ec, &r->rep_lhs[k], &r->rep_rhs[k], &h);
        if (rk == NB_ENOMEM) {
            rc = nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
            goto out;
        }
        r->rep_holds[k] = rk ? -1 : h;
        r->n_hold += !rk && h;
        r->n_fail += !rk && !h;
        r->n_na += rk != 0;
    }
    r->n = r->n_hold + r->n_fail;
    r->paired = seeds_paired(s);
    if (rm) {
        r->outcome = NB_OUT_NA;
        goto out;
    }
    r->effect = effect_of(c, r->lhs, r->rhs);
    r->threshold = nb_check_effect_is_diff(c) ? 0.0 : r->rhs;
    if (c->op == NB_CMP_EQ || c->op == NB_CMP_NE) {
        r->outcome = NB_OUT_NA;
        snprintf(r->why, sizeof r->why,
                 "%s cannot be decided by an interval; state an equivalence as "
                 "abs(A - B) <= MARGIN",
                 nb_cmp_str(c->op));
        goto out;
    }
    if (r->n < 2) {
        r->outcome = NB_OUT_NA;
        snprintf(r->why, sizeof r->why,
                 "an interval needs at least 2 seeds on which the statement can be "
                 "evaluated (has %d)",
                 r->n);
        goto out;
    }
    /* The bootstrap over seeds: resample the replicates with replacement
     * (the same draw for every group when the groups share their seeds),
     * evaluate the whole statement on the weighted means. */
    gsl_rng_set(rng, (unsigned long)(nb_text_hash(NB_TEXT_HASH_SEED, c->name, strlen(c->name)) ^
                                      0x9e3779b97f4a7c15ULL));
    prepare_tree(c->lhs, s);
    prepare_tree(c->rhs, s);
    int nb = 0, bad = 0;
    for (int b = 0; b < NB_CHECK_N_BOOT; b++) {
        if (r->paired) {
            for (size_t k = 0; k < n; k++)
                cnt[k] = 0;
            for (int k = 0; k < s->max_reps; k++)
                cnt[gsl_rng_uniform_int(rng, (unsigned long)s->max_reps)]++;
            for (int g = 0; g < s->n_groups; g++)
                for (int k = 0; k < s->max_reps; k++)
                    w[(size_t)g * (size_t)s->max_reps + (size_t)k] = cnt[k];
        } else {
            for (int g = 0; g < s->n_groups; g++) {
                int ng = s->groups[g].n_runs;
                double *wg = w + (size_t)g * (size_t)s->max_reps;
                for (int k = 0; k < s->max_reps; k++)
                    wg[k] = 0;
                for (int k = 0; k < ng; k++)
                    wg[gsl_rng_uniform_int(rng, (unsigned long)ng)] += 1;
            }
        }
        double l, rr;
        bool h;
        nb_error_clear(&e);
        struct evalctx eb = {.s = s, .mode = NB_SEL_MEAN, .w = w, .err = &e};
        int rb = eval_sides(c, &eb, &l, &rr, &h);
        if (rb == NB_ENOMEM) {
            rc = nb_error_set(err, NB_ENOMEM, NULL, 0, "out of memory");
            goto out;
        }
        if (rb || !isfinite(effect_of(c, l, rr)))
            bad++;
        else
            boot[nb++] = effect_of(c, l, rr);
    }
    r->n_boot = nb;
    if (bad * 10 > NB_CHECK_N_BOOT) {
        r->outcome = NB_OUT_NA;
        snprintf(r->why, sizeof r->why,
                 "the statement cannot be evaluated on %d of %d resamples of the seeds (%.400s)",
                 bad, NB_CHECK_N_BOOT, e.msg);
        goto out;
    }
    /* Hesterberg's expanded percentile interval: the percentile
     * bootstrap's tails taken at the level a t-interval would use, with
     * the sqrt(n/(n-1)) widening, which corrects the percentile
     * interval's narrowness with few seeds. */
    double nn = (double)r->n;
    double tq = gsl_cdf_tdist_Pinv(1 - (1 - NB_CHECK_CI_LEVEL) / 2, nn - 1);
    double a2 = gsl_cdf_ugaussian_P(-sqrt(nn / (nn - 1)) * tq);
    gsl_sort(boot, 1, (size_t)nb);
    r->lo = gsl_stats_quantile_from_sorted_data(boot, 1, (size_t)nb, a2);
    r->hi = gsl_stats_quantile_from_sorted_data(boot, 1, (size_t)nb, 1 - a2);
    bool below = c->op == NB_CMP_LT || c->op == NB_CMP_LE; /* the claim: effect < thr */
    bool on_side = below ? (c->op == NB_CMP_LT ? r->hi < r->threshold : r->hi <= r->threshold)
                         : (c->op == NB_CMP_GT ? r->lo > r->threshold : r->lo >= r->threshold);
    bool off_side = below ? (c->op == NB_CMP_LT ? r->lo >= r->threshold : r->lo > r->threshold)
                          : (c->op == NB_CMP_GT ? r->hi <= r->threshold : r->hi < r->threshold);
    if (on_side && holds)
        r->outcome = NB_OUT_PASS;
    else if (off_side && !holds)
        r->outcome = NB_OUT_FAIL;
    else {
        r->outcome = NB_OUT_INCONCLUSIVE;
        /* the interval narrows as 1/sqrt(n): the seeds at which its half
         * width would equal the distance of the effect from the threshold */
        double d = fabs(r->effect - r->threshold), h = (r->hi - r->lo) / 2;
        double need = d > 0 ? ceil(nn * (h / d) * (h / d)) : INFINITY;
        r->seeds_needed = need > 10000 || !isfinite(need) ? -1
                          : need <= nn                   ? r->n + 1
                                                         : (int)need;
    }
out:
    prepare_tree(c->lhs, NULL);
    prepare_tree(c->rhs, NULL);
    free(w);
    free(boot);
    free(cnt);
    if (rng)
        gsl_rng_free(rng);
    if (rc)
        nb_check_result_free(r);
    return rc;
}

static const char *const verdict_names[NB_VERDICT_COUNT] = {
    "reproduced", "partly reproduced", "not reproduced", "inconclusive", "no verdict"};

const char *nb_verdict_name(int v)
{
    return v >= 0 && v < NB_VERDICT_COUNT ? verdict_names[v] : "?";
}

int nb_verdict_of(const struct nb_check *c, const struct nb_check_result *r, int n,
                  bool complete)
{
    if (!complete)
        return NB_VERDICT_INCONCLUSIVE;
    int counted = 0, pass = 0, fail = 0, min_n = -1;
    bool central_fails = false;
    int central = nb_check_central(c, n);
    for (int i = 0; i < n; i++) {
        if (r[i].post_hoc)
            continue;
        counted++;
        pass += r[i].outcome == NB_OUT_PASS;
        fail += r[i].outcome == NB_OUT_FAIL;
        if (r[i].outcome != NB_OUT_NA && (min_n < 0 || r[i].n < min_n))
            min_n = r[i].n;
        central_fails |= i == central && r[i].outcome == NB_OUT_FAIL;
    }
    if (counted > 0 && min_n >= 0 && min_n < NB_VERDICT_MIN_SEEDS)
        return NB_VERDICT_NONE;
    if (counted == 0)
        return NB_VERDICT_INCONCLUSIVE;
    if (pass == counted)
        return NB_VERDICT_REPRODUCED;
    if (central_fails)
        return NB_VERDICT_NOT_REPRODUCED;
    if (pass > 0 && fail > 0)
        return NB_VERDICT_PARTLY;
    if (fail == counted)
        return NB_VERDICT_NOT_REPRODUCED;
    return NB_VERDICT_INCONCLUSIVE;
}

int nb_check_central(const struct nb_check *c, int n)
{
    for (int i = 0; i < n; i++)
        if (c[i].central)
            return i;
    return n > 0 ? 0 : -1;
}
