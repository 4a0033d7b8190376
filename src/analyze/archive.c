/* src/analyze/archive.c - see archive.h. */
#include "analyze/archive.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "core/text.h"
#include "config/keys.h"

static const char *const files[NB_AR_COUNT] = {"runs", "metrics", "probes", "slices"};

/* runs.csv: the fixed columns before the keys, the scalar after them, and
 * the meta.txt facts (runner.c writes them; the report reads them). */
static const char *const run_cols[] = {"run_id", "config", "status", "seed", NULL};
enum { RC_RUN_ID, RC_CONFIG, RC_STATUS, RC_SEED, RC_N };
static const char *const meta_keys[] = {
    "git_revision", "package", "start_utc", "end_utc", "host", "cpu", "cpus_online",
    "blas", "conv_algo", "openblas_coretype", "threads", "wall_seconds", "cpu_seconds",
    "data", "params", "jobs", NULL};
/* meta_keys from here on were recorded since 0.1.0: a column only when
 * some run has a value, so archives of runs made before regenerate byte
 * for byte */
enum { META_ADDED_FROM = 14 };
/* slices.csv: the columns before slice.csv's own */
static const char *const slice_cols[] = {"slice", "scan", NULL};

struct nb_ar_run {
    const char *run_id;      /* runs.csv's cell */
    size_t row;
    size_t first[NB_AR_COUNT], end[NB_AR_COUNT]; /* rows in each data table */
};

/* Length of the NULL-terminated list l. */
static int n_of(const char *const *l)
{
    int n = 0;
    while (l[n])
        n++;
    return n;
}

/* ---- CSV fields into a text ----------------------------------------------- */

/* Appends s as one CSV field (quoted when it needs to be; NULL is an
 * empty field), preceded by a comma unless first. */
static void sb_field(struct nb_text *b, const char *s, bool first)
{
    if (!first)
        nb_text_put(b, ",", 1);
    if (!s)
        return;
    if (nb_csv_is_bare(s)) {
        nb_text_puts(b, s);
        return;
    }
    nb_text_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        nb_text_put(b, p, 1);
        if (*p == '"')
            nb_text_put(b, p, 1);
    }
    nb_text_put(b, "\"", 1);
}

/* ---- files ------------------------------------------------------------------ */

/* The whole (possibly gzip-compressed) file into *text.  NB_ENOENT when it
 * does not exist. */
static int slurp(const char *path, char **text, size_t *len, struct nb_error *err)
{
    *text = NULL;
    *len = 0;
    struct stat st;
    if (stat(path, &st) != 0)
        return NB_ENOENT;
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return nb_error_set(err, NB_EIO, path, 0, "cannot open: %s", strerror(errno));
    struct nb_text b = {0};
    char buf[65536];
    int n;
    while ((n = gzread(gz, buf, sizeof buf)) > 0)
        nb_text_put(&b, buf, (size_t)n);
    int zerr = 0;
    const char *msg = n < 0 ? gzerror(gz, &zerr) : NULL;
    char m[256];
    snprintf(m, sizeof m, "%s", msg ? msg : "");
    gzclose(gz);
    if (n < 0) {
        free(b.s);
        return nb_error_set(err, NB_EFORMAT, path, 0, "cannot read (damaged gzip?): %s", m);
    }
    if (b.failed) {
        free(b.s);
        return nb_error_oom(err);
    }
    *text = b.s;
    *len = b.n;
    return 0;
}

int nb_commit_file(const char *tmp, const char *path, struct nb_error *err)
{
    FILE *a = fopen(tmp, "rb"), *b = fopen(path, "rb");
    bool same = a && b;
    while (same) {
        char x[65536], y[65536];
        size_t nx = fread(x, 1, sizeof x, a), ny = fread(y, 1, sizeof y, b);
        if (nx != ny || memcmp(x, y, nx))
            same = false;
        else if (nx == 0)
            break;
    }
    if (a)
        fclose(a);
    if (b)
        fclose(b);
    if (same) {
        remove(tmp);
        return 0;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return nb_error_set(err, NB_EIO, path, 0, "cannot rename into place: %s",
                            strerror(e));
    }
    return 0;
}

/* ---- reading ---------------------------------------------------------------- */

void nb_archive_free(struct nb_archive *a)
{
    for (int i = 0; i < a->n_keys; i++)
        free(a->keys[i]);
    free(a->keys);
    for (int i = 0; i < NB_AR_COUNT; i++) {
        nb_csv_table_free(&a->t[i]);
        free(a->text[i]);
    }
    free(a->runs);
    memset(a, 0, sizeof *a);
}

/* The archive's run with this run_id, or NULL. */
static struct nb_ar_run *find_run(const struct nb_archive *a, const char *id)
{
    for (size_t i = 0; i < a->n_runs; i++)
        if (!strcmp(a->runs[i].run_id, id))
            return &a->runs[i];
    return NULL;
}

size_t nb_archive_finished(const struct nb_archive *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n_runs; i++) {
        const char *st = nb_csv_cell(&a->t[NB_AR_RUNS], a->runs[i].row, RC_STATUS);
        n += !strcmp(st, nb_sum_status_name(NB_SUM_DONE)) ||
             !strcmp(st, nb_sum_status_name(NB_SUM_DIVERGED));
    }
    return n;
}

bool nb_archive_same_table(const struct nb_archive *a, const struct nb_archive *b, int table)
{
    const struct nb_csv_table *x = &a->t[table], *y = &b->t[table];
    if (x->nrows == 0 || x->ncols != y->ncols || x->nrows != y->nrows)
        return false;
    for (int c = 0; c < x->ncols; c++)
        if (strcmp(x->header[c], y->header[c]))
            return false;
    for (size_t i = 0; i < x->nrows * (size_t)x->ncols; i++) {
        const char *u = x->cells[i], *v = y->cells[i];
        if (u != v && (!u || !v || strcmp(u, v)))
            return false;
    }
    return true;
}

bool nb_archive_has(const struct nb_archive *a, const char *run_id)
{
    return a && find_run(a, run_id) != NULL;
}

/* Column index of name in t, or -1. */
static int col(const struct nb_csv_table *t, const char *name)
{
    return nb_csv_col(t, name);
}

/* The first data column of table i (after run_id, the keys, and for
 * slices slice and scan). */
static int data_col(const struct nb_archive *a, int i)
{
    return 1 + a->n_keys + (i == NB_AR_SLICES ? n_of(slice_cols) : 0);
}

/* Parses the tables (texts or files already in a->t) and indexes the
 * runs; names: the file names for messages. */
static int index_tables(struct nb_archive *a, char names[NB_AR_COUNT][4200],
                        struct nb_error *err)
{
    struct nb_csv_table *rt = &a->t[NB_AR_RUNS];
    for (int c = 0; c < RC_N; c++)
        if (rt->ncols <= c || strcmp(rt->header[c], run_cols[c]))
            return nb_error_set(err, NB_EFORMAT, names[NB_AR_RUNS], 1,
                                "column %d must be '%s'", c + 1, run_cols[c]);
    const char *wt = nb_sum_scalar_name(NB_SC_WALL_TIME);
    int cw = col(rt, wt);
    if (cw < RC_N)
        return nb_error_set(err, NB_EFORMAT, names[NB_AR_RUNS], 1, "no column '%s'", wt);
    a->n_keys = cw - RC_N;
    if (a->n_keys && !(a->keys = calloc((size_t)a->n_keys, sizeof *a->keys)))
        return nb_error_oom(err);
    for (int k = 0; k < a->n_keys; k++)
        if (!(a->keys[k] = strdup(rt->header[RC_N + k])))
            return nb_error_oom(err);
    a->n_runs = 0; /* counts the runs indexed so far (find_run) */
    if (!(a->runs = calloc(rt->nrows + 1, sizeof *a->runs)))
        return nb_error_oom(err);
    for (size_t r = 0; r < rt->nrows; r++) {
        const char *id = nb_csv_cell(rt, r, RC_RUN_ID);
        if (!id)
            return nb_error_set(err, NB_EFORMAT, names[NB_AR_RUNS], (int)r + 2, "no run_id");
        if (find_run(a, id))
            return nb_error_set(err, NB_EFORMAT, names[NB_AR_RUNS], (int)r + 2,
                                "run %s is listed twice", id);
        a->runs[r].run_id = id;
        a->runs[r].row = r;
        a->n_runs = r + 1;
        const char *st = nb_csv_cell(rt, r, RC_STATUS);
        int ok = 0;
        for (int s = 0; s < NB_SUM_STATUS_COUNT; s++)
            ok |= st && s != NB_SUM_PENDING && !strcmp(st, nb_sum_status_name(s));
        if (!ok)
            return nb_error_set(err, NB_EFORMAT, names[NB_AR_RUNS], (int)r + 2,
                                "status '%s' is none of done, diverged, failed",
                                st ? st : "");
    }
    for (int i = NB_AR_METRICS; i < NB_AR_COUNT; i++) {
        const struct nb_csv_table *t = &a->t[i];
        if (!t->header)
            continue;
        int dc = data_col(a, i);
        bool ok = t->ncols >= dc && !strcmp(t->header[0], "run_id");
        for (int k = 0; ok && k < a->n_keys; k++)
            ok = !strcmp(t->header[1 + k], a->keys[k]);
        for (int k = 0; ok && i == NB_AR_SLICES && slice_cols[k]; k++)
            ok = !strcmp(t->header[1 + a->n_keys + k], slice_cols[k]);
        if (!ok)
            return nb_error_set(err, NB_EFORMAT, names[i], 1,
                                "the header must start with run_id and the key columns of "
                                "runs.csv%s",
                                i == NB_AR_SLICES ? ", then slice and scan" : "");
        struct nb_ar_run *cur = NULL;
        for (size_t r = 0; r < t->nrows; r++) {
            const char *id = nb_csv_cell(t, r, 0);
            if (cur && id && !strcmp(cur->run_id, id))
                continue;
            if (cur)
                cur->end[i] = r;
            cur = id ? find_run(a, id) : NULL;
            if (!cur)
                return nb_error_set(err, NB_EFORMAT, names[i], (int)r + 2,
                                    "run '%s' is not in runs.csv", id ? id : "");
            if (cur->end[i] > 0)
                return nb_error_set(err, NB_EFORMAT, names[i], (int)r + 2,
                                    "the rows of run %s are not contiguous", id);
            cur->first[i] = r;
        }
        if (cur)
            cur->end[i] = t->nrows;
    }
    return 0;
}

int nb_archive_load(const char *dir, struct nb_archive *a, struct nb_error *err)
{
    memset(a, 0, sizeof *a);
    snprintf(a->dir, sizeof a->dir, "%s", dir);
    char names[NB_AR_COUNT][4200];
    int rc = 0;
    for (int i = 0; i < NB_AR_COUNT && !rc; i++) {
        char *text = NULL;
        size_t len = 0;
        snprintf(names[i], sizeof names[i], "%.4000s/%s.csv.gz", dir, files[i]);
        rc = slurp(names[i], &text, &len, err);
        if (rc == NB_ENOENT) {
            names[i][strlen(names[i]) - 3] = '\0';
            rc = slurp(names[i], &text, &len, err);
        }
        if (rc == NB_ENOENT) {
            rc = 0;
            if (i == NB_AR_RUNS)
                rc = nb_error_set(err, NB_ENOENT, dir, 0, "no archive (no runs.csv)");
            continue;
        }
        if (!rc)
            rc = nb_csv_read_mem(text, len, names[i], &a->t[i], err);
        free(text);
    }
    if (!rc)
        rc = index_tables(a, names, err);
    if (rc)
        nb_archive_free(a);
    return rc;
}

/* The rows [r0, r1) of table t from column c0 on as CSV text (a header,
 * then the rows); a column empty in every row is left out when
 * drop_empty.  Slices (scan_col >= 0): a blank line between the scans of
 * a slice, two between slices, as slice.csv has them. */
static char *rows_text(const struct nb_csv_table *t, int c0, size_t r0, size_t r1,
                       bool drop_empty, int scan_col, size_t *len)
{
    struct nb_text b = {0};
    bool *keep = calloc((size_t)t->ncols + 1, sizeof *keep);
    if (!keep)
        return NULL;
    for (int c = c0; c < t->ncols; c++) {
        keep[c] = !drop_empty;
        for (size_t r = r0; r < r1 && !keep[c]; r++)
            keep[c] = nb_csv_cell(t, r, c) != NULL;
    }
    bool first = true;
    for (int c = c0; c < t->ncols; c++)
        if (keep[c]) {
            sb_field(&b, t->header[c], first);
            first = false;
        }
    nb_text_put(&b, "\n", 1);
    for (size_t r = r0; r < r1; r++) {
        if (scan_col >= 0 && r > r0) {
            const char *sl0 = nb_csv_cell(t, r - 1, scan_col - 1),
                       *sl1 = nb_csv_cell(t, r, scan_col - 1);
            const char *sc0 = nb_csv_cell(t, r - 1, scan_col),
                       *sc1 = nb_csv_cell(t, r, scan_col);
            if (!sl0 || !sl1 || strcmp(sl0, sl1))
                nb_text_puts(&b, "\n\n");
            else if (!sc0 || !sc1 || strcmp(sc0, sc1))
                nb_text_puts(&b, "\n");
        }
        first = true;
        for (int c = c0; c < t->ncols; c++)
            if (keep[c]) {
                sb_field(&b, nb_csv_cell(t, r, c), first);
                first = false;
            }
        nb_text_put(&b, "\n", 1);
    }
    free(keep);
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    *len = b.n;
    return b.s;
}

int nb_archive_fallback(void *user, const char *run_id, struct nb_sum_runsrc *src,
                        struct nb_error *err)
{
    const struct nb_archive *a = user;
    const struct nb_ar_run *r = a ? find_run(a, run_id) : NULL;
    if (!r)
        return 0;
    const struct nb_csv_table *rt = &a->t[NB_AR_RUNS];
    const char *st = nb_csv_cell(rt, r->row, RC_STATUS);
    for (int s = 0; s < NB_SUM_STATUS_COUNT; s++)
        if (!strcmp(st, nb_sum_status_name(s)))
            src->status = s;
    src->wall_time = NAN;
    const char *w = nb_csv_cell(rt, r->row, col(rt, nb_sum_scalar_name(NB_SC_WALL_TIME)));
    if (w)
        src->wall_time = strtod(w, NULL);
    src->params = NAN; /* an archive written before params was recorded has no column */
    int cp = col(rt, "params");
    const char *pc = cp >= 0 ? nb_csv_cell(rt, r->row, cp) : NULL;
    if (pc && *pc) {
        char *end;
        double x = strtod(pc, &end);
        if (end != pc && !*end)
            src->params = x;
    }
    src->name = a->dir;
    if (src->status == NB_SUM_FAILED)
        return 1;
    char **text[3] = {&src->metrics, &src->probes, &src->slice};
    size_t *len[3] = {&src->metrics_len, &src->probes_len, &src->slice_len};
    for (int i = NB_AR_METRICS; i < NB_AR_COUNT; i++) {
        const struct nb_csv_table *t = &a->t[i];
        if (!t->header || r->end[i] <= r->first[i])
            continue;
        *text[i - 1] = rows_text(t, data_col(a, i), r->first[i], r->end[i],
                                 i == NB_AR_METRICS, i == NB_AR_SLICES ? data_col(a, i) - 1 : -1,
                                 len[i - 1]);
        if (!*text[i - 1]) {
            free(src->metrics), free(src->probes), free(src->slice);
            src->metrics = src->probes = src->slice = NULL;
            return nb_error_oom(err);
        }
    }
    return 1;
}

/* ---- building ----------------------------------------------------------------- */

/* A run's rows of one table: t from column c0, rows [r0, r1). */
struct view {
    const struct nb_csv_table *t;
    int c0;
    size_t r0, r1;
};

/* slice.csv as a table: slice, scan, then its header's columns. */
static int read_slice_file(const char *path, struct nb_csv_table *out, struct nb_error *err)
{
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    int rc = slurp(path, &text, &len, err);
    if (rc)
        return rc == NB_ENOENT ? 0 : rc;
    /* the header line */
    char *line = text, *save = NULL;
    char *nl = strchr(line, '\n');
    if (!nl) {
        free(text);
        return nb_error_set(err, NB_EFORMAT, path, 1, "no header line");
    }
    *nl = '\0';
    int nh = 1;
    for (char *p = line; *p; p++)
        nh += *p == ',';
    out->ncols = 2 + nh;
    out->header = calloc((size_t)out->ncols, sizeof *out->header);
    if (!out->header)
        goto nomem;
    out->header[0] = strdup(slice_cols[0]);
    out->header[1] = strdup(slice_cols[1]);
    {
        int k = 2;
        for (char *f = strtok_r(line, ",\r", &save); f && k < out->ncols;
             f = strtok_r(NULL, ",\r", &save))
            out->header[k++] = strdup(f);
        for (k = 0; k < out->ncols; k++)
            if (!out->header[k])
                goto nomem;
    }
    size_t cap = 0;
    int slice = 0, scan = 0, blanks = 0;
    bool any = false;
    for (char *p = nl + 1; *p;) {
        char *e = strchr(p, '\n');
        if (e)
            *e = '\0';
        size_t l = strlen(p);
        while (l && p[l - 1] == '\r')
            p[--l] = '\0';
        if (!l) {
            blanks++;
        } else {
            if (any && blanks >= 2)
                slice++, scan = 0;
            else if (any && blanks == 1)
                scan++;
            blanks = 0;
            any = true;
            if (out->nrows == cap) {
                cap = cap ? 2 * cap : 256;
                char **c = realloc(out->cells, cap * (size_t)out->ncols * sizeof *c);
                if (!c)
                    goto nomem;
                out->cells = c;
            }
            char **row = out->cells + out->nrows * (size_t)out->ncols;
            memset(row, 0, (size_t)out->ncols * sizeof *row);
            out->nrows++;
            char num[32];
            snprintf(num, sizeof num, "%d", slice);
            row[0] = strdup(num);
            snprintf(num, sizeof num, "%d", scan);
            row[1] = strdup(num);
            if (!row[0] || !row[1])
                goto nomem;
            int k = 2;
            for (char *f = p;; k++) {
                char *comma = strchr(f, ',');
                if (comma)
                    *comma = '\0';
                if (k < out->ncols && *f && !(row[k] = strdup(f)))
                    goto nomem;
                if (!comma)
                    break;
                f = comma + 1;
            }
        }
        if (!e)
            break;
        p = e + 1;
    }
    free(text);
    return 0;
nomem:
    free(text);
    nb_csv_table_free(out);
    return nb_error_oom(err);
}

/* Column names of table i over every run's view, first seen first. */
static int add_names(char ***names, int *n, const struct view *v)
{
    for (int c = v->c0; v->t && v->t->header && c < v->t->ncols; c++) {
        int j;
        for (j = 0; j < *n; j++)
            if (!strcmp((*names)[j], v->t->header[c]))
                break;
        if (j < *n)
            continue;
        char **p = realloc(*names, (size_t)(*n + 1) * sizeof *p);
        if (!p)
            return NB_ENOMEM;
        *names = p;
        p[(*n)++] = v->t->header[c];
    }
    return 0;
}

/* The value of "key = value" in text (meta.txt), into out; "" if none. */
static void kv(const char *text, const char *key, char *out, size_t size)
{
    out[0] = '\0';
    size_t kl = strlen(key);
    for (const char *p = text; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l > kl && !strncmp(p, key, kl) && (p[kl] == ' ' || p[kl] == '=')) {
            const char *v = p + kl;
            while (*v == ' ' || *v == '=')
                v++;
            size_t n = (size_t)(p + l - v);
            while (n && (v[n - 1] == ' ' || v[n - 1] == '\r'))
                n--;
            snprintf(out, size, "%.*s", (int)n, v);
        }
        p = e ? e + 1 : NULL;
    }
}

/* What nb_archive_build gathers: per run that is not pending and per
 * data table, its rows (from the run directory, or from the old archive
 * for a run read from it), and per table the union of the columns. */
struct gather {
    size_t n;
    const struct nb_sum_run **runs;          /* [n] */
    const struct nb_ar_run **from;           /* [n]: its entry in old, or NULL */
    struct view (*v)[NB_AR_COUNT];           /* [n] */
    struct nb_csv_table (*own)[NB_AR_COUNT]; /* [n]: the tables of its directory */
    char **meta;                             /* [n]: its meta.txt, or NULL */
    char **cols[NB_AR_COUNT];                /* names borrowed from the tables */
    int ncols[NB_AR_COUNT];
    bool meta_on[4]; /* meta_keys from META_ADDED_FROM on: some run has one */
};

/* Reads the rows of every run of g (its directory's files, or its entry
 * in old) into g->v; returns a status. */
static int gather_rows(struct gather *g, const struct nb_archive *old, struct nb_error *err)
{
    static const char *const fn[NB_AR_COUNT] = { NULL, "metrics.csv", "probes.csv", "slice.csv" };
    int rc = 0;
    for (size_t i = 0; i < g->n && !rc; i++) {
        const struct nb_sum_run *r = g->runs[i];
        if (r->archived) {
            g->from[i] = old ? find_run(old, r->run_id) : NULL;
            if (!g->from[i])
                return nb_error_set(err, NB_EINVAL, NULL, 0,
                                    "run %s was read from an archive that is gone", r->run_id);
            for (int t = NB_AR_METRICS; t < NB_AR_COUNT; t++)
                g->v[i][t] = (struct view){ &old->t[t], 1 + old->n_keys, g->from[i]->first[t],
                                            g->from[i]->end[t] };
            continue;
        }
        char path[4200];
        size_t len;
        snprintf(path, sizeof path, "%s/meta.txt", r->dir);
        rc = slurp(path, &g->meta[i], &len, err);
        if (rc == NB_ENOENT)
            rc = 0;
        for (int t = NB_AR_METRICS; t < NB_AR_COUNT && !rc; t++) {
            struct stat st;
            snprintf(path, sizeof path, "%s/%s", r->dir, fn[t]);
            if (r->status == NB_SUM_FAILED || stat(path, &st) != 0)
                continue;
            rc = t == NB_AR_SLICES ? read_slice_file(path, &g->own[i][t], err)
                                   : nb_csv_read(path, &g->own[i][t], err);
            g->v[i][t] = (struct view){ &g->own[i][t], 0, 0, g->own[i][t].nrows };
        }
    }
    return rc;
}

/* The columns of each data table over every run's rows, first seen
 * first (slices.csv's start with slice and scan even when no run has a
 * slice); returns a status. */
static int gather_columns(struct gather *g, struct nb_error *err)
{
    if (!(g->cols[NB_AR_SLICES] = malloc(2 * sizeof **g->cols)))
        return nb_error_oom(err);
    g->cols[NB_AR_SLICES][0] = (char *)slice_cols[0];
    g->cols[NB_AR_SLICES][1] = (char *)slice_cols[1];
    g->ncols[NB_AR_SLICES] = 2;
    for (int t = NB_AR_METRICS; t < NB_AR_COUNT; t++)
        for (size_t i = 0; i < g->n; i++)
            if (g->v[i][t].r1 > g->v[i][t].r0 && add_names(&g->cols[t], &g->ncols[t], &g->v[i][t]))
                return nb_error_oom(err);
    return 0;
}

/* Run i's value of meta_keys[c] into val: from its meta.txt, or from the
 * old archive it was read from ("" when it has none). */
static void meta_value(const struct gather *g, size_t i, const struct nb_archive *old, int c,
                       char *val, size_t size)
{
    if (g->from[i]) {
        int oc = col(&old->t[NB_AR_RUNS], meta_keys[c]);
        const char *x = oc >= 0 ? nb_csv_cell(&old->t[NB_AR_RUNS], g->from[i]->row, oc) : NULL;
        snprintf(val, size, "%s", x ? x : "");
    } else {
        kv(g->meta[i], meta_keys[c], val, size);
    }
}

/* g->meta_on: which of the meta_keys recorded since 0.1.0 some run has. */
static void gather_meta(struct gather *g, const struct nb_archive *old)
{
    for (int c = META_ADDED_FROM; meta_keys[c]; c++) {
        NB_ASSERT(c - META_ADDED_FROM < (int)(sizeof g->meta_on / sizeof g->meta_on[0]));
        char val[1024];
        for (size_t i = 0; i < g->n && !g->meta_on[c - META_ADDED_FROM]; i++) {
            meta_value(g, i, old, c, val, sizeof val);
            g->meta_on[c - META_ADDED_FROM] = val[0] != '\0';
        }
    }
}

/* Frees what g holds (in any state gathering left it). */
static void gather_free(struct gather *g)
{
    for (size_t i = 0; g->v && g->own && g->meta && i < g->n; i++) {
        for (int t = 0; t < NB_AR_COUNT; t++)
            nb_csv_table_free(&g->own[i][t]);
        free(g->meta[i]);
    }
    for (int t = 0; t < NB_AR_COUNT; t++)
        free(g->cols[t]);
    free(g->v), free(g->own), free(g->meta), free(g->runs), free(g->from);
}

/* Appends the header line of each table to b: the fixed columns, the
 * keys (out->keys), then the table's own. */
static void put_headers(struct nb_text *b, const struct nb_archive *out, const struct gather *g)
{
    for (int c = 0; run_cols[c]; c++)
        sb_field(&b[NB_AR_RUNS], run_cols[c], c == 0);
    for (int k = 0; k < out->n_keys; k++)
        sb_field(&b[NB_AR_RUNS], out->keys[k], false);
    sb_field(&b[NB_AR_RUNS], nb_sum_scalar_name(NB_SC_WALL_TIME), false);
    for (int c = 0; meta_keys[c]; c++)
        if (c < META_ADDED_FROM || g->meta_on[c - META_ADDED_FROM])
            sb_field(&b[NB_AR_RUNS], meta_keys[c], false);
    nb_text_put(&b[NB_AR_RUNS], "\n", 1);
    for (int t = NB_AR_METRICS; t < NB_AR_COUNT; t++) {
        sb_field(&b[t], "run_id", true);
        for (int k = 0; k < out->n_keys; k++)
            sb_field(&b[t], out->keys[k], false);
        for (int c = 0; c < g->ncols[t]; c++)
            sb_field(&b[t], g->cols[t][c], false);
        nb_text_put(&b[t], "\n", 1);
    }
}

/* Appends run i of g to b: its runs.csv row (meta facts from meta.txt or
 * the old archive) and its rows of each data table; returns a status. */
static int put_run(struct nb_text *b, const struct gather *g, size_t i, const struct nb_summary *s,
                   const struct nb_archive *old, struct nb_error *err)
{
    int kexp = nb_key_lookup("experiment", "name");
    const struct nb_sum_run *r = g->runs[i];
    struct nb_text *rb = &b[NB_AR_RUNS];
    char num[64];
    sb_field(rb, r->run_id, true);
    sb_field(rb, kexp >= 0 ? r->vals[kexp] : NULL, false);
    sb_field(rb, nb_sum_status_name(r->status), false);
    snprintf(num, sizeof num, "%llu", r->seed);
    sb_field(rb, num, false);
    for (int k = 0; k < s->n_vary; k++)
        sb_field(rb, r->vals[s->vary[k]], false);
    sb_field(rb, nb_format_double(r->sc[NB_SC_WALL_TIME], num, sizeof num), false);
    for (int c = 0; meta_keys[c]; c++) {
        char val[1024];
        if (c >= META_ADDED_FROM && !g->meta_on[c - META_ADDED_FROM])
            continue;
        meta_value(g, i, old, c, val, sizeof val);
        sb_field(rb, val[0] ? val : NULL, false);
    }
    nb_text_put(rb, "\n", 1);
    for (int t = NB_AR_METRICS; t < NB_AR_COUNT; t++) {
        const struct view *w = &g->v[i][t];
        if (w->r1 <= w->r0)
            continue;
        int *map = calloc((size_t)g->ncols[t] + 1, sizeof *map);
        if (!map)
            return nb_error_oom(err);
        int pc = -1, sc = -1, lc = -1; /* probes: the probe, stat, layer columns */
        for (int c = 0; c < g->ncols[t]; c++) {
            map[c] = -1;
            for (int j = w->c0; j < w->t->ncols; j++)
                if (!strcmp(w->t->header[j], g->cols[t][c]))
                    map[c] = j;
            if (t == NB_AR_PROBES && !strcmp(g->cols[t][c], "probe"))
                pc = map[c];
            if (t == NB_AR_PROBES && !strcmp(g->cols[t][c], "stat"))
                sc = map[c];
            if (t == NB_AR_PROBES && !strcmp(g->cols[t][c], "layer"))
                lc = map[c];
        }
        for (size_t row = w->r0; row < w->r1; row++) {
            /* the rows the summary keeps (an experiment's probe_stats and
             * probe_layers) */
            const char *pv = pc >= 0 ? nb_csv_cell(w->t, row, pc) : NULL;
            const char *sv = sc >= 0 ? nb_csv_cell(w->t, row, sc) : NULL;
            const char *lv = lc >= 0 ? nb_csv_cell(w->t, row, lc) : NULL;
            if (pv && sv && !nb_summary_keeps_probe(s, pv, sv, lv))
                continue;
            sb_field(&b[t], r->run_id, true);
            for (int k = 0; k < s->n_vary; k++)
                sb_field(&b[t], r->vals[s->vary[k]], false);
            for (int c = 0; c < g->ncols[t]; c++)
                sb_field(&b[t], map[c] >= 0 ? nb_csv_cell(w->t, row, map[c]) : NULL, false);
            nb_text_put(&b[t], "\n", 1);
        }
        free(map);
    }
    return 0;
}

/* Moves the texts of b into out and parses them (the facts and the save
 * read the same tables), then indexes them; returns a status. */
static int parse_built(struct nb_archive *out, struct nb_text *b, struct nb_error *err)
{
    char names[NB_AR_COUNT][4200];
    int rc = 0;
    for (int t = 0; t < NB_AR_COUNT && !rc; t++) {
        snprintf(names[t], sizeof names[t], "(archive being built)/%s.csv", files[t]);
        out->text[t] = b[t].s;
        out->len[t] = b[t].n;
        b[t].s = NULL;
        rc = nb_csv_read_mem(out->text[t], out->len[t], names[t], &out->t[t], err);
    }
    if (rc)
        return rc;
    for (int k = 0; k < out->n_keys; k++)
        free(out->keys[k]);
    free(out->keys);
    out->keys = NULL;
    return index_tables(out, names, err);
}

int nb_archive_build(const struct nb_summary *s, const struct nb_archive *old,
                     struct nb_archive *out, struct nb_error *err)
{
    memset(out, 0, sizeof *out);
    struct gather g = { 0 };
    struct nb_text b[NB_AR_COUNT];
    memset(b, 0, sizeof b);
    for (size_t i = 0; i < s->n_runs; i++)
        g.n += s->runs[i].status != NB_SUM_PENDING;
    /* per run and table: the rows, from the run directory or old */
    g.v = calloc(g.n + 1, sizeof *g.v);
    g.own = calloc(g.n + 1, sizeof *g.own);
    g.meta = calloc(g.n + 1, sizeof *g.meta);
    g.runs = calloc(g.n + 1, sizeof *g.runs);
    g.from = calloc(g.n + 1, sizeof *g.from);
    int rc = 0;
    if (!g.v || !g.own || !g.meta || !g.runs || !g.from) {
        rc = nb_error_oom(err);
        goto done;
    }
    size_t m = 0;
    for (size_t i = 0; i < s->n_runs; i++)
        if (s->runs[i].status != NB_SUM_PENDING)
            g.runs[m++] = &s->runs[i];
    if (!(rc = gather_rows(&g, old, err)) && !(rc = gather_columns(&g, err)))
        gather_meta(&g, old);
    if (rc)
        goto done;
    /* the key columns: the summary's varying keys */
    char kname[256];
    out->n_keys = s->n_vary;
    if (out->n_keys && !(out->keys = calloc((size_t)out->n_keys, sizeof *out->keys))) {
        rc = nb_error_oom(err);
        goto done;
    }
    for (int k = 0; k < s->n_vary; k++) {
        snprintf(kname, sizeof kname, "%s.%s", nb_key_at(s->vary[k])->section,
                 nb_key_at(s->vary[k])->key);
        if (!(out->keys[k] = strdup(kname))) {
            rc = nb_error_oom(err);
            goto done;
        }
    }
    put_headers(b, out, &g);
    for (size_t i = 0; i < g.n; i++)
        if ((rc = put_run(b, &g, i, s, old, err)))
            goto done;
    for (int t = 0; t < NB_AR_COUNT; t++)
        if (b[t].failed) {
            rc = nb_error_oom(err);
            goto done;
        }
    rc = parse_built(out, b, err);
done:
    gather_free(&g);
    for (int t = 0; t < NB_AR_COUNT; t++)
        free(b[t].s);
    if (rc)
        nb_archive_free(out);
    return rc;
}

/* ---- saving -------------------------------------------------------------------- */

/* Writes len bytes of text to path (gzip-compressed, with no name or time
 * stamp, when gz); 0 or NB_EIO. */
static int write_text(const char *path, const char *text, size_t len, bool gz,
                      struct nb_error *err)
{
    if (gz) {
        /* gzopen writes no name and no time stamp: the same text gives the
         * same bytes */
        gzFile f = gzopen(path, "wb9");
        if (!f)
            return nb_error_set(err, NB_EIO, path, 0, "cannot create: %s", strerror(errno));
        size_t off = 0;
        bool bad = false;
        while (off < len && !bad) {
            unsigned chunk = len - off > (1u << 30) ? (1u << 30) : (unsigned)(len - off);
            bad = gzwrite(f, text + off, chunk) != (int)chunk;
            off += chunk;
        }
        if (gzclose(f) != Z_OK || bad) {
            remove(path);
            return nb_error_set(err, NB_EIO, path, 0, "write error");
        }
        return 0;
    }
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return nb_error_set(err, NB_EIO, path, 0, "cannot create: %s", strerror(errno));
    bool bad = fwrite(text, 1, len, fp) != len;
    if (fclose(fp) != 0 || bad) {
        remove(path);
        return nb_error_set(err, NB_EIO, path, 0, "write error");
    }
    return 0;
}

int nb_archive_save(const struct nb_archive *a, const char *dir, struct nb_error *err)
{
    int rc = nb_mkdirs(dir, err);
    if (rc)
        return rc;
    for (int t = 0; t < NB_AR_COUNT; t++) {
        char plain[4200], gzp[4300], tmp[4400];
        snprintf(plain, sizeof plain, "%.4000s/%s.csv", dir, files[t]);
        snprintf(gzp, sizeof gzp, "%s.gz", plain);
        bool rows = a->t[t].nrows > 0 || t == NB_AR_RUNS;
        bool gz = a->len[t] > NB_ARCHIVE_GZIP_MIN;
        const char *path = gz ? gzp : plain, *other = gz ? plain : gzp;
        if (!rows) {
            remove(plain);
            remove(gzp);
            continue;
        }
        /* unchanged text: leave the file alone (its compressed bytes may
         * come from another zlib) */
        char *cur = NULL;
        size_t len = 0;
        int r = slurp(path, &cur, &len, NULL);
        bool same = !r && len == a->len[t] && !memcmp(cur, a->text[t], len);
        free(cur);
        if (!same) {
            snprintf(tmp, sizeof tmp, "%.4000s/.%s.tmp-%ld", dir, files[t], (long)getpid());
            if ((rc = write_text(tmp, a->text[t], a->len[t], gz, err)))
                return rc;
            if ((rc = nb_commit_file(tmp, path, err)))
                return rc;
        }
        remove(other);
    }
    return 0;
}

/* ---- facts ------------------------------------------------------------------------ */

/* Distinct non-empty values of column c, joined with ", " into buf (at
 * most 3, then "and N more"); returns the count. */
static int distinct(const struct nb_csv_table *t, int c, char *buf, size_t size)
{
    buf[0] = '\0';
    if (c < 0)
        return 0;
    int nd = 0;
    size_t used = 0;
    for (size_t r = 0; r < t->nrows; r++) {
        const char *x = nb_csv_cell(t, r, c);
        if (!x)
            continue;
        bool seen = false;
        for (size_t q = 0; q < r && !seen; q++) {
            const char *y = nb_csv_cell(t, q, c);
            seen = y && !strcmp(x, y);
        }
        if (seen)
            continue;
        nd++;
        if (nd <= 3 && used < size)
            used += (size_t)snprintf(buf + used, size - used, "%s%s", nd > 1 ? ", " : "", x);
    }
    if (nd > 3 && used < size)
        snprintf(buf + used, size - used, " and %d more", nd - 3);
    return nd;
}

/* The sum of column c's finite numbers over t's rows; *n counts them. */
static double sum_col(const struct nb_csv_table *t, int c, size_t *n)
{
    double s = 0;
    *n = 0;
    for (size_t r = 0; c >= 0 && r < t->nrows; r++) {
        const char *x = nb_csv_cell(t, r, c);
        char *end;
        double v = x ? strtod(x, &end) : NAN;
        if (x && !*end && isfinite(v)) {
            s += v;
            (*n)++;
        }
    }
    return s;
}

/* seconds in words: "12.5 min", "3.20 h"; "unknown" without values */
static void span(double sec, size_t n, char *buf, size_t size)
{
    if (!n)
        snprintf(buf, size, "unknown");
    else if (sec < 3600)
        snprintf(buf, size, "%.1f min", sec / 60.0);
    else
        snprintf(buf, size, "%.2f h", sec / 3600.0);
}

/* "2026-11-25T02:21:05Z" -> "2026-11-25 02:21" */
static void short_time(const char *iso, char *buf, size_t size)
{
    snprintf(buf, size, "%.10s %.5s", iso, strlen(iso) > 11 ? iso + 11 : "");
}

void nb_archive_facts(const struct nb_archive *a, struct nb_archive_facts *f)
{
    memset(f, 0, sizeof *f);
    const struct nb_csv_table *t = &a->t[NB_AR_RUNS];
    int cs = col(t, "start_utc"), ce = col(t, "end_utc");
    const char *first = NULL, *last = NULL;
    for (size_t r = 0; r < t->nrows; r++) {
        const char *x = cs >= 0 ? nb_csv_cell(t, r, cs) : NULL;
        const char *y = ce >= 0 ? nb_csv_cell(t, r, ce) : NULL;
        if (x && (!first || strcmp(x, first) < 0))
            first = x;
        if (y && (!last || strcmp(y, last) > 0))
            last = y;
        f->n_runs += x || y;
    }
    if (!f->n_runs) {
        snprintf(f->version, sizeof f->version, "no run with a meta.txt: when, how and "
                                                "where the runs were made is unknown");
        snprintf(f->machine, sizeof f->machine, "unknown (no run's meta.txt)");
        return;
    }
    char a1[32] = "?", a2[32] = "?";
    if (first)
        short_time(first, a1, sizeof a1);
    if (last)
        short_time(last, a2, sizeof a2);
    /* the end's date only when it differs from the start's */
    snprintf(f->when, sizeof f->when, "%s to %s UTC", a1,
             strncmp(a1, a2, 11) ? a2 : a2 + (strlen(a2) > 11 ? 11 : 0));
    char pkg[300], rev[300], cpu[400], host[300], ncpu[100], blas[400], conv[200], jobs[100];
    distinct(t, col(t, "package"), pkg, sizeof pkg);
    distinct(t, col(t, "git_revision"), rev, sizeof rev);
    int nh = distinct(t, col(t, "host"), host, sizeof host);
    distinct(t, col(t, "cpu"), cpu, sizeof cpu);
    distinct(t, col(t, "cpus_online"), ncpu, sizeof ncpu);
    distinct(t, col(t, "blas"), blas, sizeof blas);
    distinct(t, col(t, "conv_algo"), conv, sizeof conv);
    distinct(t, col(t, "jobs"), jobs, sizeof jobs); /* "": runs made before it was recorded */
    size_t nc, nw;
    double cpu_s = sum_col(t, col(t, "cpu_seconds"), &nc);
    double wall_s = sum_col(t, col(t, "wall_seconds"), &nw);
    char tc[64], tw[64];
    span(cpu_s, nc, tc, sizeof tc);
    span(wall_s, nw, tw, sizeof tw);
    snprintf(f->version, sizeof f->version,
             "%zu runs made by %s (git %s; CPU time %s, wall time %s, summed over the runs)",
             f->n_runs, pkg[0] ? pkg : "normbench", rev[0] ? rev : "unknown", tc, tw);
    /* the test set's size: "... test 10000 ..." in meta.txt's data line,
     * when every run has the same */
    int cd = col(t, "data");
    for (size_t r = 0; cd >= 0 && r < t->nrows; r++) {
        const char *x = nb_csv_cell(t, r, cd), *p = x ? strstr(x, " test ") : NULL;
        long n = p ? strtol(p + 6, NULL, 10) : 0;
        if (n <= 0 || (f->n_test && f->n_test != n)) {
            f->n_test = 0;
            break;
        }
        f->n_test = n;
    }
    char jtext[140] = "";
    if (jobs[0])
        snprintf(jtext, sizeof jtext, "; runs at once (-j) %s", jobs);
    snprintf(f->machine, sizeof f->machine,
             "%s (%s CPUs online) on %d host%s; BLAS %s; conv_algo %s%s (each run's meta.txt, "
             "archive/runs.csv)",
             cpu[0] ? cpu : "unknown CPU", ncpu[0] ? ncpu : "?", nh, nh == 1 ? "" : "s",
             blas[0] ? blas : "unknown", conv[0] ? conv : "unknown", jtext);
}
