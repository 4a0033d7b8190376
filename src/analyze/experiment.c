/* src/analyze/experiment.c - an experiment file (experiments/NAME.ini)
 * read strictly into struct nb_experiment; see report.h. */
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
#include "core/text.h"

/* ======================================================================
 * Loading experiments/NAME.ini
 * ====================================================================== */

enum sec { S_NONE = 0, S_EXPERIMENT, S_QUICK, S_FIGURE, S_TABLE, S_CHECK };

struct seen {
    enum sec sec;
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
    char *kind, *x, *y, *where, *paper, *series;
    int kind_line, x_line, y_line, where_line, paper_line, series_line, yscale_line;
};

struct lctx {
    struct nb_experiment *e;
    const char *top;       /* top-level path */
    enum sec sec;
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

/* Is s a usable experiment name (letters, digits, _ - .; not empty)? */
static bool valid_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return false;
    return true;
}

/* Replaces *dst with a copy of v; 0 or NB_ENOMEM. */
static int set_str(char **dst, const char *v, struct nb_error *err)
{
    free(*dst);
    *dst = strdup(v);
    return *dst ? 0 : nb_error_oom(err);
}

/* Makes room for element n of *p (n elements of elem bytes), the new one
 * zeroed; 0 or NB_ENOMEM. */
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
    EK_DISCUSSION, EK_CAVEATS, EK_ROBUSTNESS, EK_PROBE_STATS, EK_PROBE_LAYERS, EK_COUNT
};
static const char *const exp_keys[EK_COUNT + 1] = {
    [EK_NAME] = "name",         [EK_CLAIM] = "claim",     [EK_SOURCE] = "source",
    [EK_PAPER] = "paper",       [EK_CONFIG] = "config",   [EK_ESTIMATE] = "estimate",
    [EK_NOTES] = "notes",       [EK_DISCUSSION] = "discussion",
    [EK_CAVEATS] = "caveats",   [EK_ROBUSTNESS] = "robustness",
    [EK_PROBE_STATS] = "probe_stats", [EK_PROBE_LAYERS] = "probe_layers"};
enum fig_key { FK_KIND, FK_X, FK_Y, FK_WHERE, FK_PARAM, FK_CAPTION, FK_PAPER, FK_PAPER_LABEL,
               FK_SERIES, FK_YSCALE, FK_COUNT };
static const char *const fig_keys[FK_COUNT + 1] = {
    [FK_KIND] = "kind",       [FK_X] = "x",         [FK_Y] = "y",
    [FK_WHERE] = "where",     [FK_PARAM] = "param", [FK_CAPTION] = "caption",
    [FK_PAPER] = "paper",     [FK_PAPER_LABEL] = "paper_label", [FK_SERIES] = "series",
    [FK_YSCALE] = "yscale"};
enum table_key { TK_METRIC, TK_ROWS, TK_COLUMNS, TK_WHERE, TK_PAPER, TK_CAPTION, TK_COUNT };
static const char *const table_keys[TK_COUNT + 1] = {
    [TK_METRIC] = "metric", [TK_ROWS] = "rows",   [TK_COLUMNS] = "columns",
    [TK_WHERE] = "where",   [TK_PAPER] = "paper", [TK_CAPTION] = "caption"};
enum check_key { CK_EXPECT, CK_ABOUT, CK_CENTRAL, CK_COUNT };
static const char *const check_keys[CK_COUNT + 1] = {
    [CK_EXPECT] = "expect", [CK_ABOUT] = "about", [CK_CENTRAL] = "central"};

bool nb_experiment_after_runs_key(const char *section, const char *key)
{
    return !strcmp(section, "experiment") &&
           (!strcmp(key, exp_keys[EK_ROBUSTNESS]) || !strcmp(key, exp_keys[EK_DISCUSSION]));
}

/* Index of k in the NULL-terminated list l, or -1. */
static int key_in(const char *const *l, const char *k)
{
    for (int i = 0; l[i]; i++)
        if (!strcmp(l[i], k))
            return i;
    return -1;
}

/* Length of the NULL-terminated list l. */
static int list_n(const char *const *l)
{
    int n = 0;
    while (l[n])
        n++;
    return n;
}

/* The error for a key not in section secname's list l, with a did-you-mean
 * hint. */
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

/* A key given twice in one section is an error unless repeatable; records
 * it as seen. */
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

/* Starts a section: [experiment], [quick SECTION], [figure NAME], [table
 * NAME] or [check NAME] (a new figure, table or check), refusing others and
 * repeats. */
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

/* A key name as an experiment file writes it (section.key, a unique bare
 * key, bs or G) to its index in the key table. */
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

/* A per-run scalar's name to its index, with a did-you-mean hint when it is
 * not one. */
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

/* The next whitespace-separated word of *p: its start, its length in *n
 * (0 at the end), *p moved past it. */
static const char *next_word(const char **p, size_t *n)
{
    while (isspace((unsigned char)**p))
        (*p)++;
    const char *w = *p;
    *n = strcspn(w, " \t\n\r");
    *p += *n;
    return w;
}

/* Appends a copy of name to the list (*list, *n) of key's words; a word
 * already listed is an error at it. */
static int add_word(char ***list, int *n, const char *name, const char *key,
                    const struct nb_ini_item *it, struct nb_error *err)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp((*list)[i], name))
            return nb_error_set(err, NB_EINVAL, it->file, it->line, "%s: '%s' is listed twice",
                                key, name);
    if (grow((void **)list, *n, sizeof **list, err))
        return NB_ENOMEM;
    if (!((*list)[*n] = strdup(name)))
        return nb_error_oom(err);
    (*n)++;
    return 0;
}

/* probe_stats = PROBE.STAT ...: the probe rows the summary keeps, each a
 * stat the probe writes (not one the summary derives from them), once. */
static int set_probe_stats(struct nb_experiment *e, const struct nb_ini_item *it,
                           struct nb_error *err)
{
    size_t n;
    for (const char *p = it->value, *w; (w = next_word(&p, &n)), n;) {
        char name[160];
        snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), w);
        struct nb_metric m;
        int rc = nb_metric_parse(name, it->file, it->line, &m, err);
        if (rc)
            return rc;
        bool probe = m.kind == NB_MK_PROBE, derived = false;
        for (int d = 0; probe && nb_sum_derived_stats[d]; d++)
            derived |= !strcmp(m.stat, nb_sum_derived_stats[d]);
        nb_metric_free(&m);
        if (!probe || derived) {
            nb_error_set(err, NB_EINVAL, it->file, it->line,
                         "probe_stats: '%s' is not a stat a probe writes", name);
            return nb_error_hint(err, derived ? "the summary derives it; keep the stats it is "
                                                "made of (e.g. landscape.loss_min and "
                                                "landscape.loss_max)"
                                              : "name PROBE.STAT, e.g. landscape.loss_min");
        }
        if ((rc = add_word(&e->probe_stats, &e->n_probe_stats, name, "probe_stats", it, err)))
            return rc;
    }
    return 0;
}

/* probe_layers = LAYER ...: the layers whose probe rows the summary keeps
 * (besides the rows of no layer), each once.  (An empty value is the INI
 * reader's error.) */
static int set_probe_layers(struct nb_experiment *e, const struct nb_ini_item *it,
                            struct nb_error *err)
{
    size_t n;
    for (const char *p = it->value, *w; (w = next_word(&p, &n)), n;) {
        char name[160];
        if (n >= sizeof name)
            return nb_error_set(err, NB_EINVAL, it->file, it->line,
                                "probe_layers: a layer name of %zu characters is too long", n);
        snprintf(name, sizeof name, "%.*s", (int)n, w);
        int rc = add_word(&e->probe_layers, &e->n_probe_layers, name, "probe_layers", it, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* A key of [experiment]: claim, source, paper, config (a list), notes, .... */
static int on_experiment(struct lctx *c, const struct nb_ini_item *it, struct nb_error *err)
{
    struct nb_experiment *e = c->e;
    const char *v = it->value;
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
    case EK_PROBE_STATS: return set_probe_stats(e, it, err);
    case EK_PROBE_LAYERS: return set_probe_layers(e, it, err);
    case EK_DISCUSSION:
        if (grow((void **)&e->discussion, e->n_discussion, sizeof *e->discussion, err))
            return NB_ENOMEM;
        return set_str(&e->discussion[e->n_discussion++], v, err);
    case EK_COUNT: break;
    }
    return NB_EINVAL; /* not reached: k < EK_COUNT */
}

/* A key of a [quick SECTION]: an override of the config for --quick runs, checked against the key table. */
static int on_quick(struct lctx *c, const struct nb_ini_item *it, struct nb_error *err)
{
    struct nb_experiment *e = c->e;
    const char *v = it->value;
    int k = nb_key_lookup(c->quick_sec, it->key);
    if (k < 0) {
        nb_error_set(err, NB_EINVAL, it->file, it->line, "unknown key '%s' in [%s]",
                     it->key, c->quick_sec);
        const char *cands[256];
        int nc = 0;
        for (int i = 0; i < nb_key_count() && nc < 256; i++)
            if (!strcmp(nb_key_at(i)->section, c->quick_sec))
                cands[nc++] = nb_key_at(i)->key;
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
    if (!strchr(v, '(') && !strstr(v, "..") && !(nb_key_at(k)->flags & NB_KF_STRUCT)) {
        char *copy = strdup(v);
        if (!copy)
            return nb_error_oom(err);
        bool list = nb_key_at(k)->type == NB_KEY_INT_LIST ||
                    nb_key_at(k)->type == NB_KEY_FLOAT_LIST;
        for (char *tok = list ? copy : strtok(copy, ","); tok;
             tok = list ? NULL : strtok(NULL, ",")) {
            while (isspace((unsigned char)*tok))
                tok++;
            size_t n = strlen(tok);
            while (n && isspace((unsigned char)tok[n - 1]))
                tok[--n] = '\0';
            char *canon = NULL;
            int rc = nb_key_canon(nb_key_at(k), tok, it->file, it->line, &canon, err);
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

/* A key of a [figure NAME]. */
static int on_figure(struct lctx *c, const struct nb_ini_item *it, struct nb_error *err)
{
    struct nb_experiment *e = c->e;
    const char *v = it->value;
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
    case FK_SERIES:
        r->series_line = it->line;
        return set_str(&r->series, v, err);
    case FK_CAPTION: return set_str(&f->caption, v, err);
    case FK_YSCALE:
        if (strcmp(v, "auto") && strcmp(v, "linear") && strcmp(v, "log"))
            return nb_error_set(err, NB_EINVAL, it->file, it->line,
                                "yscale must be auto, linear or log, not '%s'", v);
        r->yscale_line = it->line;
        return set_str(&f->yscale, v, err);
    case FK_COUNT: break;
    }
    return NB_EINVAL; /* not reached: k < FK_COUNT */
}

/* A key of a [table NAME]. */
static int on_table(struct lctx *c, const struct nb_ini_item *it, struct nb_error *err)
{
    struct nb_experiment *e = c->e;
    const char *v = it->value;
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

/* A key of a [check NAME]: expect (parsed now), about, central. */
static int on_check(struct lctx *c, const struct nb_ini_item *it, struct nb_error *err)
{
    struct nb_experiment *e = c->e;
    const char *v = it->value;
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

/* The INI handler: section headers, then each key by its section. */
static int handler(void *user, const struct nb_ini_item *it, struct nb_error *err)
{
    struct lctx *c = user;
    if (!it->key)
        return section_header(c, it, err);
    switch (c->sec) {
    case S_NONE:
        return nb_error_set(err, NB_EINVAL, it->file, it->line,
                            "key '%s' before the first section (start with [experiment])",
                            it->key);
    case S_EXPERIMENT:
        return on_experiment(c, it, err);
    case S_QUICK:
        return on_quick(c, it, err);
    case S_FIGURE:
        return on_figure(c, it, err);
    case S_TABLE:
        return on_table(c, it, err);
    case S_CHECK:
        return on_check(c, it, err);
    }
    return nb_error_set(err, NB_EINVAL, it->file, it->line, "internal: bad section");
}

/* Frees the raw figure and table fields kept while the file is read. */
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
        free(c->rf[i].paper), free(c->rf[i].series);
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
    return nb_key_canon(nb_key_at(k), v, file, line, out, err);
}

/* A key-on-x figure's `series = KEY, ...`: the keys whose values make a
 * series (instead of every varying key but x), resolved into f->series. */
static int figure_series(struct nb_exp_figure *f, const struct raw_fig *r, const char *file,
                         const char *what, bool wants_x, struct nb_error *err)
{
    if (!wants_x)
        return nb_error_set(err, NB_EINVAL, file, r->series_line,
                            "%s: series is for figures with a key on x (vs_batch, vs_lr, "
                            "hessian)",
                            what);
    char *copy = strdup(r->series);
    if (!copy)
        return nb_error_oom(err);
    int rc = 0;
    for (char *tok = strtok(copy, ","); tok && !rc; tok = strtok(NULL, ",")) {
        char *name = nb_trim_left(tok);
        nb_trim_right(name);
        int k;
        if ((rc = resolve_key_name(name, file, r->series_line, what, &k, err)))
            break;
        int *p = realloc(f->series, (size_t)(f->n_series + 1) * sizeof *p);
        if (!p) {
            rc = nb_error_oom(err);
            break;
        }
        f->series = p;
        f->series[f->n_series++] = k;
    }
    free(copy);
    if (!rc && f->n_series == 0)
        rc = nb_error_set(err, NB_EINVAL, file, r->series_line, "%s: series names no key", what);
    return rc;
}

/* Figure i of c's experiment: its kind and what the kind takes (x, y,
 * param), keys resolved, filters parsed. */
static int finish_figure(struct lctx *c, int i, struct nb_error *err)
{
    struct nb_experiment *e = c->e;
    const char *file = e->path;
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
    if (f->yscale && !info->takes_y)
        return nb_error_set(err, NB_EINVAL, file, r->yscale_line,
                            "%s: yscale is for vs_batch and vs_lr figures", what);
    if (wants_x) {
        const char *x = r->x ? r->x : info->default_x;
        int rc = resolve_key_name(x, file, r->x ? r->x_line : f->line, what, &f->x, err);
        if (rc)
            return rc;
        if (nb_key_at(f->x)->type != NB_KEY_INT && nb_key_at(f->x)->type != NB_KEY_FLOAT)
            return nb_error_set(err, NB_EINVAL, file, r->x ? r->x_line : f->line,
                                "%s: x = %s is not a numeric key", what, x);
    }
    if (f->kind == NB_FIG_TRACE && !(r->y && strchr(r->y, '.')))
        return nb_error_set(err, NB_EINVAL, file, r->y ? r->y_line : f->line,
                            "%s: kind trace needs y = PROBE.STAT (a probe's stat over "
                            "training)", what);
    if (r->y && strchr(r->y, '.')) { /* PROBE.STAT */
        int rc = nb_metric_parse(r->y, file, r->y_line, &f->probe, err);
        if (rc)
            return rc;
        if (r->paper)
            return nb_error_set(err, NB_EINVAL, file, r->y_line,
                                "%s: a paper overlay goes with a per-run scalar on y", what);
        f->scalar = -1;
    } else if (r->y) {
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
    if (r->series)
        return figure_series(f, r, file, what, wants_x, err);
    return 0;
}

/* One `paper = ROW: VALUE` (or ROW: COL=VALUE, ...) line of table t, at
 * line of file, into t->paper. */
static int table_paper(struct nb_exp_table *t, const char *text, const char *file, int line,
                       const char *what, struct nb_error *err)
{
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
    int rc;
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
    return 0;
}

/* Table i of c's experiment: metric, rows, columns and filters resolved,
 * its paper lines parsed. */
static int finish_table(struct lctx *c, int i, struct nb_error *err)
{
    struct nb_experiment *e = c->e;
    const char *file = e->path;
    struct nb_exp_table *t = &e->tables[i];
    struct raw_table *r = &c->rt[i];
    char what[200];
    snprintf(what, sizeof what, "table %s", t->name);
    if (!r->metric || !r->rows)
        return nb_error_set(err, NB_EINVAL, file, t->line, "%s needs metric and rows",
                            what);
    int rc;
    if (strchr(r->metric, '.')) { /* PROBE.STAT */
        if ((rc = nb_metric_parse(r->metric, file, r->metric_line, &t->probe, err)))
            return rc;
    } else if ((rc = scalar_of(r->metric, file, r->metric_line, what, &t->scalar, err))) {
        return rc;
    }
    rc = resolve_key_name(r->rows, file, r->rows_line, what, &t->rows, err);
    if (!rc && r->cols && t->scalar < 0 && !strcmp(r->cols, "param"))
        t->cols = NB_TABLE_COLS_PARAM;
    else if (!rc && r->cols)
        rc = resolve_key_name(r->cols, file, r->cols_line, what, &t->cols, err);
    if (!rc && r->where)
        rc = nb_filters_parse(r->where, what, file, r->where_line, &t->where,
                              &t->n_where, err);
    if (rc)
        return rc;
    if (t->scalar < 0 && r->n_paper)
        return nb_error_set(err, NB_EINVAL, file, r->paper[0].line,
                            "%s: paper numbers go with a per-run scalar, not a probe's", what);
    for (int j = 0; j < r->n_paper; j++)
        if ((rc = table_paper(t, r->paper[j].text, file, r->paper[j].line, what, err)))
            return rc;
    return 0;
}

/* Figure i's paper overlay: a table's paper numbers, its rows the series
 * and its columns the figure's x (run after every table is finished). */
static int finish_overlay(struct lctx *c, int i, struct nb_error *err)
{
    struct nb_experiment *e = c->e;
    const char *file = e->path;
    struct nb_exp_figure *f = &e->figs[i];
    struct raw_fig *r = &c->rf[i];
    f->paper_table = -1;
    if (!r->paper) {
        if (f->paper_label)
            return nb_error_set(err, NB_EINVAL, file, f->line,
                                "figure %s: paper_label without paper = TABLE", f->name);
        return 0;
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
                            f->name, t->name, nb_key_at(f->x)->section, ".", nb_key_at(f->x)->key);
    return 0;
}

/* Every check has a statement; at most one is central. */
static int finish_checks(struct lctx *c, struct nb_error *err)
{
    struct nb_experiment *e = c->e;
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

/* After the whole file is read: the required keys, the experiment's name,
 * then figures, tables, overlays and checks resolved and cross-checked. */
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
    int rc = 0;
    for (int i = 0; i < e->n_figs && !rc; i++)
        rc = finish_figure(c, i, err);
    for (int i = 0; i < e->n_tables && !rc; i++)
        rc = finish_table(c, i, err);
    for (int i = 0; i < e->n_figs && !rc; i++)
        rc = finish_overlay(c, i, err);
    return rc ? rc : finish_checks(c, err);
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

int nb_experiment_keep_probes(const struct nb_experiment *e, struct nb_summary *s)
{
    if (nb_summary_keep_probes(s, e->probe_stats, e->n_probe_stats) ||
        nb_summary_keep_layers(s, e->probe_layers, e->n_probe_layers))
        return NB_ENOMEM;
    return 0;
}

void nb_experiment_free(struct nb_experiment *e)
{
    if (!e)
        return;
    free(e->path), free(e->name), free(e->claim), free(e->source), free(e->paper);
    free(e->estimate), free(e->notes), free(e->caveats), free(e->robustness);
    for (int i = 0; i < e->n_probe_stats; i++)
        free(e->probe_stats[i]);
    free(e->probe_stats);
    for (int i = 0; i < e->n_probe_layers; i++)
        free(e->probe_layers[i]);
    free(e->probe_layers);
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
        nb_metric_free(&e->figs[i].probe);
        free(e->figs[i].yscale);
        free(e->figs[i].series);
        nb_filters_free(e->figs[i].where, e->figs[i].n_where);
    }
    free(e->figs);
    for (int i = 0; i < e->n_tables; i++) {
        struct nb_exp_table *t = &e->tables[i];
        free(t->name), free(t->caption);
        nb_metric_free(&t->probe);
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

