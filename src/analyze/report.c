/* src/analyze/report.c - see report.h. */
#include "analyze/report.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "config/keys.h"

/* ======================================================================
 * Loading experiments/NAME.ini
 * ====================================================================== */

enum sec { S_NONE = 0, S_EXPERIMENT, S_QUICK, S_FIGURE, S_TABLE, S_CHECK };

struct seen {
    int sec;
    int idx;
    char key[64];
};

/* Raw table fields, resolved after the whole file is read. */
struct raw_paper {
    char *text;
    int line;
};
struct raw_table {
    char *metric, *rows, *cols, *where;
    int metric_line, rows_line, cols_line, where_line;
    struct raw_paper *paper;
    int n_paper;
};
struct raw_fig {
    char *kind, *x, *y, *where, *paper;
    int kind_line, x_line, y_line, where_line, paper_line;
};

struct lctx {
    struct nb_experiment *e;
    const char *top;       /* top-level path */
    int sec;
    int idx;               /* figure/table/check index */
    char quick_sec[64];
    int sec_line;
    const char *sec_file;
    struct seen *seen;
    int n_seen;
    struct raw_table *rt;  /* [n_tables] */
    struct raw_fig *rf;    /* [n_figs] */
    int *check_line;       /* section line of each check */
    int *check_central;    /* central = true (1), false (-1), unset (0) */
    char **check_file;
    int *name_line;        /* [experiment] claim/source lines */
    int claim_line;
};

static bool valid_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return false;
    return true;
}

static int set_str(char **dst, const char *v, struct nb_error *err)
{
    free(*dst);
    *dst = strdup(v);
    return *dst ? 0 : nb_error_oom(err);
}

static int grow(void **p, int n, size_t elem, struct nb_error *err)
{
    void *q = realloc(*p, (size_t)(n + 1) * elem);
    if (!q)
        return nb_error_oom(err);
    *p = q;
    memset((char *)q + (size_t)n * elem, 0, elem);
    return 0;
}

/* The keys of an experiment file's sections: an enum per section, its
 * names tied to it by designated initializers (NULL-terminated for
 * key_in and the did-you-mean hints). */
enum exp_key {
    EK_NAME, EK_CLAIM, EK_SOURCE, EK_PAPER, EK_CONFIG, EK_ESTIMATE, EK_NOTES,
    EK_DISCUSSION, EK_CAVEATS, EK_ROBUSTNESS, EK_COUNT
};
static const char *const exp_keys[EK_COUNT + 1] = {
    [EK_NAME] = "name",         [EK_CLAIM] = "claim",     [EK_SOURCE] = "source",
    [EK_PAPER] = "paper",       [EK_CONFIG] = "config",   [EK_ESTIMATE] = "estimate",
    [EK_NOTES] = "notes",       [EK_DISCUSSION] = "discussion",
    [EK_CAVEATS] = "caveats",   [EK_ROBUSTNESS] = "robustness"};
enum fig_key { FK_KIND, FK_X, FK_Y, FK_WHERE, FK_PARAM, FK_CAPTION, FK_PAPER, FK_PAPER_LABEL,
               FK_COUNT };
static const char *const fig_keys[FK_COUNT + 1] = {
    [FK_KIND] = "kind",       [FK_X] = "x",         [FK_Y] = "y",
    [FK_WHERE] = "where",     [FK_PARAM] = "param", [FK_CAPTION] = "caption",
    [FK_PAPER] = "paper",     [FK_PAPER_LABEL] = "paper_label"};
enum table_key { TK_METRIC, TK_ROWS, TK_COLUMNS, TK_WHERE, TK_PAPER, TK_CAPTION, TK_COUNT };
static const char *const table_keys[TK_COUNT + 1] = {
    [TK_METRIC] = "metric", [TK_ROWS] = "rows",   [TK_COLUMNS] = "columns",
    [TK_WHERE] = "where",   [TK_PAPER] = "paper", [TK_CAPTION] = "caption"};
enum check_key { CK_EXPECT, CK_ABOUT, CK_CENTRAL, CK_COUNT };
static const char *const check_keys[CK_COUNT + 1] = {
    [CK_EXPECT] = "expect", [CK_ABOUT] = "about", [CK_CENTRAL] = "central"};

static int key_in(const char *const *l, const char *k)
{
    for (int i = 0; l[i]; i++)
        if (!strcmp(l[i], k))
            return i;
    return -1;
}

static int list_n(const char *const *l)
{
    int n = 0;
    while (l[n])
        n++;
    return n;
}

static int unknown_key(const struct nb_ini_item *it, const char *const *l, const char *secname,
                       struct nb_error *err)
{
    nb_error_set(err, NB_EINVAL, it->file, it->line, "unknown key '%s' in [%s]", it->key,
                 secname);
    const char *near = nb_closest(it->key, l, list_n(l));
    if (near)
        nb_error_hint(err, "did you mean '%s'?", near);
    return NB_EINVAL;
}

static int seen_check(struct lctx *c, const struct nb_ini_item *it, bool repeatable,
                      struct nb_error *err)
{
    if (repeatable)
        return 0;
    for (int i = 0; i < c->n_seen; i++)
        if (c->seen[i].sec == c->sec && c->seen[i].idx == c->idx &&
            !strcmp(c->seen[i].key, it->key))
            return nb_error_set(err, NB_EINVAL, it->file, it->line,
                                "duplicate key '%s' in [%s]", it->key, it->section);
    if (grow((void **)&c->seen, c->n_seen, sizeof *c->seen, err))
        return NB_ENOMEM;
    struct seen *s = &c->seen[c->n_seen++];
    s->sec = c->sec;
    s->idx = c->idx;
    snprintf(s->key, sizeof s->key, "%s", it->key);
    return 0;
}

static int section_header(struct lctx *c, const struct nb_ini_item *it, struct nb_error *err)
{
    struct nb_experiment *e = c->e;
    const char *s = it->section;
    char kind[32] = "", name[200] = "";
    const char *sp = strchr(s, ' ');
    if (sp) {
        snprintf(kind, sizeof kind, "%.*s", (int)(sp - s), s);
        while (*sp == ' ')
            sp++;
        snprintf(name, sizeof name, "%s", sp);
    } else {
        snprintf(kind, sizeof kind, "%s", s);
    }
    c->sec_line = it->line;
    c->sec_file = it->file;
    if (!strcmp(kind, "experiment") && !name[0]) {
        c->sec = S_EXPERIMENT;
        c->idx = 0;
        return 0;
    }
    static const char *const kinds[] = {"experiment", "quick", "figure", "table", "check",
                                        NULL};
    if (key_in(kinds, kind) < 0 || (!name[0] && strcmp(kind, "experiment"))) {
        if (key_in(kinds, kind) >= 0)
            return nb_error_set(err, NB_EINVAL, it->file, it->line,
                                "section [%s] needs a name: [%s NAME]", kind, kind);
        nb_error_set(err, NB_EINVAL, it->file, it->line,
                     "unknown section [%s] (experiment, quick SECTION, figure NAME, "
                     "table NAME, check NAME)",
                     s);
        const char *near = nb_closest(kind, kinds, 5);
        if (near)
            nb_error_hint(err, "did you mean [%s%s%s]?", near, name[0] ? " " : "", name);
        return NB_EINVAL;
    }
    if (!strcmp(kind, "experiment"))
        return nb_error_set(err, NB_EINVAL, it->file, it->line,
                            "[experiment] takes no name");
    if (!valid_name(name))
        return nb_error_set(err, NB_EINVAL, it->file, it->line,
                            "bad name '%s' in [%s] (letters, digits, _ - .)", name, s);
    if (!strcmp(kind, "quick")) {
        bool known = false;
        for (int i = 0; nb_sections[i]; i++)
            known |= !strcmp(nb_sections[i], name);
        if (!known) {
            nb_error_set(err, NB_EINVAL, it->file, it->line,
                         "[quick %s]: no config section '%s'", name, name);
            const char *near = nb_closest(name, nb_sections, 7);
            if (near)
                nb_error_hint(err, "did you mean [quick %s]?", near);
            return NB_EINVAL;
        }
        c->sec = S_QUICK;
        c->idx = 0;
        for (int i = 0; nb_sections[i]; i++)
            if (!strcmp(nb_sections[i], name))
                c->idx = i;
        snprintf(c->quick_sec, sizeof c->quick_sec, "%s", name);
        return 0;
    }
    if (!strcmp(kind, "figure")) {
        for (int i = 0; i < e->n_figs; i++)
            if (!strcmp(e->figs[i].name, name))
                return nb_error_set(err, NB_EINVAL, it->file, it->line,
                                    "figure '%s' is defined twice", name);
        if (grow((void **)&e->figs, e->n_figs, sizeof *e->figs, err) ||
            grow((void **)&c->rf, e->n_figs, sizeof *c->rf, err))
            return NB_ENOMEM;
        struct nb_exp_figure *f = &e->figs[e->n_figs];
        f->x = -1;
        f->scalar = NB_SC_FINAL_TEST_ERROR;
        f->kind = -1;
        f->line = it->line;
        if (!(f->name = strdup(name)))
            return nb_error_oom(err);
        c->sec = S_FIGURE;
        c->idx = e->n_figs++;
        return 0;
    }
    if (!strcmp(kind, "table")) {
        for (int i = 0; i < e->n_tables; i++)
            if (!strcmp(e->tables[i].name, name))
                return nb_error_set(err, NB_EINVAL, it->file, it->line,
                                    "table '%s' is defined twice", name);
        if (grow((void **)&e->tables, e->n_tables, sizeof *e->tables, err) ||
            grow((void **)&c->rt, e->n_tables, sizeof *c->rt, err))
            return NB_ENOMEM;
        struct nb_exp_table *t = &e->tables[e->n_tables];
        t->line = it->line;
        t->rows = t->cols = -1;
        t->scalar = -1;
        if (!(t->name = strdup(name)))
            return nb_error_oom(err);
        c->sec = S_TABLE;
        c->idx = e->n_tables++;
        return 0;
    }
    /* check */
    for (int i = 0; i < e->n_checks; i++)
        if (!strcmp(e->checks[i].name, name))
            return nb_error_set(err, NB_EINVAL, it->file, it->line,
                                "check '%s' is defined twice", name);
    if (grow((void **)&e->checks, e->n_checks, sizeof *e->checks, err) ||
        grow((void **)&c->check_line, e->n_checks, sizeof *c->check_line, err) ||
        grow((void **)&c->check_central, e->n_checks, sizeof *c->check_central, err) ||
        grow((void **)&c->check_file, e->n_checks, sizeof *c->check_file, err))
        return NB_ENOMEM;
    struct nb_check *k = &e->checks[e->n_checks];
    if (!(k->name = strdup(name)) || !(c->check_file[e->n_checks] = strdup(it->file)))
        return nb_error_oom(err);
    c->check_line[e->n_checks] = it->line;
    c->sec = S_CHECK;
    c->idx = e->n_checks++;
    return 0;
}

static int resolve_key_name(const char *v, const char *file, int line, const char *what,
                            int *out, struct nb_error *err)
{
    int k = nb_key_lookup_name(v);
    if (!strcmp(v, "bs"))
        k = nb_key_lookup("train", "batch");
    else if (!strcmp(v, "G"))
        k = nb_key_lookup("norm", "groups");
    if (k == -2)
        return nb_error_set(err, NB_EINVAL, file, line, "%s: ambiguous key '%s' (write "
                            "section.key)", what, v);
    if (k < 0) {
        nb_error_set(err, NB_EINVAL, file, line, "%s: unknown config key '%s'", what, v);
        return NB_EINVAL;
    }
    *out = k;
    return 0;
}

static int scalar_of(const char *v, const char *file, int line, const char *what, int *out,
                     struct nb_error *err)
{
    int sc = nb_sum_scalar_lookup(v);
    if (sc < 0) {
        nb_error_set(err, NB_EINVAL, file, line, "%s: '%s' is not a per-run scalar", what, v);
        const char *names[NB_SC_COUNT];
        for (int i = 0; i < NB_SC_COUNT; i++)
            names[i] = nb_sum_scalar_name(i);
        const char *near = nb_closest(v, names, NB_SC_COUNT);
        if (near)
            nb_error_hint(err, "did you mean '%s'?", near);
        else
            nb_error_hint(err, "e.g. final_test_error, best_test_error, final_train_loss");
        return NB_EINVAL;
    }
    *out = sc;
    return 0;
}

static int handler(void *user, const struct nb_ini_item *it, struct nb_error *err)
{
    struct lctx *c = user;
    struct nb_experiment *e = c->e;
    if (!it->key)
        return section_header(c, it, err);
    const char *v = it->value;
    switch (c->sec) {
    case S_NONE:
        return nb_error_set(err, NB_EINVAL, it->file, it->line,
                            "key '%s' before the first section (start with [experiment])",
                            it->key);
    case S_EXPERIMENT: {
        int k = key_in(exp_keys, it->key);
        if (k < 0)
            return unknown_key(it, exp_keys, "experiment", err);
        int rc = seen_check(c, it, k == EK_CONFIG || k == EK_DISCUSSION, err);
        if (rc)
            return rc;
        if (!*v)
            return nb_error_set(err, NB_EINVAL, it->file, it->line, "empty value for '%s'",
                                it->key);
        switch ((enum exp_key)k) {
        case EK_NAME:
            if (!valid_name(v))
                return nb_error_set(err, NB_EINVAL, it->file, it->line,
                                    "bad experiment name '%s' (letters, digits, _ - .)", v);
            return set_str(&e->name, v, err);
        case EK_CLAIM:
            c->claim_line = it->line;
            return set_str(&e->claim, v, err);
        case EK_SOURCE: return set_str(&e->source, v, err);
        case EK_PAPER: return set_str(&e->paper, v, err);
        case EK_CONFIG: {
            /* a comma list or one path per line */
            const char *p = v;
            while (*p) {
                const char *comma = strchr(p, ',');
                size_t n = comma ? (size_t)(comma - p) : strlen(p);
                while (n && isspace((unsigned char)*p))
                    p++, n--;
                while (n && isspace((unsigned char)p[n - 1]))
                    n--;
                if (n) {
                    if (grow((void **)&e->configs, e->n_configs, sizeof *e->configs, err) ||
                        grow((void **)&e->config_paths, e->n_configs, sizeof(char *), err))
                        return NB_ENOMEM;
                    char *cfg = malloc(n + 1);
                    if (!cfg)
                        return nb_error_oom(err);
                    memcpy(cfg, p, n);
                    cfg[n] = '\0';
                    e->configs[e->n_configs] = cfg;
                    /* resolve against the experiment file's directory */
                    const char *slash = strrchr(it->file, '/');
                    size_t dl = slash ? (size_t)(slash - it->file) + 1 : 0;
                    char *full = malloc(dl + n + 1);
                    if (!full)
                        return nb_error_oom(err);
                    if (cfg[0] == '/')
                        snprintf(full, dl + n + 1, "%s", cfg);
                    else
                        snprintf(full, dl + n + 1, "%.*s%s", (int)dl, it->file, cfg);
                    e->config_paths[e->n_configs++] = full;
                    struct stat st;
                    if (stat(full, &st) != 0)
                        return nb_error_set(err, NB_EINVAL, it->file, it->line,
                                            "config '%s' not found (%s)", cfg, full);
                }
                if (!comma)
                    break;
                p = comma + 1;
            }
            return 0;
        }
        case EK_ESTIMATE: return set_str(&e->estimate, v, err);
        case EK_NOTES: return set_str(&e->notes, v, err);
        case EK_CAVEATS: return set_str(&e->caveats, v, err);
        case EK_ROBUSTNESS: return set_str(&e->robustness, v, err);
        case EK_DISCUSSION:
            if (grow((void **)&e->discussion, e->n_discussion, sizeof *e->discussion, err))
                return NB_ENOMEM;
            return set_str(&e->discussion[e->n_discussion++], v, err);
        case EK_COUNT: break;
        }
        return NB_EINVAL; /* not reached: k < EK_COUNT */
    }
    case S_QUICK: {
        int k = nb_key_lookup(c->quick_sec, it->key);
        if (k < 0) {
            nb_error_set(err, NB_EINVAL, it->file, it->line, "unknown key '%s' in [%s]",
                         it->key, c->quick_sec);
            const char *cands[256];
            int nc = 0;
            for (int i = 0; i < nb_n_keys && nc < 256; i++)
                if (!strcmp(nb_keys[i].section, c->quick_sec))
                    cands[nc++] = nb_keys[i].key;
            const char *near = nb_closest(it->key, cands, nc);
            if (near)
                nb_error_hint(err, "did you mean '%s'?", near);
            return NB_EINVAL;
        }
        for (int i = 0; i < e->n_quick; i++)
            if (!strcmp(e->quick[i].section, c->quick_sec) && !strcmp(e->quick[i].key, it->key))
                return nb_error_set(err, NB_EINVAL, it->file, it->line,
                                    "duplicate quick override %s.%s", c->quick_sec, it->key);
        if (!strcmp(c->quick_sec, "experiment") &&
            (!strcmp(it->key, "name") || !strcmp(it->key, "results_dir")))
            return nb_error_set(err, NB_EINVAL, it->file, it->line,
                                "[quick experiment] may not set %s (reproduce places the "
                                "quick runs itself)",
                                it->key);
        /* check plain values (lists element by element; generators and
         * ranges are left to the sweep) */
        if (!strchr(v, '(') && !strstr(v, "..") && !(nb_keys[k].flags & NB_KF_STRUCT)) {
            char *copy = strdup(v);
            if (!copy)
                return nb_error_oom(err);
            bool list = nb_keys[k].type == NB_KEY_INT_LIST ||
                        nb_keys[k].type == NB_KEY_FLOAT_LIST;
            for (char *tok = list ? copy : strtok(copy, ","); tok;
                 tok = list ? NULL : strtok(NULL, ",")) {
                while (isspace((unsigned char)*tok))
                    tok++;
                size_t n = strlen(tok);
                while (n && isspace((unsigned char)tok[n - 1]))
                    tok[--n] = '\0';
                char *canon = NULL;
                int rc = nb_key_canon(&nb_keys[k], tok, it->file, it->line, &canon, err);
                free(canon);
                if (rc) {
                    free(copy);
                    return rc;
                }
            }
            free(copy);
        }
        if (grow((void **)&e->quick, e->n_quick, sizeof *e->quick, err))
            return NB_ENOMEM;
        struct nb_exp_override *o = &e->quick[e->n_quick++];
        o->line = it->line;
        if (!(o->section = strdup(c->quick_sec)) || !(o->key = strdup(it->key)) ||
            !(o->value = strdup(v)))
            return nb_error_oom(err);
        return 0;
    }
    case S_FIGURE: {
        int k = key_in(fig_keys, it->key);
        if (k < 0)
            return unknown_key(it, fig_keys, it->section, err);
        int rc = seen_check(c, it, false, err);
        if (rc)
            return rc;
        struct nb_exp_figure *f = &e->figs[c->idx];
        struct raw_fig *r = &c->rf[c->idx];
        switch ((enum fig_key)k) {
        case FK_KIND:
            r->kind_line = it->line;
            return set_str(&r->kind, v, err);
        case FK_X:
            r->x_line = it->line;
            return set_str(&r->x, v, err);
        case FK_Y:
            r->y_line = it->line;
            return set_str(&r->y, v, err);
        case FK_WHERE:
            r->where_line = it->line;
            return set_str(&r->where, v, err);
        case FK_PARAM:
            if (strcmp(v, "in") && strcmp(v, "out"))
                return nb_error_set(err, NB_EINVAL, it->file, it->line,
                                    "param must be in or out, not '%s'", v);
            return set_str(&f->param, v, err);
        case FK_PAPER:
            r->paper_line = it->line;
            return set_str(&r->paper, v, err);
        case FK_PAPER_LABEL: return set_str(&f->paper_label, v, err);
        case FK_CAPTION: return set_str(&f->caption, v, err);
        case FK_COUNT: break;
        }
        return NB_EINVAL; /* not reached: k < FK_COUNT */
    }
    case S_TABLE: {
        int k = key_in(table_keys, it->key);
        if (k < 0)
            return unknown_key(it, table_keys, it->section, err);
        int rc = seen_check(c, it, k == TK_PAPER, err);
        if (rc)
            return rc;
        struct nb_exp_table *t = &e->tables[c->idx];
        struct raw_table *r = &c->rt[c->idx];
        switch ((enum table_key)k) {
        case TK_METRIC:
            r->metric_line = it->line;
            return set_str(&r->metric, v, err);
        case TK_ROWS:
            r->rows_line = it->line;
            return set_str(&r->rows, v, err);
        case TK_COLUMNS:
            r->cols_line = it->line;
            return set_str(&r->cols, v, err);
        case TK_WHERE:
            r->where_line = it->line;
            return set_str(&r->where, v, err);
        case TK_PAPER:
            if (grow((void **)&r->paper, r->n_paper, sizeof *r->paper, err))
                return NB_ENOMEM;
            r->paper[r->n_paper].line = it->line;
            if (!(r->paper[r->n_paper++].text = strdup(v)))
                return nb_error_oom(err);
            return 0;
        case TK_CAPTION: return set_str(&t->caption, v, err);
        case TK_COUNT: break;
        }
        return NB_EINVAL; /* not reached: k < TK_COUNT */
    }
    case S_CHECK: {
        int k = key_in(check_keys, it->key);
        if (k < 0)
            return unknown_key(it, check_keys, it->section, err);
        int rc = seen_check(c, it, false, err);
        if (rc)
            return rc;
        struct nb_check *ck = &e->checks[c->idx];
        if (k == CK_ABOUT)
            return set_str(&ck->about, v, err);
        if (k == CK_CENTRAL) {
            if (!strcmp(v, "true") || !strcmp(v, "false")) {
                c->check_central[c->idx] = !strcmp(v, "true") ? 1 : -1;
                return 0;
            }
            return nb_error_set(err, NB_EINVAL, it->file, it->line,
                                "central = %s: expected true or false", v);
        }
        char *name = ck->name, *about = ck->about;
        ck->name = ck->about = NULL;
        rc = nb_check_parse(name, v, it->file, it->line, ck, err);
        free(ck->name);
        ck->name = name;
        if (ck->about)
            free(ck->about);
        ck->about = about;
        return rc;
    }
    default:
        return nb_error_set(err, NB_EINVAL, it->file, it->line, "internal: bad section");
    }
}

static void raw_free(struct lctx *c)
{
    struct nb_experiment *e = c->e;
    for (int i = 0; c->rt && i < e->n_tables; i++) {
        struct raw_table *r = &c->rt[i];
        free(r->metric), free(r->rows), free(r->cols), free(r->where);
        for (int j = 0; j < r->n_paper; j++)
            free(r->paper[j].text);
        free(r->paper);
    }
    free(c->rt);
    for (int i = 0; c->rf && i < e->n_figs; i++) {
        free(c->rf[i].kind), free(c->rf[i].x), free(c->rf[i].y), free(c->rf[i].where);
        free(c->rf[i].paper);
    }
    free(c->rf);
    for (int i = 0; c->check_file && i < e->n_checks; i++)
        free(c->check_file[i]);
    free(c->check_file);
    free(c->check_line);
    free(c->check_central);
    free(c->seen);
}

/* Canonical text of value v for key k (numbers compare as numbers later,
 * so a failure here is an error only for enums). */
static int canon_val(int k, const char *v, const char *file, int line, char **out,
                     struct nb_error *err)
{
    return nb_key_canon(&nb_keys[k], v, file, line, out, err);
}

static int finish(struct lctx *c, struct nb_error *err)
{
    struct nb_experiment *e = c->e;
    const char *file = e->path;
    if (!e->claim)
        return nb_error_set(err, NB_EINVAL, file, 0, "[experiment] claim is missing");
    if (!e->source)
        return nb_error_set(err, NB_EINVAL, file, 0, "[experiment] source is missing");
    if (e->n_configs == 0)
        return nb_error_set(err, NB_EINVAL, file, 0,
                            "[experiment] names no config (config = ../configs/X.ini)");
    if (!e->name) {
        const char *b = strrchr(file, '/');
        b = b ? b + 1 : file;
        size_t n = strlen(b);
        if (n > 4 && !strcmp(b + n - 4, ".ini"))
            n -= 4;
        if (!(e->name = malloc(n + 1)))
            return nb_error_oom(err);
        memcpy(e->name, b, n);
        e->name[n] = '\0';
    }
    for (int i = 0; i < e->n_figs; i++) {
        struct nb_exp_figure *f = &e->figs[i];
        struct raw_fig *r = &c->rf[i];
        char what[200];
        snprintf(what, sizeof what, "figure %s", f->name);
        if (!r->kind)
            return nb_error_set(err, NB_EINVAL, file, f->line, "%s: kind is missing", what);
        f->kind = nb_fig_kind_parse(r->kind);
        if (f->kind < 0) {
            const char *kinds[NB_FIG_COUNT];
            char list[400] = "";
            for (int k = 0; k < NB_FIG_COUNT; k++) {
                kinds[k] = nb_fig_kind_name(k);
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                         k ? ", " : "", kinds[k]);
            }
            nb_error_set(err, NB_EINVAL, file, r->kind_line, "%s: unknown kind '%s' (%s)", what,
                         r->kind, list);
            const char *near = nb_closest(r->kind, kinds, NB_FIG_COUNT);
            if (near)
                nb_error_hint(err, "did you mean '%s'?", near);
            return NB_EINVAL;
        }
        const struct nb_fig_kind_info *info = nb_fig_kind_info(f->kind);
        bool wants_x = info->default_x != NULL;
        if (r->x && !wants_x)
            return nb_error_set(err, NB_EINVAL, file, r->x_line,
                                "%s: kind %s takes no x", what, r->kind);
        if (r->y && !info->takes_y)
            return nb_error_set(err, NB_EINVAL, file, r->y_line,
                                "%s: kind %s takes no y", what, r->kind);
        if (f->param && !info->takes_param)
            return nb_error_set(err, NB_EINVAL, file, f->line,
                                "%s: param is for kind dist only", what);
        if (wants_x) {
            const char *x = r->x ? r->x : info->default_x;
            int rc = resolve_key_name(x, file, r->x ? r->x_line : f->line, what, &f->x, err);
            if (rc)
                return rc;
            if (nb_keys[f->x].type != NB_KEY_INT && nb_keys[f->x].type != NB_KEY_FLOAT)
                return nb_error_set(err, NB_EINVAL, file, r->x ? r->x_line : f->line,
                                    "%s: x = %s is not a numeric key", what, x);
        }
        if (r->y) {
            int rc = scalar_of(r->y, file, r->y_line, what, &f->scalar, err);
            if (rc)
                return rc;
        }
        if (r->where) {
            int rc = nb_filters_parse(r->where, what, file, r->where_line, &f->where,
                                      &f->n_where, err);
            if (rc)
                return rc;
        }
    }
    for (int i = 0; i < e->n_tables; i++) {
        struct nb_exp_table *t = &e->tables[i];
        struct raw_table *r = &c->rt[i];
        char what[200];
        snprintf(what, sizeof what, "table %s", t->name);
        if (!r->metric || !r->rows)
            return nb_error_set(err, NB_EINVAL, file, t->line, "%s needs metric and rows",
                                what);
        int rc = scalar_of(r->metric, file, r->metric_line, what, &t->scalar, err);
        if (!rc)
            rc = resolve_key_name(r->rows, file, r->rows_line, what, &t->rows, err);
        if (!rc && r->cols)
            rc = resolve_key_name(r->cols, file, r->cols_line, what, &t->cols, err);
        if (!rc && r->where)
            rc = nb_filters_parse(r->where, what, file, r->where_line, &t->where,
                                  &t->n_where, err);
        if (rc)
            return rc;
        for (int j = 0; j < r->n_paper; j++) {
            const char *text = r->paper[j].text;
            int line = r->paper[j].line;
            const char *colon = strchr(text, ':');
            if (!colon)
                return nb_error_set(err, NB_EINVAL, file, line,
                                    "%s: paper needs 'ROW: VALUE' or 'ROW: COL=VALUE, ...'",
                                    what);
            char row[128];
            snprintf(row, sizeof row, "%.*s", (int)(colon - text), text);
            char *rs = row;
            while (isspace((unsigned char)*rs))
                rs++;
            size_t rn = strlen(rs);
            while (rn && isspace((unsigned char)rs[rn - 1]))
                rs[--rn] = '\0';
            char *rowc = NULL;
            if ((rc = canon_val(t->rows, rs, file, line, &rowc, err)))
                return rc;
            char *rest = strdup(colon + 1);
            if (!rest) {
                free(rowc);
                return nb_error_oom(err);
            }
            bool any = false;
            for (char *tok = strtok(rest, ","); tok; tok = strtok(NULL, ",")) {
                char *eq = strchr(tok, '=');
                char *num = eq ? eq + 1 : tok;
                if ((eq != NULL) != (t->cols >= 0)) {
                    free(rest), free(rowc);
                    return nb_error_set(err, NB_EINVAL, file, line,
                                        t->cols >= 0 ? "%s: paper values need COL=VALUE "
                                                       "(the table has columns)"
                                                     : "%s: paper takes 'ROW: VALUE' (the "
                                                       "table has no columns)",
                                        what);
                }
                char *colc = NULL;
                if (eq) {
                    *eq = '\0';
                    char *cs = tok;
                    while (isspace((unsigned char)*cs))
                        cs++;
                    size_t cn = strlen(cs);
                    while (cn && isspace((unsigned char)cs[cn - 1]))
                        cs[--cn] = '\0';
                    if ((rc = canon_val(t->cols, cs, file, line, &colc, err))) {
                        free(rest), free(rowc);
                        return rc;
                    }
                }
                char *end;
                double v = strtod(num, &end);
                while (isspace((unsigned char)*end))
                    end++;
                if (end == num || *end) {
                    free(rest), free(rowc), free(colc);
                    return nb_error_set(err, NB_EINVAL, file, line,
                                        "%s: paper value '%s' is not a number", what, num);
                }
                if (grow((void **)&t->paper, t->n_paper, sizeof *t->paper, err)) {
                    free(rest), free(rowc), free(colc);
                    return NB_ENOMEM;
                }
                struct nb_exp_paper *p = &t->paper[t->n_paper++];
                p->row = strdup(rowc);
                p->col = colc;
                p->value = v;
                p->line = line;
                any = true;
                if (!p->row) {
                    free(rest), free(rowc);
                    return nb_error_oom(err);
                }
            }
            free(rest);
            free(rowc);
            if (!any)
                return nb_error_set(err, NB_EINVAL, file, line, "%s: paper has no value",
                                    what);
        }
    }
    /* a figure's paper overlay: a table's paper numbers, its rows the
     * series and its columns the figure's x */
    for (int i = 0; i < e->n_figs; i++) {
        struct nb_exp_figure *f = &e->figs[i];
        struct raw_fig *r = &c->rf[i];
        f->paper_table = -1;
        if (!r->paper) {
            if (f->paper_label)
                return nb_error_set(err, NB_EINVAL, file, f->line,
                                    "figure %s: paper_label without paper = TABLE", f->name);
            continue;
        }
        if (!nb_fig_kind_info(f->kind)->paper_overlay)
            return nb_error_set(err, NB_EINVAL, file, r->paper_line,
                                "figure %s: paper overlays are for vs_batch and vs_lr figures",
                                f->name);
        for (int k = 0; k < e->n_tables; k++)
            if (!strcmp(e->tables[k].name, r->paper))
                f->paper_table = k;
        if (f->paper_table < 0)
            return nb_error_set(err, NB_EINVAL, file, r->paper_line,
                                "figure %s: paper = %s names no [table]", f->name, r->paper);
        const struct nb_exp_table *t = &e->tables[f->paper_table];
        if (t->cols != f->x || t->n_paper == 0)
            return nb_error_set(err, NB_EINVAL, file, r->paper_line,
                                "figure %s: table %s needs paper numbers and columns = %s%s%s "
                                "(the figure's x)",
                                f->name, t->name, nb_keys[f->x].section, ".", nb_keys[f->x].key);
    }
    int central = -1;
    for (int i = 0; i < e->n_checks; i++) {
        if (!e->checks[i].text)
            return nb_error_set(err, NB_EINVAL, c->check_file[i], c->check_line[i],
                                "check %s has no 'expect = STATEMENT'", e->checks[i].name);
        e->checks[i].central = c->check_central[i] > 0;
        if (e->checks[i].central && central >= 0)
            return nb_error_set(err, NB_EINVAL, c->check_file[i], c->check_line[i],
                                "check %s: only one check can be central (%s is)",
                                e->checks[i].name, e->checks[central].name);
        if (e->checks[i].central)
            central = i;
    }
    return 0;
}

int nb_experiment_load(const char *path, struct nb_experiment *e, struct nb_error *err)
{
    memset(e, 0, sizeof *e);
    if (!(e->path = strdup(path)))
        return nb_error_oom(err);
    struct lctx c = {.e = e, .top = path};
    int rc = nb_ini_parse(path, handler, &c, err);
    if (!rc)
        rc = finish(&c, err);
    raw_free(&c);
    if (rc)
        nb_experiment_free(e);
    return rc;
}

void nb_experiment_free(struct nb_experiment *e)
{
    if (!e)
        return;
    free(e->path), free(e->name), free(e->claim), free(e->source), free(e->paper);
    free(e->estimate), free(e->notes), free(e->caveats), free(e->robustness);
    for (int i = 0; i < e->n_discussion; i++)
        free(e->discussion[i]);
    free(e->discussion);
    for (int i = 0; i < e->n_configs; i++) {
        free(e->configs ? e->configs[i] : NULL);
        free(e->config_paths ? e->config_paths[i] : NULL);
    }
    free(e->configs), free(e->config_paths);
    for (int i = 0; i < e->n_quick; i++)
        free(e->quick[i].section), free(e->quick[i].key), free(e->quick[i].value);
    free(e->quick);
    for (int i = 0; i < e->n_figs; i++) {
        free(e->figs[i].name), free(e->figs[i].param), free(e->figs[i].caption);
        free(e->figs[i].paper_label);
        nb_filters_free(e->figs[i].where, e->figs[i].n_where);
    }
    free(e->figs);
    for (int i = 0; i < e->n_tables; i++) {
        struct nb_exp_table *t = &e->tables[i];
        free(t->name), free(t->caption);
        nb_filters_free(t->where, t->n_where);
        for (int j = 0; j < t->n_paper; j++)
            free(t->paper[j].row), free(t->paper[j].col);
        free(t->paper);
    }
    free(e->tables);
    for (int i = 0; i < e->n_checks; i++)
        nb_check_free(&e->checks[i]);
    free(e->checks);
    memset(e, 0, sizeof *e);
}

/* ======================================================================
 * Markdown helpers
 * ====================================================================== */

/* Decimals for a number in a report cell: 1 from 100 up, 2 from 0.1 up,
 * -1 (3 significant digits) below or for huge values. */
static int decimals(double v)
{
    double a = fabs(v);
    if (v == 0)
        return 2;
    if (a >= 1e5 || a < 0.1)
        return -1;
    return a >= 100 ? 1 : 2;
}

/* A number for a report cell. */
static const char *fnum(double v, char *buf, size_t n)
{
    if (isnan(v))
        snprintf(buf, n, "n/a");
    else if (isinf(v))
        snprintf(buf, n, "%sinf", v < 0 ? "-" : "");
    else if (decimals(v) < 0)
        snprintf(buf, n, "%.3g", v);
    else
        snprintf(buf, n, "%.*f", decimals(v), v);
    return buf;
}

/* "mean ± std" with the std at the mean's decimals. */
static const char *fpair(double m, double sd, char *buf, size_t n)
{
    char a[64], b[64];
    int d = decimals(m);
    fnum(m, a, sizeof a);
    if (d >= 0 && isfinite(sd))
        snprintf(b, sizeof b, "%.*f", d, sd);
    else
        fnum(sd, b, sizeof b);
    snprintf(buf, n, "%s ± %s", a, b);
    return buf;
}

/* Writes s with '|' escaped (markdown table cells). */
static void cell_str(FILE *fp, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", fp);
        else if (*s == '\n')
            fputc(' ', fp);
        else
            fputc(*s, fp);
    }
}

static int cmp_val_str(const char *a, const char *b)
{
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    if (ea != a && !*ea && eb != b && !*eb)
        return x < y ? -1 : x > y;
    return strcmp(a, b);
}

/* Distinct values of key k over groups that pass the filters, in group
 * order (sorted when sort). */
static int distinct_vals(const struct nb_summary *s, int k, const struct nb_sum_filter *f,
                         int nf, bool sort, const char ***out)
{
    const char **v = malloc(((size_t)s->n_groups + 1) * sizeof *v);
    int n = 0;
    if (!v)
        return -1;
    for (int g = 0; g < s->n_groups; g++) {
        if (!nb_summary_group_matches(s, g, f, nf))
            continue;
        const char *x = nb_summary_group_val(s, g, k);
        bool dup = false;
        for (int i = 0; i < n && !dup; i++)
            dup = !strcmp(v[i], x);
        if (!dup)
            v[n++] = x;
    }
    if (sort)
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && cmp_val_str(v[j - 1], v[j]) > 0; j--) {
                const char *t = v[j];
                v[j] = v[j - 1];
                v[j - 1] = t;
            }
    *out = v;
    return n;
}

/* Stats of scalar sc over the finished runs of the groups matching the
 * filters and row (and col) values; *ngroups gets the groups pooled. */
static int cell_stats(const struct nb_summary *s, const struct nb_exp_table *t,
                      const char *row, const char *col, double *mean, double *sd,
                      int *ngroups)
{
    double *v = malloc((s->n_runs + 1) * sizeof *v);
    if (!v)
        return -1;
    size_t nv = 0;
    *ngroups = 0;
    for (int g = 0; g < s->n_groups; g++) {
        if (!nb_summary_group_matches(s, g, t->where, t->n_where))
            continue;
        if (strcmp(nb_summary_group_val(s, g, t->rows), row))
            continue;
        if (col && strcmp(nb_summary_group_val(s, g, t->cols), col))
            continue;
        (*ngroups)++;
        const struct nb_sum_group *G = &s->groups[g];
        for (int i = 0; i < G->n_runs; i++) {
            const struct nb_sum_run *r = &s->runs[G->runs[i]];
            if (r->status == NB_SUM_DONE || r->status == NB_SUM_DIVERGED)
                v[nv++] = r->sc[t->scalar];
        }
    }
    int n = nb_stats(v, nv, mean, sd, NULL, NULL, NULL);
    free(v);
    return n;
}

static const struct nb_exp_paper *paper_at(const struct nb_exp_table *t, const char *row,
                                           const char *col)
{
    for (int i = 0; i < t->n_paper; i++) {
        const struct nb_exp_paper *p = &t->paper[i];
        if (cmp_val_str(p->row, row))
            continue;
        if ((col == NULL) != (p->col == NULL))
            continue;
        if (col && cmp_val_str(p->col, col))
            continue;
        return p;
    }
    return NULL;
}

static const char *key_title(int k)
{
    return nb_keys[k].full;
}

/* Under a table of test errors: the binomial standard error of one
 * run's test error at the table's mean error, next to the seed spread. */
static void write_test_noise(FILE *fp, const struct nb_summary *s, const struct nb_exp_table *t,
                             long n_test)
{
    if (t->scalar != NB_SC_FINAL_TEST_ERROR && t->scalar != NB_SC_BEST_TEST_ERROR &&
        t->scalar != NB_SC_FINAL5_TEST_ERROR)
        return;
    int ke = nb_key_lookup("train", "eval_samples");
    long n = n_test;
    double sum = 0;
    size_t cnt = 0;
    for (int g = 0; g < s->n_groups; g++) {
        if (!nb_summary_group_matches(s, g, t->where, t->n_where))
            continue;
        long es = ke >= 0 ? strtol(nb_summary_group_val(s, g, ke), NULL, 10) : 0;
        if (es > 0 && (n <= 0 || es < n))
            n = es;
        for (int i = 0; i < s->groups[g].n_runs; i++) {
            double v = s->runs[s->groups[g].runs[i]].sc[t->scalar];
            if (isfinite(v))
                sum += v, cnt++;
        }
    }
    if (n <= 0 || cnt == 0)
        return;
    double p = sum / (double)cnt / 100;
    char b1[64], b2[64];
    fprintf(fp, "Test-set noise: at the mean error of this table, %s %%, one run's test error "
                "on N = %ld test images has a binomial standard error of %s points; the ± in "
                "the cells is the standard deviation over seeds.\n\n",
            fnum(100 * p, b1, sizeof b1), n, fnum(100 * sqrt(p * (1 - p) / (double)n), b2, sizeof b2));
}

static void write_table(FILE *fp, const struct nb_summary *s, const struct nb_exp_table *t)
{
    const char **rows = NULL, **cols = NULL;
    int nr = distinct_vals(s, t->rows, t->where, t->n_where, false, &rows);
    int nc = t->cols >= 0 ? distinct_vals(s, t->cols, t->where, t->n_where, true, &cols) : 1;
    char b1[64], b3[160];
    bool paper = t->n_paper > 0;
    fprintf(fp, "**%s** - %s", t->name, nb_sum_scalar_name(t->scalar));
    if (t->caption)
        fprintf(fp, ": %s", t->caption);
    fputs("\n\n", fp);
    if (nr <= 0 || nc <= 0) {
        fputs("*(no finished run matches this table)*\n\n", fp);
        free(rows), free(cols);
        return;
    }
    fprintf(fp, "| %s |", key_title(t->rows));
    if (t->cols >= 0)
        for (int j = 0; j < nc; j++)
            fprintf(fp, " %s = %s |", nb_sum_key_short(t->cols), cols[j]);
    else
        fputs(paper ? " measured (mean ± std) | paper |" : " measured (mean ± std) |", fp);
    fputs("\n|---|", fp);
    for (int j = 0; j < (t->cols >= 0 ? nc : paper ? 2 : 1); j++)
        fputs("---:|", fp);
    fputc('\n', fp);
    bool pooled = false;
    for (int i = 0; i < nr; i++) {
        fprintf(fp, "| %s |", rows[i]);
        for (int j = 0; j < nc; j++) {
            double m, sd;
            int ng = 0;
            int n = cell_stats(s, t, rows[i], t->cols >= 0 ? cols[j] : NULL, &m, &sd, &ng);
            if (n <= 0)
                fputs(" - |", fp);
            else
                fprintf(fp, " %s (n=%d)%s |", fpair(m, sd, b3, sizeof b3), n,
                        ng > 1 ? " *" : "");
            pooled |= ng > 1;
        }
        if (t->cols < 0 && paper) {
            const struct nb_exp_paper *p = paper_at(t, rows[i], NULL);
            fprintf(fp, " %s |", p ? fnum(p->value, b1, sizeof b1) : "-");
        }
        fputc('\n', fp);
        if (t->cols >= 0) {
            bool any = false;
            for (int j = 0; j < nc; j++)
                any |= paper_at(t, rows[i], cols[j]) != NULL;
            if (any) {
                fprintf(fp, "| %s (paper) |", rows[i]);
                for (int j = 0; j < nc; j++) {
                    const struct nb_exp_paper *p = paper_at(t, rows[i], cols[j]);
                    fprintf(fp, " %s |", p ? fnum(p->value, b1, sizeof b1) : "-");
                }
                fputc('\n', fp);
            }
        }
    }
    fputc('\n', fp);
    if (pooled)
        fputs("\\* pooled over several groups that differ in other keys.\n\n", fp);
    free(rows), free(cols);
}

static const char *outcome_mark(int o)
{
    switch (o) {
    case NB_OUT_PASS: return "**pass**";
    case NB_OUT_FAIL: return "**fail**";
    case NB_OUT_INCONCLUSIVE: return "**inconclusive**";
    default: return "**n/a**";
    }
}

/* Seed of replicate k (the first group that has one). */
static long long rep_seed(const struct nb_summary *s, int k)
{
    for (int g = 0; g < s->n_groups; g++)
        if (k < s->groups[g].n_runs)
            return (long long)s->runs[s->groups[g].runs[k]].seed;
    return -1;
}

/* "effect [lo, hi]" of a result, or "-" */
static const char *effect_str(const struct nb_check_result *r, char *buf, size_t n)
{
    char b1[64], b2[64], b3[64];
    if (isnan(r->effect))
        snprintf(buf, n, "-");
    else if (isnan(r->lo))
        snprintf(buf, n, "%s", fnum(r->effect, b1, sizeof b1));
    else
        snprintf(buf, n, "%s [%s, %s]", fnum(r->effect, b1, sizeof b1),
                 fnum(r->lo, b2, sizeof b2), fnum(r->hi, b3, sizeof b3));
    return buf;
}

/* The claim as a condition on the effect: "effect < 0", "> 1.00" */
static const char *claim_str(const struct nb_check *c, const struct nb_check_result *r,
                             char *buf, size_t n)
{
    char b1[64];
    if (isnan(r->threshold))
        snprintf(buf, n, "%s", nb_cmp_str(c->op));
    else
        snprintf(buf, n, "%s %s", nb_cmp_str(c->op), fnum(r->threshold, b1, sizeof b1));
    return buf;
}

static int reg_of(const struct nb_report_in *in, int i)
{
    return in->reg ? in->reg[i] : NB_REG_NONE;
}

static void write_checks(FILE *fp, const struct nb_report_in *in)
{
    const struct nb_experiment *e = in->e;
    char b1[64], b2[64], b3[200];
    if (e->n_checks == 0) {
        fputs("No checks are defined: the verdict is inconclusive by construction.\n\n", fp);
        return;
    }
    fprintf(fp,
            "Each check measures one effect: the left side minus the right side, or the "
            "left side against a constant threshold. The estimate is the statement on the "
            "means over seeds; the 95 %% interval comes from %d bootstrap resamples of the "
            "seeds (one draw shared by all groups when they share their seeds: paired), "
            "Hesterberg's expanded percentile interval, which widens the percentile "
            "interval for few seeds to about a t-interval's width; the resampling is "
            "seeded, so the report is deterministic. **pass**: the interval lies on the "
            "claim's side of the threshold; **fail**: on the other side; "
            "**inconclusive**: it straddles the threshold (with about how many seeds would "
            "decide it, assuming the interval narrows as 1/sqrt(n)). The per-seed column "
            "evaluates the statement on each seed alone, for reading; it does not decide. "
            "A check whose statement differs from its pre-registration is post hoc and "
            "does not count toward the verdict. The central check decides \"not "
            "reproduced\".\n\n",
            NB_CHECK_N_BOOT);
    fputs("| check | what it tests | statement | effect [95 % CI] | claim | n | per seed "
          "| registration | outcome |\n"
          "|---|---|---|---|---|---:|---|---|---|\n",
          fp);
    int central = nb_check_central(e->checks, e->n_checks);
    for (int i = 0; i < e->n_checks; i++) {
        const struct nb_check *c = &e->checks[i];
        const struct nb_check_result *r = &in->results[i];
        fprintf(fp, "| %s%s | ", c->name, i == central ? " (central)" : "");
        cell_str(fp, c->about ? c->about : "");
        fputs(" | `", fp);
        cell_str(fp, c->text);
        fputs("` | ", fp);
        if (r->outcome == NB_OUT_NA && isnan(r->lhs)) {
            fputs("n/a: ", fp);
            cell_str(fp, r->why);
        } else {
            fputs(effect_str(r, b3, sizeof b3), fp);
            if (nb_check_effect_is_diff(c))
                fprintf(fp, " (%s - %s)", fnum(r->lhs, b1, sizeof b1),
                        fnum(r->rhs, b2, sizeof b2));
            if (r->outcome == NB_OUT_NA) {
                fputs("; n/a: ", fp);
                cell_str(fp, r->why);
            }
        }
        fprintf(fp, " | %s | %d%s | ", claim_str(c, r, b3, sizeof b3), r->n,
                r->paired ? "" : " (unpaired)");
        for (int k = 0; k < r->n_reps; k++) {
            long long sd = rep_seed(in->s, k);
            if (r->rep_holds[k] < 0)
                fprintf(fp, "%s%lld: n/a", k ? "; " : "", sd);
            else
                fprintf(fp, "%s%lld: %s %s", k ? "; " : "", sd,
                        fnum(nb_check_effect_is_diff(c) ? r->rep_lhs[k] - r->rep_rhs[k]
                                                        : r->rep_lhs[k],
                             b1, sizeof b1),
                        r->rep_holds[k] ? "✓" : "✗");
        }
        int rg = reg_of(in, i);
        fprintf(fp, " | %s | %s", rg == NB_REG_OK ? "pre-registered" : nb_reg_name(rg),
                outcome_mark(r->outcome));
        if (r->outcome == NB_OUT_INCONCLUSIVE) {
            if (r->seeds_needed > 0)
                fprintf(fp, " (~%d seeds would decide it)", r->seeds_needed);
            else
                fputs(" (the effect sits on the threshold)", fp);
        }
        if (r->post_hoc)
            fputs(" (post hoc: not counted)", fp);
        fputs(" |\n", fp);
    }
    fputc('\n', fp);
}

static void write_groups(FILE *fp, const struct nb_summary *s)
{
    char b1[160];
    static const int cols[] = {NB_SC_FINAL_TEST_ERROR, NB_SC_BEST_TEST_ERROR,
                               NB_SC_FINAL_TRAIN_LOSS, NB_SC_WALL_TIME};
    static const char *const titles[] = {"final test error (%)", "best test error (%)",
                                         "final train loss", "wall time (s)"};
    fputs("| group | runs | done | diverged | missing |", fp);
    for (int c = 0; c < 4; c++)
        fprintf(fp, " %s |", titles[c]);
    fputs("\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n", fp);
    double *v = malloc(((size_t)s->max_reps + 1) * sizeof *v);
    if (!v)
        return;
    for (int g = 0; g < s->n_groups; g++) {
        const struct nb_sum_group *G = &s->groups[g];
        fputs("| ", fp);
        cell_str(fp, G->label);
        fprintf(fp, " | %d | %d | %d | %d |", G->n_runs, G->n_done, G->n_diverged,
                G->n_missing);
        for (int c = 0; c < 4; c++) {
            size_t nv = 0;
            for (int i = 0; i < G->n_runs; i++) {
                const struct nb_sum_run *r = &s->runs[G->runs[i]];
                if (r->status == NB_SUM_DONE || r->status == NB_SUM_DIVERGED)
                    v[nv++] = r->sc[cols[c]];
            }
            double m, sd;
            if (nb_stats(v, nv, &m, &sd, NULL, NULL, NULL) == 0)
                fputs(" - |", fp);
            else
                fprintf(fp, " %s |", fpair(m, sd, b1, sizeof b1));
        }
        fputc('\n', fp);
    }
    free(v);
    fputc('\n', fp);
}

/* The names of the checks with outcome o (counted ones only unless
 * post_hoc), as " `a`, `b`"; returns how many. */
static int names_with(FILE *fp, const struct nb_report_in *in, int o, bool post_hoc)
{
    int k = 0;
    for (int i = 0; i < in->e->n_checks; i++) {
        const struct nb_check_result *r = &in->results[i];
        if (r->post_hoc != post_hoc || (o >= 0 && r->outcome != o))
            continue;
        if (fp)
            fprintf(fp, "%s`%s`", k ? ", " : " ", in->e->checks[i].name);
        k++;
    }
    return k;
}

static void verdict_text(FILE *fp, const struct nb_report_in *in)
{
    const struct nb_experiment *e = in->e;
    int n = e->n_checks, counted = n - names_with(NULL, in, -1, true);
    int pass = names_with(NULL, in, NB_OUT_PASS, false);
    fprintf(fp, "**Verdict: %s**%s. ", nb_verdict_name(in->verdict),
            in->quick ? " (quick run: a smoke test)" : "");
    if (!in->complete)
        fputs("Some runs are missing (failed or not run), so no verdict is drawn. ", fp);
    if (in->verdict == NB_VERDICT_NONE) {
        int min_n = -1;
        for (int i = 0; i < n; i++)
            if (in->results[i].outcome != NB_OUT_NA && !in->results[i].post_hoc &&
                (min_n < 0 || in->results[i].n < min_n))
                min_n = in->results[i].n;
        fprintf(fp, "Smoke test: the checks rest on %d seed%s, and a verdict needs at least "
                    "%d. ",
                min_n, min_n == 1 ? "" : "s", NB_VERDICT_MIN_SEEDS);
    }
    fprintf(fp, "%d of %d counted check%s pass", pass, counted, counted == 1 ? "" : "s");
    if (names_with(NULL, in, NB_OUT_FAIL, false)) {
        fputs("; failing:", fp);
        names_with(fp, in, NB_OUT_FAIL, false);
    }
    if (names_with(NULL, in, NB_OUT_INCONCLUSIVE, false)) {
        fputs("; inconclusive:", fp);
        names_with(fp, in, NB_OUT_INCONCLUSIVE, false);
    }
    if (names_with(NULL, in, NB_OUT_NA, false)) {
        fputs("; could not be evaluated:", fp);
        names_with(fp, in, NB_OUT_NA, false);
    }
    if (n - counted > 0) {
        fputs("; post hoc (reported, not counted):", fp);
        names_with(fp, in, -1, true);
    }
    if (n == 0)
        fputs("; no checks are defined", fp);
    int c = nb_check_central(e->checks, n);
    if (c >= 0) {
        char b1[200], b2[64];
        const struct nb_check_result *r = &in->results[c];
        fprintf(fp, ". Central check `%s`: effect %s, claim %s, n = %d: %s", e->checks[c].name,
                effect_str(r, b1, sizeof b1), claim_str(&e->checks[c], r, b2, sizeof b2), r->n,
                nb_outcome_name(r->outcome));
    }
    fputs(".\n\n", fp);
}

static int write_atomic_begin(const char *path, char *tmp, size_t n, FILE **fp,
                              struct nb_error *err)
{
    snprintf(tmp, n, "%s.tmp", path);
    *fp = fopen(tmp, "w");
    if (!*fp)
        return nb_error_set(err, NB_EIO, tmp, 0, "cannot create: %s", strerror(errno));
    return 0;
}

/* The pre-registration line of the setting. */
static void write_prereg(FILE *fp, const struct nb_report_in *in)
{
    const struct nb_prereg *p = in->prereg;
    if (!p || !p->present) {
        fputs("- pre-registration: none (every check counts as post hoc)\n", fp);
        return;
    }
    fprintf(fp, "- pre-registration: checks registered %s at revision %s ([%s](%s))", p->date,
            p->revision, NB_PREREG_FILE, NB_PREREG_FILE);
    if (p->runs_before > 0)
        fprintf(fp, ", after %ld runs existed", p->runs_before);
    else
        fputs(", before the first run", fp);
    char hex[17];
    struct nb_error e2;
    nb_error_clear(&e2);
    if (nb_prereg_file_hash(in->e->path, hex, &e2) == 0)
        fprintf(fp, "; the experiment file is %s", !strcmp(hex, p->experiment_hash)
                                                       ? "unchanged since"
                                                       : "edited since (captions, notes or "
                                                         "checks: see each check's "
                                                         "registration)");
    fputs("\n", fp);
}

static int write_atomic_end(const char *path, const char *tmp, FILE *fp, struct nb_error *err)
{
    int bad = ferror(fp);
    if (fclose(fp) != 0 || bad) {
        remove(tmp);
        return nb_error_set(err, NB_EIO, tmp, 0, "write error");
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return nb_error_set(err, NB_EIO, path, 0, "cannot rename into place: %s",
                            strerror(errno));
    }
    return 0;
}

int nb_report_write(const char *path, const struct nb_report_in *in, struct nb_error *err)
{
    const struct nb_experiment *e = in->e;
    const struct nb_summary *s = in->s;
    char tmp[4200];
    FILE *fp;
    int rc = write_atomic_begin(path, tmp, sizeof tmp, &fp, err);
    if (rc)
        return rc;
    fprintf(fp, "# %s: %s%s\n\n", e->name, nb_verdict_name(in->verdict),
            in->quick ? " (quick)" : "");
    if (in->quick)
        fputs("> **Quick run.** `--quick` shrinks the data and the training to exercise the "
              "whole path (runs, summaries, figures, checks, report) in minutes. Its numbers "
              "and its verdict say nothing about the claim; the full setting "
              "(`normbench reproduce` without `--quick`) is what the verdict is for.\n\n",
              fp);
    fprintf(fp, "**Claim.** %s\n\n", e->claim);
    fprintf(fp, "**Source.** %s\n\n", e->source);
    if (e->paper)
        fprintf(fp, "**The paper's numbers.** %s\n\n", e->paper);
    verdict_text(fp, in);
    /* the setting */
    fputs("## Setting\n\n", fp);
    for (int i = 0; i < e->n_configs; i++) {
        const struct nb_report_cfg *c = &in->cfgs[i];
        fprintf(fp, "- config `%s`%s%s%s: %zu runs (%zu done, %zu diverged, %zu failed, "
                    "%zu not run) in `%s`\n",
                e->configs[i], in->quick ? " (quick overlay `" : "",
                in->quick ? c->path : "", in->quick ? "`)" : "", c->total, c->done,
                c->diverged, c->failed, c->pending, c->exp_dir);
    }
    if (e->estimate)
        fprintf(fp, "- full run: %s\n", e->estimate);
    if (e->notes)
        fprintf(fp, "- notes: %s\n", e->notes);
    if (e->caveats)
        fprintf(fp, "- caveats: %s\n", e->caveats);
    fprintf(fp, "- robustness: %s\n",
            e->robustness ? e->robustness
                          : "not checked (the verdict was not rerun with other BLAS kernels)");
    write_prereg(fp, in);
    if (in->command)
        fprintf(fp, "- reproduce with `%s`\n", in->command);
    if (in->version)
        fprintf(fp, "- %s%s%s\n", in->version, in->when ? ", " : "", in->when ? in->when : "");
    fprintf(fp, "- machine: %s\n", in->machine ? in->machine : "unknown");
    fputc('\n', fp);
    if (e->n_tables > 0) {
        fputs("## Measured numbers and the paper's\n\n", fp);
        fputs("Cells: mean ± sample standard deviation over seeds (n = finished runs with a "
              "finite value; diverged runs are left out and counted in the groups table). "
              "The paper's setting differs from ours (see the claim's source); compare "
              "directions and sizes of effects, not digits.\n\n",
              fp);
        for (int i = 0; i < e->n_tables; i++) {
            write_table(fp, s, &e->tables[i]);
            write_test_noise(fp, s, &e->tables[i], in->n_test);
        }
    }
    fputs("## Checks\n\n", fp);
    write_checks(fp, in);
    if (e->n_discussion > 0) {
        fputs("## Discussion\n\n*Written by the experimenters after the runs "
              "(`discussion` in the experiment file); the verdict above comes from "
              "the checks alone.*\n\n",
              fp);
        for (int i = 0; i < e->n_discussion; i++)
            fprintf(fp, "%s\n\n", e->discussion[i]);
    }
    if (e->n_figs > 0) {
        fputs("## Figures\n\n", fp);
        for (int i = 0; i < e->n_figs; i++) {
            const struct nb_exp_figure *f = &e->figs[i];
            const struct nb_report_fig *rf = &in->figs[i];
            fprintf(fp, "### %s\n\n", f->name);
            if (rf->file)
                fprintf(fp, "![%s](%s)\n\n", f->caption ? f->caption : f->name, rf->file);
            else
                fprintf(fp, "*Not drawn: %s.*\n\n", rf->why ? rf->why : "unknown reason");
            if (f->caption)
                fprintf(fp, "%s", f->caption);
            if (rf->table)
                fprintf(fp, "%sData: [%s](%s) (plots/%s.gp).", f->caption ? " " : "", rf->table,
                        rf->table, nb_fig_kind_name(f->kind));
            fputs("\n\n", fp);
        }
    }
    fputs("## Groups\n\n", fp);
    fputs("Runs that differ only in the seed form a group; mean ± std over its finished "
          "runs.\n\n",
          fp);
    write_groups(fp, s);
    if (in->tables_dir)
    {
        bool probes = false;
        for (size_t i = 0; i < s->n_runs; i++)
            probes |= s->runs[i].n_probes > 0;
        const char *td = in->tables_dir;
        fprintf(fp, "Tables: [%s/groups.csv](%s/groups.csv) (per group), "
                    "[%s/runs.csv](%s/runs.csv) (per run), [%s/curves.csv](%s/curves.csv) "
                    "(per evaluation)",
                td, td, td, td, td, td);
        if (probes)
            fprintf(fp, ", [%s/probes.csv](%s/probes.csv) (probes per step)", td, td);
        fputs(".\n", fp);
    }
    return write_atomic_end(path, tmp, fp, err);
}

int nb_verdict_write(const char *path, const struct nb_report_in *in, struct nb_error *err)
{
    char tmp[4200];
    FILE *fp;
    int rc = write_atomic_begin(path, tmp, sizeof tmp, &fp, err);
    if (rc)
        return rc;
    int pass = 0;
    size_t done = 0, total = 0;
    for (int i = 0; i < in->e->n_checks; i++)
        pass += in->results[i].outcome == NB_OUT_PASS && !in->results[i].post_hoc;
    for (int i = 0; i < in->e->n_configs; i++) {
        done += in->cfgs[i].done + in->cfgs[i].diverged;
        total += in->cfgs[i].total;
    }
    int counted = in->e->n_checks - names_with(NULL, in, -1, true);
    fprintf(fp, "name = %s\nverdict = %s\nquick = %s\nchecks = %d/%d\nruns = %zu/%zu\n",
            in->e->name, nb_verdict_name(in->verdict), in->quick ? "true" : "false", pass,
            counted, done, total);
    int c = nb_check_central(in->e->checks, in->e->n_checks);
    if (c >= 0) {
        char b1[200], b2[64];
        const struct nb_check_result *r = &in->results[c];
        fprintf(fp, "central = %s\neffect = %s\ncentral_claim = %s\nn = %d\n"
                    "central_outcome = %s\n",
                in->e->checks[c].name, effect_str(r, b1, sizeof b1),
                claim_str(&in->e->checks[c], r, b2, sizeof b2), r->n,
                nb_outcome_name(r->outcome));
    }
    fputs("post_hoc =", fp);
    if (!names_with(fp, in, -1, true))
        fputs(" none", fp);
    fputc('\n', fp);
    fprintf(fp, "date = %s\nclaim = %s\nsource = %s\ncaveats = %s\n",
            in->when ? in->when : "", in->e->claim, in->e->source,
            in->e->caveats ? in->e->caveats : "");
    return write_atomic_end(path, tmp, fp, err);
}

/* ---- index ----------------------------------------------------------------- */

struct idx_row {
    char name[128];
    char claim[1024];
    char source[512];
    char caveats[1024];
    char verdict[64];
    char checks[32];
    char runs[64];
    char date[64];
    char central[128], effect[200], claimed[64], n[16], post_hoc[512];
    bool has;
    bool legacy;  /* written before intervals and pre-registration */
};

static void kv_read(const char *path, struct idx_row *r)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return;
    char line[2048];
    r->has = true;
    r->legacy = true;
    /* the claim, source and caveats the verdict was drawn for, not the
     * experiment file's current ones */
    r->caveats[0] = '\0';
    while (fgets(line, sizeof line, fp)) {
        char *eq = strstr(line, " = ");
        if (!eq)
            continue;
        *eq = '\0';
        char *v = eq + 3;
        size_t n = strlen(v);
        while (n && (v[n - 1] == '\n' || v[n - 1] == '\r'))
            v[--n] = '\0';
        if (!strcmp(line, "verdict"))
            snprintf(r->verdict, sizeof r->verdict, "%s", v);
        else if (!strcmp(line, "checks"))
            snprintf(r->checks, sizeof r->checks, "%s", v);
        else if (!strcmp(line, "runs"))
            snprintf(r->runs, sizeof r->runs, "%s", v);
        else if (!strcmp(line, "date"))
            snprintf(r->date, sizeof r->date, "%s", v);
        else if (!strcmp(line, "claim"))
            snprintf(r->claim, sizeof r->claim, "%s", v);
        else if (!strcmp(line, "caveats"))
            snprintf(r->caveats, sizeof r->caveats, "%s", v);
        else if (!strcmp(line, "central"))
            snprintf(r->central, sizeof r->central, "%s", v);
        else if (!strcmp(line, "effect"))
            snprintf(r->effect, sizeof r->effect, "%s", v);
        else if (!strcmp(line, "central_claim"))
            snprintf(r->claimed, sizeof r->claimed, "%s", v);
        else if (!strcmp(line, "n"))
            snprintf(r->n, sizeof r->n, "%s", v);
        else if (!strcmp(line, "post_hoc")) {
            snprintf(r->post_hoc, sizeof r->post_hoc, "%s", v);
            r->legacy = false;
        }
        else if (!strcmp(line, "source"))
            snprintf(r->source, sizeof r->source, "%s", v);
    }
    fclose(fp);
}

static int cmp_row(const void *a, const void *b)
{
    return strcmp(((const struct idx_row *)a)->name, ((const struct idx_row *)b)->name);
}

int nb_index_write(const char *root, const char *experiments_dir, bool quick,
                   struct nb_error *err)
{
    struct idx_row *rows = NULL;
    int n = 0;
    DIR *d = experiments_dir ? opendir(experiments_dir) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".ini") || de->d_name[0] == '.')
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", experiments_dir, de->d_name);
        struct nb_experiment e;
        struct nb_error e2;
        nb_error_clear(&e2);
        if (nb_experiment_load(path, &e, &e2))
            continue;
        struct idx_row *p = realloc(rows, (size_t)(n + 1) * sizeof *p);
        if (!p) {
            nb_experiment_free(&e);
            closedir(d);
            free(rows);
            return nb_error_oom(err);
        }
        rows = p;
        memset(&rows[n], 0, sizeof rows[n]);
        snprintf(rows[n].name, sizeof rows[n].name, "%s", e.name);
        snprintf(rows[n].claim, sizeof rows[n].claim, "%s", e.claim);
        snprintf(rows[n].source, sizeof rows[n].source, "%s", e.source);
        if (e.caveats)
            snprintf(rows[n].caveats, sizeof rows[n].caveats, "%s", e.caveats);
        n++;
        nb_experiment_free(&e);
    }
    if (d)
        closedir(d);
    /* verdict files, also of experiments not in experiments_dir */
    d = opendir(root);
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s/verdict.txt", root, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        int i;
        for (i = 0; i < n; i++)
            if (!strcmp(rows[i].name, de->d_name))
                break;
        if (i == n) {
            struct idx_row *p = realloc(rows, (size_t)(n + 1) * sizeof *p);
            if (!p) {
                closedir(d);
                free(rows);
                return nb_error_oom(err);
            }
            rows = p;
            memset(&rows[n], 0, sizeof rows[n]);
            snprintf(rows[n].name, sizeof rows[n].name, "%.127s", de->d_name);
            n++;
        }
        kv_read(path, &rows[i]);
    }
    if (d)
        closedir(d);
    if (n > 1)
        qsort(rows, (size_t)n, sizeof *rows, cmp_row);
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/index.md", root);
    FILE *fp;
    int rc = nb_mkdirs(root, err);
    if (!rc)
        rc = write_atomic_begin(path, tmp, sizeof tmp, &fp, err);
    if (rc) {
        free(rows);
        return rc;
    }
    fprintf(fp, "# normbench results%s\n\n", quick ? " (quick runs)" : "");
    if (quick)
        fputs("> Quick runs (`normbench reproduce NAME --quick`) shrink data and steps to "
              "exercise the pipeline; their verdicts mean nothing about the claims.\n\n",
              fp);
    fputs("Every experiment of `experiments/` with the verdict of its last `normbench "
          "reproduce` (`not run` when there is none). A verdict comes only from the "
          "measured runs and the experiment's pre-registered checks; each check's effect "
          "has a 95 % interval from a bootstrap over seeds (see any report's Checks "
          "section). **reproduced**: every check's interval lies on the claim's side; "
          "**partly reproduced**: some checks pass and some fail; **not reproduced**: the "
          "central check fails; **inconclusive**: an interval straddles its threshold, a "
          "check cannot be evaluated, or runs are missing; **no verdict**: fewer than 5 "
          "seeds (a smoke test). Post hoc checks (changed after the runs) are listed and "
          "do not count.\n\n",
          fp);
    fputs("| experiment | claim | verdict | checks passed | central check: effect [95 % CI] "
          "| n seeds | post hoc | caveats | runs | date |\n"
          "|---|---|---|---:|---|---:|---|---|---:|---|\n",
          fp);
    for (int i = 0; i < n; i++) {
        const struct idx_row *r = &rows[i];
        if (r->has)
            fprintf(fp, "| [%s](%s/report.md) | ", r->name, r->name);
        else
            fprintf(fp, "| %s | ", r->name);
        cell_str(fp, r->claim);
        if (r->source[0]) {
            fputs(" (", fp);
            cell_str(fp, r->source);
            fputs(")", fp);
        }
        fprintf(fp, " | %s%s | %s | ", r->has ? r->verdict : "not run",
                r->legacy ? " (old rules: every seed agrees, 2-3 seeds; not pre-registered; "
                            "to be redone)"
                          : "",
                r->has ? r->checks : "-");
        if (r->has && r->central[0])
            fprintf(fp, "`%s`: %s, claim %s", r->central, r->effect, r->claimed);
        else
            fputs("-", fp);
        fprintf(fp, " | %s | %s | ", r->has && r->n[0] ? r->n : "-",
                r->has && r->post_hoc[0] ? r->post_hoc : "-");
        cell_str(fp, r->caveats[0] ? r->caveats : "-");
        fprintf(fp, " | %s | %s |\n", r->has ? r->runs : "-", r->has ? r->date : "-");
    }
    free(rows);
    return write_atomic_end(path, tmp, fp, err);
}
