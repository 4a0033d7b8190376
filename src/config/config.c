/* src/config/config.c - see config.h: a config file read against the
 * key table, each value split into its sweep elements. */
#include "config/keys.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/text.h"
#include "config/selector.h"

static int is_blank(int c) { return c == ' ' || c == '\t'; }

/* ======================================================================
 * Splitting a value into sweep elements
 * ====================================================================== */

#define NB_MAX_AXIS_VALUES 100000

struct items {
    char **v;
    int *line;
    int n, cap;
};

static int items_push(struct items *it, char *s, int line)
{
    if (it->n == it->cap) {
        int cap = it->cap ? 2 * it->cap : 8;
        char **v = realloc(it->v, (size_t)cap * sizeof *v);
        if (!v)
            return NB_ENOMEM;
        it->v = v;
        int *l = realloc(it->line, (size_t)cap * sizeof *l);
        if (!l)
            return NB_ENOMEM;
        it->line = l;
        it->cap = cap;
    }
    it->v[it->n] = s;
    it->line[it->n] = line;
    it->n++;
    return 0;
}

/* items_push of a copy of s. */
static int items_push_copy(struct items *it, const char *s, int line)
{
    char *c = strdup(s);
    if (!c || items_push(it, c, line)) {
        free(c);
        return NB_ENOMEM;
    }
    return 0;
}

static void items_free(struct items *it)
{
    for (int i = 0; i < it->n; i++)
        free(it->v[i]);
    free(it->v);
    free(it->line);
    memset(it, 0, sizeof *it);
}

/* Splits s at top-level separator sep (outside parentheses) into trimmed
 * pieces; off[i] is the byte offset of piece i in s.  Returns the count,
 * or -1 on allocation failure.  The pieces point into buf (a copy). */
static int split_top(const char *s, char sep, char **buf, char ***pieces,
                     size_t **off)
{
    size_t len = strlen(s);
    int n = 1, depth = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '(')
            depth++;
        else if (s[i] == ')' && depth > 0)
            depth--;
        else if (s[i] == sep && depth == 0)
            n++;
    }
    *buf = strdup(s);
    *pieces = malloc((size_t)n * sizeof **pieces);
    *off = malloc((size_t)n * sizeof **off);
    if (!*buf || !*pieces || !*off) {
        free(*buf);
        free(*pieces);
        free(*off);
        return -1;
    }
    char *b = *buf;
    int k = 0;
    size_t start = 0;
    depth = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && b[i] == '(')
            depth++;
        else if (i < len && b[i] == ')' && depth > 0)
            depth--;
        else if (i == len || (b[i] == sep && depth == 0)) {
            b[i] = '\0';
            char *p = b + start;
            while (isspace((unsigned char)*p))
                p++;
            nb_trim_right(p);
            (*pieces)[k] = p;
            (*off)[k] = (size_t)(p - b);
            k++;
            start = i + 1;
        }
    }
    return n;
}

/* lin(a, b, n) / log(a, b, n): returns 1 when s is a generator (values
 * appended as text), 0 when it is not one, < 0 on error. */
static int expand_generator(const struct nb_key *k, const char *s,
                            const char *file, int line, struct items *out,
                            struct nb_error *err)
{
    int is_log;
    if (!strncmp(s, "lin", 3))
        is_log = 0;
    else if (!strncmp(s, "log", 3))
        is_log = 1;
    else
        return 0;
    const char *p = s + 3;
    while (is_blank((unsigned char)*p))
        p++;
    if (*p != '(')
        return 0;
    size_t len = strlen(p);
    if (p[len - 1] != ')')
        return nb_error_set(err, NB_EINVAL, file, line,
                            "malformed generator '%s' (expected %s(a, b, n))",
                            s, is_log ? "log" : "lin");
    char *args = strndup(p + 1, len - 2), *buf;
    char **pc;
    size_t *off;
    if (!args)
        return nb_error_oom(err);
    int n = split_top(args, ',', &buf, &pc, &off);
    free(args);
    if (n < 0)
        return nb_error_oom(err);
    double a = 0, b = 0;
    long long cnt = 0;
    int rc = 0;
    if (n != 3 || nb_key_parse_double(pc[0], &a) || nb_key_parse_double(pc[1], &b) ||
        nb_key_parse_ll(pc[2], &cnt))
        rc = nb_error_set(err, NB_EINVAL, file, line,
                          "malformed generator '%s' (expected %s(a, b, n) "
                          "with numbers a, b and an integer n)",
                          s, is_log ? "log" : "lin");
    else if (cnt < 2 || cnt > NB_MAX_AXIS_VALUES)
        rc = nb_error_set(err, NB_EINVAL, file, line,
                          "generator '%s': n must be in [2, %d]", s,
                          NB_MAX_AXIS_VALUES);
    else if (is_log && (a <= 0 || b <= 0))
        rc = nb_error_set(err, NB_EINVAL, file, line,
                          "generator '%s': log needs a > 0 and b > 0", s);
    free(buf);
    free(pc);
    free(off);
    if (rc)
        return rc;
    for (long long i = 0; i < cnt; i++) {
        double t = (double)i / (double)(cnt - 1), v;
        if (i == 0)
            v = a;
        else if (i == cnt - 1)
            v = b;
        else if (is_log)
            v = exp(log(a) + (log(b) - log(a)) * t);
        else
            v = a + (b - a) * t;
        char txt[64];
        if (k->type == NB_KEY_INT) {
            double r = nearbyint(v);
            if (fabs(v - r) > 1e-9 * (fabs(v) > 1 ? fabs(v) : 1))
                return nb_error_set(err, NB_EINVAL, file, line,
                                    "generator '%s' gives the non-integer "
                                    "value %.15g for integer key [%s] %s",
                                    s, v, k->section, k->key);
            snprintf(txt, sizeof txt, "%.0f", r);
        } else {
            /* round to 15 significant digits: lin(0.1, 0.5, 5) gives
             * 0.1 0.2 0.3 0.4 0.5, not 0.30000000000000004 */
            snprintf(txt, sizeof txt, "%.15g", v);
        }
        if (items_push_copy(out, txt, line))
            return nb_error_oom(err);
    }
    return 1;
}

/* a..b (integers, inclusive): 1 when s is a range, 0 when not, < 0 on
 * error. */
static int expand_range(const char *s, const char *file, int line,
                        struct items *out, struct nb_error *err)
{
    const char *dots = strstr(s, "..");
    if (!dots)
        return 0;
    char lo[64], hi[64];
    size_t nl = (size_t)(dots - s);
    if (nl == 0 || nl >= sizeof lo || strlen(dots + 2) >= sizeof hi)
        return 0;
    memcpy(lo, s, nl);
    lo[nl] = '\0';
    nb_trim_right(lo);
    snprintf(hi, sizeof hi, "%s", nb_trim_left((char *)dots + 2));
    long long a, b;
    if (nb_key_parse_ll(lo, &a) || nb_key_parse_ll(hi, &b))
        return 0;
    if (a > b)
        return nb_error_set(err, NB_EINVAL, file, line,
                            "empty range '%s' (a..b needs a <= b)", s);
    if (b - a >= NB_MAX_AXIS_VALUES)
        return nb_error_set(err, NB_EINVAL, file, line,
                            "range '%s' has more than %d values", s,
                            NB_MAX_AXIS_VALUES);
    for (long long x = a; x <= b; x++) {
        char txt[32];
        snprintf(txt, sizeof txt, "%lld", x);
        if (items_push_copy(out, txt, line))
            return nb_error_oom(err);
    }
    return 1;
}

/* Expands the value of item it for key k into canonical elements. */
static int expand_value(const struct nb_key *k, const struct nb_ini_item *it,
                        struct nb_config_val *cv, struct nb_error *err)
{
    char *buf, **pc;
    size_t *off;
    int n = split_top(it->value, ',', &buf, &pc, &off);
    if (n < 0)
        return nb_error_oom(err);
    struct items raw = {0}, canon = {0};
    int rc = 0, is_axis = n > 1;
    int numeric = k->type == NB_KEY_INT || k->type == NB_KEY_FLOAT;
    for (int i = 0; i < n && !rc; i++) {
        int line = nb_ini_item_line(it, off[i]);
        if (n > 1 && !*pc[i]) {
            rc = nb_error_set(err, NB_EINVAL, it->file, line,
                              "empty element in the list for [%s] %s",
                              k->section, k->key);
            break;
        }
        int g = 0;
        if (numeric) {
            g = expand_generator(k, pc[i], it->file, line, &raw, err);
            if (g == 0)
                g = expand_range(pc[i], it->file, line, &raw, err);
        }
        if (g < 0) {
            rc = g;
            break;
        }
        if (g > 0) {
            is_axis = 1;
            continue;
        }
        if ((k->flags & NB_KF_SELECTOR) && raw.n > 0 && nb_selector_continues(pc[i])) {
            /* "E/k=v,k2=v2": k2=v2 belongs to the selector before it */
            char *prev = raw.v[raw.n - 1];
            size_t a = strlen(prev), b = strlen(pc[i]);
            char *joined = realloc(prev, a + b + 2);
            if (!joined) {
                rc = nb_error_oom(err);
                break;
            }
            joined[a] = ',';
            memcpy(joined + a + 1, pc[i], b + 1);
            raw.v[raw.n - 1] = joined;
            continue;
        }
        if (items_push_copy(&raw, pc[i], line))
            rc = nb_error_oom(err);
    }
    free(buf);
    free(pc);
    free(off);
    if (k->flags & NB_KF_SELECTOR)
        is_axis = raw.n > 1;
    if (!rc && is_axis && (k->flags & NB_KF_NOSWEEP))
        rc = nb_error_set(err, NB_EINVAL, it->file, it->line,
                          "[%s] %s cannot be swept (no lists, ranges or "
                          "generators)", k->section, k->key);
    if (!rc && raw.n > NB_MAX_AXIS_VALUES)
        rc = nb_error_set(err, NB_EINVAL, it->file, it->line,
                          "[%s] %s has more than %d values", k->section,
                          k->key, NB_MAX_AXIS_VALUES);
    for (int i = 0; i < raw.n && !rc; i++) {
        char *c;
        rc = (k->flags & NB_KF_SELECTOR)
                 ? nb_selector_canon(raw.v[i], it->file, raw.line[i], &c, err)
                 : nb_key_canon(k, raw.v[i], it->file, raw.line[i], &c, err);
        if (!rc && items_push(&canon, c, raw.line[i])) {
            free(c);
            rc = nb_error_oom(err);
        }
    }
    items_free(&raw);
    if (rc) {
        items_free(&canon);
        return rc;
    }
    cv->is_axis = is_axis;
    cv->n_items = canon.n;
    cv->items = canon.v;
    cv->item_line = canon.line;
    return 0;
}

/* ======================================================================
 * The config: handler and load
 * ====================================================================== */

struct nb_config_seen {
    int file_id, key, line;
};

static const char *intern(struct nb_config *cfg, const char *file)
{
    for (int i = 0; i < cfg->n_files; i++)
        if (!strcmp(cfg->files[i], file))
            return cfg->files[i];
    char **f = realloc(cfg->files, (size_t)(cfg->n_files + 1) * sizeof *f);
    if (!f)
        return NULL;
    cfg->files = f;
    if (!(f[cfg->n_files] = strdup(file)))
        return NULL;
    return f[cfg->n_files++];
}

static void val_free(struct nb_config_val *v)
{
    free(v->value);
    for (int i = 0; i < v->n_items; i++)
        free(v->items[i]);
    free(v->items);
    free(v->item_line);
    memset(v, 0, sizeof *v);
}

/* A key name of zip, exclude or a selector's terms (keys.h), or -1 with err. */
int nb_key_resolve_name(const char *name, const char *what, const char *file,
                        int line, struct nb_error *err)
{
    int idx = nb_key_lookup_name(name);
    if (idx == -2) {
        char alts[200];
        size_t n = 0;
        alts[0] = '\0';
        for (int i = 0; i < nb_key_count(); i++)
            if (!strcmp(nb_key_at(i)->key, name))
                n += (size_t)snprintf(alts + (n < sizeof alts ? n : sizeof alts - 1),
                                      n < sizeof alts ? sizeof alts - n : 1,
                                      "%s%s.%s", n ? " or " : "",
                                      nb_key_at(i)->section, nb_key_at(i)->key);
        nb_error_set(err, NB_EINVAL, file, line, "%s: key '%s' is ambiguous",
                     what, name);
        nb_error_hint(err, "write %s", alts);
        return -1;
    }
    if (idx < 0) {
        nb_error_set(err, NB_EINVAL, file, line, "%s: unknown key '%s'", what,
                     name);
        const char *names[512];
        char store[512][64];
        int n = 0;
        const char *dot = strchr(name, '.');
        for (int i = 0; i < nb_key_count() && n < 512; i++) {
            if (dot)
                snprintf(store[n], sizeof store[n], "%s.%s", nb_key_at(i)->section,
                         nb_key_at(i)->key);
            else
                snprintf(store[n], sizeof store[n], "%s", nb_key_at(i)->key);
            names[n] = store[n];
            n++;
        }
        const char *c = nb_closest(name, names, n);
        if (c)
            nb_error_hint(err, "did you mean '%s'?", c);
        return -1;
    }
    if (nb_key_at(idx)->flags & NB_KF_STRUCT) {
        nb_error_set(err, NB_EINVAL, file, line, "%s: [%s] %s cannot be used here",
                     what, nb_key_at(idx)->section, nb_key_at(idx)->key);
        return -1;
    }
    return idx;
}

static int parse_zip(struct nb_config *cfg, const struct nb_ini_item *it,
                     const char *file, struct nb_error *err)
{
    if (!*it->value)
        return 0; /* `zip =`: no group */
    char *buf, **pc;
    size_t *off;
    int n = split_top(it->value, ',', &buf, &pc, &off), rc = 0;
    if (n < 0)
        return nb_error_oom(err);
    struct nb_zip z = {.file = file, .line = it->line};
    z.keys = malloc((size_t)n * sizeof *z.keys);
    z.key_line = malloc((size_t)n * sizeof *z.key_line);
    if (!z.keys || !z.key_line)
        rc = nb_error_oom(err);
    for (int i = 0; i < n && !rc; i++) {
        int line = nb_ini_item_line(it, off[i]);
        int idx = nb_key_resolve_name(pc[i], "zip", file, line, err);
        if (idx < 0) {
            rc = NB_EINVAL;
            break;
        }
        if (!strcmp(nb_key_at(idx)->key, "seeds")) {
            rc = nb_error_set(err, NB_EINVAL, file, line,
                              "zip: experiment.seeds cannot be zipped (seeds "
                              "is always the innermost axis)");
            break;
        }
        for (int j = 0; j < z.n; j++)
            if (z.keys[j] == idx)
                rc = nb_error_set(err, NB_EINVAL, file, line,
                                  "zip: %s.%s is listed twice",
                                  nb_key_at(idx)->section, nb_key_at(idx)->key);
        z.keys[z.n] = idx;
        z.key_line[z.n] = line;
        z.n++;
    }
    if (!rc && z.n < 2)
        rc = nb_error_set(err, NB_EINVAL, file, it->line,
                          "zip needs at least two keys");
    free(buf);
    free(pc);
    free(off);
    if (!rc) {
        struct nb_zip *zs = realloc(cfg->zips, (size_t)(cfg->n_zips + 1) * sizeof *zs);
        if (!zs)
            rc = nb_error_oom(err);
        else {
            cfg->zips = zs;
            zs[cfg->n_zips++] = z;
            return 0;
        }
    }
    free(z.keys);
    free(z.key_line);
    return rc;
}

static void rule_free(struct nb_rule *r)
{
    for (int t = 0; t < r->n_terms; t++) {
        for (int i = 0; i < r->terms[t].n_vals; i++)
            free(r->terms[t].vals[i]);
        free(r->terms[t].vals);
    }
    free(r->terms);
    memset(r, 0, sizeof *r);
}

/* One rule "a=x & b!=y|z"; offset base of text within the item value. */
static int parse_rule(const struct nb_ini_item *it, const char *file,
                      const char *text, size_t base, struct nb_rule *r,
                      struct nb_error *err)
{
    char *buf, **pc;
    size_t *off;
    int line = nb_ini_item_line(it, base);
    int n = split_top(text, '&', &buf, &pc, &off), rc = 0;
    if (n < 0)
        return nb_error_oom(err);
    r->file = file;
    r->line = line;
    r->terms = calloc((size_t)n, sizeof *r->terms);
    if (!r->terms)
        rc = nb_error_oom(err);
    for (int i = 0; i < n && !rc; i++) {
        struct nb_rule_term *t = &r->terms[r->n_terms];
        char *s = pc[i], *eq = strchr(s, '=');
        line = nb_ini_item_line(it, base + off[i]);
        if (!eq) {
            rc = nb_error_set(err, NB_EINVAL, file, line,
                              "exclude: expected KEY=VALUE, got '%s'", s);
            break;
        }
        t->negate = eq > s && eq[-1] == '!';
        *(t->negate ? eq - 1 : eq) = '\0';
        char *name = s;
        nb_trim_right(name);
        int idx = nb_key_resolve_name(name, "exclude", file, line, err);
        if (idx < 0) {
            rc = NB_EINVAL;
            break;
        }
        t->key = idx;
        r->n_terms++;
        char *vbuf, **vp;
        size_t *voff;
        int nv = split_top(eq + 1, '|', &vbuf, &vp, &voff);
        if (nv < 0) {
            rc = nb_error_oom(err);
            break;
        }
        t->vals = calloc((size_t)nv, sizeof *t->vals);
        if (!t->vals)
            rc = nb_error_oom(err);
        for (int j = 0; j < nv && !rc; j++) {
            rc = nb_key_canon(nb_key_at(idx), vp[j], file, line, &t->vals[j], err);
            if (!rc)
                t->n_vals++;
        }
        free(vbuf);
        free(vp);
        free(voff);
    }
    free(buf);
    free(pc);
    free(off);
    return rc;
}

static int parse_exclude(struct nb_config *cfg, const struct nb_ini_item *it,
                         const char *file, struct nb_error *err)
{
    if (!*it->value)
        return 0;
    char *buf, **pc;
    size_t *off;
    int n = split_top(it->value, ',', &buf, &pc, &off), rc = 0;
    if (n < 0)
        return nb_error_oom(err);
    for (int i = 0; i < n && !rc; i++) {
        if (!*pc[i]) {
            rc = nb_error_set(err, NB_EINVAL, file, nb_ini_item_line(it, off[i]),
                              "exclude: empty rule");
            break;
        }
        struct nb_rule r = {0};
        rc = parse_rule(it, file, pc[i], off[i], &r, err);
        if (!rc) {
            struct nb_rule *rs = realloc(cfg->rules, (size_t)(cfg->n_rules + 1) * sizeof *rs);
            if (!rs)
                rc = nb_error_oom(err);
            else {
                cfg->rules = rs;
                rs[cfg->n_rules++] = r;
                continue;
            }
        }
        rule_free(&r);
    }
    free(buf);
    free(pc);
    free(off);
    return rc;
}

static int section_known(const char *s)
{
    for (int i = 0; nb_sections[i]; i++)
        if (!strcmp(nb_sections[i], s))
            return 1;
    return 0;
}

static int unknown_key(const struct nb_ini_item *it, struct nb_error *err)
{
    nb_error_set(err, NB_EINVAL, it->file, it->line, "unknown key '%s' in [%s]",
                 it->key, it->section);
    const char *other = NULL;
    for (int i = 0; i < nb_key_count(); i++)
        if (!strcmp(nb_key_at(i)->key, it->key)) {
            other = nb_key_at(i)->section;
            break;
        }
    if (other)
        return nb_error_hint(err, "'%s' is a key of [%s]", it->key, other);
    const char *names[256];
    int n = 0;
    for (int i = 0; i < nb_key_count() && n < 256; i++)
        if (!strcmp(nb_key_at(i)->section, it->section))
            names[n++] = nb_key_at(i)->key;
    const char *c = nb_closest(it->key, names, n);
    if (c)
        return nb_error_hint(err, "did you mean '%s'?", c);
    /* names other tools use */
    static const char *const alias[][3] = {
        {"optim", "learning_rate", "lr"}, {"optim", "wd", "weight_decay"},
        {"train", "batch_size", "batch"}, {"train", "steps", "max_steps"},
        {"norm", "epsilon", "eps"},       {"norm", "norm", "type"},
        {"model", "width", "widths"},     {"experiment", "seed", "seeds"},
    };
    const char *an[16];
    int na = 0;
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (!strcmp(alias[i][0], it->section))
            an[na++] = alias[i][1];
    if ((c = nb_closest(it->key, an, na)))
        for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
            if (!strcmp(alias[i][0], it->section) && !strcmp(alias[i][1], c))
                return nb_error_hint(err, "did you mean '%s'?", alias[i][2]);
    return nb_error_hint(err, "'normbench config --help' lists the keys of [%s]",
                         it->section);
}

static int cfg_handler(void *user, const struct nb_ini_item *it,
                       struct nb_error *err)
{
    struct nb_config *cfg = user;
    if (!it->key) {
        if (section_known(it->section))
            return 0;
        int n = 0;
        while (nb_sections[n])
            n++;
        nb_error_set(err, NB_EINVAL, it->file, it->line, "unknown section [%s]",
                     it->section);
        const char *c = nb_closest(it->section, nb_sections, n);
        if (c)
            return nb_error_hint(err, "did you mean [%s]?", c);
        return nb_error_hint(err, "sections: experiment, model, norm, optim, "
                                  "train, data, probe");
    }
    if (!it->section[0]) {
        nb_error_set(err, NB_EINVAL, it->file, it->line,
                     "key '%s' outside of any section", it->key);
        for (int i = 0; i < nb_key_count(); i++)
            if (!strcmp(nb_key_at(i)->key, it->key))
                return nb_error_hint(err, "put it under [%s]", nb_key_at(i)->section);
        return err ? err->status : NB_EINVAL;
    }
    int idx = nb_key_lookup(it->section, it->key);
    if (idx < 0)
        return unknown_key(it, err);
    const struct nb_key *k = nb_key_at(idx);
    const char *file = intern(cfg, it->file);
    if (!file)
        return nb_error_oom(err);
    if (k->type == NB_KEY_NAMES)
        return parse_zip(cfg, it, file, err);
    if (k->type == NB_KEY_RULES)
        return parse_exclude(cfg, it, file, err);
    for (int i = 0; i < cfg->n_seen; i++)
        if (cfg->seen[i].file_id == it->file_id && cfg->seen[i].key == idx)
            return nb_error_set(err, NB_EINVAL, it->file, it->line,
                                "duplicate key '%s' in [%s] (first set at line %d)",
                                it->key, it->section, cfg->seen[i].line);
    if (cfg->n_seen == cfg->cap_seen) {
        int cap = cfg->cap_seen ? 2 * cfg->cap_seen : 64;
        struct nb_config_seen *s = realloc(cfg->seen, (size_t)cap * sizeof *s);
        if (!s)
            return nb_error_oom(err);
        cfg->seen = s;
        cfg->cap_seen = cap;
    }
    cfg->seen[cfg->n_seen++] = (struct nb_config_seen){it->file_id, idx, it->line};
    struct nb_config_val v = {0};
    int rc = expand_value(k, it, &v, err);
    if (rc)
        return rc;
    v.value = strdup(it->value);
    if (!v.value) {
        val_free(&v);
        return nb_error_oom(err);
    }
    v.file = file;
    v.line = it->line;
    v.seq = cfg->seq++;
    val_free(&cfg->set[idx]); /* later assignments override */
    cfg->set[idx] = v;
    return 0;
}

/* nb_config_load and nb_config_load_text: text NULL reads path */
static int config_load(const char *path, const char *text, struct nb_config *cfg,
                       struct nb_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->path = strdup(path);
    cfg->set = calloc((size_t)nb_key_count(), sizeof *cfg->set);
    if (!cfg->path || !cfg->set) {
        nb_config_free(cfg);
        return nb_error_oom(err);
    }
    int rc = text ? nb_ini_parse_text(path, text, cfg_handler, cfg, err)
                  : nb_ini_parse(path, cfg_handler, cfg, err);
    if (rc)
        nb_config_free(cfg);
    return rc;
}

int nb_config_load(const char *path, struct nb_config *cfg, struct nb_error *err)
{
    return config_load(path, NULL, cfg, err);
}

int nb_config_load_text(const char *name, const char *text, struct nb_config *cfg,
                        struct nb_error *err)
{
    return config_load(name, text, cfg, err);
}

void nb_config_free(struct nb_config *cfg)
{
    if (!cfg)
        return;
    if (cfg->set)
        for (int i = 0; i < nb_key_count(); i++)
            val_free(&cfg->set[i]);
    free(cfg->set);
    for (int i = 0; i < cfg->n_zips; i++) {
        free(cfg->zips[i].keys);
        free(cfg->zips[i].key_line);
    }
    free(cfg->zips);
    for (int i = 0; i < cfg->n_rules; i++)
        rule_free(&cfg->rules[i]);
    free(cfg->rules);
    for (int i = 0; i < cfg->n_files; i++)
        free(cfg->files[i]);
    free(cfg->files);
    free(cfg->seen);
    free(cfg->path);
    memset(cfg, 0, sizeof *cfg);
}

